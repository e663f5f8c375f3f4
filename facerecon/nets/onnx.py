"""ONNX export of the package's networks and an ONNX Runtime runner with the torch module's call.

Every network of :mod:`facerecon.nets.architectures` (the :class:`~facerecon.nets.regressor.FaceRegressor`, the
:class:`~facerecon.nets.posmap.PosMapNet`) is exported and run the same way; the graph records its architecture and
config, and a runner decodes the graph's output as the torch module does. What follows says it for the regressor.

:func:`export_onnx` folds the BatchNorms (:func:`~facerecon.nets.regressor.fold_batchnorm`) and exports the
network's undecoded output vector with torch's ``torch.export``-based exporter (``dynamo=True``, the default and
maintained one since torch 2.9; it needs ``onnx`` and ``onnxscript``, the ``train`` extra), ONNX opset
:data:`OPSET`, a dynamic batch axis and the config JSON in the model's metadata. :class:`OnnxNetwork` runs
that graph and decodes its vector with the same :func:`~facerecon.nets.regressor.decode_output` as the torch
module, so both return the same :class:`~facerecon.nets.regressor.RegressorOutput` (torch tensors on the CPU).

Threads are explicit: ``intra_op_num_threads`` (``threads``, default 1) and ``inter_op_num_threads = 1``;
graph optimisations are all on. A large batch runs in chunks of ``chunk_size`` crops, ``workers`` chunks at a time
(``InferenceSession.run`` is thread-safe and releases the GIL). Measured on this 2-core CPU with the default
network (``benchmarks/regressor_speed.py``, a quiet machine): one run of 256 crops on one thread 1,630 faces/s,
chunks of 16 2,160/s (a batch's activations stop fitting in the cache); on 2 cores, ``threads=2`` 2,400-3,000/s
(the small depthwise convolutions parallelise poorly within an operator) but ``workers=2`` with ``threads=1``
4,100/s, and intra-operator threads suffer most when the other core is busy. So for throughput use ``workers``,
and ``threads=1``.

:func:`fast_runner` picks the runner an installation has: ONNX Runtime (a core dependency) on a cached graph,
exported on first use where the exporter is installed, else :class:`TorchRunner` (the torch module itself), so the
core install runs the regressor without the ``train`` extra.

Example:
    >>> export_onnx(FaceRegressor().eval(), "regressor.onnx")         # doctest: +SKIP
    >>> out = OnnxNetwork("regressor.onnx")(crops)                   # crops (B, 3, 128, 128) float32 in [0, 1]
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facerecon.core.check import describe
from facerecon.core.errors import WeightsError
from facerecon.core.optional import require
from facerecon.io.atomic import atomic_path
from facerecon.nets.architectures import Architecture, architecture_named, architecture_of
from facerecon.nets.regressor import check_crops

__all__ = ["ARCHITECTURE_KEY", "CONFIG_KEY", "INPUT_NAME", "OPSET", "OUTPUT_NAME", "OnnxNetwork", "TorchRunner",
           "export_onnx", "exporter_available", "fast_runner"]

OPSET = 18
"""The ONNX opset of exported graphs (onnxscript's own; ONNX Runtime >= 1.14 runs it)."""
INPUT_NAME = "crops"
OUTPUT_NAME = "vector"
CONFIG_KEY = "facerecon.regressor_config"
"""The metadata key of the config JSON in an exported graph (named when the regressor was the only network)."""
ARCHITECTURE_KEY = "facerecon.architecture"
"""The metadata key of the network's architecture name (a graph without it is a ``FaceRegressor``'s)."""
_MAX_BATCH = 65536


class _VectorGraph(nn.Module):
    """What the ONNX graph computes: crops ``(B, 3, S, S)`` -> the undecoded output (``forward_vector``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.model.forward_vector(crops)


def export_onnx(module: nn.Module, path: str | os.PathLike[str], input_size: int | None = None) -> Path:
    """Export a network to an ONNX file (atomically) for :class:`OnnxNetwork`.

    The export works on an eval-mode copy with the BatchNorms folded; ``module`` itself is left as it is.

    Args:
        module: the network.
        path: the ``.onnx`` file to write.
        input_size: the crop side ``S`` of the graph's input ``(B, 3, S, S)`` (default ``module.config.input_size``;
            the config stored in the file records the size used).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError / ValueError: not a network of :mod:`facerecon.nets.architectures`, or a bad ``input_size``.
        MissingDependencyError: ``onnx`` or ``onnxscript`` is not installed (``pip install "facerecon[train]"``).
    """
    arch = architecture_of(module, "module")
    for name in ("onnx", "onnxscript"):
        require(name, extra="train", purpose="exporting a network to ONNX")
    config = module.config if input_size is None else dataclasses.replace(module.config, input_size=input_size)
    size = config.input_size
    graph = _VectorGraph(arch.fold(module).cpu().float()).eval()
    example = torch.full((1, 3, size, size), 0.5)  # any crop: the graph does not depend on the values
    with warnings.catch_warnings():  # torch's exporter warns about its own use of a deprecated pytree API
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=_MAX_BATCH)}},
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    program.model.metadata_props[CONFIG_KEY] = config.to_json()
    program.model.metadata_props[ARCHITECTURE_KEY] = arch.name
    with atomic_path(path, suffix=".onnx") as tmp:
        program.save(str(tmp), external_data=False)
    return Path(path)


class OnnxNetwork:
    """Runs an exported network with ONNX Runtime on the CPU; called like the torch module.

    Args:
        path: a file written by :func:`export_onnx`.
        threads: ONNX Runtime's ``intra_op_num_threads`` (default 1).
        workers: how many chunks of a batch run at once (default 1; 2 uses two cores best).
        chunk_size: the largest batch one run gets (default 16).

    Attributes:
        config: the network's config, read from the file.

    Raises:
        ValueError: ``threads``, ``workers`` or ``chunk_size`` is not a positive int.
        WeightsError: the file is missing, not an ONNX graph ONNX Runtime can load, or has no facerecon config.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, threads: int = 1, workers: int = 1, chunk_size: int = 16
    ) -> None:
        for name, value in (("threads", threads), ("workers", workers), ("chunk_size", chunk_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        import onnxruntime as ort  # a core dependency; imported here so `import facerecon.nets` stays light

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: ONNX file not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime's Fail, InvalidProtobuf, ... derive from Exception only
            raise WeightsError(f"{path}: not an ONNX graph ONNX Runtime can load ({' '.join(str(err).split())})") from None
        meta = self._session.get_modelmeta().custom_metadata_map
        text = meta.get(CONFIG_KEY)
        if text is None:
            raise WeightsError(f"{path}: an ONNX graph without facerecon's config (not written by export_onnx)")
        try:
            self.architecture: Architecture = architecture_named(meta.get(ARCHITECTURE_KEY, "FaceRegressor"))
            self.config = self.architecture.config.from_json(text)
        except (TypeError, ValueError) as err:
            raise WeightsError(f"{path}: bad config in the ONNX metadata ({' '.join(str(err).split())})") from None
        self.path = path
        self.threads = threads
        self.workers = workers
        self.chunk_size = chunk_size

    def _run(self, crops: np.ndarray) -> np.ndarray:
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: crops})[0]

    def run_vector(self, crops: np.ndarray) -> np.ndarray:
        """The undecoded output ``(B, D)`` float32 of C-contiguous float32 crops ``(B, 3, S, S)``, in chunks of
        ``chunk_size``, ``workers`` at a time (the crops are not checked: the fast path)."""
        if crops.shape[0] <= self.chunk_size:
            return self._run(crops)
        chunks = [crops[i : i + self.chunk_size] for i in range(0, crops.shape[0], self.chunk_size)]
        if self.workers == 1:
            return np.concatenate([self._run(chunk) for chunk in chunks])
        with ThreadPoolExecutor(min(self.workers, len(chunks))) as pool:
            return np.concatenate(list(pool.map(self._run, chunks)))

    def __call__(self, crops: np.ndarray):
        """Predict the face in each crop.

        Args:
            crops: ``(B, 3, S, S)`` float32 RGB in [0, 1] (a NumPy array; other float dtypes are converted).

        Returns:
            What the torch module returns, of CPU float32 tensors: a
            :class:`~facerecon.nets.regressor.RegressorOutput` for the regressor, the maps ``(B, 3, M, M)`` for the
            position-map network.

        Raises:
            TypeError / ValueError: another shape, an integer dtype, values outside [0, 1].
        """
        if isinstance(crops, torch.Tensor):
            raise TypeError(f"crops: expected a NumPy array, got {describe(crops)} (use .numpy())")
        check_crops(crops, self.config.input_size)
        vector = self.run_vector(np.ascontiguousarray(crops, dtype=np.float32))
        return self.architecture.decode(torch.from_numpy(vector), self.config)


