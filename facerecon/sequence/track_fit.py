"""One person over a video track: one identity, then each frame's pose and expression, then a smoother.

Paper 001's last part fits sequences with pair losses: the same identity across frames and optical flow between
consecutive frames. Here, in three steps:

1. **Identity from keyframes.** Frames of the track are fitted independently (a sample of at most
   ``candidates``), ``keyframes`` of them are chosen for pose and expression diversity (farthest points in yaw,
   pitch and mouth opening, starting from the most frontal), and one identity is fitted jointly to their
   landmarks (:func:`facerecon.fit.joint.fit_shared_identity`).
2. **Frames.** Every frame fits only pose and expression (a fitter for the known person), warm-started from the
   previous frame, with a **flow term**: the previous frame's fitted landmarks, carried by the dense optical flow
   between the frames (OpenCV DIS, measured at the detected landmarks), are a second target for each landmark.
3. **Smoothing.** A zero-phase smoother over the whole track: each frame's pose and expression move from its fit
   as little as its landmarks allow (the fit's Gauss-Newton normal matrix) while the second differences of pose
   and expression (accelerations, in face sizes) are penalised. A symmetric penalty over past and future frames
   has no phase lag: a constant-velocity motion is kept exactly, and a turn is not delayed
   (``benchmarks/video.py`` measures the lag against the per-frame fits by cross-correlation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import scipy.linalg
import scipy.sparse

from facerecon.fit.joint import ViewLandmarks, fit_shared_identity
from facerecon.fit.landmarks import LandmarkFit, LandmarkFitter, viewed_pitch_yaw
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import FLIP_YZ

__all__ = ["FrameFit", "TrackFitConfig", "TrackFit", "TrackLandmarks", "fit_track", "choose_keyframes", "smooth_track"]

# Landmark displacement, in face sizes, per unit of each smoothed quantity (for the smoother's one weight):
# a head turn of 1 rad moves the face's points by about half a face size; 1 mm across the line of sight by
# 1/140 of a face (a face is ~140 mm); 1 mm along it by 0.35 / depth (the points' spread changes with depth);
# an expression weight of 1 moves the points it acts on by about a tenth of a face.
_FACE_SIZES_PER_RADIAN = 0.5
_FACE_SIZES_PER_MM_ACROSS = 1.0 / 140.0
_SPREAD_PER_DEPTH = 0.35
_FACE_SIZES_PER_EXPRESSION = 0.1


@dataclass(frozen=True)
class TrackFitConfig:
    """Settings of a track's fit.

    Attributes:
        keyframes: frames the identity is fitted to jointly.
        candidates: frames fitted independently to choose the keyframes from (evenly spread over the track).
        joint_iterations: Levenberg-Marquardt iterations of the joint identity fit.
        frame_iterations: iterations of each frame's fit (warm-started from the previous frame).
        flow_weight: the flow term's weight per landmark, relative to a detected landmark of confidence 1
            (0: no flow term).
        smoothness: the smoother's weight on squared accelerations in face sizes per frame^2, relative to the
            landmarks' data term (whose total weight is 68 landmarks'); 0 switches the smoother off.
    """

    keyframes: int = 8
    candidates: int = 24
    joint_iterations: int = 6
    frame_iterations: int = 2
    flow_weight: float = 0.3
    smoothness: float = 136.0
    expression_smoothing: float = 1.0
    robust_smoothing: float | None = 1.5

    def __post_init__(self) -> None:
        for name in ("keyframes", "candidates", "joint_iterations", "frame_iterations"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected at least 1, got {getattr(self, name)!r}")
        if self.flow_weight < 0 or self.smoothness < 0:
            raise ValueError("flow_weight, smoothness: expected values >= 0")


@dataclass(frozen=True)
class TrackLandmarks:
    """What the detector saw of one face over time.

    Attributes:
        track_id: the detector's track id.
        frame_indices: ``(T,)`` the frames' indices in the video; times_s: ``(T,)`` their times, seconds.
        landmarks: ``(T, L, 2)`` the fitter's landmarks per frame, px; confidence: ``(T, L)`` in [0, 1].
        flow: ``(T, L, 2)`` px, how the optical flow from the previous frame moved each landmark's previous
            detected position (NaN in the first frame, and where there was no flow).
    """

    track_id: int
    frame_indices: np.ndarray
    times_s: np.ndarray
    landmarks: np.ndarray
    confidence: np.ndarray
    flow: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_indices)


@dataclass(frozen=True)
class FrameFit:
    """One frame's fit: ``rotation (3, 3)`` and ``translation (3,)`` mm (model to camera), ``expression
    (K_exp,)`` in [0, 1], and ``landmark_error_px``, the median distance of the fitted landmarks to the detected."""

    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray
    landmark_error_px: float


@dataclass(frozen=True)
class TrackFit:
    """A track's person: ``identity (K_id,)``, the ``keyframes`` (positions in the track) it was fitted to, and
    each frame's :class:`FrameFit` (smoothed), ``raw`` the frames' fits before smoothing."""

    track_id: int
    identity: np.ndarray
    keyframes: tuple[int, ...]
    frames: tuple[FrameFit, ...]
    raw: tuple[FrameFit, ...]


def choose_keyframes(fits: list[LandmarkFit], count: int, mouth_index: int | None = None) -> list[int]:
    """``count`` positions into ``fits`` spread over head pose and expression: the most frontal first, then
    each time the fit farthest from those chosen in (yaw / 20 deg, pitch / 20 deg, jawOpen / 0.3)."""
    if len(fits) <= count:
        return list(range(len(fits)))
    features = []
    for fit in fits:
        pitch, yaw = viewed_pitch_yaw(fit.rotation, fit.translation)
        mouth = float(fit.expression[mouth_index]) if mouth_index is not None else 0.0
        features.append((yaw / 20.0, pitch / 20.0, mouth / 0.3))
    points = np.asarray(features)
    chosen = [int(np.argmin(np.hypot(points[:, 0], points[:, 1])))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < count:
        best = int(np.argmax(distance))
        chosen.append(best)
        distance = np.minimum(distance, np.linalg.norm(points - points[best], axis=1))
    return sorted(chosen)


def fit_track(fitter: LandmarkFitter, track: TrackLandmarks, camera: PerspectiveCamera,
              config: TrackFitConfig = TrackFitConfig()) -> TrackFit:  # fmt: skip
    """Fit one identity to a track, then its frames' pose and expression, then smooth them (see the module doc).

    Args:
        fitter: a landmark fitter that fits identity (its targets are the track's landmarks).
        track: the track's landmarks (at least one frame).
        camera: the video's camera.
        config: the settings.
    """
    T = len(track)
    if T == 0:
        raise ValueError("track: expected at least one frame, got none")
    model = fitter.model
    # 1. Identity from keyframes chosen among independently fitted candidates.
    candidates = np.unique(np.linspace(0, T - 1, min(config.candidates, T)).round().astype(int))
    fits = []
    for t in candidates:
        fits.append(fitter.fit(track.landmarks[t], camera=camera, confidence=track.confidence[t],
                               init=fits[-1] if fits else None))  # fmt: skip
    mouth = model.expression_index("jawOpen") if "jawOpen" in model.expression_names else None
    chosen = choose_keyframes(fits, config.keyframes, mouth)
    keyframes = tuple(int(candidates[i]) for i in chosen)
    joint = fit_shared_identity(
        fitter,
        [ViewLandmarks(track.landmarks[t], camera, track.confidence[t], fits[i]) for t, i in zip(keyframes, chosen)],
        iterations=config.joint_iterations,
    )  # fmt: skip
    # 2. Every frame: pose and expression of the known person, warm-started, with the flow term.
    person = fitter.for_person(joint.identity, replace(fitter.config, iterations=config.frame_iterations))
    frame_fits: list[LandmarkFit] = []
    start = joint.views[chosen.index(0)] if 0 in keyframes else fits[0]
    for t in range(T):
        previous = frame_fits[-1] if frame_fits else None
        prior = None
        if previous is not None and config.flow_weight > 0:
            prior = previous.projected + track.flow[t]
        frame_fits.append(person.fit(track.landmarks[t], camera=camera, confidence=track.confidence[t],
                                     init=previous if previous is not None else start,
                                     prior_targets=prior, prior_weight=config.flow_weight))  # fmt: skip
    raw = tuple(_frame(fit) for fit in frame_fits)
    if config.smoothness == 0 or T < 3:
        return TrackFit(track.track_id, joint.identity, keyframes, raw, raw)
    # 3. The smoother; each frame's landmark error again at its smoothed pose and expression.
    smoothed = []
    for t, frame in enumerate(smooth_track(frame_fits, config.smoothness, config.expression_smoothing, config.robust_smoothing)):
        projected = person.project(track.landmarks[t], identity=joint.identity, expression=frame.expression,
                                   rotation=frame.rotation, translation=frame.translation, camera=camera)  # fmt: skip
        error = float(np.median(np.linalg.norm(projected - track.landmarks[t], axis=1)))
        smoothed.append(FrameFit(frame.rotation, frame.translation, frame.expression, error))
    return TrackFit(track.track_id, joint.identity, keyframes, tuple(smoothed), raw)


def _frame(fit: LandmarkFit) -> FrameFit:
    return FrameFit(fit.rotation, fit.translation, fit.expression, float(np.median(fit.residual_px)))


def _head_rotvec(rotation: np.ndarray) -> np.ndarray:
    """The rotation vector of the head's own rotation (the model-to-camera rotation without the axis flip)."""
    return cv2.Rodrigues(np.asarray(FLIP_YZ).T @ rotation)[0].reshape(3)


def _solve_banded(system: scipy.sparse.spmatrix, rhs: np.ndarray, bandwidth: int) -> np.ndarray:
    """Solve the symmetric positive definite ``system`` whose entries lie within ``bandwidth`` of the diagonal
    (consecutive frames' blocks: ``2 P`` for second differences) by a banded Cholesky factorisation: linear in the
    frames, where a general sparse solver fills in."""
    upper = scipy.sparse.triu(system).tocoo()
    n = system.shape[0]
    banded = np.zeros((bandwidth + 1, n))
    banded[bandwidth + upper.row - upper.col, upper.col] = upper.data
    return scipy.linalg.solveh_banded(banded, rhs)


#: Tracks longer than this are smoothed in overlapping windows (the banded system of an hour of video would hold
#: 5 GB); each window's middle is kept, and SMOOTHING_OVERLAP frames on each side only steady its edges (the
#: smoother's reach is a few frames, so the seams do not show).
SMOOTHING_WINDOW = 1500
SMOOTHING_OVERLAP = 100


def smooth_track(fits: list[LandmarkFit], smoothness: float, expression_share: float = 1.0, robust: float | None = None,
                 robust_rounds: int = 3) -> list[FrameFit]:  # fmt: skip
    """Zero-phase smoothing of consecutive frames' poses and expressions, in windows of :data:`SMOOTHING_WINDOW`
    frames (see :func:`_smooth`)."""
    T = len(fits)
    if T <= SMOOTHING_WINDOW:
        return _smooth(fits, smoothness, expression_share, robust, robust_rounds)
    out: list[FrameFit] = []
    step = SMOOTHING_WINDOW - 2 * SMOOTHING_OVERLAP
    for keep_from in range(0, T, step):
        a = max(keep_from - SMOOTHING_OVERLAP, 0)
        b = min(keep_from + step + SMOOTHING_OVERLAP, T)
        window = _smooth(fits[a:b], smoothness, expression_share, robust, robust_rounds)
        out += window[keep_from - a : min(keep_from + step, T) - a]
    return out


def _smooth(fits: list[LandmarkFit], smoothness: float, expression_share: float, robust: float | None,
            robust_rounds: int) -> list[FrameFit]:  # fmt: skip
    """Zero-phase smoothing of consecutive frames' poses and expressions (see the module doc).

    Minimises ``sum_t d_t^T H_t d_t + smoothness * sum_t || D (s_{t+1} - 2 s_t + s_{t-1}) ||^2`` over the
    frames' increments ``d_t`` (the landmark stage's unknowns: rotation increment, translation, expression),
    where ``H_t`` is frame t's normal matrix, ``s_t`` its pose and expression (head rotation vector, translation,
    weights) and ``D`` converts them to face sizes. One sparse solve; expression weights are clipped to [0, 1].
    """
    T = len(fits)
    P = fits[0].normal_matrix.shape[0]
    k_exp = len(fits[0].expression)
    if P != 6 + k_exp:
        raise ValueError("fits: expected fits of a known person (pose and expression unknowns only)")
    depth = float(np.median([fit.translation[2] for fit in fits]))
    scale = np.concatenate([
        np.full(3, _FACE_SIZES_PER_RADIAN),
        [_FACE_SIZES_PER_MM_ACROSS, _FACE_SIZES_PER_MM_ACROSS, _SPREAD_PER_DEPTH / max(depth, 1.0)],
        np.full(k_exp, _FACE_SIZES_PER_EXPRESSION * expression_share),
    ])  # fmt: skip
    state = np.stack([np.concatenate([_head_rotvec(f.rotation), f.translation, f.expression]) for f in fits])  # (T, P)
    # Rotation vectors of consecutive frames on the same side (a vector near pi and its antipode are one rotation).
    for t in range(1, T):
        r, prev = state[t, :3], state[t - 1, :3]
        angle = np.linalg.norm(r)
        if angle > 1e-9:
            alt = r * (1.0 - 2.0 * np.pi / angle)
            if np.linalg.norm(alt - prev) < np.linalg.norm(r - prev):
                state[t, :3] = alt
    blocks = [scipy.sparse.csr_matrix(np.asarray(f.normal_matrix)) for f in fits]
    data = scipy.sparse.block_diag(blocks, format="csr")
    second = scipy.sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(T - 2, T))
    acceleration = scipy.sparse.kron(second, scipy.sparse.diags(scale), format="csr")  # (P (T-2), P T)
    row_weight = np.ones((T - 2, P))
    groups = (slice(0, 6), slice(6, P))
    step = np.zeros(T * P)
    for _ in range(1 + (robust_rounds if robust is not None else 0)):
        weighted = scipy.sparse.diags(np.sqrt(row_weight).reshape(-1)) @ acceleration
        system = data + smoothness * (weighted.T @ weighted)
        rhs = -smoothness * (weighted.T @ (weighted @ state.reshape(-1)))
        step = _solve_banded(system, rhs, 2 * P)
        if robust is None:
            break
        # Huber weights per frame on the pose's and the expression's acceleration: a real start or stop of a
        # motion (an acceleration well above the track's typical one) is penalised less than jitter.
        accel = (acceleration @ (state.reshape(-1) + step)).reshape(T - 2, P)
        for group in groups:
            size = np.linalg.norm(accel[:, group], axis=1)
            bound = robust * max(float(np.median(size)), 1e-12)
            row_weight[:, group] = np.minimum(1.0, bound / np.maximum(size, 1e-12))[:, None]
    step = step.reshape(T, P)
    out = []
    for fit, d in zip(fits, step):
        rotation = fit.rotation @ cv2.Rodrigues(d[:3].reshape(3, 1))[0]
        expression = np.clip(fit.expression + d[6:], 0.0, 1.0)
        out.append(FrameFit(rotation, fit.translation + d[3:6], expression, float(np.median(fit.residual_px))))
    return out
