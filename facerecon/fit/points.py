"""Fit the face model to 3D points with known correspondences, up to one unknown scale.

A position map (:mod:`facerecon.nets.position_map`) gives a face's vertices in the camera's space divided by an
unknown reference depth ``Z_ref``: ``Y_v = (R M_v + t) / Z_ref`` with ``M = mean + A a + B b`` the model's vertices
(``a`` identity, ``b`` ARKit expression weights). Written ``R^T Y = s mean + A (s a) + B (s b) + e`` (``s = 1 / Z_ref``,
``e = R^T t / Z_ref``), it is linear in the scale, the scaled coefficients and the shift once the rotation is known,
and the rotation enters through a small update ``R <- R exp([w]_x)`` (``R^T Y ~ z - w x z``). So:

1. the rotation starts from the similarity of the mean face onto the points (weighted Umeyama: Umeyama,
   "Least-squares estimation of transformation parameters between two point patterns", PAMI 1991);
2. each Gauss-Newton step solves for all of them at once, ``min sum_v w_v |...|^2 + sigma^2 (|s a|^2 +
   expression_weight |s b|^2)``: one small system whose block for ``(s, s a, s b, e)`` depends only on the weights
   (built once per fitter); then ``b`` is clipped to [0, 1] and the rest solved again with the clipped ``b`` held.
   Solving the scale with the identity matters: the identity basis can make a face larger, and only together are
   size and depth told apart (by the prior).

``sigma`` is the points' noise in mm: on points in units of ``1 / Z_ref``, the data term ``sum w |r|^2 / (sigma s)^2``
plus the prior ``|a|^2`` times ``(sigma s)^2`` is the ridge above, so the identity prior N(0, 1)
(docs/conventions.md) weighs as a MAP estimate at any depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from facerecon.core.check import check_finite, check_shape
from facerecon.core.errors import FitDivergedError
from facerecon.geometry.rotation import axis_angle_to_matrix
from facerecon.models.face_model import FaceModel

__all__ = ["PointFit", "PointFitter"]


@dataclass(frozen=True)
class PointFit:
    """The model fitted to points (float64 NumPy).

    Attributes:
        identity: ``(K_id,)``; expression: ``(K_exp,)`` in [0, 1].
        rotation: ``(3, 3)`` model-to-camera; translation: ``(3,)`` mm.
        reference_depth: ``Z_ref``, mm (the points times it are in mm).
        rms_mm: the weighted root-mean-square distance between the points (in mm) and the fitted model.
    """

    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    reference_depth: float
    rms_mm: float


def similarity(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(s, R, d)`` minimising ``sum_i w_i |target_i - (s R source_i + d)|^2`` (weighted Umeyama; a proper
    rotation). ``source``, ``target``: ``(N, 3)``; ``weights``: ``(N,)`` >= 0, not all 0."""
    w = weights / weights.sum()
    mu_s, mu_t = w @ source, w @ target
    xs, xt = source - mu_s, target - mu_t
    cov = (xt * w[:, None]).T @ xs
    u, sv, vt = np.linalg.svd(cov)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ flip @ vt
    var = float(w @ (xs**2).sum(1))
    scale = float(np.trace(np.diag(sv) @ flip)) / max(var, 1e-300)
    return scale, rotation, mu_t - scale * rotation @ mu_s


