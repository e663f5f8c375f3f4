"""The scene renderer: known answers on a flat quad, batches, supersampling, textures, errors, and the same bits
as the three renderers it replaced (calibration, synthetic benchmark, pipeline pictures).

``data/scene_reference.npz`` holds renders made by the replaced code (commit 95cd8a4: ``eval/synth.py``
``render_subject`` on the inputs of :func:`_synth_inputs`, and ``calibrate/landmark_embedding.py``
``_render_batch`` for views 0 and 3 of ``EmbeddingConfig(image_size=128, focal=250, supersample=s)`` with their
poses, lights and albedo stored beside them).
Set FACERECON_SAVE_IMAGES=1 to save the quad and head renders under test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon.geometry.camera import PerspectiveCamera, transform
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.render.head import head_texture, render_head
from facerecon.render.images import display_light, render_images, to_uint8
from facerecon.render.interpolate import interpolate
from facerecon.render.scene import RenderedScene, Scene, UVTexture, render_scene
from facerecon.render.sh import ambient_sh, directional_sh, irradiance

REFERENCE = Path(__file__).resolve().parent / "data" / "scene_reference.npz"

# A flat quad facing the camera at z = 100 mm; with f = 50 px its corners project to u in [3.6, 11.3],
# v in [2.2, 8.6] of a 16 x 12 image: no (sub)pixel centre lies on an edge for the factors tested.
QUAD_X, QUAD_Y, QUAD_Z, FOCAL, WIDTH, HEIGHT = (-7.8, 7.6), (-6.6, 6.2), 100.0, 50.0, 16, 12
QUAD_TRIS = torch.tensor([[0, 2, 1], [0, 3, 2]])  # counter-clockwise seen from the camera: normal (0, 0, -1)


def _quad(batch: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    (x0, x1), (y0, y1) = QUAD_X, QUAD_Y
    corners = torch.tensor([[x0, y0, QUAD_Z], [x1, y0, QUAD_Z], [x1, y1, QUAD_Z], [x0, y1, QUAD_Z]], dtype=dtype)
    return corners[None].repeat(batch, 1, 1)


def _camera(batch: int = 1, dtype: torch.dtype = torch.float64) -> PerspectiveCamera:
    return PerspectiveCamera.from_focal(FOCAL, WIDTH, HEIGHT, batch, dtype=dtype)


def _quad_scene(batch: int = 1, **changes) -> Scene:
    args = {"vertices": _quad(batch), "triangles": QUAD_TRIS, "camera": _camera(),
            "albedo": torch.full((4, 3), 0.5, dtype=torch.float64), "sh": ambient_sh(0.8, batch, dtype=torch.float64)}  # fmt: skip
    args.update(changes)
    return Scene(**args)


def _expected_coverage(s: int) -> np.ndarray:
    """``(H, W)`` the share of each pixel's ``s x s`` sub-pixel centres inside the projected quad."""
    cx, cy = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
    u0, u1 = (FOCAL * x / QUAD_Z + cx for x in QUAD_X)
    v0, v1 = (FOCAL * y / QUAD_Z + cy for y in QUAD_Y)
    ur = (np.arange(WIDTH * s) + 0.5) / s - 0.5  # raster pixel centres in output pixels
    vr = (np.arange(HEIGHT * s) + 0.5) / s - 0.5
    inside = ((vr > v0) & (vr < v1))[:, None] & ((ur > u0) & (ur < u1))[None]
    return inside.reshape(HEIGHT, s, WIDTH, s).mean(axis=(1, 3))


