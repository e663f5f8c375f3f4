"""Point sampling of images: the point-based image formation of paper 004 (Tewari et al. 2018, section 5).

Instead of rasterizing, the photo is read at the projected vertex positions ``u_i = Pi(R v_i + t)`` and
compared with the shaded vertex colours ``c_i`` (for the visible vertices,
:func:`facerecon.render.visibility.vertex_visibility`). :func:`sample_image` is bilinear and differentiable
with respect to both the image and the positions, so the photometric error has gradients w.r.t. the pose,
the shape and the camera through ``u_i``.

Pixel convention (``docs/conventions.md``): pixel ``(x, y)`` has its centre at ``(u, v) = (x, y)``; sampling at
an integer position returns that pixel exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from facerecon.core.check import check_choice, check_finite, check_floating, check_shape, describe

__all__ = ["sample_image", "inside_image", "pixel_to_grid"]


def pixel_to_grid(points: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
    """Pixel coordinates ``(..., 2)`` (u, v) to ``grid_sample`` coordinates (``align_corners=False``).

    ``u = -0.5`` (the left edge of pixel 0) maps to -1 and ``u = W - 0.5`` (the right edge of the last pixel)
    to +1, so ``x_grid = (2 u + 1) / W - 1``.
    """
    height, width = int(image_size[0]), int(image_size[1])
    scale = points.new_tensor([2.0 / width, 2.0 / height])
    offset = points.new_tensor([1.0 / width - 1.0, 1.0 / height - 1.0])
    return points * scale + offset


def inside_image(points: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
    """``(...)`` bool: points whose bilinear footprint lies inside the image (``0 <= u <= W-1``, ``0 <= v <= H-1``)."""
    height, width = int(image_size[0]), int(image_size[1])
    u, v = points[..., 0], points[..., 1]
    return (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)


def sample_image(images: torch.Tensor, points: torch.Tensor, *, padding: str = "border") -> torch.Tensor:
    """Bilinear samples of images at sub-pixel positions, differentiable w.r.t. images and positions.

    Args:
        images: ``(B, C, H, W)`` floating images (e.g. RGB in [0, 1]).
        points: ``(B, N, 2)`` floating pixel coordinates ``(u, v)`` (u right, v down, pixel centres at integers).
        padding: ``"border"`` repeats the edge pixels outside the image, ``"zeros"`` fades to 0 over the half
            pixel beyond the outer pixel centres and is 0 further out. Mask points outside the image with
            :func:`inside_image`.

    Returns:
        ``(B, N, C)`` samples in the dtype of ``images``.

    Raises:
        TypeError: non-tensors or non-floating inputs, different dtypes.
        ValueError: wrong shapes, mismatched batch sizes or devices, NaN/inf positions, an unknown padding.

    Example:
        >>> img = torch.arange(6.0).reshape(1, 1, 2, 3)          # rows [0 1 2], [3 4 5]
        >>> sample_image(img, torch.tensor([[[1.0, 0.0], [0.5, 0.5]]]))
        tensor([[[1.],
                 [2.]]])
    """
    sizes: dict[str, int] = {}
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a tensor of shape (B, C, H, W), got {describe(images)}")
    check_shape(images, "images", ("B", "C", "H", "W"), sizes)
    check_floating(images, "images")
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"points: expected a tensor of shape (B, N, 2), got {describe(points)}")
    check_shape(points, "points", ("B", "N", 2), sizes)
    check_floating(points, "points")
    check_finite(points, "points")
    check_choice(padding, "padding", ("border", "zeros"))
    if points.dtype != images.dtype:
        raise TypeError(f"points: expected dtype {images.dtype} (the dtype of images), got {describe(points)}")
    if points.device != images.device:
        raise ValueError(f"points: expected device {images.device} (the device of images), got {points.device}")
    if sizes["N"] == 0:
        return images.new_zeros(sizes["B"], 0, sizes["C"])
    grid = pixel_to_grid(points, (sizes["H"], sizes["W"]))[:, :, None, :]  # (B, N, 1, 2)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)  # (B, C, N, 1)
    return out[..., 0].transpose(1, 2)
