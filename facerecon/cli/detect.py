"""``facerecon detect IMAGE... -o OUT [--json]``: faces and landmarks of photos, drawn and (optionally) as JSON.

For each image, in the order given: ``OUT/<stem>.png``, the photo with each face's box, its landmarks
(small) and its 68 iBUG points (larger; the subject's right side in another colour), and with ``--json``
``OUT/<stem>.json``::

    {"image": "<path as given>", "width": W, "height": H, "detector": "mediapipe",
     "faces": [{"box": [x0, y0, x1, y1], "score": s, "scheme": "mediapipe478",
                "landmarks": [[x, y], ...], "landmarks68": [[x, y], ...]}, ...]}

Faces are largest first; coordinates are pixels of the upright (EXIF-rotated) original image with pixel
centres at integer coordinates. ``landmarks`` has 478 points with MediaPipe, 68 with dlib; ``landmarks68``
is in iBUG order. An image without a face still gets both files (``"faces": []``). Two inputs with the same
stem get ``<stem>.png``, ``<stem>-2.png``, ... in the order given. Files are written atomically.

Each image is reported on one line: successes on stdout, problems (unreadable image, no face) on stderr;
the batch always goes on. Exit code: 0 when every image has a face; when no image succeeded and all failed
for the same reason, that reason's code (``IMAGE_READ`` 5 or ``NO_FACE`` 6); otherwise ``PARTIAL`` (8).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facerecon.cli.exit_codes import batch_exit_code, ExitCode, exit_code_for
from facerecon.core.errors import FaceReconError, NoFaceError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="find faces and landmarks in photos; draw them and optionally write JSON",
        description="Find every face in each photo (largest first) with its landmarks; write OUT/<stem>.png "
        "with them drawn and, with --json, OUT/<stem>.json. Exit codes: 0 all images have a face, "
        "5 no image could be read, 6 no image has a face, 8 some images failed (each reported on one line).",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photo files (JPEG, PNG, WebP, ...)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (created if missing)")
    parser.add_argument("--json", action="store_true", help="also write OUT/<stem>.json per image")
    parser.add_argument("--detector", choices=("mediapipe", "dlib"), default="mediapipe",
                        help="mediapipe: 478 points (default); dlib: 68 points (needs facerecon[dlib])")
    parser.add_argument("--dlib-detector", choices=("hog", "cnn"), default="hog",
                        help="dlib's face detector (with --detector dlib; cnn is slower, finds more poses)")
    parser.add_argument("--max-faces", type=int, default=10, metavar="N", help="at most N faces per image")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facerecon.detect import check_detectable, create_detector
    from facerecon.detect.draw import draw_detections
    from facerecon.io.image import read_image

    if args.max_faces < 1:
        print(f"facerecon detect: error: --max-faces: expected a positive number, got {args.max_faces}", file=sys.stderr)
        return ExitCode.USAGE
    out_dir = Path(args.out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"facerecon detect: error: cannot create the output folder {out_dir}: {err.strerror or err}",
              file=sys.stderr)
        return ExitCode.USAGE
    options: dict[str, object] = {"max_faces": args.max_faces}
    if args.detector == "dlib":
        options["face_detector"] = args.dlib_detector
    stems = _unique_stems([Path(p) for p in args.images])
    ok = 0
    failures: list[ExitCode] = []
    with create_detector(args.detector, **options) as detector:
        for path, stem in zip(args.images, stems):
            try:
                image = read_image(path)
                check_detectable(image, str(path))
            except FaceReconError as err:
                print(f"facerecon detect: {err}", file=sys.stderr)
                failures.append(exit_code_for(err))
                continue
            faces = detector.detect(image)
            png, js = out_dir / f"{stem}.png", out_dir / f"{stem}.json"
            _write_png(png, draw_detections(image, faces))
            written = [str(png)]
            if args.json:
                _write_json(js, _record(path, image.shape, args.detector, faces))
                written.append(str(js))
            if faces:
                ok += 1
                print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''} -> {', '.join(written)}")
            else:
                err = NoFaceError(f"{path}: no face found (wrote {', '.join(written)})")
                print(f"facerecon detect: {err}", file=sys.stderr)
                failures.append(exit_code_for(err))
    return batch_exit_code(failures, ok)


def _unique_stems(paths: list[Path]) -> list[str]:
    """``<stem>``, then ``<stem>-2``, ``<stem>-3``... for inputs whose stems repeat (in the order given)."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        n = seen.get(p.stem, 0) + 1
        seen[p.stem] = n
        out.append(p.stem if n == 1 else f"{p.stem}-{n}")
    return out


def _record(path: str, shape: tuple[int, ...], detector: str, faces: list) -> dict:
    def pts(a) -> list[list[float]]:
        return [[round(float(x), 3), round(float(y), 3)] for x, y in a]

    return {
        "image": str(path),
        "width": int(shape[1]),
        "height": int(shape[0]),
        "detector": detector,
        "faces": [
            {
                "box": [round(float(c), 3) for c in f.box],
                "score": round(f.score, 5),
                "scheme": f.scheme,
                "landmarks": pts(f.landmarks),
                "landmarks68": pts(f.to_ibug68()),
            }
            for f in faces
        ],
    }


def _write_png(target: Path, rgb) -> None:
    from PIL import Image

    from facerecon.io.atomic import atomic_path

    with atomic_path(target) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def _write_json(target: Path, record: dict) -> None:
    from facerecon.io.atomic import write_text_atomic

    write_text_atomic(target, json.dumps(record) + "\n")
