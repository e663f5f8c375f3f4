"""The CPU triangle rasterizer: screen-space vertices and shared faces to per-pixel ``Fragments``.

How it works (one numba loop per image, bounding box + edge functions; no compile step at install):

* Each vertex ``(u, v, z)`` is lifted to homogeneous screen coordinates ``q = (u z, v z, z)`` (for a pinhole
  camera ``q = K X``, linear in the camera-space point ``X``; Olano & Greer 1997, "Triangle scan conversion
  using 2D homogeneous coordinates").
* For a pixel centre ``p = (x, y, 1)`` the three edge functions ``e_i(p) = (q_j x q_k) . p`` are affine in
  ``(x, y)``; the perspective-correct barycentrics are ``b_i = e_i / sum(e)`` and the depth of the surface
  point on the pixel's ray is ``z = det(q_0, q_1, q_2) / sum(e) = sum_i b_i z_i``. A pixel is covered when all
  ``b_i >= 0`` (its centre inside the triangle or on an edge: pixels on an edge shared by two triangles are
  covered by both and the depth test picks one, so a closed mesh has no cracks). The nearest covering
  triangle wins; exact ties go to the lower face index.
* Near plane: a triangle with a corner at ``z <= near`` is **dropped** (not clipped). Screen coordinates of
  points behind the camera carry no usable projection (``PerspectiveCamera.project_with_depth`` returns
  placeholders for them), so the part in front could not be recovered exactly; a face in front of a camera
  never needs it. No NaN can appear in the output.
* Zero-area triangles (``det = 0``: coincident or collinear corners on screen) cover nothing and are skipped.
* Both windings are drawn (no back-face culling; see :mod:`facerecon.render.visibility`).

With ``perspective_correct=False`` (orthographic cameras, UV layouts) the corners are lifted to ``(u, v, 1)``:
barycentrics and depth are then linear in screen space and there is no near plane.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from facerecon.core.check import (
    check_finite,
    check_floating,
    check_index_range,
    check_integer,
    check_shape,
    describe,
)
from facerecon.render._jit import njit_cached
from facerecon.render.fragments import Fragments

__all__ = ["rasterize", "rasterize_reference", "check_image_size", "DEFAULT_NEAR"]

DEFAULT_NEAR = 1e-3
"""Default near plane ``z`` (units of the vertices' depth): triangles with a corner at ``z <= near`` are dropped."""


@njit_cached(nogil=True)
def _raster_image(q, uvz, faces, height, width, near, perspective, face_out, key_out):  # pragma: no cover
    """Rasterize one image (numba).

    ``q``: (V, 3) float64 homogeneous corners (perspective ``(u z, v z, z)``, affine ``(u, v, 1)``); ``uvz``:
    (V, 3) screen vertices. Writes ``face_out`` (H, W) int64 and ``key_out`` (H, W) float64 (perspective:
    ``-1/z``; affine: ``z``; smaller is nearer).
    """
    n_faces = faces.shape[0]
    for f in range(n_faces):
        i0 = faces[f, 0]
        i1 = faces[f, 1]
        i2 = faces[f, 2]
        q0x = q[i0, 0]
        q0y = q[i0, 1]
        q0z = q[i0, 2]
        q1x = q[i1, 0]
        q1y = q[i1, 1]
        q1z = q[i1, 2]
        q2x = q[i2, 0]
        q2y = q[i2, 1]
        q2z = q[i2, 2]
        if perspective and (q0z <= near or q1z <= near or q2z <= near):
            continue  # a corner at or behind the near plane: the triangle is dropped
        # Edge functions e_i(x, y) = (q_j x q_k) . (x, y, 1) = a_i x + b_i y + c_i.
        a0 = q1y * q2z - q1z * q2y
        b0 = q1z * q2x - q1x * q2z
        c0 = q1x * q2y - q1y * q2x
        a1 = q2y * q0z - q2z * q0y
        b1 = q2z * q0x - q2x * q0z
        c1 = q2x * q0y - q2y * q0x
        a2 = q0y * q1z - q0z * q1y
        b2 = q0z * q1x - q0x * q1z
        c2 = q0x * q1y - q0y * q1x
        det = q0x * a0 + q0y * b0 + q0z * c0
        if det == 0.0 or not math.isfinite(det):
            continue
        if det < 0.0:
            a0, b0, c0, a1, b1, c1, a2, b2, c2 = -a0, -b0, -c0, -a1, -b1, -c1, -a2, -b2, -c2
            det = -det
        inv_det = 1.0 / det

        # Screen bounding box.
        u0 = uvz[i0, 0]
        u1 = uvz[i1, 0]
        u2 = uvz[i2, 0]
        v0 = uvz[i0, 1]
        v1 = uvz[i1, 1]
        v2 = uvz[i2, 1]
        xmin = min(u0, min(u1, u2))
        xmax = max(u0, max(u1, u2))
        ymin = min(v0, min(v1, v2))
        ymax = max(v0, max(v1, v2))
        if not (xmax >= 0.0 and ymax >= 0.0 and xmin <= width - 1.0 and ymin <= height - 1.0):
            continue  # also skips NaN boxes
        x0 = 0 if xmin <= 0.0 else int(math.ceil(xmin))
        x1 = width - 1 if xmax >= width - 1.0 else int(math.floor(xmax))
        y0 = 0 if ymin <= 0.0 else int(math.ceil(ymin))
        y1 = height - 1 if ymax >= height - 1.0 else int(math.floor(ymax))

        for y in range(y0, y1 + 1):
            r0 = b0 * y + c0
            r1 = b1 * y + c1
            r2 = b2 * y + c2
            for x in range(x0, x1 + 1):
                e0 = a0 * x + r0
                e1 = a1 * x + r1
                e2 = a2 * x + r2
                if e0 < 0.0 or e1 < 0.0 or e2 < 0.0:
                    continue
                s = e0 + e1 + e2
                if perspective:
                    key = -s * inv_det  # -1 / z
                else:
                    key = (e0 * uvz[i0, 2] + e1 * uvz[i1, 2] + e2 * uvz[i2, 2]) * inv_det  # s == det here
                if key < key_out[y, x]:
                    key_out[y, x] = key
                    face_out[y, x] = f


@njit_cached(nogil=True)
def _resolve(q, faces, perspective, face_img, key_img, bary_out, depth_out, mask_out):  # pragma: no cover
    """Barycentrics ``e_i / sum(e)``, depth and coverage at the pixel centres of one image (numba)."""
    height, width = face_img.shape
    for y in range(height):
        for x in range(width):
            f = face_img[y, x]
            if f < 0:
                continue
            mask_out[y, x] = True
            i0 = faces[f, 0]
            i1 = faces[f, 1]
            i2 = faces[f, 2]
            e0 = (
                (q[i1, 1] * q[i2, 2] - q[i1, 2] * q[i2, 1]) * x
                + (q[i1, 2] * q[i2, 0] - q[i1, 0] * q[i2, 2]) * y
                + (q[i1, 0] * q[i2, 1] - q[i1, 1] * q[i2, 0])
            )
            e1 = (
                (q[i2, 1] * q[i0, 2] - q[i2, 2] * q[i0, 1]) * x
                + (q[i2, 2] * q[i0, 0] - q[i2, 0] * q[i0, 2]) * y
                + (q[i2, 0] * q[i0, 1] - q[i2, 1] * q[i0, 0])
            )
            e2 = (
                (q[i0, 1] * q[i1, 2] - q[i0, 2] * q[i1, 1]) * x
                + (q[i0, 2] * q[i1, 0] - q[i0, 0] * q[i1, 2]) * y
                + (q[i0, 0] * q[i1, 1] - q[i0, 1] * q[i1, 0])
            )
            s = e0 + e1 + e2
            bary_out[y, x, 0] = e0 / s
            bary_out[y, x, 1] = e1 / s
            bary_out[y, x, 2] = e2 / s
            depth_out[y, x] = -1.0 / key_img[y, x] if perspective else key_img[y, x]
    # Background: depth 0 (the key image may be the depth buffer itself, holding +inf there).
    for y in range(height):
        for x in range(width):
            if face_img[y, x] < 0:
                depth_out[y, x] = 0.0


@njit_cached(nogil=True)
def _rasterize_batch(screen, faces, near, perspective, face_out, bary_out, depth_out, mask_out):  # pragma: no cover
    """Rasterize ``B`` images (numba): ``screen`` (B, V, 3) float64; outputs (B, H, W[, 3]) preallocated,
    ``face_out`` filled with -1, ``bary_out`` / ``depth_out`` with 0 and ``mask_out`` with False by the caller."""
    batch, n_verts, _ = screen.shape
    height = face_out.shape[1]
    width = face_out.shape[2]
    q = np.empty((n_verts, 3))
    for b in range(batch):
        # The z-buffer lives in the depth output (resolved to depth in place): one image-sized buffer less to
        # allocate and fault in per call, which is a large share of the time at 512 x 512.
        key = depth_out[b]
        for i in range(n_verts):
            z = screen[b, i, 2]
            if perspective:
                q[i, 0] = screen[b, i, 0] * z
                q[i, 1] = screen[b, i, 1] * z
                q[i, 2] = z
            else:
                q[i, 0] = screen[b, i, 0]
                q[i, 1] = screen[b, i, 1]
                q[i, 2] = 1.0
        key[:, :] = np.inf
        _raster_image(q, screen[b], faces, height, width, near, perspective, face_out[b], key)
        _resolve(q, faces, perspective, face_out[b], key, bary_out[b], depth_out[b], mask_out[b])


def _output_arrays(batch: int, height: int, width: int, float_type: type) -> tuple[np.ndarray, ...]:
    """Fresh, initialised outputs (face index -1, barycentrics / depth 0, mask False) carved from ONE buffer.

    One allocation of several MB gets transparent huge pages (NumPy advises them for large arrays), so the
    first touch costs a few page faults instead of ~1,500: measured 3.4 ms -> 0.1 ms at 512 x 512, which was
    most of the difference between the rasterizer's kernel time and its call time.
    """
    n = batch * height * width
    fsize = np.dtype(float_type).itemsize
    sizes = (8 * n, 3 * fsize * n, fsize * n, n)
    buffer = np.empty(sum(sizes), dtype=np.uint8)
    offsets = np.cumsum((0,) + sizes)
    face_index = buffer[offsets[0] : offsets[1]].view(np.int64).reshape(batch, height, width)
    bary = buffer[offsets[1] : offsets[2]].view(float_type).reshape(batch, height, width, 3)
    depth = buffer[offsets[2] : offsets[3]].view(float_type).reshape(batch, height, width)
    mask = buffer[offsets[3] : offsets[4]].view(np.bool_).reshape(batch, height, width)
    face_index.fill(-1)
    bary.fill(0.0)
    depth.fill(0.0)
    mask.fill(False)
    return face_index, bary, depth, mask


def check_image_size(image_size: Sequence[int], name: str = "image_size") -> tuple[int, int]:
    """Validate an ``(H, W)`` pair of positive ints and return it as a tuple."""
    if isinstance(image_size, (str, bytes)) or not isinstance(image_size, Sequence) or len(image_size) != 2:
        raise TypeError(f"{name}: expected a pair (H, W) of positive ints, got {describe(image_size)}")
    out = []
    for v in image_size:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: expected a pair (H, W) of positive ints, got an item of type {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name}: expected positive sizes, got {tuple(int(s) for s in image_size)}")
        out.append(int(v))
    return out[0], out[1]


def _check_inputs(screen_vertices: torch.Tensor, faces: torch.Tensor) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """Validate; return the sizes, the vertices as float64 and the faces as int64 NumPy arrays (CPU).

    The value checks (finite, index range) run on the NumPy copies: single-threaded and cheap, where torch's
    reductions would wake its thread pool for every call (costly on a busy 2-core machine).
    """
    sizes: dict[str, int] = {}
    if not isinstance(screen_vertices, torch.Tensor):
        raise TypeError(f"screen_vertices: expected a tensor of shape (B, V, 3), got {describe(screen_vertices)}")
    check_shape(screen_vertices, "screen_vertices", ("B", "V", 3), sizes)
    check_floating(screen_vertices, "screen_vertices")
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"faces: expected an int64 tensor of shape (F, 3), got {describe(faces)}")
    check_shape(faces, "faces", ("F", 3), sizes)
    check_integer(faces, "faces")
    sv = screen_vertices.detach().cpu()
    if sv.dtype not in (torch.float32, torch.float64):
        sv = sv.to(torch.float32)
    screen = np.ascontiguousarray(sv.numpy(), dtype=np.float64)
    face_np = np.ascontiguousarray(faces.detach().cpu().numpy(), dtype=np.int64)
    check_finite(screen, "screen_vertices")
    check_index_range(face_np, "faces", sizes["V"])
    return sizes, screen, face_np


