"""Small test clips for the video tests, built once per session from ``../shared/data/video/obama.mp4``.

Nothing from ``../shared`` is committed: the shared video is read at test time and the clips are written to a
temporary folder with :class:`facerecon.sequence.video.VideoWriter` (the source frames are decoded with OpenCV, a
decoder independent of the one under test). Each clip fixture returns a :class:`Clip`.

``obama.mp4`` shows 55 frames (1280 x 720, 25 frames/s, 2.19 s): its MP4 edit list hides the first 103 of the
158 frames it stores, and every player (and both OpenCV and PyAV) shows only those 55.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from facerecon.sequence.video_writer import VideoWriter

CLIP_SIZE = (640, 360)  # (width, height) of the clips, px
CLIP_FPS = 25.0
CLIP_FRAMES = 40  # obama_clip: the first 1.6 s


@dataclass(frozen=True)
class Clip:
    """A test clip: its file and what was written into it.

    Attributes:
        path: the video file.
        frame_count: frames written (0 for the empty clip; for the truncated clip, those of the whole clip).
        fps: frames per second.
        size: ``(width, height)`` px.
        face: per frame, whether a face is visible in it.
    """

    path: Path
    frame_count: int
    fps: float
    size: tuple[int, int]
    face: tuple[bool, ...]


def _write(path: Path, images: list[np.ndarray], fps: float = CLIP_FPS) -> Path:
    with VideoWriter(path, fps=fps, size=(images[0].shape[1], images[0].shape[0])) as out:
        for image in images:
            out.write(image)
    return path


@pytest.fixture(scope="session")
def obama_video(shared_dir: Path) -> Path:
    """``../shared/data/video/obama.mp4`` (1280 x 720, 25 frames/s, 55 frames shown)."""
    path = shared_dir / "data" / "video" / "obama.mp4"
    if not path.is_file():
        pytest.fail(f"the shared data is missing: expected {path} (clone the repo beside ../shared)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def obama_frames(obama_video: Path) -> list[np.ndarray]:
    """The first 40 frames of obama.mp4 at 640 x 360, ``(360, 640, 3)`` uint8 RGB (decoded with OpenCV)."""
    capture = cv2.VideoCapture(str(obama_video))
    frames = []
    while len(frames) < CLIP_FRAMES:
        ok, bgr = capture.read()
        if not ok:
            break
        small = cv2.resize(bgr, CLIP_SIZE, interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(small[:, :, ::-1]))
    capture.release()
    if len(frames) < CLIP_FRAMES:
        pytest.fail(f"{obama_video}: expected at least {CLIP_FRAMES} frames, decoded {len(frames)}", pytrace=False)
    return frames


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def obama_clip(clips_dir: Path, obama_frames: list[np.ndarray]) -> Clip:
    """The first 1.6 s (40 frames) of obama.mp4 at 640 x 360, 25 frames/s, H.264 MP4; a face in every frame."""
    path = _write(clips_dir / "obama.mp4", obama_frames)
    return Clip(path, CLIP_FRAMES, CLIP_FPS, CLIP_SIZE, (True,) * CLIP_FRAMES)


@pytest.fixture(scope="session")
def comings_and_goings_clip(clips_dir: Path, obama_frames: list[np.ndarray]) -> Clip:
    """32 frames: the face in frames 0-11, none in 12-19 (obama's frames blurred to a dim wash, sigma 40 px), the
    face again in 20-31 (obama's frames 20-31): a tracker must give two tracks."""
    hidden = [
        (cv2.GaussianBlur(f, (0, 0), sigmaX=40).astype(np.float32) * 0.4).astype(np.uint8) for f in obama_frames[12:20]
    ]
    images = obama_frames[:12] + hidden + obama_frames[20:32]
    face = (True,) * 12 + (False,) * 8 + (True,) * 12
    return Clip(_write(clips_dir / "comings_and_goings.mp4", images), len(images), CLIP_FPS, CLIP_SIZE, face)


@pytest.fixture(scope="session")
def no_face_clip(clips_dir: Path) -> Clip:
    """10 frames of a smooth colour gradient drifting sideways, no face."""
    width, height = CLIP_SIZE
    x = np.linspace(0.0, 1.0, width)[None, :]
    y = np.linspace(0.0, 1.0, height)[:, None]
    images = []
    for k in range(10):
        r = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.05 * k))
        g = np.broadcast_to(y, (height, width))
        b = 0.5 + 0.5 * np.cos(np.pi * (x + y))
        rgb = np.stack(np.broadcast_arrays(r, g, b), axis=-1)
        images.append(np.round(rgb * 255).astype(np.uint8))
    return Clip(_write(clips_dir / "no_face.mp4", images), 10, CLIP_FPS, CLIP_SIZE, (False,) * 10)


