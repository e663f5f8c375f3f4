"""The crop frame: crops, their cameras and crop poses agree with the photo's projection exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import head_angles_to_camera_rotation, viewed_head_angles
from facerecon.nets.crop import CropBox, crop_camera, crop_image, crop_pose_from_pose, pose_from_crop

D = torch.float64


def test_crop_camera_projects_like_the_photo_then_the_crop() -> None:
    photo = PerspectiveCamera.from_focal(900.0, 640, 480, dtype=D)
    boxes = [CropBox(300.0, 200.0, 180.0), CropBox(500.3, 90.7, 61.0)]
    cams = crop_camera(photo, boxes, 128)
    points = torch.tensor([[[10.0, -20.0, 700.0], [-40.0, 5.0, 650.0]]], dtype=D)
    in_photo = photo.project(points)[0].numpy()
    for k, box in enumerate(boxes):
        in_crop = cams.project(points.expand(2, -1, -1))[k].numpy()
        np.testing.assert_allclose(in_crop, box.to_crop(in_photo, 128), atol=1e-9)
        np.testing.assert_allclose(box.from_crop(in_crop, 128), in_photo, atol=1e-9)


@pytest.mark.parametrize("side", [64.0, 200.0, 900.0])  # upsampled, a little shrunk, shrunk > 2x (area pre-shrink)
def test_crop_image_puts_a_dot_where_to_crop_says(side: float) -> None:
    image = np.zeros((1000, 1200, 3), np.uint8)
    half = int(side // 16)  # a square dot of about 4 x 4 crop px, centred at (701.5, 611.5)
    image[612 - half : 612 + half, 702 - half : 702 + half] = 255
    box = CropBox(690.0, 600.0, side)
    crop = crop_image(image, box, 64)
    assert crop.shape == (3, 64, 64) and crop.dtype == np.float32 and 0.0 <= crop.min() and crop.max() <= 1.0
    weight = crop[0]
    ys, xs = np.mgrid[:64, :64]
    found = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
    expected = box.to_crop(np.array([701.5, 611.5]), 64)
    # Exact when upsampling; a shrinking crop samples without a full prefilter (aliasing moves a centroid < 0.3 px).
    assert np.linalg.norm(found - expected) < (0.05 if side <= 64 else 0.3)


def test_crop_pose_round_trip_and_the_rotation_is_the_seen_one() -> None:
    photo = PerspectiveCamera.from_focal(800.0, 640, 480, dtype=D)
    boxes = [CropBox(100.0, 380.0, 150.0), CropBox(320.0, 240.0, 200.0), CropBox(600.0, 50.0, 90.0)]
    cams = crop_camera(photo, boxes, 128)
    angles = torch.tensor([[0.1, -0.7, 0.05], [0.0, 0.0, 0.0], [-0.3, 1.2, -0.2]], dtype=D)
    rotation = head_angles_to_camera_rotation(angles)
    translation = torch.tensor([[-150.0, 90.0, 700.0], [0.0, 0.0, 600.0], [250.0, -180.0, 900.0]], dtype=D)
    pivot = torch.tensor([0.0, 10.0, 30.0], dtype=D)
    pose = crop_pose_from_pose(rotation, translation, cams, pivot)
    r, t = pose_from_crop(pose, cams, pivot)
    torch.testing.assert_close(r, rotation)
    torch.testing.assert_close(t, translation)
    at = rotation @ pivot + translation
    torch.testing.assert_close(viewed_head_angles(rotation, at), viewed_head_angles(pose.rotation, torch.tensor([[0, 0, 1.0]] * 3, dtype=D)))
    torch.testing.assert_close(pose.log_scale, torch.log(cams.fx / at[:, 2]))


def test_pose_from_crop_is_differentiable() -> None:
    cams = crop_camera(PerspectiveCamera.from_focal(800.0, 640, 480, dtype=D), [CropBox(300.0, 200.0, 150.0)], 64)
    from facerecon.nets.crop import CropPose

    rot = head_angles_to_camera_rotation(torch.tensor([[0.2, 0.4, 0.1]], dtype=D))
    pivot = torch.tensor([0.0, 10.0, 30.0], dtype=D)

    def f(centre, log_scale):
        return torch.cat([x.flatten() for x in pose_from_crop(CropPose(rot, centre, log_scale), cams, pivot)])

    centre = torch.tensor([[0.1, -0.2]], dtype=D, requires_grad=True)
    log_scale = torch.tensor([math.log(0.4)], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(f, (centre, log_scale))


def test_crop_box_errors() -> None:
    with pytest.raises(ValueError, match="side"):
        CropBox(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="centre_u"):
        CropBox(float("nan"), 0.0, 10.0)
    with pytest.raises(ValueError, match="points"):
        CropBox.around(np.zeros((3, 3)))
    box = CropBox.around(np.array([[10.0, 20.0], [30.0, 60.0]]), scale=1.5)
    assert (box.centre_u, box.centre_v, box.side) == (20.0, 40.0, 60.0)
