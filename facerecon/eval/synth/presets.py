"""The synthetic benchmark's settings: the yaws, expression and lighting presets, and :class:`SynthConfig`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facerecon.core.check import check_choice, describe
from facerecon.models.face_model import FaceModel
from facerecon.render.sh import directional_sh

__all__ = [
    "BACKGROUNDS",
    "DEFAULT_YAWS_DEG",
    "EXPRESSION_PRESETS",
    "LAYOUTS",
    "LIGHTING_PRESETS",
    "SynthConfig",
    "check_names",
    "check_yaws",
    "expression_weights",
    "lighting_sh",
]

#: Default yaws, degrees: 0 to +-90 in steps of 15 (13 views).
DEFAULT_YAWS_DEG: tuple[float, ...] = tuple(float(y) for y in range(-90, 91, 15))

#: Expression presets: ARKit-named ICT weights (others 0). ``"fitted"`` keeps the photo's fitted expression.
EXPRESSION_PRESETS: dict[str, dict[str, float]] = {
    "fitted": {},
    "neutral": {},
    "smile": {"mouthSmile_L": 0.8, "mouthSmile_R": 0.8, "cheekSquint_L": 0.3, "cheekSquint_R": 0.3},
    "jawOpen": {"jawOpen": 0.55},
    "surprise": {
        "browInnerUp_L": 0.8, "browInnerUp_R": 0.8, "browOuterUp_L": 0.8, "browOuterUp_R": 0.8,
        "eyeWide_L": 0.5, "eyeWide_R": 0.5, "jawOpen": 0.3,
    },
    "pucker": {"mouthPucker": 0.8, "mouthFunnel": 0.2},
    "blink": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
}

#: Lighting presets: ``"fitted"`` (the photo's SH light), ``"ambient"`` (even), and a key light from the
#: viewer's ``"left"``, ``"right"`` or from the ``"top"`` plus ambient, each as bright as the fitted light.
LIGHTING_PRESETS: tuple[str, ...] = ("fitted", "ambient", "left", "right", "top")
#: Camera-space directions towards the key light of the directional presets (x right, y down, z forward).
_LIGHT_DIRECTIONS = {"left": (-0.8, -0.2, -0.55), "right": (0.8, -0.2, -0.55), "top": (0.0, -0.85, -0.5)}

LAYOUTS: tuple[str, ...] = ("aflw2000", "now", "both")
BACKGROUNDS: tuple[str, ...] = ("blur", "plain")


@dataclass(frozen=True)
class SynthConfig:
    """How views are rendered and written.

    Attributes:
        image_size: the square image's side, px (450: AFLW2000-3D).
        focal_35mm: 35 mm-equivalent focal length of the camera (50: a portrait lens).
        face_fraction: height of the frontal neutral face's 68-landmark box over the image height.
        pitch_deg, roll_deg: the other head angles of every view, degrees.
        background: ``"blur"`` (the photo, blurred) or ``"plain"`` (its mean border colour).
        blur_sigma: Gaussian blur of the background as a fraction of ``image_size``.
        supersample: renders at this factor and downsamples (antialiasing).
        jpeg_quality: of the written images.
        write_meshes: write the ground-truth OBJ beside each AFLW2000 image.
    """

    image_size: int = 450
    focal_35mm: float = 50.0
    face_fraction: float = 0.38
    pitch_deg: float = 0.0
    roll_deg: float = 0.0
    background: str = "blur"
    blur_sigma: float = 0.05
    supersample: int = 2
    jpeg_quality: int = 95
    write_meshes: bool = True

    def __post_init__(self) -> None:
        check_choice(self.background, "background", BACKGROUNDS)
        for name in ("image_size", "supersample", "jpeg_quality"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.image_size < 32:
            raise ValueError(f"image_size: expected at least 32 px, got {self.image_size}")
        if self.jpeg_quality > 100:
            raise ValueError(f"jpeg_quality: expected 1..100, got {self.jpeg_quality}")
        for name in ("focal_35mm", "face_fraction", "blur_sigma"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")
        if self.face_fraction >= 1:
            raise ValueError(f"face_fraction: expected a fraction below 1, got {self.face_fraction!r}")
        for name in ("pitch_deg", "roll_deg"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not -90 < value < 90:
                raise ValueError(f"{name}: expected degrees in (-90, 90), got {value!r}")



# ------------------------------------------------------------------------------------------------ checks
def check_yaws(yaws_deg: object) -> tuple[float, ...]:
    """The yaws as a tuple of floats; raises TypeError / ValueError unless a non-empty sequence in [-90, 90]."""
    if isinstance(yaws_deg, (str, bytes)) or not isinstance(yaws_deg, Sequence) or not yaws_deg:
        raise TypeError(f"yaws_deg: expected a non-empty sequence of degrees, got {describe(yaws_deg)}")
    out = []
    for y in yaws_deg:
        if isinstance(y, bool) or not isinstance(y, (int, float, np.integer, np.floating)) or not math.isfinite(float(y)):
            raise ValueError(f"yaws_deg: expected finite numbers, got {y!r}")
        if abs(float(y)) > 90:
            raise ValueError(f"yaws_deg: expected degrees in [-90, 90], got {float(y)}")
        out.append(float(y))
    return tuple(out)


def check_names(values: object, name: str, choices: Sequence[str]) -> tuple[str, ...]:
    """The names without repeats; raises TypeError / ValueError unless a non-empty sequence of ``choices``."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"{name}: expected a non-empty sequence of names, got {describe(values)}")
    for v in values:
        check_choice(v, name, tuple(choices))
    return tuple(dict.fromkeys(values))


