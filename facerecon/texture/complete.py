"""UV texture completion: the hidden side of the face from its mirror image, the rest by a seamless fill.

Paper 003 (facial texture inpainting) uses the face's symmetry for what a photo does not show. Here, without a
network:

1. :func:`uv_mirror`: for every texel of the face's UV layout, the texel coordinates of its mirrored surface
   point. A texel lies in triangle ``f`` with barycentrics ``b``; the model's mirror map sends the corners of
   ``f`` to the corners of a mirrored triangle (ICT: 91 % of the triangles are mirrored exactly, up to
   winding; where the mirrored quad is split along the other diagonal, the corners' own UVs are used), and
   the mirrored point has the same barycentrics there.
2. :func:`complete_albedo` works on the **de-lit albedo** (photo / fitted SH shading,
   :mod:`facerecon.texture.delight`), because the light comes from one side: mirroring the lit photo would
   copy the lit cheek's brightness onto the shadowed one. Each texel takes its mirror image where the mirror
   is more reliable (higher photo weight), blended smoothly by the weights; weights fall to 0 over a few
   texels at the borders of what the photo sees, so no visibility edge shows.
3. What neither side shows is the fitted per-vertex albedo plus a smooth offset: the difference between the
   observed albedo and the fitted one, known where the photo (or its mirror) is reliable, is extended over the
   rest of the layout by a membrane (screened Laplace) solve, i.e. Poisson blending with the fitted albedo's
   gradients as the guidance field. The two meet without a seam.

The caller re-lights the completed albedo with the fitted light for the photo-like ``texture.png``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from facerecon.core.check import check_finite, check_shape, describe
from facerecon.render.fragments import Fragments

__all__ = ["CompletedAlbedo", "UVMirror", "border_ramp", "complete_albedo", "membrane_fill", "mirror_sample", "uv_mirror"]

# Photo weights ramp from 0 to full over this many texels (per 1024) inside the border of what the photo sees.
BORDER_RAMP_TEXELS = 24.0
# Mirror mixing: t = clip((w_mirror - w_self) * MIRROR_SHARPNESS, 0, 1); 1 = use the mirrored texel.
MIRROR_SHARPNESS = 4.0
# A texel counts as "known" for the membrane fill when its combined weight is at least this.
KNOWN_WEIGHT = 0.5
# Screening of the membrane: far from any known texel the offset decays to 0 (the fitted albedo).
MEMBRANE_SCREENING = 1e-4


@dataclass(frozen=True)
class UVMirror:
    """Where each texel's mirrored surface point lies in the same UV image.

    Attributes:
        coords: ``(S, S, 2)`` float32 texel coordinates ``(x, y)`` = (column, row) of the mirrored point
            (texel centres at integers, as :func:`facerecon.render.uv.uv_to_texel`); -1 where not ``valid``.
        valid: ``(S, S)`` bool, covered texels whose mirror point is known.
    """

    coords: np.ndarray
    valid: np.ndarray

    @property
    def size(self) -> int:
        return int(self.valid.shape[0])


def uv_mirror(
    uvs: torch.Tensor, uv_triangles: torch.Tensor, triangles: torch.Tensor, mirror: torch.Tensor, uv_fragments: Fragments
) -> UVMirror:
    """The UV mirror map of a layout (computed once per model and texture size).

    Args:
        uvs: ``(T, 2)`` UVs in [0, 1], v up.
        uv_triangles: ``(F, 3)`` int64 UV triangles (row ``f`` is mesh triangle ``f``).
        triangles: ``(F, 3)`` int64 mesh triangles.
        mirror: ``(V_all,)`` int64 mirror map (an involution; indices of ``triangles`` must map inside it).
        uv_fragments: :func:`facerecon.render.uv.rasterize_uv` of ``uvs`` / ``uv_triangles`` (batch 1).

    Returns:
        A :class:`UVMirror`.

    Raises:
        TypeError / ValueError: wrong types or shapes, indices out of range, triangles and UV triangles of
            different lengths.
    """
    for name, value in (("uvs", uvs), ("uv_triangles", uv_triangles), ("triangles", triangles), ("mirror", mirror)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor, got {describe(value)}")
    if not isinstance(uv_fragments, Fragments) or uv_fragments.batch_size != 1:
        raise TypeError(f"uv_fragments: expected Fragments of batch size 1 (from rasterize_uv), got {describe(uv_fragments)}")
    sizes: dict[str, int] = {}
    check_shape(uvs, "uvs", ("T", 2), sizes)
    check_shape(uv_triangles, "uv_triangles", ("F", 3), sizes)
    check_shape(triangles, "triangles", ("F", 3), sizes)
    check_shape(mirror, "mirror", ("V",), sizes)
    tri = triangles.cpu().numpy().astype(np.int64)
    uvt = uv_triangles.cpu().numpy().astype(np.int64)
    mir = mirror.cpu().numpy().astype(np.int64)
    if tri.size and (tri.min() < 0 or tri.max() >= len(mir)):
        raise ValueError("triangles: indices outside the mirror map")
    if uvt.size and (uvt.min() < 0 or uvt.max() >= sizes["T"]):
        raise ValueError("uv_triangles: indices outside uvs")
    size = uv_fragments.image_size[0]
    texel_uv = uvs.detach().cpu().double().numpy()
    texel_uv = np.stack([texel_uv[:, 0] * size - 0.5, (1.0 - texel_uv[:, 1]) * size - 0.5], axis=1)

    # Corner k of triangle f goes to vertex mir[tri[f, k]]; its UV from the mirrored triangle when it exists.
    key = {tuple(sorted(t)): i for i, t in enumerate(tri.tolist())}
    vertex_uv = np.full((len(mir), 2), np.nan)
    vertex_uv[tri.ravel()[::-1]] = texel_uv[uvt.ravel()[::-1]]  # first UV of each vertex
    mirrored = mir[tri]  # (F, 3)
    corner_uv = vertex_uv[mirrored]  # (F, 3, 2) fallback: the vertices' own (first) UVs
    match = np.array([key.get(tuple(sorted(c)), -1) for c in mirrored.tolist()], dtype=np.int64)
    exact = np.flatnonzero(match >= 0)
    g = match[exact]
    # Corner k of f is corner j of its mirrored triangle g where tri[g, j] == mir[tri[f, k]].
    j = (tri[g][:, None, :] == mirrored[exact][:, :, None]).argmax(axis=2)  # (E, 3)
    corner_uv[exact] = texel_uv[uvt[g[:, None], j]]
    # Guard against corners taken from different UV islands: the mirrored UV triangle must not be much
    # larger than the triangle itself.
    def area(p: np.ndarray) -> np.ndarray:
        a, b, c = p[:, 0], p[:, 1], p[:, 2]
        return 0.5 * np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))

    own = area(texel_uv[uvt])
    ok = np.isfinite(corner_uv).all(axis=(1, 2))
    ok &= area(np.nan_to_num(corner_uv)) <= 4.0 * own + 1.0

    face = uv_fragments.face_index[0].cpu().numpy()
    bary = uv_fragments.bary[0].detach().cpu().double().numpy()
    covered = face >= 0
    fidx = np.where(covered, face, 0)
    coords = np.einsum("hwk,hwkc->hwc", bary, np.nan_to_num(corner_uv)[fidx])
    valid = covered & ok[fidx]
    coords[~valid] = -1.0
    return UVMirror(coords.astype(np.float32), valid)


def mirror_sample(image: np.ndarray, mirror: UVMirror) -> np.ndarray:
    """Bilinear samples of ``image`` ``(S, S)`` or ``(S, S, C)`` float at each texel's mirrored point (0 where
    the mirror is not valid)."""
    if not isinstance(image, np.ndarray) or image.shape[:2] != mirror.valid.shape:
        raise ValueError(f"image: expected an array of shape {mirror.valid.shape} (+ channels), got {describe(image)}")
    src = np.ascontiguousarray(image, dtype=np.float32)
    out = cv2.remap(src, mirror.coords[..., 0], mirror.coords[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = mirror.valid if out.ndim == 2 else mirror.valid[..., None]
    return np.where(mask, out, 0.0).astype(np.float32)


def border_ramp(weight: np.ndarray, ramp_texels: float) -> np.ndarray:
    """``weight`` ``(S, S)`` times a ramp from 0 at the border of its support (``weight > 0``) to 1 at
    ``ramp_texels`` inside it, so a blend by these weights shows no edge where the photo's view ends."""
    if ramp_texels <= 0:
        return weight.astype(np.float32)
    support = (weight > 0).astype(np.uint8)
    dist = cv2.distanceTransform(support, cv2.DIST_L2, 5)
    return (weight * np.clip(dist / ramp_texels, 0.0, 1.0)).astype(np.float32)


