"""``facerecon train posmap``: the position-map network of paper 002 on the rendered corpus, read top to bottom.

Config (a JSON file, :class:`PosMapTrainConfig`) -> data (the regressor's corpus, :class:`facerecon.train.regressor.
Corpus`: its crops, and ground-truth position maps made from its exact parameters, :class:`MapTargets`) -> model
(:class:`facerecon.nets.posmap.PosMapNet`) -> loop (Adam, the learning rate halved every ``halve_every`` steps as in
paper 002, the weighted loss :func:`weighted_map_loss`) -> validation every ``eval_every`` steps on the validation
corpus (people the network never trains on) -> checkpoints (safetensors, resumed exactly) -> the final weights
through :func:`facerecon.nets.weights.save_weights` with the figures reached.

The loss is paper 002's eq. 3, ``sum_texels |P(x, y) - P~(x, y)| W(x, y)``, normalised by the weights' sum: the
Euclidean distance of each texel's position (the map's units, half a crop side) weighted by region, with the
weight mask ``r1`` (16 : 5 : 4 : 3 : 0) or ``r2`` (1 : 1 : 1 : 1 : 0) of paper 002's table 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from facerecon.core.config import config_values
from facerecon.io.atomic import write_text_atomic
from facerecon.models.face_model import FaceModel
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.nets.crop import CropPose, pose_from_crop
from facerecon.nets.device import resolve_device
from facerecon.nets.position_map import WEIGHT_RATIOS, PositionMapLayout
from facerecon.nets.posmap import PosMapConfig, PosMapNet
from facerecon.nets.weights import save_weights
from facerecon.train.losses import PIVOT, Targets
from facerecon.train.regressor import (
    YAW_BINS_DEG,
    Corpus,
    Degrade,
    augment,
    batch_index,
    degrade,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["MapTargets", "PosMapTrainConfig", "PosMapTrainResult", "evaluate_posmap", "train_posmap", "weighted_map_loss"]


@dataclass(frozen=True)
class PosMapTrainConfig:
    """Everything a position-map training run depends on (written beside its checkpoints and into the weights).

    Attributes:
        train_corpus / val_corpus: corpus folders (:mod:`facerecon.train.corpus`; the regressor's).
        network: the architecture.
        weights: the loss's weight mask, ``"r1"`` or ``"r2"`` (paper 002, table 2).
        steps: optimiser steps; batch_size: crops per step.
        lr: Adam's first learning rate; halve_every: steps between halvings (paper 002: "decays by half").
        grad_clip: the gradient's global norm is clipped to this.
        colour_jitter / degrade: the crop augmentations of :mod:`facerecon.train.regressor`.
        eval_every / checkpoint_every: in steps; eval_faces: validation faces evaluated during training (all at
            the end).
        seed: the run's seed; threads: torch intra-op threads (None: torch's default).
    """

    train_corpus: str = "corpus/train"
    val_corpus: str = "corpus/val"
    network: PosMapConfig = field(default_factory=PosMapConfig)
    weights: str = "r1"
    steps: int = 12000
    batch_size: int = 32
    lr: float = 1e-3
    halve_every: int = 2400
    grad_clip: float = 5.0
    colour_jitter: float = 0.25
    degrade: Degrade = field(default_factory=lambda: Degrade())
    eval_every: int = 1000
    eval_faces: int = 1024
    checkpoint_every: int = 250
    seed: int = 0
    threads: int | None = 2

    def __post_init__(self) -> None:
        if self.weights not in WEIGHT_RATIOS:
            raise ValueError(f"weights: expected one of {', '.join(WEIGHT_RATIOS)}, got {self.weights!r}")
        for name in ("steps", "batch_size", "halve_every", "eval_every", "eval_faces", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        values["network"] = json.loads(self.network.to_json())
        return json.dumps(values, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> PosMapTrainConfig:
        values = config_values(cls, text, "training config")
        if "network" in values:
            values["network"] = PosMapConfig.from_json(json.dumps(values["network"]))
        if "degrade" in values:
            values["degrade"] = Degrade(**values["degrade"])
        return cls(**values)


class MapTargets:
    """Ground-truth position maps of corpus crops, made from their exact parameters (no maps are stored).

    Args:
        model: the face model the corpus was rendered with.
        map_size: the maps' side (the network's).
    """

    def __init__(self, model: FaceModel, map_size: int) -> None:
        self.model = model
        self.layout = PositionMapLayout(model, map_size)
        self._pivot = torch.tensor(PIVOT, dtype=torch.float64)

    def camera_vertices(self, corpus: Corpus, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``face`` sub-mesh of crops ``index`` in their cameras ``(B, V, 3)`` float64 mm, and the pivots'
        depths ``(B,)`` mm (the maps' reference depths)."""
        return self._posed(corpus.targets(index))[:2]

    def maps(self, corpus: Corpus, index: torch.Tensor) -> torch.Tensor:
        """``(B, 3, M, M)`` float32 ground-truth maps of crops ``index`` (faces only)."""
        cam, depth, camera = self._posed(corpus.targets(index))
        return self.layout.encode(cam, camera, depth).float()

    def _posed(self, t: Targets) -> tuple[torch.Tensor, torch.Tensor, PerspectiveCamera]:
        """The targets' faces in their crop cameras ``(B, V, 3)``, the pivots' depths ``(B,)`` and the cameras
        (float64)."""
        with torch.no_grad():
            vertices = self.model(t.identity, t.expression, submesh="face").double()
        camera = t.camera.to(dtype=torch.float64)
        pose = CropPose(t.pose.rotation.double(), t.pose.centre.double(), t.pose.log_scale.double())
        rotation, translation = pose_from_crop(pose, camera, self._pivot)
        cam = vertices @ rotation.transpose(1, 2) + translation[:, None]
        return cam, (rotation @ self._pivot + translation)[:, 2], camera


