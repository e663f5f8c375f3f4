"""The batch: fit each photo, write its views and ground truth (:func:`synthesize`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from facerecon.core.check import check_choice, describe
from facerecon.core.errors import FaceReconError
from facerecon.eval.synth.presets import (
    DEFAULT_YAWS_DEG,
    EXPRESSION_PRESETS,
    LAYOUTS,
    LIGHTING_PRESETS,
    SynthConfig,
    check_names,
    check_yaws,
)
from facerecon.pipeline.subject import FittedSubject, fit_options, fit_subject
from facerecon.eval.synth.views import render_view
from facerecon.eval.synth.writers import (
    _readme,
    _unique,
    view_name,
    write_aflw2000_view,
    write_now_scan,
    write_now_view,
)
from facerecon.io.atomic import write_text_atomic
from facerecon.models.face_model import FaceModel

__all__ = ["SynthFailure", "SynthItem", "SynthReport", "synthesize"]


@dataclass(frozen=True)
class SynthItem:
    """One written view: its name and the files written for it."""

    subject: str
    name: str
    yaw_deg: float
    expression: str
    lighting: str
    files: tuple[Path, ...]


@dataclass(frozen=True)
class SynthFailure:
    """A photo that could not be used, why (one line), and the error class's name (``kind``)."""

    photo: str
    reason: str
    kind: str = "FaceReconError"


@dataclass(frozen=True)
class SynthReport:
    """What :func:`synthesize` wrote and which photos failed."""

    out_dir: Path
    items: tuple[SynthItem, ...]
    failures: tuple[SynthFailure, ...]
    subjects: tuple[str, ...] = field(default_factory=tuple)


