"""The calibration's inputs: MediaPipe's landmark constants, :class:`EmbeddingConfig` and the views.

The steps of the calibration are described in :mod:`facerecon.calibrate.run`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from facerecon.core.check import check_positive, describe

__all__ = ["MEDIAPIPE_FACE_OVAL", "MEDIAPIPE_IRIS", "NUM_LANDMARKS", "CalibrationViews", "EmbeddingConfig"]

NUM_LANDMARKS = 478
"""MediaPipe face mesh with refined irises: 468 surface points and 10 iris points."""

# MediaPipe's face oval, the 36 points of FACEMESH_FACE_OVAL in
# google/mediapipe: mediapipe/python/solutions/face_mesh_connections.py (the points of its 36 edges),
# listed clockwise in the image from the top of the forehead (10) over the subject's left (viewer's right).
MEDIAPIPE_FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149,
    150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip

# The refined model's iris points: 468 (right iris centre) + 469-472 its ring, 473 (left centre) + 474-477
# (google/mediapipe: face_mesh_connections.py, FACEMESH_LEFT_IRIS / FACEMESH_RIGHT_IRIS).
MEDIAPIPE_IRIS: tuple[int, ...] = tuple(range(468, 478))

# Outer eye corners (subject's right, left) in MediaPipe's mesh (facerecon.detect.schemes.MEDIAPIPE_POINTS).
_EYE_OUTER = (33, 263)

# Lightings: (camera-space direction towards the light, intensity of the light in units of pi, ambient).
_LIGHTS: tuple[tuple[tuple[float, float, float], float, float], ...] = (
    ((-0.35, -0.45, -1.0), 0.70, 0.40),  # key light from the upper left of the camera
    ((0.0, -1.0, -0.5), 0.60, 0.45),  # from above
    ((0.0, 0.0, -1.0), 0.45, 0.60),  # flat, from the camera
    ((0.60, -0.25, -1.0), 0.60, 0.45),  # from the right (hard shadows: MediaPipe moves most under it)
)


@dataclass(frozen=True)
class EmbeddingConfig:
    """What :func:`calibrate_landmarks` renders and how it averages.

    Attributes:
        image_size: renders are ``image_size`` px square.
        focal: focal length, px (1000 px at 512 px: a 28.7 deg field of view, a portrait lens).
        distance: distance from the camera to the face's landmark centroid, mm.
        identity_modes: identities are the mean face and +-``identity_sigma`` on each of the first
            ``identity_modes`` identity modes (``1 + 2 * identity_modes`` identities).
        identity_sigma: the identities' coefficient, in standard deviations.
        yaws: head yaws of the views, degrees, within [-30, 30].
        pitches: head pitches of the views, degrees, within [-15, 15].
        lights: how many of the built-in lightings each view is rendered under (1-4).
        jitter: each view's yaw and pitch are moved by a seeded uniform offset of up to this many degrees
            (clipped to the ranges above) and its roll set within +-``jitter``, so held-out views are unseen poses.
        holdout_fraction: fraction of the (identity, yaw, pitch) groups held out for the reported error.
        frontal_yaw: contour landmarks use only views with a nominal |yaw| at most this, degrees.
        drift_threshold_mm: a landmark whose yaw-group centres lie further apart than this is contour-like.
        supersample: renders are rasterized at this many times the size and averaged down (antialiasing).
        trim_fraction: a candidate surface point is scored by the mean px error of its projections over the
            views after dropping this fraction of the largest errors (occlusions, detector failures).
        max_candidates: at most this many of a landmark's samples are scored as candidates (evenly spaced) next
            to the snapped geometric median; 0 keeps the snapped geometric median.
        refine_iterations: at most this many steps move each landmark's chosen point continuously over the
            surface to lower the same trimmed error (:func:`_refine_points`); 0 keeps the chosen point.
        pose_cells: also place the non-contour landmarks per (yaw, pitch) cell of the grid from that cell's views
            (:class:`~facerecon.models.LandmarkPoseTable`): MediaPipe's points move over the surface as the
            head turns, which no single surface point follows.
        seed: seed of the jitter and the hold-out split.
        batch_size: views rendered at once.
    """

    image_size: int = 512
    focal: float = 1000.0
    distance: float = 650.0
    identity_modes: int = 2
    identity_sigma: float = 1.5
    yaws: tuple[float, ...] = (-30.0, -15.0, 0.0, 15.0, 30.0)
    pitches: tuple[float, ...] = (-15.0, 0.0, 15.0)
    lights: int = 2
    jitter: float = 3.0
    holdout_fraction: float = 0.2
    frontal_yaw: float = 5.0
    drift_threshold_mm: float = 6.0
    supersample: int = 1
    trim_fraction: float = 0.2
    max_candidates: int = 64
    refine_iterations: int = 20
    pose_cells: bool = True
    seed: int = 0
    batch_size: int = 4

    def __post_init__(self) -> None:
        for name in (
            "image_size", "identity_modes", "lights", "supersample", "max_candidates", "refine_iterations", "seed",
            "batch_size",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: expected an int, got {describe(value)}")
        if self.image_size < 128:
            raise ValueError(f"image_size: expected at least 128 px, got {self.image_size}")
        if self.identity_modes < 0:
            raise ValueError(f"identity_modes: expected an int >= 0, got {self.identity_modes}")
        if not 1 <= self.lights <= len(_LIGHTS):
            raise ValueError(f"lights: expected 1 to {len(_LIGHTS)}, got {self.lights}")
        if self.seed < 0 or self.batch_size < 1 or not 1 <= self.supersample <= 4:
            raise ValueError(
                f"seed, batch_size, supersample: expected seed >= 0, batch_size >= 1 and supersample in 1-4, got "
                f"{self.seed}, {self.batch_size}, {self.supersample}"
            )
        for name in ("focal", "distance", "identity_sigma", "drift_threshold_mm"):
            check_positive(getattr(self, name), name)
        for name in ("jitter", "frontal_yaw"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 10.0:
                raise ValueError(f"{name}: expected degrees in [0, 10], got {value!r}")
        if self.max_candidates < 0:
            raise ValueError(f"max_candidates: expected an int >= 0, got {self.max_candidates}")
        if not 0 <= self.refine_iterations <= 100:
            raise ValueError(f"refine_iterations: expected an int in [0, 100], got {self.refine_iterations}")
        if not (isinstance(self.trim_fraction, (int, float)) and 0.0 <= self.trim_fraction < 1.0):
            raise ValueError(f"trim_fraction: expected a number in [0, 1), got {self.trim_fraction!r}")
        if not (isinstance(self.holdout_fraction, (int, float)) and 0.0 <= self.holdout_fraction < 1.0):
            raise ValueError(f"holdout_fraction: expected a number in [0, 1), got {self.holdout_fraction!r}")
        for name, limit in (("yaws", 30.0), ("pitches", 15.0)):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and -limit <= v <= limit for v in values
            ):
                raise ValueError(f"{name}: expected a non-empty tuple of degrees in [-{limit:g}, {limit:g}], got {values!r}")
        if len(set(self.yaws)) != len(self.yaws) or len(set(self.pitches)) != len(self.pitches):
            raise ValueError("yaws, pitches: expected distinct values")

    def to_json(self) -> str:
        """The config as a JSON object (tuples as lists)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EmbeddingConfig:
        """The inverse of :meth:`to_json`."""
        values = json.loads(text)
        for key in ("yaws", "pitches"):
            values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


@dataclass(frozen=True)
class CalibrationViews:
    """The views of one calibration (one entry per render, ``N`` renders).

    Attributes:
        identity: ``(N, K_id)`` float64 identity coefficients.
        angles: ``(N, 3)`` float64 head (pitch, yaw, roll), radians.
        nominal_yaw: ``(N,)`` float64 the grid yaw before jitter, degrees.
        nominal_pitch: ``(N,)`` float64 the grid pitch before jitter, degrees.
        light: ``(N,)`` int64 index of the lighting.
        group: ``(N,)`` int64 the (identity, yaw, pitch) group; a group's lightings share the geometry.
        heldout: ``(N,)`` bool, views not used for the embedding.
        rotation: ``(N, 3, 3)`` float64 model-to-camera rotations.
        translation: ``(N, 3)`` float64 mm.
    """

    identity: np.ndarray
    angles: np.ndarray
    nominal_yaw: np.ndarray
    nominal_pitch: np.ndarray
    light: np.ndarray
    group: np.ndarray
    heldout: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray

    def __len__(self) -> int:
        return int(self.identity.shape[0])