# ------------------------------------------------------------------------------------------ known answers
@pytest.mark.parametrize("shading", ["pixel", "vertex"])
def test_flat_quad_under_ambient_light_is_albedo_times_irradiance(shading):
    out = render_scene(_quad_scene(shading=shading, background=torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)))
    assert isinstance(out, RenderedScene)
    assert out.image.shape == (1, 3, HEIGHT, WIDTH) and out.coverage.shape == (1, 1, HEIGHT, WIDTH)
    covered = torch.from_numpy(_expected_coverage(1) == 1.0)
    np.testing.assert_array_equal(out.coverage[0, 0].numpy(), _expected_coverage(1))
    np.testing.assert_array_equal(out.fragments.mask[0].numpy(), covered.numpy())
    # Exactly the interpolated albedo (0.5 up to the rounding of the barycentrics' sum) times the shading.
    normal = torch.tensor([[[0.0, 0.0, -1.0]]], dtype=torch.float64)
    light = irradiance(normal, ambient_sh(0.8, dtype=torch.float64))[0, 0]  # (3,)
    albedo = interpolate(torch.full((4, 3), 0.5, dtype=torch.float64), QUAD_TRIS, out.fragments)[0][covered]
    pixels = out.image[0][:, covered].T
    if shading == "pixel":
        assert torch.equal(pixels, albedo * light)
    else:  # per vertex: 0.5 * S at the corners, then interpolated
        colour = torch.full((4, 3), 0.5, dtype=torch.float64) * light
        assert torch.equal(pixels, interpolate(colour, QUAD_TRIS, out.fragments)[0][covered])
    assert torch.allclose(pixels, torch.tensor(0.4, dtype=torch.float64), rtol=0, atol=4e-16)
    background = out.image[0][:, ~covered].T
    assert torch.equal(background, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64).expand_as(background))
    assert torch.equal(out.texture_coverage, torch.zeros_like(out.coverage))


def test_quad_under_a_directional_light_matches_the_sh_formula():
    """Per pixel: ``albedo * S(n)`` with the quad's normal (0, 0, -1) for any light; clamped to [0, 1]."""
    sh = directional_sh(torch.tensor([[-0.3, -0.2, -1.0]], dtype=torch.float64),
                        torch.full((1, 3), 4.0, dtype=torch.float64), ambient=0.3)  # fmt: skip
    albedo = torch.tensor([[0.2, 0.5, 0.9]], dtype=torch.float64).expand(4, 3)
    out = render_scene(_quad_scene(albedo=albedo, sh=sh))
    normal = torch.tensor([[[0.0, 0.0, -1.0]]], dtype=torch.float64)
    expected = (albedo[0] * irradiance(normal, sh)[0, 0]).clamp(0, 1)
    covered = out.fragments.mask[0]
    assert torch.allclose(out.image[0][:, covered].T, expected.expand(int(covered.sum()), 3), atol=1e-12)
    assert float(out.image.max()) <= 1.0 and (expected == 1.0).any()  # the blue channel saturates


@pytest.mark.parametrize("s", [1, 2, 3, 4])
@pytest.mark.parametrize("downsample", ["pool", "area"])
def test_supersampled_coverage_is_the_share_of_covered_sub_pixels(s, downsample):
    bg = torch.rand(1, 3, HEIGHT, WIDTH, dtype=torch.float64)
    out = render_scene(_quad_scene(supersample=s, downsample=downsample, background=bg))
    assert out.fragments.image_size == (HEIGHT * s, WIDTH * s) and out.supersample == s
    tol = 1e-15 if downsample == "pool" else 1e-7  # OpenCV's INTER_AREA weighs in float32 even for float64 images
    np.testing.assert_allclose(out.coverage[0, 0].numpy(), _expected_coverage(s), rtol=0, atol=tol)
    # Raster pixel centres: the camera scaled with the image (u_r + 0.5 = s (u + 0.5)).
    expected_screen = _camera().resized(WIDTH * s, HEIGHT * s).project_with_depth(_quad())
    assert torch.equal(out.screen, expected_screen)
    # Colour: the quad's over its coverage, the background image over the rest.
    quad_colour = 0.5 * irradiance(torch.tensor([[[0.0, 0.0, -1.0]]], dtype=torch.float64),
                                   ambient_sh(0.8, dtype=torch.float64))[0, 0]  # fmt: skip
    cov = out.coverage[0]
    assert torch.allclose(out.image[0], cov * quad_colour[:, None, None] + (1 - cov) * bg[0], atol=max(tol, 1e-12))


