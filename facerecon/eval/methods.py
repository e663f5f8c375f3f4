"""Reconstruction methods under evaluation: one protocol, one output type, a small registry.

A method turns a photo into a :class:`MethodOutput` (2D landmarks, a mesh, a re-rendered face — whatever it
can); each protocol uses the parts it needs and says so through :attr:`MethodInfo.provides`. Every method is
measured by the same code, so ``facerecon eval ... --method NAME`` compares them fairly.

Built in:

* ``"mediapipe"``, ``"dlib"``: the landmark detectors of :mod:`facerecon.detect` (68 iBUG points only).
* ``"mean-face"``: the model's mean face, whatever the photo (the NoW baseline every method must beat).
* ``"facerecon"``: the default pipeline; and every estimator of :mod:`facerecon.estimate` under its own name
  (``"fit"``, ...), run through the same pipeline as ``facerecon reconstruct --method NAME``
  (:class:`EstimatorMethod`).

To add a method, register a factory (a class or function taking keyword options) that returns an object with
``predict(image, *, face_box=None) -> MethodOutput`` and ``close()``::

    register_method("mine", MyMethod, provides=("landmarks68", "mesh", "render"), description="...")

Example:
    >>> with create_method("dlib") as method:               # doctest: +SKIP
    ...     out = method.predict(image)
    >>> out.landmarks68.shape                               # doctest: +SKIP
    (68, 2)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from facerecon.core.check import (
    check_choice,
    check_finite,
    check_index_range,
    check_registry_name,
    check_shape,
    describe,
)
from facerecon.core.errors import NoFaceError

__all__ = [
    "CAPABILITIES",
    "Method",
    "MethodInfo",
    "MethodOutput",
    "available_methods",
    "create_method",
    "method_info",
    "register_method",
    "unregister_method",
]

#: What a method may provide: 68 iBUG landmarks in the photo; a mesh (with the 7 NoW landmarks); a rendering.
CAPABILITIES: tuple[str, ...] = ("landmarks68", "mesh", "render")


def _frozen(value: Any, name: str, spec: tuple, dtype: type) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected an array of shape {spec}, got {describe(value)}")
    check_shape(value, name, spec)
    out = np.array(value, dtype=dtype, copy=True)
    if dtype is np.float64:
        check_finite(out, name)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class MethodOutput:
    """What a method made of one photo; fields it cannot make are None.

    Attributes:
        landmarks68: ``(68, 2)`` float64 ``(u, v)`` px of the photo, iBUG order.
        vertices: ``(V, 3)`` float64 mm, the reconstructed mesh in camera space (OpenCV axes).
        triangles: ``(F, 3)`` int64, given with ``vertices``.
        now_landmarks: ``(7, 3)`` float64 mm, the 7 NoW landmarks on the mesh (same space as ``vertices``):
            eye corners (iBUG 36, 39, 42, 45), nose tip (30), mouth corners (48, 54), in that order
            (:data:`facerecon.eval.mesh_metrics.NOW_LANDMARKS_IBUG68`). Given with ``vertices``.
        rendered: ``(H, W, 3)`` float64 RGB in [0, 1], the face re-rendered over the photo's pixel grid
            (uint8 is accepted and scaled by 1/255).
        mask: ``(H, W)`` bool, the pixels of the rendered face. Given with ``rendered``.
        box: ``(4,)`` float64 ``[x0, y0, x1, y1]`` px, the face's box in the photo, or None.

    All arrays are read-only copies (never views of the caller's arrays).
    """

    landmarks68: np.ndarray | None = None
    vertices: np.ndarray | None = None
    triangles: np.ndarray | None = None
    now_landmarks: np.ndarray | None = None
    rendered: np.ndarray | None = None
    mask: np.ndarray | None = None
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.landmarks68 is not None:
            s(self, "landmarks68", _frozen(self.landmarks68, "landmarks68", (68, 2), np.float64))
        mesh_parts = (self.vertices, self.triangles, self.now_landmarks)
        if any(p is not None for p in mesh_parts) and any(p is None for p in mesh_parts):
            raise ValueError("vertices: vertices, triangles and now_landmarks must be given together")
        if self.vertices is not None:
            s(self, "vertices", _frozen(self.vertices, "vertices", (None, 3), np.float64))
            if not isinstance(self.triangles, np.ndarray) or not np.issubdtype(self.triangles.dtype, np.integer):
                raise TypeError(f"triangles: expected an int array of shape (F, 3), got {describe(self.triangles)}")
            s(self, "triangles", _frozen(self.triangles, "triangles", (None, 3), np.int64))
            if self.triangles.shape[0] == 0:
                raise ValueError("triangles: expected at least one triangle, got none")
            check_index_range(self.triangles, "triangles", self.vertices.shape[0])
            s(self, "now_landmarks", _frozen(self.now_landmarks, "now_landmarks", (7, 3), np.float64))
        if (self.rendered is None) != (self.mask is None):
            raise ValueError("rendered: rendered and mask must be given together")
        if self.rendered is not None:
            r = self.rendered
            if not isinstance(r, np.ndarray):
                raise TypeError(f"rendered: expected an array of shape (H, W, 3), got {describe(r)}")
            if r.dtype == np.uint8:
                r = r.astype(np.float64) / 255.0
            elif not np.issubdtype(r.dtype, np.floating):
                raise TypeError(f"rendered: expected uint8 or float RGB, got {describe(r)}")
            r = _frozen(r, "rendered", (None, None, 3), np.float64)
            if r.size and (r.min() < 0 or r.max() > 1):
                raise ValueError(f"rendered: expected values in [0, 1], got [{r.min():g}, {r.max():g}]")
            s(self, "rendered", r)
            if not isinstance(self.mask, np.ndarray) or self.mask.dtype != np.bool_:
                raise TypeError(f"mask: expected a bool array of shape (H, W), got {describe(self.mask)}")
            s(self, "mask", _frozen(self.mask, "mask", r.shape[:2], np.bool_))
        if self.box is not None:
            s(self, "box", _frozen(np.asarray(self.box, dtype=np.float64), "box", (4,), np.float64))

    @property
    def provides(self) -> frozenset[str]:
        """The :data:`CAPABILITIES` this output holds."""
        have = {"landmarks68": self.landmarks68 is not None, "mesh": self.vertices is not None,
                "render": self.rendered is not None}  # fmt: skip
        return frozenset(k for k, v in have.items() if v)


@runtime_checkable
class Method(Protocol):
    """A reconstruction method: one photo in, one :class:`MethodOutput` out."""

    def predict(self, image: np.ndarray, *, face_box: np.ndarray | None = None) -> MethodOutput:
        """Reconstruct the face of ``image``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (EXIF rotation applied).
            face_box: ``(4,)`` ``[x0, y0, x1, y1]`` px, a hint saying which face to take when there are several
                (a dataset's ground-truth box); None: the method's choice (the largest face).

        Raises:
            NoFaceError: no face found.
        """
        ...

    def close(self) -> None:
        """Free native resources; the method is unusable afterwards."""
        ...

    def __enter__(self) -> Method: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class MethodInfo:
    """A registered method.

    Attributes:
        name: the name ``--method`` takes.
        factory: called with the method's keyword options; returns a :class:`Method`.
        provides: which :data:`CAPABILITIES` its outputs hold.
        description: one line for ``--help``.
    """

    name: str
    factory: Callable[..., Method]
    provides: frozenset[str]
    description: str


_REGISTRY: dict[str, MethodInfo] = {}


def register_method(
    name: str,
    factory: Callable[..., Method],
    *,
    provides: Sequence[str],
    description: str,
    replace: bool = False,
) -> MethodInfo:
    """Add a method to the registry.

    Args:
        name: a short name (letters, digits, ``-``, ``_``).
        factory: called as ``factory(**options)``; returns a :class:`Method`.
        provides: a non-empty subset of :data:`CAPABILITIES`.
        description: one line.
        replace: allow replacing a method of the same name.

    Raises:
        ValueError: a bad name, an unknown capability, or a name taken (without ``replace``).
    """
    check_registry_name(name, factory)
    if isinstance(provides, str) or not provides:
        raise ValueError(f"provides: expected a non-empty sequence of {', '.join(CAPABILITIES)}, got {provides!r}")
    for cap in provides:
        check_choice(cap, "provides", CAPABILITIES)
    if name in _REGISTRY and not replace:
        raise ValueError(f"name: a method named {name!r} is registered already (pass replace=True)")
    info = MethodInfo(name=name, factory=factory, provides=frozenset(provides), description=str(description))
    _REGISTRY[name] = info
    return info


def unregister_method(name: str) -> None:
    """Remove a method from the registry.

    Raises:
        ValueError: no method of that name.
    """
    check_choice(name, "name", tuple(_REGISTRY))
    del _REGISTRY[name]


def available_methods() -> tuple[str, ...]:
    """The registered method names, in registration order."""
    return tuple(_REGISTRY)


def method_info(name: str) -> MethodInfo:
    """The :class:`MethodInfo` of a registered method (ValueError naming the choices otherwise)."""
    check_choice(name, "method", tuple(_REGISTRY))
    return _REGISTRY[name]


def create_method(name: str, **options: Any) -> Method:
    """Make a registered method with its keyword options."""
    return method_info(name).factory(**options)


# ------------------------------------------------------------------------------------------ built-in methods
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pick_face(boxes: Sequence[np.ndarray], face_box: np.ndarray | None) -> int:
    """Index of the face to evaluate: the box overlapping ``face_box`` most (IoU), or the first (largest).

    Args:
        boxes: ``(4,)`` boxes ``[x0, y0, x1, y1]`` px, largest first (as detectors return them), at least one.
        face_box: ``(4,)`` the hint, or None.
    """
    if not boxes:
        raise ValueError("boxes: expected at least one box, got none")
    if face_box is None:
        return 0
    hint = np.asarray(face_box, dtype=np.float64)
    check_shape(hint, "face_box", (4,))
    check_finite(hint, "face_box")
    return int(np.argmax([_iou(np.asarray(b, dtype=np.float64), hint) for b in boxes]))


class LandmarkMethod:
    """The 68 iBUG landmarks of a :mod:`facerecon.detect` detector, as a method (no mesh, no rendering).

    Args:
        detector: ``"mediapipe"`` or ``"dlib"``.
        **options: the detector's options (e.g. ``face_detector="cnn"`` for dlib).
    """

    def __init__(self, detector: str = "mediapipe", **options: Any) -> None:
        from facerecon.detect import create_detector

        self.name = detector
        self._detector = create_detector(detector, **options)

    def predict(self, image: np.ndarray, *, face_box: np.ndarray | None = None) -> MethodOutput:
        faces = self._detector.detect(image)
        if not faces:
            raise NoFaceError(f"{self.name}: no face found")
        face = faces[pick_face([f.box for f in faces], face_box)]
        return MethodOutput(landmarks68=face.to_ibug68(), box=face.box)

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> LandmarkMethod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MeanFaceMethod:
    """The model's mean face (neutral, mean identity) for every photo: the baseline of mesh protocols.

    It does not look at the photo. The mesh is posed frontally 600 mm in front of the camera (NoW's alignment
    removes pose and scale, so the pose does not change its error).

    Args:
        submesh: which part of the model to output (default ``"head"``: skin, eyes, mouth).
        home: the model cache folder (None: ``$FACERECON_HOME``); see :func:`facerecon.models.load_model`.
    """

    DISTANCE_MM = 600.0

    def __init__(self, submesh: str = "head", home: str | None = None) -> None:
        from facerecon.eval.mesh_metrics import now_landmark_vertices
        from facerecon.geometry.rotation import FLIP_YZ
        from facerecon.models import load_model

        model = load_model(home=home)
        check_choice(submesh, "submesh", model.submesh_names)
        sub = model.submesh(submesh)
        mean = model.mean[: sub.vertex_count].detach().cpu().double().numpy()
        cam = mean @ np.asarray(FLIP_YZ).T + np.array([0.0, 0.0, self.DISTANCE_MM])
        lm = now_landmark_vertices(model)
        full = model.mean.detach().cpu().double().numpy() @ np.asarray(FLIP_YZ).T + np.array([0.0, 0.0, self.DISTANCE_MM])
        self._output = MethodOutput(vertices=cam, triangles=sub.triangles.cpu().numpy(), now_landmarks=full[lm])

    def predict(self, image: np.ndarray, *, face_box: np.ndarray | None = None) -> MethodOutput:
        return self._output

    def close(self) -> None:
        pass

    def __enter__(self) -> MeanFaceMethod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EstimatorMethod:
    """An estimator of :mod:`facerecon.estimate` run by the pipeline (:mod:`facerecon.pipeline`), as an
    evaluation method: the same code as ``facerecon reconstruct --method NAME``.

    Args:
        method: the estimator's name (``"fit"``: the optimisation fit).
        stages: ``"landmarks"``, ``"photometric"`` or ``"all"``.
        home: the model cache folder (None: ``$FACERECON_HOME``).
        **method_options: the estimator's options (for ``"fit"``: :class:`facerecon.estimate.fit.FitConfig`'s
            fields other than the stages, e.g. ``start="auto"``).
    """

    def __init__(self, method: str = "fit", stages: str = "all", home: str | None = None, **method_options: Any) -> None:
        from facerecon.eval.mesh_metrics import now_landmark_vertices
        from facerecon.pipeline.run import ReconstructOptions, Reconstructor
        from facerecon.pipeline.setup import load_model

        model = load_model(home=home)  # calibrated on first use, as `facerecon reconstruct` does: the fit users get
        self._now = now_landmark_vertices(model)
        self._model = model
        options = ReconstructOptions(method=method, method_options=method_options, stages=stages, render_images=False)
        self._rec = Reconstructor(model, options)

    def predict(self, image: np.ndarray, *, face_box: np.ndarray | None = None) -> MethodOutput:
        faces = self._rec.run(image, name="image").reconstructions
        if not faces:
            raise NoFaceError("no face could be reconstructed")
        rec = faces[pick_face([f.detection.box for f in faces], face_box)]
        coefficients, pose = rec.coefficients, rec.pose
        full = self._model(torch.from_numpy(coefficients.identity)[None].float(),
                           torch.from_numpy(coefficients.expression)[None].float())  # fmt: skip
        full_cam = full[0].double().numpy() @ pose.rotation.T + pose.translation
        return MethodOutput(
            landmarks68=rec.fit.landmarks68,
            vertices=rec.camera_vertices,
            triangles=rec.mesh.triangles,
            now_landmarks=full_cam[self._now],
            rendered=rec.pictures.rendered,
            mask=rec.pictures.face_mask,
            box=rec.detection.box,
        )

    def close(self) -> None:
        self._rec.close()

    def __enter__(self) -> EstimatorMethod:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _register_builtins() -> None:
    register_method("mediapipe", lambda **o: LandmarkMethod("mediapipe", **o), provides=("landmarks68",),
                    description="MediaPipe face mesh, its 478 points mapped to the 68 iBUG points (landmarks only)")
    register_method("dlib", lambda **o: LandmarkMethod("dlib", **o), provides=("landmarks68",),
                    description="dlib's 68-point shape predictor (landmarks only; needs facerecon[dlib])")
    register_method("mean-face", MeanFaceMethod, provides=("mesh",),
                    description="the model's mean face for every photo (the NoW baseline; mesh only)")
    register_method("facerecon", EstimatorMethod, provides=("landmarks68", "mesh", "render"),
                    description="facerecon's default reconstruction (what `facerecon reconstruct` does)")
    # Every estimator under its own name: --method means the same here as in `facerecon reconstruct`.
    from facerecon.estimate import available_estimators, estimator_info

    for name in available_estimators():
        info = estimator_info(name)
        register_method(name, functools.partial(EstimatorMethod, name), description=info.description,
                        provides=("landmarks68", "mesh", "render") if info.gives_light else ("landmarks68", "mesh"))


_register_builtins()
