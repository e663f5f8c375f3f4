"""What a person's images share, made once: the textured reconstruction of a view with the person's identity held,
the texture fused from several views, and the person's files (the animated GLB, the CSV, the per-frame lines)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from facerecon.core.check import check_shape
from facerecon.detect.types import Detection
from facerecon.estimate.fit import FitConfig, FitEstimator
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import FLIP_YZ, camera_rotation_to_head_angles
from facerecon.io._meshfile import png_bytes
from facerecon.io.animation import FaceAnimation
from facerecon.io.animation_csv import write_animation_csv
from facerecon.io.atomic import write_bytes_atomic
from facerecon.io.gltf import write_glb
from facerecon.models.face_model import FaceModel
from facerecon.pipeline.options import ReconstructOptions
from facerecon.pipeline.reconstruction import Reconstruction
from facerecon.pipeline.run import Reconstructor, export_mesh
from facerecon.texture.atlas import ExportLayout, paint_patches

__all__ = ["FusedTexture", "PersonPose", "PoseStart", "expression_share", "fuse_textures", "fusion_weight",
           "person_reconstructor", "refine_identity", "write_person"]

#: Fusion weight = (how head-on a view sees the texel) ** FUSION_SHARPNESS: the best-seen view dominates each
#: texel, and where two views see it about as well their colours blend, so no seam shows where the best one changes.
FUSION_SHARPNESS = 4.0
#: The weight every view keeps where none sees the texel: their own completions (mirror, fill) are averaged there.
FUSION_FLOOR = 1e-3


@dataclass(frozen=True)
class FusedTexture:
    """A face texture fused from several views: ``texture`` and ``albedo`` ``(S, S, 3)`` uint8 (the face's UV
    tile, like :class:`facerecon.pipeline.reconstruction.FaceTextures`), ``seen`` ``(S, S)`` float32 the best
    view's weight per texel, ``best_view`` ``(S, S)`` int the view that sees each texel best (-1: none)."""

    texture: np.ndarray
    albedo: np.ndarray | None
    seen: np.ndarray
    best_view: np.ndarray


@dataclass(frozen=True)
class PersonPose:
    """One image (frame or photo) of the person: its time (seconds; the photo's position in a set),
    ``rotation (3, 3)``, ``translation (3,)`` mm, ``expression (K_exp,)``, optional ``sh (9, 3)``, the landmark
    error (px) and anything else for its line of ``params.jsonl``."""

    time_s: float
    rotation: np.ndarray
    translation: np.ndarray
    expression: np.ndarray
    landmark_error_px: float
    sh: np.ndarray | None = None
    extra: dict | None = None


def person_reconstructor(model: FaceModel, options: ReconstructOptions, identity: np.ndarray, detector) -> Reconstructor:
    """A :class:`Reconstructor` whose fit holds ``identity (K_id,)`` (pose, expression, light and albedo are
    fitted; texture, details and pictures as for any photo)."""
    config = FitConfig(photometric=options.stages in ("photometric", "all"), max_fit_side=options.max_fit_side,
                       landmark=options.landmark, photometric_stage=options.photometric, start="pnp")  # fmt: skip
    return Reconstructor(model, options, detector=detector, estimator=FitEstimator(model, config, identity=identity))


@dataclass(frozen=True)
class PoseStart:
    """Where a fit of one image of the person starts (anything the fit takes as ``init``)."""

    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray


def refine_identity(model: FaceModel, options: ReconstructOptions, views: list[tuple[np.ndarray, Detection, PerspectiveCamera]],
                    starts: list[PoseStart]) -> np.ndarray:  # fmt: skip
    """``(K_id,)`` the person's identity refined on the photos' colours: each view's photometric fit, started from the
    joint landmark fit (``starts``), refines the identity on its own, and the person's is their mean.

    Landmarks carry a bias that the views share (the detector's), which a joint landmark fit follows more closely
    the more views agree; each photometric fit adds dense evidence of its own, and the mean keeps what the views
    agree on. Without the photometric stage (``options.stages == "landmarks"``) the joint fit's identity is kept.
    """
    if options.stages == "landmarks":
        return np.asarray(starts[0].identity, np.float64)
    # The identity prior split over the views (each view's fit carries 1/F of it), so that the mean of the views'
    # identities is, to first order, the joint maximum a posteriori one (equal Gaussians multiplied); the
    # expression prior stays each view's own.
    views_n = len(views)
    landmark = replace(options.landmark, landmark_sigma=options.landmark.landmark_sigma / np.sqrt(views_n),
                       expression_weight=options.landmark.expression_weight * views_n)  # fmt: skip
    photometric = replace(options.photometric, identity_weight=options.photometric.identity_weight / views_n)
    config = FitConfig(photometric=True, max_fit_side=options.max_fit_side, landmark=landmark,
                       photometric_stage=photometric, start="pnp")  # fmt: skip
    estimator = FitEstimator(model, config)
    try:
        identities = [estimator.estimate(image, detection, camera, init=start).identity.double().numpy()
                      for (image, detection, camera), start in zip(views, starts)]  # fmt: skip
    finally:
        estimator.close()
    return np.mean(identities, axis=0)


