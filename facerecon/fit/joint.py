"""One identity from several images of one person: the landmark stage over many views at once.

The energy is the landmark stage's (:mod:`facerecon.fit.landmarks`) summed over the views, with one identity
``a`` shared by all of them and a pose ``(R_f, t_f)`` and expression ``b_f`` per view (paper 001's last part fits
one identity to the frames of a sequence; paper 004 sec. 6 regularises it once, as a prior on the person):

    E = sum_f sum_i c_fi || f_fi - pi(R_f (m_i + A_i a + B_i b_f) + t_f) ||^2 / s_f^2
        + w_id ||a||^2 + sum_f w_exp ||b_f||^2,          0 <= b_f <= 1

The identity prior is counted once, so that views that agree outweigh it as they add up; expression and pose stay
per view, so that a smile or a turned head in one view is not taken for the person's shape. Each
Levenberg-Marquardt step assembles the views' normal equations (the same ones the single-view stage forms) into
one system over ``K_id + F (6 + K_exp)`` unknowns (572 for 8 views of ICT) and solves it densely.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facerecon.core.check import check_finite, check_shape
from facerecon.fit.landmarks import (
    REFERENCE_LANDMARK_COUNT,
    FitStart,
    LandmarkFit,
    LandmarkFitter,
    _apply_basis,
    _blas_single_thread,
    _bounded_step,
    _face_size,
    _frozen_expressions,
    _project,
    _pushed_out,
    _robust_weights,
    initial_pose,
)
from facerecon.geometry.camera import PerspectiveCamera

__all__ = ["JointLandmarkFit", "ViewLandmarks", "fit_shared_identity"]


@dataclass(frozen=True)
class ViewLandmarks:
    """One view of the person: its landmarks ``(L, 2)`` px (the fitter's targets), its camera, their confidences
    ``(L,)`` in [0, 1] (None: 1) and where its pose and expression start (None: a PnP pose of the mean face)."""

    landmarks: np.ndarray
    camera: PerspectiveCamera
    confidence: np.ndarray | None = None
    init: FitStart | None = None


@dataclass(frozen=True)
class JointLandmarkFit:
    """The person's ``identity (K_id,)`` and each view's fit (its pose and expression; every view's ``identity``
    is the shared one), the energy at the start of each iteration and at the end, and the iterations run."""

    identity: np.ndarray
    views: tuple[LandmarkFit, ...]
    history: tuple[float, ...]
    iterations: int


@dataclass(eq=False)
class _View:
    """A view's fixed data and its current unknowns."""

    targets: np.ndarray
    conf: np.ndarray
    size: float
    focal: float
    cx: float
    cy: float
    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray
    rows: object


def fit_shared_identity(fitter: LandmarkFitter, views: list[ViewLandmarks], *, iterations: int = 6,
                        identity_init: np.ndarray | None = None) -> JointLandmarkFit:  # fmt: skip
    """Fit one identity and a pose and expression per view to the landmarks of several views of one person.

    Args:
        fitter: a landmark fitter (its targets, settings and tables; it must fit identity).
        views: the views, each with landmarks for ``fitter.targets``.
        iterations: Levenberg-Marquardt iterations of the joint system.
        identity_init: ``(K_id,)`` where the identity starts (default 0, the mean face).

    Returns:
        A :class:`JointLandmarkFit`.

    Raises:
        ValueError: no views, a fitter with a held identity, landmarks of the wrong shape or not finite.
    """
    if not views:
        raise ValueError("views: expected at least one view, got none")
    if fitter.fixed_identity is not None:
        raise ValueError("fitter: expected a fitter that fits identity, got one for a known person")
    with _blas_single_thread():
        return _fit(fitter, views, iterations, identity_init)


def _fit(fitter: LandmarkFitter, views: list[ViewLandmarks], iterations: int,
         identity_init: np.ndarray | None) -> JointLandmarkFit:  # fmt: skip
    model, config = fitter.model, fitter.config
    L = len(fitter.targets.vertex_indices)
    k_id, k_exp = fitter.identity_modes, model.expression_count
    identity = np.zeros(k_id) if identity_init is None else np.asarray(identity_init, np.float64)[:k_id].copy()
    state: list[_View] = []
    for index, view in enumerate(views):
        points = np.asarray(view.landmarks, np.float64)
        check_shape(points, f"views[{index}].landmarks", (L, 2))
        check_finite(points, f"views[{index}].landmarks")
        conf = np.ones(L) if view.confidence is None else np.clip(np.asarray(view.confidence, np.float64), 0.0, 1.0)
        check_shape(conf, f"views[{index}].confidence", (L,))
        focal, cx, cy = view.camera.pinhole()
        rows = fitter._new_rows()
        if view.init is not None:
            rotation = np.array(view.init.rotation, np.float64)
            translation = np.array(view.init.translation, np.float64)
            expression = np.asarray(view.init.expression, np.float64).copy()
        else:
            rotation, translation = initial_pose(rows.mean, points, focal, cx, cy)
            expression = np.zeros(k_exp)
        state.append(_View(points, conf * (REFERENCE_LANDMARK_COUNT / L), _face_size(points), focal, cx, cy, rotation,
                           translation, expression, rows))  # fmt: skip
    F = len(state)
    per = 6 + k_exp
    n = k_id + F * per
    w_id = config.landmark_sigma**2
    w_exp = w_id * config.expression_weight
    frozen = _frozen_expressions(model, config)

    # Global order: identity, then each view's pose (6), then each view's expression (the bounded unknowns last,
    # as the bounded solve expects them).
    def pose_index(f: int) -> np.ndarray:
        return k_id + 6 * f + np.arange(6)

    def expr_index(f: int) -> np.ndarray:
        return k_id + 6 * F + k_exp * f + np.arange(k_exp)

    def view_energy(v: _View, rotation: np.ndarray, translation: np.ndarray, coeffs: np.ndarray, w: np.ndarray) -> float:
        cam = (v.rows.mean + _apply_basis(v.rows.basis, coeffs)) @ rotation.T + translation
        r = (_project(cam, v.focal, v.cx, v.cy) - v.targets) / v.size
        return float(np.sum(w[:, None] * r * r) + w_exp * np.sum(coeffs[k_id:] ** 2))

    lam = config.damping
    history: list[float] = []
    run = 0
    for run in range(1, iterations + 1):
        H = np.zeros((n, n))
        g = np.zeros(n)
        held = np.zeros(n, dtype=bool)
        robust: list[np.ndarray] = []
        e0 = w_id * float(identity @ identity)
        for f, v in enumerate(state):
            coeffs = np.concatenate([identity, v.expression])
            fitter._update_rows(v.rows, coeffs, v.rotation, v.translation, v.targets, v.focal, v.cx, v.cy)
            model_pts = v.rows.mean + _apply_basis(v.rows.basis, coeffs)
            cam = model_pts @ v.rotation.T + v.translation
            residual = (_project(cam, v.focal, v.cx, v.cy) - v.targets) / v.size
            w = _robust_weights(residual, v.conf, config.robust_scale)
            robust.append(w)
            e0 += float(np.sum(w[:, None] * residual**2)) + w_exp * float(v.expression @ v.expression)
            Hf, gf = fitter._normal_equations(model_pts, cam, v.rotation, v.rows.basis, residual, w, v.focal, v.size)
            Hf[6 + k_id :, 6 + k_id :] += np.eye(k_exp) * w_exp
            gf[6 + k_id :] += w_exp * v.expression
            index = np.concatenate([pose_index(f), np.arange(k_id), expr_index(f)])
            H[np.ix_(index, index)] += Hf
            g[index] += gf
            held[expr_index(f)] = frozen | _pushed_out(v.expression, gf[6 + k_id :])
        H[:k_id, :k_id] += np.eye(k_id) * w_id
        g[:k_id] += w_id * identity
        history.append(e0)
        g[held] = 0.0
        current = np.zeros(n)
        current[k_id + 6 * F :] = np.concatenate([v.expression for v in state])
        diagonal = np.maximum(np.diag(H), 1e-9)
        improved = False
        for _ in range(6):
            A = H.copy()
            A[np.diag_indices_from(A)] += lam * diagonal
            step = _bounded_step(A, g, held, current[6:], k_id + 6 * F)
            if step is None:
                lam *= 10
                continue
            new_identity = identity + step[:k_id]
            trial = []
            energy = w_id * float(new_identity @ new_identity)
            for f, v in enumerate(state):
                pose = step[pose_index(f)]
                rotation = v.rotation @ cv2.Rodrigues(pose[:3])[0]
                translation = v.translation + pose[3:]
                expression = np.clip(v.expression + step[expr_index(f)], 0.0, 1.0)
                trial.append((rotation, translation, expression))
                energy += view_energy(v, rotation, translation, np.concatenate([new_identity, expression]), robust[f])
            if energy < e0:
                identity = new_identity
                for v, (rotation, translation, expression) in zip(state, trial):
                    v.rotation, v.translation, v.expression = rotation, translation, expression
                lam = max(lam / 3, 1e-7)
                improved = True
                history_end = energy
                break
            lam *= 10
        if not improved:
            history_end = e0
            break
    history.append(history_end if history else 0.0)

    full_identity = np.zeros(model.identity_count)
    full_identity[:k_id] = identity
    fits = []
    for v in state:
        coeffs = np.concatenate([identity, v.expression])
        cam = (v.rows.mean + _apply_basis(v.rows.basis, coeffs)) @ v.rotation.T + v.translation
        proj = _project(cam, v.focal, v.cx, v.cy)
        fits.append(LandmarkFit(
            identity=full_identity.copy(), expression=v.expression.copy(), rotation=v.rotation.copy(),
            translation=v.translation.copy(), focal=v.focal, vertex_indices=v.rows.vertex_indices.copy(),
            triangles=v.rows.triangles.copy(), weights=v.rows.weights.copy(), projected=proj,
            residual_px=np.linalg.norm(proj - v.targets, axis=1), iterations=run,
        ))  # fmt: skip
    return JointLandmarkFit(identity=full_identity, views=tuple(fits), history=tuple(history), iterations=run)
