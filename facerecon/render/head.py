"""The face model's textured head, rendered at any expression, pose, camera and light.

A fitted face is an identity, an expression, a per-vertex albedo of the ``"head"`` sub-mesh and (optionally) an
albedo texture of the ``"face"`` sub-mesh's UV tile (e.g. a photo unwrapped and de-lit). :func:`render_head`
draws it through :func:`~facerecon.render.scene.render_scene`: the ``"face"`` triangles take their albedo from
the texture, the rest of the head (back, ears, neck, eyeballs, mouth interior) from the per-vertex albedo,
shaded per pixel with SH light. This is the image formation of the synthetic large-pose benchmark
(:mod:`facerecon.eval.synth`); training-data generators call it directly with new poses, expressions and lights.

Arithmetic (so the benchmark's images do not change): vertices from the model in its own dtype, posed in the
dtype of ``rotation``, rasterized in float32, normals renormalised per pixel, blocks averaged by OpenCV
``INTER_AREA``; the images are float32.

Example:
    >>> out = render_head(model, identity=identity, expression=expression, albedo=albedo, texture=texture,
    ...                   rotation=R, translation=t, camera=camera, sh=sh, supersample=2)  # doctest: +SKIP
    >>> out.image.shape                                                                       # doctest: +SKIP
    torch.Size([1, 3, 450, 450])
"""

from __future__ import annotations

import torch

from facerecon.core.check import check_finite, check_floating, check_shape, describe
from facerecon.geometry.camera import PerspectiveCamera, transform
from facerecon.models.face_model import FaceModel
from facerecon.render.scene import RenderedScene, Scene, UVTexture, render_scene

__all__ = ["head_texture", "render_head"]


def head_texture(model: FaceModel, image: torch.Tensor) -> UVTexture:
    """A :class:`~facerecon.render.scene.UVTexture` that maps ``image`` onto the ``"face"`` triangles of the head.

    Args:
        model: the face model (its UVs and sub-meshes).
        image: ``(S, S, 3)`` or ``(B, S, S, 3)`` float32 albedo of the face UV tile in [0, 1].
    """
    head = model.submesh("head")
    face = model.submesh("face")
    textured = torch.arange(head.triangles.shape[0], device=head.triangles.device) < face.triangles.shape[0]
    return UVTexture(image=image, uvs=model.uvs, uv_triangles=head.uv_triangles, textured=textured)


def render_head(
    model: FaceModel,
    *,
    identity: torch.Tensor,
    expression: torch.Tensor,
    albedo: torch.Tensor,
    texture: torch.Tensor | None,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    camera: PerspectiveCamera,
    sh: torch.Tensor,
    background: torch.Tensor | None = None,
    supersample: int = 2,
) -> RenderedScene:
    """Render the ``"head"`` sub-mesh of faces with a face texture, per-vertex albedo and SH light.

    Args:
        model: the face model.
        identity: ``(B, K_id)`` identity coefficients.
        expression: ``(B, K_exp)`` expression weights.
        albedo: ``(B, V_head, 3)`` or ``(V_head, 3)`` per-vertex RGB albedo in [0, 1] (used off the texture).
        texture: ``(S, S, 3)`` or ``(B, S, S, 3)`` float32 albedo of the face UV tile in [0, 1], or None.
        rotation: ``(B, 3, 3)`` model-to-camera rotations; translation: ``(B, 3)`` mm (``X_cam = R X + t``),
            float64 for the benchmark's arithmetic.
        camera: a :class:`~facerecon.geometry.camera.PerspectiveCamera` of the output image, in the rotation's dtype.
        sh: ``(B, 9, 3)`` SH radiance of the light, camera space.
        background: None (black), a ``(3,)`` colour or a ``(B, 3, H, W)`` image at the output size.
        supersample: rasterize at this factor and average (antialiasing).

    Returns:
        A :class:`~facerecon.render.scene.RenderedScene`; its ``texture_coverage`` is the ``"face"`` coverage.

    Raises:
        TypeError / ValueError: naming the argument, on other kinds, shapes, dtypes or values.
    """
    if not isinstance(model, FaceModel):
        raise TypeError(f"model: expected a FaceModel, got {describe(model)}")
    sizes: dict[str, int] = {}
    for name, value, spec in (("identity", identity, ("B", model.identity_count)),
                              ("expression", expression, ("B", model.expression_count)),
                              ("rotation", rotation, ("B", 3, 3)), ("translation", translation, ("B", 3))):  # fmt: skip
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor of shape {spec}, got {describe(value)}")
        check_shape(value, name, spec, sizes)
        check_floating(value, name)
        check_finite(value, name)
    head = model.submesh("head")
    dtype = model.mean.dtype
    vertices = model(identity.to(dtype), expression.to(dtype), submesh="head").to(rotation.dtype)
    return render_scene(
        Scene(
            vertices=transform(vertices, rotation, translation.to(rotation.dtype)),
            triangles=head.triangles,
            camera=camera,
            albedo=albedo,
            sh=sh,
            texture=None if texture is None else head_texture(model, texture),
            shading="pixel",
            renormalize=True,
            background=background,
            supersample=supersample,
            downsample="area",
            raster_dtype=torch.float32,
        )
    )
