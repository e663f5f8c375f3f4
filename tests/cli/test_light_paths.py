"""The command line's light paths import no torch: ``reconstruct --help``, and a resumed run that finds every photo
done (a resume then costs interpreter start-up, not torch's ~2 s of imports). The top-level ``--help`` still builds
every sub-command's parser, and ``eval``'s and ``synth``'s import their methods and presets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Runs the command line, then says whether torch (or anything of it) was imported.
PROBE = """
import sys
from facerecon.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:  # --help
    code = stop.code
print("TORCH" if any(m == "torch" or m.startswith("torch.") for m in sys.modules) else "NO-TORCH")
sys.exit(code)
"""


def _last_line(result: subprocess.CompletedProcess) -> str:
    return result.stdout.strip().splitlines()[-1]


def _probe(model_home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "FACERECON_HOME": str(model_home)})  # fmt: skip


def test_reconstruct_help_imports_no_torch(model_home: Path) -> None:
    result = _probe(model_home, "reconstruct", "--help")
    assert result.returncode == 0 and "usage: facerecon reconstruct" in result.stdout, result.stderr
    assert "--method {fit,regress,posmap}" in result.stdout and _last_line(result) == "NO-TORCH"


@pytest.mark.slow
def test_a_resumed_run_imports_no_torch(model_home: Path, faces_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(faces_dir / "prnet-4.jpg", photos / "prnet-4.jpg")
    args = ["reconstruct", str(photos), "-o", str(tmp_path / "out"), "--stages", "landmarks", "--outputs", "params"]
    first = _probe(model_home, *args)
    assert first.returncode == 0 and _last_line(first) == "TORCH", first.stderr
    assert (tmp_path / "out" / "prnet-4" / "0" / "params.json").is_file()
    again = _probe(model_home, *args)
    assert again.returncode == 0, again.stderr
    assert _last_line(again) == "NO-TORCH"
    assert "skipped 1 of 1 photos" in again.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["reconstructed"] == 0 and summary["failed"] == 0
    # Other options redo the photo, with torch.
    redo = _probe(model_home, *args[:-2], "--outputs", "params,glb")
    assert redo.returncode == 0 and _last_line(redo) == "TORCH", redo.stderr
    assert (tmp_path / "out" / "prnet-4" / "0" / "face.glb").is_file()
