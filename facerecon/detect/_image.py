"""Image plumbing shared by the detectors: input checks, scaled copies and square crops, and the maps
of their pixel coordinates back to the original image (pixel centres at integer coordinates)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facerecon.core.check import check_shape, describe
from facerecon.core.errors import NoFaceError
from facerecon.io.image import downscale_for_detection

#: The smallest width and height the detectors take, px.
MIN_IMAGE_SIDE = 8


def check_detectable(image: np.ndarray, name: str = "image") -> None:
    """Raise :class:`NoFaceError` for a photo below :data:`MIN_IMAGE_SIDE` on a side: no face can be in it, and a
    user's tiny file is a photo without a face, not the programming error :func:`check_image` reports."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise NoFaceError(f"{name}: the image is {width} x {height} px, too small to hold a face")


def check_image(image: object, name: str = "image") -> np.ndarray:
    """Check an ``(H, W, 3)`` uint8 RGB array and return it C-contiguous (a copy only if it was not)."""
    check_shape(image, name, (None, None, 3))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array (H, W, 3) uint8 RGB, got {describe(image)}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8 (RGB 0-255), got {describe(image)}")
    if image.shape[0] < MIN_IMAGE_SIDE or image.shape[1] < MIN_IMAGE_SIDE:
        raise ValueError(f"{name}: expected an image of at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} pixels, "
                         f"got {describe(image)}")  # fmt: skip
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class Affine:
    """``u = scale_u * u_local + offset_u``, ``v = scale_v * v_local + offset_v``; pixel centres at integers."""

    scale_u: float
    scale_v: float
    offset_u: float
    offset_v: float

    def points(self, pts: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` (or ``(N, 3)``: z scaled by the mean scale) local pixels to the original image."""
        out = np.array(pts, dtype=np.float64)
        out[:, 0] = out[:, 0] * self.scale_u + self.offset_u
        out[:, 1] = out[:, 1] * self.scale_v + self.offset_v
        if out.shape[1] > 2:
            out[:, 2:] *= 0.5 * (self.scale_u + self.scale_v)
        return out

    def box(self, box: np.ndarray) -> np.ndarray:
        """Map a ``(4,)`` box ``[x0, y0, x1, y1]`` local px to the original image."""
        return self.points(np.asarray(box, dtype=np.float64).reshape(2, 2)).reshape(4)


def scaled_copy(image: np.ndarray, max_side: int) -> tuple[np.ndarray, Affine]:
    """``image`` shrunk (never enlarged) so that its long side is at most ``max_side`` px, and the map of
    the copy's pixels to ``image``: ``u = (u' + 0.5) / scale - 0.5`` (:func:`facerecon.io.image.points_to_original`)."""
    small, scale = downscale_for_detection(image, max_side)
    s = 1.0 / scale
    return small, Affine(s, s, (s - 1) / 2, (s - 1) / 2)


def square_crop(image: np.ndarray, centre_u: float, centre_v: float, side: float, size: int) -> tuple[np.ndarray, Affine]:
    """A ``(size, size, 3)`` crop of the square of ``side`` px centred on ``(centre_u, centre_v)``.

    The square is snapped to whole pixels, padded with black where it leaves the image, and resized to
    ``size`` (area averaging when shrinking). Returns the crop and the map of its pixels to ``image``.
    """
    h, w = image.shape[:2]
    n = max(2, int(round(side)))
    x0 = int(round(centre_u - (n - 1) / 2))
    y0 = int(round(centre_v - (n - 1) / 2))
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + n, w), min(y0 + n, h)
    patch = np.zeros((n, n, 3), dtype=np.uint8)
    if xb > xa and yb > ya:
        patch[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    interp = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    crop = patch if n == size else cv2.resize(patch, (size, size), interpolation=interp)
    s = n / size
    return crop, Affine(s, s, x0 + (s - 1) / 2, y0 + (s - 1) / 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
