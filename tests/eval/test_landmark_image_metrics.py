"""NME, yaw bins, CED, and the image metrics (photometric error, PSNR, SSIM, L1) on hand-built exact cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facerecon.eval import (
    YAW_BIN_LABELS,
    box_size,
    ced_curve,
    l1_error,
    nme,
    overlay,
    photometric_error,
    psnr,
    ssim,
    ssim_map,
    yaw_bin,
)

RNG = np.random.default_rng(7)


def _landmarks(batch: int = 2) -> np.ndarray:
    pts = RNG.uniform(0, 1, (batch, 68, 2))
    pts[:, 0] = (0.0, 0.0)  # the box is exactly [0, 40] x [0, 90]: sqrt(w h) = 60
    pts[:, 1] = (40.0, 90.0)
    pts[:, 2:] *= (40.0, 90.0)
    return pts


# ------------------------------------------------------------------------------------------------- NME
def test_box_size_exact() -> None:
    assert box_size(_landmarks()) == pytest.approx([60.0, 60.0])


def test_nme_of_identical_points_is_zero() -> None:
    gt = _landmarks(3)
    assert np.array_equal(nme(gt.copy(), gt), np.zeros(3))


def test_nme_exact_offset_and_scaling() -> None:
    gt = _landmarks(2)
    # Every point 3 px right and 4 px down: 5 px / 60 px.
    assert nme(gt + (3.0, 4.0), gt) == pytest.approx([5 / 60, 5 / 60], abs=1e-15)
    # Twice the offset, twice the error.
    assert nme(gt + (6.0, 8.0), gt) == pytest.approx([10 / 60, 10 / 60], abs=1e-15)
    # Scaling the whole picture (prediction and truth) changes nothing: NME is scale-free.
    assert nme(7.0 * (gt + (3.0, 4.0)), 7.0 * gt) == pytest.approx([5 / 60, 5 / 60], abs=1e-15)
    # Only one point wrong by 68 px: mean distance 1 px.
    pred = gt.copy()
    pred[:, 10, 0] += 68.0
    assert nme(pred, gt) == pytest.approx([1 / 60, 1 / 60], abs=1e-15)
    # An explicit normaliser replaces the box size.
    assert nme(gt + (3.0, 4.0), gt, np.array([5.0, 2.5])) == pytest.approx([1.0, 2.0])


def test_nme_does_not_modify_inputs() -> None:
    gt = _landmarks(1)
    pred = gt + 1.0
    a, b = gt.copy(), pred.copy()
    nme(pred, gt)
    assert np.array_equal(gt, a) and np.array_equal(pred, b)


@pytest.mark.parametrize(
    "pred, gt, norm, err",
    [
        (np.zeros((1, 68, 2)), np.zeros((2, 68, 2)), None, ValueError),  # batch sizes differ
        (np.zeros((1, 68, 2)), np.zeros((1, 5, 2)), None, ValueError),  # point counts differ
        (np.zeros((1, 68, 3)), np.zeros((1, 68, 3)), None, ValueError),  # 3D points
        (np.zeros((1, 68, 2), dtype=np.int64), np.zeros((1, 68, 2)), None, TypeError),
        ([[0.0, 0.0]], np.zeros((1, 68, 2)), None, TypeError),
        (np.full((1, 68, 2), np.nan), _landmarks(1), None, ValueError),
        (np.zeros((1, 68, 2)), np.zeros((1, 68, 2)), None, ValueError),  # zero-area ground-truth box
        (np.zeros((1, 68, 2)), _landmarks(1), np.array([0.0]), ValueError),
        (np.zeros((1, 68, 2)), _landmarks(1), np.array([1.0, 2.0]), ValueError),
    ],
)
def test_nme_errors(pred, gt, norm, err) -> None:
    with pytest.raises(err):
        nme(pred, gt, norm)


# --------------------------------------------------------------------------------------------- yaw bins
@pytest.mark.parametrize(
    "yaw, expected",
    [(0.0, 0), (29.999, 0), (-29.999, 0), (30.0, 1), (-30.0, 1), (59.999, 1), (60.0, 2), (-60.0, 2), (89.9, 2),
     (90.0, 2), (-90.0, 2), (97.0, 2), (np.float32(45.0), 1), (45, 1)],
)  # fmt: skip
def test_yaw_bin_edges(yaw, expected) -> None:
    assert yaw_bin(yaw) == expected


def test_yaw_bin_labels() -> None:
    assert YAW_BIN_LABELS == ("[0, 30)", "[30, 60)", "[60, 90]")


@pytest.mark.parametrize("yaw, err", [(math.nan, ValueError), (math.inf, ValueError), ("30", TypeError), (True, TypeError)])
def test_yaw_bin_errors(yaw, err) -> None:
    with pytest.raises(err):
        yaw_bin(yaw)


# -------------------------------------------------------------------------------------------------- CED
def test_ced_curve_exact() -> None:
    errors = np.array([1.0, 2.0, 2.0, 4.0])
    assert np.array_equal(ced_curve(errors, np.array([0.0, 1.0, 1.5, 2.0, 3.9, 4.0, 9.0])),
                          [0.0, 0.25, 0.25, 0.75, 0.75, 1.0, 1.0])  # fmt: skip
    assert np.array_equal(ced_curve(np.zeros(0), np.array([1.0, 2.0])), [0.0, 0.0])
    with pytest.raises(ValueError):
        ced_curve(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(TypeError):
        ced_curve([1.0], np.array([1.0]))


# ------------------------------------------------------------------------------------------ image metrics
def _pair(offset: float = 0.1, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photo, a rendering that differs by +-offset in every channel inside the mask, and the mask."""
    image = RNG.uniform(0, 1, (h, w, 3))
    sign = np.where(image > 0.5, -1.0, 1.0)  # stay inside [0, 1]
    rendered = image + sign * offset
    mask = np.zeros((h, w), dtype=bool)
    mask[4:20, 6:26] = True
    rendered[~mask] = RNG.uniform(0, 1, (int((~mask).sum()), 3))  # outside the mask: anything
    return image, rendered, mask