class PointFitter:
    """Fits the model's ``face`` sub-mesh to points of some of its vertices (see the module docstring).

    Args:
        model: the face model.
        vertices: ``(N,)`` indices of the ``face`` vertices the points are of.
        weights: ``(N,)`` non-negative weights of the points.
        sigma_mm: the points' noise, mm (the prior's strength).
        expression_weight: the expression weights' ridge relative to the identity's.
        iterations: Gauss-Newton iterations (each solves twice: every unknown, then with the clipped expression held).
    """

    def __init__(self, model: FaceModel, vertices: np.ndarray, weights: np.ndarray, *, sigma_mm: float = 1.5,
                 expression_weight: float = 0.1, iterations: int = 2) -> None:  # fmt: skip
        vertices = np.asarray(vertices, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        check_shape(weights, "weights", (len(vertices),))
        if len(vertices) < 3 or not (weights >= 0).all() or weights.sum() <= 0:
            raise ValueError("vertices / weights: expected at least 3 points with non-negative weights, not all 0")
        count = model.submesh("face").vertex_count
        cols = (vertices[:, None] * 3 + np.arange(3)).ravel()
        k_id, k_exp = model.identity_count, model.expression_count
        self.mean = model.mean[:count].detach().cpu().double().numpy()[vertices]  # (N, 3)
        ident = model.identity_basis.detach().cpu().double().reshape(k_id, -1)[:, cols].numpy()
        expr = model.expression_basis.detach().cpu().double().reshape(k_exp, -1)[:, cols].numpy()
        self.basis = np.concatenate([ident, expr]).T  # (3N, K_id + K_exp)
        # Unknowns of a Gauss-Newton step (module docstring): s, s * (identity, expression), e = R^T d, and the
        # rotation's update w; the first three's columns of the design matrix do not depend on the data.
        design = np.concatenate([self.mean.reshape(-1, 1), self.basis, np.tile(np.eye(3), (len(vertices), 1))], axis=1)
        self.k_id, self.k_exp = k_id, k_exp
        self.weights = weights / weights.mean()
        self._w3 = np.repeat(self.weights, 3)
        sigma2 = float(sigma_mm) ** 2
        weighted = design * self._w3[:, None]
        normal = design.T @ weighted
        normal += np.diag(np.concatenate([[0.0], np.full(k_id, sigma2), np.full(k_exp, sigma2 * expression_weight), np.zeros(3)]))
        columns = np.arange(design.shape[1])
        expression_columns = columns[1 + k_id : 1 + k_id + k_exp]
        # Per set of unknowns (all; all but the expression): its weighted columns and its block of the normal matrix.
        self._blocks = {
            name: (np.ascontiguousarray(weighted[:, cols]), normal[np.ix_(cols, cols)])
            for name, cols in (("every", columns), ("other", np.setdiff1d(columns, expression_columns)))
        }  # fmt: skip
        self._expression_design = np.ascontiguousarray(design[:, expression_columns])
        self.iterations = iterations

    def _step(self, z: np.ndarray, block: str, fixed: np.ndarray) -> np.ndarray:
        """One Gauss-Newton solve of ``z = design[:, columns] x + [z]_x^T w + fixed`` (``z = R^T Y`` flattened):
        ``(x, w)``."""
        zx = z.reshape(-1, 3)
        cross = np.zeros((len(zx), 3, 3))  # -[z]_x: the columns of w, as w x z = -[z]_x w
        cross[:, 0, 1], cross[:, 0, 2] = zx[:, 2], -zx[:, 1]
        cross[:, 1, 0], cross[:, 1, 2] = -zx[:, 2], zx[:, 0]
        cross[:, 2, 0], cross[:, 2, 1] = zx[:, 1], -zx[:, 0]
        c = cross.reshape(-1, 3)
        wd, top = self._blocks[block]
        side = wd.T @ c
        normal = np.block([[top, side], [side.T, c.T @ (c * self._w3[:, None])]])
        target = z - fixed
        rhs = np.concatenate([wd.T @ target, c.T @ (target * self._w3)])
        # Symmetric positive definite: a Cholesky solve. Callers limit BLAS to one thread (core.threads.compute_threads,
        # as the pipeline does): a threaded solve of this 160 x 160 system took 16 ms on a busy 2-core machine.
        return scipy.linalg.solve(normal, rhs, assume_a="pos", check_finite=False)

    def fit(self, points: np.ndarray) -> PointFit:
        """Fit to ``points (N, 3)``: camera-space positions over ``Z_ref`` (or in mm: then ``reference_depth`` ~ 1).

        Raises:
            ValueError: points of another shape or not finite.
            FitDivergedError: the points are degenerate (all in one place, on a line, or mirrored).
        """
        points = np.asarray(points, dtype=np.float64)
        check_shape(points, "points", (len(self.mean), 3))
        check_finite(points, "points")
        k = self.k_id
        scale, rotation, _ = similarity(self.mean, points, self.weights)
        if not np.isfinite(scale) or scale <= 0:
            raise FitDivergedError("the points are degenerate: no similarity maps the model onto them")
        expression = np.zeros(self.k_exp)
        for _ in range(self.iterations):
            for block in ("every", "other"):  # all unknowns, then again with the clipped expression held
                z = (points @ rotation).ravel()
                fixed = self._expression_design @ (expression * scale) if block == "other" else np.zeros_like(z)
                x = self._step(z, block, fixed)
                solved, turn = x[:-3], x[-3:]
                scale = solved[0]
                if not np.isfinite(scale) or scale <= 0:
                    raise FitDivergedError("the points are degenerate: the fitted scale is not positive")
                rotation = rotation @ axis_angle_to_matrix(torch.from_numpy(turn)).numpy()
                if block == "every":
                    expression = np.clip(solved[1 + k : 1 + k + self.k_exp] / scale, 0.0, 1.0)
                else:
                    identity, shift = solved[1 : 1 + k] / scale, solved[1 + k :]
        model_points = self.mean + (self.basis @ np.concatenate([identity, expression])).reshape(-1, 3)
        translation = rotation @ shift / scale  # Y = R (s M + e) -> X = Y / s = R M + R e / s
        residual = points / scale - (model_points @ rotation.T + translation)
        rms = float(np.sqrt(self.weights @ (residual**2).sum(1) / self.weights.sum()))
        return PointFit(identity, expression, rotation, translation, 1.0 / scale, rms)


def model_points(model: FaceModel, fit: PointFit, submesh: str = "face") -> torch.Tensor:
    """The fitted face's ``submesh`` vertices in model space ``(V, 3)`` float32, mm."""
    return model(torch.from_numpy(fit.identity).float()[None], torch.from_numpy(fit.expression).float()[None], submesh=submesh)[0]
