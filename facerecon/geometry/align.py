"""Rigid and similarity alignment of point sets: weighted Umeyama (batched, differentiable) and point-to-point ICP.

A :class:`SimilarityTransform` maps points as ``y = scale * R @ x + t`` (``scale = 1`` for a rigid one).

Example:
    >>> import torch
    >>> src = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    >>> tform = umeyama(src, 2 * src + torch.tensor([1.0, 2.0, 3.0]))
    >>> tform.scale.round(decimals=4), tform.translation.round(decimals=4)
    (tensor([2.]), tensor([[1., 2., 3.]]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from facerecon.core.check import check_finite, check_floating, check_shape, describe

__all__ = ["SimilarityTransform", "umeyama", "ICPResult", "icp"]


@dataclass(frozen=True)
class SimilarityTransform:
    """``y = scale * rotation @ x + translation`` with any leading batch shape ``(...)``.

    Attributes:
        rotation: ``(..., 3, 3)`` rotations (det +1).
        translation: ``(..., 3)`` translations, in the units of the points (mm).
        scale: ``(...)`` positive scales (1 for a rigid transform).
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    scale: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("rotation", "translation", "scale"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name}: expected a tensor, got {describe(value)}")
            check_floating(value, name)
        lead = tuple(self.scale.shape)
        check_shape(self.rotation, "rotation", (*lead, 3, 3))
        check_shape(self.translation, "translation", (*lead, 3))

    @classmethod
    def identity(
        cls, batch_shape: tuple[int, ...] = (), *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> SimilarityTransform:
        """The identity transform with leading shape ``batch_shape``."""
        dtype = dtype or torch.float32
        eye = torch.eye(3, device=device, dtype=dtype).expand(*batch_shape, 3, 3).clone()
        return cls(eye, torch.zeros(*batch_shape, 3, device=device, dtype=dtype), torch.ones(batch_shape, device=device, dtype=dtype))

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """Transform points ``(..., N, 3)`` (leading shape as the transform's) -> ``(..., N, 3)``."""
        if not isinstance(points, torch.Tensor):
            raise TypeError(f"points: expected a tensor of shape (..., N, 3), got {describe(points)}")
        check_shape(points, "points", (*self.scale.shape, None, 3))
        check_floating(points, "points")
        rs = self.rotation * self.scale[..., None, None]
        return points @ rs.transpose(-1, -2) + self.translation[..., None, :]

    def inverse(self) -> SimilarityTransform:
        """``x = (1 / scale) R^T (y - t)``."""
        rt = self.rotation.transpose(-1, -2)
        inv_scale = 1.0 / self.scale
        t = -(rt @ self.translation[..., None])[..., 0] * inv_scale[..., None]
        return SimilarityTransform(rt, t, inv_scale)

    def compose(self, other: SimilarityTransform) -> SimilarityTransform:
        """The transform ``self(other(x))``."""
        r = self.rotation @ other.rotation
        s = self.scale * other.scale
        t = self.scale[..., None] * (self.rotation @ other.translation[..., None])[..., 0] + self.translation
        return SimilarityTransform(r, t, s)

    @property
    def matrix(self) -> torch.Tensor:
        """``(..., 4, 4)`` homogeneous matrices ``[[s R, t], [0, 0, 0, 1]]``."""
        top = torch.cat([self.rotation * self.scale[..., None, None], self.translation[..., None]], -1)
        bottom = torch.zeros(*top.shape[:-2], 1, 4, dtype=top.dtype, device=top.device)
        bottom[..., 3] = 1
        return torch.cat([top, bottom], -2)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SimilarityTransform:
        """A copy with every tensor moved to ``device`` and/or cast to ``dtype``."""
        return SimilarityTransform(
            self.rotation.to(device=device, dtype=dtype),
            self.translation.to(device=device, dtype=dtype),
            self.scale.to(device=device, dtype=dtype),
        )


def umeyama(
    source: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    with_scale: bool = True,
) -> SimilarityTransform:
    """The least-squares similarity (or rigid) transform taking ``source`` onto ``target``.

    Minimises ``sum_i w_i |target_i - (s R source_i + t)|^2`` in closed form (Umeyama 1991, "Least-squares
    estimation of transformation parameters between two point patterns", eqs. 34-42, with weights): weighted
    centroids, the SVD ``U D V^T`` of the weighted cross-covariance, ``R = U S V^T`` with
    ``S = diag(1, 1, det(U) det(V))`` (a proper rotation, never a reflection), ``s = tr(D S) / var(source)``.
    Differentiable (through the SVD; gradients are ill-defined when two singular values coincide, e.g. for
    symmetric point sets).

    Args:
        source: ``(B, N, 3)`` points, N >= 3.
        target: ``(B, N, 3)`` corresponding points.
        weights: ``(B, N)`` non-negative weights (None: all 1). Each batch item needs a positive total.
        with_scale: estimate the scale; otherwise ``scale = 1`` (a rigid transform).

    Returns:
        A :class:`SimilarityTransform` with leading shape ``(B,)``.

    Raises:
        TypeError: non-floating inputs or different dtypes.
        ValueError: wrong shapes, fewer than 3 points, NaN/inf, negative or all-zero weights, source points
            that all coincide (with ``with_scale``).
    """
    sizes: dict[str, int] = {}
    for name, value in (("source", source), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor of shape (B, N, 3), got {describe(value)}")
        check_shape(value, name, ("B", "N", 3), sizes)
        check_floating(value, name)
        check_finite(value, name)
    if target.dtype != source.dtype:
        raise TypeError(f"target: expected dtype {source.dtype} (the source's), got {describe(target)}")
    if sizes["N"] < 3:
        raise ValueError(f"source: expected at least 3 points, got {describe(source)}")
    if weights is None:
        w = torch.ones(source.shape[:2], dtype=source.dtype, device=source.device)
    else:
        if not isinstance(weights, torch.Tensor):
            raise TypeError(f"weights: expected a tensor of shape (B, N), got {describe(weights)}")
        check_shape(weights, "weights", ("B", "N"), sizes)
        check_floating(weights, "weights")
        check_finite(weights, "weights")
        if weights.dtype != source.dtype:
            raise TypeError(f"weights: expected dtype {source.dtype} (the source's), got {describe(weights)}")
        if bool((weights < 0).any()):
            raise ValueError("weights: expected non-negative values, got negative entries")
        w = weights
    total = w.sum(1)  # (B,)
    if bool((total <= 0).any()):
        raise ValueError("weights: every batch item needs a positive total weight, got a batch item with 0")
    wn = (w / total[:, None])[..., None]  # (B, N, 1), sums to 1
    mu_s = (wn * source).sum(1)
    mu_t = (wn * target).sum(1)
    xs = source - mu_s[:, None]
    xt = target - mu_t[:, None]
    cov = (wn * xt).transpose(1, 2) @ xs  # (B, 3, 3): sum w (t - mu_t)(s - mu_s)^T
    u, d, vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    s_diag = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1)  # (B, 3)
    rotation = u @ (s_diag[..., None] * vh)
    if with_scale:
        var_s = (wn * xs * xs).sum((1, 2))
        if bool((var_s <= torch.finfo(source.dtype).tiny).any()):
            raise ValueError("source: the (weighted) source points all coincide, so no scale can be estimated")
        scale = (d * s_diag).sum(-1) / var_s
    else:
        scale = torch.ones_like(total)
    translation = mu_t - scale[:, None] * (rotation @ mu_s[..., None])[..., 0]
    return SimilarityTransform(rotation, translation, scale)


@dataclass(frozen=True)
class ICPResult:
    """The outcome of :func:`icp`.

    Attributes:
        transform: the :class:`SimilarityTransform` (leading shape ``()``) taking source onto target.
        rmse: root-mean-square distance over the inlier pairs after the last update, in point units (mm).
        iterations: number of correspondence/update rounds performed.
        converged: whether the RMSE change fell below the tolerance before ``max_iterations``.
        distances: ``(N,)`` distance from each transformed source point to its nearest target point.
        inliers: ``(N,)`` bool, the pairs used in the last update.
    """

    transform: SimilarityTransform
    rmse: float
    iterations: int
    converged: bool
    distances: torch.Tensor
    inliers: torch.Tensor


def icp(
    source: torch.Tensor,
    target: torch.Tensor,
    init: SimilarityTransform | None = None,
    *,
    with_scale: bool = False,
    max_iterations: int = 50,
    tolerance: float = 1e-7,
    max_distance: float | None = None,
    trim: float = 1.0,
) -> ICPResult:
    """Point-to-point ICP of a point set onto the vertices of a mesh (or any point set), on the CPU.

    Each round pairs every transformed source point with its nearest target point (a ``scipy.spatial.cKDTree``
    built once), keeps the pairs closer than ``max_distance`` and the ``trim`` fraction of closest pairs, and
    re-estimates the whole transform from the original source with :func:`umeyama`. It stops when the inlier
    RMSE changes by less than ``tolerance * max(rmse, 1)`` or after ``max_iterations`` rounds. Not
    differentiable (evaluation code). Computes in float64; results have the dtype of ``source``.

    Args:
        source: ``(N, 3)`` points to move (e.g. a scan), N >= 3.
        target: ``(M, 3)`` fixed points (e.g. a mesh's vertices), M >= 1.
        init: initial transform (leading shape ``()``); None: identity.
        with_scale: also estimate a uniform scale.
        max_iterations: upper bound on rounds (>= 1).
        tolerance: relative RMSE change that counts as converged (> 0).
        max_distance: pairs farther apart are ignored (None: no limit).
        trim: fraction in (0, 1] of the closest pairs kept each round (robust to partial overlap).

    Returns:
        An :class:`ICPResult`.

    Raises:
        TypeError / ValueError: wrong shapes or types, NaN/inf, bad options, fewer than 3 inlier pairs.
    """
    from scipy.spatial import cKDTree

    sizes: dict[str, int] = {}
    for name, value, spec in (("source", source, ("N", 3)), ("target", target, ("M", 3))):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor of shape {spec}, got {describe(value)}")
        check_shape(value, name, spec, sizes)
        check_floating(value, name)
        check_finite(value, name)
    if sizes["N"] < 3 or sizes["M"] < 1:
        raise ValueError(f"source: expected at least 3 source and 1 target points, got {describe(source)} and {describe(target)}")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise ValueError(f"max_iterations: expected a positive int, got {max_iterations!r}")
    if not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) or tolerance <= 0:
        raise ValueError(f"tolerance: expected a finite positive number, got {tolerance!r}")
    if max_distance is not None and (
        not isinstance(max_distance, (int, float)) or not math.isfinite(max_distance) or max_distance <= 0
    ):
        raise ValueError(f"max_distance: expected a finite positive number or None, got {max_distance!r}")
    if not isinstance(trim, (int, float)) or not 0 < trim <= 1:
        raise ValueError(f"trim: expected a fraction in (0, 1], got {trim!r}")
    if init is not None:
        if not isinstance(init, SimilarityTransform):
            raise TypeError(f"init: expected a SimilarityTransform, got {describe(init)}")
        if init.scale.dim() != 0:
            raise ValueError(f"init: expected a transform with leading shape (), got {tuple(init.scale.shape)}")

    src = source.detach().to("cpu", torch.float64)
    tgt = target.detach().to("cpu", torch.float64).numpy()
    tree = cKDTree(tgt)
    current = (init or SimilarityTransform.identity(dtype=torch.float64)).to("cpu", torch.float64)
    current = SimilarityTransform(current.rotation.detach(), current.translation.detach(), current.scale.detach())
    keep = max(3, int(math.ceil(trim * sizes["N"])))
    prev_rmse = math.inf
    rmse = math.inf
    converged = False
    iterations = 0
    inliers = torch.ones(sizes["N"], dtype=torch.bool)
    for iterations in range(1, max_iterations + 1):
        moved = current.apply(src).numpy()
        dist, idx = tree.query(moved)
        mask = np.ones(sizes["N"], dtype=bool) if max_distance is None else dist <= max_distance
        if keep < sizes["N"]:
            cutoff = np.partition(dist, keep - 1)[keep - 1]
            mask &= dist <= cutoff
        if int(mask.sum()) < 3:
            raise ValueError(
                f"max_distance: only {int(mask.sum())} source points are within {max_distance} of the target; "
                "give a better init or a larger max_distance"
            )
        inliers = torch.from_numpy(mask)
        pairs_src = src[inliers][None]
        pairs_tgt = torch.from_numpy(tgt[idx[mask]])[None]
        est = umeyama(pairs_src, pairs_tgt, with_scale=with_scale)
        current = SimilarityTransform(est.rotation[0], est.translation[0], est.scale[0])
        residual = current.apply(pairs_src[0]) - pairs_tgt[0]
        rmse = float(residual.pow(2).sum(-1).mean().sqrt())
        if abs(prev_rmse - rmse) < tolerance * max(rmse, 1.0):
            converged = True
            break
        prev_rmse = rmse
    final_dist, _ = tree.query(current.apply(src).numpy())
    out = current.to(dtype=source.dtype, device=source.device)
    return ICPResult(
        transform=out,
        rmse=rmse,
        iterations=iterations,
        converged=converged,
        distances=torch.from_numpy(final_dist).to(dtype=source.dtype, device=source.device),
        inliers=inliers.to(source.device),
    )
