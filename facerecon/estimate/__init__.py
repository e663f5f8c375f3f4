"""Methods that estimate a detected face's model parameters, behind one seam (:class:`Estimator`).

This room may import core, geometry, models, render, detect (types), fit and nets; the pipeline and eval import it.
"""

from facerecon.estimate.base import Estimator, FaceEstimate
from facerecon.estimate.registry import (
    EstimatorInfo,
    available_estimators,
    create_estimator,
    estimator_info,
    register_estimator,
)

__all__ = [
    "Estimator",
    "EstimatorInfo",
    "FaceEstimate",
    "available_estimators",
    "create_estimator",
    "estimator_info",
    "register_estimator",
]
