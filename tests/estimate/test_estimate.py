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
    assert np.array_equal(estimate.identity.double().numpy(), via_pipeline.identity)
    assert np.array_equal(estimate.rotation.double().numpy(), via_pipeline.rotation)
    assert via_pipeline.intrinsics == (estimate.focal, estimate.focal, *estimate.principal_point)
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
