"""A picture made from the geometry and lighting modules together: the ICT face posed, projected and shaded."""

from __future__ import annotations

import math

import numpy as np
import torch

from facerecon.geometry.camera import PerspectiveCamera, transform
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.geometry.rotation import head_angles_to_camera_rotation
from facerecon.render.sh import directional_sh, shade

D = torch.float64


def _splat(uvz: np.ndarray, colors: np.ndarray, size: int) -> np.ndarray:
    """Nearest-pixel z-buffered point splat (a picture for a person, not a renderer)."""
    image = np.zeros((size, size, 3))
    depth = np.full((size, size), np.inf)
    px = np.round(uvz[:, :2]).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < size) & (px[:, 1] >= 0) & (px[:, 1] < size)
    for (u, v), z, c in zip(px[inside], uvz[inside, 2], colors[inside]):
        if z < depth[v, u]:
            depth[v, u] = z
            image[v, u] = c
    return image


def test_posed_shaded_face(ict_neutral, artifacts_dir):
    vertices, faces = ict_neutral
    size = 192
    cam = PerspectiveCamera.from_fov(math.radians(30), size, size, dtype=D)
    angles = torch.tensor([[0.0, 0.5, 0.0], [0.25, 0.0, 0.2]], dtype=D)  # yaw right; pitch down + roll
    rotation = head_angles_to_camera_rotation(angles)
    t = torch.tensor([[0.0, 0.0, 900.0]], dtype=D).expand(2, 3)
    v_cam = transform(vertices[None].expand(2, -1, -1), rotation, t)
    normals = vertex_normals(v_cam, faces)
    light = directional_sh(torch.tensor([[-0.3, -0.5, -1.0]], dtype=D).expand(2, 3), torch.full((2, 3), 2.2, dtype=D), 0.25)
    albedo = torch.tensor([0.75, 0.6, 0.52], dtype=D).expand_as(v_cam)
    colors = shade(albedo, normals, light).clamp(0, 1)
    uvz = cam.project_with_depth(v_cam)
    # The nose tip (the vertex with the largest model z) moves to the viewer's right with positive yaw.
    tip = int(torch.argmax(vertices[:, 2]))
    assert float(uvz[0, tip, 0]) > (size - 1) / 2 + 10
    # Facing the camera, normals of visible skin point towards it (camera -z).
    front = (v_cam[1, :, 2] < float(v_cam[1, tip, 2]) + 30)
    assert float((normals[1, front, 2] < 0).float().mean()) > 0.6
    images = [_splat(uvz[i].numpy(), colors[i].numpy(), size) for i in range(2)]
    assert all(img.mean() > 0.05 for img in images)
    if artifacts_dir is not None:
        from PIL import Image

        Image.fromarray((np.concatenate(images, 1) * 255).round().astype(np.uint8)).save(artifacts_dir / "geometry_posed_faces.png")
