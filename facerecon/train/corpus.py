"""The regressor's training corpus: fitted photos re-rendered at new poses, expressions, lights and identities.

Self-augmentation after paper 000 (its supplement: 26 large yaws ``yaw_i = delta * 10 * (6 + i / 4)`` degrees,
``delta = -1`` for ``i`` in 0..12 and ``+1`` for 13..25, read with ``i mod 13`` so the angles run 60..90 degrees
on both sides) and paper 001 (CNNs trained on photo-realistic images synthesised by inverse rendering): every
fitted subject (:mod:`facerecon.pipeline.subject`: identity, per-vertex and UV albedo from its photo, light) is
rendered into square crops with exact ground truth. A view draws

* a head pose: a share of the views at paper 000's yaws, the rest uniform in [-90, 90] degrees; pitch uniform in
  +-``pitch_deg`` (the papers keep it at 0; faces looking up are where landmark fits fail); roll ~ N(0, roll_sd);
* a virtual photo (512 px, 35 mm focal length uniform in ``focal_35mm``) with the head anywhere in its middle at a
  size uniform in ``face_fraction``, so perspective and off-axis views vary as in real photos;
* the crop as inference makes it (:class:`facerecon.nets.crop.CropBox` around the projected face, brow to chin,
  scale and shift jittered like a detector's box), rendered straight into the crop's camera (no resampling);
* an expression (its own, another subject's, or random sparse ARKit weights), a light (its own, another
  subject's, or a random directional one, with a brightness factor), and a random identity from the model's prior
  in a share of the views (the subject's textures carried over, as textures live in UV space);
* a background: a random square of another photo of the same split.

A few crops hold no face (a square of a photo clear of the faces the detector finds in it) so that the confidence
output learns to say so.

Generation is deterministic given the seed: each subject's views come from its own generator seeded by
``(seed, subject index)``. The corpus is a folder: ``shards/<subject>.npz`` (one per subject, written atomically,
skipped when present, so an interrupted run resumes) and ``manifest.json`` (config, subjects, view counts).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from facerecon.core.config import config_values
from facerecon.geometry.camera import PerspectiveCamera, focal_px_from_35mm
from facerecon.geometry.rotation import head_angles_to_camera_rotation
from facerecon.io.atomic import atomic_path, write_text_atomic
from facerecon.models.face_model import FaceModel
from facerecon.nets.crop import CropBox, crop_camera, crop_image, crop_pose_from_pose
from facerecon.render.head import render_head
from facerecon.render.sh import directional_sh
from facerecon.train.losses import PIVOT

#: Paper 000's 26 large yaws, degrees (see the module docstring).
PAPER_YAWS_DEG: tuple[float, ...] = tuple((-1.0 if i <= 12 else 1.0) * 10.0 * (6.0 + (i % 13) / 4.0) for i in range(26))
VIRTUAL_PHOTO_PX = 512
#: The crop box is the square around this sub-mesh's projection (its size changes little with the head's turn).
BOX_SUBMESH = "narrow_face"
#: Typical head width (ear to ear) for the size of the face in the virtual photo, mm.
HEAD_WIDTH_MM = 160.0


@dataclass(frozen=True)
class CorpusConfig:
    """How views are drawn (see the module docstring; angles in degrees).

    Attributes:
        crop_size: the crops' side, px (the network's input size).
        views_per_subject: views rendered of each subject (plus ``negative_fraction`` of crops without a face).
        paper_yaw_fraction: share of views at paper 000's 26 yaws.
        pitch_deg: pitch uniform in [-pitch_deg, pitch_deg].
        roll_sd_deg / roll_max_deg: roll ~ N(0, roll_sd), clipped.
        focal_35mm: range of the virtual photo's 35 mm-equivalent focal length.
        face_fraction: range of the head's width as a share of the virtual photo's side.
        box_scale: range of the crop side over the longer side of the projected ``BOX_SUBMESH``'s box (the
            inference crop uses the middle).
        box_shift: the crop's centre moves by up to this share of its side.
        own_expression / other_expression: shares of views with the subject's fitted expression / another
            subject's (the rest: random sparse weights).
        own_light / other_light: shares of views with the subject's fitted light / another's (the rest: random).
        random_identity: share of views with an identity drawn from N(0, identity_sd^2).
        identity_sd: standard deviation of random identities.
        negative_fraction: crops without a face, as a share of the face views.
        supersample: rendering antialiasing factor.
        seed: the corpus seed.
    """

    crop_size: int = 128
    views_per_subject: int = 100
    paper_yaw_fraction: float = 0.3
    pitch_deg: float = 35.0
    roll_sd_deg: float = 12.0
    roll_max_deg: float = 35.0
    focal_35mm: tuple[float, float] = (28.0, 85.0)
    face_fraction: tuple[float, float] = (0.25, 0.7)
    box_scale: tuple[float, float] = (1.15, 1.45)
    box_shift: float = 0.08
    own_expression: float = 0.4
    other_expression: float = 0.3
    own_light: float = 0.4
    other_light: float = 0.4
    random_identity: float = 0.25
    identity_sd: float = 0.8
    negative_fraction: float = 0.03
    supersample: int = 1
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CorpusConfig:
        values = config_values(cls, text, "corpus config")
        for key in ("focal_35mm", "face_fraction", "box_scale"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


#: The inference crop's side over the projected face's box: the middle of the training range.
INFERENCE_BOX_SCALE = sum(CorpusConfig().box_scale) / 2


@dataclass(frozen=True)
class SubjectAppearance:
    """What a view needs of a fitted subject (NumPy): identity ``(K_id,)``, expression ``(K_exp,)``, light
    ``sh (9, 3)``, per-vertex albedo of the head ``(V_head, 3)``, the face tile's albedo texture ``(S, S, 3)`` float32
    in [0, 1], and its photo ``(H, W, 3)`` uint8 (a background source)."""

    name: str
    identity: np.ndarray
    expression: np.ndarray
    sh: np.ndarray
    albedo: np.ndarray
    albedo_texture: np.ndarray
    photo: np.ndarray


@dataclass(frozen=True, eq=False)
class ViewBatch:
    """Rendered crops with ground truth (NumPy, batch first; ``N`` crops).

    Attributes:
        crops: ``(N, S, S, 3)`` uint8 RGB.
        is_face: ``(N,)`` bool (False: a background crop; its other fields are zeros).
        identity: ``(N, K_id)`` float32; expression: ``(N, K_exp)`` float32; sh: ``(N, 9, 3)`` float32.
        rotation: ``(N, 3, 3)`` float32 the crop pose's seen rotation; centre: ``(N, 2)``; log_scale: ``(N,)``
            (:class:`facerecon.nets.crop.CropPose`).
        camera: ``(N, 3)`` float64 ``(focal, cx, cy)`` px of each crop's camera (square pixels).
        landmarks: ``(N, 68, 2)`` float32 the iBUG 68 landmarks projected into the crop, px.
        angles: ``(N, 3)`` float32 head (pitch, yaw, roll) in degrees in the virtual photo's camera.
    """

    crops: np.ndarray
    is_face: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    sh: np.ndarray
    rotation: np.ndarray
    centre: np.ndarray
    log_scale: np.ndarray
    camera: np.ndarray
    landmarks: np.ndarray
    angles: np.ndarray

    FIELDS = ("crops", "is_face", "identity", "expression", "sh", "rotation", "centre", "log_scale", "camera",
              "landmarks", "angles")  # fmt: skip

    def __len__(self) -> int:
        return len(self.crops)

    @classmethod
    def concatenate(cls, batches: Sequence[ViewBatch]) -> ViewBatch:
        return cls(**{k: np.concatenate([getattr(b, k) for b in batches]) for k in cls.FIELDS})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as an uncompressed ``.npz`` (atomically)."""
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{k: getattr(self, k) for k in self.FIELDS})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ViewBatch:
        with np.load(path) as data:
            missing = [k for k in cls.FIELDS if k not in data]
            if missing:
                raise ValueError(f"{path}: not a corpus shard (missing {', '.join(missing)})")
            return cls(**{k: data[k] for k in cls.FIELDS})


