"""A large-pose benchmark with ground truth: fitted photos re-rendered at new yaws, expressions and lights.

The self-augmentation of paper 000 ("Implementation details": every training face is re-rendered at 26 large
yaw angles, 60 to 90 degrees each way): fit each photo (:class:`~facerecon.pipeline.run.Reconstructor`), then
turn the fitted head about its own vertical axis and render it with its photo texture, so that every synthetic
image comes with exact ground truth. The files follow the AFLW2000-3D and NoW layouts that
:func:`facerecon.eval.datasets.read_aflw2000` and :func:`~facerecon.eval.datasets.read_now` read, so
``facerecon eval aflw2000|now`` measures any method on them.

How a view is made (:func:`render_view`):

* **Geometry**: the fitted identity with the fitted expression or a preset (:data:`EXPRESSION_PRESETS`), the
  ``"head"`` sub-mesh. The head turns about the vertical model axis (y) through its *pivot*: x and z the centre
  of the neutral head's bounding box (the skull), y the mean height of its 68 iBUG landmarks. The camera
  rotation is ``head_angles_to_camera_rotation((pitch, yaw, roll))`` (docs/conventions.md: positive yaw turns
  the nose to the viewer's right), and the pivot sits on the optical axis at a distance that makes the frontal
  neutral face's landmark box ``face_fraction`` of the image height; so the face stays centred and in front of
  the camera at every yaw.
* **Colour**: the photo unwrapped into the face UV tile (:func:`facerecon.render.uv.unwrap_texture`, the
  pipeline's texture baker's weight, stricter at grazing angles, none on the neck) where the photo saw the
  surface, the fitted per-vertex albedo elsewhere (the hidden side, the back of the head, the mouth interior,
  the eyes, with painted irises), so a 90 degree view is not black. Face vertices the photo does not show take
  their mirror vertex's albedo (or, when that is hidden too, and on the neck, the median seen skin albedo). The photo texels carry the photo's light;
  they are de-lit by the fitted SH shading at the fitted pose (ratio-image relighting:
  ``albedo = photo / S_fit(n_fit)``) and every pixel is shaded ``albedo * S(n)`` with the new light
  (:data:`LIGHTING_PRESETS`; ``"fitted"`` keeps the photo's SH light, fixed to the camera).
* **Image**: ``image_size`` square (450, AFLW2000-3D's size), 2x2 supersampled, over the photo resized to
  cover the frame and blurred (``background="blur"``) or its mean border colour (``"plain"``).

Ground truth per view:

* ``pt3d_68``: the model's 68 fixed iBUG vertices, projected (x, y px) with z = (pivot depth - depth) x scale,
  px, positive towards the camera; occluded points are projected too. This is the "3D landmark" convention of
  AFLW2000-3D's ``pt3d_68`` (Zhu et al. 2016: the 68 vertices of the fitted 3DMM, whether visible or not), so
  at large yaw the far jaw lies inside the face, not on the silhouette; the visible jaw contour of the ICT
  ``*_jawline_extended`` schemes is not used.
* ``Pose_Para``: ``[pitch, yaw, roll, tx, ty, tz, scale]``: head angles in radians in facerecon's convention
  (docs/conventions.md; the reader bins ``|yaw|``), the model-to-camera translation in mm, and the
  weak-perspective scale ``fx / pivot depth`` (px per mm at the pivot).
* the ground-truth mesh (``"face"`` sub-mesh, camera space, mm) as OBJ beside each AFLW2000 image; for NoW,
  the subject's neutral ``"face"`` mesh in model space as its scan with the 7 NoW landmarks
  (:data:`~facerecon.eval.mesh_metrics.NOW_LANDMARKS_IBUG68`) as a MeshLab ``.pp`` file.

Example:
    >>> report = synthesize(["a.jpg", "b.jpg"], "synth", yaws_deg=(-90, -45, 0, 45, 90))   # doctest: +SKIP
    >>> # then: facerecon eval aflw2000 synth/aflw2000 --method mediapipe
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from facerecon.core.check import check_choice, check_finite, check_shape, describe
from facerecon.core.errors import FaceReconError, NoFaceError
from facerecon.core.mesh import Mesh
from facerecon.geometry.camera import focal_px_from_35mm
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.geometry.rotation import (
    camera_rotation_to_head_angles,
    head_angles_to_camera_rotation,
)
from facerecon.io.atomic import atomic_path, write_text_atomic
from facerecon.models.face_model import FaceModel
from facerecon.models.regions import Region
from facerecon.pipeline.reconstruction import Reconstruction
from facerecon.render.interpolate import interpolate
from facerecon.render.rasterize import check_image_size, rasterize
from facerecon.render.sh import directional_sh, irradiance
from facerecon.render.uv import unwrap_texture
from facerecon.texture.delight import texel_normals, texel_shading
from facerecon.texture.photo import FULL_WEIGHT_COSINE

__all__ = [
    "BACKGROUNDS",
    "DEFAULT_YAWS_DEG",
    "EXPRESSION_PRESETS",
    "LAYOUTS",
    "LIGHTING_PRESETS",
    "FittedSubject",
    "SynthConfig",
    "SynthFailure",
    "SynthItem",
    "SynthReport",
    "SynthView",
    "check_names",
    "check_yaws",
    "expression_weights",
    "fit_options",
    "fit_subject",
    "lighting_sh",
    "render_subject",
    "render_view",
    "synthesize",
    "write_aflw2000_view",
    "write_now_scan",
    "write_now_view",
]

#: Default yaws, degrees: 0 to +-90 in steps of 15 (13 views).
DEFAULT_YAWS_DEG: tuple[float, ...] = tuple(float(y) for y in range(-90, 91, 15))

#: Expression presets: ARKit-named ICT weights (others 0). ``"fitted"`` keeps the photo's fitted expression.
EXPRESSION_PRESETS: dict[str, dict[str, float]] = {
    "fitted": {},
    "neutral": {},
    "smile": {"mouthSmile_L": 0.8, "mouthSmile_R": 0.8, "cheekSquint_L": 0.3, "cheekSquint_R": 0.3},
    "jawOpen": {"jawOpen": 0.55},
    "surprise": {
        "browInnerUp_L": 0.8, "browInnerUp_R": 0.8, "browOuterUp_L": 0.8, "browOuterUp_R": 0.8,
        "eyeWide_L": 0.5, "eyeWide_R": 0.5, "jawOpen": 0.3,
    },
    "pucker": {"mouthPucker": 0.8, "mouthFunnel": 0.2},
    "blink": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
}

#: Lighting presets: ``"fitted"`` (the photo's SH light), ``"ambient"`` (even), and a key light from the
#: viewer's ``"left"``, ``"right"`` or from the ``"top"`` plus ambient, each as bright as the fitted light.
LIGHTING_PRESETS: tuple[str, ...] = ("fitted", "ambient", "left", "right", "top")
#: Camera-space directions towards the key light of the directional presets (x right, y down, z forward).
_LIGHT_DIRECTIONS = {"left": (-0.8, -0.2, -0.55), "right": (0.8, -0.2, -0.55), "top": (0.0, -0.85, -0.5)}

LAYOUTS: tuple[str, ...] = ("aflw2000", "now", "both")
BACKGROUNDS: tuple[str, ...] = ("blur", "plain")

# Ratio-image relighting: the fitted shading is floored here before dividing the photo texels by it.
_MIN_FIT_SHADING = 0.12
# Iris and pupil colours (linear RGB in [0, 1]) and radii (mm) painted on the otherwise white eyeballs.
_IRIS_RGB = (0.28, 0.19, 0.13)
_PUPIL_RGB = (0.04, 0.03, 0.03)
_IRIS_RADIUS_MM = 5.8
_PUPIL_RADIUS_MM = 2.2


@dataclass(frozen=True)
class SynthConfig:
    """How views are rendered and written.

    Attributes:
        image_size: the square image's side, px (450: AFLW2000-3D).
        focal_35mm: 35 mm-equivalent focal length of the camera (50: a portrait lens).
        face_fraction: height of the frontal neutral face's 68-landmark box over the image height.
        pitch_deg, roll_deg: the other head angles of every view, degrees.
        background: ``"blur"`` (the photo, blurred) or ``"plain"`` (its mean border colour).
        blur_sigma: Gaussian blur of the background as a fraction of ``image_size``.
        supersample: renders at this factor and downsamples (antialiasing).
        jpeg_quality: of the written images.
        write_meshes: write the ground-truth OBJ beside each AFLW2000 image.
    """

    image_size: int = 450
    focal_35mm: float = 50.0
    face_fraction: float = 0.38
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    background: str = "blur"
    blur_sigma: float = 0.05
    supersample: int = 2
    jpeg_quality: int = 95
    write_meshes: bool = True

    def __post_init__(self) -> None:
        check_choice(self.background, "background", BACKGROUNDS)
        for name in ("image_size", "supersample", "jpeg_quality"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.image_size < 32:
            raise ValueError(f"image_size: expected at least 32 px, got {self.image_size}")
        if self.jpeg_quality > 100:
            raise ValueError(f"jpeg_quality: expected 1..100, got {self.jpeg_quality}")
        for name in ("focal_35mm", "face_fraction", "blur_sigma"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")
        if self.face_fraction >= 1:
            raise ValueError(f"face_fraction: expected a fraction below 1, got {self.face_fraction!r}")
        for name in ("pitch_deg", "roll_deg"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not -90 < value < 90:
                raise ValueError(f"{name}: expected degrees in (-90, 90), got {value!r}")


@dataclass(frozen=True, eq=False)
class FittedSubject:
    """A fitted photo, ready to re-render.

    Attributes:
        name: the photo's file stem (made unique in a batch).
        photo: ``(H, W, 3)`` uint8 RGB.
        reconstruction: the fit (largest face).
        albedo_texture: ``(S, S, 3)`` float32 in [0, 1], the face tile's albedo: the photo de-lit by the fitted
            shading where the photo sees the surface, the fitted per-vertex albedo elsewhere.
        photo_weight: ``(S, S)`` float32 in [0, 1], the share of each texel taken from the photo itself.
        albedo: ``(V_head, 3)`` float32 per-vertex albedo with the irises painted on the eyeballs.
        pivot: ``(3,)`` float64 model-space point the head turns about, mm.
        face_height_mm: height of the neutral face's 68-landmark box, mm.
        light_level: ``(3,)`` float64 mean fitted shading of the face vertices that face the camera in the photo
            (the brightness the lighting presets match).
    """

    name: str
    photo: np.ndarray
    reconstruction: Reconstruction
    albedo_texture: np.ndarray
    photo_weight: np.ndarray
    albedo: np.ndarray
    pivot: np.ndarray
    face_height_mm: float
    light_level: np.ndarray


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


@dataclass(frozen=True)
class SynthItem:
    """One written view: its name and the files written for it."""

    subject: str
    name: str
    yaw_deg: float
    expression: str
    lighting: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class SynthFailure:
    """A photo that could not be used, why (one line), and the error class's name (``kind``)."""

    photo: str
    reason: str
    kind: str = "FaceReconError"


