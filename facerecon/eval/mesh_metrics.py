"""Scan-to-mesh error of a reconstructed face after rigid + scale alignment (the NoW protocol).

The NoW benchmark (Sanyal et al., "Learning to regress 3D face shape and expression from an image without 3D
supervision", CVPR 2019; its evaluation code, soubhiksanyal/now_evaluation) measures a reconstruction so:

1. crop the scan to a sphere around the face (:func:`now_face_crop`): centre ``nose + 0.3 (bridge - nose)`` with
   ``bridge`` the midpoint of the inner eye corners, radius ``1.4 * (outer-eye distance + |bridge - nose|) / 2``;
2. align the reconstructed mesh to the scan with a similarity transform from 7 corresponding landmarks (outer
   and inner eye corners, nose tip, mouth corners; :data:`NOW_LANDMARKS_IBUG68`);
3. refine the alignment by ICP of the cropped scan onto the mesh (rigid + scale);
4. the error of each scan vertex is its distance to the closest point of the mesh surface, in scan units (mm).

Here step 3 uses :func:`facerecon.geometry.align.icp` (point-to-point against the mesh vertices and triangle
centroids) and step 4 the exact point-to-triangle distance of :func:`point_mesh_distance`.

Example:
    >>> err = now_scan_error(scan_vertices, scan_landmarks, mesh_vertices, mesh_triangles, mesh_landmarks)  # doctest: +SKIP
    >>> err.median, err.mean, err.std                                                                       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facerecon.core.check import (
    check_finite,
    check_floating,
    check_index_range,
    check_integer,
    check_shape,
    describe,
)
from facerecon.geometry.align import SimilarityTransform, icp, umeyama

__all__ = [
    "NOW_LANDMARKS_IBUG68",
    "AlignmentResult",
    "ScanError",
    "align_mesh_to_scan",
    "closest_points_on_triangles",
    "now_face_crop",
    "now_landmark_vertices",
    "now_scan_error",
    "point_mesh_distance",
]

#: The 7 NoW scan landmarks as iBUG-68 indices, in the NoW ``.pp`` order: the subject's right eye outer and
#: inner corner, left eye inner and outer corner, nose tip, right and left mouth corner.
NOW_LANDMARKS_IBUG68: tuple[int, ...] = (36, 39, 42, 45, 30, 48, 54)


def _points(value: object, name: str, spec: tuple, sizes: dict[str, int] | None = None) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected an array of shape {spec}, got {describe(value)}")
    check_shape(value, name, spec, sizes)
    check_floating(value, name)
    check_finite(value, name)
    return np.array(value, dtype=np.float64)  # a writable copy (torch.from_numpy needs one)


def _triangles(value: object, name: str, vertex_count: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected an int array of shape (F, 3), got {describe(value)}")
    check_shape(value, name, (None, 3))
    check_integer(value, name)
    if value.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one triangle, got {describe(value)}")
    check_index_range(value, name, vertex_count)
    return value.astype(np.int64, copy=False)


def now_landmark_vertices(model: torch.nn.Module) -> np.ndarray:
    """The template vertices of the 7 NoW landmarks of a face model, via its ``"ibug68"`` landmark scheme.

    Args:
        model: a :class:`facerecon.models.FaceModel` (anything with ``landmarks("ibug68").vertex_indices``).

    Returns:
        ``(7,)`` int64 vertex indices in :data:`NOW_LANDMARKS_IBUG68` order.
    """
    scheme = model.landmarks("ibug68")  # type: ignore[operator]
    return scheme.vertex_indices.detach().cpu().numpy()[list(NOW_LANDMARKS_IBUG68)].astype(np.int64)


# ----------------------------------------------------------------------------- point-to-triangle distance
def _closest_on_segments(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    denom = np.einsum("ij,ij->i", ab, ab)
    t = np.einsum("ij,ij->i", p - a, ab) / np.where(denom > 0, denom, 1.0)
    return a + np.clip(t, 0.0, 1.0)[:, None] * ab


def closest_points_on_triangles(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The closest point of triangle ``(a_i, b_i, c_i)`` to ``points_i``, for each ``i`` (exact).

    The Voronoi-region method of Ericson, "Real-Time Collision Detection" (2005), sec. 5.1.5: the closest point
    is a vertex, a point of an edge or an interior point, decided from dot products of the edges. Degenerate
    (zero-area) triangles fall back to the closest point of their three edges.

    Args:
        points: ``(N, 3)`` float.
        a, b, c: ``(N, 3)`` float, the triangles' corners.

    Returns:
        ``(N, 3)`` float64.
    """
    sizes: dict[str, int] = {}
    p = _points(points, "points", ("N", 3), sizes)
    a = _points(a, "a", ("N", 3), sizes)
    b = _points(b, "b", ("N", 3), sizes)
    c = _points(c, "c", ("N", 3), sizes)

    def dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", u, v)

    ab, ac, ap = b - a, c - a, p - a
    bp, cp = p - b, p - c
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        # Interior (the last case of the region tests); overwritten below by the earlier cases.
        total = va + vb + vc
        degenerate = ~(np.abs(total) > 1e-300)
        safe = np.where(degenerate, 1.0, total)
        out = a + ab * (vb / safe)[:, None] + ac * (vc / safe)[:, None]
        # Edge BC.
        bc_w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        on_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
        out = np.where(on_bc[:, None], b + bc_w[:, None] * (c - b), out)
        # Edge AC.
        ac_w = d2 / (d2 - d6)
        on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        out = np.where(on_ac[:, None], a + ac_w[:, None] * ac, out)
        # Vertex C.
        out = np.where(((d6 >= 0) & (d5 <= d6))[:, None], c, out)
        # Edge AB.
        ab_v = d1 / (d1 - d3)
        on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        out = np.where(on_ab[:, None], a + ab_v[:, None] * ab, out)
        # Vertex B, vertex A.
        out = np.where(((d3 >= 0) & (d4 <= d3))[:, None], b, out)
        out = np.where(((d1 <= 0) & (d2 <= 0))[:, None], a, out)
    # Zero-area triangles (and any NaN from a 0/0 above): the best of the three edges.
    bad = degenerate | ~np.isfinite(out).all(axis=1)
    if bad.any():
        q = p[bad]
        cands = np.stack(
            [_closest_on_segments(q, a[bad], b[bad]), _closest_on_segments(q, b[bad], c[bad]),
             _closest_on_segments(q, c[bad], a[bad])], 1)  # fmt: skip
        best = np.argmin(np.linalg.norm(cands - q[:, None], axis=-1), axis=1)
        out[bad] = cands[np.arange(len(q)), best]
    return out


