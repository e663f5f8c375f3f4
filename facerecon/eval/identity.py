"""Identity similarity of two face images: the cosine of dlib's 128-d face embeddings.

Paper 003 (table 1) compares the input photo and the reconstructed overlay with the cosine of FaceNet features;
facerecon uses dlib's ResNet face recogniser (``dlib_face_recognition_resnet_model_v1.dat`` from the
``face_recognition_models`` package) the same way. Each image is aligned by dlib's 68-point shape predictor run
inside the same face box, so both embeddings see the same face region.

dlib is an optional extra (``pip install "facerecon[dlib]"``); nothing is downloaded.

Example:
    >>> with FaceEmbedder() as embedder:                                   # doctest: +SKIP
    ...     cos = embedder.cosine(photo, overlay_uint8, box=[x0, y0, x1, y1])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facerecon.core.check import check_finite, check_shape, describe
from facerecon.core.errors import ModelNotInstalledError, NoFaceError
from facerecon.core.optional import install_hint, require
from facerecon.io.image import as_rgb_uint8

__all__ = ["FaceEmbedder", "cosine_similarity"]

_HINT = install_hint("dlib")
_RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
_SHAPE_MODEL = "shape_predictor_68_face_landmarks.dat"


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """``a . b / (|a| |b|)`` of two ``(D,)`` vectors, in [-1, 1].

    Raises:
        ValueError: different shapes, NaN/inf or a zero vector.
    """
    sizes: dict[str, int] = {}
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{name}: expected an array of shape (D,), got {describe(value)}")
        check_shape(value, name, ("D",), sizes)
        check_finite(value, name)
    x, y = a.astype(np.float64), b.astype(np.float64)
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        raise ValueError("a: cannot take the cosine of a zero vector")
    return float(np.clip(x @ y / (nx * ny), -1.0, 1.0))


class FaceEmbedder:
    """dlib's 128-d face embedding, for identity similarity.

    Args:
        models_dir: folder with ``dlib_face_recognition_resnet_model_v1.dat`` and
            ``shape_predictor_68_face_landmarks.dat``; None: the ``face_recognition_models`` package's folder.

    Raises:
        ModelNotInstalledError: dlib or a model file is missing (the message says how to install them).
    """

    def __init__(self, models_dir: str | Path | None = None) -> None:
        from facerecon.detect.dlib68 import dlib_models_dir

        dlib = require("dlib", extra="dlib", purpose="the identity metric (dlib face embeddings)")
        folder = Path(models_dir) if models_dir is not None else dlib_models_dir()
        for name in (_RECOGNITION_MODEL, _SHAPE_MODEL):
            if not (folder / name).is_file():
                raise ModelNotInstalledError(f"dlib model file missing: {folder / name}; {_HINT}")
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(folder / _SHAPE_MODEL))
        self._encoder = dlib.face_recognition_model_v1(str(folder / _RECOGNITION_MODEL))
        self._hog: Any = None

    def close(self) -> None:
        """Drop the dlib models; the embedder is unusable afterwards. Safe to call twice."""
        self._predictor = self._encoder = self._hog = None

    def __enter__(self) -> FaceEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _box(self, image: np.ndarray, box: np.ndarray | None) -> Any:
        if box is None:
            if self._hog is None:
                self._hog = self._dlib.get_frontal_face_detector()
            rects = self._hog(image, 1)
            if len(rects) == 0:
                raise NoFaceError("identity: dlib found no face to embed")
            return max(rects, key=lambda r: r.width() * r.height())
        b = np.asarray(box, dtype=np.float64)
        check_shape(b, "box", (4,))
        check_finite(b, "box")
        x0, y0, x1, y1 = (round(float(c)) for c in b)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box: expected x0 < x1 and y0 < y1, got {b.tolist()}")
        return self._dlib.rectangle(x0, y0, x1, y1)

    def embed(self, image: np.ndarray, box: np.ndarray | None = None) -> np.ndarray:
        """The face embedding of ``image``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (or float in [0, 1]).
            box: ``(4,)`` ``[x0, y0, x1, y1]`` px, the face; None: the largest face dlib's HOG detector finds.

        Returns:
            ``(128,)`` float64.

        Raises:
            NoFaceError: ``box`` is None and no face was found.
        """
        if self._encoder is None:
            raise RuntimeError("embedder: used after close()")
        rgb = np.ascontiguousarray(as_rgb_uint8(image, "image"))
        rect = self._box(rgb, box)
        shape = self._predictor(rgb, rect)
        return np.asarray(self._encoder.compute_face_descriptor(rgb, shape), dtype=np.float64)

    def cosine(self, image_a: np.ndarray, image_b: np.ndarray, box: np.ndarray | None = None) -> float:
        """Cosine similarity of the embeddings of two images of the same size, in the same face ``box``.

        With ``box`` None the face is found in ``image_a`` and the same box is used for ``image_b``.
        """
        a = as_rgb_uint8(image_a, "image_a")
        b = as_rgb_uint8(image_b, "image_b")
        if a.shape != b.shape:
            raise ValueError(f"image_b: expected the shape of image_a {a.shape}, got {b.shape}")
        if box is None:
            r = self._box(np.ascontiguousarray(a), None)
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64)
        return cosine_similarity(self.embed(a, box), self.embed(b, box))
