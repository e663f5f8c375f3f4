"""Per-vertex and per-face visibility from screen-space geometry: back-face test and z-buffer test.

The back-face test needs no camera. With homogeneous corners ``q = (u z, v z, z) = K X`` of a pinhole camera,
``det(q_0, q_1, q_2) = fx fy det(X_0, X_1, X_2) = fx fy X_0 . ((X_1 - X_0) x (X_2 - X_0))``: the dot product of
a corner's camera-space position with the triangle's (area-weighted) outward normal. It is negative exactly
when the triangle faces the camera centre (faces counter-clockwise seen from outside, ``docs/conventions.md``).
Summed over the triangles around a vertex it is ``fx fy X_v . N_v`` with ``N_v`` the area-weighted vertex
normal, so a vertex faces the camera when that sum is negative: the back-face test of paper 004 (Tewari et
al. 2018, section 5, "backface culling"), exact for any pinhole camera. For affine screen coordinates
(``perspective_correct=False``) the view direction is the z axis and the 2D signed area decides.
"""

from __future__ import annotations

import math

import torch

from facerecon.core.check import (
    check_mesh,
    describe,
)
from facerecon.render.fragments import Fragments

__all__ = ["face_orientation", "front_facing_faces", "front_facing_vertices", "vertex_visibility"]


def _check(screen_vertices: torch.Tensor, faces: torch.Tensor, sizes: dict[str, int]) -> None:
    check_mesh(screen_vertices, faces, sizes)


def _orientation(screen_vertices: torch.Tensor, faces: torch.Tensor, perspective_correct: bool) -> torch.Tensor:
    sv = screen_vertices
    z = sv[..., 2:3]
    q = torch.cat([sv[..., :2] * z, z], -1) if perspective_correct else torch.cat([sv[..., :2], torch.ones_like(z)], -1)
    idx = faces.to(device=sv.device, dtype=torch.int64)
    q0, q1, q2 = q[:, idx[:, 0]], q[:, idx[:, 1]], q[:, idx[:, 2]]
    return (q0 * torch.linalg.cross(q1, q2, dim=-1)).sum(-1)


def face_orientation(
    screen_vertices: torch.Tensor, faces: torch.Tensor, *, perspective_correct: bool = True
) -> torch.Tensor:
    """``det(q_0, q_1, q_2)`` per triangle: negative for triangles that face the camera.

    Args:
        screen_vertices: ``(B, V, 3)`` pixel coordinates and depth ``(u, v, z)``.
        faces: ``(F, 3)`` int64, counter-clockwise seen from outside.
        perspective_correct: False for affine screen coordinates (then twice the signed screen area).

    Returns:
        ``(B, F)`` ``fx fy X_0 . ((X_1 - X_0) x (X_2 - X_0))`` (px^2 mm^3 for pixels and mm); differentiable
        w.r.t. ``screen_vertices``.
    """
    sizes: dict[str, int] = {}
    _check(screen_vertices, faces, sizes)
    return _orientation(screen_vertices, faces, perspective_correct)


def front_facing_faces(
    screen_vertices: torch.Tensor, faces: torch.Tensor, *, perspective_correct: bool = True
) -> torch.Tensor:
    """``(B, F)`` bool: triangles whose outward side faces the camera (see the module docstring)."""
    return face_orientation(screen_vertices, faces, perspective_correct=perspective_correct) < 0


def front_facing_vertices(
    screen_vertices: torch.Tensor, faces: torch.Tensor, *, perspective_correct: bool = True
) -> torch.Tensor:
    """``(B, V)`` bool: vertices whose area-weighted normal faces the camera (``X_v . N_v < 0``).

    Vertices used by no triangle are False.
    """
    sizes: dict[str, int] = {}
    _check(screen_vertices, faces, sizes)
    det = _orientation(screen_vertices, faces, perspective_correct)  # (B, F)
    idx = faces.to(device=screen_vertices.device, dtype=torch.int64)
    total = torch.zeros(sizes["B"], sizes["V"], dtype=det.dtype, device=det.device)
    for corner in range(3):
        total = total.index_add(1, idx[:, corner], det)
    return total < 0


