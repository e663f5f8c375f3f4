"""``facerecon eval`` end to end, through facerecon.cli.eval (add_parser + run) until main.py lists it."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facerecon.cli import eval as eval_cli
from facerecon.cli.exit_codes import ExitCode
from facerecon.core.optional import install_hint
from facerecon.eval import MethodOutput, register_method, unregister_method

REPO = Path(__file__).resolve().parents[2]


def _helpers():
    name = "facerecon_tests_eval_datasets"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "eval" / "eval_datasets.py"
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="facerecon")
    eval_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *argv])
    return int(args.func(args))


class _OffsetRender:
    """Renders the photo itself, +-0.1 per channel inside a central box (known PSNR 20 dB, L1 0.1)."""

    def __init__(self, offset: float = 0.1) -> None:
        self.offset = offset

    def predict(self, image, *, face_box=None):
        h, w = image.shape[:2]
        mask = np.zeros((h, w), dtype=bool)
        mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = True
        photo = image / 255.0
        return MethodOutput(rendered=photo + np.where(photo > 0.5, -self.offset, self.offset), mask=mask)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


@pytest.fixture
def offset_method():
    register_method("test-offset", _OffsetRender, provides=("render",), description="test rendering", replace=True)
    yield "test-offset"
    unregister_method("test-offset")


@pytest.fixture(scope="module")
def aflw(tmp_path_factory, faces_dir) -> Path:
    folder = tmp_path_factory.mktemp("aflw-cli") / "AFLW2000"
    _helpers().make_aflw(folder, faces_dir)
    return folder


def test_aflw2000_dlib_and_mediapipe(aflw, tmp_path, capsys, artifacts_dir) -> None:
    """Ground truth from dlib on the same files: dlib scores 0, MediaPipe a few percent."""
    code = run(["aflw2000", str(aflw), "--method", "dlib", "--json", str(tmp_path / "dlib.json")])
    out = capsys.readouterr()
    assert code == ExitCode.OK
    js = json.loads((tmp_path / "dlib.json").read_text())
    assert js["nme_mean"] == 0.0 and js["method"] == "dlib" and js["failed"] == 0
    assert {k: v["count"] for k, v in js["nme_by_yaw"].items()} == {"[0, 30)": 2, "[30, 60)": 2, "[60, 90]": 2}
    assert all(v["nme_mean"] == 0.0 for v in js["nme_by_yaw"].values())
    assert "| dlib |" in out.out and "failed: 0 of 6" in out.out
    png = tmp_path / "dlib-ced.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code = run(["aflw2000", str(aflw), "--method", "mediapipe", "--json", str(tmp_path / "mp.json"),
                "--plot", str(tmp_path / "mp.png")])  # fmt: skip
    assert code == ExitCode.OK
    js = json.loads((tmp_path / "mp.json").read_text())
    assert 0.5 < js["nme_mean"] < 6.0  # percent: two landmark schemes that agree to a few px
    assert sum(v["count"] for v in js["nme_by_yaw"].values()) == 6 == len(js["rows"])
    assert js["nme_balanced_mean"] == pytest.approx(np.mean([v["nme_mean"] for v in js["nme_by_yaw"].values()]), abs=1e-5)
    assert (tmp_path / "mp.png").is_file()
    if artifacts_dir is not None:
        shutil.copyfile(tmp_path / "mp.png", artifacts_dir / "eval_aflw_mediapipe_ced.png")


def test_aflw2000_bad_files_are_counted(aflw, tmp_path, capsys) -> None:
    d = tmp_path / "d"
    shutil.copytree(aflw, d)
    (d / "image00000.mat").unlink()
    (d / "image00001.jpg").write_bytes(b"\xff\xd8 truncated")
    (d / "image00002.mat").write_bytes(b"not a mat file")
    (d / "image00009.mat").write_bytes((d / "image00003.mat").read_bytes())  # no image
    code = run(["aflw2000", str(d), "--method", "dlib", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert code == ExitCode.PARTIAL
    assert "failed: 4 of 7 (missing 2, unreadable 2)" in out.out
    lines = [ln for ln in out.err.splitlines() if ln.startswith("facerecon eval: [")]
    assert len(lines) == 4 and any("image00009" in ln and "missing" in ln for ln in lines)
    js = json.loads((tmp_path / "r.json").read_text())
    assert js["failed"] == 4 and js["evaluated"] == 3 and js["nme_mean"] == 0.0
    # --quiet keeps stderr free of per-image lines.
    run(["aflw2000", str(d), "--method", "dlib", "--quiet"])
    assert "facerecon eval: [" not in capsys.readouterr().err


def test_now_mean_face(tmp_path, face_model, model_home, faces_dir, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    _helpers().make_now(tmp_path / "data", face_model, faces_dir)
    code = run(["now", str(tmp_path / "data"), "--method", "mean-face", "--json", str(tmp_path / "now.json")])
    out = capsys.readouterr()
    assert code == ExitCode.OK
    js = json.loads((tmp_path / "now.json").read_text())
    assert js["mean_mm"] < 1e-4 and js["median_mm"] < 1e-4 and js["evaluated"] == 4
    assert "| mean-face | all |" in out.out and "| mean-face | selfie |" in out.out
    assert (tmp_path / "now-ced.png").is_file()
    # Only the landmark methods: unfit for NoW (a usage error naming the methods that fit).
    assert run(["now", str(tmp_path / "data"), "--method", "dlib"]) == ExitCode.USAGE
    assert "gives no mesh" in capsys.readouterr().err


def test_photos(tmp_path, faces_dir, offset_method, capsys, artifacts_dir) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("deca-exp-2.jpg", "d3dfr-000002.jpg"):
        shutil.copyfile(faces_dir / name, photos / name)
    (photos / "zz.jpg").write_bytes(b"")
    code = run(["photos", str(photos), "--method", offset_method, "--json", str(tmp_path / "p.json")])
    out = capsys.readouterr()
    assert code == ExitCode.PARTIAL
    js = json.loads((tmp_path / "p.json").read_text())
    assert js["psnr_mean"] == pytest.approx(20.0, abs=1e-5)
    assert js["l1_mean"] == pytest.approx(0.1, abs=1e-6)
    assert js["photometric_mean"] == pytest.approx(np.sqrt(3) * 0.1, abs=1e-6)
    assert 0.5 < js["ssim_mean"] < 1.0 and 0.9 < js["identity_cosine_mean"] <= 1.0
    assert js["identity_status"] == "measured" and js["identity_message"] == "" and js["identity_cosine_count"] == 2
    assert "identity cosine unavailable" not in out.err
    assert [r["status"] for r in js["rows"]] == ["ok", "ok", "unreadable"]
    assert "failed: 1 of 3 (unreadable 1)" in out.out
    assert (tmp_path / "p-ced.png").is_file()
    code = run(["photos", str(photos), "--method", offset_method, "--no-identity", "--limit", "2",
                "--json", str(tmp_path / "q.json")])  # fmt: skip
    assert code == ExitCode.OK
    js = json.loads((tmp_path / "q.json").read_text())
    assert js["identity_cosine_mean"] is None and js["identity_status"] == "skipped"
    assert "| skipped |" in capsys.readouterr().out


def test_usage_errors(tmp_path, aflw, offset_method, capsys) -> None:
    assert run(["aflw2000", str(tmp_path / "nope")]) == ExitCode.USAGE
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run(["photos", str(tmp_path / "empty"), "--method", offset_method]) == ExitCode.USAGE
    assert "no images found" in capsys.readouterr().err
    assert run(["photos", str(aflw), "--method", "mediapipe"]) == ExitCode.USAGE  # no rendering
    assert "gives no render" in capsys.readouterr().err
    assert run(["aflw2000", str(aflw), "--method", "dlib", "-O", "nonsense"]) == ExitCode.USAGE
    assert run(["aflw2000", str(aflw), "--method", "dlib", "-O", "no_such_option=1"]) == ExitCode.USAGE
    assert run(["aflw2000", str(aflw), "--limit", "0"]) == ExitCode.USAGE
    assert run(["now", str(aflw), "--method", "mean-face"]) == ExitCode.USAGE  # not a NoW folder
    with pytest.raises(SystemExit):
        run(["aflw2000", str(aflw), "--method", "no-such-method"])


def test_method_options_are_passed(aflw, tmp_path) -> None:
    code = run(["aflw2000", str(aflw), "--method", "dlib", "-O", "face_detector=hog", "-O", "upsample=0",
                "--limit", "1", "--json", str(tmp_path / "o.json")])  # fmt: skip
    assert code == ExitCode.OK
    assert json.loads((tmp_path / "o.json").read_text())["images"] == 1
    assert eval_cli._parse_value("3") == 3 and eval_cli._parse_value("0.5") == 0.5
    assert eval_cli._parse_value("True") is True and eval_cli._parse_value("none") is None
    assert eval_cli._parse_value("cnn") == "cnn"


# ------------------------------------------------------------------------------------ without the dlib extra
def _run_without_dlib(tmp_path: Path, model_home: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m facerecon ARGS`` in a process where dlib and face_recognition_models cannot be imported.

    A sitecustomize puts None in sys.modules for both, which is what a missing package looks like to ``import``
    (ModuleNotFoundError naming it) and to ``importlib.util.find_spec`` (None).
    """
    blocker = tmp_path / "no-dlib"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor _name in ('dlib', 'face_recognition_models'):\n    sys.modules[_name] = None\n"
    )
    path = os.pathsep.join(p for p in (str(blocker), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "facerecon", *args],
        check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path, "FACERECON_HOME": str(model_home)},
    )  # fmt: skip


