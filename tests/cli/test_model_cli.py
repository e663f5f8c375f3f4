"""`facerecon model install|info` through the real console script: output, JSON, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from facerecon.cli.exit_codes import ExitCode
from facerecon.cli.main import main


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "facerecon", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_info_json_installs_on_first_use(ict_zip: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _run("model", "info", "--json", env={"FACERECON_HOME": str(home), "FACERECON_ICT_SOURCE": str(ict_zip)})
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["vertices"] == 26_719 and info["identity_modes"] == 100 and info["expression_modes"] == 53
    assert info["landmark_schemes"]["ibug68"] == 68
    assert info["licence"] == "MIT" and info["source"] == str(ict_zip)
    assert set(info["regions"]) >= {"forehead", "nose", "mouth", "ears", "eyeballs", "mouth_interior"}
    text = _run("model", "info", env={"FACERECON_HOME": str(home), "FACERECON_ICT_SOURCE": str(ict_zip)})
    assert text.returncode == 0 and "100 modes" in text.stdout and "MIT" in text.stdout


def test_install_twice_reports_reuse(model_home: Path, ict_zip: Path, capsys) -> None:
    assert main(["model", "install", "--source", str(ict_zip), "--home", str(model_home)]) == ExitCode.OK
    assert "already installed" in capsys.readouterr().out


def test_exit_codes(tmp_path: Path, model_home: Path) -> None:
    missing = _run("model", "install", "--source", str(tmp_path / "nope.zip"), "--home", str(tmp_path / "h"))
    assert missing.returncode == ExitCode.MODEL_SOURCE
    assert missing.stderr.strip().count("\n") == 0 and "model source not found" in missing.stderr
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("README.md", "no model here")
    wrong = _run("model", "install", "--source", str(bad), "--home", str(tmp_path / "h"))
    assert wrong.returncode == ExitCode.MODEL_SOURCE and "FaceXModel" in wrong.stderr
    assert not (tmp_path / "h" / "models" / "ict-facekit").exists()
    not_installed = _run("model", "info", "--no-install", "--home", str(tmp_path / "empty"))
    assert not_installed.returncode == ExitCode.MODEL_CACHE and "facerecon model install" in not_installed.stderr
    usage = _run("model", "frobnicate")
    assert usage.returncode == ExitCode.USAGE