def _laplacian_grid(domain: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """The graph Laplacian of the 4-connected texels of ``domain`` and their flat indices."""
    index = -np.ones(domain.shape, dtype=np.int64)
    flat = np.flatnonzero(domain)
    index.ravel()[flat] = np.arange(len(flat))
    rows, cols = [], []
    for a, b in ((index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :])):
        both = (a >= 0) & (b >= 0)
        rows.append(a[both])
        cols.append(b[both])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    n = len(flat)
    adj = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    adj = (adj + adj.T).tocsr()
    lap = sp.diags(np.asarray(adj.sum(1)).ravel()) - adj
    return lap.tocsr(), flat


def membrane_fill(values: np.ndarray, known: np.ndarray, domain: np.ndarray, *, screening: float = MEMBRANE_SCREENING) -> np.ndarray:
    """Extend ``values`` from the ``known`` texels over ``domain`` by a screened membrane (harmonic) fill.

    Solves ``(L + screening I) x = 0`` on the unknown texels of ``domain`` with ``x = values`` on the known
    ones (Dirichlet), ``L`` the 4-neighbour graph Laplacian: each unknown texel is the average of its
    neighbours, and regions with no known texel decay to 0.

    Args:
        values: ``(S, S, C)`` float.
        known: ``(S, S)`` bool.
        domain: ``(S, S)`` bool, the texels to fill (``known`` texels outside it are still used as
            boundary values only if inside it).
        screening: non-negative; 0 gives the pure harmonic fill (regions with no known texel become 0).

    Returns:
        ``(S, S, C)`` float32: ``values`` on known texels, the fill on the rest of ``domain``, 0 outside.
    """
    if not isinstance(values, np.ndarray) or values.ndim != 3:
        raise ValueError(f"values: expected an (S, S, C) array, got {describe(values)}")
    check_finite(values, "values")
    for name, mask in (("known", known), ("domain", domain)):
        if not isinstance(mask, np.ndarray) or mask.shape != values.shape[:2]:
            raise ValueError(f"{name}: expected a bool array of shape {values.shape[:2]}, got {describe(mask)}")
    if not screening >= 0:
        raise ValueError(f"screening: expected a non-negative number, got {screening!r}")
    known = known & domain
    out = np.zeros(values.shape, dtype=np.float32)
    out[known] = values[known]
    if not (domain & ~known).any():
        return out
    lap, flat = _laplacian_grid(domain)
    is_known = known.ravel()[flat]
    unknown = ~is_known
    a_uu = lap[unknown][:, unknown] + screening * sp.identity(int(unknown.sum()), format="csr")
    a_uk = lap[unknown][:, is_known]
    rhs = -(a_uk @ values.reshape(-1, values.shape[2])[flat[is_known]].astype(np.float64))
    solution = spla.spsolve(a_uu.tocsc(), rhs)
    out.reshape(-1, values.shape[2])[flat[unknown]] = np.asarray(solution).reshape(-1, values.shape[2])
    return out


