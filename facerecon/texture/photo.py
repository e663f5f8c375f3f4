"""The face texture from the photo: unwrap into the model's face UV tile, fill what the photo does not show."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from facerecon.core.check import check_shape
from facerecon.render.interpolate import interpolate
from facerecon.render.rasterize import rasterize
from facerecon.render.uv import rasterize_uv, unwrap_texture

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


class PhotoTextureBaker:
    """Unwraps photos onto a fixed UV layout; the layout's rasterization and seam bleeding are computed once.

    Args:
        uvs: ``(T, 2)`` the model's UVs.
        uv_triangles: ``(F, 3)`` the sub-mesh's UV triangles (tile [0, 1]^2).
        size: texels per side.
    """

    def __init__(self, uvs: torch.Tensor, uv_triangles: torch.Tensor, size: int = 1024) -> None:
        self.size = size
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
