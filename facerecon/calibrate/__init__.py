"""Calibration of a face model against a landmark detector (issue 4, item 3).

:func:`calibrate_landmarks` renders a :class:`~facerecon.models.FaceModel` in many identities, poses and
lightings, runs the MediaPipe face mesh on the renders, back-projects each of its 478 landmarks onto the
model's surface through the z-buffer, and keeps a robust average per landmark as a triangle of the face
sub-mesh and barycentric weights: the ``"mediapipe478"`` landmark scheme, saved in the model's cache
directory (:func:`save_embedding`) where :func:`facerecon.models.load_model` finds it.

This room may import core, io, geometry, models, render and detect; only the CLI and the top-level API import it.

Modules, in the order of the method's steps (described in :mod:`facerecon.calibrate.run`), imports one way:
``config`` (constants, :class:`EmbeddingConfig`, the views' record) and ``embedding`` (:class:`LandmarkEmbedding`);
``views`` (the renders), ``backproject`` (detection and back-projection), ``surface`` (geometric median, nearest
surface points), ``place`` (candidates, refinement, pose cells, drift, held-out error), ``store`` (the file) and
``run`` (:func:`calibrate_landmarks`).

Example:
    >>> from facerecon.calibrate import calibrate_landmarks, save_embedding   # doctest: +SKIP
    >>> model = facerecon.load_model()                                        # doctest: +SKIP
    >>> embedding = calibrate_landmarks(model)                                # doctest: +SKIP
    >>> save_embedding(embedding, model.info["cache"])                        # doctest: +SKIP
    >>> embedding.heldout_median_px                                           # doctest: +SKIP
"""

from facerecon.calibrate.config import MEDIAPIPE_FACE_OVAL, MEDIAPIPE_IRIS, EmbeddingConfig
from facerecon.calibrate.embedding import LandmarkEmbedding
from facerecon.calibrate.run import calibrate_landmarks
from facerecon.calibrate.store import load_embedding, save_embedding
from facerecon.calibrate.views import render_calibration_views

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
