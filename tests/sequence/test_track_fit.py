"""A track's fit: keyframes, the smoother (no lag, less jitter) and the whole track on a clip with known motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.eval.temporal import identity_spread, lag_frames, landmark_acceleration
from facerecon.fit.landmarks import LandmarkFit
from facerecon.geometry.rotation import head_angles_to_camera_rotation
from facerecon.sequence.track_fit import TrackFitConfig, choose_keyframes, smooth_track

K_EXP = 53


def _fit(yaw: float, x: float, jaw: float, information: float = 50.0) -> LandmarkFit:
    rotation = head_angles_to_camera_rotation(torch.tensor([0.0, yaw, 0.0], dtype=torch.float64)).numpy()
    expression = np.zeros(K_EXP)
    expression[0] = jaw
    return LandmarkFit(identity=np.zeros(100), expression=expression, rotation=rotation,
                       translation=np.array([x, 0.0, 600.0]), focal=1000.0, vertex_indices=np.zeros(1, np.int64),
                       projected=np.zeros((1, 2)), residual_px=np.zeros(1), iterations=1,
                       normal_matrix=np.eye(6 + K_EXP) * information)  # fmt: skip


def _yaws(frames) -> np.ndarray:
    from facerecon.geometry.rotation import camera_rotation_to_head_angles

    return np.array([float(camera_rotation_to_head_angles(torch.as_tensor(f.rotation))[1]) for f in frames])


def test_constant_velocity_passes_the_smoother_unchanged() -> None:
    t = np.arange(30)
    fits = [_fit(0.01 * k - 0.15, 2.0 * k, 0.3 + 0.01 * k) for k in t]
    smoothed = smooth_track(fits, smoothness=500.0)
    assert np.allclose(_yaws(smoothed), _yaws(fits), atol=1e-6)
    assert np.allclose([f.translation[0] for f in smoothed], 2.0 * t, atol=1e-6)
    assert np.allclose([f.expression[0] for f in smoothed], 0.3 + 0.01 * t, atol=1e-6)


def test_smoother_removes_jitter_without_lag() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(120)
    truth_yaw = 0.35 * np.sin(2 * np.pi * t / 40.0)
    truth_x = 30.0 * np.sin(2 * np.pi * t / 55.0)
    fits = [_fit(y + rng.normal(0, 0.02), x + rng.normal(0, 1.5), 0.3 + rng.normal(0, 0.05)) for y, x in zip(truth_yaw, truth_x)]
    smoothed = smooth_track(fits, smoothness=200.0, robust=1.5)
    raw_yaw, yaw = _yaws(fits), _yaws(smoothed)
    assert np.abs(yaw - truth_yaw).mean() < 0.6 * np.abs(raw_yaw - truth_yaw).mean()
    acceleration = lambda v: np.abs(np.diff(v, 2)).mean()  # noqa: E731
    assert acceleration(yaw) < 0.3 * acceleration(raw_yaw)
    assert abs(lag_frames(truth_yaw, yaw)) < 0.25
    x = np.array([f.translation[0] for f in smoothed])
    assert abs(lag_frames(truth_x, x)) < 0.25
    jaw, raw_jaw = (np.array([f.expression[0] for f in fs]) for fs in (smoothed, fits))
    assert acceleration(jaw) < 0.9 * acceleration(raw_jaw) and (jaw >= 0).all()


def test_well_determined_frames_move_less() -> None:
    rng = np.random.default_rng(5)
    noisy = [_fit(rng.normal(0, 0.05), 0.0, 0.3, information=50.0) for _ in range(20)]
    certain = [_fit(f.rotation[0, 0] * 0.0 + rng.normal(0, 0.05), 0.0, 0.3, information=5e5) for f in noisy]
    moved = lambda fits: np.abs(_yaws(smooth_track(fits, 200.0)) - _yaws(fits)).mean()  # noqa: E731
    assert moved(certain) < 0.1 * moved(noisy)


def test_smoother_needs_a_known_person() -> None:
    fits = [_fit(0.0, 0.0, 0.0) for _ in range(5)]
    bigger = [LandmarkFit(**{**f.__dict__, "normal_matrix": np.eye(6 + 100 + K_EXP)}) for f in fits]
    with pytest.raises(ValueError, match="known person"):
        smooth_track(bigger, 10.0)


def test_keyframes_spread_over_pose() -> None:
    yaws = [0.0, 0.02, 0.5, 0.51, -0.5, 0.03, 0.25, -0.26]
    fits = [_fit(y, 0.0, 0.0) for y in yaws]
    chosen = choose_keyframes(fits, 3, mouth_index=0)
    assert chosen == sorted(chosen) and len(chosen) == 3
    assert {round(yaws[i], 1) for i in chosen} == {0.0, 0.5, -0.5}
    assert choose_keyframes(fits[:2], 3) == [0, 1]


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="keyframes"):
        TrackFitConfig(keyframes=0)
    with pytest.raises(ValueError, match="smoothness"):
        TrackFitConfig(smoothness=-1.0)


@pytest.mark.slow
def test_known_motion_is_followed_without_lag(moving_photo_clip, sequence_model) -> None:
    """A still portrait slid by a known offset: the fitted face follows it with no lag, less jitter than frames
    fitted alone, and one identity."""
    from facerecon.detect.mediapipe_mesh import MediaPipeVideoDetector
    from facerecon.fit.landmarks import LandmarkFitter, mediapipe478_targets
    from facerecon.pipeline.run import sized_camera
    from facerecon.sequence.track_fit import fit_track
    from facerecon.sequence.tracking import track_faces
    from facerecon.sequence.video import read_frames

    from .conftest import moving_offset

    model = sequence_model
    fitter = LandmarkFitter(model, mediapipe478_targets(model))

    def select(det):
        return fitter.targets.select(det.landmarks), np.ones(len(fitter.targets.vertex_indices))

    with MediaPipeVideoDetector() as detector:
        tracked = track_faces(read_frames(moving_photo_clip.path), detector, select)
    assert len(tracked.tracks) == 1 and len(tracked.tracks[0]) == 50
    track = tracked.tracks[0]
    assert np.isnan(track.flow[0]).all() and np.isfinite(track.flow[1:]).all()
    # The flow measured the known motion to a fraction of a pixel.
    known = np.diff(moving_offset(np.arange(50)), axis=0)  # (49, 2)
    assert np.abs(np.median(track.flow[1:], axis=1) - known).mean() < 0.3
    camera = sized_camera(480, 480)
    video = fit_track(fitter, track, camera)
    alone = [fitter.fit(track.landmarks[t], camera=camera) for t in range(50)]

    def centre(frames, identities) -> np.ndarray:  # (T, 2) px: the projected 68 model points' centre
        scheme = model.landmarks("ibug68")
        with torch.no_grad():
            verts = model(torch.as_tensor(np.asarray(identities), dtype=torch.float32),
                          torch.as_tensor(np.stack([f.expression for f in frames]), dtype=torch.float32))
        points = scheme.points(verts).double().numpy()
        cam = np.einsum("tij,tnj->tni", np.stack([f.rotation for f in frames]), points) + np.stack([f.translation for f in frames])[:, None]
        focal, cx, cy = camera.pinhole()
        return np.stack([focal * cam[..., 0] / cam[..., 2] + cx, focal * cam[..., 1] / cam[..., 2] + cy], -1)

    video_points = centre(video.frames, [video.identity] * 50)
    alone_points = centre(alone, [f.identity for f in alone])
    truth = moving_offset(np.arange(50))
    video_motion = video_points.mean(1) - video_points.mean(1).mean(0)
    assert abs(lag_frames(truth[:, 0], video_motion[:, 0])) < 0.3
    assert abs(lag_frames(truth[:, 1], video_motion[:, 1])) < 0.3
    assert np.abs(video_motion - (truth - truth.mean(0))).mean() < 1.5  # px, of a 48 px swing
    # The face is still in the photo: any acceleration left once the known slide is taken out is jitter.
    jitter = landmark_acceleration(video_points - truth[:, None])
    assert jitter < 0.5 * landmark_acceleration(alone_points - truth[:, None]), jitter
    assert identity_spread(np.stack([f.identity for f in alone])) > 0
    assert len(video.keyframes) == 8 and len(set(video.keyframes)) == 8
    # Identity constancy: the two halves of the clip (one face) give about the same identity, closer than frames
    # fitted alone are to each other.
    from facerecon.sequence.track_fit import TrackLandmarks

    def part(a: int, b: int) -> TrackLandmarks:
        return TrackLandmarks(track.track_id, track.frame_indices[a:b], track.times_s[a:b], track.landmarks[a:b],
                              track.confidence[a:b], track.flow[a:b])  # fmt: skip

    first, second = fit_track(fitter, part(0, 25), camera).identity, fit_track(fitter, part(25, 50), camera).identity
    relative = lambda a, b: np.linalg.norm(a - b) / (0.5 * (np.linalg.norm(a) + np.linalg.norm(b)))  # noqa: E731
    alone_ids = [f.identity for f in alone]
    alone_relative = np.mean([relative(alone_ids[t], alone_ids[t + 25]) for t in range(25)])
    assert relative(first, second) < 0.7 * alone_relative, (relative(first, second), alone_relative)  # 0.047 vs 0.099 here


def test_long_tracks_are_smoothed_in_windows(monkeypatch) -> None:
    import facerecon.sequence.track_fit as track_fit

    rng = np.random.default_rng(11)
    t = np.arange(130)
    fits = [_fit(0.3 * np.sin(k / 9.0) + rng.normal(0, 0.02), 20 * np.sin(k / 13.0) + rng.normal(0, 1.0), 0.3) for k in t]
    whole = smooth_track(fits, 200.0)
    monkeypatch.setattr(track_fit, "SMOOTHING_WINDOW", 60)
    monkeypatch.setattr(track_fit, "SMOOTHING_OVERLAP", 15)
    windowed = smooth_track(fits, 200.0)
    assert len(windowed) == len(fits)
    # The windows' seams do not show: the same result as one solve, to a small fraction of the noise.
    assert np.abs(_yaws(windowed) - _yaws(whole)).max() < 0.002
    assert max(abs(a.translation[0] - b.translation[0]) for a, b in zip(windowed, whole)) < 0.1
