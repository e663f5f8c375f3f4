"""``facerecon detect``: outputs, JSON schema, one line per bad item, exit codes of mixed batches."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facerecon.cli import detect as detect_cli
from facerecon.cli.exit_codes import ExitCode


def _run(argv: list[str]) -> int:
    """Parse with the real ``facerecon`` parser once ``detect`` is registered there, else a local one."""
    from facerecon.cli import main

    if "detect" in main.SUBCOMMANDS:
        return main.main(["detect", *argv])
    parser = argparse.ArgumentParser(prog="facerecon")
    detect_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["detect", *argv])
    return int(args.func(args))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, faces_dir) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not the rest of a JPEG")
    truncated = folder / "truncated.jpg"
    data = (faces_dir / "d3dfr-000033.jpg").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    blank = folder / "blank.png"
    Image.fromarray(np.full((240, 320, 3), 200, np.uint8)).save(blank)
    return {"corrupt": corrupt, "truncated": truncated, "blank": blank, "missing": folder / "missing.jpg"}


def test_mixed_batch(tmp_path, faces_dir, bad_files, capsys):
    good = [faces_dir / "3ddfa-trump_hillary.jpg", faces_dir / "prnet-3.jpg"]
    bad = [bad_files[k] for k in ("corrupt", "truncated", "blank", "missing")]
    out = tmp_path / "out"
    code = _run([*map(str, good[:1] + bad[:2] + good[1:] + bad[2:]), "-o", str(out), "--json"])
    assert code == ExitCode.PARTIAL
    captured = capsys.readouterr()
    ok_lines = [ln for ln in captured.out.splitlines() if ln.strip()]
    assert len(ok_lines) == 2 and "2 faces" in ok_lines[0] and "1 face " in ok_lines[1]
    err_lines = [ln for ln in captured.err.splitlines() if ln.startswith("facerecon detect:")]
    assert len(err_lines) == 4  # one line per bad item, the batch went on
    for path, line in zip(bad, err_lines):
        assert path.name in line
    assert "no face" in err_lines[2] and "no such file" in err_lines[3]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("3ddfa-trump_hillary", "prnet-3", "blank") for ext in ("png", "json")
    )
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temporary files left

    record = json.loads((out / "3ddfa-trump_hillary.json").read_text())
    assert set(record) == {"image", "width", "height", "detector", "faces"}
    assert (record["width"], record["height"]) == (1536, 689) and record["image"] == str(good[0])
    faces = record["faces"]
    assert len(faces) == 2
    areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in faces]
    assert areas[0] >= areas[1]
    for f in faces:
        assert set(f) == {"box", "score", "scheme", "landmarks", "landmarks68"}
        assert len(f["landmarks"]) == 478 and len(f["landmarks68"]) == 68 and f["scheme"] == "mediapipe478"
        pts = np.asarray(f["landmarks"])
        assert pts.shape == (478, 2) and 0 <= pts[:, 0].min() and pts[:, 0].max() < 1536
        lm68 = np.asarray(f["landmarks68"])
        assert lm68[36, 0] < lm68[45, 0]  # iBUG order: the subject's right eye on the left
    assert json.loads((out / "blank.json").read_text())["faces"] == []
    overlay = np.asarray(Image.open(out / "3ddfa-trump_hillary.png"))
    assert overlay.shape == (689, 1536, 3)
    assert not np.array_equal(overlay, np.asarray(Image.open(good[0]).convert("RGB")))


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["blank"], ExitCode.NO_FACE),
        (["blank", "blank"], ExitCode.NO_FACE),
        (["corrupt", "truncated", "missing"], ExitCode.IMAGE_READ),
        (["corrupt", "blank"], ExitCode.PARTIAL),
    ],
)
def test_exit_codes_when_nothing_succeeds(tmp_path, bad_files, names, expected, capsys):
    code = _run([*(str(bad_files[n]) for n in names), "-o", str(tmp_path / "out")])
    assert code == expected
    assert len([ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("facerecon detect:")]) == len(names)


def test_all_good_is_ok_and_without_json_writes_only_pngs(tmp_path, faces_dir, capsys):
    out = tmp_path / "out"
    assert _run([str(faces_dir / "d3dfr-000033.jpg"), "-o", str(out)]) == ExitCode.OK
    assert [p.name for p in out.iterdir()] == ["d3dfr-000033.png"]
    assert capsys.readouterr().err.count("facerecon detect:") == 0


def test_exif_rotated_copy_gives_the_same_json(tmp_path, faces_dir):
    src = faces_dir / "d3dfr-000055.jpg"
    upright = Image.open(src).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CCW to view": the pixels are stored turned clockwise
    rotated = tmp_path / "rotated.jpg"
    upright.transpose(Image.Transpose.ROTATE_270).save(rotated, quality=97, exif=exif)
    out = tmp_path / "out"
    assert _run([str(src), str(rotated), "-o", str(out), "--json"]) == ExitCode.OK
    a = json.loads((out / "d3dfr-000055.json").read_text())
    b = json.loads((out / "rotated.json").read_text())
    assert (b["width"], b["height"]) == (a["width"], a["height"]) == upright.size
    pa, pb = np.asarray(a["faces"][0]["landmarks"]), np.asarray(b["faces"][0]["landmarks"])
    box = np.asarray(a["faces"][0]["box"])
    size = np.sqrt((box[2] - box[0]) * (box[3] - box[1]))
    assert np.median(np.linalg.norm(pa - pb, axis=1)) / size < 0.01


def test_same_stem_twice_and_dlib(tmp_path, faces_dir):
    other = tmp_path / "other"
    other.mkdir()
    copy = other / "d3dfr-000033.png"
    Image.open(faces_dir / "d3dfr-000033.jpg").save(copy)
    out = tmp_path / "out"
    code = _run([str(faces_dir / "d3dfr-000033.jpg"), str(copy), "-o", str(out), "--json", "--detector", "dlib"])
    assert code == ExitCode.OK
    assert sorted(p.name for p in out.iterdir()) == [
        "d3dfr-000033-2.json", "d3dfr-000033-2.png", "d3dfr-000033.json", "d3dfr-000033.png"
    ]
    record = json.loads((out / "d3dfr-000033.json").read_text())
    assert record["detector"] == "dlib" and record["faces"][0]["scheme"] == "ibug68"
    assert record["faces"][0]["landmarks"] == record["faces"][0]["landmarks68"]
    assert len(record["faces"][0]["landmarks"]) == 68


def test_usage_errors(tmp_path, faces_dir, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _run([str(faces_dir / "prnet-4.jpg"), "-o", str(blocker / "out")]) == ExitCode.USAGE
    assert "cannot create the output folder" in capsys.readouterr().err
    assert _run([str(faces_dir / "prnet-4.jpg"), "-o", str(tmp_path / "o"), "--max-faces", "0"]) == ExitCode.USAGE
    with pytest.raises(SystemExit) as exc:
        _run([str(faces_dir / "prnet-4.jpg")])  # -o is required
    assert exc.value.code == 2


def test_existing_outputs_are_replaced(tmp_path, faces_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "prnet-4.json").write_text("old")
    assert _run([str(faces_dir / "prnet-4.jpg"), "-o", str(out), "--json"]) == ExitCode.OK
    assert json.loads((out / "prnet-4.json").read_text())["faces"]


def test_a_photo_too_small_for_a_face_is_one_line_and_the_batch_goes_on(tmp_path, faces_dir, capsys):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tiny)
    out = tmp_path / "out"
    assert _run([str(tiny), str(faces_dir / "prnet-3.jpg"), "-o", str(out)]) == ExitCode.PARTIAL
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("facerecon detect:")]
    assert len(err_lines) == 1 and "tiny.png: the image is 1 x 1 px, too small to hold a face" in err_lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["prnet-3.png"]
