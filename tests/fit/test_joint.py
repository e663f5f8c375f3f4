"""One identity over several views (fit.joint) and the fitter of a known person (LandmarkFitter.for_person)."""

from __future__ import annotations

import numpy as np
import pytest

from facerecon.fit.config import LandmarkFitConfig
from facerecon.fit.joint import ViewLandmarks, fit_shared_identity
from facerecon.fit.landmarks import LandmarkFitter, ibug68_targets
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import head_angles_to_camera_rotation

import torch

CAMERA = PerspectiveCamera.square(900.0, (319.5, 239.5), 640, 480)
# Fixed landmarks (no sliding contour), so that synthetic targets are exactly the model's points.
CONFIG = LandmarkFitConfig(sliding_contour=False, iterations=8, robust_scale=None)


@pytest.fixture(scope="module")
def fitter(face_model) -> LandmarkFitter:
    return LandmarkFitter(face_model, ibug68_targets(face_model), CONFIG)


@pytest.fixture(scope="module")
def person():
    rng = np.random.default_rng(7)
    identity = np.zeros(100)
    identity[:40] = rng.normal(0.0, 1.0, 40)
    return identity


def _view(fitter: LandmarkFitter, identity: np.ndarray, yaw: float, pitch: float, expression: np.ndarray,
          noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Landmarks of ``identity`` seen at (pitch, yaw) degrees with ``expression``, with Gaussian noise (px)."""
    rotation = head_angles_to_camera_rotation(torch.tensor([np.radians(pitch), np.radians(yaw), 0.0], dtype=torch.float64)).numpy()
    translation = np.array([5.0, -10.0, 600.0])
    points = fitter.project(np.zeros((68, 2)), identity=identity, expression=expression, rotation=rotation,
                            translation=translation, camera=CAMERA)  # fmt: skip
    points = points + np.random.default_rng(seed).normal(0.0, noise, points.shape)
    return points, rotation, translation


def _expression(fitter: LandmarkFitter, **weights: float) -> np.ndarray:
    expression = np.zeros(fitter.model.expression_count)
    for name, value in weights.items():
        expression[fitter.model.expression_index(name)] = value
    return expression


def test_one_view_is_the_single_view_fit(fitter, person) -> None:
    points, _, _ = _view(fitter, person, 20.0, 5.0, _expression(fitter, jawOpen=0.3))
    single = fitter.fit(points, camera=CAMERA)
    joint = fit_shared_identity(fitter, [ViewLandmarks(points, CAMERA)], iterations=8)
    assert len(joint.views) == 1 and joint.iterations >= 1
    # Same energy, same unknowns: the same minimum (up to the last steps' tolerance).
    assert np.median(joint.views[0].residual_px) == pytest.approx(np.median(single.residual_px), abs=0.05)
    assert np.linalg.norm(joint.identity - single.identity) < 0.05 * max(np.linalg.norm(single.identity), 1.0)
    assert np.array_equal(joint.views[0].identity, joint.identity)


def test_views_that_agree_recover_the_identity_better_than_any_one(fitter, person) -> None:
    angles = [(-35.0, 0.0), (0.0, 10.0), (35.0, -5.0)]
    expressions = [_expression(fitter, jawOpen=0.4), _expression(fitter, mouthSmile_L=0.6, mouthSmile_R=0.6),
                   _expression(fitter, browInnerUp_L=0.5, browInnerUp_R=0.5)]  # fmt: skip
    views = [_view(fitter, person, yaw, pitch, e, noise=1.0, seed=i) for i, ((yaw, pitch), e) in enumerate(zip(angles, expressions))]
    joint = fit_shared_identity(fitter, [ViewLandmarks(p, CAMERA) for p, _, _ in views])
    singles = [fitter.fit(p, camera=CAMERA) for p, _, _ in views]

    def shape_error(identity: np.ndarray) -> float:  # mm, mean over the 68 points of the neutral face
        neutral = np.zeros(fitter.model.expression_count)
        ident = torch.as_tensor(identity, dtype=torch.float32)[None]
        with torch.no_grad():
            verts = fitter.model(ident, torch.as_tensor(neutral, dtype=torch.float32)[None])[0]
            truth = fitter.model(torch.as_tensor(person, dtype=torch.float32)[None], torch.zeros(1, len(neutral)))[0]
        idx = torch.as_tensor(fitter.targets.vertex_indices)
        a, b = verts[idx].double().numpy(), truth[idx].double().numpy()
        a, b = a - a.mean(0), b - b.mean(0)
        return float(np.linalg.norm(a - b, axis=1).mean())

    joint_error = shape_error(joint.identity)
    single_errors = [shape_error(s.identity) for s in singles]
    assert joint_error < min(single_errors), (joint_error, single_errors)
    # Each view keeps its own pose and expression.
    for fit, (_, rotation, translation) in zip(joint.views, views):
        assert np.degrees(np.arccos(np.clip((np.trace(fit.rotation.T @ rotation) - 1) / 2, -1, 1))) < 3.0
        assert np.linalg.norm(fit.translation - translation) < 0.05 * translation[2]
    jaw = fitter.model.expression_index("jawOpen")
    assert joint.views[0].expression[jaw] > joint.views[1].expression[jaw] + 0.15
    assert all(0.0 <= e.min() and e.max() <= 1.0 for e in (v.expression for v in joint.views))
    assert joint.history[-1] <= joint.history[0]


def test_joint_fit_errors(fitter, person) -> None:
    points, _, _ = _view(fitter, person, 0.0, 0.0, _expression(fitter))
    with pytest.raises(ValueError, match="at least one view"):
        fit_shared_identity(fitter, [])
    with pytest.raises(ValueError, match=r"views\[0\].landmarks"):
        fit_shared_identity(fitter, [ViewLandmarks(points[:10], CAMERA)])
    bad = points.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_shared_identity(fitter, [ViewLandmarks(bad, CAMERA)])
    with pytest.raises(ValueError, match="known person"):
        fit_shared_identity(fitter.for_person(person), [ViewLandmarks(points, CAMERA)])


def test_known_person_fits_pose_and_expression_only(fitter, person) -> None:
    expression = _expression(fitter, jawOpen=0.5, eyeBlink_L=0.7)
    points, rotation, translation = _view(fitter, person, 25.0, -8.0, expression)
    known = fitter.for_person(person)
    assert known.identity_modes == 0 and np.array_equal(known.fixed_identity, person)
    fit = known.fit(points, camera=CAMERA)
    assert np.array_equal(fit.identity, person)
    assert np.median(fit.residual_px) < 0.3  # exact targets: only the expression prior keeps it from 0
    assert fit.expression[fitter.model.expression_index("jawOpen")] == pytest.approx(0.5, abs=0.03)
    assert fit.normal_matrix.shape == (6 + fitter.model.expression_count,) * 2
    # The wrong person cannot: the mean face leaves a residual.
    wrong = fitter.for_person(np.zeros_like(person)).fit(points, camera=CAMERA)
    assert wrong.residual_px.mean() > 5 * fit.residual_px.mean()


def test_prior_targets_pull_the_fit(fitter, person) -> None:
    points, _, _ = _view(fitter, person, 0.0, 0.0, _expression(fitter))
    known = fitter.for_person(person)
    shifted = points + np.array([6.0, 0.0])
    alone = known.fit(points, camera=CAMERA)
    pulled = known.fit(points, camera=CAMERA, prior_targets=shifted, prior_weight=1.0)
    # Equal weights: half-way between the two targets; residual_px stays the distance to the detections.
    shift = (pulled.projected - alone.projected).mean(0)
    assert shift[0] == pytest.approx(3.0, abs=0.3) and abs(shift[1]) < 0.3
    assert np.median(pulled.residual_px) == pytest.approx(3.0, abs=0.4)
    # NaN rows of the second target are left out.
    partial = shifted.copy()
    partial[:] = np.nan
    same = known.fit(points, camera=CAMERA, prior_targets=partial, prior_weight=1.0)
    assert np.allclose(same.projected, alone.projected, atol=1e-6)
