"""Reconstruction jobs of the HTTP server: one folder per upload, run by a pool of worker processes.

A job is one uploaded photo: ``ROOT/<job>/input/<file name>`` and its outputs in ``ROOT/<job>/out/<name>/<face>/``
(the files of ``facerecon reconstruct``). The pool has one process per worker (default: one per core), each with its
own model copy and one :class:`~facerecon.pipeline.run.Reconstructor` per set of options it has been asked for, so
requests queue for a free process and two users at once are served side by side.

A job goes ``queued`` -> ``running`` (the worker writes the stage it is at into ``ROOT/<job>/status.json``) ->
``done`` or ``failed``. A failed job (no face, not an image, a worker that died) leaves no folder, only its status in
memory; finished jobs and their folders are removed once older than ``keep_seconds``.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from facerecon.core.errors import FaceReconError
from facerecon.io.atomic import write_text_atomic
from facerecon.pipeline.batch import (
    ItemResult,
    prepare_worker_process,
    process_model,
    process_reconstructor,
    reconstruct_in_folder,
)
from facerecon.pipeline.inputs import BatchItem

__all__ = ["JOB_ID", "JobResult", "JobRunner", "JobStatus"]

#: A job's id: 32 hex digits (so a URL cannot name anything but a job folder).
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: The file a worker keeps a running job's stage in.
STATUS_FILE = "status.json"


def _worker_init(home: str | None, quiet: bool, warm_up: bool) -> None:
    prepare_worker_process(quiet)
    model = process_model(home)  # loaded before any job
    if warm_up:
        _warm_up(model, home)


def _warm_up(model, home: str | None) -> None:
    """Run the default reconstruction once on a render of the model's mean face, so that the first photo does not
    pay for the one-time costs (MediaPipe's graphs, compiled kernels, first allocations: ~2.5 s of ~6 s here)."""
    from facerecon.calibrate import render_calibration_views
    from facerecon.pipeline.options import ReconstructOptions

    images, _ = render_calibration_views(model, rows=[0])  # frontal, 512 px
    try:
        process_reconstructor(ReconstructOptions(), home).run(images[0], name="warm-up")
    except FaceReconError:  # a render the detector misses only leaves the first photo slower
        pass


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _worker_run(item: BatchItem, folder: Path, options, outputs: tuple[str, ...], home: str | None) -> ItemResult:
    """Reconstruct one upload in this worker, with its Reconstructor for ``options``; each stage is written to the
    job's status file as it starts."""
    status = folder / STATUS_FILE
    started = time.time()

    def report(progress) -> None:
        record = {"stage": progress.stage, "face": progress.face, "faces": progress.faces, "started": started}
        try:
            write_text_atomic(status, json.dumps(record))
        except OSError:  # the job was removed under us: the result is thrown away anyway
            pass

    return reconstruct_in_folder(process_reconstructor(options, home), item, folder / "out", outputs, report)


@dataclass(frozen=True)
class JobResult:
    """A finished job: its id and folder, and the batch's result for its photo."""

    job: str
    folder: Path
    result: ItemResult


@dataclass
class JobStatus:
    """Where a job is. Times are ``time.time()`` seconds; ``stage``/``face``/``faces`` as in
    :class:`~facerecon.pipeline.run.Progress` while running; ``ahead`` is the number of jobs queued before a
    queued one; ``result`` once done or failed."""

    job: str
    state: str  # "queued" | "running" | "done" | "failed"
    submitted: float
    started: float | None = None
    finished: float | None = None
    stage: str | None = None
    face: int = 0
    faces: int = 0
    ahead: int = 0
    result: JobResult | None = field(default=None, repr=False)


class JobRunner:
    """Runs jobs in a pool of worker processes and keeps their folders under ``root``.

    Args:
        root: where job folders live (created).
        workers: processes (one job each at a time).
        keep_seconds: finished jobs older than this are removed (checked at each new job).
        home: the model cache (default ``$FACERECON_HOME``).
        quiet: hide third-party warnings in the workers.
        warm_up: each worker reconstructs a render of the mean face once as it starts (see :meth:`start`).
    """

    def __init__(self, root: str | os.PathLike[str], *, workers: int = 1, keep_seconds: float = 3600.0,
                 home: str | os.PathLike[str] | None = None, quiet: bool = True, warm_up: bool = True) -> None:  # fmt: skip
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: expected a positive int, got {workers!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.keep_seconds = float(keep_seconds)
        self._home = None if home is None else str(home)
        self._quiet = quiet
        self._warm_up = warm_up
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._jobs: dict[str, JobStatus] = {}

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                    initargs=(self._home, self._quiet, self._warm_up))  # fmt: skip
            return self._pool

    def start(self, timeout: float = 600.0) -> None:
        """Start the worker processes now and wait until each has loaded the model and warmed up, rather than let
        the first jobs wait for that."""
        pool, seen = self._executor(), set()
        deadline = time.monotonic() + timeout
        while len(seen) < self.workers and time.monotonic() < deadline:  # until every process has answered
            seen.update(f.result() for f in [pool.submit(_pid_after, 0.05) for _ in range(self.workers)])

    def new_job(self) -> tuple[str, Path]:
        """A new job id and its (created) folder; old jobs are cleaned up first."""
        self.clean()
        job = secrets.token_hex(16)
        folder = self.root / job
        (folder / "input").mkdir(parents=True)
        return job, folder

    def folder(self, job: str) -> Path | None:
        """The folder of an existing job, or None (also for a malformed id)."""
        if not JOB_ID.match(job):
            return None
        folder = self.root / job
        return folder if folder.is_dir() else None

    def submit(self, job: str, photo: Path, name: str, options, outputs: tuple[str, ...]) -> concurrent.futures.Future:
        """Queue ``photo`` (inside the job's folder) for reconstruction into ``out/<name>/``; returns a future of
        its :class:`JobResult`, which is also kept for :meth:`status`. A failed job's folder is removed."""
        folder = self.root / job
        item = BatchItem(photo, name)
        with self._lock:
            self._jobs[job] = JobStatus(job, "queued", time.time())
        done: concurrent.futures.Future = concurrent.futures.Future()

        def finish(future: concurrent.futures.Future) -> None:
            try:
                result = future.result()
            except concurrent.futures.process.BrokenProcessPool:
                with self._lock:  # a worker died: the next job gets a new pool
                    self._pool = None
                result = ItemResult(item, error="the worker process died while reconstructing it (out of memory?)",
                                    error_type="WorkerDied")  # fmt: skip
            except concurrent.futures.CancelledError:
                result = ItemResult(item, error="the server stopped before the job ran", error_type="Cancelled")
            except Exception as err:  # an argument the pool could not send, say: the job fails, the server goes on
                result = ItemResult(item, error=f"internal error: {type(err).__name__}: {err}".splitlines()[0],
                                    error_type="InternalError")  # fmt: skip
            failed = result.error is not None or not result.faces
            if failed:
                self.discard(job)
            record = self._read_status(folder) if not failed else {}
            finished = JobResult(job, folder, result)
            with self._lock:
                status = self._jobs.get(job)
                if status is not None:
                    status.state, status.finished = ("failed" if failed else "done"), time.time()
                    status.started = status.started or record.get("started")
                    status.result = finished
            done.set_result(finished)

        try:
            self._executor().submit(_worker_run, item, folder, options, outputs, self._home).add_done_callback(finish)
        except RuntimeError:  # the pool was shut down (the server is stopping)
            cancelled: concurrent.futures.Future = concurrent.futures.Future()
            cancelled.cancel()
            finish(cancelled)
        return done

    def run(self, job: str, photo: Path, name: str, options, outputs: tuple[str, ...]) -> JobResult:
        """:meth:`submit` and wait for the result."""
        return self.submit(job, photo, name, options, outputs).result()

    @staticmethod
    def _read_status(folder: Path) -> dict:
        try:
            return json.loads((folder / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def status(self, job: str) -> JobStatus | None:
        """A job's status (a copy), or None for a job this runner does not know (or has forgotten)."""
        with self._lock:
            status = self._jobs.get(job)
            if status is None:
                return None
            status = JobStatus(**vars(status))
            if status.state == "queued":
                status.ahead = sum(1 for s in self._jobs.values() if s.state == "queued" and s.submitted < status.submitted)
        if status.state in ("queued", "running"):
            record = self._read_status(self.root / job)
            if record:
                status.state, status.started = "running", record.get("started")
                status.stage, status.face, status.faces = record.get("stage"), record.get("face", 0), record.get("faces", 0)
                with self._lock:
                    live = self._jobs.get(job)
                    if live is not None and live.state == "queued":
                        live.state, live.started = "running", status.started
        return status

    def discard(self, job: str) -> None:
        """Remove a job's folder."""
        if JOB_ID.match(job):
            shutil.rmtree(self.root / job, ignore_errors=True)

    def clean(self) -> list[str]:
        """Remove the jobs finished more than ``keep_seconds`` ago (folders and statuses); returns their ids."""
        now, removed = time.time(), []
        with self._lock:
            live = {job for job, s in self._jobs.items() if s.state in ("queued", "running")}
            for job, s in list(self._jobs.items()):
                if s.finished is not None and now - s.finished > self.keep_seconds:
                    del self._jobs[job]
        for folder in self.root.iterdir():
            if folder.is_dir() and JOB_ID.match(folder.name) and folder.name not in live:
                try:
                    old = now - folder.stat().st_mtime > self.keep_seconds
                except OSError:
                    continue
                if old:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder.name)
                    with self._lock:
                        self._jobs.pop(folder.name, None)
        return removed

    def close(self) -> None:
        """Stop the pool (running jobs are abandoned)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
