"""The video and photo-set parts of ``facerecon reconstruct``: their options, progress bars, reports and exit codes
(the work is :mod:`facerecon.sequence.run`'s)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerecon.cli.exit_codes import ExitCode, exit_code_for

VIDEO_HELP = (
    "videos (mp4, mov, avi, webm, mkv, m4v) given as inputs: every face tracked over time, one identity per track, "
    "each frame's pose, expression (and light), written to OUT/<video>/track_<id>/ (face.glb animated, "
    "animation.csv in Live Link Face's layout, params.jsonl, person.json, texture.png, albedo.png) and "
    "OUT/<video>/overlay.mp4"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of videos and photo sets."""
    group = parser.add_argument_group("videos and photo sets", VIDEO_HELP)
    group.add_argument("--fps", type=float, default=None, metavar="F",
                       help="videos: take F frames per second (default: every frame)")
    group.add_argument("--end", dest="end_s", type=_time, default=None, metavar="TIME",
                       help="videos: stop at this time (seconds or [HH:]MM:SS[.s]); --start TIME starts later")
    group.add_argument("--same-person", action="store_true",
                       help="the photos show one person: fit one identity to all of them (each photo's pose, expression "
                            "and light its own), fuse one texture from all views; OUT/ gets face.glb, params.jsonl "
                            "(a line per photo), person.json, texture.png, albedo.png, and each photo's own folder")


def _time(text: str) -> float:
    """A time of a video: seconds (``12.5``) or ``[HH:]MM:SS[.s]``."""
    try:
        parts = [float(part) for part in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS, got {text!r}") from None
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts) or any(p >= 60 for p in parts[1:]):
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS, got {text!r}")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60.0 + part
    return seconds


def start_value(fit_starts: tuple[str, ...]):
    """``--start``'s type: a fit start's name (kept as the string) or a video's start time (a float, seconds)."""

    def parse(text: str) -> str | float:
        if text in fit_starts:
            return text
        try:
            return _time(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(fit_starts)} or a time, got {text!r}") from None

    return parse


def run_videos(args: argparse.Namespace, videos: list[str]) -> list[ExitCode]:
    """Reconstruct each video into ``OUT/<stem>/``; a failed video is reported in one line and the rest go on.
    Returns one exit code per video: OK for a video whose tracks were written, PARTIAL when frames were lost (each
    reported), the error's code for a video that failed."""
    from tqdm import tqdm

    from facerecon.core.errors import FaceReconError
    from facerecon.pipeline.options import ReconstructOptions
    from facerecon.pipeline.setup import load_model
    from facerecon.sequence.run import VideoOptions, reconstruct_video

    if args.fps is not None and args.fps <= 0:
        print(f"facerecon reconstruct: error: --fps: expected a positive number, got {args.fps}", file=sys.stderr)
        return [ExitCode.USAGE]
    if args.start_s is not None and args.end_s is not None and args.end_s <= args.start_s:
        print("facerecon reconstruct: error: --end must be after --start", file=sys.stderr)
        return [ExitCode.USAGE]
    model = load_model()
    stages = "landmarks" if args.stages == "landmarks" else "all"
    options = VideoOptions(
        fps=args.fps, start_s=args.start_s, end_s=args.end_s, stages=stages, overlay=not args.no_images,
        photo=ReconstructOptions(stages=args.stages, details=False, render_images=False,
                                 texture_completion=not getattr(args, "no_completion", False)),
    )  # fmt: skip
    codes: list[ExitCode] = []
    for video in videos:
        bars: dict[str, tqdm] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if args.quiet:
                return
            label = {"track": "tracking", "fit": "fitting tracks", "write": "writing"}[phase]
            bar = bars.get(phase)
            if bar is None:
                for other in bars.values():  # one bar at a time: the phases follow each other
                    other.close()
                unit = "track" if phase == "fit" else "frame"
                bar = bars[phase] = tqdm(total=total, desc=f"{Path(video).name}: {label}", unit=unit, file=sys.stderr,
                                         leave=False)  # fmt: skip
            bar.total = max(bar.total or 0, total, done)
            bar.update(done - bar.n)

        try:
            result = reconstruct_video(video, args.output / Path(video).stem, options, model=model, progress=progress)
        except FaceReconError as err:
            print(f"facerecon: {err}", file=sys.stderr)
            codes.append(exit_code_for(err))
            continue
        finally:
            for bar in bars.values():
                bar.close()
        for track_id, reason in result.skipped_tracks:
            print(f"facerecon: {video}: track {track_id} skipped: {reason}", file=sys.stderr)
        for index, reason in result.failed_frames:
            print(f"facerecon: {video}: frame {index}: {reason}", file=sys.stderr)
        if not args.quiet:
            rate = result.frames / max(sum(result.seconds.values()) / 1000.0, 1e-9)
            print(f"| {video} | {result.frames} frames at {result.fps:g} fps | {rate:.1f} frames/s |")
            print("| track | frames | keyframes | landmark error (px) | folder |")
            print("|---|---|---|---|---|")
            for track in result.tracks:
                print(f"| {track.track_id} | {track.frames} | {len(track.keyframes)} | {track.landmark_error_px:.2f} | "
                      f"{track.folder} |")  # fmt: skip
        # Frames lost (undecodable, or the detector failed on them): the rest is written, the run says so.
        codes.append(ExitCode.PARTIAL if result.failed_frames else ExitCode.OK)
    return codes


def run_photo_set(args: argparse.Namespace, outputs: tuple[str, ...], options) -> ExitCode:
    """Reconstruct the photos of ``args.images`` as one person into ``OUT/``."""
    from facerecon.pipeline.inputs import collect_inputs
    from facerecon.sequence.photo_set import reconstruct_photo_set

    items = collect_inputs(args.images, exclude=args.output)
    if not items:
        print(f"facerecon reconstruct: error: no photos in {' '.join(args.images)}", file=sys.stderr)
        return ExitCode.USAGE

    def skipped(path: Path, reason: str) -> None:
        print(f"facerecon: {reason if str(path) in reason else f'{path}: {reason}'} (left out of the set)", file=sys.stderr)

    result = reconstruct_photo_set([item.path for item in items], args.output, options, outputs=outputs,
                                   names=[item.name for item in items], on_skip=skipped)  # fmt: skip
    if not args.quiet:
        print(f"| one person in {len(result.photos)} photos | {len(result.skipped)} left out | {result.folder} |")
    return ExitCode.OK if not result.skipped else ExitCode.PARTIAL
