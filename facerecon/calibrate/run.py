"""MediaPipe's 478 face-mesh landmarks embedded on any :class:`~facerecon.models.FaceModel` (issue 4, item 3).

How the embedding is found:

1. **Renders** (:func:`render_calibration_views`): the model's ``head`` sub-mesh (skin, mouth, eye sockets and
   eyeballs) with a plausible appearance, so that the detector sees a face: skin-tone per-vertex albedo, darker
   lips and eyebrows (from ``model.region_labels``), white sclera with a brown iris and a black pupil, 3-band SH
   lighting from a few directions, a neutral grey background, 512 x 512 px through a perspective camera. The
   views are the mean face and identities at +-``identity_sigma`` on the first identity modes, times a grid of
   head yaws (within +-30 deg) and pitches (within +-15 deg) with a small seeded jitter, times the lightings.
2. **Detection**: MediaPipe's face mesh (:func:`facerecon.detect.create_detector`) on every render.
3. **Back-projection through the z-buffer**: the render's rasterization gives, at the pixel of each detected
   landmark, the visible triangle; the landmark's exact perspective barycentrics in that triangle (at its
   sub-pixel position) make a sample. A landmark over the background or over a triangle that is not part of
   the ``face`` sub-mesh gives no sample. Barycentrics are coordinates on the shared topology, so a sample on
   any identity is moved to the mean face by applying them to the mean face's corners.
4. **Robust average**: per landmark, the geometric median of its samples on the mean face (Weiszfeld), snapped
   to the nearest point of the mean face's ``face`` sub-mesh (a triangle and its barycentrics), and up to
   ``max_candidates`` of the samples themselves are candidates; the one whose projections agree best with the
   detections (trimmed mean px error over the views) wins. Contour landmarks keep the point seen in frontal
   views only (:attr:`EmbeddingConfig.frontal_yaw`).
5. **Continuous refinement** (:attr:`EmbeddingConfig.refine_iterations`): from the winning candidate, each point
   moves over the surface (least-absolute-deviation Gauss-Newton steps on its barycentrics, snapped to the
   neighbouring triangle when it leaves its own) while the same trimmed error drops. Measured on the default
   views: held-out median 2.05 -> 2.02 px, 90th percentile 4.64 -> 4.58 px; 1-2 s.
6. **Per pose cell** (:attr:`EmbeddingConfig.pose_cells`): the non-contour landmarks are placed again (steps 4-5,
   starting from the pose-free point) from the training views of each (yaw, pitch) cell of the grid, into a
   :class:`~facerecon.models.LandmarkPoseTable`; a fit uses the cell of its current head pose as the camera sees
   it (:func:`facerecon.geometry.rotation.viewed_head_angles`), as contours slide. ~2.5 s for the 15 cells.
7. **Held-out error**: about ``holdout_fraction`` of the views (whole identity x pose groups, all their
   lightings) are not used in 3-6; the embedded landmarks (of each view's pose cell) are projected into them and
   compared with what the detector found there; ``heldout_errors_posefree`` keeps the pose-free points' errors.

Why per pose: one fixed surface point per landmark cannot do much better than 2 px. The best fixed point per
landmark fitted on 540 evaluation renders themselves (9 identities, 4 lightings) keeps a median error of 2.16 px
(1.66 % of the outer-eye-corner distance) on them, against 2.24 px for the pose-free points, which never saw
them. Of that floor's mean-square residual, 61 % is MediaPipe's points sliding over the surface as the head turns
(cheek, nose and jaw points most), 20 % their change between lightings of one geometry (a median 1.0 px per
detection), 8 % a constant offset left by the robust (trimmed) fit, 5 % identity and 5 % identity x pose. The
pose cells take the sliding out: default views, held-out median 2.02 px (pose-free) -> 1.19 px, 90th percentile
4.58 -> 2.58 px, NME 1.54 % -> 0.91 %. The px figures scale with the face's size in the render (MediaPipe's mesh
model sees a ~192 px crop); the NME does not.

Contour landmarks (paper 004, Tewari et al. 2018, sec. 6.1: "contour landmarks ... slide along the contour")
are MediaPipe's face-oval points (:data:`MEDIAPIPE_FACE_OVAL`). Independently, the calibration measures each
landmark's *pose drift*, how far its back-projected point moves on the surface between the yaw groups of the
views; landmarks that drift more than :attr:`EmbeddingConfig.drift_threshold_mm` are the data's own
contour-like points (:attr:`LandmarkEmbedding.drifting`), reported next to the fixed list.

The iris points (468-477, :data:`MEDIAPIPE_IRIS`) are **not embedded** (``embedded`` False): they lie on the
eyeballs, which are not part of the ``face`` sub-mesh that fitting uses, and where they are depends on the gaze,
which the detector sees in a photo but a model's neutral eyeballs do not have; a fixed surface point would pull
the pose and shape towards a gaze straight ahead.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from facerecon.calibrate.backproject import _detect_all
from facerecon.calibrate.config import EmbeddingConfig
from facerecon.calibrate.embedding import LandmarkEmbedding
from facerecon.calibrate.place import _embed
from facerecon.calibrate.views import _check_model, _views
from facerecon.core.check import describe
from facerecon.models.face_model import FaceModel
from facerecon.models.landmark_file import MEDIAPIPE_SCHEME

__all__ = ["calibrate_landmarks"]


def calibrate_landmarks(
    model: FaceModel,
    detector: Any | None = None,
    config: EmbeddingConfig = EmbeddingConfig(),  # noqa: B008
    *,
    progress: Callable[[int, int], None] | None = None,
) -> LandmarkEmbedding:
    """Embed MediaPipe's 478 landmarks on ``model`` from renders of it (see the module docstring).

    Args:
        model: the face model (its ``face`` sub-mesh carries the embedding, the ``head`` sub-mesh is rendered).
        detector: a MediaPipe :class:`~facerecon.detect.Detector` (``scheme == "mediapipe478"``); default one made
            here with ``create_detector("mediapipe")`` and closed afterwards.
        config: the renders and the averaging.
        progress: called as ``progress(done, total)`` after each batch of renders.

    Returns:
        A :class:`LandmarkEmbedding`; save it with :func:`save_embedding`.

    Raises:
        TypeError: a model that is not a FaceModel, a config that is not an EmbeddingConfig, a detector of
            another landmark scheme.
        NoFaceError: the detector found a face in too few renders to embed the landmarks.
    """
    _check_model(model)
    if not isinstance(config, EmbeddingConfig):
        raise TypeError(f"config: expected an EmbeddingConfig, got {describe(config)}")
    if detector is not None and getattr(detector, "scheme", None) != MEDIAPIPE_SCHEME:
        raise TypeError(f"detector: expected a detector of scheme {MEDIAPIPE_SCHEME!r}, got {describe(detector)}")
    started = time.perf_counter()
    own = detector is None
    if own:
        from facerecon.detect import create_detector

        detector = create_detector("mediapipe", max_faces=1)
    try:
        views = _views(model, config)
        detections = _detect_all(model, config, views, detector, progress)
    finally:
        if own:
            detector.close()
    embedding = _embed(model, config, views, detections, 0.0)
    return dataclasses.replace(embedding, seconds=time.perf_counter() - started)
