"""Video mode against independent per-frame fits: jitter, landmark error, identity, lag and speed (issue 13).

Usage: python benchmarks/video.py [VIDEO ...] [--json FILE] [--full]

Default video: ``../shared/data/video/obama.mp4``. For each video, in one run:

1. Decode and track every frame (``sequence.tracking.track_faces``: MediaPipe's video detector and the DIS flow),
   keeping each frame's detection.
2. **Per-frame fits**: every frame of the longest track fitted alone, as a photo is (the landmark stage on MediaPipe's
   478 points from a PnP start, identity included).
3. **Video mode**: ``sequence.track_fit.fit_track`` with its defaults (identity over keyframes, frames with the flow
   term, the smoother), and its variants without the smoother and without the flow term.

Figures (``eval.temporal``):
- jitter: the mean frame-to-frame acceleration (px/frame^2) of the model's 68 iBUG landmarks (fixed vertices)
  projected in every frame; MediaPipe's own 68 points (its 478 mapped) for reference;
- landmark error: the median distance (px) of the fit's 68 points (jaw slid, as ``params.json`` reports) to the
  detected 68, averaged over frames;
- identity spread: each identity coefficient's standard deviation over the frames, averaged (one identity per
  track: 0 by construction), and the distance between the identities fitted to the track's first and second halves
  against the per-frame fits' mean distance between frames of the two halves;
- lag: the shift (frames) maximising the cross-correlation of the head's yaw and of jawOpen between video mode
  and the per-frame fits (a smoother that lags behind the motion shows a positive lag);
- speed: tracking mode (decode + detect + flow + fit, no files) in frames/s; with ``--full`` also the whole
  ``facerecon reconstruct VIDEO`` job (keyframe textures, per-frame light, overlay.mp4, files) in frames/s.

Targets: jitter <= 0.5x the per-frame fits' with the landmark error within +10 %; identity spread <= 0.25x;
tracking mode >= 25 frames/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facerecon.detect.mediapipe_mesh import MediaPipeVideoDetector
from facerecon.eval.temporal import identity_spread, lag_frames, landmark_acceleration
from facerecon.fit.landmarks import LandmarkFitter, ibug68_targets, mediapipe478_targets
from facerecon.geometry.rotation import camera_rotation_to_head_angles
from facerecon.pipeline.run import sized_camera
from facerecon.pipeline.setup import load_model
from facerecon.sequence.run import VideoOptions, reconstruct_video
from facerecon.sequence.track_fit import TrackFitConfig, TrackLandmarks, fit_track
from facerecon.sequence.tracking import track_faces
from facerecon.sequence.video import read_ahead, read_frames

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared/data/video/obama.mp4"


def model_points68(model, identities: np.ndarray, frames) -> np.ndarray:
    """``(T, 68, 3)`` camera-space positions of the model's 68 iBUG vertices in each frame."""
    scheme = model.landmarks("ibug68")
    with torch.no_grad():
        verts = model(torch.as_tensor(identities, dtype=torch.float32),
                      torch.as_tensor(np.stack([f.expression for f in frames]), dtype=torch.float32))
    points = scheme.points(verts).double().numpy()
    rotations = np.stack([f.rotation for f in frames])
    translations = np.stack([f.translation for f in frames])
    return np.einsum("tij,tnj->tni", rotations, points) + translations[:, None]


def project(points: np.ndarray, camera) -> np.ndarray:
    focal, cx, cy = camera.pinhole()
    return np.stack([focal * points[..., 0] / points[..., 2] + cx, focal * points[..., 1] / points[..., 2] + cy], -1)


def error68(projector: LandmarkFitter, identity: np.ndarray, frame, detected68: np.ndarray, camera) -> float:
    fitted = projector.project(detected68, identity=identity, expression=frame.expression, rotation=frame.rotation,
                               translation=frame.translation, camera=camera)  # fmt: skip
    return float(np.median(np.linalg.norm(fitted - detected68, axis=1)))


def yaw_series(frames) -> np.ndarray:
    return np.array([float(camera_rotation_to_head_angles(torch.as_tensor(f.rotation))[1]) for f in frames])


