"""Figures of motion over a video: jitter (landmark acceleration), lag between two signals, identity spread."""

from __future__ import annotations

import numpy as np

from facerecon.core.check import check_shape

__all__ = ["identity_spread", "lag_frames", "landmark_acceleration"]


def landmark_acceleration(points: np.ndarray) -> float:
    """Jitter: the mean length of the frame-to-frame acceleration ``p[t+1] - 2 p[t] + p[t-1]`` of ``points
    (T, L, 2)`` px over all landmarks and frames, px/frame^2 (NaN for fewer than 3 frames)."""
    check_shape(points, "points", ("T", "L", 2))
    if len(points) < 3:
        return float("nan")
    accel = points[2:] - 2.0 * points[1:-1] + points[:-2]
    return float(np.linalg.norm(accel, axis=-1).mean())


def lag_frames(reference: np.ndarray, signal: np.ndarray, max_lag: int = 5) -> float:
    """How many frames ``signal (T,)`` trails ``reference (T,)`` (negative: leads): the shift that maximises
    their normalised cross-correlation (means removed), refined to a fraction of a frame by a parabola through
    the peak and its neighbours. A smoother with no phase lag gives 0."""
    reference, signal = np.asarray(reference, np.float64), np.asarray(signal, np.float64)
    check_shape(signal, "signal", (len(reference),))
    if len(reference) < 2 * max_lag + 3:
        raise ValueError(f"reference: expected at least {2 * max_lag + 3} frames for lags up to {max_lag}, got {len(reference)}")
    a, b = reference - reference.mean(), signal - signal.mean()
    lags = np.arange(-max_lag, max_lag + 1)
    scores = []
    for lag in lags:
        x, y = (a[: len(a) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: len(b) + lag])
        scores.append(float(x @ y / max(np.linalg.norm(x) * np.linalg.norm(y), 1e-12)))
    scores = np.asarray(scores)
    best = int(np.argmax(scores))
    if 0 < best < len(lags) - 1:
        left, mid, right = scores[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
        return float(lags[best] + offset)
    return float(lags[best])


def identity_spread(identities: np.ndarray) -> float:
    """The identity's spread over frames: the standard deviation of each coefficient over ``identities (T, K)``,
    averaged over the coefficients."""
    check_shape(identities, "identities", ("T", "K"))
    return float(np.asarray(identities, np.float64).std(axis=0).mean())
