"""``load_model``: the installed ICT model as a :class:`FaceModel`, installing it on first use."""

from __future__ import annotations

import os

import numpy as np
import torch

from facerecon.core.check import check_choice
from facerecon.models.face_model import FaceModel, LandmarkScheme
from facerecon.models.ict import cache_dir, ensure_installed, load_arrays
from facerecon.models.landmark_file import cached_landmark_schemes

MODEL_NAMES = ("ict",)


def load_model(
    name: str = "ict",
    *,
    home: str | os.PathLike[str] | None = None,
    install: bool = True,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> FaceModel:
    """Load a face model from the cache.

    Args:
        name: the model; ``"ict"`` (ICT Face Model Light) is the only one so far.
        home: cache root (default ``$FACERECON_HOME`` or ``~/.cache/facerecon``).
        install: install from ``$FACERECON_ICT_SOURCE`` or the official URL when missing, and re-install
            when that local source changed; with False a missing cache raises.
        progress: show a progress bar if a download happens.
        device: where to put the buffers (default CPU).

    The model carries the landmark schemes ``"ibug68"`` and the jawlines, and ``"mediapipe478"`` once it has
    been calibrated (``facerecon model calibrate``, :mod:`facerecon.calibrate`).

    Raises:
        ModelSourceError: installing failed (see :func:`facerecon.models.ict.install_ict`).
        ModelCacheError: ``install=False`` and nothing (readable) is installed.
    """
    check_choice(name, "name", MODEL_NAMES)
    if install:
        ensure_installed(home, progress=progress)
    arrays, meta = load_arrays(home)
    ibug = torch.from_numpy(arrays["ibug68"])
    contour = torch.zeros(len(ibug), dtype=torch.bool)
    contour[:17] = True  # iBUG 0-16: the jaw outline, which slides with pose (paper 004, sec. 6.1)
    schemes = {
        "ibug68": LandmarkScheme("ibug68", ibug, contour),
    }
    for side in ("right", "left"):
        for suffix in ("", "_extended"):
            key = f"{side}_jawline{suffix}"
            idx = torch.from_numpy(arrays[key])
            schemes[key] = LandmarkScheme(key, idx, torch.ones(len(idx), dtype=torch.bool))
    # The calibrated MediaPipe embedding (`facerecon model calibrate`), when the cache holds one for this install.
    schemes.update(
        cached_landmark_schemes(
            cache_dir(home), model_source_sha256=meta.get("source_sha256"), vertex_count=int(arrays["mean"].shape[0])
        )
    )
    submeshes = {
        str(n): (int(v), int(f))
        for n, v, f in zip(arrays["submesh_names"], arrays["submesh_vertex_counts"], arrays["submesh_triangle_counts"])
    }
    model = FaceModel(
        mean=torch.from_numpy(arrays["mean"]),
        identity_basis=torch.from_numpy(arrays["identity_basis"]),
        expression_basis=torch.from_numpy(arrays["expression_basis"]),
        expression_names=[str(n) for n in arrays["expression_names"]],
        triangles=torch.from_numpy(arrays["triangles"]),
        uvs=torch.from_numpy(arrays["uvs"]),
        uv_triangles=torch.from_numpy(arrays["uv_triangles"]),
        mirror=torch.from_numpy(arrays["mirror"]),
        region_labels=torch.from_numpy(arrays["region_labels"]),
        skin_mask=torch.from_numpy(arrays["skin_mask"]),
        region_weights=torch.from_numpy(arrays["region_weights"]),
        landmark_schemes=schemes,
        submeshes=submeshes,
        info={**meta, "cache": str(cache_dir(home))},
    )
    return model if device is None else model.to(device)


def model_summary(model: FaceModel) -> dict:
    """A JSON-ready summary of a model: counts, schemes, regions, sub-meshes, source and licence."""
    labels = model.region_labels.cpu().numpy()
    return {
        "name": model.info.get("name", "ict-facekit"),
        "description": model.info.get("description", ""),
        "vertices": model.vertex_count,
        "triangles": int(model.triangles.shape[0]),
        "source_polygons": model.info.get("source_polygons"),
        "identity_modes": model.identity_count,
        "expression_modes": model.expression_count,
        "expressions": list(model.expression_names),
        "landmark_schemes": {n: int(model.landmarks(n).vertex_indices.numel()) for n in model.landmark_scheme_names},
        "regions": {name: int(np.sum(labels == i)) for i, name in enumerate(model.region_names)},
        "skin_mask_vertices": int(model.skin_mask.sum()),
        "submeshes": {n: {"vertices": model.submesh(n).vertex_count, "triangles": int(model.submesh(n).triangles.shape[0])}
                      for n in model.submesh_names},
        "units": "mm",
        "source": model.info.get("source"),
        "source_sha256": model.info.get("source_sha256"),
        "licence": model.info.get("licence"),
        "attribution": model.info.get("attribution"),
        "cache": model.info.get("cache"),
    }
