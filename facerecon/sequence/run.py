"""Reconstruct a video: every face track one identity, its frames animated.

Video: a first pass decodes the frames and tracks the faces (:func:`.tracking.track_faces`); each track long
enough is fitted (:func:`.track_fit.fit_track`); with ``stages`` beyond landmarks a second pass reconstructs the
track's keyframes with the identity held (light, albedo, texture) and fuses their textures; a last pass estimates
each frame's light and draws ``overlay.mp4``. Files: ``OUT/track_<id>/`` per track (:func:`.person.write_person`)
and ``OUT/overlay.mp4``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facerecon.core.errors import EmptyVideoError, NoFaceError, VideoReadError
from facerecon.core.threads import compute_threads
from facerecon.core.timing import timed
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.io.atomic import atomic_directory
from facerecon.models.face_model import FaceModel
from facerecon.pipeline.options import ReconstructOptions
from facerecon.pipeline.run import Reconstructor, sized_camera
from facerecon.render.images import composite, display_light, to_uint8
from facerecon.render.sample import sample_image
from facerecon.render.scene import Scene, render_scene
from facerecon.render.sh import estimate_sh
from facerecon.sequence.person import (
    FusedTexture,
    PersonPose,
    PoseStart,
    fuse_textures,
    fusion_weight,
    nearest_detection,
    person_reconstructor,
    write_person,
)
from facerecon.sequence.track_fit import FrameFit, TrackFit, TrackFitConfig, fit_track
from facerecon.sequence.tracking import (
    FlowConfig,
    dense_fitter,
    landmark_selector,
    track_faces,
)
from facerecon.sequence.video import probe_video, read_ahead, read_frames
from facerecon.sequence.video_writer import VideoWriter
from facerecon.texture.atlas import export_layout

__all__ = ["TrackResult", "VideoOptions", "VideoResult", "reconstruct_video"]

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class VideoOptions:
    """Settings of a video's reconstruction.

    Attributes:
        fps: frames per second to take (None: every frame); start_s, end_s: the time window, seconds.
        stages: ``"landmarks"`` (tracking: identity, pose, expression; fastest) or ``"photometric"``/``"all"``
            (adds the keyframes' light, albedo and texture, each frame's light).
        overlay: write ``overlay.mp4``.
        min_track_frames: shorter tracks are reported and skipped (a face glimpsed for a few frames).
        track: the track fit's settings; flow: the optical flow's.
        photo: the photo pipeline's options for the keyframes (texture size, details...).
    """

    fps: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    stages: str = "all"
    overlay: bool = True
    min_track_frames: int = 5
    track: TrackFitConfig = field(default_factory=TrackFitConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    photo: ReconstructOptions = field(default_factory=lambda: ReconstructOptions(details=False, render_images=False))


@dataclass(frozen=True)
class TrackResult:
    """A written track: its id, folder, frames, keyframes (frame indices), median landmark error (px)."""

    track_id: int
    folder: Path
    frames: int
    keyframes: tuple[int, ...]
    landmark_error_px: float


@dataclass(frozen=True)
class VideoResult:
    """A video's reconstruction: frames read, its written tracks, the tracks skipped and frames that failed (each
    with a reason), and the seconds each phase took."""

    path: Path
    frames: int
    fps: float
    tracks: tuple[TrackResult, ...]
    skipped_tracks: tuple[tuple[int, str], ...]
    failed_frames: tuple[tuple[int, str], ...]
    seconds: dict[str, float]
    fits: tuple[TrackFit, ...] = ()


def _frame_vertices(model: FaceModel, identity: np.ndarray, frames: list[FrameFit] | tuple[FrameFit, ...],
                    submesh: str) -> torch.Tensor:  # fmt: skip
    """``(T, V, 3)`` camera-space vertices of ``frames``, mm."""
    ident = torch.as_tensor(identity, dtype=torch.float32)[None].expand(len(frames), -1)
    expr = torch.as_tensor(np.stack([f.expression for f in frames]), dtype=torch.float32)
    with torch.no_grad():
        verts = model(ident, expr, submesh=submesh)
    rot = torch.as_tensor(np.stack([f.rotation for f in frames]), dtype=torch.float32)
    trans = torch.as_tensor(np.stack([f.translation for f in frames]), dtype=torch.float32)
    return verts @ rot.transpose(1, 2) + trans[:, None]


def _frame_light(photo: torch.Tensor, camera: PerspectiveCamera, cam: torch.Tensor, triangles: torch.Tensor,
                 albedo: torch.Tensor) -> np.ndarray:  # fmt: skip
    """``(9, 3)`` SH light of one frame: least squares over the face's vertices that face the camera and lie in
    the frame, given the person's albedo ``(V, 3)``."""
    normals = vertex_normals(cam[None], triangles)[0]
    screen = camera.project_with_depth(cam[None])[0]
    facing = -(normals * torch.nn.functional.normalize(cam, dim=-1)).sum(-1)
    height, width = photo.shape[1:]
    inside = (screen[:, 0] >= 0) & (screen[:, 0] <= width - 1) & (screen[:, 1] >= 0) & (screen[:, 1] <= height - 1)
    weights = (facing.clamp(0, 1) * inside)[None]
    observed = sample_image(photo[None], screen[None, :, :2])
    return estimate_sh(normals[None], observed, albedo[None], weights, ridge=1e-3)[0].double().numpy()


