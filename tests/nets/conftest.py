"""Shared helpers of the nets tests: small configs and networks with random (non-trivial) weights."""

from __future__ import annotations

import pytest
import torch

from facerecon.nets.regressor import FaceRegressor, RegressorConfig

# A small network with every kind of block (both activations, squeeze-excite, a residual): fast to build and export.
SMALL = RegressorConfig(
    input_size=64,
    stem_channels=8,
    blocks=("k3_s2_e8_c16_re", "k5_s2_e32_c24_hs_se", "k3_s1_e48_c24_hs_r2"),
    head_channels=32,
    hidden=32,
)


def randomise_(net: FaceRegressor, seed: int = 0) -> FaceRegressor:
    """Give every BatchNorm random statistics and affine terms and the output layer larger weights, so that
    eval-mode outputs vary from crop to crop (a fresh network predicts nearly its bias)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        net.output.weight.copy_(torch.randn(net.output.weight.shape, generator=gen) * 0.1)
    return net.eval()


def _crops(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(batch, 3, size, size)`` random crops in [0, 1]."""
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def small_config() -> RegressorConfig:
    return SMALL


@pytest.fixture
def small_net() -> FaceRegressor:
    """The small network, eval mode, random non-trivial weights."""
    torch.manual_seed(0)
    return randomise_(FaceRegressor(SMALL))


@pytest.fixture(scope="session")
def randomise():
    return randomise_


@pytest.fixture(scope="session")
def make_crops():
    return _crops
