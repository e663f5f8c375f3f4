"""Tests of facerecon.io.animation_csv: the Live Link Face CSV of a performance."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from facerecon.io.animation_csv import arkit_mapping, read_animation_csv, write_animation_csv

# The header of a Live Link Face recording, copied as one line from a file the app wrote
# (alexdjulin/LiveLinkFace-CSV-Retarget-For-Motionbuilder, anim/alex_rom_3.csv), independent of the module's tables.
APP_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,EyeSquintLeft,"
    "EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,EyeSquintRight,"
    "EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,MouthRight,MouthLeft,"
    "MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,MouthDimpleRight,MouthStretchLeft,"
    "MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,MouthShrugUpper,MouthPressLeft,MouthPressRight,"
    "MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,"
    "BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,"
    "TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)
EYE_COLUMNS = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
# a few of ICT's names, both halves of a split shape, and a name no column takes
NAMES = ("eyeBlink_L", "eyeBlink_R", "jawOpen", "mouthSmile_R", "browInnerUp_L", "browInnerUp_R", "cheekPuff_L",
         "cheekPuff_R", "eyeLookUp_L", "happy")  # fmt: skip


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _take(frames: int, fps: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(frames) / fps, rng.uniform(0, 1, (frames, len(NAMES))), rng.normal(0, 0.3, (frames, 3))


def test_header_rows_and_counts(tmp_path: Path) -> None:
    times, weights, head = _take(7, 30.0)
    write_animation_csv(tmp_path / "take.csv", times, NAMES, weights, head)
    text = (tmp_path / "take.csv").read_text()
    assert text.splitlines()[0] == APP_HEADER
    rows = _rows(tmp_path / "take.csv")
    assert len(rows) == 1 + 7 and all(len(r) == 63 for r in rows)
    assert {r[1] for r in rows[1:]} == {"61"}  # 52 weights + 9 angles, as the app writes


@pytest.mark.parametrize(
    ("fps", "frames", "expected"),
    [
        (25.0, 80, {0: "00:00:00:00.000", 1: "00:00:00:01.000", 24: "00:00:00:24.000", 25: "00:00:01:00.000",
                    79: "00:00:03:04.000"}),
        (30.0, 95, {0: "00:00:00:00.000", 29: "00:00:00:29.000", 30: "00:00:01:00.000", 94: "00:00:03:04.000"}),
    ],
)
def test_timecodes_at_the_clip_rate(tmp_path: Path, fps: float, frames: int, expected: dict) -> None:
    times, weights, head = _take(frames, fps)
    write_animation_csv(tmp_path / "take.csv", times, NAMES, weights, head)  # the rate taken from the times
    timecodes = [r[0] for r in _rows(tmp_path / "take.csv")[1:]]
    assert len(timecodes) == frames
    assert {k: timecodes[k] for k in expected} == expected
    back, _ = read_animation_csv(tmp_path / "take.csv", fps)
    np.testing.assert_allclose(back, times, atol=1e-9)


def test_timecode_subframes_hours_and_ntsc_rate(tmp_path: Path) -> None:
    # off the frame grid: the fraction of the frame after the dot; an hour later; 29.97 counts 30 frames a second
    times = np.array([0.02, 3725.5, 3725.52])
    weights = np.zeros((3, len(NAMES)))
    write_animation_csv(tmp_path / "a.csv", times, NAMES, weights, None, fps=25.0)
    assert [r[0] for r in _rows(tmp_path / "a.csv")[1:]] == ["00:00:00:00.500", "01:02:05:12.500", "01:02:05:13.000"]
    write_animation_csv(tmp_path / "b.csv", np.arange(31) / 29.97, NAMES, np.zeros((31, len(NAMES))), None)
    assert _rows(tmp_path / "b.csv")[-1][0] == "00:00:01:00.030"  # 30 / 29.97 s = frame 30.03 at 30 fps


def test_values_round_trip(tmp_path: Path) -> None:
    times, weights, head = _take(12, 25.0, seed=3)
    write_animation_csv(tmp_path / "take.csv", times, NAMES, weights, head)
    back_times, columns = read_animation_csv(tmp_path / "take.csv", 25.0)
    np.testing.assert_allclose(back_times, times, atol=1e-9)
    column = {"EyeBlinkLeft": 0, "EyeBlinkRight": 1, "JawOpen": 2, "MouthSmileRight": 3, "EyeLookUpLeft": 8}
    for name, k in column.items():
        np.testing.assert_allclose(columns[name], weights[:, k], atol=1e-9, err_msg=name)
    # ARKit's whole shapes from ICT's halves: the mean
    np.testing.assert_allclose(columns["BrowInnerUp"], weights[:, [4, 5]].mean(axis=1), atol=1e-9)
    np.testing.assert_allclose(columns["CheekPuff"], weights[:, [6, 7]].mean(axis=1), atol=1e-9)
    # head angles in radians, (yaw, pitch, roll) in that order
    for c, name in enumerate(("HeadYaw", "HeadPitch", "HeadRoll")):
        np.testing.assert_allclose(columns[name], head[:, c], atol=1e-9, err_msg=name)


def test_unmapped_columns_are_zero_and_ignored_names_listed(tmp_path: Path) -> None:
    times, weights, head = _take(5, 30.0)
    weights += 0.1  # no weight is zero
    write_animation_csv(tmp_path / "take.csv", times, NAMES, weights, head)
    _, columns = read_animation_csv(tmp_path / "take.csv", 30.0)
    fed = {"EyeBlinkLeft", "EyeBlinkRight", "JawOpen", "MouthSmileRight", "BrowInnerUp", "CheekPuff", "EyeLookUpLeft"}
    for name in APP_HEADER.split(",")[2:54]:
        assert (columns[name] != 0).all() if name in fed else (columns[name] == 0).all(), name
    for name in EYE_COLUMNS:  # eye angles are not derived from the eyeLook weights
        assert (columns[name] == 0).all(), name
    assert arkit_mapping(NAMES).ignored == ("happy",)


def test_mapping_of_the_ict_model(face_model) -> None:
    mapping = arkit_mapping(face_model.expression_names)
    arkit = APP_HEADER.split(",")[2:54]
    assert sorted(set(arkit) - set(mapping.sources)) == ["TongueOut"]  # ICT has no tongue
    assert mapping.ignored == ()  # all 53 expressions reach a column
    names = face_model.expression_names
    assert [names[k] for k in mapping.sources["BrowInnerUp"]] == ["browInnerUp_L", "browInnerUp_R"]
    assert [names[k] for k in mapping.sources["EyeLookOutRight"]] == ["eyeLookOut_R"]
    assert [names[k] for k in mapping.sources["JawLeft"]] == ["jawLeft"]


def test_mapping_of_whole_model_shapes_to_sides() -> None:
    mapping = arkit_mapping(["eyeBlink", "JawOpen", "mouthSmileLeft"])  # symmetric, PascalCase, ARKit spelling
    assert mapping.sources["EyeBlinkLeft"] == mapping.sources["EyeBlinkRight"] == (0,)
    assert mapping.sources["JawOpen"] == (1,) and mapping.sources["MouthSmileLeft"] == (2,)
    assert "MouthSmileRight" not in mapping.sources and mapping.ignored == ()


def test_reads_a_recording_of_the_app(tmp_path: Path) -> None:
    # the first values of a row of anim/alex_rom_3.csv (see APP_HEADER), completed with zeros
    row = ["13:13:04:31.652", "61", "0.1236470118", "0.2802172601"] + ["0.0000000000"] * 59
    (tmp_path / "app.csv").write_text(APP_HEADER + "\n" + ",".join(row) + "\n")
    times, columns = read_animation_csv(tmp_path / "app.csv", 60.0)
    assert times[0] == pytest.approx(13 * 3600 + 13 * 60 + 4 + 31.652 / 60)
    assert columns["EyeLookDownLeft"][0] == pytest.approx(0.2802172601)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"times_s": [0.0, 0.1, 0.2]}, TypeError, "times_s: expected a NumPy array"),
        ({"times_s": np.array([0.0, 0.1, 0.1])}, ValueError, "times_s: expected strictly increasing"),
        ({"times_s": np.array([-0.04, 0.0, 0.04])}, ValueError, "times_s: expected times >= 0"),
        ({"weights": np.zeros((3, 4))}, ValueError, r"weights: expected shape \(T, K\) with K=10"),
        ({"weights": np.full((3, 10), np.nan)}, ValueError, "weights: expected finite values"),
        ({"head_yaw_pitch_roll": np.zeros((3, 2))}, ValueError, r"head_yaw_pitch_roll: expected shape \(T, 3\)"),
        ({"head_yaw_pitch_roll": np.zeros((4, 3))}, ValueError, r"with T=3"),
        ({"names": ("jawOpen",) * 10}, ValueError, "names: expected distinct names, got repeated jawOpen"),
        ({"names": "jawOpen"}, TypeError, "names: expected a sequence of strings"),
        ({"fps": 0.0}, ValueError, "fps: expected a finite positive number"),
        ({"path": "take.txt"}, ValueError, r"path: expected a file name ending in \.csv"),
    ],
)
def test_bad_inputs(tmp_path: Path, change: dict, error: type, match: str) -> None:
    args = {"path": "take.csv", "times_s": np.arange(3) / 25.0, "names": NAMES, "weights": np.zeros((3, 10)),
            "head_yaw_pitch_roll": np.zeros((3, 3)), "fps": None}
    args.update(change)
    args["path"] = tmp_path / args["path"]
    with pytest.raises(error, match=match):
        write_animation_csv(**args)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_single_frame_needs_the_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fps: needed for a single frame"):
        write_animation_csv(tmp_path / "one.csv", np.zeros(1), NAMES, np.zeros((1, 10)), None)
    write_animation_csv(tmp_path / "one.csv", np.zeros(1), NAMES, np.zeros((1, 10)), None, fps=24.0)
    assert len(_rows(tmp_path / "one.csv")) == 2


def test_read_errors(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("frame,jawOpen\n0,0.5\n")
    with pytest.raises(ValueError, match="not a Live Link Face CSV"):
        read_animation_csv(tmp_path / "other.csv", 30.0)
    (tmp_path / "short.csv").write_text(APP_HEADER + "\n00:00:00:00.000,61,0.5\n")
    with pytest.raises(ValueError, match="line 2 has 3 values"):
        read_animation_csv(tmp_path / "short.csv", 30.0)
    with pytest.raises(FileNotFoundError):
        read_animation_csv(tmp_path / "missing.csv", 30.0)
