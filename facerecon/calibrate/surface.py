"""Step 4's geometry: robust centres of samples (geometric median) and nearest points on the surface."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


# --------------------------------------------------------------------------------------- robust average
def _geometric_median(points: np.ndarray, iterations: int = 100, tol: float = 1e-9) -> np.ndarray:
    """The geometric median of ``(N, 3)`` points (Weiszfeld's iteration from the coordinate-wise median)."""
    x = np.median(points, axis=0)
    for _ in range(iterations):
        d = np.linalg.norm(points - x, axis=1)
        w = 1.0 / np.maximum(d, 1e-9)
        nxt = (points * w[:, None]).sum(0) / w.sum()
        if np.linalg.norm(nxt - x) < tol:
            return nxt
        x = nxt
    return x


def _closest_on_triangles(points: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points on triangles: ``points (N, 3)``, ``corners (N, 3, 3)`` -> ``(bary (N, 3), distance (N,))``.

    The projection onto the triangle's plane when its barycentrics are all non-negative, else the nearest
    point of the three edges.
    """
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    ab, ac, ap = b - a, c - a, points - a
    d00, d01, d11 = (ab * ab).sum(1), (ab * ac).sum(1), (ac * ac).sum(1)
    d20, d21 = (ap * ab).sum(1), (ap * ac).sum(1)
    den = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    bary = np.stack([1.0 - v - w, v, w], 1)
    inside = (bary >= 0).all(1)
    best = bary.copy()
    best_d = np.where(inside, np.linalg.norm(points - np.einsum("nk,nkc->nc", bary, corners), axis=1), np.inf)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        p, q = corners[:, i], corners[:, j]
        seg = q - p
        t = np.clip(((points - p) * seg).sum(1) / np.maximum((seg * seg).sum(1), 1e-30), 0.0, 1.0)
        d = np.linalg.norm(points - (p + t[:, None] * seg), axis=1)
        better = ~inside & (d < best_d)
        edge_bary = np.zeros_like(bary)
        edge_bary[:, i] = 1.0 - t
        edge_bary[:, j] = t
        best[better] = edge_bary[better]
        best_d = np.where(better, d, best_d)
    return best, best_d


def _snap(
    points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, candidates: int = 24, tree: cKDTree | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest surface points: ``points (P, 3)`` on the mesh ``(vertices, faces)`` -> ``(triangle (P,), bary (P, 3))``.

    ``tree``: a k-d tree of the triangles' centroids (built here when None; pass one when snapping repeatedly).
    """
    if tree is None:
        tree = cKDTree(vertices[faces].mean(1))
    _, near = tree.query(points, k=min(candidates, len(faces)))
    near = np.atleast_2d(near).reshape(len(points), -1)
    tri = faces[near.reshape(-1)]  # (P * k, 3)
    bary, dist = _closest_on_triangles(np.repeat(points, near.shape[1], axis=0), vertices[tri])
    best = dist.reshape(len(points), -1).argmin(1)
    flat = np.arange(len(points)) * near.shape[1] + best
    return near.reshape(-1)[flat], bary[flat]
