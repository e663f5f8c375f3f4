"""``facerecon synth PHOTO... -o OUT``: a large-pose benchmark with ground truth from fitted photos.

Each photo is fitted, then its face is re-rendered with its photo texture at several yaws (default 0 to +-90
degrees in steps of 15), expressions and lights; the images and their ground truth (68 landmarks, pose, meshes)
go to ``OUT/aflw2000`` (AFLW2000-3D layout) and/or ``OUT/now`` (NoW layout), ready for
``facerecon eval aflw2000 OUT/aflw2000`` and ``facerecon eval now OUT/now``. See :mod:`facerecon.eval.synth`.

Exit code: 0 when every photo was used; when none was and every failure has the same cause, that cause's code
(IMAGE_READ, NO_FACE); otherwise PARTIAL. Each failed photo is reported on its own line and the batch goes on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facerecon.cli.exit_codes import batch_exit_code, ExitCode, exit_code_for


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v for v in text.replace(",", " ").split() if v]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from facerecon.eval.synth import (
        BACKGROUNDS,
        EXPRESSION_PRESETS,
        LAYOUTS,
        LIGHTING_PRESETS,
    )

    parser = subparsers.add_parser(
        "synth",
        help="re-render fitted photos at large yaws with ground truth (AFLW2000-3D / NoW layouts)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="photo files (the largest face of each is used)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    parser.add_argument("--layout", choices=LAYOUTS, default="both", help="which dataset layouts to write (default: both)")
    parser.add_argument("--yaws", type=_numbers, metavar="DEG,...",
                        help="head yaws in degrees, in [-90, 90] (default: -90,-75,...,90)")
    parser.add_argument("--expressions", type=_names, default=["fitted"], metavar="NAME,...",
                        help=f"expression presets (default: fitted): {', '.join(EXPRESSION_PRESETS)}")
    parser.add_argument("--lightings", type=_names, default=["fitted"], metavar="NAME,...",
                        help=f"lighting presets (default: fitted): {', '.join(LIGHTING_PRESETS)}")
    parser.add_argument("--background", choices=BACKGROUNDS, default="blur", help="behind the head (default: blur)")
    parser.add_argument("--size", type=int, default=450, help="image side, px (default: 450, as AFLW2000-3D)")
    parser.add_argument("--no-meshes", action="store_true", help="do not write a ground-truth OBJ per AFLW2000 image")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"facerecon synth: error: {message}", file=sys.stderr)
    return ExitCode.USAGE


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from facerecon.eval import synth

    try:
        config = synth.SynthConfig(image_size=args.size, background=args.background, write_meshes=not args.no_meshes)
        yaws = synth.check_yaws(args.yaws if args.yaws is not None else synth.DEFAULT_YAWS_DEG)
        expressions = synth.check_names(args.expressions, "--expressions", tuple(synth.EXPRESSION_PRESETS))
        lightings = synth.check_names(args.lightings, "--lightings", synth.LIGHTING_PRESETS)
    except (TypeError, ValueError) as err:
        return _usage(str(err))
    bar = tqdm(total=len(args.photos), desc="synthesizing", unit="photo", disable=args.quiet, file=sys.stderr, leave=False)

    def on_photo(index: int, photo: str, failure: synth.SynthFailure | None) -> None:
        bar.update(1)
        if failure is not None:
            print(f"facerecon: {photo}: {failure.reason}", file=sys.stderr)

    try:
        report = synth.synthesize(args.photos, args.output, yaws_deg=yaws, expressions=expressions,
                                  lightings=lightings, layout=args.layout, config=config, on_photo=on_photo)  # fmt: skip
    finally:
        bar.close()
    if not args.quiet:
        print(f"wrote {len(report.items)} views of {len(report.subjects)} photos to {report.out_dir}"
              f" ({len(report.failures)} failed)")  # fmt: skip
        for layout in ("aflw2000", "now"):
            if args.layout in (layout, "both"):
                print(f"evaluate: facerecon eval {layout} {report.out_dir / layout}")
    return batch_exit_code([_code(f.kind) for f in report.failures], len(report.subjects))


def _code(kind: str) -> ExitCode:
    from facerecon.core import errors

    cls = getattr(errors, kind, None)
    return exit_code_for(cls("")) if isinstance(cls, type) and issubclass(cls, errors.FaceReconError) else ExitCode.PARTIAL
