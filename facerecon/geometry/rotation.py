"""Rotations: head Euler angles, axis-angle (Rodrigues), unit quaternions and the 6D representation.

Every function is batched over any leading shape (``(..., 3)`` vectors, ``(..., 3, 3)`` matrices),
differentiable, and takes device and dtype from its input. Angles are in radians.

Head angles (``docs/conventions.md``):

* ``angles = (pitch, yaw, roll)`` and the head rotation in model space (y up, z out of the face) is
  ``R_head = Rz(roll) @ Ry(yaw) @ Rx(pitch)``: pitch about the model x axis first, then yaw about y, then
  roll about z.
* The camera rotation of a head with those angles is ``R = FLIP_YZ @ R_head`` with
  ``FLIP_YZ = diag(1, -1, -1)``: the model's y up becomes the camera's y down and the model's z (out of the
  face) becomes the camera's -z (towards the camera), so angles (0, 0, 0) are a frontal face looking into an
  OpenCV camera.
* Signs, as a viewer of the image sees them: positive **yaw** turns the nose to the viewer's right (the
  subject's left); positive **pitch** tilts the chin down (the nose moves down in the image); positive
  **roll** turns the face counter-clockwise in the image (the subject's left ear, on the viewer's right, moves
  up: the head tilts towards the subject's right shoulder).

Other representations:

* Axis-angle ``(..., 3)``: the unit axis times the angle in [0, pi] (Rodrigues' formula; series expansions
  keep values and gradients finite at and near 0, and the matrix-to-axis-angle path goes through a
  quaternion so it stays accurate near pi).
* Quaternions ``(..., 4)`` in ``(w, x, y, z)`` order (note: glTF stores ``(x, y, z, w)``), unit norm,
  ``w >= 0`` on output.
* 6D (Zhou et al., "On the Continuity of Rotation Representations in Neural Networks", CVPR 2019): the first
  two **columns** of the matrix, concatenated ``(r00, r10, r20, r01, r11, r21)``; back to a matrix by
  Gram-Schmidt, as in the paper.

Example:
    >>> import torch
    >>> R = head_angles_to_camera_rotation(torch.zeros(3))
    >>> R @ torch.tensor([0.0, 0.0, 1.0])                  # the face's +z points at the camera (-z)
    tensor([ 0.,  0., -1.])
"""

from __future__ import annotations

import torch

from facerecon.core.check import check_finite, check_floating, describe

__all__ = [
    "FLIP_YZ",
    "flip_yz",
    "euler_to_matrix",
    "matrix_to_euler",
    "head_angles_to_camera_rotation",
    "camera_rotation_to_head_angles",
    "viewed_head_angles",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
]

FLIP_YZ: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))
"""``diag(1, -1, -1)``: model space (y up, z out of the face) to OpenCV camera axes, and OpenCV <-> OpenGL."""

# Below this squared angle, Rodrigues' coefficients use their Taylor series (error < 1e-16 relative).
_SMALL_ANGLE_SQ = 1e-6
# cos(yaw) below this is treated as gimbal lock in matrix_to_euler.
_GIMBAL_EPS = 1e-7


def _check_vectors(value: torch.Tensor, name: str, size: int) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (..., {size}), got {describe(value)}")
    if value.dim() < 1 or value.shape[-1] != size:
        raise ValueError(f"{name}: expected shape (..., {size}), got {describe(value)}")
    check_floating(value, name)
    check_finite(value, name)


