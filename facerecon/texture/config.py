"""The settings of the details stage, apart from the stage: a plain dataclass without torch (see
:mod:`facerecon.fit.config`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DetailConfig"]


@dataclass(frozen=True)
class DetailConfig:
    """Settings of the displacement estimate.

    Attributes:
        size: the displacement grid (texels per side).
        iterations: Adam steps; lr: Adam step size, mm.
        mu1: weight of ``||d||^2`` (per texel mean, d in mm).
        mu2: weight of ``||L d||_1`` (mean over texels, mm).
        w_dn: weight of eq. 7's normal change ``||n_d - N||^2``; w_dz: of eq. 7's depth change ``||grad d||^2``.
        l1_eps: smoothing of the L1 norm, mm.
        max_mm: the displacement is clamped to +-max_mm.
        min_weight: texels with a photo weight below this do not count in ``E_con``.
        robust: ``E_con`` uses the Geman-McClure ``c^2 r^2 / (r^2 + c^2)`` of the luminance residual ``r`` with
            this ``c``, so dark hair, glasses or shadows that no small displacement explains pull little.
        outlier: texels whose residual at ``d = 0`` exceeds this are left out of ``E_con`` (not skin).
    """

    size: int = 256
    iterations: int = 30
    lr: float = 0.05
    mu1: float = 1e-3
    mu2: float = 5e-4
    w_dn: float = 2e-3
    w_dz: float = 5e-4
    robust: float = 0.05
    outlier: float = 0.12
    l1_eps: float = 1e-3
    max_mm: float = 2.0
    min_weight: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"size: expected an int >= 8, got {self.size!r}")
        if not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(f"iterations: expected an int >= 0, got {self.iterations!r}")
        for name in ("lr", "mu1", "mu2", "w_dn", "w_dz", "l1_eps", "max_mm", "min_weight", "robust", "outlier"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: expected a finite non-negative number, got {value!r}")
