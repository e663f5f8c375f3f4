"""The training corpus's face-free crops stay clear of the photos' faces, and the training crops' degradations
(blur, noise, occluders, grey) do what they say, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.io.image import read_image
from facerecon.train.corpus import Background, SubjectAppearance, _background, _clear_of_faces, background_pool
from facerecon.train.regressor import Degrade, degrade


def test_a_square_is_clear_of_a_face_unless_it_holds_its_centre_or_much_of_it() -> None:
    face = np.array([[100.0, 100.0, 200.0, 200.0]])
    assert _clear_of_faces(400.0, 400.0, 100.0, face)  # far away
    assert not _clear_of_faces(150.0, 150.0, 40.0, face)  # holds the centre
    assert not _clear_of_faces(80.0, 150.0, 80.0, face)  # covers 20 % of the box, not its centre
    assert _clear_of_faces(60.0, 150.0, 100.0, face)  # covers 10 % of it
    assert _clear_of_faces(150.0, 150.0, 40.0, np.zeros((0, 4)))  # no face


def test_face_free_crops_avoid_the_detected_faces(faces_dir) -> None:
    """On a real photo the detector finds no face in any face-free crop, while plain background crops of the same
    photo do hold faces (so the check can fail)."""
    from facerecon.detect import create_detector

    photo = read_image(faces_dir / "3ddfa-JianzhuGuo.jpg")
    subject = SubjectAppearance("s", np.zeros(100), np.zeros(53), np.zeros((9, 3)), np.zeros((1, 3)),
                                np.zeros((4, 4, 3), np.float32), photo)  # fmt: skip
    twin = SubjectAppearance("t", *(getattr(subject, k) for k in ("identity", "expression", "sh", "albedo", "albedo_texture")),
                             photo.copy())  # fmt: skip
    pool = background_pool([subject, twin], 128)
    assert len(pool) == 1 and len(pool[0].face_boxes) >= 1  # one photo, whether shared or a copy

    def faces_found(face_free: bool) -> int:
        rng = np.random.default_rng(0)
        with create_detector("mediapipe") as detector:
            crops = [_background(rng, pool, 192, face_free=face_free) for _ in range(24)]
            return sum(bool(detector.detect(np.ascontiguousarray((c.transpose(1, 2, 0) * 255).astype(np.uint8))))
                       for c in crops)  # fmt: skip

    assert faces_found(face_free=False) >= 3
    assert faces_found(face_free=True) == 0


def test_background_pool_without_the_detector_has_no_boxes(faces_dir) -> None:
    photo = read_image(faces_dir / "3ddfa-JianzhuGuo.jpg")
    subject = SubjectAppearance("s", np.zeros(100), np.zeros(53), np.zeros((9, 3)), np.zeros((1, 3)),
                                np.zeros((4, 4, 3), np.float32), photo)  # fmt: skip
    (background,) = background_pool([subject], 64, find_faces=False)
    assert isinstance(background, Background) and background.face_boxes.shape == (0, 4)


@pytest.fixture
def crops() -> torch.Tensor:
    return torch.rand(16, 3, 48, 48, generator=torch.Generator().manual_seed(1))


def test_no_degradation_leaves_the_crops(crops) -> None:
    assert torch.equal(degrade(crops, Degrade(), torch.Generator().manual_seed(0)), crops)


def test_degradations_are_reproducible_and_in_range(crops) -> None:
    shares = Degrade(blur=0.5, noise=0.5, occlusion=0.5, grey=0.3)
    a = degrade(crops, shares, torch.Generator().manual_seed(3))
    b = degrade(crops, shares, torch.Generator().manual_seed(3))
    c = degrade(crops, shares, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == crops.shape and float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_each_degradation(crops) -> None:
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    blurred = degrade(crops, Degrade(blur=1.0), g())
    # Down- and up-sampling removes the pixel-to-pixel variation of noise-like crops.
    assert float(blurred.diff(dim=-1).abs().mean()) < 0.6 * float(crops.diff(dim=-1).abs().mean())
    grey = degrade(crops, Degrade(grey=1.0), g())
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    occluded = degrade(crops, Degrade(occlusion=1.0), g())
    changed = (occluded != crops).any(1)  # (B, S, S)
    for mask in changed:
        rows, cols = torch.nonzero(mask.any(1))[:, 0], torch.nonzero(mask.any(0))[:, 0]
        assert len(rows) > 0
        # one rectangle: everything inside the changed rows and columns' span changed (values may coincide rarely)
        assert float(mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].float().mean()) > 0.99
        assert int(rows.max() - rows.min() + 1) <= int(0.5 * 48) + 1
    noisy = degrade(crops, Degrade(noise=1.0), g())
    assert float((noisy - crops).abs().mean()) > 0.0
