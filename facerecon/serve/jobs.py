"""Reconstruction jobs of the HTTP server: one folder per upload, run by a pool of worker processes.

A job is one uploaded photo: ``ROOT/<job>/input/<file name>`` and its outputs in ``ROOT/<job>/out/<name>/<face>/``
(the files of ``facerecon reconstruct``). The pool has one process per worker (default: one per core), each with its
own model copy and one :class:`~facerecon.pipeline.run.Reconstructor` per set of options it has been asked for, so
requests queue for a free process and two users at once are served side by side. A job that fails (no face, not an
image, a worker that died) leaves no folder; finished jobs are removed once older than ``keep_seconds``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from facerecon.pipeline.batch import (
    ItemResult,
    prepare_worker_process,
    process_model,
    process_reconstructor,
    reconstruct_in_folder,
)
from facerecon.pipeline.inputs import BatchItem

__all__ = ["JOB_ID", "JobRunner", "JobResult"]

#: A job's id: 32 hex digits (so a URL cannot name anything but a job folder).
JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def _worker_init(home: str | None, quiet: bool) -> None:
    prepare_worker_process(quiet)
    process_model(home)  # loaded before any job


def _worker_run(item: BatchItem, output: Path, options, outputs: tuple[str, ...], home: str | None) -> ItemResult:
    """Reconstruct one upload in this worker, with its Reconstructor for ``options``."""
    return reconstruct_in_folder(process_reconstructor(options, home), item, output, outputs)


@dataclass(frozen=True)
class JobResult:
    """A finished job: its id and folder, and the batch's result for its photo."""

    job: str
    folder: Path
    result: ItemResult


class JobRunner:
    """Runs jobs in a pool of worker processes and keeps their folders under ``root``.

    Args:
        root: where job folders live (created).
        workers: processes (one job each at a time).
        keep_seconds: finished jobs older than this are removed (checked at each new job).
        home: the model cache (default ``$FACERECON_HOME``).
        quiet: hide third-party warnings in the workers.
    """

    def __init__(self, root: str | os.PathLike[str], *, workers: int = 1, keep_seconds: float = 3600.0,
                 home: str | os.PathLike[str] | None = None, quiet: bool = True) -> None:  # fmt: skip
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: expected a positive int, got {workers!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.keep_seconds = float(keep_seconds)
        self._home = None if home is None else str(home)
        self._quiet = quiet
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                    initargs=(self._home, self._quiet))  # fmt: skip
            return self._pool

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

    def run(self, job: str, photo: Path, name: str, options, outputs: tuple[str, ...]) -> JobResult:
        """Reconstruct ``photo`` (inside the job's folder) into ``out/<name>/``; waits for a free worker. A failed
        job's folder is removed."""
        folder = self.root / job
        item = BatchItem(photo, name)
        try:
            result = self._executor().submit(_worker_run, item, folder / "out", options, outputs, self._home).result()
        except concurrent.futures.process.BrokenProcessPool:
            with self._lock:  # a worker died: the next job gets a new pool
                self._pool = None
            result = ItemResult(item, error="the worker process died while reconstructing it (out of memory?)",
                                error_type="WorkerDied")  # fmt: skip
        if result.error is not None or not result.faces:
            self.discard(job)
        return JobResult(job, folder, result)

    def discard(self, job: str) -> None:
        """Remove a job's folder."""
        if JOB_ID.match(job):
            shutil.rmtree(self.root / job, ignore_errors=True)

    def clean(self) -> list[str]:
        """Remove the jobs older than ``keep_seconds``; returns their ids."""
        now, removed = time.time(), []
        for folder in self.root.iterdir():
            if folder.is_dir() and JOB_ID.match(folder.name):
                try:
                    old = now - folder.stat().st_mtime > self.keep_seconds
                except OSError:
                    continue
                if old:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder.name)
        return removed

    def close(self) -> None:
        """Stop the pool (running jobs are abandoned)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
