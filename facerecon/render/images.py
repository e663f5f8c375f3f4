"""Images from a mesh: the differentiable SH-shaded render, and the views a person looks at.

:func:`shade_fragments` is the pixel shader used by photometric fitting: albedo and camera-space normals are
interpolated at the fragments (:func:`facerecon.render.interpolate.interpolate`), the normals renormalised and
shaded with 3-band SH lighting (:func:`facerecon.render.sh.shade`, ``C = albedo * S(n)``). :func:`render_images`
adds the albedo, normal, depth and mask images and :func:`composite` lays a render over a photo.

All images are ``(B, C, H, W)`` float, RGB in [0, 1] where they are colours (shaded colours are not clamped;
:func:`to_uint8` clamps when converting for files).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facerecon.core.check import check_finite, check_floating, check_index_range, check_shape, describe
from facerecon.render.fragments import Fragments
from facerecon.render.interpolate import interpolate, interpolate_covered
from facerecon.render.rasterize import check_image_size, rasterize
from facerecon.render.sh import directional_sh, shade

__all__ = [
    "RenderedImages",
    "shade_fragments",
    "render_images",
    "display_light",
    "normals_to_rgb",
    "depth_to_gray",
    "composite",
    "to_uint8",
]


@dataclass(frozen=True)
class RenderedImages:
    """What :func:`render_images` draws, each ``(B, C, H, W)`` with 0 at background.

    Attributes:
        shaded: ``(B, 3, H, W)`` SH-shaded colour ``albedo * S(n)`` (differentiable, not clamped).
        albedo: ``(B, 3, H, W)`` interpolated albedo.
        normals: ``(B, 3, H, W)`` unit camera-space normals (x right, y down, z forward); see
            :func:`normals_to_rgb` to look at them.
        depth: ``(B, 1, H, W)`` camera-space depth, mm; see :func:`depth_to_gray` to look at it.
        mask: ``(B, 1, H, W)`` 1.0 where the mesh covers the pixel.
        fragments: the rasterization they were drawn from.
    """

    shaded: torch.Tensor
    albedo: torch.Tensor
    normals: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    fragments: Fragments


def _check_vertex_data(value: torch.Tensor, name: str, sizes: dict[str, int]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (B, V, 3) or (V, 3), got {describe(value)}")
    if value.dim() == 2:
        check_shape(value, name, ("V", 3), sizes)
        value = value[None].expand(sizes["B"], -1, -1)
    else:
        check_shape(value, name, ("B", "V", 3), sizes)
    check_floating(value, name)
    check_finite(value, name)
    return value


def _nchw(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 3, 1, 2)


def display_light(
    batch_size: int = 1, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``(B, 9, 3)`` SH radiance of a neutral studio light for looking at shapes.

    White ambient shading 0.35 plus a distant light from the upper left of the camera (camera space
    direction ``(-0.35, -0.45, -1)``) of strength ``0.7 pi`` (about 0.7 on surfaces facing it).
    """
    direction = torch.tensor([[-0.35, -0.45, -1.0]], device=device, dtype=dtype or torch.float32)
    direction = direction.expand(batch_size, 3)
    colour = torch.full_like(direction, 0.7 * math.pi)
    return directional_sh(direction, colour, ambient=0.35)


