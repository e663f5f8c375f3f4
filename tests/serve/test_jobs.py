"""The job runner of ``facerecon serve`` in this process: a job's states and stages, failed jobs, and old jobs
cleaned up after the time limit (folders and statuses), with a real worker process."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from facerecon.pipeline.outputs import DEFAULT_OUTPUTS
from facerecon.pipeline.options import ReconstructOptions
from facerecon.serve.jobs import JobRunner

OPTIONS = ReconstructOptions(stages="landmarks", faces="largest")


def test_clean_removes_only_old_job_folders(tmp_path: Path) -> None:
    runner = JobRunner(tmp_path, keep_seconds=60)
    old, fresh = "a" * 32, "b" * 32
    for name in (old, fresh, "not-a-job"):
        (tmp_path / name / "out").mkdir(parents=True)
    hour_ago = time.time() - 3600
    os.utime(tmp_path / old, (hour_ago, hour_ago))
    os.utime(tmp_path / "not-a-job", (hour_ago, hour_ago))
    assert runner.clean() == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh, "not-a-job"]
    assert runner.folder(fresh) == tmp_path / fresh and runner.folder("../" + fresh) is None
    with pytest.raises(ValueError, match="workers"):
        JobRunner(tmp_path, workers=0)


@pytest.mark.slow
def test_a_job_runs_then_expires(tmp_path: Path, faces_dir: Path, model_home: Path) -> None:
    runner = JobRunner(tmp_path / "jobs", keep_seconds=3, home=model_home, warm_up=False)
    try:
        job, folder = runner.new_job()
        photo = shutil.copyfile(faces_dir / "prnet-4.jpg", folder / "input" / "prnet-4.jpg")
        future = runner.submit(job, Path(photo), "prnet-4", OPTIONS, tuple(DEFAULT_OUTPUTS))
        states = [runner.status(job).state]
        done = future.result(timeout=300)
        status = runner.status(job)
        assert states[0] in ("queued", "running") and status.state == "done", (states, status)
        assert done.result.error is None and len(done.result.faces) == 1
        assert status.started is not None and status.submitted <= status.started <= status.finished
        assert (folder / "out" / "prnet-4" / "0" / "face.glb").is_file()
        assert (folder / "status.json").is_file()  # the worker's last stage: "write"
        assert '"stage": "write"' in (folder / "status.json").read_text()
        # Not an image: the job fails, its folder goes, its status stays (until the time limit).
        bad, bad_folder = runner.new_job()
        (bad_folder / "input" / "notes.jpg").write_text("not a photo")
        failed = runner.run(bad, bad_folder / "input" / "notes.jpg", "notes", OPTIONS, tuple(DEFAULT_OUTPUTS))
        assert failed.result.error_type == "ImageReadError" and not bad_folder.exists()
        assert runner.status(bad).state == "failed"
        time.sleep(3.5)
        removed = runner.clean()
        assert job in removed and not folder.exists()
        assert runner.status(job) is None and runner.status(bad) is None
    finally:
        runner.close()
