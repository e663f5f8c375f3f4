"""The landmark stage: exact recovery on synthetic projections, real photos, sliding contours, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from facerecon.fit.landmarks import LandmarkFitConfig, LandmarkFitter, ibug68_targets, initial_pose
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import head_angles_to_camera_rotation

FOCAL, WIDTH, HEIGHT = 1000.0, 640, 480
CX, CY = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
CAMERA = PerspectiveCamera.square(FOCAL, (CX, CY), WIDTH, HEIGHT)


def _project(points: np.ndarray) -> np.ndarray:
    return np.stack([FOCAL * points[:, 0] / points[:, 2] + CX, FOCAL * points[:, 1] / points[:, 2] + CY], 1)


def _synthetic(face_model, angles_deg, seed: int = 0):
    """A random face (identity ~ N(0, 0.5^2), a few expressions) posed in front of the camera."""
    rng = np.random.default_rng(seed)
    identity = np.zeros(100)
    identity[:40] = rng.normal(0, 0.5, 40)
    expression = np.zeros(53)
    expression[face_model.expression_index("jawOpen")] = 0.4
    expression[face_model.expression_index("mouthSmile_L")] = 0.6
    rotation = head_angles_to_camera_rotation(torch.tensor(np.radians(angles_deg))).numpy()
    translation = np.array([15.0, -10.0, 600.0])
    vertices = face_model(torch.tensor(identity[None]), torch.tensor(expression[None]))[0].numpy()
    return identity, expression, rotation, translation, vertices @ rotation.T + translation


@pytest.fixture(scope="module")
def fitter(face_model):
    return LandmarkFitter(face_model, ibug68_targets(face_model))


def test_targets(face_model) -> None:
    targets = ibug68_targets(face_model)
    assert targets.vertex_indices.shape == (68,) and targets.contour[:17].all() and not targets.contour[17:].any()
    assert len(targets.contour_candidates) > 200
    assert np.isin(targets.vertex_indices[:17], targets.contour_candidates).all()
    assert targets.contour_candidates.max() < face_model.submesh("face").vertex_count


@pytest.mark.parametrize("angles", [(0, 0, 0), (10, 25, -5), (-5, -40, 8)])
def test_recovers_a_synthetic_face(face_model, angles) -> None:
    identity, expression, rotation, translation, cam = _synthetic(face_model, angles)
    targets = ibug68_targets(face_model)
    landmarks = _project(cam[targets.vertex_indices])
    # Fixed correspondences (no sliding) and a weak prior: the fit must reproduce the landmarks almost exactly.
    fitter = LandmarkFitter(face_model, targets, LandmarkFitConfig(sliding_contour=False, landmark_sigma=0.002, iterations=30))
    fit = fitter.fit(landmarks, camera=CAMERA)
    assert np.median(fit.residual_px) < 0.3
    angle_error = np.degrees(np.arccos(np.clip((np.trace(fit.rotation.T @ rotation) - 1) / 2, -1, 1)))
    assert angle_error < 3.0
    assert abs(fit.translation[2] - translation[2]) / translation[2] < 0.08
    assert fit.history[-1] < fit.history[0]
    assert ((fit.expression >= 0) & (fit.expression <= 1)).all()


def test_sliding_contour_follows_the_silhouette(face_model) -> None:
    """At 45 degrees of yaw the far jaw's image contour is not the frontal jaw vertices: sliding must help."""
    _, _, _, _, cam = _synthetic(face_model, (0, 45, 0), seed=1)
    targets = ibug68_targets(face_model)
    # Image contour points: for each far-side jaw landmark, the candidate projecting furthest out along its row.
    landmarks = _project(cam[targets.vertex_indices])
    fixed = LandmarkFitter(face_model, targets, LandmarkFitConfig(sliding_contour=False)).fit(landmarks, camera=CAMERA)
    sliding = LandmarkFitter(face_model, targets).fit(landmarks, camera=CAMERA)
    assert (sliding.vertex_indices[:17] != targets.vertex_indices[:17]).any()  # some contour points slid
    assert (sliding.vertex_indices[17:] == targets.vertex_indices[17:]).all()  # fixed points did not
    assert np.isin(sliding.vertex_indices[:17], targets.contour_candidates).all()
    assert np.median(sliding.residual_px) < 2.0 and np.median(fixed.residual_px) < 2.0


