"""A face performance over time, as the exporters write it: per-frame expression weights and head transform.

:class:`FaceAnimation` is what :func:`facerecon.io.gltf.write_glb` turns into a glTF animation (and what
:func:`facerecon.io.gltf.read_glb_animation` gives back). It holds NumPy arrays only (no torch), already in the
export's frame: glTF's axes, y up, the viewer (the video's camera) at the origin looking along -z, lengths in
millimetres (the writer scales them to the file's units like the vertices).

A head pose of the library (``X_cam = R @ X_model + t``, OpenCV camera: y down, z forward) becomes the head node's
transform with ``R_gltf = FLIP_YZ @ R`` and ``t_gltf = FLIP_YZ @ t``, ``FLIP_YZ = diag(1, -1, -1)`` (model space and
glTF share their axes, so only the camera's side flips).

Example:
    >>> import numpy as np
    >>> anim = FaceAnimation(times_s=np.arange(3) / 25.0, morph_weights=np.zeros((3, 53)),
    ...                      rotations=np.tile(np.diag([1.0, 1.0, 1.0]), (3, 1, 1)),
    ...                      translations=np.tile([0.0, 0.0, -600.0], (3, 1)))
    >>> anim.frames, anim.morph_count
    (3, 53)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facerecon.core.check import check_finite, check_floating, check_shape, describe

__all__ = ["FaceAnimation"]

#: How far ``R.T @ R`` may be from the identity (max abs entry) for ``R`` to count as a rotation (float32 safe).
ROTATION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class FaceAnimation:
    """Key frames of a face: expression weights and the head node's rigid transform, in glTF's frame.

    Attributes:
        times_s: ``(T,)`` float key times in seconds, strictly increasing, the first >= 0 (T >= 1).
        morph_weights: ``(T, K)`` float weights of the mesh's K morph targets per frame (K must equal the mesh's
            morph target count; checked by the writer). K may be 0 for a mesh without morph targets.
        rotations: ``(T, 3, 3)`` float proper rotation matrices (orthonormal, det +1): the head node's rotation,
            model axes to glTF world axes (y up, camera at the origin looking along -z).
        translations: ``(T, 3)`` float head node translations in millimetres, glTF world axes.
        name: the animation's name in the file.
        camera_yfov_rad: vertical field of view of the video's camera in radians, in (0, pi); when given, the
            writer adds a perspective camera node at the origin looking along -z, so that looking through it
            reproduces the video's view (a centred principal point assumed).
        camera_aspect: the camera's width / height (> 0); needs ``camera_yfov_rad``.

    Raises:
        TypeError: non-arrays, non-floating arrays, a non-string name, non-numbers for the camera.
        ValueError: wrong or disagreeing shapes, no frames, NaN/infinite values, times negative or not strictly
            increasing, matrices that are not proper rotations, a field of view outside (0, pi), an aspect <= 0,
            an aspect without a field of view.
    """

    times_s: np.ndarray
    morph_weights: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    name: str = "performance"
    camera_yfov_rad: float | None = None
    camera_aspect: float | None = None

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for value, name, spec in (
            (self.times_s, "times_s", ("T",)),
            (self.morph_weights, "morph_weights", ("T", "K")),
            (self.rotations, "rotations", ("T", 3, 3)),
            (self.translations, "translations", ("T", 3)),
        ):
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{name}: expected a NumPy array of shape {spec}, got {describe(value)}")
            check_shape(value, name, spec, sizes)
            check_floating(value, name)
            check_finite(value, name)
        if sizes["T"] == 0:
            raise ValueError("times_s: expected at least one key frame, got an array of shape (0,)")
        times = self.times_s.astype(np.float64)
        if times[0] < 0:
            raise ValueError(f"times_s: expected times >= 0 s, got a first time of {times[0]:g} s")
        steps = np.diff(times)
        if (steps <= 0).any():
            at = int(np.flatnonzero(steps <= 0)[0])
            raise ValueError(
                f"times_s: expected strictly increasing times, got {times[at + 1]:g} s after {times[at]:g} s "
                f"(frames {at} and {at + 1})"
            )
        r = self.rotations.astype(np.float64)
        gram_error = np.abs(np.swapaxes(r, 1, 2) @ r - np.eye(3)).max(axis=(1, 2))
        det = np.linalg.det(r)
        bad = np.flatnonzero((gram_error > ROTATION_TOLERANCE) | (det <= 0))
        if bad.size:
            at = int(bad[0])
            raise ValueError(
                f"rotations: expected proper rotation matrices (R.T @ R = I within {ROTATION_TOLERANCE:g}, det +1), "
                f"got {bad.size} that are not, the first at frame {at} (det {det[at]:.4g}, "
                f"|R.T @ R - I| up to {gram_error[at]:.3g})"
            )
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name: expected a non-empty string, got {self.name!r}")
        if self.camera_yfov_rad is not None:
            _check_number(self.camera_yfov_rad, "camera_yfov_rad")
            if not 0.0 < self.camera_yfov_rad < math.pi:
                raise ValueError(f"camera_yfov_rad: expected a field of view in (0, pi) radians, got {self.camera_yfov_rad!r}")
        if self.camera_aspect is not None:
            _check_number(self.camera_aspect, "camera_aspect")
            if not self.camera_aspect > 0.0:
                raise ValueError(f"camera_aspect: expected a width / height ratio > 0, got {self.camera_aspect!r}")
            if self.camera_yfov_rad is None:
                raise ValueError("camera_aspect: given without camera_yfov_rad (a glTF camera needs its field of view)")

    @property
    def frames(self) -> int:
        """The number of key frames T."""
        return int(self.times_s.shape[0])

    @property
    def morph_count(self) -> int:
        """The number of morph targets K the weights are for."""
        return int(self.morph_weights.shape[1])


def _check_number(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {describe(value)}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
