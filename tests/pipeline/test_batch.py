"""Batches in worker processes: the same results as in this process, bad items reported, a killed worker survived."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from facerecon.cli.exit_codes import ExitCode
from facerecon.cli.main import main
from facerecon.pipeline.batch import IN_PROGRESS, BatchItem, reconstruct_batch
from facerecon.pipeline.outputs import DEFAULT_OUTPUTS
from facerecon.pipeline.options import ReconstructOptions

PHOTOS = ("prnet-4.jpg", "d3dfr-000002.jpg", "prnet-3.jpg")
LANDMARKS_ONLY = ReconstructOptions(stages="landmarks", render_images=False, faces="largest")


def _params(folder: Path) -> dict:
    params = json.loads((folder / "params.json").read_text())
    params.pop("timings_ms")
    return params


@pytest.mark.slow
def test_workers_write_what_one_process_writes(faces_dir: Path, tmp_path: Path, model_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    images = [str(faces_dir / name) for name in PHOTOS] + [str(broken)]
    common = ["--stages", "landmarks", "--no-images", "--quiet", "--faces", "largest"]
    assert main(["reconstruct", *images, "-o", str(tmp_path / "serial"), "--workers", "1", *common]) == ExitCode.PARTIAL
    assert main(["reconstruct", *images, "-o", str(tmp_path / "pool"), "--workers", "2", *common]) == ExitCode.PARTIAL
    for name in PHOTOS:
        stem = Path(name).stem
        assert _params(tmp_path / "pool" / stem / "0") == _params(tmp_path / "serial" / stem / "0")
    for run in ("serial", "pool"):  # the unreadable photo leaves nothing behind
        written = sorted(p.name for p in (tmp_path / run).iterdir())
        assert written == sorted([*(Path(n).stem for n in PHOTOS), "manifest.jsonl", "summary.json"])
    assert not list((tmp_path / "pool").rglob(IN_PROGRESS))
    assert main(["reconstruct", *images[:1], "-o", str(tmp_path / "bad"), "--workers", "0"]) == ExitCode.USAGE


@pytest.mark.slow
def test_a_killed_worker_costs_no_photo(faces_dir: Path, tmp_path: Path, model_home: Path) -> None:
    """SIGKILL one worker as soon as the first photo is done: the pool is replaced, every photo still comes out once,
    complete, and no in-progress marker or partial folder is left."""
    items = [BatchItem(faces_dir / name, f"{Path(name).stem}-{k}") for k in range(2) for name in PHOTOS]
    seen: list[str] = []
    killed = False
    for result in reconstruct_batch(items, tmp_path, LANDMARKS_ONLY, DEFAULT_OUTPUTS, workers=2, home=model_home,
                                    progress=False):  # fmt: skip
        seen.append(result.item.name)
        assert result.error is None, result.error
        if not killed:
            children = multiprocessing.active_children()
            assert children
            os.kill(children[0].pid, signal.SIGKILL)
            killed = True
    assert sorted(seen) == sorted(item.name for item in items)
    for item in items:
        assert (tmp_path / item.name / "0" / "params.json").is_file()
    assert not list(tmp_path.rglob(IN_PROGRESS))
