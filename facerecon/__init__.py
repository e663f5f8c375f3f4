"""facerecon: photos and videos of faces to 3D faces, on a plain CPU.

The public API is re-exported here lazily so that ``import facerecon`` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["FaceModel", "Reconstruction", "load_model", "reconstruct", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "FaceModel":
        from facerecon.models import FaceModel

        return FaceModel
    if name == "load_model":  # installed on first use, and calibrated for the default landmark detector
        from facerecon.pipeline.setup import load_model

        return load_model
    if name == "reconstruct":
        from facerecon.pipeline.run import reconstruct

        return reconstruct
    if name == "Reconstruction":
        from facerecon.pipeline.reconstruction import Reconstruction

        return Reconstruction
    raise AttributeError(f"module 'facerecon' has no attribute {name!r}")
