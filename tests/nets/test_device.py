"""Tests of facerecon.nets.device.resolve_device: names, availability, errors."""

from __future__ import annotations

import pytest
import torch

from facerecon.cli.exit_codes import ExitCode, exit_code_for
from facerecon.core.errors import DeviceError
from facerecon.nets import device as device_module
from facerecon.nets.device import resolve_device


def _no_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


def test_cpu_and_auto_without_gpus(monkeypatch):
    _no_gpus(monkeypatch)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("mps") == torch.device("mps")


def test_cuda_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match="2 CUDA GPU\\(s\\), numbered 0 to 1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1", "mps"])
def test_missing_devices(monkeypatch, name):
    _no_gpus(monkeypatch)
    with pytest.raises(DeviceError, match="use 'cpu' or 'auto'") as info:
        resolve_device(name)
    assert exit_code_for(info.value) == ExitCode.USAGE
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", ["gpu", "cpu:1", "mps:0", "cuda:", "cuda:x", ""])
def test_malformed_names(name):
    with pytest.raises(ValueError, match="expected one of auto, cpu, cuda, cuda:N, mps"):
        resolve_device(name)


def test_not_a_name():
    with pytest.raises(TypeError, match="device"):
        resolve_device(0)  # type: ignore[arg-type]
