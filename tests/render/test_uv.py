"""UV space: texel convention, UV rasterization, position maps, texture unwrapping."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from facerecon.render.images import to_uint8
from facerecon.render.interpolate import interpolate
from facerecon.render.rasterize import rasterize
from facerecon.render.uv import position_map, rasterize_uv, unwrap_texture, uv_to_texel

SQUARE_UV = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
SQUARE_FACES = torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_texel_centres_map_to_integers():
    size = 8
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    uv = torch.stack([(cols + 0.5) / size, 1 - (rows + 0.5) / size], -1).double()
    texel = uv_to_texel(uv, size)
    assert torch.allclose(texel[..., 0], cols.double()) and torch.allclose(texel[..., 1], rows.double())


def test_rasterize_uv_square_and_position_map():
    size = 16
    frags = rasterize_uv(SQUARE_UV, SQUARE_FACES, size)
    assert frags.batch_size == 1 and frags.image_size == (size, size) and frags.mask.all()
    # A flat square whose 3D position is (u, v, 0) * 100 mm: the position map holds each texel centre's UV.
    verts = torch.cat([SQUARE_UV * 100, torch.zeros(4, 1, dtype=torch.float64)], -1)[None].expand(2, -1, -1)
    pmap = position_map(verts, SQUARE_FACES, frags)
    assert pmap.shape == (2, 3, size, size)
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    assert torch.allclose(pmap[0, 0], (cols.double() + 0.5) / size * 100)
    assert torch.allclose(pmap[1, 1], (1 - (rows.double() + 0.5) / size) * 100)
    assert torch.all(pmap[:, 2] == 0)


def test_position_map_gradient():
    frags = rasterize_uv(SQUARE_UV, SQUARE_FACES, 4)
    verts = torch.rand(1, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: position_map(v, SQUARE_FACES, frags), (verts,))


def test_ict_uv_layout_and_position_map(face_model, artifacts_dir):
    face = face_model.submesh("face")
    frags = rasterize_uv(face_model.uvs, face.uv_triangles, 256)
    coverage = frags.mask.float().mean().item()
    assert 0.5 < coverage < 1.0
    pmap = position_map(face_model.mean[None], face.triangles, frags)
    assert pmap.shape == (1, 3, 256, 256) and torch.isfinite(pmap).all()
    mask = frags.mask[0]
    # Every position lies inside the face's bounding box; the top rows of the layout are above the bottom ones.
    used = face_model.mean[: face.vertex_count]
    lo, hi = used.min(0).values, used.max(0).values
    inside = (pmap[0].permute(1, 2, 0)[mask] >= lo - 1e-3) & (pmap[0].permute(1, 2, 0)[mask] <= hi + 1e-3)
    assert inside.all()
    if artifacts_dir is not None:
        shown = ((pmap - lo[None, :, None, None]) / (hi - lo)[None, :, None, None]) * mask
        Image.fromarray(to_uint8(shown)[0]).save(artifacts_dir / "uv_position_map_256.png")


def test_unwrap_flat_square_known_weight(pinhole):
    # A square at z = 200 facing the camera, UV = its XY: every texel is visible with weight z / |X|.
    size = 8
    xy = (SQUARE_UV - 0.5) * 100
    cam = torch.cat([xy, torch.full((4, 1), 200.0, dtype=torch.float64)], -1)[None]
    screen = pinhole(cam, 50.0, 15.5, 15.5)
    # A photo whose colour encodes the pixel position.
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    photo = torch.stack([xs / 31, ys / 31, torch.full_like(xs, 0.5)])[None].double()
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])  # counter-clockwise seen from the camera (-z)
    uv_faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    frags = rasterize_uv(SQUARE_UV, uv_faces, size)
    normals = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64).expand(1, 4, 3)
    out = unwrap_texture(photo, screen, cam, faces, frags, normals=normals)
    assert out.visible.all()
    point = position_map(cam, faces, frags)[0]  # (3, S, S)
    assert torch.allclose(out.weight[0, 0], point[2] / point.norm(dim=0))
    # The texel's pixel is the projection of its point, and the sampled colour encodes that pixel.
    proj = pinhole(point.permute(1, 2, 0), 50.0, 15.5, 15.5)
    assert torch.allclose(out.screen[0, 0], proj[..., 0]) and torch.allclose(out.screen[0, 1], proj[..., 1])
    assert torch.allclose(out.texture[0, 0], proj[..., 0] / 31, atol=1e-9)
    # Default normals (from the camera-space vertices) agree: the square is flat and faces the camera.
    default = unwrap_texture(photo, screen, cam, faces, frags)
    assert torch.allclose(default.weight, out.weight)


def test_unwrap_oblique_plane_is_seen_everywhere(pinhole):
    """A plane turned 75 degrees from the camera, finely tessellated, fills its pixels: every texel that projects
    into the photo is visible (a z-buffer test against the one nearest pixel misses texels in stripes here: the
    depth changes by ~4 mm per pixel, twice the tolerance) and a texel hidden behind a wall is not."""
    n = 40
    grid = torch.stack(torch.meshgrid(torch.linspace(0, 1, n + 1), torch.linspace(0, 1, n + 1), indexing="xy"), -1)
    uv = grid.reshape(-1, 2).double()
    angle = math.radians(75.0)
    x = (uv[:, 0] - 0.5) * 200 * math.cos(angle)
    z = 300 + (uv[:, 0] - 0.5) * 200 * math.sin(angle)
    cam = torch.stack([x, (uv[:, 1] - 0.5) * 100, z], -1)[None]
    quads = torch.tensor([[r * (n + 1) + c, r * (n + 1) + c + 1, (r + 1) * (n + 1) + c + 1, (r + 1) * (n + 1) + c]
                          for r in range(n) for c in range(n)])  # fmt: skip
    faces = torch.cat([quads[:, [0, 2, 1]], quads[:, [0, 3, 2]]])  # facing the camera
    screen = pinhole(cam, 300.0, 63.5, 63.5)
    photo = torch.rand(1, 3, 128, 128, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    frags = rasterize_uv(uv, faces, 64)
    out = unwrap_texture(photo, screen, cam, faces, frags, depth_tolerance=2.0)
    inside = ((out.screen[0] >= 0) & (out.screen[0] <= 127)).all(0)
    covered = frags.mask[0] & inside
    assert covered.float().mean() > 0.9 and out.visible[0, 0][covered].all()
    # A wall in front of the plane's left half hides it there.
    wall = torch.tensor([[-200.0, -200, 200], [0, -200, 200], [0, 200, 200], [-200, 200, 200]], dtype=torch.float64)
    both = torch.cat([cam[0], wall])[None]
    all_faces = torch.cat([faces, torch.tensor([[0, 2, 1], [0, 3, 2]]) + len(uv)])
    fragments = rasterize(pinhole(both, 300.0, 63.5, 63.5), all_faces, (128, 128))
    hidden = unwrap_texture(photo, screen, cam, faces, frags, fragments=fragments)
    x_mm = position_map(cam, faces, frags)[0, 0]  # the wall hides x < 0
    assert not hidden.visible[0, 0][covered & (x_mm < -2.0)].any()
    assert hidden.visible[0, 0][covered & (x_mm > 2.0)].all()


def test_unwrap_ict_render_round_trip(face_model, view_face, artifacts_dir):
    # Render the face with colours that encode position, unwrap the render: visible texels get those colours.
    face = face_model.submesh("face")
    screen, cam = view_face(face_model.mean.double(), face.triangles, 192, yaw=0.5)
    frags = rasterize(screen, face.triangles, (192, 192))
    used = cam[0, : face.vertex_count]
    colour = (cam[0] - used.min(0).values) / (used.max(0).values - used.min(0).values)
    photo = interpolate(colour, face.triangles, frags).permute(0, 3, 1, 2)
    uv_frags = rasterize_uv(face_model.uvs.double(), face.uv_triangles, 128)
    out = unwrap_texture(photo, screen, cam, face.triangles, uv_frags, fragments=frags)
    truth = position_map(colour[None], face.triangles, uv_frags)
    reliable = out.visible[0, 0] & (out.weight[0, 0] > 0.3)
    assert 0.3 < reliable.float().sum() / uv_frags.mask.float().sum() < 0.9
    err = (out.texture - truth).abs().amax(1)[0][reliable]
    assert (err < 0.02).float().mean() > 0.97
    # The side turned away from the camera is not visible: texels of the far side have weight 0.
    turned_away = uv_frags.mask[0] & ~out.visible[0, 0]
    assert turned_away.float().sum() > 0.1 * uv_frags.mask.float().sum()
    assert torch.all(out.weight[0, 0][turned_away] == 0) and torch.all(out.texture[0][:, turned_away] == 0)
    if artifacts_dir is not None:
        row = torch.cat([out.texture, out.weight.expand(-1, 3, -1, -1), truth], 3)
        Image.fromarray(to_uint8(row)[0]).save(artifacts_dir / "uv_unwrap_round_trip.png")


def test_errors(pinhole):
    with pytest.raises(ValueError, match="size"):
        rasterize_uv(SQUARE_UV, SQUARE_FACES, 0)
    with pytest.raises(TypeError, match="size"):
        rasterize_uv(SQUARE_UV, SQUARE_FACES, 8.0)
    with pytest.raises(ValueError, match="uv_faces"):
        rasterize_uv(SQUARE_UV, SQUARE_FACES + 4, 8)
    with pytest.raises(ValueError, match="uvs"):
        rasterize_uv(SQUARE_UV * math.nan, SQUARE_FACES, 8)
    frags = rasterize_uv(SQUARE_UV, SQUARE_FACES, 8)
    cam = torch.tensor([[[0.0, 0, 200], [1, 0, 200], [1, 1, 200], [0, 1, 200]]], dtype=torch.float64)
    screen = pinhole(cam, 50.0, 4.0, 4.0)
    photo = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="depth_tolerance"):
        unwrap_texture(photo, screen, cam, SQUARE_FACES, frags, depth_tolerance=-1.0)
    with pytest.raises(ValueError, match="camera_vertices"):
        unwrap_texture(photo, screen, cam[:, :3], SQUARE_FACES, frags)
    with pytest.raises(TypeError, match="uv_fragments"):
        unwrap_texture(photo, screen, cam, SQUARE_FACES, None)
    with pytest.raises(ValueError, match="images"):
        unwrap_texture(photo[0], screen, cam, SQUARE_FACES, frags)
    with pytest.raises(ValueError, match="uv_fragments"):
        position_map(cam.expand(3, -1, -1), SQUARE_FACES, _batch2(frags))  # uv fragments of batch 2


def _batch2(frags):
    from facerecon.render.fragments import Fragments

    return Fragments(*(t.expand(2, *t.shape[1:]) for t in (frags.face_index, frags.bary, frags.depth, frags.mask)))