def shade_fragments(
    fragments: Fragments,
    faces: torch.Tensor,
    albedo: torch.Tensor,
    normals: torch.Tensor,
    sh_coeffs: torch.Tensor,
) -> torch.Tensor:
    """Per-pixel Lambertian SH shading of the fragments: ``albedo * S(normalise(n))``, 0 at background.

    Differentiable w.r.t. ``albedo``, ``normals``, ``sh_coeffs`` and (through ``fragments.bary``) the
    screen-space vertices.

    Args:
        fragments: from :func:`~facerecon.render.rasterize.rasterize` with the same ``faces``.
        faces: ``(F, 3)`` int64.
        albedo: ``(B, V, 3)`` or ``(V, 3)`` per-vertex RGB reflectance in [0, 1].
        normals: ``(B, V, 3)`` or ``(V, 3)`` per-vertex camera-space normals (renormalised per pixel).
        sh_coeffs: ``(B, 9, 3)`` SH radiance coefficients (:mod:`facerecon.render.sh`).

    Returns:
        ``(B, 3, H, W)`` shaded colour.
    """
    if not isinstance(fragments, Fragments):
        raise TypeError(f"fragments: expected Fragments (from rasterize), got {describe(fragments)}")
    sizes: dict[str, int] = {"B": fragments.batch_size}
    albedo = _check_vertex_data(albedo, "albedo", sizes)
    normals = _check_vertex_data(normals, "normals", sizes)
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"faces: expected an int64 tensor of shape (F, 3), got {describe(faces)}")
    check_shape(faces, "faces", ("F", 3), sizes)
    check_index_range(faces, "faces", sizes["V"])
    batch, height, width = fragments.face_index.shape
    if not isinstance(sh_coeffs, torch.Tensor):
        raise TypeError(f"sh_coeffs: expected a tensor of shape (B, 9, 3), got {describe(sh_coeffs)}")
    check_shape(sh_coeffs, "sh_coeffs", (batch, 9, 3))
    if fragments.mask.any() and int(fragments.face_index.max()) >= sizes["F"]:
        raise ValueError(f"fragments: face indices exceed the {sizes['F']} faces given; rasterized with other faces?")
    # Work on the covered pixels only: gather corners, interpolate, shade per image, scatter once.
    flat, b, _, _ = fragments.covered
    bary = fragments.bary.to(albedo.dtype)
    rgb = interpolate_covered(albedo, faces, fragments, bary)  # (N, 3)
    nrm = interpolate_covered(normals, faces, fragments, bary)
    pieces = []
    for i in range(batch):
        sel = b == i
        pieces.append(shade(rgb[sel][None], nrm[sel][None], sh_coeffs[i : i + 1])[0])
    colour = torch.cat(pieces) if pieces else rgb
    out = colour.new_zeros(batch * height * width, 3).index_put((flat,), colour)
    return _nchw(out.reshape(batch, height, width, 3))


def render_images(
    screen_vertices: torch.Tensor,
    faces: torch.Tensor,
    image_size: Sequence[int],
    *,
    normals: torch.Tensor,
    albedo: torch.Tensor | None = None,
    sh_coeffs: torch.Tensor | None = None,
    fragments: Fragments | None = None,
    perspective_correct: bool = True,
) -> RenderedImages:
    """Rasterize and draw the shaded, albedo, normal, depth and mask images of a mesh.

    Args:
        screen_vertices: ``(B, V, 3)`` pixel coordinates and depth ``(u, v, z)``, mm.
        faces: ``(F, 3)`` int64, counter-clockwise seen from outside.
        image_size: ``(H, W)``.
        normals: ``(B, V, 3)`` or ``(V, 3)`` camera-space vertex normals (e.g.
            ``facerecon.geometry.mesh_ops.vertex_normals`` of the camera-space vertices).
        albedo: ``(B, V, 3)`` or ``(V, 3)`` RGB in [0, 1]; default a uniform light grey (0.75).
        sh_coeffs: ``(B, 9, 3)`` SH radiance; default :func:`display_light`.
        fragments: reuse a rasterization of the same mesh instead of rasterizing again.
        perspective_correct: as in :func:`~facerecon.render.rasterize.rasterize`.

    Returns:
        :class:`RenderedImages`.
    """
    height, width = check_image_size(image_size)
    if fragments is None:
        fragments = rasterize(screen_vertices, faces, (height, width), perspective_correct=perspective_correct)
    elif not isinstance(fragments, Fragments):
        raise TypeError(f"fragments: expected Fragments (from rasterize) or None, got {describe(fragments)}")
    elif fragments.image_size != (height, width) or fragments.batch_size != screen_vertices.shape[0]:
        raise ValueError(
            f"fragments: expected batch size {screen_vertices.shape[0]} and image size {(height, width)}, "
            f"got {fragments.batch_size} and {fragments.image_size}"
        )
    batch = fragments.batch_size
    dtype, device = screen_vertices.dtype, screen_vertices.device
    if albedo is None:
        albedo = torch.full((screen_vertices.shape[1], 3), 0.75, dtype=dtype, device=device)
    if sh_coeffs is None:
        sh_coeffs = display_light(batch, device=device, dtype=dtype)
    sizes: dict[str, int] = {"B": batch}
    rgb = interpolate(_check_vertex_data(albedo, "albedo", sizes), faces, fragments)
    nrm = interpolate(_check_vertex_data(normals, "normals", sizes), faces, fragments)
    shaded = shade_fragments(fragments, faces, albedo, normals, sh_coeffs)
    albedo_img = _nchw(rgb)
    nrm = torch.nn.functional.normalize(nrm, dim=-1, eps=1e-12)
    mask = fragments.mask[:, None].to(dtype)
    return RenderedImages(
        shaded=shaded,
        albedo=albedo_img,
        normals=_nchw(nrm),
        depth=fragments.depth[:, None],
        mask=mask,
        fragments=fragments,
    )