@dataclass(frozen=True)
class SynthReport:
    """What :func:`synthesize` wrote and which photos failed."""

    out_dir: Path
    items: tuple[SynthItem, ...]
    failures: tuple[SynthFailure, ...]
    subjects: tuple[str, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------------------------------------ checks
def check_yaws(yaws_deg: object) -> tuple[float, ...]:
    """The yaws as a tuple of floats; raises TypeError / ValueError unless a non-empty sequence in [-90, 90]."""
    if isinstance(yaws_deg, (str, bytes)) or not isinstance(yaws_deg, Sequence) or not yaws_deg:
        raise TypeError(f"yaws_deg: expected a non-empty sequence of degrees, got {describe(yaws_deg)}")
    out = []
    for y in yaws_deg:
        if isinstance(y, bool) or not isinstance(y, (int, float, np.integer, np.floating)) or not math.isfinite(float(y)):
            raise ValueError(f"yaws_deg: expected finite numbers, got {y!r}")
        if abs(float(y)) > 90:
            raise ValueError(f"yaws_deg: expected degrees in [-90, 90], got {float(y)}")
        out.append(float(y))
    return tuple(out)


def check_names(values: object, name: str, choices: Sequence[str]) -> tuple[str, ...]:
    """The names without repeats; raises TypeError / ValueError unless a non-empty sequence of ``choices``."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"{name}: expected a non-empty sequence of names, got {describe(values)}")
    for v in values:
        check_choice(v, name, tuple(choices))
    return tuple(dict.fromkeys(values))


def lighting_level_default(fitted_sh: np.ndarray) -> np.ndarray:
    """``(3,)`` the mean shading of an SH light over the sphere, ``L_00 Y_00``."""
    return np.asarray(fitted_sh, dtype=np.float64)[0] * (0.5 / math.sqrt(math.pi))


def expression_weights(model: FaceModel, preset: str, fitted: np.ndarray) -> np.ndarray:
    """``(K_exp,)`` float64 weights of an expression preset (``"fitted"``: a copy of ``fitted``)."""
    check_choice(preset, "expression", tuple(EXPRESSION_PRESETS))
    if preset == "fitted":
        return np.array(fitted, dtype=np.float64)
    out = np.zeros(model.expression_count, dtype=np.float64)
    for key, value in EXPRESSION_PRESETS[preset].items():
        out[model.expression_index(key)] = value
    return out


def lighting_sh(preset: str, fitted_sh: np.ndarray | None, level: np.ndarray | None = None) -> np.ndarray:
    """``(9, 3)`` float64 SH radiance of a lighting preset.

    Args:
        preset: one of :data:`LIGHTING_PRESETS`.
        fitted_sh: ``(9, 3)`` the photo's fitted light, or None.
        level: ``(3,)`` RGB shading the face should get on average (default: the fitted light's mean over the
            sphere, ``L_00 Y_00``; a grey 0.8 without a fitted light). The ambient preset gives exactly this;
            the directional ones put 55% of it in a key light and 45% in ambient light.
    """
    check_choice(preset, "lighting", LIGHTING_PRESETS)
    y00 = 0.5 / math.sqrt(math.pi)
    if level is None:
        # Mean shading per channel of the fitted light = L_00 * Y_00 (A_0 / pi = 1).
        level = np.full(3, 0.8) if fitted_sh is None else np.asarray(fitted_sh)[0] * y00
    level = np.clip(np.asarray(level, dtype=np.float64), 0.05, 3.0)
    if preset == "fitted" and fitted_sh is not None:
        return np.array(fitted_sh, dtype=np.float64)
    if preset in ("fitted", "ambient"):
        out = np.zeros((9, 3))
        out[0] = level / y00
        return out
    d = torch.tensor([_LIGHT_DIRECTIONS[preset]], dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    # A key light of colour c gives about c / pi * max(0, n.d): c = pi * 0.55 level for 0.55 level facing it.
    key = torch.tensor(level[None] * 0.55 * math.pi)
    return directional_sh(d, key, ambient=torch.tensor(level[None] * 0.45))[0].numpy()


# --------------------------------------------------------------------------------------------------- fit
def _paint_irises(model: FaceModel, albedo: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Dark irises and pupils at the front of each eyeball (the pipeline's eyeballs are plain white)."""
    out = albedo.copy()
    eyes = np.flatnonzero(model.region_labels[: len(vertices)].cpu().numpy() == int(Region.EYEBALLS))
    if eyes.size == 0:
        return out
    for side in (vertices[eyes, 0] < 0, vertices[eyes, 0] >= 0):
        idx = eyes[side]
        if idx.size == 0:
            continue
        pts = vertices[idx]
        front = pts[np.argmax(pts[:, 2])]
        radial = np.linalg.norm(pts[:, :2] - front[:2], axis=1)
        near_front = pts[:, 2] > front[2] - 4.0
        out[idx[near_front & (radial < _IRIS_RADIUS_MM)]] = _IRIS_RGB
        out[idx[near_front & (radial < _PUPIL_RADIUS_MM)]] = _PUPIL_RGB
    return out


def _mirror_hidden_albedo(
    model: FaceModel, albedo: np.ndarray, screen: torch.Tensor, cam: torch.Tensor, triangles: torch.Tensor, size: tuple[int, int]
) -> np.ndarray:
    """The per-vertex albedo with the face vertices the photo does not show (hidden, or seen at a grazing angle)
    replaced by their mirror vertex's albedo when the photo shows that one, else (and on the neck) the median of
    the seen ones: the fitted albedo of hidden vertices is only the prior's guess (and picks up stray colours)."""
    from facerecon.render.visibility import vertex_visibility

    n = cam.shape[0]
    frags = rasterize(screen, triangles, size)
    visible = vertex_visibility(screen, triangles, frags, backface=True)[0]
    normals = vertex_normals(cam[None], triangles)[0]
    cosine = -(normals * cam).sum(1) / cam.norm(dim=1).clamp_min(1e-9)
    seen = (visible & (cosine > 0.5 * FULL_WEIGHT_COSINE)).numpy()
    neck = model.region_labels[:n].cpu().numpy() == int(Region.NECK_BACK_OF_HEAD)
    if not (seen & ~neck).any():
        return albedo
    out = albedo.copy()
    mirror = model.mirror[:n].cpu().numpy()
    mirror_ok = (mirror >= 0) & (mirror < n)
    mirror_seen = np.zeros(n, dtype=bool)
    mirror_seen[mirror_ok] = seen[mirror[mirror_ok]]
    hidden = ~seen
    use_mirror = hidden & mirror_seen
    out[:n][use_mirror] = albedo[mirror[use_mirror]]
    # The neck takes the skin colour too: the photo there often shows a collar, hair or the background.
    out[:n][(hidden & ~mirror_seen) | neck] = np.median(albedo[:n][seen & ~neck], axis=0)
    return out


def fit_options():
    """The :class:`~facerecon.pipeline.run.ReconstructOptions` for fitting subjects: the largest face, no
    pictures, no texture completion or details (this module unwraps and de-lights the photo itself)."""
    from facerecon.pipeline.run import ReconstructOptions

    return ReconstructOptions(faces="largest", render_images=False, texture_completion=False, details=False)


def fit_subject(reconstructor, photo: str | os.PathLike[str], name: str | None = None) -> FittedSubject:
    """Fit the largest face of a photo and prepare it for re-rendering.

    Args:
        reconstructor: a :class:`~facerecon.pipeline.run.Reconstructor` (its model, options and texture baker
            are used; :func:`fit_options` skips the work this module does not use).
        photo: the photo file.
        name: the subject's name (default: the file stem).

    Raises:
        ImageReadError: the photo cannot be read.
        NoFaceError: no face was found or reconstructed.
    """
    from facerecon.io.image import read_image

    if not isinstance(photo, (str, os.PathLike)):
        raise TypeError(f"photo: expected a file path, got {describe(photo)}")
    path = Path(photo)
    name = name or path.stem
    image = read_image(path)
    result = reconstructor.run(path, name=name)
    if not result.reconstructions:
        reasons = "; ".join(s.reason for s in result.skipped) or "no face reconstructed"
        raise NoFaceError(f"{name}: {reasons}")
    rec = result.reconstructions[0]
    model: FaceModel = reconstructor.model
    face = model.submesh("face")
    fx, fy, cx, cy = rec.intrinsics
    verts = torch.from_numpy(rec.vertices).float()
    cam = verts @ torch.from_numpy(rec.rotation).float().T + torch.from_numpy(rec.translation).float()
    z = cam[:, 2:3].clamp_min(1e-3)
    screen = torch.cat([fx * cam[:, :1] / z + cx, fy * cam[:, 1:2] / z + cy, cam[:, 2:3]], 1)[None]
    face_n = face.vertex_count
    photo_t = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    baker = reconstructor.baker
    uv_frags = baker.uv_fragments
    unwrapped = unwrap_texture(photo_t[None], screen[:, :face_n], cam[None, :face_n], face.triangles, uv_frags)
    # Photo weight as the texture baker's (full from FULL_WEIGHT_COSINE), then stricter: texels the photo saw at
    # grazing angles stretch into streaks when turned to the camera, so none below half that cosine; no photo on
    # the neck (collars, hair).
    weight = (unwrapped.weight[0, 0] / FULL_WEIGHT_COSINE).clamp(0.0, 1.0) * unwrapped.visible[0, 0]
    weight = (2.0 * weight - 1.0).clamp(0.0, 1.0)
    allowed = (model.region_labels[:face_n] != int(Region.NECK_BACK_OF_HEAD)).float()[:, None]
    weight = (weight * (interpolate(allowed, face.triangles, uv_frags)[0, ..., 0] > 0.999)).numpy()
    if rec.sh is not None:
        normals = texel_normals(cam[None, :face_n], face.triangles, uv_frags)
        shading = texel_shading(normals, torch.from_numpy(rec.sh).float()[None])[0]
    else:
        shading = torch.ones(3, *weight.shape)
    # Ratio-image de-lighting: albedo = photo / S_fit(n) at the fitted pose; the per-vertex albedo elsewhere.
    delit = (unwrapped.texture[0] / shading.clamp_min(_MIN_FIT_SHADING)).clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    albedo = _mirror_hidden_albedo(model, rec.albedo.astype(np.float32), screen[:, :face_n], cam[:face_n], face.triangles,
                                   image.shape[:2])  # fmt: skip
    fitted = interpolate(torch.from_numpy(albedo[:face_n]).float(), face.triangles, uv_frags)[0].numpy()
    albedo_texture = baker.bleed((weight[..., None] * delit + (1.0 - weight[..., None]) * fitted).astype(np.float32))
    if rec.sh is not None:
        vn = vertex_normals(cam[None, :face_n], face.triangles)
        s_fit = irradiance(vn, torch.from_numpy(rec.sh).float()[None])[0]
        facing = vn[0, :, 2] < -0.5
        light_level = s_fit[facing].mean(0).double().numpy() if bool(facing.any()) else lighting_level_default(rec.sh)
    else:
        light_level = np.full(3, 0.8)
    # The pivot and scale come from the neutral head of this identity, so they do not move with expression.
    neutral = model(torch.from_numpy(rec.identity).float()[None], torch.zeros(1, model.expression_count),
                     submesh="head")[0].double().numpy()  # fmt: skip
    lm = neutral[model.landmarks("ibug68").vertex_indices.cpu().numpy()]
    lo, hi = neutral.min(0), neutral.max(0)
    pivot = np.array([(lo[0] + hi[0]) / 2, lm[:, 1].mean(), (lo[2] + hi[2]) / 2])
    albedo = _paint_irises(model, albedo, rec.vertices)
    return FittedSubject(
        name=name,
        photo=image,
        reconstruction=rec,
        albedo_texture=albedo_texture,
        photo_weight=weight.astype(np.float32),
        albedo=albedo,
        pivot=pivot,
        face_height_mm=float(np.ptp(lm[:, 1])),
        light_level=light_level,
    )


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


def _sample_uv(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples ``(N, C)`` of a UV image ``(S, S, C)`` (row 0 is v = 1) at ``uv`` ``(N, 2)``."""
    size = image.shape[0]
    n = len(uv)
    rows_needed = max(-(-n // 1024), 1)  # cv2.remap maps must stay below 32767 on each side: lay out 1024 wide
    col = np.zeros(rows_needed * 1024, np.float32)
    row = np.zeros(rows_needed * 1024, np.float32)
    col[:n] = uv[:, 0] * size - 0.5
    row[:n] = (1.0 - uv[:, 1]) * size - 0.5
    out = cv2.remap(image, col.reshape(rows_needed, 1024), row.reshape(rows_needed, 1024), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out.reshape(rows_needed * 1024, -1)[:n]


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
    height, width = image_size
    s = int(supersample)
    head = model.submesh("head")
    face = model.submesh("face")
    exp = torch.as_tensor(np.asarray(expression, dtype=np.float64)).float()[None]
    verts = model(torch.from_numpy(rec.identity).float()[None], exp, submesh="head")[0].double()
    R = torch.as_tensor(np.asarray(rotation, dtype=np.float64))
    t = torch.as_tensor(np.asarray(translation, dtype=np.float64))
    cam = verts @ R.T + t
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    fxs, fys, cxs, cys = fx * s, fy * s, (cx + 0.5) * s - 0.5, (cy + 0.5) * s - 0.5
    z = cam[:, 2:3].clamp_min(1e-6)
    screen = torch.cat([fxs * cam[:, :1] / z + cxs, fys * cam[:, 1:2] / z + cys, cam[:, 2:3]], 1)
    frags = rasterize(screen[None].float(), head.triangles, (height * s, width * s))
    mask = frags.mask[0].numpy()
    tri = frags.face_index[0].numpy()[mask]
    bary = frags.bary[0].numpy()[mask].astype(np.float64)  # (N, 3)
    tris = head.triangles.numpy()
    corners = tris[tri]  # (N, 3)
    normals = vertex_normals(cam[None].float(), head.triangles)[0].double().numpy()
    n_pix = (bary[..., None] * normals[corners]).sum(1)
    n_pix /= np.maximum(np.linalg.norm(n_pix, axis=1, keepdims=True), 1e-12)
    albedo = (bary[..., None] * subject.albedo.astype(np.float64)[corners]).sum(1)
    is_face = tri < face.triangles.shape[0]
    if is_face.any():
        uvs = model.uvs.double().numpy()
        uv_corners = face.uv_triangles.numpy()[tri[is_face]]
        uv = (bary[is_face, :, None] * uvs[uv_corners]).sum(1)
        albedo[is_face] = _sample_uv(subject.albedo_texture, uv)
    shading = irradiance(torch.from_numpy(n_pix)[None], torch.as_tensor(np.asarray(sh, dtype=np.float64))[None])[0]
    colour = np.clip(albedo * shading.numpy(), 0.0, 1.0)
    big = np.zeros((height * s, width * s, 3), np.float32)
    big[mask] = colour
    cover = mask.astype(np.float32)
    face_cover = np.zeros_like(cover)
    face_cover[mask] = is_face
    if s > 1:
        big = cv2.resize(big, (width, height), interpolation=cv2.INTER_AREA)
        cover = cv2.resize(cover, (width, height), interpolation=cv2.INTER_AREA)
        face_cover = cv2.resize(face_cover, (width, height), interpolation=cv2.INTER_AREA)
    image = big if background is None else big + (1.0 - cover[..., None]) * background
    return np.clip(image, 0.0, 1.0).astype(np.float32), cover, face_cover


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
    config: SynthConfig = SynthConfig(),
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
    weights = expression_weights(model, expression, rec.expression)
    sh = lighting_sh(lighting, rec.sh, subject.light_level)
    bg = _background(subject.photo, n, config.background, config.blur_sigma)
    image, cover, face_cover = render_subject(model, subject, expression=weights, rotation=R, translation=t,
                                              intrinsics=intr, image_size=(n, n), sh=sh, background=bg,
                                              supersample=config.supersample)  # fmt: skip
    verts = model(torch.from_numpy(rec.identity).float()[None], torch.from_numpy(weights).float()[None],
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


# ------------------------------------------------------------------------------------------------- files
def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    with atomic_path(path) as tmp:
        ok = cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise OSError(f"could not write {path}")


def write_aflw2000_view(
    folder: str | os.PathLike[str],
    name: str,
    view: SynthView,
    triangles: np.ndarray | None = None,
    *,
    source: str = "",
    jpeg_quality: int = 95,
) -> tuple[Path, ...]:
    """Write ``folder/<name>.jpg``, ``<name>.mat`` (``pt3d_68`` 3 x 68, ``Pose_Para`` 1 x 7 and the exact camera)
    and, with ``triangles``, the ground-truth mesh ``<name>.obj`` (+ ``.mtl``), each atomically.

    Returns:
        The files written, the ``.mat`` last.
    """
    from scipy.io import savemat

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if triangles is not None:
        from facerecon.io.mesh import write_obj

        write_obj(out / f"{name}.obj", Mesh(vertices=view.face_vertices, faces=np.asarray(triangles, np.int64), name=name),
                  texture_name=f"{name}.png")  # fmt: skip
        files += [out / f"{name}.obj", out / f"{name}.mtl"]
    _write_jpeg(out / f"{name}.jpg", view.image, jpeg_quality)
    files.append(out / f"{name}.jpg")
    fx, fy, cx, cy = view.intrinsics
    data = {
        "pt3d_68": view.landmarks68.T.copy(),
        "Pose_Para": view.pose_para[None].copy(),
        "camera_matrix": np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64),
        "rotation": view.rotation,
        "translation": view.translation[None],
        "expression": view.expression,
        "lighting": view.lighting,
        "source_photo": source,
        "convention": "facerecon synth: pt3d_68 = the 68 fixed iBUG vertices projected (x, y px; z px towards "
        "the camera from the pivot); Pose_Para = [pitch, yaw, roll] rad (facerecon docs/conventions.md), "
        "[tx, ty, tz] mm, scale px/mm; X_cam = rotation @ X_model + translation",
    }
    with atomic_path(out / f"{name}.mat") as tmp:
        savemat(str(tmp), data)
    files.append(out / f"{name}.mat")
    return tuple(files)


def write_now_scan(root: str | os.PathLike[str], subject: str, vertices: np.ndarray, triangles: np.ndarray,
                   landmarks: np.ndarray) -> tuple[Path, ...]:  # fmt: skip
    """Write a subject's ground-truth scan ``root/scans/<subject>/<subject>.obj`` and its 7 landmarks
    ``root/scans_lmks_onlypp/<subject>/<subject>.pp`` (NoW layout), each atomically."""
    from facerecon.eval.datasets import write_pp
    from facerecon.io.mesh import write_obj

    base = Path(root)
    obj = base / "scans" / subject / f"{subject}.obj"
    write_obj(obj, Mesh(vertices=np.asarray(vertices, np.float64), faces=np.asarray(triangles, np.int64), name=subject),
              texture_name=f"{subject}.png")  # fmt: skip
    pp = base / "scans_lmks_onlypp" / subject / f"{subject}.pp"
    write_pp(pp, np.asarray(landmarks, np.float64))
    return obj, obj.with_suffix(".mtl"), pp


def write_now_view(root: str | os.PathLike[str], subject: str, challenge: str, name: str, view: SynthView,
                   jpeg_quality: int = 95) -> Path:  # fmt: skip
    """Write ``root/iphone_pictures/<subject>/<challenge>/<name>.jpg`` atomically; returns its path."""
    path = Path(root) / "iphone_pictures" / subject / challenge / f"{name}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_jpeg(path, view.image, jpeg_quality)
    return path


def view_name(subject: str, yaw_deg: float, expression: str, lighting: str) -> str:
    """``<subject>_yaw+060_<expression>_<lighting>`` (yaw rounded to a degree, sign always shown)."""
    return f"{subject}_yaw{round(yaw_deg):+04d}_{expression}_{lighting}"


# ----------------------------------------------------------------------------------------------- batch
def _unique(stem: str, taken: set[str]) -> str:
    name, k = stem, 2
    while name in taken:
        name, k = f"{stem}-{k}", k + 1
    taken.add(name)
    return name


def synthesize(
    photos: Sequence[str | os.PathLike[str] | FittedSubject],
    out_dir: str | os.PathLike[str],
    *,
    yaws_deg: Sequence[float] = DEFAULT_YAWS_DEG,
    expressions: Sequence[str] = ("fitted",),
    lightings: Sequence[str] = ("fitted",),
    layout: str = "both",
    config: SynthConfig | None = None,
    model: FaceModel | None = None,
    reconstructor=None,
    on_photo: Callable[[int, str, SynthFailure | None], None] | None = None,
) -> SynthReport:
    """Fit each photo and write its re-rendered views with ground truth.

    One :class:`~facerecon.pipeline.run.Reconstructor` fits every photo; each photo gives
    ``len(yaws_deg) * len(expressions) * len(lightings)`` views. A photo that cannot be read or has no face
    is reported (in the report's ``failures`` and through ``on_photo``) and skipped; the batch goes on.

    Files (each written atomically):

    * ``layout`` ``"aflw2000"`` or ``"both"``: ``out_dir/aflw2000/<subject>_yaw+060_<expression>_<lighting>``
      ``.jpg`` / ``.mat`` (/ ``.obj`` + ``.mtl``, the ground-truth face mesh in camera space, mm).
    * ``"now"`` or ``"both"``: ``out_dir/now/iphone_pictures/<subject>/<challenge>/<view>.jpg`` (challenge
      ``neutral`` for the neutral preset, else ``expression``), ``out_dir/now/scans/<subject>/<subject>.obj``
      (the fitted identity, neutral, ``"face"`` sub-mesh, model space, mm) and
      ``out_dir/now/scans_lmks_onlypp/<subject>/<subject>.pp`` (its 7 NoW landmarks).

    Args:
        photos: photo files, or subjects already fitted with :func:`fit_subject` (not fitted again).
        out_dir: the output folder (created).
        yaws_deg: head yaws in degrees, each in [-90, 90].
        expressions: keys of :data:`EXPRESSION_PRESETS`.
        lightings: names in :data:`LIGHTING_PRESETS`.
        layout: ``"aflw2000"``, ``"now"`` or ``"both"``.
        config: rendering settings (default :class:`SynthConfig`).
        model: the face model (default :func:`facerecon.load_model`, or the reconstructor's).
        reconstructor: a Reconstructor to fit with (default: one made here, largest face, no pictures).
        on_photo: called with ``(index, photo, failure or None)`` after each photo.

    Returns:
        A :class:`SynthReport`.

    Raises:
        TypeError / ValueError: bad arguments (before anything is fitted).
    """
    if isinstance(photos, (str, bytes, os.PathLike)) or not isinstance(photos, Sequence):
        raise TypeError(f"photos: expected a sequence of file paths, got {describe(photos)}")
    for p in photos:
        if not isinstance(p, (str, os.PathLike, FittedSubject)):
            raise TypeError(f"photos: expected file paths or FittedSubjects, got {describe(p)}")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a folder path, got {describe(out_dir)}")
    yaws = check_yaws(yaws_deg)
    exprs = check_names(expressions, "expressions", tuple(EXPRESSION_PRESETS))
    lights = check_names(lightings, "lightings", LIGHTING_PRESETS)
    check_choice(layout, "layout", LAYOUTS)
    config = config or SynthConfig()
    if not isinstance(config, SynthConfig):
        raise TypeError(f"config: expected a SynthConfig, got {describe(config)}")

    out = Path(out_dir)
    if model is None:
        if reconstructor is not None:
            model = reconstructor.model
        else:
            from facerecon.models import load_model

            model = load_model()
    fitter = reconstructor  # made on the first photo that needs fitting when not given

    def get_fitter():
        nonlocal fitter
        if fitter is None:
            from facerecon.pipeline.run import Reconstructor

            fitter = Reconstructor(model, fit_options())
        return fitter

    items: list[SynthItem] = []
    failures: list[SynthFailure] = []
    subjects: list[str] = []
    taken: set[str] = set()
    face = model.submesh("face")
    face_tris = face.triangles.numpy()
    now_vertices = None
    try:
        for index, photo in enumerate(photos):
            try:
                if isinstance(photo, FittedSubject):
                    name = _unique(photo.name, taken)
                    subject = photo if name == photo.name else replace(photo, name=name)
                    photo = photo.name
                else:
                    name = _unique(Path(photo).stem, taken)
                    subject = fit_subject(get_fitter(), photo, name=name)
            except FaceReconError as err:
                fail = SynthFailure(str(photo), str(err), type(err).__name__)
                failures.append(fail)
                if on_photo is not None:
                    on_photo(index, str(photo), fail)
                continue
            subjects.append(name)
            if layout in ("now", "both"):
                from facerecon.eval.mesh_metrics import now_landmark_vertices

                if now_vertices is None:
                    now_vertices = now_landmark_vertices(model)
                neutral = model(torch.from_numpy(subject.reconstruction.identity).float()[None],
                                torch.zeros(1, model.expression_count), submesh="face")[0].double().numpy()  # fmt: skip
                write_now_scan(out / "now", name, neutral, face_tris, neutral[now_vertices])
            for expr in exprs:
                for light in lights:
                    for yaw in yaws:
                        view = render_view(model, subject, yaw, expression=expr, lighting=light, config=config)
                        vname = view_name(name, yaw, expr, light)
                        files: list[Path] = []
                        if layout in ("aflw2000", "both"):
                            files += write_aflw2000_view(out / "aflw2000", vname, view,
                                                         face_tris if config.write_meshes else None,
                                                         source=str(photo), jpeg_quality=config.jpeg_quality)  # fmt: skip
                        if layout in ("now", "both"):
                            challenge = "neutral" if expr == "neutral" else "expression"
                            files.append(write_now_view(out / "now", name, challenge, vname, view, config.jpeg_quality))
                        items.append(SynthItem(name, vname, yaw, expr, light, tuple(files)))
            if on_photo is not None:
                on_photo(index, str(photo), None)
    finally:
        if fitter is not None and fitter is not reconstructor:
            fitter.close()
    write_text_atomic(out / "README.txt", _readme(yaws, exprs, lights, layout, config, len(items), failures))
    return SynthReport(out, tuple(items), tuple(failures), tuple(subjects))


def _readme(yaws, exprs, lights, layout, config: SynthConfig, count: int, failures: list[SynthFailure]) -> str:
    lines = [
        "facerecon synth: fitted photos re-rendered with ground truth (facerecon.eval.synth).",
        (f"views: {count}; yaws (deg): {', '.join(f'{y:g}' for y in yaws)}; expressions: {', '.join(exprs)}; "
         f"lightings: {', '.join(lights)}; layout: {layout}"),
        f"image {config.image_size} px, focal {config.focal_35mm:g} mm (35 mm equiv.), background {config.background}",
        ("aflw2000/: <view>.jpg + <view>.mat (pt3d_68: the 68 fixed iBUG vertices projected, occluded ones too; "
         "Pose_Para: pitch, yaw, roll rad (facerecon convention: +yaw = nose to the viewer's right), tx, ty, tz mm, "
         "scale px/mm) + <view>.obj (ground-truth face mesh, camera space, mm)"),
        ("now/: iphone_pictures/<subject>/<neutral|expression>/<view>.jpg, scans/<subject>/<subject>.obj "
         "(neutral face, model space, mm), scans_lmks_onlypp/<subject>/<subject>.pp (7 NoW landmarks)"),
        "Evaluate: facerecon eval aflw2000 OUT/aflw2000 --method mediapipe; facerecon eval now OUT/now",
    ]
    lines += [f"failed: {f.photo}: {f.reason}" for f in failures]
    return "\n".join(lines) + "\n"
