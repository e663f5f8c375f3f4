"""Photo collections: the inputs of a run expanded, what an earlier run finished skipped, the rest reconstructed by
an engine (worker processes here, or Ray), and the run recorded in ``OUT/manifest.jsonl`` and ``OUT/summary.json``.

:func:`plan_collection` decides what to do (:class:`CollectionPlan`); :func:`run_collection` does it, yielding each
photo's :class:`~facerecon.pipeline.batch.ItemResult` as it finishes and appending its manifest line at once. When
the run ends (finished, interrupted by Ctrl-C, or stopped by its caller) the photos in flight lose their partial
folders, the manifest is rewritten with one line per input (inputs never started: ``skipped``) and
``summary.json`` is written, so a re-run of the same command resumes where this one stopped
(:mod:`facerecon.pipeline.manifest`).

Example:
    >>> plan = plan_collection(["photos/"], "out", ReconstructOptions(), DEFAULT_OUTPUTS)    # doctest: +SKIP
    >>> for result in run_collection(plan, workers=2):                                        # doctest: +SKIP
    ...     print(result.item.name, result.error or "ok")
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facerecon.pipeline.batch import ItemResult, reconstruct_batch, remove_in_flight
from facerecon.pipeline.inputs import BatchItem, collect_inputs
from facerecon.pipeline.manifest import (
    ManifestEntry,
    ManifestWriter,
    now_iso,
    options_digest,
    read_manifest,
    write_manifest,
    write_summary,
)

__all__ = ["ENGINES", "CollectionPlan", "plan_collection", "run_collection"]

#: ``local``: worker processes on this machine (:mod:`facerecon.pipeline.batch`); ``ray``: Ray tasks
#: (:mod:`facerecon.pipeline.ray_batch`).
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class CollectionPlan:
    """What a run will do.

    Attributes:
        output: the output folder.
        options: the :class:`~facerecon.pipeline.run.ReconstructOptions` of every photo.
        outputs: the output names written for each face.
        items: every input photo, in input order, with its folder name.
        todo: the photos this run reconstructs (a subset of ``items``, same order).
        done: manifest entries of the inputs an earlier run finished (``ok``, or ``failed`` without
            ``retry_failed``), which this run skips.
        earlier: the earlier manifest's entries of inputs this run was not given (kept in the manifest).
        digest: :func:`~facerecon.pipeline.manifest.options_digest` of ``options`` and ``outputs``.
    """

    output: Path
    options: Any
    outputs: tuple[str, ...]
    items: tuple[BatchItem, ...]
    todo: tuple[BatchItem, ...]
    done: tuple[ManifestEntry, ...]
    earlier: tuple[ManifestEntry, ...] = field(default=())
    digest: str = ""


def _finished(entry: ManifestEntry, output: Path, digest: str, retry_failed: bool) -> bool:
    """Whether an earlier run's entry means the photo needs no work now."""
    if entry.options != digest:
        return False
    if entry.status == "ok":
        return any((output / entry.output).glob("*/params.json"))
    return entry.status == "failed" and not retry_failed


def plan_collection(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], options: Any,
                    outputs: Sequence[str], *, retry_failed: bool = False) -> CollectionPlan:  # fmt: skip
    """Expand ``inputs`` (files, folders, ``@lists``: :func:`~facerecon.pipeline.inputs.collect_inputs`) and compare
    them with the manifest an earlier run left in ``output``.

    An input whose earlier entry is ``ok`` with the same options (and whose folder still holds its faces) is done;
    one that ``failed`` is done too unless ``retry_failed``; every other input (new, ``skipped``, made with other
    options, its folder gone) is to do, under the folder name it had before.

    Raises:
        InputListError: a list file or a folder cannot be read.
    """
    out = Path(os.path.abspath(Path(output).expanduser()))
    outputs = tuple(outputs)
    digest = options_digest(options, outputs)
    previous = read_manifest(out)
    names = {Path(path): entry.output for path, entry in previous.items()}
    items = collect_inputs(inputs, exclude=out, names=names)
    todo, done = [], []
    for item in items:
        entry = previous.get(str(item.path))
        if entry is not None and _finished(entry, out, digest, retry_failed):
            done.append(entry)
        else:
            todo.append(item)
    given = {str(item.path) for item in items}
    earlier = tuple(entry for path, entry in previous.items() if path not in given)
    return CollectionPlan(out, options, outputs, tuple(items), tuple(todo), tuple(done), earlier, digest)


