"""Photo sets (:func:`facerecon.sequence.run.reconstruct_photo_set`) on one synthetic subject with exact ground truth.

The subject: a shared photo fitted and its texture unwrapped (:func:`facerecon.pipeline.subject.fit_subject`), given
a seeded identity from the model's prior and rendered (:func:`facerecon.eval.synth.views.render_subject`) at yaw
-35, 0 and +35 degrees under three lights with three mild expressions, 480 px, written as PNG files. The set also
holds an unreadable file and a photo without a face. Nothing from ``../shared`` is committed: the photo is read at
test time. The model is calibrated for MediaPipe's landmarks with a small calibration (a few renders) to keep the
module fast; the joint and the single fits use the same one.

The landmarks stage only (the identity of a photo set is the joint landmark fit's in every stage; ``benchmarks/
photo_set.py`` measures the stages).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facerecon.core.errors import NoFaceError
from facerecon.core.threads import compute_threads
from facerecon.eval.mesh_metrics import now_landmark_vertices, now_scan_error
from facerecon.eval.synth.presets import SynthConfig, expression_weights, lighting_sh
from facerecon.eval.synth.views import render_subject, view_pose
from facerecon.io.gltf import read_glb_animation
from facerecon.pipeline.options import ReconstructOptions
from facerecon.pipeline.run import Reconstructor
from facerecon.pipeline.subject import fit_options, fit_subject
from facerecon.sequence.photo_set import reconstruct_photo_set

PHOTO = "3ddfa-JianzhuGuo.jpg"
SIZE = 480
SEED = 0
# (yaw, pitch) degrees, expression preset, light preset, expression scale: one view each.
VIEWS = ((-35.0, 8.0, "surprise", "left", 0.5), (0.0, -6.0, "jawOpen", "top", 0.5), (35.0, 4.0, "smile", "right", 0.5))
OPTIONS = ReconstructOptions(stages="landmarks", details=False, render_images=False, faces="largest")


@pytest.fixture(scope="module")
def model(model_home, tmp_path_factory):
    """The session's model calibrated for MediaPipe's 478 landmarks by a small calibration (27 renders)."""
    from facerecon.calibrate import EmbeddingConfig, calibrate_landmarks, save_embedding
    from facerecon.models import load_model

    home = tmp_path_factory.mktemp("photo-set-home")
    shutil.copytree(model_home, home, dirs_exist_ok=True)
    base = load_model(home=home, install=False)
    config = EmbeddingConfig(identity_modes=1, yaws=(-30.0, 0.0, 30.0), pitches=(-10.0, 10.0), lights=1,
                             holdout_fraction=0.0, max_candidates=16, refine_iterations=5)  # fmt: skip
    with compute_threads(1):  # torch's pool of 2 threads stalls on a busy machine
        save_embedding(calibrate_landmarks(base, config=config), base.info["cache"])
    return load_model(home=home, install=False)


@pytest.fixture(scope="module")
def subject(model, faces_dir, tmp_path_factory):
    """``(truth identity (K_id,), [3 PNG paths])``: the synthetic subject and its renders."""
    with Reconstructor(model, fit_options()) as rec:
        base = fit_subject(rec, faces_dir / PHOTO)
    truth = np.random.default_rng(SEED).standard_normal(model.identity_count)
    fitted = base.reconstruction
    person = base.with_identity(model, truth)
    folder = tmp_path_factory.mktemp("photo-set-renders")
    background = np.full((SIZE, SIZE, 3), 0.35, np.float32)
    paths = []
    for k, (yaw, pitch, expression, light, scale) in enumerate(VIEWS):
        rotation, translation, intrinsics = view_pose(person, yaw, SynthConfig(image_size=SIZE, pitch_deg=pitch))
        image, _, _ = render_subject(
            model, person, expression=scale * expression_weights(model, expression, fitted.coefficients.expression),
            rotation=rotation, translation=translation, intrinsics=intrinsics, image_size=(SIZE, SIZE),
            sh=lighting_sh(light, fitted.coefficients.sh, base.light_level), background=background,
        )  # fmt: skip
        path = folder / f"view{k}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.round(image * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return truth, paths


@pytest.fixture(scope="module")
def bad_photos(tmp_path_factory) -> tuple[Path, Path]:
    """An unreadable file named .jpg and a photo without a face (a grey gradient)."""
    folder = tmp_path_factory.mktemp("photo-set-bad")
    garbage = folder / "garbage.jpg"
    garbage.write_bytes(np.random.default_rng(13).bytes(4096))
    blank = folder / "blank.png"
    gradient = np.linspace(90, 160, 320, dtype=np.float32)[None, :, None] * np.ones((240, 1, 3), np.float32)
    cv2.imwrite(str(blank), gradient.astype(np.uint8))
    return garbage, blank


@pytest.fixture(scope="module")
def photo_set(model, subject, bad_photos, tmp_path_factory):
    """The set of the 3 renders with the unreadable file and the face-free photo among them."""
    _, paths = subject
    garbage, blank = bad_photos
    out = tmp_path_factory.mktemp("photo-set-out")
    with compute_threads(1):
        result = reconstruct_photo_set([paths[0], garbage, paths[1], blank, paths[2]], out, OPTIONS, model=model)
    return result, out


def _error_mm(model, truth: np.ndarray, identity: np.ndarray) -> float:
    """Mean NoW scan-to-mesh error (mm) of ``identity``'s neutral face against ``truth``'s."""
    zeros = torch.zeros(1, model.expression_count)
    with torch.no_grad():
        scan, mesh = (model(torch.as_tensor(np.asarray(i), dtype=torch.float32)[None], zeros, submesh="face")[0]
                      .double().numpy() for i in (truth, identity))  # fmt: skip
    lm = now_landmark_vertices(model)
    return now_scan_error(scan, scan[lm], mesh, model.submesh("face").triangles.numpy(), mesh[lm]).mean


def test_photo_set_writes_the_person_and_each_photo(photo_set, subject) -> None:
    result, out = photo_set
    _, paths = subject
    assert result.folder == out and result.photos == tuple(paths)
    for name in ("face.glb", "params.jsonl", "person.json", "texture.png"):
        assert (out / name).is_file(), name
    assert read_glb_animation(out / "face.glb") is None  # a photo set is no animation
    assert not (out / "animation.csv").exists()
    lines = [json.loads(line) for line in (out / "params.jsonl").read_text().splitlines()]
    assert [line["folder"] for line in lines] == [p.stem for p in paths]
    person = json.loads((out / "person.json").read_text())
    assert person["images"] == 3 and len(person["identity"]) == len(result.identity)
    assert np.allclose(person["identity"], result.identity)
    for path in paths:  # each photo's own outputs
        assert (out / path.stem / "params.json").is_file() and (out / path.stem / "face.glb").is_file()
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == sorted(p.stem for p in paths)  # none for the skipped files


def test_unreadable_and_face_free_photos_are_skipped(photo_set, bad_photos) -> None:
    result, _ = photo_set
    assert [p for p, _ in result.skipped] == list(bad_photos)
    assert all(reason for _, reason in result.skipped)


def test_no_face_in_any_photo_raises(model, bad_photos, tmp_path) -> None:
    with pytest.raises(NoFaceError):
        reconstruct_photo_set(list(bad_photos), tmp_path / "out", OPTIONS, model=model)


def test_joint_identity_beats_the_single_photos(photo_set, subject, model) -> None:
    result, _ = photo_set
    truth, paths = subject
    with Reconstructor(model, OPTIONS) as rec:
        singles = [_error_mm(model, truth, rec.run(p).reconstructions[0].coefficients.identity) for p in paths]
    joint = _error_mm(model, truth, result.identity)
    print(f"joint {joint:.3f} mm, single photos {np.round(singles, 3).tolist()} mm")
    assert joint < _error_mm(model, truth, np.zeros_like(truth))  # better than the mean face
    assert joint < float(np.mean(singles)), (joint, singles)
