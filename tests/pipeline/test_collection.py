"""Collections: the run manifest, resuming (done photos skipped, failed ones retried on request), Ctrl-C with the
manifest consistent. The real pipeline (landmark stage) on shared photos."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facerecon.cli.exit_codes import ExitCode
from facerecon.cli.main import main
from facerecon.pipeline.batch import IN_PROGRESS
from facerecon.pipeline.collection import plan_collection, run_collection
from facerecon.pipeline.manifest import ManifestEntry, ManifestWriter, read_manifest
from facerecon.pipeline.outputs import DEFAULT_OUTPUTS
from facerecon.pipeline.options import ReconstructOptions

REPO = Path(__file__).resolve().parents[2]
PHOTOS = ("prnet-4.jpg", "d3dfr-000002.jpg", "d3dfr-000006.jpg")
COMMON = ["--stages", "landmarks", "--no-images", "--quiet", "--faces", "largest"]


@pytest.fixture()
def photos(faces_dir: Path, tmp_path: Path) -> Path:
    """A folder of three shared photos, one of them in a sub-folder, and an unreadable file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copyfile(faces_dir / PHOTOS[0], folder / PHOTOS[0])
    shutil.copyfile(faces_dir / PHOTOS[1], folder / PHOTOS[1])
    shutil.copyfile(faces_dir / PHOTOS[2], folder / "sub" / PHOTOS[2])
    (folder / "broken.jpg").write_bytes(b"not a photo")
    return folder


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _mtimes(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in out.rglob("params.json")}


