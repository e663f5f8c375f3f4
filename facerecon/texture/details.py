"""Fine detail: a displacement map along the normals in UV space, by shape-from-shading against the photo.

Paper 001 ("Inverse Rendering - Details") estimates a displacement ``d`` per texel with
``E(d) = E_con + mu1 ||d||^2 + mu2 ||L d||_1``; paper 000's eq. 7 adds
``R_disp = sum_i w_dn ||dn(i)||^2 + w_dz ||dz(i)||^2`` against drastic depth changes. Here:

* ``E_con``: mean over the photo's well-seen skin texels of ``(rho S(n_d) - I)^2`` on luminance, ``rho`` the
  fitted per-vertex albedo interpolated into UV (smooth at the vertex spacing, so the photo's finer shading
  is left for the geometry to explain), ``S`` the fitted SH shading, ``I`` the unwrapped photo, ``n_d`` the
  normal of the displaced surface.
* ``n_d``: the surface ``P + d N`` (``P`` the position map, ``N`` the interpolated vertex normals) is
  differentiated by central differences in UV; its normal's change from the undisplaced surface's
  finite-difference normal is added to ``N``, so ``d = 0`` reproduces the coarse shading exactly.
* ``mu2 ||L d||_1`` with the 4-neighbour texel Laplacian, through the smooth ``sqrt(x^2 + eps^2)``.
* Eq. 7 of paper 000: ``dn`` = ``n_d - N`` (the normal change) and ``dz`` = the difference of ``d`` between
  neighbouring texels (its gradient), both squared.

Optimised with Adam under torch autograd on a ``size x size`` grid (256 by default), only on skin texels
(forehead, eyes, nose, cheeks, chin) away from the layout's borders; elsewhere ``d = 0``.

Files: ``displacement.png`` is 16-bit grey, ``value = 32768 + d / 0.001 mm`` (:data:`DISPLACEMENT_MM_PER_UNIT`,
:data:`DISPLACEMENT_OFFSET`; positive = outwards along the normal); ``normal_map.png`` is an object-space
(model-space: x to the subject's left, y up, z out of the face) normal map, ``rgb = (n + 1) / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facerecon.core.check import check_finite, check_shape, describe
from facerecon.core.mesh import Mesh
from facerecon.render.sh import irradiance
from facerecon.texture.config import DetailConfig

__all__ = [
    "DISPLACEMENT_MM_PER_UNIT",
    "DISPLACEMENT_OFFSET",
    "DetailConfig",
    "Details",
    "decode_displacement",
    "displaced_normals",
    "encode_displacement",
    "estimate_displacement",
    "grid_mesh",
    "normal_map_rgb",
]

DISPLACEMENT_MM_PER_UNIT = 0.001
"""One unit of ``displacement.png`` is 1 micrometre."""
DISPLACEMENT_OFFSET = 32768
"""The 16-bit value of zero displacement."""
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Details:
    """A displacement map and what it was estimated from.

    Attributes:
        displacement: ``(S, S)`` float32 mm along the outward normal (0 outside ``mask``).
        mask: ``(S, S)`` bool, texels where the displacement was optimised.
        normals: ``(3, S, S)`` float32 unit normals of the displaced surface (camera space; the coarse normals
            outside ``mask``, 0 outside the layout).
        energy: final terms: ``con``, ``mu1``, ``mu2``, ``dn``, ``dz``, and ``con_start`` (E_con at d = 0).
    """

    displacement: np.ndarray
    mask: np.ndarray
    normals: np.ndarray
    energy: dict[str, float]


def _unit(v: torch.Tensor) -> torch.Tensor:
    """``v / |v|`` along dim 1 (cheaper than ``normalize`` for 3 channels; 0 stays 0)."""
    return v * torch.rsqrt((v * v).sum(1, keepdim=True).clamp_min(1e-24))


def _fd_normals(points: torch.Tensor) -> torch.Tensor:
    """Unit normals ``(B, 3, H, W)`` of a position map by central differences (replicate-padded): the
    normalised ``d/dx x d/dy`` (x along columns, y along rows)."""
    pad = torch.nn.functional.pad(points, (1, 1, 1, 1), mode="replicate")
    dx = pad[:, :, 1:-1, 2:] - pad[:, :, 1:-1, :-2]
    dy = pad[:, :, 2:, 1:-1] - pad[:, :, :-2, 1:-1]
    return _unit(torch.cross(dx, dy, dim=1))


def _base_normals(positions: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """The undisplaced surface's finite-difference normals, oriented like ``normals``."""
    base = _fd_normals(positions)
    return torch.where((base * normals).sum(1, keepdim=True) < 0, -base, base)


