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
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from facerecon.core.check import check_positive, describe
from facerecon.core.errors import ModelCacheError, NoFaceError
from facerecon.geometry.camera import PerspectiveCamera, transform
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.geometry.rotation import head_angles_to_camera_rotation, viewed_head_angles
from facerecon.io.atomic import write_bytes_atomic
from facerecon.models import ict_layout
from facerecon.models.face_model import FaceModel, LandmarkPoseTable, LandmarkScheme
from facerecon.models.landmark_file import (
    EMBEDDING_FORMAT_VERSION,
    MEDIAPIPE_EMBEDDING_FILE,
    MEDIAPIPE_SCHEME,
    embedding_scheme,
    read_embedding_arrays,
)
from facerecon.models.regions import Region
from facerecon.render.rasterize import rasterize
from facerecon.render.sh import directional_sh, shade

__all__ = [
    "MEDIAPIPE_FACE_OVAL",
    "MEDIAPIPE_IRIS",
    "NUM_LANDMARKS",
    "EmbeddingConfig",
    "LandmarkEmbedding",
    "CalibrationViews",
    "calibrate_landmarks",
    "render_calibration_views",
    "save_embedding",
    "load_embedding",
    "embedding_path",
]

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

# ICT-FaceKit eyeballs (facerecon.models.ict_layout.GEOMETRIES, from the ICT README): each is two nested
# spheres of ~15 mm radius, "sclera" (the outer shell, transparent over the iris in ICT's shaders) and "iris"
# (the inner one), both whole balls looking along +z. The renders paint both shells by the angle from the
# eyeball's forward axis: a brown iris disc and a black pupil in front, white sclera elsewhere.
_ICT_VERTEX_COUNT = ict_layout.VERTEX_COUNT
_ICT_EYEBALLS = (ict_layout.GEOMETRIES["eyeball_left"][0], ict_layout.GEOMETRIES["eyeball_right"][0])
_IRIS_RADIUS = 0.42  # iris radius / eyeball radius (human eye: iris ~6 mm, eyeball ~12 mm)
_PUPIL_RADIUS = 0.16

# Albedos (linear RGB in [0, 1]) of the calibration renders; plausible, not measured.
_SKIN = (0.80, 0.60, 0.50)
_LIPS = (0.62, 0.32, 0.32)
_BROWS = (0.22, 0.15, 0.11)
_MOUTH_INSIDE = (0.30, 0.10, 0.10)
_SCLERA = (0.92, 0.90, 0.88)
_IRIS = (0.32, 0.21, 0.13)
_PUPIL = (0.03, 0.03, 0.03)
_BACKGROUND = (0.55, 0.57, 0.60)

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


