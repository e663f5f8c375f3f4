"""Overlays of detections on their photo, for people to look at."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facerecon.core.check import describe
from facerecon.detect._image import check_image
from facerecon.detect.types import Detection

_BOX = (255, 64, 64)  # RGB
_DENSE = (64, 255, 96)
_IBUG = (40, 120, 255)
_IBUG_RIGHT = (255, 200, 0)  # the subject's right side of the 68 points, to see left/right at a glance
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions


def draw_detections(image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of ``image`` with each face's box, its landmarks (small) and its 68 iBUG points (larger).

    The 68 points of the subject's right side (iBUG 0-7, 17-21, 31-32, 36-41, 48-50, 58-61, 67) are drawn
    in another colour than the rest, so a left/right swap shows. The first (largest) face is numbered 0.

    Args:
        image: ``(H, W, 3)`` uint8 RGB; not modified.
        detections: faces found in ``image`` (px of ``image``).

    Returns:
        ``(H, W, 3)`` uint8 RGB, a new array.
    """
    image = check_image(image)
    if not isinstance(detections, Sequence) or not all(isinstance(d, Detection) for d in detections):
        raise TypeError(f"detections: expected a sequence of Detection, got {describe(detections)}")
    out = image.copy()
    h, w = out.shape[:2]
    unit = max(1.0, max(h, w) / 640.0)  # line widths and radii grow with the photo
    thick = max(1, int(round(1.5 * unit)))
    from facerecon.detect.schemes import IBUG68_MIRROR_PAIRS

    right = {r for r, _ in IBUG68_MIRROR_PAIRS}
    for k, det in enumerate(detections):
        x0, y0, x1, y1 = det.box
        cv2.rectangle(out, _fix((x0, y0)), _fix((x1, y1)), _BOX, thick, cv2.LINE_AA, _SHIFT)
        cv2.putText(out, str(k), (int(x0), max(int(y0) - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * unit, _BOX,
                    thick, cv2.LINE_AA)
        if det.scheme != "ibug68":
            for p in det.landmarks:
                cv2.circle(out, _fix(p), int(round(0.8 * unit * (1 << _SHIFT))), _DENSE, -1, cv2.LINE_AA, _SHIFT)
        for i, p in enumerate(det.to_ibug68()):
            colour = _IBUG_RIGHT if i in right else _IBUG
            cv2.circle(out, _fix(p), int(round(2.2 * unit * (1 << _SHIFT))), colour, -1, cv2.LINE_AA, _SHIFT)
    return out


def _fix(p: Sequence[float]) -> tuple[int, int]:
    """A point in px (centres at integers) as cv2's fixed-point integers."""
    return int(round(float(p[0]) * (1 << _SHIFT))), int(round(float(p[1]) * (1 << _SHIFT)))