def _displaced(positions: torch.Tensor, normals: torch.Tensor, displacement: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    moved = _fd_normals(positions + displacement * normals)
    sign = torch.where((moved * base).sum(1, keepdim=True) < 0, -1.0, 1.0).to(moved.dtype).detach()
    return _unit(normals + moved * sign - base)


def displaced_normals(positions: torch.Tensor, normals: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """Normals of the surface ``positions + displacement * normals`` (see the module docstring).

    Args:
        positions: ``(B, 3, H, W)`` position map, mm.
        normals: ``(B, 3, H, W)`` unit normals (interpolated vertex normals).
        displacement: ``(B, 1, H, W)`` mm.

    Returns:
        ``(B, 3, H, W)`` unit normals; equal to ``normals`` where ``displacement`` is 0 around the texel.
        Differentiable w.r.t. all inputs.
    """
    sizes: dict[str, int] = {}
    for name, value, spec in (("positions", positions, ("B", 3, "H", "W")), ("normals", normals, ("B", 3, "H", "W")),
                              ("displacement", displacement, ("B", 1, "H", "W"))):  # fmt: skip
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor of shape {spec}, got {describe(value)}")
        check_shape(value, name, spec, sizes)
    return _displaced(positions, normals, displacement, _base_normals(positions, normals))


def _laplacian(d: torch.Tensor) -> torch.Tensor:
    pad = torch.nn.functional.pad(d, (1, 1, 1, 1), mode="replicate")
    return pad[:, :, 1:-1, 2:] + pad[:, :, 1:-1, :-2] + pad[:, :, 2:, 1:-1] + pad[:, :, :-2, 1:-1] - 4 * d


def estimate_displacement(
    positions: torch.Tensor,
    normals: torch.Tensor,
    photo: torch.Tensor,
    albedo: torch.Tensor,
    weight: torch.Tensor,
    skin: torch.Tensor,
    sh: torch.Tensor,
    config: DetailConfig = DetailConfig(),
) -> Details:
    """Shape-from-shading displacement on a UV grid (see the module docstring).

    Args:
        positions: ``(1, 3, S, S)`` camera-space position map, mm (0 outside the layout).
        normals: ``(1, 3, S, S)`` camera-space unit normals (0 outside the layout).
        photo: ``(1, 3, S, S)`` the unwrapped photo, RGB in [0, 1].
        albedo: ``(1, 3, S, S)`` the fitted (smooth) albedo, RGB in [0, 1].
        weight: ``(1, 1, S, S)`` photo weight in [0, 1].
        skin: ``(1, 1, S, S)`` bool, texels where details may appear.
        sh: ``(1, 9, 3)`` the fitted radiance SH coefficients.
        config: :class:`DetailConfig` (its ``size`` is not used here: ``S`` comes from the inputs).

    Returns:
        :class:`Details` at ``S x S``.
    """
    sizes: dict[str, int] = {}
    for name, value, spec in (("positions", positions, (1, 3, "S", "S")), ("normals", normals, (1, 3, "S", "S")),
                              ("photo", photo, (1, 3, "S", "S")), ("albedo", albedo, (1, 3, "S", "S")),
                              ("weight", weight, (1, 1, "S", "S")), ("skin", skin, (1, 1, "S", "S")), ("sh", sh, (1, 9, 3))):  # fmt: skip
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor of shape {spec}, got {describe(value)}")
        check_shape(value, name, spec, sizes)
        if value.dtype != torch.bool:
            check_finite(value, name)
    if skin.dtype != torch.bool:
        raise TypeError(f"skin: expected a bool tensor, got {describe(skin)}")
    size = sizes["S"]
    luma = torch.tensor(_LUMA, dtype=positions.dtype).view(1, 3, 1, 1)

    def shading(n: torch.Tensor) -> torch.Tensor:
        b, _, h, w = n.shape
        flat = n.permute(0, 2, 3, 1).reshape(b, -1, 3)
        s = irradiance(flat, sh.to(n.dtype)).reshape(b, h, w, 3).permute(0, 3, 1, 2)
        return (s * luma).sum(1, keepdim=True)

    with torch.no_grad():
        covered = normals.abs().sum(1, keepdim=True) > 0
        # Texels whose 5x5 neighbourhood is inside the layout: finite differences stay on the surface.
        outside = torch.nn.functional.pad((~covered).to(positions.dtype), (2, 2, 2, 2), value=1.0)
        inner = torch.nn.functional.max_pool2d(outside, 5, 1) < 0.5
        free = (inner & skin).to(positions.dtype)
        target = (photo * luma).sum(1, keepdim=True)
        rho = (albedo * luma).sum(1, keepdim=True)
        data = (free * (weight >= config.min_weight)).to(positions.dtype)
        data = data * ((rho * shading(normals) - target).abs() <= config.outlier)
        count = data.sum().clamp_min(1.0)
        n_free = free.sum().clamp_min(1.0)

    # Optimise on the bounding box of the free texels only (plus a margin for the finite differences).
    full_positions, full_normals = positions, normals
    rows = torch.nonzero(free[0, 0].any(1)).flatten()
    cols = torch.nonzero(free[0, 0].any(0)).flatten()
    if len(rows) == 0:
        box = (slice(0, size), slice(0, size))
    else:
        box = (slice(max(int(rows[0]) - 3, 0), min(int(rows[-1]) + 4, size)), slice(max(int(cols[0]) - 3, 0), min(int(cols[-1]) + 4, size)))
    crop = lambda t: t[..., box[0], box[1]]
    positions, normals, free, data, rho, target = map(crop, (positions, normals, free, data, rho, target))

    base = _base_normals(positions, normals)

    def energy(d_free: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        d = d_free * free
        n = _displaced(positions, normals, d, base)
        r2 = (rho * shading(n) - target) ** 2
        c2 = config.robust**2
        con = (data * c2 * r2 / (r2 + c2)).sum() / count
        lap = _laplacian(d) * free
        gx = (d[..., :, 1:] - d[..., :, :-1]) * free[..., :, 1:] * free[..., :, :-1]
        gy = (d[..., 1:, :] - d[..., :-1, :]) * free[..., 1:, :] * free[..., :-1, :]
        terms = {
            "con": con,
            "mu1": config.mu1 * (d**2).sum() / n_free,
            "mu2": config.mu2 * torch.sqrt(lap**2 + config.l1_eps**2).sub(config.l1_eps).sum() / n_free,
            "dn": config.w_dn * (((n - normals) ** 2).sum(1, keepdim=True) * free).sum() / n_free,
            "dz": config.w_dz * ((gx**2).sum() + (gy**2).sum()) / n_free,
        }
        return sum(terms.values()), terms

    d_free = torch.zeros_like(free, requires_grad=True)
    with torch.no_grad():
        con_start = float(energy(d_free)[1]["con"])
    optimiser = torch.optim.Adam([d_free], lr=config.lr)
    for _ in range(config.iterations):
        optimiser.zero_grad(set_to_none=True)
        total, _ = energy(d_free)
        total.backward()
        optimiser.step()
        with torch.no_grad():
            d_free.clamp_(-config.max_mm, config.max_mm)
    with torch.no_grad():
        _, terms = energy(d_free)
        d = torch.zeros_like(full_positions[:, :1])
        d[..., box[0], box[1]] = d_free * free
        n = displaced_normals(full_positions, full_normals, d) * covered
        free_full = torch.zeros_like(d)
        free_full[..., box[0], box[1]] = free
        free = free_full
    result = {k: float(v) for k, v in terms.items()}
    result["con_start"] = con_start
    return Details(
        displacement=d[0, 0].float().numpy(),
        mask=free[0, 0].bool().numpy(),
        normals=n[0].float().numpy(),
        energy=result,
    )


def encode_displacement(displacement: np.ndarray) -> np.ndarray:
    """``(S, S)`` mm to uint16: ``32768 + round(d / 0.001)``, clipped to the 16-bit range (+-32.7 mm)."""
    if not isinstance(displacement, np.ndarray) or displacement.ndim != 2:
        raise ValueError(f"displacement: expected an (S, S) array, got {describe(displacement)}")
    check_finite(displacement, "displacement")
    units = np.round(displacement.astype(np.float64) / DISPLACEMENT_MM_PER_UNIT) + DISPLACEMENT_OFFSET
    return np.clip(units, 0, 65535).astype(np.uint16)


def decode_displacement(encoded: np.ndarray) -> np.ndarray:
    """The inverse of :func:`encode_displacement`: uint16 ``(S, S)`` to mm (float32)."""
    if not isinstance(encoded, np.ndarray) or encoded.dtype != np.uint16 or encoded.ndim != 2:
        raise ValueError(f"encoded: expected an (S, S) uint16 array, got {describe(encoded)}")
    return ((encoded.astype(np.float64) - DISPLACEMENT_OFFSET) * DISPLACEMENT_MM_PER_UNIT).astype(np.float32)


def normal_map_rgb(normals: np.ndarray) -> np.ndarray:
    """Unit normals ``(3, S, S)`` (object space) to an ``(S, S, 3)`` uint8 normal map ``(n + 1) / 2``;
    zero normals (outside the layout) become (128, 128, 255)."""
    if not isinstance(normals, np.ndarray) or normals.ndim != 3 or normals.shape[0] != 3:
        raise ValueError(f"normals: expected a (3, S, S) array, got {describe(normals)}")
    n = normals.transpose(1, 2, 0).astype(np.float32)
    empty = (n * n).sum(axis=2) < 1e-12
    n[empty] = (0.0, 0.0, 1.0)
    return np.round(np.clip((n + 1.0) * 127.5, 0, 255)).astype(np.uint8)


def upsample(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an ``(S, S)`` or ``(S, S, C)`` float image to ``size x size`` (texel centres kept)."""
    return cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (size, size), interpolation=cv2.INTER_LINEAR)


def grid_mesh(positions: np.ndarray, covered: np.ndarray, texture: np.ndarray | None = None, name: str = "face_detailed") -> Mesh:
    """A triangle mesh with one vertex per covered texel of a position map.

    Each 2 x 2 block of covered texels gives two triangles (counter-clockwise seen from outside for the face's
    UV layout: u to the right, v up); vertex UVs are the texel centres, so ``texture`` maps on directly.

    Args:
        positions: ``(3, S, S)`` positions, mm.
        covered: ``(S, S)`` bool.
        texture: optional ``(T, T, 3)`` uint8 texture of the same UV tile.
        name: the mesh's name.

    Returns:
        A :class:`Mesh`.

    Raises:
        ValueError: shapes disagree, or fewer than one 2 x 2 block is covered.
    """
    if not isinstance(positions, np.ndarray) or positions.ndim != 3 or positions.shape[0] != 3:
        raise ValueError(f"positions: expected a (3, S, S) array, got {describe(positions)}")
    size = positions.shape[1]
    if not isinstance(covered, np.ndarray) or covered.shape != positions.shape[1:]:
        raise ValueError(f"covered: expected a bool array of shape {positions.shape[1:]}, got {describe(covered)}")
    index = -np.ones(covered.shape, dtype=np.int64)
    rows, cols = np.nonzero(covered)
    index[rows, cols] = np.arange(len(rows))
    a, b = index[:-1, :-1], index[:-1, 1:]  # top-left, top-right (row 0 is v = 1)
    c, d = index[1:, :-1], index[1:, 1:]  # bottom-left, bottom-right
    full = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    if not full.any():
        raise ValueError("covered: no 2 x 2 block of covered texels")
    # Counter-clockwise in (u, v) with v up: bottom-left, bottom-right, top-right / bottom-left, top-right, top-left.
    faces = np.concatenate([np.stack([c[full], d[full], b[full]], 1), np.stack([c[full], b[full], a[full]], 1)])
    vertices = positions[:, rows, cols].T.astype(np.float64)
    uvs = np.stack([(cols + 0.5) / size, 1.0 - (rows + 0.5) / size], 1)
    return Mesh(vertices=vertices, faces=faces.astype(np.int64), uvs=uvs, uv_faces=faces.astype(np.int64),
                texture=texture, name=name)  # fmt: skip


@dataclass(frozen=True)
class DetailResult:
    """Everything the details stage writes.

    Attributes:
        details: the :class:`Details` on the optimisation grid.
        displacement: ``(T, T)`` float32 mm at the texture size (0 outside the optimised texels).
        normal_map: ``(T, T, 3)`` uint8 object-space (model-space) normal map of the detailed surface.
        mesh: the detailed face: a grid mesh of the displaced model-space position map (mm), UVs of the face
            tile.
    """

    details: Details
    displacement: np.ndarray
    normal_map: np.ndarray
    mesh: Mesh


class DetailEstimator:
    """The details stage for one face layout: UV rasterizations at the detail and mesh sizes, the skin mask.

    Args:
        uvs: ``(T, 2)`` the model's UVs; uv_triangles / triangles: ``(F, 3)`` of the face sub-mesh.
        skin: ``(V,)`` bool, vertices where details may appear.
        config: :class:`DetailConfig`.
        mesh_size: texels per side of the detailed mesh's grid.
    """

    def __init__(
        self,
        uvs: torch.Tensor,
        uv_triangles: torch.Tensor,
        triangles: torch.Tensor,
        skin: torch.Tensor,
        config: DetailConfig = DetailConfig(),
        mesh_size: int = 512,
    ) -> None:
        from facerecon.render.interpolate import interpolate
        from facerecon.render.uv import rasterize_uv

        if not isinstance(skin, torch.Tensor) or skin.dtype != torch.bool or skin.ndim != 1:
            raise TypeError(f"skin: expected a (V,) bool tensor, got {describe(skin)}")
        if not isinstance(mesh_size, int) or mesh_size < 8:
            raise ValueError(f"mesh_size: expected an int >= 8, got {mesh_size!r}")
        self.config = config
        self.triangles = triangles
        self.mesh_size = mesh_size
        self.fragments = rasterize_uv(uvs, uv_triangles, config.size)
        self.mesh_fragments = rasterize_uv(uvs, uv_triangles, mesh_size)
        on_skin = interpolate(skin.float()[:, None], triangles, self.fragments)[0, ..., 0]
        self.skin = (on_skin > 0.999)[None, None]

    def estimate(
        self,
        camera_vertices: torch.Tensor,
        model_vertices: torch.Tensor,
        rotation: torch.Tensor,
        sh: torch.Tensor,
        photo: np.ndarray,
        fitted: np.ndarray,
        weight: np.ndarray,
        normals: np.ndarray,
        texture: np.ndarray | None = None,
    ) -> DetailResult:
        """Estimate the displacement and build the outputs.

        Args:
            camera_vertices / model_vertices: ``(1, V, 3)`` the face in camera / model space, mm.
            rotation: ``(3, 3)`` model-to-camera rotation.
            sh: ``(9, 3)`` fitted radiance SH coefficients.
            photo: ``(T, T, 3)`` float unwrapped photo; fitted: ``(T, T, 3)`` float fitted albedo in UV;
                weight: ``(T, T)`` photo weight; normals: ``(3, T, T)`` camera-space texel normals.
            texture: the texture for the detailed mesh (``(T', T', 3)`` uint8), or None.

        Returns:
            A :class:`DetailResult`.
        """
        from facerecon.render.uv import position_map
        from facerecon.texture.delight import texel_normals

        size, tex = self.config.size, photo.shape[0]
        if weight.shape != (tex, tex) or fitted.shape != (tex, tex, 3) or normals.shape != (3, tex, tex):
            raise ValueError("photo, fitted, weight and normals: expected one texture size")
        check_shape(sh, "sh", (9, 3))
        check_shape(rotation, "rotation", (3, 3))

        def down(image: np.ndarray) -> torch.Tensor:
            small = cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (size, size), interpolation=cv2.INTER_AREA)
            small = small[..., None] if small.ndim == 2 else small
            return torch.from_numpy(small).permute(2, 0, 1)[None].float()

        positions = position_map(camera_vertices.float(), self.triangles, self.fragments)
        n_small = texel_normals(camera_vertices.float(), self.triangles, self.fragments)
        details = estimate_displacement(
            positions, n_small, down(photo), down(fitted), down(weight), self.skin, sh[None].float(), self.config
        )
        # Texture-size outputs: displacement and model-space normals (coarse + the detail's change).
        disp_tex = upsample(details.displacement, tex) * (np.abs(normals).sum(0) > 0)
        change = upsample((details.normals - n_small[0].numpy()).transpose(1, 2, 0), tex).transpose(2, 0, 1)
        inside = (np.abs(normals).sum(0) > 0)[..., None]
        cam_n = normals.transpose(1, 2, 0) + change.transpose(1, 2, 0) * inside  # (T, T, 3)
        cam_n *= 1.0 / np.sqrt(np.maximum((cam_n * cam_n).sum(-1, keepdims=True), 1e-24))
        model_n = (cam_n.reshape(-1, 3) @ rotation.float().numpy()).reshape(cam_n.shape) * inside  # R^T n per texel
        model_n = model_n.transpose(2, 0, 1)
        # The detailed mesh: model-space position map at the mesh size, displaced along its normals.
        m = self.mesh_size
        p_model = position_map(model_vertices.float(), self.triangles, self.mesh_fragments)[0].numpy()
        n_model = texel_normals(model_vertices.float(), self.triangles, self.mesh_fragments)[0].numpy()
        d_mesh = upsample(details.displacement, m)
        covered = self.mesh_fragments.mask[0].numpy()
        mesh = grid_mesh(p_model + d_mesh[None] * n_model, covered, texture)
        return DetailResult(details, disp_tex.astype(np.float32), normal_map_rgb(model_n), mesh)