def reconstruct_video(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: VideoOptions = VideoOptions(),
    *,
    model: FaceModel | None = None,
    detector=None,
    progress: ProgressCallback | None = None,
) -> VideoResult:
    """Reconstruct every face track of a video into ``output`` (see the module doc).

    Raises:
        VideoReadError, EmptyVideoError: the file cannot be decoded, or has no frames in the window.
        NoFaceError: no face was tracked for ``min_track_frames`` frames.
    """
    # Torch on the options' threads, as for a photo (the same bits on any machine, no oversubscription).
    with compute_threads(options.photo.torch_threads):
        return _reconstruct_video(path, output, options, model, detector, progress)


def _reconstruct_video(path, output, options: VideoOptions, model, detector, progress) -> VideoResult:
    from facerecon.detect.mediapipe_mesh import MediaPipeVideoDetector

    if model is None:
        from facerecon.pipeline.setup import load_model

        model = load_model()
    path, output = Path(path), Path(output)
    info = probe_video(path)
    fps = info.fps if options.fps is None else min(options.fps, info.fps)
    seconds: dict[str, float] = {}
    fitter = dense_fitter(model, options.photo)
    select = landmark_selector(fitter)

    notes: list[tuple[int, str]] = []  # frames lost to decoding (a truncated or corrupt file), and where

    def frames():
        """The window's frames; a file that stops decoding part-way gives the frames before (noted once)."""
        last = -1
        try:
            for frame in read_ahead(read_frames(path, fps=options.fps, start_s=options.start_s, end_s=options.end_s,
                                                on_warning=lambda text: _note(notes, last + 1, text))):  # fmt: skip
                last = int(frame.index)
                yield frame
        except EmptyVideoError:
            raise
        except VideoReadError as err:
            if last < 0:
                raise
            _note(notes, last + 1, f"decoding stopped, the frames after it are left out: {err}")

    expected = max(int(round(((options.end_s or info.duration_s) - (options.start_s or 0.0)) * fps)), 1)
    with timed(seconds, "track"):
        owned = detector is None
        video_detector = MediaPipeVideoDetector() if owned else detector
        try:
            tracked = track_faces(frames(), video_detector, select, flow=options.flow,
                                  progress=None if progress is None else (lambda n: progress("track", n, expected)))  # fmt: skip
        finally:
            if owned:
                video_detector.close()
    if tracked.frames == 0:
        raise EmptyVideoError(f"{path}: no frames in the chosen window")
    width, height = tracked.size
    camera = sized_camera(width, height, None, options.photo.default_focal_35mm)
    skipped: list[tuple[int, str]] = []
    fits: list[TrackFit] = []
    tracks = []
    # A video shorter than min_track_frames (a clip of a few frames) keeps the tracks that last all of it.
    min_frames = min(options.min_track_frames, tracked.frames)
    with timed(seconds, "fit"):
        for track in tracked.tracks:
            if len(track) < min_frames:
                skipped.append((track.track_id, f"seen in {len(track)} frames only (fewer than {min_frames})"))
                continue
            tracks.append(track)
            fits.append(fit_track(fitter, track, camera, options.track))
            if progress is not None:
                progress("fit", len(fits), len(tracked.tracks))
    if not fits:
        raise NoFaceError(f"{path}: no face in the video" if not tracked.tracks else
                          f"{path}: no face was followed for {min_frames} frames or more")  # fmt: skip
    photometric = options.stages in ("photometric", "all")
    # The keyframes' reconstructions with the identity held: light, albedo and textures to fuse.
    people: list[_Person] = []
    still = None
    try:
        with timed(seconds, "texture"):
            if photometric:
                from facerecon.detect import create_detector

                still = create_detector("mediapipe")
            keyframe_at: dict[int, list[tuple[int, int]]] = {}
            for k, (track, fit) in enumerate(zip(tracks, fits)):
                people.append(_Person(person_reconstructor(model, options.photo, fit.identity, still) if photometric else None))
                for position in fit.keyframes if photometric else ():
                    keyframe_at.setdefault(int(track.frame_indices[position]), []).append((k, position))
            if keyframe_at:
                for frame in frames():
                    for k, position in keyframe_at.get(int(frame.index), []):
                        _keyframe(people[k], frame.image, tracks[k], fits[k], position, camera, select)
            for person in people:
                if person.views:
                    albedos = [r.textures.albedo for r in person.views]
                    person.fused = fuse_textures([r.textures.texture for r in person.views], person.weights,
                                                 albedos if all(a is not None for a in albedos) else None)  # fmt: skip
                    person.albedo = torch.stack([torch.as_tensor(r.mesh.albedo, dtype=torch.float32)
                                                 for r in person.views]).mean(0)  # fmt: skip
        # Last pass: each frame's light and the overlay.
        with timed(seconds, "write"):
            lights = _last_pass(model, frames(), tracks, fits, people, camera, options, output, fps, (width, height),
                                progress, tracked.frames)  # fmt: skip
            results = []
            layout = export_layout(model, "head")
            for k, (track, fit) in enumerate(zip(tracks, fits)):
                person = people[k]
                fused = person.fused
                keyframe_indices = {int(track.frame_indices[p]) for p in fit.keyframes}
                poses = [
                    PersonPose(time_s=float(track.times_s[t]), rotation=f.rotation, translation=f.translation,
                               expression=f.expression, landmark_error_px=f.landmark_error_px,
                               sh=lights.get((k, t)),
                               extra={"frame": int(track.frame_indices[t]), "keyframe": int(track.frame_indices[t]) in keyframe_indices})
                    for t, f in enumerate(fit.frames)
                ]  # fmt: skip
                folder = output / f"track_{track.track_id}"
                about = {"video": str(path), "track_id": track.track_id, "fps": fps,
                         "keyframes": sorted(keyframe_indices), "stages": options.stages}  # fmt: skip
                with atomic_directory(folder) as scratch:  # a track's folder appears whole or not at all
                    write_person(scratch, model, layout, fit.identity, poses, None if fused is None else fused.texture,
                                 albedo=None if fused is None else fused.albedo, fps=fps, camera=camera,
                                 texture_size=options.photo.texture_size, info=about)  # fmt: skip
                errors = [f.landmark_error_px for f in fit.frames]
                results.append(TrackResult(track.track_id, folder, len(track), tuple(sorted(keyframe_indices)),
                                           float(np.median(errors))))  # fmt: skip
    finally:
        if still is not None:
            still.close()
    failed = tuple(sorted(set(tracked.failed) | set(notes)))
    return VideoResult(path, tracked.frames, fps, tuple(results), tuple(skipped), failed, seconds, tuple(fits))


