"""Tests of facerecon.nets.onnx: the exported graph agrees with torch; the runner's errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon.core.errors import WeightsError
from facerecon.nets.onnx import CONFIG_KEY, OPSET, OnnxNetwork, export_onnx
from facerecon.nets.regressor import FaceRegressor


@pytest.fixture(scope="module")
def exported(tmp_path_factory, randomise) -> tuple[FaceRegressor, Path]:
    """The default network with random weights (eval mode) and its ONNX file: one export for the module."""
    torch.manual_seed(0)
    net = randomise(FaceRegressor(), seed=3)
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / "regressor.onnx")
    return net, path


@pytest.mark.parametrize(
    "batch, options",
    [(1, {}), (5, {}), (5, {"chunk_size": 2}), (5, {"chunk_size": 2, "workers": 2, "threads": 2})],
    ids=["1", "5", "5-chunks", "5-chunks-workers"],
)
def test_onnx_agrees_with_torch(exported, make_crops, batch, options):
    net, path = exported
    runner = OnnxNetwork(path, **options)
    x = make_crops(batch, 128, seed=batch)
    with torch.no_grad():
        want = net(x)
    got = runner(x.numpy())
    assert runner.config == net.config and got.batch_size == batch
    for field in dataclasses.fields(want):
        a, b = getattr(got, field.name), getattr(want, field.name)
        assert isinstance(a, torch.Tensor) and a.dtype == torch.float32 and a.shape == b.shape, field.name
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=field.name)
    if batch > 1:  # the random weights make the outputs vary with the crop: the agreement is not trivial
        assert want.identity.std(0).mean() > 0.01


def test_export_leaves_the_module_alone(exported):
    net, _ = exported
    assert not net.training and any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_graph_metadata_and_opset(exported):
    onnx = pytest.importorskip("onnx")
    _, path = exported
    model = onnx.load(str(path))
    assert {p.key: p.value for p in model.metadata_props}[CONFIG_KEY] == FaceRegressor().config.to_json()
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)  # folded before the export


def test_runner_threads_and_input_errors(exported):
    _, path = exported
    with pytest.raises(ValueError, match="threads"):
        OnnxNetwork(path, threads=0)
    with pytest.raises(ValueError, match="workers"):
        OnnxNetwork(path, workers=True)
    with pytest.raises(ValueError, match="chunk_size"):
        OnnxNetwork(path, chunk_size=0)
    runner = OnnxNetwork(path, threads=2)
    with pytest.raises(TypeError, match="NumPy"):
        runner(torch.rand(1, 3, 128, 128))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="crops"):
        runner(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(TypeError, match="floating"):
        runner(np.zeros((1, 3, 128, 128), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        runner(np.full((1, 3, 128, 128), 2.0, np.float32))
    assert runner(np.zeros((2, 3, 128, 128), np.float64)).batch_size == 2  # other floats are converted


def test_runner_file_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        OnnxNetwork(tmp_path / "none.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(WeightsError, match="ONNX Runtime can load") as info:
        OnnxNetwork(garbage)
    assert "\n" not in str(info.value)


def test_runner_rejects_a_graph_without_config(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["crops"], ["vector"])], "plain",
        [helper.make_tensor_value_info("crops", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("vector", TensorProto.FLOAT, [1, 3])],
    )  # fmt: skip
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8), str(path))
    with pytest.raises(WeightsError, match="without facerecon's config"):
        OnnxNetwork(path)


def test_export_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="FaceRegressor"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_size"):
        export_onnx(FaceRegressor(), tmp_path / "x.onnx", input_size=8)
    assert not (tmp_path / "x.onnx").exists()
