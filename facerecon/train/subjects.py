"""The people a training corpus is rendered from: photos and video frames, fitted and made ready to re-render.

Splits (fixed, of whole people; ``../shared/data/SOURCES.md`` keeps the people of ``faces/`` out of ``faces-train/``
and ``video-train/``):

* ``"train"``: every face of ``faces-train/``, ``frames_per_clip`` frames of each ``video-train/`` clip and of
  ``video/obama.mp4`` (the same person at several poses and expressions);
* ``"val"``: every face of ``faces/``, the photos the benchmarks use: no figure is reported on a face trained on.

Every face is fitted by the pipeline (landmark + photometric fit) and turned into a
:class:`~facerecon.train.corpus.SubjectAppearance` by :func:`facerecon.pipeline.subject.subject_from_reconstruction`.
Fitted subjects are cached as ``.npz`` files in a folder, so a corpus can be re-rendered (or a run resumed)
without fitting again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facerecon.core.errors import FaceReconError
from facerecon.io.atomic import atomic_path
from facerecon.io.image import read_image
from facerecon.models.face_model import FaceModel
from facerecon.sequence.video import read_frames
from facerecon.train.corpus import SubjectAppearance

SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class Source:
    """One picture to fit: a photo file, or frame ``frame`` of a video file."""

    path: Path
    frame: int | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.frame is None else f"{self.path.stem}-f{self.frame:05d}"


def split_sources(data_dir: str | os.PathLike[str], split: str, *, frames_per_clip: int = 4) -> list[Source]:
    """The pictures of a split under the shared data folder (see the module docstring), in a fixed order."""
    root = Path(data_dir)
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    if split == "val":
        return [Source(p) for p in _images(root / "faces")]
    sources = [Source(p) for p in _images(root / "faces-train")]
    for clip in sorted((root / "video-train").glob("*.mp4")) + sorted((root / "video").glob("*.mp4")):
        sources += [Source(clip, f) for f in _frames(clip, frames_per_clip)]
    return sources


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _frames(clip: Path, count: int) -> list[int]:
    """``count`` positions spread evenly over the clip's shown frames (not its first and last): positions in
    decoding order, counted by decoding (a container's frame count can include frames an edit list hides, as
    ``obama.mp4``'s 158 of which 55 are shown)."""
    total = sum(1 for _ in read_frames(clip))
    return sorted({int(round((k + 1) * total / (count + 1))) for k in range(count)} - {total})


def read_source(source: Source) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a photo, or of the ``frame``-th shown frame of a video (0-based)."""
    if source.frame is None:
        return read_image(source.path)
    for position, frame in enumerate(read_frames(source.path)):
        if position == source.frame:
            return frame.image
    raise FaceReconError(f"{source.path}: cannot read frame {source.frame} (the video shows {position + 1} frames)")


_FIELDS = ("identity", "expression", "sh", "albedo", "albedo_texture", "photo")


def save_subject(subject: SubjectAppearance, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, name=np.array(subject.name), **{k: getattr(subject, k) for k in _FIELDS})


def load_subject(path: Path) -> SubjectAppearance:
    with np.load(path) as data:
        return SubjectAppearance(name=str(data["name"]), **{k: data[k] for k in _FIELDS})


@dataclass(frozen=True)
class FitReport:
    """Subjects fitted (or read from the cache) and the pictures that gave none, with the reason."""

    subjects: tuple[SubjectAppearance, ...]
    failures: tuple[tuple[str, str], ...]


def fit_subjects(model: FaceModel, sources: Sequence[Source], cache_dir: str | os.PathLike[str], *,
                 progress: Callable[[int, int], None] | None = None) -> FitReport:  # fmt: skip
    """Fit every face of every source (cached in ``cache_dir/<source>-<face>.npz``; a source whose faces are all
    cached is not fitted again). A picture without a usable face is reported and skipped."""
    from facerecon.pipeline.run import Reconstructor
    from facerecon.pipeline.subject import fit_options, subject_from_reconstruction

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    subjects: list[SubjectAppearance] = []
    failures: list[tuple[str, str]] = []
    with Reconstructor(model, replace(fit_options(), faces="all")) as rec:
        for k, source in enumerate(sources):
            done = sorted(cache.glob(f"{source.name}-[0-9]*.npz"))
            marker = cache / f"{source.name}.none"
            if done or marker.exists():
                subjects += [load_subject(p) for p in done]
            else:
                try:
                    image = read_source(source)
                    result = rec.run(image if source.frame is not None else source.path, name=source.name)
                    for face in result.reconstructions:
                        subject = subject_from_reconstruction(rec, image, face, f"{source.name}-{face.face_index}")
                        appearance = SubjectAppearance(
                            subject.name, face.coefficients.identity, face.coefficients.expression, face.coefficients.sh, subject.albedo,
                            subject.albedo_texture, image)  # fmt: skip
                        save_subject(appearance, cache / f"{appearance.name}.npz")
                        subjects.append(appearance)
                    if not result.reconstructions:
                        raise FaceReconError("; ".join(s.reason for s in result.skipped) or "no face")
                except FaceReconError as err:
                    failures.append((source.name, str(err)))
                    marker.write_text(str(err))
            if progress is not None:
                progress(k + 1, len(sources))
    return FitReport(tuple(subjects), tuple(failures))
