"""The estimator seam: FaceEstimate's checks, the registry, and the fit estimator on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.core.timing import timed
from facerecon.detect import create_detector
from facerecon.estimate import FaceEstimate, available_estimators, create_estimator, estimator_info, register_estimator
from facerecon.estimate.base import Estimator
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.io.image import read_image
from facerecon.pipeline.run import Reconstructor, ReconstructOptions


def _estimate(**changes) -> FaceEstimate:
    fields = dict(method="fit", camera=PerspectiveCamera.from_focal(500.0, 64, 48, dtype=torch.float64),
                  identity=torch.zeros(100), expression=torch.zeros(53), rotation=torch.eye(3),
                  translation=torch.tensor([0.0, 0.0, 600.0]), vertices=torch.zeros(10, 3))  # fmt: skip
    fields.update(changes)
    return FaceEstimate(**fields)


def test_face_estimate_checks_its_fields() -> None:
    est = _estimate()
    assert est.focal == 500.0 and est.principal_point == (31.5, 23.5)
    assert torch.equal(est.camera_vertices()[:, 2], torch.full((10,), 600.0))
    with pytest.raises(ValueError, match="rotation"):
        _estimate(rotation=torch.eye(4))
    with pytest.raises(ValueError, match="sh"):
        _estimate(sh=torch.zeros(9))
    with pytest.raises(ValueError, match="confidence"):
        _estimate(confidence=1.5)
    with pytest.raises(TypeError, match="camera"):
        _estimate(camera=PerspectiveCamera.from_focal(500.0, 64, 48, 2))


def test_registry_names_and_errors(face_model) -> None:
    assert "fit" in available_estimators()
    assert estimator_info("fit").gives_light
    with pytest.raises(ValueError, match="method"):
        create_estimator("no-such-method", face_model)
    with pytest.raises(ValueError, match="registered already"):
        register_estimator("fit", lambda model: None, description="x", gives_light=False)
    with pytest.raises(ValueError, match="name"):
        register_estimator("bad name", lambda model: None, description="x", gives_light=False)
    with pytest.raises(ValueError, match="method"):
        ReconstructOptions(method="no-such-method")


@pytest.fixture(scope="module")
def photo_and_face(faces_dir):
    image = read_image(faces_dir / "3ddfa-JianzhuGuo.jpg")
    with create_detector("mediapipe") as detector:
        return image, detector.detect(image)[0]


def test_fit_estimator_is_what_the_pipeline_runs(face_model, photo_and_face) -> None:
    image, face = photo_and_face
    options = ReconstructOptions(stages="landmarks", render_images=False, texture_completion=False, details=False)
    with Reconstructor(face_model, options, detector=create_detector("mediapipe")) as rec:
        assert isinstance(rec.estimator, Estimator)
        camera = rec.camera_for(image)
        estimate = rec.estimator.estimate(image, face, camera)
        via_pipeline = rec.reconstruct_face(image, face)
    assert estimate.stages == ("landmarks",) and estimate.sh is None and estimate.albedo is None
    assert np.array_equal(estimate.identity.double().numpy(), via_pipeline.coefficients.identity)
    assert np.array_equal(estimate.rotation.double().numpy(), via_pipeline.pose.rotation)
    assert via_pipeline.camera.intrinsics == (estimate.focal, estimate.focal, *estimate.principal_point)
    # The head mesh is the model at the estimate's coefficients.
    head = face_model(estimate.identity[None], estimate.expression[None], submesh="head")[0]
    assert torch.equal(head, estimate.vertices)


def test_fit_starts_from_an_init(face_model, photo_and_face) -> None:
    """Seeded with its own result, the landmark fit stays there (a regressor or the previous frame seeds it so)."""
    image, face = photo_and_face
    fit = create_estimator("fit", face_model, photometric=False)
    camera = PerspectiveCamera.from_focal(1200.0, image.shape[1], image.shape[0], dtype=torch.float64)
    first = fit.estimate(image, face, camera)
    again = fit.estimate(image, face, camera, init=first)
    # Eight more iterations from there lower the energy a little further; the pose moves by < 0.5 % of the depth.
    assert again.losses["landmarks"]["energy"] <= first.losses["landmarks"]["energy"]
    assert torch.linalg.norm(again.translation - first.translation) < 0.005 * first.translation[2]
    assert torch.allclose(again.rotation, first.rotation, atol=0.01)
    # A start some way off (turned by 12 degrees, 100 mm further: a regressor's error) converges to the same fit.
    c, s = np.cos(np.radians(12)), np.sin(np.radians(12))
    turn = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float32)
    far = _estimate(camera=camera, rotation=turn @ first.rotation, translation=first.translation + torch.tensor([0, 0, 100.0]))
    recovered = fit.estimate(image, face, camera, init=far)
    assert torch.allclose(recovered.rotation, first.rotation, atol=0.05)
    assert torch.linalg.norm(recovered.translation - first.translation) < 0.02 * first.translation[2]


def test_fit_start_options_are_checked(face_model) -> None:
    from facerecon.estimate.fit import FitConfig

    with pytest.raises(ValueError, match="start"):
        FitConfig(start="guess")
    with pytest.raises(ValueError, match="large_pose_targets"):
        FitConfig(large_pose_targets="both")
    with pytest.raises(ValueError, match="start_yaw_deg"):
        FitConfig(start="auto", start_yaw_deg=120.0)
    with pytest.raises(ValueError, match="start"):
        create_estimator("fit", face_model, start="sometimes")


def test_the_regressor_starts_the_fit_where_asked(face_model, photo_and_face, tmp_path, monkeypatch) -> None:
    """``start="regress"`` runs the regressor first and fits from it (to its own landmarks); ``"auto"`` on a
    near-frontal face runs it but starts from PnP as before, to the same result as ``"pnp"``."""
    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    image, face = photo_and_face
    camera = PerspectiveCamera.from_focal(1200.0, image.shape[1], image.shape[0], dtype=torch.float64)
    plain = create_estimator("fit", face_model, photometric=False).estimate(image, face, camera)
    seeded_fit = create_estimator("fit", face_model, photometric=False, start="regress")
    seeded = seeded_fit.estimate(image, face, camera)
    regressed = seeded_fit.regressor.estimate(image, face, camera)
    assert seeded.stages == ("regress", "landmarks") and "regress" in seeded.timings_ms
    assert "confidence" in seeded.losses["regress"]
    # It fits the regressor's landmarks: the fitted 68 points stay near the regressed ones (< 2 % of the box) ...
    lm = face_model.landmarks("ibug68").vertex_indices

    def points(est):
        return est.camera.to(dtype=torch.float32).project((est.vertices[lm] @ est.rotation.T + est.translation)[None])[0]

    assert float(torch.linalg.norm(points(seeded) - points(regressed), dim=-1).mean()) < 0.02 * face.box_size
    # ... while the plain fit follows the detector's (the two differ by the regressor's error).
    detected = torch.from_numpy(face.to_ibug68()).float()
    assert float(torch.linalg.norm(points(plain) - detected, dim=-1).mean()) < float(
        torch.linalg.norm(points(seeded) - detected, dim=-1).mean())
    auto = create_estimator("fit", face_model, photometric=False, start="auto").estimate(image, face, camera)
    assert auto.stages == ("landmarks",) and "regress" in auto.timings_ms
    assert torch.equal(auto.rotation, plain.rotation) and torch.equal(auto.identity, plain.identity)


def test_timed_adds_up() -> None:
    timings: dict[str, float] = {}
    with timed(timings, "a"):
        pass
    first = timings["a"]
    with timed(timings, "a"):
        sum(range(1000))
    assert timings["a"] > first >= 0.0
    with pytest.raises(RuntimeError), timed(timings, "b"):
        raise RuntimeError("the block's error passes through")
    assert "b" in timings