def rasterize(
    screen_vertices: torch.Tensor,
    faces: torch.Tensor,
    image_size: Sequence[int],
    *,
    near: float = DEFAULT_NEAR,
    perspective_correct: bool = True,
) -> Fragments:
    """Rasterize a batch of meshes that share their triangles.

    Args:
        screen_vertices: ``(B, V, 3)`` floating ``(u, v, z)``: pixel coordinates (u right, v down, pixel
            centres at integers) and camera-space depth ``z`` (mm by convention; ``z > 0`` in front of the
            camera), e.g. from ``PerspectiveCamera.project_with_depth``. Must be finite.
        faces: ``(F, 3)`` int64 vertex indices shared by the batch. Both windings are drawn (no culling).
        image_size: ``(H, W)`` in pixels.
        near: the near plane: triangles with a corner at ``z <= near`` are not drawn (perspective mode only).
        perspective_correct: True for pinhole projections (barycentrics and depth interpolated with 1/z);
            False for affine screen coordinates (orthographic cameras, UV layouts).

    Returns:
        :class:`Fragments` with ``face_index (B, H, W)``, ``bary (B, H, W, 3)``, ``depth (B, H, W)`` and
        ``mask (B, H, W)``, on the device and in the dtype of ``screen_vertices``. When ``screen_vertices``
        requires gradients (and grad mode is on), ``bary`` and ``depth`` are recomputed differentiably from
        it (:func:`facerecon.render.interpolate.barycentrics`); ``face_index`` is piecewise constant.

    Raises:
        TypeError: non-tensor inputs, non-floating vertices, non-integer faces, a bad ``image_size``.
        ValueError: wrong shapes, NaN or infinite vertices, face indices out of range, ``near <= 0``.

    Example:
        >>> v = torch.tensor([[[0.0, 0.0, 1.0], [4.0, 0.0, 1.0], [0.0, 4.0, 1.0]]])
        >>> frags = rasterize(v, torch.tensor([[0, 1, 2]]), (5, 5))
        >>> int(frags.mask.sum())            # pixel centres with x + y <= 4
        15
    """
    sizes, screen, face_np = _check_inputs(screen_vertices, faces)
    height, width = check_image_size(image_size)
    if isinstance(near, bool) or not isinstance(near, (int, float)) or not math.isfinite(near) or near <= 0:
        raise ValueError(f"near: expected a finite positive number, got {near!r}")
    batch = sizes["B"]
    device, dtype = screen_vertices.device, screen_vertices.dtype

    # The kernel writes barycentrics and depth in float64 for float64 input, else float32 (then cast).
    out_np = np.float64 if dtype == torch.float64 else np.float32
    face_index, bary, depth, mask = _output_arrays(batch, height, width, out_np)
    if face_np.shape[0] > 0 and sizes["V"] > 0:
        _rasterize_batch(screen, face_np, float(near), bool(perspective_correct), face_index, bary, depth, mask)

    face_t = torch.from_numpy(face_index).to(device)
    fragments = Fragments(
        face_index=face_t,
        bary=torch.from_numpy(bary).to(device=device, dtype=dtype),
        depth=torch.from_numpy(depth).to(device=device, dtype=dtype),
        mask=torch.from_numpy(mask).to(device),
    )
    if screen_vertices.requires_grad and torch.is_grad_enabled():
        from facerecon.render.interpolate import barycentrics

        bary_t, depth_t = barycentrics(
            screen_vertices, faces, fragments, perspective_correct=perspective_correct, return_depth=True
        )
        fragments = Fragments(face_t, bary_t, depth_t, fragments.mask)
    return fragments


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross product written out (``torch.linalg.cross`` may fuse multiply-adds, so ``a x a`` need not be 0)."""
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def rasterize_reference(
    screen_vertices: torch.Tensor,
    faces: torch.Tensor,
    image_size: Sequence[int],
    *,
    near: float = DEFAULT_NEAR,
) -> Fragments:
    """A naive per-pixel, per-triangle rasterizer in vectorised PyTorch (perspective mode only).

    Same contract and results as :func:`rasterize` (up to rounding); ``O(H W F)`` time and memory in chunks,
    so meant for tests and as the benchmark's baseline, not for use.
    """
    sizes, _, _ = _check_inputs(screen_vertices, faces)
    height, width = check_image_size(image_size)
    batch = sizes["B"]
    sv = screen_vertices.detach().to(torch.float64)
    q = torch.cat([sv[..., :2] * sv[..., 2:3], sv[..., 2:3]], dim=-1)  # (B, V, 3)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    pix = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(-1, 3)  # (P, 3)
    n_faces = faces.shape[0]
    face_index = torch.full((batch, height * width), -1, dtype=torch.int64)
    best = torch.full((batch, height * width), math.inf, dtype=torch.float64)
    bary = torch.zeros(batch, height * width, 3, dtype=torch.float64)
    depth = torch.zeros(batch, height * width, dtype=torch.float64)
    fl = faces.to(torch.int64).cpu()
    chunk = max(1, 2_000_000 // max(1, height * width))
    for b in range(batch):
        for start in range(0, n_faces, chunk):
            idx = fl[start : start + chunk]
            tri = q[b][idx]  # (C, 3 corners, 3)
            edges = torch.stack(
                [_cross(tri[:, 1], tri[:, 2]), _cross(tri[:, 2], tri[:, 0]), _cross(tri[:, 0], tri[:, 1])], dim=1
            )  # (C, 3, 3)
            det = tri[:, 0, 0] * edges[:, 0, 0] + tri[:, 0, 1] * edges[:, 0, 1] + tri[:, 0, 2] * edges[:, 0, 2]
            e = torch.einsum("cka,pa->cpk", edges, pix) * torch.sign(det)[:, None, None]  # (C, P, 3)
            s = e.sum(-1)
            z = det.abs()[:, None] / s
            in_front = (tri[:, :, 2] > near).all(-1) & (det != 0)
            inside = (e >= 0).all(-1) & (s > 0) & in_front[:, None]
            z = torch.where(inside, z, torch.full_like(z, math.inf))
            zmin, arg = z.min(dim=0)  # first minimum = lowest index among ties
            better = zmin < best[b]
            best[b] = torch.where(better, zmin, best[b])
            face_index[b] = torch.where(better, start + arg, face_index[b])
            chosen = e[arg, torch.arange(e.shape[1])]  # (P, 3)
            chosen_b = chosen / chosen.sum(-1, keepdim=True).clamp_min(1e-300)
            bary[b] = torch.where(better[:, None], chosen_b, bary[b])
            depth[b] = torch.where(better, zmin, depth[b])
    device, dtype = screen_vertices.device, screen_vertices.dtype
    face_index = face_index.reshape(batch, height, width).to(device)
    return Fragments(
        face_index=face_index,
        bary=bary.reshape(batch, height, width, 3).to(device=device, dtype=dtype),
        depth=depth.reshape(batch, height, width).to(device=device, dtype=dtype),
        mask=face_index >= 0,
    )
