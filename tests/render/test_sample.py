"""Bilinear point sampling (paper 004's image formation): exact values, gradcheck, padding, errors."""

from __future__ import annotations

import pytest
import torch

from facerecon.render.sample import inside_image, pixel_to_grid, sample_image

IMAGE = torch.arange(12.0, dtype=torch.float64).reshape(1, 1, 3, 4)  # rows [0..3], [4..7], [8..11]


def test_integer_positions_return_pixels():
    ys, xs = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    pts = torch.stack([xs, ys], -1).reshape(1, -1, 2).double()
    out = sample_image(IMAGE, pts)
    assert torch.allclose(out[0, :, 0], IMAGE.reshape(-1), atol=1e-12, rtol=0)


def test_bilinear_between_pixels():
    pts = torch.tensor([[[0.5, 0.0], [0.0, 0.5], [0.5, 0.5], [2.25, 1.75]]], dtype=torch.float64)
    out = sample_image(IMAGE, pts)[0, :, 0]
    # value(u, v) = u + 4 v on this image, exactly bilinear.
    assert torch.allclose(out, pts[0, :, 0] + 4 * pts[0, :, 1])


def test_padding_modes():
    pts = torch.tensor([[[-3.0, 0.0], [3.0, 5.0], [-0.25, 0.0]]], dtype=torch.float64)
    border = sample_image(IMAGE, pts)[0, :, 0]
    assert border.tolist() == [0.0, 11.0, 0.0]
    zeros = sample_image(IMAGE + 1, pts, padding="zeros")[0, :, 0]
    assert zeros[0] == 0 and zeros[1] == 0 and torch.isclose(zeros[2], torch.tensor(0.75, dtype=torch.float64))
    assert inside_image(pts, (3, 4)).tolist() == [[False, False, False]]
    assert inside_image(torch.tensor([[0.0, 0.0], [3.0, 2.0], [3.01, 2.0]]), (3, 4)).tolist() == [True, True, False]


def test_batches_and_channels():
    images = torch.rand(3, 2, 5, 6, dtype=torch.float64)
    pts = torch.rand(3, 7, 2, dtype=torch.float64) * 4
    out = sample_image(images, pts)
    assert out.shape == (3, 7, 2)
    for b in range(3):
        assert torch.allclose(out[b], sample_image(images[b : b + 1], pts[b : b + 1])[0])
    assert sample_image(images, torch.zeros(3, 0, 2, dtype=torch.float64)).shape == (3, 0, 2)


def test_grid_mapping_of_pixel_edges():
    grid = pixel_to_grid(torch.tensor([[-0.5, -0.5], [3.5, 2.5]]), (3, 4))
    assert torch.allclose(grid, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))


def test_gradcheck_image_and_points():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    # Away from integer coordinates (where bilinear interpolation has kinks).
    pts = (torch.rand(2, 4, 2, generator=gen, dtype=torch.float64) * 0.8 + 0.1) + torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    pts.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda i, p: sample_image(i, p), (image, pts))
    assert torch.autograd.gradcheck(lambda i, p: sample_image(i, p, padding="zeros"), (image, pts))


def test_errors():
    pts = torch.zeros(1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="images"):
        sample_image(IMAGE[0], pts)
    with pytest.raises(ValueError, match="points"):
        sample_image(IMAGE, torch.zeros(1, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="points"):
        sample_image(IMAGE, torch.zeros(2, 2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="points"):
        sample_image(IMAGE, pts.float())
    with pytest.raises(TypeError, match="images"):
        sample_image(IMAGE.long(), pts)
    with pytest.raises(ValueError, match="points"):
        sample_image(IMAGE, pts * float("nan"))
    with pytest.raises(ValueError, match="padding"):
        sample_image(IMAGE, pts, padding="reflect")
