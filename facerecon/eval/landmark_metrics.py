"""Landmark error: NME over the 68 iBUG points, absolute-yaw bins, and the cumulative error distribution.

The protocol is the one of paper 002, table 1 (itself the 3DDFA / PRNet protocol on AFLW2000-3D): the error of
each image is the mean Euclidean distance between the predicted and the ground-truth 2D landmarks divided by
``sqrt(w * h)`` of the tight box around the **ground-truth** 68 points; images are grouped by absolute yaw
into [0, 30), [30, 60) and [60, 90] degrees.

Example:
    >>> import numpy as np
    >>> gt = np.array([[[0.0, 0.0], [10.0, 0.0], [10.0, 40.0], [0.0, 40.0]]])  # a 10 x 40 px box: sqrt = 20
    >>> float(nme(gt + [[[2.0, 0.0]]], gt)[0])                                   # every point 2 px off
    0.1
"""

from __future__ import annotations

import math

import numpy as np

from facerecon.core.check import check_finite, check_floating, check_shape, describe

__all__ = ["YAW_BIN_EDGES_DEG", "YAW_BIN_LABELS", "box_size", "ced_curve", "nme", "yaw_bin"]

#: Lower edges of the absolute-yaw bins in degrees (paper 002, table 1): [0, 30), [30, 60), [60, 90].
YAW_BIN_EDGES_DEG: tuple[float, float, float] = (0.0, 30.0, 60.0)
#: Labels of the bins, as in the JSON report and the table.
YAW_BIN_LABELS: tuple[str, str, str] = ("[0, 30)", "[30, 60)", "[60, 90]")


def _as_points(value: object, name: str, sizes: dict[str, int]) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected an array of shape (B, L, 2), got {describe(value)}")
    check_shape(value, name, ("B", "L", 2), sizes)
    check_floating(value, name)
    check_finite(value, name)
    return value.astype(np.float64, copy=False)


def box_size(landmarks: np.ndarray) -> np.ndarray:
    """``sqrt(w * h)`` of the tight axis-aligned box around each set of landmarks.

    Args:
        landmarks: ``(B, L, 2)`` float ``(u, v)`` px.

    Returns:
        ``(B,)`` float64 px.
    """
    pts = _as_points(landmarks, "landmarks", {})
    extent = pts.max(axis=1) - pts.min(axis=1)  # (B, 2): w, h
    return np.sqrt(extent[:, 0] * extent[:, 1])


def nme(predicted: np.ndarray, target: np.ndarray, normalizer: np.ndarray | None = None) -> np.ndarray:
    """Normalised mean error of landmarks, per image (a fraction: multiply by 100 for percent).

    ``NME = mean_l |predicted_l - target_l|_2 / d`` with ``d = sqrt(w * h)`` of the box around the ground-truth
    points (:func:`box_size`) unless ``normalizer`` gives it.

    Args:
        predicted: ``(B, L, 2)`` float px.
        target: ``(B, L, 2)`` float px, the ground truth.
        normalizer: ``(B,)`` positive float px, or None for :func:`box_size` of ``target``.

    Returns:
        ``(B,)`` float64, unitless.

    Raises:
        TypeError / ValueError: wrong shapes or types, NaN/inf, a non-positive normalizer (e.g. ground-truth
            points that all lie on one line).
    """
    sizes: dict[str, int] = {}
    pred = _as_points(predicted, "predicted", sizes)
    tgt = _as_points(target, "target", sizes)
    if normalizer is None:
        norm = box_size(tgt)
    else:
        if not isinstance(normalizer, np.ndarray):
            raise TypeError(f"normalizer: expected an array of shape (B,), got {describe(normalizer)}")
        check_shape(normalizer, "normalizer", ("B",), sizes)
        check_floating(normalizer, "normalizer")
        check_finite(normalizer, "normalizer")
        norm = normalizer.astype(np.float64)
    if np.any(norm <= 0):
        raise ValueError("normalizer: expected positive box sizes, got a zero-area ground-truth box")
    return np.linalg.norm(pred - tgt, axis=-1).mean(axis=-1) / norm


def yaw_bin(yaw_deg: float) -> int:
    """The index of the absolute-yaw bin of a head pose: 0 for [0, 30), 1 for [30, 60), 2 for [60, 90].

    Yaws beyond +-90 degrees (a few AFLW2000-3D fits) count in the last bin.

    Args:
        yaw_deg: yaw in degrees, any sign.

    Raises:
        TypeError / ValueError: not a finite number.
    """
    if isinstance(yaw_deg, bool) or not isinstance(yaw_deg, (int, float, np.floating, np.integer)):
        raise TypeError(f"yaw_deg: expected a number, got {describe(yaw_deg)}")
    if not math.isfinite(float(yaw_deg)):
        raise ValueError(f"yaw_deg: expected a finite number, got {yaw_deg!r}")
    a = abs(float(yaw_deg))
    if a < YAW_BIN_EDGES_DEG[1]:
        return 0
    if a < YAW_BIN_EDGES_DEG[2]:
        return 1
    return 2


def ced_curve(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The cumulative error distribution: the fraction of errors at or below each threshold.

    Args:
        errors: ``(N,)`` float errors (any unit; NaN not allowed).
        thresholds: ``(T,)`` float thresholds in the same unit.

    Returns:
        ``(T,)`` float64 in [0, 1] (all 0 when ``errors`` is empty).
    """
    for name, value in (("errors", errors), ("thresholds", thresholds)):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{name}: expected an array of shape (N,), got {describe(value)}")
        check_shape(value, name, (None,))
        check_floating(value, name)
    check_finite(errors, "errors")
    if errors.size == 0:
        return np.zeros(thresholds.shape, dtype=np.float64)
    ordered = np.sort(errors.astype(np.float64))
    return np.searchsorted(ordered, thresholds.astype(np.float64), side="right") / ordered.size
