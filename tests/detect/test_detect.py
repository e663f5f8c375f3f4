"""Face and landmark detection on the real photos of ../shared/data/faces, with real MediaPipe and dlib."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facerecon.core.errors import ImageReadError, ModelNotInstalledError
from facerecon.detect import (
    IBUG68_MIRROR_PAIRS,
    MEDIAPIPE_TO_IBUG68,
    Detection,
    Detector,
    VideoDetector,
    create_detector,
    to_ibug68,
)
from facerecon.detect._image import box_iou, scaled_copy, square_crop
from facerecon.detect.draw import draw_detections
from facerecon.detect.mediapipe_mesh import MediaPipeOptions
from facerecon.detect.schemes import MEDIAPIPE_POINTS
from facerecon.io.image import downscale_for_detection, points_to_original, read_image

# Faces per photo, counted by looking at each one. Background faces that are out of focus and a few pixels
# wide are not counted (3ddfa-emma has blurred people behind her, d3dfr-000050 one at the right edge);
# prnet-5 is a drawn (cartoon) face and counts. Every other photo has one face.
MULTI_FACE = {"3ddfa-trump_hillary.jpg": 2, "3ddfa-emma.jpg": 3}

# Frontal (|yaw| below ~25 degrees), upright faces, chosen by looking, for the MediaPipe vs dlib comparison.
FRONTAL = (
    "3ddfa-JianzhuGuo.jpg", "d3dfr-000007.jpg", "d3dfr-000031.jpg", "d3dfr-000033.jpg", "d3dfr-000055.jpg",
    "d3dfr-000125.jpg", "d3dfr-015270.jpg", "d3dfr-015309.jpg", "d3dfr-015316.jpg", "d3dfr-vd025.png",
    "d3dfr-vd051.png", "d3dfr-vd102.png", "deca-examples-IMG_0392_inputs.jpg", "deca-exp-2.jpg",
    "deca-exp-5.jpg", "prnet-4.jpg", "prnet-trump.jpg",
)
# MediaPipe-mapped 68 points vs dlib's, error / dlib box size (sqrt(w h)), on the frontal faces. Measured:
# pooled median 0.016, 90th percentile 0.046 (per face: medians 0.012-0.020, 90th percentiles <= 0.067).
TOL_MEDIAN_PER_FACE = 0.035
TOL_P90_PER_FACE = 0.10
TOL_MEDIAN_POOLED = 0.025


def _photos(faces_dir: Path) -> list[Path]:
    return sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in (".jpg", ".png"))


@pytest.fixture(scope="module")
def mediapipe():
    with create_detector("mediapipe") as detector:
        yield detector


@pytest.fixture(scope="module")
def dlib_hog():
    with create_detector("dlib") as detector:
        yield detector


@pytest.fixture(scope="module")
def images(faces_dir: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p) for p in _photos(faces_dir)}


@pytest.fixture(scope="module")
def found(mediapipe, images) -> dict[str, list[Detection]]:
    return {name: mediapipe.detect(image) for name, image in images.items()}


def _save(artifacts_dir: Path | None, name: str, image: np.ndarray, dets: list[Detection]) -> None:
    if artifacts_dir is not None:
        Image.fromarray(draw_detections(image, dets)).save(artifacts_dir / f"detect-{name}.png")


# ---------------------------------------------------------------------------------------------- faces

def test_every_photo_yields_its_faces(faces_dir, found, images, artifacts_dir):
    assert len(found) == 51
    counts = {name: len(dets) for name, dets in found.items()}
    expected = {name: MULTI_FACE.get(name, 1) for name in found}
    assert counts == expected
    for name in ("3ddfa-trump_hillary.jpg", "3ddfa-emma.jpg", "prnet-3.jpg", "deca-exp-7.jpg", "prnet-1.jpg"):
        _save(artifacts_dir, Path(name).stem, images[name], found[name])


def test_faces_are_largest_first_and_separate(found, images):
    for name, dets in found.items():
        areas = [d.area for d in dets]
        assert areas == sorted(areas, reverse=True), name
        for i in range(len(dets)):
            for j in range(i + 1, len(dets)):
                assert box_iou(dets[i].box, dets[j].box) < 0.05, name
    # Hillary Clinton (right half, the larger face in this photo) first, Donald Trump (left half) second.
    hillary, trump = found["3ddfa-trump_hillary.jpg"]
    w = images["3ddfa-trump_hillary.jpg"].shape[1]
    assert hillary.landmarks[:, 0].min() > w / 2 and trump.landmarks[:, 0].max() < w / 2
    # Emma Watson three times, one per panel (the photo is three pictures side by side).
    emma = found["3ddfa-emma.jpg"]
    w = images["3ddfa-emma.jpg"].shape[1]
    assert sorted(int(d.landmarks[:, 0].mean() // (w / 3)) for d in emma) == [0, 1, 2]


def test_detection_fields(found, images):
    for name, dets in found.items():
        h, w = images[name].shape[:2]
        for d in dets:
            assert d.scheme == "mediapipe478" and d.track_id is None
            assert d.landmarks.shape == (478, 2) and d.landmarks.dtype == np.float64
            assert d.landmarks_3d.shape == (478, 3)
            np.testing.assert_array_equal(d.landmarks_3d[:, :2], d.landmarks)
            assert d.confidence.shape == (478,) and np.all(d.confidence == min(d.score, 1.0))
            assert 0.5 <= d.score <= 1.0
            # The points lie on the picture (a face may leave it by a little: its chin or forehead).
            margin = 0.1 * d.box_size
            assert d.landmarks[:, 0].min() > -margin and d.landmarks[:, 0].max() < w - 1 + margin, name
            assert d.landmarks[:, 1].min() > -margin and d.landmarks[:, 1].max() < h - 1 + margin, name
            # Depth: the nose tip is nearer the camera (smaller z) than the middle of the jaw's two ends.
            z = d.landmarks_3d[:, 2]
            assert z[MEDIAPIPE_POINTS["nose_tip"]] < 0.5 * (z[127] + z[356]) - 0.05 * d.box_size, name


def test_landmarks_lie_inside_their_box(found):
    for name, dets in found.items():
        for d in dets:
            x0, y0, x1, y1 = d.box
            u, v = d.landmarks[:, 0], d.landmarks[:, 1]
            inside = (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
            # BlazeFace's box is tight (brows to chin): the forehead and the jaw's ends may leave it a bit.
            assert inside.mean() >= 0.9, (name, inside.mean())
            m = 0.25 * d.box_size
            assert np.all((u >= x0 - m) & (u <= x1 + m) & (v >= y0 - m) & (v <= y1 + m)), name


def test_left_and_right_are_not_swapped(found, images, dlib_hog):
    p = MEDIAPIPE_POINTS
    for name, dets in found.items():
        for d in dets:
            u = d.landmarks[:, 0]
            # Upright photos, |yaw| < 90 degrees: the subject's right is the left of the picture.
            assert u[p["right_eye_outer"]] < u[p["left_eye_outer"]], name
            assert u[p["right_eye_inner"]] < u[p["left_eye_inner"]], name
            assert u[p["mouth_right"]] < u[p["mouth_left"]], name
            # The iris centres (refined model) sit between their eye's corners.
            for iris, a, b in (("right_iris", 33, 133), ("left_iris", 362, 263)):
                lo, hi = sorted((u[a], u[b]))
                assert lo - 2 <= u[p[iris]] <= hi + 2, (name, iris)
    for name in FRONTAL:
        for d in found[name] + dlib_hog.detect(images[name]):
            lm = d.to_ibug68()
            # iBUG 0 (subject's right jaw), 36 (right eye outer corner), 48 (right mouth corner) on the left.
            assert lm[0, 0] < lm[16, 0] and lm[36, 0] < lm[45, 0] and lm[48, 0] < lm[54, 0], (name, d.scheme)
            assert lm[19, 1] < lm[36, 1] < lm[33, 1] < lm[51, 1] < lm[8, 1], (name, d.scheme)  # top to bottom


def test_mediapipe_68_agrees_with_dlib_on_frontal_photos(found, images, dlib_hog):
    errors, swapped = [], []
    mirror = np.arange(68)
    for r, l in IBUG68_MIRROR_PAIRS:
        mirror[r], mirror[l] = l, r
    for name in FRONTAL:
        ref = dlib_hog.detect(images[name])
        assert len(ref) == 1, name
        mp68 = found[name][0].to_ibug68()
        err = np.linalg.norm(mp68 - ref[0].landmarks, axis=1) / ref[0].box_size
        assert np.median(err) <= TOL_MEDIAN_PER_FACE, (name, np.median(err))
        assert np.percentile(err, 90) <= TOL_P90_PER_FACE, (name, np.percentile(err, 90))
        errors.append(err)
        swapped.append(np.linalg.norm(mp68[mirror] - ref[0].landmarks, axis=1) / ref[0].box_size)
    pooled = np.concatenate(errors)
    assert np.median(pooled) <= TOL_MEDIAN_POOLED
    # The comparison can tell a left/right swap of the map: it is many times worse.
    assert np.median(np.concatenate(swapped)) > 4 * np.median(pooled)


def test_dlib_cnn_finds_a_face_hog_misses(images):
    image = images["prnet-2.jpg"]  # face turned and tilted, sunglasses
    with create_detector("dlib", face_detector="hog") as hog:
        assert hog.detect(image) == []
    with create_detector("dlib", face_detector="cnn", max_side=640) as cnn:
        dets = cnn.detect(image)
    assert len(dets) == 1 and dets[0].scheme == "ibug68" and dets[0].landmarks.shape == (68, 2)
    assert dets[0].landmarks_3d is None and np.all(dets[0].confidence == 1.0)
    lm = dets[0].landmarks
    assert lm[36, 0] < lm[45, 0] and lm[48, 0] < lm[54, 0]
    np.testing.assert_array_equal(dets[0].to_ibug68(), lm)


# ---------------------------------------------------------------------------------------------- geometry

def test_exif_rotated_copy_maps_back(tmp_path, images, found, faces_dir):
    name = "d3dfr-000055.jpg"
    upright = images[name]
    # Stored sideways (turned 90 degrees counter-clockwise) with EXIF orientation 6, "rotate 90 CW to view".
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, quality=97, exif=exif)
    assert np.asarray(Image.open(path)).shape[:2] == upright.shape[1::-1]
    image = read_image(path)
    assert image.shape == upright.shape
    with create_detector() as detector:
        dets = detector.detect(image)
        raw = detector.detect(np.asarray(Image.open(path).convert("RGB")))
    assert len(dets) == 1
    ref = found[name][0]
    err = np.linalg.norm(dets[0].landmarks - ref.landmarks, axis=1) / ref.box_size
    assert np.median(err) < 0.01 and err.max() < 0.05
    # Detected on the sideways pixels (no EXIF applied) and rotated back by hand: the same face, so the
    # EXIF step is what puts the points in place (a sideways face is found, mapped elsewhere).
    if raw:
        back = np.stack([stored.height - 1 - raw[0].landmarks[:, 1], raw[0].landmarks[:, 0]], axis=1)
        assert np.median(np.linalg.norm(back - ref.landmarks, axis=1)) / ref.box_size < 0.05
        assert np.median(np.linalg.norm(raw[0].landmarks - ref.landmarks, axis=1)) / ref.box_size > 0.2


def test_large_photo_maps_back_to_original_pixels(images, found):
    # 3913 x 1901 px: boxes come from a 1280 px copy, landmarks from crops of the original.
    full = found["3ddfa-emma.jpg"]
    half, scale = downscale_for_detection(images["3ddfa-emma.jpg"], 1957)
    with create_detector() as detector:
        small = detector.detect(half)
    assert len(small) == len(full) == 3
    for a, b in zip(full, small):
        back = points_to_original(b.landmarks, scale)
        err = np.linalg.norm(back - a.landmarks, axis=1) / a.box_size
        assert np.median(err) < 0.01, np.median(err)


def test_mirrored_photo_gives_mirrored_landmarks(images, found):
    # Pixel centres at integers: a column u of the mirrored photo is column W - 1 - u of the original.
    for name in ("d3dfr-000033.jpg", "prnet-4.jpg"):
        image = images[name]
        w = image.shape[1]
        with create_detector() as detector:
            (m,) = detector.detect(np.ascontiguousarray(image[:, ::-1]))
        ref = found[name][0].to_ibug68()
        mirrored = m.to_ibug68()
        perm = np.arange(68)
        for r, l in IBUG68_MIRROR_PAIRS:
            perm[r], perm[l] = l, r
        back = mirrored[perm].copy()
        back[:, 0] = w - 1 - back[:, 0]
        err = np.linalg.norm(back - ref, axis=1) / found[name][0].box_size
        assert np.median(err) < 0.015, (name, np.median(err))
        # The subject's right eye of the mirrored photo is the left of the picture again.
        assert mirrored[36, 0] < mirrored[45, 0]


def test_scaled_copy_and_square_crop_maps():
    image = np.zeros((300, 400, 3), np.uint8)
    image[100, 250] = 255
    small, to_orig = scaled_copy(image, 200)
    assert small.shape == (150, 200, 3)
    np.testing.assert_allclose(to_orig.points(np.array([[0.0, 0.0], [199.0, 149.0]])), [[0.5, 0.5], [398.5, 298.5]])
    crop, to_orig = square_crop(image, 250.0, 100.0, 41.0, 82)  # a 41 px square, doubled
    assert crop.shape == (82, 82, 3)
    # The bright pixel becomes a 2 x 2 block (plus interpolation fringe) centred where it maps back to.
    weights = crop[..., 0].astype(np.float64)
    rows, cols = np.mgrid[:82, :82]
    centre = np.array([[(weights * cols).sum() / weights.sum(), (weights * rows).sum() / weights.sum()]])
    np.testing.assert_allclose(to_orig.points(centre), [[250.0, 100.0]], atol=1e-6)
    # A crop that leaves the picture is padded with black.
    crop, _ = square_crop(image, 0.0, 0.0, 100.0, 100)
    assert crop[:49, :49].max() == 0


# ---------------------------------------------------------------------------------------------- many / small

def test_small_faces_in_a_group_are_all_found(faces_dir):
    # 24 portraits in a 6 x 4 grid, 100 px cells, 600 x 400 px: faces of 40-70 px. The whole-picture pass
    # finds about half of them; the tiles find the rest.
    paths = [p for p in _photos(faces_dir) if p.name.startswith("d3dfr-")][:24]
    cell = 100
    grid = np.zeros((4 * cell, 6 * cell, 3), np.uint8)
    for i, p in enumerate(paths):
        tile = np.asarray(Image.open(p).convert("RGB").resize((cell, round(cell * 1.25)), Image.LANCZOS))
        top = (tile.shape[0] - cell) // 3
        grid[(i // 6) * cell : (i // 6 + 1) * cell, (i % 6) * cell : (i % 6 + 1) * cell] = tile[top : top + cell]
    with create_detector(max_faces=30) as detector:
        dets = detector.detect(grid)
    with create_detector(max_faces=30, tiles="never") as detector:
        whole = detector.detect(grid)
    cells = sorted(int(d.landmarks[:, 1].mean() // cell) * 6 + int(d.landmarks[:, 0].mean() // cell) for d in dets)
    assert cells == list(range(24))
    assert len(whole) < 24
    with create_detector(max_faces=5) as detector:
        five = detector.detect(grid)
    assert len(five) == 5 and [d.area for d in five] == sorted((d.area for d in dets), reverse=True)[:5]


def test_low_resolution_photos(images):
    # The two-face photo shrunk to 200 px wide (faces ~25 px) still gives both faces, with sane landmarks.
    small = cv2.resize(images["3ddfa-trump_hillary.jpg"], (200, 90), interpolation=cv2.INTER_AREA)
    with create_detector() as detector:
        dets = detector.detect(small)
    assert len(dets) == 2
    for d in dets:
        u = d.landmarks[:, 0]
        assert u[33] < u[263]


# ---------------------------------------------------------------------------------------------- video

def test_video_tracks_faces_across_frames(shared_dir, images):
    cap = cv2.VideoCapture(str(shared_dir / "data" / "video" / "obama.mp4"))
    frames = []
    while len(frames) < 24:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(frames) == 24
    with create_detector(mode="video", redetect_every=8) as tracker, create_detector() as still:
        assert isinstance(tracker, VideoDetector)
        per_frame = [tracker.detect(f) for f in frames]
        assert all(len(d) == 1 for d in per_frame)
        assert {d[0].track_id for d in per_frame} == {0}
        for k in (0, 11, 23):
            ref = still.detect(frames[k])[0]
            err = np.linalg.norm(per_frame[k][0].landmarks - ref.landmarks, axis=1) / ref.box_size
            assert np.median(err) < 0.02
        tracker.reset()
        assert tracker.detect(frames[0])[0].track_id == 0
        # Two faces panning across: each keeps its id, ids differ.
        image = cv2.resize(images["3ddfa-trump_hillary.jpg"], (768, 344), interpolation=cv2.INTER_AREA)
        tracker.reset()
        ids = []
        for shift in range(0, 60, 6):
            frame = np.ascontiguousarray(image[:, shift : shift + 700])
            dets = tracker.detect(frame)
            assert len(dets) == 2
            ids.append({("left" if d.landmarks[:, 0].mean() < 350 else "right"): d.track_id for d in dets})
        assert all(i == ids[0] for i in ids) and len(set(ids[0].values())) == 2


# ---------------------------------------------------------------------------------------------- no face / bad input

def test_no_face_is_an_empty_result(mediapipe, dlib_hog):
    rng = np.random.default_rng(0)
    blank = np.full((240, 320, 3), 128, np.uint8)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    sky = np.zeros((480, 640, 3), np.uint8)
    sky[...] = np.linspace(80, 220, 640, dtype=np.uint8)[None, :, None]
    for image in (blank, noise, sky):
        assert mediapipe.detect(image) == []
        assert dlib_hog.detect(image) == []


def test_detect_rejects_bad_images(mediapipe):
    good = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(TypeError, match="image: expected dtype uint8"):
        mediapipe.detect(good.astype(np.float32))
    with pytest.raises(ValueError, match=r"image: expected shape \(\*, \*, 3\)"):
        mediapipe.detect(good[..., 0])
    with pytest.raises(ValueError, match=r"image: expected shape \(\*, \*, 3\)"):
        mediapipe.detect(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="at least 8 x 8"):
        mediapipe.detect(np.zeros((4, 64, 3), np.uint8))
    with pytest.raises(TypeError, match="image: expected a tensor"):
        mediapipe.detect([[0, 0, 0]])
    # A non-contiguous view is fine and the caller's array is left alone.
    view = np.zeros((64, 128, 3), np.uint8)[:, ::2]
    before = view.copy()
    assert mediapipe.detect(view) == []
    np.testing.assert_array_equal(view, before)


def test_unreadable_files_raise_image_read_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        read_image(bad)


def test_factory_and_options_errors(tmp_path):
    with pytest.raises(ValueError, match="name: expected one of 'mediapipe', 'dlib'"):
        create_detector("opencv")
    with pytest.raises(ValueError, match="mode: expected one of"):
        create_detector(mode="stream")
    with pytest.raises(ValueError, match="video.*mediapipe"):
        create_detector("dlib", mode="video")
    with pytest.raises(ValueError, match="max_face: not an option of MediaPipeOptions"):
        create_detector(max_face=3)
    with pytest.raises(ValueError, match="min_score"):
        create_detector(min_score=1.5)
    with pytest.raises(ValueError, match="crop_scale"):
        MediaPipeOptions(crop_scale=1.0)
    with pytest.raises(ValueError, match="tiles"):
        MediaPipeOptions(tiles="sometimes")
    with pytest.raises(ValueError, match="max_faces"):
        MediaPipeOptions(max_faces=0)
    with pytest.raises(ValueError, match="face_detector"):
        create_detector("dlib", face_detector="mmod")
    with pytest.raises(ValueError, match="upsample"):
        create_detector("dlib", upsample=5)
    with pytest.raises(ModelNotInstalledError, match=r'shape_predictor_68_face_landmarks.dat.*facerecon\[dlib\]'):
        create_detector("dlib", models_dir=str(tmp_path))


def test_close_and_context_manager():
    detector = create_detector()
    assert isinstance(detector, Detector)
    with detector as same:
        assert same is detector
    with pytest.raises(RuntimeError, match="after close"):
        detector.detect(np.zeros((64, 64, 3), np.uint8))
    detector.close()  # twice is fine
    dlib_detector = create_detector("dlib")
    dlib_detector.close()
    with pytest.raises(RuntimeError, match="after close"):
        dlib_detector.detect(np.zeros((64, 64, 3), np.uint8))


# ---------------------------------------------------------------------------------------------- types and maps

def _det(**kw) -> Detection:
    args = dict(box=np.array([0.0, 0.0, 10.0, 20.0]), score=0.9, landmarks=np.zeros((68, 2)), landmarks_3d=None,
                confidence=np.ones(68), scheme="ibug68")
    args.update(kw)
    return Detection(**args)


def test_detection_is_frozen_and_owns_its_arrays():
    lm = np.arange(136, dtype=np.float32).reshape(68, 2)
    d = _det(landmarks=lm)
    lm[0, 0] = 99.0
    assert d.landmarks[0, 0] == 0.0 and d.landmarks.dtype == np.float64
    with pytest.raises(ValueError):
        d.landmarks[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.score = 0.1  # type: ignore[misc]
    assert d.box_size == pytest.approx(np.sqrt(200.0)) and d.area == 200.0


def test_detection_rejects_bad_fields():
    with pytest.raises(ValueError, match="scheme: expected one of"):
        _det(scheme="ibug5")
    with pytest.raises(ValueError, match=r"landmarks: expected shape \(478, 2\)"):
        _det(scheme="mediapipe478", confidence=np.ones(478))
    with pytest.raises(ValueError, match=r"confidence: expected shape \(68,\)"):
        _det(confidence=np.ones(67))
    with pytest.raises(ValueError, match=r"landmarks_3d: expected shape \(68, 3\)"):
        _det(landmarks_3d=np.zeros((68, 2)))
    with pytest.raises(ValueError, match="box: expected x0 <= x1"):
        _det(box=np.array([10.0, 0.0, 0.0, 5.0]))
    with pytest.raises(ValueError, match="landmarks: expected finite values"):
        _det(landmarks=np.full((68, 2), np.nan))
    with pytest.raises(TypeError, match="score: expected a number"):
        _det(score="high")
    with pytest.raises(TypeError, match="box: expected a real-valued NumPy array"):
        _det(box=np.array(["a", "b", "c", "d"]))
    with pytest.raises(TypeError, match="track_id"):
        _det(track_id=1.5)


def test_to_ibug68_known_answer():
    pts = np.stack([np.arange(478.0), -np.arange(478.0)], axis=1)
    out = to_ibug68(pts, "mediapipe478")
    pairs = np.asarray(MEDIAPIPE_TO_IBUG68)
    np.testing.assert_array_equal(out[:, 0], pairs.mean(axis=1))
    assert out[8, 0] == 152 and out[3, 0] == (132 + 58) / 2 and out[36, 0] == 33 and out[45, 0] == 263
    assert to_ibug68(pts[:468], "mediapipe478").shape == (68, 2)  # the map uses no iris point
    assert to_ibug68(np.zeros((478, 3)), "mediapipe478").shape == (68, 3)
    ib = np.random.default_rng(1).normal(size=(68, 2))
    out = to_ibug68(ib, "ibug68")
    np.testing.assert_array_equal(out, ib)
    assert out is not ib
    with pytest.raises(ValueError, match=r"landmarks: expected shape \(478, \*\)"):
        to_ibug68(np.zeros((68, 2)), "mediapipe478")
    with pytest.raises(ValueError, match=r"landmarks: expected shape \(68, \*\)"):
        to_ibug68(np.zeros((478, 2)), "ibug68")
    with pytest.raises(TypeError, match="floating-point"):
        to_ibug68(np.zeros((478, 2), np.int64), "mediapipe478")
    with pytest.raises(ValueError, match="scheme"):
        to_ibug68(pts, "dlib")


def test_mirror_pairs_cover_the_68_points():
    flat = [i for pair in IBUG68_MIRROR_PAIRS for i in pair]
    assert len(flat) == len(set(flat)) == 58
    assert sorted(set(range(68)) - set(flat)) == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]  # the midline


def test_draw_detections(found, images):
    name = "3ddfa-trump_hillary.jpg"
    image = images[name]
    before = image.copy()
    out = draw_detections(image, found[name])
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.shares_memory(out, image)
    # The 68 points are drawn: blue (subject's left) at the left eye's outer corner, orange at the right's.
    for idx, colour in ((45, (40, 120, 255)), (36, (255, 200, 0))):
        u, v = np.round(found[name][0].to_ibug68()[idx]).astype(int)
        np.testing.assert_allclose(out[v, u], colour, atol=40)
    assert np.array_equal(draw_detections(image, []), image)
    with pytest.raises(TypeError, match="detections"):
        draw_detections(image, [None])
