"""The UV position-map network as an estimator (paper 002): crop, one network pass (or two), the map read back.

A crop of the face goes through :class:`facerecon.nets.posmap.PosMapNet` (run by ONNX Runtime), which predicts the
face's position map: every texel of the ``face`` sub-mesh's UV tile holds where its surface point is in the crop
(:mod:`facerecon.nets.position_map`). The map gives the vertices in the photo's camera up to one scale (a crop is
the photo's camera with another focal length and principal point, so its 3D space is the photo's);
:class:`facerecon.fit.points.PointFitter` fits the face model to the vertices the map resolves, which gives that
scale (the depth), the head pose, and identity and ARKit expression coefficients, so that every output (GLB
morph targets, the parameters file) works as for the other methods.

The mesh is the fitted model plus the map's difference from it, taken where the map resolves the surface (to
``tolerance_mm``: texels in the eyelid rims, the inner lips and the nostrils hold too much surface at the map's
size), carried by diffusion into the vertices it does not resolve, and smoothed over the mesh (``smoothing``: the
map's texel-scale noise removed, its larger-scale shape kept). That difference covers the face area (paper 002's
weights above 0) and fades out over a few vertex rings into the neck; the rest of the head (the back, the eyes and
mouth interior) is the fitted model's. The
first crop comes from the detector's landmarks, as the regressor's; with ``passes=2`` the face is cropped again
around the first pass's projected face, as the training crops were made.

The network predicts no light: the estimate's ``sh`` is None, so the photometric outputs (the de-lit albedo and the
details) are left out, as for a landmark-only fit.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
import torch

from facerecon.core.errors import FitDivergedError
from facerecon.core.timing import timed
from facerecon.detect.types import Detection
from facerecon.estimate.base import FaceEstimate
from facerecon.estimate.regress import BOX_SCALE, BOX_SUBMESH, LANDMARK_BOX_RATIO, load_network
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.models.face_model import FaceModel
from facerecon.nets.crop import CropBox, crop_camera, crop_image

#: The shipped weights the estimator uses by default.
DEFAULT_POSMAP_WEIGHTS = "posmap-128-v1"
#: Mesh vertices over which the map's surface fades into the fitted model's (smoothing steps of the blend).
BLEND_STEPS = 3
#: The point fit uses at most this many of the resolved vertices (evenly spread): more add time, not accuracy.
MAX_FIT_POINTS = 1200
#: The point fit's noise per point, mm, and its expressions' ridge relative to the identity's: a network's map is wrong
#: by several mm, and its errors are alike over neighbouring points, so a point counts for less than a measurement.
#: Measured on 240 validation views (NME %, median identity error): sigma 1.5 / 5 / 10 / 20 / 40 mm with weight 1:
#: 5.34 / 5.19 / 5.12 / 5.10 / - and 22.3 / 12.4 / 8.1 / 4.4 / -; 20 mm with weight 3: 5.07 and 4.3, expression error
#: 0.122 (weight 0.1 at 1.5 mm: 0.234, which showed as grimaces on real photos).
FIT_SIGMA_MM = 20.0
FIT_EXPRESSION_WEIGHT = 3.0
#: Smoothing steps of the map's difference from the fitted model before it is added to the model: a 64-texel map
#: has noise at the texels' scale (~3 mm on the face), which showed as a crumpled surface.
RESIDUAL_SMOOTHING = 20
#: Steps of diffusion that carry the map's difference from the model into the vertices it does not resolve (eyelid
#: rims, inner lips, nostrils), so that the difference is one smooth field over the face.
FILL_STEPS = 40
#: The map's difference from the model is kept within this distance per vertex, mm: on photos unlike its training
#: views the network's map can be wrong by centimetres in places, which the model fit (over thousands of points)
#: shrugs off but the surface would show.
RESIDUAL_MAX_MM = 4.0


class PosMapEstimator:
    """Detect -> crop -> position map (``passes`` times) -> model fit -> :class:`FaceEstimate`.

    Args:
        model: the face model the network was trained for.
        weights: a shipped weights name or a ``.safetensors`` path.
        passes: 1 (crop from the detector) or 2 (crop again around the first estimate).
        threads: ONNX Runtime threads.
        tolerance_mm: a vertex is taken from the map where a map of the network's size holds it to within this.
        smoothing: steps of neighbour averaging of the map's difference from the fitted model (0: the raw map).
        residual_max_mm: the largest difference from the fitted model the map may add at a vertex, mm (0: the
            fitted model alone).
        sigma_mm / expression_weight: the point fit's prior (:class:`facerecon.fit.points.PointFitter`).
        home: where the exported ONNX graph is cached (default ``$FACERECON_HOME``).

    Raises:
        WeightsError: missing or corrupt weights, weights for another face model, or not a position-map network.
    """

    name = "posmap"

    def __init__(self, model: FaceModel, weights: str | os.PathLike[str] = DEFAULT_POSMAP_WEIGHTS, passes: int = 2,
                 threads: int = 1, tolerance_mm: float = 1.0, smoothing: int = RESIDUAL_SMOOTHING,
                 residual_max_mm: float = RESIDUAL_MAX_MM, sigma_mm: float = FIT_SIGMA_MM,
                 expression_weight: float = FIT_EXPRESSION_WEIGHT, home: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
        from facerecon.core.errors import WeightsError
        from facerecon.fit.points import PointFitter
        from facerecon.nets.position_map import MAP_SUBMESH, PositionMapLayout
        from facerecon.nets.posmap import PosMapNet

        if passes not in (1, 2):
            raise ValueError(f"passes: expected 1 or 2, got {passes!r}")
        loaded, self.network = load_network(model, weights, "posmap", threads=threads, home=home)
        if not isinstance(loaded.model, PosMapNet):
            raise WeightsError(f"{weights}: holds a {type(loaded.model).__name__}, not a position-map network (PosMapNet)")
        self.size = loaded.config.input_size
        self.model = model
        self.passes = passes
        self.metrics = loaded.metrics
        self.layout = PositionMapLayout(model, loaded.config.map_size)
        weights_r1 = self.layout.vertex_weights("r1")
        used = self.layout.resolved_vertices(tolerance_mm) & (weights_r1 > 0)
        if not used.any():
            raise ValueError(f"tolerance_mm: a {self.layout.size}-texel map resolves no vertex to {tolerance_mm} mm")
        index = np.flatnonzero(used)
        if len(index) > MAX_FIT_POINTS:
            index = index[np.linspace(0, len(index) - 1, MAX_FIT_POINTS).round().astype(np.int64)]
        self._fit_index = index
        self.fitter = PointFitter(model, index, weights_r1[index], sigma_mm=sigma_mm, expression_weight=expression_weight)
        adjacency = model.vertex_adjacency(MAP_SUBMESH).coalesce().cpu()
        (rows, cols), count = adjacency.indices().numpy(), self.layout.vertex_count
        neighbours = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(count, count))
        degree = np.maximum(np.asarray(neighbours.sum(1)).ravel(), 1.0)
        self._average = sp.diags(1.0 / degree) @ neighbours  # the mean of each vertex's neighbours
        self._resolved = used[:, None]
        self.blend = torch.from_numpy(_blend_weights(weights_r1 > 0, self._average))[:, None]  # (V_face, 1): the face area
        self.smoothing = int(smoothing)
        self.residual_max_mm = float(residual_max_mm)
        self._box_n = model.submesh(BOX_SUBMESH).vertex_count
        self._landmarks = model.landmarks("ibug68").vertex_indices.cpu()

    def close(self) -> None:
        pass

    def estimate(self, image: np.ndarray, detection: Detection, camera: PerspectiveCamera,
                 init: FaceEstimate | None = None) -> FaceEstimate:  # fmt: skip
        """Reconstruct the face of ``detection`` (``init`` is not used: the network needs no start).

        Raises:
            FitDivergedError: the map is not a face the model can be fitted to.
        """
        timings: dict[str, float] = {}
        with timed(timings, "posmap"):
            box = CropBox.around(detection.to_ibug68(), BOX_SCALE * LANDMARK_BOX_RATIO)
            estimate, _ = self.estimate_from_box(image, camera, box)
        return replace(estimate, timings_ms=timings)

    def estimate_from_box(self, image: np.ndarray, camera: PerspectiveCamera, box: CropBox) -> tuple[FaceEstimate, np.ndarray]:
        """Reconstruct the face in the crop ``box`` (``passes`` times, re-cropping around the projected face): the
        estimate and its 68 landmarks in the photo ``(68, 2)`` px."""
        for k in range(self.passes):
            maps, crop_cam = self.map_for_box(image, camera, box)
            estimate, box = self.estimate_from_map(maps, crop_cam, camera, box, surface=k == self.passes - 1)
        cam = estimate.vertices[self._landmarks] @ estimate.rotation.T + estimate.translation
        return estimate, camera.to(dtype=cam.dtype).project(cam[None])[0].double().numpy()

    def map_for_box(self, image: np.ndarray, camera: PerspectiveCamera, box: CropBox) -> tuple[torch.Tensor, PerspectiveCamera]:
        """The network's map ``(1, 3, M, M)`` of the crop ``box`` of ``image``, and the crop's camera."""
        crop = crop_image(image, box, self.size)[None]
        return self.network(crop), crop_camera(camera.to(dtype=torch.float64), [box], self.size)

    def estimate_from_map(self, maps: torch.Tensor, crop_cam: PerspectiveCamera, camera: PerspectiveCamera,
                          box: CropBox, *, surface: bool = True) -> tuple[FaceEstimate, CropBox]:  # fmt: skip
        """Decode a map ``(1, 3, M, M)`` of the crop ``box`` whose camera is ``crop_cam``: the estimate, and the crop box
        around its projected face (``box`` when the face is too far off to re-crop). ``surface=False``: the fitted
        model alone (a first pass needs only the box)."""
        from facerecon.fit.points import model_points

        unit = self.layout.unit_points(self.layout.vertex_points(maps), crop_cam)[0].numpy()  # (V_face, 3), / Z_ref
        fit = self.fitter.fit(unit[self._fit_index])
        rotation = torch.from_numpy(fit.rotation).float()
        translation = torch.from_numpy(fit.translation).float()
        identity = torch.from_numpy(fit.identity).float()
        expression = torch.from_numpy(fit.expression).float()
        head = model_points(self.model, fit, "head")  # (V_head, 3) model space
        count = self.layout.vertex_count
        if not surface:
            return self._estimate(camera, identity, expression, rotation, translation, head, fit.rms_mm, box)
        from_map = (torch.from_numpy(unit * fit.reference_depth) - translation.double()) @ rotation.double()  # R^T (X - t)
        known = from_map.numpy() - head[:count].double().numpy()
        length = np.linalg.norm(known, axis=1, keepdims=True)
        known *= np.minimum(1.0, self.residual_max_mm / np.maximum(length, 1e-9))
        residual = np.where(self._resolved, known, 0.0)
        for _ in range(FILL_STEPS):
            residual = np.where(self._resolved, known, self._average @ residual)
        for _ in range(self.smoothing):
            residual = 0.5 * residual + 0.5 * (self._average @ residual)
        head = torch.cat([head[:count] + self.blend * torch.from_numpy(residual).float(), head[count:]])
        return self._estimate(camera, identity, expression, rotation, translation, head, fit.rms_mm, box)

    def _estimate(self, camera: PerspectiveCamera, identity: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor,
                  translation: torch.Tensor, head: torch.Tensor, rms_mm: float, box: CropBox) -> tuple[FaceEstimate, CropBox]:  # fmt: skip
        """The estimate of a decoded head ``(V_head, 3)`` and the crop box around its projected face."""
        cam = head[: self._box_n] @ rotation.T + translation
        if not torch.isfinite(cam).all():
            raise FitDivergedError("the position map gave non-finite vertices")
        front = cam[:, 2] > 1.0
        if bool(front.float().mean() > 0.5):
            box = CropBox.around(camera.to(dtype=cam.dtype).project(cam[None, front])[0].numpy(), BOX_SCALE)
        estimate = FaceEstimate(method=self.name, camera=camera, identity=identity, expression=expression,
                                rotation=rotation, translation=translation, vertices=head, stages=("posmap",),
                                losses={"posmap": {"fit_rms_mm": rms_mm}})  # fmt: skip
        return estimate, box


def _blend_weights(used: np.ndarray, average: sp.csr_matrix) -> np.ndarray:
    """``(V,)`` float32 in [0, 1]: 1 on the ``used`` vertices away from the others, 0 off them, and a ramp of
    :data:`BLEND_STEPS` vertex rings inside the used area where it meets the rest (``average``: the neighbour mean)."""
    weight = used.astype(np.float64)
    for _ in range(BLEND_STEPS):
        weight = np.minimum(weight, average @ weight) * used
    return weight.astype(np.float32)
