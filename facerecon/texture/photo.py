"""The face texture from the photo: unwrap into the model's face UV tile, fill what the photo does not show.

:meth:`PhotoTextureBaker.bake` blends the photo with a per-vertex fallback colour; :meth:`PhotoTextureBaker.complete`
de-lights the photo with the fitted SH light, completes the hidden side through the mirror map and a membrane
fill (:mod:`facerecon.texture.complete`) and re-lights it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from facerecon.core.check import check_shape, describe
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.render.interpolate import interpolate
from facerecon.render.rasterize import rasterize
from facerecon.render.uv import rasterize_uv, unwrap_texture
from facerecon.texture.complete import (
    UVMirror,
    border_ramp,
    complete_albedo,
    mirror_sample,
    uv_mirror,
)
from facerecon.texture.delight import delight, texel_shading

# Texels seen at grazing angles are blended with the model's colour: full photo weight from this cosine up.
FULL_WEIGHT_COSINE = 0.35


@dataclass(frozen=True)
class PhotoTexture:
    """A UV texture of the face tile.

    Attributes:
        texture: ``(S, S, 3)`` uint8 RGB; row 0 is v = 1.
        weight: ``(S, S)`` float32 in [0, 1]: how much of each texel comes from the photo (0: the model's
            fitted colour, hidden or outside the photo).
        covered: ``(S, S)`` bool, texels inside the face's UV layout.
    """

    texture: np.ndarray
    weight: np.ndarray
    covered: np.ndarray


@dataclass(frozen=True)
class CompletedTexture:
    """A complete face texture: the photo where it sees the face, its mirror image, then a seamless fill.

    Attributes:
        texture: ``(S, S, 3)`` uint8 RGB, the completed albedo re-lit by the fitted light (the photo's look;
            equal to the photo where the photo sees the face head-on); row 0 is v = 1.
        albedo: ``(S, S, 3)`` uint8 RGB, the de-lit completed albedo.
        weight: ``(S, S)`` float32 in [0, 1], the photo weight the albedo used: view angle, visibility, not
            occluded, and a de-lit colour consistent with the fitted albedo (hair, glasses and background where
            the mesh overshoots get 0). ``texture`` keeps the photo wherever it sees the face.
        completed_weight: ``(S, S)`` float32 in [0, 1], how much comes from the photo or its mirror image.
        mirror_share: ``(S, S)`` float32 in [0, 1], the share of the observed colour taken from the mirror.
        covered: ``(S, S)`` bool, texels inside the face's UV layout.
        normals: ``(3, S, S)`` float32 camera-space unit normals per texel (0 outside the layout).
        photo: ``(S, S, 3)`` float32 the unwrapped photo in [0, 1] (0 where not seen).
        fitted: ``(S, S, 3)`` float32 the fitted per-vertex albedo interpolated into UV.
        shading: ``(3, S, S)`` float32 the shading ``texture`` was lit with: the fitted SH shading where the
            photo sees the texel, the brighter of its own and its mirror's elsewhere (1 without a light).
    """

    texture: np.ndarray
    albedo: np.ndarray
    weight: np.ndarray
    completed_weight: np.ndarray
    mirror_share: np.ndarray
    covered: np.ndarray
    normals: np.ndarray
    photo: np.ndarray
    fitted: np.ndarray
    shading: np.ndarray


# texture.png keeps the photo from this view cosine up (blending to the completion below it), and ramps to the
# completion over this many texels (per 1024) at the border of what the photo sees.
TEXTURE_FULL_COSINE = 0.1
TEXTURE_RAMP_TEXELS = 8.0
# Texels whose de-lit photo albedo is this many times brighter or darker than the fitted albedo lose their
# photo weight (background or hair where the fitted mesh overshoots the face): full weight up to the first
# ratio, none from the second.
CONSISTENT_RATIO = (2.0, 4.0)


def _consistency(albedo: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """``(S, S)`` weight in [0, 1]: how well the photo's albedo luminance agrees with the fitted albedo's."""
    lum = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    ratio = np.abs(np.log(np.maximum(albedo @ lum, 1e-3) / np.maximum(fitted @ lum, 1e-3)))
    lo, hi = np.log(CONSISTENT_RATIO[0]), np.log(CONSISTENT_RATIO[1])
    return np.clip((hi - ratio) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


class PhotoTextureBaker:
    """Unwraps photos onto a fixed UV layout; the layout's rasterization and seam bleeding are computed once.

    Args:
        uvs: ``(T, 2)`` the model's UVs.
        uv_triangles: ``(F, 3)`` the sub-mesh's UV triangles (tile [0, 1]^2).
        size: texels per side.
        triangles: ``(F, 3)`` the sub-mesh's mesh triangles and ``mirror`` ``(V,)`` the model's mirror map:
            both given, :meth:`complete` mirrors the hidden side (computed on first use).
    """

    def __init__(
        self,
        uvs: torch.Tensor,
        uv_triangles: torch.Tensor,
        size: int = 1024,
        *,
        triangles: torch.Tensor | None = None,
        mirror: torch.Tensor | None = None,
    ) -> None:
        self.size = size
        self._uvs, self._uv_triangles = uvs, uv_triangles
        self._triangles, self._mirror_map = triangles, mirror
        self._uv_mirror: UVMirror | None = None
        self.uv_fragments = rasterize_uv(uvs, uv_triangles, size)
        self.covered = self.uv_fragments.mask[0].cpu().numpy()
        if self.covered.all() or not self.covered.any():
            self._nearest = None
        else:
            _, self._nearest = distance_transform_edt(~self.covered, return_indices=True)

    def bleed(self, texture: np.ndarray) -> np.ndarray:
        """Copy each uncovered texel from its nearest covered one, so filtering across UV seams shows no black."""
        if self._nearest is None:
            return texture
        rows, cols = self._nearest
        return texture[rows, cols]

    def bake(
        self,
        image: torch.Tensor,
        screen_vertices: torch.Tensor,
        camera_vertices: torch.Tensor,
        triangles: torch.Tensor,
        fallback_colours: torch.Tensor,
    ) -> PhotoTexture:
        """Unwrap the photo, with the fitted model colour where the photo has nothing.

        Args:
            image: ``(3, H, W)`` RGB in [0, 1].
            screen_vertices: ``(1, V, 3)`` pixel coordinates and depth of the fitted face in the photo.
            camera_vertices: ``(1, V, 3)`` camera-space positions, mm.
            triangles: ``(F, 3)`` the sub-mesh's triangles (row f matches UV triangle f).
            fallback_colours: ``(V, 3)`` per-vertex colours for texels the photo does not show (e.g. the
                fitted albedo under the fitted light).

        Returns:
            A :class:`PhotoTexture`. Texels the photo sees head-on come from the photo; grazing ones blend
            towards the fallback; hidden ones are the fallback.
        """
        check_shape(image, "image", (3, None, None))
        _, height, width = image.shape
        fragments = rasterize(screen_vertices, triangles, (height, width))
        unwrapped = unwrap_texture(
            image[None], screen_vertices, camera_vertices, triangles, self.uv_fragments, fragments=fragments
        )
        fallback = interpolate(fallback_colours, triangles, self.uv_fragments)[0].permute(2, 0, 1)  # (3, S, S)
        weight = (unwrapped.weight[0] / FULL_WEIGHT_COSINE).clamp(0.0, 1.0) * unwrapped.visible[0]
        texture = weight * unwrapped.texture[0] + (1.0 - weight) * fallback
        rgb = (texture.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return PhotoTexture(self.bleed(rgb), weight[0].float().cpu().numpy(), self.covered)

    @property
    def mirror(self) -> UVMirror | None:
        """The layout's UV mirror map (None when the baker was made without triangles and a mirror map)."""
        if self._uv_mirror is None and self._triangles is not None and self._mirror_map is not None:
            self._uv_mirror = uv_mirror(self._uvs, self._uv_triangles, self._triangles, self._mirror_map, self.uv_fragments)
        return self._uv_mirror

    def complete(
        self,
        image: torch.Tensor,
        screen_vertices: torch.Tensor,
        camera_vertices: torch.Tensor,
        triangles: torch.Tensor,
        albedo_colours: torch.Tensor,
        sh: torch.Tensor | None,
        *,
        unoccluded: torch.Tensor | None = None,
        mirror: bool = True,
    ) -> CompletedTexture:
        """Unwrap, de-light, complete (mirror + membrane fill) and re-light the face texture.

        Args:
            image: ``(3, H, W)`` RGB in [0, 1].
            screen_vertices: ``(1, V, 3)`` pixel coordinates and depth of the fitted face in the photo.
            camera_vertices: ``(1, V, 3)`` camera-space positions, mm.
            triangles: ``(F, 3)`` the sub-mesh's triangles (row f matches UV triangle f).
            albedo_colours: ``(V, 3)`` the fitted per-vertex albedo in [0, 1] (for what nothing shows).
            sh: ``(9, 3)`` fitted radiance SH coefficients, or None (no de-lighting: shading 1).
            unoccluded: ``(V,)`` bool, vertices not hidden by an occluder (hair, hands); others get no photo
                weight. None: all.
            mirror: use the mirror image of the face (needs the baker's ``triangles`` and ``mirror``).

        Returns:
            A :class:`CompletedTexture`.
        """
        check_shape(image, "image", (3, None, None))
        check_shape(albedo_colours, "albedo_colours", (camera_vertices.shape[1], 3))
        if sh is not None:
            check_shape(sh, "sh", (9, 3))
        if mirror and self.mirror is None:
            raise ValueError("mirror: the baker was made without triangles and a mirror map")
        _, height, width = image.shape
        fragments = rasterize(screen_vertices, triangles, (height, width))
        unwrapped = unwrap_texture(
            image[None], screen_vertices, camera_vertices, triangles, self.uv_fragments, fragments=fragments
        )
        weight = (unwrapped.weight[0, 0] / FULL_WEIGHT_COSINE).clamp(0.0, 1.0) * unwrapped.visible[0, 0]
        if unoccluded is None:
            unoccluded = torch.ones(camera_vertices.shape[1], dtype=torch.bool)
        elif not isinstance(unoccluded, torch.Tensor) or unoccluded.shape != (camera_vertices.shape[1],):
            raise ValueError(f"unoccluded: expected a bool tensor of shape ({camera_vertices.shape[1]},), got {describe(unoccluded)}")
        # One interpolation for the normals, the fitted albedo and the occlusion mask.
        vertex_n = vertex_normals(camera_vertices, triangles)[0]
        dtype = vertex_n.dtype
        per_vertex = torch.cat([vertex_n, albedo_colours.to(dtype), unoccluded.to(dtype)[:, None]], dim=1)
        texel = interpolate(per_vertex, triangles, self.uv_fragments)[0]  # (S, S, 7)
        # What the photo shows, steep angles and what the fit calls occluded included: texture.png keeps it unless
        # its colour is far from the fitted albedo's (the albedo, the mirror and the fill use the stricter
        # ``weight``).
        seen = (unwrapped.weight[0, 0] / TEXTURE_FULL_COSINE).clamp(0.0, 1.0) * unwrapped.visible[0, 0]
        seen_np = seen.float().cpu().numpy()
        weight = weight * (texel[..., 6] > 0.999)
        normals = torch.nn.functional.normalize(texel[..., :3], dim=-1, eps=1e-12).permute(2, 0, 1)[None]  # (1, 3, S, S)
        if sh is None:
            shading = torch.ones_like(normals)
        else:
            shading = texel_shading(normals, sh[None].to(normals.dtype))
        photo_albedo = delight(unwrapped.texture.to(normals.dtype), shading)[0].permute(1, 2, 0).float().cpu().numpy()
        fitted = texel[..., 3:6].float().cpu().numpy()
        # The albedo (and what is mirrored or filled from it) leaves out occluded texels and those the fit does
        # not explain.
        consistent = _consistency(photo_albedo, fitted)
        weight_np = weight.float().cpu().numpy() * consistent
        seen_np = border_ramp(seen_np * consistent, TEXTURE_RAMP_TEXELS * self.size / 1024)
        mirror_map = self.mirror if mirror else None
        result = complete_albedo(photo_albedo, weight_np, fitted, self.covered, mirror_map)
        shading_np = shading[0].permute(1, 2, 0).float().cpu().numpy()
        # Re-light for display: the fitted light where the photo sees the texel; elsewhere the brighter of the
        # texel's own shading and its mirror's (the hidden side faces away from the camera and often from the
        # light: its own SH shading is dark or negative), at least half the median shading of the seen face.
        w = seen_np[..., None]
        good = weight_np > 0.5
        floor = 0.5 * np.median(shading_np[good], axis=0) if good.any() else np.full(3, 0.5, np.float32)
        other = shading_np if mirror_map is None else np.where(mirror_map.valid[..., None], mirror_sample(shading_np, mirror_map), shading_np)
        hidden = np.maximum(np.maximum(shading_np, other), floor)
        display = w * shading_np + (1.0 - w) * hidden
        relit = np.clip(result.albedo * display, 0.0, 1.0)
        # Where the photo sees the texel, keep its own colour (the albedo may have been clamped at 1, and hair
        # or glasses that the albedo leaves out are still in the photo).
        photo_rgb = unwrapped.texture[0].permute(1, 2, 0).float().cpu().numpy()
        texture = w * photo_rgb + (1.0 - w) * relit
        return CompletedTexture(
            texture=self.bleed(_to_uint8(texture)),
            albedo=self.bleed(_to_uint8(result.albedo)),
            weight=weight_np,
            completed_weight=result.weight,
            mirror_share=result.mirror_share,
            covered=self.covered,
            normals=normals[0].float().cpu().numpy(),
            photo=photo_rgb,
            fitted=fitted,
            shading=display.transpose(2, 0, 1).astype(np.float32),
        )
