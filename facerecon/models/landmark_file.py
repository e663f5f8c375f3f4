"""Reading a calibrated landmark embedding from the model cache (the file :mod:`facerecon.calibrate` writes).

The embedding of a detector's landmarks on a model (e.g. MediaPipe's 478 points on ICT-FaceKit) is computed by
``facerecon.calibrate.calibrate_landmarks`` and saved as ``landmarks_mediapipe478.npz`` in the model's cache
directory. This module only reads it (models do not import calibrate), checks it against the installed model,
and turns it into a barycentric :class:`~facerecon.models.face_model.LandmarkScheme`.

File layout (NumPy ``.npz``, no pickles), format version :data:`EMBEDDING_FORMAT_VERSION`:

* ``format_version`` () int; ``scheme`` () str; ``model_source_sha256`` () str (the installed model's source,
  so a re-installed model from another source does not use a stale embedding); ``vertex_count`` () int
  (vertices of the sub-mesh the triangles index, ``submesh``) and ``submesh`` () str;
* ``triangles`` ``(L, 3)`` int64 vertex triples, ``weights`` ``(L, 3)`` float64 barycentric weights,
  ``contour`` ``(L,)`` bool, ``embedded`` ``(L,)`` bool (False: not placed on the model);
* optionally, where the landmarks sit per head pose (:class:`~facerecon.models.face_model.LandmarkPoseTable`):
  ``pose_yaws`` ``(Y,)`` and ``pose_pitches`` ``(P,)`` degrees, ``pose_triangles`` ``(Y, P, L, 3)`` int64,
  ``pose_weights`` ``(Y, P, L, 3)`` float64 (version 2 added them; version 1 files are recalibrated);
* calibration records read by ``facerecon.calibrate.load_embedding``: the config (JSON), render counts, per
  landmark sample counts and pose drift, held-out reprojection errors.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facerecon.core.errors import ModelCacheError
from facerecon.models.face_model import LandmarkPoseTable, LandmarkScheme

EMBEDDING_FORMAT_VERSION = 2
"""Version of the embedding file layout; a file of another version is not used."""

MEDIAPIPE_SCHEME = "mediapipe478"
"""The scheme name the MediaPipe face-mesh embedding is registered under."""

MEDIAPIPE_EMBEDDING_FILE = "landmarks_mediapipe478.npz"
"""File name of the MediaPipe embedding inside the model's cache directory."""

_REQUIRED = ("format_version", "scheme", "model_source_sha256", "vertex_count", "submesh", "triangles", "weights",
             "contour", "embedded")  # fmt: skip