def measure(path: Path, model, full: bool) -> dict:
    fitter = LandmarkFitter(model, mediapipe478_targets(model))
    projector = LandmarkFitter(model, ibug68_targets(model))
    detections: dict[tuple[int, int], np.ndarray] = {}

    def select(det):
        detections[(int(det.track_id), len(detections))] = det.to_ibug68()
        return fitter.targets.select(det.landmarks), np.clip(fitter.targets.select(det.confidence[:, None])[:, 0], 0, 1)

    start = time.perf_counter()
    with MediaPipeVideoDetector() as detector:
        startup_s = time.perf_counter() - start  # MediaPipe's graphs, once per run (like the face model's loading)
        start = time.perf_counter()
        tracked = track_faces(read_ahead(read_frames(path)), detector, select)
        track_s = time.perf_counter() - start
    track: TrackLandmarks = max(tracked.tracks, key=len)
    detected68 = np.stack([v for (tid, _), v in sorted(detections.items(), key=lambda kv: kv[0][1]) if tid == track.track_id])
    width, height = tracked.size
    camera = sized_camera(width, height)
    T = len(track)

    start = time.perf_counter()
    video = fit_track(fitter, track, camera)
    fit_s = time.perf_counter() - start
    variants = {
        "video mode": video,
        "  no smoother": fit_track(fitter, track, camera, TrackFitConfig(smoothness=0.0)),
        "  no flow term": fit_track(fitter, track, camera, TrackFitConfig(flow_weight=0.0)),
    }
    per_frame = [fitter.fit(track.landmarks[t], camera=camera, confidence=track.confidence[t]) for t in range(T)]
    per_frame_ids = np.stack([f.identity for f in per_frame])

    rows = {}
    base_jitter = landmark_acceleration(project(model_points68(model, per_frame_ids, per_frame), camera))
    base_error = float(np.mean([error68(projector, f.identity, f, detected68[t], camera) for t, f in enumerate(per_frame)]))
    rows["per-frame fits"] = (base_jitter, base_error, identity_spread(per_frame_ids))
    for name, fit in variants.items():
        ids = np.repeat(fit.identity[None], T, 0)
        jitter = landmark_acceleration(project(model_points68(model, ids, fit.frames), camera))
        error = float(np.mean([error68(projector, fit.identity, f, detected68[t], camera) for t, f in enumerate(fit.frames)]))
        rows[name] = (jitter, error, identity_spread(ids))
    raw_jitter = landmark_acceleration(detected68)

    half = T // 2
    first = fit_track(fitter, _part(track, 0, half), camera)
    second = fit_track(fitter, _part(track, half, T), camera)
    halves = float(np.linalg.norm(first.identity - second.identity))
    pairs = range(T - half - (T % 2))
    per_frame_halves = float(np.mean([np.linalg.norm(per_frame_ids[i] - per_frame_ids[half + i]) for i in pairs]))
    # Relative to the identities' size (the per-frame fits' identities are shrunk towards the mean face far more
    # than one fitted to 8 views, so their distances alone do not compare).
    halves_rel = halves / (0.5 * (np.linalg.norm(first.identity) + np.linalg.norm(second.identity)))
    per_frame_rel = float(np.mean([np.linalg.norm(per_frame_ids[i] - per_frame_ids[half + i])
                                   / (0.5 * (np.linalg.norm(per_frame_ids[i]) + np.linalg.norm(per_frame_ids[half + i])))
                                   for i in pairs]))  # fmt: skip
    lags = {name: lag_frames(yaw_series(per_frame), yaw_series(fit.frames)) for name, fit in variants.items()}
    lag_yaw = lags["video mode"]
    jaw = model.expression_index("jawOpen")
    lag_jaw = lag_frames(np.array([f.expression[jaw] for f in per_frame]), np.array([f.expression[jaw] for f in video.frames]))
    tracking_fps = T / (track_s + fit_s)

    print(f"\n## {path.name}: {tracked.frames} frames ({width}x{height}), longest track {T} frames, "
          f"{len(tracked.tracks)} track(s)\n")
    print("| fit | jitter (px/frame^2) | vs per-frame | landmark error 68 (px) | vs per-frame | identity spread |")
    print("|---|---|---|---|---|---|")
    print(f"| MediaPipe's 68 points | {raw_jitter:.3f} | {raw_jitter / base_jitter:.3f} | - | - | - |")
    for name, (jitter, error, spread) in rows.items():
        print(f"| {name} | {jitter:.3f} | {jitter / base_jitter:.3f} | {error:.3f} | {error / base_error:.3f} | {spread:.4f} |")
    print(f"\nidentity of the first half against the second half: distance {halves:.3f}, {halves_rel:.3f} of its length "
          f"(per-frame fits, frame t against frame t + {half}: {per_frame_halves:.3f}, {per_frame_rel:.3f} of their length)")
    print(f"lag of video mode behind the per-frame fits: yaw {lag_yaw:+.2f} frames, jawOpen {lag_jaw:+.2f} frames "
          f"(yaw without the smoother {lags['  no smoother']:+.2f}, without the flow term {lags['  no flow term']:+.2f}; "
          f"the yaw spans {np.degrees(np.ptp(yaw_series(per_frame))):.1f} degrees: a lag means little where the motion "
          "is not well above the fits' noise)")
    print(f"tracking mode: {tracking_fps:.1f} frames/s (decode + detect + flow {1000 * track_s / T:.1f} ms/frame, "
          f"fit {1000 * fit_s / T:.1f} ms/frame; MediaPipe's start-up {startup_s:.2f} s once per run, not counted)")
    out = {"video": str(path), "frames": T, "rows": rows, "mediapipe_jitter": raw_jitter, "identity_halves": halves,
           "per_frame_halves": per_frame_halves, "identity_halves_relative": halves_rel, "per_frame_halves_relative": per_frame_rel, "lag_yaw_frames": lag_yaw, "lag_jaw_frames": lag_jaw,
           "tracking_fps": tracking_fps, "detector_startup_s": startup_s}  # fmt: skip
    if full:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            result = reconstruct_video(path, Path(folder) / path.stem, VideoOptions(), model=model)
            seconds = time.perf_counter() - start
        out["full_fps"] = result.frames / seconds
        print(f"full quality (keyframe textures, per-frame light, overlay.mp4, files): {out['full_fps']:.2f} frames/s "
              f"({ {k: round(v / 1000, 1) for k, v in result.seconds.items()} } s)")
    return out


def _part(track: TrackLandmarks, a: int, b: int) -> TrackLandmarks:
    return TrackLandmarks(track.track_id, track.frame_indices[a:b], track.times_s[a:b], track.landmarks[a:b],
                          track.confidence[a:b], track.flow[a:b])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", type=Path, default=[DEFAULT_VIDEO])
    parser.add_argument("--full", action="store_true", help="also time the whole job (textures, light, overlay, files)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = load_model()
    results = [measure(path, model, args.full) for path in args.videos]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
