"""A batch of photos through :class:`~facerecon.pipeline.run.Reconstructor`, in this process or in worker processes.

:func:`reconstruct_batch` yields one :class:`ItemResult` per photo, in the order they finish, each with its outputs
already written by whoever reconstructed it. With ``workers > 1`` each worker is a process of its own (spawned: a
fresh interpreter, its own model copy and MediaPipe graphs, torch on ``options.torch_threads`` threads), so the
photos of a batch use every core; the model is installed and calibrated once, here, before any worker starts. A
worker that dies (killed, out of memory) takes down the pool: the photos it had in flight lose their partial folder
and are tried once more in a new pool with the rest (a second death fails them with that reason). Nothing else is
shared: a worker writes only its photo's folder. Ctrl-C reaches this process only (the workers ignore SIGINT): the
pool is stopped, its workers are terminated and the photos in flight lose their partial folder, then the
``KeyboardInterrupt`` goes on to the caller. :mod:`facerecon.pipeline.ray_batch` runs the same work on Ray.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facerecon.core.errors import FaceReconError
from facerecon.pipeline.inputs import BatchItem

__all__ = ["IN_PROGRESS", "BatchItem", "FaceRow", "ItemResult", "prepare_worker_process", "process_model",
           "process_reconstructor",
           "reconstruct_batch", "reconstruct_in_folder", "remove_in_flight"]


@dataclass(frozen=True)
class FaceRow:
    """What the summary shows of one reconstructed face."""

    face_index: int
    landmark_error_px: float
    photometric_error: float | None
    yaw_deg: float
    total_ms: float


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one photo: its faces (written to ``OUT/<name>/<face>/``), the faces skipped and why, or the
    error that stopped it (``error_type`` is the :class:`FaceReconError` subclass's name, or ``"WorkerDied"``)."""

    item: BatchItem
    faces: tuple[FaceRow, ...] = ()
    skipped: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


_WORKER: dict = {}
_PROCESS: dict = {"model": None, "home": None, "reconstructors": []}


def _reconstruct_one(rec, item: BatchItem, output: Path, outputs: tuple[str, ...], progress=None) -> ItemResult:
    import time

    from facerecon.pipeline.run import Progress

    start = time.perf_counter()
    try:
        result = rec.run(item.path, name=item.name, progress=progress)
        rows = []
        for face in result.reconstructions:
            if progress is not None:
                progress(Progress("write", face.face_index, len(result.reconstructions) + len(result.skipped)))
            face.save(output / item.name / str(face.face_index), outputs)
            rows.append(FaceRow(face.face_index, face.fit.landmark_error_px, face.fit.photometric_error,
                                float(face.pose.angles_deg[1]), sum(face.fit.timings_ms.values())))  # fmt: skip
    except FaceReconError as err:
        return ItemResult(item, error=str(err), error_type=type(err).__name__, seconds=time.perf_counter() - start)
    except Exception as err:  # a bug on one photo fails that photo, not the batch
        text = f"internal error: {type(err).__name__}: {err}".splitlines()[0]
        return ItemResult(item, error=text, error_type="InternalError", seconds=time.perf_counter() - start)
    skipped = tuple(s.reason for s in result.skipped)
    return ItemResult(item, faces=tuple(rows), skipped=skipped, seconds=time.perf_counter() - start)


def prepare_worker_process(quiet: bool, *, ignore_sigint: bool = True) -> None:
    """Set up a worker process: Ctrl-C left to the process that runs the pool, third-party warnings hidden."""
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    if quiet:
        from facerecon.core.quiet import quiet_python_warnings

        quiet_python_warnings()


def process_model(home: str | None):
    """This process's face model from the cache ``home``, loaded once (again only for another ``home``)."""
    from facerecon.pipeline.setup import load_model

    if _PROCESS["model"] is None or _PROCESS["home"] != home:
        for _, rec in _PROCESS["reconstructors"]:
            rec.close()
        _PROCESS.update(model=load_model(home=home, progress=False), home=home, reconstructors=[])
    return _PROCESS["model"]


def process_reconstructor(options, home: str | None, *, keep: int = 4):
    """This process's :class:`~facerecon.pipeline.run.Reconstructor` for ``options``: the model is loaded once per
    process, and a Reconstructor (its MediaPipe graphs) is kept for each of the ``keep`` option sets used last."""
    from facerecon.pipeline.run import Reconstructor

    model = process_model(home)
    cache: list = _PROCESS["reconstructors"]
    rec = next((r for opts, r in cache if opts == options), None)
    if rec is None:
        rec = Reconstructor(model, options)
        cache.append((options, rec))
        if len(cache) > keep:
            cache.pop(0)[1].close()
    return rec


def _worker_init(options, home: str | None, quiet: bool) -> None:
    prepare_worker_process(quiet)
    _WORKER["rec"] = process_reconstructor(options, home)


#: Written into a photo's folder while a worker reconstructs it: after a worker died, the photos whose folder
#: still has it were the ones in flight.
IN_PROGRESS = ".facerecon-in-progress"


