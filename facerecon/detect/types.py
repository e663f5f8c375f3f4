"""The one ``Detection`` type every detector returns, and the ``Detector`` protocols.

Coordinates are pixels of the image given to the detector, **pixel centres at integer coordinates**
(``docs/conventions.md``): pixel ``(0, 0)`` covers ``[-0.5, 0.5] x [-0.5, 0.5]``, u to the right, v down.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from facerecon.core.check import check_choice, check_finite, check_shape, describe

#: Landmark schemes and their number of points.
SCHEME_SIZES: dict[str, int] = {"mediapipe478": 478, "ibug68": 68}


@dataclass(frozen=True, eq=False)
class Detection:
    """One face found in one image.

    Attributes:
        box: ``(4,)`` float64 ``[x0, y0, x1, y1]`` px, the face detector's box (``x0 <= x1``, ``y0 <= y1``).
        score: the face detector's confidence; in [0, 1] for MediaPipe, dlib's detector margin for dlib.
        landmarks: ``(L, 2)`` float64 ``(u, v)`` px; ``L`` is 478 for ``"mediapipe478"``, 68 for ``"ibug68"``.
        landmarks_3d: ``(L, 3)`` float64 ``(u, v, z)`` px, or None. ``z`` is the relative depth MediaPipe
            predicts, scaled to pixels like ``u``: smaller is nearer the camera, 0 near the head's centre.
        confidence: ``(L,)`` float64 in [0, 1], how much each landmark can be trusted. Neither MediaPipe's
            face mesh nor dlib's shape predictor gives a per-point value; both fill it with the face's
            score clipped to [0, 1] (dlib: 1), so a fit may weight faces without special cases.
        scheme: ``"mediapipe478"`` or ``"ibug68"``.
        track_id: in video mode, the same number for the same face across frames; None for still images.

    Example:
        >>> det = detector.detect(image)[0]           # doctest: +SKIP
        >>> det.landmarks.shape, det.to_ibug68().shape  # doctest: +SKIP
        ((478, 2), (68, 2))
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    landmarks_3d: np.ndarray | None
    confidence: np.ndarray
    scheme: str
    track_id: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.scheme, "scheme", tuple(SCHEME_SIZES))
        n = SCHEME_SIZES[self.scheme]
        for name, spec in (("box", (4,)), ("landmarks", (n, 2)), ("confidence", (n,))):
            value = getattr(self, name)
            check_shape(value, name, spec)
            object.__setattr__(self, name, _frozen_float(value, name))
        if self.landmarks_3d is not None:
            check_shape(self.landmarks_3d, "landmarks_3d", (n, 3))
            object.__setattr__(self, "landmarks_3d", _frozen_float(self.landmarks_3d, "landmarks_3d"))
        if not isinstance(self.score, (int, float, np.floating)) or isinstance(self.score, bool):
            raise TypeError(f"score: expected a number, got {describe(self.score)}")
        object.__setattr__(self, "score", float(self.score))
        x0, y0, x1, y1 = self.box
        if x1 < x0 or y1 < y0:
            raise ValueError(f"box: expected x0 <= x1 and y0 <= y1, got [{x0:g}, {y0:g}, {x1:g}, {y1:g}]")
        if self.track_id is not None and (isinstance(self.track_id, bool) or not isinstance(self.track_id, int)):
            raise TypeError(f"track_id: expected an int or None, got {describe(self.track_id)}")

    @property
    def box_size(self) -> float:
        """The geometric mean of the box's width and height, px (a scale for normalising errors)."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))

    @property
    def area(self) -> float:
        """The box's area in px^2 (detectors sort their faces by it, largest first)."""
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))

    def to_ibug68(self) -> np.ndarray:
        """The 68 iBUG landmarks ``(68, 2)`` px; see :func:`facerecon.detect.schemes.to_ibug68`."""
        from facerecon.detect.schemes import to_ibug68

        return to_ibug68(self.landmarks, self.scheme)

    def to_68(self) -> np.ndarray:
        """Alias of :meth:`to_ibug68`."""
        return self.to_ibug68()


def _frozen_float(value: np.ndarray, name: str) -> np.ndarray:
    """A read-only float64 copy of ``value`` (never a view of the caller's array)."""
    if not isinstance(value, np.ndarray) or not (
        np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)
    ):
        raise TypeError(f"{name}: expected a real-valued NumPy array, got {describe(value)}")
    out = np.array(value, dtype=np.float64, copy=True)
    check_finite(out, name)
    out.setflags(write=False)
    return out


@runtime_checkable
class Detector(Protocol):
    """Finds faces and their landmarks in still images; holds native resources until :meth:`close`."""

    scheme: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces of ``image`` ``(H, W, 3)`` uint8 RGB, largest box first; ``[]`` when there is none."""
        ...

    def close(self) -> None:
        """Release the native resources; the detector is unusable afterwards."""
        ...

    def __enter__(self) -> Detector: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class VideoDetector(Protocol):
    """Finds and tracks faces in the frames of one video, given in order; ``reset()`` before another video."""

    scheme: str

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces of the next frame ``(H, W, 3)`` uint8 RGB, largest first, each with a ``track_id``."""
        ...

    def reset(self) -> None:
        """Forget the tracks (the next frame starts a new video)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> VideoDetector: ...

    def __exit__(self, *exc: object) -> None: ...


_Options = TypeVar("_Options")


def with_overrides(options: _Options, overrides: dict[str, Any]) -> _Options:
    """A copy of the options dataclass ``options`` with some fields replaced (and validated again).

    Raises:
        ValueError: a name in ``overrides`` is not a field of ``options``; the message lists the fields.
    """
    known = {f.name for f in fields(options)}  # type: ignore[arg-type]
    for key in overrides:
        if key not in known:
            raise ValueError(
                f"{key}: not an option of {type(options).__name__}; expected one of {', '.join(sorted(known))}"
            )
    return replace(options, **overrides)  # type: ignore[type-var]
