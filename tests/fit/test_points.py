"""The model fitted to 3D points up to one scale (what a position map gives): exact points give the face back,
noisy ones a close face, degenerate ones a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.core.errors import FitDivergedError
from facerecon.fit.points import PointFitter, similarity
from facerecon.geometry.rotation import head_angles_to_camera_rotation


def _face(model, seed: int):
    rng = np.random.default_rng(seed)
    identity = rng.normal(scale=0.7, size=model.identity_count)
    expression = (rng.random(model.expression_count) < 0.15) * rng.random(model.expression_count)
    rotation = head_angles_to_camera_rotation(torch.from_numpy(np.radians(rng.uniform(-50, 50, 3)))).numpy()
    translation = np.array([rng.uniform(-50, 50), rng.uniform(-50, 50), rng.uniform(500, 900)])
    vertices = model(torch.from_numpy(identity).float()[None], torch.from_numpy(expression).float()[None], submesh="face")[0]
    return identity, expression, rotation, translation, vertices.double().numpy() @ rotation.T + translation


@pytest.fixture(scope="module")
def fitter(face_model):
    count = face_model.submesh("face").vertex_count
    index = np.arange(0, count, 4)
    weights = face_model.region_weights.cpu().numpy()[index]
    keep = weights > 0
    return PointFitter(face_model, index[keep], weights[keep]), index[keep]


def test_exact_points_give_the_face_back(face_model, fitter) -> None:
    fit_points, index = fitter
    identity, expression, rotation, translation, camera = _face(face_model, 1)
    reference = 700.0
    fit = fit_points.fit(camera[index] / reference)
    vertices = face_model(torch.from_numpy(fit.identity).float()[None], torch.from_numpy(fit.expression).float()[None],
                          submesh="face")[0].double().numpy() @ fit.rotation.T + fit.translation  # fmt: skip
    # The shape is found to a fraction of a millimetre once the one unknown scale (size against depth) is divided out.
    scale = np.median(np.linalg.norm(camera, axis=1) / np.linalg.norm(vertices, axis=1))
    assert fit.rms_mm < 0.5
    assert np.linalg.norm(vertices * scale - camera, axis=1).mean() < 1.0
    assert np.abs(fit.expression - expression).mean() < 0.05
    assert np.abs(np.degrees(np.arccos(np.clip((np.trace(fit.rotation.T @ rotation) - 1) / 2, -1, 1)))) < 1.0
    assert abs(scale - 1.0) < 0.05  # and the scale itself to a few per cent: the identity prior holds the size
    assert ((fit.expression >= 0) & (fit.expression <= 1)).all()


def test_noisy_points_give_a_close_face(face_model, fitter) -> None:
    fit_points, index = fitter
    _, expression, rotation, translation, camera = _face(face_model, 2)
    noisy = camera[index] + np.random.default_rng(0).normal(scale=2.0, size=(len(index), 3))
    fit = fit_points.fit(noisy / 650.0)
    assert 3.0 < fit.rms_mm < 4.0  # the noise: 2 mm per axis is 3.46 mm per point
    turn = np.degrees(np.arccos(np.clip((np.trace(fit.rotation.T @ rotation) - 1) / 2, -1, 1)))
    assert turn < 2.0
    assert abs(fit.translation[2] - translation[2]) / translation[2] < 0.08  # the size-depth ambiguity, held by the prior


def test_degenerate_points_are_reported(face_model, fitter) -> None:
    fit_points, index = fitter
    with pytest.raises(FitDivergedError, match="degenerate"):
        fit_points.fit(np.zeros((len(index), 3)))
    with pytest.raises(ValueError, match="points"):
        fit_points.fit(np.full((len(index), 3), np.nan))
    with pytest.raises(ValueError, match="points"):
        fit_points.fit(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least 3 points"):
        PointFitter(face_model, np.array([0, 1]), np.array([1.0, 1.0]))


def test_similarity_recovers_a_similarity() -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(size=(50, 3))
    rotation = head_angles_to_camera_rotation(torch.tensor([0.3, -0.7, 0.2], dtype=torch.float64)).numpy()
    target = 2.5 * source @ rotation.T + np.array([1.0, -2.0, 3.0])
    scale, found, shift = similarity(source, target, np.ones(50))
    assert abs(scale - 2.5) < 1e-9 and np.allclose(found, rotation) and np.allclose(shift, [1.0, -2.0, 3.0])
