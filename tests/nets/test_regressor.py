"""Tests of facerecon.nets.regressor: shapes, the decoding, the initial prediction, gradients, configs, folding."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from facerecon.geometry.rotation import FLIP_YZ
from facerecon.nets.regressor import (
    BlockSpec,
    FaceRegressor,
    RegressorConfig,
    RegressorOutput,
    check_crops,
    decode_output,
    fold_batchnorm,
    output_layout,
)


@pytest.fixture(scope="module")
def default_net() -> FaceRegressor:
    torch.manual_seed(0)
    return FaceRegressor().eval()


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_shapes_default(default_net, make_crops, batch):
    out = default_net(make_crops(batch, 128))
    assert isinstance(out, RegressorOutput) and out.batch_size == batch
    shapes = {f.name: tuple(getattr(out, f.name).shape) for f in dataclasses.fields(out)}
    assert shapes == {
        "rotation6d": (batch, 6), "centre": (batch, 2), "log_scale": (batch,), "identity": (batch, 100),
        "expression": (batch, 53), "sh": (batch, 9, 3), "confidence": (batch,), "confidence_logit": (batch,),
    }  # fmt: skip
    assert out.rotation.shape == (batch, 3, 3)


def test_output_is_frozen(small_net, make_crops):
    out = small_net(make_crops(1, 64))
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.identity = out.identity  # type: ignore[misc]


def test_decode_rotation_expression_confidence(small_config):
    size = sum(n for _, n in output_layout(small_config))
    vector = torch.randn(7, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 5
    out = decode_output(vector, small_config)
    r = out.rotation
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=r.dtype).expand(7, 3, 3), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(7, dtype=r.dtype))
    assert out.expression.min() >= 0 and out.expression.max() <= 1
    assert out.confidence.min() >= 0 and out.confidence.max() <= 1
    torch.testing.assert_close(out.confidence, torch.sigmoid(out.confidence_logit))
    # The layout: fields are consecutive slices in output_layout's order.
    torch.testing.assert_close(out.rotation6d, vector[:, :6])
    torch.testing.assert_close(out.log_scale, vector[:, 8])
    torch.testing.assert_close(out.sh.reshape(7, -1), vector[:, -28:-1])


def test_decode_rejects_wrong_length(small_config):
    with pytest.raises(ValueError, match="vector"):
        decode_output(torch.zeros(2, 5), small_config)
    with pytest.raises(TypeError, match="vector"):
        decode_output(torch.zeros(2, 6 + 2 + 1 + 100 + 53 + 27 + 1, dtype=torch.int64), small_config)


def test_untrained_net_predicts_the_mean_face(make_crops):
    torch.manual_seed(0)
    net = FaceRegressor().train()  # batch statistics, as in training
    out = net(make_crops(4, 128))
    frontal = torch.tensor(FLIP_YZ).expand(4, 3, 3)
    torch.testing.assert_close(out.rotation, frontal, atol=0.02, rtol=0)
    assert out.identity.abs().max() < 0.05 and out.centre.abs().max() < 0.05
    torch.testing.assert_close(out.expression, torch.full((4, 53), 0.05), atol=0.01, rtol=0)
    torch.testing.assert_close(out.sh[:, 0], torch.full((4, 3), math.sqrt(4 * math.pi)), atol=0.05, rtol=0)
    assert out.sh[:, 1:].abs().max() < 0.05
    torch.testing.assert_close(out.log_scale, torch.full((4,), math.log(0.64)), atol=0.05, rtol=0)


def test_gradients_reach_every_parameter(small_config, make_crops):
    torch.manual_seed(0)
    net = FaceRegressor(small_config).train()
    out = net(make_crops(3, 64))
    loss = (out.rotation.sum() + out.centre.square().sum() + out.log_scale.sum() + out.identity.square().sum()
            + out.expression.sum() + out.sh.square().sum() + out.confidence_logit.sum())  # fmt: skip
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_forward_does_not_modify_its_input(small_net, make_crops):
    x = make_crops(2, 64)
    before = x.clone()
    small_net(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.rand(2, 3, 32, 32), ValueError, "crops"),
        (torch.rand(3, 64, 64), ValueError, "crops"),
        (torch.rand(2, 1, 64, 64), ValueError, "crops"),
        (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), TypeError, "floating"),
        (torch.full((1, 3, 64, 64), 255.0), ValueError, r"\[0, 1\]"),
        (torch.full((1, 3, 64, 64), float("nan")), ValueError, r"\[0, 1\]"),
        ([[0.0]], TypeError, "crops"),
    ],
)
def test_forward_rejects_bad_crops(small_net, bad, error, match):
    with pytest.raises(error, match=match):
        small_net(bad)


def test_check_crops_accepts_numpy(make_crops):
    check_crops(make_crops(2, 64).numpy(), 64)


def test_fold_batchnorm_keeps_the_outputs(small_net, make_crops):
    folded = fold_batchnorm(small_net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in small_net.modules())  # the original is untouched
    x = make_crops(3, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded.forward_vector(x), small_net.forward_vector(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="FaceRegressor"):
        fold_batchnorm(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_block_spec_parse():
    assert BlockSpec.parse("k5_s2_e96_c40_hs_se_r2") == BlockSpec(5, 2, 96, 40, "hardswish", True, 2)
    assert BlockSpec.parse("k3_e16_c16") == BlockSpec(3, 1, 16, 16, "relu", False, 1)


@pytest.mark.parametrize(
    "text, match",
    [
        ("k3_s2_e16", "missing channels"),
        ("k3_s2_e16_c16_x4", "unknown token"),
        ("k3_k5_e16_c16", "kernel given twice"),
        ("k4_e16_c16", "odd kernel"),
        ("k3_s3_e16_c16", "stride 1 or 2"),
        ("k3_e0_c16", "sizes >= 1"),
        ("", "unknown token"),
    ],
)
def test_block_spec_errors(text, match):
    with pytest.raises(ValueError, match=match):
        BlockSpec.parse(text)


def test_config_json_round_trip(small_config):
    assert RegressorConfig.from_json(small_config.to_json()) == small_config
    assert RegressorConfig.from_json(RegressorConfig().to_json()) == RegressorConfig()


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"input_size": 16}, ValueError, "input_size"),
        ({"input_size": 128.0}, TypeError, "input_size"),
        ({"sh_count": 26}, ValueError, "sh_count"),
        ({"blocks": ()}, ValueError, "blocks"),
        ({"blocks": ("k3_e16",)}, ValueError, "missing channels"),
        ({"initial_scale": -1.0}, ValueError, "initial_scale"),
        ({"initial_expression": 0.0}, ValueError, "initial_expression"),
        ({"dropout": 1.0}, ValueError, "dropout"),
    ],
)
def test_config_errors(changes, error, match):
    with pytest.raises(error, match=match):
        RegressorConfig(**changes)


def test_config_from_json_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys width"):
        RegressorConfig.from_json('{"width": 2}')
    with pytest.raises(ValueError, match="JSON object"):
        RegressorConfig.from_json("[1]")


def test_output_to_and_detach(small_net, make_crops):
    out = small_net(make_crops(2, 64))
    moved = out.to(dtype=torch.float64)
    assert moved.identity.dtype == torch.float64 and moved.batch_size == 2
    assert not out.detach().identity.requires_grad
