"""``Fragments``: what the rasterizer found at each pixel (the input of interpolation and shading)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch


@dataclass(frozen=True)
class Fragments:
    """Per-pixel rasterization result for a batch of ``B`` images of ``H x W`` pixels.

    Pixel ``(x, y)`` of image ``b`` is ``[b, y, x]`` in every field (row = v, column = u); its centre is at
    the integer pixel coordinates ``(u, v) = (x, y)`` (``docs/conventions.md``).

    Attributes:
        face_index: ``(B, H, W)`` int64 index of the nearest triangle covering the pixel centre, ``-1`` for
            background.
        bary: ``(B, H, W, 3)`` perspective-correct barycentric coordinates of the pixel centre in that
            triangle (weights of its three corners, summing to 1), 0 for background. Differentiable with
            respect to the screen-space vertices when they required gradients during rasterization.
        depth: ``(B, H, W)`` camera-space depth ``z`` of the surface at the pixel centre (the units of the
            vertices' ``z``, mm by convention), 0 for background.
        mask: ``(B, H, W)`` bool, True where a triangle covers the pixel (``face_index >= 0``).
    """

    face_index: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor

    @cached_property
    def covered(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """The covered pixels, computed once per fragments (interpolation over fixed UV-space fragments then skips it):
        ``(flat, batch, faces, max_face)``, ``flat`` ``(N,)`` int64 indices of the ``B * H * W`` pixels in row-major
        order, ``batch`` ``(N,)`` their image, ``faces`` ``(N,)`` their triangle, ``max_face`` the largest (-1 if none).
        Not differentiable (indices only); the fields must not be changed in place afterwards."""
        flat = torch.nonzero(self.mask.reshape(-1), as_tuple=False)[:, 0]
        height, width = self.image_size
        batch = torch.div(flat, height * width, rounding_mode="floor")
        faces = self.face_index.reshape(-1)[flat]
        return flat, batch, faces, int(faces.max()) if faces.numel() else -1

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.face_index.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.face_index.shape[1]), int(self.face_index.shape[2])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Fragments:
        """A copy on ``device`` with floating fields (``bary``, ``depth``) cast to ``dtype``."""
        return Fragments(
            face_index=self.face_index.to(device=device),
            bary=self.bary.to(device=device, dtype=dtype),
            depth=self.depth.to(device=device, dtype=dtype),
            mask=self.mask.to(device=device),
        )

    def detach(self) -> Fragments:
        """A copy whose ``bary`` and ``depth`` carry no gradient history."""
        return Fragments(self.face_index, self.bary.detach(), self.depth.detach(), self.mask)
