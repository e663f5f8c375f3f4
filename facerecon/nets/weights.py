"""Network weights as safetensors files (no pickle: loading a file runs no code), loaded strictly.

A file holds the state dict of one of the package's networks (:mod:`facerecon.nets.architectures`: the
:class:`~facerecon.nets.regressor.FaceRegressor`, the :class:`~facerecon.nets.posmap.PosMapNet`; float32 or float16)
and, in its ``__metadata__`` (string to string):

* ``format`` = ``"facerecon.nets"`` and ``format_version`` (:data:`FORMAT_VERSION`);
* ``architecture``: the network class, e.g. ``"FaceRegressor"``;
* ``config``: the network's config (e.g. :class:`~facerecon.nets.regressor.RegressorConfig`) as JSON;
* ``training_config``: the training run's configuration as JSON (whatever the trainer records);
* ``metrics``: the metrics reached (a JSON object of numbers, on held-out data);
* ``face_model_sha256``: the SHA-256 of the face model the network was trained for
  (``FaceModel.info["source_sha256"]``).

:func:`load_weights` builds the network from the stored config and accepts the file only if it has every key of
the network, no other key, every shape, floating tensors where the network has them and finite values; any
problem is one :class:`~facerecon.core.errors.WeightsError` line, never a network with random weights.

Shipped weights are registry entries (:class:`NetWeights` in :data:`SHIPPED_WEIGHTS`) whose file lives in the
package (``facerecon/nets/weights/<name>.safetensors``); :func:`load_shipped` checks the file's SHA-256 against
the entry before loading.

Example:
    >>> sha = save_weights("net.safetensors", FaceRegressor(), face_model_sha256="0" * 64)  # doctest: +SKIP
    >>> load_weights("net.safetensors", sha256=sha).model                                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from facerecon.core.check import describe
from facerecon.core.errors import WeightsError
from facerecon.io.atomic import write_bytes_atomic
from facerecon.nets.architectures import architecture_named, architecture_of
from facerecon.nets.posmap import PosMapConfig
from facerecon.nets.regressor import RegressorConfig

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SHIPPED_WEIGHTS",
    "LoadedWeights",
    "NetWeights",
    "load_entry",
    "load_shipped",
    "load_weights",
    "save_weights",
]

FORMAT = "facerecon.nets"
FORMAT_VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHOWN_KEYS = 3  # keys named in a message about missing or unexpected keys


@dataclass(frozen=True)
class LoadedWeights:
    """A network loaded from a weights file, with what the file says about it.

    Attributes:
        model: the network with the file's weights, in eval mode.
        config: its architecture.
        training_config: the training run's configuration (a JSON object).
        metrics: the metrics reached, by name.
        face_model_sha256: the SHA-256 of the face model it was trained for.
        sha256: the SHA-256 of the file.
        path: where it was read from.
    """

    model: torch.nn.Module
    config: Any
    training_config: dict[str, Any]
    metrics: dict[str, float]
    face_model_sha256: str
    sha256: str
    path: str


@dataclass(frozen=True)
class NetWeights:
    """A registry entry for weights shipped inside the package.

    Attributes:
        name: the entry's id, e.g. ``"regressor-128-v1"``.
        file: the file's path inside the ``facerecon`` package, e.g. ``"nets/weights/regressor-128-v1.safetensors"``.
        sha256: the file's SHA-256.
        licence: the weights' licence (SPDX id or name).
        description: one line on what it is.
        config: the network config the file must hold (its type names the architecture).
        face_model_sha256: the face model it was trained for (SHA-256 of its source).
        metrics: the metrics reached, as recorded in the file.
        training_command: the command that trains it from scratch.
    """

    name: str
    file: str
    sha256: str
    licence: str
    description: str
    config: Any
    face_model_sha256: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    training_command: str = ""


def _shipped() -> dict[str, NetWeights]:
    regressor = NetWeights(
        name="regressor-128-v1",
        file="nets/weights/regressor-128-v1.safetensors",
        sha256="530a8494367a912c94cd537e565304abfbf1dbaa4c7a323a5f09f7465007918a",
        licence="MIT",
        description="face crop (128 px) -> pose, identity, ARKit expression, SH light; supervised stage only, on the "
                    "self-augmented corpus of faces-train + video-train (validation: the people of faces/)",
        config=RegressorConfig(initial_scale=0.512),
        face_model_sha256="991d686219195aecc14b23f0c76fa99a98ebcbf439e95afb208566ab4617d083",
        # Validation corpus (faces/ re-rendered at full pose, 1296 faces): NME of the 68 points (landmarks' box),
        # median head-pose error (degrees, max over pitch / yaw / roll); the same figures are in the file.
        metrics={"nme": 0.07346533238887787, "nme_yaw_0_30": 0.07319758832454681, "nme_yaw_30_60": 0.07173789292573929,
                 "nme_yaw_60_90": 0.07426953315734863, "pose_error_median_deg": 10.73584270477295,
                 "pose_error_yaw_0_30_deg": 7.08200216293335, "pose_error_yaw_30_60_deg": 8.55311107635498,
                 "pose_error_yaw_60_90_deg": 15.782784461975098, "confidence_accuracy": 0.9888888597488403,
                 "faces": 1296.0},  # fmt: skip
        training_command=(
            "facerecon train corpus --split train --data ../shared/data -o corpus/train --views 60 --workers 2 && "
            "facerecon train corpus --split val --data ../shared/data -o corpus/val --views 24 && "
            "facerecon train regressor --config facerecon/train/configs/regressor-128-v1.json -o runs/regressor-128-v1"
        ),
    )
    current = NetWeights(
        name="regressor-128-v2",
        file="nets/weights/regressor-128-v2.safetensors",
        sha256="f656b0ac2f75116b849ca784c8e4ae5b91844dbf86c96cbc96302d6c8278b03b",
        licence="MIT",
        description="face crop (128 px) -> pose, identity, ARKit expression, SH light; supervised stage only, on the "
                    "self-augmented corpus of faces-train + video-train (200 views per face, 35 % random identities, "
                    "face-free negatives, crops blurred / noised / occluded in training); validation: the people of faces/",
        config=RegressorConfig(initial_scale=0.512),
        face_model_sha256="991d686219195aecc14b23f0c76fa99a98ebcbf439e95afb208566ab4617d083",
        # The same validation corpus as v1 (faces/ re-rendered at full pose, 1296 faces); the figures are in the file.
        metrics={"nme": 0.05575161799788475, "nme_yaw_0_30": 0.052023086696863174, "nme_yaw_30_60": 0.05232209712266922,
                 "nme_yaw_60_90": 0.05875847861170769, "pose_error_median_deg": 7.728280067443848,
                 "pose_error_yaw_0_30_deg": 4.703135967254639, "pose_error_yaw_30_60_deg": 6.180541038513184,
                 "pose_error_yaw_60_90_deg": 12.591355323791504, "confidence_accuracy": 0.9837037324905396,
                 "faces": 1296.0},  # fmt: skip
        training_command=(
            "facerecon train corpus --split train --data ../shared/data -o corpus/train "
            "--config facerecon/train/configs/corpus.json --workers 2 && "
            "facerecon train corpus --split val --data ../shared/data -o corpus/val --views 24 && "
            "facerecon train regressor --config facerecon/train/configs/regressor.json -o runs/regressor-128-v2"
        ),
    )
    # The position-map network of paper 002 (facerecon.estimate.posmap), and its r2 ablation (same recipe, the weight
    # mask 1 : 1 : 1 : 1 : 0); both trained at once, one thread each, 7000 steps in 57 min. Stored as float16 (the
    # maps differ from float32's by at most 0.15 px of the crop). Figures: the validation corpus (faces/ re-rendered at
    # full pose, 6480 views), NME of the 68 points read from the maps (landmarks' box) and the map loss (each run's mask).
    posmap_command = (
        "facerecon train corpus --split train --data ../shared/data -o corpus/train "
        "--config facerecon/train/configs/corpus.json --views 120 --workers 2 && "
        "facerecon train corpus --split val --data ../shared/data -o corpus/val "
        "--config facerecon/train/configs/corpus.json --views 120 && "
        "facerecon train posmap --config facerecon/train/configs/{config}.json -o runs/{config}"
    )
    posmap = NetWeights(
        name="posmap-128-v1",
        file="nets/weights/posmap-128-v1.safetensors",
        sha256="d3422bca5ee31577c5544db331d89eecf6cd8f4942cefc9e7198432170da52e4",
        licence="MIT",
        description="face crop (128 px) -> UV position map (64 x 64 texels of the face's UV tile); paper 002's "
                    "region-weighted loss r1 (16 : 5 : 4 : 3 : 0), on the self-augmented corpus of faces-train + "
                    "video-train (validation: the people of faces/)",
        config=PosMapConfig(),
        face_model_sha256="991d686219195aecc14b23f0c76fa99a98ebcbf439e95afb208566ab4617d083",
        metrics={"faces": 6480.0, "map_loss": 0.08672197163105011, "nme": 0.05234309658408165,
                 "nme_yaw_0_30": 0.045980989933013916, "nme_yaw_30_60": 0.04898630082607269,
                 "nme_yaw_60_90": 0.05657323822379112},  # fmt: skip
        training_command=posmap_command.format(config="posmap"),
    )
    ablation = NetWeights(
        name="posmap-128-r2",
        file="nets/weights/posmap-128-r2.safetensors",
        sha256="57e2f5de96f96320ba5721f73775f197728f7fc1346cf828a55427477127ca06",
        licence="MIT",
        description="paper 002's ablation of posmap-128-v1: the same network and recipe with the weight mask r2 "
                    "(1 : 1 : 1 : 1 : 0)",
        config=PosMapConfig(),
        face_model_sha256="991d686219195aecc14b23f0c76fa99a98ebcbf439e95afb208566ab4617d083",
        metrics={"faces": 6480.0, "map_loss": 0.08814985305070877, "nme": 0.05420701205730438,
                 "nme_yaw_0_30": 0.04780882969498634, "nme_yaw_30_60": 0.05070372670888901,
                 "nme_yaw_60_90": 0.0585169792175293},  # fmt: skip
        training_command=posmap_command.format(config="posmap-r2"),
    )
    return {entry.name: entry for entry in (regressor, current, posmap, ablation)}


SHIPPED_WEIGHTS: dict[str, NetWeights] = _shipped()
"""The shipped weights by name."""


def _check_sha256(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ValueError(f"{name}: expected a SHA-256 of 64 lower-case hex digits, got {value!r}")
    return value


def _json_object(value: Any, name: str) -> str:
    """``value`` (a mapping, a JSON string, or an object with ``to_json()``) as the JSON text of an object."""
    if value is None:
        return "{}"
    if hasattr(value, "to_json"):
        value = value.to_json()
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}: expected a JSON object, got text that is not JSON ({err.msg})") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"{name}: expected a JSON object, got a JSON {type(parsed).__name__}")
        return value
    if isinstance(value, Mapping):
        try:
            return json.dumps(dict(value), sort_keys=True)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: expected JSON-serialisable values ({err})") from None
    raise TypeError(f"{name}: expected a mapping, a JSON string or an object with to_json(), got {describe(value)}")


def _check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics: expected a mapping of names to numbers, got {describe(metrics)}")
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"metrics: expected str names and finite numbers, got {key!r}: {value!r}")
        out[key] = float(value)
    return out


def save_weights(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    face_model_sha256: str,
    training_config: Mapping[str, Any] | str | Any | None = None,
    metrics: Mapping[str, float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> str:
    """Write a network's weights and metadata to a safetensors file, atomically.

    Args:
        path: the file to write (``.safetensors``).
        model: a network of :mod:`facerecon.nets.architectures` (not a folded copy: its keys differ).
        face_model_sha256: the SHA-256 of the face model it was trained for (``FaceModel.info["source_sha256"]``).
        training_config: the training configuration: a mapping, a JSON string or an object with ``to_json()``.
        metrics: the metrics reached (finite numbers, held-out data).
        dtype: ``torch.float32`` or ``torch.float16`` for the floating tensors (integers stay as they are).

    Returns:
        The SHA-256 of the written file (for a registry entry).

    Raises:
        TypeError / ValueError: bad arguments, or a model whose keys are not those of its architecture.
    """
    arch = architecture_of(model, "model")
    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"dtype: expected torch.float32 or torch.float16, got {dtype!r}")
    _check_sha256(face_model_sha256, "face_model_sha256")
    state = model.state_dict()
    expected = arch.network(model.config).state_dict()
    if set(state) != set(expected):
        raise ValueError(f"model: its keys are not those of a {arch.name} of its config (a folded copy?)")
    tensors = {
        key: (value.detach().to("cpu", dtype) if value.is_floating_point() else value.detach().cpu()).contiguous()
        for key, value in state.items()
    }
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "architecture": arch.name,
        "config": model.config.to_json(),
        "training_config": _json_object(training_config, "training_config"),
        "metrics": json.dumps(_check_metrics(metrics), sort_keys=True),
        "face_model_sha256": face_model_sha256,
    }
    data = canonical_safetensors(safetensors.torch.save(tensors, metadata=metadata))
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its header's keys sorted: ``safetensors`` writes the metadata in a hash map's
    order, which changes from call to call, so the same weights would get another SHA-256 each time they are saved.
    The tensor data and its offsets are unchanged (offsets count from the end of the header)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header with spaces to a multiple of 8 bytes
    return len(text).to_bytes(8, "little") + text + data[8 + size :]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _names(keys: set[str]) -> str:
    shown = sorted(keys)[:_SHOWN_KEYS]
    return ", ".join(shown) + (f" and {len(keys) - len(shown)} more" if len(keys) > len(shown) else "")


def _metadata(data: bytes, where: str) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes that ``safetensors`` has already parsed (so the header is sound).

    The format: an 8-byte little-endian header length, then the header, a JSON object.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict):
        raise WeightsError(f"{where}: a safetensors file without facerecon's metadata (not a facerecon network)")
    return metadata


def _decode(data: bytes, where: str, sha256: str, device: torch.device | str | None) -> LoadedWeights:
    try:
        tensors = safetensors.torch.load(data)
    except safetensors.SafetensorError as err:  # too short, a header that does not parse or fit, bad offsets
        raise WeightsError(f"{where}: not a readable safetensors file, truncated or corrupt ({_one_line(err)})") from None
    metadata = _metadata(data, where)
    try:
        arch = architecture_named(metadata.get("architecture"))
    except ValueError:
        arch = None
    if metadata.get("format") != FORMAT or arch is None:
        raise WeightsError(
            f"{where}: expected a {FORMAT} network file, got format {metadata.get('format')!r}, "
            f"architecture {metadata.get('architecture')!r}"
        )
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise WeightsError(
            f"{where}: format version {metadata.get('format_version')!r}, this facerecon reads version {FORMAT_VERSION}"
        )
    try:
        config = arch.config.from_json(metadata["config"])
        training_config = json.loads(metadata["training_config"])
        metrics = _check_metrics(json.loads(metadata["metrics"]))
        face_model_sha256 = _check_sha256(metadata["face_model_sha256"], "face_model_sha256")
    except (KeyError, TypeError, ValueError) as err:
        missing = f"missing {err}" if isinstance(err, KeyError) else _one_line(err)
        raise WeightsError(f"{where}: bad metadata ({missing})") from None
    model = arch.network(config)
    expected = model.state_dict()
    missing_keys, extra_keys = set(expected) - set(tensors), set(tensors) - set(expected)
    if missing_keys or extra_keys:
        parts = ([f"missing {len(missing_keys)} key(s): {_names(missing_keys)}"] if missing_keys else []) + (
            [f"{len(extra_keys)} unexpected key(s): {_names(extra_keys)}"] if extra_keys else []
        )
        raise WeightsError(f"{where}: not the weights of its network: {'; '.join(parts)}")
    for key, want in expected.items():
        got = tensors[key]
        if got.shape != want.shape:
            raise WeightsError(
                f"{where}: {key} has shape {tuple(got.shape)} in the file, the network needs {tuple(want.shape)}"
            )
        if got.is_floating_point() != want.is_floating_point():
            raise WeightsError(f"{where}: {key} is {got.dtype} in the file, the network needs {want.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise WeightsError(f"{where}: {key} has NaN or infinite values")
    model.load_state_dict({key: value.to(expected[key].dtype) for key, value in tensors.items()}, strict=True)
    model.eval()
    if device is not None:
        model.to(device)
    return LoadedWeights(model, config, training_config, metrics, face_model_sha256, sha256, where)


def _read(source: Path | Traversable, where: str) -> bytes:
    if not source.is_file():
        raise WeightsError(f"{where}: weights file not found")
    try:
        return source.read_bytes()
    except OSError as err:
        raise WeightsError(f"{where}: cannot read the weights file ({_one_line(err)})") from None


def _verify(
    loaded: LoadedWeights, where: str, sha256: str | None, face_model_sha256: str | None, config: Any
) -> LoadedWeights:
    if sha256 is not None and loaded.sha256 != sha256:
        raise WeightsError(f"{where}: SHA-256 {loaded.sha256}, expected {sha256} (a corrupt or different file)")
    if face_model_sha256 is not None and loaded.face_model_sha256 != face_model_sha256:
        raise WeightsError(
            f"{where}: trained for the face model with SHA-256 {loaded.face_model_sha256}, "
            f"not the one in use ({face_model_sha256}); retrain it or install that model"
        )
    if config is not None and loaded.config != config:
        raise WeightsError(f"{where}: holds another network config than its registry entry")
    return loaded


def load_weights(
    path: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    face_model_sha256: str | None = None,
    device: torch.device | str | None = None,
) -> LoadedWeights:
    """Load a network from a safetensors file written by :func:`save_weights`, strictly.

    Args:
        path: the file.
        sha256: when given, the file's SHA-256 must equal it.
        face_model_sha256: when given, the file must be for this face model (``FaceModel.info["source_sha256"]``).
        device: where to put the network (default: the CPU); see :func:`facerecon.nets.device.resolve_device`.

    Returns:
        :class:`LoadedWeights`, the network in eval mode.

    Raises:
        ValueError: a malformed ``sha256`` or ``face_model_sha256`` argument.
        WeightsError: the file is missing, unreadable, truncated or corrupt, of another format or version, has
            bad metadata, missing or unexpected keys, another shape or dtype kind, non-finite values, another
            SHA-256 than ``sha256`` or another face model than ``face_model_sha256``.
    """
    for value, name in ((sha256, "sha256"), (face_model_sha256, "face_model_sha256")):
        if value is not None:
            _check_sha256(value, name)
    source = Path(path)
    data = _read(source, str(source))
    loaded = _decode(data, str(source), hashlib.sha256(data).hexdigest(), device)
    return _verify(loaded, str(source), sha256, face_model_sha256, None)


def load_entry(
    entry: NetWeights,
    *,
    root: Path | Traversable | None = None,
    face_model_sha256: str | None = None,
    device: torch.device | str | None = None,
) -> LoadedWeights:
    """Load the weights of a registry entry: its file's SHA-256 and config must be the entry's.

    Args:
        entry: the registry entry.
        root: the folder ``entry.file`` is relative to (default: the installed ``facerecon`` package).
        face_model_sha256: when given, the weights must be for this face model.
        device: where to put the network (default: the CPU).

    Raises:
        WeightsError: see :func:`load_weights`; also a file whose SHA-256 or config is not the entry's.
    """
    if not isinstance(entry, NetWeights):
        raise TypeError(f"entry: expected a NetWeights, got {describe(entry)}")
    base = importlib.resources.files("facerecon") if root is None else root
    source = base.joinpath(entry.file)
    where = f"weights {entry.name!r} ({entry.file})"
    data = _read(source, where)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:  # before parsing: a corrupt file is reported as such
        raise WeightsError(f"{where}: SHA-256 {digest}, the registry expects {entry.sha256} (a corrupt or different file)")
    loaded = _decode(data, where, digest, device)
    if loaded.face_model_sha256 != entry.face_model_sha256:
        raise WeightsError(f"{where}: the file's face model is not the registry entry's")
    return _verify(loaded, where, None, face_model_sha256, entry.config)


def load_shipped(
    name: str, *, face_model_sha256: str | None = None, device: torch.device | str | None = None
) -> LoadedWeights:
    """Load shipped weights by registry name (:data:`SHIPPED_WEIGHTS`), verifying the file's SHA-256.

    Raises:
        WeightsError: no such entry, or see :func:`load_entry`.
    """
    entry = SHIPPED_WEIGHTS.get(name)
    if entry is None:
        known = ", ".join(sorted(SHIPPED_WEIGHTS)) or "none yet"
        raise WeightsError(f"no shipped weights named {name!r} (shipped: {known})")
    return load_entry(entry, face_model_sha256=face_model_sha256, device=device)
