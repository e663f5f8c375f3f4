"""The landmark stage: pose, identity and expression from 2-D landmarks by regularised Gauss-Newton.

Energy (paper 004 eq. 10 with sliding contour points, sec. 6.1; priors of paper 001 E_reg / paper 004 E_std):

    E(R, t, a, b) = sum_i c_i || f_i - pi(R (m_i + A_i a + B_i b) + t) ||^2 / s^2
                    + w_id ||a||^2 + w_exp ||b||^2,     0 <= b <= 1

with ``f_i`` the detected landmarks (px) and ``c_i`` their confidences, ``s`` the face's size in pixels (so
the weights do not depend on the image resolution), ``a`` identity coefficients (N(0, 1)), ``b`` expression
weights, ``pi`` the perspective projection. The model is linear in (a, b), so each Levenberg-Marquardt step
solves a small dense system in the 6 pose + K coefficient unknowns (K = 153 for ICT): a few milliseconds for
the whole fit on one CPU core, instead of hundreds of generic gradient steps. Expression weights on a bound
that the gradient pushes outwards, or that a step would take past a bound, are held on it (an active set,
:func:`_bounded_step`): clipped steps were most of the rejected ones. Measured on 12 shared photos (468 points):
3 iterations end a median 0.06 % (max 1.6 %) above the energy of a fit run to convergence, where 8 iterations
with clipped steps ended 4.9 % (max 19 %) above it.

Contour landmarks slide along the face (paper 004 sec. 6.1): before each step, each contour landmark takes the
candidate vertex closest to the 3-D ray through its detected 2-D position. Landmarks with a pose table (the
calibrated MediaPipe points, which the detector places at slightly different surface points as the head turns)
take, before each step, the points of the pose cell of the current head pose as the camera sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import scipy.linalg
import torch
from threadpoolctl import ThreadpoolController

from facerecon.core.check import check_finite, check_shape
from facerecon.fit.config import LandmarkFitConfig
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import FLIP_YZ
from facerecon.models.face_model import FaceModel, LandmarkPoseTable
from facerecon.models.regions import Region

CONTOUR_CANDIDATE_SPACING_MM = 4.0
REFERENCE_LANDMARK_COUNT = 68
DENSE_INTERIOR_LANDMARKS: int | None = None  # all: a subset of 120 gave a 12 % higher NME on 10 shared photos


@dataclass(frozen=True)
class LandmarkTargets:
    """Model-side definition of the landmarks being fitted.

    Attributes:
        vertex_indices: ``(L,)`` int64 template vertices of the landmarks (for barycentric landmarks the corner
            of largest weight; sliding landmarks start there).
        contour: ``(L,)`` bool, landmarks that slide along the face contour.
        contour_candidates: ``(C,)`` int64 template vertices a sliding landmark may move to.
        triangles: ``(L, 3)`` int64 vertex triples; a landmark is ``sum_j weights[l, j] * v[triangles[l, j]]``.
        weights: ``(L, 3)`` float barycentric weights (``(1, 0, 0)`` for vertex landmarks).
        scheme: the detector's landmark scheme these targets match (``"ibug68"``, ``"mediapipe478"``).
        detector_indices: ``(L,)`` which of the detector's landmarks each target is (e.g. the 468 non-iris
            points of MediaPipe's 478).
        poses: where the (non-contour) landmarks sit per head pose (calibrated MediaPipe points move over the
            surface as the head turns); the fit uses the cell of its current pose. None: ``triangles`` always.
    """

    vertex_indices: np.ndarray
    contour: np.ndarray
    contour_candidates: np.ndarray
    triangles: np.ndarray | None = None
    weights: np.ndarray | None = None
    scheme: str = "ibug68"
    detector_indices: np.ndarray | None = None
    poses: LandmarkPoseTable | None = None

    def __post_init__(self) -> None:
        n = len(self.vertex_indices)
        if self.triangles is None:
            object.__setattr__(self, "triangles", np.repeat(np.asarray(self.vertex_indices)[:, None], 3, axis=1))
            weights = np.zeros((n, 3))
            weights[:, 0] = 1.0
            object.__setattr__(self, "weights", weights)
        if self.detector_indices is None:
            object.__setattr__(self, "detector_indices", np.arange(n))
        check_shape(self.triangles, "triangles", (n, 3))
        check_shape(self.weights, "weights", (n, 3))
        check_shape(self.contour, "contour", (n,))
        check_shape(self.detector_indices, "detector_indices", (n,))

    def select(self, landmarks: np.ndarray) -> np.ndarray:
        """The detector's landmarks ``(L_det, 2)`` these targets fit, ``(L, 2)``."""
        return np.asarray(landmarks)[self.detector_indices]


