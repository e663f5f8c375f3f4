"""A batch of photos through :class:`~facerecon.pipeline.run.Reconstructor`, in this process or in worker processes.

:func:`reconstruct_batch` yields one :class:`ItemResult` per photo, in the order they finish, each with its outputs
already written by whoever reconstructed it. With ``workers > 1`` each worker is a process of its own (spawned: a
fresh interpreter, its own model copy and MediaPipe graphs, torch on ``options.torch_threads`` threads), so the
photos of a batch use every core; the model is installed and calibrated once, here, before any worker starts. A
worker that dies (killed, out of memory) takes down the pool: the photos it had in flight lose their partial folder
and are tried once more in a new pool with the rest (a second death fails them with that reason). Nothing else is
shared: a worker writes only its photo's folder.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facerecon.core.errors import FaceReconError

__all__ = ["BatchItem", "FaceRow", "ItemResult", "reconstruct_batch"]


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch: its file and the name of its output folder (``OUT/<stem>/``)."""

    path: Path
    stem: str


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
    """The outcome of one photo: its faces (written to ``OUT/<stem>/<face>/``), the faces skipped and why, or the
    error that stopped it (``error_type`` is the :class:`FaceReconError` subclass's name, or ``"WorkerDied"``)."""

    item: BatchItem
    faces: tuple[FaceRow, ...] = ()
    skipped: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


_WORKER: dict = {}


def _reconstruct_one(rec, item: BatchItem, output: Path, outputs: tuple[str, ...]) -> ItemResult:
    import time

    start = time.perf_counter()
    try:
        result = rec.run(item.path, name=item.stem)
    except FaceReconError as err:
        return ItemResult(item, error=str(err), error_type=type(err).__name__, seconds=time.perf_counter() - start)
    rows = []
    for face in result.reconstructions:
        face.save(output / item.stem / str(face.face_index), outputs)
        rows.append(FaceRow(face.face_index, face.landmark_error_px, face.photometric_error, float(face.angles_deg[1]),
                            sum(face.timings_ms.values())))  # fmt: skip
    skipped = tuple(s.reason for s in result.skipped)
    return ItemResult(item, faces=tuple(rows), skipped=skipped, seconds=time.perf_counter() - start)


def _worker_init(options, home: str | None, quiet: bool) -> None:
    if quiet:
        from facerecon.core.quiet import quiet_python_warnings

        quiet_python_warnings()
    from facerecon.pipeline.run import Reconstructor
    from facerecon.pipeline.setup import load_model

    model = load_model(home=home, progress=False)
    _WORKER["rec"] = Reconstructor(model, options)


#: Written into a photo's folder while a worker reconstructs it: after a worker died, the photos whose folder
#: still has it were the ones in flight.
IN_PROGRESS = ".facerecon-in-progress"


def _worker_run(item: BatchItem, output: Path, outputs: tuple[str, ...]) -> ItemResult:
    marker = output / item.stem / IN_PROGRESS
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    try:
        return _reconstruct_one(_WORKER["rec"], item, output, outputs)
    finally:
        marker.unlink(missing_ok=True)
        if not any(marker.parent.iterdir()):  # a failed photo leaves no empty folder
            marker.parent.rmdir()


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
                yield _reconstruct_one(rec, item, output, outputs)
        return
    del model
    pending = list(items)
    crashes: dict[str, int] = {}
    context = multiprocessing.get_context("spawn")
    home_text = None if home is None else str(home)
    while pending:
        finished: set[str] = set()
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(pending)), mp_context=context, initializer=_worker_init,
                                                    initargs=(options, home_text, quiet_workers)) as pool:  # fmt: skip
            futures = {pool.submit(_worker_run, item, output, outputs): item for item in pending}
            broken = False
            for future in concurrent.futures.as_completed(futures):
                try:
                    result = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    broken = True
                    continue
                finished.add(futures[future].stem)
                yield result
        if not broken:
            return
        # A worker died. The photos in flight (their folder has the marker) lose what they wrote and get one more
        # try; a second death fails them. The others simply go to the new pool.
        in_flight = [item for item in pending if item.stem not in finished and (output / item.stem / IN_PROGRESS).exists()]
        if not finished and not in_flight:  # the workers die before any photo starts: no new pool would fare better
            raise RuntimeError("the worker processes died before reconstructing any photo (out of memory at start-up?)")
        retry = []
        for item in pending:
            if item.stem in finished:
                continue
            folder = output / item.stem
            if (folder / IN_PROGRESS).exists():
                shutil.rmtree(folder, ignore_errors=True)
                crashes[item.stem] = crashes.get(item.stem, 0) + 1
                if crashes[item.stem] >= 2:
                    yield ItemResult(item, error="a worker process died while reconstructing it, twice (killed, or out of "
                                     "memory)", error_type="WorkerDied")  # fmt: skip
                    continue
            retry.append(item)
        pending = retry
