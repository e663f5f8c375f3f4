"""The network architectures the package knows, by the name their weights files and ONNX graphs record.

Each entry says how to build the network from its config, how to fold it for inference and how to turn its raw
output (what :meth:`forward_vector` returns and the ONNX graph computes) into its typed output, so that
:mod:`facerecon.nets.weights` and :mod:`facerecon.nets.onnx` serve every network the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from facerecon.core.check import describe

__all__ = ["Architecture", "architecture_named", "architecture_of"]


@dataclass(frozen=True)
class Architecture:
    """A network kind.

    Attributes:
        name: the name files record (the class name).
        network: the ``nn.Module`` class, built as ``network(config)``; it has ``config`` and ``forward_vector``.
        config: the config class (``to_json`` / ``from_json``, an ``input_size``).
        fold: an inference copy with the BatchNorms folded.
        decode: ``decode(raw output, config)`` -> the typed output the torch module's ``forward`` returns.
    """

    name: str
    network: type[nn.Module]
    config: type
    fold: Callable[[nn.Module], nn.Module]
    decode: Callable[[torch.Tensor, Any], Any]


def _registry() -> dict[str, Architecture]:
    from facerecon.nets.posmap import PosMapConfig, PosMapNet, fold_posmap_batchnorm
    from facerecon.nets.regressor import FaceRegressor, RegressorConfig, decode_output, fold_batchnorm

    return {
        "FaceRegressor": Architecture("FaceRegressor", FaceRegressor, RegressorConfig, fold_batchnorm, decode_output),
        "PosMapNet": Architecture("PosMapNet", PosMapNet, PosMapConfig, fold_posmap_batchnorm, lambda raw, config: raw),
    }


def architecture_named(name: str) -> Architecture:
    """The architecture a file names (ValueError naming the known ones otherwise)."""
    registry = _registry()
    if name not in registry:
        raise ValueError(f"architecture: expected one of {', '.join(registry)}, got {name!r}")
    return registry[name]


def architecture_of(network: object, name: str = "model") -> Architecture:
    """The architecture of a network of this package; anything else (a config, a class, another module) is one
    TypeError line naming the argument ``name``."""
    for arch in _registry().values():
        if isinstance(network, arch.network):
            return arch
    raise TypeError(f"{name}: expected a network of facerecon.nets (e.g. a FaceRegressor), got {describe(network)}")
