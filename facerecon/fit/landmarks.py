"""The landmark stage: pose, identity and expression from 2-D landmarks by regularised Gauss-Newton.

Energy (paper 004 eq. 10 with sliding contour points, sec. 6.1; priors of paper 001 E_reg / paper 004 E_std):

    E(R, t, a, b) = sum_i c_i || f_i - pi(R (m_i + A_i a + B_i b) + t) ||^2 / s^2
                    + w_id ||a||^2 + w_exp ||b||^2,     0 <= b <= 1

with ``f_i`` the detected landmarks (px) and ``c_i`` their confidences, ``s`` the face's size in pixels (so
the weights do not depend on the image resolution), ``a`` identity coefficients (N(0, 1)), ``b`` expression
weights, ``pi`` the perspective projection. The model is linear in (a, b), so each Levenberg-Marquardt step
solves a small dense system in the 6 pose + K coefficient unknowns (K = 153 for ICT): a few milliseconds for
the whole fit on one CPU core, instead of hundreds of generic gradient steps.

Contour landmarks slide along the face (paper 004 sec. 6.1): before each step, each contour landmark takes the
candidate vertex closest to the 3-D ray through its detected 2-D position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.linalg
import torch
from threadpoolctl import ThreadpoolController

from facerecon.core.check import check_finite, check_shape
from facerecon.models.face_model import FaceModel
from facerecon.models.regions import Region


CONTOUR_CANDIDATE_SPACING_MM = 4.0


@dataclass(frozen=True)
class LandmarkFitConfig:
    """Settings of the landmark stage.

    Attributes:
        iterations: Levenberg-Marquardt iterations (each: slide contours, one damped Gauss-Newton step).
        landmark_sigma: the landmarks' noise as a fraction of the face size. With residuals measured in face
            sizes, the maximum a-posteriori energy ``sum c_i r_i^2 / sigma^2 + ||a||^2`` (paper 001 E_reg,
            paper 004 E_std: identity ~ N(0, 1)) times ``sigma^2`` gives ``w_id = sigma^2``.
        expression_weight: ``w_exp`` relative to ``w_id``: an L2 pull of the blendshape weights to 0.
        frozen_expressions: expressions held at 0 (or at ``init``): gaze moves the eyeballs, which 68
            landmarks do not see.
        identity_modes: how many identity modes to fit (the leading ones); the rest stay 0.
        sliding_contour: let contour landmarks slide (paper 004 sec. 6.1).
        robust_scale: landmarks whose residual exceeds this fraction of the face size are down-weighted
            (Huber IRLS); None disables it.
        damping: initial Levenberg-Marquardt damping, relative to the mean diagonal of the normal matrix.
    """

    iterations: int = 12
    landmark_sigma: float = 0.02
    expression_weight: float = 4.0
    frozen_expressions: tuple[str, ...] = (
        "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
        "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R",
    )  # fmt: skip
    identity_modes: int = 100
    sliding_contour: bool = True
    robust_scale: float | None = 0.03
    damping: float = 1e-3


@dataclass(frozen=True)
class LandmarkTargets:
    """Model-side definition of the landmarks being fitted.

    Attributes:
        vertex_indices: ``(L,)`` int64 template vertices of the landmarks (fixed points and the initial
            vertex of sliding ones).
        contour: ``(L,)`` bool, landmarks that slide along the face contour.
        contour_candidates: ``(C,)`` int64 template vertices a sliding landmark may move to.
    """

    vertex_indices: np.ndarray
    contour: np.ndarray
    contour_candidates: np.ndarray


def ibug68_targets(model: FaceModel) -> LandmarkTargets:
    """The 68 iBUG landmarks of ``model`` with the jaw (0-16) sliding over the cheek and jaw vertices.

    Candidates are the face vertices labelled cheeks or chin/jaw below the eyes' level: the surface on which
    the image contour of the lower face lies at any plausible head pose.
    """
    scheme = model.landmarks("ibug68")
    idx = scheme.vertex_indices.cpu().numpy()
    labels = model.region_labels.cpu().numpy()
    mean = model.mean.cpu().numpy()
    face_count = model.submesh("face").vertex_count
    eye_level = mean[idx[36:48], 1].mean()
    candidate = np.isin(labels[:face_count], [Region.CHEEKS, Region.CHIN_JAW]) & (mean[:face_count, 1] < eye_level)
    candidates = np.flatnonzero(candidate)
    # One candidate per 4 mm cell: the contour is located to a few mm anyway, and fewer candidates keep
    # the sliding step cheap.
    _, first = np.unique(np.floor(mean[candidates] / CONTOUR_CANDIDATE_SPACING_MM), axis=0, return_index=True)
    candidates = np.union1d(candidates[first], idx[scheme.contour.cpu().numpy()])
    return LandmarkTargets(idx, scheme.contour.cpu().numpy(), candidates)


@dataclass(frozen=True)
class LandmarkFit:
    """The result of the landmark stage (float64 NumPy; one face).

    Attributes:
        identity: ``(K_id,)`` identity coefficients.
        expression: ``(K_exp,)`` expression weights in [0, 1].
        rotation: ``(3, 3)`` model-to-camera rotation.
        translation: ``(3,)`` model-to-camera translation, mm.
        focal: focal length used, px.
        vertex_indices: ``(L,)`` the template vertex each landmark ended on (contours slid).
        projected: ``(L, 2)`` the fitted landmarks projected into the image, px.
        residual_px: ``(L,)`` distance between projected and detected landmarks, px.
        iterations: iterations run.
        history: the energy after each iteration (for diagnostics).
    """

    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    focal: float
    vertex_indices: np.ndarray
    projected: np.ndarray
    residual_px: np.ndarray
    iterations: int
    history: tuple[float, ...] = field(default_factory=tuple)


class _LinearLandmarks:
    """Mean and bases of a set of template vertices, flattened for fast Gauss-Newton."""

    def __init__(self, model: FaceModel, vertices: np.ndarray, identity_modes: int) -> None:
        idx = torch.as_tensor(vertices, dtype=torch.long, device=model.mean.device)
        self.mean = model.mean[idx].double().cpu().numpy()  # (N, 3)
        ident = model.identity_basis[:identity_modes, idx].double().cpu().numpy()  # (Ki, N, 3)
        expr = model.expression_basis[:, idx].double().cpu().numpy()  # (Ke, N, 3)
        self.basis = np.concatenate([ident, expr], 0).transpose(1, 2, 0)  # (N, 3, K)

    def points(self, coeffs: np.ndarray) -> np.ndarray:
        return self.mean + self.basis @ coeffs


def _project(points_cam: np.ndarray, focal: float, cx: float, cy: float) -> np.ndarray:
    z = np.maximum(points_cam[:, 2], 1e-6)
    return np.stack([focal * points_cam[:, 0] / z + cx, focal * points_cam[:, 1] / z + cy], 1)


def _skew(v: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` cross-product matrices of ``(N, 3)`` vectors."""
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def initial_pose(
    model_points: np.ndarray, image_points: np.ndarray, focal: float, cx: float, cy: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation of ``model_points`` ``(L, 3)`` mm seen at ``image_points`` ``(L, 2)`` px (PnP).

    EPnP gives a closed-form start that the iterative PnP refines; a solution with the face behind the
    camera or turned away is replaced by a frontal guess at the distance that matches the landmarks' spread.
    """
    camera = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=np.float64)
    obj = np.ascontiguousarray(model_points, dtype=np.float64)
    img = np.ascontiguousarray(image_points, dtype=np.float64)
    spread_model = np.linalg.norm(obj - obj.mean(0), axis=1).mean()
    spread_image = np.linalg.norm(img - img.mean(0), axis=1).mean()
    depth = focal * spread_model / max(spread_image, 1e-6)
    frontal = np.diag([1.0, -1.0, -1.0])
    centre = (img.mean(0) - [cx, cy]) * depth / focal
    fallback = (frontal, np.array([centre[0], centre[1], depth]) - frontal @ obj.mean(0))
    ok, rvec, tvec = cv2.solvePnP(obj, img, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(obj, img, camera, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return fallback
    rotation = cv2.Rodrigues(rvec)[0]
    translation = tvec.reshape(3)
    facing = (rotation @ np.array([0.0, 0.0, 1.0]))[2] < 0  # the face's +z must point at the camera
    if translation[2] <= 0 or not facing:
        return fallback
    return rotation, translation


def _blas_single_thread():
    """Run small dense solves on one BLAS thread: on 2 busy cores OpenBLAS's thread pool makes a 159 x 159
    Cholesky 100x slower than one thread does."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


_BLAS_CONTROLLER: ThreadpoolController | None = None


class LandmarkFitter:
    """Fits one face at a time to 2-D landmarks; holds the model's tables for those landmarks.

    Example:
        >>> fitter = LandmarkFitter(model, ibug68_targets(model))                   # doctest: +SKIP
        >>> fit = fitter.fit(det.to_ibug68(), focal=1200.0, principal_point=(319.5, 239.5))  # doctest: +SKIP
    """

    def __init__(self, model: FaceModel, targets: LandmarkTargets, config: LandmarkFitConfig = LandmarkFitConfig()) -> None:
        self.model = model
        self.targets = targets
        self.config = config
        self.identity_modes = min(config.identity_modes, model.identity_count)
        self._fixed = _LinearLandmarks(model, targets.vertex_indices, self.identity_modes)
        self._candidates = (
            _LinearLandmarks(model, targets.contour_candidates, self.identity_modes)
            if config.sliding_contour and targets.contour.any()
            else None
        )

    def fit(
        self,
        landmarks: np.ndarray,
        *,
        focal: float,
        principal_point: tuple[float, float],
        confidence: np.ndarray | None = None,
        init: LandmarkFit | None = None,
    ) -> LandmarkFit:
        """Fit pose, identity and expression to one face's 2-D landmarks.

        Args:
            landmarks: ``(L, 2)`` detected landmarks, px (pixel centres at integers).
            focal: focal length, px.
            principal_point: ``(cx, cy)``, px.
            confidence: ``(L,)`` weights in [0, 1] (default 1).
            init: a previous fit to start from (e.g. the previous video frame).

        Returns:
            A :class:`LandmarkFit`.

        Raises:
            ValueError: a shape that does not match the targets, non-finite landmarks, fewer than 6 landmarks.
        """
        with _blas_single_thread():
            return self._fit(landmarks, focal, principal_point, confidence, init)

    def _fit(
        self,
        landmarks: np.ndarray,
        focal: float,
        principal_point: tuple[float, float],
        confidence: np.ndarray | None,
        init: LandmarkFit | None,
    ) -> LandmarkFit:
        model, targets, config = self.model, self.targets, self.config
        L = len(targets.vertex_indices)
        check_shape(landmarks, "landmarks", (L, 2))
        check_finite(landmarks, "landmarks")
        if L < 6:
            raise ValueError(f"landmarks: expected at least 6 landmarks for a pose, got {L}")
        conf = np.ones(L) if confidence is None else np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)
        check_shape(conf, "confidence", (L,))
        f2d = np.asarray(landmarks, np.float64)
        cx, cy = map(float, principal_point)
        k_id = self.identity_modes
        k_exp = model.expression_count
        K = k_id + k_exp
        fixed = self._fixed
        candidates = self._candidates
        contour = np.flatnonzero(targets.contour) if candidates is not None else np.zeros(0, np.int64)
        vertex_indices = targets.vertex_indices.copy()
        mean = fixed.mean.copy()
        basis = fixed.basis.copy()

        size = float(np.sqrt(np.prod(np.ptp(f2d, axis=0)) + 1e-9))  # face size in px
        coeffs = np.zeros(K)
        if init is not None:
            coeffs[:k_id] = init.identity[:k_id]
            coeffs[k_id:] = init.expression
            rotation, translation = init.rotation.copy(), init.translation.copy()
        else:
            rotation, translation = initial_pose(mean, f2d, focal, cx, cy)
        w_id = config.landmark_sigma**2
        prior = np.concatenate([np.full(k_id, w_id), np.full(k_exp, w_id * config.expression_weight)])
        free = np.ones(6 + K, dtype=bool)
        for name in config.frozen_expressions:
            if name in model.expression_names:
                free[6 + k_id + model.expression_index(name)] = False
        lam = config.damping
        history: list[float] = []

        def energy(rot: np.ndarray, trans: np.ndarray, c: np.ndarray, w: np.ndarray) -> float:
            cam = (mean + basis @ c) @ rot.T + trans
            r = (_project(cam, focal, cx, cy) - f2d) / size
            return float(np.sum(w[:, None] * r * r) + np.sum(prior * c * c))

        for it in range(config.iterations):
            if len(contour):
                # Slide: the candidate closest to the ray through each contour landmark (paper 004 sec. 6.1).
                cand_cam = candidates.points(coeffs) @ rotation.T + translation  # (C, 3)
                rays = np.stack([(f2d[contour, 0] - cx) / focal, (f2d[contour, 1] - cy) / focal, np.ones(len(contour))], 1)
                rays /= np.linalg.norm(rays, axis=1, keepdims=True)
                along = cand_cam @ rays.T  # (C, Lc)
                dist2 = np.sum(cand_cam**2, 1)[:, None] - along**2
                dist2[along <= 0] = np.inf
                best = np.argmin(dist2, axis=0)
                vertex_indices[contour] = targets.contour_candidates[best]
                mean[contour] = candidates.mean[best]
                basis[contour] = candidates.basis[best]

            model_pts = mean + basis @ coeffs  # (L, 3)
            cam = model_pts @ rotation.T + translation
            proj = _project(cam, focal, cx, cy)
            residual = (proj - f2d) / size  # (L, 2)
            w = conf.copy()
            if config.robust_scale is not None:
                norm = np.linalg.norm(residual, axis=1)
                w *= np.where(norm > config.robust_scale, config.robust_scale / np.maximum(norm, 1e-12), 1.0)
            e0 = float(np.sum(w[:, None] * residual**2) + np.sum(prior * coeffs**2))
            history.append(e0)
            # Jacobians of the projection (L, 2, 3) and of the camera point wrt (omega, t, coeffs).
            x, y, z = cam[:, 0], cam[:, 1], np.maximum(cam[:, 2], 1e-6)
            dproj = np.zeros((L, 2, 3))
            dproj[:, 0, 0] = focal / z
            dproj[:, 0, 2] = -focal * x / z**2
            dproj[:, 1, 1] = focal / z
            dproj[:, 1, 2] = -focal * y / z**2
            dproj /= size
            d_omega = -rotation[None] @ _skew(model_pts)  # (L, 3, 3): R exp([w]) X, derivative at w = 0
            d_coeff = rotation[None] @ basis  # (L, 3, K)
            dcam = np.concatenate([d_omega, np.broadcast_to(np.eye(3), (L, 3, 3)), d_coeff], axis=2)  # (L, 3, 6+K)
            J = (dproj @ dcam).reshape(2 * L, 6 + K)
            r = residual.reshape(2 * L)
            wr = np.repeat(w, 2)
            H = J.T @ (J * wr[:, None])
            g = J.T @ (wr * r)
            H[6:, 6:] += np.diag(prior)
            g[6:] += prior * coeffs
            improved = False
            for _ in range(6):
                A = (H + lam * np.diag(np.maximum(np.diag(H), 1e-9)))[np.ix_(free, free)]
                step = np.zeros(6 + K)
                try:  # Cholesky: A is symmetric positive definite (priors + damping)
                    step[free] = -scipy.linalg.cho_solve(scipy.linalg.cho_factor(A), g[free])
                except np.linalg.LinAlgError:
                    lam *= 10
                    continue
                new_rot = rotation @ cv2.Rodrigues(step[:3])[0]
                new_trans = translation + step[3:6]
                new_coeffs = coeffs + step[6:]
                new_coeffs[k_id:] = np.clip(new_coeffs[k_id:], 0.0, 1.0)
                if energy(new_rot, new_trans, new_coeffs, w) < e0:
                    rotation, translation, coeffs = new_rot, new_trans, new_coeffs
                    lam = max(lam / 3, 1e-7)
                    improved = True
                    break
                lam *= 10
            if not improved:
                break

        cam = (mean + basis @ coeffs) @ rotation.T + translation
        proj = _project(cam, focal, cx, cy)
        identity = np.zeros(model.identity_count)
        identity[:k_id] = coeffs[:k_id]
        return LandmarkFit(
            identity=identity,
            expression=coeffs[k_id:].copy(),
            rotation=rotation,
            translation=translation,
            focal=float(focal),
            vertex_indices=vertex_indices,
            projected=proj,
            residual_px=np.linalg.norm(proj - f2d, axis=1),
            iterations=len(history),
            history=tuple(history),
        )


def fit_landmarks(
    model: FaceModel,
    landmarks: np.ndarray,
    targets: LandmarkTargets,
    *,
    focal: float,
    principal_point: tuple[float, float],
    confidence: np.ndarray | None = None,
    config: LandmarkFitConfig = LandmarkFitConfig(),
    init: LandmarkFit | None = None,
) -> LandmarkFit:
    """One-off form of :meth:`LandmarkFitter.fit` (builds the fitter's tables each call)."""
    return LandmarkFitter(model, targets, config).fit(
        landmarks, focal=focal, principal_point=principal_point, confidence=confidence, init=init
    )