def weighted_map_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Paper 002's eq. 3, normalised: ``sum W |P - P~| / (B sum W)`` for maps ``(B, 3, M, M)`` and a mask
    ``(M, M)``."""
    distance = torch.sqrt(((pred - target) ** 2).sum(1) + 1e-12)  # (B, M, M); the epsilon keeps the gradient finite
    return (distance * mask).sum() / (mask.sum() * pred.shape[0])


def learning_rate(step: int, config: PosMapTrainConfig) -> float:
    """``lr`` halved every ``halve_every`` steps."""
    return config.lr * 0.5 ** (step // config.halve_every)


def _face_index(corpus: Corpus) -> torch.Tensor:
    return torch.nonzero(corpus.is_face)[:, 0]


@torch.no_grad()
def evaluate_posmap(net: PosMapNet, corpus: Corpus, targets: MapTargets, mask: torch.Tensor, *, limit: int | None = None,
                    batch_size: int = 64) -> dict[str, float]:  # fmt: skip
    """Figures on a corpus's faces (``limit`` of them, evenly spread, or all): the weighted map loss and the
    68-landmark NME read from the maps (by the landmarks' box, AFLW2000-3D style), overall and by yaw bin."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    faces = _face_index(corpus)
    if limit is not None and limit < len(faces):
        faces = faces[torch.linspace(0, len(faces) - 1, limit).round().long()]
    losses, nme, yaws = [], [], []
    size = corpus.crop_size
    for start in range(0, len(faces), batch_size):
        index = faces[start : start + batch_size]
        pred = net(corpus.images(index).to(device)).cpu()
        gt = targets.maps(corpus, index)
        losses.append(weighted_map_loss(pred, gt, mask) * len(index))
        landmarks = targets.layout.landmarks(pred, size)
        truth = corpus.landmarks[index]
        lo, hi = truth.min(1).values, truth.max(1).values
        nme.append(torch.linalg.norm(landmarks - truth, dim=-1).mean(-1) / (hi - lo).prod(-1).sqrt())
        yaws.append(corpus.angles[index, 1].abs())
    net.train(was_training)
    nme_all, yaw_all = torch.cat(nme), torch.cat(yaws)
    out = {"map_loss": float(torch.stack(losses).sum() / len(faces)), "nme": float(nme_all.mean()), "faces": float(len(faces))}
    for lo, hi in YAW_BINS_DEG:
        m = (yaw_all >= lo) & (yaw_all < hi)
        if bool(m.any()):
            out[f"nme_yaw_{int(lo)}_{int(round(hi))}"] = float(nme_all[m].mean())
    return out


@dataclass(frozen=True)
class PosMapTrainResult:
    """A finished run: the weights file, its SHA-256, the last validation figures and the loss history."""

    weights: Path
    sha256: str
    metrics: dict[str, float]
    history: tuple[float, ...]


def train_posmap(model: FaceModel, config: PosMapTrainConfig, out_dir: str | os.PathLike[str], *, device: str = "auto",
                 resume: bool = True, on_step: Callable[[int, float], None] | None = None,
                 on_eval: Callable[[int, dict[str, float]], None] | None = None) -> PosMapTrainResult:  # fmt: skip
    """Train (or resume) a position-map network; writes ``out_dir/config.json``, ``checkpoint.safetensors`` and
    ``posmap.safetensors`` (the final weights with their validation figures on every validation face).

    Raises:
        FileNotFoundError: a corpus folder without shards.
        ValueError: crops of another size than the network's input, or a checkpoint of another config.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    train, val = Corpus(config.train_corpus), Corpus(config.val_corpus)
    if train.crop_size != config.network.input_size:
        raise ValueError(f"train_corpus: crops of {train.crop_size} px, the network takes {config.network.input_size} px")
    targets = MapTargets(model, config.network.map_size)
    mask = targets.layout.weight_mask(config.weights)
    mask_dev = mask.to(dev)
    faces = _face_index(train)
    net = PosMapNet(config.network).to(dev)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    write_text_atomic(out / "config.json", config.to_json())
    checkpoint = out / "checkpoint.safetensors"
    step = load_checkpoint(checkpoint, net, optimiser, config) if resume and checkpoint.exists() else 0
    history: list[float] = []
    metrics: dict[str, float] = {}
    net.train()
    while step < config.steps:
        index = faces[batch_index(step, config, len(faces))]  # the regressor's order, over the faces only
        generator = torch.Generator().manual_seed(config.seed * 7919 + step)
        images = degrade(augment(train.images(index), config.colour_jitter, generator), config.degrade, generator)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, config)
        loss = weighted_map_loss(net(images.to(dev)), targets.maps(train, index).to(dev), mask_dev)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimiser.step()
        step += 1
        history.append(float(loss.detach()))
        if step % config.eval_every == 0 and step < config.steps:
            metrics = evaluate_posmap(net, val, targets, mask, limit=config.eval_faces)
            if on_eval is not None:
                on_eval(step, metrics)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(checkpoint, net, optimiser, step, config)
        if on_step is not None:
            on_step(step, history[-1])
    metrics = evaluate_posmap(net, val, targets, mask)
    if on_eval is not None:
        on_eval(step, metrics)
    sha = save_weights(out / "posmap.safetensors", net.cpu(), face_model_sha256=model.info["source_sha256"],
                       training_config=json.loads(config.to_json()), metrics=metrics)  # fmt: skip
    return PosMapTrainResult(out / "posmap.safetensors", sha, metrics, tuple(history))
