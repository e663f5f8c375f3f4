"""UV space: rasterize a mesh in its UV layout, position maps, texture unwrapping from a photo.

Texel convention (``docs/conventions.md``): in a UV image of ``S x S`` texels, row 0 is the top (v = 1) and
texel ``(row, col)`` has its centre at ``u = (col + 0.5) / S``, ``v = 1 - (row + 0.5) / S``. The UV layout is
mapped to texel coordinates ``x = u S - 0.5``, ``y = (1 - v) S - 0.5`` (so texel centres are at integers, as
pixel centres are) with constant depth, and rasterized by the same rasterizer in affine mode: the UV fragments
give, per texel, the triangle and the barycentrics of the texel centre in it, which are also the barycentrics
of the 3D surface point (the map from a UV triangle to its 3D triangle is affine).

* :func:`position_map`: per texel the 3D position (paper 002, "Face Reconstruction with Specific Weight
  Mask": a ``256 x 256 x 3`` image of positions).
* :func:`unwrap_texture`: per texel the photo's colour where the surface point is seen, with a weight
  ``max(0, cos(view angle))`` (paper 003's texture unwrapping, before inpainting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from facerecon.core.check import (
    check_finite,
    check_mesh,
    check_floating,
    check_index_range,
    check_integer,
    check_shape,
    describe,
)
from facerecon.render.fragments import Fragments
from facerecon.render.interpolate import interpolate
from facerecon.render.rasterize import rasterize
from facerecon.render.sample import inside_image, sample_image

__all__ = ["uv_to_texel", "rasterize_uv", "position_map", "UnwrappedTexture", "unwrap_texture"]


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size: expected a positive int (texels per side), got {describe(size)}")
    if size < 1:
        raise ValueError(f"size: expected a positive int (texels per side), got {size}")
    return size


def uv_to_texel(uvs: torch.Tensor, size: int) -> torch.Tensor:
    """UVs ``(..., 2)`` in [0, 1] (v up) to texel coordinates ``(x, y) = (u S - 0.5, (1 - v) S - 0.5)``."""
    _check_size(size)
    u, v = uvs[..., 0], uvs[..., 1]
    return torch.stack([u * size - 0.5, (1.0 - v) * size - 0.5], dim=-1)


def _expand(fragments: Fragments, batch: int) -> Fragments:
    """Fragments of batch size 1 repeated (as views) for ``batch`` images."""
    if fragments.batch_size == batch:
        return fragments
    if fragments.batch_size != 1:
        raise ValueError(f"uv_fragments: expected batch size 1 or {batch}, got {fragments.batch_size}")
    return Fragments(
        face_index=fragments.face_index.expand(batch, -1, -1),
        bary=fragments.bary.expand(batch, -1, -1, -1),
        depth=fragments.depth.expand(batch, -1, -1),
        mask=fragments.mask.expand(batch, -1, -1),
    )


def rasterize_uv(uvs: torch.Tensor, uv_faces: torch.Tensor, size: int) -> Fragments:
    """Rasterize a UV layout into an ``S x S`` texel grid.

    Args:
        uvs: ``(T, 2)`` floating texture coordinates in [0, 1], v up.
        uv_faces: ``(F, 3)`` int64 indices into ``uvs`` per triangle corner (e.g. the model's
            ``uv_triangles``); triangle ``f`` of the UV layout is triangle ``f`` of the mesh.
        size: ``S``, texels per side.

    Returns:
        :class:`Fragments` of batch size 1 and image size ``(S, S)``: ``face_index`` is the mesh triangle
        covering each texel centre (-1 outside the layout), ``bary`` its barycentrics (also those of the 3D
        surface point), ``depth`` 1 on covered texels. Where UV islands overlap, the lower face index wins.

    Raises:
        TypeError / ValueError: wrong shapes or dtypes, NaN/inf UVs, indices out of range, a bad size.
    """
    _check_size(size)
    sizes: dict[str, int] = {}
    check_mesh(uvs, uv_faces, sizes, vertices_name="uvs", vertices_spec=("T", 2), faces_name="uv_faces")
    texel = uv_to_texel(uvs.detach(), size)
    screen = torch.cat([texel, torch.ones_like(texel[:, :1])], dim=-1)[None]  # (1, T, 3), depth 1
    return rasterize(screen, uv_faces, (size, size), perspective_correct=False)


def _check_vertices(value: torch.Tensor, name: str, sizes: dict[str, int]) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (B, V, 3), got {describe(value)}")
    check_shape(value, name, ("B", "V", 3), sizes)
    check_floating(value, name)
    check_finite(value, name)


def _check_uv_fragments(uv_fragments: Fragments) -> None:
    if not isinstance(uv_fragments, Fragments):
        raise TypeError(f"uv_fragments: expected Fragments (from rasterize_uv), got {describe(uv_fragments)}")


def position_map(vertices: torch.Tensor, faces: torch.Tensor, uv_fragments: Fragments) -> torch.Tensor:
    """The UV position map: per texel the 3D position of its surface point (paper 002).

    Args:
        vertices: ``(B, V, 3)`` positions (model or camera space, mm).
        faces: ``(F, 3)`` int64 mesh triangles, row ``f`` matching row ``f`` of the ``uv_faces`` that
            ``uv_fragments`` was rasterized from.
        uv_fragments: from :func:`rasterize_uv` (batch size 1, shared, or ``B``).

    Returns:
        ``(B, 3, S, S)`` positions, 0 where no triangle covers the texel (``uv_fragments.mask``);
        differentiable w.r.t. ``vertices``.
    """
    sizes: dict[str, int] = {}
    _check_vertices(vertices, "vertices", sizes)
    _check_uv_fragments(uv_fragments)
    frags = _expand(uv_fragments, sizes["B"])
    return interpolate(vertices, faces, frags).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class UnwrappedTexture:
    """A photo unwrapped into UV space.

    Attributes:
        texture: ``(B, 3, S, S)`` the photo's colour at each texel's surface point (bilinear), 0 where not
            visible.
        weight: ``(B, 1, S, S)`` ``max(0, cos(view angle))`` where visible, else 0: how reliable the colour is
            (1 for surface facing the camera head-on, towards 0 at grazing angles).
        visible: ``(B, 1, S, S)`` bool, the texel's surface point is in the layout, inside the photo, not hidden
            by nearer surface (z-buffer test) and facing the camera.
        screen: ``(B, 2, S, S)`` pixel coordinates ``(u, v)`` of each texel's surface point in the photo.
    """

    texture: torch.Tensor
    weight: torch.Tensor
    visible: torch.Tensor
    screen: torch.Tensor


def unwrap_texture(
    images: torch.Tensor,
    screen_vertices: torch.Tensor,
    camera_vertices: torch.Tensor,
    faces: torch.Tensor,
    uv_fragments: Fragments,
    *,
    normals: torch.Tensor | None = None,
    fragments: Fragments | None = None,
    depth_tolerance: float = 2.0,
) -> UnwrappedTexture:
    """Unwrap photos into UV space with per-texel visibility and a view-angle weight.

    For each texel: its 3D surface point ``X`` (from the UV barycentrics), its pixel ``(u, v)`` in the photo
    (interpolated in homogeneous coordinates, i.e. the exact projection of ``X``), a bilinear sample of the
    photo there; valid where ``X`` is inside the photo, within ``depth_tolerance`` of the rendered depth at
    its pixel (or the pixel is background) and its normal faces the camera; weight ``max(0, -n . X / |X|)``.

    Args:
        images: ``(B, 3, H, W)`` photos, RGB in [0, 1].
        screen_vertices: ``(B, V, 3)`` pixel coordinates and depth ``(u, v, z)`` of the mesh in the photos
            (a pinhole projection of ``camera_vertices``).
        camera_vertices: ``(B, V, 3)`` camera-space positions, mm (OpenCV: x right, y down, z forward).
        faces: ``(F, 3)`` int64 mesh triangles (counter-clockwise seen from outside), row ``f`` matching row
            ``f`` of the ``uv_faces`` rasterized into ``uv_fragments``.
        uv_fragments: from :func:`rasterize_uv`.
        normals: ``(B, V, 3)`` camera-space vertex normals; default the area-weighted normals of
            ``camera_vertices`` (``facerecon.geometry.mesh_ops.vertex_normals``).
        fragments: the rasterization of ``screen_vertices`` at the photos' size (computed when None).
        depth_tolerance: z-buffer tolerance, mm.

    Returns:
        :class:`UnwrappedTexture`; ``texture`` is differentiable w.r.t. ``images`` and the vertices.

    Raises:
        TypeError / ValueError: wrong shapes, dtypes or batch sizes, NaN/inf, a negative tolerance.
    """
    sizes: dict[str, int] = {}
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images: expected a tensor of shape (B, 3, H, W), got {describe(images)}")
    check_shape(images, "images", ("B", 3, "H", "W"), sizes)
    check_floating(images, "images")
    _check_vertices(screen_vertices, "screen_vertices", sizes)
    _check_vertices(camera_vertices, "camera_vertices", sizes)
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"faces: expected an int64 tensor of shape (F, 3), got {describe(faces)}")
    check_shape(faces, "faces", ("F", 3), sizes)
    check_integer(faces, "faces")
    check_index_range(faces, "faces", sizes["V"])
    _check_uv_fragments(uv_fragments)
    if isinstance(depth_tolerance, bool) or not isinstance(depth_tolerance, (int, float)):
        raise TypeError(f"depth_tolerance: expected a number, got {describe(depth_tolerance)}")
    if not math.isfinite(depth_tolerance) or depth_tolerance < 0:
        raise ValueError(f"depth_tolerance: expected a finite non-negative number, got {depth_tolerance!r}")
    batch, height, width = sizes["B"], sizes["H"], sizes["W"]
    if normals is None:
        from facerecon.geometry.mesh_ops import vertex_normals

        normals = vertex_normals(camera_vertices, faces)
    else:
        _check_vertices(normals, "normals", sizes)
    if fragments is None:
        fragments = rasterize(screen_vertices.detach(), faces, (height, width))
    elif not isinstance(fragments, Fragments):
        raise TypeError(f"fragments: expected Fragments (from rasterize) or None, got {describe(fragments)}")
    elif fragments.batch_size != batch or fragments.image_size != (height, width):
        raise ValueError(
            f"fragments: expected batch size {batch} and image size {(height, width)}, "
            f"got {fragments.batch_size} and {fragments.image_size}"
        )

    uvf = _expand(uv_fragments, batch)
    size_h, size_w = uvf.image_size
    z = screen_vertices[..., 2:3]
    homog = torch.cat([screen_vertices[..., :2] * z, z], dim=-1)  # (B, V, 3) = K X: linear in X
    # Per texel: homogeneous pixel, camera-space point and normal, (B, S, S, 3) each.
    h = interpolate(homog, faces, uvf)
    point = interpolate(camera_vertices, faces, uvf)
    nrm = torch.nn.functional.normalize(interpolate(normals, faces, uvf), dim=-1, eps=1e-12)
    covered = uvf.mask
    depth = h[..., 2]
    safe_depth = torch.where(covered & (depth > 0), depth, torch.ones_like(depth))
    uv_px = h[..., :2] / safe_depth[..., None]  # (B, S, S, 2)
    points = uv_px.reshape(batch, -1, 2)

    texture = sample_image(images, points.to(images.dtype)).reshape(batch, size_h, size_w, 3)
    inside = inside_image(uv_px, (height, width)) & covered & (depth > 0)
    # Z-buffer test against the 2 x 2 pixels around the texel's projection: it is unoccluded when one of them
    # does not hide it. One nearest pixel is up to 0.7 px away, where a surface at a grazing angle is several mm
    # nearer or farther (a face 150 px wide: ~4 mm per px at 70 degrees): the test then flickered from texel to
    # texel in stripes. Among the 4 pixels around the point, a smooth surface has one at least as deep as the point.
    # The deepest of each 2 x 2 block of pixels (background: infinitely deep), looked up at the block's corner.
    zbuf = torch.where(fragments.mask, fragments.depth.detach(), torch.full_like(fragments.depth, math.inf)).to(depth.dtype)
    deepest = torch.nn.functional.max_pool2d(
        torch.nn.functional.pad(zbuf[:, None], (0, 1, 0, 1), mode="replicate"), kernel_size=2, stride=1
    )[:, 0]  # (B, H, W)
    col0 = uv_px[..., 0].detach().floor().clamp(0, width - 1)
    row0 = uv_px[..., 1].detach().floor().clamp(0, height - 1)
    flat = (row0 * width + col0).to(torch.int64).reshape(batch, -1)
    unoccluded = depth.detach() <= deepest.reshape(batch, -1).gather(1, flat).reshape(depth.shape) + depth_tolerance
    view = -torch.nn.functional.normalize(point, dim=-1, eps=1e-12)  # towards the camera centre
    cosine = (nrm * view).sum(-1)
    visible = inside & unoccluded & (cosine.detach() > 0)
    weight = torch.where(visible, cosine.clamp_min(0.0), torch.zeros_like(cosine))
    texture = texture * visible[..., None].to(texture.dtype)
    return UnwrappedTexture(
        texture=texture.permute(0, 3, 1, 2),
        weight=weight[:, None],
        visible=visible[:, None],
        screen=uv_px.permute(0, 3, 1, 2),
    )