def expression_weights(model: FaceModel, preset: str, fitted: np.ndarray) -> np.ndarray:
    """``(K_exp,)`` float64 weights of an expression preset (``"fitted"``: a copy of ``fitted``)."""
    check_choice(preset, "expression", tuple(EXPRESSION_PRESETS))
    if preset == "fitted":
        return np.array(fitted, dtype=np.float64)
    out = np.zeros(model.expression_count, dtype=np.float64)
    for key, value in EXPRESSION_PRESETS[preset].items():
        out[model.expression_index(key)] = value
    return out


def lighting_sh(preset: str, fitted_sh: np.ndarray | None, level: np.ndarray | None = None) -> np.ndarray:
    """``(9, 3)`` float64 SH radiance of a lighting preset.

    Args:
        preset: one of :data:`LIGHTING_PRESETS`.
        fitted_sh: ``(9, 3)`` the photo's fitted light, or None.
        level: ``(3,)`` RGB shading the face should get on average (default: the fitted light's mean over the
            sphere, ``L_00 Y_00``; a grey 0.8 without a fitted light). The ambient preset gives exactly this;
            the directional ones put 55% of it in a key light and 45% in ambient light.
    """
    check_choice(preset, "lighting", LIGHTING_PRESETS)
    y00 = 0.5 / math.sqrt(math.pi)
    if level is None:
        # Mean shading per channel of the fitted light = L_00 * Y_00 (A_0 / pi = 1).
        level = np.full(3, 0.8) if fitted_sh is None else np.asarray(fitted_sh)[0] * y00
    level = np.clip(np.asarray(level, dtype=np.float64), 0.05, 3.0)
    if preset == "fitted" and fitted_sh is not None:
        return np.array(fitted_sh, dtype=np.float64)
    if preset in ("fitted", "ambient"):
        out = np.zeros((9, 3))
        out[0] = level / y00
        return out
    d = torch.tensor([_LIGHT_DIRECTIONS[preset]], dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    # A key light of colour c gives about c / pi * max(0, n.d): c = pi * 0.55 level for 0.55 level facing it.
    key = torch.tensor(level[None] * 0.55 * math.pi)
    return directional_sh(d, key, ambient=torch.tensor(level[None] * 0.45))[0].numpy()
