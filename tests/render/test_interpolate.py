"""Differentiable barycentrics and attribute interpolation: known answers, gradcheck, errors."""

from __future__ import annotations

import pytest
import torch

from facerecon.render.interpolate import barycentrics, covered_pixels, interpolate, interpolate_covered
from facerecon.render.rasterize import rasterize

# Two triangles in camera space (a folded quad), projected; no pixel centre within 1e-3 px of an edge.
CAM = torch.tensor(
    [[[-30.0, -25.0, 200.0], [35.0, -20.0, 260.0], [30.0, 28.0, 230.0], [-28.0, 24.0, 180.0]]], dtype=torch.float64
)
FACES = torch.tensor([[0, 1, 2], [0, 2, 3]])
FOCAL, CX, CY = 40.0, 5.3, 4.7
SIZE = (10, 11)


def _screen(project):
    return project(CAM, FOCAL, CX, CY)


def test_barycentrics_match_the_rasterizer(pinhole):
    sv = _screen(pinhole)
    frags = rasterize(sv, FACES, SIZE)
    assert frags.mask.sum() > 40
    bary, depth = barycentrics(sv, FACES, frags, return_depth=True)
    assert torch.allclose(bary, frags.bary, atol=1e-12)
    assert torch.allclose(depth, frags.depth, rtol=1e-12)


def test_interpolated_positions_lie_on_pixel_rays(pinhole):
    sv = _screen(pinhole)
    frags = rasterize(sv, FACES, SIZE)
    point = interpolate(CAM, FACES, frags)  # (1, H, W, 3) camera-space surface points
    _, _, y, x = covered_pixels(frags)
    p = point[0, y, x]
    reproj = pinhole(p, FOCAL, CX, CY)
    assert torch.allclose(reproj[:, 0], x.double(), atol=1e-9)
    assert torch.allclose(reproj[:, 1], y.double(), atol=1e-9)
    assert torch.all(point[0][~frags.mask[0]] == 0)


def test_constant_and_shared_attributes(pinhole):
    sv = _screen(pinhole).expand(2, -1, -1)
    frags = rasterize(sv, FACES, SIZE)
    colour = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64).expand(4, 3)
    out = interpolate(colour, FACES, frags)
    assert out.shape == (2, *SIZE, 3)
    assert torch.allclose(out[frags.mask], colour[0].expand(int(frags.mask.sum()), 3))
    batched = interpolate(colour[None].expand(2, -1, -1), FACES, frags)
    assert torch.equal(out, batched)


def test_per_corner_attributes_with_other_faces(pinhole):
    # UV-style data: 6 corner values addressed by their own face indices.
    sv = _screen(pinhole)
    frags = rasterize(sv, FACES, SIZE)
    corner_values = torch.arange(6, dtype=torch.float64)[:, None]
    corner_faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    out = interpolate(corner_values, corner_faces, frags)
    f = frags.face_index[frags.mask]
    b = frags.bary[frags.mask]
    expected = (b * corner_values[corner_faces[f], 0]).sum(-1)
    assert torch.allclose(out[frags.mask][:, 0], expected)


def test_gradcheck_attributes_and_positions(pinhole):
    sv = _screen(pinhole).clone().requires_grad_(True)
    with torch.no_grad():
        frags = rasterize(sv, FACES, SIZE)
    attrs = torch.rand(1, 4, 2, dtype=torch.float64, requires_grad=True)

    def fn(positions, attributes):
        return interpolate(attributes, FACES, frags, barycentrics(positions, FACES, frags))

    assert torch.autograd.gradcheck(fn, (sv, attrs), eps=1e-6, atol=1e-7)


def test_covered_values_and_their_gradients(pinhole):
    """interpolate_covered is interpolate's image at the mask (batched and shared attributes), gradients too."""
    sv = _screen(pinhole).expand(2, -1, -1).clone()
    sv[1, :, 0] += 0.7  # the second image differs
    frags = rasterize(sv, FACES, SIZE)
    flat, batch, faces, max_face = frags.covered
    assert torch.equal(flat, covered_pixels(frags)[0]) and max_face == int(frags.face_index.max())
    assert torch.equal(faces, frags.face_index[frags.mask]) and torch.equal(batch, torch.nonzero(frags.mask)[:, 0])
    for attrs in (torch.rand(4, 3, dtype=torch.float64), torch.rand(2, 4, 3, dtype=torch.float64)):
        assert torch.equal(interpolate_covered(attrs, FACES, frags), interpolate(attrs, FACES, frags)[frags.mask])
    attrs = torch.rand(2, 4, 2, dtype=torch.float64, requires_grad=True)
    positions = sv.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p, a: interpolate_covered(a, FACES, frags, barycentrics(p, FACES, frags)), (positions, attrs), eps=1e-6, atol=1e-7
    )


def test_gradcheck_depth_and_affine_mode(pinhole):
    sv = _screen(pinhole).clone().requires_grad_(True)
    with torch.no_grad():
        frags = rasterize(sv, FACES, SIZE)
        affine = rasterize(sv, FACES, SIZE, perspective_correct=False)
    assert torch.autograd.gradcheck(lambda p: barycentrics(p, FACES, frags, return_depth=True)[1], (sv,))
    assert torch.autograd.gradcheck(
        lambda p: barycentrics(p, FACES, affine, perspective_correct=False), (sv,), atol=1e-7
    )


def test_gradients_flow_through_rasterize(pinhole):
    sv = _screen(pinhole).clone().requires_grad_(True)
    frags = rasterize(sv, FACES, SIZE)
    colour = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    interpolate(colour, FACES, frags).square().sum().backward()
    assert sv.grad is not None and sv.grad.abs().sum() > 0
    assert colour.grad is not None and colour.grad.abs().sum() > 0


def test_empty_fragments(pinhole):
    sv = _screen(pinhole)
    frags = rasterize(sv + torch.tensor([1000.0, 0.0, 0.0], dtype=torch.float64), FACES, SIZE)
    assert not frags.mask.any()
    assert torch.all(interpolate(torch.ones(4, 3, dtype=torch.float64), FACES, frags) == 0)
    assert torch.all(barycentrics(sv, FACES, frags) == 0)


def test_errors(pinhole):
    sv = _screen(pinhole)
    frags = rasterize(sv, FACES, SIZE)
    with pytest.raises(TypeError, match="fragments"):
        interpolate(torch.ones(4, 3), FACES, "fragments")
    with pytest.raises(ValueError, match="attributes"):
        interpolate(torch.ones(3, 4, 3), FACES, frags)  # batch 3 vs 1
    with pytest.raises(TypeError, match="attributes"):
        interpolate(torch.ones(4, 3, dtype=torch.int64), FACES, frags)
    with pytest.raises(ValueError, match="attributes"):
        interpolate(torch.full((4, 3), float("nan")), FACES, frags)
    with pytest.raises(ValueError, match="faces"):
        interpolate(torch.ones(3, 3), FACES, frags)  # index 3 out of range
    with pytest.raises(ValueError, match="fragments"):
        interpolate(torch.ones(4, 3), FACES[:1], frags)  # rasterized with 2 faces
    with pytest.raises(ValueError, match="bary"):
        interpolate(torch.ones(4, 3, dtype=torch.float64), FACES, frags, torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="screen_vertices"):
        barycentrics(sv.expand(2, -1, -1), FACES, frags)
    with pytest.raises(ValueError, match="screen_vertices"):
        barycentrics(sv * float("nan"), FACES, frags)