class TorchRunner:
    """Runs the torch network (BatchNorms folded) with :class:`OnnxNetwork`'s interface: the fallback where the
    ONNX exporter (the ``train`` extra) is not installed and no exported graph is cached. Measured here on one
    thread for one 128 px crop: 2.7 ms against ONNX Runtime's ~1 ms.

    Args:
        model: the network.
        threads: torch threads while it runs (restored afterwards).
    """

    def __init__(self, model: nn.Module, *, threads: int = 1) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads: expected a positive int, got {threads!r}")
        self.architecture = architecture_of(model, "model")
        self._model = self.architecture.fold(model).cpu().float().eval()
        self.config = model.config
        self.threads = threads

    def run_vector(self, crops: np.ndarray) -> np.ndarray:
        """The undecoded output ``(B, D)`` float32 of float32 crops ``(B, 3, S, S)``."""
        from facerecon.core.threads import torch_threads

        with torch_threads(self.threads), torch.inference_mode():
            return self._model.forward_vector(torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))).numpy()

    def __call__(self, crops: np.ndarray):
        """As :meth:`OnnxNetwork.__call__`."""
        if isinstance(crops, torch.Tensor):
            raise TypeError(f"crops: expected a NumPy array, got {describe(crops)} (use .numpy())")
        check_crops(crops, self.config.input_size)
        return self.architecture.decode(torch.from_numpy(self.run_vector(crops)), self.config)


def exporter_available() -> bool:
    """Whether :func:`export_onnx` can run (``onnx`` and ``onnxscript`` importable)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))
    except ImportError:  # a broken or blocked installation
        return False


def fast_runner(model: nn.Module, graph: str | os.PathLike[str], *, threads: int = 1) -> OnnxNetwork | TorchRunner:
    """The fastest runner this installation has for ``model``: ONNX Runtime on ``graph`` (exported there first when
    it is missing and the exporter is installed), else :class:`TorchRunner`."""
    graph = Path(graph)
    if not graph.is_file():
        if not exporter_available():
            return TorchRunner(model, threads=threads)
        graph.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model.eval(), graph)
    return OnnxNetwork(graph, threads=threads)
