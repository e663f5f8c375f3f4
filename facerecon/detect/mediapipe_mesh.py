"""MediaPipe face mesh (478 points) behind the ``Detector`` interface, for still images and for video.

Which MediaPipe API, and why: the 0.10.14 wheel ships the face-detection and face-landmark ``.tflite``
models and the graphs of the legacy ``mp.solutions`` API, but no ``.task`` bundle for the Tasks API's
``FaceLandmarker``, and nothing may be downloaded at run time; so this module uses
``mp.solutions.face_detection`` and ``mp.solutions.face_mesh`` with the models on disk.

How faces are found (two stages, measured on the 51 photos of ``../shared/data/faces``):

1. Boxes: BlazeFace on a copy of the photo whose long side is at most ``max_side`` px, with the wheel's
   two models: short-range (the one inside face mesh; found every face of the 51 photos, misses small or
   distant faces) and full-range (finds small faces, misses close-ups: 6 of the 51 photos). The short-range
   model runs first; when it finds a face of at least ``tile_below`` of the long side (a portrait), that is
   all. Otherwise the full-range model runs too and their boxes are merged by overlap. Both see the whole picture at 128 / 192 px, so faces under
   ~1/10 of the long side vanish: when the pass finds no face, or only faces smaller than ``tile_below``
   of the long side (a group photo), both models run again on overlapping tiles of a third of the picture
   (a grid of 24 portraits, faces 25-130 px: 10-13 found without tiles, all 24 with).
2. Landmarks: for each box, a square crop of the **original** photo around it (``crop_scale`` times the
   box, resized to ``crop_size`` px) goes through face mesh with ``refine_landmarks=True`` (478 points,
   with irises). The crop makes every face large in the mesh's input, whatever its size in the photo,
   and keeps the full resolution of large photos. The points are mapped back to the photo's pixels.

Video (:class:`MediaPipeVideoDetector`): each face is followed from frame to frame by cropping around its
previous landmarks; the box detectors run again every ``redetect_every`` frames (and whenever no face is
tracked) to pick up new faces. Faces keep their ``track_id`` while they are followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facerecon.core.check import check_choice, check_positive, describe
from facerecon.detect._image import Affine, box_iou, check_image, scaled_copy, square_crop
from facerecon.detect.types import Detection, with_overrides

NUM_LANDMARKS = 478


@dataclass(frozen=True)
class MediaPipeOptions:
    """Settings of the MediaPipe detectors.

    Attributes:
        max_faces: at most this many faces per image (the largest are kept).
        min_score: minimum BlazeFace score of a face box, in (0, 1).
        max_side: the box detectors run on a copy whose long side is at most this many px.
        crop_scale: side of the square crop given to face mesh, in units of the face box's larger side.
        crop_size: the crop is resized to this many px square before face mesh.
        min_face_size: boxes smaller than this (the larger side, px of the original image) are ignored.
        merge_iou: boxes (and meshes) overlapping more than this are one face.
        tiles: ``"auto"``: search overlapping tiles of a third of the picture again when the whole-picture
            pass finds no face, or only faces smaller than ``tile_below`` of the picture's long side (group
            photos); ``"always"``; ``"never"``.
        tile_below: see ``tiles``. 0.15: the whole-picture pass finds faces down to ~1/10 of the long side;
            the largest face is 0.16-0.19 of it in the two- and three-face photos (no tiles needed), 0.12 in
            a grid of 24 portraits (tiles needed).
        redetect_every: video only: run the box detectors every this many frames.
    """

    max_faces: int = 10
    min_score: float = 0.5
    max_side: int = 1280
    crop_scale: float = 2.0
    crop_size: int = 256
    min_face_size: float = 12.0
    merge_iou: float = 0.4
    tiles: str = "auto"
    tile_below: float = 0.15
    redetect_every: int = 10

    def __post_init__(self) -> None:
        for name in ("max_faces", "max_side", "crop_size", "redetect_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not (isinstance(self.min_score, (int, float)) and 0.0 < self.min_score < 1.0):
            raise ValueError(f"min_score: expected a number in (0, 1), got {self.min_score!r}")
        check_positive(self.crop_scale, "crop_scale")
        if self.crop_scale < 1.2:
            raise ValueError(f"crop_scale: expected at least 1.2 (the crop must hold the whole face), got {self.crop_scale!r}")
        if self.crop_size < 128:
            raise ValueError(f"crop_size: expected at least 128 px, got {self.crop_size!r}")
        if not isinstance(self.min_face_size, (int, float)) or self.min_face_size < 0:
            raise ValueError(f"min_face_size: expected a number >= 0, got {self.min_face_size!r}")
        check_choice(self.tiles, "tiles", ("auto", "always", "never"))
        if not (isinstance(self.tile_below, (int, float)) and 0.0 <= self.tile_below <= 1.0):
            raise ValueError(f"tile_below: expected a number in [0, 1], got {self.tile_below!r}")
        if not (isinstance(self.merge_iou, (int, float)) and 0.0 < self.merge_iou < 1.0):
            raise ValueError(f"merge_iou: expected a number in (0, 1), got {self.merge_iou!r}")


@dataclass(frozen=True)
class _Box:
    box: np.ndarray  # (4,) px of the original image
    score: float


class _MediaPipeBase:
    """The two stages shared by the image and the video detector; owns the MediaPipe graphs."""

    scheme = "mediapipe478"

    def __init__(self, options: MediaPipeOptions | None = None, **overrides: Any) -> None:
        if options is not None and not isinstance(options, MediaPipeOptions):
            raise TypeError(f"options: expected MediaPipeOptions or None, got {describe(options)}")
        self.options = with_overrides(options or MediaPipeOptions(), overrides)
        import mediapipe as mp  # heavy: imported when a detector is made, not with facerecon.detect

        fd = mp.solutions.face_detection
        self._detectors = [
            fd.FaceDetection(model_selection=0, min_detection_confidence=self.options.min_score),
            fd.FaceDetection(model_selection=1, min_detection_confidence=self.options.min_score),
        ]
        # Static mode: every crop is a new picture (tracking happens here, across crops, not inside MediaPipe).
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=2, refine_landmarks=True, min_detection_confidence=0.3
        )
        self._closed = False

    # -- resources ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the MediaPipe graphs; the detector is unusable afterwards. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for graph in (*self._detectors, self._mesh):
            graph.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("detector: used after close()")

    # -- stage 1: boxes ----------------------------------------------------------------------------------
    def _boxes(self, image: np.ndarray) -> list[_Box]:
        """Face boxes in px of ``image``, merged across the two BlazeFace models (and tiles), best score first."""
        small, to_orig = scaled_copy(image, self.options.max_side)
        long_side = max(small.shape[:2])
        tiles = self.options.tiles

        def portrait(boxes: list[_Box]) -> bool:  # a face of at least tile_below of the long side
            largest = max((max(b.box[2] - b.box[0], b.box[3] - b.box[1]) / to_orig.scale_u for b in boxes), default=0.0)
            return tiles != "always" and largest >= long_side * self.options.tile_below

        # Short range first (2 ms); a portrait needs nothing more. Else full range (5 ms), then tiles.
        found = self._run_blazeface(self._detectors[0], small, to_orig)
        if portrait(found):
            return _suppress(found, self.options.merge_iou)
        found = _suppress(found + self._run_blazeface(self._detectors[1], small, to_orig), self.options.merge_iou)
        # BlazeFace sees the whole picture at 128 or 192 px: faces under ~1/10 of the long side vanish.
        # Group photos (no face, or only faces small against the picture) are searched again in tiles.
        if tiles == "always" or (tiles == "auto" and not portrait(found)):
            tile = max(192, round(long_side / 3))
            if tile < long_side:
                found += self._tiled_boxes(small, to_orig, tile)
                found = _suppress(found, self.options.merge_iou)
        return found

    def _tiled_boxes(self, small: np.ndarray, to_orig: Affine, tile: int) -> list[_Box]:
        """Both BlazeFace models on overlapping square tiles of ``tile`` px (stride 3/4 of a tile)."""
        h, w = small.shape[:2]
        stride = max(1, (3 * tile) // 4)
        starts_u = sorted({*range(0, max(w - tile, 0) + 1, stride), max(w - tile, 0)})
        starts_v = sorted({*range(0, max(h - tile, 0) + 1, stride), max(h - tile, 0)})
        found: list[_Box] = []
        for v0 in starts_v:
            for u0 in starts_u:
                part = np.ascontiguousarray(small[v0 : v0 + tile, u0 : u0 + tile])
                to_small = Affine(1.0, 1.0, float(u0), float(v0))
                for b in [b for graph in self._detectors for b in self._run_blazeface(graph, part, to_small)]:
                    # A face cut by the tile's border gives a partial box; the neighbouring tile sees it whole.
                    x0, y0, x1, y1 = b.box - np.array([u0, v0, u0, v0])
                    if (x0 < 1 and u0 > 0) or (y0 < 1 and v0 > 0) or (x1 > part.shape[1] - 2 and u0 + tile < w) or (
                        y1 > part.shape[0] - 2 and v0 + tile < h
                    ):
                        continue
                    found.append(_Box(to_orig.box(b.box), b.score))
        return [b for b in found if max(b.box[2] - b.box[0], b.box[3] - b.box[1]) >= self.options.min_face_size]

    def _run_blazeface(self, graph: Any, image: np.ndarray, to_orig: Affine) -> list[_Box]:
        """One BlazeFace graph on ``image``; boxes mapped through ``to_orig``, the too small ones dropped."""
        h, w = image.shape[:2]
        found: list[_Box] = []
        for det in graph.process(image).detections or []:
            rb = det.location_data.relative_bounding_box
            # Normalised coordinates span the pixel edges [0, W]: in pixel-centre coordinates x * W - 0.5.
            local = np.array(
                [rb.xmin * w - 0.5, rb.ymin * h - 0.5, (rb.xmin + rb.width) * w - 0.5, (rb.ymin + rb.height) * h - 0.5]
            )
            box = to_orig.box(local)
            if max(box[2] - box[0], box[3] - box[1]) >= self.options.min_face_size:
                found.append(_Box(box, float(det.score[0])))
        return found

    # -- stage 2: landmarks ------------------------------------------------------------------------------
    def _mesh_in_square(self, image: np.ndarray, cu: float, cv: float, side: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Face mesh on the square crop of ``side`` px around ``(cu, cv)``: ``(478, 2)`` and ``(478, 3)`` px of
        ``image`` for the face nearest the crop's centre, or None when face mesh finds none."""
        size = self.options.crop_size
        crop, to_orig = square_crop(image, cu, cv, side, size)
        result = self._mesh.process(crop)
        faces = result.multi_face_landmarks or []
        best: np.ndarray | None = None
        best_dist = np.inf
        for face in faces:
            pts = np.fromiter((c for p in face.landmark for c in (p.x, p.y, p.z)), np.float64).reshape(-1, 3)
            if pts.shape[0] != NUM_LANDMARKS:
                continue
            dist = float(np.hypot(*(pts[:, :2].mean(axis=0) - 0.5)))
            if dist < best_dist:
                best, best_dist = pts, dist
        if best is None or best_dist > 0.25:  # the nearest face is not the one we cropped around
            return None
        local = np.empty_like(best)
        local[:, 0] = best[:, 0] * size - 0.5
        local[:, 1] = best[:, 1] * size - 0.5
        local[:, 2] = best[:, 2] * size  # MediaPipe: z uses roughly the scale of x
        pts3 = to_orig.points(local)
        return pts3[:, :2].copy(), pts3

    def _mesh_for_box(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmarks of the face in ``box`` (px of ``image``), from a square crop ``crop_scale`` times its size."""
        side = self.options.crop_scale * max(box[2] - box[0], box[3] - box[1])
        cu, cv = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        return self._mesh_in_square(image, cu, cv, side)

    def _landmark_square(self, landmarks: np.ndarray) -> tuple[float, float, float]:
        """Centre and side of the crop that face mesh would see a face with these landmarks in."""
        lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
        centre = 0.5 * (lo + hi)
        # The mesh spans forehead to chin; BlazeFace boxes are ~0.8 of that, crops are crop_scale boxes.
        side = self.options.crop_scale * 0.8 * float(max(hi - lo))
        return float(centre[0]), float(centre[1]), side

    def _detection(self, box: np.ndarray, score: float, pts2: np.ndarray, pts3: np.ndarray, track_id: int | None) -> Detection:
        conf = np.full(NUM_LANDMARKS, min(max(score, 0.0), 1.0))
        return Detection(box=box, score=score, landmarks=pts2, landmarks_3d=pts3, confidence=conf,
                         scheme=self.scheme, track_id=track_id)


class MediaPipeDetector(_MediaPipeBase):
    """Faces and 478 landmarks in still images with MediaPipe (see the module docstring for how).

    Args:
        options: a :class:`MediaPipeOptions`; keyword arguments override single fields.

    Example:
        >>> with MediaPipeDetector(max_faces=4) as detector:     # doctest: +SKIP
        ...     faces = detector.detect(image)                   # largest first
        >>> faces[0].landmarks.shape                             # doctest: +SKIP
        (478, 2)
    """

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces of ``image``, largest box first.

        Args:
            image: ``(H, W, 3)`` uint8 RGB (EXIF rotation already applied).

        Returns:
            A list of :class:`Detection` with 478 landmarks in px of ``image``; ``[]`` when there is no face.
        """
        self._check_open()
        image = check_image(image)
        out: list[Detection] = []
        for cand in self._boxes(image):
            mesh = self._mesh_for_box(image, cand.box)
            if mesh is None:
                continue
            out.append(self._detection(cand.box, cand.score, *mesh, track_id=None))
        return _finish(out, self.options)


class MediaPipeVideoDetector(_MediaPipeBase):
    """Faces and 478 landmarks in the frames of a video, given in order, each face with a ``track_id``.

    Args:
        options: a :class:`MediaPipeOptions`; keyword arguments override single fields.

    Example:
        >>> with MediaPipeVideoDetector() as tracker:            # doctest: +SKIP
        ...     for frame in frames:
        ...         faces = tracker.detect(frame)
    """

    def __init__(self, options: MediaPipeOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks; the next frame starts a new video."""
        self._tracks: dict[int, Detection] = {}
        self._frame_index = 0
        self._next_id = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces of the next frame, largest box first, each with a ``track_id``.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB, the frame after the one given last (or the first).

        Returns:
            A list of :class:`Detection` (478 landmarks, px of ``frame``); ``[]`` when there is no face.
        """
        self._check_open()
        frame = check_image(frame)
        followed: list[Detection] = []
        for track_id, prev in self._tracks.items():
            mesh = self._mesh_in_square(frame, *self._landmark_square(prev.landmarks))
            if mesh is None:
                continue
            # The box moves with the landmarks (same offset from their bounding box as before).
            shift = mesh[0].min(axis=0) - prev.landmarks.min(axis=0)
            box = prev.box + np.tile(shift, 2)
            followed.append(self._detection(box, prev.score, *mesh, track_id=track_id))
        followed = _finish(followed, self.options)
        if not followed or self._frame_index % self.options.redetect_every == 0:
            for cand in self._boxes(frame):
                if any(box_iou(cand.box, _landmark_box(d.landmarks)) > 0.1 or box_iou(cand.box, d.box) > 0.1
                       for d in followed):
                    continue
                mesh = self._mesh_for_box(frame, cand.box)
                if mesh is None:
                    continue
                followed.append(self._detection(cand.box, cand.score, *mesh, track_id=self._next_id))
                self._next_id += 1
        out = _finish(followed, self.options)
        self._tracks = {d.track_id: d for d in out if d.track_id is not None}
        self._frame_index += 1
        return out


def _landmark_box(landmarks: np.ndarray) -> np.ndarray:
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return np.array([lo[0], lo[1], hi[0], hi[1]])


def _suppress(boxes: list[_Box], iou: float) -> list[_Box]:
    """Non-maximum suppression: best score first, dropping boxes that overlap a kept one by more than ``iou``."""
    kept: list[_Box] = []
    for cand in sorted(boxes, key=lambda b: -b.score):
        if all(box_iou(cand.box, k.box) <= iou for k in kept):
            kept.append(cand)
    return kept


def _finish(dets: list[Detection], options: MediaPipeOptions) -> list[Detection]:
    """Drop meshes of a face already meshed from another box, sort largest first, keep ``max_faces``."""
    kept: list[Detection] = []
    for det in sorted(dets, key=lambda d: -d.score):
        lb = _landmark_box(det.landmarks)
        if all(box_iou(lb, _landmark_box(k.landmarks)) <= options.merge_iou for k in kept):
            kept.append(det)
    kept.sort(key=lambda d: -d.area)
    return kept[: options.max_faces]