@pytest.mark.slow
def test_photos_without_dlib_reports_identity_unavailable(tmp_path, model_home, faces_dir) -> None:
    """The real pipeline (landmark stage only) on two small shared photos: every other metric measured, identity
    unavailable, exit 0."""
    hint = install_hint("dlib")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("d3dfr-000002.jpg", "d3dfr-000006.jpg", "d3dfr-000007.jpg"):  # the third is cut off by --limit
        shutil.copyfile(faces_dir / name, photos / name)
    report = tmp_path / "photos.json"
    result = _run_without_dlib(tmp_path, model_home, "eval", "photos", str(photos), "--limit", "2",
                               "-O", "stages=landmarks", "--json", str(report))  # fmt: skip
    assert result.returncode == ExitCode.OK, result.stderr
    # One line on stderr says so, with the install hint (and that dlib really was missing in the child).
    # (A first run calibrates the model under a progress bar: its "\r" updates and cursor moves are not lines.)
    shown = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.stderr).replace("\r", "\n").splitlines()
    lines = [ln for ln in shown if ln.strip() and not ln.startswith("facerecon eval: wrote ")
             and not re.match(r"^calibrating landmarks: .*\[\d\d:\d\d", ln)]  # fmt: skip
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("facerecon eval: identity cosine unavailable:")
    assert "needs dlib, which is not installed" in lines[0] and lines[0].endswith(hint)
    js = json.loads(report.read_text())
    assert js["images"] == js["evaluated"] == 2 and js["failed"] == 0
    for key in ("photometric", "psnr", "ssim", "l1"):
        assert js[f"{key}_count"] == 2 and math.isfinite(js[f"{key}_mean"]), key
        assert all(math.isfinite(r[key]) for r in js["rows"]), key
    assert 0 < js["photometric_mean"] < 1 and 0 < js["ssim_mean"] <= 1 and js["psnr_mean"] > 5
    assert js["identity_status"] == "unavailable" and js["identity_message"].endswith(hint)
    assert js["identity_cosine_mean"] is None and js["identity_cosine_std"] is None and js["identity_cosine_count"] == 0
    assert all(r["identity_cosine"] is None and r["identity_message"] == "unavailable" for r in js["rows"])
    # The markdown table: the identity column says unavailable, and a note says why.
    head, _, row = result.stdout.splitlines()[:3]
    cells = dict(zip([c.strip() for c in head.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["identity cosine"] == "unavailable" and "±" in cells["photometric"] and "±" in cells["SSIM"]
    assert f"Identity cosine unavailable: {js['identity_message']}" in result.stdout
    assert (tmp_path / "photos-ced.png").is_file()


def test_method_dlib_without_dlib_fails_with_the_hint(tmp_path, model_home, aflw) -> None:
    """A method asked for by name that needs dlib does not degrade: the install hint and exit code 4."""
    result = _run_without_dlib(tmp_path, model_home, "eval", "aflw2000", str(aflw), "--method", "dlib", "--limit", "1")
    assert result.returncode == ExitCode.MODEL_CACHE, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"facerecon: error: dlib's 68-point landmark detector needs dlib, which is not installed; {install_hint('dlib')}"
    )
    assert result.stdout == ""
