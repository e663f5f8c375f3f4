"""The rasterizer: pixel-centre convention, a brute-force reference, occlusion, perspective, near plane, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerecon.render.fragments import Fragments
from facerecon.render.rasterize import rasterize, rasterize_reference
from facerecon.render.visibility import face_orientation


def _tri(points, z=1.0, dtype=torch.float64):
    v = torch.tensor([[p[0], p[1], z] for p in points], dtype=dtype)
    return v[None]


FACE0 = torch.tensor([[0, 1, 2]])


def test_pixel_centre_convention_exact_cover():
    # Pixel (x, y) is covered when its centre (x, y) is inside the triangle or on an edge.
    frags = rasterize(_tri([(0, 0), (4, 0), (0, 4)]), FACE0, (6, 7))
    ys, xs = np.mgrid[0:6, 0:7]
    expected = (xs + ys <= 4)
    assert np.array_equal(frags.mask[0].numpy(), expected)
    assert frags.face_index[0, 1, 1] == 0 and frags.face_index[0, 5, 5] == -1
    # Barycentrics at pixel (1, 2): weights of corners (0,0), (4,0), (0,4) = (1/4, 1/4, 1/2).
    assert torch.allclose(frags.bary[0, 2, 1], torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64))
    assert torch.all(frags.depth[0][frags.mask[0]] == 1.0)
    assert torch.all(frags.bary[0][~frags.mask[0]] == 0) and torch.all(frags.depth[0][~frags.mask[0]] == 0)


def test_pixel_centre_half_pixel_edges():
    # A rectangle u in [0.6, 2.4], v in [-1, 10] covers columns 1 and 2 only (centres at integers).
    v = torch.tensor([[[0.6, -1.0, 2.0], [2.4, -1.0, 2.0], [2.4, 10.0, 2.0], [0.6, 10.0, 2.0]]])
    frags = rasterize(v, torch.tensor([[0, 1, 2], [0, 2, 3]]), (4, 4))
    assert frags.mask[0].sum(0).tolist() == [0, 4, 4, 0]


def _random_scene(seed: int, batch: int = 2, n_verts: int = 30, n_faces: int = 14):
    gen = torch.Generator().manual_seed(seed)
    sv = torch.rand(batch, n_verts, 3, generator=gen, dtype=torch.float64)
    sv = sv * torch.tensor([44.0, 34.0, 4.0], dtype=torch.float64) + torch.tensor([-6.0, -5.0, -0.8], dtype=torch.float64)
    faces = torch.randint(0, n_verts, (n_faces, 3), generator=gen)
    return sv, faces


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_reference(seed):
    sv, faces = _random_scene(seed)
    fast = rasterize(sv, faces, (25, 32), near=0.1)
    ref = rasterize_reference(sv, faces, (25, 32), near=0.1)
    assert fast.mask.any() and (~fast.mask).any()
    assert torch.equal(fast.mask, ref.mask)
    differ = fast.face_index != ref.face_index
    # Only exact depth ties (two triangles through the same point) may pick different faces.
    assert torch.allclose(fast.depth[differ], ref.depth[differ], rtol=1e-12, atol=0)
    same = ~differ
    assert torch.allclose(fast.bary[same], ref.bary[same], atol=1e-9)
    assert torch.allclose(fast.depth, ref.depth, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(fast.bary).all() and torch.isfinite(fast.depth).all()


def test_overlapping_triangles_nearest_wins_in_any_order():
    # Three big triangles covering the whole 8x8 image at depths 3, 1, 2: the one at depth 1 is seen.
    corners = [(-20, -20), (60, -20), (-20, 60)]
    depths = [3.0, 1.0, 2.0]
    verts = torch.cat([_tri(corners, z) for z in depths], dim=1)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    for perm in ([0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]):
        frags = rasterize(verts, faces[perm], (8, 8))
        assert frags.mask.all()
        assert torch.all(faces[perm][frags.face_index[0]][..., 0] == 3)
        assert torch.allclose(frags.depth, torch.ones_like(frags.depth))


def test_partial_overlap_depth_order():
    # A near small triangle in front of a far big one: inside the small one it wins, elsewhere the big one.
    big = _tri([(-5, -5), (30, -5), (-5, 30)], 10.0)
    small = _tri([(2, 2), (6, 2), (2, 6)], 5.0)
    verts = torch.cat([big, small], dim=1)
    frags = rasterize(verts, torch.tensor([[3, 4, 5], [0, 1, 2]]), (10, 10))
    ys, xs = np.mgrid[0:10, 0:10]
    in_small = (xs >= 2) & (ys >= 2) & (xs + ys <= 8)
    assert np.array_equal(frags.face_index[0].numpy() == 0, in_small)
    assert torch.all(frags.depth[0][torch.from_numpy(in_small)] == 5.0)


def test_equal_depth_tie_goes_to_lower_face_index():
    verts = torch.cat([_tri([(0, 0), (9, 0), (0, 9)], 2.0)] * 2, dim=1)
    frags = rasterize(verts, torch.tensor([[3, 4, 5], [0, 1, 2]]), (5, 5))
    assert torch.all(frags.face_index[frags.mask] == 0)


def test_perspective_correct_barycentrics_and_depth(pinhole):
    project = pinhole
    # A tilted triangle in camera space: the interpolated 3D point of each pixel lies on that pixel's ray.
    cam = torch.tensor([[[-40.0, -30.0, 300.0], [50.0, -20.0, 600.0], [-10.0, 45.0, 400.0]]], dtype=torch.float64)
    focal, cx, cy = 150.0, 31.5, 23.5
    frags = rasterize(project(cam, focal, cx, cy), FACE0, (48, 64))
    mask = frags.mask[0]
    assert mask.sum() > 300
    point = (frags.bary[0][mask][:, :, None] * cam[0][None]).sum(1)  # (N, 3)
    ys, xs = torch.nonzero(mask, as_tuple=True)
    reproj = project(point, focal, cx, cy)
    assert torch.allclose(reproj[:, 0], xs.double(), atol=1e-9)
    assert torch.allclose(reproj[:, 1], ys.double(), atol=1e-9)
    assert torch.allclose(frags.depth[0][mask], point[:, 2], rtol=1e-12)
    # Screen-space-linear barycentrics would be wrong here: they differ by more than 1%.
    lin = rasterize(project(cam, focal, cx, cy), FACE0, (48, 64), perspective_correct=False)
    assert (lin.bary[0][mask] - frags.bary[0][mask]).abs().max() > 0.01


def test_affine_mode_is_linear_in_screen_space():
    verts = torch.tensor([[[0.0, 0.0, 1.0], [8.0, 0.0, 3.0], [0.0, 8.0, 5.0]]], dtype=torch.float64)
    frags = rasterize(verts, FACE0, (9, 9), perspective_correct=False)
    # Depth is the plane z = 1 + x / 4 + y / 2.
    ys, xs = torch.nonzero(frags.mask[0], as_tuple=True)
    assert torch.allclose(frags.depth[0, ys, xs], 1 + xs.double() / 4 + ys.double() / 2)


def test_near_plane_drops_triangles_without_nan():
    front = _tri([(0, 0), (9, 0), (0, 9)], 2.0)
    crossing = torch.tensor([[[0.0, 0.0, 1.0], [9.0, 0.0, 1.0], [0.0, 9.0, -1.0]]], dtype=torch.float64)
    frags = rasterize(crossing, FACE0, (10, 10))
    assert not frags.mask.any()
    frags = rasterize(front, FACE0, (10, 10), near=2.5)
    assert not frags.mask.any()
    frags = rasterize(torch.cat([front, crossing], 1), torch.tensor([[3, 4, 5], [0, 1, 2]]), (10, 10))
    assert torch.all(frags.face_index[frags.mask] == 1)
    # Camera placeholders for points behind (huge u, v; z <= 0) are finite and give no NaN.
    behind = torch.tensor([[[1e9, -1e9, -5.0], [2.0, 2.0, 3.0], [8.0, 2.0, 3.0]]], dtype=torch.float64)
    frags = rasterize(behind, FACE0, (10, 10))
    assert not frags.mask.any() and torch.isfinite(frags.bary).all()


def test_far_away_and_offscreen_triangles():
    huge = _tri([(-1e7, -1e7), (3e7, -1e7), (-1e7, 3e7)], 3.0)
    frags = rasterize(huge, FACE0, (6, 5))
    assert frags.mask.all() and torch.isfinite(frags.bary).all()
    off = _tri([(100, 100), (110, 100), (100, 110)], 3.0)
    assert not rasterize(off, FACE0, (6, 5)).mask.any()


def test_degenerate_triangles_skipped():
    verts = torch.tensor(
        [[[0.0, 0.0, 1.0], [5.0, 5.0, 1.0], [9.0, 9.0, 1.0], [3.0, 3.0, 1.0], [0, 8.0, 1], [8, 8, 1]]],
        dtype=torch.float64,
    )
    faces = torch.tensor([[0, 1, 2], [3, 3, 3], [0, 1, 1]])  # collinear, a point, two equal corners
    assert not rasterize(verts, faces, (10, 10)).mask.any()
    frags = rasterize(verts, torch.cat([faces, torch.tensor([[0, 5, 4]])]), (10, 10))
    assert torch.all(frags.face_index[frags.mask] == 3) and frags.mask.sum() > 30


def test_empty_meshes():
    frags = rasterize(torch.zeros(2, 0, 3), torch.zeros(0, 3, dtype=torch.int64), (4, 5))
    assert frags.face_index.shape == (2, 4, 5) and torch.all(frags.face_index == -1)
    assert frags.bary.shape == (2, 4, 5, 3) and frags.depth.shape == (2, 4, 5) and not frags.mask.any()
    frags = rasterize(torch.ones(1, 3, 3), torch.zeros(0, 3, dtype=torch.int64), (4, 5))
    assert not frags.mask.any()


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_batches_equal_single_images(batch):
    sv, faces = _random_scene(7, batch=batch)
    frags = rasterize(sv, faces, (20, 24))
    assert frags.batch_size == batch and frags.image_size == (20, 24)
    for b in range(batch):
        single = rasterize(sv[b : b + 1], faces, (20, 24))
        assert torch.equal(single.face_index[0], frags.face_index[b])
        assert torch.equal(single.bary[0], frags.bary[b])


def test_dtypes_and_fragments_methods():
    sv, faces = _random_scene(3, batch=1)
    f32 = rasterize(sv.float(), faces, (20, 24))
    f64 = rasterize(sv, faces, (20, 24))
    assert f32.bary.dtype == torch.float32 and f64.bary.dtype == torch.float64
    assert f32.face_index.dtype == torch.int64 and f32.mask.dtype == torch.bool
    assert torch.equal(f32.mask, f64.mask)
    assert torch.allclose(f32.bary.double(), f64.bary, atol=1e-5)
    moved = f64.to(dtype=torch.float32)
    assert isinstance(moved, Fragments) and moved.bary.dtype == torch.float32
    assert f64.face_index.dtype == moved.face_index.dtype
    assert torch.equal(sv, _random_scene(3, batch=1)[0])  # input untouched


def test_differentiable_fragments_when_vertices_require_grad():
    sv, faces = _random_scene(5, batch=1)
    sv = sv.clone().requires_grad_(True)
    frags = rasterize(sv, faces, (20, 24))
    assert frags.bary.requires_grad and frags.depth.requires_grad and not frags.mask.requires_grad
    plain = rasterize(sv.detach(), faces, (20, 24))
    assert torch.allclose(frags.bary.detach(), plain.bary, atol=1e-10)
    assert torch.allclose(frags.depth.detach(), plain.depth, rtol=1e-10)
    frags.depth.sum().backward()
    assert sv.grad is not None and torch.isfinite(sv.grad).all() and sv.grad[..., 2].abs().sum() > 0
    with torch.no_grad():
        assert not rasterize(sv, faces, (20, 24)).bary.requires_grad


@pytest.mark.parametrize(
    "vertices, faces, size, error",
    [
        (torch.zeros(4, 3), FACE0, (4, 4), ValueError),  # no batch dimension
        (torch.zeros(1, 4, 2), FACE0, (4, 4), ValueError),
        (torch.zeros(1, 4, 3, dtype=torch.int64), FACE0, (4, 4), TypeError),
        (np.zeros((1, 4, 3)), FACE0, (4, 4), TypeError),
        (torch.zeros(1, 4, 3), FACE0.float(), (4, 4), TypeError),
        (torch.zeros(1, 4, 3), torch.tensor([[0, 1, 4]]), (4, 4), ValueError),
        (torch.zeros(1, 4, 3), torch.tensor([[0, -1, 2]]), (4, 4), ValueError),
        (torch.zeros(1, 4, 3), torch.tensor([0, 1, 2]), (4, 4), ValueError),
        (torch.zeros(1, 4, 3), FACE0, (0, 4), ValueError),
        (torch.zeros(1, 4, 3), FACE0, (4,), TypeError),
        (torch.zeros(1, 4, 3), FACE0, (4.0, 4), TypeError),
        (torch.zeros(1, 4, 3), FACE0, "44", TypeError),
    ],
)
def test_bad_inputs(vertices, faces, size, error):
    with pytest.raises(error):
        rasterize(vertices, faces, size)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_vertices_raise_clear_error(bad):
    v = _tri([(0, 0), (4, 0), (0, 4)]).clone()
    v[0, 1, 0] = bad
    with pytest.raises(ValueError, match="screen_vertices: expected finite values"):
        rasterize(v, FACE0, (5, 5))


@pytest.mark.parametrize("near", [0.0, -1.0, math.nan, "1"])
def test_bad_near(near):
    with pytest.raises(ValueError, match="near"):
        rasterize(_tri([(0, 0), (4, 0), (0, 4)]), FACE0, (5, 5), near=near)


def test_jit_helper_falls_back_without_a_cache(monkeypatch):
    import numba

    from facerecon.render import _jit

    real = numba.njit

    def refuse_cache(*args, **kwargs):
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", refuse_cache)

    @_jit.njit_cached()
    def add(a, b):
        return a + b

    assert add(2, 3) == 5


# ------------------------------------------------------------------------------------------- the ICT face


@pytest.fixture(scope="module")
def face_mesh(face_model):
    return face_model.mean.double(), face_model.submesh("face").triangles


def test_ict_frontal_face_is_left_right_symmetric(face_mesh, view_face):
    face_view = view_face
    mean, tri = face_mesh
    sv, _ = face_view(mean, tri, 256)
    frags = rasterize(sv, tri, (256, 256))
    mask = frags.mask[0]
    mirrored = mask.flip(1)
    assert (mask ^ mirrored).sum() <= 0.002 * mask.sum()
    both = mask & mirrored
    depth_diff = (frags.depth[0] - frags.depth[0].flip(1)).abs()[both]
    assert depth_diff.median() < 0.05  # mm
    # The face looks at the camera: the nose tip is the nearest point, near the middle column.
    nearest = torch.nonzero(frags.depth[0] == frags.depth[0][mask].min())[0]
    assert abs(nearest[1].item() - 127.5) <= 2


def test_ict_silhouette_area_is_stable(face_mesh, view_face):
    face_view = view_face
    mean, tri = face_mesh
    fractions = []
    for size in (128, 256, 384):
        sv, _ = face_view(mean, tri, size)
        frags = rasterize(sv, tri, (size, size))
        fractions.append(frags.mask.double().mean().item())
    assert max(fractions) - min(fractions) < 0.005 * max(fractions)
    # Bounds from the projected triangles: the silhouette covers at most the front-facing area and at
    # least the net signed area (front minus back-facing, i.e. the area inside the boundary).
    sv, _ = face_view(mean, tri, 384)
    det = face_orientation(sv, tri)[0]
    p = sv[0, :, :2]
    a, b = p[tri[:, 1]] - p[tri[:, 0]], p[tri[:, 2]] - p[tri[:, 0]]
    area = (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).abs() / 2 / 384**2
    front, back = area[det < 0].sum().item(), area[det > 0].sum().item()
    assert front - back < fractions[-1] < front
    assert 0.25 < fractions[-1] < 0.45