def _random_expression(rng: np.random.Generator, count: int) -> np.ndarray:
    """Sparse random ARKit weights: each on with probability 0.12, uniform in [0, 1]."""
    on = rng.random(count) < 0.12
    return np.where(on, rng.random(count), 0.0)


def _random_light(rng: np.random.Generator) -> np.ndarray:
    """A white-ish directional light plus ambient, from the camera's side of the face."""
    direction = rng.normal(size=3)
    direction[2] = -abs(direction[2]) - 0.3  # towards the light, on the camera's side (the face looks along -z)
    direction /= np.linalg.norm(direction)
    tint = 1.0 + rng.normal(scale=0.08, size=3)
    strength = rng.uniform(0.4, 1.2)
    colour = torch.tensor(math.pi * strength * tint)[None]
    ambient = torch.tensor(rng.uniform(0.3, 0.8) * tint)[None]
    sh = directional_sh(torch.tensor(direction)[None], colour, ambient)[0]
    return sh.numpy()


@dataclass(frozen=True, eq=False)
class Background:
    """A background photo: ``image (H, W, 3)`` uint8 RGB and the boxes of the faces in it, ``face_boxes (M, 4)``
    ``[x0, y0, x1, y1]`` px (face-free crops, the confidence's negatives, stay clear of them)."""

    image: np.ndarray
    face_boxes: np.ndarray


