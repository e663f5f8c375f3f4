"""A quiet terminal for the command line: the native libraries' log noise is filtered out of stderr.

MediaPipe 0.10.14 and the TensorFlow Lite runtime inside it write to file descriptor 2 from C++ when their
graphs start ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", absl's "WARNING: All log messages
before absl::InitializeLog() ..." and one "W0000 ... inference_feedback_manager.cc ..." line per graph).
Neither ``GLOG_minloglevel`` nor ``TF_CPP_MIN_LOG_LEVEL`` reaches them (measured), so :class:`QuietNativeStderr`
works at the descriptor level: fd 2 becomes a pipe read by a thread that drops the lines matching
:data:`NOISE` and passes every other line on (a native error message still reaches the user), while Python's
own ``sys.stderr`` (progress bars, our messages) gets a duplicate of the real stderr and bypasses the filter.
:func:`facerecon.core.quiet.quiet_python_warnings` (in ``core``: the batch's worker processes call it too) hides the third-party deprecation warnings (protobuf's "SymbolDatabase.
GetPrototype() is deprecated", raised inside MediaPipe), never facerecon's own, and torch's ONNX exporter's
log warnings.

Only the command line uses this (``facerecon --verbose`` turns it off): it is the application, and may change
the process's descriptors; the library itself changes nothing global.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from types import TracebackType
from typing import Self

from facerecon.core.quiet import quiet_python_warnings

__all__ = ["NOISE", "QuietNativeStderr", "is_noise", "quiet_python_warnings"]

#: Lines of native log noise (matched at the start of a line, after stripping), dropped from stderr.
NOISE: tuple[re.Pattern[str], ...] = (
    re.compile(r"INFO: Created TensorFlow Lite (XNNPACK )?delegate"),
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"[IW]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\] "),  # absl INFO/WARNING lines (never E or F: errors pass)
)


def is_noise(line: str) -> bool:
    """Whether one line of native stderr is known log noise."""
    text = line.strip()
    return any(pattern.match(text) for pattern in NOISE)


class QuietNativeStderr:
    """Context manager: native writes to fd 2 are filtered line by line (see the module docstring).

    On exit the pipe is drained and closed, the real fd 2 comes back and ``sys.stderr`` is restored. Does
    nothing when fd 2 cannot be duplicated (e.g. no stderr at all).
    """

    def __init__(self) -> None:
        self._saved_fd: int | None = None
        self._saved_stream = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return self
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._saved_fd = saved
        self._saved_stream = sys.stderr
        if _writes_to_fd2(sys.stderr):
            # Python's stderr keeps writing to the terminal directly (a progress bar's "\r" updates are not lines;
            # tqdm flushes each one). Line-buffered, so a line reaches fd 2 in one write: print's text and its "\n"
            # are two writes, and a native line passed on by the pump could land between them.
            sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb"), encoding="utf-8",
                                          errors="backslashreplace", line_buffering=True)  # fmt: skip
        self._thread = threading.Thread(target=self._pump, args=(read_fd, saved), name="quiet-stderr", daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _pump(read_fd: int, out_fd: int) -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not is_noise(line.decode("utf-8", "replace")):
                        os.write(out_fd, line + b"\n")
            if pending and not is_noise(pending.decode("utf-8", "replace")):
                os.write(out_fd, pending)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._saved_fd is None:
            return
        sys.stderr.flush()
        quiet_stream, sys.stderr = sys.stderr, self._saved_stream
        os.dup2(self._saved_fd, 2)  # closes the pipe's last write end: the pump reads EOF
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        os.close(self._saved_fd)
        if quiet_stream is not self._saved_stream:
            quiet_stream.close()
        self._saved_fd = None


def _writes_to_fd2(stream: object) -> bool:
    """Whether a text stream is the process's real stderr (not, e.g., a test's capture buffer)."""
    try:
        return stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