@dataclass(frozen=True, eq=False)
class LandmarkEmbedding:
    """MediaPipe's 478 landmarks on a face model: per landmark a triangle of the ``face`` sub-mesh and weights.

    Attributes:
        triangles: ``(478, 3)`` int64 vertex indices (a triangle of the ``face`` sub-mesh), zeros where not
            ``embedded``.
        weights: ``(478, 3)`` float64 barycentric weights (non-negative, summing to 1), zeros where not embedded.
        contour: ``(478,)`` bool, the face-oval points (:data:`MEDIAPIPE_FACE_OVAL`); their stored point is
            the one seen in frontal views.
        embedded: ``(478,)`` bool, False for the iris points and any landmark without samples.
        drift_mm: ``(478,)`` float64 pose drift: the largest distance between the centres of the landmark's
            samples in different yaw groups, on the mean face, mm (NaN without enough samples).
        sample_counts: ``(478,)`` int64 samples that went into each landmark.
        heldout_errors: ``(H, 478)`` float64 px distance between the projected embedding and the detection in
            each held-out render where a face was found (NaN for landmarks not embedded).
        heldout_iod: ``(H,)`` float64 the detected outer-eye-corner distance (landmarks 33-263) in those renders,
            px: the scale of the normalised error (NME) :attr:`heldout_median_nme`.
        config: the :class:`EmbeddingConfig`.
        renders: total number of renders.
        renders_used: renders with a detected face that went into the embedding.
        renders_heldout: held-out renders with a detected face (the rows of ``heldout_errors``).
        model_source_sha256: the calibrated model's source SHA-256 (``model.info["source_sha256"]``).
        vertex_count: vertices of the ``face`` sub-mesh the triangles index.
        seconds: wall time of the calibration (not saved; 0 for a loaded embedding).
        poses: the landmarks per head-pose cell (:class:`~facerecon.models.LandmarkPoseTable`; None when
            ``config.pose_cells`` is off). ``heldout_errors`` use the cell of each held-out render's pose.
        heldout_errors_posefree: ``(H, 478)`` the held-out errors of the pose-free ``triangles`` (the baseline).
    """

    triangles: np.ndarray
    weights: np.ndarray
    contour: np.ndarray
    embedded: np.ndarray
    drift_mm: np.ndarray
    sample_counts: np.ndarray
    heldout_errors: np.ndarray
    heldout_iod: np.ndarray
    config: EmbeddingConfig
    renders: int
    renders_used: int
    renders_heldout: int
    model_source_sha256: str
    vertex_count: int
    seconds: float = 0.0
    poses: LandmarkPoseTable | None = None
    heldout_errors_posefree: np.ndarray | None = None

    @property
    def scored(self) -> np.ndarray:
        """``(478,)`` bool: the landmarks the headline error is over (embedded, not contour)."""
        return self.embedded & ~self.contour

    @property
    def heldout_median_px(self) -> float:
        """Median held-out reprojection error of the embedded non-contour landmarks, px."""
        return float(np.median(self._scored_errors())) if self._scored_errors().size else math.nan

    @property
    def heldout_p90_px(self) -> float:
        """90th percentile of the held-out reprojection error of the embedded non-contour landmarks, px."""
        return float(np.percentile(self._scored_errors(), 90)) if self._scored_errors().size else math.nan

    @property
    def heldout_median_nme(self) -> float:
        """Median held-out error of the non-contour landmarks over the outer-eye-corner distance (framing-free)."""
        nme = self.heldout_errors[:, self.scored] / self.heldout_iod[:, None]
        nme = nme[np.isfinite(nme)]
        return float(np.median(nme)) if nme.size else math.nan

    @property
    def drifting(self) -> np.ndarray:
        """Indices of the landmarks whose pose drift exceeds ``config.drift_threshold_mm`` (contour-like)."""
        drift = np.nan_to_num(self.drift_mm, nan=0.0)
        return np.flatnonzero(drift > self.config.drift_threshold_mm)

    @property
    def heldout_posefree_median_px(self) -> float:
        """Median held-out error of the pose-free points (one point per landmark at every pose), px."""
        if self.heldout_errors_posefree is None:
            return self.heldout_median_px
        return float(np.median(self._scored_errors(self.heldout_errors_posefree)))

    def _scored_errors(self, errors: np.ndarray | None = None) -> np.ndarray:
        errors = (self.heldout_errors if errors is None else errors)[:, self.scored]
        return errors[np.isfinite(errors)]

    def to_scheme(self) -> LandmarkScheme:
        """The embedding as the barycentric ``"mediapipe478"`` :class:`LandmarkScheme` (CPU)."""
        return embedding_scheme(_core_arrays(self))

    def points(self, vertices: torch.Tensor) -> torch.Tensor:
        """``(B, 478, 3)`` landmark positions on faces ``(B, V, 3)`` mm (NaN rows where not embedded)."""
        return self.to_scheme().points(vertices)

    def summary(self) -> str:
        """A few lines for people: renders, held-out error, contour points found from the data."""
        oval = set(MEDIAPIPE_FACE_OVAL)
        found = set(self.drifting.tolist())
        return "\n".join(
            [
                f"renders      {self.renders} ({self.renders_used} used, {self.renders_heldout} held out with a face)",
                f"embedded     {int(self.embedded.sum())} of {NUM_LANDMARKS} landmarks (iris points not embedded), "
                f"{int(self.contour.sum())} contour (face oval)",
                f"held-out     median {self.heldout_median_px:.2f} px, 90th percentile {self.heldout_p90_px:.2f} px "
                f"({int(self.scored.sum())} non-contour landmarks at {self.config.image_size} px), median "
                f"{100 * self.heldout_median_nme:.2f} % of the outer-eye-corner distance"
                + ("" if self.poses is None else f"; per pose cell ({len(self.poses.yaws)} yaws x "
                   f"{len(self.poses.pitches)} pitches), pose-free points: {self.heldout_posefree_median_px:.2f} px"),
                f"drifting     {len(found)} landmarks move > {self.config.drift_threshold_mm:g} mm across yaws: "
                f"{len(found & oval)} of the {len(oval)} face-oval points, {len(found - oval)} others "
                f"{sorted(found - oval)}",
            ]
        )


# ------------------------------------------------------------------------------------------- appearance
def _albedo(model: FaceModel, vertex_count: int) -> torch.Tensor:
    """``(V_sub, 3)`` float32 per-vertex albedo of the calibration renders."""
    labels = model.region_labels[:vertex_count].cpu()
    albedo = torch.tensor(_SKIN).repeat(vertex_count, 1)
    albedo[labels == int(Region.MOUTH)] = torch.tensor(_LIPS)
    albedo[labels == int(Region.EYEBROWS)] = torch.tensor(_BROWS)
    albedo[labels == int(Region.MOUTH_INTERIOR)] = torch.tensor(_MOUTH_INSIDE)
    eyeball = labels == int(Region.EYEBALLS)
    albedo[eyeball] = torch.tensor(_SCLERA)
    if model.vertex_count == _ICT_VERTEX_COUNT:  # ICT's eyeballs: paint the iris and the pupil
        mean = model.mean.detach().cpu()
        for ball in _ICT_EYEBALLS:
            if ball.stop > vertex_count:
                continue
            idx = torch.arange(ball.start, ball.stop)
            pts = mean[idx]
            centre = (pts.min(0).values + pts.max(0).values) / 2
            radius = float((pts.max(0).values - pts.min(0).values).max()) / 2
            off_axis = (pts[:, :2] - centre[:2]).norm(dim=1) / radius  # sin of the angle from the +z axis
            front = pts[:, 2] > centre[2]
            albedo[idx[front & (off_axis < _IRIS_RADIUS)]] = torch.tensor(_IRIS)
            albedo[idx[front & (off_axis < _PUPIL_RADIUS)]] = torch.tensor(_PUPIL)
    return albedo


