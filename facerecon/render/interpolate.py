"""Differentiable interpolation of vertex attributes at the fragments (the nvdiffrast split).

The rasterizer decides *which* triangle covers each pixel (piecewise constant, no gradient). Everything
continuous is recomputed here with plain torch ops, so gradients flow to the attributes (colour, normal, UV,
position) and to the screen-space vertices through the barycentrics:

* :func:`barycentrics` recomputes, at each covered pixel centre ``p = (x, y, 1)``, the perspective-correct
  barycentrics ``b_i = e_i / sum(e)`` with ``e_i = (q_j x q_k) . p`` and ``q = (u z, v z, z)`` (the same
  formula as the rasterizer; see :mod:`facerecon.render.rasterize`), and the depth ``sum_i b_i z_i``.
* :func:`interpolate` returns ``sum_i b_i a_i`` per pixel for per-vertex (or per-corner) attributes ``a``.

Gradients with respect to the vertex positions are those of the interior of the triangles (the pixel's
triangle is held fixed); silhouette gradients (antialiasing) are not modelled.
"""

from __future__ import annotations

import math

import torch

from facerecon.core.check import (
    check_finite,
    check_floating,
    check_index_range,
    check_integer,
    check_mesh,
    check_shape,
    describe,
)
from facerecon.render.fragments import Fragments

__all__ = ["barycentrics", "covered_pixels", "interpolate", "interpolate_covered"]


def _check_fragments(fragments: Fragments) -> None:
    if not isinstance(fragments, Fragments):
        raise TypeError(f"fragments: expected Fragments (from rasterize), got {describe(fragments)}")


def covered_pixels(fragments: Fragments) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat indices and coordinates of the covered pixels.

    Returns:
        ``(flat, batch, y, x)``: ``(N,)`` int64 each; ``flat`` indexes the ``B * H * W`` pixels of the batch in
        row-major order, ``batch``, ``y`` (row) and ``x`` (column) locate them.
    """
    _check_fragments(fragments)
    _, height, width = fragments.face_index.shape
    flat, batch, _, _ = fragments.covered
    rest = flat - batch * height * width
    y = torch.div(rest, width, rounding_mode="floor")
    x = rest - y * width
    return flat, batch, y, x


def _scatter(values: torch.Tensor, flat: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Place ``(N, C)`` values at ``flat`` pixel indices of a zero ``(B*H*W, C)`` image, reshaped to ``shape``."""
    out = values.new_zeros((math.prod(shape[:-1]), values.shape[-1]))
    return out.index_put((flat,), values).reshape(shape)


