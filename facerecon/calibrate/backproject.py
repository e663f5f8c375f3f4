"""Steps 2-3, detection and back-projection: each render's detected landmarks as samples on the surface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from facerecon.calibrate.config import NUM_LANDMARKS, CalibrationViews, EmbeddingConfig
from facerecon.calibrate.views import _albedo, _render_batch
from facerecon.models.face_model import FaceModel


# --------------------------------------------------------------------------------------- back-projection
def _bary_at(screen: np.ndarray, tri: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Perspective-correct barycentrics ``(N, 3)`` of pixel positions ``uv (N, 2)`` in triangles ``tri (N, 3)``.

    As in the rasterizer: corners lifted to ``q = (u z, v z, z)``, edge functions ``e_i = (q_j x q_k) . (u, v, 1)``,
    ``b_i = e_i / sum(e)`` (the barycentrics of the surface point on the pixel's ray).
    """
    q = screen[tri]  # (N, 3 corners, 3)
    q = np.concatenate([q[..., :2] * q[..., 2:3], q[..., 2:3]], axis=-1)
    p = np.concatenate([uv, np.ones((uv.shape[0], 1))], axis=1)
    e = np.stack([np.einsum("nc,nc->n", np.cross(q[:, (i + 1) % 3], q[:, (i + 2) % 3]), p) for i in range(3)], 1)
    return e / e.sum(axis=1, keepdims=True)


def _backproject(
    screen: np.ndarray, face_index: np.ndarray, landmarks: np.ndarray, faces: np.ndarray, face_triangles: int
) -> tuple[np.ndarray, np.ndarray]:
    """Samples of one render: the ``face`` triangle and barycentrics under each landmark.

    Args:
        screen: ``(V, 3)`` the render's screen vertices ``(u, v, z)``.
        face_index: ``(S, S)`` the rasterizer's triangle per pixel.
        landmarks: ``(L, 2)`` detected positions, px.
        faces: ``(F, 3)`` the rendered triangles; the first ``face_triangles`` are the ``face`` sub-mesh.

    Returns:
        ``(triangle (L,) int64, -1 for no sample; bary (L, 3))``.
    """
    h, w = face_index.shape
    L = landmarks.shape[0]
    best_tri = np.full(L, -1, dtype=np.int64)
    best_bary = np.zeros((L, 3))
    best_score = np.full(L, -np.inf)
    centre = np.rint(landmarks).astype(np.int64)
    # The triangles seen at the nearest pixel and its 8 neighbours: the one that contains the landmark's exact
    # position (largest smallest barycentric) wins; the nearest pixel's triangle breaks ties.
    for dy, dx in [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]:
        x, y = centre[:, 0] + dx, centre[:, 1] + dy
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        f = np.full(L, -1, dtype=np.int64)
        f[inside] = face_index[y[inside], x[inside]]
        ok = (f >= 0) & (f < face_triangles)
        if (dy, dx) == (0, 0):
            on_face = ok.copy()  # the landmark's own pixel must show the face sub-mesh
        if not ok.any():
            continue
        bary = _bary_at(screen, faces[f[ok]], landmarks[ok])
        score = bary.min(axis=1)
        better = score > best_score[ok] + 1e-12
        idx = np.flatnonzero(ok)[better]
        best_tri[idx] = f[idx]
        best_bary[idx] = bary[better]
        best_score[idx] = score[better]
    best_tri[~on_face] = -1
    # A landmark on no triangle of the neighbourhood (score < 0: at a silhouette) keeps the nearest point of its
    # best triangle: clamp and renormalise.
    clamped = np.clip(best_bary, 0.0, None)
    best_bary = clamped / np.maximum(clamped.sum(axis=1, keepdims=True), 1e-12)
    return best_tri, best_bary


# --------------------------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class _Detections:
    landmarks: np.ndarray  # (N, 478, 2), NaN where no face
    found: np.ndarray  # (N,) bool
    tri: np.ndarray  # (N, 478) int64 face triangle index, -1 for no sample
    bary: np.ndarray  # (N, 478, 3)


def _detect_all(
    model: FaceModel,
    config: EmbeddingConfig,
    views: CalibrationViews,
    detector: Any,
    progress: Callable[[int, int], None] | None,
) -> _Detections:
    n = len(views)
    head = model.submesh("head")
    faces = head.triangles.cpu().numpy()
    face_triangles = int(model.submesh("face").triangles.shape[0])
    albedo = _albedo(model, head.vertex_count)
    landmarks = np.full((n, NUM_LANDMARKS, 2), np.nan)
    found = np.zeros(n, dtype=bool)
    tri = np.full((n, NUM_LANDMARKS), -1, dtype=np.int64)
    bary = np.zeros((n, NUM_LANDMARKS, 3))
    for start in range(0, n, config.batch_size):
        rows = np.arange(start, min(start + config.batch_size, n))
        batch = _render_batch(model, config, views, rows, albedo)
        for j, row in enumerate(rows):
            faces_found = detector.detect(batch.images[j])
            if not faces_found:
                continue
            lm = np.asarray(faces_found[0].landmarks, dtype=np.float64)
            landmarks[row], found[row] = lm, True
            if not views.heldout[row]:
                raster_lm = (lm + 0.5) * batch.scale - 0.5  # px of the supersampled raster
                tri[row], bary[row] = _backproject(
                    batch.screen[j].numpy(), batch.face_index[j], raster_lm, faces, face_triangles
                )
        if progress is not None:
            progress(int(rows[-1]) + 1, n)
    return _Detections(landmarks, found, tri, bary)
