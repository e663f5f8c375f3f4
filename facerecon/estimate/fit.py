"""The optimisation fit as an estimator: the landmark stage, then (optionally) the photometric stage.

Analysis-by-synthesis after paper 001 (a coarse fit from landmarks, then a dense photometric refinement) with the
energies of paper 004; see :mod:`facerecon.fit.landmarks` and :mod:`facerecon.fit.photometric` for the stages.
With ``init`` the landmark stage starts from that estimate's pose and coefficients instead of a PnP pose.

``start`` lets the learned regressor (:mod:`facerecon.estimate.regress`) start the fit: always (``"regress"``), or
only where the detector's landmarks are known to fail (``"auto"``, the pipeline's default: the regressor sees a
yaw of at least ``start_yaw_deg``, where MediaPipe's points compress towards the visible side and a fit that follows them
underestimates the turn). There the fit follows the regressor's own 68 landmarks (``large_pose_targets=
"regressor"``) or still the detector's (``"detector"``); the photometric stage then refines the face on the photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from facerecon.core.check import check_choice
from facerecon.core.errors import FitDivergedError
from facerecon.core.timing import timed
from facerecon.detect.types import Detection
from facerecon.estimate.base import FaceEstimate
from facerecon.estimate.regress import DEFAULT_WEIGHTS
from facerecon.estimate.registry import FIT_STARTS
from facerecon.fit.landmarks import LandmarkFit, LandmarkFitConfig, LandmarkFitter, ibug68_targets, mediapipe478_targets
from facerecon.fit.photometric import PhotometricConfig, fit_photometric
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import camera_rotation_to_head_angles
from facerecon.models.face_model import FaceModel

LARGE_POSE_TARGETS = ("regressor", "detector")


@dataclass(frozen=True)
class FitConfig:
    """Settings of the fit.

    Attributes:
        photometric: run the photometric stage after the landmark stage (light, albedo, dense refinement).
        max_fit_side: the photometric stage works on a copy of the photo whose long side is at most this (px).
        landmark: settings of the landmark stage.
        photometric_stage: settings of the photometric stage.
        start: where the landmark stage starts: ``"pnp"`` (a PnP pose of the mean face), ``"regress"`` (the
            regressor's estimate), ``"auto"`` (the regressor's where it sees a yaw of ``start_yaw_deg`` or more).
        start_yaw_deg: the yaw, degrees, from which ``"auto"`` starts from the regressor.
        large_pose_targets: the landmarks a regressor-started fit follows: ``"regressor"`` (its own 68, projected)
            or ``"detector"``.
        regressor_weights: the regressor's weights (a shipped name or a ``.safetensors`` path).
    """

    photometric: bool = True
    max_fit_side: int = 1024
    landmark: LandmarkFitConfig = field(default_factory=LandmarkFitConfig)
    photometric_stage: PhotometricConfig = field(default_factory=PhotometricConfig)
    start: str = "pnp"
    start_yaw_deg: float = 55.0  # benchmarks/large_pose.py: 45 made the 45-degree views worse, 55 did not
    large_pose_targets: str = "regressor"
    regressor_weights: str = DEFAULT_WEIGHTS

    def __post_init__(self) -> None:
        check_choice(self.start, "start", FIT_STARTS)
        check_choice(self.large_pose_targets, "large_pose_targets", LARGE_POSE_TARGETS)
        if not 0.0 <= self.start_yaw_deg <= 90.0:
            raise ValueError(f"start_yaw_deg: expected 0 to 90 degrees, got {self.start_yaw_deg!r}")


class FitEstimator:
    """Landmark fit (MediaPipe's 478 points once the model is calibrated for them, else the 68 iBUG points),
    then the photometric fit.

    Args:
        model: the face model.
        config: the stages' settings.
        identity: ``(K_id,)`` a known person's identity (fitted over a video's frames or a photo set): both stages
            then hold it and fit pose, expression, light and albedo only. None: the identity is fitted too.
    """

    name = "fit"

    def __init__(self, model: FaceModel, config: FitConfig = FitConfig(), *, identity: np.ndarray | None = None) -> None:
        if identity is not None:
            config = replace(config, photometric_stage=replace(config.photometric_stage, fit_identity=False))
        self.model = model
        self.config = config
        self.fitter = LandmarkFitter(model, ibug68_targets(model), config.landmark, identity=identity)
        # Dense MediaPipe landmarks once the model is calibrated for them (facerecon.calibrate).
        self.dense_fitter = (
            LandmarkFitter(model, mediapipe478_targets(model), config.landmark, identity=identity)
            if "mediapipe478" in model.landmark_scheme_names
            else None
        )
        self.regressor = None
        if config.start != "pnp":
            from facerecon.estimate.regress import RegressEstimator

            self.regressor = RegressEstimator(model, config.regressor_weights)

    def close(self) -> None:
        if self.regressor is not None:
            self.regressor.close()

    def _regressed_start(self, image: np.ndarray, detection: Detection, camera: PerspectiveCamera,
                         timings: dict[str, float]) -> tuple[FaceEstimate, np.ndarray] | None:  # fmt: skip
        """The regressor's estimate and its 68 landmarks in the photo when it starts this fit (see
        ``FitConfig.start``), else None."""
        if self.regressor is None:
            return None
        with timed(timings, "regress"):
            seed, landmarks = self.regressor.estimate_with_landmarks(image, detection, camera)
        yaw = math.degrees(abs(float(camera_rotation_to_head_angles(seed.rotation.double())[1])))
        return (seed, landmarks) if self.config.start == "regress" or yaw >= self.config.start_yaw_deg else None

    def estimate(
        self, image: np.ndarray, detection: Detection, camera: PerspectiveCamera, init: FaceEstimate | None = None
    ) -> FaceEstimate:
        """Fit the face of ``detection``; see :class:`facerecon.estimate.Estimator`."""
        model, cfg = self.model, self.config
        timings: dict[str, float] = {}
        losses: dict[str, dict[str, float]] = {}
        started = self._regressed_start(image, detection, camera, timings) if init is None else None
        seed = started[0] if started is not None else None
        follow_seed = started is not None and cfg.large_pose_targets == "regressor"
        dense = self.dense_fitter is not None and detection.scheme == "mediapipe478" and not follow_seed
        fitter = self.dense_fitter if dense else self.fitter
        with timed(timings, "landmarks"):
            if follow_seed:
                landmarks, confidence = started[1], np.ones(68)
            else:
                landmarks, confidence = _targets(fitter, detection, dense)
            lm_fit = fitter.fit(landmarks, camera=camera, confidence=confidence, init=init or seed)
        losses["landmarks"] = {"energy": lm_fit.history[-1] if lm_fit.history else float("nan"),
                               "scheme": 478.0 if dense else 68.0}  # fmt: skip
        _check_finite_fit(lm_fit)
        fields = dict(
            identity=torch.tensor(lm_fit.identity, dtype=torch.float32),
            expression=torch.tensor(lm_fit.expression, dtype=torch.float32),
            rotation=torch.tensor(lm_fit.rotation, dtype=torch.float32),
            translation=torch.tensor(lm_fit.translation, dtype=torch.float32),
        )
        stages = ["landmarks"] if seed is None else ["regress", "landmarks"]
        if seed is not None:
            losses["regress"] = dict(seed.losses.get("regress", {}))
        if cfg.photometric:
            with timed(timings, "photometric"):
                pfit = self._photometric(image, lm_fit, landmarks, confidence, camera)
            losses["photometric"] = pfit.losses
            fields = dict(identity=pfit.identity, expression=pfit.expression, rotation=pfit.rotation,
                          translation=pfit.translation, sh=pfit.sh, albedo=pfit.albedo, visible=pfit.visible,
                          occluded=pfit.occluded)  # fmt: skip
            stages.append("photometric")
        vertices = model(fields["identity"][None], fields["expression"][None], submesh="head")[0]
        return FaceEstimate(method=self.name, camera=camera, vertices=vertices, albedo_region=cfg.photometric_stage.fit_region,
                            stages=tuple(stages), timings_ms=timings, losses=losses, **fields)  # fmt: skip

    def _photometric(self, image: np.ndarray, lm_fit: LandmarkFit, landmarks: np.ndarray, confidence: np.ndarray,
                     camera: PerspectiveCamera):  # fmt: skip
        """The photometric stage on a copy of the photo whose long side is at most ``max_fit_side``."""
        height, width = image.shape[:2]
        scale = min(1.0, self.config.max_fit_side / max(height, width))
        if scale < 1.0:
            size = (max(int(round(width * scale)), 1), max(int(round(height * scale)), 1))
            small = torch.from_numpy(cv2.resize(image, size, interpolation=cv2.INTER_AREA)).permute(2, 0, 1).float() / 255.0
            scale = size[0] / width
        else:
            small = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        # float64, so that the scaled focal length and principal point are the same numbers as the fit's own floats
        small_camera = camera.to(dtype=torch.float64).scaled(scale, small.shape[2], small.shape[1])
        small_lm = (landmarks + 0.5) * scale - 0.5
        return fit_photometric(self.model, small, lm_fit, small_lm, camera=small_camera, confidence=confidence,
                               config=self.config.photometric_stage)  # fmt: skip


def _targets(fitter: LandmarkFitter, detection: Detection, dense: bool) -> tuple[np.ndarray, np.ndarray]:
    """The landmarks ``(L, 2)`` px the fitter takes from a detection, and their confidences ``(L,)`` in [0, 1]."""
    if dense:
        landmarks = fitter.targets.select(detection.landmarks)
        confidence = fitter.targets.select(detection.confidence[:, None])[:, 0]
    else:
        landmarks = detection.to_ibug68()
        confidence = detection.confidence if detection.scheme == "ibug68" else np.full(68, detection.score)
    return landmarks, np.clip(confidence, 0, 1)


def _check_finite_fit(fit: LandmarkFit) -> None:
    values = np.concatenate([fit.identity, fit.expression, fit.rotation.ravel(), fit.translation])
    if not np.isfinite(values).all() or fit.translation[2] <= 0:
        raise FitDivergedError("the landmark fit diverged (non-finite parameters or a face behind the camera)")
