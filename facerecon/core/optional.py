"""Optional dependencies: imported when first needed, failing with the command that installs them.

Heavy or platform-specific packages (dlib today; onnxruntime, a web framework and Ray next) are extras of
facerecon (``pip install "facerecon[dlib]"``). A module that uses one imports it inside the function that
needs it, through :func:`require`, so ``import facerecon`` works without it and whoever calls the feature
reads what to install. Every such message ends in :func:`install_hint`.

Example:
    >>> dlib = require("dlib", extra="dlib", purpose="dlib's 68-point landmark detector")  # doctest: +SKIP
    >>> require("json", extra="none", purpose="a test").__name__
    'json'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from facerecon.core.check import describe
from facerecon.core.errors import ModelNotInstalledError

__all__ = ["MissingDependencyError", "install_hint", "require"]


class MissingDependencyError(ModelNotInstalledError, ImportError):
    """An optional dependency is missing or fails to import; ``str(err)`` is one line ending in the install hint.

    An ``ImportError`` (``except ImportError`` catches it; ``err.name`` is the module) and a
    :class:`~facerecon.core.errors.ModelNotInstalledError` (what facerecon raised for a missing dlib before,
    so callers and the CLI's exit code stay the same).

    Attributes:
        name: the module asked for, e.g. ``"dlib"``.
        extra: the extra of facerecon that installs it, e.g. ``"dlib"``.
    """

    def __init__(self, message: str, *, name: str, extra: str) -> None:
        super().__init__(message, name=name)
        self.extra = extra


def install_hint(extra: str) -> str:
    """``'install it with: pip install "facerecon[EXTRA]"'``, the end of every message about a missing extra."""
    return f'install it with: pip install "facerecon[{extra}]"'


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency and return it, or raise an error that says how to install it.

    Args:
        module: the module to import, e.g. ``"dlib"`` or ``"onnxruntime"`` (dotted names work).
        extra: the extra of facerecon that installs it: ``"dlib"`` gives ``pip install "facerecon[dlib]"``.
        purpose: what needs it, for the message, e.g. ``"dlib's 68-point landmark detector"``.

    Returns:
        The module (imported on the first call; later calls find it in ``sys.modules``).

    Raises:
        TypeError, ValueError: an argument is not a non-empty ``str``.
        MissingDependencyError: ``module`` is not installed, or importing it raises an ``ImportError`` (a
            dependency of its own is missing, a shared library will not load); the cause is chained then.

    Example:
        >>> ort = require("onnxruntime", extra="onnx", purpose="the ONNX runner")  # doctest: +SKIP
        >>> # without it: MissingDependencyError: the ONNX runner needs onnxruntime, which is not installed;
        >>> # install it with: pip install "facerecon[onnx]"
    """
    for name, value in (("module", module), ("extra", extra), ("purpose", purpose)):
        if not isinstance(value, str):
            raise TypeError(f"{name}: expected a non-empty str, got {describe(value)}")
        if not value.strip():
            raise ValueError(f"{name}: expected a non-empty str, got {value!r}")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = isinstance(err, ModuleNotFoundError) and err.name is not None and (
            module == err.name or module.startswith(err.name + ".")
        )
        if missing:
            message = f"{purpose} needs {module}, which is not installed; {install_hint(extra)}"
            raise MissingDependencyError(message, name=module, extra=extra) from None
        cause = " ".join(str(err).split())
        message = f"{purpose} needs {module}, which is installed but fails to import ({cause}); {install_hint(extra)}"
        raise MissingDependencyError(message, name=module, extra=extra) from err
