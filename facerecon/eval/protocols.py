"""Evaluation protocols: run a method over a dataset, one row per image, and summarise.

* :func:`evaluate_aflw2000`: NME of the 68 landmarks, overall and by absolute yaw (paper 002, table 1).
* :func:`evaluate_now`: NoW scan-to-mesh error in mm (median / mean / std over all scan points).
* :func:`evaluate_photos`: photometric error (paper 004), PSNR / SSIM / L1 over the face mask and identity
  cosine (paper 003), between each photo and its re-rendered face. Identity needs the optional dlib extra; a run
  without it still measures the rest and reports identity as ``"unavailable"`` (with the install hint), never a
  number.

A missing or unreadable file, a photo without a face or an output a metric cannot use becomes a row with a
:class:`Status` and a one-line message; the run goes on and the report counts it ("failed: 3 of 120"). Errors
that are bugs (TypeError, ...) are not swallowed.

Example:
    >>> from facerecon.eval import create_method, evaluate_aflw2000, read_aflw2000
    >>> with create_method("dlib") as method:                                         # doctest: +SKIP
    ...     report = evaluate_aflw2000(read_aflw2000("AFLW2000"), method, method_name="dlib")
    >>> print(report.to_markdown())                                                   # doctest: +SKIP
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerecon.core.check import check_choice
from facerecon.core.errors import FaceReconError, ImageReadError, NoFaceError
from facerecon.eval.datasets import (
    AFLW2000Sample,
    DatasetFileError,
    NoWSample,
    PhotoSample,
)
from facerecon.eval.image_metrics import (
    l1_error,
    overlay,
    photometric_error,
    psnr,
    ssim,
)
from facerecon.eval.landmark_metrics import (
    YAW_BIN_EDGES_DEG,
    YAW_BIN_LABELS,
    box_size,
    nme,
    yaw_bin,
)
from facerecon.eval.mesh_metrics import now_scan_error
from facerecon.eval.methods import Method, MethodOutput

__all__ = [
    "IDENTITY_STATES",
    "AFLW2000Report",
    "AFLW2000Row",
    "NoWReport",
    "NoWRow",
    "PhotoRow",
    "PhotosReport",
    "Status",
    "evaluate_aflw2000",
    "evaluate_now",
    "evaluate_photos",
]


class Status(enum.StrEnum):
    """What happened to one image."""

    OK = "ok"
    MISSING = "missing"  # a file of the sample does not exist
    UNREADABLE = "unreadable"  # a file exists but could not be read (corrupt, wrong format, bad content)
    NO_FACE = "no_face"  # the method found no face
    FAILED = "failed"  # the method's output could not be measured (missing part, degenerate geometry)


class _RowFailure(Exception):
    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


def _require(path: Path | None, what: str) -> None:
    if path is None or not path.is_file():
        raise _RowFailure(Status.MISSING, f"{what} missing: {path}")


def _run(fn: Callable[[], Any]) -> Any:
    """Call ``fn``, turning the user-facing failures of one sample into a :class:`_RowFailure`."""
    try:
        return fn()
    except NoFaceError as err:
        raise _RowFailure(Status.NO_FACE, str(err)) from None
    except (ImageReadError, DatasetFileError) as err:
        raise _RowFailure(Status.UNREADABLE, str(err)) from None


def _predict(method: Method, image: np.ndarray, face_box: np.ndarray | None, need: str) -> MethodOutput:
    out = _run(lambda: method.predict(image, face_box=face_box))
    if not isinstance(out, MethodOutput):
        raise TypeError(f"method.predict: expected a MethodOutput, got {type(out).__name__}")
    if need not in out.provides:
        raise _RowFailure(Status.FAILED, f"the method gave no {need}")
    return out


def _json_float(x: float | None, digits: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _failure_line(statuses: Sequence[Status]) -> str:
    failed = [s for s in statuses if s != Status.OK]
    counts = Counter(failed)
    detail = ", ".join(f"{s.value} {counts[s]}" for s in Status if counts[s])
    return f"failed: {len(failed)} of {len(statuses)}" + (f" ({detail})" if detail else "")


def _failed_by_status(statuses: Sequence[Status]) -> dict[str, int]:
    counts = Counter(s for s in statuses if s != Status.OK)
    return {s.value: counts[s] for s in Status if counts[s]}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _std(values: Sequence[float]) -> float | None:
    return float(np.std(values)) if len(values) else None


# ------------------------------------------------------------------------------------------------ AFLW2000-3D
@dataclass(frozen=True)
class AFLW2000Row:
    """One AFLW2000-3D image.

    Attributes:
        name: the file stem.
        status: :class:`Status`.
        message: why it failed ("" when ok).
        nme: NME as a fraction of ``sqrt(w * h)`` of the ground-truth box (None unless ok).
        yaw_deg: the ground-truth yaw in degrees (None when the annotation could not be read).
    """

    name: str
    status: Status
    message: str = ""
    nme: float | None = None
    yaw_deg: float | None = None

    @property
    def yaw_bin(self) -> int | None:
        """0, 1, 2 for [0, 30), [30, 60), [60, 90] degrees of absolute yaw; None without a yaw."""
        return None if self.yaw_deg is None else yaw_bin(self.yaw_deg)


@dataclass(frozen=True)
class AFLW2000Report:
    """NME on AFLW2000-3D. Values in the table and the JSON are percent (x 100), as paper 002's table 1."""

    method: str
    dataset: str
    rows: tuple[AFLW2000Row, ...]

    def _ok(self) -> list[AFLW2000Row]:
        return [r for r in self.rows if r.status == Status.OK]

    def errors(self, yaw_bin_index: int | None = None) -> np.ndarray:
        """``(N,)`` NME in percent of the evaluated images (of one yaw bin if given)."""
        rows = [r for r in self._ok() if yaw_bin_index is None or r.yaw_bin == yaw_bin_index]
        return np.array([100.0 * r.nme for r in rows if r.nme is not None], dtype=np.float64)

    @property
    def nme_mean(self) -> float | None:
        """Mean NME (%) over all evaluated images."""
        e = self.errors()
        return float(e.mean()) if e.size else None

    def bin_means(self) -> list[float | None]:
        """Mean NME (%) per yaw bin (None for an empty bin)."""
        return [float(e.mean()) if (e := self.errors(i)).size else None for i in range(3)]

    @property
    def nme_balanced_mean(self) -> float | None:
        """The mean of the three bin means (paper 002 table 1's "Mean"); None if a bin is empty."""
        means = self.bin_means()
        return None if any(m is None for m in means) else float(np.mean(means))

    @property
    def failed(self) -> int:
        return sum(r.status != Status.OK for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``nme_mean``, ``nme_balanced_mean``, ``nme_by_yaw`` (bins with counts), rows."""
        edges = (*YAW_BIN_EDGES_DEG, 90.0)
        by_yaw = {
            label: {"low_deg": edges[i], "high_deg": edges[i + 1], "nme_mean": _json_float(m), "count": int(self.errors(i).size)}
            for i, (label, m) in enumerate(zip(YAW_BIN_LABELS, self.bin_means()))
        }
        return {
            "protocol": "aflw2000",
            "method": self.method,
            "dataset": self.dataset,
            "nme_unit": "percent of sqrt(w*h) of the box around the ground-truth 68 points",
            "nme_mean": _json_float(self.nme_mean),
            "nme_balanced_mean": _json_float(self.nme_balanced_mean),
            "nme_by_yaw": by_yaw,
            "images": len(self.rows),
            "evaluated": len(self._ok()),
            "failed": self.failed,
            "failed_by_status": _failed_by_status([r.status for r in self.rows]),
            "rows": [
                {"name": r.name, "status": r.status.value, "message": r.message,
                 "nme": _json_float(None if r.nme is None else 100.0 * r.nme), "yaw_deg": _json_float(r.yaw_deg, 3)}
                for r in self.rows
            ],
        }

    def to_markdown(self) -> str:
        """A markdown table of NME (%) by absolute yaw, the balanced and plain means, and the failures."""
        means = self.bin_means()
        counts = [self.errors(i).size for i in range(3)]
        head = "| method | " + " | ".join(f"yaw {label}" for label in YAW_BIN_LABELS) + " | balanced mean | mean | failed |"
        cells = [f"{_fmt(m)} (n={n})" for m, n in zip(means, counts)]
        row = (f"| {self.method} | " + " | ".join(cells) + f" | {_fmt(self.nme_balanced_mean)} | "
               f"{_fmt(self.nme_mean)} (n={len(self._ok())}) | {self.failed} of {len(self.rows)} |")  # fmt: skip
        sep = "|" + "---|" * 7
        note = "NME in % of sqrt(w*h) of the ground-truth 68-point box; balanced mean = mean of the three yaw bins."
        return "\n".join([head, sep, row, "", _failure_line([r.status for r in self.rows]), note])


def evaluate_aflw2000(
    samples: Sequence[AFLW2000Sample],
    method: Method,
    *,
    method_name: str,
    dataset: str = "",
    on_row: Callable[[int, AFLW2000Row], None] | None = None,
) -> AFLW2000Report:
    """NME of a method's 68 landmarks on AFLW2000-3D samples.

    The method gets the ground-truth box as ``face_box`` (a hint to pick the annotated face among several, as
    the 3DDFA / PRNet protocols crop with it). NME uses the x, y of ``pt3d_68`` as given and normalises by
    ``sqrt(w * h)`` of the box around them.

    Args:
        samples: from :func:`~facerecon.eval.datasets.read_aflw2000`.
        method: a :class:`~facerecon.eval.methods.Method` that gives ``landmarks68``.
        method_name: its name, for the report.
        dataset: the dataset's path or name, for the report.
        on_row: called with ``(index, row)`` after each sample (progress, messages).
    """
    rows: list[AFLW2000Row] = []
    for i, sample in enumerate(samples):
        yaw: float | None = None
        try:
            _require(sample.mat_path, "annotation")
            ann = _run(sample.load_annotation)
            yaw = ann.yaw_deg
            if float(box_size(ann.landmarks68[None])[0]) <= 0:
                raise _RowFailure(Status.UNREADABLE, f"{sample.mat_path}: the 68 ground-truth points span no area")
            _require(sample.image_path, "image")
            image = _run(sample.load_image)
            out = _predict(method, image, ann.box, "landmarks68")
            value = float(nme(out.landmarks68[None], ann.landmarks68[None])[0])
            row = AFLW2000Row(sample.name, Status.OK, "", value, yaw)
        except _RowFailure as fail:
            row = AFLW2000Row(sample.name, fail.status, str(fail), None, yaw)
        rows.append(row)
        if on_row is not None:
            on_row(i, row)
    return AFLW2000Report(method=method_name, dataset=dataset, rows=tuple(rows))


# --------------------------------------------------------------------------------------------------------- NoW
@dataclass(frozen=True, eq=False)
class NoWRow:
    """One NoW image.

    Attributes:
        name: ``subject/challenge/file``.
        subject, challenge: from the path.
        status, message: as in :class:`AFLW2000Row`.
        distances: ``(N,)`` float32 mm, each cropped scan vertex's distance to the aligned mesh (None unless ok).
        median, mean, std: of ``distances`` in mm.
    """

    name: str
    subject: str
    challenge: str
    status: Status
    message: str = ""
    distances: np.ndarray | None = None
    median: float | None = None
    mean: float | None = None
    std: float | None = None


@dataclass(frozen=True)
class NoWReport:
    """NoW scan-to-mesh errors; statistics pool the distances of all scan points of all evaluated images (NoW)."""

    method: str
    dataset: str
    rows: tuple[NoWRow, ...]

    def distances(self, challenge: str | None = None) -> np.ndarray:
        """All distances (mm) of the evaluated images (of one challenge if given), concatenated."""
        parts = [r.distances for r in self.rows if r.status == Status.OK and r.distances is not None
                 and (challenge is None or r.challenge == challenge)]  # fmt: skip
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)

    @property
    def challenges(self) -> tuple[str, ...]:
        return tuple(sorted({r.challenge for r in self.rows}))

    @staticmethod
    def _stats(d: np.ndarray) -> tuple[float | None, float | None, float | None]:
        if d.size == 0:
            return None, None, None
        return float(np.median(d)), float(d.mean()), float(d.std())

    @property
    def failed(self) -> int:
        return sum(r.status != Status.OK for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``median_mm``, ``mean_mm``, ``std_mm`` (pooled), per challenge, rows."""
        med, mean, std = self._stats(self.distances())
        by = {}
        for c in self.challenges:
            d = self.distances(c)
            m1, m2, m3 = self._stats(d)
            n = sum(r.status == Status.OK and r.challenge == c for r in self.rows)
            by[c] = {"median_mm": _json_float(m1), "mean_mm": _json_float(m2), "std_mm": _json_float(m3), "count": n}
        return {
            "protocol": "now",
            "method": self.method,
            "dataset": self.dataset,
            "median_mm": _json_float(med),
            "mean_mm": _json_float(mean),
            "std_mm": _json_float(std),
            "by_challenge": by,
            "images": len(self.rows),
            "evaluated": len(self.rows) - self.failed,
            "failed": self.failed,
            "failed_by_status": _failed_by_status([r.status for r in self.rows]),
            "rows": [
                {"name": r.name, "subject": r.subject, "challenge": r.challenge, "status": r.status.value,
                 "message": r.message, "median_mm": _json_float(r.median), "mean_mm": _json_float(r.mean),
                 "std_mm": _json_float(r.std), "points": None if r.distances is None else int(r.distances.size)}
                for r in self.rows
            ],
        }

    def to_markdown(self) -> str:
        """A markdown table of median / mean / std (mm), overall and per challenge, and the failures."""
        lines = ["| method | subset | median (mm) | mean (mm) | std (mm) | images | failed |", "|" + "---|" * 7]
        for c in (None, *self.challenges):
            rows = [r for r in self.rows if c is None or r.challenge == c]
            med, mean, std = self._stats(self.distances(c))
            ok = sum(r.status == Status.OK for r in rows)
            lines.append(f"| {self.method} | {c or 'all'} | {_fmt(med)} | {_fmt(mean)} | {_fmt(std)} | {ok} | "
                         f"{len(rows) - ok} of {len(rows)} |")  # fmt: skip
        lines += ["", _failure_line([r.status for r in self.rows]),
                  "Scan-to-mesh distance of the cropped scan after 7-landmark similarity alignment and ICP (NoW)."]
        return "\n".join(lines)


def evaluate_now(
    samples: Sequence[NoWSample],
    method: Method,
    *,
    method_name: str,
    dataset: str = "",
    max_iterations: int = 100,
    on_row: Callable[[int, NoWRow], None] | None = None,
) -> NoWReport:
    """NoW scan-to-mesh errors of a method's meshes (:func:`~facerecon.eval.mesh_metrics.now_scan_error`).

    Args:
        samples: from :func:`~facerecon.eval.datasets.read_now`.
        method: a :class:`~facerecon.eval.methods.Method` that gives a mesh with its 7 NoW landmarks.
        method_name, dataset, on_row: as in :func:`evaluate_aflw2000`.
        max_iterations: ICP rounds at most.
    """
    rows: list[NoWRow] = []
    cache: dict[Path, Any] = {}  # the last subject's scan (samples come sorted by subject)
    for i, s in enumerate(samples):
        try:
            _require(s.image_path, "image")
            if s.scan_path is None or s.landmarks_path is None:
                raise _RowFailure(Status.MISSING, f"no scan {'(.obj/.ply)' if s.scan_path is None else 'landmarks (.pp)'} "
                                                  f"for subject {s.subject}")  # fmt: skip
            if s.scan_path not in cache:
                cache.clear()
                try:
                    cache[s.scan_path] = _run(s.load_scan)
                except _RowFailure as fail:
                    cache[s.scan_path] = fail
            scan = cache[s.scan_path]
            if isinstance(scan, _RowFailure):
                raise scan
            image = _run(s.load_image)
            out = _predict(method, image, None, "mesh")
            try:
                err = now_scan_error(scan[0], scan[2], out.vertices, out.triangles, out.now_landmarks,
                                     max_iterations=max_iterations)  # fmt: skip
            except (ValueError, np.linalg.LinAlgError) as e:
                raise _RowFailure(Status.FAILED, f"cannot align or measure: {e}") from None
            row = NoWRow(s.name, s.subject, s.challenge, Status.OK, "", err.distances.astype(np.float32),
                         err.median, err.mean, err.std)  # fmt: skip
        except _RowFailure as fail:
            row = NoWRow(s.name, s.subject, s.challenge, fail.status, str(fail))
        rows.append(row)
        if on_row is not None:
            on_row(i, row)
    return NoWReport(method=method_name, dataset=dataset, rows=tuple(rows))


# ------------------------------------------------------------------------------------------------------ photos
@dataclass(frozen=True)
class PhotoRow:
    """One photo: image agreement of the re-rendered face over its mask (channels in [0, 1]).

    Attributes:
        photometric: mean RGB distance (paper 004); psnr: dB; ssim; l1; identity_cosine: dlib embeddings' cosine
            (None when identity was not measured or failed; ``identity_message`` says why: the embedder's error,
            or the report's ``identity_status`` when the run did not measure identity).
    """

    name: str
    status: Status
    message: str = ""
    photometric: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    l1: float | None = None
    identity_cosine: float | None = None
    identity_message: str = ""


_PHOTO_METRICS: tuple[tuple[str, str, str], ...] = (
    ("photometric", "photometric", ".4f"),
    ("psnr", "PSNR (dB)", ".2f"),
    ("ssim", "SSIM", ".4f"),
    ("l1", "L1", ".4f"),
    ("identity_cosine", "identity cosine", ".4f"),
)


#: Whether a photos run measured identity: with an embedder; without one, on request; without dlib.
IDENTITY_STATES: tuple[str, ...] = ("measured", "skipped", "unavailable")


@dataclass(frozen=True)
class PhotosReport:
    """Image agreement on a folder of photos; means over the evaluated photos (PSNR: of finite values).

    Attributes:
        identity_status: one of :data:`IDENTITY_STATES`: ``"measured"`` (an embedder ran), ``"skipped"`` (none
            was given) or ``"unavailable"`` (none could be made, e.g. dlib is not installed).
        identity_message: why identity is unavailable (ends in the install hint); "" otherwise.
    """

    method: str
    dataset: str
    rows: tuple[PhotoRow, ...]
    identity_status: str = "measured"
    identity_message: str = ""

    def __post_init__(self) -> None:
        check_choice(self.identity_status, "identity_status", IDENTITY_STATES)

    def values(self, metric: str) -> np.ndarray:
        """``(N,)`` the finite values of one metric (``photometric``, ``psnr``, ``ssim``, ``l1``, ``identity_cosine``)."""
        out = [getattr(r, metric) for r in self.rows if r.status == Status.OK and getattr(r, metric) is not None]
        a = np.array(out, dtype=np.float64)
        return a[np.isfinite(a)]

    @property
    def failed(self) -> int:
        return sum(r.status != Status.OK for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``photometric_mean``, ``psnr_mean``, ``ssim_mean``, ``l1_mean``,
        ``identity_cosine_mean`` (and ``_std``, ``_count``), ``identity_status`` / ``identity_message`` (see the
        class; identity's figures are null unless measured), and the per-image rows."""
        out: dict[str, Any] = {"protocol": "photos", "method": self.method, "dataset": self.dataset}
        for key, _, _ in _PHOTO_METRICS:
            v = self.values(key)
            out[f"{key}_mean"] = _json_float(_mean(v))
            out[f"{key}_std"] = _json_float(_std(v))
            out[f"{key}_count"] = int(v.size)
        out.update({
            "identity_status": self.identity_status,
            "identity_message": self.identity_message,
            "images": len(self.rows),
            "evaluated": len(self.rows) - self.failed,
            "failed": self.failed,
            "failed_by_status": _failed_by_status([r.status for r in self.rows]),
            "rows": [
                {"name": r.name, "status": r.status.value, "message": r.message,
                 **{k: _json_float(getattr(r, k)) for k, _, _ in _PHOTO_METRICS},
                 "identity_message": r.identity_message}
                for r in self.rows
            ],
        })  # fmt: skip
        return out

    def to_markdown(self) -> str:
        """A markdown table of each metric's mean +- std over the photos, and the failures."""
        head = "| method | " + " | ".join(label for _, label, _ in _PHOTO_METRICS) + " | images | failed |"
        cells = []
        for key, _, spec in _PHOTO_METRICS:
            v = self.values(key)
            if key == "identity_cosine" and self.identity_status != "measured":
                cells.append(self.identity_status)
            else:
                cells.append("-" if v.size == 0 else f"{format(v.mean(), spec)} ± {format(v.std(), spec)}")
        ok = len(self.rows) - self.failed
        row = f"| {self.method} | " + " | ".join(cells) + f" | {ok} | {self.failed} of {len(self.rows)} |"
        note = ("Over the rendered face's mask, channels in [0, 1]: photometric = mean RGB distance (paper 004); "
                "PSNR, SSIM, L1 and identity cosine (dlib embeddings) between photo and overlay (paper 003).")
        lines = [head, "|" + "---|" * (len(_PHOTO_METRICS) + 3), row, "", _failure_line([r.status for r in self.rows]), note]
        if self.identity_status == "unavailable":
            lines.append(f"Identity cosine unavailable: {self.identity_message}")
        return "\n".join(lines)


def _mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)


def evaluate_photos(
    samples: Sequence[PhotoSample],
    method: Method,
    *,
    method_name: str,
    dataset: str = "",
    embedder: Any | None = None,
    identity_unavailable: str | None = None,
    on_row: Callable[[int, PhotoRow], None] | None = None,
) -> PhotosReport:
    """Image metrics between each photo and the method's re-rendered face, over the face mask.

    Args:
        samples: from :func:`~facerecon.eval.datasets.read_photos`.
        method: a :class:`~facerecon.eval.methods.Method` that gives ``rendered`` and ``mask`` at the photo's size.
        method_name, dataset, on_row: as in :func:`evaluate_aflw2000`.
        embedder: a :class:`~facerecon.eval.identity.FaceEmbedder` for the identity cosine (in the method's face
            box, else the mask's bounding box), or None to skip it.
        identity_unavailable: with ``embedder`` None, why no embedder could be made (e.g. the
            :class:`~facerecon.core.optional.MissingDependencyError` message with its install hint): the report
            says identity is ``"unavailable"`` and why, instead of ``"skipped"``.

    Raises:
        ValueError: ``identity_unavailable`` given together with an ``embedder``.
    """
    if embedder is not None and identity_unavailable is not None:
        raise ValueError("identity_unavailable: expected None when an embedder is given")
    if embedder is not None:
        identity_status, identity_message = "measured", ""
    elif identity_unavailable is not None:
        identity_status, identity_message = "unavailable", " ".join(str(identity_unavailable).split())
    else:
        identity_status, identity_message = "skipped", ""
    rows: list[PhotoRow] = []
    for i, s in enumerate(samples):
        try:
            _require(s.image_path, "image")
            image = _run(s.load_image)
            out = _predict(method, image, None, "render")
            if out.rendered.shape != image.shape:
                raise _RowFailure(Status.FAILED, f"rendered image of shape {out.rendered.shape}, the photo is {image.shape}")
            if not out.mask.any():
                raise _RowFailure(Status.FAILED, "the face mask is empty")
            comp = overlay(image, out.rendered, out.mask)
            values = {
                "photometric": photometric_error(image, comp, out.mask),
                "psnr": psnr(image, comp, out.mask),
                "ssim": ssim(image, comp, out.mask),
                "l1": l1_error(image, comp, out.mask),
            }
            cos, why = None, ("" if embedder is not None else identity_status)
            if embedder is not None:
                box = out.box if out.box is not None else _mask_box(out.mask)
                try:
                    cos = embedder.cosine(image, np.round(comp * 255.0).astype(np.uint8), box)
                except (FaceReconError, ValueError) as err:
                    why = str(err)
            row = PhotoRow(s.name, Status.OK, "", identity_cosine=cos, identity_message=why, **values)
        except _RowFailure as fail:
            row = PhotoRow(s.name, fail.status, str(fail))
        rows.append(row)
        if on_row is not None:
            on_row(i, row)
    return PhotosReport(method=method_name, dataset=dataset, rows=tuple(rows), identity_status=identity_status,
                        identity_message=identity_message)  # fmt: skip
