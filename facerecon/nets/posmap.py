"""The UV position-map network of paper 002 (after PRNet), in plain torch.

Paper 002, section 3.1: "an hourglass network ... The coding part is composed of cascaded residual blocks ... the
picture with the size of 256 x 256 x 3 is reduced to the feature map of 8 x 8 x 512, and the decoding part includes
the transposed convolution layer, and the picture is restored to the UV map with the size 256 x 256 x 3 ... all
kernel size is set to 4, and the Relu function is used to activate."

:class:`PosMapNet` follows that plan at any input side ``S`` (a power of two >= 32): a stem (stride 1, or stride 2
with ``map_stride=2``, the default here: the map is then ``S/2`` texels a side, 64 for the 128-px crops trained on
this CPU), residual blocks that halve the side at each level after the first (4 x 4 after the default five levels,
the paper's 1/32), then transposed convolutions that double it back to the map's side, and a last convolution to the
three channels of the map (no activation: the map's values are signed,
:mod:`facerecon.nets.position_map`). Resampling layers use kernel 4 as the paper says (a stride-2 convolution or
transposed convolution of kernel 4 and padding 1 halves or doubles a side exactly); the stride-1 layers use kernel 3,
as a "same" convolution of even kernel needs padding on one side only. Each convolution is followed by a BatchNorm
(folded into it for inference by :func:`fold_posmap_batchnorm`) and a ReLU.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import torch
from torch import nn

from facerecon.core.config import config_values
from facerecon.core.check import describe
from facerecon.nets.regressor import folded_conv, folded_copy

__all__ = ["PosMapConfig", "PosMapNet", "fold_posmap_batchnorm"]


@dataclass(frozen=True)
class PosMapConfig:
    """The architecture of a :class:`PosMapNet`.

    Attributes:
        input_size: ``S``, the crop's side in px (paper 002: 256; 128 here).
        stem_channels: channels of the stem.
        encoder_channels: output channels of each encoder level; every level but the first halves the side.
        blocks_per_level: residual blocks per encoder level (the first of a level resamples).
        decoder_convs: stride-1 convolutions after each transposed convolution.
        map_stride: the crop's side over the map's (1: an ``S x S`` map as in the paper; 2: the stem halves the
            side and the map is ``S/2 x S/2``, four times cheaper at the full-resolution layers).
    """

    input_size: int = 128
    stem_channels: int = 16
    encoder_channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    blocks_per_level: int = 1
    decoder_convs: int = 1
    map_stride: int = 2

    def __post_init__(self) -> None:
        for name in ("input_size", "stem_channels", "blocks_per_level"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if isinstance(self.decoder_convs, bool) or not isinstance(self.decoder_convs, int) or self.decoder_convs < 0:
            raise ValueError(f"decoder_convs: expected an int >= 0, got {self.decoder_convs!r}")
        if not isinstance(self.encoder_channels, tuple) or len(self.encoder_channels) < 2 or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in self.encoder_channels
        ):
            raise ValueError(f"encoder_channels: expected a tuple of >= 2 positive ints, got {self.encoder_channels!r}")
        if self.map_stride not in (1, 2):
            raise ValueError(f"map_stride: expected 1 or 2, got {self.map_stride!r}")
        size = self.input_size
        if size < 32 or size & (size - 1):
            raise ValueError(f"input_size: expected a power of two >= 32, got {size}")
        if self.bottleneck_size < 2:
            raise ValueError(f"encoder_channels: {len(self.encoder_channels)} levels shrink a {size}-px crop below 2 px")

    @property
    def map_size(self) -> int:
        """The position map's side, texels."""
        return self.input_size // self.map_stride

    @property
    def bottleneck_size(self) -> int:
        """The side of the encoder's last feature map, px."""
        return self.map_size >> (len(self.encoder_channels) - 1)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PosMapConfig:
        values = config_values(cls, text, "config")
        if isinstance(values.get("encoder_channels"), list):
            values["encoder_channels"] = tuple(values["encoder_channels"])
        return cls(**values)


class _ConvBN(nn.Module):
    """A convolution (or transposed convolution) without bias, BatchNorm, optional ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, transposed: bool = False,
                 relu: bool = True) -> None:  # fmt: skip
        super().__init__()
        padding = 1 if kernel == 4 else kernel // 2
        kind = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = kind(c_in, c_out, kernel, stride, padding, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c_out)
        self.act: nn.Module = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def _fold_batchnorm_(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv, self.bn = folded_conv(self.conv, self.bn), nn.Identity()


class _ResBlock(nn.Module):
    """PRNet's residual block: 1x1 (half the channels) -> kernel 4 (stride 1 or 2) -> 1x1, plus the shortcut
    (a strided 1x1 convolution where the side or the channels change)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        mid = max(c_out // 2, 1)
        self.reduce = _ConvBN(c_in, mid, 1)
        self.spatial = _ConvBN(mid, mid, 4 if stride == 2 else 3, stride)
        self.expand = _ConvBN(mid, c_out, 1, relu=False)
        self.shortcut = _ConvBN(c_in, c_out, 1, stride, relu=False) if (stride != 1 or c_in != c_out) else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.expand(self.spatial(self.reduce(x))) + self.shortcut(x))


class PosMapNet(nn.Module):
    """Crops ``(B, 3, S, S)`` float RGB in [0, 1] -> position maps ``(B, 3, M, M)``, ``M = S / map_stride`` (see the
    module docstring)."""

    def __init__(self, config: PosMapConfig | None = None) -> None:
        super().__init__()
        config = PosMapConfig() if config is None else config
        if not isinstance(config, PosMapConfig):
            raise TypeError(f"config: expected a PosMapConfig, got {describe(config)}")
        self.config = config
        stem = _ConvBN(3, config.stem_channels, 4, 2) if config.map_stride == 2 else _ConvBN(3, config.stem_channels, 3)
        layers: list[nn.Module] = [stem]
        c = config.stem_channels
        for level, channels in enumerate(config.encoder_channels):
            for k in range(config.blocks_per_level):
                layers.append(_ResBlock(c, channels, 2 if (k == 0 and level > 0) else 1))
                c = channels
        self.encoder = nn.Sequential(*layers)
        decoder: list[nn.Module] = []
        for channels in reversed(config.encoder_channels[:-1]):
            decoder.append(_ConvBN(c, channels, 4, 2, transposed=True))
            decoder += [_ConvBN(channels, channels, 3) for _ in range(config.decoder_convs)]
            c = channels
        decoder.append(_ConvBN(c, config.stem_channels, 3))
        self.decoder = nn.Sequential(*decoder)
        self.head = nn.Conv2d(config.stem_channels, 3, 3, padding=1)
        with torch.no_grad():  # an untrained network predicts a flat map near 0 (the crop's centre)
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def forward_vector(self, crops: torch.Tensor) -> torch.Tensor:
        """The map ``(B, 3, M, M)`` (the ONNX graph's output; the name is the one every network of the package has)."""
        return self.head(self.decoder(self.encoder(crops)))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.forward_vector(crops)


def fold_posmap_batchnorm(model: PosMapNet) -> PosMapNet:
    """An inference copy of ``model`` with every BatchNorm folded into its convolution (eval mode)."""
    if not isinstance(model, PosMapNet):
        raise TypeError(f"model: expected a PosMapNet, got {describe(model)}")
    return folded_copy(model)
