"""Which torch device a network trains or runs on: the one place that turns a name into a ``torch.device``.

``"auto"`` is the first of CUDA, MPS and the CPU that this machine has; a named device that is not there raises
:class:`~facerecon.core.errors.DeviceError` (never a silent fall-back to the CPU). Nothing here defaults to CUDA.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import re

import torch

from facerecon.core.check import describe
from facerecon.core.errors import DeviceError

__all__ = ["DEVICE_NAMES", "resolve_device"]

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
"""What :func:`resolve_device` accepts (``N`` a GPU index)."""

_PATTERN = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` for a name.

    Args:
        name: ``"auto"`` (CUDA if available, else MPS, else the CPU), ``"cpu"``, ``"cuda"`` (GPU 0),
            ``"cuda:N"``, ``"mps"``, or a ``torch.device`` (checked the same way).

    Returns:
        The device; ``"cuda"`` becomes ``cuda:0``.

    Raises:
        TypeError: ``name`` is neither a string nor a ``torch.device``.
        ValueError: a name that is none of the above.
        DeviceError: the device is not on this machine (no CUDA build or GPU, no GPU ``N``, no MPS).
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"device: expected a str such as 'auto' or 'cpu', got {describe(name)}")
    match = _PATTERN.match(name.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ValueError(f"device: expected one of {', '.join(DEVICE_NAMES)}, got {name!r}")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise DeviceError(f"device {name!r}: MPS (Apple GPU) is not available on this machine; use 'cpu' or 'auto'")
        return torch.device("mps")
    if not torch.cuda.is_available():
        reason = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise DeviceError(f"device {name!r}: {reason}; use 'cpu' or 'auto'")
    gpu = int(index or 0)
    count = torch.cuda.device_count()
    if gpu >= count:
        raise DeviceError(f"device {name!r}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}")
    return torch.device("cuda", gpu)
