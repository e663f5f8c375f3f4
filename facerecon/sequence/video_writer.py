"""Video files out: :class:`VideoWriter` writes ``(H, W, 3)`` uint8 RGB frames as H.264 MP4 (or VP9 WebM, MPEG-4
AVI), atomically, with PyAV (see :mod:`facerecon.sequence.video` for why PyAV)."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self

import numpy as np

from facerecon.core.check import check_positive, describe
from facerecon.io.atomic import atomic_path
from facerecon.sequence.video import _RESOLUTION, _av

__all__ = ["VideoWriter"]


# Container format and codecs tried in order for each extension of a written file.
_WRITE_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    ".mp4": ("mp4", ("libx264", "libopenh264", "mpeg4")),
    ".m4v": ("mp4", ("libx264", "libopenh264", "mpeg4")),
    ".mov": ("mov", ("libx264", "libopenh264", "mpeg4")),
    ".mkv": ("matroska", ("libx264", "libopenh264", "mpeg4")),
    ".webm": ("webm", ("libvpx-vp9", "libvpx")),
    ".avi": ("avi", ("mpeg4",)),
}

# FFmpeg's numbers for BT.709 (colour matrix, primaries, transfer) and limited ("MPEG", 16-235) range.
_BT709 = 1
_RANGE_MPEG = 1


def _encoder_available(av: ModuleType, name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except ValueError:  # PyAV's UnknownCodecError is a ValueError
        return False
    return True


class VideoWriter:
    """Write frames to a video file atomically: a temporary file beside it, renamed on a clean :meth:`close`.

    The codec follows the extension: ``.mp4``/``.m4v``/``.mov``/``.mkv``: **H.264** (libx264, which PyAV's wheels
    include; yuv420p, High profile, ``+faststart`` so browsers can start playing before the end arrives), which
    plays in browsers, Blender, VLC and QuickTime; MPEG-4 Part 2 (``mp4v``, no browser plays it) only with a PyAV
    built without H.264. ``.webm``: VP9. ``.avi``: MPEG-4 Part 2. :attr:`codec` says which encoder was used.
    Colours are converted with the BT.709 matrix in limited range and tagged so, which players follow.

    4:2:0 video needs even sizes: an odd width or height is padded by one column or row copied from the last one
    (the file is then one pixel wider or taller than ``size``).

    Use it as a context manager: an exception inside the ``with`` block removes the temporary file and leaves
    the target as it was (absent, or the previous file). Closing with no frame written leaves a valid video with
    no frames.

    Args:
        path: the file to write; its extension picks the container (one of ``.mp4 .m4v .mov .mkv .webm .avi``).
        fps: frames per second (> 0); kept as an exact fraction (``30000 / 1001`` for 29.97...).
        size: ``(width, height)`` of every frame, in px.
        preset: libx264's speed preset. At 1280 x 720 on a 2-core machine, ``"veryfast"`` (the default) costs
            ~22 ms of CPU time per frame (65 frames/s), ``"ultrafast"`` ~9 ms (135 frames/s) for files ~3 times
            larger, ``"medium"`` ~42 ms.
        crf: libx264's constant rate factor (0-51, lower is better; 20 is visually clean). H.264 only.

    Example:
        >>> with VideoWriter("overlay.mp4", fps=25, size=(640, 360)) as out:  # doctest: +SKIP
        ...     for image in images:                                        # (360, 640, 3) uint8 RGB each
        ...         out.write(image)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int],
        *,
        preset: str = "veryfast",
        crf: int = 20,
    ) -> None:
        av = _av()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _WRITE_FORMATS:
            raise ValueError(f"path: expected one of {', '.join(_WRITE_FORMATS)} as extension, got {str(path)!r}")
        check_positive(fps, "fps")
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise ValueError(f"size: expected (width, height) as two positive ints, got {size!r}")
        if not isinstance(crf, int) or isinstance(crf, bool) or not 0 <= crf <= 51:
            raise ValueError(f"crf: expected an int in [0, 51], got {crf!r}")
        self.size = (int(size[0]), int(size[1]))
        self.fps = Fraction(fps).limit_denominator(_RESOLUTION)
        self.frames_written = 0
        form, codecs = _WRITE_FORMATS[suffix]
        codec = next((c for c in codecs if _encoder_available(av, c)), None)
        if codec is None:
            raise RuntimeError(f"this PyAV build has none of the encoders {', '.join(codecs)} for {suffix} files")
        self.codec: str = codec
        self._padded = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self._stack = contextlib.ExitStack()
        self._container: Any = None
        try:
            tmp = self._stack.enter_context(atomic_path(self.path))
            options = {"movflags": "+faststart"} if form in ("mp4", "mov") else {}
            self._container = av.open(str(tmp), mode="w", format=form, options=options)
            stream = self._container.add_stream(codec, rate=self.fps, options=self._codec_options(codec, preset, crf))
            stream.width, stream.height = self._padded
            stream.pix_fmt = "yuv420p"
            if codec not in ("libx264", "libopenh264", "libvpx-vp9", "libvpx"):
                stream.bit_rate = int(0.25 * self._padded[0] * self._padded[1] * float(self.fps))
            context = stream.codec_context
            context.colorspace, context.color_primaries, context.color_trc = _BT709, _BT709, _BT709
            context.color_range = _RANGE_MPEG
            self._stream = stream
        except BaseException as err:
            self._abort(type(err), err, err.__traceback__)
            raise

    @staticmethod
    def _codec_options(codec: str, preset: str, crf: int) -> dict[str, str]:
        if codec == "libx264":
            return {"preset": str(preset), "crf": str(crf)}
        if codec in ("libvpx-vp9", "libvpx"):
            return {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0"}
        return {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._abort(kind, error, trace)

    def write(self, image: np.ndarray) -> None:
        """Append one frame: ``(H, W, 3)`` uint8 RGB with ``(W, H) == size``."""
        if self._container is None:
            raise ValueError(f"{self.path}: the writer is closed")
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image: expected an (H, W, 3) uint8 RGB numpy array, got {describe(image)}")
        width, height = self.size
        if image.shape != (height, width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"image: expected shape ({height}, {width}, 3) uint8 (size={self.size}), "
                f"got shape {tuple(image.shape)} {image.dtype}"
            )
        av = _av()
        if self._padded != self.size:
            image = np.pad(
                image, ((0, self._padded[1] - height), (0, self._padded[0] - width), (0, 0)), mode="edge"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format=self._stream.pix_fmt, dst_colorspace="ITU709")
        frame.pts = self.frames_written
        frame.time_base = 1 / self.fps
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, finish the file and rename it onto ``path``. Calling it again does nothing."""
        if self._container is None:
            return
        try:
            if self.frames_written == 0:
                self._container.start_encoding()  # the header alone: a valid file with no frames
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except BaseException as err:
            self._abort(type(err), err, err.__traceback__)
            raise
        self._stack.close()  # renames the temporary file onto the target

    def _abort(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Drop everything written: close the container, remove the temporary file."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        self._stack.__exit__(kind, error, trace)
