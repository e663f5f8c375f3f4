"""``facerecon reconstruct VIDEO``: tracks, the files of each track (animated GLB, CSV, per-frame lines), the overlay,
the window and rate options, and one exit code per kind of bad video."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from facerecon.cli.exit_codes import ExitCode
from facerecon.cli.main import main
from facerecon.io.animation_csv import HEADER
from facerecon.io.gltf import read_glb, read_glb_animation
from facerecon.sequence.video import probe_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def home(sequence_home: Path):
    """Point the command at the session's calibrated model home (restored afterwards)."""
    before = os.environ.get("FACERECON_HOME")
    os.environ["FACERECON_HOME"] = str(sequence_home)
    yield sequence_home
    if before is None:
        os.environ.pop("FACERECON_HOME", None)
    else:
        os.environ["FACERECON_HOME"] = before


def _reconstruct(*argv: str) -> int:
    return main(["reconstruct", *map(str, argv), "--quiet"])


@pytest.fixture(scope="module")
def landmarks_run(obama_clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("video-landmarks")
    assert _reconstruct(obama_clip.path, "-o", out, "--stages", "landmarks") == ExitCode.OK
    return out / obama_clip.path.stem


def test_track_files(landmarks_run: Path, obama_clip, sequence_model) -> None:
    tracks = sorted(landmarks_run.glob("track_*"))
    assert [t.name for t in tracks] == ["track_0"]
    track = tracks[0]
    frames = obama_clip.frame_count
    # params.jsonl: a line per frame, in order, with the pose, the expression by name and the error.
    lines = [json.loads(line) for line in (track / "params.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(frames))
    assert np.allclose([line["time_s"] for line in lines], np.arange(frames) / obama_clip.fps, atol=1e-4)
    assert set(lines[0]["expression"]) == set(sequence_model.expression_names)
    assert sum(line["keyframe"] for line in lines) == 8 and "sh" not in lines[0]
    assert all(line["landmark_error_px"] < 8.0 for line in lines)
    person = json.loads((track / "person.json").read_text())
    assert len(person["identity"]) == sequence_model.identity_count and person["track_id"] == 0
    assert person["camera"]["width"] == 640 and person["fps"] == pytest.approx(25.0)
    # animation.csv: Live Link Face's columns, a row per frame, the weights of params.jsonl.
    with open(track / "animation.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == tuple(HEADER) and len(rows) == frames + 1
    jaw = rows[0].index("JawOpen")
    assert np.allclose([float(r[jaw]) for r in rows[1:]], [line["expression"]["jawOpen"] for line in lines], atol=1e-6)
    yaw = rows[0].index("HeadYaw")
    assert np.allclose([np.degrees(float(r[yaw])) for r in rows[1:]], [line["head_angles_deg"]["yaw"] for line in lines], atol=1e-3)
    # face.glb: the identity's neutral head with 53 morph targets and the performance at the video's rate.
    mesh = read_glb(track / "face.glb")
    assert len(mesh.morph_names) == sequence_model.expression_count
    animation = read_glb_animation(track / "face.glb")
    assert animation is not None and animation.frames == frames and animation.morph_count == 53
    assert np.allclose(np.diff(animation.times_s), 1.0 / obama_clip.fps, atol=1e-5)
    assert np.allclose(animation.morph_weights[:, list(mesh.morph_names).index("jawOpen")],
                       [line["expression"]["jawOpen"] for line in lines], atol=1e-5)  # fmt: skip
    # The head's transform: the camera's pose turned into glTF's axes (y and z flipped), in mm.
    flip = np.diag([1.0, -1.0, -1.0])
    assert np.allclose(animation.translations, [flip @ np.asarray(line["translation"]) for line in lines], atol=1e-2)
    assert np.allclose(animation.rotations[0], flip @ np.asarray(lines[0]["rotation"]), atol=1e-5)
    assert animation.camera_yfov_rad is not None and animation.camera_aspect == pytest.approx(640 / 360)
    # overlay.mp4: every frame, at the clip's size and rate.
    overlay = probe_video(landmarks_run / "overlay.mp4")
    assert (overlay.width, overlay.height, overlay.frame_count) == (640, 360, frames)


def test_fps_and_window(obama_clip, tmp_path: Path) -> None:
    assert _reconstruct(obama_clip.path, "-o", tmp_path, "--stages", "landmarks", "--no-images",
                        "--fps", "12.5", "--start", "0.4", "--end", "00:01.2") == ExitCode.OK  # fmt: skip
    lines = [json.loads(line) for line in (tmp_path / "obama" / "track_0" / "params.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(10, 30, 2))
    assert not (tmp_path / "obama" / "overlay.mp4").exists()


def test_faces_that_come_and_go_are_separate_tracks(comings_and_goings_clip, tmp_path: Path) -> None:
    assert _reconstruct(comings_and_goings_clip.path, "-o", tmp_path, "--stages", "landmarks", "--no-images") == ExitCode.OK
    folder = tmp_path / comings_and_goings_clip.path.stem
    tracks = sorted(folder.glob("track_*"))
    assert len(tracks) == 2
    frames = [[json.loads(line)["frame"] for line in (t / "params.jsonl").read_text().splitlines()] for t in tracks]
    assert frames[0] == list(range(12)) and frames[1] == list(range(20, 32))
    identities = [np.asarray(json.loads((t / "person.json").read_text())["identity"]) for t in tracks]
    assert not np.array_equal(identities[0], identities[1])  # fitted separately, not one averaged face


@pytest.mark.parametrize(
    ("clip", "code", "message"),
    [
        ("no_face_clip", ExitCode.NO_FACE, "no face"),
        ("garbage_clip", ExitCode.VIDEO_READ, "not a readable video"),
        ("empty_clip", ExitCode.VIDEO_EMPTY, "no frames"),
    ],
)
def test_bad_videos(clip: str, code: ExitCode, message: str, request, tmp_path: Path, capsys) -> None:
    path = request.getfixturevalue(clip).path
    assert _reconstruct(path, "-o", tmp_path, "--stages", "landmarks") == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facerecon:")]
    assert len(err) == 1 and str(path.name) in err[0] and message in err[0], err
    assert not any((tmp_path / path.stem).glob("track_*"))


def test_missing_video_and_usage_errors(obama_clip, tmp_path: Path, capsys) -> None:
    assert _reconstruct(tmp_path / "missing.mp4", "-o", tmp_path) == ExitCode.VIDEO_READ
    assert _reconstruct(obama_clip.path, "-o", tmp_path, "--same-person") == ExitCode.USAGE
    assert "--same-person takes photos" in capsys.readouterr().err
    assert _reconstruct(obama_clip.path, "-o", tmp_path, "--fps", "0") == ExitCode.USAGE
    with pytest.raises(SystemExit):
        _reconstruct(obama_clip.path, "-o", tmp_path, "--start", "later")


def test_a_bad_video_does_not_stop_the_others(obama_clip, garbage_clip, tmp_path: Path) -> None:
    code = _reconstruct(garbage_clip.path, obama_clip.path, "-o", tmp_path, "--stages", "landmarks", "--no-images",
                        "--end", "0.4")  # fmt: skip
    assert code == ExitCode.PARTIAL
    assert (tmp_path / "obama" / "track_0" / "face.glb").is_file()


def test_full_stages_give_texture_and_light(obama_clip, tmp_path: Path) -> None:
    assert _reconstruct(obama_clip.path, "-o", tmp_path, "--end", "0.48", "--no-images") == ExitCode.OK
    track = tmp_path / "obama" / "track_0"
    lines = [json.loads(line) for line in (track / "params.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and all(np.asarray(line["sh"]).shape == (9, 3) for line in lines)
    assert (track / "texture.png").is_file() and (track / "albedo.png").is_file()
    mesh = read_glb(track / "face.glb")
    assert mesh.texture is not None and mesh.texture.std() > 10  # the person's texture, not a flat grey


def test_truncated_video_keeps_the_frames_before(truncated_clip, tmp_path: Path, capsys) -> None:
    code = _reconstruct(truncated_clip.path, "-o", tmp_path, "--stages", "landmarks")
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facerecon:")]
    assert code == ExitCode.PARTIAL, err
    assert len(err) == 1 and "decoding stopped" in err[0] and truncated_clip.path.name in err[0]
    lines = (tmp_path / truncated_clip.path.stem / "track_0" / "params.jsonl").read_text().splitlines()
    lost_at = int(err[0].split("frame ")[1].split(":")[0])
    assert 5 <= len(lines) == lost_at < truncated_clip.frame_count
    overlay = probe_video(tmp_path / truncated_clip.path.stem / "overlay.mp4")
    assert overlay.frame_count == lost_at


def test_same_person_command(faces_dir: Path, tmp_path: Path, capsys) -> None:
    photos = [faces_dir / "deca-exp-4.jpg", faces_dir / "deca-exp-0.jpg"]  # the first has an EXIF focal length
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    code = _reconstruct("--same-person", *photos, missing, "-o", out, "--stages", "landmarks", "--outputs", "glb,params")
    assert code == ExitCode.PARTIAL  # the missing photo is left out of the set and reported
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facerecon:")]
    assert len(err) == 1 and "missing.jpg" in err[0] and "left out" in err[0]
    lines = [json.loads(line) for line in (out / "params.jsonl").read_text().splitlines()]
    assert [line["folder"] for line in lines] == ["deca-exp-4", "deca-exp-0"]
    # The set's camera is its first photo's, EXIF focal length included.
    first = json.loads((out / "deca-exp-4" / "params.json").read_text())["intrinsics"]
    assert first["focal_source"] == "exif"
    assert json.loads((out / "person.json").read_text())["camera"]["fx"] == pytest.approx(first["fx"], rel=1e-9)
    assert (out / "face.glb").is_file() and read_glb_animation(out / "face.glb") is None
    assert (out / "deca-exp-0" / "params.json").is_file() and (out / "deca-exp-4" / "face.glb").is_file()
    identities = {tuple(json.loads((out / name / "params.json").read_text())["identity"]) for name in ("deca-exp-0", "deca-exp-4")}
    assert len(identities) == 1  # one person: every photo carries the set's identity


def test_video_options_need_a_video(faces_dir: Path, tmp_path: Path, capsys) -> None:
    assert _reconstruct(faces_dir / "prnet-4.jpg", "-o", tmp_path, "--fps", "5") == ExitCode.USAGE
    assert "for videos" in capsys.readouterr().err


def test_a_clip_of_two_frames(obama_clip, tmp_path: Path) -> None:
    assert _reconstruct(obama_clip.path, "-o", tmp_path, "--stages", "landmarks", "--end", "0.08") == ExitCode.OK
    lines = (tmp_path / "obama" / "track_0" / "params.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1]
    assert read_glb_animation(tmp_path / "obama" / "track_0" / "face.glb").frames == 2