def fusion_weight(rec: Reconstructor, image: np.ndarray, reconstruction: Reconstruction, expression: np.ndarray) -> np.ndarray:
    """``(S, S)`` float32 in [0, 1]: how much ``image``, reconstructed as ``reconstruction``, counts for each texel
    of the face tile in a fused texture: how head-on it sees the texel (0: hidden), times
    :func:`expression_share` of the view's ``expression (K_exp,)``."""
    model = rec.model
    face = model.submesh("face")
    n = face.vertex_count
    vertices = torch.as_tensor(reconstruction.mesh.vertices[:n], dtype=torch.float32)[None]
    rotation = torch.as_tensor(reconstruction.pose.rotation, dtype=torch.float32)
    translation = torch.as_tensor(reconstruction.pose.translation, dtype=torch.float32)
    cam = vertices @ rotation.T + translation
    # The camera the view was reconstructed with (a photo's EXIF focal length, not the default).
    (height, width), (fx, fy, cx, cy) = reconstruction.camera.image_size, reconstruction.camera.intrinsics
    camera = PerspectiveCamera(*(torch.tensor([v], dtype=torch.float32) for v in (fx, fy, cx, cy)), width, height)
    photo = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    screen = camera.project_with_depth(cam)
    seen = rec.baker.bake(photo, screen, cam, face.triangles, torch.zeros(n, 3)).weight
    return seen * expression_share(model, expression)


def expression_share(model: FaceModel, expression: np.ndarray) -> float:
    """How much a view counts in a fused texture for its expression, in [0.1, 1]: an open mouth or shut eyes show
    teeth, the mouth's inside or eyelids where the neutral face's texture has lips and eyes, so such a view gives
    way to a calmer one that sees the texel about as well (1 - the strongest of jawOpen and the blinks)."""
    names = [n for n in ("jawOpen", "eyeBlink_L", "eyeBlink_R") if n in model.expression_names]
    strongest = max((float(expression[model.expression_index(n)]) for n in names), default=0.0)
    return float(np.clip(1.0 - strongest, 0.1, 1.0))


def fuse_textures(textures: list[np.ndarray], weights: list[np.ndarray], albedos: list[np.ndarray] | None = None) -> FusedTexture:
    """Fuse views' face textures ``(S, S, 3)`` uint8 by their weights ``(S, S)``: the best-seen texel wins, seams
    blend (:data:`FUSION_SHARPNESS`); where no view sees a texel, the views' own completions are averaged."""
    if not textures or len(textures) != len(weights) or (albedos is not None and len(albedos) != len(textures)):
        raise ValueError("textures, weights, albedos: expected one of each per view (at least one view)")
    size = textures[0].shape[:2]
    for i, (texture, weight) in enumerate(zip(textures, weights)):
        check_shape(texture, f"textures[{i}]", (*size, 3))
        check_shape(weight, f"weights[{i}]", size)
    stack = np.stack(weights).astype(np.float64)  # (N, S, S)
    share = np.clip(stack, 0.0, 1.0) ** FUSION_SHARPNESS + FUSION_FLOOR
    share /= share.sum(0, keepdims=True)

    def blend(images: list[np.ndarray]) -> np.ndarray:
        mixed = np.einsum("nhw,nhwc->hwc", share, np.stack(images).astype(np.float64))
        return np.clip(mixed.round(), 0, 255).astype(np.uint8)

    best = np.where(stack.max(0) > 0, stack.argmax(0), -1)
    return FusedTexture(blend(textures), None if albedos is None else blend(albedos), stack.max(0).astype(np.float32), best)


def _gltf_pose(rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model-to-camera pose (OpenCV camera: y down, looking along +z) in glTF's world (y up, the camera at
    the origin looking along -z): both flip y and z."""
    flip = np.asarray(FLIP_YZ, np.float64)
    return flip @ rotation, flip @ translation


def head_yaw_pitch_roll(rotation: np.ndarray) -> np.ndarray:
    """``(3,)`` radians: the head's (yaw, pitch, roll) of a model-to-camera rotation."""
    pitch, yaw, roll = camera_rotation_to_head_angles(torch.as_tensor(rotation, dtype=torch.float64)).numpy()
    return np.array([yaw, pitch, roll])


