"""``facerecon demo -o OUT``: reconstruct a real face that every machine has offline.

The photo is the astronaut portrait (Eileen Collins, NASA, public domain) that ships inside scikit-image
(``skimage.data.astronaut()``); it is written to ``OUT/astronaut.png`` and reconstructed into
``OUT/astronaut/0/`` exactly as ``facerecon reconstruct`` would.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facerecon.core.errors import ModelNotInstalledError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="reconstruct the astronaut portrait shipped with scikit-image",
                                   description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--stages", choices=("landmarks", "photometric", "all"), default="all")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from skimage import data
    except ImportError:
        raise ModelNotInstalledError(
            'the demo photo comes with scikit-image: pip install "facerecon[demo]" (or scikit-image)'
        ) from None
    import cv2

    from facerecon.cli import reconstruct
    from facerecon.io.atomic import atomic_path

    args.output.mkdir(parents=True, exist_ok=True)
    photo = args.output / "astronaut.png"
    with atomic_path(photo) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    forwarded = argparse.Namespace(images=[str(photo)], output=args.output, stages=args.stages, faces="all",
                                   no_images=False, quiet=args.quiet)  # fmt: skip
    code = reconstruct.run(forwarded)
    if not args.quiet:
        print(f"outputs: {args.output / 'astronaut' / '0'} (open face.glb in Blender or three.js)")
    return code
