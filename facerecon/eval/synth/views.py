"""Synthetic views: a fitted subject's head turned to a yaw, rendered (:func:`facerecon.render.head.render_head`)
with its ground truth (landmarks, pose, camera, mesh)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facerecon.core.check import check_choice, check_finite, check_shape, describe
from facerecon.eval.synth.presets import (
    EXPRESSION_PRESETS,
    LIGHTING_PRESETS,
    SynthConfig,
    check_yaws,
    expression_weights,
    lighting_sh,
)
from facerecon.pipeline.subject import FittedSubject
from facerecon.geometry.camera import PerspectiveCamera, focal_px_from_35mm
from facerecon.geometry.rotation import (
    camera_rotation_to_head_angles,
    head_angles_to_camera_rotation,
)
from facerecon.models.face_model import FaceModel
from facerecon.render.head import render_head
from facerecon.render.rasterize import check_image_size

__all__ = ["SynthView", "render_subject", "render_view", "view_pose"]


@dataclass(frozen=True, eq=False)
class SynthView:
    """One synthetic image and its ground truth.

    Attributes:
        image: ``(N, N, 3)`` uint8 RGB.
        mask: ``(N, N)`` bool, pixels mostly covered by the head.
        face_mask: ``(N, N)`` bool, pixels mostly covered by the ``"face"`` sub-mesh (the texture's area).
        landmarks68: ``(68, 3)`` float64 ``(x px, y px, z px)`` (see the module docstring).
        pose_para: ``(7,)`` float64 ``[pitch, yaw, roll (rad), tx, ty, tz (mm), scale (px/mm)]``.
        rotation: ``(3, 3)`` model-to-camera rotation; translation: ``(3,)`` mm.
        intrinsics: ``(fx, fy, cx, cy)`` px.
        face_vertices: ``(V_face, 3)`` float64 camera-space ``"face"`` mesh, mm (the ground-truth mesh).
        yaw_deg: the requested yaw; expression, lighting: the preset names.
    """

    image: np.ndarray
    mask: np.ndarray
    face_mask: np.ndarray
    landmarks68: np.ndarray
    pose_para: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    intrinsics: tuple[float, float, float, float]
    face_vertices: np.ndarray
    yaw_deg: float
    expression: str
    lighting: str


# ------------------------------------------------------------------------------------------------ render
def _background(photo: np.ndarray, size: int, kind: str, sigma: float) -> np.ndarray:
    """``(size, size, 3)`` float32 in [0, 1]: the photo cropped to a square and blurred, or its border colour."""
    img = photo.astype(np.float32) / 255.0
    if kind == "plain":
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        return np.broadcast_to(border.mean(0), (size, size, 3)).astype(np.float32).copy()
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = cv2.resize(img[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(square, (0, 0), sigmaX=max(sigma * size, 0.5))


def render_subject(
    model: FaceModel,
    subject: FittedSubject,
    *,
    expression: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    intrinsics: tuple[float, float, float, float],
    image_size: tuple[int, int],
    sh: np.ndarray,
    background: np.ndarray | None = None,
    supersample: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a fitted subject's textured head with any expression, pose, camera and light.

    Args:
        model: the face model the subject was fitted with.
        subject: from :func:`fit_subject`.
        expression: ``(K_exp,)`` expression weights.
        rotation: ``(3, 3)`` model-to-camera rotation; translation: ``(3,)`` mm.
        intrinsics: ``(fx, fy, cx, cy)`` px at ``image_size``.
        image_size: ``(H, W)``.
        sh: ``(9, 3)`` SH radiance of the light (camera space).
        background: ``(H, W, 3)`` float in [0, 1] behind the head (default black).
        supersample: render at this factor, then average down.

    Returns:
        ``(image (H, W, 3) float32 in [0, 1], head coverage (H, W) float32 in [0, 1], face coverage (H, W)
        float32)``.

    Raises:
        TypeError / ValueError: arguments of other types, shapes or values (NaN, a bad size).
    """
    if not isinstance(subject, FittedSubject):
        raise TypeError(f"subject: expected a FittedSubject (from fit_subject), got {describe(subject)}")
    for arg, value, spec in (("expression", expression, (model.expression_count,)), ("rotation", rotation, (3, 3)),
                             ("translation", translation, (3,)), ("sh", sh, (9, 3)),
                             ("intrinsics", np.asarray(intrinsics, dtype=np.float64), (4,))):  # fmt: skip
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{arg}: expected an array of shape {spec}, got {describe(value)}")
        check_shape(value, arg, spec)
        check_finite(value, arg)
    size = check_image_size(image_size)
    if background is not None:
        check_shape(background, "background", (size[0], size[1], 3))
    if isinstance(supersample, bool) or not isinstance(supersample, int) or supersample < 1:
        raise ValueError(f"supersample: expected a positive int, got {supersample!r}")
    rec = subject.reconstruction
    height, width = size
    camera = PerspectiveCamera(*(torch.tensor([float(v)], dtype=torch.float64) for v in intrinsics), width, height)
    out = render_head(
        model,
        identity=torch.from_numpy(rec.coefficients.identity)[None],
        expression=torch.as_tensor(np.asarray(expression, dtype=np.float64))[None],
        albedo=torch.from_numpy(subject.albedo),
        texture=torch.from_numpy(subject.albedo_texture),
        rotation=torch.as_tensor(np.asarray(rotation, dtype=np.float64))[None],
        translation=torch.as_tensor(np.asarray(translation, dtype=np.float64))[None],
        camera=camera,
        sh=torch.as_tensor(np.asarray(sh, dtype=np.float64))[None],
        background=None if background is None else torch.as_tensor(np.asarray(background))[None].permute(0, 3, 1, 2),
        supersample=supersample,
    )
    image = out.image[0].permute(1, 2, 0).numpy()
    return image, out.coverage[0, 0].numpy(), out.texture_coverage[0, 0].numpy()


def view_pose(subject: FittedSubject, yaw_deg: float, config: SynthConfig) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """``(rotation (3, 3), translation (3,) mm, intrinsics)`` of a view: the head at these angles, its pivot on
    the optical axis at the distance that gives the frontal face ``config.face_fraction`` of the image."""
    n = config.image_size
    f = focal_px_from_35mm(config.focal_35mm, n, n)
    c = (n - 1) / 2.0
    distance = f * subject.face_height_mm / (config.face_fraction * n)
    angles = torch.tensor([math.radians(config.pitch_deg), math.radians(yaw_deg), math.radians(config.roll_deg)],
                          dtype=torch.float64)  # fmt: skip
    R = head_angles_to_camera_rotation(angles).numpy()
    t = np.array([0.0, 0.0, distance]) - R @ subject.pivot
    return R, t, (f, f, c, c)


def render_view(
    model: FaceModel,
    subject: FittedSubject,
    yaw_deg: float,
    *,
    expression: str = "fitted",
    lighting: str = "fitted",
    config: SynthConfig = SynthConfig(),  # noqa: B008 (a frozen dataclass)
) -> SynthView:
    """Render one synthetic view of a fitted subject and its ground truth (see the module docstring).

    Args:
        model: the face model the subject was fitted with.
        subject: from :func:`fit_subject`.
        yaw_deg: head yaw in degrees, [-90, 90]; positive turns the nose to the viewer's right.
        expression: a key of :data:`EXPRESSION_PRESETS`.
        lighting: one of :data:`LIGHTING_PRESETS`.
        config: image size, camera, background.
    """
    (yaw_deg,) = check_yaws([yaw_deg])
    check_choice(expression, "expression", tuple(EXPRESSION_PRESETS))
    check_choice(lighting, "lighting", LIGHTING_PRESETS)
    rec = subject.reconstruction
    n = config.image_size
    R, t, intr = view_pose(subject, yaw_deg, config)
    weights = expression_weights(model, expression, rec.coefficients.expression)
    sh = lighting_sh(lighting, rec.coefficients.sh, subject.light_level)
    bg = _background(subject.photo, n, config.background, config.blur_sigma)
    image, cover, face_cover = render_subject(model, subject, expression=weights, rotation=R, translation=t,
                                              intrinsics=intr, image_size=(n, n), sh=sh, background=bg,
                                              supersample=config.supersample)  # fmt: skip
    verts = model(torch.from_numpy(rec.coefficients.identity).float()[None], torch.from_numpy(weights).float()[None],
                  submesh="face")[0].double().numpy()  # fmt: skip
    cam = verts @ R.T + t
    fx, fy, cx, cy = intr
    pivot_depth = float(t[2] + R[2] @ subject.pivot)
    scale = fx / pivot_depth
    lm = cam[model.landmarks("ibug68").vertex_indices.cpu().numpy()]
    landmarks = np.stack([fx * lm[:, 0] / lm[:, 2] + cx, fy * lm[:, 1] / lm[:, 2] + cy,
                          (pivot_depth - lm[:, 2]) * scale], axis=1)  # fmt: skip
    angles = camera_rotation_to_head_angles(torch.from_numpy(R)).numpy()
    pose_para = np.concatenate([angles, t, [scale]]).astype(np.float64)
    return SynthView(
        image=np.round(image * 255.0).astype(np.uint8),
        mask=cover > 0.5,
        face_mask=face_cover > 0.5,
        landmarks68=landmarks,
        pose_para=pose_para,
        rotation=R,
        translation=t,
        intrinsics=intr,
        face_vertices=cam,
        yaw_deg=yaw_deg,
        expression=expression,
        lighting=lighting,
    )
