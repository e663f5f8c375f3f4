"""Fixtures of the render tests: a pinhole projection and views of the ICT face that fill an image.

(The test suite imports test modules with ``--import-mode=importlib``, so helpers are handed out as fixtures.)
"""

from __future__ import annotations

import math

import pytest
import torch


def project(camera_vertices: torch.Tensor, focal: float, cx: float, cy: float) -> torch.Tensor:
    """Pinhole projection ``(X, Y, Z) -> (fX/Z + cx, fY/Z + cy, Z)`` for ``(..., 3)`` points."""
    x, y, z = camera_vertices.unbind(-1)
    return torch.stack([focal * x / z + cx, focal * y / z + cy, z], dim=-1)


def model_to_camera(mean: torch.Tensor, distance: float = 600.0, yaw: float = 0.0) -> torch.Tensor:
    """Model (y up, z out) to OpenCV camera space: ``X_cam = diag(1, -1, -1) R_y(yaw) X + (0, 0, d)``."""
    c, s = math.cos(yaw), math.sin(yaw)
    rot = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=mean.dtype)
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=mean.dtype)
    return (mean @ rot.T) * flip + torch.tensor([0.0, 0.0, distance], dtype=mean.dtype)


def face_view(mean: torch.Tensor, triangles: torch.Tensor, size: int, *, yaw: float = 0.0, distance: float = 600.0):
    """Screen ``(1, V, 3)`` and camera ``(1, V, 3)`` vertices of a face seen from ``yaw`` radians.

    The focal length makes the frontal face area span 90% of the image; ``cx = (size - 1) / 2`` so the
    symmetry plane x = 0 of a frontal face projects onto the middle column line (mirroring columns
    ``u -> size - 1 - u`` maps pixel centres to pixel centres); ``cy`` centres the face vertically.
    """
    front = model_to_camera(mean.double(), distance)
    used = torch.unique(triangles)
    proj = front[used, :2] / front[used, 2:3]
    lo, hi = proj.min(0).values, proj.max(0).values
    focal = 0.9 * size / (hi - lo).max().item()
    cx = (size - 1) / 2
    cy = (size - 1) / 2 - focal * (lo[1] + hi[1]).item() / 2
    cam = model_to_camera(mean.double(), distance, yaw)
    return project(cam, focal, cx, cy)[None].to(mean.dtype), cam[None].to(mean.dtype)


@pytest.fixture(scope="session")
def pinhole():
    """The function ``project(camera_vertices, focal, cx, cy) -> (u, v, z)``."""
    return project


@pytest.fixture(scope="session")
def view_face():
    """The function ``face_view(mean, triangles, size, *, yaw=0, distance=600) -> (screen, camera)``."""
    return face_view
