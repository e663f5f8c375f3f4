"""A face performance as a Live Link Face CSV: the ARKit capture layout Epic's iOS app records, one row per frame.

The layout (a fact of the format, read off recordings of the app and importers of them; see the sources below):
``Timecode,BlendShapeCount,`` then the 52 ARKit blendshapes in the app's order (:data:`ARKIT_BLENDSHAPES`, PascalCase,
``EyeBlinkLeft`` ... ``TongueOut``; note ``JawRight`` before ``JawLeft`` and ``MouthRight`` before ``MouthLeft``),
then ``HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll``.
``BlendShapeCount`` is 61 (the 52 weights and the 9 angles); values are written with 10 decimals as the app does.

- **Timecode** ``HH:MM:SS:FF.fff``: hours, minutes, seconds, the frame ``FF`` within the second at the timecode's
  (integer) frame rate, and after the dot the fraction of that frame (recordings of the app step by whole frames
  with a slowly drifting fraction, e.g. ``13:13:04:31.652``, ``13:13:04:33.651``). The app records time of day; this
  writer starts at ``00:00:00:00.000`` plus each frame's time, at the clip's frame rate rounded to an integer
  (29.97 -> 30, non-drop). The file does not record the rate: :func:`read_animation_csv` needs it.
- **Head and eye angles** are radians: Faceit's Live Link Face importer for Blender reads them as radians
  (``EpicMocapImporter``: ``set_rotation_units('RAD')``), and the recordings agree (eye pitch 0.17 with
  ``EyeLookDown`` 0.28, about 10 degrees). Older Unreal code that fed ARKit into Live Link (``ToBlendShapeMap`` in
  ``AppleARKitConversion.h``, UE 4.2x) instead stored degrees / 180 in [-1, 1]; a consumer that expects that scale
  needs the values divided by pi. The head angles are written as facerecon's (yaw, pitch, roll) of the conventions
  (``R_head = Rz(roll) @ Ry(yaw) @ Rx(pitch)``); the app's sign conventions are not documented.
- **Eye angles** are written as 0. The model's eyeLook* weights are blendshape weights, not angles: the ratio between
  them is not fixed (in the app's recordings cited below from about 0.4 to 1.3 radians per unit of weight, with
  signs that do not follow the weights' sides), so deriving angles from them would invent numbers; consumers of these
  files drive the eyes from the ``EyeLook*`` columns.

Names: a model name maps to the column with the same name once ``_L`` / ``_R`` become ``Left`` / ``Right``,
case-insensitively (``eyeBlink_L`` -> ``EyeBlinkLeft``, ``jawOpen`` -> ``JawOpen``). A column without a side that
the model splits into halves (ICT's ``browInnerUp_L/_R`` and ``cheekPuff_L/_R``) gets the mean of the halves: both
halves at w make ARKit's shape at w, and for unequal halves the mean is the nearest single weight. A column the model
lacks (ICT: ``TongueOut``) is 0; a model name no column takes is left out (:func:`arkit_mapping` lists them; none
for ICT-FaceKit's 53 expressions).

Sources: the header and real rows of Live Link Face recordings in
``alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder`` (``anim/alex_rom_3.csv``, ``anim/S07-001.csv``, whose
``llf_to_mh_mobu.py`` strips the ``.fff`` and notes 59.94 fps), the same header in
``nmfisher/blender_livelinkface`` (``bpylivelinkface.py``, ``LIVE_LINK_FACE_HEADER``), Faceit's
``EpicMocapImporter`` (radians, columns 2..53 the weights, 54..56 head, 57..62 eyes), Epic's ``EARFaceBlendShape``
enum order (UE ``AppleARKitConversion.h``).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon.core.check import check_finite, check_floating, check_positive, check_shape, describe
from facerecon.io.atomic import write_text_atomic

__all__ = [
    "ARKIT_BLENDSHAPES",
    "EYE_COLUMNS",
    "HEADER",
    "HEAD_COLUMNS",
    "ArkitMapping",
    "arkit_mapping",
    "read_animation_csv",
    "write_animation_csv",
]

#: The 52 ARKit blendshape columns in Live Link Face's order (the order of Epic's ``EARFaceBlendShape``).
ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)  # fmt: skip
#: The head rotation columns, radians.
HEAD_COLUMNS: tuple[str, ...] = ("HeadYaw", "HeadPitch", "HeadRoll")
#: The eye rotation columns, radians (written as 0, see the module docstring).
EYE_COLUMNS: tuple[str, ...] = (
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip
#: The full header, in order.
HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount", *ARKIT_BLENDSHAPES, *HEAD_COLUMNS, *EYE_COLUMNS)
#: The ``BlendShapeCount`` the app writes: the 52 weights and the 9 angles.
BLEND_SHAPE_COUNT = len(ARKIT_BLENDSHAPES) + len(HEAD_COLUMNS) + len(EYE_COLUMNS)


@dataclass(frozen=True)
class ArkitMapping:
    """Which model expressions feed which ARKit column.

    Attributes:
        sources: ARKit column -> indices into the model's names whose weights are averaged into it (absent: 0).
        ignored: the model's names no column takes, in the model's order.
    """

    sources: dict[str, tuple[int, ...]]
    ignored: tuple[str, ...]


def _key(name: str) -> str:
    """A model name as a lower-case ARKit name: ``eyeBlink_L`` -> ``eyeblinkleft``."""
    if name.endswith("_L"):
        name = name[:-2] + "Left"
    elif name.endswith("_R"):
        name = name[:-2] + "Right"
    return name.lower()


def arkit_mapping(names: Sequence[str]) -> ArkitMapping:
    """Map a model's expression names to the ARKit columns (see the module docstring for the rules).

    Args:
        names: K expression names as the model uses them, e.g. ``eyeBlink_L``, ``browInnerUp_R``, ``jawOpen``.

    Example:
        >>> m = arkit_mapping(["jawOpen", "browInnerUp_L", "browInnerUp_R", "happy"])
        >>> m.sources["JawOpen"], m.sources["BrowInnerUp"], m.ignored
        ((0,), (1, 2), ('happy',))
    """
    index = {_key(n): k for k, n in enumerate(names)}
    sources: dict[str, tuple[int, ...]] = {}
    for column in ARKIT_BLENDSHAPES:
        key = column.lower()
        if key in index:
            sources[column] = (index[key],)
        elif not key.endswith(("left", "right")):  # a whole shape the model splits into halves
            halves = tuple(index[key + side] for side in ("left", "right") if key + side in index)
            if halves:
                sources[column] = halves
        else:  # one side of a shape the model has only whole
            base = key.removesuffix("left") if key.endswith("left") else key.removesuffix("right")
            if base in index:
                sources[column] = (index[base],)
    used = {k for indices in sources.values() for k in indices}
    return ArkitMapping(sources=sources, ignored=tuple(n for k, n in enumerate(names) if k not in used))


def _timecode(seconds: float, rate: int) -> str:
    """``HH:MM:SS:FF.fff`` for a time at an integer timecode rate (``fff`` the fraction of frame ``FF``)."""
    thousandths = round(seconds * rate * 1000.0)  # in 1/1000 frame, so k / rate s is exactly frame k
    frames, fraction = divmod(thousandths, 1000)
    whole_seconds, frame = divmod(frames, rate)
    minutes, second = divmod(whole_seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{second:02d}:{frame:02d}.{fraction:03d}"


def _check_array(value: object, name: str, spec: tuple, sizes: dict[str, int]) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array of shape {spec}, got {describe(value)}")
    check_shape(value, name, spec, sizes)
    check_floating(value, name)
    check_finite(value, name)
    return value.astype(np.float64)


def write_animation_csv(
    path: str | os.PathLike[str],
    times_s: np.ndarray,
    names: Sequence[str],
    weights: np.ndarray,
    head_yaw_pitch_roll: np.ndarray | None,
    *,
    fps: float | None = None,
) -> None:
    """Write a performance as a Live Link Face CSV (layout, names, units: see the module docstring), atomically.

    Args:
        path: the ``.csv`` file to write (the folder is created when missing).
        times_s: ``(T,)`` float frame times in seconds, >= 0 and strictly increasing.
        names: K expression names as the model uses them (ARKit names with ``_L`` / ``_R``).
        weights: ``(T, K)`` float expression weights per frame (written as they are, 10 decimals).
        head_yaw_pitch_roll: ``(T, 3)`` float head (yaw, pitch, roll) in radians, facerecon's conventions, or None
            for zeros.
        fps: the clip's frame rate for the timecode; None takes it from the median frame step (needs T >= 2). The
            timecode counts frames at ``round(fps)`` per second.

    Raises:
        TypeError: non-arrays, non-floating arrays, names that are not strings, an fps that is not a number.
        ValueError: wrong or disagreeing shapes, no frames, NaN/infinite values, times negative or not strictly
            increasing, repeated names, an fps <= 0 or below 0.5, no fps for a single frame.

    Example:
        >>> write_animation_csv("out/take.csv", times, model.expression_names, weights, angles)  # doctest: +SKIP
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path ending in .csv, got {describe(path)}")
    p = Path(path)
    if p.suffix.lower() != ".csv":
        raise ValueError(f"path: expected a file name ending in .csv, got {p.name!r}")
    sizes: dict[str, int] = {}
    times = _check_array(times_s, "times_s", ("T",), sizes)
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"names: expected a sequence of strings, got {describe(names)}")
    names = tuple(names)
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"names: expected distinct names, got repeated {', '.join(repeated)}")
    sizes["K"] = len(names)
    w = _check_array(weights, "weights", ("T", "K"), sizes)
    if head_yaw_pitch_roll is None:
        head = np.zeros((sizes["T"], 3))
    else:
        head = _check_array(head_yaw_pitch_roll, "head_yaw_pitch_roll", ("T", 3), sizes)
    frames = sizes["T"]
    if frames == 0:
        raise ValueError("times_s: expected at least one frame, got an array of shape (0,)")
    if times[0] < 0:
        raise ValueError(f"times_s: expected times >= 0 s, got a first time of {times[0]:g} s")
    steps = np.diff(times)
    if (steps <= 0).any():
        at = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(f"times_s: expected strictly increasing times, got {times[at + 1]:g} s after {times[at]:g} s")
    if fps is None:
        if frames < 2:
            raise ValueError("fps: needed for a single frame (the frame rate cannot be taken from one time)")
        fps = 1.0 / float(np.median(steps))
    else:
        check_positive(fps, "fps")
    rate = round(fps)
    if rate < 1:
        raise ValueError(f"fps: expected a frame rate of at least 0.5 (the timecode counts whole frames), got {fps:g}")

    mapping = arkit_mapping(names)
    blend = np.zeros((frames, len(ARKIT_BLENDSHAPES)))
    for c, column in enumerate(ARKIT_BLENDSHAPES):
        if column in mapping.sources:
            blend[:, c] = w[:, list(mapping.sources[column])].mean(axis=1)
    table = np.concatenate([blend, head, np.zeros((frames, len(EYE_COLUMNS)))], axis=1)
    out = io.StringIO()
    out.write(",".join(HEADER) + "\n")
    for t, row in zip(times, table):
        out.write(f"{_timecode(float(t), rate)},{BLEND_SHAPE_COUNT}," + ",".join(f"{v:.10f}" for v in row) + "\n")
    write_text_atomic(p, out.getvalue())


