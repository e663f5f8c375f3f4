"""Entry point of the ``facerecon`` command.

Each sub-command lives in its own module of this package with two functions:
``add_parser(subparsers)`` registers its arguments and sets ``func=run`` on the parser, and
``run(args) -> int`` calls the library and returns an exit code. Errors the user can fix
(:class:`facerecon.core.errors.FaceReconError`) become one line on stderr and their own exit code.

The terminal stays quiet: MediaPipe's native log lines and third-party deprecation warnings are filtered out
(:mod:`facerecon.cli.quiet`); ``--verbose`` (before or after the sub-command) shows them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from facerecon.cli.exit_codes import ExitCode, exit_code_for
from facerecon.cli.quiet import QuietNativeStderr, quiet_python_warnings
from facerecon.core.errors import FaceReconError

# Sub-command modules, in the order `facerecon --help` lists them.
SUBCOMMANDS: tuple[str, ...] = ("reconstruct", "detect", "eval", "synth", "train", "model", "serve", "demo")
VERBOSE_HELP = "show the native libraries' log lines (MediaPipe, TensorFlow Lite) and third-party warnings"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: every sub-command, or only ``only`` (each sub-command's module imports what its
    options need, e.g. ``eval`` its methods; a run of one command need not pay for the others')."""
    parser = argparse.ArgumentParser(
        prog="facerecon", description="Photos of faces to 3D faces, on a plain CPU."
    )
    from facerecon import __version__

    parser.add_argument("--version", action="version", version=f"facerecon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS if only is None else (only,):
        importlib.import_module(f"facerecon.cli.{name}").add_parser(subparsers)
    for sub in subparsers.choices.values():
        # SUPPRESS: a sub-command without the flag keeps the value given before it.
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (also used by ``python -m facerecon``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # The sub-command is the first word that is not an option (the options before it take no value).
    command = next((word for word in argv if not word.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.verbose:
        return _dispatch(args)
    quiet_python_warnings()
    try:
        with QuietNativeStderr():
            return _dispatch(args)
    except KeyboardInterrupt:  # Ctrl-C after the command's own handling, while the terminal is restored
        return ExitCode.INTERRUPTED


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except FaceReconError as err:
        print(f"facerecon: error: {err}", file=sys.stderr)
        return exit_code_for(err)
    except KeyboardInterrupt:
        print("facerecon: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as err:  # a bug: one line, and the traceback on request
        if os.environ.get("FACERECON_DEBUG"):
            traceback.print_exc()
        print(
            f"facerecon: internal error: {type(err).__name__}: {err} (set FACERECON_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
