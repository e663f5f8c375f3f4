"""Tests of facerecon.nets.weights: the round trip, the metadata, and every way a weights file can be wrong."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

from facerecon.cli.exit_codes import ExitCode, exit_code_for
from facerecon.core.errors import WeightsError
from facerecon.nets.regressor import FaceRegressor, fold_batchnorm
from facerecon.nets.weights import (
    SHIPPED_WEIGHTS,
    NetWeights,
    load_entry,
    load_shipped,
    load_weights,
    save_weights,
)

FACE_SHA = "ab" * 32


@pytest.fixture
def saved(tmp_path, small_net) -> tuple[Path, str]:
    path = tmp_path / "net.safetensors"
    sha = save_weights(path, small_net, face_model_sha256=FACE_SHA, training_config={"lr": 0.001, "steps": 10},
                       metrics={"nme_val": 2.5})  # fmt: skip
    return path, sha


def _rewrite(path: Path, edit) -> None:
    """Rewrite a weights file with ``edit(tensors, metadata)`` applied, keeping its metadata."""
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    tensors = safetensors.torch.load(data)
    metadata = header["__metadata__"]
    edit(tensors, metadata)
    path.write_bytes(safetensors.torch.save(tensors, metadata=metadata))


def test_round_trip_identical_outputs(saved, small_net, make_crops):
    path, sha = saved
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_weights(path, sha256=sha, face_model_sha256=FACE_SHA)
    assert not loaded.model.training and loaded.config == small_net.config
    assert loaded.metrics == {"nme_val": 2.5} and loaded.training_config == {"lr": 0.001, "steps": 10}
    assert loaded.face_model_sha256 == FACE_SHA and loaded.sha256 == sha
    x = make_crops(3, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model.forward_vector(x), small_net.forward_vector(x))
    for key, value in small_net.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_float16_round_trip(tmp_path, small_net, make_crops):
    path = tmp_path / "half.safetensors"
    save_weights(path, small_net, face_model_sha256=FACE_SHA, dtype=torch.float16)
    loaded = load_weights(path)
    assert loaded.model.output.weight.dtype == torch.float32
    x = make_crops(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.forward_vector(x), small_net.forward_vector(x), atol=0.02, rtol=0.01)


def test_no_pickle_in_the_file(saved):
    data = saved[0].read_bytes()
    assert b"\x80\x04" not in data[:64] and data[8:9] == b"{"  # a JSON header, not a pickle


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 100, -100])
def test_truncated_file(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(WeightsError, match="truncated or corrupt") as info:
        load_weights(path)
    assert "\n" not in str(info.value)


def test_corrupt_header(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[8] = ord("[")  # the JSON header no longer parses
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_weights(path)


def test_wrong_sha256(saved):
    path, _ = saved
    with pytest.raises(WeightsError, match="SHA-256"):
        load_weights(path, sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        load_weights(path, sha256="xyz")


def test_other_face_model(saved):
    with pytest.raises(WeightsError, match="face model"):
        load_weights(saved[0], face_model_sha256="cd" * 32)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t.pop("output.bias"), r"missing 1 key\(s\): output.bias"),
        (lambda t: t.update({"extra.weight": torch.zeros(2)}), r"1 unexpected key\(s\): extra.weight"),
        (lambda t: t.update({"stem.conv.w": t.pop("stem.conv.weight")}),
         "missing 1 key.*stem.conv.weight; 1 unexpected key.*stem.conv.w"),
        (lambda t: t.update({"output.bias": torch.zeros(7)}), r"output.bias has shape \(7,\) in the file"),
        (lambda t: t.update({"output.bias": t["output.bias"].to(torch.int32)}), "output.bias is torch.int32"),
    ],
    ids=["missing", "unexpected", "renamed", "shape", "dtype"],
)  # fmt: skip
def test_keys_shapes_dtypes_must_match(saved, edit, match):
    path, _ = saved
    _rewrite(path, lambda t, m: edit(t))
    with pytest.raises(WeightsError, match=match):
        load_weights(path)


def test_non_finite_values(saved):
    path, _ = saved

    def poison(t, m):
        t["output.weight"][0, 0] = float("nan")

    _rewrite(path, poison)
    with pytest.raises(WeightsError, match="output.weight has NaN"):
        load_weights(path)


def test_config_that_does_not_match_the_tensors(saved):
    path, _ = saved

    def wider(t, m):
        config = json.loads(m["config"])
        config["hidden"] = 64
        m["config"] = json.dumps(config)

    _rewrite(path, wider)
    with pytest.raises(WeightsError, match="hidden.weight has shape"):
        load_weights(path)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update(format="other"), "expected a facerecon.nets network file, got format 'other'"),
        (lambda m: m.update(architecture="Unet"), "expected a facerecon.nets network file, .*architecture 'Unet'"),
        (lambda m: m.update(format_version="99"), "format version '99'"),
        (lambda m: m.pop("metrics"), "bad metadata \\(missing 'metrics'\\)"),
        (lambda m: m.update(config='{"width": 1}'), "bad metadata \\(config: unknown keys width\\)"),
        (lambda m: m.update(face_model_sha256="short"), "bad metadata"),
    ],
)
def test_bad_metadata(saved, edit, match):
    path, _ = saved
    _rewrite(path, lambda t, m: edit(m))
    with pytest.raises(WeightsError, match=match):
        load_weights(path)


def test_plain_safetensors_without_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    path.write_bytes(safetensors.torch.save({"a": torch.zeros(2)}))
    with pytest.raises(WeightsError, match="without facerecon's metadata"):
        load_weights(path)


def test_save_argument_errors(tmp_path, small_net):
    target = tmp_path / "x.safetensors"
    with pytest.raises(ValueError, match="face_model_sha256"):
        save_weights(target, small_net, face_model_sha256="abc")
    with pytest.raises(ValueError, match="folded"):
        save_weights(target, fold_batchnorm(small_net), face_model_sha256=FACE_SHA)
    with pytest.raises(ValueError, match="metrics"):
        save_weights(target, small_net, face_model_sha256=FACE_SHA, metrics={"nme": float("nan")})
    with pytest.raises(ValueError, match="training_config"):
        save_weights(target, small_net, face_model_sha256=FACE_SHA, training_config="[1, 2]")
    with pytest.raises(ValueError, match="dtype"):
        save_weights(target, small_net, face_model_sha256=FACE_SHA, dtype=torch.float64)
    assert not target.exists()


def _entry(path: Path, sha: str, config) -> NetWeights:
    return NetWeights(name="test-net", file=path.name, sha256=sha, licence="MIT", description="a test",
                      config=config, face_model_sha256=FACE_SHA, metrics={"nme_val": 2.5},
                      training_command="facerecon train regressor --steps 10")  # fmt: skip


def test_registry_entry(saved, small_net):
    path, sha = saved
    loaded = load_entry(_entry(path, sha, small_net.config), root=path.parent)
    assert loaded.sha256 == sha and loaded.config == small_net.config


def test_registry_entry_wrong_sha256(saved, small_net):
    path, _ = saved
    with pytest.raises(WeightsError, match="the registry expects"):
        load_entry(_entry(path, "0" * 64, small_net.config), root=path.parent)


def test_registry_entry_other_config(saved, small_net):
    path, sha = saved
    with pytest.raises(WeightsError, match="another network config"):
        load_entry(_entry(path, sha, FaceRegressor().config), root=path.parent)


def test_registry_entry_missing_file(tmp_path, small_net):
    with pytest.raises(WeightsError, match="not found"):
        load_entry(_entry(tmp_path / "gone.safetensors", "0" * 64, small_net.config), root=tmp_path)


def test_load_shipped(saved, small_net, monkeypatch):
    with pytest.raises(WeightsError, match="no shipped weights named 'nope'"):
        load_shipped("nope")
    # A registered name whose file is not in the package: an error, never random weights.
    path, sha = saved
    monkeypatch.setitem(SHIPPED_WEIGHTS, "test-net", _entry(path, sha, small_net.config))
    with pytest.raises(WeightsError, match="not found"):
        load_shipped("test-net")


def test_weights_error_exit_code():
    assert exit_code_for(WeightsError("x")) == ExitCode.WEIGHTS == 10
