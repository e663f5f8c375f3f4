"""Exact point-to-triangle distance, the NoW crop, landmark + ICP alignment and the NoW error on the ICT face."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.eval import (
    NOW_LANDMARKS_IBUG68,
    align_mesh_to_scan,
    now_face_crop,
    now_landmark_vertices,
    now_scan_error,
    point_mesh_distance,
)
from facerecon.eval.mesh_metrics import closest_points_on_triangles

RNG = np.random.default_rng(3)


def _helpers():
    import importlib.util
    import sys
    from pathlib import Path

    name = "facerecon_tests_eval_datasets"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("eval_datasets.py"))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_h = _helpers()
SCAN_ROTATION_DEG, SCAN_SCALE, SCAN_TRANSLATION = _h.SCAN_ROTATION_DEG, _h.SCAN_SCALE, _h.SCAN_TRANSLATION
rotation_xyz, similarity = _h.rotation_xyz, _h.similarity


@pytest.fixture(scope="module")
def face(face_model) -> dict:
    """The ICT mean face's 'face' part (float64), its triangles and its 7 NoW landmarks."""
    sub = face_model.submesh("face")
    v = face_model.mean[: sub.vertex_count].double().numpy()
    lm = face_model.mean.double().numpy()[now_landmark_vertices(face_model)]
    return {"v": v, "f": sub.triangles.numpy(), "lm": lm}


# ------------------------------------------------------------------------------------ point to triangle
def test_closest_point_regions_exact() -> None:
    a, b, c = np.array([0.0, 0, 0]), np.array([4.0, 0, 0]), np.array([0.0, 4, 0])
    cases = [
        ((1.0, 1.0, 3.0), (1.0, 1.0, 0.0)),  # above the interior
        ((-2.0, -3.0, 1.0), (0.0, 0.0, 0.0)),  # vertex A
        ((7.0, -1.0, 0.0), (4.0, 0.0, 0.0)),  # vertex B
        ((-1.0, 9.0, 2.0), (0.0, 4.0, 0.0)),  # vertex C
        ((2.0, -5.0, 0.0), (2.0, 0.0, 0.0)),  # edge AB
        ((-3.0, 1.5, -2.0), (0.0, 1.5, 0.0)),  # edge AC
        ((3.0, 3.0, 1.0), (2.0, 2.0, 0.0)),  # edge BC
    ]
    p = np.array([q for q, _ in cases])
    want = np.array([w for _, w in cases])
    n = len(cases)
    got = closest_points_on_triangles(p, np.tile(a, (n, 1)), np.tile(b, (n, 1)), np.tile(c, (n, 1)))
    assert np.allclose(got, want, atol=1e-12)


def test_closest_point_degenerate_triangle() -> None:
    a, b, c = np.array([[0.0, 0, 0]]), np.array([[2.0, 0, 0]]), np.array([[4.0, 0, 0]])  # collinear
    got = closest_points_on_triangles(np.array([[3.0, 1.0, 0.0]]), a, b, c)
    assert np.allclose(got, [[3.0, 0.0, 0.0]])
    p0 = np.array([[5.0, 5.0, 5.0]])
    got = closest_points_on_triangles(p0, a, a.copy(), a.copy())  # a point
    assert np.allclose(got, a)


def test_point_mesh_distance_matches_brute_force(face) -> None:
    v, f = face["v"], face["f"][::7]  # a coarse subset of triangles: holes and large gaps on purpose
    points = v[RNG.choice(len(v), 300)] + RNG.normal(0, 4.0, (300, 3))
    d, q, t = point_mesh_distance(points, v, f, chunk=64)
    pairs_p = np.repeat(np.arange(len(points)), len(f))
    pairs_t = np.tile(np.arange(len(f)), len(points))
    qq = closest_points_on_triangles(points[pairs_p], v[f[pairs_t, 0]], v[f[pairs_t, 1]], v[f[pairs_t, 2]])
    brute = np.linalg.norm(qq - points[pairs_p], axis=1).reshape(len(points), len(f)).min(1)
    assert np.abs(d - brute).max() < 1e-9
    assert np.allclose(np.linalg.norm(q - points, axis=1), d)
    # The reported triangle holds the closest point.
    qt = closest_points_on_triangles(points, v[f[t, 0]], v[f[t, 1]], v[f[t, 2]])
    assert np.allclose(qt, q)


def test_point_mesh_distance_plane_exact() -> None:
    # A 10 x 10 grid in z = 0 (two triangles per cell); points above it at known heights, and beyond an edge.
    xs, ys = np.meshgrid(np.arange(11.0), np.arange(11.0))
    v = np.stack([xs.ravel(), ys.ravel(), np.zeros(121)], 1)
    idx = np.arange(121).reshape(11, 11)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    p = np.array([[3.3, 4.7, 2.5], [0.1, 9.9, -1.0], [13.0, 5.0, 4.0], [5.0, 5.0, 0.0]])
    dist, _, _ = point_mesh_distance(p, v, f)
    assert dist == pytest.approx([2.5, 1.0, 5.0, 0.0], abs=1e-12)