def test_pool_and_area_downsampling_agree_to_rounding():
    scene = _quad_scene(supersample=3, sh=display_light(1, dtype=torch.float64), albedo=torch.rand(4, 3, dtype=torch.float64))
    pool, area = render_scene(scene), render_scene(replace(scene, downsample="area"))
    assert torch.allclose(pool.image, area.image, atol=1e-7)
    assert torch.allclose(pool.coverage, area.coverage, atol=1e-7)


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("shading", ["pixel", "vertex"])
def test_each_batch_item_renders_as_if_alone(batch, shading):
    torch.manual_seed(batch)
    vertices = _quad(batch) + torch.randn(batch, 4, 3, dtype=torch.float64) * torch.tensor([0.5, 0.5, 3.0], dtype=torch.float64)
    albedo = torch.rand(batch, 4, 3, dtype=torch.float64)
    sh = directional_sh(torch.randn(batch, 3, dtype=torch.float64) - torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64),
                        torch.full((batch, 3), 2.0, dtype=torch.float64), ambient=0.3)  # fmt: skip
    common = {"triangles": QUAD_TRIS, "shading": shading, "supersample": 2}
    out = render_scene(Scene(vertices, camera=_camera(), albedo=albedo, sh=sh, **common))
    assert out.image.shape == (batch, 3, HEIGHT, WIDTH) and out.fragments.batch_size == batch
    for b in range(batch):
        alone = render_scene(Scene(vertices[b : b + 1], camera=_camera(), albedo=albedo[b], sh=sh[b : b + 1], **common))
        assert torch.equal(out.image[b], alone.image[0])
        assert torch.equal(out.coverage[b], alone.coverage[0])
        assert torch.equal(out.fragments.face_index[b], alone.fragments.face_index[0])
    # A camera per item gives the same images as one shared camera.
    per_item = render_scene(Scene(vertices, camera=_camera(batch), albedo=albedo, sh=sh, **common))
    assert torch.equal(per_item.image, out.image)


def test_texture_on_some_triangles():
    """A constant texture on the first triangle: its pixels take the texel colour, the other the vertex albedo."""
    texel = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float32)
    texture = UVTexture(image=texel.expand(8, 8, 3).contiguous(), uvs=torch.rand(4, 2, dtype=torch.float64),
                        uv_triangles=torch.tensor([[0, 1, 2], [0, 0, 0]]), textured=torch.tensor([True, False]))  # fmt: skip
    light = ambient_sh(1.0, dtype=torch.float64)
    one = render_scene(_quad_scene(texture=texture, sh=light))
    image, face = one.image[0], one.fragments.face_index[0]
    assert torch.allclose(image[:, face == 0].T, texel.double().expand(int((face == 0).sum()), 3), atol=1e-6)
    assert torch.allclose(image[:, face == 1], torch.tensor(0.5, dtype=torch.float64), atol=1e-12)
    out = render_scene(_quad_scene(texture=texture, sh=light, supersample=2))
    face = out.fragments.face_index[0]
    # Texture coverage: the share of sub-pixels on the textured triangle.
    expected = (face == 0).double().reshape(HEIGHT, 2, WIDTH, 2).mean(dim=(1, 3))
    assert torch.allclose(out.texture_coverage[0, 0], expected, atol=1e-15)
    assert bool((out.texture_coverage <= out.coverage).all())


def test_normals_and_renormalisation():
    """Given normals are used (here: tilted to the light); renormalising changes the result by rounding only."""
    sh = directional_sh(torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64), torch.full((1, 3), 3.0, dtype=torch.float64))
    tilted = torch.tensor([[0.6, 0.0, -0.8]], dtype=torch.float64).expand(1, 4, 3)
    plain = render_scene(_quad_scene(sh=sh))
    lit = render_scene(_quad_scene(sh=sh, normals=tilted))
    renorm = render_scene(_quad_scene(sh=sh, normals=tilted, renormalize=True))
    covered = lit.fragments.mask[0]
    assert float(lit.image[0][:, covered].mean()) > float(plain.image[0][:, covered].mean()) + 0.1
    assert torch.allclose(renorm.image, lit.image, atol=1e-14)


