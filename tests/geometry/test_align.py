"""Tests of facerecon.geometry.align: Umeyama recovers known transforms; ICP aligns a cropped ICT face."""

from __future__ import annotations

import math

import pytest
import torch

from facerecon.geometry.align import ICPResult, SimilarityTransform, icp, umeyama
from facerecon.geometry.rotation import axis_angle_to_matrix

D = torch.float64


def _random_similarity(batch: int, seed: int, with_scale: bool = True) -> SimilarityTransform:
    g = torch.Generator().manual_seed(seed)
    r = axis_angle_to_matrix(torch.randn(batch, 3, generator=g, dtype=D) * 1.5)
    t = torch.randn(batch, 3, generator=g, dtype=D) * 50
    s = torch.rand(batch, generator=g, dtype=D) * 2 + 0.5 if with_scale else torch.ones(batch, dtype=D)
    return SimilarityTransform(r, t, s)


def _assert_same(a: SimilarityTransform, b: SimilarityTransform, atol: float = 1e-10) -> None:
    torch.testing.assert_close(a.rotation, b.rotation, rtol=0, atol=atol)
    torch.testing.assert_close(a.translation, b.translation, rtol=0, atol=atol * 100)
    torch.testing.assert_close(a.scale, b.scale, rtol=0, atol=atol)


# ------------------------------------------------------------------------------------- transform


def test_transform_apply_inverse_compose_matrix():
    tf = _random_similarity(2, 0)
    p = torch.randn(2, 10, 3, dtype=D)
    y = tf.apply(p)
    torch.testing.assert_close(y, tf.scale[:, None, None] * torch.einsum("bij,bnj->bni", tf.rotation, p) + tf.translation[:, None])
    torch.testing.assert_close(tf.inverse().apply(y), p)
    other = _random_similarity(2, 1)
    torch.testing.assert_close(tf.compose(other).apply(p), tf.apply(other.apply(p)))
    homog = torch.cat([p, torch.ones(2, 10, 1, dtype=D)], -1) @ tf.matrix.transpose(-1, -2)
    torch.testing.assert_close(homog[..., :3], y)
    ident = SimilarityTransform.identity((2,), dtype=D)
    torch.testing.assert_close(ident.apply(p), p)
    assert tf.to(dtype=torch.float32).rotation.dtype == torch.float32


# ------------------------------------------------------------------------------------- Umeyama


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("with_scale", [True, False])
def test_umeyama_recovers_known_transform_exactly(batch, with_scale):
    truth = _random_similarity(batch, batch, with_scale)
    src = torch.randn(batch, 40, 3, generator=torch.Generator().manual_seed(9), dtype=D) * 30
    est = umeyama(src, truth.apply(src), with_scale=with_scale)
    assert est.rotation.shape == (batch, 3, 3) and est.scale.shape == (batch,)
    _assert_same(est, truth)
    torch.testing.assert_close(torch.linalg.det(est.rotation), torch.ones(batch, dtype=D))


def test_umeyama_with_weights_ignores_zero_weight_outliers():
    truth = _random_similarity(2, 3)
    g = torch.Generator().manual_seed(4)
    src = torch.randn(2, 30, 3, generator=g, dtype=D) * 30
    tgt = truth.apply(src)
    tgt[:, :8] += torch.randn(2, 8, 3, generator=g, dtype=D) * 100  # gross outliers
    w = torch.rand(2, 30, generator=g, dtype=D) + 0.1
    w[:, :8] = 0
    _assert_same(umeyama(src, tgt, w), truth)
    # Without the weights the outliers pull the estimate away: the test can tell.
    assert float((umeyama(src, tgt).translation - truth.translation).abs().max()) > 1.0


def test_umeyama_weighted_matches_repeated_points():
    """Integer weights are the same as repeating points (checks the weighted centroids and covariance)."""
    g = torch.Generator().manual_seed(5)
    src = torch.randn(1, 6, 3, generator=g, dtype=D)
    tgt = torch.randn(1, 6, 3, generator=g, dtype=D)  # no exact transform: a least-squares fit
    w = torch.tensor([[1.0, 2.0, 3.0, 1.0, 1.0, 2.0]], dtype=D)
    rep = torch.tensor([0, 1, 1, 2, 2, 2, 3, 4, 5, 5])
    _assert_same(umeyama(src, tgt, w), umeyama(src[:, rep], tgt[:, rep]))


def test_umeyama_never_returns_a_reflection():
    src = torch.randn(1, 20, 3, generator=torch.Generator().manual_seed(6), dtype=D)
    mirrored = src * torch.tensor([-1.0, 1.0, 1.0], dtype=D)
    est = umeyama(src, mirrored)
    torch.testing.assert_close(torch.linalg.det(est.rotation), torch.ones(1, dtype=D))


def test_umeyama_gradcheck():
    g = torch.Generator().manual_seed(7)
    src = (torch.randn(2, 8, 3, generator=g, dtype=D) * torch.tensor([3.0, 2.0, 1.0], dtype=D)).requires_grad_()
    tgt = (torch.randn(2, 8, 3, generator=g, dtype=D)).requires_grad_()
    w = (torch.rand(2, 8, generator=g, dtype=D) + 0.5).requires_grad_()

    def fn(s, t, w):
        out = umeyama(s, t, w)
        return out.rotation, out.translation, out.scale

    assert torch.autograd.gradcheck(fn, (src, tgt, w))


# ------------------------------------------------------------------------------------- ICP


def _face_points(ict_neutral) -> torch.Tensor:
    v, _ = ict_neutral
    # The vertices in front of z = 20 mm (most of the ICT head mesh; the back of the head is cut away).
    return v[v[:, 2] > 20.0]


