"""A batch of photos as Ray tasks (``facerecon reconstruct --engine ray``; the optional extra ``facerecon[ray]``).

The same work as :func:`facerecon.pipeline.batch.reconstruct_batch`, scheduled by Ray instead of a local process
pool, so a batch moves from one machine to a cluster without a rewrite: one task per photo (one CPU each), run by
Ray's worker processes, each of which loads the model and MediaPipe once and keeps its
:class:`~facerecon.pipeline.run.Reconstructor` for the tasks that follow. Each task writes its photo's folder itself,
so the output folder must be one path that every node sees (a shared file system); only the small
:class:`~facerecon.pipeline.batch.ItemResult` travels back. A task whose worker dies (killed, out of memory) is run
once more by Ray (``max_retries=1``); the retry first removes what the dead attempt left (as every photo's
reconstruction does with what its folder held); a second death fails the photo.

``address``: None starts a local Ray instance with ``num_cpus`` CPUs (stopped at the end); ``"auto"`` joins the
cluster this machine belongs to (``ray start``); ``"ray://HOST:PORT"`` connects a client to a remote cluster. If Ray is
already initialised in this process (a notebook, a test), that instance is used and left running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from facerecon.core.errors import EngineError
from facerecon.core.optional import require
from facerecon.pipeline.batch import (
    ItemResult,
    prepare_worker_process,
    process_reconstructor,
    reconstruct_in_folder,
    remove_in_flight,
)
from facerecon.pipeline.inputs import BatchItem

__all__ = ["reconstruct_batch_ray"]

def _ray_reconstruct(item: BatchItem, output: str, options, outputs: tuple[str, ...], home: str | None,
                     quiet: bool) -> ItemResult:  # fmt: skip
    """The task: reconstruct one photo into ``output/<name>/`` in this Ray worker, with the worker's Reconstructor
    for ``options`` (made by its first task, reused by the next). Ray's own cancellation handles SIGINT."""
    prepare_worker_process(quiet, ignore_sigint=False)
    # A retry after this photo's worker died starts from nothing: reconstruct_in_folder empties the folder first.
    return reconstruct_in_folder(process_reconstructor(options, home), item, Path(output), outputs)


def _connect(ray, address: str | None, num_cpus: int) -> bool:
    """Initialise Ray; True when this call started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
                    "logging_level": "ERROR"}  # fmt: skip
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise EngineError(f"cannot start or reach {where}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    return True


def reconstruct_batch_ray(items: Sequence[BatchItem], output: Path, options, outputs: tuple[str, ...], *,
                          address: str | None = None, num_cpus: int = 2, home: str | os.PathLike[str] | None = None,
                          quiet_workers: bool = False, progress: bool = True) -> Iterator[ItemResult]:  # fmt: skip
    """Reconstruct ``items`` into ``output`` as Ray tasks; yields an :class:`ItemResult` per item as it finishes.

    Args:
        items: the photos and their folder names.
        output: the output folder; every Ray node must see it at this path.
        options: :class:`~facerecon.pipeline.run.ReconstructOptions`.
        outputs: the output names to write.
        address: None (a local instance with ``num_cpus``), ``"auto"`` or ``"ray://HOST:PORT"``.
        num_cpus: CPUs of a local instance (one task each).
        home: the model cache on the workers (default their ``$FACERECON_HOME``).
        quiet_workers: hide third-party warnings in the workers.
        progress: progress bars while the model is installed or calibrated here, before any task.

    Raises:
        MissingDependencyError: Ray is not installed.
        EngineError: Ray cannot be started or reached, or a task failed for a reason other than the photo.
    """
    ray = require("ray", extra="ray", purpose="the Ray engine of facerecon reconstruct (--engine ray)")
    from facerecon.pipeline.setup import load_model

    # Installed and calibrated once here, before any task: the workers of this machine share the cache.
    load_model(home=home, progress=progress)
    started = _connect(ray, address, num_cpus)
    output = Path(output).absolute()
    home_text = None if home is None else str(home)
    task = ray.remote(num_cpus=1, max_retries=1)(_ray_reconstruct)
    pending: list = []
    try:
        refs = {}
        for item in items:
            refs[task.remote(item, str(output), options, tuple(outputs), home_text, quiet_workers)] = item
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                item = refs[ref]
                try:
                    yield ray.get(ref)
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError,
                        ray.exceptions.NodeDiedError) as err:  # fmt: skip
                    remove_in_flight([item], output)
                    yield ItemResult(item, error=f"a Ray worker died while reconstructing it, twice ({type(err).__name__})",
                                     error_type="WorkerDied")  # fmt: skip
                except ray.exceptions.RayError as err:
                    text = str(err).strip().splitlines()
                    raise EngineError(f"the Ray task for {item.path} failed: {text[-1] if text else type(err).__name__}") from None
    except BaseException:
        for ref in pending:  # interrupted (Ctrl-C) or failed: stop the tasks still queued or running
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()

