"""``facerecon synth`` end to end, through facerecon.cli.synth (add_parser + run) until main.py lists it."""

from __future__ import annotations

import argparse

import pytest

from facerecon.cli import synth as synth_cli
from facerecon.cli.exit_codes import ExitCode
from facerecon.eval.datasets import read_aflw2000, read_now


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="facerecon")
    synth_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["synth", *argv])
    return int(args.func(args))


@pytest.fixture
def home(model_home, monkeypatch):
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    return model_home


def test_one_good_photo_and_one_missing(home, faces_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = run([str(faces_dir / "prnet-1.jpg"), str(tmp_path / "missing.jpg"), "-o", str(out),
                "--yaws", "0,90", "--layout", "aflw2000", "--no-meshes", "--size", "300"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == ExitCode.PARTIAL
    assert "missing.jpg" in captured.err
    assert "wrote 2 views of 1 photos" in captured.out
    samples = read_aflw2000(out / "aflw2000")
    assert [s.name for s in samples] == ["prnet-1_yaw+000_fitted_fitted", "prnet-1_yaw+090_fitted_fitted"]
    assert samples[1].load_annotation().yaw_deg == 90.0
    assert samples[0].load_image().shape == (300, 300, 3)
    assert not list((out / "aflw2000").glob("*.obj"))
    assert not (out / "now").exists()


def test_now_layout_with_presets(home, faces_dir, tmp_path):
    out = tmp_path / "out"
    code = run([str(faces_dir / "prnet-1.jpg"), "-o", str(out), "--yaws", "45", "--layout", "now",
                "--expressions", "neutral,smile", "--lightings", "left", "--background", "plain", "--quiet"])  # fmt: skip
    assert code == ExitCode.OK
    samples = read_now(out / "now")
    assert sorted((s.challenge, s.image_path.stem) for s in samples) == [
        ("expression", "prnet-1_yaw+045_smile_left"), ("neutral", "prnet-1_yaw+045_neutral_left")]
    vertices, _, landmarks = samples[0].load_scan()
    assert landmarks.shape == (7, 3) and vertices.shape[1] == 3


def test_every_photo_unreadable_gives_its_exit_code(home, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    code = run([str(bad), str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"), "--yaws", "0", "--quiet"])
    assert code == ExitCode.IMAGE_READ
    assert capsys.readouterr().err.count("facerecon: ") == 2


@pytest.mark.parametrize(
    "extra, message",
    [(["--yaws", "0,120"], "yaws_deg"), (["--yaws", "a,b"], None), (["--expressions", "grin"], "--expressions"),
     (["--lightings", "disco"], "--lightings"), (["--size", "10"], "image_size")],
)  # fmt: skip
def test_bad_command_lines(extra, message, tmp_path, capsys):
    argv = ["photo.jpg", "-o", str(tmp_path / "out"), *extra]
    if message is None:  # argparse's own type error
        with pytest.raises(SystemExit) as exc:
            run(argv)
        assert exc.value.code == ExitCode.USAGE
        return
    assert run(argv) == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