# ------------------------------------------------------------------------------------------------ views
def _views(model: FaceModel, config: EmbeddingConfig) -> CalibrationViews:
    """The grid of identities x poses x lightings, with seeded jitter and hold-out split."""
    k = model.identity_count
    identities = [np.zeros(k)]
    for mode in range(min(config.identity_modes, k)):
        for sign in (1.0, -1.0):
            coeffs = np.zeros(k)
            coeffs[mode] = sign * config.identity_sigma
            identities.append(coeffs)
    rng = np.random.default_rng(config.seed)
    groups = [(i, yaw, pitch) for i in range(len(identities)) for yaw in config.yaws for pitch in config.pitches]
    n_out = int(round(config.holdout_fraction * len(groups)))
    heldout_groups = set(rng.permutation(len(groups))[:n_out].tolist())
    jitter = rng.uniform(-1.0, 1.0, size=(len(groups), 3)) * config.jitter
    rows = []
    for g, (i, yaw, pitch) in enumerate(groups):
        pitch_j = float(np.clip(pitch + jitter[g, 0], -15.0, 15.0))
        yaw_j = float(np.clip(yaw + jitter[g, 1], -30.0, 30.0))
        roll_j = float(jitter[g, 2])
        for light in range(config.lights):
            rows.append((i, (pitch_j, yaw_j, roll_j), yaw, light, g, g in heldout_groups, pitch))
    identity = np.stack([identities[r[0]] for r in rows])
    angles = np.radians(np.array([r[1] for r in rows], dtype=np.float64))
    rotation = head_angles_to_camera_rotation(torch.from_numpy(angles)).numpy()
    # Centre the face: the landmark centroid of each identity goes to (0, 0, distance) in camera space.
    centroid = _landmark_centroids(model, identity)
    translation = np.array([0.0, 0.0, config.distance]) - np.einsum("nij,nj->ni", rotation, centroid)
    return CalibrationViews(
        identity=identity,
        angles=angles,
        nominal_yaw=np.array([r[2] for r in rows], dtype=np.float64),
        nominal_pitch=np.array([r[6] for r in rows], dtype=np.float64),
        light=np.array([r[3] for r in rows], dtype=np.int64),
        group=np.array([r[4] for r in rows], dtype=np.int64),
        heldout=np.array([r[5] for r in rows], dtype=bool),
        rotation=rotation,
        translation=translation,
    )


def _landmark_centroids(model: FaceModel, identity: np.ndarray) -> np.ndarray:
    """``(N, 3)`` the centroid of the iBUG-68 landmarks of each identity (the centre of the face), mm."""
    if "ibug68" in model.landmark_scheme_names:
        idx = model.landmarks("ibug68").vertex_indices.cpu()
    else:
        idx = torch.arange(model.submesh("face").vertex_count)
    basis = model.identity_basis.detach().cpu().double()[:, idx]  # (K, L, 3)
    mean = model.mean.detach().cpu().double()[idx]
    pts = mean[None] + torch.einsum("nk,klc->nlc", torch.from_numpy(identity), basis)
    return pts.mean(1).numpy()


def _camera(config: EmbeddingConfig, batch: int) -> PerspectiveCamera:
    return PerspectiveCamera.from_focal(
        config.focal, config.image_size, config.image_size, batch, dtype=torch.float64
    )


@dataclass(frozen=True)
class _RenderBatch:
    images: np.ndarray  # (b, S, S, 3) uint8
    screen: torch.Tensor  # (b, V_head, 3) float64 (u, v, z) in px of the supersampled raster
    face_index: np.ndarray  # (b, S * ss, S * ss) int64, the supersampled raster
    scale: int  # supersampling factor ss: raster u' + 0.5 = ss * (u + 0.5)


def _render_batch(
    model: FaceModel, config: EmbeddingConfig, views: CalibrationViews, rows: np.ndarray, albedo: torch.Tensor
) -> _RenderBatch:
    """Render views ``rows``: rasterize at ``supersample`` times the size and average blocks (antialiasing)."""
    head = model.submesh("head")
    faces = head.triangles.cpu()
    ss = config.supersample
    size = config.image_size * ss
    identity = torch.from_numpy(views.identity[rows]).to(model.mean.dtype)
    with torch.no_grad():
        vertices = model(identity.to(model.mean.device), submesh="head").cpu().double()
        rotation = torch.from_numpy(views.rotation[rows])
        translation = torch.from_numpy(views.translation[rows])
        cam_pts = transform(vertices, rotation, translation)
        screen = _camera(config, len(rows)).resized(size, size).project_with_depth(cam_pts)
        fragments = rasterize(screen, faces, (size, size))
        normals = vertex_normals(cam_pts, faces)
        lights = [_LIGHTS[i] for i in views.light[rows]]
        direction = torch.tensor([d for d, _, _ in lights], dtype=torch.float64)
        colour = torch.tensor([[math.pi * s] * 3 for _, s, _ in lights], dtype=torch.float64)
        ambient = torch.tensor([[a] * 3 for _, _, a in lights], dtype=torch.float64)
        sh = directional_sh(direction, colour, ambient)
        # Shade per vertex (Gouraud) and interpolate the colours: enough for a detector, and cheap.
        colours = shade(albedo.double()[None].expand(len(rows), -1, -1).contiguous(), normals, sh).clamp(0.0, 1.0)
        fi = fragments.face_index
        corners = faces[fi.clamp_min(0)]  # (b, H, W, 3)
        pix = torch.stack(
            [torch.einsum("hwkc,hwk->hwc", colours[b][corners[b]], fragments.bary[b]) for b in range(len(rows))]
        )
        background = torch.tensor(_BACKGROUND, dtype=torch.float64)
        image = torch.where((fi >= 0)[..., None], pix, background)
        if ss > 1:  # average ss x ss blocks: pixel (x, y) of the image covers raster pixels ss*x .. ss*x + ss-1
            image = torch.nn.functional.avg_pool2d(image.permute(0, 3, 1, 2), ss).permute(0, 2, 3, 1)
        images = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    return _RenderBatch(np.ascontiguousarray(images), screen, fi.numpy(), ss)


