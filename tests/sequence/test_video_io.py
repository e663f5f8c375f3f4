"""Video in and out (facerecon.sequence.video): probing, frame selection, containers, errors, the writer."""

from __future__ import annotations

import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facerecon.cli.exit_codes import ExitCode, exit_code_for, exit_code_for_type
from facerecon.core.errors import EmptyVideoError, FaceReconError, VideoReadError
from facerecon.sequence.video import (
    VIDEO_EXTENSIONS,
    VideoFrame,
    VideoInfo,
    is_video_path,
    probe_video,
    read_ahead,
    read_frames,
)
from facerecon.sequence.video_writer import VideoWriter

# obama.mp4 as every player shows it: its MP4 edit list hides the first 103 of the 158 frames it stores.
OBAMA_FRAMES = 55


def _opencv_frames(path: Path, *, auto_orientation: bool = False) -> list[np.ndarray]:
    """Every frame by OpenCV's decoder (an independent check), RGB."""
    capture = cv2.VideoCapture(str(path))
    if auto_orientation:
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(bgr[:, :, ::-1])
    capture.release()
    return frames


# ------------------------------------------------------------------------------------------------ names

def test_is_video_path():
    assert VIDEO_EXTENSIONS == (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")
    assert is_video_path("a/clip.MP4") and is_video_path(Path("x.webm")) and is_video_path("x.m4v")
    assert not is_video_path("photo.jpg") and not is_video_path("mp4") and not is_video_path("clip.mp4.txt")


# ------------------------------------------------------------------------------------------------ probe

def test_probe_obama(obama_video):
    info = probe_video(obama_video)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (1280, 720)
    assert info.fps == 25.0
    assert info.frame_count == OBAMA_FRAMES  # not the 158 stored: the edit list shows 55
    assert info.duration_s == pytest.approx(2.186, abs=1e-3)
    assert info.rotation == 0 and info.codec == "h264"
    assert info.path == Path(obama_video)


def test_probe_clip_matches_what_was_written(obama_clip):
    info = probe_video(obama_clip.path)
    assert (info.width, info.height) == obama_clip.size
    assert info.fps == obama_clip.fps
    assert info.frame_count == obama_clip.frame_count
    assert info.duration_s == pytest.approx(obama_clip.frame_count / obama_clip.fps, abs=1e-3)


# ------------------------------------------------------------------------------------------ read_frames

def test_read_all_frames_of_obama(obama_video):
    frames = list(read_frames(obama_video))
    assert len(frames) == OBAMA_FRAMES
    assert [f.index for f in frames] == list(range(OBAMA_FRAMES))
    assert [f.time_s for f in frames] == pytest.approx([k * 0.04 for k in range(OBAMA_FRAMES)], abs=1e-9)
    first = frames[0]
    assert isinstance(first, VideoFrame)
    assert first.image.shape == (720, 1280, 3) and first.image.dtype == np.uint8
    assert first.image.flags["C_CONTIGUOUS"]
    # The same pixels as OpenCV's decoder (same edit list, same frame): a colour-conversion difference only.
    reference = _opencv_frames(obama_video)
    assert len(reference) == OBAMA_FRAMES
    for k in (0, 30, OBAMA_FRAMES - 1):
        assert np.abs(frames[k].image.astype(int) - reference[k]).mean() < 2.0
    # Frames own their pixels: decoding on does not overwrite the arrays handed out before.
    assert not np.array_equal(frames[0].image, frames[30].image)
    assert np.array_equal(frames[0].image, next(read_frames(obama_video)).image)


@pytest.mark.parametrize(
    ("fps", "indices"),
    [
        (None, list(range(OBAMA_FRAMES))),
        (25.0, list(range(OBAMA_FRAMES))),
        (50.0, list(range(OBAMA_FRAMES))),  # above the stream's rate: its own frames, none repeated
        (12.5, list(range(0, OBAMA_FRAMES, 2))),
        # grid 0, 0.1, ... 2.1 s: each time takes the nearest frame, the earlier one on a tie (0.1 s: 0.08 s)
        (10.0, [math.floor(2.5 * k) for k in range(22)]),
    ],
)
def test_read_frames_fps(obama_video, fps, indices):
    frames = list(read_frames(obama_video, fps=fps))
    assert [f.index for f in frames] == indices
    assert [f.time_s for f in frames] == pytest.approx([i * 0.04 for i in indices], abs=1e-9)


def test_read_frames_fps_counts(obama_video):
    assert len(list(read_frames(obama_video, fps=10))) == 22
    assert len(list(read_frames(obama_video, fps=12.5))) == 28


@pytest.mark.parametrize(
    ("start_s", "end_s", "indices"),
    [
        (0.5, 1.0, list(range(13, 25))),  # [0.5, 1.0): 0.52 ... 0.96 s
        (0.4, 0.8, list(range(10, 20))),  # a start on a frame's time keeps that frame; an end on one drops it
        (None, 0.2, [0, 1, 2, 3, 4]),
        (2.0, None, list(range(50, OBAMA_FRAMES))),
        (0.0, None, list(range(OBAMA_FRAMES))),
    ],
)
def test_read_frames_window(obama_video, start_s, end_s, indices):
    frames = list(read_frames(obama_video, start_s=start_s, end_s=end_s))
    assert [f.index for f in frames] == indices
    assert [f.time_s for f in frames] == pytest.approx([i * 0.04 for i in indices], abs=1e-9)


def test_read_frames_window_is_exact_after_seeking(obama_video):
    everything = list(read_frames(obama_video))
    window = list(read_frames(obama_video, start_s=1.0, end_s=1.2))
    assert [f.index for f in window] == [25, 26, 27, 28, 29]
    for frame in window:
        assert np.array_equal(frame.image, everything[frame.index].image)


def test_read_frames_window_and_fps(obama_video):
    frames = list(read_frames(obama_video, start_s=0.4, end_s=1.2, fps=10))
    # the grid starts at the window's first frame (0.4 s) and ends before 1.2 s
    assert [f.index for f in frames] == [10, 12, 15, 17, 20, 22, 25, 27]


@pytest.mark.parametrize("name", ["obama_clip", "mov_clip", "webm_clip", "avi_clip"])
def test_each_container_decodes(request, name):
    clip = request.getfixturevalue(name)
    info = probe_video(clip.path)
    assert (info.width, info.height) == clip.size
    assert info.fps == pytest.approx(clip.fps)
    frames = list(read_frames(clip.path))
    assert len(frames) == clip.frame_count
    assert [f.index for f in frames] == list(range(clip.frame_count))
    assert [f.time_s for f in frames] == pytest.approx([k / clip.fps for k in range(clip.frame_count)], abs=1e-6)
    assert frames[-1].image.shape == (clip.size[1], clip.size[0], 3)


def test_clips_hold_what_their_fixtures_say(obama_frames, obama_clip, comings_and_goings_clip, no_face_clip):
    images = [f.image for f in read_frames(obama_clip.path)]
    assert np.abs(images[7].astype(int) - obama_frames[7]).mean() < 3.0  # lossy, but the same picture
    clip = comings_and_goings_clip
    assert len(clip.face) == clip.frame_count == 32 and sum(clip.face) == 24
    images = [f.image for f in read_frames(clip.path)]
    assert len(images) == 32
    assert np.abs(images[20].astype(int) - obama_frames[20]).mean() < 3.0
    # the hidden frames are a dim, featureless wash: (almost) no edges left for a detector
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in images]
    detail = [np.abs(cv2.Laplacian(g, cv2.CV_64F)).mean() for g in grey]
    assert max(detail[12:20]) < 0.05 * min(detail[:12] + detail[20:])
    assert max(g.mean() for g in grey[12:20]) < 0.6 * min(g.mean() for g in grey[:12])
    assert len(list(read_frames(no_face_clip.path))) == no_face_clip.frame_count == 10


