"""Video files in: frames as ``(H, W, 3)`` uint8 RGB with their index and time (writing: :mod:`.video_writer`).

Backend: PyAV (the ``av`` package: FFmpeg's libraries, bundled in its wheels), for reading and writing. Measured
against OpenCV's ``cv2.VideoCapture``/``cv2.VideoWriter`` (the FFmpeg inside opencv-contrib-python 4.11) on a
2-core machine:

* **writing**: OpenCV's wheel cannot encode H.264 (``avc1``/``H264``/``X264`` fail to open), only MPEG-4 Part 2
  (``mp4v``), which browsers do not play. PyAV's wheel has libx264, so ``overlay.mp4`` plays in browsers,
  Blender and VLC. This alone decides for PyAV, and one backend does both directions;
* **speed**: both decode far above the 25 frames/s a tracking mode needs. ``obama.mp4`` (H.264, 1280 x 720),
  decoded and converted to RGB: OpenCV 145-245 frames/s, PyAV 140-200 frames/s (6-8 ms of CPU time per frame,
  a third of it the conversion to RGB), as the machine's load varies; a 300-frame 1280 x 720 H.264 clip: OpenCV
  ~300, PyAV ~260-360 frames/s; a VP9 WebM of obama.mp4: ~330-360 frames/s with either;
* **errors**: OpenCV stops silently on a truncated or corrupt file and says nothing on a file it cannot open
  (``isOpened()`` is False); PyAV raises FFmpeg's reason, so every failure here is a one-line message;
* **timestamps, edit lists, seeking**: both give each frame's presentation time and honour MP4 edit lists; PyAV
  gives the timestamp of every frame exactly (as a fraction of the stream's time base);
* **rotation**: OpenCV 4.11's ``CAP_PROP_ORIENTATION_AUTO`` reads 0 (off) by default here, so phone videos come
  out sideways unless it is switched on; PyAV gives each frame's display matrix angle (``VideoFrame.rotation``)
  and :func:`read_frames` applies it.

Times are seconds from the video stream's first frame (what a player shows as 0:00). A frame's ``index`` is its
position in the stream counted at the stream's frame rate, ``round(time_s * fps)``: exactly its number in
presentation order for constant-rate video (cameras, phones, screen grabs at a fixed rate), the same whether the
reader seeks to ``start_s`` or decodes from the first frame. For variable-rate video it is the nearest slot of the
average rate, made strictly increasing (a frame never shares its predecessor's index).

MP4 edit lists are honoured as every player does: ``obama.mp4`` stores 158 frames but its edit list shows only
the last 55 (2.19 s), so 55 frames come out, numbered from 0.

Errors: :class:`~facerecon.core.errors.VideoReadError` (missing, not a video, unreadable, corrupt or truncated)
and its subclass :class:`~facerecon.core.errors.EmptyVideoError` (no frames, or none in the window asked for),
each one line starting with the file's path. Bad arguments raise ``ValueError``/``TypeError``.

Example:
    >>> info = probe_video("clip.mp4")                                      # doctest: +SKIP
    >>> info.width, info.height, info.fps                                   # doctest: +SKIP
    (1280, 720, 25.0)
    >>> for frame in read_frames("clip.mp4", fps=10, start_s=1.0):          # doctest: +SKIP
    ...     frame.index, frame.time_s, frame.image.shape
    (25, 1.0, (720, 1280, 3))
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from queue import Full, Queue
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from facerecon.core.check import check_positive, describe
from facerecon.core.errors import EmptyVideoError, VideoReadError

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoFrame",
    "VideoInfo",
    "is_video_path",
    "probe_video",
    "read_ahead",
    "read_frames",
]

#: File name endings taken for videos (compared in lower case).
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v")

# User-given seconds and rates become exact fractions at this resolution, so 0.4 s equals a frame at 36000/90000 s.
_RESOLUTION = 1_000_000


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` ends in one of :data:`VIDEO_EXTENSIONS` (by name only; the file is not opened)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoInfo:
    """What a video file announces, and its first frame shows.

    Attributes:
        path: the file.
        width, height: the size of the frames :func:`read_frames` yields, in px: the stored size, turned by
            ``rotation`` (a portrait phone video stored as 1920 x 1080 with a 90 degree display matrix is
            1080 x 1920 here). Pixels are taken as square (a non-square sample aspect ratio is not resampled).
        fps: the stream's frame rate (its average rate as the container gives it), frames per second.
        frame_count: the number of frames, **an estimate**: the count the container announces when its duration
            agrees with it, else ``ceil(duration_s * fps)`` (an MP4 edit list that hides frames, as in
            ``obama.mp4``: 158 stored, 55 shown; WebM/Matroska, which announce no count). Only decoding every
            frame is exact, and a truncated file yields fewer.
        duration_s: the video stream's duration in seconds (the container's when the stream announces none, else
            ``frame_count / fps``).
        rotation: degrees (0, 90, 180 or 270) the stored pictures are turned counter-clockwise to be upright,
            from the display matrix of phone videos; :func:`read_frames` applies it.
        codec: FFmpeg's name of the video codec, e.g. ``"h264"``, ``"vp9"``, ``"mpeg4"``.
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    rotation: int = 0
    codec: str = ""


