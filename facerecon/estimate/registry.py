"""The estimators by name: what ``--method`` chooses in ``facerecon reconstruct`` and ``facerecon eval``.

A new method is one module with an :class:`~facerecon.estimate.Estimator` and one :func:`register_estimator` line
in :func:`_register_builtins`.

Example:
    >>> from facerecon.estimate import create_estimator             # doctest: +SKIP
    >>> fit = create_estimator("fit", model, photometric=False)      # doctest: +SKIP
    >>> estimate = fit.estimate(image, detection, camera)            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from facerecon.core.check import check_choice, check_registry_name

if TYPE_CHECKING:  # the registry itself imports no torch: the CLI's parser and a resumed batch read it
    from facerecon.estimate.base import Estimator
    from facerecon.models.face_model import FaceModel

#: Where ``--method fit`` starts (``FitConfig.start``): a PnP pose, the regressor, or the regressor at large yaw.
FIT_STARTS = ("pnp", "regress", "auto")


@dataclass(frozen=True)
class EstimatorInfo:
    """A registered estimator.

    Attributes:
        name: the name ``--method`` takes.
        factory: ``factory(model, **options) -> Estimator``.
        description: one line for ``--help``.
        gives_light: its estimates carry SH light and albedo (so the photometric outputs can be made).
    """

    name: str
    factory: Callable[..., Estimator]
    description: str
    gives_light: bool


_REGISTRY: dict[str, EstimatorInfo] = {}


def register_estimator(name: str, factory: Callable[..., Estimator], *, description: str, gives_light: bool,
                       replace: bool = False) -> EstimatorInfo:  # fmt: skip
    """Add an estimator (``replace`` allows replacing one of the same name)."""
    check_registry_name(name, factory)
    if name in _REGISTRY and not replace:
        raise ValueError(f"name: an estimator named {name!r} is registered already (pass replace=True)")
    info = EstimatorInfo(name, factory, str(description), bool(gives_light))
    _REGISTRY[name] = info
    return info


def available_estimators() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(_REGISTRY)


def estimator_info(name: str) -> EstimatorInfo:
    """The :class:`EstimatorInfo` of ``name`` (ValueError naming the choices otherwise)."""
    check_choice(name, "method", tuple(_REGISTRY))
    return _REGISTRY[name]


def create_estimator(name: str, model: FaceModel, **options: Any) -> Estimator:
    """Make the estimator ``name`` for ``model`` with its keyword options."""
    return estimator_info(name).factory(model, **options)


def _fit(model: FaceModel, **options: Any) -> Estimator:
    from facerecon.estimate.fit import FitConfig, FitEstimator

    return FitEstimator(model, FitConfig(**options))


def _regress(model: FaceModel, **options: Any) -> Estimator:
    from facerecon.estimate.regress import RegressEstimator

    return RegressEstimator(model, **options)


def _posmap(model: FaceModel, **options: Any) -> Estimator:
    from facerecon.estimate.posmap import PosMapEstimator

    return PosMapEstimator(model, **options)


def _register_builtins() -> None:
    register_estimator("fit", _fit, gives_light=True,
                       description="landmark fit (MediaPipe's 478 points) then photometric fit of the ICT model")  # fmt: skip
    register_estimator("regress", _regress, gives_light=True,
                       description="the learned regressor: one network pass on the face crop, no optimisation (~ms)")  # fmt: skip
    register_estimator("posmap", _posmap, gives_light=False,
                       description="the UV position-map network (paper 002): the face's surface as a map, read back "
                                   "and fitted by the model (no light)")  # fmt: skip


_register_builtins()