def test_known_pair_psnr_l1_photometric() -> None:
    image, rendered, mask = _pair(0.1)
    assert psnr(image, rendered, mask) == pytest.approx(20.0, abs=1e-9)  # MSE 0.01
    assert l1_error(image, rendered, mask) == pytest.approx(0.1, abs=1e-12)
    assert photometric_error(image, rendered, mask) == pytest.approx(math.sqrt(3) * 0.1, abs=1e-12)
    image, rendered, mask = _pair(0.01)
    assert psnr(image, rendered, mask) == pytest.approx(40.0, abs=1e-9)


def test_photometric_error_one_channel() -> None:
    image = np.zeros((4, 4, 3))
    rendered = image.copy()
    rendered[..., 1] = 0.5
    rendered[0, 0] = (0.3, 0.4, 0.0)  # a 0.5 distance too, in two channels
    mask = np.ones((4, 4), dtype=bool)
    assert photometric_error(image, rendered, mask) == pytest.approx(0.5)
    assert l1_error(image, rendered, mask) == pytest.approx((15 * 0.5 + 0.7) / 48)


def test_uint8_images_are_scaled() -> None:
    a = np.full((5, 5, 3), 100, dtype=np.uint8)
    b = np.full((5, 5, 3), 151, dtype=np.uint8)  # 51 / 255 = 0.2
    mask = np.ones((5, 5), dtype=bool)
    assert l1_error(a, b, mask) == pytest.approx(0.2)
    assert psnr(a, b, mask) == pytest.approx(10 * math.log10(1 / 0.04))


def test_identical_images() -> None:
    image, _, mask = _pair()
    assert psnr(image, image.copy(), mask) == math.inf
    assert ssim(image, image.copy(), mask) == pytest.approx(1.0)
    assert l1_error(image, image.copy(), mask) == 0.0
    assert photometric_error(image, image.copy(), mask) == 0.0


def test_ssim_matches_skimage() -> None:
    from skimage.metrics import structural_similarity

    for noise in (0.02, 0.1, 0.3):
        a = RNG.uniform(0, 1, (37, 45, 3))
        b = np.clip(a + RNG.normal(0, noise, a.shape), 0, 1)
        mean, full = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=1.0, channel_axis=-1, full=True)  # fmt: skip
        ours = ssim_map(a, b)
        assert np.abs(ours - full.mean(-1)).max() < 1e-12
        # skimage's mean leaves out a 5-px border (the window's radius).
        assert ours[5:-5, 5:-5].mean() == pytest.approx(mean, abs=1e-12)
        assert ssim(a, b) == pytest.approx(ours.mean(), abs=1e-15)


def test_ssim_over_mask_and_uint8() -> None:
    image, rendered, mask = _pair(0.2)
    full = ssim_map(image, rendered)
    assert ssim(image, rendered, mask) == pytest.approx(full[mask].mean())
    a8, b8 = np.round(image * 255).astype(np.uint8), np.round(rendered * 255).astype(np.uint8)
    assert ssim(a8, b8, mask) == pytest.approx(ssim(a8 / 255.0, b8 / 255.0, mask))
    assert ssim(image, rendered, mask) < 1.0


def test_metrics_ignore_pixels_outside_the_mask() -> None:
    image, rendered, mask = _pair(0.1)
    other = rendered.copy()
    other[~mask] = 1.0 - other[~mask]
    for fn in (psnr, l1_error, photometric_error):
        assert fn(image, rendered, mask) == fn(image, other, mask)


def test_overlay_exact() -> None:
    image, rendered, mask = _pair(0.1)
    out = overlay(image, rendered, mask)
    assert np.array_equal(out[mask], rendered[mask]) and np.array_equal(out[~mask], image[~mask])


@pytest.mark.parametrize(
    "a, b, m, err",
    [
        (np.zeros((4, 4, 3)), np.zeros((4, 5, 3)), np.ones((4, 4), bool), ValueError),
        (np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.ones((4, 5), bool), ValueError),
        (np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.zeros((4, 4), bool), ValueError),  # empty mask
        (np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.ones((4, 4)), TypeError),  # float mask
        (np.zeros((4, 4, 3)), np.full((4, 4, 3), 1.5), np.ones((4, 4), bool), ValueError),  # out of [0, 1]
        (np.zeros((4, 4, 3)), np.full((4, 4, 3), np.nan), np.ones((4, 4), bool), ValueError),
        (np.zeros((4, 4, 3), np.int16), np.zeros((4, 4, 3)), np.ones((4, 4), bool), TypeError),
        (np.zeros((4, 4)), np.zeros((4, 4)), np.ones((4, 4), bool), ValueError),  # gray
        ("a.png", np.zeros((4, 4, 3)), np.ones((4, 4), bool), TypeError),
    ],
)
def test_image_metric_errors(a, b, m, err) -> None:
    for fn in (psnr, ssim, l1_error, photometric_error, overlay):
        with pytest.raises(err):
            fn(a, b, m)
