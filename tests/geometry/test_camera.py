"""Tests of facerecon.geometry.camera: pixel-centre convention, round trips, OpenCV and OpenGL agreement."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from facerecon.geometry.camera import (
    MIN_DEPTH,
    OrthographicCamera,
    PerspectiveCamera,
    WeakPerspectiveCamera,
    focal_px_from_35mm,
    invert_pose,
    opencv_to_opengl_pose,
    opengl_to_opencv_pose,
    pose_matrix,
    transform,
)
from facerecon.geometry.rotation import axis_angle_to_matrix, head_angles_to_camera_rotation

D = torch.float64


def _camera(batch: int = 1, dtype=D) -> PerspectiveCamera:
    fx = torch.tensor([800.0, 900.0, 1000.0][:batch], dtype=dtype)
    fy = torch.tensor([810.0, 880.0, 1010.0][:batch], dtype=dtype)
    cx = torch.tensor([319.5, 300.0, 330.0][:batch], dtype=dtype)
    cy = torch.tensor([239.5, 250.0, 230.0][:batch], dtype=dtype)
    return PerspectiveCamera(fx, fy, cx, cy, 640, 480)


def _points(batch: int, n: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(batch, n, 3, generator=g, dtype=D) * 80
    p[..., 2] = p[..., 2].abs() + 300
    return p


# ------------------------------------------------------------------------------- perspective


def test_point_on_optical_axis_lands_on_principal_point():
    cam = _camera(3)
    uv = cam.project(torch.tensor([[[0.0, 0.0, 100.0]], [[0.0, 0.0, 500.0]], [[0.0, 0.0, 1.0]]], dtype=D))
    torch.testing.assert_close(uv[:, 0], torch.stack([cam.cx, cam.cy], -1))


def test_fov_edges_are_pixel_edges():
    cam = PerspectiveCamera.from_fov(math.radians(50), width=100, height=80, dtype=D)
    torch.testing.assert_close(cam.cx, torch.tensor([49.5], dtype=D))
    torch.testing.assert_close(cam.cy, torch.tensor([39.5], dtype=D))
    x = math.tan(math.radians(25)) * 10.0
    uv = cam.project(torch.tensor([[[-x, 0.0, 10.0], [x, 0.0, 10.0]]], dtype=D))
    torch.testing.assert_close(uv[0, :, 0], torch.tensor([-0.5, 99.5], dtype=D))


def test_project_known_answer_and_depth():
    cam = PerspectiveCamera.from_focal(100.0, 11, 11, dtype=D)
    out = cam.project_with_depth(torch.tensor([[[10.0, -20.0, 100.0], [1.0, 2.0, 4.0]]], dtype=D))
    torch.testing.assert_close(out, torch.tensor([[[15.0, -15.0, 100.0], [30.0, 55.0, 4.0]]], dtype=D))


def test_project_agrees_with_opencv():
    cam = _camera(1)
    rvec = torch.tensor([0.1, -0.4, 0.2], dtype=D)
    tvec = torch.tensor([5.0, -10.0, 450.0], dtype=D)
    model = _points(1, 30, seed=1)[0] - torch.tensor([0, 0, 300.0], dtype=D)
    ours = cam.project(transform(model[None], axis_angle_to_matrix(rvec)[None], tvec[None]))[0]
    ref, _ = cv2.projectPoints(model.numpy(), rvec.numpy(), tvec.numpy(), cam.intrinsics[0].numpy(), None)
    np.testing.assert_allclose(ours.numpy(), ref[:, 0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_project_backproject_round_trip(batch):
    cam = _camera(batch)
    p = _points(batch, seed=batch)
    out = cam.project_with_depth(p)
    assert out.shape == (batch, 20, 3)
    torch.testing.assert_close(cam.backproject(out[..., :2], out[..., 2]), p)
    uv = torch.rand(batch, 7, 2, dtype=D) * 500
    depth = torch.rand(batch, 7, dtype=D) * 100 + 1
    torch.testing.assert_close(cam.project(cam.backproject(uv, depth)), uv)


def test_camera_of_batch_one_applies_to_every_item_and_expand():
    cam = _camera(1)
    p = _points(3)
    torch.testing.assert_close(cam.project(p), cam.expand(3).project(p))
    assert cam.expand(3).batch_size == 3
    with pytest.raises(ValueError, match="batch_size"):
        _camera(2).expand(3)


def test_rays_are_unit_and_through_the_points():
    cam = _camera(2)
    p = _points(2)
    r = cam.rays(cam.project(p))
    torch.testing.assert_close(r.norm(dim=-1), torch.ones(2, 20, dtype=D))
    torch.testing.assert_close(r, p / p.norm(dim=-1, keepdim=True))
    centre = cam.rays(torch.stack([cam.cx, cam.cy], -1)[:, None])
    torch.testing.assert_close(centre, torch.tensor([0.0, 0.0, 1.0], dtype=D).expand(2, 1, 3))


def test_points_behind_the_camera_are_finite_and_masked():
    cam = _camera(1, dtype=torch.float32)
    p = torch.tensor([[[10.0, 5.0, -100.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1e-9], [1.0, 1.0, 100.0]]])
    p.requires_grad_()
    out = cam.project_with_depth(p)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(p.grad).all()
    assert cam.in_front(p).tolist() == [[False, False, False, True]]
    assert (out[0, :3, 2] <= MIN_DEPTH).all()


def test_gradcheck_projection_and_backprojection():
    g = torch.Generator().manual_seed(3)
    p = _points(2, 5).requires_grad_()
    fx = torch.tensor([800.0, 900.0], dtype=D, requires_grad=True)
    cx = torch.tensor([320.0, 310.0], dtype=D, requires_grad=True)

    def project(points, fx, cx):
        return PerspectiveCamera(fx, fx * 1.01, cx, cx - 80, 640, 480).project_with_depth(points)

    assert torch.autograd.gradcheck(project, (p, fx, cx))
    uv = (torch.rand(2, 5, 2, generator=g, dtype=D) * 600).requires_grad_()
    depth = (torch.rand(2, 5, generator=g, dtype=D) * 100 + 10).requires_grad_()

    def back(uv, depth, fx):
        return PerspectiveCamera(fx, fx, cx.detach(), cx.detach(), 640, 480).backproject(uv, depth)

    assert torch.autograd.gradcheck(back, (uv, depth, fx))
    assert torch.autograd.gradcheck(lambda uv: _camera(2).rays(uv), (uv,))


def test_intrinsics_and_resize():
    cam = _camera(2)
    k = cam.intrinsics
    assert k.shape == (2, 3, 3)
    rebuilt = PerspectiveCamera.from_intrinsics(k, 640, 480)
    p = _points(2)
    torch.testing.assert_close(rebuilt.project(p), cam.project(p))
    half = cam.resized(320, 240)
    # Pixel edges scale: the left edge of the image (u = -0.5) stays the left edge.
    torch.testing.assert_close(half.project(p), (cam.project(p) + 0.5) * 0.5 - 0.5)


def test_to_changes_dtype():
    cam = _camera(2).to(dtype=torch.float32)
    assert cam.fx.dtype == torch.float32 and cam.dtype == torch.float32 and cam.width == 640
    assert cam.device == torch.device("cpu")
    with pytest.raises(TypeError, match="points.*dtype"):
        cam.project(_points(2))


def test_frontal_face_in_the_image():
    """A head at 500 mm with angles (0, 0, 0): the nose tip is at the centre, the forehead above it."""
    cam = PerspectiveCamera.from_fov(math.radians(40), 256, 256, dtype=D)
    t = torch.tensor([[0.0, 0.0, 500.0]], dtype=D)
    nose, forehead, left_cheek = [0.0, 0.0, 100.0], [0.0, 60.0, 80.0], [50.0, 0.0, 60.0]
    model = torch.tensor([[nose, forehead, left_cheek]], dtype=D)

    def uv(angles):
        r = head_angles_to_camera_rotation(torch.tensor([angles], dtype=D))
        return cam.project(transform(model, r, t))[0]

    front = uv([0.0, 0.0, 0.0])
    torch.testing.assert_close(front[0], torch.tensor([127.5, 127.5], dtype=D))
    assert front[1, 1] < 127.5 - 10  # forehead (model +y) is up in the image
    assert front[2, 0] > 127.5 + 10  # the subject's left cheek (model +x) is on the viewer's right
    assert uv([0.0, 0.3, 0.0])[0, 0] > 127.5 + 10  # positive yaw: nose to the viewer's right
    assert uv([0.3, 0.0, 0.0])[0, 1] > 127.5 + 10  # positive pitch: nose (chin) down


# ------------------------------------------------------------------------------- poses and OpenGL


def test_transform_invert_and_pose_matrix():
    g = torch.Generator().manual_seed(4)
    r = axis_angle_to_matrix(torch.randn(2, 3, generator=g, dtype=D))
    t = torch.randn(2, 3, generator=g, dtype=D) * 100
    p = _points(2)
    q = transform(p, r, t)
    torch.testing.assert_close(q, torch.einsum("bij,bnj->bni", r, p) + t[:, None])
    ri, ti = invert_pose(r, t)
    torch.testing.assert_close(transform(q, ri, ti), p)
    m = pose_matrix(r, t)
    homog = torch.cat([p, torch.ones(2, 20, 1, dtype=D)], -1)
    torch.testing.assert_close((homog @ m.transpose(-1, -2))[..., :3], q)
    torch.testing.assert_close(m[:, 3], torch.tensor([0, 0, 0, 1.0], dtype=D).expand(2, 4))


def test_opengl_pose_round_trip_and_axes():
    g = torch.Generator().manual_seed(5)
    r = axis_angle_to_matrix(torch.randn(3, 3, generator=g, dtype=D))
    t = torch.randn(3, 3, generator=g, dtype=D)
    rg, tg = opencv_to_opengl_pose(r, t)
    r2, t2 = opengl_to_opencv_pose(rg, tg)
    torch.testing.assert_close(r2, r)
    torch.testing.assert_close(t2, t)
    # A frontal face: in OpenGL eye space the face's +z points at the viewer (+z) and y stays up.
    rf, tf = opencv_to_opengl_pose(head_angles_to_camera_rotation(torch.zeros(1, 3, dtype=D)), torch.zeros(1, 3, dtype=D))
    torch.testing.assert_close(rf[0], torch.eye(3, dtype=D))


def test_opengl_projection_matches_opencv_pixels():
    cam = _camera(2)
    near, far = 10.0, 2000.0
    p_cv = _points(2, 50)
    eye_r, eye_t = opencv_to_opengl_pose(torch.eye(3, dtype=D).expand(2, 3, 3), torch.zeros(2, 3, dtype=D))
    eye = transform(p_cv, eye_r, eye_t)
    clip = torch.cat([eye, torch.ones(2, 50, 1, dtype=D)], -1) @ cam.opengl_projection(near, far).transpose(-1, -2)
    ndc = clip[..., :3] / clip[..., 3:]
    u = (ndc[..., 0] + 1) / 2 * cam.width - 0.5
    v = (1 - ndc[..., 1]) / 2 * cam.height - 0.5
    torch.testing.assert_close(torch.stack([u, v], -1), cam.project(p_cv))
    # NDC depth: -1 at near, +1 at far.
    planes = torch.tensor([[[0.0, 0.0, -near, 1.0], [0.0, 0.0, -far, 1.0]]], dtype=D).expand(2, 2, 4)
    c = planes @ cam.opengl_projection(near, far).transpose(-1, -2)
    torch.testing.assert_close(c[..., 2] / c[..., 3], torch.tensor([-1.0, 1.0], dtype=D).expand(2, 2))
    back = PerspectiveCamera.from_opengl_projection(cam.opengl_projection(near, far), 640, 480)
    for a, b in ((back.fx, cam.fx), (back.fy, cam.fy), (back.cx, cam.cx), (back.cy, cam.cy)):
        torch.testing.assert_close(a, b)


def test_focal_from_35mm():
    assert focal_px_from_35mm(36.0, 3000, 2000) == pytest.approx(3000.0, abs=1e-9)
    assert focal_px_from_35mm(36.0, 2000, 3000) == pytest.approx(3000.0, abs=1e-9)  # portrait: same lens
    # 4:3 image, 26 mm equivalent (a common phone main camera): diagonal 5000 px for 4000 x 3000.
    assert focal_px_from_35mm(26.0, 4000, 3000) == pytest.approx(26.0 * 5000 / math.hypot(36, 24), rel=1e-12)
    # The diagonal field of view matches the full-frame one.
    f = focal_px_from_35mm(50.0, 1200, 900)
    assert 2 * math.atan(math.hypot(1200, 900) / 2 / f) == pytest.approx(2 * math.atan(math.hypot(36, 24) / 2 / 50.0))


# ------------------------------------------------------------------------------- orthographic


def test_orthographic_projection_round_trip_and_rays():
    cam = OrthographicCamera(
        torch.tensor([2.0, 0.5], dtype=D), torch.tensor([100.0, 50.0], dtype=D), torch.tensor([80.0, 60.0], dtype=D), 200, 160
    )
    assert WeakPerspectiveCamera is OrthographicCamera
    p = _points(2)
    out = cam.project_with_depth(p)
    torch.testing.assert_close(out[0, :, 0], 2.0 * p[0, :, 0] + 100.0)
    torch.testing.assert_close(out[1, :, 1], 0.5 * p[1, :, 1] + 60.0)
    torch.testing.assert_close(cam.backproject(out[..., :2], out[..., 2]), p)
    torch.testing.assert_close(cam.rays(out[..., :2]), torch.tensor([0, 0, 1.0], dtype=D).expand(2, 20, 3))
    assert cam.to(dtype=torch.float32).scale.dtype == torch.float32
    s = torch.tensor([1.5], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s, q: OrthographicCamera(s, s * 0 + 3, s * 0, 10, 10).project(q), (s, _points(1, 4).requires_grad_())
    )


# ------------------------------------------------------------------------------- errors


def test_camera_construction_errors():
    one = torch.ones(1, dtype=D)
    with pytest.raises(ValueError, match="fx.*positive"):
        PerspectiveCamera(-one, one, one, one, 10, 10)
    with pytest.raises(ValueError, match="fy.*positive"):
        PerspectiveCamera(one, 0 * one, one, one, 10, 10)
    with pytest.raises(ValueError, match="cx.*NaN"):
        PerspectiveCamera(one, one, one * float("nan"), one, 10, 10)
    with pytest.raises(TypeError, match="fx.*floating"):
        PerspectiveCamera(torch.ones(1, dtype=torch.int64), one, one, one, 10, 10)
    with pytest.raises(ValueError, match="cy.*shape"):
        PerspectiveCamera(one, one, one, torch.ones(2, dtype=D), 10, 10)
    with pytest.raises(TypeError, match="cy.*dtype"):
        PerspectiveCamera(one, one, one, one.float(), 10, 10)
    with pytest.raises(ValueError, match="fx"):
        PerspectiveCamera(torch.ones(1, 1, dtype=D), one, one, one, 10, 10)
    with pytest.raises(TypeError, match="fx"):
        PerspectiveCamera(1.0, one, one, one, 10, 10)
    with pytest.raises(ValueError, match="width"):
        PerspectiveCamera(one, one, one, one, 0, 10)
    with pytest.raises(TypeError, match="height"):
        PerspectiveCamera(one, one, one, one, 10, 10.0)
    with pytest.raises(ValueError, match="fov"):
        PerspectiveCamera.from_fov(math.pi, 10, 10)
    with pytest.raises(ValueError, match="fov"):
        PerspectiveCamera.from_fov(-0.5, 10, 10)
    with pytest.raises(ValueError, match="focal"):
        PerspectiveCamera.from_focal(0.0, 10, 10)
    with pytest.raises(ValueError, match="f35"):
        focal_px_from_35mm(0.0, 10, 10)
    with pytest.raises(ValueError, match="scale.*positive"):
        OrthographicCamera(-one, one, one, 10, 10)
    with pytest.raises(ValueError, match="far"):
        _camera().opengl_projection(10.0, 5.0)
    with pytest.raises(ValueError, match="near"):
        _camera().opengl_projection(0.0, 5.0)
    with pytest.raises(ValueError, match="projection"):
        PerspectiveCamera.from_opengl_projection(torch.zeros(1, 3, 4, dtype=D), 10, 10)


def test_projection_errors():
    cam = _camera(2)
    with pytest.raises(ValueError, match="points"):
        cam.project(torch.zeros(2, 5, 2, dtype=D))
    with pytest.raises(ValueError, match="points.*batch size"):
        cam.project(torch.ones(3, 5, 3, dtype=D))
    with pytest.raises(ValueError, match="points.*NaN"):
        cam.project(torch.full((2, 5, 3), float("nan"), dtype=D))
    with pytest.raises(TypeError, match="points"):
        cam.project(torch.ones(2, 5, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="depth"):
        cam.backproject(torch.ones(2, 5, 2, dtype=D), torch.ones(2, 4, dtype=D))
    with pytest.raises(ValueError, match="depth.*NaN"):
        cam.backproject(torch.ones(2, 5, 2, dtype=D), torch.full((2, 5), float("inf"), dtype=D))
    with pytest.raises(ValueError, match="uv"):
        cam.rays(torch.ones(2, 5, 3, dtype=D))
    r, t = torch.eye(3, dtype=D)[None], torch.zeros(1, 3, dtype=D)
    with pytest.raises(ValueError, match="translation"):
        transform(torch.ones(1, 4, 3, dtype=D), r, torch.zeros(2, 3, dtype=D))
    with pytest.raises(ValueError, match="rotation"):
        transform(torch.ones(1, 4, 3, dtype=D), torch.eye(4, dtype=D)[None], t)
    with pytest.raises(TypeError, match="rotation.*dtype"):
        transform(torch.ones(1, 4, 3), r, t)
    with pytest.raises(ValueError, match="rotation.*NaN"):
        invert_pose(r * float("nan"), t)
    with pytest.raises(TypeError, match="translation"):
        pose_matrix(r, t.float())


def test_square_scaled_and_pinhole():
    camera = PerspectiveCamera.square(1234.5, (319.5, 239.25), 640, 480)
    assert camera.dtype == torch.float64 and camera.pinhole() == (1234.5, 319.5, 239.25)
    half = camera.scaled(0.5, 320, 240)
    assert half.pinhole() == (1234.5 * 0.5, (319.5 + 0.5) * 0.5 - 0.5, (239.25 + 0.5) * 0.5 - 0.5)
    assert (half.width, half.height) == (320, 240)
    # The same points land at half the pixel coordinates, measured from pixel edges.
    points = torch.tensor([[[10.0, -20.0, 500.0], [0.0, 0.0, 800.0]]], dtype=torch.float64)
    assert torch.allclose(half.project(points) + 0.5, (camera.project(points) + 0.5) * 0.5)
    with pytest.raises(ValueError, match="square pixels"):
        PerspectiveCamera(*(torch.tensor([v]) for v in (100.0, 101.0, 5.0, 5.0)), 11, 11).pinhole()
    with pytest.raises(ValueError, match="one camera"):
        camera.expand(2).pinhole()
    with pytest.raises(ValueError, match="focal"):
        PerspectiveCamera.square(0.0, (1.0, 1.0), 4, 4)
