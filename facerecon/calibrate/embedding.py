"""The calibration's result: :class:`LandmarkEmbedding`, and the arrays that make it a landmark scheme."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from facerecon.calibrate.config import MEDIAPIPE_FACE_OVAL, NUM_LANDMARKS, EmbeddingConfig
from facerecon.models.face_model import LandmarkPoseTable, LandmarkScheme
from facerecon.models.landmark_file import EMBEDDING_FORMAT_VERSION, MEDIAPIPE_SCHEME, embedding_scheme

__all__ = ["LandmarkEmbedding"]


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