@dataclass(frozen=True)
class CompletedAlbedo:
    """A completed albedo texture.

    Attributes:
        albedo: ``(S, S, 3)`` float32 in [0, 1] on every covered texel.
        weight: ``(S, S)`` float32 in [0, 1]: how much comes from the photo or its mirror image (the rest is
            the fitted albedo with the membrane offset).
        mirror_share: ``(S, S)`` float32 in [0, 1]: the share of the observed colour that comes from the
            mirror image.
    """

    albedo: np.ndarray
    weight: np.ndarray
    mirror_share: np.ndarray


def complete_albedo(
    albedo: np.ndarray,
    weight: np.ndarray,
    fitted: np.ndarray,
    covered: np.ndarray,
    mirror: UVMirror | None,
    *,
    fill_size: int = 256,
    ramp_texels: float | None = None,
) -> CompletedAlbedo:
    """Complete a de-lit albedo texture (see the module docstring).

    Args:
        albedo: ``(S, S, 3)`` float in [0, 1], the photo's de-lit albedo (anything where ``weight`` is 0).
        weight: ``(S, S)`` float in [0, 1], the photo weight of each texel (0: not seen).
        fitted: ``(S, S, 3)`` float, the fitted per-vertex albedo interpolated into UV.
        covered: ``(S, S)`` bool, the texels of the layout.
        mirror: the layout's :func:`uv_mirror` (None: no mirroring, only the fill).
        fill_size: the membrane offset is solved on a grid of this size (it is smooth) and upsampled.
        ramp_texels: width of the weight ramp at the borders of what the photo sees (default
            :data:`BORDER_RAMP_TEXELS` scaled to ``S``).

    Returns:
        A :class:`CompletedAlbedo`.
    """
    if not isinstance(albedo, np.ndarray) or albedo.ndim != 3 or albedo.shape[2] != 3 or albedo.shape[0] != albedo.shape[1]:
        raise ValueError(f"albedo: expected an (S, S, 3) array, got {describe(albedo)}")
    size = albedo.shape[0]
    for name, value, shape in (("weight", weight, (size, size)), ("fitted", fitted, (size, size, 3)), ("covered", covered, (size, size))):
        if not isinstance(value, np.ndarray) or value.shape != shape:
            raise ValueError(f"{name}: expected an array of shape {shape}, got {describe(value)}")
    if mirror is not None and mirror.size != size:
        raise ValueError(f"mirror: expected a UVMirror of size {size}, got {mirror.size}")
    if fill_size < 8:
        raise ValueError(f"fill_size: expected at least 8, got {fill_size}")
    check_finite(albedo, "albedo")
    check_finite(fitted, "fitted")
    ramp = BORDER_RAMP_TEXELS * size / 1024 if ramp_texels is None else ramp_texels
    w_self = border_ramp(np.clip(weight, 0, 1) * covered, ramp)
    a_self = np.clip(albedo, 0, 1).astype(np.float32)
    if mirror is not None:
        w_mir = mirror_sample(w_self, mirror)
        a_mir = mirror_sample(a_self, mirror)
        t = np.clip((w_mir - w_self) * MIRROR_SHARPNESS, 0.0, 1.0)
        p, q = (1.0 - t) * w_self, t * w_mir
        total = p + q
        observed = (p[..., None] * a_self + q[..., None] * a_mir) / np.maximum(total, 1e-6)[..., None]
        share = np.where(total > 1e-6, q / np.maximum(total, 1e-6), 0.0)
    else:
        total, observed, share = w_self, a_self, np.zeros_like(w_self)
    total = np.clip(total, 0, 1).astype(np.float32)

    # Membrane offset between the observed and the fitted albedo, solved on a coarse grid.
    fitted = fitted.astype(np.float32)
    offset = (observed - fitted) * (total[..., None] > 0)
    small = min(fill_size, size)
    off_small = cv2.resize(offset * (total >= KNOWN_WEIGHT)[..., None], (small, small), interpolation=cv2.INTER_AREA)
    dom_small = cv2.resize(covered.astype(np.float32), (small, small), interpolation=cv2.INTER_AREA) > 0
    frac = cv2.resize((total >= KNOWN_WEIGHT).astype(np.float32), (small, small), interpolation=cv2.INTER_AREA)
    known_small = frac > 0.5
    off_small = off_small / np.maximum(frac, 1e-6)[..., None]
    filled = membrane_fill(off_small, known_small, dom_small)
    # Upsample, then let the known texels keep their exact offsets (only the unknown part comes from the fill).
    filled = cv2.resize(filled, (size, size), interpolation=cv2.INTER_LINEAR)
    completed = total[..., None] * observed + (1.0 - total[..., None]) * (fitted + filled)
    completed = np.clip(completed, 0.0, 1.0) * covered[..., None]
    return CompletedAlbedo(completed.astype(np.float32), (total * covered).astype(np.float32), share.astype(np.float32))