def vertex_visibility(
    screen_vertices: torch.Tensor,
    faces: torch.Tensor,
    fragments: Fragments,
    *,
    depth_tolerance: float = 2.0,
    backface: bool = True,
    perspective_correct: bool = True,
) -> torch.Tensor:
    """Which vertices are seen in the image: inside it, not hidden by nearer surface, facing the camera.

    A vertex is visible when (1) it projects inside the image (``-0.5 <= u <= W - 0.5``, same for v), (2) at
    one of the up to 4 pixels around ``(u, v)`` its depth is at most the rendered depth plus
    ``depth_tolerance`` or the pixel is background (nothing in front of it), and (3) with ``backface``, it
    faces the camera (:func:`front_facing_vertices`).

    Args:
        screen_vertices: ``(B, V, 3)`` pixel coordinates and depth ``(u, v, z)``, mm.
        faces: ``(F, 3)`` int64, counter-clockwise seen from outside (those rasterized into ``fragments``).
        fragments: :class:`Fragments` of the same mesh (its ``depth`` is the z-buffer).
        depth_tolerance: how far (mm, the units of ``z``) behind the z-buffer a vertex may lie and still count
            as visible; absorbs the difference between a vertex and the surface at its pixel centre.
        backface: also require the vertex to face the camera.
        perspective_correct: as given to the rasterizer.

    Returns:
        ``(B, V)`` bool.

    Raises:
        TypeError / ValueError: bad inputs (see :func:`~facerecon.render.rasterize.rasterize`), a negative or
        non-finite tolerance, or fragments of another batch size.
    """
    sizes: dict[str, int] = {}
    _check(screen_vertices, faces, sizes)
    if not isinstance(fragments, Fragments):
        raise TypeError(f"fragments: expected Fragments (from rasterize), got {describe(fragments)}")
    if fragments.batch_size != sizes["B"]:
        raise ValueError(f"fragments: expected batch size {sizes['B']} (that of screen_vertices), got {fragments.batch_size}")
    if isinstance(depth_tolerance, bool) or not isinstance(depth_tolerance, (int, float)):
        raise TypeError(f"depth_tolerance: expected a number, got {describe(depth_tolerance)}")
    if not math.isfinite(depth_tolerance) or depth_tolerance < 0:
        raise ValueError(f"depth_tolerance: expected a finite non-negative number, got {depth_tolerance!r}")
    height, width = fragments.image_size
    sv = screen_vertices.detach()
    u, v, z = sv[..., 0], sv[..., 1], sv[..., 2]
    inside = (u >= -0.5) & (u <= width - 0.5) & (v >= -0.5) & (v <= height - 0.5)
    depth = fragments.depth.detach().reshape(sizes["B"], -1).to(sv.dtype)
    mask = fragments.mask.reshape(sizes["B"], -1)
    # The z-buffer test over the (up to) 4 pixels around the vertex: it is seen if any of them shows
    # background or surface no nearer than z - tolerance (a single pixel fails at silhouettes, where the
    # surface at the pixel centre can be much nearer than the vertex half a pixel away).
    unoccluded = torch.zeros_like(inside)
    for col in (torch.floor(u), torch.floor(u) + 1):
        for row in (torch.floor(v), torch.floor(v) + 1):
            ok = (col >= 0) & (col <= width - 1) & (row >= 0) & (row <= height - 1)
            flat = (row.clamp(0, height - 1) * width + col.clamp(0, width - 1)).to(torch.int64)
            seen = ~mask.gather(1, flat) | (z <= depth.gather(1, flat) + depth_tolerance)
            unoccluded = unoccluded | (ok & seen)
    visible = inside & unoccluded
    if perspective_correct:
        visible = visible & (sv[..., 2] > 0)
    if backface:
        visible = visible & front_facing_vertices(screen_vertices, faces, perspective_correct=perspective_correct)
    return visible
