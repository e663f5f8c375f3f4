"""A 108 MP camera photo through the whole ``facerecon reconstruct``: wall time and peak memory (issue 12.3).

Usage: python benchmarks/big_photo.py [--photo FACE.jpg] [--sides 2048,4096] [--stages all|photometric|landmarks]

Builds a real 12000 x 9000 JPEG in a temporary folder (a shared face photo cropped to 3:4 and upscaled, stored
sideways with EXIF orientation 6 and a 26 mm focal length, as a phone stores a portrait), then:

* runs ``facerecon reconstruct`` on it in a subprocess (the default ``max_image_side``) and prints the wall time,
  the peak resident memory of that process (``ru_maxrss``) and the working size it wrote in ``params.json``;
* for each ``--sides`` value, the same reconstruction through the Python API at that ``max_image_side`` (one
  subprocess each, files written as the command writes them): wall time, peak memory, the face box and how many
  photo pixels the visible face has per texel of the 1024 px face texture (linear, median over the face's
  front-facing triangles; >= 1 means the texture, not the photo, limits the detail).

Target: peak <= 2 GB per photo through the whole command. The photo is upscaled from a 2444 x 1718 original, so it
holds no detail beyond that: the texel figures measure sampling density, not detail.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"
STORED = (12000, 9000)  # width x height as the file stores it

# The child of one --sides run: reconstruct at a max_image_side, save as the command does, and measure.
_CHILD = r"""
import json, resource, sys, time
import numpy as np
from facerecon.pipeline.run import ReconstructOptions, Reconstructor
photo, side, out, stages = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
start = time.perf_counter()
with Reconstructor(options=ReconstructOptions(max_image_side=side, stages=stages)) as rec:
    loaded = time.perf_counter()
    face = rec.run(photo).reconstructions[0]
    face.save(out)
    model = rec.model
seconds = time.perf_counter() - start
sub = model.submesh("face")
tri, uvt, uvs = sub.triangles.numpy(), sub.uv_triangles.numpy(), model.uvs.numpy()
cam = face.mesh.vertices[: sub.vertex_count] @ face.pose.rotation.T + face.pose.translation
fx, fy, cx, cy = face.camera.intrinsics
px = np.stack([fx * cam[:, 0] / cam[:, 2] + cx, fy * cam[:, 1] / cam[:, 2] + cy], 1)
a, b, c = (px[tri[:, k]] for k in range(3))
area_px = 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
ta, tb, tc = (uvs[uvt[:, k]] * rec.options.texture_size for k in range(3))
area_tx = np.abs(0.5 * ((tb[:, 0] - ta[:, 0]) * (tc[:, 1] - ta[:, 1]) - (tb[:, 1] - ta[:, 1]) * (tc[:, 0] - ta[:, 0])))
in_tile = (uvs[uvt].reshape(-1, 6).max(1) <= 1.0) & (area_tx > 0)
sign = np.sign(np.median(area_px[in_tile]))  # front-facing triangles share the sign of most of the face
front = in_tile & (area_px * sign > 0)
ratio = np.sqrt(area_px[front] * sign / area_tx[front])
print(json.dumps({"seconds": seconds, "run_seconds": seconds - (loaded - start),
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "image_size": list(face.camera.image_size), "box_px": face.detection.box_size,
                  "px_per_texel": float(np.median(ratio)),
                  "texels_at_1px": float((area_tx[front] * (ratio >= 1)).sum() / area_tx[front].sum())}))
"""

# The child of the command run: ``facerecon reconstruct`` in-process, then its own peak memory.
_COMMAND = (
    "import resource, sys\nfrom facerecon.cli.main import main\ncode = main(sys.argv[1:])\n"
    "print('peak_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)"
)


def make_photo(source: Path, path: Path) -> float:
    """Write the 108 MP JPEG made from ``source``; returns the seconds it took."""
    start = time.perf_counter()
    bgr = cv2.imread(str(source))
    h, w = bgr.shape[:2]
    crop_w = round(h * 3 / 4)
    x0 = (w - crop_w) // 2
    stored_small = np.ascontiguousarray(np.rot90(bgr[:, x0 : x0 + crop_w], 1))  # sideways, as the sensor saw it
    big = cv2.resize(stored_small, STORED, interpolation=cv2.INTER_LINEAR)
    ok, jpg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    del big
    if not ok:
        raise RuntimeError("cannot encode the JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # turn clockwise to view
    exif.get_ifd(0x8769)[0xA405] = 26  # FocalLengthIn35mmFilm
    body = exif.tobytes()
    data = jpg.tobytes()
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:])
    return time.perf_counter() - start


def _run(argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run(argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=FACES / "deca-exp-4.jpg", help="the face photo to upscale")
    parser.add_argument("--sides", default="2048,4096", help="max_image_side values for the API runs ('' for none)")
    parser.add_argument("--stages", default="all", choices=("landmarks", "photometric", "all"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="big-photo-") as tmp:
        photo = Path(tmp) / "phone108.jpg"
        made = make_photo(args.photo, photo)
        print(f"{photo.name}: {STORED[0]} x {STORED[1]} = {STORED[0] * STORED[1] / 1e6:.0f} MP stored, "
              f"{photo.stat().st_size / 1e6:.1f} MB, made in {made:.1f} s from {args.photo.name}")  # fmt: skip

        out = Path(tmp) / "out"
        result, wall = _run([sys.executable, "-c", _COMMAND, "reconstruct", str(photo), "-o", str(out),
                             "--stages", args.stages, "--quiet"])  # fmt: skip
        if result.returncode != 0:
            print(f"facerecon reconstruct: exit code {result.returncode}\n{result.stderr.strip()}")
        else:
            peak = int(result.stdout.split("peak_kib")[-1]) * 1024
            params = json.loads((out / photo.stem / "0" / "params.json").read_text())
            size = params["image_size"]
            print(f"facerecon reconstruct --stages {args.stages} (default max_image_side): exit 0, wall {wall:.1f} s "
                  f"(model and detector loading included), peak RSS {peak / 1e9:.2f} GB ({peak / 2**30:.2f} GiB), "
                  f"working image {size['width']} x {size['height']}, fx {params['intrinsics']['fx']:.1f} px "
                  f"(26 mm: {26 * math.hypot(size['width'], size['height']) / math.hypot(36, 24):.1f})")  # fmt: skip

        for side in [int(s) for s in args.sides.split(",") if s.strip()]:
            result, wall = _run([sys.executable, "-c", _CHILD, str(photo), str(side), str(Path(tmp) / f"api-{side}"),
                                 args.stages])  # fmt: skip
            if result.returncode != 0:
                print(f"max_image_side {side}: failed\n{result.stderr.strip()[-2000:]}")
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            h, w = r["image_size"]
            print(f"max_image_side {side:5d}: working {w} x {h}, reconstruct {r['run_seconds']:.1f} s "
                  f"(with loading {r['seconds']:.1f} s), peak RSS {r['peak_kib'] * 1024 / 1e9:.2f} GB, face box "
                  f"{r['box_px']:.0f} px, photo px per texel {r['px_per_texel']:.2f} (texels at >= 1 px: "
                  f"{r['texels_at_1px']:.0%})")  # fmt: skip


if __name__ == "__main__":
    main()
