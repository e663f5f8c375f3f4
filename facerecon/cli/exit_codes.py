"""Exit codes of the ``facerecon`` command, one per kind of failure, so scripts can tell them apart."""

from __future__ import annotations

import enum

from facerecon.core import errors


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL_ERROR = 1  # a bug: please report it with the traceback (FACERECON_DEBUG=1 shows it)
    USAGE = 2  # bad command line (argparse's own code)
    MODEL_SOURCE = 3  # the model archive/folder/URL is missing, unreachable, corrupt or not the model
    MODEL_CACHE = 4  # the installed model is missing or unreadable
    IMAGE_READ = 5  # an image could not be read
    NO_FACE = 6  # no (large enough) face in an image
    FIT_DIVERGED = 7  # an optimisation diverged; nothing was written for that face
    PARTIAL = 8  # a batch finished, but some of its items failed (each reported on its own line)
    MESH_FILE = 9  # a mesh file could not be read or written
    WEIGHTS = 10  # network weights missing, corrupt, or not those of the network / registry entry / face model
    ENGINE = 11  # the batch engine (a Ray cluster) cannot be reached, started, or lost the work
    VIDEO_READ = 12  # a video could not be opened or decoded, is not a video, or is truncated
    VIDEO_EMPTY = 13  # a video has no frames, or none between --start and --end
    INTERRUPTED = 130  # Ctrl-C


_BY_ERROR: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (errors.ModelSourceError, ExitCode.MODEL_SOURCE),
    (errors.ModelNotInstalledError, ExitCode.MODEL_CACHE),
    (errors.ModelCacheError, ExitCode.MODEL_CACHE),
    (errors.ImageReadError, ExitCode.IMAGE_READ),
    (errors.EmptyVideoError, ExitCode.VIDEO_EMPTY),  # before VideoReadError, its base class: searched in order
    (errors.VideoReadError, ExitCode.VIDEO_READ),
    (errors.NoFaceError, ExitCode.NO_FACE),
    (errors.FitDivergedError, ExitCode.FIT_DIVERGED),
    (errors.MeshFileError, ExitCode.MESH_FILE),
    (errors.WeightsError, ExitCode.WEIGHTS),
    (errors.DeviceError, ExitCode.USAGE),
    (errors.InputListError, ExitCode.USAGE),  # an @list file or input folder that cannot be read: a bad argument
    (errors.EngineError, ExitCode.ENGINE),  # a device this machine does not have: a bad option value
)


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for a user-facing error; ``INTERNAL_ERROR`` for anything else."""
    return exit_code_for_type(type(error))


def exit_code_for_type(kind: type[BaseException] | str | None) -> ExitCode:
    """:func:`exit_code_for` from the error's class, or its name in :mod:`facerecon.core.errors` (as a worker process
    reports it); ``INTERNAL_ERROR`` for anything else."""
    if isinstance(kind, str):
        kind = getattr(errors, kind, None)
    if isinstance(kind, type):
        for cls, code in _BY_ERROR:
            if issubclass(kind, cls):
                return code
    return ExitCode.INTERNAL_ERROR


def batch_exit_code(failures: list[ExitCode], succeeded: int) -> ExitCode:
    """The exit code of a batch: OK when nothing failed; when nothing succeeded and every failure has the same
    cause, that cause's code (IMAGE_READ, NO_FACE, ...); otherwise PARTIAL."""
    if not failures:
        return ExitCode.OK
    if succeeded == 0 and len(set(failures)) == 1:
        return failures[0]
    return ExitCode.PARTIAL
