"""``facerecon eval {aflw2000,now,photos} DIR [--method NAME] [--json FILE] [--plot PNG]``: measure a method.

* ``aflw2000 DIR``: NME of the 68 landmarks on AFLW2000-3D (``DIR/<name>.jpg`` + ``DIR/<name>.mat``), overall
  and by absolute yaw [0, 30), [30, 60), [60, 90] degrees; the plot is the CED of NME per yaw bin.
* ``now DIR``: NoW scan-to-mesh error in mm (median / mean / std) after 7-landmark similarity alignment and ICP;
  the plot is the CED of the scan points' distances.
* ``photos DIR``: photometric error, PSNR, SSIM, L1 and identity cosine between each photo and the method's
  re-rendered face over its mask; the plot is the CED of the photometric error. Identity needs the optional dlib
  extra (``facerecon[dlib]``): without it one line on stderr says so with the install hint, the table and the
  JSON report identity as ``unavailable`` and every other metric is measured as usual.

The markdown table goes to stdout; each image that fails (missing or unreadable file, no face, an output that
cannot be measured) is reported on one line on stderr and counted in the table; the run goes on. ``--json
FILE`` writes the summary and the per-image rows (see :mod:`facerecon.eval.protocols`); the plot goes to
``--plot PNG``, or beside the JSON file as ``<stem>-ced.png``. Exit code: 0 when every image was measured,
8 (``PARTIAL``) when some failed, 2 for a bad command line (unknown folder, method unfit for the protocol). A
method asked for by name that needs a missing extra (``--method dlib`` without dlib) stops the run with the install
hint and exit code 4 (``MODEL_CACHE``), as everywhere else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facerecon.cli.exit_codes import ExitCode

_PROTOCOLS = {
    "aflw2000": ("landmarks68", "NME of the 68 landmarks on AFLW2000-3D, overall and by absolute yaw"),
    "now": ("mesh", "NoW scan-to-mesh error (mm) after landmark + ICP alignment"),
    "photos": ("render", "photometric error, PSNR, SSIM, L1 and identity cosine of the re-rendered face"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from facerecon.eval.methods import available_methods, method_info

    methods = available_methods()
    method_help = "; ".join(f"{m}: {method_info(m).description}" for m in methods)
    parser = subparsers.add_parser(
        "eval",
        help="measure a reconstruction method on AFLW2000-3D, NoW or a folder of photos",
        description="Run a method over a dataset and print a markdown table; optionally write JSON and a CED plot. "
        "Exit codes: 0 every image measured, 8 some images failed (each reported on stderr), 2 bad command line.",
    )
    protocols = parser.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    for name, (_, help_text) in _PROTOCOLS.items():
        p = protocols.add_parser(name, help=help_text, description=help_text)
        p.add_argument("dataset", metavar="DIR", help="the dataset folder")
        p.add_argument("--method", default=_default_method(name, methods), choices=methods,
                       help=f"the method to measure (default: %(default)s; {method_help})")
        p.add_argument("-O", "--method-option", action="append", default=[], metavar="KEY=VALUE",
                       help="an option of the method, e.g. -O face_detector=cnn (repeatable)")
        p.add_argument("--json", metavar="FILE", help="write the summary and per-image rows as JSON")
        p.add_argument("--plot", metavar="PNG", help="write the CED plot here (default: beside --json FILE)")
        p.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N images (sorted by name)")
        p.add_argument("--quiet", action="store_true", help="do not report failed images one by one")
        if name == "now":
            p.add_argument("--split", metavar="NAME",
                           help="only the images listed in imagepaths<NAME>.txt (e.g. validation); default: all")
        if name == "photos":
            p.add_argument("--recursive", action="store_true", help="also photos in sub-folders")
            p.add_argument("--no-identity", action="store_true",
                           help="skip the identity cosine (which needs dlib: facerecon[dlib]; "
                                "without it, identity is reported unavailable)")
        p.set_defaults(func=run)


def _default_method(protocol: str, methods: tuple[str, ...]) -> str | None:
    from facerecon.eval.methods import method_info

    need = _PROTOCOLS[protocol][0]
    for preferred in ("facerecon", "mediapipe", "mean-face"):
        if preferred in methods and need in method_info(preferred).provides:
            return preferred
    for m in methods:
        if need in method_info(m).provides:
            return m
    return None


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--method-option: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _usage(message: str) -> int:
    print(f"facerecon eval: error: {message}", file=sys.stderr)
    return ExitCode.USAGE


def run(args: argparse.Namespace) -> int:
    from facerecon.eval import datasets, methods, protocols
    from facerecon.eval.plots import plot_ced

    protocol = args.protocol
    need = _PROTOCOLS[protocol][0]
    if args.method is None:
        return _usage(f"no registered method gives a {need}, which the {protocol} protocol needs")
    info = methods.method_info(args.method)
    if need not in info.provides:
        usable = [m for m in methods.available_methods() if need in methods.method_info(m).provides]
        return _usage(f"method {args.method!r} gives no {need}, which the {protocol} protocol needs"
                      f" (methods that do: {', '.join(usable) or 'none yet'})")  # fmt: skip
    if args.limit is not None and args.limit < 1:
        return _usage(f"--limit: expected a positive number, got {args.limit}")
    try:
        options = _options(args.method_option)
    except ValueError as err:
        return _usage(str(err))
    try:
        if protocol == "aflw2000":
            samples: list = datasets.read_aflw2000(args.dataset)
        elif protocol == "now":
            samples = datasets.read_now(args.dataset, split=args.split)
        else:
            samples = datasets.read_photos(args.dataset, recursive=args.recursive)
    except datasets.DatasetFileError as err:
        return _usage(str(err))
    if args.limit is not None:
        samples = samples[: args.limit]
    if not samples:
        return _usage(f"{args.dataset}: no images found for the {protocol} protocol")
    try:
        method = methods.create_method(args.method, **options)
    except (TypeError, ValueError) as err:  # an unknown or bad option
        return _usage(f"--method-option: {args.method}: {err}")

    total = len(samples)

    def on_row(i: int, row: Any) -> None:
        if not args.quiet and row.status != protocols.Status.OK:
            print(f"facerecon eval: [{i + 1}/{total}] {row.name}: {row.status.value}: {row.message}", file=sys.stderr)

    common = {"method_name": args.method, "dataset": str(args.dataset), "on_row": on_row}
    with method:
        if protocol == "aflw2000":
            report: Any = protocols.evaluate_aflw2000(samples, method, **common)
            from facerecon.eval.landmark_metrics import YAW_BIN_LABELS

            curves = {f"yaw {label}": report.errors(i) for i, label in enumerate(YAW_BIN_LABELS)}
            curves["all"] = report.errors()
            plot_args = {"xlabel": "NME (% of sqrt(w*h) of the ground-truth box)", "xmax": 10.0,
                         "title": f"AFLW2000-3D, {args.method}"}  # fmt: skip
        elif protocol == "now":
            report = protocols.evaluate_now(samples, method, **common)
            curves = {"all": report.distances()}
            curves.update({c: report.distances(c) for c in report.challenges})
            plot_args = {"xlabel": "scan-to-mesh distance (mm)", "xmax": 8.0, "ylabel": "scan points at or below (%)",
                         "title": f"NoW, {args.method}"}  # fmt: skip
        else:
            embedder, unavailable = None, None
            if not args.no_identity:
                from facerecon.core.errors import ModelNotInstalledError
                from facerecon.eval.identity import FaceEmbedder

                try:
                    embedder = FaceEmbedder()
                except ModelNotInstalledError as err:  # dlib or its models missing: every other metric still runs
                    unavailable = str(err)
                    print(f"facerecon eval: identity cosine unavailable: {unavailable}", file=sys.stderr)
            try:
                report = protocols.evaluate_photos(samples, method, embedder=embedder, identity_unavailable=unavailable,
                                                   **common)  # fmt: skip
            finally:
                if embedder is not None:
                    embedder.close()
            curves = {"all": report.values("photometric")}
            plot_args = {"xlabel": "photometric error (mean RGB distance, channels in [0, 1])", "xmax": 0.5,
                         "title": f"photos, {args.method}"}  # fmt: skip

    print(report.to_markdown())
    plot_path = Path(args.plot) if args.plot else None
    if args.json:
        from facerecon.io.atomic import write_text_atomic

        json_path = Path(args.json)
        write_text_atomic(json_path, json.dumps(report.to_json(), indent=1) + "\n")
        print(f"facerecon eval: wrote {json_path}", file=sys.stderr)
        if plot_path is None:
            plot_path = json_path.with_name(f"{json_path.stem}-ced.png")
    if plot_path is not None:
        plot_ced(curves, plot_path, **plot_args)
        print(f"facerecon eval: wrote {plot_path}", file=sys.stderr)
    return ExitCode.PARTIAL if report.failed else ExitCode.OK
