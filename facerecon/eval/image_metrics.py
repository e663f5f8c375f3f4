"""Image agreement between a photo and a re-rendered face, over a face mask.

* :func:`photometric_error`: paper 004, section 7.2 — the mean Euclidean distance in RGB space (channels in
  [0, 1]) over the visible face pixels.
* :func:`psnr`, :func:`ssim`, :func:`l1_error`: paper 003, table 1 — computed between the input image and the
  reconstructed overlay (the rendered face pasted over the photo, :func:`overlay`), over the face mask.

Images are ``(H, W, 3)`` RGB, uint8 (scaled by 1/255) or float in [0, 1]; masks ``(H, W)`` bool.

Example:
    >>> import numpy as np
    >>> a = np.zeros((8, 8, 3)); b = a + 0.1; mask = np.ones((8, 8), bool)
    >>> round(psnr(a, b, mask), 6), round(l1_error(a, b, mask), 6)
    (20.0, 0.1)
"""

from __future__ import annotations

import math

import numpy as np

from facerecon.core.check import check_finite, check_range, check_shape, describe

__all__ = ["SSIM_K1", "SSIM_K2", "SSIM_SIGMA", "l1_error", "overlay", "photometric_error", "psnr", "ssim", "ssim_map"]

# Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to structural similarity",
# IEEE TIP 2004, sec. III-B/C: K1 = 0.01, K2 = 0.03, an 11 x 11 circular-symmetric Gaussian window, sigma 1.5.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # 3.5 sigma each side: radius 5 px, an 11 x 11 window (as in the paper)


def _as_float_image(value: object, name: str, sizes: dict[str, int]) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected an array of shape (H, W, 3), got {describe(value)}")
    check_shape(value, name, ("H", "W", 3), sizes)
    if value.dtype == np.uint8:
        return value.astype(np.float64) / 255.0
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{name}: expected uint8 or floating-point RGB, got {describe(value)}")
    check_finite(value, name)
    check_range(value, name, 0.0, 1.0)
    return value.astype(np.float64)


def _as_mask(value: object, name: str, sizes: dict[str, int]) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a bool array of shape (H, W), got {describe(value)}")
    check_shape(value, name, ("H", "W"), sizes)
    if value.dtype != np.bool_:
        raise TypeError(f"{name}: expected dtype bool, got {describe(value)}")
    if not value.any():
        raise ValueError(f"{name}: the mask is empty (no face pixel), so nothing can be measured")
    return value


def _pair(image: object, rendered: object, mask: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sizes: dict[str, int] = {}
    a = _as_float_image(image, "image", sizes)
    b = _as_float_image(rendered, "rendered", sizes)
    m = _as_mask(mask, "mask", sizes)
    return a, b, m


def overlay(image: np.ndarray, rendered: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The rendered face pasted over the photo: ``rendered`` where ``mask``, else ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 or float in [0, 1].
        rendered: ``(H, W, 3)`` uint8 or float in [0, 1].
        mask: ``(H, W)`` bool, the rendered face's pixels.

    Returns:
        ``(H, W, 3)`` float64 in [0, 1] (a new array).
    """
    a, b, m = _pair(image, rendered, mask)
    return np.where(m[..., None], b, a)


def photometric_error(image: np.ndarray, rendered: np.ndarray, mask: np.ndarray) -> float:
    """Mean RGB Euclidean distance over the mask (paper 004, sec. 7.2; channels in [0, 1]).

    Returns:
        A float in ``[0, sqrt(3)]``.
    """
    a, b, m = _pair(image, rendered, mask)
    return float(np.linalg.norm(a[m] - b[m], axis=-1).mean())


def l1_error(image: np.ndarray, rendered: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference over the masked pixels and the 3 channels (channels in [0, 1])."""
    a, b, m = _pair(image, rendered, mask)
    return float(np.abs(a[m] - b[m]).mean())


def psnr(image: np.ndarray, rendered: np.ndarray, mask: np.ndarray) -> float:
    """Peak signal-to-noise ratio over the mask in dB: ``10 log10(1 / MSE)`` with channels in [0, 1].

    Returns:
        A float; ``inf`` when the masked pixels are identical.
    """
    a, b, m = _pair(image, rendered, mask)
    mse = float(np.square(a[m] - b[m]).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim_map(image: np.ndarray, rendered: np.ndarray) -> np.ndarray:
    """The per-pixel SSIM of two RGB images, averaged over the channels (Wang et al. 2004).

    Local means, variances and the covariance use a Gaussian window (sigma 1.5, 11 x 11) with reflected borders;
    ``K1 = 0.01``, ``K2 = 0.03``, dynamic range 1 (channels in [0, 1]); population (not sample) statistics, as in
    the paper. This equals ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1, full=True)``'s map averaged over channels.

    Args:
        image: ``(H, W, 3)`` uint8 or float in [0, 1].
        rendered: ``(H, W, 3)`` uint8 or float in [0, 1].

    Returns:
        ``(H, W)`` float64, at most 1.
    """
    from scipy.ndimage import gaussian_filter

    sizes: dict[str, int] = {}
    a = _as_float_image(image, "image", sizes)
    b = _as_float_image(rendered, "rendered", sizes)

    def blur(x: np.ndarray) -> np.ndarray:
        # sigma 0 along the channel axis: each channel on its own.
        return gaussian_filter(x, sigma=(SSIM_SIGMA, SSIM_SIGMA, 0.0), truncate=_SSIM_TRUNCATE, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(axis=-1)


def ssim(image: np.ndarray, rendered: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM (see :func:`ssim_map`) over the mask, or over the whole image when ``mask`` is None.

    Returns:
        A float at most 1 (1 for identical images).
    """
    if mask is None:
        return float(ssim_map(image, rendered).mean())
    _, _, m = _pair(image, rendered, mask)
    return float(ssim_map(image, rendered)[m].mean())
