"""Shaded / albedo / normal / depth / mask images, compositing, and a reference render of the ICT face.

Set FACERECON_SAVE_IMAGES=1 to save the renders under test-artifacts/ for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.render.fragments import Fragments
from facerecon.render.images import (
    RenderedImages,
    composite,
    depth_to_gray,
    display_light,
    normals_to_rgb,
    render_images,
    shade_fragments,
    to_uint8,
)
from facerecon.render.interpolate import barycentrics
from facerecon.render.rasterize import rasterize
from facerecon.render.sh import ambient_sh, directional_sh

DATA = Path(__file__).resolve().parent / "data"
REFERENCE = DATA / "ict_face_front_128.png"

CAM = torch.tensor(
    [[[-30.0, -25.0, 200.0], [35.0, -20.0, 260.0], [30.0, 28.0, 230.0], [-28.0, 24.0, 180.0]]], dtype=torch.float64
)
FACES = torch.tensor([[0, 1, 2], [0, 2, 3]])


def _quad(pinhole):
    return pinhole(CAM, 40.0, 5.3, 4.7)


def test_ambient_light_renders_the_albedo(pinhole):
    sv = _quad(pinhole)
    frags = rasterize(sv, FACES, (10, 11))
    albedo = torch.rand(4, 3, dtype=torch.float64)
    normals = torch.randn(4, 3, dtype=torch.float64)
    out = shade_fragments(frags, FACES, albedo, normals, ambient_sh(0.5, dtype=torch.float64))
    assert out.shape == (1, 3, 10, 11)
    from facerecon.render.interpolate import interpolate

    expected = 0.5 * interpolate(albedo, FACES, frags).permute(0, 3, 1, 2)
    assert torch.allclose(out, expected)
    assert torch.all(out[:, :, ~frags.mask[0]] == 0)


def test_gradcheck_shading(pinhole):
    sv = _quad(pinhole).clone().requires_grad_(True)
    with torch.no_grad():
        frags = rasterize(sv, FACES, (10, 11))
    gen = torch.Generator().manual_seed(1)
    albedo = torch.rand(1, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    normals = torch.randn(1, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    coeffs = torch.randn(1, 9, 3, generator=gen, dtype=torch.float64, requires_grad=True)

    def fn(positions, a, n, c):
        f = Fragments(frags.face_index, barycentrics(positions, FACES, frags), frags.depth, frags.mask)
        return shade_fragments(f, FACES, a, n, c)

    assert torch.autograd.gradcheck(fn, (sv, albedo, normals, coeffs), atol=1e-7)


def test_composite_and_uint8():
    fg = torch.full((1, 3, 2, 2), 1.0)
    bg = torch.zeros(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]]])
    out = composite(fg, mask, bg, opacity=0.5)
    assert torch.allclose(out[0, 0], torch.tensor([[0.5, 0.0], [0.25, 0.5]]))
    img = to_uint8(torch.tensor([[[[-0.2, 0.5], [1.0, 2.0]]]]).expand(1, 3, 2, 2))
    assert img.dtype == np.uint8 and img.shape == (1, 2, 2, 3)
    assert img[0, :, :, 0].tolist() == [[0, 128], [255, 255]]
    with pytest.raises(ValueError, match="opacity"):
        composite(fg, mask, bg, opacity=1.5)
    with pytest.raises(ValueError, match="mask"):
        composite(fg, mask[:, :, :1], bg)


def test_display_images_value_ranges():
    normals = torch.tensor([0.0, 0.0, -1.0]).reshape(1, 3, 1, 1)
    assert torch.allclose(normals_to_rgb(normals, torch.ones(1, 1, 1, 1)).flatten(), torch.tensor([0.5, 0.5, 1.0]))
    depth = torch.tensor([[[[500.0, 600.0], [0.0, 550.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    assert torch.allclose(depth_to_gray(depth, mask), torch.tensor([[[[1.0, 0.2], [0.0, 0.6]]]]))


@pytest.fixture(scope="module")
def ict_front(face_model, view_face):
    tri = face_model.submesh("face").triangles
    screen, cam = view_face(face_model.mean, tri, 128)
    normals = vertex_normals(cam, face_model.triangles)
    return screen, cam, tri, normals


def _save(artifacts_dir: Path | None, name: str, image: torch.Tensor) -> None:
    if artifacts_dir is not None:
        Image.fromarray(to_uint8(image)[0]).save(artifacts_dir / name)


def test_ict_render_images(ict_front, artifacts_dir):
    screen, cam, tri, normals = ict_front
    images = render_images(screen, tri, (128, 128), normals=normals)
    assert isinstance(images, RenderedImages)
    for field in (images.shaded, images.albedo, images.normals):
        assert field.shape == (1, 3, 128, 128) and torch.isfinite(field).all()
    assert images.depth.shape == images.mask.shape == (1, 1, 128, 128)
    assert torch.equal(images.mask[0, 0] > 0, images.fragments.mask[0])
    assert torch.all(images.shaded * (1 - images.mask) == 0)
    covered = images.mask[0, 0] > 0
    assert torch.allclose(images.albedo[0][:, covered], torch.tensor(0.75))
    assert torch.allclose(images.normals[0][:, covered].norm(dim=0), torch.tensor(1.0), atol=1e-5)
    # Most of the face looks towards the camera (-z), and its depth is about 600 mm.
    assert (images.normals[0, 2][covered] < 0).float().mean() > 0.9
    assert 500 < images.depth[0, 0][covered].median() < 650
    again = render_images(screen, tri, (128, 128), normals=normals, fragments=images.fragments)
    assert torch.equal(again.shaded, images.shaded)
    row = torch.cat(
        [
            images.shaded,
            normals_to_rgb(images.normals, images.mask),
            depth_to_gray(images.depth, images.mask).expand(-1, 3, -1, -1),
            images.mask.expand(-1, 3, -1, -1),
        ],
        dim=3,
    )
    _save(artifacts_dir, "render_ict_front_views.png", row)


def test_ict_reference_render(ict_front, artifacts_dir):
    screen, cam, tri, normals = ict_front
    shaded = render_images(screen, tri, (128, 128), normals=normals, sh_coeffs=display_light()).shaded
    got = to_uint8(shaded)[0].astype(np.int16)
    _save(artifacts_dir, "render_ict_front_128.png", shaded)
    reference = np.asarray(Image.open(REFERENCE).convert("RGB")).astype(np.int16)
    diff = np.abs(got - reference)
    assert diff.mean() < 0.5
    assert (diff > 3).mean() < 0.002


def test_ict_symmetric_light_gives_symmetric_image(ict_front):
    screen, cam, tri, normals = ict_front
    light = directional_sh(torch.tensor([[0.0, -0.3, -1.0]]), torch.full((1, 3), 2.0), ambient=0.3)
    shaded = render_images(screen, tri, (128, 128), normals=normals, sh_coeffs=light).shaded[0]
    both = (shaded.sum(0) > 0) & (shaded.flip(2).sum(0) > 0)
    diff = (shaded - shaded.flip(2)).abs().amax(0)[both]
    assert diff.median() < 0.01 and (diff > 0.05).float().mean() < 0.01


def test_ict_composite_over_a_photo(ict_front, faces_dir, artifacts_dir):
    screen, cam, tri, normals = ict_front
    photo_path = sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in (".jpg", ".png"))[0]
    photo = Image.open(photo_path).convert("RGB").resize((128, 128))
    background = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)[None].float() / 255
    images = render_images(screen.float(), tri, (128, 128), normals=normals.float())
    over = composite(images.shaded, images.mask, background, opacity=0.6)
    outside = images.mask[0, 0] == 0
    assert torch.equal(over[0][:, outside], background[0][:, outside])
    inside = ~outside
    assert torch.allclose(over[0][:, inside], 0.6 * images.shaded[0][:, inside] + 0.4 * background[0][:, inside])
    _save(artifacts_dir, "render_ict_over_photo.png", over)


def test_render_images_errors(ict_front):
    screen, cam, tri, normals = ict_front
    frags = rasterize(screen, tri, (64, 64))
    with pytest.raises(ValueError, match="fragments"):
        render_images(screen, tri, (128, 128), normals=normals, fragments=frags)
    with pytest.raises(ValueError, match="normals"):
        render_images(screen, tri, (64, 64), normals=normals[:, :10], fragments=frags)
    with pytest.raises(ValueError, match="sh_coeffs"):
        render_images(screen, tri, (64, 64), normals=normals, sh_coeffs=torch.zeros(2, 9, 3), fragments=frags)
    with pytest.raises(TypeError, match="fragments"):
        shade_fragments(None, tri, normals, normals, display_light())