def normals_to_rgb(normals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Colour-code camera-space normals ``(B, 3, H, W)``: ``r = (1 + x)/2, g = (1 - y)/2, b = (1 - z)/2``.

    A surface facing the camera is light blue (0.5, 0.5, 1), one facing up green, right red (the usual look
    of view-space normal maps). ``mask`` ``(B, 1, H, W)`` sets the background to 0.
    """
    check_shape(normals, "normals", ("B", 3, "H", "W"))
    sign = normals.new_tensor([1.0, -1.0, -1.0])[None, :, None, None]
    return (0.5 + 0.5 * sign * normals) * mask


def depth_to_gray(depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Depth ``(B, 1, H, W)`` to a grey image: nearest covered pixel 1.0, farthest 0.2, background 0."""
    check_shape(depth, "depth", ("B", 1, "H", "W"))
    covered = mask > 0.5
    big = torch.finfo(depth.dtype).max
    near = torch.where(covered, depth, torch.full_like(depth, big)).amin(dim=(1, 2, 3), keepdim=True)
    far = torch.where(covered, depth, torch.full_like(depth, -big)).amax(dim=(1, 2, 3), keepdim=True)
    span = (far - near).clamp_min(1e-12)
    gray = 1.0 - 0.8 * (depth - near) / span
    return torch.where(covered, gray, torch.zeros_like(gray))


def composite(
    foreground: torch.Tensor, mask: torch.Tensor, background: torch.Tensor, opacity: float = 1.0
) -> torch.Tensor:
    """Lay a render over a photo: ``opacity * mask * fg + (1 - opacity * mask) * bg``.

    Args:
        foreground: ``(B, 3, H, W)`` render.
        mask: ``(B, 1, H, W)`` coverage in [0, 1].
        background: ``(B, 3, H, W)`` photo, RGB in [0, 1].
        opacity: in [0, 1].

    Returns:
        ``(B, 3, H, W)``; differentiable.
    """
    sizes: dict[str, int] = {}
    check_shape(foreground, "foreground", ("B", 3, "H", "W"), sizes)
    check_shape(mask, "mask", ("B", 1, "H", "W"), sizes)
    check_shape(background, "background", ("B", 3, "H", "W"), sizes)
    check_floating(background, "background")
    if isinstance(opacity, bool) or not isinstance(opacity, (int, float)) or not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity: expected a number in [0, 1], got {opacity!r}")
    alpha = opacity * mask.to(background.dtype)
    return alpha * foreground.to(background.dtype) + (1.0 - alpha) * background


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` float images in [0, 1] to ``(B, H, W, C)`` uint8 (clamped, rounded) for files."""
    check_shape(images, "images", (None, None, None, None))
    check_floating(images, "images")
    arr = images.detach().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).cpu().numpy()
