"""The Ray engine on a real local Ray instance (2 CPUs, started and stopped here): the same outputs as a serial run,
the manifest, a bad photo reported, a killed worker's photo retried, a second run that skips everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facerecon.cli.exit_codes import ExitCode
from facerecon.cli.main import main
from facerecon.pipeline.batch import IN_PROGRESS
from facerecon.pipeline.inputs import BatchItem
from facerecon.pipeline.outputs import DEFAULT_OUTPUTS
from facerecon.pipeline.options import ReconstructOptions

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra (in the test extra)")
from facerecon.pipeline.ray_batch import reconstruct_batch_ray  # noqa: E402

PHOTOS = ("prnet-4.jpg", "d3dfr-000002.jpg", "d3dfr-000006.jpg")
COMMON = ["--stages", "landmarks", "--no-images", "--quiet", "--faces", "largest"]


def _params(path: Path) -> dict:
    params = json.loads(path.read_text())
    params.pop("timings_ms")
    return params


@pytest.mark.slow
def test_ray_writes_what_a_serial_run_writes(faces_dir: Path, tmp_path: Path, model_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PHOTOS:
        shutil.copyfile(faces_dir / name, photos / name)
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert not ray.is_initialized()
    ray_out, serial_out = tmp_path / "ray", tmp_path / "serial"
    assert main(["reconstruct", str(photos), "-o", str(ray_out), "--engine", "ray", "--workers", "2", *COMMON]) == \
        ExitCode.PARTIAL  # fmt: skip
    assert not ray.is_initialized()  # the local instance it started is stopped
    assert main(["reconstruct", str(photos), "-o", str(serial_out), "--workers", "1", *COMMON]) == ExitCode.PARTIAL
    for name in PHOTOS:
        stem = Path(name).stem
        assert _params(ray_out / stem / "0" / "params.json") == _params(serial_out / stem / "0" / "params.json")
    lines = [json.loads(line) for line in (ray_out / "manifest.jsonl").read_text().splitlines()]
    assert [(line["output"], line["status"]) for line in lines] == [
        ("broken", "failed"), ("d3dfr-000002", "ok"), ("d3dfr-000006", "ok"), ("prnet-4", "ok")]
    assert lines[0]["error_type"] == "ImageReadError" and not (ray_out / "broken").exists()
    summary = json.loads((ray_out / "summary.json").read_text())
    assert summary["engine"] == "ray" and (summary["reconstructed"], summary["failed"]) == (3, 1)
    # The same command again: everything is done, Ray is not even started.
    start = time.perf_counter()
    assert main(["reconstruct", str(photos), "-o", str(ray_out), "--engine", "ray", *COMMON]) == ExitCode.PARTIAL
    assert time.perf_counter() - start < 2.0 and not ray.is_initialized()
    assert json.loads((ray_out / "summary.json").read_text())["skipped_done_earlier"] == 4


def _kill_first_worker(output: Path, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the Ray worker of the first photo seen in progress (its pid is in the marker)."""
    while not stop.is_set() and not killed:
        for marker in output.rglob(IN_PROGRESS):
            try:
                pid = int(marker.read_text())
            except (OSError, ValueError):
                continue
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


@pytest.mark.slow
def test_a_killed_ray_worker_costs_no_photo(faces_dir: Path, tmp_path: Path, model_home: Path) -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        items = [BatchItem(faces_dir / name, f"{Path(name).stem}-{k}") for k in range(2) for name in PHOTOS[:2]]
        options = ReconstructOptions(stages="landmarks", render_images=False, faces="largest")
        killed: list[int] = []
        stop = threading.Event()
        killer = threading.Thread(target=_kill_first_worker, args=(tmp_path, killed, stop), daemon=True)
        killer.start()
        results = list(reconstruct_batch_ray(items, tmp_path, options, DEFAULT_OUTPUTS, home=model_home,
                                             progress=False))  # fmt: skip
        stop.set()
        killer.join()
        assert ray.is_initialized()  # an instance this process started is left to it
    finally:
        ray.shutdown()
    assert killed, "no worker was killed"
    assert sorted(r.item.name for r in results) == sorted(item.name for item in items)
    assert all(r.error is None and len(r.faces) == 1 for r in results), [r.error for r in results]
    for item in items:
        assert (tmp_path / item.name / "0" / "params.json").is_file()
    assert not list(tmp_path.rglob(IN_PROGRESS))


def _ray_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], check=False, capture_output=True,
                          text=True, timeout=180, stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.mark.slow
def test_a_running_cluster_by_address(faces_dir: Path, tmp_path: Path, model_home: Path, monkeypatch, capsys) -> None:
    """A cluster started with `ray start --head` (as on a cluster's head node, here on the loopback address) is joined
    with --address auto; once it is stopped, the same command says so in one line with exit code 11 and records every
    photo as not done."""
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PHOTOS[:2]:
        shutil.copyfile(faces_dir / name, photos / name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = _ray_cli("start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                       "--include-dashboard=false", "--disable-usage-stats")  # fmt: skip
    assert started.returncode == 0, started.stderr[-2000:]
    address = "auto"
    try:
        out = tmp_path / "out"
        assert main(["reconstruct", str(photos), "-o", str(out), "--engine", "ray", "--address", address, *COMMON]) == 0
        assert not ray.is_initialized()  # disconnected; the cluster itself keeps running
        for name in PHOTOS[:2]:
            assert (out / Path(name).stem / "0" / "params.json").is_file()
    finally:
        _ray_cli("stop", "--force")
    capsys.readouterr()
    gone = tmp_path / "gone"
    assert main(["reconstruct", str(photos), "-o", str(gone), "--engine", "ray", "--address", address, *COMMON]) == \
        ExitCode.ENGINE  # fmt: skip
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot start or reach the Ray cluster at auto" in lines[0], lines
    statuses = [json.loads(line)["status"] for line in (gone / "manifest.jsonl").read_text().splitlines()]
    assert statuses == ["skipped", "skipped"]