def _note(notes: list[tuple[int, str]], index: int, text: str) -> None:
    """Record a problem at frame ``index`` once (each pass over the video meets it again)."""
    if (index, text) not in notes:
        notes.append((index, text))


@dataclass(eq=False)
class _Person:
    """A track's person while the video is reconstructed: with every stage, the reconstructor that fits the
    keyframes with the identity held (None with landmarks only), the keyframes' reconstructions and fusion weights,
    the fused texture and the mean per-vertex albedo ``(V_fit, 3)`` (None before the keyframes, or with landmarks
    only)."""

    rec: Reconstructor | None
    views: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    fused: FusedTexture | None = None
    albedo: torch.Tensor | None = None


def _keyframe(person: _Person, image: np.ndarray, track, fit: TrackFit, position: int, camera: PerspectiveCamera, select) -> None:
    """Reconstruct one keyframe with the person's identity held; keep it and how well it sees each texel."""
    rec = person.rec
    detections = rec.detector.detect(image)
    detection = nearest_detection(detections, track.landmarks[position], select)
    if detection is None:
        return
    frame = fit.frames[position]
    start = PoseStart(fit.identity, frame.expression, frame.rotation, frame.translation)
    try:
        reconstruction = rec.reconstruct_face(image, detection, name=f"frame_{int(track.frame_indices[position])}",
                                              init=start)  # fmt: skip
    except NoFaceError:
        return
    person.views.append(reconstruction)
    person.weights.append(fusion_weight(rec, image, reconstruction, frame.expression))