def test_point_mesh_distance_errors(face) -> None:
    v, f = face["v"], face["f"]
    with pytest.raises(ValueError):
        point_mesh_distance(v[:5], v, f[:0])
    with pytest.raises(ValueError):
        point_mesh_distance(v[:5], v[:10], f)  # indices beyond the vertices
    with pytest.raises(TypeError):
        point_mesh_distance(v[:5], v, f.astype(np.float64))
    with pytest.raises(ValueError):
        point_mesh_distance(np.full((2, 3), np.nan), v, f)
    with pytest.raises(ValueError):
        point_mesh_distance(v[:5], v, f, chunk=0)
    d, q, t = point_mesh_distance(np.zeros((0, 3)), v, f)
    assert d.shape == (0,) and q.shape == (0, 3) and t.shape == (0,)


# -------------------------------------------------------------------------------------------- NoW crop
def test_now_landmark_vertices(face_model) -> None:
    ibug = face_model.landmarks("ibug68").vertex_indices.numpy()
    assert np.array_equal(now_landmark_vertices(face_model), ibug[list(NOW_LANDMARKS_IBUG68)])
    assert NOW_LANDMARKS_IBUG68 == (36, 39, 42, 45, 30, 48, 54)


def test_now_face_crop_exact() -> None:
    # Outer eye corners 60 apart, inner corners meet at (0, 20, 0), nose at the origin: centre (0, 6, 0),
    # radius 1.4 * (60 + 20) / 2 = 56.
    lm = np.array([[-30.0, 20, 0], [-10, 20, 0], [10, 20, 0], [30, 20, 0], [0, 0, 0], [-20, -30, 0], [20, -30, 0]])
    pts = np.array([[0.0, 6.0, 55.9], [0.0, 6.0, 56.1], [0.0, 62.0, 0.0], [0.0, -50.1, 0.0], [0.0, -49.9, 0.0]])
    assert now_face_crop(pts, lm).tolist() == [True, False, True, False, True]
    with pytest.raises(ValueError):
        now_face_crop(pts, lm[:6])


# --------------------------------------------------------------------------------------------- alignment
def _rotation_angle_deg(r: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))))


def test_alignment_recovers_a_known_similarity(face) -> None:
    """Scan = the mesh moved by a known similarity: the alignment finds that similarity (mesh -> scan)."""
    r, s, t = rotation_xyz(SCAN_ROTATION_DEG), SCAN_SCALE, SCAN_TRANSLATION
    scan = similarity(face["v"], r, s, t)
    result = align_mesh_to_scan(scan, similarity(face["lm"], r, s, t), face["v"], face["f"], face["lm"])
    tf = result.transform
    assert float(tf.scale) == pytest.approx(s, abs=1e-6)
    assert np.allclose(tf.rotation.numpy(), r, atol=1e-6)
    assert np.allclose(tf.translation.numpy(), t, atol=1e-4)
    assert np.abs(result.vertices - scan).max() < 1e-4
    # The landmark step alone is exact here too.
    assert float(result.landmark_transform.scale) == pytest.approx(s, abs=1e-9)
    assert result.icp_converged


def test_icp_converges_on_a_perturbed_cropped_copy(face) -> None:
    """A partially cropped, noisy copy of the face, moved by a known similarity, with landmarks off by ~3 mm."""
    r, s, t = rotation_xyz((-8.0, 30.0, 10.0)), 0.93, np.array([-5.0, 20.0, 450.0])
    v, lm = face["v"], face["lm"]
    keep = now_face_crop(v, lm) & (v[:, 0] > -35.0)  # the NoW sphere and a cut through the subject's right cheek
    scan = similarity(v[keep], r, s, t) + RNG.normal(0, 0.2, (int(keep.sum()), 3))
    scan_lm = similarity(lm, r, s, t) + RNG.normal(0, 3.0, lm.shape)
    result = align_mesh_to_scan(scan, scan_lm, v, face["f"], lm)
    tf = result.transform
    assert result.icp_converged and result.icp_iterations > 1
    # Far better than the landmark-only start, and close to the truth.
    start = result.landmark_transform
    start_err = np.abs(similarity(v, start.rotation.numpy(), float(start.scale), start.translation.numpy())
                       - similarity(v, r, s, t)).max()  # fmt: skip
    end_err = np.abs(result.vertices - similarity(v, r, s, t)).max()
    assert start_err > 2.0 and end_err < 0.5
    assert float(tf.scale) == pytest.approx(s, rel=2e-3)
    assert _rotation_angle_deg(tf.rotation.numpy() @ r.T) < 0.3
    assert result.icp_rmse < 0.35  # the 0.2 mm noise, in 3D about 0.35 mm


