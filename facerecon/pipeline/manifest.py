"""The record of a batch run, so that an interrupted or crashed run resumes: ``OUT/manifest.jsonl`` and
``OUT/summary.json``.

``manifest.jsonl`` holds one JSON object per line and per input (:class:`ManifestEntry`): its path, ``status``
(``ok``: its faces are written; ``failed``: with ``reason`` and ``error_type``; ``skipped``: not attempted, e.g. the
run was interrupted before it), its output folder, seconds, faces and the digest of the options that made it. During
a run, a line is appended (and flushed to disk) as each photo finishes, so a crash loses at most the photos in
flight; a later line for the same path replaces an earlier one. When the run ends, interrupted or not, the file is
rewritten (atomically) with exactly one line per input, in input order, the lines of inputs of earlier runs that
this run was not given kept after them.

A re-run of the same command reads it and skips the inputs already ``ok`` with the same options and whose folder
still holds its ``params.json``; ``failed`` inputs are skipped too unless ``retry_failed``; everything else runs.
``summary.json`` describes the last run: counts, time, engine, whether it was interrupted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from facerecon.io.atomic import write_text_atomic

__all__ = ["MANIFEST", "STATUSES", "SUMMARY", "ManifestEntry", "ManifestWriter", "options_digest", "read_manifest",
           "write_manifest", "write_summary"]  # fmt: skip

MANIFEST = "manifest.jsonl"
SUMMARY = "summary.json"
#: ``ok``: outputs written; ``failed``: the photo could not be reconstructed (reason given); ``skipped``: not attempted.
STATUSES = ("ok", "failed", "skipped")


@dataclass(frozen=True)
class ManifestEntry:
    """One input of a batch and what became of it.

    Attributes:
        path: the photo, absolute.
        status: one of :data:`STATUSES`.
        output: its folder relative to the batch's output (``OUT/<output>/<face>/``), also kept for a failed or
            skipped input so that a re-run writes to the same place.
        reason: why it failed or was skipped (one line), empty when ok.
        error_type: the error's class name when failed (``ImageReadError``, ``NoFaceError``, ``WorkerDied``...).
        seconds: wall time of its reconstruction (s).
        faces: faces written.
        options: :func:`options_digest` of the run that made it.
        finished: when it was recorded (UTC, ISO 8601).
    """

    path: str
    status: str
    output: str
    reason: str = ""
    error_type: str | None = None
    seconds: float = 0.0
    faces: int = 0
    options: str = ""
    finished: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: expected one of {', '.join(STATUSES)}, got {self.status!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, separators=(", ", ": "))

    @classmethod
    def from_json(cls, line: str) -> ManifestEntry:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def options_digest(options: Any, outputs: Iterable[str]) -> str:
    """A short digest of what decides a photo's outputs: every field of ``options`` (a dataclass) but its thread
    count, and the output names. A re-run with other options redoes the photos."""
    fields = {k: v for k, v in dataclasses.asdict(options).items() if k != "torch_threads"}
    text = json.dumps({"options": fields, "outputs": sorted(outputs)}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_manifest(output: str | os.PathLike[str]) -> dict[str, ManifestEntry]:
    """The entries of ``OUT/manifest.jsonl`` by path (the last line of a path wins); empty when there is none. A
    line that cannot be parsed (the last one, cut short by a crash) is ignored."""
    path = Path(output) / MANIFEST
    entries: dict[str, ManifestEntry] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return entries
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = ManifestEntry.from_json(line)
        except (ValueError, TypeError):
            continue
        entries[entry.path] = entry
    return entries


class ManifestWriter:
    """Appends entries to ``OUT/manifest.jsonl``, one flushed and synced line each, while a batch runs."""

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.path = Path(output) / MANIFEST
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = None

    def __enter__(self) -> ManifestWriter:
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in __exit__)
        return self

    def append(self, entry: ManifestEntry) -> None:
        if self._file is None:
            raise RuntimeError("ManifestWriter.append outside its with block")
        self._file.write(entry.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_manifest(output: str | os.PathLike[str], entries: Iterable[ManifestEntry]) -> None:
    """Rewrite ``OUT/manifest.jsonl`` atomically with ``entries`` (one line each, in this order)."""
    write_text_atomic(Path(output) / MANIFEST, "".join(entry.to_json() + "\n" for entry in entries))


def write_summary(output: str | os.PathLike[str], summary: Mapping[str, Any]) -> None:
    """Write ``OUT/summary.json`` atomically."""
    write_text_atomic(Path(output) / SUMMARY, json.dumps(dict(summary), indent=2, ensure_ascii=False) + "\n")
