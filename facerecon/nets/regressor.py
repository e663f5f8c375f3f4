"""``FaceRegressor``: a compact MobileNetV3-style CNN from a face crop to pose, camera, identity, expression, light.

The parameter regressor of paper 004 (Tewari et al. 2018, "Self-supervised Multi-level Face Model Learning",
sec. 3: a CNN encoder regresses model, camera and light parameters in one forward pass) and the CoarseNet of
paper 001, sized for a CPU: 0.38 M parameters, 22.6 MFLOPs per 128-px face, 0.35-0.5 ms per face on one core
with ONNX Runtime (``benchmarks/regressor_speed.py``).

The network, built from a readable spec (:class:`RegressorConfig`):

* a stem: 3x3 convolution, stride 2, BatchNorm, ReLU, on the crop as it is (RGB in [0, 1]): the BatchNorm
  normalises, so there is no separate normalisation pass over the input, which took 17 % of the ONNX time at
  batch 64, and nothing to repeat outside the network; ReLU because ONNX Runtime fuses it into the convolution
  (an unfused hardswish on the stem's 64 x 64 x 16 output took another 20 %);
* inverted residual blocks (Sandler et al. 2018, MobileNetV2; Howard et al. 2019, MobileNetV3): a 1x1
  expansion, a depthwise ``k x k`` convolution, an optional squeeze-and-excite gate, a 1x1 linear projection,
  and a skip connection when the shape allows; every convolution is followed by BatchNorm, and
  :func:`fold_batchnorm` folds those into the convolutions for inference;
* a 1x1 convolution to ``head_channels``, global average pooling, a hidden linear layer with hardswish and
  the output layer.

One block is written ``"k5_s2_e96_c40_hs_se_r2"``: kernel 5, stride 2, 96 expanded channels, 40 output
channels, hardswish (``re`` for ReLU), squeeze-and-excite, repeated twice (the repeats have stride 1).

The output layer's vector is decoded into named fields in one place, :func:`decode_output`, used by the torch
module and by the ONNX runner (:mod:`facerecon.nets.onnx`) alike. The output layer starts with near-zero
weights and a bias that decodes to the mean face, frontal and centred, with small expressions and white
ambient light, so an untrained network predicts a sensible face (which helps training).

Example:
    >>> import torch
    >>> net = FaceRegressor(RegressorConfig()).eval()
    >>> out = net(torch.rand(2, 3, 128, 128))
    >>> out.rotation.shape, out.expression.shape, out.sh.shape
    (torch.Size([2, 3, 3]), torch.Size([2, 53]), torch.Size([2, 9, 3]))
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from facerecon.core.config import config_values
from facerecon.core.check import check_floating, check_positive, check_range, check_shape, describe
from facerecon.geometry.rotation import FLIP_YZ, rotation_6d_to_matrix

__all__ = [
    "BlockSpec",
    "FaceRegressor",
    "RegressorConfig",
    "RegressorOutput",
    "check_crops",
    "decode_output",
    "fold_batchnorm",
    "output_layout",
]

DEFAULT_BLOCKS: tuple[str, ...] = (
    "k3_s2_e16_c16_re",  # 64 -> 32 px
    "k3_s2_e64_c24_re",  # 32 -> 16 px
    "k3_s1_e72_c24_re",
    "k5_s2_e96_c40_hs",  # 16 -> 8 px
    "k5_s1_e160_c40_hs_r2",
    "k5_s2_e192_c80_hs",  # 8 -> 4 px
    "k5_s1_e320_c80_hs_r2",
)
"""The default blocks (after a stride-2 stem): 128 px -> 4 x 4 x 80 features; MobileNetV3-Small's layout."""

_ACTIVATIONS = {"re": "relu", "hs": "hardswish"}

# White ambient light: constant radiance 1 has L_00 = sqrt(4 pi) (docs/conventions.md, facerecon.render.sh),
# which renders the albedo unchanged.
_AMBIENT_L00 = math.sqrt(4.0 * math.pi)


