"""Tests of facerecon.geometry.rotation: known answers, head-pose signs, round trips, stability, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation as ScipyRotation

from facerecon.geometry.rotation import (
    FLIP_YZ,
    axis_angle_to_matrix,
    camera_rotation_to_head_angles,
    euler_to_matrix,
    head_angles_to_camera_rotation,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    viewed_head_angles,
)

D = torch.float64
H = math.pi / 2
BATCHES = [(), (1,), (2,), (3,), (2, 3)]


def _random_rotations(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    n = int(np.prod(shape)) if shape else 1
    r = ScipyRotation.random(n, random_state=seed).as_matrix()
    return torch.from_numpy(r).reshape(*shape, 3, 3)


def _assert_rotation(r: torch.Tensor, atol: float = 1e-12) -> None:
    eye = torch.eye(3, dtype=r.dtype).expand_as(r)
    torch.testing.assert_close(r @ r.transpose(-1, -2), eye, rtol=0, atol=atol)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(r.shape[:-2], dtype=r.dtype), rtol=0, atol=atol)


# ------------------------------------------------------------------------------------- known answers


@pytest.mark.parametrize(
    "angles, expected",
    [
        # pitch 90 about x: y -> z, z -> -y
        ((H, 0, 0), [[1, 0, 0], [0, 0, -1], [0, 1, 0]]),
        # yaw 90 about y: z -> x, x -> -z
        ((0, H, 0), [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]),
        # roll 90 about z: x -> y, y -> -x
        ((0, 0, H), [[0, -1, 0], [1, 0, 0], [0, 0, 1]]),
    ],
)
def test_euler_90_degrees_about_each_axis(angles, expected):
    r = euler_to_matrix(torch.tensor(angles, dtype=D))
    torch.testing.assert_close(r, torch.tensor(expected, dtype=D), rtol=0, atol=1e-15)


def test_euler_order_is_roll_yaw_pitch_applied_to_the_left():
    a = torch.tensor([0.3, -0.7, 1.1], dtype=D)
    rx = euler_to_matrix(torch.tensor([0.3, 0, 0], dtype=D))
    ry = euler_to_matrix(torch.tensor([0, -0.7, 0], dtype=D))
    rz = euler_to_matrix(torch.tensor([0, 0, 1.1], dtype=D))
    torch.testing.assert_close(euler_to_matrix(a), rz @ ry @ rx)
    # Independent reference: SciPy extrinsic "xyz" applies x first, then y, then z: Rz @ Ry @ Rx.
    ref = ScipyRotation.from_euler("xyz", a.numpy()).as_matrix()
    np.testing.assert_allclose(euler_to_matrix(a).numpy(), ref, atol=1e-15)


def test_frontal_pose_maps_model_z_to_camera_minus_z_and_y_up_to_y_down():
    r = head_angles_to_camera_rotation(torch.zeros(3, dtype=D))
    torch.testing.assert_close(r, torch.tensor(FLIP_YZ, dtype=D))
    torch.testing.assert_close(r @ torch.tensor([0, 0, 1.0], dtype=D), torch.tensor([0, 0, -1.0], dtype=D))
    torch.testing.assert_close(r @ torch.tensor([0, 1.0, 0], dtype=D), torch.tensor([0, -1.0, 0], dtype=D))


def test_head_pose_signs_as_seen_in_the_image():
    """Camera x is image right, camera y is image down (u, v); the nose is +z in model space."""
    nose = torch.tensor([0, 0, 1.0], dtype=D)
    left_ear = torch.tensor([1.0, 0, 0], dtype=D)  # subject's left = +x = viewer's right
    yaw = head_angles_to_camera_rotation(torch.tensor([0, 0.3, 0], dtype=D)) @ nose
    assert yaw[0] > 0.29  # nose to the viewer's right
    pitch = head_angles_to_camera_rotation(torch.tensor([0.3, 0, 0], dtype=D)) @ nose
    assert pitch[1] > 0.29  # nose (chin) down in the image
    roll = head_angles_to_camera_rotation(torch.tensor([0, 0, 0.3], dtype=D)) @ left_ear
    assert roll[0] > 0 and roll[1] < -0.29  # the viewer's-right ear goes up: counter-clockwise in the image


def test_viewed_head_angles():
    """On the optical axis the viewed pose is the head pose. A frontal head 30 degrees to the right of the axis is
    seen from its right side: turned to the image right (yaw +30). One 20 degrees above the axis is seen from below:
    like a head pitched up (nose up, pitch -20; pitch + is nose down)."""
    angles = torch.tensor([[0.1, -0.4, 0.2], [-0.3, 0.5, 0.0]], dtype=D)
    rotation = head_angles_to_camera_rotation(angles)
    on_axis = torch.tensor([[0.0, 0.0, 500.0], [0.0, 0.0, 80.0]], dtype=D)
    torch.testing.assert_close(viewed_head_angles(rotation, on_axis), angles)
    frontal = head_angles_to_camera_rotation(torch.zeros(3, dtype=D))
    right = torch.tensor([600 * math.tan(math.radians(30)), 0.0, 600.0], dtype=D)
    torch.testing.assert_close(torch.rad2deg(viewed_head_angles(frontal, right)), torch.tensor([0.0, 30.0, 0.0], dtype=D))
    above = torch.tensor([0.0, -600 * math.tan(math.radians(20)), 600.0], dtype=D)  # image y points down
    torch.testing.assert_close(torch.rad2deg(viewed_head_angles(frontal, above)), torch.tensor([-20.0, 0.0, 0.0], dtype=D))
    with pytest.raises(ValueError, match="translation"):
        viewed_head_angles(frontal, torch.zeros(2, dtype=D))


def test_euler_gimbal_lock_round_trips_the_matrix():
    for yaw in (H, -H):
        a = torch.tensor([0.4, yaw, -0.25], dtype=D)
        r = euler_to_matrix(a)
        back = matrix_to_euler(r)
        assert torch.isfinite(back).all()
        assert float(back[2]) == 0.0
        torch.testing.assert_close(back[1], torch.tensor(yaw, dtype=D))
        torch.testing.assert_close(euler_to_matrix(back), r, rtol=0, atol=1e-12)
        expected_pitch = 0.4 - (-0.25) if yaw > 0 else 0.4 + (-0.25)
        torch.testing.assert_close(back[0], torch.tensor(expected_pitch, dtype=D))


def test_axis_angle_known_answers():
    for axis in range(3):
        v = torch.zeros(3, dtype=D)
        v[axis] = H
        angles = torch.zeros(3, dtype=D)
        angles[axis] = H  # a single Euler angle is a rotation about that axis
        torch.testing.assert_close(axis_angle_to_matrix(v), euler_to_matrix(angles), rtol=0, atol=1e-15)
    torch.testing.assert_close(axis_angle_to_matrix(torch.zeros(3, dtype=D)), torch.eye(3, dtype=D))
    # pi about z: diag(-1, -1, 1)
    r = axis_angle_to_matrix(torch.tensor([0, 0, math.pi], dtype=D))
    torch.testing.assert_close(r, torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=D)), rtol=0, atol=1e-15)


def test_quaternion_known_answer_and_scipy():
    r = _random_rotations((20,), seed=3)
    q = matrix_to_quaternion(r)
    ref = ScipyRotation.from_matrix(r.numpy()).as_quat()  # (x, y, z, w)
    ref = np.concatenate([ref[:, 3:], ref[:, :3]], 1)
    ref *= np.sign(ref[:, :1])
    np.testing.assert_allclose(q.numpy(), ref, atol=1e-12)
    torch.testing.assert_close(quaternion_to_matrix(torch.tensor([2.0, 0, 0, 0], dtype=D)), torch.eye(3, dtype=D))


# ------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", BATCHES)
def test_round_trips_on_random_batches(shape):
    r = _random_rotations(shape, seed=len(shape) + sum(shape))
    assert r.shape == (*shape, 3, 3)
    # matrix -> axis-angle -> matrix
    aa = matrix_to_axis_angle(r)
    assert aa.shape == (*shape, 3)
    assert float(aa.norm(dim=-1).max()) <= math.pi + 1e-12
    torch.testing.assert_close(axis_angle_to_matrix(aa), r, rtol=0, atol=1e-12)
    # matrix -> 6D -> matrix
    d6 = matrix_to_rotation_6d(r)
    assert d6.shape == (*shape, 6)
    torch.testing.assert_close(rotation_6d_to_matrix(d6), r, rtol=0, atol=1e-12)
    # matrix -> Euler -> matrix and camera rotation -> head angles -> camera rotation
    torch.testing.assert_close(euler_to_matrix(matrix_to_euler(r)), r, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        head_angles_to_camera_rotation(camera_rotation_to_head_angles(r)), r, rtol=0, atol=1e-12
    )
    # quaternion
    torch.testing.assert_close(quaternion_to_matrix(matrix_to_quaternion(r)), r, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", BATCHES)
def test_euler_angles_round_trip_in_principal_range(shape):
    g = torch.Generator().manual_seed(5)
    a = (torch.rand(*shape, 3, generator=g, dtype=D) * 2 - 1) * torch.tensor([3.0, 1.5, 3.0], dtype=D)
    torch.testing.assert_close(matrix_to_euler(euler_to_matrix(a)), a, rtol=0, atol=1e-12)
    torch.testing.assert_close(camera_rotation_to_head_angles(head_angles_to_camera_rotation(a)), a, rtol=0, atol=1e-12)


def test_axis_angle_round_trip_in_range_and_random_6d():
    g = torch.Generator().manual_seed(7)
    v = torch.randn(50, 3, generator=g, dtype=D)
    v = v / v.norm(dim=-1, keepdim=True) * torch.rand(50, 1, generator=g, dtype=D) * 3.1
    torch.testing.assert_close(matrix_to_axis_angle(axis_angle_to_matrix(v)), v, rtol=0, atol=1e-12)
    # Any (non-degenerate) 6D vector gives a proper rotation.
    _assert_rotation(rotation_6d_to_matrix(torch.randn(50, 6, generator=g, dtype=D)))


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-8, 1e-5, 1e-3, 0.1])
def test_axis_angle_near_zero(angle):
    axis = torch.tensor([0.36, -0.48, 0.8], dtype=D)
    v = axis * angle
    r = axis_angle_to_matrix(v)
    ref = torch.from_numpy(ScipyRotation.from_rotvec(v.numpy()).as_matrix())
    torch.testing.assert_close(r, ref, rtol=0, atol=1e-15)
    torch.testing.assert_close(matrix_to_axis_angle(r), v, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("delta", [0.0, 1e-10, 1e-6, 1e-3])
def test_axis_angle_near_pi(delta):
    axis = torch.tensor([0.36, -0.48, 0.8], dtype=D)
    v = axis * (math.pi - delta)
    r = axis_angle_to_matrix(v)
    back = matrix_to_axis_angle(r)
    if delta == 0.0:  # v and -v are the same rotation at pi
        back = back * torch.sign((back * v).sum())
    torch.testing.assert_close(back, v, rtol=0, atol=1e-9)
    torch.testing.assert_close(axis_angle_to_matrix(back), r, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------- gradients


def test_gradcheck_rodrigues_including_zero():
    g = torch.Generator().manual_seed(9)
    v = torch.randn(4, 3, generator=g, dtype=D)
    v[1] *= 1e-4  # the series branch
    v[2] = 0.0  # exactly zero
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (v.requires_grad_(),))
    r = _random_rotations((3,), seed=4).requires_grad_()
    # matrix_to_axis_angle is differentiable along rotations; gradcheck perturbs off the manifold, which it
    # also handles (the quaternion formula is smooth there), away from the quaternion branch switches.
    assert torch.autograd.gradcheck(matrix_to_axis_angle, (r,))


def test_gradcheck_6d_and_euler():
    g = torch.Generator().manual_seed(10)
    d6 = torch.randn(3, 6, generator=g, dtype=D).requires_grad_()
    assert torch.autograd.gradcheck(rotation_6d_to_matrix, (d6,))
    a = (torch.rand(3, 3, generator=g, dtype=D) - 0.5).requires_grad_()
    assert torch.autograd.gradcheck(head_angles_to_camera_rotation, (a,))
    assert torch.autograd.gradcheck(lambda x: matrix_to_euler(euler_to_matrix(x)), (a,))


def test_gradient_at_exact_zero_is_finite_and_right():
    v = torch.zeros(3, dtype=D, requires_grad=True)
    r = axis_angle_to_matrix(v)
    (r[2, 1] - r[1, 2]).backward()  # d/dv of 2 sin(t) v_x / t at 0 = (2, 0, 0)
    torch.testing.assert_close(v.grad, torch.tensor([2.0, 0, 0], dtype=D))


# ------------------------------------------------------------------------------------- dtype, errors


def test_follows_dtype_and_does_not_modify_input():
    a = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float32)
    copy = a.clone()
    for fn in (euler_to_matrix, axis_angle_to_matrix, head_angles_to_camera_rotation):
        assert fn(a).dtype == torch.float32
    assert matrix_to_axis_angle(euler_to_matrix(a)).dtype == torch.float32
    assert torch.equal(a, copy)
    torch.testing.assert_close(
        matrix_to_axis_angle(axis_angle_to_matrix(a)), a, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    "fn, bad_shape",
    [
        (euler_to_matrix, (2, 4)),
        (axis_angle_to_matrix, (3, 2)),
        (quaternion_to_matrix, (3,)),
        (rotation_6d_to_matrix, (2, 5)),
        (matrix_to_euler, (3, 4)),
        (matrix_to_axis_angle, (2, 3)),
        (matrix_to_quaternion, (3,)),
        (matrix_to_rotation_6d, (2, 2, 3)),
        (camera_rotation_to_head_angles, (4, 4)),
        (head_angles_to_camera_rotation, (0,)),
    ],
)
def test_errors(fn, bad_shape):
    with pytest.raises(ValueError, match="expected shape"):
        fn(torch.zeros(bad_shape, dtype=D))
    good = {euler_to_matrix: 3, axis_angle_to_matrix: 3, quaternion_to_matrix: 4, rotation_6d_to_matrix: 6,
            head_angles_to_camera_rotation: 3}  # fmt: skip
    shape = (2, good[fn]) if fn in good else (2, 3, 3)
    with pytest.raises(TypeError, match="floating"):
        fn(torch.zeros(shape, dtype=torch.int64))
    with pytest.raises(TypeError, match="expected a tensor"):
        fn(np.zeros(shape))
    nan = torch.zeros(shape, dtype=D)
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fn(nan)