@dataclass(frozen=True)
class VideoFrame:
    """One frame of a video.

    Attributes:
        index: the frame's index in the source stream (``round(time_s * fps)`` of the stream's rate: its number in
            presentation order for constant-rate video), whatever ``fps``/``start_s`` selected it.
        time_s: its presentation time in seconds from the stream's first frame.
        image: ``(H, W, 3)`` uint8 RGB, C-contiguous, upright (display rotation applied), owned by this frame.
    """

    index: int
    time_s: float
    image: np.ndarray


class _Timed(NamedTuple):
    """A decoded frame (PyAV's, not yet converted) with its index, exact time and duration in seconds."""

    frame: Any
    index: int
    time: Fraction
    duration: Fraction


def _av() -> ModuleType:
    """PyAV, imported on first use so that importing this module stays light."""
    import av

    return av


def _seconds(value: float, name: str) -> Fraction:
    """A non-negative time in seconds as an exact fraction at microsecond resolution."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number of seconds, got {describe(value)}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number of seconds >= 0, got {value!r}")
    return Fraction(round(value * _RESOLUTION), _RESOLUTION)


def _reason(err: BaseException) -> str:
    """FFmpeg's reason for an error, on one line, without the file name PyAV appends."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def _open(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """Open ``path`` and return ``(container, video stream)``, or raise a one-line error naming the file."""
    av = _av()
    file = Path(path)
    if not file.exists():
        raise VideoReadError(f"{path}: no such file")
    if file.is_dir():
        raise VideoReadError(f"{path}: is a folder, not a video file")
    if file.stat().st_size == 0:
        raise VideoReadError(f"{path}: not a readable video (the file is empty: 0 bytes)")
    try:
        container = av.open(str(file), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoReadError(f"{path}: not a readable video ({_reason(err)})") from err
    streams = container.streams
    if not streams.video:
        kinds = sorted({s.type for s in streams})
        container.close()
        if not kinds:
            raise EmptyVideoError(f"{path}: the video has no frames (its container holds no stream)")
        raise VideoReadError(f"{path}: not a video (no video stream, only {' and '.join(kinds)})")
    stream = streams.video[0]
    stream.thread_type = "AUTO"  # frame and slice threads; the decoder's thread count follows the CPU count
    return container, stream


def _rate(stream: Any, path: str | os.PathLike[str]) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    raise VideoReadError(f"{path}: not a readable video (its video stream announces no frame rate)")


def _stream_duration(stream: Any) -> Fraction | None:
    """The video stream's own announced duration in seconds, or None when it announces none."""
    if stream.duration and stream.time_base:
        return Fraction(stream.duration) * Fraction(stream.time_base)
    return None


def _duration(container: Any, stream: Any) -> Fraction | None:
    """The video stream's announced duration, else the container's (WebM/Matroska), in seconds, or None."""
    duration = _stream_duration(stream)
    if duration is None and container.duration:
        duration = Fraction(container.duration, _av().time_base)
    return duration


def _frame_count(stream: Any, rate: Fraction, duration: Fraction | None) -> int:
    announced = int(stream.frames or 0)
    if duration is None:
        return announced
    from_duration = math.ceil(duration * rate - Fraction(1, 1000))
    if announced > 0 and abs(announced - duration * rate) <= Fraction(3, 2):
        return announced
    return max(from_duration, 0)


def _quarter_turns(frame: Any) -> int:
    """Counter-clockwise quarter turns that make a PyAV frame upright (its display matrix; flips are ignored)."""
    angle = getattr(frame, "rotation", 0) or 0
    return round(float(angle) / 90.0) % 4


def _to_rgb(frame: Any) -> np.ndarray:
    """A PyAV frame as ``(H, W, 3)`` uint8 RGB, upright and C-contiguous, in memory of its own."""
    image = frame.to_ndarray(format="rgb24")  # swscale, with the frame's colour matrix (BT.709 for HD video)
    turns = _quarter_turns(frame)
    if turns:
        image = np.rot90(image, k=turns)
    return np.ascontiguousarray(image)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Open a video, decode its first frame and return what it announces.

    Args:
        path: a video file (any container and codec FFmpeg reads; :data:`VIDEO_EXTENSIONS` are the usual ones).

    Returns:
        A :class:`VideoInfo` (``frame_count`` is an estimate: see there).

    Raises:
        VideoReadError: the file is missing, not a video, or its first frame cannot be decoded.
        EmptyVideoError: the video has no frames.

    Example:
        >>> probe_video("obama.mp4")  # doctest: +SKIP
        VideoInfo(path=PosixPath('obama.mp4'), width=1280, height=720, fps=25.0, frame_count=55, duration_s=2.186..., \
rotation=0, codec='h264')
    """
    av = _av()
    container, stream = _open(path)
    try:
        rate = _rate(stream, path)
        try:
            first = next(iter(container.decode(stream)), None)
        except av.FFmpegError as err:
            reason = _reason(err)
            raise VideoReadError(f"{path}: not a readable video (its first frame cannot be decoded: {reason})") from err
        if first is None:
            raise EmptyVideoError(f"{path}: the video has no frames")
        duration = _duration(container, stream)
        count = _frame_count(stream, rate, duration)
        turns = _quarter_turns(first)
        width, height = (first.height, first.width) if turns % 2 else (first.width, first.height)
        return VideoInfo(
            path=Path(path),
            width=int(width),
            height=int(height),
            fps=float(rate),
            frame_count=count,
            duration_s=float(duration) if duration is not None else count / float(rate),
            rotation=90 * turns,
            codec=stream.codec_context.name,
        )
    finally:
        container.close()


def read_frames(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[VideoFrame]:
    """Decode a video's frames in order, optionally at a lower rate and inside a time window.

    The arguments are checked and the file is opened when this is called (so a missing file raises here); frames
    are decoded as the iterator is consumed, one at a time (only the frames yielded are converted to RGB).

    Args:
        path: a video file.
        fps: None for every frame. Below the stream's rate, frames on a regular grid of this rate: the grid starts
            at the first frame of the window and each grid time takes the nearest source frame (the earlier one on
            a tie), never the same frame twice; e.g. 12.5 of a 25 frames/s video keeps every other frame, 10 keeps
            indices 0, 2, 5, 7, 10, ... At or above the stream's rate: the stream's own frames, none repeated
            (frames are never invented or duplicated to reach a higher rate).
        start_s: keep frames whose time is at or after this many seconds. The reader seeks to the key frame
            before it and decodes forward, so the window is exact; if a container's seek lands past it, the video
            is decoded from its start instead.
        end_s: keep frames whose time is before this many seconds (the window is ``[start_s, end_s)``).
        on_warning: called with a one-line message when something is wrong but frames still come: the stream ends
            (cleanly, at a packet boundary) before the duration it announces, as a file cut short there does.
            None: such warnings are dropped. A file that fails to decode part-way raises instead (see Raises).

    Yields:
        :class:`VideoFrame` s in presentation order: ``index`` and ``time_s`` in the source stream, ``image``
        ``(H, W, 3)`` uint8 RGB, upright.

    Raises:
        ValueError, TypeError: ``fps`` is not a finite positive number; ``start_s``/``end_s`` negative or not
            finite; ``start_s >= end_s``; ``start_s`` at or past the end of the video (by its announced duration).
        VideoReadError: on the call: the file is missing or not a readable video. While iterating: decoding fails
            part-way (truncated or corrupt data): the frames decoded before are yielded first, and the message
            says after which frame and time decoding stopped.
        EmptyVideoError: (while iterating) the video has no frames, or none in ``[start_s, end_s)``.

    Example:
        >>> [f.index for f in read_frames("obama.mp4", fps=10, end_s=0.5)]  # doctest: +SKIP
        [0, 2, 5, 7, 10]
    """
    if fps is not None:
        check_positive(fps, "fps")
    start = _seconds(start_s, "start_s") if start_s is not None else None
    end = _seconds(end_s, "end_s") if end_s is not None else None
    if start is not None and end is not None and start >= end:
        raise ValueError(f"start_s, end_s: expected start_s < end_s, got start_s={start_s!r}, end_s={end_s!r}")
    if on_warning is not None and not callable(on_warning):
        raise TypeError(f"on_warning: expected a callable or None, got {describe(on_warning)}")
    container, stream = _open(path)
    try:
        rate = _rate(stream, path)
        duration = _duration(container, stream)
        if start is not None and duration is not None and start >= duration:
            raise ValueError(
                f"start_s: {start_s!r} s is at or past the end of {path} (its video runs {float(duration):.3f} s)"
            )
    except BaseException:
        container.close()
        raise
    step = None
    if fps is not None:
        wanted = Fraction(fps).limit_denominator(_RESOLUTION)
        step = 1 / wanted if wanted < rate else None
    return _frames(path, container, stream, rate, start, end, step, on_warning)


def _frames(
    path: str | os.PathLike[str],
    container: Any,
    stream: Any,
    rate: Fraction,
    start: Fraction | None,
    end: Fraction | None,
    step: Fraction | None,
    on_warning: Callable[[str], None] | None,
) -> Iterator[VideoFrame]:
    """The generator behind :func:`read_frames`; closes the container when done or dropped."""
    yielded = 0
    try:
        timed = _decode(path, container, stream, rate, start, end, on_warning)
        for item in _select(timed, start, end, step):
            yield VideoFrame(index=item.index, time_s=float(item.time), image=_to_rgb(item.frame))
            yielded += 1
    finally:
        container.close()
    if yielded == 0:
        if start is None and end is None:
            raise EmptyVideoError(f"{path}: the video has no frames")
        window = f"{float(start or 0):.3f} s and " + (f"{float(end):.3f} s" if end is not None else "the end")
        raise EmptyVideoError(f"{path}: no frames between {window}")


class _CutShort(Exception):
    """The stream's last packet is incomplete: the file ends inside it."""


def _decoded(container: Any, stream: Any) -> Iterator[Any]:
    """PyAV's frames of ``stream`` in presentation order; raises :class:`_CutShort` when the file ends inside a packet.

    The demuxer flags a packet it could read only part of as corrupt. One followed by more packets is a glitch the
    decoder conceals; one that is the last is a file cut short: the frames before it are flushed out, then the
    error is raised, so a partial packet never becomes a (garbled) frame.
    """
    held = None  # a corrupt packet, decoded only once a packet after it shows the file goes on
    for packet in container.demux(stream):
        if packet.size == 0:  # the demuxer's final empty packet: flush the decoder
            break
        if held is not None:
            yield from held.decode()
            held = None
        if packet.is_corrupt:
            held = packet
            continue
        yield from packet.decode()
    yield from stream.decode(None)
    if held is not None:
        raise _CutShort(f"the file is truncated (it ends inside a packet, at byte {held.pos + held.size})")


def _decode(
    path: str | os.PathLike[str],
    container: Any,
    stream: Any,
    rate: Fraction,
    start: Fraction | None,
    end: Fraction | None,
    on_warning: Callable[[str], None] | None,
) -> Iterator[_Timed]:
    """Every decoded frame from ``start`` on (from the key frame before it), with its index, time and duration."""
    av = _av()
    time_base = Fraction(stream.time_base)
    origin = int(stream.start_time or 0)
    previous: _Timed | None = None

    def describe_last() -> str:
        if previous is None:
            return "before its first frame"
        return f"after frame {previous.index} ({float(previous.time):.3f} s)"

    if start is not None and start > 0:
        try:
            container.seek(origin + math.floor(start / time_base), stream=stream, backward=True, any_frame=False)
        except av.FFmpegError:
            container.seek(origin, stream=stream, backward=True, any_frame=False)
    rewound = start is None or start == 0
    frames = _decoded(container, stream)
    while True:
        try:
            frame = next(frames, None)
        except _CutShort as err:
            raise VideoReadError(f"{path}: decoding stopped {describe_last()}: {err}") from None
        except av.FFmpegError as err:
            raise VideoReadError(
                f"{path}: decoding stopped {describe_last()}: {_reason(err)} (the file is truncated or corrupt)"
            ) from err
        if frame is None:
            break
        pts = frame.pts if frame.pts is not None else frame.best_effort_timestamp
        if pts is None:
            time = previous.time + previous.duration if previous is not None else Fraction(0)
        else:
            time = (pts - origin) * time_base
        if time < 0:
            continue  # before the stream's announced start: no player shows it
        if not rewound:
            rewound = True
            if time > start:  # the seek landed past the window's start: decode from the beginning instead
                container.seek(origin, stream=stream, backward=True, any_frame=False)
                frames = _decoded(container, stream)
                continue
        index = math.floor(time * rate + Fraction(1, 2))
        if previous is not None and index <= previous.index:
            index = previous.index + 1
        length = Fraction(frame.duration) * time_base if getattr(frame, "duration", 0) else 1 / rate
        previous = _Timed(frame, index, time, length)
        yield previous
        if end is not None and time >= end:
            return
    duration = _stream_duration(stream)  # not the container's: a longer audio track is no truncation
    if on_warning is not None and previous is not None and duration is not None:
        expected = duration if end is None else min(duration, end)
        if previous.time + previous.duration < expected - Fraction(3, 2) / rate:
            count = _frame_count(stream, rate, duration)
            on_warning(
                f"{path}: the video stream ends after frame {previous.index} ({float(previous.time):.3f} s) although "
                f"it announces {count} frames ({float(duration):.3f} s); the file may be truncated"
            )


def _select(
    timed: Iterator[_Timed], start: Fraction | None, end: Fraction | None, step: Fraction | None
) -> Iterator[_Timed]:
    """The frames inside ``[start, end)``; with ``step``, those nearest to a grid of that period."""
    last: _Timed | None = None  # the latest frame inside the window
    emitted: _Timed | None = None
    grid: Fraction | None = None
    stopped_at_end = False
    for item in timed:
        if start is not None and item.time < start:
            continue
        if end is not None and item.time >= end:
            stopped_at_end = True
            break
        if step is None:
            yield item
            continue
        if grid is None:  # the window's first frame starts the grid
            grid = item.time + step
            emitted = last = item
            yield item
            continue
        while grid <= item.time:
            assert last is not None
            pick = last if grid - last.time <= item.time - grid else item
            if pick is not emitted:
                emitted = pick
                yield pick
            grid += step
        last = item
    if step is None or last is None or grid is None or last is emitted:
        return
    # Grid times after the last frame of the window still take it, while they fall inside the window.
    limit = end if stopped_at_end else last.time + last.duration
    if end is not None:
        limit = min(limit, end)
    if grid < limit:
        yield last


def read_ahead(frames: Iterable[VideoFrame], depth: int = 8) -> Iterator[VideoFrame]:
    """The frames of ``frames``, decoded ``depth`` frames ahead in a background thread (FFmpeg decodes without
    Python's lock, so decoding runs beside the consumer's work on a second core). Errors come out where they
    happened, after the frames decoded before them; stopping early stops the thread."""
    if depth < 1:
        raise ValueError(f"depth: expected at least 1, got {depth!r}")
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        """Queue ``item`` unless the consumer stopped; False when it did."""
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(done)
        except BaseException as err:  # handed to the consumer, raised there in order
            put(err)

    thread = threading.Thread(target=produce, name="facerecon-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)
