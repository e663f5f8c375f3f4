"""The exceptions facerecon raises for problems a user can fix (bad input, missing model, no face).

Programming errors (wrong argument types or shapes) raise the built-in ``TypeError``/``ValueError``
from :mod:`facerecon.core.check`. The CLI maps each class below to its own exit code.
"""

from __future__ import annotations


class FaceReconError(Exception):
    """Base class of facerecon's user-facing errors; ``str(err)`` is one line meant for the user."""


class ModelSourceError(FaceReconError):
    """The model source (archive, folder or URL) is missing, unreachable, corrupt or not the model."""


class ModelNotInstalledError(FaceReconError):
    """A model was asked for that is not in the cache and may not be installed automatically."""


class ModelCacheError(FaceReconError):
    """The model cache is unreadable, of another format version, or inconsistent."""


class ImageReadError(FaceReconError):
    """An image file is missing, unreadable, truncated, of an unsupported kind or too large."""


class VideoReadError(FaceReconError):
    """A video file is missing, not a video, cannot be opened or decoded, or is truncated (frames decoded before the
    failure have been delivered; the message says where decoding stopped)."""


class EmptyVideoError(VideoReadError):
    """A video holds no frames, or none in the time window asked for (``--start``/``--end``)."""


class NoFaceError(FaceReconError):
    """No face was found in an image (or none large enough)."""


class FitDivergedError(FaceReconError):
    """An optimisation produced NaN or exploding losses; its result is not usable."""


class MeshFileError(FaceReconError, ValueError):
    """A mesh file is missing, has the wrong extension, or is corrupt or unsupported.

    Also a ``ValueError``, so code that treats bad files as bad values keeps working.
    """


class WeightsError(FaceReconError):
    """A network's weights (safetensors or ONNX file) are missing, truncated or corrupt, do not match the network
    key for key and shape for shape, or have another SHA-256, config or face model than expected."""


class DeviceError(FaceReconError, ValueError):
    """A compute device was asked for that this machine does not have (no CUDA, no such GPU, no MPS).

    Also a ``ValueError``: a device name is an argument value.
    """


class InputListError(FaceReconError):
    """A command line's inputs cannot be expanded: a list of paths (``@list.txt``) that is missing or unreadable, or
    a folder that cannot be walked."""


class EngineError(FaceReconError):
    """A batch engine cannot run: a Ray cluster that cannot be reached or started, or that lost its work."""