def test_initial_pose_is_in_front_and_facing(face_model) -> None:
    _, _, rotation, translation, cam = _synthetic(face_model, (0, 20, 0))
    idx = face_model.landmarks().vertex_indices.numpy()
    model_pts = face_model.mean[idx].double().numpy()
    r, t = initial_pose(model_pts, _project(cam[idx]), FOCAL, CX, CY)
    assert t[2] > 0 and (r @ [0, 0, 1.0])[2] < 0
    assert abs(np.linalg.det(r) - 1) < 1e-9


def test_real_photos(face_model, fitter, faces_dir) -> None:
    from facerecon.detect import create_detector
    from facerecon.io.image import read_image

    with create_detector("mediapipe") as detector:
        for name in ("prnet-trump.jpg", "deca-exp-5.jpg", "deca-examples-alfw1.png", "prnet-3.jpg"):
            image = read_image(faces_dir / name)
            face = detector.detect(image)[0]
            h, w = image.shape[:2]
            fit = fitter.fit(face.to_ibug68(), camera=PerspectiveCamera.square(1.5 * max(w, h), ((w - 1) / 2, (h - 1) / 2), w, h))
            nme = np.median(fit.residual_px) / face.box_size
            assert nme < 0.03, (name, nme)
            assert fit.translation[2] > 0 and np.isfinite(fit.identity).all()
            assert np.abs(fit.identity).max() < 4.0  # a plausible face, not a caricature


@pytest.mark.parametrize(
    ("landmarks", "error", "match"),
    [
        (np.zeros((67, 2)), ValueError, r"landmarks: expected shape \(68, 2\)"),
        (np.full((68, 2), np.nan), ValueError, "landmarks: expected finite values"),
        ("not an array", TypeError, "landmarks: expected a tensor"),
    ],
)
def test_errors(fitter, landmarks, error, match) -> None:
    with pytest.raises(error, match=match):
        fitter.fit(landmarks, camera=CAMERA)


@pytest.fixture(scope="module")
def calibrated_model(model_home, tmp_path_factory):
    """A copy of the session's model with the MediaPipe-478 embedding calibrated (the production default)."""
    import shutil

    from facerecon.calibrate import calibrate_landmarks, save_embedding
    from facerecon.models import load_model

    home = tmp_path_factory.mktemp("calibrated-home")
    shutil.copytree(model_home, home, dirs_exist_ok=True)
    model = load_model(home=home, install=False)
    save_embedding(calibrate_landmarks(model), model.info["cache"])
    return load_model(home=home, install=False)


def test_dense_targets_recover_a_synthetic_face(calibrated_model) -> None:
    from facerecon.fit.landmarks import mediapipe478_targets

    targets = mediapipe478_targets(calibrated_model)
    assert targets.scheme == "mediapipe478" and len(targets.vertex_indices) == 468  # irises are not embedded
    assert targets.contour.sum() == 36 and (targets.weights.sum(1) == pytest.approx(1.0))
    subset = mediapipe478_targets(calibrated_model, interior_count=120)
    assert len(subset.vertex_indices) == 156 and subset.contour.sum() == 36
    _, _, rotation, translation, _ = _synthetic(calibrated_model, (5, -20, 0))
    identity, expression = np.zeros(100), np.zeros(53)
    identity[:10] = np.linspace(-1, 1, 10)
    verts = calibrated_model(torch.tensor(identity[None]), torch.tensor(expression[None]), submesh="face")[0].numpy()
    points = np.einsum("lkc,lk->lc", verts[targets.triangles], targets.weights) @ rotation.T + translation
    # The landmarks are the pose-free points here (test_pose_dependent_landmarks covers the pose table).
    pose_free = dataclasses.replace(targets, poses=None)
    fitter = LandmarkFitter(calibrated_model, pose_free, LandmarkFitConfig(sliding_contour=False, landmark_sigma=0.002, iterations=30))
    fit = fitter.fit(_project(points), camera=CAMERA)
    assert np.median(fit.residual_px) < 0.3
    assert np.corrcoef(fit.identity[:10], identity[:10])[0, 1] > 0.9  # the identity is recovered, not just the landmarks


