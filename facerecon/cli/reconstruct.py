"""``facerecon reconstruct INPUT... -o OUT``: photos to textured, posed 3D faces.

Inputs are photo files, folders (walked recursively for image files) and lists of paths (``@list.txt``, one per
line). For each photo and each face: ``OUT/<name>/<face-index>/`` (``name``: the file's stem, or its path under a
folder given as input, without the extension) with the outputs of ``--outputs`` (default: glb,
obj, ply, params, albedo, details, pictures): face.glb, mesh.obj (+ .mtl, texture.png), mesh.ply, params.json,
albedo.png (unless --no-completion), displacement.png + normal_map.png + mesh_detailed.glb (unless --no-details),
overlay.png, landmarks.png, depth.png, normals.png; on request ``depth`` (depth.npy) and ``details-obj``
(mesh_detailed.obj); ``all`` is every one. params.json is always written, last.

The run is recorded in ``OUT/manifest.jsonl`` (a line per input: status ok, failed or skipped, reason, output
folder, seconds) and ``OUT/summary.json``; running the same command again skips the photos already done (and those
that failed, unless ``--retry-failed``), so an interrupted or crashed run resumes. ``--workers N`` runs photos in N
processes; ``--engine ray`` runs them as Ray tasks on a local instance or, with ``--address``, on a cluster.

Videos among the inputs (mp4, mov, avi, webm, mkv, m4v) are reconstructed one after another into ``OUT/<stem>/``:
every face tracked, one identity per track, each frame's pose and expression (and light), ``track_<id>/`` with an
animated ``face.glb``, ``animation.csv`` (Live Link Face columns), ``params.jsonl``, ``person.json``, ``texture.png``
and ``albedo.png``, and ``overlay.mp4``; ``--fps``, ``--start TIME``, ``--end TIME`` choose the frames.
``--same-person`` takes the photos as one person (one identity, a fused texture; see :mod:`facerecon.cli.sequence`).

Exit code: 0 when every image gave at least one face; when no image did and every failure has the same
cause, that cause's code (IMAGE_READ, NO_FACE, VIDEO_READ, VIDEO_EMPTY); otherwise PARTIAL. Every failed image or skipped face is
reported on its own line and the batch goes on. Ctrl-C stops the run (exit 130) with the manifest consistent.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from facerecon.cli.exit_codes import ExitCode, batch_exit_code, exit_code_for_type


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconstruct",
        help="reconstruct 3D faces from photos",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("images", nargs="+", metavar="INPUT",
                        help="photo files (JPEG, PNG, WebP, BMP, TIFF), folders of photos (recursively), @LIST "
                             "(a text file of paths, one per line, relative to its folder) or video files")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    from facerecon.estimate.registry import FIT_STARTS, available_estimators, estimator_info

    methods = available_estimators()
    parser.add_argument("--method", choices=methods, default="fit",
                        help="how the face's parameters are found (default: %(default)s; "
                             + "; ".join(f"{m}: {estimator_info(m).description}" for m in methods) + ")")
    from facerecon.cli.sequence import start_value

    parser.add_argument("--start", type=start_value(FIT_STARTS), default=None, metavar="{" + ",".join(FIT_STARTS) + "}|TIME",
                        help="--method fit: start the fit from a PnP pose, from the regressor, or from the regressor "
                             "where it sees a yaw of 55 degrees or more (auto, the default); videos: a TIME (seconds or "
                             "[HH:]MM:SS[.s]) to start at")
    parser.add_argument("--fit-start", choices=FIT_STARTS, default=None, help="the fit's start (as --start NAME)")
    parser.add_argument("--weights", metavar="NAME|FILE", default=None,
                        help="--method regress or posmap: the network's weights, a shipped name (facerecon.nets.weights."
                             "SHIPPED_WEIGHTS) or a .safetensors file from `facerecon train` (default: the shipped ones)")
    parser.add_argument("--stages", choices=("landmarks", "photometric", "all"), default="all",
                        help="landmarks only, + photometric refinement, or + albedo refinement (default)")
    parser.add_argument("--faces", choices=("all", "largest"), default="all", help="which faces of each photo")
    parser.add_argument("--no-images", action="store_true", help="skip overlay/landmarks/depth/normals pictures")
    parser.add_argument("--no-completion", action="store_true",
                        help="no mirror completion / de-lighting: photo blended with the fitted colour, no albedo.png")
    parser.add_argument("--no-details", action="store_true",
                        help="no displacement map, normal map or detailed mesh")
    from facerecon.pipeline.outputs import DEFAULT_OUTPUTS, OUTPUTS

    parser.add_argument("--outputs", default=",".join(DEFAULT_OUTPUTS), metavar="LIST",
                        help="comma-separated outputs to write, of " + ", ".join(OUTPUTS)
                             + "; or all (default: %(default)s; params is always written)")
    parser.add_argument("--workers", default="auto", metavar="N",
                        help="worker processes, each with its own model (default auto: one per core for 4 photos or "
                             "more, else 1, which runs in this process); with --engine ray and no --address, the CPUs "
                             "of the local Ray instance")
    from facerecon.pipeline.collection import ENGINES

    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local worker processes (default) or Ray tasks (pip install \"facerecon[ray]\")")
    parser.add_argument("--address", default=None, metavar="auto|ray://HOST:PORT",
                        help="--engine ray: the cluster to run on (auto: the one this machine joined with `ray start`; "
                             "default: a local instance started for this run); OUT must be a path every node sees")
    parser.add_argument("--retry-failed", action="store_true",
                        help="also retry the photos an earlier run into OUT failed on (done ones are always skipped)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    from facerecon.cli.sequence import add_arguments

    add_arguments(parser)
    parser.set_defaults(func=run)


#: Above this many rows the summary shows only the failures and a count (a collection's every photo is in its
#: manifest).
TABLE_ROWS = 100


def _workers(value: object, photos: int) -> int | None:
    """``--workers``: a positive int, or ``auto`` (one per usable core from 4 photos on: below that the workers'
    start-up, ~5 s each, costs more than they save); None when invalid."""
    if value == "auto":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return cores if photos >= 4 else 1
    try:
        count = int(str(value))
    except ValueError:
        return None
    return count if count >= 1 else None


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facerecon.pipeline.collection import plan_collection, run_collection
    from facerecon.pipeline.manifest import MANIFEST
    from facerecon.pipeline.outputs import DEFAULT_OUTPUTS, parse_outputs
    from facerecon.pipeline.options import ReconstructOptions

    try:
        outputs = parse_outputs(getattr(args, "outputs", ",".join(DEFAULT_OUTPUTS)))
    except ValueError as err:
        print(f"facerecon reconstruct: error: --{err}", file=sys.stderr)
        return ExitCode.USAGE
    method = getattr(args, "method", "fit")
    start = getattr(args, "fit_start", None) or (args.start if isinstance(getattr(args, "start", None), str) else "auto")
    args.start_s = args.start if isinstance(getattr(args, "start", None), float) else None
    if start not in ("auto", "pnp") and method != "fit":
        print(f"facerecon reconstruct: error: --start {start} needs --method fit", file=sys.stderr)
        return ExitCode.USAGE
    weights = getattr(args, "weights", None)
    if weights is not None and method not in ("regress", "posmap"):
        print("facerecon reconstruct: error: --weights needs --method regress or posmap", file=sys.stderr)
        return ExitCode.USAGE
    engine, address = getattr(args, "engine", "local"), getattr(args, "address", None)
    if address is not None and engine != "ray":
        print("facerecon reconstruct: error: --address needs --engine ray", file=sys.stderr)
        return ExitCode.USAGE
    options = ReconstructOptions(
        method=method, start=start, stages=args.stages, faces=args.faces,
        method_options={} if weights is None else {"weights": weights},
        render_images=not args.no_images and bool({"pictures", "depth"} & set(outputs)),
        # getattr: other commands (``facerecon demo``) call run() with their own arguments.
        texture_completion=not getattr(args, "no_completion", False), details=not getattr(args, "no_details", False),
    )  # fmt: skip
    from facerecon.sequence.video import is_video_path

    videos = [str(x) for x in args.images if not str(x).startswith("@") and is_video_path(x)]
    video_options = [name for name, value in (("--fps", getattr(args, "fps", None)), ("--start TIME", args.start_s),
                                              ("--end", getattr(args, "end_s", None))) if value is not None]  # fmt: skip
    if video_options and not videos:
        print(f"facerecon reconstruct: error: {', '.join(video_options)}: for videos, and no input is a video",
              file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    if getattr(args, "same_person", False):
        if videos:
            print("facerecon reconstruct: error: --same-person takes photos, not videos (a video's faces are each one "
                  "person already)", file=sys.stderr)  # fmt: skip
            return ExitCode.USAGE
        from facerecon.cli.sequence import run_photo_set

        return run_photo_set(args, outputs, options)
    video_codes: list[ExitCode] = []
    if videos:
        from facerecon.cli.sequence import run_videos

        video_codes = run_videos(args, videos)
        args.images = [x for x in args.images if str(x) not in videos]
        if not args.images:
            return batch_exit_code([c for c in video_codes if c != ExitCode.OK], video_codes.count(ExitCode.OK))
    plan = plan_collection(args.images, args.output, options, outputs, retry_failed=getattr(args, "retry_failed", False))
    workers = _workers(getattr(args, "workers", "auto"), len(plan.todo))
    if workers is None:
        print(f"facerecon reconstruct: error: --workers: expected a positive number or auto, got {args.workers!r}",
              file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    if not plan.items:
        print(f"facerecon reconstruct: error: no photos in {' '.join(args.images)}", file=sys.stderr)
        return ExitCode.USAGE
    if plan.done and not args.quiet:
        failed = sum(entry.status == "failed" for entry in plan.done)
        failed_note = f" ({failed} of them failed: --retry-failed tries them again)" if failed else ""
        print(f"facerecon: skipped {len(plan.done)} of {len(plan.items)} photos, done by an earlier run into "
              f"{plan.output}{failed_note}", file=sys.stderr)  # fmt: skip
    order = {item.name: i for i, item in enumerate(plan.items)}
    results: dict[str, list[tuple[str, str, str, str, str, str]]] = {}
    failures: list[ExitCode] = [exit_code_for_type(e.error_type) for e in plan.done if e.status == "failed"]
    batch = run_collection(plan, engine=engine, workers=workers, address=address,
                           quiet_workers=not getattr(args, "verbose", False), progress=not args.quiet)  # fmt: skip
    try:
        for result in tqdm(batch, total=len(plan.todo), desc="reconstructing", unit="image", disable=args.quiet,
                           file=sys.stderr, leave=False):  # fmt: skip
            name, path = result.item.name, result.item.path
            if result.error is not None:
                where = "" if str(path) in result.error else f"{path}: "  # read errors name the file already
                print(f"facerecon: {where}{result.error}", file=sys.stderr)
                failures.append(exit_code_for_type(result.error_type))
                results[name] = [(name, "-", "failed", "-", "-", result.error)]
                continue
            for reason in result.skipped:
                print(f"facerecon: {path}: skipped {reason}", file=sys.stderr)
            if not result.faces:
                failures.append(ExitCode.NO_FACE)
            results[name] = [
                (name, str(face.face_index), "ok", f"{face.landmark_error_px:.2f}",
                 "-" if face.photometric_error is None else f"{face.photometric_error:.4f}",
                 f"yaw {face.yaw_deg:+.0f}°, {face.total_ms:.0f} ms")
                for face in result.faces
            ]  # fmt: skip
    except KeyboardInterrupt:
        batch.close()
        print(f"facerecon: interrupted after {len(results)} of {len(plan.todo)} photos; {plan.output / MANIFEST} "
              "records them: run the same command again to resume", file=sys.stderr)  # fmt: skip
        return ExitCode.INTERRUPTED
    rows = [row for name in sorted(results, key=order.__getitem__) for row in results[name]]
    if rows and not args.quiet:
        shown = rows if len(rows) <= TABLE_ROWS else [row for row in rows if row[2] != "ok"]
        if shown:
            print("| image | face | status | landmark error (px) | photometric error | notes |")
            print("|---|---|---|---|---|---|")
            for row in shown:
                print("| " + " | ".join(row) + " |")
        if len(shown) < len(rows):
            ok = sum(row[2] == "ok" for row in rows)
            print(f"{ok} faces reconstructed in {len(results)} photos ({len(shown)} failures shown above); every photo is "
                  f"in {plan.output / MANIFEST}")  # fmt: skip
    succeeded = sum(r[2] == "ok" for r in rows) + sum(entry.status == "ok" for entry in plan.done)
    failures += [c for c in video_codes if c != ExitCode.OK]
    return batch_exit_code(failures, succeeded + video_codes.count(ExitCode.OK))