def _contour_candidates(
    model: FaceModel, regions: tuple[Region, ...], below_eyes: bool, keep: np.ndarray, spacing_mm: float
) -> np.ndarray:
    """Face vertices of ``regions`` (optionally below the eyes), one per ``spacing_mm`` cell, plus ``keep``."""
    labels = model.region_labels.cpu().numpy()
    mean = model.mean.cpu().numpy()
    face_count = model.submesh("face").vertex_count
    ibug = model.landmarks("ibug68").vertex_indices.cpu().numpy()
    candidate = np.isin(labels[:face_count], regions)
    if below_eyes:
        candidate &= mean[:face_count, 1] < mean[ibug[36:48], 1].mean()
    candidates = np.flatnonzero(candidate)
    # One candidate per cell: the contour is located to a few mm anyway, and fewer candidates keep the
    # sliding step cheap.
    _, first = np.unique(np.floor(mean[candidates] / spacing_mm), axis=0, return_index=True)
    return np.union1d(candidates[first], keep)


def _farthest_points(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` points spread over ``points`` ``(N, 3)`` (greedy farthest-point sampling from the
    point nearest the centroid; deterministic)."""
    if count >= len(points):
        return np.arange(len(points))
    chosen = [int(np.argmin(np.linalg.norm(points - points.mean(0), axis=1)))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(count - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return np.sort(np.asarray(chosen))


def mediapipe478_targets(model: FaceModel, interior_count: int | None = DENSE_INTERIOR_LANDMARKS) -> LandmarkTargets:
    """MediaPipe's dense landmarks on ``model`` (needs the ``mediapipe478`` scheme from calibration).

    Landmarks the scheme does not place (the irises, on the moving eyeballs) are left out; the face-oval
    points slide over the forehead, cheek and jaw vertices. Of the other (interior) landmarks, ``interior_count``
    spread evenly over the face are kept (all with None): MediaPipe's 432 interior points are strongly
    correlated, but a spread subset of 120 gave a 12 % higher 68-point NME on 10 shared photos (0.0189 vs
    0.0169), and a fit of all 468 takes ~5 ms, so the default keeps them all.

    Raises:
        ValueError: the model has no ``mediapipe478`` scheme (run ``facerecon model calibrate``).
    """
    if "mediapipe478" not in model.landmark_scheme_names:
        raise ValueError("model: no 'mediapipe478' landmark scheme; run `facerecon model calibrate`")
    scheme = model.landmarks("mediapipe478")
    valid = scheme.valid.cpu().numpy()
    idx = np.flatnonzero(valid)
    if interior_count is not None:
        all_contour = scheme.contour.cpu().numpy()
        interior = idx[~all_contour[idx]]
        positions = scheme.points(model.mean[None].double())[0].cpu().numpy()
        keep = interior[_farthest_points(positions[interior], interior_count)]
        idx = np.sort(np.concatenate([idx[all_contour[idx]], keep]))
    contour = scheme.contour.cpu().numpy()[idx]
    vertices = scheme.vertex_indices.cpu().numpy()[idx]
    candidates = _contour_candidates(
        model, (Region.FOREHEAD, Region.CHEEKS, Region.CHIN_JAW), below_eyes=False, keep=vertices[contour],
        spacing_mm=2 * CONTOUR_CANDIDATE_SPACING_MM,  # 36 sliding points over a larger area than the jaw's 17
    )
    return LandmarkTargets(
        vertex_indices=vertices,
        contour=contour,
        contour_candidates=candidates,
        triangles=scheme.triangles.cpu().numpy()[idx],
        weights=scheme.weights.double().cpu().numpy()[idx],
        scheme="mediapipe478",
        detector_indices=idx,
        poses=None if scheme.poses is None else scheme.poses.select(idx),
    )


def ibug68_targets(model: FaceModel) -> LandmarkTargets:
    """The 68 iBUG landmarks of ``model`` with the jaw (0-16) sliding over the cheek and jaw vertices.

    Candidates are the face vertices labelled cheeks or chin/jaw below the eyes' level: the surface on which
    the image contour of the lower face lies at any plausible head pose.
    """
    scheme = model.landmarks("ibug68")
    idx = scheme.vertex_indices.cpu().numpy()
    contour = scheme.contour.cpu().numpy()
    candidates = _contour_candidates(
        model, (Region.CHEEKS, Region.CHIN_JAW), below_eyes=True, keep=idx[contour], spacing_mm=CONTOUR_CANDIDATE_SPACING_MM
    )
    return LandmarkTargets(idx, contour, candidates)


class FitStart(Protocol):
    """Where a fit starts: ``identity (K_id,)``, ``expression (K_exp,)``, ``rotation (3, 3)`` and ``translation
    (3,)`` mm, as arrays or CPU tensors (read as float64)."""

    identity: object
    expression: object
    rotation: object
    translation: object


@dataclass(frozen=True)
class LandmarkFit:
    """The result of the landmark stage (float64 NumPy; one face).

    Attributes:
        identity: ``(K_id,)`` identity coefficients.
        expression: ``(K_exp,)`` expression weights in [0, 1].
        rotation: ``(3, 3)`` model-to-camera rotation.
        translation: ``(3,)`` model-to-camera translation, mm.
        focal: focal length used, px.
        vertex_indices: ``(L,)`` the template vertex each landmark ended on (contours slid; the nearest corner
            for barycentric landmarks).
        triangles: ``(L, 3)`` and weights ``(L, 3)``: each landmark as a barycentric point of the template
            (slid contour landmarks are single vertices).
        projected: ``(L, 2)`` the fitted landmarks projected into the image, px.
        residual_px: ``(L,)`` distance between projected and detected landmarks, px.
        iterations: iterations run.
        history: the energy at the start of each iteration, then the final energy (for diagnostics; the
            robust weights are those of the iteration, so consecutive values compare within one iteration).
        normal_matrix: ``(6 + K, 6 + K)`` the Gauss-Newton normal matrix of the energy (priors included) at the
            start of the last iteration, in the step's unknowns: rotation increment (rad, ``R exp([omega]x)``),
            translation (mm), then the fitted coefficients (identity unless held, expression): how well the
            landmarks determine each unknown, which a smoother over video frames weighs this fit by.
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
    triangles: np.ndarray | None = None
    weights: np.ndarray | None = None
    normal_matrix: np.ndarray | None = None


@dataclass(eq=False)
class _LandmarkRows:
    """A fit's landmarks as they stand: template vertex, triangle and barycentric weights per landmark, and the
    mean ``(L, 3)`` and float32 bases ``(L, 3, K)`` of their positions; ``cell`` the pose cell they are for."""

    vertex_indices: np.ndarray
    triangles: np.ndarray
    weights: np.ndarray
    mean: np.ndarray
    basis: np.ndarray
    cell: tuple[int, int] | None = None


class _LinearLandmarks:
    """Mean and bases of points on the template (vertices, or barycentric points in triangles)."""

    def __init__(self, model: FaceModel, triangles: np.ndarray, weights: np.ndarray, identity_modes: int,
                 neutral: torch.Tensor | None = None) -> None:  # fmt: skip
        tri = torch.as_tensor(triangles, dtype=torch.long, device=model.mean.device)  # (N, 3)
        w = torch.as_tensor(weights, dtype=torch.float64, device=model.mean.device)  # (N, 3)
        # ``neutral (V, 3)``: a known person's neutral face in place of the model's mean.
        mean = (model.mean if neutral is None else neutral)[tri].double()  # (N, 3, 3)
        self.mean = torch.einsum("nkc,nk->nc", mean, w).cpu().numpy()  # (N, 3)
        ident = torch.einsum("mnkc,nk->mnc", model.identity_basis[:identity_modes, tri].double(), w)
        expr = torch.einsum("mnkc,nk->mnc", model.expression_basis[:, tri].double(), w)
        self.basis = np.ascontiguousarray(torch.cat([ident, expr], 0).permute(1, 2, 0).cpu().numpy())  # (N, 3, K)

    @classmethod
    def of_vertices(cls, model: FaceModel, vertices: np.ndarray, identity_modes: int,
                    neutral: torch.Tensor | None = None) -> _LinearLandmarks:  # fmt: skip
        weights = np.zeros((len(vertices), 3))
        weights[:, 0] = 1.0
        return cls(model, np.repeat(np.asarray(vertices)[:, None], 3, axis=1), weights, identity_modes, neutral)

    def points(self, coeffs: np.ndarray) -> np.ndarray:
        return self.mean + _apply_basis(self.basis, coeffs)


def _apply_basis(basis: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``(N, 3)`` = ``basis (N, 3, K) @ coeffs (K,)`` as one matrix-vector product (a stack of 3 x K products
    is several times slower in NumPy), in the basis's precision."""
    return (basis.reshape(-1, basis.shape[-1]) @ coeffs.astype(basis.dtype, copy=False)).reshape(-1, 3)


def _project(points_cam: np.ndarray, focal: float, cx: float, cy: float) -> np.ndarray:
    z = np.maximum(points_cam[:, 2], 1e-6)
    return np.stack([focal * points_cam[:, 0] / z + cx, focal * points_cam[:, 1] / z + cy], 1)


def _face_size(points: np.ndarray) -> float:
    """A face's size in px: the geometric mean of its landmarks' ``(L, 2)`` extents (residuals are measured in it, so
    that the weights do not depend on the image's resolution)."""
    return float(np.sqrt(np.prod(np.ptp(points, axis=0)) + 1e-9))


def _robust_weights(residual: np.ndarray, confidence: np.ndarray, scale: float | None) -> np.ndarray:
    """``(L,)`` the landmarks' weights: ``confidence`` times Huber's IRLS weight of each ``residual (L, 2)`` (face
    sizes) beyond ``scale`` (None: the confidences alone)."""
    w = confidence.copy()
    if scale is not None:
        norm = np.linalg.norm(residual, axis=1)
        w *= np.where(norm > scale, scale / np.maximum(norm, 1e-12), 1.0)
    return w


def _frozen_expressions(model: FaceModel, config: LandmarkFitConfig) -> np.ndarray:
    """``(K_exp,)`` bool: the expressions ``config`` holds (those the model has)."""
    frozen = np.zeros(model.expression_count, dtype=bool)
    for name in config.frozen_expressions:
        if name in model.expression_names:
            frozen[model.expression_index(name)] = True
    return frozen


def _pushed_out(expression: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """``(K_exp,)`` bool: expression weights on a bound of [0, 1] that the energy's ``gradient`` pushes outwards."""
    return ((expression <= 0.0) & (gradient > 0.0)) | ((expression >= 1.0) & (gradient < 0.0))


def _skew(v: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` cross-product matrices of ``(N, 3)`` vectors."""
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def viewed_pitch_yaw(rotation: np.ndarray, translation: np.ndarray) -> tuple[float, float]:
    """Head ``(pitch, yaw)`` in degrees seen along the line of sight to the head: the NumPy form of
    :func:`facerecon.geometry.rotation.viewed_head_angles` (which costs ~0.3 ms a call in torch; a fit asks once
    per iteration), away from gimbal lock."""
    sight = np.asarray(translation, np.float64) / np.linalg.norm(translation)
    axis = np.array([-sight[1], sight[0], 0.0])  # (0, 0, 1) x sight
    sine = float(np.linalg.norm(axis))
    turn = cv2.Rodrigues(axis / max(sine, 1e-12) * np.arcsin(min(sine, 1.0)))[0]
    head = np.asarray(FLIP_YZ) @ turn.T @ np.asarray(rotation, np.float64)
    pitch = np.arctan2(head[2, 1], head[2, 2])
    yaw = np.arctan2(-head[2, 0], np.hypot(head[0, 0], head[1, 0]))
    return float(np.degrees(pitch)), float(np.degrees(yaw))


def initial_pose(
    model_points: np.ndarray, image_points: np.ndarray, focal: float, cx: float, cy: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation of ``model_points`` ``(L, 3)`` mm seen at ``image_points`` ``(L, 2)`` px (PnP).

    SQPnP (Terzakis and Lourakis, ECCV 2020: globally optimal, ~20 us for 468 points); a solution with the face behind the
    camera or turned away is replaced by a frontal guess at the distance that matches the landmarks' spread.
    """
    camera = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=np.float64)
    obj = np.ascontiguousarray(model_points, dtype=np.float64)
    img = np.ascontiguousarray(image_points, dtype=np.float64)
    spread_model = np.linalg.norm(obj - obj.mean(0), axis=1).mean()
    spread_image = np.linalg.norm(img - img.mean(0), axis=1).mean()
    depth = focal * spread_model / max(spread_image, 1e-6)
    frontal = np.asarray(FLIP_YZ)
    centre = (img.mean(0) - [cx, cy]) * depth / focal
    fallback = (frontal, np.array([centre[0], centre[1], depth]) - frontal @ obj.mean(0))
    # No iterative refinement: it costs 10x SQPnP (0.5 ms for 468 points) for the same mean reprojection error
    # on the mean face, and the landmark fit's first step refines the pose anyway.
    ok, rvec, tvec = cv2.solvePnP(obj, img, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return fallback
    rotation = cv2.Rodrigues(rvec)[0]
    translation = tvec.reshape(3)
    facing = (rotation @ np.array([0.0, 0.0, 1.0]))[2] < 0  # the face's +z must point at the camera
    if translation[2] <= 0 or not facing:
        return fallback
    return rotation, translation


def _bounded_step(
    A: np.ndarray, g: np.ndarray, held: np.ndarray, coeffs: np.ndarray, first_bounded: int, rounds: int = 4
) -> np.ndarray | None:
    """The damped Gauss-Newton step ``A step = -g`` with the unknowns from ``first_bounded`` on kept in [0, 1].

    ``held`` unknowns do not move. A weight that the step would take past a bound is put on it and held there
    and the rest re-solved (a few rounds of an active set; the last step is clipped): a clipped step is not a
    descent direction and was most of the rejected steps. Cholesky by LAPACK directly (scipy's wrappers cost more
    than a 159 x 159 factorisation). Returns None when ``A`` is not positive definite.

    Args:
        A: ``(n, n)`` damped normal matrix (symmetric). g: ``(n,)`` gradient. held: ``(n,)`` bool.
        coeffs: ``(n - 6,)`` current coefficients (the unknowns after the 6 pose ones).
    """
    n = len(g)
    clamped = held.copy()
    fixed_step = np.zeros(n)  # the steps of the unknowns put on a bound
    current = np.concatenate([np.zeros(6), coeffs])
    for _ in range(rounds):
        system = A.copy()
        rhs = -(g + A @ fixed_step)
        system[clamped, :] = 0.0
        system[:, clamped] = 0.0
        system[clamped, clamped] = 1.0
        rhs[clamped] = fixed_step[clamped]
        factor, info = scipy.linalg.lapack.dpotrf(system, lower=False, clean=False)
        if info != 0:
            return None
        step = scipy.linalg.lapack.dpotrs(factor, rhs, lower=False)[0]
        new = current[first_bounded:] + step[first_bounded:]
        out = ~clamped[first_bounded:] & ((new < 0.0) | (new > 1.0))
        if not out.any():
            return step
        index = first_bounded + np.flatnonzero(out)
        fixed_step[index] = np.clip(new[out], 0.0, 1.0) - current[index]
        clamped[index] = True
    return step


def _blas_single_thread():
    """Run small dense solves on one BLAS thread: on 2 busy cores OpenBLAS's thread pool makes a 159 x 159
    Cholesky 100x slower than one thread does."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


_BLAS_CONTROLLER: ThreadpoolController | None = None


class LandmarkFitter:
    """Fits one face at a time to 2-D landmarks; holds the model's tables for those landmarks (per pose cell, built
    on first use, for targets with a pose table).

    Example:
        >>> fitter = LandmarkFitter(model, ibug68_targets(model))                   # doctest: +SKIP
        >>> camera = PerspectiveCamera.square(1200.0, (319.5, 239.5), 640, 480)         # doctest: +SKIP
        >>> fit = fitter.fit(det.to_ibug68(), camera=camera)                            # doctest: +SKIP
    """

    def __init__(
        self,
        model: FaceModel,
        targets: LandmarkTargets,
        config: LandmarkFitConfig = LandmarkFitConfig(),
        *,
        identity: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.targets = targets
        self.config = config
        if identity is not None:
            identity = np.asarray(identity, np.float64)
            check_shape(identity, "identity", (model.identity_count,))
            check_finite(identity, "identity")
        #: A known person's identity ``(K_id,)``: only pose and expression are fitted (None: identity too).
        self.fixed_identity = identity
        self.identity_modes = 0 if identity is not None else min(config.identity_modes, model.identity_count)
        self._neutral = None
        if identity is not None:  # the person's neutral face, the mean of their tables
            ident = torch.as_tensor(identity, dtype=model.identity_basis.dtype, device=model.mean.device)
            offset = torch.einsum("mvc,m->vc", model.identity_basis, ident)  # in the bases' precision: ~1e-6 mm
            self._neutral = model.mean.double() + offset.double()
        self._fixed = _LinearLandmarks(model, targets.triangles, targets.weights, self.identity_modes, self._neutral)
        self._candidates = (
            _LinearLandmarks.of_vertices(model, targets.contour_candidates, self.identity_modes, self._neutral)
            if config.sliding_contour and targets.contour.any()
            else None
        )
        # The loop reads the bases in float32: half the memory traffic of the matrix-vector products that
        # dominate an iteration (positions then carry ~1e-6 mm of rounding; the energy is summed in float64).
        self._fixed_basis32 = self._fixed.basis.astype(np.float32)
        if self._candidates is not None:
            self._candidate_mean32 = self._candidates.mean.astype(np.float32)
            self._candidate_basis32 = self._candidates.basis.astype(np.float32)
        # Pose-dependent landmarks (all but the contours): their tables per pose cell, built on first use.
        self._posed_rows = np.flatnonzero(~targets.contour) if targets.poses is not None else np.zeros(0, np.int64)
        self._cell_tables: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._tables_from: LandmarkFitter | None = None  # the general fitter a person's tables derive from

    def for_person(self, identity: np.ndarray, config: LandmarkFitConfig | None = None) -> LandmarkFitter:
        """A fitter of the same landmarks for one known person: ``identity (K_id,)`` is held, pose and expression
        are fitted (6 + K_exp unknowns instead of 6 + K_id + K_exp: the frames of a video after its identity fit).
        Its pose cells' tables come from this fitter's (the identity's share added to their means), so a person
        costs no new tables when ``identity`` has no modes beyond this fitter's ``identity_modes``."""
        person = LandmarkFitter(self.model, self.targets, config or self.config, identity=identity)
        if self.fixed_identity is None and not np.any(person.fixed_identity[self.identity_modes :]):
            person._tables_from = self
        return person

    def _cell(self, rotation: np.ndarray, translation: np.ndarray) -> tuple[int, int] | None:
        """The pose cell of a head pose as the camera sees it (None without a pose table)."""
        if self.targets.poses is None:
            return None
        return self.targets.poses.cell(*viewed_pitch_yaw(rotation, translation))

    def _cell_table(self, cell: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(triangles, weights, mean, basis32)`` of the posed landmarks in a pose cell."""
        if cell not in self._cell_tables and self._tables_from is not None:
            # A known person's table from the general one: the identity's share is linear in the coefficients.
            triangles, weights, mean, basis32 = self._tables_from._cell_table(cell)
            k_id = self._tables_from.identity_modes
            ident = self.fixed_identity[:k_id]
            mean = mean + basis32[..., :k_id].astype(np.float64) @ ident
            self._cell_tables[cell] = (triangles, weights, mean, np.ascontiguousarray(basis32[..., k_id:]))
        if cell not in self._cell_tables:
            rows, poses = self._posed_rows, self.targets.poses
            triangles = poses.triangles[cell][rows].numpy()
            weights = poses.weights[cell][rows].double().numpy()
            linear = _LinearLandmarks(self.model, triangles, weights, self.identity_modes, self._neutral)
            self._cell_tables[cell] = (triangles, weights, linear.mean, linear.basis.astype(np.float32))
        return self._cell_tables[cell]

    def fit(
        self,
        landmarks: np.ndarray,
        *,
        camera: PerspectiveCamera,
        confidence: np.ndarray | None = None,
        init: FitStart | None = None,
        prior_targets: np.ndarray | None = None,
        prior_weight: float = 0.0,
    ) -> LandmarkFit:
        """Fit pose, identity and expression to one face's 2-D landmarks.

        Args:
            landmarks: ``(L, 2)`` the targets' landmarks, px (pixel centres at integers); use
                ``targets.select(detection.landmarks)`` for a detector's full set.
            camera: the photo's camera (one, square pixels: :meth:`PerspectiveCamera.pinhole`).
            confidence: ``(L,)`` weights in [0, 1] (default 1).
            init: where to start: anything with ``identity``, ``expression``, ``rotation`` and ``translation``
                (a previous :class:`LandmarkFit`, the previous video frame, a regressor's estimate).
            prior_targets: ``(L, 2)`` px, a second position for each landmark (in video: where the optical flow
                carries the previous frame's fitted landmarks), pulled to with ``prior_weight`` (relative to a
                landmark of confidence 1): ``sum_i w ||pi_i - p_i||^2 / s^2`` joins the energy. Non-finite rows
                are left out.

        Returns:
            A :class:`LandmarkFit`.

        Raises:
            ValueError: a shape that does not match the targets, non-finite landmarks, fewer than 6 landmarks.
        """
        focal, cx, cy = camera.pinhole()
        with _blas_single_thread():
            return self._fit(landmarks, focal, cx, cy, confidence, init, prior_targets, prior_weight)

    def _normal_equations(
        self,
        model_pts: np.ndarray,
        cam: np.ndarray,
        rotation: np.ndarray,
        basis: np.ndarray,
        residual: np.ndarray,
        weight: np.ndarray,
        focal: float,
        size: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gauss-Newton normal matrix ``(6 + K, 6 + K)`` and gradient ``(6 + K,)`` of the landmark term.

        Unknowns: rotation increment omega (``R exp([omega]x)``), translation, coefficients. ``J^T W J`` costs
        ``L K^2`` as a symmetric rank-2L update (23 MFLOP for MediaPipe's 468 points), most of an iteration: it is
        formed in float32 (the bases' precision), the gradient in float64 for the pose and float32 over the bases.
        """
        L, K = len(model_pts), basis.shape[-1]
        z = np.maximum(cam[:, 2], 1e-6)
        dproj = np.zeros((L, 2, 3))
        dproj[:, 0, 0] = dproj[:, 1, 1] = focal / (z * size)
        dproj[:, 0, 2] = -focal * cam[:, 0] / (z**2 * size)
        dproj[:, 1, 2] = -focal * cam[:, 1] / (z**2 * size)
        # d(cam)/d(omega) = -R [X]x (R exp([w]) X at w = 0), d(cam)/dt = I, d(cam)/d(model point) = R.
        dres = dproj @ rotation  # (L, 2, 3): d(residual)/d(model point)
        jac_pose = np.empty((L, 2, 6))
        jac_pose[:, :, 0:3] = -dres @ _skew(model_pts)
        jac_pose[:, :, 3:6] = dproj
        weighted_res = weight[:, None] * residual  # (L, 2)
        g = np.empty(6 + K)
        g[:6] = weighted_res.reshape(-1) @ jac_pose.reshape(2 * L, 6)
        per_point = weighted_res[:, 0:1] * dres[:, 0] + weighted_res[:, 1:2] * dres[:, 1]  # (L, 3)
        g[6:] = per_point.reshape(-1).astype(basis.dtype) @ basis.reshape(3 * L, K)
        jac = np.empty((L, 2, 6 + K), dtype=basis.dtype)
        jac[:, :, :6] = jac_pose
        np.matmul(dres.astype(basis.dtype), basis, out=jac[:, :, 6:])  # (L, 2, 3) @ (L, 3, K)
        jac = jac.reshape(2 * L, 6 + K) * np.sqrt(np.repeat(weight, 2)).astype(basis.dtype)[:, None]
        # J^T W J by a symmetric rank-k update (BLAS syrk: half the flops of a matrix product), upper triangle.
        syrk = scipy.linalg.blas.get_blas_funcs("syrk", (jac,))
        H = np.triu(syrk(1.0, jac, trans=1)).astype(np.float64)
        H += np.triu(H, 1).T
        return H, g

    def _slide(
        self, coeffs: np.ndarray, rotation: np.ndarray, translation: np.ndarray, points: np.ndarray,
        focal: float, cx: float, cy: float,
    ) -> np.ndarray:  # fmt: skip
        """Index into the contour candidates of the vertex closest to the ray through each 2-D point
        (paper 004 sec. 6.1: "the mesh vertex that is closest to the 3D line defined by the camera centre and
        the back-projection of the detected 2D feature point")."""
        # float32 positions: the choice of the nearest candidate needs no more, and it halves the memory read.
        cand_model = self._candidate_mean32 + _apply_basis(self._candidate_basis32, coeffs)
        cand_cam = cand_model.astype(np.float64) @ rotation.T + translation  # (C, 3)
        rays = np.stack([(points[:, 0] - cx) / focal, (points[:, 1] - cy) / focal, np.ones(len(points))], 1)
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        along = cand_cam @ rays.T  # (C, Lc)
        dist2 = np.sum(cand_cam**2, 1)[:, None] - along**2
        dist2[along <= 0] = np.inf
        return np.argmin(dist2, axis=0)

    def _new_rows(self) -> _LandmarkRows:
        """The landmarks' tables before the first pose is known (no pose cell, contours unslid)."""
        targets = self.targets
        return _LandmarkRows(
            vertex_indices=targets.vertex_indices.copy(), triangles=targets.triangles.copy(),
            weights=np.asarray(targets.weights, dtype=np.float64).copy(), mean=self._fixed.mean.copy(),
            basis=self._fixed_basis32.copy(),
        )  # fmt: skip

    def _update_rows(self, rows: _LandmarkRows, coeffs: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                     points: np.ndarray, focal: float, cx: float, cy: float) -> None:  # fmt: skip
        """Before a step: the landmarks where the detector puts them at the current head pose, and the contours
        slid to ``points (L, 2)`` px (a step whose pose changes cell is judged by the points it started with)."""
        new_cell = self._cell(rotation, translation)
        if new_cell != rows.cell:
            rows.cell, posed = new_cell, self._posed_rows
            rows.triangles[posed], rows.weights[posed], rows.mean[posed], rows.basis[posed] = self._cell_table(new_cell)
            rows.vertex_indices[posed] = rows.triangles[posed][np.arange(len(posed)), rows.weights[posed].argmax(1)]
        if self._candidates is not None and self.targets.contour.any():
            contour = np.flatnonzero(self.targets.contour)
            best = self._slide(coeffs, rotation, translation, points[contour], focal, cx, cy)
            candidates = self.targets.contour_candidates[best]
            rows.vertex_indices[contour] = candidates
            rows.triangles[contour] = candidates[:, None]
            rows.weights[contour] = (1.0, 0.0, 0.0)
            rows.mean[contour] = self._candidates.mean[best]
            rows.basis[contour] = self._candidate_basis32[best]

    def project(
        self,
        landmarks: np.ndarray,
        *,
        identity: np.ndarray,
        expression: np.ndarray,
        rotation: np.ndarray,
        translation: np.ndarray,
        camera: PerspectiveCamera,
    ) -> np.ndarray:
        """``(L, 2)`` px: this fitter's landmarks on a given face, contours slid to the given 2-D landmarks (and
        pose-dependent landmarks at the given pose).

        For reporting a fit made with other landmarks (e.g. the 68 iBUG points of a dense MediaPipe fit).
        """
        focal, cx, cy = camera.pinhole()
        coeffs = np.concatenate([np.asarray(identity)[: self.identity_modes], np.asarray(expression)])
        mean, basis = self._fixed.mean.copy(), self._fixed.basis.copy()
        rotation, translation = np.asarray(rotation, np.float64), np.asarray(translation, np.float64)
        cell = self._cell(rotation, translation)
        if cell is not None:
            _, _, mean[self._posed_rows], basis[self._posed_rows] = self._cell_table(cell)
        contour = np.flatnonzero(self.targets.contour) if self._candidates is not None else np.zeros(0, np.int64)
        if len(contour):
            best = self._slide(coeffs, rotation, translation, np.asarray(landmarks, np.float64)[contour], focal, cx, cy)
            mean[contour] = self._candidates.mean[best]
            basis[contour] = self._candidates.basis[best]
        cam = (mean + _apply_basis(basis, coeffs)) @ rotation.T + translation
        return _project(cam, focal, cx, cy)

    def _fit(
        self,
        landmarks: np.ndarray,
        focal: float,
        cx: float,
        cy: float,
        confidence: np.ndarray | None,
        init: FitStart | None,
        prior_targets: np.ndarray | None = None,
        prior_weight: float = 0.0,
    ) -> LandmarkFit:
        model, targets, config = self.model, self.targets, self.config
        L = len(targets.vertex_indices)
        check_shape(landmarks, "landmarks", (L, 2))
        check_finite(landmarks, "landmarks")
        if L < 6:
            raise ValueError(f"landmarks: expected at least 6 landmarks for a pose, got {L}")
        conf = np.ones(L) if confidence is None else np.clip(np.asarray(confidence, np.float64), 0.0, 1.0)
        check_shape(conf, "confidence", (L,))
        # The priors are tuned for 68 independent landmarks; denser schemes are strongly correlated, so their
        # total weight is kept at 68 landmarks' worth.
        detected = np.asarray(landmarks, np.float64)
        size = _face_size(detected)
        f2d = detected
        if prior_targets is not None and prior_weight > 0.0:
            # Two quadratic pulls on one point are one pull to their weighted mean with the summed weight (the
            # energy differs by a constant).
            check_shape(prior_targets, "prior_targets", (L, 2))
            pulled = np.isfinite(prior_targets).all(axis=1)
            both = conf + prior_weight * pulled
            f2d = np.where(pulled[:, None], (conf[:, None] * detected + prior_weight * np.nan_to_num(prior_targets))
                           / np.maximum(both, 1e-12)[:, None], detected)  # fmt: skip
            conf = both
        conf = conf * (REFERENCE_LANDMARK_COUNT / L)
        k_id = self.identity_modes
        k_exp = model.expression_count
        K = k_id + k_exp
        table = self._new_rows()
        mean, basis = table.mean, table.basis

        coeffs = np.zeros(K)
        if init is not None:
            coeffs[:k_id] = np.asarray(init.identity, np.float64)[:k_id]
            coeffs[k_id:] = np.asarray(init.expression, np.float64)
            rotation, translation = np.array(init.rotation, np.float64), np.array(init.translation, np.float64)
        else:
            rotation, translation = initial_pose(mean, f2d, focal, cx, cy)
        w_id = config.landmark_sigma**2
        prior = np.concatenate([np.full(k_id, w_id), np.full(k_exp, w_id * config.expression_weight)])
        free = np.ones(6 + K, dtype=bool)
        free[6 + k_id :] = ~_frozen_expressions(model, config)
        lam = config.damping
        history: list[float] = []
        normal_matrix = None

        def energy(rot: np.ndarray, trans: np.ndarray, c: np.ndarray, w: np.ndarray) -> float:
            cam = (mean + _apply_basis(basis, c)) @ rot.T + trans
            r = (_project(cam, focal, cx, cy) - f2d) / size
            return float(np.sum(w[:, None] * r * r) + np.sum(prior * c * c))

        for _ in range(config.iterations):
            self._update_rows(table, coeffs, rotation, translation, f2d, focal, cx, cy)
            model_pts = mean + _apply_basis(basis, coeffs)  # (L, 3)
            cam = model_pts @ rotation.T + translation
            proj = _project(cam, focal, cx, cy)
            residual = (proj - f2d) / size  # (L, 2)
            w = _robust_weights(residual, conf, config.robust_scale)
            e0 = float(np.sum(w[:, None] * residual**2) + np.sum(prior * coeffs**2))
            history.append(e0)
            final_energy = e0
            H, g = self._normal_equations(model_pts, cam, rotation, basis, residual, w, focal, size)
            H[6:, 6:] += np.diag(prior)
            g[6:] += prior * coeffs
            normal_matrix = H.copy()
            # Held unknowns: frozen expressions, and expression weights on a bound that the gradient pushes
            # outwards (an active set: a clipped step would rarely lower the energy).
            expr, expr_g = coeffs[k_id:], g[6 + k_id :]
            held = ~free
            held[6 + k_id :] |= _pushed_out(expr, expr_g)
            g[held] = 0.0
            diagonal = np.maximum(np.diag(H), 1e-9)
            improved = False
            for _ in range(6):
                A = H.copy()
                A[np.diag_indices_from(A)] += lam * diagonal
                step = _bounded_step(A, g, held, coeffs, 6 + k_id)
                if step is None:  # not positive definite: more damping
                    lam *= 10
                    continue
                new_rot = rotation @ cv2.Rodrigues(step[:3])[0]
                new_trans = translation + step[3:6]
                new_coeffs = coeffs + step[6:]
                new_coeffs[k_id:] = np.clip(new_coeffs[k_id:], 0.0, 1.0)  # rounding only: the step respects the bounds
                new_energy = energy(new_rot, new_trans, new_coeffs, w)
                if new_energy < e0:
                    rotation, translation, coeffs = new_rot, new_trans, new_coeffs
                    final_energy = new_energy
                    lam = max(lam / 3, 1e-7)
                    improved = True
                    break
                lam *= 10
            if not improved:
                break

        cam = (mean + _apply_basis(basis, coeffs)) @ rotation.T + translation
        proj = _project(cam, focal, cx, cy)
        identity = np.zeros(model.identity_count) if self.fixed_identity is None else self.fixed_identity.copy()
        identity[:k_id] = coeffs[:k_id]
        return LandmarkFit(
            identity=identity,
            expression=coeffs[k_id:].copy(),
            rotation=rotation,
            translation=translation,
            focal=float(focal),
            vertex_indices=table.vertex_indices,
            triangles=table.triangles,
            weights=table.weights,
            projected=proj,
            residual_px=np.linalg.norm(proj - detected, axis=1),
            iterations=len(history),
            history=tuple(history) + ((final_energy,) if history and history[-1] != final_energy else ()),
            normal_matrix=normal_matrix,
        )


def fit_landmarks(
    model: FaceModel,
    landmarks: np.ndarray,
    targets: LandmarkTargets,
    *,
    camera: PerspectiveCamera,
    confidence: np.ndarray | None = None,
    config: LandmarkFitConfig = LandmarkFitConfig(),
    init: FitStart | None = None,
) -> LandmarkFit:
    """One-off form of :meth:`LandmarkFitter.fit` (builds the fitter's tables each call)."""
    return LandmarkFitter(model, targets, config).fit(landmarks, camera=camera, confidence=confidence, init=init)