def point_mesh_distance(
    points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, *, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact distance from each point to the closest point of a triangle mesh's surface.

    Exact, not approximate: a first guess from the 8 triangles with the nearest centroids bounds the distance
    ``d``; a triangle whose centroid is farther than ``d + r`` (``r``: the largest centroid-to-corner distance of
    its size class) cannot hold a closer point, so only the triangles inside that ball are tested (with
    :func:`closest_points_on_triangles`). Triangles are grouped in size classes (powers of two) so one large
    triangle does not widen every search.

    Args:
        points: ``(N, 3)`` float, e.g. scan vertices in mm.
        vertices: ``(V, 3)`` float, the mesh's vertices (same unit).
        triangles: ``(F, 3)`` int, F >= 1.
        chunk: points per batch (memory bound).

    Returns:
        ``(distances (N,), closest (N, 3), triangle (N,))``: float64 distances, the closest surface points and the
        index of the triangle that holds each.
    """
    from scipy.spatial import cKDTree

    p = _points(points, "points", ("N", 3))
    v = _points(vertices, "vertices", ("V", 3))
    t = _triangles(triangles, "triangles", v.shape[0])
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
    n = p.shape[0]
    corners = v[t]  # (F, 3, 3)
    centroids = corners.mean(axis=1)
    radius = np.linalg.norm(corners - centroids[:, None], axis=-1).max(axis=1)  # (F,)
    best_d = np.full(n, np.inf)
    best_q = np.zeros((n, 3))
    best_t = np.zeros(n, dtype=np.int64)
    if n == 0:
        return best_d, best_q, best_t

    def test(pi: np.ndarray, ti: np.ndarray) -> None:
        """Test the pairs (point pi, triangle ti) and keep the closer ones."""
        for s in range(0, len(pi), 1 << 18):
            pp, tt = pi[s : s + (1 << 18)], ti[s : s + (1 << 18)]
            q = closest_points_on_triangles(p[pp], corners[tt, 0], corners[tt, 1], corners[tt, 2])
            d = np.linalg.norm(q - p[pp], axis=-1)
            # For each point keep its smallest d among these pairs, then compare with the best so far.
            order = np.lexsort((d, pp))
            pp, tt, d, q = pp[order], tt[order], d[order], q[order]
            first = np.ones(len(pp), dtype=bool)
            first[1:] = pp[1:] != pp[:-1]
            pp, tt, d, q = pp[first], tt[first], d[first], q[first]
            better = d < best_d[pp]
            best_d[pp[better]] = d[better]
            best_q[pp[better]] = q[better]
            best_t[pp[better]] = tt[better]

    # First guess: the triangles with the nearest centroids.
    k = min(8, t.shape[0])
    _, near = cKDTree(centroids).query(p, k=k)
    near = near.reshape(n, k)
    test(np.repeat(np.arange(n), k), near.ravel())
    # Exact pass per size class.
    level = np.floor(np.log2(np.maximum(radius, 1e-12))).astype(np.int64)
    for lv in np.unique(level):
        members = np.nonzero(level == lv)[0]
        tree = cKDTree(centroids[members])
        r_class = float(radius[members].max())
        for s in range(0, n, chunk):
            idx = np.arange(s, min(s + chunk, n))
            found = tree.query_ball_point(p[idx], best_d[idx] + r_class * (1 + 1e-9) + 1e-12)
            counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(idx))
            if counts.sum() == 0:
                continue
            flat = np.fromiter((j for f in found for j in f), dtype=np.int64, count=int(counts.sum()))
            test(np.repeat(idx, counts), members[flat])
    return best_d, best_q, best_t


# ----------------------------------------------------------------------------------------- NoW protocol
def now_face_crop(scan_vertices: np.ndarray, scan_landmarks: np.ndarray) -> np.ndarray:
    """Which scan vertices lie in the NoW face region (a sphere around the face's centre).

    Centre ``nose + 0.3 (bridge - nose)`` with ``bridge`` the midpoint of the inner eye corners (landmarks 1, 2),
    ``nose`` landmark 4; radius ``1.4 * (|l0 - l3| + |bridge - nose|) / 2`` (the NoW evaluation code's
    ``compute_mask``).

    Args:
        scan_vertices: ``(N, 3)`` float mm.
        scan_landmarks: ``(7, 3)`` float mm in :data:`NOW_LANDMARKS_IBUG68` order.

    Returns:
        ``(N,)`` bool.
    """
    v = _points(scan_vertices, "scan_vertices", ("N", 3))
    lm = _points(scan_landmarks, "scan_landmarks", (7, 3))
    nose = lm[4]
    bridge = (lm[1] + lm[2]) / 2
    centre = nose + 0.3 * (bridge - nose)
    radius = 1.4 * (np.linalg.norm(lm[0] - lm[3]) + np.linalg.norm(bridge - nose)) / 2
    return np.linalg.norm(v - centre, axis=1) <= radius


@dataclass(frozen=True)
class AlignmentResult:
    """A mesh aligned to a scan.

    Attributes:
        transform: the similarity taking the mesh's coordinates to the scan's (landmarks, then ICP).
        landmark_transform: the similarity from the 7 landmarks alone.
        vertices: ``(V, 3)`` float64, the mesh's vertices in scan coordinates (mm).
        icp_rmse: inlier RMSE of the last ICP round (mm).
        icp_iterations: ICP rounds performed.
        icp_converged: whether ICP met its tolerance.
    """

    transform: SimilarityTransform
    landmark_transform: SimilarityTransform
    vertices: np.ndarray
    icp_rmse: float
    icp_iterations: int
    icp_converged: bool


def _surface_samples(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """The vertices used by ``triangles`` and the triangles' centroids (ICP targets on the surface)."""
    used = np.unique(triangles)
    return np.concatenate([vertices[used], vertices[triangles].mean(axis=1)])


def align_mesh_to_scan(
    scan_points: np.ndarray,
    scan_landmarks: np.ndarray,
    mesh_vertices: np.ndarray,
    mesh_triangles: np.ndarray,
    mesh_landmarks: np.ndarray,
    *,
    with_scale: bool = True,
    max_iterations: int = 100,
    trim: float = 1.0,
) -> AlignmentResult:
    """Align a mesh to a scan: a similarity from corresponding landmarks, then ICP of the scan onto the mesh.

    The landmark step is :func:`~facerecon.geometry.align.umeyama` (rotation, translation, scale). ICP
    (:func:`~facerecon.geometry.align.icp`) then moves the scan points onto the aligned mesh's surface samples
    (vertices and triangle centroids) and its inverse is applied to the mesh, so errors stay in scan units.

    Args:
        scan_points: ``(N, 3)`` float mm, e.g. the cropped scan vertices (N >= 3).
        scan_landmarks: ``(L, 3)`` float mm (L >= 3).
        mesh_vertices: ``(V, 3)`` float, any unit and pose.
        mesh_triangles: ``(F, 3)`` int.
        mesh_landmarks: ``(L, 3)`` float, the same landmarks on the mesh.
        with_scale: let ICP refine the scale too (NoW does).
        max_iterations: ICP rounds at most.
        trim: fraction of closest ICP pairs kept per round (1: all, as NoW).

    Returns:
        An :class:`AlignmentResult`.

    Raises:
        TypeError / ValueError: wrong shapes or types, NaN/inf, coincident landmarks.
    """
    sizes: dict[str, int] = {}
    scan = _points(scan_points, "scan_points", ("N", 3))
    s_lm = _points(scan_landmarks, "scan_landmarks", ("L", 3), sizes)
    mv = _points(mesh_vertices, "mesh_vertices", ("V", 3))
    m_lm = _points(mesh_landmarks, "mesh_landmarks", ("L", 3), sizes)
    tri = _triangles(mesh_triangles, "mesh_triangles", mv.shape[0])
    if sizes["L"] < 3:
        raise ValueError(f"scan_landmarks: expected at least 3 landmarks, got {describe(scan_landmarks)}")
    if scan.shape[0] < 3:
        raise ValueError(f"scan_points: expected at least 3 points, got {describe(scan_points)}")
    init = umeyama(torch.from_numpy(m_lm)[None], torch.from_numpy(s_lm)[None])
    init = SimilarityTransform(init.rotation[0], init.translation[0], init.scale[0])
    mesh_in_scan = init.apply(torch.from_numpy(mv)).numpy()
    target = _surface_samples(mesh_in_scan, tri)
    result = icp(torch.from_numpy(scan), torch.from_numpy(target), with_scale=with_scale,
                 max_iterations=max_iterations, trim=trim)  # fmt: skip
    # ICP maps scan -> aligned mesh; its inverse brings the mesh onto the scan.
    total = result.transform.inverse().compose(init)
    vertices = total.apply(torch.from_numpy(mv)).numpy()
    return AlignmentResult(
        transform=total,
        landmark_transform=init,
        vertices=vertices,
        icp_rmse=float(result.rmse),
        icp_iterations=int(result.iterations),
        icp_converged=bool(result.converged),
    )


@dataclass(frozen=True, eq=False)
class ScanError:
    """The NoW error of one reconstruction.

    Attributes:
        distances: ``(N,)`` float64 distance of each cropped scan vertex to the aligned mesh surface (mm).
        median, mean, std: statistics of ``distances`` (mm).
        alignment: the :class:`AlignmentResult`.
        crop: ``(N_scan,)`` bool, the scan vertices inside the NoW face region.
    """

    distances: np.ndarray
    median: float
    mean: float
    std: float
    alignment: AlignmentResult
    crop: np.ndarray


def now_scan_error(
    scan_vertices: np.ndarray,
    scan_landmarks: np.ndarray,
    mesh_vertices: np.ndarray,
    mesh_triangles: np.ndarray,
    mesh_landmarks: np.ndarray,
    *,
    max_iterations: int = 100,
) -> ScanError:
    """The NoW scan-to-mesh error of a reconstructed mesh (see the module docstring for the protocol).

    Args:
        scan_vertices: ``(N, 3)`` float mm, the ground-truth scan.
        scan_landmarks: ``(7, 3)`` float mm, its 7 landmarks in :data:`NOW_LANDMARKS_IBUG68` order.
        mesh_vertices: ``(V, 3)`` float, the reconstruction (any pose, unit and scale).
        mesh_triangles: ``(F, 3)`` int.
        mesh_landmarks: ``(7, 3)`` float, the same 7 landmarks on the reconstruction.
        max_iterations: ICP rounds at most.

    Returns:
        A :class:`ScanError`.

    Raises:
        ValueError: fewer than 3 scan vertices in the face region, or bad inputs.
    """
    crop = now_face_crop(scan_vertices, scan_landmarks)
    if int(crop.sum()) < 3:
        raise ValueError(f"scan_vertices: only {int(crop.sum())} scan vertices lie in the NoW face region")
    points = _points(scan_vertices, "scan_vertices", ("N", 3))[crop]
    alignment = align_mesh_to_scan(points, scan_landmarks, mesh_vertices, mesh_triangles, mesh_landmarks,
                                   max_iterations=max_iterations)  # fmt: skip
    distances, _, _ = point_mesh_distance(points, alignment.vertices, np.asarray(mesh_triangles))
    return ScanError(
        distances=distances,
        median=float(np.median(distances)),
        mean=float(distances.mean()),
        std=float(distances.std()),
        alignment=alignment,
        crop=crop,
    )