def background_pool(subjects: Sequence[SubjectAppearance], size: int, *, find_faces: bool = True) -> list[Background]:
    """The subjects' photos (each once) shrunk (area-averaged) so their short side is at most ``3 * size``: a
    background crop needs no more, and cropping a large photo costs more than rendering the head. With
    ``find_faces``, the faces in each are found by the MediaPipe detector (any it misses stay possible in a
    negative crop)."""
    # Subjects of one photo share it; read back from a cache, they hold equal copies: keyed by a sparse sample.
    unique = list({(p.photo.shape, p.photo[::37, ::37].tobytes()): p.photo for p in subjects}.values())
    detector = None
    if find_faces:
        from facerecon.detect import create_detector

        detector = create_detector("mediapipe", max_faces=20)
    out = []
    try:
        for image in unique:
            boxes = np.array([d.box for d in detector.detect(image)]).reshape(-1, 4) if detector else np.zeros((0, 4))
            scale = 3 * size / min(image.shape[:2])
            if scale < 1.0:
                image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                                   interpolation=cv2.INTER_AREA)  # fmt: skip
                boxes = boxes * scale
            out.append(Background(image, boxes))
    finally:
        if detector is not None:
            detector.close()
    return out


def _square(rng: np.random.Generator, photo: np.ndarray) -> tuple[float, float, float]:
    """A random square of ``photo``: ``(centre u, centre v, side)`` px, side 30-100 % of the short side."""
    h, w = photo.shape[:2]
    side = rng.uniform(0.3, 1.0) * min(h, w)
    return rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2), side