@dataclass(frozen=True)
class BlockSpec:
    """One stage of inverted residual blocks, parsed from ``"k{kernel}_s{stride}_e{expanded}_c{channels}..."``.

    Attributes:
        kernel: depthwise kernel size (odd).
        stride: stride of the first block (1 or 2); repeats have stride 1.
        expanded: channels after the 1x1 expansion (no expansion conv when equal to the input channels).
        channels: output channels.
        activation: ``"relu"`` or ``"hardswish"``.
        squeeze_excite: whether the blocks have a squeeze-and-excite gate.
        repeats: how many blocks.
    """

    kernel: int
    stride: int
    expanded: int
    channels: int
    activation: str = "relu"
    squeeze_excite: bool = False
    repeats: int = 1

    @classmethod
    def parse(cls, text: str) -> BlockSpec:
        """Parse ``"k5_s2_e96_c40_hs_se_r2"``: ``k``, ``e``, ``c`` required; ``s`` and ``r`` default to 1;
        ``re`` (default) or ``hs``; ``se`` optional.

        Raises:
            ValueError: an unknown or repeated token, a missing field, or a value out of range.
        """
        if not isinstance(text, str):
            raise TypeError(f"block: expected a string such as 'k3_s2_e64_c24_re', got {describe(text)}")
        values: dict[str, Any] = {}
        for token in text.split("_"):
            key, number = token[:1], token[1:]
            if token in _ACTIVATIONS:
                key, value = "activation", _ACTIVATIONS[token]
            elif token == "se":
                key, value = "squeeze_excite", True
            elif key and key in "ksecr" and number.isdigit():
                key = {"k": "kernel", "s": "stride", "e": "expanded", "c": "channels", "r": "repeats"}[key]
                value = int(number)
            else:
                raise ValueError(f"block {text!r}: unknown token {token!r} (expected k#, s#, e#, c#, r#, re, hs, se)")
            if key in values:
                raise ValueError(f"block {text!r}: {key} given twice")
            values[key] = value
        missing = [name for name in ("kernel", "expanded", "channels") if name not in values]
        if missing:
            raise ValueError(f"block {text!r}: missing {', '.join(missing)} (e.g. 'k3_s2_e64_c24_re')")
        spec = cls(**{"stride": 1, **values})
        if spec.kernel % 2 == 0 or spec.stride not in (1, 2) or min(spec.expanded, spec.channels, spec.repeats) < 1:
            raise ValueError(f"block {text!r}: expected an odd kernel, stride 1 or 2, and sizes >= 1")
        return spec


