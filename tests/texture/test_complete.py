"""UV completion: the mirror map in UV space on the real ICT face, the membrane fill, symmetric completion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.render.uv import position_map, rasterize_uv
from facerecon.texture.complete import (
    border_ramp,
    complete_albedo,
    membrane_fill,
    mirror_sample,
    uv_mirror,
)

SIZE = 256


@pytest.fixture(scope="module")
def layout(face_model):
    face = face_model.submesh("face")
    frags = rasterize_uv(face_model.uvs, face.uv_triangles, SIZE)
    mirror = uv_mirror(face_model.uvs, face.uv_triangles, face.triangles, face_model.mirror[: face.vertex_count], frags)
    positions = position_map(face_model.mean[None, : face.vertex_count], face.triangles, frags)[0].permute(1, 2, 0).numpy()
    return frags, mirror, positions


def test_mirror_covers_the_layout_and_is_an_involution(layout) -> None:
    frags, mirror, _ = layout
    covered = frags.mask[0].numpy()
    assert mirror.coords.shape == (SIZE, SIZE, 2) and mirror.valid.shape == (SIZE, SIZE)
    assert not (mirror.valid & ~covered).any()
    assert mirror.valid.sum() > 0.97 * covered.sum()
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    back = mirror_sample(np.stack([cols, rows], -1), mirror)  # where the mirror's mirror lands
    twice = mirror_sample(back, mirror)
    inner = mirror.valid & (border_ramp(covered.astype(np.float32), 3.0) >= 1)
    error = np.linalg.norm(twice - np.stack([cols, rows], -1), axis=-1)[inner]
    assert np.median(error) < 0.5 and np.quantile(error, 0.95) < 2.0


def test_mirrored_point_is_the_mirrored_surface_point(layout) -> None:
    """On the (nearly symmetric) mean face, the mirrored texel's position is (-x, y, z)."""
    frags, mirror, positions = layout
    mirrored = mirror_sample(positions, mirror)
    inner = mirror.valid & (border_ramp(frags.mask[0].numpy().astype(np.float32), 3.0) >= 1)
    expected = positions * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    error = np.linalg.norm(mirrored - expected, axis=-1)[inner]  # mm
    assert np.median(error) < 0.5 and np.quantile(error, 0.95) < 2.0
    # Both sides are seen: texels left of the midline map to texels right of it.
    far = inner & (np.abs(positions[..., 0]) > 10)
    assert (np.sign(mirrored[far, 0]) == -np.sign(positions[far, 0])).all()


def test_membrane_fill_known_answers() -> None:
    values = np.zeros((1, 5, 1), np.float32)
    values[0, 0], values[0, 4] = 0.0, 4.0
    known = np.array([[True, False, False, False, True]])
    domain = np.ones((1, 5), bool)
    filled = membrane_fill(values, known, domain, screening=0.0)
    np.testing.assert_allclose(filled[0, :, 0], [0, 1, 2, 3, 4], atol=1e-5)  # harmonic in 1D = linear
    # A component with no known texel decays to 0; texels outside the domain are 0.
    domain2 = np.array([[True, True, False, True, True]])
    known2 = np.array([[True, False, False, False, False]])
    values2 = np.full((1, 5, 2), 3.0, np.float32)
    out = membrane_fill(values2, known2, domain2)
    np.testing.assert_allclose(out[0, 0], [3, 3])
    assert abs(out[0, 1, 0] - 3.0) < 1e-2  # next to the known texel, nearly its value (weak screening)
    np.testing.assert_allclose(out[0, 2:], 0.0, atol=1e-6)


def test_symmetric_face_is_completed_from_one_side(layout) -> None:
    frags, mirror, positions = layout
    covered = frags.mask[0].numpy()
    x, y = positions[..., 0], positions[..., 1]
    truth = np.stack([0.5 + 0.3 * np.cos(np.abs(x) / 15), 0.4 + 0.2 * np.sin(y / 20), 0.3 + 0.004 * np.abs(x)], -1)
    truth = (truth * covered[..., None]).astype(np.float32)
    weight = ((x < -2) & covered).astype(np.float32)  # the photo sees only the subject's right side
    fitted = np.full_like(truth, 0.5)
    observed = truth * weight[..., None]
    result = complete_albedo(observed, weight, fitted, covered, mirror)
    hidden = covered & (x > 8) & mirror.valid & (border_ramp(covered.astype(np.float32), 6.0) >= 1)
    error = np.abs(result.albedo - truth)[hidden]
    assert error.mean() < 0.01, error.mean()
    assert result.mirror_share[hidden].mean() > 0.95 and result.weight[hidden].mean() > 0.9
    # Without the mirror the hidden side is the fitted albedo plus a smooth offset, not the truth.
    alone = complete_albedo(observed, weight, fitted, covered, None)
    assert np.abs(alone.albedo - truth)[hidden].mean() > 3 * error.mean()
    assert (alone.albedo[~covered] == 0).all() and np.isfinite(alone.albedo).all()


def test_fill_meets_the_observed_side_without_a_seam(layout) -> None:
    """Fitted albedo darker than the photo: the filled side is lifted by the membrane offset."""
    frags, _, positions = layout
    covered = frags.mask[0].numpy()
    x = positions[..., 0]
    weight = ((x < 0) & covered).astype(np.float32)
    observed = np.full((SIZE, SIZE, 3), 0.6, np.float32)
    fitted = np.full((SIZE, SIZE, 3), 0.4, np.float32)
    result = complete_albedo(observed, weight, fitted, covered, None)
    near = covered & (x > 0) & (x < 5)
    assert np.abs(result.albedo[near] - 0.6).max() < 0.05  # continues the observed value across the border


def test_errors(layout) -> None:
    frags, mirror, _ = layout
    with pytest.raises(ValueError, match="albedo"):
        complete_albedo(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4, 3)), np.ones((4, 4), bool), None)
    with pytest.raises(ValueError, match="weight"):
        complete_albedo(np.zeros((4, 4, 3)), np.zeros((3, 4)), np.zeros((4, 4, 3)), np.ones((4, 4), bool), None)
    with pytest.raises(ValueError, match="mirror"):
        complete_albedo(np.zeros((4, 4, 3)), np.zeros((4, 4)), np.zeros((4, 4, 3)), np.ones((4, 4), bool), mirror)
    with pytest.raises(ValueError, match="finite"):
        complete_albedo(np.full((4, 4, 3), np.nan), np.zeros((4, 4)), np.zeros((4, 4, 3)), np.ones((4, 4), bool), None, fill_size=8)
    with pytest.raises(ValueError, match="image"):
        mirror_sample(np.zeros((3, 3)), mirror)
    with pytest.raises(ValueError, match="known"):
        membrane_fill(np.zeros((2, 2, 1)), np.zeros((3, 3), bool), np.ones((2, 2), bool))
    with pytest.raises(TypeError, match="uv_fragments"):
        uv_mirror(torch.zeros(3, 2), torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), torch.zeros(3, dtype=torch.long), None)
    with pytest.raises(ValueError, match="mirror map"):
        uv_mirror(torch.zeros(3, 2), torch.zeros(1, 3, dtype=torch.long), torch.tensor([[0, 1, 5]]), torch.zeros(3, dtype=torch.long), frags)