def test_default_iterations_reach_the_minimum(calibrated_model, faces_dir) -> None:
    """The default few iterations stop within a few per cent of the energy 30 iterations reach, for the dense
    (468-point) and the 68-point fits on real photos, a profile included; and the energy only goes down."""
    from facerecon.detect import create_detector
    from facerecon.fit.landmarks import mediapipe478_targets
    from facerecon.io.image import read_image

    dense, sparse = mediapipe478_targets(calibrated_model), ibug68_targets(calibrated_model)
    fitters = [(LandmarkFitter(calibrated_model, t), LandmarkFitter(calibrated_model, t, LandmarkFitConfig(iterations=30)), t)
               for t in (dense, sparse)]  # fmt: skip
    with create_detector("mediapipe") as detector:
        for name in ("prnet-trump.jpg", "deca-exp-5.jpg", "prnet-3.jpg"):
            image = read_image(faces_dir / name)
            face = detector.detect(image)[0]
            h, w = image.shape[:2]
            camera = {"camera": PerspectiveCamera.square(1.5 * max(w, h), ((w - 1) / 2, (h - 1) / 2), w, h)}
            for default, converged, targets in fitters:
                points = targets.select(face.landmarks) if targets is dense else face.to_ibug68()
                fit, best = default.fit(points, **camera), converged.fit(points, **camera)
                assert fit.iterations == LandmarkFitConfig().iterations and len(fit.history) == fit.iterations + 1
                assert fit.history[-1] <= 1.03 * best.history[-1], (name, targets.scheme, fit.history, best.history[-1])
                assert fit.history[-1] < fit.history[0]
                assert ((fit.expression >= 0) & (fit.expression <= 1)).all()


def test_expression_weights_on_their_bounds(face_model) -> None:
    """Weights at 0 and 1 (an active set holds them) are recovered, and no weight leaves [0, 1]."""
    identity, _, rotation, translation, _ = _synthetic(face_model, (0, 10, 0))
    expression = np.zeros(53)
    expression[face_model.expression_index("jawOpen")] = 1.0
    expression[face_model.expression_index("mouthSmile_R")] = 1.0
    cam = face_model(torch.tensor(identity[None]), torch.tensor(expression[None]))[0].numpy() @ rotation.T + translation
    targets = ibug68_targets(face_model)
    config = LandmarkFitConfig(sliding_contour=False, landmark_sigma=0.002, iterations=30)
    fit = LandmarkFitter(face_model, targets, config).fit(_project(cam[targets.vertex_indices]), camera=CAMERA)
    assert np.median(fit.residual_px) < 0.3
    assert fit.expression[face_model.expression_index("jawOpen")] > 0.9
    assert ((fit.expression >= 0) & (fit.expression <= 1)).all() and (fit.expression == 0).sum() > 20


def test_viewed_pitch_yaw_matches_geometry() -> None:
    from facerecon.fit.landmarks import viewed_pitch_yaw
    from facerecon.geometry.rotation import viewed_head_angles

    rng = np.random.default_rng(3)
    for _ in range(20):
        angles = rng.uniform(-1.2, 1.2, 3)
        translation = np.array([rng.uniform(-300, 300), rng.uniform(-300, 300), rng.uniform(200, 900)])
        rotation = head_angles_to_camera_rotation(torch.tensor(angles)).numpy()
        expected = np.degrees(viewed_head_angles(torch.tensor(rotation), torch.tensor(translation)).numpy())[:2]
        np.testing.assert_allclose(viewed_pitch_yaw(rotation, translation), expected, atol=1e-9)


def test_pose_dependent_landmarks(calibrated_model) -> None:
    """Landmarks placed where the calibration found the detector puts them at +28 degrees of yaw are fitted
    exactly by the fitter that looks up the pose cell; the pose-free points cannot follow them."""
    from facerecon.fit.landmarks import mediapipe478_targets

    targets = mediapipe478_targets(calibrated_model)
    assert targets.poses is not None and targets.poses.triangles.shape[2] == len(targets.vertex_indices)
    identity, expression, rotation, translation, _ = _synthetic(calibrated_model, (3, 28, 0))
    cell = targets.poses.cell(3.0, 28.0)
    assert cell == (4, 1)
    verts = calibrated_model(torch.tensor(identity[None]), torch.tensor(expression[None]), submesh="face")[0].double().numpy()
    tri, w = targets.poses.triangles[cell].numpy(), targets.poses.weights[cell].double().numpy()
    landmarks = _project(np.einsum("lkc,lk->lc", verts[tri], w) @ rotation.T + translation)
    config = LandmarkFitConfig(sliding_contour=False, landmark_sigma=0.002, iterations=30)
    posed = LandmarkFitter(calibrated_model, targets, config).fit(landmarks, camera=CAMERA)
    free = LandmarkFitter(calibrated_model, dataclasses.replace(targets, poses=None), config).fit(
        landmarks, camera=CAMERA
    )
    assert np.median(posed.residual_px) < 0.3
    assert np.median(free.residual_px) > 2 * np.median(posed.residual_px)
    # The fit reports the landmarks it ended with: the cell's.
    interior = ~targets.contour
    np.testing.assert_array_equal(posed.triangles[interior], tri[interior])
