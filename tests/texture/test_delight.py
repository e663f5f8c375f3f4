"""De-lighting in UV space: texel normals, SH shading per texel, albedo = photo / shading and back."""

from __future__ import annotations

import pytest
import torch

from facerecon.render.sh import ambient_sh, directional_sh, irradiance
from facerecon.render.uv import rasterize_uv
from facerecon.texture.delight import delight, relight, texel_normals, texel_shading


def _square():
    """A unit square in the z = 0 plane facing -z (towards an OpenCV camera) and its UV layout."""
    verts = torch.tensor([[[0.0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uvs = torch.tensor([[0.0, 0], [0, 1], [1, 1], [1, 0]])
    return verts, faces, uvs


def test_texel_normals_of_a_plane_and_outside() -> None:
    verts, faces, uvs = _square()
    frags = rasterize_uv(uvs, faces, 8)
    n = texel_normals(verts, faces, frags)
    assert n.shape == (1, 3, 8, 8)
    expected = torch.nn.functional.normalize(torch.cross(verts[0, 1] - verts[0, 0], verts[0, 2] - verts[0, 0], dim=0), dim=0)
    torch.testing.assert_close(n[0, :, frags.mask[0]].T, expected.expand(int(frags.mask.sum()), 3))
    half = rasterize_uv(uvs, faces[:1], 8)  # one triangle: the rest of the grid is outside
    n_half = texel_normals(verts, faces[:1], half)
    assert (n_half[0, :, ~half.mask[0]] == 0).all()


def test_shading_matches_irradiance_and_ambient() -> None:
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4, dtype=torch.float64), dim=1)
    sh = directional_sh(torch.tensor([[0.3, -0.2, -1.0]] * 2, dtype=torch.float64), torch.full((2, 3), 1.5, dtype=torch.float64), ambient=0.4)
    s = texel_shading(normals, sh)
    ref = irradiance(normals.permute(0, 2, 3, 1).reshape(2, -1, 3), sh).reshape(2, 4, 4, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(s, ref)
    flat = texel_shading(normals, ambient_sh(0.7, batch_size=2, dtype=torch.float64))
    torch.testing.assert_close(flat, torch.full_like(flat, 0.7))


def test_delight_relight_round_trip_and_clamps() -> None:
    albedo = torch.rand(1, 3, 5, 5, dtype=torch.float64) * 0.8 + 0.1
    shading = torch.rand(1, 3, 5, 5, dtype=torch.float64) + 0.2
    photo = albedo * shading
    photo_clamped = photo.clamp(0, 1)
    back = delight(photo_clamped, shading)
    keep = photo <= 1
    torch.testing.assert_close(back[keep], albedo[keep])
    torch.testing.assert_close(relight(back, shading)[keep], photo[keep])
    # Deep shadow: the shading is clamped at min_shading, the albedo at 1.
    dark = delight(torch.full((1, 3, 1, 1), 0.02), torch.full((1, 3, 1, 1), 0.0), min_shading=0.05)
    torch.testing.assert_close(dark, torch.full((1, 3, 1, 1), 0.4))
    assert delight(torch.ones(1, 3, 1, 1), torch.full((1, 3, 1, 1), 0.1)).max() == 1.0


def test_shading_gradcheck() -> None:
    normals = torch.nn.functional.normalize(torch.randn(1, 3, 2, 2, dtype=torch.float64), dim=1).requires_grad_()
    sh = torch.randn(1, 9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(texel_shading, (normals, sh))


def test_errors() -> None:
    with pytest.raises(TypeError, match="normals"):
        texel_shading([[0.0]], ambient_sh(1.0, batch_size=1))
    with pytest.raises(ValueError, match="sh"):
        texel_shading(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="shading"):
        delight(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="min_shading"):
        delight(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2), min_shading=0.0)
    with pytest.raises(ValueError, match="finite"):
        relight(torch.full((1, 3, 2, 2), float("nan")), torch.ones(1, 3, 2, 2))
    verts, faces, _ = _square()
    with pytest.raises(TypeError, match="uv_fragments"):
        texel_normals(verts, faces, "frags")