def render_calibration_views(
    model: FaceModel, config: EmbeddingConfig = EmbeddingConfig(), rows: Sequence[int] | None = None
) -> tuple[np.ndarray, CalibrationViews]:
    """The calibration renders, for looking at them (what :func:`calibrate_landmarks` shows the detector).

    Args:
        model: the face model.
        config: the views.
        rows: which views (default all).

    Returns:
        ``(images, views)``: ``(N, S, S, 3)`` uint8 RGB renders of the chosen rows and all the views.
    """
    _check_model(model)
    if not isinstance(config, EmbeddingConfig):
        raise TypeError(f"config: expected an EmbeddingConfig, got {describe(config)}")
    views = _views(model, config)
    chosen = np.arange(len(views)) if rows is None else np.asarray(list(rows), dtype=np.int64)
    if chosen.size and (chosen.min() < 0 or chosen.max() >= len(views)):
        raise ValueError(f"rows: expected view indices in [0, {len(views)}), got [{chosen.min()}, {chosen.max()}]")
    albedo = _albedo(model, model.submesh("head").vertex_count)
    images = [
        _render_batch(model, config, views, chosen[s : s + config.batch_size], albedo).images
        for s in range(0, len(chosen), config.batch_size)
    ]
    size = config.image_size
    return (np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)), views


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


# ------------------------------------------------------------------------------------------ calibration
def _check_model(model: Any) -> None:
    if not isinstance(model, FaceModel):
        raise TypeError(f"model: expected a FaceModel, got {describe(model)}")
    for name in ("face", "head"):
        if name not in model.submesh_names:
            raise ValueError(f"model: expected a model with a {name!r} sub-mesh, got sub-meshes {model.submesh_names}")


