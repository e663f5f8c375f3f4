"""Step 1, the renders: the views (identities x poses x lightings) and the model rendered in them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from facerecon.calibrate.config import _LIGHTS, CalibrationViews, EmbeddingConfig
from facerecon.core.check import describe
from facerecon.geometry.camera import PerspectiveCamera, transform
from facerecon.geometry.rotation import head_angles_to_camera_rotation
from facerecon.models import ict_layout
from facerecon.models.face_model import FaceModel
from facerecon.models.regions import Region
from facerecon.render.images import to_uint8
from facerecon.render.scene import Scene, render_scene
from facerecon.render.sh import directional_sh

__all__ = ["render_calibration_views"]

# ICT-FaceKit eyeballs (facerecon.models.ict_layout.GEOMETRIES, from the ICT README): each is two nested
# spheres of ~15 mm radius, "sclera" (the outer shell, transparent over the iris in ICT's shaders) and "iris"
# (the inner one), both whole balls looking along +z. The renders paint both shells by the angle from the
# eyeball's forward axis: a brown iris disc and a black pupil in front, white sclera elsewhere.
_ICT_VERTEX_COUNT = ict_layout.VERTEX_COUNT
_ICT_EYEBALLS = (ict_layout.GEOMETRIES["eyeball_left"][0], ict_layout.GEOMETRIES["eyeball_right"][0])
_IRIS_RADIUS = 0.42  # iris radius / eyeball radius (human eye: iris ~6 mm, eyeball ~12 mm)
_PUPIL_RADIUS = 0.16

# Albedos (linear RGB in [0, 1]) of the calibration renders; plausible, not measured.
_SKIN = (0.80, 0.60, 0.50)
_LIPS = (0.62, 0.32, 0.32)
_BROWS = (0.22, 0.15, 0.11)
_MOUTH_INSIDE = (0.30, 0.10, 0.10)
_SCLERA = (0.92, 0.90, 0.88)
_IRIS = (0.32, 0.21, 0.13)
_PUPIL = (0.03, 0.03, 0.03)
_BACKGROUND = (0.55, 0.57, 0.60)


def _check_model(model: Any) -> None:
    if not isinstance(model, FaceModel):
        raise TypeError(f"model: expected a FaceModel, got {describe(model)}")
    for name in ("face", "head"):
        if name not in model.submesh_names:
            raise ValueError(f"model: expected a model with a {name!r} sub-mesh, got sub-meshes {model.submesh_names}")


# ------------------------------------------------------------------------------------------- appearance
def _albedo(model: FaceModel, vertex_count: int) -> torch.Tensor:
    """``(V_sub, 3)`` float32 per-vertex albedo of the calibration renders."""
    labels = model.region_labels[:vertex_count].cpu()
    albedo = torch.tensor(_SKIN).repeat(vertex_count, 1)
    albedo[labels == int(Region.MOUTH)] = torch.tensor(_LIPS)
    albedo[labels == int(Region.EYEBROWS)] = torch.tensor(_BROWS)
    albedo[labels == int(Region.MOUTH_INTERIOR)] = torch.tensor(_MOUTH_INSIDE)
    eyeball = labels == int(Region.EYEBALLS)
    albedo[eyeball] = torch.tensor(_SCLERA)
    if model.vertex_count == _ICT_VERTEX_COUNT:  # ICT's eyeballs: paint the iris and the pupil
        mean = model.mean.detach().cpu()
        for ball in _ICT_EYEBALLS:
            if ball.stop > vertex_count:
                continue
            idx = torch.arange(ball.start, ball.stop)
            pts = mean[idx]
            centre = (pts.min(0).values + pts.max(0).values) / 2
            radius = float((pts.max(0).values - pts.min(0).values).max()) / 2
            off_axis = (pts[:, :2] - centre[:2]).norm(dim=1) / radius  # sin of the angle from the +z axis
            front = pts[:, 2] > centre[2]
            albedo[idx[front & (off_axis < _IRIS_RADIUS)]] = torch.tensor(_IRIS)
            albedo[idx[front & (off_axis < _PUPIL_RADIUS)]] = torch.tensor(_PUPIL)
    return albedo


# ------------------------------------------------------------------------------------------------ views
def _views(model: FaceModel, config: EmbeddingConfig) -> CalibrationViews:
    """The grid of identities x poses x lightings, with seeded jitter and hold-out split."""
    k = model.identity_count
    identities = [np.zeros(k)]
    for mode in range(min(config.identity_modes, k)):
        for sign in (1.0, -1.0):
            coeffs = np.zeros(k)
            coeffs[mode] = sign * config.identity_sigma
            identities.append(coeffs)
    rng = np.random.default_rng(config.seed)
    groups = [(i, yaw, pitch) for i in range(len(identities)) for yaw in config.yaws for pitch in config.pitches]
    n_out = int(round(config.holdout_fraction * len(groups)))
    heldout_groups = set(rng.permutation(len(groups))[:n_out].tolist())
    jitter = rng.uniform(-1.0, 1.0, size=(len(groups), 3)) * config.jitter
    rows = []
    for g, (i, yaw, pitch) in enumerate(groups):
        pitch_j = float(np.clip(pitch + jitter[g, 0], -15.0, 15.0))
        yaw_j = float(np.clip(yaw + jitter[g, 1], -30.0, 30.0))
        roll_j = float(jitter[g, 2])
        for light in range(config.lights):
            rows.append((i, (pitch_j, yaw_j, roll_j), yaw, light, g, g in heldout_groups, pitch))
    identity = np.stack([identities[r[0]] for r in rows])
    angles = np.radians(np.array([r[1] for r in rows], dtype=np.float64))
    rotation = head_angles_to_camera_rotation(torch.from_numpy(angles)).numpy()
    # Centre the face: the landmark centroid of each identity goes to (0, 0, distance) in camera space.
    centroid = _landmark_centroids(model, identity)
    translation = np.array([0.0, 0.0, config.distance]) - np.einsum("nij,nj->ni", rotation, centroid)
    return CalibrationViews(
        identity=identity,
        angles=angles,
        nominal_yaw=np.array([r[2] for r in rows], dtype=np.float64),
        nominal_pitch=np.array([r[6] for r in rows], dtype=np.float64),
        light=np.array([r[3] for r in rows], dtype=np.int64),
        group=np.array([r[4] for r in rows], dtype=np.int64),
        heldout=np.array([r[5] for r in rows], dtype=bool),
        rotation=rotation,
        translation=translation,
    )


def _landmark_centroids(model: FaceModel, identity: np.ndarray) -> np.ndarray:
    """``(N, 3)`` the centroid of the iBUG-68 landmarks of each identity (the centre of the face), mm."""
    if "ibug68" in model.landmark_scheme_names:
        idx = model.landmarks("ibug68").vertex_indices.cpu()
    else:
        idx = torch.arange(model.submesh("face").vertex_count)
    basis = model.identity_basis.detach().cpu().double()[:, idx]  # (K, L, 3)
    mean = model.mean.detach().cpu().double()[idx]
    pts = mean[None] + torch.einsum("nk,klc->nlc", torch.from_numpy(identity), basis)
    return pts.mean(1).numpy()


def _camera(config: EmbeddingConfig, batch: int) -> PerspectiveCamera:
    return PerspectiveCamera.from_focal(
        config.focal, config.image_size, config.image_size, batch, dtype=torch.float64
    )


@dataclass(frozen=True)
class _RenderBatch:
    images: np.ndarray  # (b, S, S, 3) uint8
    screen: torch.Tensor  # (b, V_head, 3) float64 (u, v, z) in px of the supersampled raster
    face_index: np.ndarray  # (b, S * ss, S * ss) int64, the supersampled raster
    scale: int  # supersampling factor ss: raster u' + 0.5 = ss * (u + 0.5)


def _render_batch(
    model: FaceModel, config: EmbeddingConfig, views: CalibrationViews, rows: np.ndarray, albedo: torch.Tensor
) -> _RenderBatch:
    """Render views ``rows``: rasterize at ``supersample`` times the size and average blocks (antialiasing)."""
    faces = model.submesh("head").triangles.cpu()
    identity = torch.from_numpy(views.identity[rows]).to(model.mean.dtype)
    with torch.no_grad():
        vertices = model(identity.to(model.mean.device), submesh="head").cpu().double()
        cam_pts = transform(vertices, torch.from_numpy(views.rotation[rows]), torch.from_numpy(views.translation[rows]))
        lights = [_LIGHTS[i] for i in views.light[rows]]
        direction = torch.tensor([d for d, _, _ in lights], dtype=torch.float64)
        colour = torch.tensor([[math.pi * s] * 3 for _, s, _ in lights], dtype=torch.float64)
        ambient = torch.tensor([[a] * 3 for _, _, a in lights], dtype=torch.float64)
        # Shaded per vertex (Gouraud), colours interpolated: enough for a detector, and cheap.
        out = render_scene(Scene(cam_pts, faces, _camera(config, len(rows)), albedo=albedo.double(),
                                 sh=directional_sh(direction, colour, ambient), shading="vertex",
                                 background=torch.tensor(_BACKGROUND, dtype=torch.float64),
                                 supersample=config.supersample))  # fmt: skip
    return _RenderBatch(np.ascontiguousarray(to_uint8(out.image)), out.screen, out.fragments.face_index.numpy(), out.supersample)


def render_calibration_views(
    model: FaceModel, config: EmbeddingConfig = EmbeddingConfig(), rows: Sequence[int] | None = None  # noqa: B008
) -> tuple[np.ndarray, CalibrationViews]:
    """The calibration renders, for looking at them (what :func:`calibrate_landmarks` shows the detector).

    Args:
        model: the face model.
        config: the views.
        rows: which views (default all).

    Returns:
        ``(images, views)``: ``(N, S, S, 3)`` uint8 RGB renders of the chosen rows and all the views.
    """
    _check_model(model)
    if not isinstance(config, EmbeddingConfig):
        raise TypeError(f"config: expected an EmbeddingConfig, got {describe(config)}")
    views = _views(model, config)
    chosen = np.arange(len(views)) if rows is None else np.asarray(list(rows), dtype=np.int64)
    if chosen.size and (chosen.min() < 0 or chosen.max() >= len(views)):
        raise ValueError(f"rows: expected view indices in [0, {len(views)}), got [{chosen.min()}, {chosen.max()}]")
    albedo = _albedo(model, model.submesh("head").vertex_count)
    images = [
        _render_batch(model, config, views, chosen[s : s + config.batch_size], albedo).images
        for s in range(0, len(chosen), config.batch_size)
    ]
    size = config.image_size
    return (np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)), views
