"""De-lighting in UV space: per-texel normals, the fitted SH shading at each texel, albedo = photo / shading.

The photo's colour at a surface point is ``albedo * S(n)`` with ``S`` the SH shading of the fitted light
(:mod:`facerecon.render.sh`, normals in camera space). Dividing the unwrapped photo by ``S`` at each texel's
normal gives a de-lit albedo texture; multiplying an albedo texture by ``S`` re-lights it as in the photo.

Example:
    >>> normals = texel_normals(camera_vertices, triangles, uv_fragments)   # doctest: +SKIP
    >>> shading = texel_shading(normals, sh)                                  # doctest: +SKIP
    >>> albedo = delight(photo_texture, shading)                              # doctest: +SKIP
"""

from __future__ import annotations

import math

import torch

from facerecon.core.check import check_finite, check_floating, check_shape, describe
from facerecon.render.fragments import Fragments
from facerecon.render.interpolate import interpolate
from facerecon.render.sh import irradiance

__all__ = ["MIN_SHADING", "delight", "relight", "texel_normals", "texel_shading"]

MIN_SHADING = 0.05
"""Shading below this is clamped before dividing: texels in deep shadow carry no usable albedo."""


def _check_tensor(value: object, name: str, spec: tuple, sizes: dict[str, int]) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape {spec}, got {describe(value)}")
    check_shape(value, name, spec, sizes)
    check_floating(value, name)
    check_finite(value, name)


def texel_normals(camera_vertices: torch.Tensor, triangles: torch.Tensor, uv_fragments: Fragments) -> torch.Tensor:
    """Per-texel unit normals, interpolated from the area-weighted vertex normals.

    Args:
        camera_vertices: ``(B, V, 3)`` positions (camera space, mm; any space works, the normals follow it).
        triangles: ``(F, 3)`` int64 triangles, row ``f`` matching UV triangle ``f`` of ``uv_fragments``.
        uv_fragments: from :func:`facerecon.render.uv.rasterize_uv` (batch size 1 or ``B``).

    Returns:
        ``(B, 3, S, S)`` unit normals, 0 on texels outside the layout.
    """
    from facerecon.geometry.mesh_ops import vertex_normals

    _check_tensor(camera_vertices, "camera_vertices", ("B", "V", 3), {})
    if not isinstance(uv_fragments, Fragments):
        raise TypeError(f"uv_fragments: expected Fragments (from rasterize_uv), got {describe(uv_fragments)}")
    batch = camera_vertices.shape[0]
    normals = vertex_normals(camera_vertices, triangles)
    frags = uv_fragments
    if frags.batch_size != batch:
        if frags.batch_size != 1:
            raise ValueError(f"uv_fragments: expected batch size 1 or {batch}, got {frags.batch_size}")
        frags = Fragments(
            frags.face_index.expand(batch, -1, -1), frags.bary.expand(batch, -1, -1, -1),
            frags.depth.expand(batch, -1, -1), frags.mask.expand(batch, -1, -1),
        )  # fmt: skip
    texel = interpolate(normals, triangles, frags)  # (B, S, S, 3)
    texel = torch.nn.functional.normalize(texel, dim=-1, eps=1e-12)
    return (texel * frags.mask[..., None].to(texel.dtype)).permute(0, 3, 1, 2)


def texel_shading(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """The SH shading ``S(n)`` at each texel.

    Args:
        normals: ``(B, 3, S, S)`` camera-space unit normals (0 where there is no surface).
        sh: ``(B, 9, 3)`` radiance SH coefficients (:mod:`facerecon.render.sh`).

    Returns:
        ``(B, 3, S, S)`` RGB shading; differentiable w.r.t. both inputs.
    """
    sizes: dict[str, int] = {}
    _check_tensor(normals, "normals", ("B", 3, "S", "S"), sizes)
    _check_tensor(sh, "sh", ("B", 9, 3), sizes)
    batch, _, size, _ = normals.shape
    flat = normals.permute(0, 2, 3, 1).reshape(batch, -1, 3)
    shading = irradiance(flat, sh.to(normals.dtype))  # (B, N, 3)
    return shading.reshape(batch, size, size, 3).permute(0, 3, 1, 2)


def delight(texture: torch.Tensor, shading: torch.Tensor, *, min_shading: float = MIN_SHADING) -> torch.Tensor:
    """Albedo = texture / shading, with the shading clamped below at ``min_shading`` and the result to [0, 1].

    Args:
        texture: ``(B, 3, S, S)`` RGB in [0, 1] (an unwrapped photo).
        shading: ``(B, 3, S, S)`` from :func:`texel_shading`.
        min_shading: positive floor of the shading.

    Returns:
        ``(B, 3, S, S)`` albedo in [0, 1].
    """
    sizes: dict[str, int] = {}
    _check_tensor(texture, "texture", ("B", 3, "S", "S"), sizes)
    _check_tensor(shading, "shading", ("B", 3, "S", "S"), sizes)
    if isinstance(min_shading, bool) or not isinstance(min_shading, (int, float)) or not math.isfinite(min_shading) or min_shading <= 0:
        raise ValueError(f"min_shading: expected a positive number, got {min_shading!r}")
    return (texture / shading.clamp_min(min_shading)).clamp(0.0, 1.0)


def relight(albedo: torch.Tensor, shading: torch.Tensor) -> torch.Tensor:
    """Colour = albedo * shading, clamped to [0, 1]; inputs ``(B, 3, S, S)`` as in :func:`delight`."""
    sizes: dict[str, int] = {}
    _check_tensor(albedo, "albedo", ("B", 3, "S", "S"), sizes)
    _check_tensor(shading, "shading", ("B", 3, "S", "S"), sizes)
    return (albedo * shading.clamp_min(0.0)).clamp(0.0, 1.0)
