"""The learned regressor as an estimator: detect, crop, one network pass (or two), no optimisation.

Paper 004's parameter regressor (and paper 000's / 001's coarse networks): a crop of the face goes through
:class:`facerecon.nets.regressor.FaceRegressor` (run by ONNX Runtime), which predicts the pose as the crop shows it,
the identity, the ARKit expression weights and the SH light (:mod:`facerecon.nets.crop` turns the crop pose into the
photo's camera). The first crop comes from the detector's landmarks; with ``passes=2`` the face is cropped again
around the first pass's own projected face, exactly as the training crops were made, and regressed again.

The weights are the shipped ones (:data:`facerecon.nets.weights.SHIPPED_WEIGHTS`) or a ``.safetensors`` file; the
ONNX graph is exported from them once into ``$FACERECON_HOME/nets/`` and reused (without the exporter, the ``train``
extra, the torch network runs instead: :func:`facerecon.nets.onnx.fast_runner`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from facerecon.core.errors import FitDivergedError
from facerecon.core.paths import facerecon_home
from facerecon.core.timing import timed
from facerecon.detect.types import Detection
from facerecon.estimate.base import FaceEstimate
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.models.face_model import FaceModel
from facerecon.nets.crop import CropBox, CropPose, crop_camera, crop_image, pose_from_crop

#: The shipped weights the estimator uses by default.
DEFAULT_WEIGHTS = "regressor-128-v2"
#: The training crops' side over the projected face's box (facerecon.train.corpus.INFERENCE_BOX_SCALE, which
#: lives in train: the library never imports it).
BOX_SCALE = 1.3
BOX_SUBMESH = "narrow_face"
#: The first crop, from the detector's 68 points: their box is smaller than the face's (brow to chin) box by this.
LANDMARK_BOX_RATIO = 1.3  # measured on the mean face: 1.18-1.43 over yaw 0-85 and pitch 0-25 degrees


def load_network(model: FaceModel, weights: str | os.PathLike[str], kind: str, *, threads: int = 1,
                 home: str | os.PathLike[str] | None = None):  # fmt: skip
    """A network's weights (a shipped name or a ``.safetensors`` file, for ``model``) and its fastest runner, the
    ONNX graph cached as ``$FACERECON_HOME/nets/<kind>-<sha256 prefix>.onnx``: ``(LoadedWeights, runner)``.

    Raises:
        WeightsError: missing or corrupt weights, or weights for another face model.
    """
    from facerecon.nets.onnx import fast_runner
    from facerecon.nets.weights import load_shipped, load_weights

    sha = model.info.get("source_sha256")
    path = Path(weights)
    loaded = load_weights(path, face_model_sha256=sha) if path.suffix == ".safetensors" else load_shipped(str(weights), face_model_sha256=sha)
    graph = Path(home or facerecon_home()) / "nets" / f"{kind}-{loaded.sha256[:16]}.onnx"
    return loaded, fast_runner(loaded.model, graph, threads=threads)


class RegressEstimator:
    """Detect -> crop -> network (``passes`` times) -> :class:`FaceEstimate` in about a millisecond per pass.

    Args:
        model: the face model the network was trained for.
        weights: a shipped weights name or a ``.safetensors`` path.
        passes: 1 (crop from the detector) or 2 (crop again around the first estimate).
        threads: ONNX Runtime threads.
        home: where the exported ONNX graph is cached (default ``$FACERECON_HOME``).

    Raises:
        WeightsError: missing or corrupt weights, or weights for another face model.
    """

    name = "regress"

    def __init__(self, model: FaceModel, weights: str | os.PathLike[str] = DEFAULT_WEIGHTS, passes: int = 2,
                 threads: int = 1, home: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
        if passes not in (1, 2):
            raise ValueError(f"passes: expected 1 or 2, got {passes!r}")
        loaded, self.network = load_network(model, weights, "regressor", threads=threads, home=home)
        self.size = loaded.config.input_size
        self.model = model
        self.passes = passes
        self.metrics = loaded.metrics
        self._landmarks = model.landmarks("ibug68").vertex_indices.cpu()
        self._box_n = model.submesh(BOX_SUBMESH).vertex_count

    def close(self) -> None:
        pass

    def estimate(self, image: np.ndarray, detection: Detection, camera: PerspectiveCamera,
                 init: FaceEstimate | None = None) -> FaceEstimate:  # fmt: skip
        """Regress the face of ``detection`` (``init`` is not used: the network needs no start)."""
        return self.estimate_with_landmarks(image, detection, camera)[0]

    def estimate_with_landmarks(self, image: np.ndarray, detection: Detection,
                                camera: PerspectiveCamera) -> tuple[FaceEstimate, np.ndarray]:  # fmt: skip
        """:meth:`estimate`, and the regressed face's 68 landmarks in the photo ``(68, 2)`` px."""
        timings: dict[str, float] = {}
        with timed(timings, "regress"):
            box = CropBox.around(detection.to_ibug68(), BOX_SCALE * LANDMARK_BOX_RATIO)
            estimate, landmarks = self.estimate_from_box(image, camera, box)
        return replace(estimate, timings_ms=timings), landmarks

    def estimate_from_box(self, image: np.ndarray, camera: PerspectiveCamera, box: CropBox) -> tuple[FaceEstimate, np.ndarray]:
        """Regress the face in the crop ``box`` (``passes`` times, re-cropping around the projected face): the
        estimate (its confidence the last crop's) and its 68 landmarks in the photo ``(68, 2)`` px."""
        for _ in range(self.passes):
            out, crop_cam = self._run(image, camera, box)
            estimate, box, landmarks = self._decode(out, crop_cam, camera, box)
        head = self.model(estimate.identity[None], estimate.expression[None], submesh="head")[0]
        return replace(estimate, vertices=head), landmarks

    def _decode(self, out, crop_cam: PerspectiveCamera, camera: PerspectiveCamera,
                box: CropBox) -> tuple[FaceEstimate, CropBox, np.ndarray]:  # fmt: skip
        """The estimate of one network output (its ``vertices`` the ``face`` sub-mesh), the crop box around its projected
        face (the old one when the face is too far off to re-crop), and its 68 landmarks in the photo ``(68, 2)`` px."""
        pose = CropPose(out.rotation.double(), out.centre.double(), out.log_scale.double())
        rotation, translation = pose_from_crop(pose, crop_cam, torch.zeros(3, dtype=torch.float64))
        rotation, translation = rotation[0].float(), translation[0].float()
        identity, expression = out.identity[0], out.expression[0]
        vertices = self.model(identity[None], expression[None], submesh="face")[0]  # the head only at the end
        cam = vertices[: self._box_n] @ rotation.T + translation
        if not torch.isfinite(cam).all():
            raise FitDivergedError("the regressed face has non-finite vertices")
        project = camera.to(dtype=cam.dtype).project
        front = cam[:, 2] > 1.0
        if bool(front.float().mean() > 0.5):
            box = CropBox.around(project(cam[None, front])[0].numpy(), BOX_SCALE)
        landmarks = project((vertices[self._landmarks] @ rotation.T + translation)[None])[0].double().numpy()
        estimate = FaceEstimate(method=self.name, camera=camera, identity=identity, expression=expression,
                                rotation=rotation, translation=translation, vertices=vertices, sh=out.sh[0].float(),
                                confidence=float(out.confidence[0]), stages=("regress",),
                                losses={"regress": {"confidence": float(out.confidence[0])}})  # fmt: skip
        return estimate, box, landmarks

    def _run(self, image: np.ndarray, camera: PerspectiveCamera, box: CropBox):
        crop = crop_image(image, box, self.size)[None]
        return self.network(crop), crop_camera(camera, [box], self.size)

