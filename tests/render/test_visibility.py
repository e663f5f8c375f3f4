"""Back-face and z-buffer visibility of vertices and faces."""

from __future__ import annotations

import math

import pytest
import torch

from facerecon.geometry.mesh_ops import face_normals, vertex_normals
from facerecon.render.rasterize import rasterize
from facerecon.render.visibility import (
    face_orientation,
    front_facing_faces,
    front_facing_vertices,
    vertex_visibility,
)


def _uv_sphere(n_lat: int = 12, n_lon: int = 24, radius: float = 50.0):
    """A closed UV sphere, faces counter-clockwise seen from outside."""
    verts = [[0.0, 0.0, radius]]
    for i in range(1, n_lat):
        theta = math.pi * i / n_lat
        for j in range(n_lon):
            phi = 2 * math.pi * j / n_lon
            verts.append([radius * math.sin(theta) * math.cos(phi), radius * math.sin(theta) * math.sin(phi), radius * math.cos(theta)])
    verts.append([0.0, 0.0, -radius])
    faces = []
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
    for j in range(n_lon):
        faces.append([0, ring(1, j), ring(1, j + 1)])
        faces.append([len(verts) - 1, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i + 1, j), ring(i + 1, j + 1), ring(i, j + 1)
            faces += [[a, b, c], [a, c, d]]
    return torch.tensor(verts, dtype=torch.float64), torch.tensor(faces)


@pytest.fixture(scope="module")
def sphere_scene(pinhole):
    verts, faces = _uv_sphere()
    assert torch.all(((face_normals(verts[None], faces)[0] * verts[faces].mean(1)).sum(-1)) > 0)  # outward
    cam = verts + torch.tensor([15.0, -10.0, 200.0], dtype=torch.float64)  # off-axis, in front of the camera
    screen = pinhole(cam[None], 120.0, 40.0, 35.0)
    return cam[None], screen, faces


def test_face_orientation_is_the_camera_space_back_face_test(sphere_scene):
    cam, screen, faces = sphere_scene
    normals = face_normals(cam, faces)[0]
    centre_dot = (normals * cam[0][faces[:, 0]]).sum(-1)  # X_0 . n: negative when facing the camera
    det = face_orientation(screen, faces)[0]
    assert torch.equal(det < 0, centre_dot < 0)
    assert torch.equal(front_facing_faces(screen, faces)[0], centre_dot < 0)
    # det = fx fy X_0 . ((X_1 - X_0) x (X_2 - X_0)).
    v0, v1, v2 = (cam[0][faces[:, k]] for k in range(3))
    expected = 120.0 * 120.0 * (v0 * torch.linalg.cross(v1 - v0, v2 - v0)).sum(-1)
    assert torch.allclose(det, expected, rtol=1e-9)


def test_front_facing_vertices_match_vertex_normals(sphere_scene):
    cam, screen, faces = sphere_scene
    n = vertex_normals(cam, faces)[0]
    dot = (n * cam[0]).sum(-1) / cam[0].norm(dim=-1)
    facing = front_facing_vertices(screen, faces)[0]
    clear = dot.abs() > 1e-6
    assert torch.equal(facing[clear], (dot < 0)[clear])
    assert 0.3 < facing.double().mean() < 0.7


def test_vertex_visibility_sphere_and_occluder(sphere_scene):
    cam, screen, faces = sphere_scene
    frags = rasterize(screen, faces, (70, 80))
    visible = vertex_visibility(screen, faces, frags)
    assert torch.equal(visible, visible & front_facing_vertices(screen, faces))
    # On a convex sphere every vertex that faces the camera (and projects inside the image) is visible.
    facing = front_facing_vertices(screen, faces)
    u, v = screen[..., 0], screen[..., 1]
    inside = (u >= -0.5) & (u <= 79.5) & (v >= -0.5) & (v <= 69.5)
    assert (facing & ~inside).any()  # the sphere sticks out of the image a little
    assert torch.equal(visible, facing & inside)
    # Without the back-face test, the far side is still hidden by the z-buffer (all but a ring of vertices
    # just behind the silhouette, within a pixel of the background).
    no_backface = vertex_visibility(screen, faces, frags, backface=False)
    assert torch.equal(no_backface & visible, visible)
    behind_centre = cam[..., 2] > 200.0 + 5.0
    assert not no_backface[behind_centre].any()
    # A big square in front of the sphere hides everything behind it.
    wall = torch.tensor([[-1e3, -1e3, 100.0], [1e3, -1e3, 100.0], [1e3, 1e3, 100.0], [-1e3, 1e3, 100.0]], dtype=torch.float64)
    all_screen = torch.cat([screen, torch.cat([wall[:, :2] * 120.0 / 100.0 + torch.tensor([40.0, 35.0], dtype=torch.float64), wall[:, 2:]], -1)[None]], 1)
    v = screen.shape[1]
    all_faces = torch.cat([faces, torch.tensor([[v, v + 2, v + 1], [v, v + 3, v + 2]])])
    frags2 = rasterize(all_screen, all_faces, (70, 80))
    hidden = vertex_visibility(all_screen, all_faces, frags2)
    assert not hidden[0, :v].any()
    assert hidden[0, v:].sum() == 0  # the wall's corners are outside the image


def test_outside_image_is_invisible(sphere_scene):
    cam, screen, faces = sphere_scene
    shifted = screen + torch.tensor([500.0, 0.0, 0.0], dtype=torch.float64)
    frags = rasterize(shifted, faces, (70, 80))
    assert not vertex_visibility(shifted, faces, frags).any()


def test_errors(sphere_scene):
    cam, screen, faces = sphere_scene
    frags = rasterize(screen, faces, (70, 80))
    with pytest.raises(ValueError, match="depth_tolerance"):
        vertex_visibility(screen, faces, frags, depth_tolerance=-1.0)
    with pytest.raises(TypeError, match="depth_tolerance"):
        vertex_visibility(screen, faces, frags, depth_tolerance="1")
    with pytest.raises(TypeError, match="fragments"):
        vertex_visibility(screen, faces, None)
    with pytest.raises(ValueError, match="fragments"):
        vertex_visibility(screen.expand(2, -1, -1), faces, frags)
    with pytest.raises(ValueError, match="faces"):
        front_facing_vertices(screen, faces + 10_000)
    with pytest.raises(ValueError, match="screen_vertices"):
        face_orientation(screen[0], faces)
