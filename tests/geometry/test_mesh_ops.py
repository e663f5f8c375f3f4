"""Tests of facerecon.geometry.mesh_ops on small known meshes, a sphere and the real ICT face."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from facerecon.geometry.mesh_ops import (
    apply_laplacian,
    boundary_vertices,
    cotangent_laplacian,
    edges,
    face_areas,
    face_normals,
    uniform_laplacian,
    vertex_adjacency,
    vertex_areas,
    vertex_normals,
)
from facerecon.geometry.rotation import axis_angle_to_matrix

D = torch.float64

# A regular tetrahedron with outward (counter-clockwise from outside) faces.
TET_V = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=D)
TET_F = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])


def _sphere(subdivisions: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    return torch.from_numpy(np.asarray(s.vertices, dtype=np.float64)), torch.from_numpy(np.asarray(s.faces, dtype=np.int64))


def _grid(n: int, jitter: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An n x n planar grid in z = 0, interior vertices jittered in the plane, triangles pointing +z."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(n, dtype=D), torch.arange(n, dtype=D), indexing="ij")
    v = torch.stack([xs, ys, torch.zeros_like(xs)], -1).reshape(-1, 3)
    interior = ((xs > 0) & (xs < n - 1) & (ys > 0) & (ys < n - 1)).reshape(-1)
    v[interior, :2] += (torch.rand(int(interior.sum()), 2, generator=g, dtype=D) - 0.5) * jitter
    f = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            f += [[a, b, e], [a, e, d]]
    return v, torch.tensor(f)


def _reference_vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    acc = np.zeros_like(v)
    for k in range(3):
        np.add.at(acc, f[:, k], cross)
    return acc / np.linalg.norm(acc, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------- normals, areas


def test_face_normals_and_areas_known_answers():
    v = torch.tensor([[[0.0, 0, 0], [2, 0, 0], [0, 3, 0], [0, 0, 4]]], dtype=D)
    f = torch.tensor([[0, 1, 2], [0, 3, 1]])
    torch.testing.assert_close(face_normals(v, f), torch.tensor([[[0, 0, 1.0], [0, 1.0, 0]]], dtype=D))  # (0,0,4) x (2,0,0) = +y
    torch.testing.assert_close(face_areas(v, f), torch.tensor([[3.0, 4.0]], dtype=D))
    # Tetrahedron: every face normal points away from the centre.
    n = face_normals(TET_V[None], TET_F)[0]
    centres = TET_V[TET_F].mean(1)
    assert ((n * centres).sum(-1) > 0).all()


def test_vertex_normals_are_area_weighted():
    # A roof: vertex 0 is shared by a big triangle facing +z and a small one facing +x.
    v = torch.tensor([[[0.0, 0, 0], [0, 4, 0], [-4, 0, 0], [0, 0, 1], [0, 1, 0]]], dtype=D)
    f = torch.tensor([[0, 1, 2], [0, 4, 3]])
    cross = torch.tensor([0, 0, 16.0], dtype=D) + torch.tensor([1.0, 0, 0], dtype=D)  # 2 * areas
    expected = cross / cross.norm()
    torch.testing.assert_close(vertex_normals(v, f)[0, 0], expected)
    torch.testing.assert_close(vertex_normals(v, f)[0, 1], torch.tensor([0, 0, 1.0], dtype=D))


def test_sphere_vertex_normals_point_outwards():
    v, f = _sphere(3)
    n = vertex_normals(v[None], f)[0]
    # Area weighting on an irregular icosphere is not exactly radial: within 1.5 degrees, 0.4 on average.
    cos = (n * v / v.norm(dim=-1, keepdim=True)).sum(-1)
    assert float(cos.min()) > np.cos(np.radians(1.5))
    assert float(cos.mean()) > np.cos(np.radians(0.6))


def test_ict_face_normals(ict_neutral):
    v, f = ict_neutral
    n = vertex_normals(v[None], f)[0]
    np.testing.assert_allclose(n.numpy(), _reference_vertex_normals(v.numpy(), f.numpy()), atol=1e-12)
    face = v[:, 2] > v[:, 2].max() - 200  # the front of the head, not eyes/mouth interior
    tip = int(torch.argmax(torch.where(face, v[:, 2], torch.full_like(v[:, 2], -1e9))))
    assert float(n[tip, 2]) > 0.9  # the nose tip (max z) faces the viewer (+z)
    assert boundary_vertices(f, v.shape[0]).any()  # the neck and the eye sockets are open


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_vertex_normals_batched_and_rotation_equivariant(batch):
    v, f = _sphere(2)
    v = v * torch.tensor([1.0, 1.3, 0.7], dtype=D)  # an ellipsoid, so normals are not just positions
    g = torch.Generator().manual_seed(batch)
    r = axis_angle_to_matrix(torch.randn(batch, 3, generator=g, dtype=D))
    vb = v[None] @ r.transpose(-1, -2)
    nb = vertex_normals(vb, f)
    assert nb.shape == (batch, v.shape[0], 3)
    torch.testing.assert_close(nb, vertex_normals(v[None], f) @ r.transpose(-1, -2))


def test_isolated_vertex_gets_zero_normal_and_input_is_not_modified():
    v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]]], dtype=D)
    f = torch.tensor([[0, 1, 2]])
    copy = v.clone()
    n = vertex_normals(v, f)
    assert n[0, 3].tolist() == [0.0, 0.0, 0.0]
    assert torch.equal(v, copy)


def test_gradcheck_normals():
    v = (TET_V + 0.1 * torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=D))[None]
    v = torch.cat([v, v * 1.5]).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: vertex_normals(x, TET_F), (v,))
    assert torch.autograd.gradcheck(lambda x: face_normals(x, TET_F), (v,))
    assert torch.autograd.gradcheck(lambda x: face_areas(x, TET_F), (v,))


def test_vertex_areas_sum_to_surface_area():
    v, f = _sphere(3)
    a = vertex_areas(v, f)
    torch.testing.assert_close(a.sum(), face_areas(v[None], f).sum())
    assert abs(float(a.sum()) / (4 * np.pi) - 1) < 0.01  # an inscribed icosphere is slightly smaller


# ------------------------------------------------------------------------------------- topology


def test_edges_and_euler_characteristic():
    e = edges(TET_F)
    assert e.shape == (6, 2)
    assert (e[:, 0] < e[:, 1]).all()
    v, f = _sphere(2)
    assert v.shape[0] - edges(f).shape[0] + f.shape[0] == 2
    assert not boundary_vertices(f, v.shape[0]).any()
    # Two triangles making a square: all four vertices are on the border.
    assert boundary_vertices(torch.tensor([[0, 1, 2], [0, 2, 3]]), 4).tolist() == [True] * 4


def test_adjacency_is_symmetric_with_degrees():
    a = vertex_adjacency(TET_F, 4, dtype=D).to_dense()
    torch.testing.assert_close(a, torch.ones(4, 4, dtype=D) - torch.eye(4, dtype=D))
    _, f = _grid(4)
    a = vertex_adjacency(f, 16).to_dense()
    assert torch.equal(a, a.T)
    assert int(a[5].sum()) == 6  # an interior vertex of the triangulated grid has 6 neighbours


# ------------------------------------------------------------------------------------- Laplacians


def test_uniform_laplacian_known_answers():
    lap = uniform_laplacian(TET_F, 4, dtype=D)
    x = torch.tensor([[[1.0], [2.0], [3.0], [6.0]]], dtype=D)
    # x_i - mean of the other three
    expected = torch.tensor([[[1 - 11 / 3], [2 - 10 / 3], [3 - 3.0], [6 - 2.0]]], dtype=D)
    torch.testing.assert_close(apply_laplacian(lap, x), expected)
    comb = uniform_laplacian(TET_F, 4, normalized=False, dtype=D).to_dense()
    torch.testing.assert_close(comb, 4 * torch.eye(4, dtype=D) - torch.ones(4, 4, dtype=D))
    # An isolated vertex (index 4) gets an empty row.
    assert float(uniform_laplacian(TET_F, 5).to_dense()[4].abs().sum()) == 0.0


def test_cotangent_laplacian_is_linear_precise_on_a_jittered_plane():
    v, f = _grid(7, jitter=0.5, seed=2)
    lap = cotangent_laplacian(v, f)
    dense = lap.to_dense()
    torch.testing.assert_close(dense, dense.T)
    torch.testing.assert_close(dense.sum(1), torch.zeros(49, dtype=D), rtol=0, atol=1e-12)
    linear = (v @ torch.tensor([[0.3, -1.2, 0.0], [2.0, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=D).T)[None]
    out = apply_laplacian(lap, linear)[0]
    interior = ~boundary_vertices(f, 49)
    torch.testing.assert_close(out[interior], torch.zeros_like(out[interior]), rtol=0, atol=1e-12)
    assert float(out[~interior].abs().max()) > 0.1  # boundary rows are not zero: the test can see a difference


def test_cotangent_laplacian_known_triangle():
    # Right isosceles triangle: angles 90 (at 0), 45, 45. Edge (1, 2) is opposite the right angle: cot = 0.
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=D)
    dense = cotangent_laplacian(v, torch.tensor([[0, 1, 2]])).to_dense()
    expected = torch.tensor([[1.0, -0.5, -0.5], [-0.5, 0.5, 0.0], [-0.5, 0.0, 0.5]], dtype=D)
    torch.testing.assert_close(dense, expected)


def test_cotangent_laplacian_gives_mean_curvature_normal_on_a_sphere():
    v, f = _sphere(4)
    radius = 2.0
    v = v * radius
    k = apply_laplacian(cotangent_laplacian(v, f), v[None])[0] / vertex_areas(v, f)[:, None]
    # (L X)_i / A_i = 2 H n = (2 / r) * outward normal.
    expected = 2.0 / radius * v / v.norm(dim=-1, keepdim=True)
    err = (k - expected).norm(dim=-1) / (2.0 / radius)
    # Barycentric areas are least accurate at the 12 valence-5 vertices (15 % there), elsewhere < 1 %.
    assert float(err.mean()) < 0.01 and float(err.max()) < 0.2
    assert float(err.quantile(0.95)) < 0.01


def test_apply_laplacian_batched_gradcheck_and_dense():
    lap = uniform_laplacian(TET_F, 4, dtype=D)
    x = torch.randn(3, 4, 2, dtype=D, requires_grad=True)
    out = apply_laplacian(lap, x)
    assert out.shape == (3, 4, 2)
    torch.testing.assert_close(out, torch.einsum("ij,bjc->bic", lap.to_dense(), x))
    torch.testing.assert_close(apply_laplacian(lap.to_dense(), x), out)
    assert torch.autograd.gradcheck(lambda y: apply_laplacian(lap, y), (x,))


# ------------------------------------------------------------------------------------- errors


def test_errors():
    v = TET_V[None]
    with pytest.raises(ValueError, match="faces.*indices"):
        vertex_normals(v, torch.tensor([[0, 1, 4]]))
    with pytest.raises(ValueError, match="faces.*indices"):
        face_normals(v, torch.tensor([[0, -1, 2]]))
    with pytest.raises(TypeError, match="faces.*integer"):
        vertex_normals(v, TET_F.double())
    with pytest.raises(ValueError, match="faces"):
        vertex_normals(v, TET_F[:, :2])
    with pytest.raises(TypeError, match="faces"):
        edges(TET_F.numpy().tolist())
    with pytest.raises(ValueError, match="vertices"):
        vertex_normals(TET_V, TET_F)
    with pytest.raises(TypeError, match="vertices.*floating"):
        face_areas(v.long(), TET_F)
    with pytest.raises(ValueError, match="vertices.*NaN"):
        vertex_normals(v * float("nan"), TET_F)
    with pytest.raises(ValueError, match="vertices"):
        cotangent_laplacian(v, TET_F)
    with pytest.raises(ValueError, match="vertices"):
        vertex_areas(v, TET_F)
    with pytest.raises(ValueError, match="num_vertices"):
        uniform_laplacian(TET_F, 0)
    with pytest.raises(ValueError, match="faces.*indices"):
        vertex_adjacency(TET_F, 3)
    with pytest.raises(TypeError, match="num_vertices"):
        boundary_vertices(TET_F, 4.0)
    lap = uniform_laplacian(TET_F, 4, dtype=D)
    with pytest.raises(ValueError, match="values"):
        apply_laplacian(lap, torch.zeros(1, 5, 3, dtype=D))
    with pytest.raises(TypeError, match="values.*dtype"):
        apply_laplacian(lap, torch.zeros(1, 4, 3))
    with pytest.raises(TypeError, match="laplacian"):
        apply_laplacian(None, torch.zeros(1, 4, 3))
