"""Storage: the embedding in the model's cache directory, where :func:`facerecon.models.load_model` finds it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from facerecon.calibrate.config import EmbeddingConfig
from facerecon.calibrate.embedding import LandmarkEmbedding, _core_arrays
from facerecon.core.check import describe
from facerecon.core.errors import ModelCacheError
from facerecon.io.atomic import write_bytes_atomic
from facerecon.models.landmark_file import MEDIAPIPE_EMBEDDING_FILE, embedding_scheme, read_embedding_arrays

__all__ = ["embedding_path", "load_embedding", "save_embedding"]



# ------------------------------------------------------------------------------------------------- files
def embedding_path(model_cache_dir: str | os.PathLike[str]) -> Path:
    """Where the MediaPipe embedding lives in a model's cache directory."""
    if not isinstance(model_cache_dir, (str, os.PathLike)):
        raise TypeError(f"model_cache_dir: expected a directory path, got {describe(model_cache_dir)}")
    return Path(model_cache_dir) / MEDIAPIPE_EMBEDDING_FILE


def save_embedding(embedding: LandmarkEmbedding, model_cache_dir: str | os.PathLike[str]) -> Path:
    """Write the embedding to ``model_cache_dir / "landmarks_mediapipe478.npz"`` atomically.

    Args:
        embedding: from :func:`calibrate_landmarks`.
        model_cache_dir: the model's cache directory, ``model.info["cache"]``.

    Returns:
        The file's path. :func:`facerecon.models.load_model` registers it as the ``"mediapipe478"`` scheme.
    """
    if not isinstance(embedding, LandmarkEmbedding):
        raise TypeError(f"embedding: expected a LandmarkEmbedding, got {describe(embedding)}")
    path = embedding_path(model_cache_dir)
    if not path.parent.is_dir():
        raise ModelCacheError(f"model_cache_dir: no such model cache directory: {path.parent}")
    arrays = {
        **_core_arrays(embedding),
        "config_json": embedding.config.to_json(),
        "drift_mm": embedding.drift_mm,
        "sample_counts": embedding.sample_counts,
        "heldout_errors": embedding.heldout_errors,
        **({} if embedding.heldout_errors_posefree is None else {"heldout_errors_posefree": embedding.heldout_errors_posefree}),
        "heldout_iod": embedding.heldout_iod,
        "renders": np.int64(embedding.renders),
        "renders_used": np.int64(embedding.renders_used),
        "renders_heldout": np.int64(embedding.renders_heldout),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    write_bytes_atomic(path, buffer.getvalue())
    return path


def load_embedding(model_cache_dir: str | os.PathLike[str]) -> LandmarkEmbedding:
    """Read the embedding :func:`save_embedding` wrote.

    Raises:
        ModelCacheError: no embedding in that directory, or an unreadable or inconsistent one.
    """
    path = embedding_path(model_cache_dir)
    if not path.is_file():
        raise ModelCacheError(f"no landmark embedding in {path.parent}; run `facerecon model calibrate`")
    arrays = read_embedding_arrays(path)
    try:
        return LandmarkEmbedding(
            triangles=np.asarray(arrays["triangles"], dtype=np.int64),
            weights=np.asarray(arrays["weights"], dtype=np.float64),
            contour=np.asarray(arrays["contour"], dtype=bool),
            embedded=np.asarray(arrays["embedded"], dtype=bool),
            drift_mm=np.asarray(arrays["drift_mm"], dtype=np.float64),
            sample_counts=np.asarray(arrays["sample_counts"], dtype=np.int64),
            heldout_errors=np.asarray(arrays["heldout_errors"], dtype=np.float64),
            heldout_iod=np.asarray(arrays["heldout_iod"], dtype=np.float64),
            config=EmbeddingConfig.from_json(str(arrays["config_json"])),
            renders=int(arrays["renders"]),
            renders_used=int(arrays["renders_used"]),
            renders_heldout=int(arrays["renders_heldout"]),
            model_source_sha256=arrays["model_source_sha256"],
            vertex_count=arrays["vertex_count"],
            poses=embedding_scheme(arrays).poses,
            heldout_errors_posefree=(
                np.asarray(arrays["heldout_errors_posefree"], dtype=np.float64) if "heldout_errors_posefree" in arrays else None
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ModelCacheError(f"the landmark embedding {path} is inconsistent ({err}); run `facerecon model calibrate`") from None