def _entry(result: ItemResult, digest: str) -> ManifestEntry:
    item = result.item
    if result.error is not None:
        return ManifestEntry(str(item.path), "failed", item.name, reason=result.error, error_type=result.error_type,
                             seconds=round(result.seconds, 3), options=digest, finished=now_iso())  # fmt: skip
    if not result.faces:
        reason = "no face reconstructed: " + ("; ".join(result.skipped) or "none found")
        return ManifestEntry(str(item.path), "failed", item.name, reason=reason, error_type="NoFaceError",
                             seconds=round(result.seconds, 3), options=digest, finished=now_iso())  # fmt: skip
    return ManifestEntry(str(item.path), "ok", item.name, reason="; ".join(result.skipped),
                         seconds=round(result.seconds, 3), faces=len(result.faces), options=digest,
                         finished=now_iso())  # fmt: skip


def _batch(plan: CollectionPlan, engine: str, workers: int, address: str | None, home, quiet_workers: bool,
           progress: bool) -> Iterator[ItemResult]:  # fmt: skip
    if engine == "ray":
        from facerecon.pipeline.ray_batch import reconstruct_batch_ray

        return reconstruct_batch_ray(plan.todo, plan.output, plan.options, plan.outputs, address=address,
                                     num_cpus=workers, home=home, quiet_workers=quiet_workers,
                                     progress=progress)  # fmt: skip
    return reconstruct_batch(plan.todo, plan.output, plan.options, plan.outputs, workers=workers, home=home,
                             quiet_workers=quiet_workers, progress=progress)  # fmt: skip


def run_collection(plan: CollectionPlan, *, engine: str = "local", workers: int = 1, address: str | None = None,
                   home: str | os.PathLike[str] | None = None, quiet_workers: bool = False,
                   progress: bool = True) -> Iterator[ItemResult]:  # fmt: skip
    """Reconstruct ``plan.todo``; yields each photo's result as it finishes (see the module docstring).

    Args:
        plan: from :func:`plan_collection`.
        engine: one of :data:`ENGINES`.
        workers: local worker processes (``local``), or the CPUs of a local Ray instance (``ray`` without
            ``address``).
        address: ``ray`` only: ``"auto"`` or ``"ray://HOST:PORT"`` of an existing cluster.
        home: the model cache (default ``$FACERECON_HOME``).
        quiet_workers: hide third-party warnings in the workers.
        progress: progress bars while the model is installed or calibrated.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if address is not None and engine != "ray":
        raise ValueError("address: only the ray engine connects to a cluster")
    start, started = time.perf_counter(), now_iso()
    recorded: dict[str, ManifestEntry] = {}
    interrupted = False
    plan.output.mkdir(parents=True, exist_ok=True)
    try:
        with ManifestWriter(plan.output) as manifest:
            if plan.todo:
                for result in _batch(plan, engine, workers, address, home, quiet_workers, progress):
                    entry = _entry(result, plan.digest)
                    manifest.append(entry)
                    recorded[entry.path] = entry
                    yield result
    except BaseException:
        interrupted = True
        raise
    finally:
        unfinished = [item for item in plan.todo if str(item.path) not in recorded]
        remove_in_flight(unfinished, plan.output)
        for item in unfinished:
            recorded[str(item.path)] = ManifestEntry(str(item.path), "skipped", item.name,
                                                     reason="not done: the run was interrupted before it finished this photo",
                                                     options=plan.digest, finished=now_iso())  # fmt: skip
        done = {entry.path: entry for entry in plan.done}
        entries = [recorded.get(str(item.path)) or done[str(item.path)] for item in plan.items]
        write_manifest(plan.output, [*entries, *plan.earlier])
        this_run = [recorded[str(item.path)] for item in plan.todo]
        seconds = time.perf_counter() - start
        write_summary(plan.output, {
            "started": started, "finished": now_iso(), "seconds": round(seconds, 3), "interrupted": interrupted,
            "engine": engine, "workers": workers, "address": address, "options": plan.digest,
            "outputs": list(plan.outputs), "inputs": len(plan.items),
            "reconstructed": sum(e.status == "ok" for e in this_run),
            "failed": sum(e.status == "failed" for e in this_run),
            "not_attempted": sum(e.status == "skipped" for e in this_run),
            "skipped_done_earlier": len(plan.done), "faces": sum(e.faces for e in this_run),
            "photos_per_minute": round(60 * sum(e.status != "skipped" for e in this_run) / seconds, 2) if seconds > 0 else None,
            "manifest_totals": {status: sum(e.status == status for e in entries) for status in ("ok", "failed", "skipped")},
        })  # fmt: skip