def barycentrics(
    screen_vertices: torch.Tensor,
    faces: torch.Tensor,
    fragments: Fragments,
    *,
    perspective_correct: bool = True,
    return_depth: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Barycentrics of the pixel centres in their covering triangles, differentiable w.r.t. the vertices.

    Use this to get position gradients from fragments that were rasterized without them (e.g. rasterize once
    under ``torch.no_grad()``, then recompute with the current vertices at every optimisation step).

    Args:
        screen_vertices: ``(B, V, 3)`` floating ``(u, v, z)`` pixel coordinates and depth, as given to
            :func:`~facerecon.render.rasterize.rasterize`.
        faces: ``(F, 3)`` int64 faces the fragments were rasterized with.
        fragments: :class:`Fragments` of the same batch size.
        perspective_correct: as in :func:`~facerecon.render.rasterize.rasterize`.
        return_depth: also return the depth ``sum_i b_i z_i``.

    Returns:
        ``(B, H, W, 3)`` barycentrics (0 at background) in the dtype of ``screen_vertices``; with
        ``return_depth`` a pair ``(bary, depth (B, H, W))``.

    Raises:
        TypeError: wrong kinds or dtypes.
        ValueError: wrong shapes, a batch size that differs from the fragments', NaN/inf vertices, faces out
            of range.
    """
    _check_fragments(fragments)
    sizes: dict[str, int] = {"B": fragments.batch_size}
    check_mesh(screen_vertices, faces, sizes)
    batch, height, width = fragments.face_index.shape
    dtype, device = screen_vertices.dtype, screen_vertices.device

    flat, b, y, x = covered_pixels(fragments)
    if fragments.covered[3] >= sizes["F"]:
        raise ValueError(f"fragments: face indices exceed the {sizes['F']} faces given; rasterized with other faces?")
    corners = faces.to(torch.int64)[fragments.covered[2]]  # (N, 3)
    sv = screen_vertices[b[:, None], corners]  # (N, 3 corners, 3)
    z = sv[..., 2]
    if perspective_correct:
        q = torch.cat([sv[..., :2] * z[..., None], z[..., None]], dim=-1)
    else:
        q = torch.cat([sv[..., :2], torch.ones_like(z)[..., None]], dim=-1)
    p = torch.stack([x.to(dtype), y.to(dtype), torch.ones_like(x, dtype=dtype)], dim=-1).to(device)  # (N, 3)
    q0, q1, q2 = q.unbind(1)
    e = torch.stack(
        [
            (torch.linalg.cross(q1, q2) * p).sum(-1),
            (torch.linalg.cross(q2, q0) * p).sum(-1),
            (torch.linalg.cross(q0, q1) * p).sum(-1),
        ],
        dim=-1,
    )  # (N, 3)
    bary_n = e / e.sum(-1, keepdim=True)
    bary = _scatter(bary_n, flat, (batch, height, width, 3))
    if not return_depth:
        return bary
    depth_n = (bary_n * z).sum(-1, keepdim=True)
    return bary, _scatter(depth_n, flat, (batch, height, width, 1))[..., 0]


def _at_covered(attributes: torch.Tensor, faces: torch.Tensor, fragments: Fragments, bary: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` attributes interpolated at the covered pixels (row-major over the batch); inputs already checked."""
    flat, b, covering, max_face = fragments.covered
    if max_face >= faces.shape[0]:
        raise ValueError(f"fragments: face indices exceed the {faces.shape[0]} faces given; rasterized with other faces?")
    corners = faces.to(torch.int64)[covering].T  # (3, N)
    if attributes.dim() == 2:
        table = attributes
    else:  # one table of the batch's B * A rows
        table = attributes.reshape(-1, attributes.shape[-1])
        corners = corners + b * attributes.shape[1]
    weights = bary.reshape(-1, 3)[flat].T[..., None]  # (3, N, 1)
    # Corner by corner (index_select + addcmul): measured 46 ms against einsum("nk,nkc->nc") over an (N, 3, C)
    # gather 139 ms, for N = 700k covered texels, C = 7, one thread.
    out = table.index_select(0, corners[0]) * weights[0]
    out = out.addcmul(table.index_select(0, corners[1]), weights[1])
    return out.addcmul(table.index_select(0, corners[2]), weights[2])


def _checked(attributes: torch.Tensor, faces: torch.Tensor, fragments: Fragments, bary: torch.Tensor | None) -> torch.Tensor:
    """Check :func:`interpolate`'s arguments; the barycentrics to use, in the attributes' dtype."""
    _check_fragments(fragments)
    batch, height, width = fragments.face_index.shape
    if not isinstance(attributes, torch.Tensor):
        raise TypeError(f"attributes: expected a tensor of shape (B, A, C) or (A, C), got {describe(attributes)}")
    sizes: dict[str, int] = {"B": batch}
    if attributes.dim() == 2:
        check_shape(attributes, "attributes", ("A", "C"), sizes)
    else:
        check_shape(attributes, "attributes", ("B", "A", "C"), sizes)
    check_floating(attributes, "attributes")
    check_finite(attributes, "attributes")
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"faces: expected an int64 tensor of shape (F, 3), got {describe(faces)}")
    check_shape(faces, "faces", ("F", 3), sizes)
    check_integer(faces, "faces")
    check_index_range(faces, "faces", sizes["A"])
    if bary is None:
        bary = fragments.bary
    else:
        check_shape(bary, "bary", (batch, height, width, 3))
        check_floating(bary, "bary")
    if bary.dtype != attributes.dtype:
        bary = bary.to(attributes.dtype)
    return bary


def interpolate_covered(
    attributes: torch.Tensor, faces: torch.Tensor, fragments: Fragments, bary: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`interpolate` at the covered pixels only: ``(N, C)``, in the order of ``image[fragments.mask]`` (row-major
    over the batch), without building the full image. Same arguments, checks and gradients."""
    bary = _checked(attributes, faces, fragments, bary)
    return _at_covered(attributes, faces, fragments, bary)


def interpolate(
    attributes: torch.Tensor,
    faces: torch.Tensor,
    fragments: Fragments,
    bary: torch.Tensor | None = None,
) -> torch.Tensor:
    """Interpolate per-vertex attributes at the pixel centres: ``sum_i b_i a_i`` over the covering triangle.

    Args:
        attributes: ``(B, A, C)`` or ``(A, C)`` (shared by the batch) floating attributes per vertex, or per
            corner index of ``faces`` (e.g. UVs with the model's ``uv_triangles``).
        faces: ``(F, 3)`` int64 indices into the attributes' ``A`` axis, one row per rasterized face (the
            rasterized faces themselves for per-vertex data).
        fragments: :class:`Fragments` from :func:`~facerecon.render.rasterize.rasterize`.
        bary: ``(B, H, W, 3)`` barycentrics to use instead of ``fragments.bary`` (e.g. from
            :func:`barycentrics`).

    Returns:
        ``(B, H, W, C)`` interpolated attributes, 0 at background; differentiable w.r.t. ``attributes`` and
        the barycentrics (hence the screen-space vertices when they are differentiable).

    Raises:
        TypeError: wrong kinds or dtypes.
        ValueError: wrong shapes, batch sizes or face counts that differ from the fragments', NaN/inf.

    Example:
        >>> colours = interpolate(vertex_colours, faces, rasterize(screen, faces, (256, 256)))  # doctest: +SKIP
    """
    bary = _checked(attributes, faces, fragments, bary)
    out = _at_covered(attributes, faces, fragments, bary)
    return _scatter(out, fragments.covered[0], (*fragments.face_index.shape, attributes.shape[-1]))
