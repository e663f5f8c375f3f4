"""Cameras: perspective (pinhole) and orthographic / weak-perspective, pose transforms, OpenGL conversion.

Conventions (``docs/conventions.md``): camera space is OpenCV-style (x right, y down, z forward, a point in
front of the camera has ``z > 0``), lengths in millimetres; pixels ``(u, v)`` with u right and v down and
**pixel centres at integer coordinates** (pixel ``(0, 0)`` covers ``[-0.5, 0.5] x [-0.5, 0.5]``, so an image
of width ``W`` spans ``u`` in ``[-0.5, W - 0.5]`` and its centre is ``u = (W - 1) / 2``). A pose maps model to
camera space: ``X_cam = R @ X_model + t``.

Cameras are frozen dataclasses of ``(B,)`` tensors (one camera per batch item; a camera of batch size 1 is
applied to every item of a larger batch) and plain ints for the image size. Everything is differentiable
with respect to the points and the camera parameters.

Points behind the camera: :meth:`PerspectiveCamera.project` divides by ``max(z, MIN_DEPTH)``, so it never
returns NaN or inf (points at or behind the camera land far away from the image, with finite gradients);
use :meth:`PerspectiveCamera.in_front` or the depth of :meth:`PerspectiveCamera.project_with_depth` to mask
them.

Example:
    >>> import torch, math
    >>> cam = PerspectiveCamera.from_fov(math.radians(60), width=640, height=480)
    >>> cam.project(torch.tensor([[[0.0, 0.0, 500.0]]]))     # on the optical axis: the image centre
    tensor([[[319.5000, 239.5000]]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from facerecon.core.check import check_finite, check_floating, check_positive, check_shape, describe
from facerecon.geometry.rotation import flip_yz

__all__ = [
    "MIN_DEPTH",
    "PerspectiveCamera",
    "OrthographicCamera",
    "WeakPerspectiveCamera",
    "transform",
    "invert_pose",
    "pose_matrix",
    "opencv_to_opengl_pose",
    "opengl_to_opencv_pose",
    "focal_px_from_35mm",
]

MIN_DEPTH = 1e-6
"""Smallest depth (mm) a perspective projection divides by; points with ``z <= MIN_DEPTH`` are behind."""

# Diagonal of a 36 x 24 mm frame: the reference of "35 mm equivalent" focal lengths (EXIF
# FocalLengthIn35mmFilm, CIPA DC-008), which compares fields of view along the image diagonal.
_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


def _check_points(points: torch.Tensor, name: str, last: int, sizes: dict[str, int]) -> None:
    check_shape(points, name, ("B", "N", last), sizes)
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"{name}: expected a torch tensor, got {describe(points)}")
    check_floating(points, name)
    check_finite(points, name)


def _check_param(value: torch.Tensor, name: str, ref: torch.Tensor | None, positive: bool) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (B,), got {describe(value)}")
    check_shape(value, name, (None,))
    if value.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one camera, got {describe(value)}")
    check_floating(value, name)
    check_finite(value, name)
    if positive and bool((value <= 0).any()):
        raise ValueError(f"{name}: expected positive values, got a minimum of {float(value.min()):g}")
    if ref is not None:
        if value.shape != ref.shape:
            raise ValueError(f"{name}: expected shape {tuple(ref.shape)} like the other parameters, got {describe(value)}")
        if value.dtype != ref.dtype or value.device != ref.device:
            raise TypeError(
                f"{name}: expected dtype {ref.dtype} on {ref.device} like the other parameters, "
                f"got {describe(value)} on {value.device}"
            )


def _check_size(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a positive int, got {describe(value)}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value}")


def _check_like(cam_param: torch.Tensor, name: str, value: torch.Tensor) -> None:
    if value.dtype != cam_param.dtype:
        raise TypeError(f"{name}: expected dtype {cam_param.dtype} (the camera's), got {describe(value)}")
    if value.device != cam_param.device:
        raise ValueError(f"{name}: expected device {cam_param.device} (the camera's), got {value.device}")


def _batch(cam_batch: int, sizes: dict[str, int], name: str) -> None:
    if cam_batch not in (1, sizes["B"]):
        raise ValueError(f"{name}: expected batch size {cam_batch} (the camera's) or a camera of batch 1, got {sizes['B']}")


class _CameraBase:
    """Shared ``.to()`` and batch helpers of the camera dataclasses (all tensor fields are ``(B,)``)."""

    def _tensor_fields(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}  # type: ignore[arg-type]

    def _replace(self, **changes):
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        values.update(changes)
        return type(self)(**values)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """A copy with every tensor moved to ``device`` and/or cast to ``dtype``."""
        return self._replace(**{k: v.to(device=device, dtype=dtype) for k, v in self._tensor_fields().items()})

    def expand(self, batch_size: int):
        """A copy with the parameters of a batch-1 camera repeated ``batch_size`` times."""
        _check_size(batch_size, "batch_size")
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"batch_size: a camera of batch {self.batch_size} cannot be expanded to {batch_size}")
        return self._replace(**{k: v.expand(batch_size) for k, v in self._tensor_fields().items()})

    @property
    def batch_size(self) -> int:
        return next(iter(self._tensor_fields().values())).shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self._tensor_fields().values())).dtype

    @property
    def device(self) -> torch.device:
        return next(iter(self._tensor_fields().values())).device


@dataclass(frozen=True)
class PerspectiveCamera(_CameraBase):
    """A pinhole camera: ``u = fx * X / Z + cx``, ``v = fy * Y / Z + cy`` (pixel centres at integers).

    Attributes:
        fx: ``(B,)`` focal length along u, pixels (> 0).
        fy: ``(B,)`` focal length along v, pixels (> 0).
        cx: ``(B,)`` principal point u, pixels (``(width - 1) / 2`` for a centred one).
        cy: ``(B,)`` principal point v, pixels.
        width: image width, pixels.
        height: image height, pixels.

    Raises:
        TypeError / ValueError: parameters of other shapes, dtypes or devices, non-finite values, a focal
        length that is not positive, a non-positive image size.
    """

    fx: torch.Tensor
    fy: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        _check_param(self.fx, "fx", None, positive=True)
        _check_param(self.fy, "fy", self.fx, positive=True)
        _check_param(self.cx, "cx", self.fx, positive=False)
        _check_param(self.cy, "cy", self.fx, positive=False)
        _check_size(self.width, "width")
        _check_size(self.height, "height")

    # ------------------------------------------------------------------------------------ factories

    @classmethod
    def from_fov(
        cls,
        fov: float,
        width: int,
        height: int,
        batch_size: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> PerspectiveCamera:
        """A centred camera with square pixels whose horizontal field of view is ``fov``.

        ``fx = fy = width / (2 tan(fov / 2))`` (the image spans ``width`` pixels edge to edge) and the
        principal point is the image centre ``((width - 1) / 2, (height - 1) / 2)``.

        Args:
            fov: horizontal field of view in radians, in ``(0, pi)``.
            width: image width, pixels.
            height: image height, pixels.
            batch_size: number of (identical) cameras.
            device: device of the parameters (default CPU).
            dtype: dtype of the parameters (default float32).
        """
        check_positive(fov, "fov")
        if fov >= math.pi:
            raise ValueError(f"fov: expected a field of view below pi radians, got {fov!r}")
        _check_size(width, "width")
        _check_size(height, "height")
        focal = width / (2.0 * math.tan(fov / 2.0))
        return cls.from_focal(focal, width, height, batch_size, device=device, dtype=dtype)

    @classmethod
    def from_focal(
        cls,
        focal: float,
        width: int,
        height: int,
        batch_size: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> PerspectiveCamera:
        """A centred camera with square pixels and focal length ``focal`` pixels (see :func:`focal_px_from_35mm`)."""
        check_positive(focal, "focal")
        _check_size(width, "width")
        _check_size(height, "height")
        _check_size(batch_size, "batch_size")
        dtype = dtype or torch.float32

        def full(value: float) -> torch.Tensor:
            return torch.full((batch_size,), float(value), device=device, dtype=dtype)

        return cls(full(focal), full(focal), full((width - 1) / 2), full((height - 1) / 2), width, height)

    @classmethod
    def from_intrinsics(cls, matrix: torch.Tensor, width: int, height: int) -> PerspectiveCamera:
        """A camera from ``(B, 3, 3)`` intrinsic matrices ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (skew ignored)."""
        check_shape(matrix, "matrix", (None, 3, 3))
        check_floating(matrix, "matrix")
        return cls(matrix[:, 0, 0], matrix[:, 1, 1], matrix[:, 0, 2], matrix[:, 1, 2], width, height)

    @classmethod
    def from_opengl_projection(cls, projection: torch.Tensor, width: int, height: int) -> PerspectiveCamera:
        """The inverse of :meth:`opengl_projection` (near and far are dropped).

        Args:
            projection: ``(B, 4, 4)`` OpenGL projection matrices as made by :meth:`opengl_projection`.
            width: image width, pixels.
            height: image height, pixels.
        """
        check_shape(projection, "projection", (None, 4, 4))
        check_floating(projection, "projection")
        check_finite(projection, "projection")
        _check_size(width, "width")
        _check_size(height, "height")
        p = projection
        fx = p[:, 0, 0] * width / 2
        fy = p[:, 1, 1] * height / 2
        cx = (1 - p[:, 0, 2]) * width / 2 - 0.5
        cy = (p[:, 1, 2] + 1) * height / 2 - 0.5
        return cls(fx, fy, cx, cy, width, height)

    @classmethod
    def square(cls, focal: float, principal_point: tuple[float, float], width: int, height: int,
               dtype: torch.dtype = torch.float64) -> PerspectiveCamera:  # fmt: skip
        """One camera with square pixels from plain numbers (float64 by default, so that :meth:`pinhole` gives them
        back exactly)."""
        check_positive(focal, "focal")
        cx, cy = map(float, principal_point)
        return cls(*(torch.tensor([float(v)], dtype=dtype) for v in (focal, focal, cx, cy)), width, height)

    def scaled(self, scale: float, width: int, height: int) -> PerspectiveCamera:
        """The same camera for the image resized by ``scale`` on both axes to ``width x height`` (square pixels stay
        square, unlike :meth:`resized` with rounded sizes): ``f' = f * scale``, ``c' + 0.5 = (c + 0.5) * scale``."""
        check_positive(scale, "scale")
        return PerspectiveCamera(self.fx * scale, self.fy * scale, (self.cx + 0.5) * scale - 0.5,
                                 (self.cy + 0.5) * scale - 0.5, width, height)  # fmt: skip

    def pinhole(self) -> tuple[float, float, float]:
        """``(focal, cx, cy)`` in pixels, as Python floats, of a one-camera batch with square pixels: what the NumPy
        stages (the landmark fit) and the photometric fit's set-up read.

        Raises:
            ValueError: a batch of several cameras, or ``fx != fy``.
        """
        if self.batch_size != 1:
            raise ValueError(f"camera: expected one camera, got a batch of {self.batch_size}")
        focal, fy = float(self.fx[0]), float(self.fy[0])
        if focal != fy:
            raise ValueError(f"camera: expected square pixels (fx == fy), got fx={focal:g}, fy={fy:g}")
        return focal, float(self.cx[0]), float(self.cy[0])

    # ------------------------------------------------------------------------------------ properties

    @property
    def intrinsics(self) -> torch.Tensor:
        """``(B, 3, 3)`` matrices ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
        z, o = torch.zeros_like(self.fx), torch.ones_like(self.fx)
        return torch.stack([self.fx, z, self.cx, z, self.fy, self.cy, z, z, o], -1).reshape(-1, 3, 3)

    def resized(self, width: int, height: int) -> PerspectiveCamera:
        """The same camera for the image resized to ``width x height`` (same field of view).

        Pixel edges scale, so ``u' + 0.5 = (u + 0.5) * width / self.width``.
        """
        _check_size(width, "width")
        _check_size(height, "height")
        sx, sy = width / self.width, height / self.height
        return PerspectiveCamera(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, width, height
        )

    # ------------------------------------------------------------------------------------ projection

    def in_front(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` bool: which camera-space points have ``z > MIN_DEPTH``."""
        sizes: dict[str, int] = {}
        _check_points(points, "points", 3, sizes)
        return points[..., 2] > MIN_DEPTH

    def project_with_depth(self, points: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates and depth ``(u, v, z)`` of camera-space points.

        Args:
            points: ``(B, N, 3)`` camera-space points, mm.

        Returns:
            ``(B, N, 3)``: ``u, v`` in pixels and the unmodified depth ``z`` in mm. For ``z <= MIN_DEPTH`` the
            pixel coordinates are computed with ``z = MIN_DEPTH`` (finite, far outside the image); mask those
            points with ``z > MIN_DEPTH`` (:meth:`in_front`).

        Raises:
            TypeError: non-floating points or a dtype other than the camera's.
            ValueError: wrong shape or batch size, another device, NaN/inf.
        """
        sizes: dict[str, int] = {}
        _check_points(points, "points", 3, sizes)
        _batch(self.batch_size, sizes, "points")
        _check_like(self.fx, "points", points)
        x, y, z = points.unbind(-1)
        z_safe = torch.where(z > MIN_DEPTH, z, torch.full_like(z, MIN_DEPTH))
        u = self.fx[:, None] * x / z_safe + self.cx[:, None]
        v = self.fy[:, None] * y / z_safe + self.cy[:, None]
        return torch.stack([u, v, z], -1)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates ``(B, N, 2)`` of camera-space points ``(B, N, 3)``; see :meth:`project_with_depth`.

        Example:
            >>> cam = PerspectiveCamera.from_focal(100.0, 11, 11)
            >>> cam.project(torch.tensor([[[10.0, -20.0, 100.0]]]))
            tensor([[[ 15., -15.]]])
        """
        return self.project_with_depth(points)[..., :2]

    def backproject(self, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Camera-space points at pixels ``uv`` with depth ``z`` (the inverse of :meth:`project_with_depth`).

        Args:
            uv: ``(B, N, 2)`` pixel coordinates.
            depth: ``(B, N)`` depth ``z`` along the optical axis (not along the ray), mm.

        Returns:
            ``(B, N, 3)`` points ``((u - cx) z / fx, (v - cy) z / fy, z)``.
        """
        sizes: dict[str, int] = {}
        _check_points(uv, "uv", 2, sizes)
        check_shape(depth, "depth", ("B", "N"), sizes)
        check_floating(depth, "depth")
        check_finite(depth, "depth")
        _batch(self.batch_size, sizes, "uv")
        _check_like(self.fx, "uv", uv)
        _check_like(self.fx, "depth", depth)
        x = (uv[..., 0] - self.cx[:, None]) / self.fx[:, None] * depth
        y = (uv[..., 1] - self.cy[:, None]) / self.fy[:, None] * depth
        return torch.stack([x, y, depth], -1)

    def rays(self, uv: torch.Tensor) -> torch.Tensor:
        """Unit directions ``(B, N, 3)`` in camera space of the rays through pixels ``uv`` ``(B, N, 2)``."""
        _check_points(uv, "uv", 2, {})
        d = self.backproject(uv, torch.ones_like(uv[..., 0]))
        return d / d.norm(dim=-1, keepdim=True)

    # ------------------------------------------------------------------------------------ OpenGL

    def opengl_projection(self, near: float, far: float) -> torch.Tensor:
        """``(B, 4, 4)`` OpenGL projection matrices equivalent to this camera, for viewers and export.

        They map OpenGL eye coordinates (x right, y up, camera looking along -z; see
        :func:`opencv_to_opengl_pose`) to clip space so that NDC ``x = -1`` / ``+1`` are the left edge of pixel
        column 0 (``u = -0.5``) and the right edge of the last column (``u = width - 0.5``), NDC ``y = +1`` is
        the top edge of row 0, and NDC ``z = -1`` / ``+1`` are depths ``near`` / ``far``.

        Args:
            near: distance of the near plane, mm (> 0).
            far: distance of the far plane, mm (> near).
        """
        check_positive(near, "near")
        check_positive(far, "far")
        if far <= near:
            raise ValueError(f"far: expected a value above near={near!r}, got {far!r}")
        w, h = self.width, self.height
        z = torch.zeros_like(self.fx)
        row0 = [2 * self.fx / w, z, 1 - 2 * (self.cx + 0.5) / w, z]
        row1 = [z, 2 * self.fy / h, 2 * (self.cy + 0.5) / h - 1, z]
        row2 = [z, z, torch.full_like(z, -(far + near) / (far - near)), torch.full_like(z, -2 * far * near / (far - near))]
        row3 = [z, z, torch.full_like(z, -1.0), z]
        return torch.stack(row0 + row1 + row2 + row3, -1).reshape(-1, 4, 4)


@dataclass(frozen=True)
class OrthographicCamera(_CameraBase):
    """A scaled orthographic (weak-perspective) camera: ``u = scale * X + tx``, ``v = scale * Y + ty``.

    Camera space as for the perspective camera (x right, y down, z forward), so a model posed with
    ``X_cam = R @ X + t`` projects the same way; depth is ignored except that it is passed through.

    Attributes:
        scale: ``(B,)`` pixels per millimetre (> 0).
        tx: ``(B,)`` u of the camera-space origin, pixels.
        ty: ``(B,)`` v of the camera-space origin, pixels.
        width: image width, pixels.
        height: image height, pixels.
    """

    scale: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        _check_param(self.scale, "scale", None, positive=True)
        _check_param(self.tx, "tx", self.scale, positive=False)
        _check_param(self.ty, "ty", self.scale, positive=False)
        _check_size(self.width, "width")
        _check_size(self.height, "height")

    def project_with_depth(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` pixel coordinates and depth ``(u, v, z)`` of camera-space points ``(B, N, 3)``."""
        sizes: dict[str, int] = {}
        _check_points(points, "points", 3, sizes)
        _batch(self.batch_size, sizes, "points")
        _check_like(self.scale, "points", points)
        s = self.scale[:, None]
        u = s * points[..., 0] + self.tx[:, None]
        v = s * points[..., 1] + self.ty[:, None]
        return torch.stack([u, v, points[..., 2]], -1)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, N, 2)`` pixel coordinates of camera-space points ``(B, N, 3)``."""
        return self.project_with_depth(points)[..., :2]

    def backproject(self, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` camera-space points at pixels ``uv`` ``(B, N, 2)`` with depth ``depth`` ``(B, N)``."""
        sizes: dict[str, int] = {}
        _check_points(uv, "uv", 2, sizes)
        check_shape(depth, "depth", ("B", "N"), sizes)
        check_floating(depth, "depth")
        check_finite(depth, "depth")
        _batch(self.batch_size, sizes, "uv")
        _check_like(self.scale, "uv", uv)
        _check_like(self.scale, "depth", depth)
        x = (uv[..., 0] - self.tx[:, None]) / self.scale[:, None]
        y = (uv[..., 1] - self.ty[:, None]) / self.scale[:, None]
        return torch.stack([x, y, depth], -1)

    def rays(self, uv: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)`` ray directions: all ``(0, 0, 1)`` for an orthographic camera."""
        sizes: dict[str, int] = {}
        _check_points(uv, "uv", 2, sizes)
        out = torch.zeros(*uv.shape[:-1], 3, dtype=uv.dtype, device=uv.device)
        out[..., 2] = 1
        return out


WeakPerspectiveCamera = OrthographicCamera
"""Alias: a weak-perspective camera is a scaled orthographic one."""


# ---------------------------------------------------------------------------------------- poses


def _check_pose(rotation: torch.Tensor, translation: torch.Tensor, sizes: dict[str, int]) -> None:
    check_shape(rotation, "rotation", ("B", 3, 3), sizes)
    check_shape(translation, "translation", ("B", 3), sizes)
    for name, value in (("rotation", rotation), ("translation", translation)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: expected a torch tensor, got {describe(value)}")
        check_floating(value, name)
        check_finite(value, name)
    if translation.dtype != rotation.dtype:
        raise TypeError(f"translation: expected dtype {rotation.dtype} (the rotation's), got {describe(translation)}")


def transform(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Apply poses: ``X_cam = R @ X + t``.

    Args:
        points: ``(B, N, 3)`` model-space points, mm.
        rotation: ``(B, 3, 3)`` rotations ``R``.
        translation: ``(B, 3)`` translations ``t``, mm.

    Returns:
        ``(B, N, 3)`` camera-space points.
    """
    sizes: dict[str, int] = {}
    _check_points(points, "points", 3, sizes)
    _check_pose(rotation, translation, sizes)
    if points.dtype != rotation.dtype:
        raise TypeError(f"rotation: expected dtype {points.dtype} (the points'), got {describe(rotation)}")
    return points @ rotation.transpose(-1, -2) + translation[:, None, :]


def invert_pose(rotation: torch.Tensor, translation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse pose ``(R^T, -R^T t)`` of ``X' = R X + t``; ``(B, 3, 3)``, ``(B, 3)``."""
    sizes: dict[str, int] = {}
    _check_pose(rotation, translation, sizes)
    rt = rotation.transpose(-1, -2)
    return rt, -(rt @ translation[..., None])[..., 0]


def pose_matrix(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """``(B, 4, 4)`` homogeneous matrices ``[[R, t], [0, 0, 0, 1]]`` of poses ``(B, 3, 3)``, ``(B, 3)``."""
    sizes: dict[str, int] = {}
    _check_pose(rotation, translation, sizes)
    top = torch.cat([rotation, translation[..., None]], -1)
    bottom = torch.zeros(sizes["B"], 1, 4, dtype=rotation.dtype, device=rotation.device)
    bottom[..., 3] = 1
    return torch.cat([top, bottom], -2)


def opencv_to_opengl_pose(rotation: torch.Tensor, translation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A model-to-camera pose in OpenCV camera axes to the same pose in OpenGL eye axes.

    OpenGL eye space has x right, y up and the camera looking along -z, i.e. ``X_gl = FLIP_YZ @ X_cv``, so
    the OpenGL view transform is ``(FLIP_YZ @ R, FLIP_YZ @ t)``. Use :func:`pose_matrix` for the 4 x 4 view
    matrix and :meth:`PerspectiveCamera.opengl_projection` for the projection.

    Args:
        rotation: ``(B, 3, 3)`` OpenCV rotation ``R``.
        translation: ``(B, 3)`` OpenCV translation ``t``, mm.

    Returns:
        ``(rotation, translation)`` of the OpenGL pose, shapes as the inputs.
    """
    sizes: dict[str, int] = {}
    _check_pose(rotation, translation, sizes)
    f = flip_yz(rotation)
    return f @ rotation, translation @ f


def opengl_to_opencv_pose(rotation: torch.Tensor, translation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`opencv_to_opengl_pose` (the same flip: ``FLIP_YZ`` is its own inverse)."""
    return opencv_to_opengl_pose(rotation, translation)


def focal_px_from_35mm(f35: float, width: int, height: int) -> float:
    """Focal length in pixels from a 35 mm-equivalent focal length (EXIF ``FocalLengthIn35mmFilm``).

    The 35 mm equivalent matches the field of view along the diagonal of a 36 x 24 mm frame, so
    ``f_px = f35 * hypot(width, height) / hypot(36, 24)``; for a 3:2 image this equals ``f35 * long_side / 36``.

    Args:
        f35: 35 mm-equivalent focal length, mm (> 0).
        width: image width, pixels.
        height: image height, pixels.

    Returns:
        The focal length in pixels for :meth:`PerspectiveCamera.from_focal`.

    Example:
        >>> round(focal_px_from_35mm(36.0, 3000, 2000), 6)
        3000.0
    """
    check_positive(f35, "f35")
    _check_size(width, "width")
    _check_size(height, "height")
    return f35 * math.hypot(width, height) / _FULL_FRAME_DIAGONAL_MM
