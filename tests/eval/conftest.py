"""Fixtures of the eval tests: the dataset builders of eval_datasets.py (loaded by path: importlib mode)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def load_eval_datasets() -> ModuleType:
    """tests/eval/eval_datasets.py as a module (also used by tests/cli/test_eval_cli.py)."""
    name = "facerecon_tests_eval_datasets"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("eval_datasets.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def eval_data() -> ModuleType:
    return load_eval_datasets()