def read_embedding_arrays(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The arrays of an embedding file, checked for version, keys, shapes and index ranges.

    Args:
        path: the ``.npz`` file.

    Returns:
        A dict of NumPy arrays (0-d string and integer entries converted to ``str`` / ``int``).

    Raises:
        ModelCacheError: the file is missing, unreadable, of another format version, or inconsistent.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays: dict[str, Any] = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as err:
        raise ModelCacheError(
            f"the landmark embedding {path} is unreadable ({err}); run `facerecon model calibrate`"
        ) from None
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise ModelCacheError(f"the landmark embedding {path} lacks {', '.join(missing)}; run `facerecon model calibrate`")
    version = int(arrays["format_version"])
    if version != EMBEDDING_FORMAT_VERSION:
        raise ModelCacheError(
            f"the landmark embedding {path} has format version {version}, this facerecon reads version "
            f"{EMBEDDING_FORMAT_VERSION}; run `facerecon model calibrate`"
        )
    for key in ("scheme", "model_source_sha256", "submesh"):
        arrays[key] = str(arrays[key])
    arrays["vertex_count"] = int(arrays["vertex_count"])
    tri, w = arrays["triangles"], arrays["weights"]
    n = tri.shape[0] if tri.ndim == 2 else -1
    shapes_ok = (
        tri.ndim == 2 and tri.shape[1] == 3 and np.issubdtype(tri.dtype, np.integer)
        and w.shape == tri.shape and np.issubdtype(w.dtype, np.floating) and np.isfinite(w).all()
        and arrays["contour"].shape == (n,) and arrays["embedded"].shape == (n,)
    )  # fmt: skip
    if not shapes_ok or (tri.size and (tri.min() < 0 or tri.max() >= arrays["vertex_count"])):
        raise ModelCacheError(f"the landmark embedding {path} is inconsistent; run `facerecon model calibrate`")
    pose_keys = ("pose_yaws", "pose_pitches", "pose_triangles", "pose_weights")
    if any(k in arrays for k in pose_keys):
        ptri, pw = arrays.get("pose_triangles"), arrays.get("pose_weights")
        grid = (len(arrays.get("pose_yaws", ())), len(arrays.get("pose_pitches", ())))
        poses_ok = (
            all(k in arrays for k in pose_keys) and ptri.shape == grid + tri.shape and pw.shape == ptri.shape
            and np.issubdtype(ptri.dtype, np.integer) and np.isfinite(pw).all()
            and (ptri.size == 0 or (ptri.min() >= 0 and ptri.max() < arrays["vertex_count"]))
        )  # fmt: skip
        if not poses_ok:
            raise ModelCacheError(f"the landmark embedding {path} has an inconsistent pose table; run `facerecon model calibrate`")
    return arrays


def embedding_scheme(arrays: dict[str, Any]) -> LandmarkScheme:
    """The barycentric :class:`LandmarkScheme` of :func:`read_embedding_arrays`' output (CPU, float32 weights)."""
    poses = None
    if "pose_triangles" in arrays:
        poses = LandmarkPoseTable(
            tuple(float(v) for v in arrays["pose_yaws"]),
            tuple(float(v) for v in arrays["pose_pitches"]),
            torch.from_numpy(np.asarray(arrays["pose_triangles"], dtype=np.int64)),
            torch.from_numpy(np.asarray(arrays["pose_weights"], dtype=np.float32)),
        )
    return LandmarkScheme.from_barycentric(
        arrays["scheme"],
        torch.from_numpy(np.asarray(arrays["triangles"], dtype=np.int64)),
        torch.from_numpy(np.asarray(arrays["weights"], dtype=np.float32)),
        torch.from_numpy(np.asarray(arrays["contour"], dtype=bool)),
        torch.from_numpy(np.asarray(arrays["embedded"], dtype=bool)),
        poses,
    )


def cached_landmark_schemes(
    cache: str | os.PathLike[str], *, model_source_sha256: str | None, vertex_count: int
) -> dict[str, LandmarkScheme]:
    """The calibrated schemes found in a model's cache directory (``{}`` when it was never calibrated).

    A file that does not match the installed model (another source SHA-256, too few vertices) or cannot be
    read is not used: a ``UserWarning`` says so and how to recalibrate, and the model loads without it.

    Args:
        cache: the model's cache directory (``model.info["cache"]``).
        model_source_sha256: the installed model's source SHA-256 (from its ``meta.json``).
        vertex_count: the model's number of vertices.
    """
    path = Path(cache) / MEDIAPIPE_EMBEDDING_FILE
    if not path.is_file():
        return {}
    try:
        arrays = read_embedding_arrays(path)
    except ModelCacheError as err:
        warnings.warn(f"{err}; loading the model without the {MEDIAPIPE_SCHEME} scheme", UserWarning, stacklevel=3)
        return {}
    if arrays["model_source_sha256"] != model_source_sha256 or arrays["vertex_count"] > vertex_count:
        warnings.warn(
            f"the landmark embedding {path} was calibrated for another model install; run `facerecon model "
            f"calibrate` (loading the model without the {MEDIAPIPE_SCHEME} scheme)",
            UserWarning,
            stacklevel=3,
        )
        return {}
    return {arrays["scheme"]: embedding_scheme(arrays)}