def test_rotation_metadata_is_applied(tmp_path):
    """A phone-style display matrix turns the frames upright, as OpenCV's auto-orientation (when on) does."""
    path = tmp_path / "portrait.mp4"
    image = np.zeros((48, 64, 3), np.uint8)
    image[:16, :16] = 255  # a marker in the stored picture's top-left corner
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(-90)  # a quarter turn clockwise to show it
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (48, 64, 270)
    frame = next(read_frames(path)).image
    assert frame.shape == (64, 48, 3) and frame.flags["C_CONTIGUOUS"]
    assert frame[:16, -16:].mean() > 200 and frame[:16, :16].mean() < 50  # the marker is now top-right
    upright = _opencv_frames(path, auto_orientation=True)[0]
    assert np.abs(frame.astype(int) - upright).mean() < 2.0


# ------------------------------------------------------------------------------------------------ errors

def _one_line_naming(err: pytest.ExceptionInfo, path: Path) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_garbage_is_not_a_video(garbage_clip):
    with pytest.raises(VideoReadError) as err:
        probe_video(garbage_clip.path)
    assert not isinstance(err.value, EmptyVideoError)
    assert "not a readable video" in _one_line_naming(err, garbage_clip.path)
    with pytest.raises(VideoReadError) as err:
        read_frames(garbage_clip.path)  # raised on the call, before iterating
    _one_line_naming(err, garbage_clip.path)