def test_gradients_float64():
    """Differentiable w.r.t. albedo, light and vertices (pixel shading, pooled supersamples)."""
    albedo = (torch.rand(4, 3, dtype=torch.float64) * 0.5 + 0.2).requires_grad_(True)
    sh = (ambient_sh(0.7, dtype=torch.float64) + 0.05 * torch.randn(1, 9, 3, dtype=torch.float64)).requires_grad_(True)
    vertices = (_quad() + 0.3 * torch.randn(1, 4, 3, dtype=torch.float64)).requires_grad_(True)

    def image(a, light, v):
        return render_scene(Scene(v, QUAD_TRIS, _camera(), albedo=a, sh=light, supersample=2)).image

    assert torch.autograd.gradcheck(image, (albedo, sh, vertices), eps=1e-6, atol=1e-6)


def test_scene_to_casts_every_tensor():
    scene = _quad_scene().to(dtype=torch.float32)
    assert scene.vertices.dtype == scene.camera.dtype == scene.albedo.dtype == scene.sh.dtype == torch.float32
    assert scene.triangles.dtype == torch.int64
    assert render_scene(scene).image.dtype == torch.float32


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "changes, error, match",
    [({"vertices": _quad()[0]}, ValueError, "vertices"),
     ({"vertices": _quad().numpy()}, TypeError, "vertices"),
     ({"vertices": _quad().index_fill(1, torch.tensor([2]), float("nan"))}, ValueError, "vertices"),
     ({"triangles": torch.tensor([[0, 1, 4]])}, ValueError, "triangles"),
     ({"triangles": QUAD_TRIS.double()}, TypeError, "triangles"),
     ({"camera": _camera(dtype=torch.float32)}, TypeError, "camera"),
     ({"camera": _camera(batch=2)}, ValueError, "camera"),
     ({"camera": (FOCAL, WIDTH, HEIGHT)}, TypeError, "camera"),
     ({"albedo": torch.zeros(5, 3, dtype=torch.float64)}, ValueError, "albedo"),
     ({"sh": torch.zeros(9, 3, dtype=torch.float64)}, ValueError, "sh"),
     ({"sh": torch.full((1, 9, 3), float("nan"), dtype=torch.float64)}, ValueError, "sh"),
     ({"normals": torch.zeros(1, 3, 3, dtype=torch.float64)}, ValueError, "normals"),
     ({"shading": "flat"}, ValueError, "shading"),
     ({"downsample": "bicubic"}, ValueError, "downsample"),
     ({"renormalize": 1}, TypeError, "renormalize"),
     ({"background": torch.zeros(1, 3, HEIGHT, WIDTH + 1, dtype=torch.float64)}, ValueError, "background"),
     ({"background": torch.zeros(4, dtype=torch.float64)}, ValueError, "background"),
     ({"background": (0.0, 0.0, 0.0)}, TypeError, "background"),
     ({"supersample": 0}, ValueError, "supersample"),
     ({"supersample": 1.5}, TypeError, "supersample"),
     ({"supersample": True}, TypeError, "supersample"),
     ({"raster_dtype": torch.float16}, TypeError, "raster_dtype"),
     ({"texture": "face.png"}, TypeError, "texture")],
)  # fmt: skip
def test_scene_errors(changes, error, match):
    with pytest.raises(error, match=match):
        _quad_scene(**changes)


def test_texture_errors():
    ok = {"image": torch.zeros(8, 8, 3), "uvs": torch.rand(4, 2), "uv_triangles": torch.tensor([[0, 1, 2], [0, 2, 3]]),
          "textured": torch.tensor([True, False])}  # fmt: skip
    texture = UVTexture(**ok)
    with pytest.raises(ValueError, match="texture"):
        _quad_scene(texture=texture, shading="vertex")
    with pytest.raises(ValueError, match="texture"):
        _quad_scene(texture=UVTexture(**{**ok, "uv_triangles": ok["uv_triangles"][:1], "textured": ok["textured"][:1]}))
    with pytest.raises(ValueError, match=r"texture\.image"):
        _quad_scene(texture=UVTexture(**{**ok, "image": torch.zeros(3, 8, 8, 3)}), vertices=_quad(2),
                    sh=ambient_sh(1.0, 2, dtype=torch.float64))  # fmt: skip
    for key, bad, err in (("image", torch.zeros(8, 8), ValueError), ("image", torch.full((8, 8, 3), float("nan")), ValueError),
                          ("uvs", torch.zeros(4, 3), ValueError), ("uv_triangles", torch.tensor([[0, 1, 9], [0, 2, 3]]), ValueError),
                          ("textured", torch.tensor([1, 0]), TypeError), ("textured", torch.tensor([True]), ValueError)):  # fmt: skip
        with pytest.raises(err, match=f"texture.{key}"):
            UVTexture(**{**ok, key: bad})
    with pytest.raises(TypeError, match="scene"):
        render_scene({"vertices": _quad()})


