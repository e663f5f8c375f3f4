"""dlib's 68-point shape predictor (iBUG order) with its HOG or CNN (MMOD) face detector.

dlib and its models are an optional extra: ``pip install "facerecon[dlib]"`` (``dlib-bin`` and
``face_recognition_models``, whose ``models/`` folder holds ``shape_predictor_68_face_landmarks.dat`` and
``mmod_human_face_detector.dat``). Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerecon.core.check import check_choice, describe
from facerecon.core.errors import ModelNotInstalledError
from facerecon.core.optional import install_hint, require
from facerecon.detect._image import check_image, scaled_copy
from facerecon.detect.types import Detection, with_overrides

_HINT = install_hint("dlib")


@dataclass(frozen=True)
class DlibOptions:
    """Settings of :class:`DlibDetector`.

    Attributes:
        face_detector: ``"hog"`` (fast, frontal faces) or ``"cnn"`` (MMOD, slower, more poses).
        upsample: how many times dlib doubles the image before detecting (finds faces below ~80 px).
        max_side: detection runs on a copy whose long side is at most this many px (the CNN is slow on
            large photos); the shape predictor always runs on the original.
        max_faces: at most this many faces (the largest are kept).
        models_dir: folder with the ``.dat`` files; None: ``face_recognition_models``' own folder.
    """

    face_detector: str = "hog"
    upsample: int = 1
    max_side: int = 1024
    max_faces: int = 10
    models_dir: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.face_detector, "face_detector", ("hog", "cnn"))
        if isinstance(self.upsample, bool) or not isinstance(self.upsample, int) or not 0 <= self.upsample <= 3:
            raise ValueError(f"upsample: expected an int in [0, 3], got {self.upsample!r}")
        for name in ("max_side", "max_faces"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")


def dlib_models_dir() -> Path:
    """The ``models/`` folder of the installed ``face_recognition_models`` package.

    Raises:
        ModelNotInstalledError: the package is not installed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModelNotInstalledError(f"dlib's models (package face_recognition_models) are not installed; {_HINT}")
    return Path(spec.origin).parent / "models"


class DlibDetector:
    """Faces and the 68 iBUG landmarks with dlib (HOG or CNN detector + shape predictor).

    Args:
        options: a :class:`DlibOptions`; keyword arguments override single fields.

    Raises:
        ModelNotInstalledError: dlib or its model files are missing (the message says how to install them).

    Example:
        >>> with DlibDetector(face_detector="hog") as detector:   # doctest: +SKIP
        ...     faces = detector.detect(image)
        >>> faces[0].landmarks.shape                              # doctest: +SKIP
        (68, 2)
    """

    scheme = "ibug68"

    def __init__(self, options: DlibOptions | None = None, **overrides: Any) -> None:
        if options is not None and not isinstance(options, DlibOptions):
            raise TypeError(f"options: expected DlibOptions or None, got {describe(options)}")
        self.options = with_overrides(options or DlibOptions(), overrides)
        dlib = require("dlib", extra="dlib", purpose="dlib's 68-point landmark detector")
        folder = Path(self.options.models_dir) if self.options.models_dir is not None else dlib_models_dir()
        predictor = folder / "shape_predictor_68_face_landmarks.dat"
        cnn = folder / "mmod_human_face_detector.dat"
        needed = [predictor] + ([cnn] if self.options.face_detector == "cnn" else [])
        for path in needed:
            if not path.is_file():
                raise ModelNotInstalledError(f"dlib model file missing: {path}; {_HINT}")
        self._rect = dlib.rectangle
        self._predictor = dlib.shape_predictor(str(predictor))
        if self.options.face_detector == "cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(str(cnn))
            self._hog = None
        else:
            self._hog = dlib.get_frontal_face_detector()
            self._cnn = None
        self._closed = False

    def close(self) -> None:
        """Drop the dlib models; the detector is unusable afterwards. Safe to call twice."""
        self._closed = True
        self._predictor = self._cnn = self._hog = None

    def __enter__(self) -> DlibDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces of ``image``, largest box first.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (EXIF rotation already applied).

        Returns:
            A list of :class:`Detection` with 68 iBUG landmarks in px of ``image``; ``[]`` when there is none.
            ``score`` is the detector's margin (HOG: SVM score, CNN: MMOD confidence), not in [0, 1].
        """
        if self._closed:
            raise RuntimeError("detector: used after close()")
        image = check_image(image)
        small, to_orig = scaled_copy(image, self.options.max_side)
        found: list[tuple[np.ndarray, float]] = []
        if self._cnn is not None:
            for d in self._cnn(small, self.options.upsample):
                r = d.rect
                found.append((np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64), float(d.confidence)))
        else:
            rects, scores, _ = self._hog.run(small, self.options.upsample, 0.0)
            for r, s in zip(rects, scores):
                found.append((np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64), float(s)))
        out: list[Detection] = []
        for local_box, score in found:
            box = to_orig.box(local_box)
            rect = self._rect(*(int(round(c)) for c in box))
            shape = self._predictor(image, rect)
            pts = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64)
            out.append(Detection(box=box, score=score, landmarks=pts, landmarks_3d=None,
                                 confidence=np.ones(68), scheme=self.scheme))
        out.sort(key=lambda d: -d.area)
        return out[: self.options.max_faces]