def test_alignment_errors(face) -> None:
    v, f, lm = face["v"], face["f"], face["lm"]
    with pytest.raises(ValueError):
        align_mesh_to_scan(v, lm[:6], v, f, lm)  # landmark counts differ
    with pytest.raises(ValueError):
        align_mesh_to_scan(v, np.zeros((7, 3)), v, f, np.zeros((7, 3)))  # coincident landmarks
    with pytest.raises(ValueError):
        align_mesh_to_scan(v[:2], lm, v, f, lm)
    with pytest.raises(TypeError):
        align_mesh_to_scan(v, lm, v, f.astype(np.float32), lm)


# ------------------------------------------------------------------------------------------- NoW error
def test_now_error_of_the_same_face_is_zero(face) -> None:
    r, s, t = rotation_xyz(SCAN_ROTATION_DEG), SCAN_SCALE, SCAN_TRANSLATION
    err = now_scan_error(similarity(face["v"], r, s, t), similarity(face["lm"], r, s, t),
                         face["v"], face["f"], face["lm"])  # fmt: skip
    assert err.mean < 1e-4 and err.median < 1e-4 and err.std < 1e-4
    assert err.distances.shape == (int(err.crop.sum()),)
    assert 0.3 * len(face["v"]) < err.crop.sum() < len(face["v"])  # the sphere keeps the face, not all of it


def _save_error_picture(path, scan_model_space: np.ndarray, crop: np.ndarray, distances: np.ndarray) -> None:
    """Front view of the scan: points outside the NoW crop grey, inside coloured by their error (mm)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(scan_model_space[~crop, 0], scan_model_space[~crop, 1], s=1, c="0.8")
    sc = ax.scatter(scan_model_space[crop, 0], scan_model_space[crop, 1], s=1, c=distances, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="scan-to-mesh distance (mm)")
    ax.set_aspect("equal")
    ax.set_title("NoW error of the rippled mean face (grey: outside the crop)")
    fig.savefig(path)


def test_now_error_of_a_perturbed_face_is_the_known_error(face, artifacts_dir) -> None:
    """The face with a smooth ripple ``1 mm * cos(2 pi x / 30) cos(2 pi y / 30)`` along its normals: zero-mean and
    not a similarity, so the alignment cannot reduce it and the error is the ripple's own size."""
    from facerecon.geometry.mesh_ops import vertex_normals

    r, s, t = rotation_xyz(SCAN_ROTATION_DEG), SCAN_SCALE, SCAN_TRANSLATION
    v, f, lm = face["v"], face["f"], face["lm"]
    scan, scan_lm = similarity(v, r, s, t), similarity(lm, r, s, t)
    normals = vertex_normals(torch.from_numpy(v)[None], torch.from_numpy(f))[0].numpy()
    ripple = np.cos(2 * np.pi * v[:, 0] / 30.0) * np.cos(2 * np.pi * v[:, 1] / 30.0)
    recon = v + ripple[:, None] * normals
    err = now_scan_error(scan, scan_lm, recon, f, lm)
    # The known error: the cropped scan against the rippled mesh placed by the true similarity...
    known, _, _ = point_mesh_distance(scan[err.crop], similarity(recon, r, s, t), f)
    assert err.mean == pytest.approx(known.mean(), rel=0.02)
    assert err.median == pytest.approx(np.median(known), rel=0.03)
    assert err.std == pytest.approx(known.std(), rel=0.02)
    # ... which is about the ripple's mean size, E|cos cos| = (2 / pi)^2 mm, in scan units (x 1.07).
    assert err.mean == pytest.approx((2 / np.pi) ** 2 * s, rel=0.1)
    assert known.max() <= 1.0 * s + 1e-9
    if artifacts_dir is not None:
        _save_error_picture(artifacts_dir / "eval_now_ripple_error.png", v, err.crop, err.distances)


def test_now_error_does_not_modify_inputs(face) -> None:
    v, f, lm = face["v"].copy(), face["f"].copy(), face["lm"].copy()
    now_scan_error(v * 1.0, lm * 1.0, v, f, lm)
    assert np.array_equal(v, face["v"]) and np.array_equal(f, face["f"]) and np.array_equal(lm, face["lm"])


def test_now_error_accepts_tensors(face) -> None:
    v = torch.from_numpy(face["v"])
    err = now_scan_error(face["v"], face["lm"], v.float(), torch.from_numpy(face["f"]), torch.from_numpy(face["lm"]))
    assert err.mean < 1e-3
