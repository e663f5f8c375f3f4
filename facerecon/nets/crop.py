"""The crop frame that face networks see, shared by training and inference.

A network sees a square crop of the photo around the face, resampled to ``S x S`` px. A crop is a similarity of
the image with no rotation, so the crop is itself a pinhole picture: its camera is the photo's with the focal length
scaled and the principal point moved (:func:`crop_camera`). Pixel centres sit at integers in both (docs/conventions.md):
``u_crop + 0.5 = (u + 0.5 - left) * S / side``, with ``left`` the crop's left edge in the photo.

A network cannot see where in the photo its crop was, or the photo's focal length, so it predicts the head pose in a
form that the crop's pixels determine (:class:`CropPose`): the head's rotation relative to the line of sight to its
pivot (what the picture shows: :func:`facerecon.geometry.rotation.viewed_head_angles`), the pivot's position in the
crop, and the apparent scale ``focal_crop / depth`` (px per mm). :func:`pose_from_crop` turns that into the
model-to-camera pose in the photo's camera and :func:`crop_pose_from_pose` does the reverse for ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facerecon.core.check import check_finite, check_shape
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import line_of_sight_rotation


@dataclass(frozen=True)
class CropBox:
    """A square window of the photo: ``centre (u, v)`` px and ``side`` px (any real values; it may leave the photo)."""

    centre_u: float
    centre_v: float
    side: float

    def __post_init__(self) -> None:
        for name in ("centre_u", "centre_v", "side"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name}: expected a finite number, got {getattr(self, name)!r}")
        if self.side <= 0:
            raise ValueError(f"side: expected a positive size in px, got {self.side!r}")

    @classmethod
    def around(cls, points: np.ndarray, scale: float = 1.6, *, shift: tuple[float, float] = (0.0, 0.0)) -> CropBox:
        """The square around ``points (L, 2)`` px: centred on their bounding box (moved by ``shift`` box sides),
        ``scale`` times its longer side."""
        pts = np.asarray(points, dtype=np.float64)
        check_shape(pts, "points", (None, 2))
        check_finite(pts, "points")
        lo, hi = pts.min(0), pts.max(0)
        side = float(max(hi - lo)) * scale
        centre = (lo + hi) / 2 + np.asarray(shift) * max(side, 1e-6)
        return cls(float(centre[0]), float(centre[1]), max(side, 1e-3))

    @property
    def left(self) -> float:
        """The left edge in the photo's continuous pixel coordinates (pixel ``u`` spans ``[u - 0.5, u + 0.5]``)."""
        return self.centre_u - self.side / 2

    @property
    def top(self) -> float:
        return self.centre_v - self.side / 2

    def affine(self, size: int) -> np.ndarray:
        """``(2, 3)`` float64: photo px -> crop px of an ``size x size`` crop."""
        s = size / self.side
        return np.array([[s, 0.0, (0.5 - self.left) * s - 0.5], [0.0, s, (0.5 - self.top) * s - 0.5]])

    def to_crop(self, points: np.ndarray, size: int) -> np.ndarray:
        """``(..., 2)`` photo px -> crop px."""
        m = self.affine(size)
        return np.asarray(points, dtype=np.float64) @ m[:, :2].T + m[:, 2]

    def from_crop(self, points: np.ndarray, size: int) -> np.ndarray:
        """``(..., 2)`` crop px -> photo px."""
        s = size / self.side
        p = np.asarray(points, dtype=np.float64)
        return (p + 0.5) / s + np.array([self.left, self.top]) - 0.5


def crop_image(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """The ``(3, size, size)`` float32 crop in [0, 1] of an ``(H, W, 3)`` uint8 photo (bilinear, area-averaged
    first when the crop shrinks the photo by more than 2x; outside the photo: black)."""
    check_shape(image, "image", (None, None, 3))
    src, bx = image, box
    shrink = box.side / size
    if shrink > 2.0:  # pre-shrink so bilinear sampling does not alias (cv2.INTER_AREA by an integer factor)
        factor = int(shrink // 2)
        h, w = image.shape[:2]
        small = (max(w // factor, 1), max(h // factor, 1))
        src = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        sx, sy = small[0] / w, small[1] / h
        bx = CropBox((box.centre_u + 0.5) * sx - 0.5, (box.centre_v + 0.5) * sy - 0.5, box.side * sx)
    out = cv2.warpAffine(src, bx.affine(size), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def crop_camera(camera: PerspectiveCamera, boxes: list[CropBox], size: int) -> PerspectiveCamera:
    """The pinhole camera of each ``size x size`` crop of the photo of ``camera`` (batch 1 or ``len(boxes)``)."""
    cam = camera.expand(len(boxes))
    like = cam.fx
    s = torch.tensor([size / b.side for b in boxes], dtype=like.dtype, device=like.device)
    left = torch.tensor([b.left for b in boxes], dtype=like.dtype, device=like.device)
    top = torch.tensor([b.top for b in boxes], dtype=like.dtype, device=like.device)
    return PerspectiveCamera(cam.fx * s, cam.fy * s, (cam.cx + 0.5 - left) * s - 0.5, (cam.cy + 0.5 - top) * s - 0.5, size, size)


@dataclass(frozen=True, eq=False)
class CropPose:
    """A head pose as the crop shows it (batch-first tensors).

    Attributes:
        rotation: ``(B, 3, 3)`` model-to-camera rotation relative to the line of sight to the pivot
            (``R = turn(sight) @ rotation``, :func:`facerecon.geometry.rotation.line_of_sight_rotation`).
        centre: ``(B, 2)`` the pivot's projection in the crop, ``-1`` at the crop's left/top edge, ``+1`` at its
            right/bottom edge.
        log_scale: ``(B,)`` ``log(focal_crop_px / pivot_depth_mm)``.
    """

    rotation: torch.Tensor
    centre: torch.Tensor
    log_scale: torch.Tensor


def pose_from_crop(pose: CropPose, camera: PerspectiveCamera, pivot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-to-camera ``(rotation (B, 3, 3), translation (B, 3) mm)`` from a crop pose (differentiable).

    Args:
        pose: the crop pose.
        camera: the crops' cameras (:func:`crop_camera`), batch ``B``.
        pivot: ``(3,)`` the model-space point whose projection ``pose.centre`` is, mm.
    """
    size = camera.width
    uv = (pose.centre + 1.0) * (size / 2.0) - 0.5
    ray = torch.stack([(uv[:, 0] - camera.cx) / camera.fx, (uv[:, 1] - camera.cy) / camera.fy, torch.ones_like(uv[:, 0])], -1)
    depth = camera.fx / pose.log_scale.exp()
    at = ray * depth[:, None]  # (B, 3) the pivot in camera space
    rotation = line_of_sight_rotation(at) @ pose.rotation
    return rotation, at - (rotation @ pivot.to(at.dtype))


def crop_pose_from_pose(rotation: torch.Tensor, translation: torch.Tensor, camera: PerspectiveCamera, pivot: torch.Tensor) -> CropPose:
    """The crop pose of a model-to-camera pose ``rotation (B, 3, 3)``, ``translation (B, 3)`` mm (inverse of
    :func:`pose_from_crop`)."""
    at = rotation @ pivot.to(rotation.dtype) + translation
    uv = camera.project(at[:, None])[:, 0]
    size = camera.width
    centre = (uv + 0.5) * (2.0 / size) - 1.0
    seen = line_of_sight_rotation(at).transpose(-1, -2) @ rotation
    return CropPose(seen, centre, torch.log(camera.fx / at[:, 2]))