def reconstruct_in_folder(rec, item: BatchItem, output: Path, outputs: tuple[str, ...], progress=None) -> ItemResult:
    """Reconstruct ``item`` with ``rec`` into ``output/<name>/``, marked :data:`IN_PROGRESS` until done;
    ``progress`` (a :data:`~facerecon.pipeline.run.ProgressCallback`) hears of each stage.

    What the folder held before goes first. A photo that fails, or is interrupted here (Ctrl-C), leaves no folder;
    a folder that still holds the marker was left by a process that died, and :func:`remove_in_flight` removes it."""
    folder = output / item.name
    marker = folder / IN_PROGRESS
    if folder.exists():  # an earlier run's outputs (other options, fewer or more faces) or a dead attempt's
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    marker.write_text(str(os.getpid()))
    try:
        result = _reconstruct_one(rec, item, output, outputs, progress)
    except BaseException:
        remove_in_flight([item], output)
        raise
    if result.error is not None:
        remove_in_flight([item], output)
    else:
        marker.unlink(missing_ok=True)
        _remove_empty(folder, output)  # a photo whose faces were all skipped
    return result


def _remove_empty(folder: Path, output: Path) -> None:
    """Remove ``folder`` and the folders above it, up to ``output``, while they are empty."""
    try:
        while folder != output and output in folder.parents and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    except OSError:
        pass


def remove_in_flight(items: Sequence[BatchItem], output: Path) -> list[BatchItem]:
    """Remove the folders of ``items`` that still hold the :data:`IN_PROGRESS` marker; returns those items."""
    removed = []
    for item in items:
        folder = output / item.name
        if (folder / IN_PROGRESS).exists():
            shutil.rmtree(folder, ignore_errors=True)
            _remove_empty(folder.parent, output)
            removed.append(item)
    return removed


def _worker_run(item: BatchItem, output: Path, outputs: tuple[str, ...]) -> ItemResult:
    return reconstruct_in_folder(_WORKER["rec"], item, output, outputs)


def _stop(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Stop a pool at once: queued photos cancelled, workers terminated (not waited for)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def reconstruct_batch(items: Sequence[BatchItem], output: Path, options, outputs: tuple[str, ...], *, workers: int = 1,
                      home: str | os.PathLike[str] | None = None, quiet_workers: bool = False,
                      progress: bool = True) -> Iterator[ItemResult]:  # fmt: skip
    """Reconstruct ``items`` into ``output``; yields an :class:`ItemResult` per item as it finishes.

    Args:
        items: the photos and their folder names (unique).
        output: the output folder.
        options: :class:`~facerecon.pipeline.run.ReconstructOptions`.
        outputs: the output names to write (:data:`facerecon.pipeline.reconstruction.OUTPUTS`).
        workers: processes; 1 runs in this process (no start-up cost), more spawn a pool (``min(workers, len(items))``).
        home: the model cache (default ``$FACERECON_HOME``).
        quiet_workers: hide third-party warnings in the workers too (the command line's quiet mode).
        progress: progress bars while the model is installed or calibrated.
    """
    from facerecon.pipeline.setup import load_model

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive int, got {workers!r}")
    model = load_model(home=home, progress=progress)  # installed and calibrated once, before any worker
    workers = min(workers, len(items))
    if workers <= 1:
        from facerecon.pipeline.run import Reconstructor

        with Reconstructor(model, options) as rec:
            for item in items:
                yield reconstruct_in_folder(rec, item, output, outputs)
        return
    del model
    pending = list(items)
    crashes: dict[str, int] = {}
    context = multiprocessing.get_context("spawn")
    home_text = None if home is None else str(home)
    while pending:
        finished: set[str] = set()
        pool = concurrent.futures.ProcessPoolExecutor(min(workers, len(pending)), mp_context=context,
                                                      initializer=_worker_init,
                                                      initargs=(options, home_text, quiet_workers))  # fmt: skip
        broken = False
        try:
            futures = {pool.submit(_worker_run, item, output, outputs): item for item in pending}
            for future in concurrent.futures.as_completed(futures):
                try:
                    result = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    broken = True
                    continue
                finished.add(futures[future].name)
                yield result
        except BaseException:  # Ctrl-C, or the caller stopped iterating: no worker outlives the batch
            _stop(pool)
            remove_in_flight([item for item in pending if item.name not in finished], output)
            raise
        pool.shutdown(wait=True)
        if not broken:
            return
        # A worker died. The photos in flight (their folder has the marker) lose what they wrote and get one more
        # try; a second death fails them. The others simply go to the new pool.
        in_flight = [item for item in pending if item.name not in finished and (output / item.name / IN_PROGRESS).exists()]
        if not finished and not in_flight:  # the workers die before any photo starts: no new pool would fare better
            raise RuntimeError("the worker processes died before reconstructing any photo (out of memory at start-up?)")
        retry = []
        for item in pending:
            if item.name in finished:
                continue
            if remove_in_flight([item], output):
                crashes[item.name] = crashes.get(item.name, 0) + 1
                if crashes[item.name] >= 2:
                    yield ItemResult(item, error="a worker process died while reconstructing it, twice (killed, or out of "
                                     "memory)", error_type="WorkerDied")  # fmt: skip
                    continue
            retry.append(item)
        pending = retry
