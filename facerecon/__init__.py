"""facerecon: photos and videos of faces to 3D faces, on a plain CPU.

The public API is re-exported here lazily so that ``import facerecon`` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["FaceModel", "Reconstruction", "load_model", "reconstruct", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("FaceModel", "load_model"):
        from facerecon import models

        return getattr(models, name)
    if name == "reconstruct":
        from facerecon.pipeline.run import reconstruct

        return reconstruct
    if name == "Reconstruction":
        from facerecon.pipeline.reconstruction import Reconstruction

        return Reconstruction
    raise AttributeError(f"module 'facerecon' has no attribute {name!r}")