def write_person(
    folder: str | os.PathLike[str],
    model: FaceModel,
    layout: ExportLayout,
    identity: np.ndarray,
    poses: list[PersonPose],
    texture: np.ndarray | None,
    *,
    albedo: np.ndarray | None = None,
    fps: float | None,
    camera: PerspectiveCamera,
    texture_size: int,
    info: dict,
) -> Path:
    """Write a person's files into ``folder``: ``face.glb`` (the identity's head, the texture, the 53 expression
    morph targets, and with ``fps`` an animation of the morph weights and the head's transform at the poses'
    times, with the video's camera), ``animation.csv`` (Live Link Face layout; video only), ``params.jsonl`` (a
    line per pose), ``person.json`` (identity, camera, ``info``), ``texture.png`` and ``albedo.png``.

    Args:
        layout: the head's export layout (:func:`facerecon.texture.atlas.export_layout`).
        camera: the video's camera, or the first photo's.
        texture: the face tile's texture ``(S, S, 3)`` uint8, or None for a flat grey one of ``texture_size``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = model.expression_names
    ident = torch.as_tensor(identity, dtype=torch.float32)[None]
    neutral = torch.zeros(1, model.expression_count)
    with torch.no_grad():
        vertices = model(ident, neutral, submesh="head")[0]
    face_texture = texture if texture is not None else np.full((texture_size, texture_size, 3), 170, np.uint8)
    export_texture = paint_patches(face_texture, layout, np.full(3, 170 / 255.0))
    mesh = export_mesh(model, layout, vertices, torch.zeros(model.expression_count), export_texture)
    width, height = camera.width, camera.height
    focal = float(camera.fx[0])
    animation = None
    times = np.array([p.time_s for p in poses], np.float64)
    weights = np.stack([p.expression for p in poses]).astype(np.float64)
    if fps is not None:
        gltf_poses = [_gltf_pose(p.rotation, p.translation) for p in poses]
        animation = FaceAnimation(times_s=times - times[0], morph_weights=weights,
                                  rotations=np.stack([r for r, _ in gltf_poses]),
                                  translations=np.stack([t for _, t in gltf_poses]),
                                  camera_yfov_rad=2.0 * math.atan(height / (2.0 * focal)),
                                  camera_aspect=width / height)  # fmt: skip
        write_animation_csv(folder / "animation.csv", times - times[0], names, weights,
                            np.stack([head_yaw_pitch_roll(p.rotation) for p in poses]), fps=fps)  # fmt: skip
    write_glb(folder / "face.glb", mesh, animation=animation)
    if texture is not None:
        write_bytes_atomic(folder / "texture.png", png_bytes(texture))
    if albedo is not None:
        write_bytes_atomic(folder / "albedo.png", png_bytes(albedo))
    lines = []
    for p in poses:
        yaw, pitch, roll = np.degrees(head_yaw_pitch_roll(p.rotation))
        line = {**(p.extra or {}), "time_s": round(float(p.time_s), 6),
                "rotation": np.asarray(p.rotation).tolist(), "translation": np.asarray(p.translation).tolist(),
                "head_angles_deg": {"yaw": float(yaw), "pitch": float(pitch), "roll": float(roll)},
                "expression": {n: float(w) for n, w in zip(names, p.expression)},
                "landmark_error_px": round(float(p.landmark_error_px), 4)}  # fmt: skip
        if p.sh is not None:
            line["sh"] = np.asarray(p.sh).tolist()
        lines.append(json.dumps(line))
    write_bytes_atomic(folder / "params.jsonl", ("\n".join(lines) + "\n").encode())
    person = {**info, "identity": [float(v) for v in identity], "expression_names": list(names),
              "camera": {"width": width, "height": height, "fx": focal, "fy": float(camera.fy[0]),
                         "cx": float(camera.cx[0]), "cy": float(camera.cy[0])},
              "images": len(poses)}  # fmt: skip
    write_bytes_atomic(folder / "person.json", json.dumps(person, indent=1).encode())
    return folder


def nearest_detection(detections: list[Detection], landmarks: np.ndarray, select) -> Detection | None:
    """The detection whose selected landmarks lie closest (median distance) to ``landmarks (L, 2)`` px."""
    best, best_distance = None, np.inf
    for det in detections:
        distance = float(np.median(np.linalg.norm(select(det)[0] - landmarks, axis=1)))
        if distance < best_distance:
            best, best_distance = det, distance
    return best
