"""The seam between methods and the pipeline: :class:`FaceEstimate` and the :class:`Estimator` protocol.

Every method that turns a detected face into model parameters (the optimisation fit, a parameter regressor, a
position-map regressor) is an :class:`Estimator`. :class:`facerecon.pipeline.Reconstructor` runs the chosen one
and does everything after it (albedo, texture, details, pictures, files); :mod:`facerecon.eval.methods` wraps the
same registry, so ``--method NAME`` means the same in ``facerecon reconstruct`` and ``facerecon eval``. An
estimate can seed another estimator (``init=``), as a regressor seeds the fit or a previous video frame does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from facerecon.core.check import check_shape
from facerecon.detect.types import Detection
from facerecon.geometry.camera import PerspectiveCamera


@dataclass(frozen=True, eq=False)
class FaceEstimate:
    """One face's model parameters, pose and camera as a method found them (CPU tensors, detached).

    Attributes:
        method: the estimator's registry name.
        camera: the photo's pinhole camera (batch 1; float64 so the focal length is exact).
        identity: ``(K_id,)`` float32 identity coefficients (N(0, 1) prior).
        expression: ``(K_exp,)`` float32 expression weights in [0, 1] (ARKit names: ``model.expression_names``).
        rotation: ``(3, 3)`` float32 model-to-camera rotation; translation: ``(3,)`` float32 mm.
        vertices: ``(V, 3)`` float32 the ``head`` sub-mesh in model space, mm.
        sh: ``(9, 3)`` float32 radiance SH coefficients of the light, or None (no light estimated).
        albedo: ``(V_fit, 3)`` float32 per-vertex albedo in [0, 1] of the ``albedo_region`` sub-mesh, or None.
        albedo_region: the sub-mesh that ``albedo``, ``visible`` and ``occluded`` cover.
        visible: ``(V_fit,)`` bool, vertices the photo shows, or None (unknown).
        occluded: ``(V_fit,)`` bool, visible vertices covered by something else (hair, hands), or None.
        confidence: in [0, 1], how sure the method is that this is a face it fitted (1 for the fit).
        stages: the stages that ran, in order.
        timings_ms: wall time per stage, ms.
        losses: final energy terms per stage.
    """

    method: str
    camera: PerspectiveCamera
    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    vertices: torch.Tensor
    sh: torch.Tensor | None = None
    albedo: torch.Tensor | None = None
    albedo_region: str = "narrow_face"
    visible: torch.Tensor | None = None
    occluded: torch.Tensor | None = None
    confidence: float = 1.0
    stages: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    losses: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.camera, PerspectiveCamera) or self.camera.batch_size != 1:
            raise TypeError("camera: expected a PerspectiveCamera of batch size 1")
        check_shape(self.identity, "identity", (None,))
        check_shape(self.expression, "expression", (None,))
        check_shape(self.rotation, "rotation", (3, 3))
        check_shape(self.translation, "translation", (3,))
        check_shape(self.vertices, "vertices", (None, 3))
        if self.sh is not None:
            check_shape(self.sh, "sh", (9, 3))
        if self.albedo is not None:
            check_shape(self.albedo, "albedo", (None, 3))
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"confidence: expected a value in [0, 1], got {self.confidence!r}")

    @property
    def focal(self) -> float:
        """Focal length, px (``fx``; the cameras here have square pixels)."""
        return float(self.camera.fx[0])

    @property
    def principal_point(self) -> tuple[float, float]:
        """``(cx, cy)``, px."""
        return float(self.camera.cx[0]), float(self.camera.cy[0])

    def camera_vertices(self) -> torch.Tensor:
        """``(V, 3)`` the head in camera space (OpenCV axes), mm."""
        return self.vertices @ self.rotation.T + self.translation

    def numpy_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(identity, expression, rotation, translation)`` as float64 NumPy arrays."""
        return tuple(t.double().numpy() for t in (self.identity, self.expression, self.rotation, self.translation))


@runtime_checkable
class Estimator(Protocol):
    """A method that estimates one detected face's parameters.

    Implementations are made by a factory registered in :mod:`facerecon.estimate.registry`, called with the face
    model and their keyword options.
    """

    name: str

    def estimate(
        self, image: np.ndarray, detection: Detection, camera: PerspectiveCamera, init: FaceEstimate | None = None
    ) -> FaceEstimate:
        """Estimate the face of ``detection`` in ``image``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB photo.
            detection: the face's detection in ``image``.
            camera: the photo's camera (batch 1, ``width``/``height`` of ``image``).
            init: an estimate to start from (another method's, or the previous video frame's), or None.

        Raises:
            FitDivergedError: the method's result is not a usable face (non-finite, behind the camera).
        """
        ...

    def close(self) -> None:
        """Free native resources."""
        ...
