"""Tests of facerecon.core.optional: lazy imports of optional dependencies with an install hint."""

from __future__ import annotations

import json
import os.path
import sys
from pathlib import Path

import pytest

from facerecon.core.errors import FaceReconError, ModelNotInstalledError
from facerecon.core.optional import MissingDependencyError, install_hint, require

MISSING = "facerecon_surely_not_installed_xyz"


def test_a_present_module_is_returned() -> None:
    assert require("json", extra="none", purpose="a test") is json
    assert require("os.path", extra="none", purpose="a test") is os.path  # dotted names


def test_a_missing_module_gives_the_install_hint() -> None:
    with pytest.raises(MissingDependencyError) as info:
        require(MISSING, extra="onnx", purpose="the ONNX runner")
    message = str(info.value)
    hint = 'install it with: pip install "facerecon[onnx]"'
    assert message == f"the ONNX runner needs {MISSING}, which is not installed; {hint}"
    assert info.value.name == MISSING and info.value.extra == "onnx"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_error_is_an_import_error_and_a_user_facing_one() -> None:
    # except ImportError keeps working, and the CLI maps it like a missing model (the old dlib error)
    for cls in (ImportError, ModelNotInstalledError, FaceReconError):
        with pytest.raises(cls):
            require(MISSING, extra="dlib", purpose="dlib's detector")


def test_a_missing_parent_package_counts_as_not_installed() -> None:
    with pytest.raises(MissingDependencyError, match=r"which is not installed; install it with"):
        require(f"{MISSING}.sub", extra="web", purpose="the web server")


def test_a_module_that_fails_to_import_names_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = "facerecon_test_broken_module"
    (tmp_path / f"{broken}.py").write_text(f"import {MISSING}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, broken, raising=False)
    with pytest.raises(MissingDependencyError) as info:
        require(broken, extra="ray", purpose="distributed fitting")
    message = str(info.value)
    assert message.startswith(f"distributed fitting needs {broken}, which is installed but fails to import (")
    assert MISSING in message and message.endswith('install it with: pip install "facerecon[ray]"')
    assert "\n" not in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_install_hint() -> None:
    assert install_hint("dlib") == 'install it with: pip install "facerecon[dlib]"'


@pytest.mark.parametrize("name", ["module", "extra", "purpose"])
def test_bad_arguments(name: str) -> None:
    args = {"module": "json", "extra": "none", "purpose": "a test"}
    with pytest.raises(TypeError, match=rf"^{name}: expected a non-empty str, got "):
        require(**{**args, name: None})
    with pytest.raises(ValueError, match=rf"^{name}: expected a non-empty str, got ' '"):
        require(**{**args, name: " "})
