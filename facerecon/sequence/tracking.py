"""The faces of a video over time: detections grouped by the detector's track ids, with the optical flow
between consecutive frames measured at each face's landmarks (the flow term of :mod:`.track_fit`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.ndimage import map_coordinates

from facerecon.detect.types import Detection, VideoDetector
from facerecon.fit.landmarks import LandmarkFitter, mediapipe478_targets
from facerecon.models.face_model import FaceModel
from facerecon.pipeline.options import ReconstructOptions
from facerecon.sequence.track_fit import TrackLandmarks

__all__ = ["FaceTracks", "FlowConfig", "dense_fitter", "landmark_selector", "track_faces"]


@dataclass(frozen=True)
class FlowConfig:
    """Dense optical flow around each face (OpenCV's DIS, Kroeger et al. ECCV 2016).

    Attributes:
        max_side: the face's crop (its landmarks' box and ``margin`` around it) is resized to at most this
            many pixels per side before the flow is computed.
        margin: the crop's margin, a fraction of the landmarks' box.
        preset: DIS preset (``cv2.DISOPTICAL_FLOW_PRESET_*``).
    """

    max_side: int = 160
    margin: float = 0.25
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST


@dataclass
class _Growing:
    frame_indices: list[int] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    confidence: list[np.ndarray] = field(default_factory=list)
    flow: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class FaceTracks:
    """Every face track of a video (in order of first appearance) and the frames read.

    Attributes:
        tracks: one :class:`TrackLandmarks` per track id.
        frames: frames read; size: ``(width, height)`` px; failed: ``(frame index, reason)`` of frames whose
            detection failed (skipped).
    """

    tracks: tuple[TrackLandmarks, ...]
    frames: int
    size: tuple[int, int]
    failed: tuple[tuple[int, str], ...] = ()


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class _FaceFlow:
    """The flow of one face's landmarks from one frame to the next."""

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self._dis = cv2.DISOpticalFlow_create(config.preset)

    def __call__(self, previous: np.ndarray, current: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``(L, 2)`` px: how ``points`` (in ``previous``, grey) moved in ``current`` (NaN outside the frame)."""
        height, width = previous.shape
        lo, hi = points.min(axis=0), points.max(axis=0)
        pad = (hi - lo) * self.config.margin
        x0, y0 = (np.floor(np.maximum(lo - pad, 0))).astype(int)
        x1, y1 = (np.ceil(np.minimum(hi + pad, [width - 1, height - 1]))).astype(int) + 1
        if x1 - x0 < 8 or y1 - y0 < 8:
            return np.full(points.shape, np.nan)
        scale = min(1.0, self.config.max_side / max(x1 - x0, y1 - y0))
        size = (max(int(round((x1 - x0) * scale)), 8), max(int(round((y1 - y0) * scale)), 8))
        a = cv2.resize(previous[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(current[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
        flow = self._dis.calc(a, b, None)  # (h, w, 2) px of the resized crop
        sx, sy = size[0] / (x1 - x0), size[1] / (y1 - y0)
        # Pixel centres at integers: a crop pixel j covers source pixels [x0 + j / sx, x0 + (j + 1) / sx).
        cols = (points[:, 0] - x0 + 0.5) * sx - 0.5
        rows = (points[:, 1] - y0 + 0.5) * sy - 0.5
        coords = np.stack([rows, cols])
        du = map_coordinates(flow[..., 0], coords, order=1, mode="nearest") / sx
        dv = map_coordinates(flow[..., 1], coords, order=1, mode="nearest") / sy
        moved = np.stack([du, dv], axis=1)
        inside = (points[:, 0] >= 0) & (points[:, 0] <= width - 1) & (points[:, 1] >= 0) & (points[:, 1] <= height - 1)
        moved[~inside] = np.nan
        return moved


def track_faces(
    frames: Iterable,
    detector: VideoDetector,
    select: Callable[[Detection], tuple[np.ndarray, np.ndarray]],
    *,
    flow: FlowConfig | None = FlowConfig(),
    progress: Callable[[int], None] | None = None,
) -> FaceTracks:
    """Detect the faces of every frame, group them by track id and measure the flow at their landmarks.

    Args:
        frames: the video's frames in order (objects with ``index``, ``time_s`` and ``image`` (H, W, 3) uint8).
        detector: a video detector (its tracks start afresh).
        select: a detection's landmarks ``(L, 2)`` and confidences ``(L,)`` for the fitter.
        flow: the flow's settings (None: no flow; the flow term then has nothing to pull to).
        progress: called with the number of frames read so far, after each frame.
    """
    detector.reset()
    growing: dict[int, _Growing] = {}
    previous_points: dict[int, np.ndarray] = {}
    flow_of = _FaceFlow(flow) if flow is not None else None
    previous_gray = None
    count, size = 0, (0, 0)
    failed: list[tuple[int, str]] = []
    for frame in frames:
        image = frame.image
        size = (image.shape[1], image.shape[0])
        gray = _gray(image) if flow_of is not None else None
        try:
            detections = detector.detect(image)
        except (ValueError, RuntimeError) as err:  # a frame MediaPipe cannot take: reported, skipped
            failed.append((int(frame.index), str(err)))
            detections = []
        seen: dict[int, np.ndarray] = {}
        for det in detections:
            landmarks, confidence = select(det)
            track = growing.setdefault(int(det.track_id), _Growing())
            moved = np.full(landmarks.shape, np.nan)
            last = previous_points.get(int(det.track_id))
            if flow_of is not None and last is not None and previous_gray is not None:
                moved = flow_of(previous_gray, gray, last)
            track.frame_indices.append(int(frame.index))
            track.times_s.append(float(frame.time_s))
            # float32: an hour of video is 90,000 frames of 468 points (the fits read them as float64)
            track.landmarks.append(np.asarray(landmarks, np.float32))
            track.confidence.append(np.asarray(confidence, np.float32))
            track.flow.append(np.asarray(moved, np.float32))
            seen[int(det.track_id)] = np.asarray(landmarks, np.float64)
        previous_points, previous_gray = seen, gray
        count += 1
        if progress is not None:
            progress(count)
    tracks = tuple(
        TrackLandmarks(track_id=track_id, frame_indices=np.asarray(g.frame_indices), times_s=np.asarray(g.times_s),
                       landmarks=np.stack(g.landmarks), confidence=np.stack(g.confidence), flow=np.stack(g.flow))
        for track_id, g in growing.items()
    )  # fmt: skip
    return FaceTracks(tracks, count, size, tuple(failed))


def dense_fitter(model: FaceModel, options: ReconstructOptions) -> LandmarkFitter:
    """The landmark fitter of video and photo-set fits: MediaPipe's 478 points (the model must be calibrated)."""
    if "mediapipe478" not in model.landmark_scheme_names:
        raise RuntimeError("the model is not calibrated for MediaPipe's landmarks: load it with facerecon.load_model()")
    return LandmarkFitter(model, mediapipe478_targets(model), options.landmark)


def landmark_selector(fitter: LandmarkFitter):
    """A function giving a detection's landmarks ``(L, 2)`` px and confidences ``(L,)`` for ``fitter``."""

    def select(det: Detection) -> tuple[np.ndarray, np.ndarray]:
        return fitter.targets.select(det.landmarks), np.clip(fitter.targets.select(det.confidence[:, None])[:, 0], 0, 1)

    return select
