"""``facerecon reconstruct IMAGE... -o OUT``: photos to textured, posed 3D faces.

For each image and each face: ``OUT/<image-stem>/<face-index>/`` with the outputs of ``--outputs`` (default: glb,
obj, ply, params, albedo, details, pictures): face.glb, mesh.obj (+ .mtl, texture.png), mesh.ply, params.json,
albedo.png (unless --no-completion), displacement.png + normal_map.png + mesh_detailed.glb (unless --no-details),
overlay.png, landmarks.png, depth.png, normals.png; on request ``depth`` (depth.npy) and ``details-obj``
(mesh_detailed.obj); ``all`` is every one. params.json is always written, last.

Exit code: 0 when every image gave at least one face; when no image did and every failure has the same
cause, that cause's code (IMAGE_READ, NO_FACE); otherwise PARTIAL. Every failed image or skipped face is
reported on its own line and the batch goes on.
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
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photo files (JPEG, PNG, WebP, BMP, TIFF)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    from facerecon.estimate import available_estimators, estimator_info

    methods = available_estimators()
    parser.add_argument("--method", choices=methods, default="fit",
                        help="how the face's parameters are found (default: %(default)s; "
                             + "; ".join(f"{m}: {estimator_info(m).description}" for m in methods) + ")")
    from facerecon.estimate.fit import STARTS

    parser.add_argument("--start", choices=STARTS, default="auto",
                        help="--method fit: start the fit from a PnP pose, from the regressor, or from the regressor "
                             "where it sees a yaw of 55 degrees or more (auto, the default)")
    parser.add_argument("--stages", choices=("landmarks", "photometric", "all"), default="all",
                        help="landmarks only, + photometric refinement, or + albedo refinement (default)")
    parser.add_argument("--faces", choices=("all", "largest"), default="all", help="which faces of each photo")
    parser.add_argument("--no-images", action="store_true", help="skip overlay/landmarks/depth/normals pictures")
    parser.add_argument("--no-completion", action="store_true",
                        help="no mirror completion / de-lighting: photo blended with the fitted colour, no albedo.png")
    parser.add_argument("--no-details", action="store_true",
                        help="no displacement map, normal map or detailed mesh")
    from facerecon.pipeline.reconstruction import DEFAULT_OUTPUTS, OUTPUTS

    parser.add_argument("--outputs", default=",".join(DEFAULT_OUTPUTS), metavar="LIST",
                        help="comma-separated outputs to write, of " + ", ".join(OUTPUTS)
                             + "; or all (default: %(default)s; params is always written)")
    parser.add_argument("--workers", default="auto", metavar="N",
                        help="worker processes, each with its own model (default auto: one per core for 4 photos or "
                             "more, else 1, which runs in this process)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    parser.set_defaults(func=run)


def _unique_stem(path: Path, taken: set[str]) -> str:
    stem, k = path.stem, 2
    name = stem
    while name in taken:
        name, k = f"{stem}-{k}", k + 1
    taken.add(name)
    return name


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

    from facerecon.pipeline.batch import BatchItem, reconstruct_batch
    from facerecon.pipeline.reconstruction import DEFAULT_OUTPUTS, parse_outputs
    from facerecon.pipeline.run import ReconstructOptions

    try:
        outputs = parse_outputs(getattr(args, "outputs", ",".join(DEFAULT_OUTPUTS)))
    except ValueError as err:
        print(f"facerecon reconstruct: error: --{err}", file=sys.stderr)
        return ExitCode.USAGE
    method = getattr(args, "method", "fit")
    start = getattr(args, "start", "auto")
    if start not in ("auto", "pnp") and method != "fit":
        print(f"facerecon reconstruct: error: --start {start} needs --method fit", file=sys.stderr)
        return ExitCode.USAGE
    options = ReconstructOptions(
        method=method, start=start, stages=args.stages, faces=args.faces,
        render_images=not args.no_images and bool({"pictures", "depth"} & set(outputs)),
        # getattr: other commands (``facerecon demo``) call run() with their own arguments.
        texture_completion=not getattr(args, "no_completion", False), details=not getattr(args, "no_details", False),
    )  # fmt: skip
    paths = [Path(p) for p in args.images]
    workers = _workers(getattr(args, "workers", "auto"), len(paths))
    if workers is None:
        print(f"facerecon reconstruct: error: --workers: expected a positive number or auto, got {args.workers!r}",
              file=sys.stderr)  # fmt: skip
        return ExitCode.USAGE
    taken: set[str] = set()
    items = [BatchItem(path, _unique_stem(path, taken)) for path in paths]
    order = {item.stem: i for i, item in enumerate(items)}
    results: dict[str, list[tuple[str, str, str, str, str, str]]] = {}
    failures: list[ExitCode] = []
    batch = reconstruct_batch(items, args.output, options, outputs, workers=workers, quiet_workers=not getattr(args, "verbose", False),
                              progress=not args.quiet)  # fmt: skip
    for result in tqdm(batch, total=len(items), desc="reconstructing", unit="image", disable=args.quiet, file=sys.stderr,
                       leave=False):  # fmt: skip
        stem, path = result.item.stem, result.item.path
        if result.error is not None:
            print(f"facerecon: {path}: {result.error}", file=sys.stderr)
            failures.append(exit_code_for_type(result.error_type))
            results[stem] = [(stem, "-", "failed", "-", "-", result.error)]
            continue
        for reason in result.skipped:
            print(f"facerecon: {path}: skipped {reason}", file=sys.stderr)
        results[stem] = [
            (stem, str(face.face_index), "ok", f"{face.landmark_error_px:.2f}",
             "-" if face.photometric_error is None else f"{face.photometric_error:.4f}",
             f"yaw {face.yaw_deg:+.0f}°, {face.total_ms:.0f} ms")
            for face in result.faces
        ]  # fmt: skip
    rows = [row for stem in sorted(results, key=order.__getitem__) for row in results[stem]]
    if not args.quiet:
        print("| image | face | status | landmark error (px) | photometric error | notes |")
        print("|---|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    return batch_exit_code(failures, sum(r[2] == "ok" for r in rows))