def _check_matrices(value: torch.Tensor, name: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (..., 3, 3), got {describe(value)}")
    if value.dim() < 2 or value.shape[-2:] != (3, 3):
        raise ValueError(f"{name}: expected shape (..., 3, 3), got {describe(value)}")
    check_floating(value, name)
    check_finite(value, name)


def flip_yz(like: torch.Tensor) -> torch.Tensor:
    """``FLIP_YZ`` as a ``(3, 3)`` tensor with the dtype and device of ``like``."""
    return torch.tensor(FLIP_YZ, dtype=like.dtype, device=like.device)


def _rx(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def _ry(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def _rz(a: torch.Tensor) -> torch.Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Head rotation in model space from ``(pitch, yaw, roll)``: ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``.

    Args:
        angles: ``(..., 3)`` radians, ordered (pitch, yaw, roll).

    Returns:
        ``(..., 3, 3)`` rotation matrices.

    Raises:
        TypeError: ``angles`` is not a floating tensor.
        ValueError: the last dimension is not 3, or NaN/inf.
    """
    _check_vectors(angles, "angles", 3)
    pitch, yaw, roll = angles.unbind(-1)
    return _rz(roll) @ _ry(yaw) @ _rx(pitch)


def matrix_to_euler(matrix: torch.Tensor) -> torch.Tensor:
    """``(pitch, yaw, roll)`` of a head rotation, the inverse of :func:`euler_to_matrix`.

    Yaw is returned in ``[-pi/2, pi/2]``, pitch and roll in ``(-pi, pi]``. At gimbal lock (``|yaw| = pi/2``)
    only ``pitch - roll`` (yaw > 0) or ``pitch + roll`` (yaw < 0) is defined; roll is then set to 0 and pitch
    carries the whole rotation about the face's axis, so ``euler_to_matrix`` of the result is still ``matrix``.

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 3)`` angles in radians.
    """
    _check_matrices(matrix, "matrix")
    r00, r10, r20 = matrix[..., 0, 0], matrix[..., 1, 0], matrix[..., 2, 0]
    r21, r22 = matrix[..., 2, 1], matrix[..., 2, 2]
    r11, r12 = matrix[..., 1, 1], matrix[..., 1, 2]
    cos_yaw = torch.sqrt(r00 * r00 + r10 * r10)
    yaw = torch.atan2(-r20, cos_yaw)
    gimbal = cos_yaw < _GIMBAL_EPS
    pitch = torch.where(gimbal, torch.atan2(-r12, r11), torch.atan2(r21, r22))
    roll = torch.where(gimbal, torch.zeros_like(r00), torch.atan2(r10, r00))
    return torch.stack([pitch, yaw, roll], -1)


def head_angles_to_camera_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Camera rotation ``R = FLIP_YZ @ Rz(roll) @ Ry(yaw) @ Rx(pitch)`` of a head with these angles.

    Args:
        angles: ``(..., 3)`` head (pitch, yaw, roll) in radians; zeros are a frontal face.

    Returns:
        ``(..., 3, 3)`` rotation mapping model space to OpenCV camera space (``X_cam = R @ X + t``).

    Example:
        >>> import math
        >>> R = head_angles_to_camera_rotation(torch.tensor([0.0, math.pi / 2, 0.0]))
        >>> (R @ torch.tensor([0.0, 0.0, 1.0])).round()      # yaw 90 deg: the nose points to image right
        tensor([1., 0., 0.])
    """
    head = euler_to_matrix(angles)
    return flip_yz(head) @ head


def camera_rotation_to_head_angles(matrix: torch.Tensor) -> torch.Tensor:
    """Head ``(pitch, yaw, roll)`` of a camera rotation, the inverse of :func:`head_angles_to_camera_rotation`.

    Args:
        matrix: ``(..., 3, 3)`` model-to-camera rotations.

    Returns:
        ``(..., 3)`` radians (ranges and gimbal lock as in :func:`matrix_to_euler`).
    """
    _check_matrices(matrix, "matrix")
    return matrix_to_euler(flip_yz(matrix) @ matrix)


def viewed_head_angles(matrix: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Head ``(pitch, yaw, roll)`` relative to the line of sight from the camera to the head's origin.

    A head off the image centre is seen from the side: for a pinhole camera its picture is that of a head turned
    by the angle between the optical axis and the line of sight (up to an in-image warp), so a detector sees this
    pose rather than :func:`camera_rotation_to_head_angles`. The two agree for a head on the optical axis.

    Args:
        matrix: ``(..., 3, 3)`` model-to-camera rotations.
        translation: ``(..., 3)`` the head origin in camera space (``X_cam = R @ X + t``), in front of the camera.

    Returns:
        ``(..., 3)`` radians.
    """
    _check_matrices(matrix, "matrix")
    _check_vectors(translation, "translation", 3)
    return camera_rotation_to_head_angles(line_of_sight_rotation(translation).transpose(-1, -2) @ matrix)


def line_of_sight_rotation(points: torch.Tensor) -> torch.Tensor:
    """The rotation taking the optical axis ``(0, 0, 1)`` onto the line of sight to each point, about the axis
    perpendicular to both (no twist about the line of sight).

    A camera turned by it looks straight at the point; ``R_seen = turn.T @ R`` is the rotation of a head at that
    point as it appears in its own picture (see :func:`viewed_head_angles`).

    Args:
        points: ``(..., 3)`` camera-space points in front of the camera (``z > 0``), any unit.

    Returns:
        ``(..., 3, 3)``.
    """
    _check_vectors(points, "points", 3)
    sight = torch.nn.functional.normalize(points, dim=-1)
    axis = torch.linalg.cross(torch.zeros_like(sight).index_fill(-1, torch.tensor(2, device=sight.device), 1.0), sight)
    # Axis z x s, angle asin |z x s| (< 90 degrees for a point in front of the camera).
    return axis_angle_to_matrix(torch.nn.functional.normalize(axis, dim=-1, eps=1e-12) * torch.asin(axis.norm(dim=-1).clamp(max=1.0))[..., None])


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula ``R = I + sin(t)/t K + (1 - cos t)/t^2 K^2`` with ``K = [v]_x``, ``t = |v|``.

    Near ``t = 0`` the coefficients use their Taylor series, so values and gradients are finite at exactly 0.

    Args:
        axis_angle: ``(..., 3)`` rotation vectors (unit axis times angle in radians).

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    _check_vectors(axis_angle, "axis_angle", 3)
    t2 = (axis_angle * axis_angle).sum(-1)
    small = t2 < _SMALL_ANGLE_SQ
    t2_safe = torch.where(small, torch.ones_like(t2), t2)
    t = torch.sqrt(t2_safe)
    a = torch.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, (1.0 - torch.cos(t)) / t2_safe)
    k = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of quaternions ``(w, x, y, z)`` (normalised here; ``q`` and ``-q`` agree).

    Args:
        quaternion: ``(..., 4)`` non-zero quaternions.

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    _check_vectors(quaternion, "quaternion", 4)
    q = quaternion / quaternion.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(quaternion.dtype).tiny)
    w, x, y, z = q.unbind(-1)
    m = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(m, -1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(w, x, y, z)`` with ``w >= 0`` of rotation matrices.

    Uses the numerically best of the four classic formulas per matrix (the one dividing by the largest of
    ``4 w^2, 4 x^2, 4 y^2, 4 z^2``), so it is accurate for every angle including pi.

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 4)`` unit quaternions.
    """
    _check_matrices(matrix, "matrix")
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z (from the trace and the diagonal).
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    # Candidate k: divide the symmetric/antisymmetric sums by 4 q_k, with 4 q_k^2 = four_sq[k].
    candidates = torch.stack(
        [
            torch.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]], -1),
        ],
        -2,
    )  # (..., 4 candidates, 4 components), each candidate = 4 q_k * q
    best = four_sq.argmax(-1)
    chosen = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = chosen / chosen.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(matrix.dtype).tiny)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (unit axis times angle in [0, pi]) of rotation matrices, the inverse of Rodrigues.

    Goes through :func:`matrix_to_quaternion`; the angle is ``2 atan2(|v|, w)`` and the axis ``v / |v|``, with a
    series for ``|v| -> 0``, so it is accurate and differentiable near 0 and accurate near pi (at exactly pi,
    ``v`` and ``-v`` are the same rotation; either may come back).

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 3)`` rotation vectors in radians.
    """
    q = matrix_to_quaternion(matrix)
    w, v = q[..., 0], q[..., 1:]
    s2 = (v * v).sum(-1)
    small = s2 < _SMALL_ANGLE_SQ
    s = torch.sqrt(torch.where(small, torch.ones_like(s2), s2))
    # angle / |v| = 2 atan2(s, w) / s; for s -> 0 (then w -> 1): 2/w (1 - s^2 / (3 w^2)).
    w_safe = torch.where(small, w, torch.ones_like(w))
    factor = torch.where(small, 2.0 / w_safe * (1.0 - s2 / (3.0 * w_safe * w_safe)), 2.0 * torch.atan2(s, w) / s)
    return v * factor[..., None]


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from the 6D representation by Gram-Schmidt (Zhou et al. 2019, eq. in section 4.2).

    ``b1 = a1 / |a1|``, ``b2 = normalise(a2 - (b1 . a2) b1)``, ``b3 = b1 x b2``; the columns of ``R`` are
    ``b1, b2, b3``. Any ``a1`` and ``a2`` that are not parallel give a rotation; near-parallel inputs give
    large gradients (the representation is continuous but not defined there).

    Args:
        d6: ``(..., 6)``: ``a1`` (the first column) then ``a2`` (the second).

    Returns:
        ``(..., 3, 3)`` rotation matrices.
    """
    _check_vectors(d6, "d6", 6)
    eps = torch.finfo(d6.dtype).eps
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    u2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = u2 / u2.norm(dim=-1, keepdim=True).clamp_min(eps)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """The 6D representation of rotation matrices: their first two columns, ``(..., 6)``."""
    _check_matrices(matrix, "matrix")
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)
