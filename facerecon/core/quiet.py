"""Quiet Python warnings for applications: the command line and the worker processes it starts."""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_python_warnings"]


def quiet_python_warnings() -> None:
    """Hide third-party deprecation warnings, and torch's ONNX exporter's log warnings (it logs "torchvision is not
    installed" when the regressor's graph is exported on first use), for the rest of the run (the command line only)."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("default", category=category, module=r"facerecon(\.|$)")
