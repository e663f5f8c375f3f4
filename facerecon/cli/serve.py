"""``facerecon serve``: the main job as a web page with a 3D viewer and an HTTP API on this machine (the optional
extra ``facerecon[web]``).

Binds 127.0.0.1 unless told otherwise. Uploads are reconstructed by worker processes (one per core by default, each
warmed up before the server answers), their files kept in a job folder under ``--jobs`` for ``--keep-minutes`` and
served from there; ``--samples`` offers a folder's photos on the page. See :mod:`facerecon.serve.app` for the
endpoints, and the README for a curl example.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from facerecon.cli.exit_codes import ExitCode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve the main job as a web page and an HTTP JSON API",
                                   description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help="reconstruction processes, one job each at a time (default: one per core)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default %(default)s)")
    parser.add_argument("--keep-minutes", type=float, default=60.0,
                        help="results are removed this long after their job (default %(default)s)")
    parser.add_argument("--samples", type=Path, default=None,
                        help="a folder of photos the page offers as samples (its image files, not its subfolders)")
    parser.add_argument("--jobs", type=Path, default=None,
                        help="where job folders live (default: a new temporary folder, removed at exit)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facerecon.core.optional import require
    from facerecon.pipeline.setup import load_model
    from facerecon.serve.app import create_app
    from facerecon.serve.jobs import JobRunner

    uvicorn = require("uvicorn", extra="web", purpose="facerecon serve")
    if not 0 < args.port < 65536:
        print(f"facerecon serve: error: --port: expected 1 to 65535, got {args.port}", file=sys.stderr)
        return ExitCode.USAGE
    if args.max_upload_mb <= 0 or args.keep_minutes <= 0 or (args.workers is not None and args.workers < 1):
        print("facerecon serve: error: --max-upload-mb, --keep-minutes and --workers must be positive", file=sys.stderr)
        return ExitCode.USAGE
    if args.samples is not None and not args.samples.is_dir():
        print(f"facerecon serve: error: --samples {args.samples}: not a folder", file=sys.stderr)
        return ExitCode.USAGE
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load_model(progress=True)  # installed and calibrated before the first request, not during it
    with tempfile.TemporaryDirectory(prefix="facerecon-serve-") as scratch:
        runner = JobRunner(args.jobs or scratch, workers=args.workers or cores, keep_seconds=args.keep_minutes * 60,
                           quiet=not getattr(args, "verbose", False))  # fmt: skip
        app = create_app(runner, max_upload_bytes=int(args.max_upload_mb * 1e6), samples=args.samples)
        runner.start()  # the workers load the model now, so the first upload does not wait for it
        print(f"facerecon serve: http://{args.host}:{args.port}/ (the page; the API under /api; Ctrl-C stops)",
              file=sys.stderr)  # fmt: skip
        try:
            uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        finally:
            runner.close()
    return ExitCode.OK
