"""Learned components: the face regressor, its weights files (safetensors), ONNX export and runner, devices.

Imports ``core``, ``io`` (atomic writes), ``geometry`` and ``models`` only; never ``eval``, ``pipeline``, ``cli``
or ``train``. ``facerecon.nets.onnx`` is imported on its own (it loads ONNX Runtime when a runner is made).
"""

from facerecon.nets.device import resolve_device
from facerecon.nets.regressor import (
    BlockSpec,
    FaceRegressor,
    RegressorConfig,
    RegressorOutput,
    decode_output,
    fold_batchnorm,
    output_layout,
)
from facerecon.nets.weights import LoadedWeights, NetWeights, load_shipped, load_weights, save_weights

__all__ = [
    "BlockSpec",
    "FaceRegressor",
    "LoadedWeights",
    "NetWeights",
    "RegressorConfig",
    "RegressorOutput",
    "decode_output",
    "fold_batchnorm",
    "load_shipped",
    "load_weights",
    "output_layout",
    "resolve_device",
    "save_weights",
]