def calibrate_landmarks(
    model: FaceModel,
    detector: Any | None = None,
    config: EmbeddingConfig = EmbeddingConfig(),
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


class _Projector:
    """Projects surface points given as (triangle, barycentrics) into views, on each view's identity."""

    def __init__(self, model: FaceModel, config: EmbeddingConfig, views: CalibrationViews, rows: np.ndarray) -> None:
        with torch.no_grad():
            identity = torch.from_numpy(views.identity[rows]).to(model.mean.device, model.mean.dtype)
            self.vertices = model(identity, submesh="face").cpu().double().numpy()  # (N, V_face, 3)
        self.rotation = views.rotation[rows]
        self.translation = views.translation[rows]
        self.focal = config.focal
        self.centre = (config.image_size - 1) / 2.0

    def __call__(self, triangles: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``(C, 3)`` vertex triples and weights -> ``(C, N, 2)`` px in every view (pixel centres at integers)."""
        points = np.einsum("ck,nckx->cnx", weights, self.vertices[:, triangles])  # model space, each identity
        cam = np.einsum("nij,cnj->cni", self.rotation, points) + self.translation
        return self.focal * cam[..., :2] / cam[..., 2:3] + self.centre


def _trimmed_objective(errors: np.ndarray, valid: np.ndarray, keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``errors (N, L)``: the mean of its smallest ``keep`` fraction of valid entries, and the largest
    entry kept (``(L,)`` each; at least one entry per column, every column has a valid entry)."""
    count = np.maximum(1, np.ceil(keep * valid.sum(axis=0))).astype(np.int64)
    ordered = np.sort(np.where(valid, errors, np.inf), axis=0)
    kept = np.arange(errors.shape[0])[:, None] < count
    mean = np.where(kept, ordered, 0.0).sum(axis=0) / count
    return mean, np.take_along_axis(ordered, (count - 1)[None], axis=0)[0]


def _refine_points(
    project: _Projector,
    triangles: np.ndarray,
    weights: np.ndarray,
    detections: np.ndarray,
    scope: np.ndarray,
    surface: tuple[np.ndarray, np.ndarray],
    keep: float,
    iterations: int,
    max_step_mm: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Move surface points continuously to lower their trimmed mean px error over the views.

    Each point starts at ``(triangles, weights)`` and minimises the same score the candidates were chosen by:
    the mean of the smallest ``keep`` fraction of its px errors over the views in ``scope``. A step is one
    iteratively reweighted Gauss-Newton step on the two free barycentrics (weights ``1 / error`` over the kept
    views: a least-absolute-deviation fit), limited to ``max_step_mm`` on the mean face; a step that leaves the
    triangle continues in its plane and is snapped back to the nearest point of the surface (a neighbouring
    triangle). A step is taken only if it lowers the score (else halved, up to three times), so the result is
    never worse on the views than the start; points stop when no step helps.

    Args:
        project: the training views' projector.
        triangles: ``(P, 3)`` int64 vertex indices of the ``face`` sub-mesh.
        weights: ``(P, 3)`` float64 barycentrics.
        detections: ``(N, P, 2)`` detected px in the projector's views.
        scope: ``(N, P)`` bool, the views that count for each point.
        surface: ``(vertices (V, 3) mm, faces (F, 3))`` the mean face the points are snapped to.
        keep: fraction of the smallest errors kept.
        iterations: at most this many steps.
        max_step_mm: longest step on the mean face, mm.

    Returns:
        ``(triangles (P, 3), weights (P, 3))``, new arrays.
    """
    mean, faces = surface
    tree = cKDTree(mean[faces].mean(1))
    tri, bary = triangles.copy(), weights.copy()

    def residuals(tri: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        corners = project.vertices[:, tri]  # (N, P, 3 corners, 3)
        cam = np.einsum("nij,npj->npi", project.rotation, np.einsum("pk,npkc->npc", bary, corners))
        cam += project.translation[:, None]
        r = project.focal * cam[..., :2] / cam[..., 2:3] + project.centre - detections
        return corners, cam, r

    corners, cam, r = residuals(tri, bary)
    dist = np.linalg.norm(r, axis=-1)
    score, threshold = _trimmed_objective(dist, scope, keep)
    active = np.ones(tri.shape[0], dtype=bool)
    for _ in range(iterations):
        # Jacobian of the px position with respect to the barycentrics (b1, b2), b0 = 1 - b1 - b2.
        edges = np.stack([corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]], axis=-1)
        d_cam = np.einsum("nij,npjk->npik", project.rotation, edges)  # (N, P, 3, 2)
        z = cam[..., 2:3, None]
        jac = project.focal / z * (d_cam[:, :, :2] - cam[..., :2, None] / z * d_cam[:, :, 2:3])  # (N, P, 2, 2)
        w = (scope & (dist <= threshold)) / np.maximum(dist, 0.05)
        normal = np.einsum("np,npij,npik->pjk", w, jac, jac) + 1e-9 * np.eye(2)
        step = -np.linalg.solve(normal, np.einsum("np,npij,npi->pj", w, jac, r)[..., None])[..., 0]
        along = np.stack([mean[tri[:, 1]] - mean[tri[:, 0]], mean[tri[:, 2]] - mean[tri[:, 0]]], axis=-1)
        length = np.linalg.norm(np.einsum("pij,pj->pi", along, step), axis=1)
        step *= np.minimum(1.0, max_step_mm / np.maximum(length, 1e-12))[:, None]
        step[~active] = 0.0
        moved = np.zeros(tri.shape[0], dtype=bool)
        for _halving in range(4):
            trying = active & ~moved & (np.abs(step).sum(axis=1) > 0)
            if not trying.any():
                break
            new_tri, new_bary = tri.copy(), bary.copy()
            new_bary[trying] += np.stack([-step[trying].sum(axis=1), step[trying, 0], step[trying, 1]], axis=1)
            out = trying & (new_bary < 0).any(axis=1)
            if out.any():  # left the triangle: the point in its plane, snapped to the surface
                point = np.einsum("pk,pkc->pc", new_bary[out], mean[tri[out]])
                snap_tri, new_bary[out] = _snap(point, mean, faces, tree=tree)
                new_tri[out] = faces[snap_tri]
            new_corners, new_cam, new_r = residuals(new_tri, new_bary)
            new_dist = np.linalg.norm(new_r, axis=-1)
            new_score, new_threshold = _trimmed_objective(new_dist, scope, keep)
            better = trying & (new_score < score - 1e-9)
            tri[better], bary[better], score[better], threshold[better] = (
                new_tri[better], new_bary[better], new_score[better], new_threshold[better]
            )
            corners[:, better], cam[:, better], r[:, better], dist[:, better] = (
                new_corners[:, better], new_cam[:, better], new_r[:, better], new_dist[:, better]
            )
            moved |= better
            step *= 0.5
        active &= moved
        if not active.any():
            break
    return tri, bary


def _embed(
    model: FaceModel, config: EmbeddingConfig, views: CalibrationViews, det: _Detections, seconds: float
) -> LandmarkEmbedding:
    face = model.submesh("face")
    faces = face.triangles.cpu().numpy()
    mean = model.mean.detach().cpu().double().numpy()[: face.vertex_count]
    used = det.found & ~views.heldout
    if used.sum() < 3:
        raise NoFaceError(
            f"the detector found a face in {int(used.sum())} of {int((~views.heldout).sum())} calibration renders; "
            "at least 3 are needed (is the model a face?)"
        )
    train = np.flatnonzero(used)
    project = _Projector(model, config, views, train)
    frontal = np.abs(views.nominal_yaw[train]) <= config.frontal_yaw
    contour = np.zeros(NUM_LANDMARKS, dtype=bool)
    contour[list(MEDIAPIPE_FACE_OVAL)] = True
    iris = np.zeros(NUM_LANDMARKS, dtype=bool)
    iris[list(MEDIAPIPE_IRIS)] = True

    # Per landmark, its samples in the views in scope (contour landmarks keep their frontal point: samples and
    # scores from frontal views only) and their robust centre on the mean face (the samples' barycentrics
    # applied to its corners): the geometric median.
    scopes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    counts = np.zeros(NUM_LANDMARKS, dtype=np.int64)
    for l in np.flatnonzero(~iris):
        has = det.tri[train, l] >= 0
        scope = frontal if (contour[l] and (has & frontal).sum() >= 3) else np.ones(len(train), dtype=bool)
        pick = np.flatnonzero(has & scope)
        counts[l] = pick.size
        if pick.size:
            scopes[int(l)] = (scope, pick)
    triangles, weights, embedded = _place(config, det, train, project, scopes, mean, faces)
    poses = None
    if config.pose_cells:
        poses = _pose_table(model, config, views, det, train, triangles, weights, embedded & ~contour, mean, faces)
    drift = _pose_drift(config, views, det, train, project, triangles, weights, embedded)
    posefree_errors = _heldout_errors(model, config, views, det, triangles, weights, embedded)
    errors = posefree_errors if poses is None else _heldout_errors(model, config, views, det, triangles, weights, embedded, poses)
    heldout = det.landmarks[views.heldout & det.found]
    iod = np.linalg.norm(heldout[:, _EYE_OUTER[0]] - heldout[:, _EYE_OUTER[1]], axis=-1)
    return LandmarkEmbedding(
        triangles=triangles,
        weights=weights,
        contour=contour,
        embedded=embedded,
        drift_mm=drift,
        sample_counts=counts,
        heldout_errors=errors,
        heldout_iod=iod,
        config=config,
        poses=poses,
        heldout_errors_posefree=posefree_errors,
        renders=len(views),
        renders_used=int(used.sum()),
        renders_heldout=int((det.found & views.heldout).sum()),
        model_source_sha256=str(model.info.get("source_sha256", "")),
        vertex_count=face.vertex_count,
        seconds=seconds,
    )


MIN_CELL_VIEWS = 3
"""A pose cell needs this many training views with a face (and a landmark this many samples there)."""


def _place(
    config: EmbeddingConfig,
    det: _Detections,
    train: np.ndarray,
    project: _Projector,
    scopes: dict[int, tuple[np.ndarray, np.ndarray]],
    mean: np.ndarray,
    faces: np.ndarray,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each landmark of ``scopes`` placed on the mean face from its samples in the ``train`` views.

    ``scopes[l] = (scope, pick)``: the views (bool over ``train``) that score landmark ``l`` and those of them
    (indices into ``train``) with a sample. The snapped geometric median of the samples (or the point of
    ``start``: ``(478, 3)`` face indices of the triangles and weights) and (an evenly spaced subset of) the
    samples themselves are the candidates; the one whose projections agree best with the detections (trimmed
    mean px error over the views in scope) wins, then moves continuously (refinement).

    Returns:
        ``(478, 3)`` triangles, ``(478, 3)`` weights and ``(478,)`` embedded (False outside ``scopes``).
    """
    landmarks = np.array(sorted(scopes), dtype=np.int64)
    if start is not None:
        first_tri, first_bary = start[0][landmarks], start[1][landmarks]
    else:
        centres = np.zeros((len(landmarks), 3))
        for j, l in enumerate(landmarks):
            pick = scopes[int(l)][1]
            pts = np.einsum("nk,nkc->nc", det.bary[train[pick], l], mean[faces[det.tri[train[pick], l]]])
            centres[j] = _geometric_median(pts)
        snap, first_bary = _snap(centres, mean, faces) if landmarks.size else (np.zeros(0, np.int64), np.zeros((0, 3)))
        first_tri = faces[snap]

    triangles = np.zeros((NUM_LANDMARKS, 3), dtype=np.int64)
    weights = np.zeros((NUM_LANDMARKS, 3))
    embedded = np.zeros(NUM_LANDMARKS, dtype=bool)
    in_scope = np.zeros((len(train), NUM_LANDMARKS), dtype=bool)
    for j, l in enumerate(landmarks):
        scope, pick = scopes[int(l)]
        in_scope[:, l] = scope
        # Candidates: the snapped centre and (an evenly spaced subset of) the samples themselves. The one whose
        # projections agree best with the detections (trimmed mean px error over the views in scope) wins.
        sub = pick[np.linspace(0, pick.size - 1, min(pick.size, config.max_candidates)).round().astype(np.int64)]
        cand_tri = np.concatenate([first_tri[j : j + 1], faces[det.tri[train[sub], l]]])
        cand_bary = np.concatenate([first_bary[j : j + 1], det.bary[train[sub], l]])
        uv = project(cand_tri, cand_bary)[:, scope]
        errors = np.linalg.norm(uv - det.landmarks[train[scope], l], axis=-1)
        best = int(np.argmin(_trimmed_objective(errors.T, np.ones(errors.T.shape, dtype=bool), 1.0 - config.trim_fraction)[0]))
        triangles[l], weights[l], embedded[l] = cand_tri[best], cand_bary[best], True
    if config.refine_iterations and landmarks.size:
        triangles[landmarks], weights[landmarks] = _refine_points(
            project,
            triangles[landmarks],
            weights[landmarks],
            det.landmarks[train][:, landmarks],
            in_scope[:, landmarks],
            (mean, faces),
            1.0 - config.trim_fraction,
            config.refine_iterations,
        )
    return triangles, weights, embedded


def _pose_table(
    model: FaceModel,
    config: EmbeddingConfig,
    views: CalibrationViews,
    det: _Detections,
    train: np.ndarray,
    triangles: np.ndarray,
    weights: np.ndarray,
    posed: np.ndarray,
    mean: np.ndarray,
    faces: np.ndarray,
) -> LandmarkPoseTable:
    """The ``posed`` landmarks placed again from the training views of each (yaw, pitch) cell of the grid.

    A cell with fewer than :data:`MIN_CELL_VIEWS` training views with a face keeps the pose-free points (as do
    the landmarks not ``posed``: contours, which slide anyway, and those not embedded).
    """
    yaws, pitches = tuple(sorted(config.yaws)), tuple(sorted(config.pitches))
    table_tri = np.broadcast_to(triangles, (len(yaws), len(pitches)) + triangles.shape).copy()
    table_w = np.broadcast_to(weights, (len(yaws), len(pitches)) + weights.shape).copy()
    for iy, yaw in enumerate(yaws):
        for ip, pitch in enumerate(pitches):
            cell = train[(views.nominal_yaw[train] == yaw) & (views.nominal_pitch[train] == pitch)]
            if len(cell) < MIN_CELL_VIEWS:
                continue
            scopes = {}
            for l in np.flatnonzero(posed):
                pick = np.flatnonzero(det.tri[cell, l] >= 0)
                if pick.size >= MIN_CELL_VIEWS:
                    scopes[int(l)] = (np.ones(len(cell), dtype=bool), pick)
            project = _Projector(model, config, views, cell)
            tri, w, placed = _place(config, det, cell, project, scopes, mean, faces, start=(triangles, weights))
            table_tri[iy, ip, placed], table_w[iy, ip, placed] = tri[placed], w[placed]
    return LandmarkPoseTable(yaws, pitches, torch.from_numpy(table_tri), torch.from_numpy(table_w))


def _pose_drift(
    config: EmbeddingConfig,
    views: CalibrationViews,
    det: _Detections,
    train: np.ndarray,
    project: _Projector,
    triangles: np.ndarray,
    weights: np.ndarray,
    embedded: np.ndarray,
) -> np.ndarray:
    """``(478,)`` how far each detected landmark slides over the surface between yaw groups, mm.

    Per yaw group, the median of the residuals (detection minus projected embedding, px) over its views;
    the drift is the largest distance between two groups' medians, scaled to mm at the face's distance
    (``distance / focal`` mm per px). A point fixed on the surface has residuals that do not depend on yaw;
    a contour point follows the silhouette and its residual turns with the head.
    """
    drift = np.full(NUM_LANDMARKS, np.nan)
    idx = np.flatnonzero(embedded)
    uv = project(triangles[idx], weights[idx])  # (L, N, 2)
    residual = det.landmarks[train][:, idx].transpose(1, 0, 2) - uv
    yaw = views.nominal_yaw[train]
    medians = [np.median(residual[:, yaw == y], axis=1) for y in config.yaws if (yaw == y).sum() >= 2]
    if len(medians) >= 2:
        m = np.stack(medians, 1)  # (L, G, 2)
        spread = np.linalg.norm(m[:, :, None] - m[:, None], axis=-1).max(axis=(1, 2))
        drift[idx] = spread * config.distance / config.focal
    return drift


def _heldout_errors(
    model: FaceModel,
    config: EmbeddingConfig,
    views: CalibrationViews,
    det: _Detections,
    triangles: np.ndarray,
    weights: np.ndarray,
    embedded: np.ndarray,
    poses: LandmarkPoseTable | None = None,
) -> np.ndarray:
    """``(H, 478)`` px distances between projected embedded landmarks and detections in the held-out renders.

    With ``poses``, each render's landmarks are those of the cell of its head pose as the camera sees it
    (:func:`facerecon.geometry.rotation.viewed_head_angles`), as a fit looks them up.
    """
    rows = np.flatnonzero(views.heldout & det.found)
    if rows.size == 0:
        return np.zeros((0, NUM_LANDMARKS))
    project = _Projector(model, config, views, rows)
    if poses is None:
        uv = project(triangles, weights).transpose(1, 0, 2)  # (H, 478, 2)
    else:
        angles = np.degrees(viewed_head_angles(torch.from_numpy(views.rotation[rows]), torch.from_numpy(views.translation[rows])).numpy())
        cells = [poses.cell(pitch, yaw) for pitch, yaw, _ in angles]
        uv = np.zeros((rows.size, NUM_LANDMARKS, 2))
        for cell in set(cells):  # each cell's points projected into all views, kept in the views of that cell
            in_cell = np.array([c == cell for c in cells])
            uv[in_cell] = project(poses.triangles[cell].numpy(), poses.weights[cell].numpy())[:, in_cell].transpose(1, 0, 2)
    errors = np.linalg.norm(uv - det.landmarks[rows], axis=-1)
    errors[:, ~embedded] = np.nan
    return errors


# ------------------------------------------------------------------------------------------------- files
def embedding_path(model_cache_dir: str | os.PathLike[str]) -> Path:
    """Where the MediaPipe embedding lives in a model's cache directory."""
    if not isinstance(model_cache_dir, (str, os.PathLike)):
        raise TypeError(f"model_cache_dir: expected a directory path, got {describe(model_cache_dir)}")
    return Path(model_cache_dir) / MEDIAPIPE_EMBEDDING_FILE


def _core_arrays(embedding: LandmarkEmbedding) -> dict[str, Any]:
    return {
        "format_version": np.int64(EMBEDDING_FORMAT_VERSION),
        "scheme": MEDIAPIPE_SCHEME,
        "model_source_sha256": embedding.model_source_sha256,
        "vertex_count": int(embedding.vertex_count),
        "submesh": "face",
        "triangles": embedding.triangles,
        "weights": embedding.weights,
        "contour": embedding.contour,
        "embedded": embedding.embedded,
        **({} if embedding.poses is None else {
            "pose_yaws": np.asarray(embedding.poses.yaws, dtype=np.float64),
            "pose_pitches": np.asarray(embedding.poses.pitches, dtype=np.float64),
            "pose_triangles": embedding.poses.triangles.numpy(),
            "pose_weights": embedding.poses.weights.numpy(),
        }),
    }  # fmt: skip


def save_embedding(embedding: LandmarkEmbedding, model_cache_dir: str | os.PathLike[str]) -> Path:
    """Write the embedding to ``model_cache_dir / "landmarks_mediapipe478.npz"`` atomically.

    Args:
        embedding: from :func:`calibrate_landmarks`.
        model_cache_dir: the model's cache directory, ``model.info["cache"]``.

    Returns:
        The file's path. :func:`facerecon.models.load_model` registers it as the ``"mediapipe478"`` scheme.
    """
    if not isinstance(embedding, LandmarkEmbedding):
        raise TypeError(f"embedding: expected a LandmarkEmbedding, got {describe(embedding)}")
    path = embedding_path(model_cache_dir)
    if not path.parent.is_dir():
        raise ModelCacheError(f"model_cache_dir: no such model cache directory: {path.parent}")
    arrays = {
        **_core_arrays(embedding),
        "config_json": embedding.config.to_json(),
        "drift_mm": embedding.drift_mm,
        "sample_counts": embedding.sample_counts,
        "heldout_errors": embedding.heldout_errors,
        **({} if embedding.heldout_errors_posefree is None else {"heldout_errors_posefree": embedding.heldout_errors_posefree}),
        "heldout_iod": embedding.heldout_iod,
        "renders": np.int64(embedding.renders),
        "renders_used": np.int64(embedding.renders_used),
        "renders_heldout": np.int64(embedding.renders_heldout),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    write_bytes_atomic(path, buffer.getvalue())
    return path


def load_embedding(model_cache_dir: str | os.PathLike[str]) -> LandmarkEmbedding:
    """Read the embedding :func:`save_embedding` wrote.

    Raises:
        ModelCacheError: no embedding in that directory, or an unreadable or inconsistent one.
    """
    path = embedding_path(model_cache_dir)
    if not path.is_file():
        raise ModelCacheError(f"no landmark embedding in {path.parent}; run `facerecon model calibrate`")
    arrays = read_embedding_arrays(path)
    try:
        return LandmarkEmbedding(
            triangles=np.asarray(arrays["triangles"], dtype=np.int64),
            weights=np.asarray(arrays["weights"], dtype=np.float64),
            contour=np.asarray(arrays["contour"], dtype=bool),
            embedded=np.asarray(arrays["embedded"], dtype=bool),
            drift_mm=np.asarray(arrays["drift_mm"], dtype=np.float64),
            sample_counts=np.asarray(arrays["sample_counts"], dtype=np.int64),
            heldout_errors=np.asarray(arrays["heldout_errors"], dtype=np.float64),
            heldout_iod=np.asarray(arrays["heldout_iod"], dtype=np.float64),
            config=EmbeddingConfig.from_json(str(arrays["config_json"])),
            renders=int(arrays["renders"]),
            renders_used=int(arrays["renders_used"]),
            renders_heldout=int(arrays["renders_heldout"]),
            model_source_sha256=arrays["model_source_sha256"],
            vertex_count=arrays["vertex_count"],
            poses=embedding_scheme(arrays).poses,
            heldout_errors_posefree=(
                np.asarray(arrays["heldout_errors_posefree"], dtype=np.float64) if "heldout_errors_posefree" in arrays else None
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelCacheError(f"the landmark embedding {path} is inconsistent ({err}); run `facerecon model calibrate`") from None