def test_other_files_that_are_not_videos(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    empty_file = tmp_path / "zero.mov"
    empty_file.touch()
    for path in (text, empty_file, tmp_path):
        with pytest.raises(VideoReadError) as err:
            probe_video(path)
        assert not isinstance(err.value, EmptyVideoError)
        _one_line_naming(err, path)
    audio = tmp_path / "voice.mp4"  # a file with sound and no picture
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(VideoReadError, match="no video stream") as err:
        list(read_frames(audio))
    _one_line_naming(err, audio)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.mp4"
    for call in (probe_video, read_frames):
        with pytest.raises(VideoReadError, match="no such file") as err:
            call(path)
        _one_line_naming(err, path)


def test_empty_videos(empty_clip, tmp_path):
    for call in (probe_video, lambda p: list(read_frames(p))):
        with pytest.raises(EmptyVideoError) as err:
            call(empty_clip.path)
        _one_line_naming(err, empty_clip.path)
    # an AVI keeps its video stream with no frame in it
    path = tmp_path / "empty.avi"
    with VideoWriter(path, fps=25, size=(64, 48)):
        pass
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1
    with pytest.raises(EmptyVideoError) as err:
        probe_video(path)
    _one_line_naming(err, path)
    with pytest.raises(EmptyVideoError, match="no frames") as err:
        list(read_frames(path))


def test_window_without_frames(obama_video):
    # 2.17 s is before the end (2.186 s) but after the last frame (2.16 s)
    with pytest.raises(EmptyVideoError, match="no frames between 2.170 s and the end") as err:
        list(read_frames(obama_video, start_s=2.17))
    _one_line_naming(err, obama_video)
    with pytest.raises(EmptyVideoError, match="no frames between 1.001 s and 1.002 s"):
        list(read_frames(obama_video, start_s=1.001, end_s=1.002))


def test_truncated_file_yields_its_frames_then_fails(truncated_clip):
    frames = []
    with pytest.raises(VideoReadError) as err:
        for frame in read_frames(truncated_clip.path):
            frames.append(frame)  # noqa: PERF402 (a loop keeps the frames that came before the error)
    assert not isinstance(err.value, EmptyVideoError)
    assert 0 < len(frames) < truncated_clip.frame_count
    assert [f.index for f in frames] == list(range(len(frames)))
    message = _one_line_naming(err, truncated_clip.path)
    assert f"after frame {frames[-1].index} ({frames[-1].time_s:.3f} s)" in message
    assert "truncated" in message


def test_file_cut_between_packets_warns(obama_clip, tmp_path):
    """Cut right after a packet, the demuxer ends cleanly: the frames come, and on_warning is told."""
    with av.open(str(obama_clip.path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    pos, size = packets[20]
    path = tmp_path / "cut.mp4"
    path.write_bytes(obama_clip.path.read_bytes()[: pos + size])
    warnings: list[str] = []
    frames = list(read_frames(path, on_warning=warnings.append))
    assert 0 < len(frames) < obama_clip.frame_count
    assert len(warnings) == 1
    assert warnings[0].startswith(str(path)) and "\n" not in warnings[0]
    assert f"ends after frame {frames[-1].index}" in warnings[0] and "40 frames" in warnings[0]
    # a whole file does not warn
    whole: list[str] = []
    assert len(list(read_frames(obama_clip.path, on_warning=whole.append))) == obama_clip.frame_count
    assert whole == []


@pytest.mark.parametrize(
    ("kwargs", "kind", "match"),
    [
        ({"fps": -5}, ValueError, "fps"),
        ({"fps": 0}, ValueError, "fps"),
        ({"fps": float("nan")}, ValueError, "fps"),
        ({"fps": "10"}, TypeError, "fps"),
        ({"start_s": -1.0}, ValueError, "start_s"),
        ({"end_s": float("inf")}, ValueError, "end_s"),
        ({"start_s": 1.0, "end_s": 1.0}, ValueError, "start_s < end_s"),
        ({"start_s": 1.5, "end_s": 0.5}, ValueError, "start_s < end_s"),
        ({"start_s": 2.5}, ValueError, "past the end"),
        ({"on_warning": "print"}, TypeError, "on_warning"),
    ],
)
def test_bad_arguments(obama_video, kwargs, kind, match):
    with pytest.raises(kind, match=match):
        read_frames(obama_video, **kwargs)


def test_exit_codes_of_video_errors():
    assert issubclass(EmptyVideoError, VideoReadError) and issubclass(VideoReadError, FaceReconError)
    assert (ExitCode.VIDEO_READ, ExitCode.VIDEO_EMPTY) == (12, 13)
    assert exit_code_for(VideoReadError("clip.mp4: not a readable video")) == ExitCode.VIDEO_READ
    assert exit_code_for(EmptyVideoError("clip.mp4: the video has no frames")) == ExitCode.VIDEO_EMPTY
    assert exit_code_for_type("EmptyVideoError") == ExitCode.VIDEO_EMPTY  # as a worker process reports it
    assert exit_code_for_type("VideoReadError") == ExitCode.VIDEO_READ


# ------------------------------------------------------------------------------------------------ writer

def _pattern(k: int, width: int, height: int) -> np.ndarray:
    """A smooth picture that moves with k (lossy codecs keep it close)."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (x * 255) // max(width - 1, 1)
    image[..., 1] = (y * 255) // max(height - 1, 1)
    image[..., 2] = 40 + 15 * k
    return image


def test_writer_round_trip(tmp_path):
    path = tmp_path / "out" / "overlay.mp4"
    images = [_pattern(k, 160, 96) for k in range(12)]
    with VideoWriter(path, fps=12.5, size=(160, 96)) as out:
        for image in images:
            out.write(image)
    assert out.codec == "libx264" and out.frames_written == 12
    assert sorted(p.name for p in path.parent.iterdir()) == ["overlay.mp4"]  # no temporary file left
    info = probe_video(path)
    assert (info.width, info.height, info.fps, info.frame_count, info.codec) == (160, 96, 12.5, 12, "h264")
    frames = list(read_frames(path))
    assert [f.index for f in frames] == list(range(12))
    assert [f.time_s for f in frames] == pytest.approx([k / 12.5 for k in range(12)])
    for frame, image in zip(frames, images):
        assert np.abs(frame.image.astype(int) - image).mean() < 2.0  # colours survive (BT.709, tagged)
    assert len(_opencv_frames(path)) == 12  # another decoder reads it too


def test_writer_pads_odd_sizes(tmp_path):
    path = tmp_path / "odd.mp4"
    image = _pattern(0, 63, 47)
    with VideoWriter(path, fps=25, size=(63, 47)) as out:
        out.write(image)
        out.write(image)
    frame = next(read_frames(path)).image
    assert frame.shape == (48, 64, 3)
    assert np.abs(frame[:47, :63].astype(int) - image).mean() < 4.0  # tiny and sharp: 4:2:0 chroma costs more
    assert np.abs(frame[:47, 63].astype(int) - image[:, 62]).mean() < 6.0  # the padding repeats the last column


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "overlay.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(path, fps=25, size=(64, 48)) as out:
        out.write(_pattern(0, 64, 48))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    # an earlier file under the name survives a failed rewrite
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match="image"), VideoWriter(path, fps=25, size=(64, 48)) as out:
        out.write(np.zeros((48, 64), np.uint8))  # not RGB
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.mp4"]


def test_writer_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="extension"):
        VideoWriter(tmp_path / "out.gif", fps=25, size=(64, 48))
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "out.mp4", fps=0, size=(64, 48))
    with pytest.raises(ValueError, match="size"):
        VideoWriter(tmp_path / "out.mp4", fps=25, size=(64, 0))
    assert list(tmp_path.iterdir()) == []
    with VideoWriter(tmp_path / "out.mp4", fps=25, size=(64, 48)) as out:
        with pytest.raises(ValueError, match=r"\(48, 64, 3\)"):
            out.write(np.zeros((64, 48, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            out.write(np.zeros((48, 64, 3), np.float32))
        out.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="closed"):
        out.write(np.zeros((48, 64, 3), np.uint8))
    assert probe_video(tmp_path / "out.mp4").frame_count == 1


def test_read_ahead_keeps_order_errors_and_stops(obama_clip, truncated_clip) -> None:
    import threading

    direct = [f.index for f in read_frames(obama_clip.path)]
    assert [f.index for f in read_ahead(read_frames(obama_clip.path), depth=3)] == direct
    # An error comes out after the frames decoded before it, as it does without the thread.
    seen = []
    with pytest.raises(VideoReadError, match="truncated"):
        for frame in read_ahead(read_frames(truncated_clip.path)):
            seen.append(frame.index)
    assert 0 < len(seen) < truncated_clip.frame_count
    # Stopping early stops the thread.
    ahead = read_ahead(read_frames(obama_clip.path), depth=2)
    next(ahead)
    ahead.close()
    assert not any(t.name == "facerecon-read-ahead" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(ValueError, match="depth"):
        next(read_ahead(iter([]), depth=0))