@pytest.fixture(scope="session")
def empty_clip(clips_dir: Path) -> Clip:
    """A valid MP4 with no frames, as FFmpeg's muxer writes one: header and index only (it drops the empty
    video track, so the file holds no stream at all)."""
    path = clips_dir / "empty.mp4"
    with VideoWriter(path, fps=CLIP_FPS, size=CLIP_SIZE):
        pass
    return Clip(path, 0, CLIP_FPS, CLIP_SIZE, ())


@pytest.fixture(scope="session")
def garbage_clip(clips_dir: Path) -> Clip:
    """64 KiB of random bytes named ``garbage.mp4``."""
    path = clips_dir / "garbage.mp4"
    path.write_bytes(np.random.default_rng(13).bytes(64 * 1024))
    return Clip(path, 0, CLIP_FPS, CLIP_SIZE, ())


@pytest.fixture(scope="session")
def truncated_clip(clips_dir: Path, obama_clip: Clip) -> Clip:
    """obama_clip cut to half its bytes. Its index is at the front (``+faststart``), so it opens and decodes some
    frames, then fails in the middle of a packet."""
    data = obama_clip.path.read_bytes()
    path = clips_dir / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    return Clip(path, obama_clip.frame_count, CLIP_FPS, CLIP_SIZE, obama_clip.face)


def _container_clip(clips_dir: Path, obama_frames: list[np.ndarray], suffix: str) -> Clip:
    path = _write(clips_dir / f"obama{suffix}", obama_frames[:10])
    return Clip(path, 10, CLIP_FPS, CLIP_SIZE, (True,) * 10)


@pytest.fixture(scope="session")
def webm_clip(clips_dir: Path, obama_frames: list[np.ndarray]) -> Clip:
    """obama's first 10 frames at 640 x 360 as VP9 in WebM."""
    return _container_clip(clips_dir, obama_frames, ".webm")


@pytest.fixture(scope="session")
def avi_clip(clips_dir: Path, obama_frames: list[np.ndarray]) -> Clip:
    """obama's first 10 frames at 640 x 360 as MPEG-4 Part 2 in AVI."""
    return _container_clip(clips_dir, obama_frames, ".avi")


@pytest.fixture(scope="session")
def mov_clip(clips_dir: Path, obama_frames: list[np.ndarray]) -> Clip:
    """obama's first 10 frames at 640 x 360 as H.264 in QuickTime MOV."""
    return _container_clip(clips_dir, obama_frames, ".mov")


#: The known motion of :func:`moving_photo_clip`: the photo's offset in frame t, px (x, y).
def moving_offset(t: np.ndarray | int) -> np.ndarray:
    t = np.asarray(t, np.float64)
    return np.stack([24.0 * np.sin(2 * np.pi * t / 25.0), 10.0 * np.sin(2 * np.pi * t / 18.0 + 1.0)], -1)


@pytest.fixture(scope="session")
def moving_photo_clip(clips_dir: Path, shared_dir: Path) -> Clip:
    """50 frames (480 x 480, 25 frames/s) of a still portrait (``faces/prnet-4.jpg``) sliding by the known offset
    :func:`moving_offset` (sub-pixel, bilinear): a face whose every motion is known, and whose only jitter is the
    detector's."""
    photo = cv2.imread(str(shared_dir / "data" / "faces" / "prnet-4.jpg"))[:, :, ::-1]
    side = 480
    scale = side / max(photo.shape[:2])
    photo = cv2.resize(photo, (int(photo.shape[1] * scale), int(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.full((side, side, 3), 90, np.uint8)
    y0, x0 = (side - photo.shape[0]) // 2, (side - photo.shape[1]) // 2
    canvas[y0 : y0 + photo.shape[0], x0 : x0 + photo.shape[1]] = photo
    images = []
    for t in range(50):
        dx, dy = moving_offset(t)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        images.append(cv2.warpAffine(canvas, shift, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return Clip(_write(clips_dir / "moving_photo.mp4", images), 50, CLIP_FPS, (side, side), (True,) * 50)


@pytest.fixture(scope="session")
def sequence_home(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FACERECON_HOME with the model installed and calibrated for MediaPipe's landmarks (the production default)."""
    import shutil

    from facerecon.pipeline.setup import load_model

    home = tmp_path_factory.mktemp("sequence-home")
    shutil.copytree(model_home, home, dirs_exist_ok=True)
    load_model(home=home, progress=False)
    return home


@pytest.fixture(scope="session")
def sequence_model(sequence_home: Path):
    """The calibrated model of :func:`sequence_home` (shared: tests must not modify it)."""
    from facerecon.pipeline.setup import load_model

    return load_model(home=sequence_home, progress=False)