def _seconds(timecode: str, rate: float) -> float:
    """Seconds of an ``HH:MM:SS:FF[.fff]`` timecode at ``rate`` frames per second (``fff`` a fraction of a frame)."""
    hours, minutes, seconds, frame = timecode.split(":")
    return (int(hours) * 60 + int(minutes)) * 60 + int(seconds) + float(frame) / rate


def read_animation_csv(path: str | os.PathLike[str], fps: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read a Live Link Face CSV (ours or the app's): frame times and every numeric column by name.

    Args:
        path: the ``.csv`` file.
        fps: the timecode's frame rate (the file does not record it; ours use ``round(fps)`` of the clip, the app
            its capture rate, e.g. 60).

    Returns:
        ``(times_s, columns)``: ``(T,)`` float64 seconds from ``00:00:00:00`` (not shifted to the first row), and
        a dict of the columns after ``BlendShapeCount`` in file order, name -> ``(T,)`` float64.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not the Live Link Face layout (first columns), rows of another length, unparsable values.
    """
    check_positive(fps, "fps")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path: no such file: {p}")
    with open(p, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][:2] != ["Timecode", "BlendShapeCount"]:
        raise ValueError(f"{p}: not a Live Link Face CSV (expected a header starting Timecode,BlendShapeCount)")
    header = rows[0][2:]
    body = [r for r in rows[1:] if r]
    for number, row in enumerate(body, start=2):
        if len(row) != len(rows[0]):
            raise ValueError(f"{p}: line {number} has {len(row)} values, the header {len(rows[0])}")
    try:
        times = np.array([_seconds(r[0], float(fps)) for r in body], dtype=np.float64)
        values = np.array([[float(v) for v in r[2:]] for r in body], dtype=np.float64).reshape(len(body), len(header))
    except ValueError as err:
        raise ValueError(f"{p}: unparsable value ({err})") from None
    if not np.isfinite(values).all() or not all(math.isfinite(t) for t in times):
        raise ValueError(f"{p}: NaN or infinite values")
    return times, {name: values[:, c].copy() for c, name in enumerate(header)}