def _clear_of_faces(u: float, v: float, side: float, boxes: np.ndarray) -> bool:
    """True when the square covers under 15 % of every face box and contains no face box's centre."""
    if len(boxes) == 0:
        return True
    x0, y0, x1, y1 = u - side / 2, v - side / 2, u + side / 2, v + side / 2
    iw = np.clip(np.minimum(x1, boxes[:, 2]) - np.maximum(x0, boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(y1, boxes[:, 3]) - np.maximum(y0, boxes[:, 1]), 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    cu, cv = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    inside = (cu > x0) & (cu < x1) & (cv > y0) & (cv < y1)
    return bool(np.all(iw * ih / area < 0.15) and not inside.any())


def _background(rng: np.random.Generator, photos: Sequence[Background], size: int, *, face_free: bool = False) -> np.ndarray:
    """``(3, size, size)`` float32: a random square of a random photo (``face_free``: one clear of its faces,
    drawn up to 50 times)."""
    for _ in range(50):
        photo = photos[int(rng.integers(len(photos)))]
        u, v, side = _square(rng, photo.image)
        if not face_free or _clear_of_faces(u, v, side, photo.face_boxes):
            break
        side *= 0.4  # a smaller square about the same point before another photo
        u = float(np.clip(u, side / 2, photo.image.shape[1] - side / 2))
        v = float(np.clip(v, side / 2, photo.image.shape[0] - side / 2))
        if _clear_of_faces(u, v, side, photo.face_boxes):
            break
    out = crop_image(photo.image, CropBox(u - 0.5, v - 0.5, side), size)
    return out[:, :, ::-1].copy() if rng.random() < 0.5 else out


def render_views(model: FaceModel, subject: SubjectAppearance, pool: Sequence[SubjectAppearance],
                 config: CorpusConfig, rng: np.random.Generator, count: int, *,
                 backgrounds: Sequence[Background] | None = None) -> ViewBatch:  # fmt: skip
    """Render ``count`` views of ``subject`` (plus the configured share of face-free crops).

    Args:
        model: the face model the subjects were fitted with.
        subject: the subject rendered.
        pool: the split's subjects (other expressions, lights and backgrounds; may include ``subject``).
        config: how views are drawn.
        rng: the generator (the caller seeds it per subject).
        count: face views.
        backgrounds: the background photos (default: :func:`background_pool` of ``pool``, faces found).
    """
    s = config.crop_size
    n_photo = VIRTUAL_PHOTO_PX
    landmark_index = model.landmarks("ibug68").vertex_indices.cpu()
    box_n = model.submesh(BOX_SUBMESH).vertex_count
    photos = list(backgrounds) if backgrounds is not None else background_pool(pool, s)
    rows: list[dict[str, np.ndarray]] = []
    for _ in range(count):
        if rng.random() < config.paper_yaw_fraction:
            yaw = PAPER_YAWS_DEG[int(rng.integers(len(PAPER_YAWS_DEG)))]
        else:
            yaw = rng.uniform(-90.0, 90.0)
        pitch = rng.uniform(-config.pitch_deg, config.pitch_deg)
        roll = float(np.clip(rng.normal(scale=config.roll_sd_deg), -config.roll_max_deg, config.roll_max_deg))
        angles = np.array([pitch, yaw, roll])
        rotation = head_angles_to_camera_rotation(torch.tensor(np.radians(angles)))[None]  # (1, 3, 3) float64
        focal = focal_px_from_35mm(rng.uniform(*config.focal_35mm), n_photo, n_photo)
        photo_cam = PerspectiveCamera.from_focal(focal, n_photo, n_photo, dtype=torch.float64)
        depth = focal * HEAD_WIDTH_MM / (rng.uniform(*config.face_fraction) * n_photo)
        u, v = rng.uniform(0.3, 0.7, size=2) * n_photo
        pivot_cam = np.array([(u - photo_cam.cx.item()) / focal * depth, (v - photo_cam.cy.item()) / focal * depth, depth])
        translation = torch.tensor(pivot_cam - rotation[0].numpy() @ np.asarray(PIVOT))[None]

        r = rng.random()
        expression = subject.expression if r < config.own_expression else (
            pool[int(rng.integers(len(pool)))].expression if r < config.own_expression + config.other_expression
            else _random_expression(rng, model.expression_count))  # fmt: skip
        r = rng.random()
        sh = subject.sh if r < config.own_light else (
            pool[int(rng.integers(len(pool)))].sh if r < config.own_light + config.other_light else _random_light(rng))
        sh = sh * rng.uniform(0.7, 1.3)
        identity = subject.identity
        if rng.random() < config.random_identity:
            identity = rng.normal(scale=config.identity_sd, size=model.identity_count)
        id_t = torch.tensor(identity, dtype=torch.float32)[None]
        exp_t = torch.tensor(expression, dtype=torch.float32)[None]

        # The crop around the projected face (brow to chin), jittered like a detector's box.
        verts = model(id_t, exp_t, submesh="face")[0].double()
        cam_verts = verts @ rotation[0].T + translation[0]
        cam_lmk = cam_verts[landmark_index]
        box = CropBox.around(photo_cam.project(cam_verts[None, :box_n])[0].numpy(), rng.uniform(*config.box_scale),
                             shift=tuple(rng.uniform(-config.box_shift, config.box_shift, size=2)))  # fmt: skip
        cam = crop_camera(photo_cam, [box], s)
        background = torch.from_numpy(_background(rng, photos, s)).double()[None]
        # Rendered in float32 (a training image needs no float64 arithmetic; 2x faster).
        out = render_head(model, identity=id_t, expression=exp_t, albedo=torch.from_numpy(subject.albedo).float(),
                          texture=torch.from_numpy(subject.albedo_texture).float(), rotation=rotation.float(),
                          translation=translation.float(), camera=cam.to(dtype=torch.float32),
                          sh=torch.tensor(sh, dtype=torch.float32)[None], background=background.float(),
                          supersample=config.supersample)  # fmt: skip
        image = out.image[0].permute(1, 2, 0).numpy()
        image = image + rng.normal(scale=rng.uniform(0.0, 0.02), size=image.shape)  # sensor noise
        pose = crop_pose_from_pose(rotation, translation, cam, torch.tensor(PIVOT, dtype=torch.float64))
        rows.append({
            "crops": np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8), "is_face": np.bool_(True),
            "identity": identity.astype(np.float32), "expression": np.asarray(expression, np.float32),
            "sh": np.asarray(sh, np.float32), "rotation": pose.rotation[0].numpy().astype(np.float32),
            "centre": pose.centre[0].numpy().astype(np.float32), "log_scale": np.float32(pose.log_scale[0]),
            "camera": np.array([cam.fx.item(), cam.cx.item(), cam.cy.item()]),
            "landmarks": cam.project(cam_lmk[None])[0].numpy().astype(np.float32), "angles": angles.astype(np.float32),
        })  # fmt: skip
    negatives = int(round(count * config.negative_fraction))
    for _ in range(negatives):
        crop = (_background(rng, photos, s, face_free=True).transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
        rows.append({"crops": crop, "is_face": np.bool_(False), "identity": np.zeros(model.identity_count, np.float32),
                     "expression": np.zeros(model.expression_count, np.float32), "sh": np.zeros((9, 3), np.float32),
                     "rotation": np.eye(3, dtype=np.float32), "centre": np.zeros(2, np.float32),
                     "log_scale": np.float32(0.0), "camera": np.array([1.0, (s - 1) / 2, (s - 1) / 2]),
                     "landmarks": np.zeros((68, 2), np.float32), "angles": np.zeros(3, np.float32)})  # fmt: skip
    return ViewBatch(**{k: np.stack([row[k] for row in rows]) for k in ViewBatch.FIELDS})


@dataclass(frozen=True)
class CorpusReport:
    """What :func:`write_corpus` did: the folder, views per subject, and the subjects it skipped (present)."""

    folder: Path
    views: dict[str, int] = field(default_factory=dict)
    reused: tuple[str, ...] = ()


_FORKED: dict = {}  # what forked workers of write_corpus render from (set before the fork)


def _render_shard(index: int) -> tuple[str, int]:
    """A forked worker's job: one subject's shard, on one torch thread."""
    torch.set_num_threads(1)
    return _render_one(*_FORKED["args"], index)


def _render_one(model: FaceModel, subjects: Sequence[SubjectAppearance], backgrounds: Sequence[Background],
                config: CorpusConfig, root: Path, index: int) -> tuple[str, int]:  # fmt: skip
    """Render subject ``index``'s views (its own generator) into its shard; ``(name, face views)``."""
    subject = subjects[index]
    rng = np.random.default_rng([config.seed, index])
    batch = render_views(model, subject, subjects, config, rng, config.views_per_subject, backgrounds=backgrounds)
    batch.save(root / "shards" / f"{subject.name}.npz")
    return subject.name, int(batch.is_face.sum())


def write_corpus(model: FaceModel, subjects: Sequence[SubjectAppearance], folder: str | os.PathLike[str],
                 config: CorpusConfig = CorpusConfig(), *, split: str = "train", workers: int = 1,
                 progress: Callable[[int, int], None] | None = None) -> CorpusReport:  # fmt: skip
    """Render every subject's views into ``folder/shards/<name>.npz`` and write ``folder/manifest.json``.

    Shards already present are kept (an interrupted run resumes); subjects are independent given the seed, so
    ``workers`` processes (forked, one torch thread each) give the same files as one.
    """
    if not subjects:
        raise ValueError("subjects: expected at least one fitted subject, got none")
    root = Path(folder)
    (root / "shards").mkdir(parents=True, exist_ok=True)
    views: dict[str, int] = {}
    reused: list[str] = []
    todo: list[int] = []
    for index, subject in enumerate(subjects):
        path = root / "shards" / f"{subject.name}.npz"
        if path.exists():
            reused.append(subject.name)
            with np.load(path) as data:
                views[subject.name] = int(data["is_face"].sum())
        else:
            todo.append(index)
    done = len(reused)
    _FORKED["args"] = (model, list(subjects), background_pool(subjects, config.crop_size) if todo else [], config, root)
    try:
        if workers > 1 and len(todo) > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for name, count in pool.imap_unordered(_render_shard, todo):
                    views[name], done = count, done + 1
                    if progress is not None:
                        progress(done, len(subjects))
        else:
            for index in todo:
                name, count = _render_one(*_FORKED["args"], index)
                views[name], done = count, done + 1
                if progress is not None:
                    progress(done, len(subjects))
    finally:
        _FORKED.clear()
    views = {s.name: views[s.name] for s in subjects}
    manifest = {"split": split, "config": json.loads(config.to_json()), "subjects": [s.name for s in subjects],
                "views": views, "model_sha256": model.info.get("source_sha256"), "format": 1}  # fmt: skip
    write_text_atomic(root / "manifest.json", json.dumps(manifest, indent=1))
    return CorpusReport(root, views, tuple(reused))

