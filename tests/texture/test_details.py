"""Details: displaced normals, shape-from-shading displacement on synthetic surfaces, files, grid mesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.render.sh import directional_sh, irradiance
from facerecon.texture.details import (
    DISPLACEMENT_MM_PER_UNIT,
    DetailConfig,
    decode_displacement,
    displaced_normals,
    encode_displacement,
    estimate_displacement,
    grid_mesh,
    normal_map_rgb,
)

N = 64  # texels per side; 0.5 mm per texel


def _plane(size: int = N, dtype=torch.float32):
    """A camera-facing plane z = 300 mm as a position map (u right = +x, rows down = +y), normals (0, 0, -1)."""
    rows, cols = torch.meshgrid(torch.arange(size, dtype=dtype), torch.arange(size, dtype=dtype), indexing="ij")
    positions = torch.stack([cols * 0.5, rows * 0.5, torch.full_like(cols, 300.0)])[None]
    normals = torch.zeros_like(positions)
    normals[:, 2] = -1.0
    return positions, normals


def _light(dtype=torch.float32):
    return directional_sh(torch.tensor([[0.6, -0.3, -1.0]], dtype=dtype), torch.full((1, 3), 2.5, dtype=dtype), ambient=0.3)


def _render(positions, normals, d, albedo, sh):
    n = displaced_normals(positions, normals, d)
    s = irradiance(n.permute(0, 2, 3, 1).reshape(1, -1, 3), sh).reshape(1, N, N, 3).permute(0, 3, 1, 2)
    return (albedo * s).clamp(0, 1)


def _bump():
    rows, cols = np.mgrid[0:N, 0:N].astype(np.float32)
    wrinkle = 0.6 * np.exp(-((rows - N / 2) ** 2) / (2 * 2.0**2)) * ((cols > 16) & (cols < 48))  # a ridge, mm
    return torch.from_numpy(wrinkle)[None, None]


def test_zero_displacement_keeps_the_normals() -> None:
    positions, normals = _plane()
    torch.testing.assert_close(displaced_normals(positions, normals, torch.zeros(1, 1, N, N)), normals)
    # A raised ridge along x tilts the normals on its flanks towards +-y.
    n = displaced_normals(positions, normals, _bump())
    assert n[0, 1, N // 2 - 3, N // 2] < -0.1 and n[0, 1, N // 2 + 3, N // 2] > 0.1


def test_displaced_normals_gradcheck() -> None:
    positions, normals = _plane(5, torch.float64)
    d = (torch.rand(1, 1, 5, 5, dtype=torch.float64) * 0.2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: displaced_normals(positions, normals, x), (d,))


def test_sfs_recovers_a_wrinkle_and_nothing_else() -> None:
    positions, normals = _plane()
    sh = _light()
    albedo = torch.full((1, 3, N, N), 0.6)
    truth = _bump()
    photo = _render(positions, normals, truth, albedo, sh)
    weight = torch.ones(1, 1, N, N)
    skin = torch.ones(1, 1, N, N, dtype=torch.bool)
    config = DetailConfig(iterations=80)
    result = estimate_displacement(positions, normals, photo, albedo, weight, skin, sh, config)
    d = result.displacement
    inner = result.mask
    assert inner.sum() > 0.8 * N * N and not inner[0].any()  # the layout border is left alone
    corr = np.corrcoef(d[inner], truth[0, 0].numpy()[inner])[0, 1]
    assert corr > 0.7, corr
    assert result.energy["con"] < 0.3 * result.energy["con_start"]
    # A photo of the flat plane: no detail anywhere.
    flat = _render(positions, normals, torch.zeros_like(truth), albedo, sh)
    none = estimate_displacement(positions, normals, flat, albedo, weight, skin, sh, config)
    assert np.abs(none.displacement).max() < 0.02
    # Outside the skin mask nothing moves either.
    no_skin = estimate_displacement(positions, normals, photo, albedo, weight, torch.zeros_like(skin), sh, config)
    assert (no_skin.displacement == 0).all() and not no_skin.mask.any()


def test_displacement_file_encoding() -> None:
    d = np.array([[0.0, 0.001, -0.5], [2.345, -32.768, 40.0]], np.float32)
    enc = encode_displacement(d)
    assert enc.dtype == np.uint16
    assert enc[0, 0] == 32768 and enc[0, 1] == 32769 and enc[0, 2] == 32268 and enc[1, 1] == 0 and enc[1, 2] == 65535
    np.testing.assert_allclose(decode_displacement(enc)[0], d[0], atol=DISPLACEMENT_MM_PER_UNIT / 2)
    with pytest.raises(ValueError, match="finite"):
        encode_displacement(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="uint16"):
        decode_displacement(np.zeros((2, 2), np.float32))


def test_normal_map_encoding() -> None:
    n = np.zeros((3, 1, 3), np.float32)
    n[:, 0, 0] = (0, 0, 1)
    n[:, 0, 1] = (1, 0, 0)
    rgb = normal_map_rgb(n)
    assert rgb[0, 0].tolist() == [128, 128, 255] and rgb[0, 1].tolist() == [255, 128, 128]
    assert rgb[0, 2].tolist() == [128, 128, 255]  # no surface: the flat normal
    with pytest.raises(ValueError, match="normals"):
        normal_map_rgb(np.zeros((2, 2, 3)))


def test_grid_mesh_known_answer() -> None:
    positions = np.zeros((3, 3, 3), np.float32)
    rows, cols = np.mgrid[0:3, 0:3]
    positions[0], positions[1] = cols, -rows  # u right = +x, rows down = -y: the surface faces +z
    covered = np.ones((3, 3), bool)
    covered[2, 2] = False
    mesh = grid_mesh(positions, covered)
    assert len(mesh.vertices) == 8 and len(mesh.faces) == 6  # three full 2 x 2 blocks
    a, b, c = (mesh.vertices[mesh.faces[:, k]] for k in range(3))
    normals = np.cross(b - a, c - a)
    assert (normals[:, 2] > 0).all() and np.allclose(normals[:, :2], 0)  # counter-clockwise seen from +z
    np.testing.assert_allclose(mesh.uvs[0], [0.5 / 3, 1 - 0.5 / 3])
    with pytest.raises(ValueError, match="2 x 2"):
        grid_mesh(positions, np.eye(3, dtype=bool))
    with pytest.raises(ValueError, match="covered"):
        grid_mesh(positions, np.ones((2, 2), bool))


def test_errors() -> None:
    positions, normals = _plane(8)
    args = [positions, normals, torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 8, 8),
            torch.ones(1, 1, 8, 8, dtype=torch.bool), _light()]  # fmt: skip
    with pytest.raises(TypeError, match="skin"):
        estimate_displacement(*args[:5], torch.ones(1, 1, 8, 8), args[6])
    with pytest.raises(ValueError, match="photo"):
        estimate_displacement(args[0], args[1], torch.zeros(1, 3, 4, 4), *args[3:])
    with pytest.raises(TypeError, match="sh"):
        estimate_displacement(*args[:6], None)
    with pytest.raises(ValueError, match="iterations"):
        DetailConfig(iterations=-1)
    with pytest.raises(ValueError, match="mu2"):
        DetailConfig(mu2=float("nan"))
    with pytest.raises(ValueError, match="displacement"):
        displaced_normals(positions, normals, torch.zeros(1, 1, 4, 4))
