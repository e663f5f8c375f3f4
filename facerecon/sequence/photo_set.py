"""A photo set of one person: every photo's largest face, one identity fitted to all of them jointly (the landmark
stage over all views, then refined on each photo's colours and averaged), each photo reconstructed with it held, one
texture fused from all views. Files in ``OUT/`` as for a video's track (without the animation), and each photo's own
outputs in ``OUT/<name>/``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facerecon.core.errors import NoFaceError
from facerecon.core.threads import compute_threads
from facerecon.fit.joint import ViewLandmarks, fit_shared_identity
from facerecon.models.face_model import FaceModel
from facerecon.pipeline.options import ReconstructOptions
from facerecon.pipeline.run import photo_camera
from facerecon.sequence.person import (
    PersonPose,
    PoseStart,
    fuse_textures,
    fusion_weight,
    person_reconstructor,
    refine_identity,
    write_person,
)
from facerecon.sequence.tracking import dense_fitter, landmark_selector

__all__ = ["PhotoSetResult", "reconstruct_photo_set"]


@dataclass(frozen=True)
class PhotoSetResult:
    """A photo set's reconstruction: the folder, the photos used and those skipped (with reasons), the identity."""

    folder: Path
    photos: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]
    identity: np.ndarray


def reconstruct_photo_set(
    paths: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: ReconstructOptions = ReconstructOptions(),
    *,
    model: FaceModel | None = None,
    outputs: tuple[str, ...] | None = None,
    names: list[str] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> PhotoSetResult:
    """Fit one identity to the largest face of every photo, reconstruct each photo with it held, and fuse one
    texture from all of them (see the module doc). Photos that cannot be read or show no face are reported
    (``on_skip``) and left out. Each photo's own files go to ``output / name`` (``names``: default the stems).

    Raises:
        NoFaceError: no photo of the set shows a face.
    """
    with compute_threads(options.torch_threads):
        return _reconstruct_photo_set(paths, output, options, model, outputs, names, on_skip)


def _reconstruct_photo_set(paths, output, options: ReconstructOptions, model, outputs, names, on_skip) -> PhotoSetResult:
    from facerecon.core.errors import ImageReadError
    from facerecon.detect import check_detectable, create_detector
    from facerecon.io.image import read_image_with_info
    from facerecon.pipeline.outputs import DEFAULT_OUTPUTS

    if model is None:
        from facerecon.pipeline.setup import load_model

        model = load_model()
    output = Path(output)
    fitter = dense_fitter(model, options)
    select = landmark_selector(fitter)
    names = [Path(p).stem for p in paths] if names is None else list(names)
    if len(names) != len(paths) or len(set(names)) != len(names):
        raise ValueError("names: expected one distinct name per photo")
    views, used, used_names, skipped = [], [], [], []
    detector = create_detector("mediapipe")
    try:
        for path, name in zip(map(Path, paths), names):
            try:
                image_info = read_image_with_info(path, max_side=options.max_image_side)
                check_detectable(image_info.image, path.name)
                detections = detector.detect(image_info.image)
                if not detections:
                    raise NoFaceError(f"{path}: no face found")
            except (ImageReadError, NoFaceError) as err:
                skipped.append((path, str(err)))
                if on_skip is not None:
                    on_skip(path, str(err))
                continue
            detection = max(detections, key=lambda d: d.area)
            landmarks, confidence = select(detection)
            camera = photo_camera(image_info.image, image_info.focal_35mm, options.default_focal_35mm)
            views.append((image_info, detection, ViewLandmarks(landmarks, camera, confidence)))
            used.append(path)
            used_names.append(name)
        if not views:
            raise NoFaceError(f"no face in any photo of the set ({len(skipped)} photos)")
        joint = fit_shared_identity(fitter, [v for _, _, v in views])
        starts = [PoseStart(joint.identity, v.expression, v.rotation, v.translation) for v in joint.views]
        identity = refine_identity(model, options, [(info.image, det, v.camera) for info, det, v in views], starts)
        rec = person_reconstructor(model, options, identity, detector)
        reconstructions, weights, poses = [], [], []
        for i, ((image_info, detection, _), path, name, start) in enumerate(zip(views, used, used_names, starts)):
            reconstruction = rec.reconstruct_face(image_info.image, detection, name=name, focal_35mm=image_info.focal_35mm,
                                                  init=replace(start, identity=identity))  # fmt: skip
            reconstruction.save(output / name, outputs or DEFAULT_OUTPUTS)
            reconstructions.append(reconstruction)
            weights.append(fusion_weight(rec, image_info.image, reconstruction, reconstruction.coefficients.expression))
            poses.append(PersonPose(float(i), reconstruction.pose.rotation, reconstruction.pose.translation,
                                    reconstruction.coefficients.expression, reconstruction.fit.landmark_error_px,
                                    sh=reconstruction.coefficients.sh, extra={"photo": str(path), "folder": name}))  # fmt: skip
        albedos = [r.textures.albedo for r in reconstructions]
        fused = fuse_textures([r.textures.texture for r in reconstructions], weights,
                              albedos if all(a is not None for a in albedos) else None)  # fmt: skip
        write_person(output, model, rec.layout, identity, poses, fused.texture, albedo=fused.albedo, fps=None,
                     camera=views[0][2].camera, texture_size=options.texture_size,
                     info={"photos": [str(p) for p in used], "skipped": {str(p): r for p, r in skipped},
                           "landmark_error_px": [float(np.median(v.residual_px)) for v in joint.views]})  # fmt: skip
    finally:
        detector.close()
    return PhotoSetResult(output, tuple(used), tuple(skipped), identity)