def _last_pass(model, frames, tracks, fits, people, camera, options, output, fps, size, progress, total) -> dict:
    """Each frame's light (SH per track and frame, when the person has an albedo) and ``overlay.mp4``."""
    lights: dict[tuple[int, int], np.ndarray] = {}
    want_light = any(p.albedo is not None for p in people)
    if not options.overlay and not want_light:
        return lights
    head = model.submesh("head")
    at_frame: dict[int, list[tuple[int, int]]] = {}
    for k, track in enumerate(tracks):
        for t, index in enumerate(track.frame_indices):
            at_frame.setdefault(int(index), []).append((k, t))
    cam_camera = camera.to(dtype=torch.float32)
    grey = torch.full((head.vertex_count, 3), 0.75)
    writer = VideoWriter(output / "overlay.mp4", fps, size) if options.overlay else None
    done = 0
    try:
        for frame in frames:
            photo = torch.from_numpy(frame.image).permute(2, 0, 1).float() / 255.0
            shown = photo[None]
            for k, t in at_frame.get(int(frame.index), []):
                fit = fits[k]
                cam = _frame_vertices(model, fit.identity, [fit.frames[t]], "head")[0]
                albedo = people[k].albedo
                if albedo is not None:
                    n = len(albedo)
                    sub = model.submesh(options.photo.photometric.fit_region)
                    lights[(k, t)] = _frame_light(photo, cam_camera, cam[:n], sub.triangles, albedo)
                if writer is not None:
                    shown = _draw_head(shown, cam, head.triangles, camera, grey)
            if writer is not None:
                writer.write(to_uint8(shown)[0])
            done += 1
            if progress is not None:
                progress("write", done, total)
        if writer is not None:
            writer.close()
            writer = None
    finally:
        if writer is not None:
            writer.__exit__(RuntimeError, RuntimeError("interrupted"), None)
    return lights


def _draw_head(image: torch.Tensor, cam: torch.Tensor, triangles: torch.Tensor, camera: PerspectiveCamera,
               albedo: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """``image (1, 3, H, W)`` with the head ``cam (V, 3)`` mm drawn over it, grey-shaded, rendered only in the
    head's box (a frame of a video costs the head's pixels, not the frame's)."""
    focal, cx, cy = camera.pinhole()
    height, width = image.shape[2:]
    uv = camera.to(dtype=cam.dtype).project(cam[None])[0]
    lo = torch.floor(uv.min(0).values).clamp(min=0).long()
    hi = torch.ceil(uv.max(0).values).long() + 1
    x0, y0 = int(lo[0]), int(lo[1])
    x1, y1 = min(int(hi[0]), width), min(int(hi[1]), height)
    if x1 - x0 < 2 or y1 - y0 < 2 or bool((cam[:, 2] <= 0).any()):
        return image
    crop = PerspectiveCamera.square(focal, (cx - x0, cy - y0), x1 - x0, y1 - y0, dtype=torch.float32)
    out = render_scene(Scene(cam[None], triangles, crop, albedo=albedo, sh=display_light(1), shading="vertex"))
    image = image.clone()
    image[:, :, y0:y1, x0:x1] = composite(out.image, out.coverage, image[:, :, y0:y1, x0:x1], opacity=0.7)
    return image