@pytest.mark.slow
def test_manifest_resume_and_retry(photos: Path, tmp_path: Path, model_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    out = tmp_path / "out"
    args = ["reconstruct", str(photos), "-o", str(out), "--workers", "1", *COMMON]
    assert main(args) == ExitCode.PARTIAL
    lines = _lines(out)
    assert [(line["output"], line["status"]) for line in lines] == [
        ("broken", "failed"), ("d3dfr-000002", "ok"), ("prnet-4", "ok"), ("sub/d3dfr-000006", "ok")]
    broken = lines[0]
    assert broken["error_type"] == "ImageReadError" and "not an image" in broken["reason"]
    assert broken["path"] == str(photos / "broken.jpg")
    for line in lines[1:]:
        assert line["faces"] == 1 and line["seconds"] > 0 and line["reason"] == ""
        assert (out / line["output"] / "0" / "params.json").is_file()
    assert not (out / "broken").exists() and not list(out.rglob(IN_PROGRESS))
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["inputs"], summary["reconstructed"], summary["failed"], summary["skipped_done_earlier"]) == (4, 3, 1, 0)
    assert summary["interrupted"] is False and summary["engine"] == "local"

    # The same command again: nothing is redone (not even the model loaded), the failure stands.
    before = _mtimes(out)
    start = time.perf_counter()
    assert main(args) == ExitCode.PARTIAL
    assert time.perf_counter() - start < 2.0
    assert _mtimes(out) == before and _lines(out) == lines
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["reconstructed"], summary["failed"], summary["skipped_done_earlier"]) == (0, 0, 4)

    # --retry-failed tries the failed photo only; a deleted output folder is redone.
    shutil.rmtree(out / "prnet-4")
    assert main([*args, "--retry-failed"]) == ExitCode.PARTIAL
    after = _mtimes(out)
    assert {k: v for k, v in after.items() if "prnet-4" not in k} == {k: v for k, v in before.items() if "prnet-4" not in k}
    assert (out / "prnet-4" / "0" / "params.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["reconstructed"], summary["failed"], summary["skipped_done_earlier"]) == (1, 1, 2)
    assert len(_lines(out)) == 4  # one line per input, after every run

    # Other options redo every photo; the photo that cannot be read is left out of the next run's inputs and keeps
    # its line.
    (photos / "broken.jpg").unlink()
    assert main(["reconstruct", str(photos), "-o", str(out), "--workers", "1", *COMMON[:-2]]) == ExitCode.OK
    assert all(_mtimes(out)[k] > after[k] for k in after)
    assert [line["status"] for line in _lines(out)] == ["ok", "ok", "ok", "failed"]


def test_manifest_lines_survive_a_cut_last_line(tmp_path: Path) -> None:
    entry = ManifestEntry(str(tmp_path / "a.jpg"), "ok", "a", seconds=1.5, faces=1, options="x")
    with ManifestWriter(tmp_path) as writer:
        writer.append(entry)
        writer.append(ManifestEntry(str(tmp_path / "a.jpg"), "failed", "a", reason="later", options="x"))
        writer.append(ManifestEntry(str(tmp_path / "b.jpg"), "ok", "b", faces=2, options="x"))
    text = (tmp_path / "manifest.jsonl").read_text()
    (tmp_path / "manifest.jsonl").write_text(text[:-20])  # a crash mid-line
    entries = read_manifest(tmp_path)
    assert list(entries) == [str(tmp_path / "a.jpg")] and entries[str(tmp_path / "a.jpg")].reason == "later"
    with pytest.raises(ValueError, match="status"):
        ManifestEntry("p", "done", "p")


@pytest.mark.slow
def test_stopping_the_run_keeps_the_manifest_consistent(photos: Path, tmp_path: Path, model_home: Path) -> None:
    """The caller stops after the first photo (what Ctrl-C in the command's loop does): no worker is left, no partial
    folder, one line per input; the next run does only the rest."""
    (photos / "broken.jpg").unlink()
    out = tmp_path / "out"
    options = ReconstructOptions(stages="landmarks", render_images=False, faces="largest")
    plan = plan_collection([photos], out, options, DEFAULT_OUTPUTS)
    run = run_collection(plan, workers=2, home=model_home, progress=False)
    first = next(run)
    with pytest.raises(KeyboardInterrupt):
        run.throw(KeyboardInterrupt)
    assert not multiprocessing.active_children()
    lines = _lines(out)
    assert len(lines) == 3 and not list(out.rglob(IN_PROGRESS))
    done = [line for line in lines if line["status"] == "ok"]
    assert [line["output"] for line in done] == [first.item.name]
    for line in lines:
        folder = out / line["output"]
        assert folder.exists() == (line["status"] == "ok")
        if line["status"] == "skipped":
            assert "interrupted" in line["reason"]
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    plan = plan_collection([photos], out, options, DEFAULT_OUTPUTS)
    assert len(plan.todo) == 2 and [entry.output for entry in plan.done] == [first.item.name]
    assert sorted(result.item.name for result in run_collection(plan, workers=1, home=model_home, progress=False)) == \
        sorted(line["output"] for line in lines if line["status"] == "skipped")  # fmt: skip
    assert [line["status"] for line in _lines(out)] == ["ok"] * 3


def _session_processes(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":  # session id; zombies are already gone
                pids.append(int(entry.name))
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "(gone)"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_ctrl_c_on_the_command(faces_dir: Path, tmp_path: Path, model_home: Path) -> None:
    """SIGINT to the whole process group (a terminal's Ctrl-C) once the first photo is recorded: exit 130, a line
    per input, no partial folder, no process left behind."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(6):
        shutil.copyfile(faces_dir / PHOTOS[k % 3], folder / f"p{k}.jpg")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "facerecon", "reconstruct", str(folder), "-o", str(out), "--workers", "2", *COMMON],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "FACERECON_HOME": str(model_home)}, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell would ignore it
    )  # fmt: skip
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.exists() and manifest.read_text().strip():
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert "run the same command again to resume" in stderr
    deadline = time.monotonic() + 20  # multiprocessing's resource tracker ends when it reads EOF, a moment later
    while _session_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: _cmdline(pid) for pid in _session_processes(process.pid)}
    assert not left, left
    lines = _lines(out)
    assert len(lines) == 6 and not list(out.rglob(IN_PROGRESS))
    statuses = [line["status"] for line in lines]
    assert "ok" in statuses and "skipped" in statuses and "failed" not in statuses
    for line in lines:
        assert (out / line["output"]).exists() == (line["status"] == "ok"), line
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True


@pytest.mark.slow
def test_a_long_summary_shows_only_the_failures(photos: Path, tmp_path: Path, model_home: Path, monkeypatch,
                                                capsys) -> None:  # fmt: skip
    import facerecon.cli.reconstruct as command

    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    monkeypatch.setattr(command, "TABLE_ROWS", 2)  # 4 rows: above the limit
    out = tmp_path / "out"
    assert main(["reconstruct", str(photos), "-o", str(out), "--workers", "1", *COMMON[:-3], "--faces", "largest"]) == \
        ExitCode.PARTIAL  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines if line.startswith("| ") and "---" not in line] == ["| image", "| broken"]
    assert lines[-1] == f"3 faces reconstructed in 4 photos (1 failures shown above); every photo is in {out / 'manifest.jsonl'}"


@pytest.mark.slow
def test_a_redone_photo_keeps_no_stale_face(faces_dir: Path, tmp_path: Path, model_home: Path) -> None:
    """A photo redone with other options loses what the earlier run wrote (here a face folder it no longer has)."""
    out = tmp_path / "out"
    photo = faces_dir / "3ddfa-emma.jpg"  # three faces
    everyone = ReconstructOptions(stages="landmarks", render_images=False, faces="all")
    largest = ReconstructOptions(stages="landmarks", render_images=False, faces="largest")
    for options, faces in ((everyone, {"0", "1", "2"}), (largest, {"0"})):
        plan = plan_collection([photo], out, options, DEFAULT_OUTPUTS)
        assert len(plan.todo) == 1
        list(run_collection(plan, workers=1, home=model_home, progress=False))
        assert {p.name for p in (out / "3ddfa-emma").iterdir()} == faces