# ------------------------------------------------------------------------------ the renderers it replaced
def _synth_inputs(model) -> dict:
    """Seeded inputs of the synthetic benchmark's textured-head render (``scene_reference.npz``'s ``synth_*``)."""
    from facerecon.geometry.rotation import head_angles_to_camera_rotation

    rng = np.random.default_rng(0)
    head_v = model.submesh("head").vertex_count
    angles = torch.tensor([0.1, 0.5, -0.05], dtype=torch.float64)
    sh = directional_sh(torch.tensor([[-0.5, -0.3, -0.8]], dtype=torch.float64),
                        torch.full((1, 3), 0.6 * math.pi, dtype=torch.float64), ambient=0.4)[0].numpy()  # fmt: skip
    return {
        "identity": rng.normal(size=model.identity_count) * 0.8,
        "expression": rng.uniform(0.0, 0.3, size=model.expression_count),
        "albedo": (0.4 + 0.4 * rng.random((head_v, 3))).astype(np.float32),
        "texture": rng.random((32, 32, 3)).astype(np.float32),
        "background": rng.random((40, 48, 3)).astype(np.float32),
        "rotation": head_angles_to_camera_rotation(angles).numpy(),
        "translation": np.array([4.0, 12.0, 900.0]),
        "intrinsics": (140.0, 140.0, 23.5, 19.5),
        "image_size": (40, 48),
        "sh": sh,
    }


@pytest.fixture(scope="module")
def reference():
    return np.load(REFERENCE)


@pytest.mark.parametrize("s", [1, 2, 3])
def test_same_bits_as_the_synth_renders(face_model, reference, s, artifacts_dir):
    inp = _synth_inputs(face_model)
    height, width = inp["image_size"]
    camera = PerspectiveCamera(*(torch.tensor([v], dtype=torch.float64) for v in inp["intrinsics"]), width, height)
    background = torch.from_numpy(inp["background"]).permute(2, 0, 1)[None] if s == 2 else None
    out = render_head(face_model, identity=torch.from_numpy(inp["identity"])[None],
                      expression=torch.from_numpy(inp["expression"])[None], albedo=torch.from_numpy(inp["albedo"]),
                      texture=torch.from_numpy(inp["texture"]), rotation=torch.from_numpy(inp["rotation"])[None],
                      translation=torch.from_numpy(inp["translation"])[None], camera=camera,
                      sh=torch.from_numpy(inp["sh"])[None], background=background, supersample=s)  # fmt: skip
    image = out.image[0].permute(1, 2, 0).numpy()
    assert image.dtype == np.float32
    assert np.array_equal(image, reference[f"synth_ss{s}_image"])
    assert np.array_equal(out.coverage[0, 0].numpy(), reference[f"synth_ss{s}_coverage"])
    assert np.array_equal(out.texture_coverage[0, 0].numpy(), reference[f"synth_ss{s}_face"])
    assert 0.2 < float(out.coverage.mean()) < 0.9 and float(out.texture_coverage.mean()) > 0.1
    if artifacts_dir is not None:
        from PIL import Image

        Image.fromarray(to_uint8(out.image)[0]).save(artifacts_dir / f"scene_head_ss{s}.png")