def synthesize(
    photos: Sequence[str | os.PathLike[str] | FittedSubject],
    out_dir: str | os.PathLike[str],
    *,
    yaws_deg: Sequence[float] = DEFAULT_YAWS_DEG,
    expressions: Sequence[str] = ("fitted",),
    lightings: Sequence[str] = ("fitted",),
    layout: str = "both",
    config: SynthConfig | None = None,
    model: FaceModel | None = None,
    reconstructor=None,
    on_photo: Callable[[int, str, SynthFailure | None], None] | None = None,
) -> SynthReport:
    """Fit each photo and write its re-rendered views with ground truth.

    One :class:`~facerecon.pipeline.run.Reconstructor` fits every photo; each photo gives
    ``len(yaws_deg) * len(expressions) * len(lightings)`` views. A photo that cannot be read or has no face
    is reported (in the report's ``failures`` and through ``on_photo``) and skipped; the batch goes on.

    Files (each written atomically):

    * ``layout`` ``"aflw2000"`` or ``"both"``: ``out_dir/aflw2000/<subject>_yaw+060_<expression>_<lighting>``
      ``.jpg`` / ``.mat`` (/ ``.obj`` + ``.mtl``, the ground-truth face mesh in camera space, mm).
    * ``"now"`` or ``"both"``: ``out_dir/now/iphone_pictures/<subject>/<challenge>/<view>.jpg`` (challenge
      ``neutral`` for the neutral preset, else ``expression``), ``out_dir/now/scans/<subject>/<subject>.obj``
      (the fitted identity, neutral, ``"face"`` sub-mesh, model space, mm) and
      ``out_dir/now/scans_lmks_onlypp/<subject>/<subject>.pp`` (its 7 NoW landmarks).

    Args:
        photos: photo files, or subjects already fitted with :func:`fit_subject` (not fitted again).
        out_dir: the output folder (created).
        yaws_deg: head yaws in degrees, each in [-90, 90].
        expressions: keys of :data:`EXPRESSION_PRESETS`.
        lightings: names in :data:`LIGHTING_PRESETS`.
        layout: ``"aflw2000"``, ``"now"`` or ``"both"``.
        config: rendering settings (default :class:`SynthConfig`).
        model: the face model (default :func:`facerecon.load_model`, or the reconstructor's).
        reconstructor: a Reconstructor to fit with (default: one made here, largest face, no pictures).
        on_photo: called with ``(index, photo, failure or None)`` after each photo.

    Returns:
        A :class:`SynthReport`.

    Raises:
        TypeError / ValueError: bad arguments (before anything is fitted).
    """
    if isinstance(photos, (str, bytes, os.PathLike)) or not isinstance(photos, Sequence):
        raise TypeError(f"photos: expected a sequence of file paths, got {describe(photos)}")
    for p in photos:
        if not isinstance(p, (str, os.PathLike, FittedSubject)):
            raise TypeError(f"photos: expected file paths or FittedSubjects, got {describe(p)}")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a folder path, got {describe(out_dir)}")
    yaws = check_yaws(yaws_deg)
    exprs = check_names(expressions, "expressions", tuple(EXPRESSION_PRESETS))
    lights = check_names(lightings, "lightings", LIGHTING_PRESETS)
    check_choice(layout, "layout", LAYOUTS)
    config = config or SynthConfig()
    if not isinstance(config, SynthConfig):
        raise TypeError(f"config: expected a SynthConfig, got {describe(config)}")

    out = Path(out_dir)
    if model is None:
        if reconstructor is not None:
            model = reconstructor.model
        else:
            from facerecon.models import load_model

            model = load_model()
    fitter = reconstructor  # made on the first photo that needs fitting when not given

    def get_fitter():
        nonlocal fitter
        if fitter is None:
            from facerecon.pipeline.run import Reconstructor

            fitter = Reconstructor(model, fit_options())
        return fitter

    items: list[SynthItem] = []
    failures: list[SynthFailure] = []
    subjects: list[str] = []
    taken: set[str] = set()
    face = model.submesh("face")
    face_tris = face.triangles.numpy()
    now_vertices = None
    try:
        for index, photo in enumerate(photos):
            try:
                if isinstance(photo, FittedSubject):
                    name = _unique(photo.name, taken)
                    subject = photo if name == photo.name else replace(photo, name=name)
                    photo = photo.name
                else:
                    name = _unique(Path(photo).stem, taken)
                    subject = fit_subject(get_fitter(), photo, name=name)
            except FaceReconError as err:
                fail = SynthFailure(str(photo), str(err), type(err).__name__)
                failures.append(fail)
                if on_photo is not None:
                    on_photo(index, str(photo), fail)
                continue
            subjects.append(name)
            if layout in ("now", "both"):
                from facerecon.eval.mesh_metrics import now_landmark_vertices

                if now_vertices is None:
                    now_vertices = now_landmark_vertices(model)
                neutral = model(torch.from_numpy(subject.reconstruction.coefficients.identity).float()[None],
                                torch.zeros(1, model.expression_count), submesh="face")[0].double().numpy()  # fmt: skip
                write_now_scan(out / "now", name, neutral, face_tris, neutral[now_vertices])
            for expr in exprs:
                for light in lights:
                    for yaw in yaws:
                        view = render_view(model, subject, yaw, expression=expr, lighting=light, config=config)
                        vname = view_name(name, yaw, expr, light)
                        files: list[Path] = []
                        if layout in ("aflw2000", "both"):
                            files += write_aflw2000_view(out / "aflw2000", vname, view,
                                                         face_tris if config.write_meshes else None,
                                                         source=str(photo), jpeg_quality=config.jpeg_quality)  # fmt: skip
                        if layout in ("now", "both"):
                            challenge = "neutral" if expr == "neutral" else "expression"
                            files.append(write_now_view(out / "now", name, challenge, vname, view, config.jpeg_quality))
                        items.append(SynthItem(name, vname, yaw, expr, light, tuple(files)))
            if on_photo is not None:
                on_photo(index, str(photo), None)
    finally:
        if fitter is not None and fitter is not reconstructor:
            fitter.close()
    write_text_atomic(out / "README.txt", _readme(yaws, exprs, lights, layout, config, len(items), failures))
    return SynthReport(out, tuple(items), tuple(failures), tuple(subjects))
