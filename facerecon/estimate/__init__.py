"""Methods that estimate a detected face's model parameters, behind one seam (:class:`Estimator`).

This room may import core, geometry, models, render, detect (types), fit and nets; the pipeline and eval import it.
"""

from typing import TYPE_CHECKING, Any

from facerecon.estimate.registry import (
    EstimatorInfo,
    available_estimators,
    create_estimator,
    estimator_info,
    register_estimator,
)

if TYPE_CHECKING:
    from facerecon.estimate.base import Estimator, FaceEstimate


def __getattr__(name: str) -> Any:
    # The seam's types import torch: loaded on first use, so that the registry (what --method offers) stays light.
    if name in ("Estimator", "FaceEstimate"):
        from facerecon.estimate import base

        return getattr(base, name)
    raise AttributeError(f"module 'facerecon.estimate' has no attribute {name!r}")

__all__ = [
    "Estimator",
    "EstimatorInfo",
    "FaceEstimate",
    "available_estimators",
    "create_estimator",
    "estimator_info",
    "register_estimator",
]