@dataclass(frozen=True)
class RegressorConfig:
    """The architecture and output sizes of a :class:`FaceRegressor`.

    Attributes:
        input_size: ``S``, the crop's side in px (the network takes ``(B, 3, S, S)``).
        stem_channels: output channels of the stride-2 stem.
        blocks: the inverted residual stages (:class:`BlockSpec` strings), in order.
        head_channels: channels of the 1x1 convolution before the global pooling.
        hidden: width of the hidden linear layer after the pooling.
        dropout: dropout before the output layer while training.
        identity_count: identity coefficients (N(0, 1), docs/conventions.md).
        expression_count: expression weights (in [0, 1]).
        sh_count: spherical-harmonic light coefficients, 9 per RGB channel: decoded to ``(B, sh_count / 3, 3)``.
        initial_scale: ``focal_crop_px / depth_mm`` an untrained network predicts (0.64: a face about 150 mm
            wide across 75 % of a 128-px crop); set it to the training crops' typical value.
        initial_expression: the expression weight an untrained network predicts, in (0, 1).

    Raises:
        TypeError / ValueError: a field of the wrong kind or out of range, or a block that does not parse.
    """

    input_size: int = 128
    stem_channels: int = 16
    blocks: tuple[str, ...] = DEFAULT_BLOCKS
    head_channels: int = 384
    hidden: int = 256
    dropout: float = 0.0
    identity_count: int = 100
    expression_count: int = 53
    sh_count: int = 27
    initial_scale: float = 0.64
    initial_expression: float = 0.05

    def __post_init__(self) -> None:
        for name in ("input_size", "stem_channels", "head_channels", "hidden", "identity_count", "expression_count",
                     "sh_count"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}: expected an int, got {describe(value)}")
            if value < (1 if name != "identity_count" else 0):
                raise ValueError(f"{name}: expected a positive int, got {value}")
        if self.input_size < 32:
            raise ValueError(f"input_size: expected at least 32 px, got {self.input_size}")
        if self.sh_count % 3:
            raise ValueError(f"sh_count: expected a multiple of 3 (coefficients per RGB channel), got {self.sh_count}")
        if not isinstance(self.blocks, tuple) or not self.blocks:
            raise ValueError(f"blocks: expected a non-empty tuple of block strings, got {describe(self.blocks)}")
        self.block_specs()  # raises on a block that does not parse
        check_positive(self.initial_scale, "initial_scale")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")
        if not 0.0 < self.initial_expression < 1.0:
            raise ValueError(f"initial_expression: expected a number in (0, 1), got {self.initial_expression!r}")

    def block_specs(self) -> tuple[BlockSpec, ...]:
        """The parsed :attr:`blocks`."""
        return tuple(BlockSpec.parse(text) for text in self.blocks)

    def to_json(self) -> str:
        """The config as a JSON object (tuples as lists)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RegressorConfig:
        """The inverse of :meth:`to_json`.

        Raises:
            ValueError: not a JSON object, or keys that are not fields of the config.
        """
        values = config_values(cls, text, "config")
        if isinstance(values.get("blocks"), list):
            values["blocks"] = tuple(values["blocks"])
        return cls(**values)


def output_layout(config: RegressorConfig) -> tuple[tuple[str, int], ...]:
    """The named parts of the output vector, in order: ``((name, size), ...)``, summing to its length."""
    return (
        ("rotation6d", 6),
        ("centre", 2),
        ("log_scale", 1),
        ("identity", config.identity_count),
        ("expression", config.expression_count),
        ("sh", config.sh_count),
        ("confidence", 1),
    )


@dataclass(frozen=True)
class RegressorOutput:
    """What :class:`FaceRegressor` predicts for a batch of ``B`` crops (float tensors, batch first).

    Attributes:
        rotation6d: ``(B, 6)`` the head rotation as the crop shows it (model-to-camera, relative to the line of
            sight to the pivot: ``CropPose.rotation`` of :mod:`facerecon.nets.crop`) in the 6D form of Zhou et al.
            2019 (its first two columns, unnormalised); :attr:`rotation` is the matrix. A face seen frontally is
            ``FLIP_YZ`` (docs/conventions.md), ``(1, 0, 0, 0, -1, 0)``.
        centre: ``(B, 2)`` where the head's pivot (a model-space point, see :mod:`facerecon.nets.crop`) projects
            in the crop, ``(u, v)`` normalised so -1 and +1 are the crop's outer pixel edges (left/top and
            right/bottom); not clamped.
        log_scale: ``(B,)`` ``log(focal_crop_px / depth_mm)``, the crop camera's focal length in px over the
            pivot's depth in mm (px per mm).
        identity: ``(B, K_id)`` identity coefficients, N(0, 1).
        expression: ``(B, K_exp)`` expression weights in [0, 1] (a sigmoid).
        sh: ``(B, 9, 3)`` SH radiance coefficients ``L_lm`` per RGB channel (docs/conventions.md).
        confidence: ``(B,)`` in [0, 1], the sigmoid of :attr:`confidence_logit`.
        confidence_logit: ``(B,)`` the raw logit (for a numerically stable loss).
    """

    rotation6d: torch.Tensor
    centre: torch.Tensor
    log_scale: torch.Tensor
    identity: torch.Tensor
    expression: torch.Tensor
    sh: torch.Tensor
    confidence: torch.Tensor
    confidence_logit: torch.Tensor

    @property
    def rotation(self) -> torch.Tensor:
        """``(B, 3, 3)`` model-to-camera rotations from :attr:`rotation6d` by Gram-Schmidt (det +1)."""
        return rotation_6d_to_matrix(self.rotation6d)

    @property
    def batch_size(self) -> int:
        return int(self.rotation6d.shape[0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> RegressorOutput:
        """A copy on ``device`` with floating fields cast to ``dtype`` (None keeps each)."""
        return RegressorOutput(
            **{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in dataclasses.fields(self)}
        )

    def detach(self) -> RegressorOutput:
        """A copy with every field detached from the autograd graph."""
        return RegressorOutput(**{f.name: getattr(self, f.name).detach() for f in dataclasses.fields(self)})


def decode_output(vector: torch.Tensor, config: RegressorConfig) -> RegressorOutput:
    """Decode the network's output vector into named fields: the one place that knows its layout.

    Args:
        vector: ``(B, D)`` float, ``D = sum of the sizes of`` :func:`output_layout`.
        config: the network's config.

    Returns:
        :class:`RegressorOutput` (sigmoids applied to the expression and the confidence).

    Raises:
        TypeError / ValueError: ``vector`` of another shape or dtype.
    """
    layout = output_layout(config)
    check_shape(vector, "vector", (None, sum(size for _, size in layout)))
    check_floating(vector, "vector")
    parts = dict(zip([name for name, _ in layout], torch.split(vector, [size for _, size in layout], dim=1)))
    return RegressorOutput(
        rotation6d=parts["rotation6d"],
        centre=parts["centre"],
        log_scale=parts["log_scale"][:, 0],
        identity=parts["identity"],
        expression=torch.sigmoid(parts["expression"]),
        sh=parts["sh"].reshape(-1, config.sh_count // 3, 3),
        confidence=torch.sigmoid(parts["confidence"][:, 0]),
        confidence_logit=parts["confidence"][:, 0],
    )


def _initial_vector(config: RegressorConfig) -> torch.Tensor:
    """The output vector that decodes to the mean face, frontal, centred, small expressions, white ambient light."""
    frontal = torch.tensor(FLIP_YZ)
    sh = torch.zeros(config.sh_count // 3, 3)
    sh[0] = _AMBIENT_L00
    logit = math.log(config.initial_expression / (1.0 - config.initial_expression))
    parts = {
        "rotation6d": torch.cat([frontal[:, 0], frontal[:, 1]]),  # the 6D form: the first two columns
        "centre": torch.zeros(2),
        "log_scale": torch.tensor([math.log(config.initial_scale)]),
        "identity": torch.zeros(config.identity_count),
        "expression": torch.full((config.expression_count,), logit),
        "sh": sh.reshape(-1),
        "confidence": torch.zeros(1),  # confidence 0.5
    }
    return torch.cat([parts[name] for name, _ in output_layout(config)])


def check_crops(crops: torch.Tensor | np.ndarray, size: int, name: str = "crops") -> None:
    """Check a batch of crops: ``(B, 3, size, size)`` floating RGB in [0, 1].

    Raises:
        TypeError / ValueError: another shape, an integer dtype, or values outside [0, 1] (or NaN).
    """
    check_shape(crops, name, (None, 3, size, size))
    check_floating(crops, name)
    check_range(crops, name, 0.0, 1.0)


class ConvNormAct(nn.Module):
    """Convolution (no bias), BatchNorm, activation: ``(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)``."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, activation: str | None = "relu"
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c_out)
        self.act = {"relu": nn.ReLU(), "hardswish": nn.Hardswish(), None: nn.Identity()}[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def _fold_batchnorm_(self) -> None:
        """Fold the BatchNorm's running statistics into the convolution (inference only)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv, self.bn = folded_conv(self.conv, self.bn), nn.Identity()


def folded_conv(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Module:
    """A convolution (or transposed convolution, groups 1) with bias that computes ``bn(conv(x))`` of an eval-mode
    BatchNorm: ``BN(conv(x)) = gamma (w x - mean) / sqrt(var + eps) + beta = (w g) x + (beta - mean g)``."""
    gain = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    transposed = isinstance(conv, nn.ConvTranspose2d)
    kind = nn.ConvTranspose2d if transposed else nn.Conv2d
    extra = {} if transposed else {"groups": conv.groups}
    out = kind(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True, **extra)
    with torch.no_grad():
        # Output channels are dim 0 of a convolution's weight and dim 1 of a transposed convolution's.
        out.weight.copy_(conv.weight * (gain[None, :, None, None] if transposed else gain[:, None, None, None]))
        out.bias.copy_(bn.bias - bn.running_mean * gain)
    return out.to(conv.weight.device)


class SqueezeExcite(nn.Module):
    """Channel gate of MobileNetV3: global pool, 1x1 reduce, ReLU, 1x1 expand, hard sigmoid, multiply."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        reduced = max(8, (channels // 4 + 7) // 8 * 8)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * nn.functional.hardsigmoid(gate)


class InvertedResidual(nn.Module):
    """1x1 expansion (if widening), depthwise ``k x k``, optional squeeze-excite, 1x1 linear projection, skip."""

    def __init__(self, c_in: int, spec: BlockSpec, stride: int) -> None:
        super().__init__()
        self.expand = (
            ConvNormAct(c_in, spec.expanded, 1, activation=spec.activation) if spec.expanded != c_in else nn.Identity()
        )
        self.depthwise = ConvNormAct(spec.expanded, spec.expanded, spec.kernel, stride, groups=spec.expanded,
                                     activation=spec.activation)  # fmt: skip
        self.gate = SqueezeExcite(spec.expanded) if spec.squeeze_excite else nn.Identity()
        self.project = ConvNormAct(spec.expanded, spec.channels, 1, activation=None)
        self.residual = stride == 1 and c_in == spec.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.gate(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class FaceRegressor(nn.Module):
    """Face crop -> pose, camera, identity, expression and light (module docstring).

    Args:
        config: the architecture (default: :class:`RegressorConfig()`).

    Example:
        >>> net = FaceRegressor().eval()
        >>> net(torch.rand(1, 3, 128, 128)).identity.shape
        torch.Size([1, 100])
    """

    def __init__(self, config: RegressorConfig | None = None) -> None:
        super().__init__()
        config = RegressorConfig() if config is None else config
        if not isinstance(config, RegressorConfig):
            raise TypeError(f"config: expected a RegressorConfig, got {describe(config)}")
        self.config = config
        self.stem = ConvNormAct(3, config.stem_channels, 3, stride=2, activation="relu")
        blocks: list[nn.Module] = []
        channels = config.stem_channels
        for spec in config.block_specs():
            for i in range(spec.repeats):
                blocks.append(InvertedResidual(channels, spec, spec.stride if i == 0 else 1))
                channels = spec.channels
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvNormAct(channels, config.head_channels, 1, activation="hardswish")
        self.hidden = nn.Linear(config.head_channels, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden, sum(size for _, size in output_layout(config)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-initialised convolutions, unit BatchNorms, and an output layer that predicts the mean face."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # fan_in keeps the activations' scale through depthwise and 1x1 convolutions alike.
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.hidden.reset_parameters()
        # Small, not zero, weights: every parameter gets a gradient from the first step on.
        nn.init.normal_(self.output.weight, std=1e-3)
        with torch.no_grad():
            self.output.bias.copy_(_initial_vector(self.config))

    def forward_vector(self, crops: torch.Tensor) -> torch.Tensor:
        """The undecoded output vector ``(B, D)`` (what the ONNX graph computes); inputs are not checked."""
        x = self.head(self.blocks(self.stem(crops)))
        x = nn.functional.hardswish(self.hidden(x.mean((2, 3))))
        return self.output(self.dropout(x))

    def forward(self, crops: torch.Tensor) -> RegressorOutput:
        """Predict the face in each crop.

        Args:
            crops: ``(B, 3, S, S)`` float RGB in [0, 1], ``S = config.input_size``.

        Returns:
            :class:`RegressorOutput`, batch ``B``.

        Raises:
            TypeError / ValueError: crops of another shape or dtype, or values outside [0, 1].
        """
        check_crops(crops, self.config.input_size)
        return decode_output(self.forward_vector(crops), self.config)


def fold_batchnorm(model: FaceRegressor) -> FaceRegressor:
    """An inference copy of ``model`` with each BatchNorm folded into its convolution (eval mode).

    The copy computes the same outputs as ``model.eval()`` up to rounding, with fewer operations; its state
    dict has other keys (convolution biases, no BatchNorms), so it is not for saving or training.
    """
    if not isinstance(model, FaceRegressor):
        raise TypeError(f"model: expected a FaceRegressor, got {describe(model)}")
    return folded_copy(model)


def folded_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which every layer with a ``_fold_batchnorm_`` method (a convolution and its
    BatchNorm) has folded its BatchNorm; ``model`` is left as it is."""
    folded = copy.deepcopy(model).eval()
    for m in folded.modules():
        if hasattr(m, "_fold_batchnorm_"):
            m._fold_batchnorm_()
    return folded
