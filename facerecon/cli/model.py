"""``facerecon model install|info|calibrate``: install the face model, describe it, embed the detector's landmarks."""

from __future__ import annotations

import argparse
import json
import sys

from facerecon.cli.exit_codes import ExitCode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="install the face model or show what is installed")
    actions = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    install = actions.add_parser(
        "install",
        help="install the ICT Face Model Light from its archive",
        description="Read the ICT-FaceKit archive (zip, tar.gz or extracted folder; a path or URL) and write "
        "the model cache. Default source: $FACERECON_ICT_SOURCE, else the official GitHub archive.",
    )
    install.add_argument("--source", help="path or URL of the ICT-FaceKit archive or folder")
    install.add_argument("--force", action="store_true", help="re-install even if the same source is installed")
    install.add_argument("--home", help="cache root (default $FACERECON_HOME or ~/.cache/facerecon)")
    install.add_argument("--quiet", action="store_true", help="no progress bar")
    install.add_argument(
        "--no-calibrate", action="store_true", help="do not embed the MediaPipe landmarks after a (re)install"
    )
    install.set_defaults(func=run_install)

    calibrate = actions.add_parser(
        "calibrate",
        help="embed MediaPipe's 478 landmarks on the installed model (from renders of it)",
        description="Render the model in several identities, poses and lightings, run MediaPipe's face mesh on the "
        "renders, back-project its landmarks onto the surface and save the robust average as the 'mediapipe478' "
        "landmark scheme in the model cache. Prints the reprojection error on held-out renders.",
    )
    calibrate.add_argument("--home", help="cache root (default $FACERECON_HOME or ~/.cache/facerecon)")
    calibrate.add_argument("--quiet", action="store_true", help="no progress bar")
    calibrate.set_defaults(func=run_calibrate)

    info = actions.add_parser("info", help="describe the installed model (installs it first if missing)")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.add_argument("--home", help="cache root (default $FACERECON_HOME or ~/.cache/facerecon)")
    info.add_argument("--no-install", action="store_true", help="fail instead of installing a missing model")
    info.set_defaults(func=run_info)


def run_install(args: argparse.Namespace) -> int:
    from facerecon.models.ict import install_ict

    result = install_ict(args.source, home=args.home, force=args.force, progress=not args.quiet)
    verb = "installed" if result.installed else "already installed (same source SHA-256)"
    print(f"ICT Face Model Light {verb} in {result.path} from {result.source} "
          f"(sha256 {result.sha256[:12]}…, {result.seconds:.1f} s)")
    if result.installed and not args.no_calibrate:
        _calibrate(args.home, quiet=args.quiet)
    return ExitCode.OK


def run_calibrate(args: argparse.Namespace) -> int:
    _calibrate(args.home, quiet=args.quiet)
    return ExitCode.OK


def _calibrate(home: str | None, *, quiet: bool) -> None:
    from tqdm import tqdm

    from facerecon.calibrate import calibrate_landmarks, save_embedding
    from facerecon.models import load_model

    model = load_model(home=home, install=False)
    with tqdm(total=0, desc="calibrating landmarks", unit="render", disable=quiet, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        embedding = calibrate_landmarks(model, progress=progress)
    path = save_embedding(embedding, model.info["cache"])
    print(f"MediaPipe landmarks embedded in {path} ({embedding.seconds:.1f} s)")
    print(embedding.summary())


def run_info(args: argparse.Namespace) -> int:
    from facerecon.models import load_model, model_summary

    summary = model_summary(load_model(home=args.home, install=not args.no_install))
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return ExitCode.OK
    lines = [
        f"model        {summary['name']}: {summary['description']}",
        f"mesh         {summary['vertices']} vertices, {summary['triangles']} triangles "
        f"({summary['source_polygons']} source polygons), units {summary['units']}",
        f"identity     {summary['identity_modes']} modes (coefficients ~ N(0, 1))",
        f"expression   {summary['expression_modes']} blendshapes (weights in [0, 1]): "
        + ", ".join(summary["expressions"][:6]) + ", …",
        "landmarks    " + ", ".join(f"{k} ({v})" for k, v in summary["landmark_schemes"].items()),
        "regions      " + ", ".join(f"{k} ({v})" for k, v in summary["regions"].items()),
        f"skin mask    {summary['skin_mask_vertices']} vertices",
        "sub-meshes   " + ", ".join(f"{k} ({v['vertices']} v, {v['triangles']} f)" for k, v in summary["submeshes"].items()),
        f"source       {summary['source']}",
        f"sha256       {summary['source_sha256']}",
        f"licence      {summary['licence']} — {summary['attribution']}",
        f"cache        {summary['cache']}",
    ]
    print("\n".join(lines))
    return ExitCode.OK
