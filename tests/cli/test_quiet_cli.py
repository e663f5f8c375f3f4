"""The command line's terminal is quiet: no MediaPipe/TFLite log lines, no third-party warnings (--verbose shows them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from facerecon.cli.quiet import QuietNativeStderr, is_noise

REPO = Path(__file__).resolve().parents[2]


def _reconstruct(model_home: Path, out: Path, photo: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "facerecon", "reconstruct", str(photo), "-o", str(out), *extra],
        check=False, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "FACERECON_HOME": str(model_home)},
    )  # fmt: skip


# A terminal's cursor controls (CSI sequences): tqdm moves up with "\x1b[A" after clearing a nested bar, e.g. the
# first run's "calibrating landmarks" bar below the "reconstructing" one.
_CURSOR_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _progress_fragments(stderr: str) -> list[str]:
    """stderr without cursor controls, split at carriage returns and newlines, without blanks: what a terminal
    would show, piece by piece."""
    text = _CURSOR_CONTROL.sub("", stderr)
    return [piece for piece in text.replace("\r", "\n").split("\n") if piece.strip()]


@pytest.mark.slow
def test_reconstruct_stderr_holds_only_the_progress_bar(model_home: Path, faces_dir: Path, tmp_path: Path) -> None:
    photo = faces_dir / "prnet-4.jpg"
    result = _reconstruct(model_home, tmp_path / "out", photo)
    assert result.returncode == 0, result.stderr
    pieces = _progress_fragments(result.stderr)
    assert pieces, "the progress bar is missing"
    assert any(piece.startswith("reconstructing:") for piece in pieces)
    for piece in pieces:  # tqdm's bars ("reconstructing: 100%|...| 1/1 [00:03<00:00, ...]"), and nothing else
        assert re.match(r"^[a-z][a-z ]+: .*\[\d\d:\d\d", piece), f"unexpected stderr line: {piece!r}"
    assert "\x1b" not in "".join(pieces)  # only cursor movements were dropped
    for noise in ("W0000", "INFO:", "Warning", "warn", "absl"):
        assert noise not in result.stderr
    assert "| prnet-4 | 0 | ok |" in result.stdout  # the summary table
    assert (tmp_path / "out" / "prnet-4" / "0" / "params.json").is_file()

    loud = _reconstruct(model_home, tmp_path / "loud", photo, "--stages", "landmarks", "--verbose", "--quiet")
    assert loud.returncode == 0, loud.stderr
    assert "inference_feedback_manager" in loud.stderr and "XNNPACK" in loud.stderr


def test_noise_patterns() -> None:
    assert is_noise("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert is_noise("W0000 00:00:1796327436.600764   16463 inference_feedback_manager.cc:114] Feedback manager ...")
    assert is_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    # Errors, fatal lines and anything unknown pass.
    assert not is_noise("E0000 00:00:1796327436.600764   16463 calculator_graph.cc:887] INVALID_ARGUMENT: ...")
    assert not is_noise("F0000 00:00:1796327436.600764   16463 graph.cc:1] Check failed")
    assert not is_noise("Segmentation fault")


def test_native_writes_are_filtered_and_others_pass(tmp_path: Path) -> None:
    """Writes to fd 2 from below Python (os.write, as C++ does) are filtered; other lines and sys.stderr pass."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys\n"
        "from facerecon.cli.quiet import QuietNativeStderr\n"
        "with QuietNativeStderr():\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    os.write(2, b'W0000 00:00:1.2   7 inference_feedback_manager.cc:114] Feedback\\nreal native error\\n')\n"
        "    print('from python', file=sys.stderr)\n"
        "    os.write(2, b'no newline at the end')\n"
        "print('after', file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "real native error" in lines and "from python" in lines
    assert "no newline at the endafter" in lines or ("no newline at the end" in lines and "after" in lines)
    assert "XNNPACK" not in result.stderr and "W0000" not in result.stderr


def test_quiet_stderr_leaves_a_captured_stream_alone(capsys) -> None:
    """Under a capture (not fd 2), Python's stderr is not replaced: what the program prints is still captured."""
    with QuietNativeStderr():
        print("captured line", file=sys.stderr)
    assert "captured line" in capsys.readouterr().err
