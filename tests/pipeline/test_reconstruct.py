"""End to end: real photos through detect -> landmark fit -> photometric fit -> albedo -> texture -> files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from facerecon.cli.exit_codes import ExitCode
from facerecon.cli.main import main
from facerecon.core.errors import FitDivergedError, NoFaceError
from facerecon.estimate.fit import _check_finite_fit
from facerecon.fit.landmarks import LandmarkFit
from facerecon.io.gltf import read_glb
from facerecon.io.mesh import read_obj, read_ply
from facerecon.pipeline.outputs import DEFAULT_OUTPUTS, OUTPUT_FILES, output_files
from facerecon.pipeline.run import Progress, ReconstructOptions, Reconstructor

FRONTAL = "3ddfa-JianzhuGuo.jpg"


@pytest.fixture(scope="module")
def reconstructor(face_model):
    with Reconstructor(face_model) as rec:
        yield rec


@pytest.fixture(scope="module")
def frontal(reconstructor, faces_dir):
    result = reconstructor.run(faces_dir / FRONTAL)
    assert len(result.reconstructions) == 1 and not result.skipped
    return result.reconstructions[0]


def test_frontal_face_quality(frontal, face_model) -> None:
    assert frontal.fit.stages == ("landmarks", "photometric", "albedo")
    nme = frontal.fit.landmark_error_px / frontal.detection.box_size
    assert nme < 0.04, nme
    assert frontal.fit.photometric_error is not None and frontal.fit.photometric_error < 0.06
    assert abs(frontal.pose.angles_deg[1]) < 20  # a frontal photo
    assert frontal.mesh.vertices.shape == (face_model.submesh("head").vertex_count, 3)
    assert np.isfinite(frontal.mesh.vertices).all() and frontal.pose.translation[2] > 0
    assert ((frontal.coefficients.expression >= 0) & (frontal.coefficients.expression <= 1)).all()
    assert frontal.coefficients.sh.shape == (9, 3) and frontal.mesh.albedo.min() >= 0 and frontal.mesh.albedo.max() <= 1
    # The fitted 68 landmarks project onto the detected ones, inside the detector's box.
    x0, y0, x1, y1 = frontal.detection.box
    margin = 0.25 * frontal.detection.box_size
    assert ((frontal.fit.landmarks68[:, 0] > x0 - margin) & (frontal.fit.landmarks68[:, 0] < x1 + margin)).all()
    # The face's left/right: iBUG 36 (subject's right eye corner) is left of 45 in the image.
    assert frontal.fit.landmarks68[36, 0] < frontal.fit.landmarks68[45, 0]


def test_saved_files(frontal, tmp_path: Path, face_model) -> None:
    out = frontal.save(tmp_path / "face", outputs=("all",))
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    default = frontal.save(tmp_path / "default")
    assert sorted(p.name for p in default.iterdir()) == sorted(output_files(DEFAULT_OUTPUTS))
    assert not {"depth.npy", "mesh_detailed.obj"} & {p.name for p in default.iterdir()}  # the large raw forms
    assert sorted(p.name for p in frontal.save(tmp_path / "glb", outputs=["glb"]).iterdir()) == ["face.glb", "params.json"]
    with pytest.raises(ValueError, match="unknown output 'fbx'.*glb, obj"):
        frontal.save(tmp_path / "bad", outputs=["glb", "fbx"])
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    params = json.loads((out / "params.json").read_text())
    assert len(params["identity"]) == 100 and len(params["expression"]) == 53
    assert set(params["timings_ms"]) >= {"detect", "landmarks", "photometric", "texture"}
    assert len(params["landmarks68"]) == 68 and params["landmark_error_px"] == pytest.approx(frontal.fit.landmark_error_px)
    assert set(params["head_angles_deg"]) == {"pitch", "yaw", "roll"}
    assert np.array(params["sh_coefficients"]).shape == (9, 3)
    obj = read_obj(out / "mesh.obj")
    assert len(obj.vertices) == face_model.submesh("head").vertex_count
    assert obj.texture is not None and obj.texture.shape == (1024, 1024, 3)
    assert obj.uvs.min() >= 0 and obj.uvs.max() <= 1
    ply = read_ply(out / "mesh.ply")
    assert ply.vertex_colors is not None and len(ply.vertex_colors) == len(obj.vertices)
    glb = read_glb(out / "face.glb")
    assert glb.morph_names == face_model.expression_names
    np.testing.assert_allclose(glb.morph_weights, frontal.coefficients.expression, atol=1e-6)
    # Base + weighted morph targets = the fitted face.
    posed = glb.vertices + np.einsum("k,kvc->vc", glb.morph_weights, glb.morph_deltas)
    np.testing.assert_allclose(posed, frontal.mesh.vertices, atol=1e-2)
    depth = np.load(out / "depth.npy")
    assert depth.shape == frontal.camera.image_size and depth.max() > 0 and np.isfinite(depth).all()
    covered = depth > 0
    assert abs(np.median(depth[covered]) - frontal.pose.translation[2]) < 150  # the face sits at its fitted depth
    overlay = cv2.imread(str(out / "overlay.png"))
    assert overlay.shape[:2] == frontal.camera.image_size


def test_landmark_stage_only(reconstructor, faces_dir, face_model) -> None:
    rec = Reconstructor(face_model, ReconstructOptions(stages="landmarks", render_images=False), detector=reconstructor.detector)
    face = rec.run(faces_dir / FRONTAL).reconstructions[0]
    assert face.fit.stages == ("landmarks",) and face.coefficients.sh is None and face.fit.photometric_error is None
    assert face.pictures.overlay is None and face.fit.landmark_error_px / face.detection.box_size < 0.04


def test_several_faces_and_small_faces(reconstructor, faces_dir) -> None:
    image = cv2.cvtColor(cv2.imread(str(faces_dir / "3ddfa-trump_hillary.jpg")), cv2.COLOR_BGR2RGB)
    heard: list[Progress] = []
    result = reconstructor.run(image, name="pair", progress=heard.append)
    assert [r.face_index for r in result.reconstructions] == [0, 1]
    # Each stage is reported as it starts, for each face in turn.
    per_face = ("estimate", "albedo", "texture", "details")
    expected = [Progress("read"), Progress("detect")] + [Progress(stage, face, 2) for face in (0, 1) for stage in per_face]
    assert heard == expected
    boxes = [r.detection.area for r in result.reconstructions]
    assert boxes[0] >= boxes[1]  # largest first
    small = cv2.resize(image, (image.shape[1] // 6, image.shape[0] // 6), interpolation=cv2.INTER_AREA)
    with pytest.raises(NoFaceError, match="no face of at least 48 px"):
        reconstructor.run(small, name="small")


def test_no_face(reconstructor) -> None:
    with pytest.raises(NoFaceError, match="no face found"):
        reconstructor.run(np.full((240, 320, 3), 128, np.uint8), name="grey")
    for shape in ((1, 1, 3), (7, 500, 3)):  # below the detectors' 8 x 8: the same error, not a ValueError
        with pytest.raises(NoFaceError, match="too small to hold a face"):
            reconstructor.run(np.zeros(shape, np.uint8), name="tiny")


def test_divergence_is_caught() -> None:
    fit = LandmarkFit(np.zeros(100), np.zeros(53), np.eye(3), np.array([0.0, 0.0, 500.0]), 1000.0,
                      np.arange(68), np.zeros((68, 2)), np.zeros(68), 1)  # fmt: skip
    _check_finite_fit(fit)
    with pytest.raises(FitDivergedError):
        _check_finite_fit(replace(fit, identity=np.full(100, np.nan)))
    with pytest.raises(FitDivergedError):
        _check_finite_fit(replace(fit, translation=np.array([0.0, 0.0, -10.0])))


def test_cli_batch_goes_on_past_bad_items(faces_dir, tmp_path: Path, model_home, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 200, np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    code = main(["reconstruct", str(faces_dir / "prnet-4.jpg"), str(blank), str(broken), "-o", str(out),
                 "--stages", "landmarks", "--no-images", "--quiet"])  # fmt: skip
    assert code == ExitCode.PARTIAL
    err = capsys.readouterr().err
    assert "blank.png: blank: no face found" in err and "broken.jpg" in err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", "prnet-4", "summary.json"]  # no folder for the failed images
    assert (out / "prnet-4" / "0" / "params.json").is_file()
    assert main(["reconstruct", str(blank), "-o", str(out), "--quiet"]) == ExitCode.NO_FACE
    assert main(["reconstruct", str(broken), "-o", str(out), "--quiet"]) == ExitCode.IMAGE_READ


def test_facerecon_is_an_evaluation_method(faces_dir, model_home) -> None:
    from facerecon.eval.methods import create_method
    from facerecon.io.image import read_image

    image = read_image(faces_dir / "prnet-4.jpg")
    with create_method("facerecon", home=str(model_home)) as method:
        out = method.predict(image)
    assert out.landmarks68.shape == (68, 2) and out.now_landmarks.shape == (7, 3)
    assert out.rendered.shape == image.shape and out.mask.shape == image.shape[:2] and out.mask.any()
    assert (out.vertices[:, 2] > 0).all()  # camera space, in front of the camera


def test_torch_threads_is_scoped() -> None:
    import torch

    from facerecon.core.threads import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="count: expected a positive integer"):
        with torch_threads(0):
            pass


def test_demo_reconstructs_the_astronaut(tmp_path: Path, model_home, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    assert main(["demo", "-o", str(tmp_path), "--stages", "landmarks", "--quiet"]) == ExitCode.OK
    params = json.loads((tmp_path / "astronaut" / "0" / "params.json").read_text())
    assert params["landmark_nme"] < 0.04 and abs(params["head_angles_deg"]["yaw"]) < 30
