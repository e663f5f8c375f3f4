"""A fitted face made ready to re-render: its photo texture unwrapped and de-lit, hidden albedo mirrored, irises.

The subjects of the synthetic large-pose benchmark (:mod:`facerecon.eval.synth`) and of the regressor's training
corpus (:mod:`facerecon.train.corpus`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from facerecon.core.check import describe
from facerecon.core.errors import NoFaceError
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.models.face_model import FaceModel
from facerecon.models.regions import Region
from facerecon.pipeline.reconstruction import Reconstruction
from facerecon.render.interpolate import interpolate
from facerecon.render.rasterize import rasterize
from facerecon.render.sh import irradiance
from facerecon.render.uv import unwrap_texture
from facerecon.texture.delight import texel_normals, texel_shading
from facerecon.texture.photo import FULL_WEIGHT_COSINE

__all__ = ["FittedSubject", "fit_options", "fit_subject", "lighting_level_default", "subject_from_reconstruction"]

# Ratio-image relighting: the fitted shading is floored here before dividing the photo texels by it.
_MIN_FIT_SHADING = 0.12
# Iris and pupil colours (linear RGB in [0, 1]) and radii (mm) painted on the otherwise white eyeballs.
_IRIS_RGB = (0.28, 0.19, 0.13)
_PUPIL_RGB = (0.04, 0.03, 0.03)
_IRIS_RADIUS_MM = 5.8
_PUPIL_RADIUS_MM = 2.2


def lighting_level_default(fitted_sh: np.ndarray) -> np.ndarray:
    """``(3,)`` the mean shading of an SH light over the sphere, ``L_00 Y_00``."""
    return np.asarray(fitted_sh, dtype=np.float64)[0] * (0.5 / math.sqrt(math.pi))


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

    def with_identity(self, model: FaceModel, identity: np.ndarray) -> FittedSubject:
        """This subject with another identity ``(K_id,)`` (a synthetic person with this photo's skin, light and
        pose): its pivot and face height from the new neutral head; texture, albedo and light level kept."""
        rec = self.reconstruction
        rec = replace(rec, coefficients=replace(rec.coefficients, identity=np.asarray(identity, np.float64)))
        pivot, height = _pivot_and_height(model, rec.coefficients.identity)
        return replace(self, reconstruction=rec, pivot=pivot, face_height_mm=height)


def _pivot_and_height(model: FaceModel, identity: np.ndarray) -> tuple[np.ndarray, float]:
    """The point ``(3,)`` mm a head of this identity turns about and its face's height, mm: from the neutral head,
    so that they do not move with expression."""
    with torch.no_grad():
        neutral = model(torch.from_numpy(np.asarray(identity)).float()[None], torch.zeros(1, model.expression_count),
                        submesh="head")[0].double().numpy()  # fmt: skip
    lm = neutral[model.landmarks("ibug68").vertex_indices.cpu().numpy()]
    lo, hi = neutral.min(0), neutral.max(0)
    return np.array([(lo[0] + hi[0]) / 2, lm[:, 1].mean(), (lo[2] + hi[2]) / 2]), float(np.ptp(lm[:, 1]))



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
    pictures, no texture completion or details (this module unwraps and de-lights the photo itself), and the fit
    from a PnP start: the regressor's training data and the synthetic ground truth must not depend on the
    shipped regressor. Photos are fitted at full size (``max_image_side=None``), as the corpus always was."""
    from facerecon.pipeline.run import ReconstructOptions

    return ReconstructOptions(faces="largest", render_images=False, texture_completion=False, details=False, start="pnp",
                              max_image_side=None)  # fmt: skip


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
    from facerecon.io.image import read_image_with_info

    if not isinstance(photo, (str, os.PathLike)):
        raise TypeError(f"photo: expected a file path, got {describe(photo)}")
    path = Path(photo)
    name = name or path.stem
    # The photo at the reconstructor's working size: the reconstruction's camera is in its pixels.
    image = read_image_with_info(path, max_side=reconstructor.options.max_image_side).image
    result = reconstructor.run(path, name=name)
    if not result.reconstructions:
        reasons = "; ".join(s.reason for s in result.skipped) or "no face reconstructed"
        raise NoFaceError(f"{name}: {reasons}")
    return subject_from_reconstruction(reconstructor, image, result.reconstructions[0], name)


def subject_from_reconstruction(reconstructor, image: np.ndarray, rec: Reconstruction, name: str) -> FittedSubject:
    """Prepare one reconstructed face of ``image`` ``(H, W, 3)`` uint8 for re-rendering (any face of the photo).

    Args:
        reconstructor: the :class:`~facerecon.pipeline.run.Reconstructor` that made ``rec``.
        image: the photo ``rec`` was fitted to.
        rec: the reconstruction.
        name: the subject's name.
    """
    model: FaceModel = reconstructor.model
    face = model.submesh("face")
    fx, fy, cx, cy = rec.camera.intrinsics
    verts = torch.from_numpy(rec.mesh.vertices).float()
    cam = verts @ torch.from_numpy(rec.pose.rotation).float().T + torch.from_numpy(rec.pose.translation).float()
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
    if rec.coefficients.sh is not None:
        normals = texel_normals(cam[None, :face_n], face.triangles, uv_frags)
        shading = texel_shading(normals, torch.from_numpy(rec.coefficients.sh).float()[None])[0]
    else:
        shading = torch.ones(3, *weight.shape)
    # Ratio-image de-lighting: albedo = photo / S_fit(n) at the fitted pose; the per-vertex albedo elsewhere.
    delit = (unwrapped.texture[0] / shading.clamp_min(_MIN_FIT_SHADING)).clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    albedo = _mirror_hidden_albedo(model, rec.mesh.albedo.astype(np.float32), screen[:, :face_n], cam[:face_n], face.triangles,
                                   image.shape[:2])  # fmt: skip
    fitted = interpolate(torch.from_numpy(albedo[:face_n]).float(), face.triangles, uv_frags)[0].numpy()
    albedo_texture = baker.bleed((weight[..., None] * delit + (1.0 - weight[..., None]) * fitted).astype(np.float32))
    if rec.coefficients.sh is not None:
        vn = vertex_normals(cam[None, :face_n], face.triangles)
        s_fit = irradiance(vn, torch.from_numpy(rec.coefficients.sh).float()[None])[0]
        facing = vn[0, :, 2] < -0.5
        light_level = s_fit[facing].mean(0).double().numpy() if bool(facing.any()) else lighting_level_default(rec.coefficients.sh)
    else:
        light_level = np.full(3, 0.8)
    pivot, face_height_mm = _pivot_and_height(model, rec.coefficients.identity)
    albedo = _paint_irises(model, albedo, rec.mesh.vertices)
    return FittedSubject(
        name=name,
        photo=image,
        reconstruction=rec,
        albedo_texture=albedo_texture,
        photo_weight=weight.astype(np.float32),
        albedo=albedo,
        pivot=pivot,
        face_height_mm=face_height_mm,
        light_level=light_level,
    )
