"""Calibration of a face model against a landmark detector (issue 4, item 3).

:func:`calibrate_landmarks` renders a :class:`~facerecon.models.FaceModel` in many identities, poses and
lightings, runs the MediaPipe face mesh on the renders, back-projects each of its 478 landmarks onto the
model's surface through the z-buffer, and keeps a robust average per landmark as a triangle of the face
sub-mesh and barycentric weights: the ``"mediapipe478"`` landmark scheme, saved in the model's cache
directory (:func:`save_embedding`) where :func:`facerecon.models.load_model` finds it.

This room may import core, io, geometry, models, render and detect; only the CLI and the top-level API import it.

Example:
    >>> from facerecon.calibrate import calibrate_landmarks, save_embedding   # doctest: +SKIP
    >>> model = facerecon.load_model()                                        # doctest: +SKIP
    >>> embedding = calibrate_landmarks(model)                                # doctest: +SKIP
    >>> save_embedding(embedding, model.info["cache"])                        # doctest: +SKIP
    >>> embedding.heldout_median_px                                           # doctest: +SKIP
"""

from facerecon.calibrate.landmark_embedding import (
    MEDIAPIPE_FACE_OVAL,
    MEDIAPIPE_IRIS,
    EmbeddingConfig,
    LandmarkEmbedding,
    calibrate_landmarks,
    load_embedding,
    render_calibration_views,
    save_embedding,
)

__all__ = [
    "MEDIAPIPE_FACE_OVAL",
    "MEDIAPIPE_IRIS",
    "EmbeddingConfig",
    "LandmarkEmbedding",
    "calibrate_landmarks",
    "load_embedding",
    "render_calibration_views",
    "save_embedding",
]
