"""``facerecon train regressor``: the face regressor's supervised stage on a rendered corpus, read top to bottom.

Config (a JSON file, :class:`TrainConfig`) -> data (:class:`Corpus`, in memory) -> model
(:class:`facerecon.nets.regressor.FaceRegressor`) -> loop (AdamW, linear warm-up then cosine decay, the loss of
:mod:`facerecon.train.losses`) -> evaluation every ``eval_every`` steps on the validation corpus (people the
network never trains on) -> checkpoint (safetensors: weights, optimiser state and step; the config beside it as
JSON; no pickle) -> the final weights through :func:`facerecon.nets.weights.save_weights` with the figures reached.

Determinism: the batch order of every epoch and the augmentation of every step come from generators seeded by
``(seed, epoch)`` and ``(seed, step)``, so a run resumed from a checkpoint repeats an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import safetensors.torch
import torch

from facerecon.core.config import config_values
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import camera_rotation_to_head_angles
from facerecon.io.atomic import write_bytes_atomic, write_text_atomic
from facerecon.models.face_model import FaceModel
from facerecon.nets.crop import CropPose, pose_from_crop
from facerecon.nets.device import resolve_device
from facerecon.nets.regressor import FaceRegressor, RegressorConfig
from facerecon.nets.weights import save_weights
from facerecon.train.corpus import ViewBatch
from facerecon.train.losses import PIVOT, LossWeights, Targets, VertexSubset, supervised_loss

YAW_BINS_DEG = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.01))


@dataclass(frozen=True)
class Degrade:
    """Shares of the training crops degraded as real photos are (0 turns one off; see :func:`degrade`)."""

    blur: float = 0.0
    noise: float = 0.0
    occlusion: float = 0.0
    grey: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (written beside its checkpoints and into the weights' metadata).

    Attributes:
        train_corpus / val_corpus: corpus folders (:mod:`facerecon.train.corpus`).
        network: the architecture.
        steps: optimiser steps; batch_size: crops per step.
        lr / weight_decay / warmup_steps: AdamW with linear warm-up, then cosine decay to ``lr / 50``.
        grad_clip: the gradient's global norm is clipped to this.
        loss: the loss weights.
        colour_jitter: strength of the per-crop brightness / contrast / saturation / gamma augmentation.
        degrade: the share of crops blurred (down- and up-sampled, as a small or out-of-focus face), the share
            given sensor noise, the share with an occluder (a rectangle of another crop or of one colour, as a
            hand, hair or glasses), and the share turned grey; see :func:`degrade`.
        eval_every / checkpoint_every: in steps.
        seed: the run's seed.
        threads: torch intra-op threads (None: torch's default).
    """

    train_corpus: str = "corpus/train"
    val_corpus: str = "corpus/val"
    network: RegressorConfig = field(default_factory=RegressorConfig)
    steps: int = 20000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    grad_clip: float = 5.0
    loss: LossWeights = field(default_factory=LossWeights)
    colour_jitter: float = 0.25
    degrade: Degrade = field(default_factory=lambda: Degrade())
    eval_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    threads: int | None = 2

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        values["network"] = json.loads(self.network.to_json())
        return json.dumps(values, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        values = config_values(cls, text, "training config")
        if "network" in values:
            values["network"] = RegressorConfig.from_json(json.dumps(values["network"]))
        if "loss" in values:
            values["loss"] = LossWeights(**values["loss"])
        if "degrade" in values:
            values["degrade"] = Degrade(**values["degrade"])
        return cls(**values)


class Corpus:
    """A corpus folder's crops and ground truth in memory, as tensors (``__len__`` / batches by index)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        shards = sorted(Path(folder).glob("shards/*.npz"))
        if not shards:
            raise FileNotFoundError(f"{folder}: no corpus shards (shards/*.npz); write one with `facerecon train corpus`")
        views = ViewBatch.concatenate([ViewBatch.load(p) for p in shards])
        self.folder = Path(folder)
        self.crops = torch.from_numpy(views.crops)  # (N, S, S, 3) uint8
        self.is_face = torch.from_numpy(views.is_face)
        self.identity = torch.from_numpy(views.identity)
        self.expression = torch.from_numpy(views.expression)
        self.sh = torch.from_numpy(views.sh)
        self.rotation = torch.from_numpy(views.rotation)
        self.centre = torch.from_numpy(views.centre)
        self.log_scale = torch.from_numpy(views.log_scale)
        self.camera = torch.from_numpy(views.camera).float()
        self.landmarks = torch.from_numpy(views.landmarks)
        self.angles = torch.from_numpy(views.angles)

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def crop_size(self) -> int:
        return int(self.crops.shape[1])

    def images(self, index: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` float32 in [0, 1]."""
        return self.crops[index].permute(0, 3, 1, 2).float() / 255.0

    def targets(self, index: torch.Tensor) -> Targets:
        cam = self.camera[index]
        s = self.crop_size
        return Targets(
            identity=self.identity[index], expression=self.expression[index], sh=self.sh[index],
            pose=CropPose(self.rotation[index], self.centre[index], self.log_scale[index]),
            camera=PerspectiveCamera(cam[:, 0], cam[:, 0].clone(), cam[:, 1], cam[:, 2], s, s), is_face=self.is_face[index],
        )  # fmt: skip


def augment(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Per-crop colour jitter: brightness, contrast, saturation and gamma (``(B, 3, S, S)`` in [0, 1])."""
    b = images.shape[0]

    def factor(spread: float) -> torch.Tensor:
        return (1.0 + spread * strength * (2.0 * torch.rand(b, 1, 1, 1, generator=generator) - 1.0))

    grey = images.mean(1, keepdim=True)
    out = grey + (images - grey) * factor(1.0)  # saturation
    mean = out.mean((1, 2, 3), keepdim=True)
    out = mean + (out - mean) * factor(0.8)  # contrast
    out = out * factor(0.8)  # brightness
    return out.clamp(0.0, 1.0).pow(factor(0.6))  # gamma


def degrade(images: torch.Tensor, shares: Degrade, generator: torch.Generator) -> torch.Tensor:
    """Degrade crops ``(B, 3, S, S)`` in [0, 1] as real photos are; the targets stay as they are.

    * blur: down-sampled (area) to 25-70 % of the side and back up (bilinear), a small or soft face;
    * noise: Gaussian, standard deviation uniform in [0, 0.05];
    * occlusion: a rectangle 15-50 % of the side each way, somewhere over the crop, filled with the same
      rectangle of the next crop in the batch (a textured occluder) or one random colour;
    * grey: the luminance in all three channels.
    """
    b, _, s, _ = images.shape
    out = images.clone()

    def chosen(share: float) -> torch.Tensor:
        return torch.nonzero(torch.rand(b, generator=generator) < share)[:, 0]

    for i in chosen(shares.blur).tolist():
        side = max(8, int(s * (0.25 + 0.45 * float(torch.rand(1, generator=generator)))))
        small = cv2.resize(out[i].permute(1, 2, 0).numpy(), (side, side), interpolation=cv2.INTER_AREA)
        out[i] = torch.from_numpy(cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1)
    noisy = chosen(shares.noise)
    if len(noisy):
        sd = 0.05 * torch.rand(len(noisy), 1, 1, 1, generator=generator)
        out[noisy] = out[noisy] + sd * torch.randn(out[noisy].shape, generator=generator)
    for i in chosen(shares.occlusion).tolist():
        h, w = (int(s * (0.15 + 0.35 * float(x))) for x in torch.rand(2, generator=generator))
        y, x = (int((s - d) * float(r)) for d, r in zip((h, w), torch.rand(2, generator=generator)))
        if float(torch.rand(1, generator=generator)) < 0.5:
            out[i, :, y : y + h, x : x + w] = images[(i + 1) % b, :, y : y + h, x : x + w]
        else:
            out[i, :, y : y + h, x : x + w] = torch.rand(3, 1, 1, generator=generator)
    grey = chosen(shares.grey)
    if len(grey):
        luma = (out[grey] * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        out[grey] = luma.expand(-1, 3, -1, -1)
    return out.clamp(0.0, 1.0)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr / 50``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    low = config.lr / 50.0
    return low + 0.5 * (config.lr - low) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def batch_index(step: int, config: TrainConfig, size: int) -> torch.Tensor:
    """The corpus rows of ``step``: consecutive slices of a permutation seeded by ``(seed, epoch)``."""
    per_epoch = max(1, size // config.batch_size)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(config.seed * 100003 + epoch))
    return order[k * config.batch_size : (k + 1) * config.batch_size]


@torch.no_grad()
def evaluate(net: FaceRegressor, corpus: Corpus, subset: VertexSubset, batch_size: int = 256) -> dict[str, float]:
    """Figures on a corpus: 68-landmark NME (by the landmarks' box, AFLW2000-3D style) overall and by yaw bin, the
    median head-pose error (degrees, max over pitch / yaw / roll), and the confidence's accuracy."""
    net.eval()
    nme, pose_err, yaws, correct = [], [], [], []
    faces = torch.nonzero(corpus.is_face)[:, 0]
    for start in range(0, len(corpus), batch_size):
        index = torch.arange(start, min(start + batch_size, len(corpus)))
        pred = net(corpus.images(index).to(next(net.parameters()).device))
        pred = pred.to("cpu")
        correct.append(((pred.confidence > 0.5) == corpus.is_face[index]).float())
        f = index[corpus.is_face[index]]
        if len(f) == 0:
            continue
        keep = corpus.is_face[index]
        t = corpus.targets(f)
        pivot = torch.tensor(PIVOT)
        r_pred, t_pred = pose_from_crop(CropPose(pred.rotation[keep], pred.centre[keep], pred.log_scale[keep]), t.camera, pivot)
        cam = subset(pred.identity[keep], pred.expression[keep])[:, : subset.landmark_count] @ r_pred.transpose(1, 2) + t_pred[:, None]
        uv = t.camera.project(cam)
        gt = corpus.landmarks[f]
        lo, hi = gt.min(1).values, gt.max(1).values
        norm = ((hi - lo).prod(-1)).sqrt()
        nme.append(torch.linalg.norm(uv - gt, dim=-1).mean(-1) / norm)
        r_gt, _ = pose_from_crop(t.pose, t.camera, pivot)
        diff = (camera_rotation_to_head_angles(r_pred.double()) - camera_rotation_to_head_angles(r_gt.double())).abs()
        pose_err.append(torch.rad2deg(diff).max(-1).values.float())
        yaws.append(corpus.angles[f, 1].abs())
    net.train()
    nme_all, err_all, yaw_all = torch.cat(nme), torch.cat(pose_err), torch.cat(yaws)
    out = {"nme": float(nme_all.mean()), "pose_error_median_deg": float(err_all.median()),
           "confidence_accuracy": float(torch.cat(correct).mean()), "faces": float(len(faces))}  # fmt: skip
    for lo, hi in YAW_BINS_DEG:
        m = (yaw_all >= lo) & (yaw_all < hi)
        if bool(m.any()):
            out[f"nme_yaw_{int(lo)}_{int(round(hi))}"] = float(nme_all[m].mean())
            out[f"pose_error_yaw_{int(lo)}_{int(round(hi))}_deg"] = float(err_all[m].median())
    return out


# ------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, net: torch.nn.Module, optimiser: torch.optim.Optimizer, step: int, config: Any) -> None:
    """Weights, AdamW moments and the step in one safetensors file (atomically); the config as its metadata."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    for i, p in enumerate(p for g in optimiser.param_groups for p in g["params"]):
        state = optimiser.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                tensors[f"optim.{i}.{key}"] = state[key].contiguous()
        if "step" in state:
            tensors[f"optim.{i}.step"] = torch.as_tensor(state["step"], dtype=torch.float64).reshape(1)
    data = safetensors.torch.save(tensors, metadata={"step": str(step), "config": config.to_json()})
    write_bytes_atomic(path, data)


def load_checkpoint(path: Path, net: torch.nn.Module, optimiser: torch.optim.Optimizer, config: Any) -> int:
    """Restore a :func:`save_checkpoint` file into ``net`` and ``optimiser``; returns its step. ``config`` is the
    run's training config (any dataclass with ``to_json`` / ``from_json``: the regressor's or another network's).

    Raises:
        ValueError: a checkpoint of another config, or one whose tensors do not fit the network.
    """
    with safetensors.safe_open(str(path), "pt") as fh:
        meta = fh.metadata() or {}
        if type(config).from_json(meta.get("config", "{}")) != config:
            raise ValueError(f"{path}: a checkpoint of another training config (start a new output folder, or pass the same config)")
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    net.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    for i, p in enumerate(p for g in optimiser.param_groups for p in g["params"]):
        if f"optim.{i}.exp_avg" in tensors:
            optimiser.state[p] = {"step": tensors[f"optim.{i}.step"].reshape(()).float(),
                                  "exp_avg": tensors[f"optim.{i}.exp_avg"], "exp_avg_sq": tensors[f"optim.{i}.exp_avg_sq"]}  # fmt: skip
    return int(meta["step"])


# ------------------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class TrainResult:
    """A finished run: the weights file, its SHA-256, the last validation figures and the loss history."""

    weights: Path
    sha256: str
    metrics: dict[str, float]
    history: tuple[dict[str, float], ...]


def train_regressor(model: FaceModel, config: TrainConfig, out_dir: str | os.PathLike[str], *, device: str = "auto",
                    resume: bool = True, on_step: Callable[[int, dict[str, float]], None] | None = None,
                    on_eval: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:  # fmt: skip
    """Train (or resume) a regressor; writes ``out_dir/config.json``, ``checkpoint.safetensors`` and
    ``regressor.safetensors`` (the final weights with their metrics)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    train, val = Corpus(config.train_corpus), Corpus(config.val_corpus)
    if train.crop_size != config.network.input_size:
        raise ValueError(f"train_corpus: crops of {train.crop_size} px, the network takes {config.network.input_size} px")
    net = FaceRegressor(config.network).to(dev)
    subset = VertexSubset(model).to(dev)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    write_text_atomic(out / "config.json", config.to_json())
    checkpoint = out / "checkpoint.safetensors"
    step = load_checkpoint(checkpoint, net, optimiser, config) if resume and checkpoint.exists() else 0
    history: list[dict[str, float]] = []
    metrics: dict[str, float] = {}
    net.train()
    while step < config.steps:
        index = batch_index(step, config, len(train))
        generator = torch.Generator().manual_seed(config.seed * 7919 + step)
        images = degrade(augment(train.images(index), config.colour_jitter, generator), config.degrade, generator)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, config)
        loss, terms = supervised_loss(net(images.to(dev)), train.targets(index).to(dev), subset, config.loss)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimiser.step()
        step += 1
        terms["loss"] = float(loss.detach())
        history.append(terms)
        if step % config.eval_every == 0 or step == config.steps:
            metrics = evaluate(net, val, subset)
            if on_eval is not None:
                on_eval(step, metrics)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(checkpoint, net, optimiser, step, config)
        if on_step is not None:
            on_step(step, terms)
    if not metrics:
        metrics = evaluate(net, val, subset)
    sha = save_weights(out / "regressor.safetensors", net.cpu(), face_model_sha256=model.info["source_sha256"],
                       training_config=json.loads(config.to_json()), metrics=metrics)  # fmt: skip
    return TrainResult(out / "regressor.safetensors", sha, metrics, tuple(history))