@pytest.mark.parametrize("s", [1, 2, 3])
def test_same_bits_as_the_calibration_renders(face_model, reference, s):
    head = face_model.submesh("head")
    identity = torch.from_numpy(reference[f"calib_ss{s}_identity"]).float()
    with torch.no_grad():
        vertices = face_model(identity, submesh="head").double()
        cam = transform(vertices, torch.from_numpy(reference[f"calib_ss{s}_rotation"]),
                        torch.from_numpy(reference[f"calib_ss{s}_translation"]))  # fmt: skip
        out = render_scene(Scene(cam, head.triangles, PerspectiveCamera.from_focal(250.0, 128, 128, 2, dtype=torch.float64),
                                 albedo=torch.from_numpy(reference["calib_albedo"]),
                                 sh=torch.from_numpy(reference[f"calib_ss{s}_sh"]), shading="vertex",
                                 background=torch.tensor([0.55, 0.57, 0.60], dtype=torch.float64), supersample=s))  # fmt: skip
    assert np.array_equal(to_uint8(out.image), reference[f"calib_ss{s}_images"])
    if s == 1:
        assert np.array_equal(out.fragments.face_index.numpy(), reference["calib_ss1_face_index"])


def _head_view(face_model, size: int = 96):
    """The mean head seen from the front, float32: ``(head sub-mesh, camera vertices (1, V, 3), camera)``."""
    head = face_model.submesh("head")
    verts = face_model(submesh="head")
    cam = verts * torch.tensor([1.0, -1.0, -1.0]) + torch.tensor([0.0, 20.0, 700.0])
    return head, cam, PerspectiveCamera.from_focal(2.2 * size, size, size)


def test_same_bits_as_render_images(face_model):
    """The pipeline's pictures: ``render_images`` (float32, per-pixel SH, no supersampling), shaded and clamped."""
    head, cam, camera = _head_view(face_model)
    torch.manual_seed(0)
    albedo = torch.rand(1, cam.shape[1], 3)
    sh = directional_sh(torch.tensor([[-0.4, -0.5, -1.0]]), torch.full((1, 3), 2.2), ambient=0.35)
    normals = vertex_normals(cam, head.triangles)
    ref = render_images(camera.project_with_depth(cam), head.triangles, (96, 96), normals=normals, albedo=albedo, sh_coeffs=sh)
    for given in (normals, None):
        out = render_scene(Scene(cam, head.triangles, camera, albedo=albedo, sh=sh, normals=given))
        assert out.image.dtype == torch.float32
        assert torch.equal(out.image, ref.shaded.clamp(0.0, 1.0))
        assert torch.equal(out.coverage, ref.mask)
        assert torch.equal(out.fragments.face_index, ref.fragments.face_index)
        assert torch.equal(out.fragments.depth, ref.fragments.depth)
    assert 0.3 < float(out.coverage.mean()) < 0.9


def test_head_texture_maps_the_face_triangles(face_model):
    head, face = face_model.submesh("head"), face_model.submesh("face")
    texture = head_texture(face_model, torch.zeros(16, 16, 3))
    assert int(texture.textured.sum()) == face.triangles.shape[0] and texture.textured[: face.triangles.shape[0]].all()
    assert texture.uv_triangles.shape == head.triangles.shape


def test_render_head_errors(face_model):
    one = torch.zeros(1, 3, dtype=torch.float64)
    ok = {"identity": torch.zeros(1, face_model.identity_count), "expression": torch.zeros(1, face_model.expression_count),
          "albedo": torch.full((face_model.submesh("head").vertex_count, 3), 0.5), "texture": None,
          "rotation": torch.eye(3, dtype=torch.float64)[None], "translation": one + torch.tensor([0.0, 0.0, 700.0]),
          "camera": PerspectiveCamera.from_focal(100.0, 32, 32, dtype=torch.float64), "sh": ambient_sh(1.0, dtype=torch.float64)}  # fmt: skip
    assert render_head(face_model, **ok).image.shape == (1, 3, 32, 32)
    with pytest.raises(TypeError, match="model"):
        render_head(object(), **ok)
    for key, bad, err in (("identity", torch.zeros(1, 3), ValueError), ("expression", np.zeros((1, face_model.expression_count)), TypeError),
                          ("rotation", torch.eye(3, dtype=torch.float64), ValueError),
                          ("translation", torch.full((1, 3), float("nan"), dtype=torch.float64), ValueError),
                          ("sh", ambient_sh(1.0, 2, dtype=torch.float64), ValueError), ("supersample", 0, ValueError)):  # fmt: skip
        with pytest.raises(err, match=key):
            render_head(face_model, **{**ok, key: bad})