def test_icp_converges_on_a_perturbed_cropped_face(ict_neutral):
    target = ict_neutral[0]
    face = _face_points(ict_neutral)
    crop = face[(face[:, 0] > -40) & (face[:, 1] > -60)]  # a partial scan: one cheek and the chin cut away
    assert 2000 < crop.shape[0] < face.shape[0]
    perturb = SimilarityTransform(
        axis_angle_to_matrix(torch.tensor([0.05, -0.12, 0.04], dtype=D)),
        torch.tensor([6.0, -4.0, 3.0], dtype=D),
        torch.tensor(1.0, dtype=D),
    )
    scan = perturb.apply(crop)
    result = icp(scan, target, max_iterations=100)
    assert isinstance(result, ICPResult) and result.converged
    # The scan vertices are target vertices: perfect alignment is reachable and must be found.
    torch.testing.assert_close(result.transform.apply(scan), crop, rtol=0, atol=1e-6)
    assert result.rmse < 1e-6 and float(result.distances.max()) < 1e-6
    _assert_same(result.transform, perturb.inverse(), atol=1e-8)
    # The starting error was large: ICP did something.
    assert float((scan - crop).norm(dim=-1).mean()) > 5.0


def test_icp_with_noise_scale_trim_and_init(ict_neutral):
    target = ict_neutral[0]
    face = _face_points(ict_neutral)
    g = torch.Generator().manual_seed(8)
    scan_true = face[::3]
    truth = SimilarityTransform(
        axis_angle_to_matrix(torch.tensor([0.0, 0.15, 0.0], dtype=D)), torch.tensor([2.0, 1.0, -3.0], dtype=D), torch.tensor(1.05, dtype=D)
    )
    scan = truth.apply(scan_true) + torch.randn(scan_true.shape, generator=g, dtype=D) * 0.2
    # 5 % of the scan is clutter far from the face (hair, background).
    clutter = torch.randn(scan.shape[0] // 20, 3, generator=g, dtype=D) * 30 + torch.tensor([0, 0, 200.0], dtype=D)
    scan = torch.cat([scan, clutter])
    init = SimilarityTransform(torch.eye(3, dtype=D), torch.tensor([-1.0, 0.0, 2.0], dtype=D), torch.tensor(1.0, dtype=D))
    result = icp(scan, target, init, with_scale=True, trim=0.9, max_iterations=200)
    aligned = result.transform.apply(scan[: scan_true.shape[0]])
    err = (aligned - scan_true).norm(dim=-1)
    assert float(err.mean()) < 0.5  # noise is 0.2 mm per axis
    assert abs(float(result.transform.scale) - 1 / 1.05) < 0.01
    assert not bool(result.inliers[scan_true.shape[0] :].any())  # the clutter is trimmed away


def test_icp_output_dtype_and_max_distance():
    target = torch.randn(200, 3, generator=torch.Generator().manual_seed(9)) * 10
    res = icp(target[:50] + 0.5, target, max_distance=5.0)
    assert res.transform.rotation.dtype == torch.float32 and res.distances.shape == (50,)
    with pytest.raises(ValueError, match="max_distance"):
        icp(target[:50] + 1000.0, target, max_distance=1.0)


# ------------------------------------------------------------------------------------- errors


def test_errors():
    p = torch.randn(1, 5, 3, dtype=D)
    with pytest.raises(ValueError, match="target"):
        umeyama(p, torch.randn(1, 4, 3, dtype=D))
    with pytest.raises(ValueError, match="at least 3"):
        umeyama(p[:, :2], p[:, :2])
    with pytest.raises(TypeError, match="target.*dtype"):
        umeyama(p, p.float())
    with pytest.raises(TypeError, match="source"):
        umeyama(p.long(), p.long())
    with pytest.raises(ValueError, match="source.*NaN"):
        umeyama(p * float("nan"), p)
    with pytest.raises(ValueError, match="weights.*non-negative"):
        umeyama(p, p, -torch.ones(1, 5, dtype=D))
    with pytest.raises(ValueError, match="weights.*positive total"):
        umeyama(p, p, torch.zeros(1, 5, dtype=D))
    with pytest.raises(ValueError, match="weights"):
        umeyama(p, p, torch.ones(2, 5, dtype=D))
    with pytest.raises(ValueError, match="coincide"):
        umeyama(torch.ones(1, 5, 3, dtype=D), p)
    with pytest.raises(ValueError, match="rotation"):
        SimilarityTransform(torch.eye(3, dtype=D), torch.zeros(2, 3, dtype=D), torch.ones(2, dtype=D))
    with pytest.raises(ValueError, match="points"):
        SimilarityTransform.identity((2,)).apply(torch.zeros(3, 5, 3))
    with pytest.raises(ValueError, match="source"):
        icp(p[0, :2], p[0])
    with pytest.raises(ValueError, match="target"):
        icp(p[0], p)
    with pytest.raises(ValueError, match="trim"):
        icp(p[0], p[0], trim=0.0)
    with pytest.raises(ValueError, match="max_iterations"):
        icp(p[0], p[0], max_iterations=0)
    with pytest.raises(ValueError, match="tolerance"):
        icp(p[0], p[0], tolerance=math.nan)
    with pytest.raises(ValueError, match="max_distance"):
        icp(p[0], p[0], max_distance=-1.0)
    with pytest.raises(TypeError, match="init"):
        icp(p[0], p[0], init="identity")
    with pytest.raises(ValueError, match="init"):
        icp(p[0], p[0], init=SimilarityTransform.identity((1,), dtype=D))
    with pytest.raises(ValueError, match="target.*NaN"):
        icp(p[0], p[0] * float("inf"))
