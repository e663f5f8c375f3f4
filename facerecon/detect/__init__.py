"""Face and landmark detectors behind one Detection type.

``create_detector("mediapipe")`` (the default: MediaPipe face mesh, 478 points) or ``create_detector("dlib")``
(68 iBUG points, HOG or CNN face detector) give a :class:`Detector`; ``mode="video"`` gives a
:class:`VideoDetector` that follows faces across the frames of one video. Every detector returns all faces
of an image, largest first, as :class:`Detection` objects in pixels of the image (pixel centres at integer
coordinates); :func:`to_ibug68` gives the 68 iBUG points of either scheme.

Example:
    >>> from facerecon.detect import create_detector
    >>> with create_detector("mediapipe") as detector:     # doctest: +SKIP
    ...     faces = detector.detect(image)                 # image: (H, W, 3) uint8 RGB
    >>> faces[0].box, faces[0].landmarks.shape, faces[0].to_ibug68().shape  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from facerecon.core.check import check_choice
from facerecon.detect._image import check_detectable
from facerecon.detect.schemes import IBUG68_MIRROR_PAIRS, MEDIAPIPE_TO_IBUG68, to_ibug68
from facerecon.detect.types import SCHEME_SIZES, Detection, Detector, VideoDetector

__all__ = [
    "DETECTORS",
    "Detection",
    "Detector",
    "IBUG68_MIRROR_PAIRS",
    "MEDIAPIPE_TO_IBUG68",
    "SCHEME_SIZES",
    "VideoDetector",
    "check_detectable",
    "create_detector",
    "draw_detections",
    "to_ibug68",
]

#: Names accepted by :func:`create_detector`.
DETECTORS: tuple[str, ...] = ("mediapipe", "dlib")


def create_detector(name: str = "mediapipe", *, mode: str = "image", **options: Any) -> Any:
    """Make a face + landmark detector.

    Args:
        name: ``"mediapipe"`` (478 points; options: see :class:`~facerecon.detect.mediapipe_mesh.MediaPipeOptions`)
            or ``"dlib"`` (68 points; options: see :class:`~facerecon.detect.dlib68.DlibOptions`, e.g.
            ``face_detector="cnn"``).
        mode: ``"image"`` for unrelated still images, ``"video"`` for the frames of one video in order
            (MediaPipe only: faces are tracked and carry a ``track_id``).
        **options: fields of the detector's options dataclass.

    Returns:
        A :class:`Detector` (``mode="image"``) or :class:`VideoDetector` (``mode="video"``). Close it (or use
        it in a ``with`` block) to free its native resources.

    Raises:
        ValueError: an unknown name, mode or option.
        ModelNotInstalledError: the optional dlib extra is missing.
    """
    check_choice(name, "name", DETECTORS)
    check_choice(mode, "mode", ("image", "video"))
    if name == "mediapipe":
        from facerecon.detect import mediapipe_mesh

        cls = mediapipe_mesh.MediaPipeVideoDetector if mode == "video" else mediapipe_mesh.MediaPipeDetector
        return cls(**options)
    if mode == "video":
        raise ValueError("mode: 'video' is available for the 'mediapipe' detector only, got name='dlib'")
    from facerecon.detect.dlib68 import DlibDetector

    return DlibDetector(**options)


def __getattr__(name: str) -> Any:
    if name == "draw_detections":
        from facerecon.detect.draw import draw_detections

        return draw_detections
    raise AttributeError(f"module 'facerecon.detect' has no attribute {name!r}")
