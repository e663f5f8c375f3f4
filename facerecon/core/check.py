"""Input checks used at every public entry point.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape,
range or content) with a message that names the argument, says what was expected and what came.
Messages describe tensors by shape and dtype, never by printing their values.

Shape specs are tuples whose items are ints (exact size), ``None`` (any size) or strings (a named
size that must agree between the dimensions and arguments of one call, e.g. ``("B", "V", 3)``).

Example:
    >>> import torch
    >>> sizes = {}
    >>> check_shape(torch.zeros(2, 5, 3), "vertices", ("B", "V", 3), sizes)
    >>> sizes
    {'B': 2, 'V': 5}
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

ShapeSpec = Sequence[int | str | None]


def _is_tensor(value: Any) -> bool:
    """Whether ``value`` is a ``torch.Tensor``, without importing torch: a value can only be a tensor once torch
    has been imported, so the light commands (a resumed batch, ``--help``) that only check paths and options never
    pay for torch."""
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(value, torch_module.Tensor)


def describe(value: Any) -> str:
    """A short description of a value for an error message (never its contents)."""
    if _is_tensor(value):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    if value is None:
        return "None"
    return f"{type(value).__name__}"


def _numel(value: torch.Tensor | np.ndarray) -> int:
    return value.numel() if _is_tensor(value) else int(value.size)


def _format_spec(spec: ShapeSpec) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in spec) + (",)" if len(spec) == 1 else ")")


def check_shape(
    value: Any, name: str, spec: ShapeSpec, sizes: dict[str, int] | None = None
) -> None:
    """Check that ``value`` is a tensor or array whose shape matches ``spec``.

    Args:
        value: a ``torch.Tensor`` or ``np.ndarray``.
        name: the argument's name, used in the message.
        spec: the expected shape; see the module docstring.
        sizes: named sizes bound so far; updated in place with the new bindings.

    Raises:
        TypeError: ``value`` is not a tensor or array.
        ValueError: the number of dimensions or a size differs.
    """
    if not (_is_tensor(value) or isinstance(value, np.ndarray)):
        raise TypeError(f"{name}: expected a tensor of shape {_format_spec(spec)}, got {describe(value)}")
    shape = tuple(value.shape)
    if len(shape) != len(spec):
        raise ValueError(f"{name}: expected shape {_format_spec(spec)}, got {describe(value)}")
    bound = sizes if sizes is not None else {}
    for axis, (want, got) in enumerate(zip(spec, shape)):
        if want is None:
            continue
        if isinstance(want, str):
            if want in bound and bound[want] != got:
                raise ValueError(
                    f"{name}: expected shape {_format_spec(spec)} with {want}={bound[want]}, "
                    f"got {describe(value)}"
                )
            bound[want] = got
        elif want != got:
            raise ValueError(f"{name}: expected shape {_format_spec(spec)}, got {describe(value)}")


def check_floating(value: Any, name: str) -> None:
    """Check that ``value`` is a floating-point tensor or array."""
    if _is_tensor(value):
        if not value.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got {describe(value)}")
    elif isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f"{name}: expected a floating-point array, got {describe(value)}")
    else:
        raise TypeError(f"{name}: expected a floating-point tensor, got {describe(value)}")


def check_integer(value: Any, name: str) -> None:
    """Check that ``value`` is an integer tensor or array (index data such as faces)."""
    if _is_tensor(value):
        if value.is_floating_point() or value.is_complex() or value.dtype == sys.modules["torch"].bool:
            raise TypeError(f"{name}: expected an integer tensor, got {describe(value)}")
    elif isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"{name}: expected an integer array, got {describe(value)}")
    else:
        raise TypeError(f"{name}: expected an integer tensor, got {describe(value)}")


def check_finite(value: torch.Tensor | np.ndarray, name: str) -> None:
    """Check that a floating tensor or array has no NaN or infinite entries."""
    bad = ~value.isfinite() if _is_tensor(value) else ~np.isfinite(value)
    if bad.any():
        count = int(bad.sum())
        raise ValueError(f"{name}: expected finite values, got {count} NaN or infinite entries in {describe(value)}")


def check_range(
    value: torch.Tensor | np.ndarray, name: str, low: float | None = None, high: float | None = None
) -> None:
    """Check that every entry lies in ``[low, high]`` (either bound may be ``None``)."""
    if _numel(value) == 0:
        return
    vmin = float(value.min())
    vmax = float(value.max())
    if (low is not None and vmin < low) or (high is not None and vmax > high) or math.isnan(vmin + vmax):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name}: expected values in [{lo}, {hi}], got values in [{vmin:g}, {vmax:g}]")


def check_index_range(value: torch.Tensor | np.ndarray, name: str, size: int) -> None:
    """Check that integer indices lie in ``[0, size)``."""
    if _numel(value) == 0:
        return
    vmin, vmax = int(value.min()), int(value.max())
    if vmin < 0 or vmax >= size:
        raise ValueError(f"{name}: expected indices in [0, {size}), got indices in [{vmin}, {vmax}]")


def check_same_device(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Check that two tensors live on the same device."""
    if a.device != b.device:
        raise ValueError(f"{name_b}: expected device {a.device} (the device of {name_a}), got {b.device}")


def check_positive(value: float, name: str) -> None:
    """Check that a number is finite and strictly positive."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a positive number, got {describe(value)}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}")


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> None:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: expected one of {options}, got {value!r}")


def check_registry_name(name: Any, factory: Any) -> None:
    """A registry entry's name (letters, digits, ``-``, ``_``) and factory (a callable)."""
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"name: expected letters, digits, '-' or '_', got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory: expected a callable, got {describe(factory)}")


def check_file(path: str | os.PathLike[str], name: str) -> Path:
    """Check that ``path`` names an existing regular file and return it as a ``Path``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a file path, got {describe(path)}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{name}: no such file: {p}")
    if not p.is_file():
        raise ValueError(f"{name}: expected a file, got a directory or special file: {p}")
    return p


def check_mesh(
    vertices: Any,
    faces: Any,
    sizes: dict[str, int],
    *,
    vertices_name: str = "screen_vertices",
    vertices_spec: ShapeSpec = ("B", "V", 3),
    faces_name: str = "faces",
) -> None:
    """Check a floating, finite vertex tensor and an integer ``(F, 3)`` face tensor that indexes it.

    ``vertices_spec`` must name the vertex axis ``"V"`` (or ``"T"`` for UVs): the faces are checked against it.

    Raises:
        TypeError: non-tensors, non-floating vertices, non-integer faces.
        ValueError: wrong shapes, NaN/inf vertices, face indices out of range.
    """
    count_axis = "T" if "T" in vertices_spec else "V"
    if not _is_tensor(vertices):
        raise TypeError(f"{vertices_name}: expected a tensor of shape {_format_spec(vertices_spec)}, got {describe(vertices)}")
    check_shape(vertices, vertices_name, vertices_spec, sizes)
    check_floating(vertices, vertices_name)
    check_finite(vertices, vertices_name)
    if not _is_tensor(faces):
        raise TypeError(f"{faces_name}: expected an int64 tensor of shape (F, 3), got {describe(faces)}")
    check_shape(faces, faces_name, ("F", 3), sizes)
    check_integer(faces, faces_name)
    check_index_range(faces, faces_name, sizes[count_axis])
