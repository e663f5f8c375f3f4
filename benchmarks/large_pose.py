"""Large-pose landmark benchmark on synthetic ground truth (``facerecon synth``): NME by yaw per method.

Fits a few of the shared photos, re-renders each at yaws from -90 to 90 degrees (:mod:`facerecon.eval.synth`,
AFLW2000-3D layout), then runs the AFLW2000-3D protocol (:func:`facerecon.eval.evaluate_aflw2000`) with each
method and prints the NME (% of sqrt(w*h) of the ground-truth box) by absolute yaw, the three standard bins,
and each method's ratio to the first method measured in the same process. A contact sheet of the renders is
written to ``OUT/contact_sheet.png``.

The ground truth projects the 68 fixed iBUG vertices (AFLW2000-3D's "3D landmark" convention), so at large yaw
the far jaw lies inside the face; 2D detectors that put it on the silhouette are penalised there, as on the real
AFLW2000-3D.

Usage:
    FACERECON_HOME=... python benchmarks/large_pose.py [--photos 3] [--yaws -90,-60,...] [--methods mediapipe,dlib,facerecon]

A method may carry options as ``name:key=value:key=value`` (e.g. ``fit:start=auto``, ``regress:weights=PATH``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"
DEFAULT_PHOTOS = ("3ddfa-JianzhuGuo.jpg", "deca-exp-1.jpg", "d3dfr-000002.jpg", "prnet-1.jpg", "deca-exp-5.jpg")


def contact_sheet(folder: Path, out: Path, subjects: list[str], yaws: list[float]) -> None:
    rows = []
    for subject in subjects:
        row = []
        for yaw in yaws:
            from facerecon.eval.synth import view_name

            img = cv2.imread(str(folder / f"{view_name(subject, yaw, 'fitted', 'fitted')}.jpg"))
            row.append(cv2.resize(img, (225, 225), interpolation=cv2.INTER_AREA))
        rows.append(np.concatenate(row, 1))
    cv2.imwrite(str(out), np.concatenate(rows, 0))


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=3, help="how many of the shared photos to use")
    parser.add_argument("--yaws", default="-90,-75,-60,-45,-30,-15,0,15,30,45,60,75,90")
    parser.add_argument("--methods", default="mediapipe,dlib,facerecon")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()

    from facerecon.eval import create_method, evaluate_aflw2000, read_aflw2000
    from facerecon.eval.synth import SynthConfig, synthesize

    yaws = [float(v) for v in args.yaws.split(",")]
    photos = [FACES / p for p in DEFAULT_PHOTOS[: args.photos]]
    out = args.out or Path(tempfile.mkdtemp(prefix="facerecon-large-pose-"))
    start = time.perf_counter()
    report = synthesize(photos, out, yaws_deg=yaws, layout="aflw2000", config=SynthConfig(write_meshes=False))
    synth_s = time.perf_counter() - start
    print(f"synthesized {len(report.items)} views of {len(report.subjects)} photos in {synth_s:.1f} s "
          f"({synth_s / max(len(report.items), 1):.2f} s per view incl. fitting); failed photos: {len(report.failures)}")
    for f in report.failures:
        print(f"  failed: {f.photo}: {f.reason}")
    sheet = out / "contact_sheet.png"
    contact_sheet(out / "aflw2000", sheet, list(report.subjects), yaws)
    print(f"contact sheet: {sheet}")

    samples = read_aflw2000(out / "aflw2000")
    results = {}
    for name in args.methods.split(","):
        t = time.perf_counter()
        method_name, *pairs = name.split(":")
        options = {k: _number_or_text(v) for k, v in (pair.split("=", 1) for pair in pairs)}
        with create_method(method_name, **options) as method:
            rep = evaluate_aflw2000(samples, method, method_name=name, dataset=str(out / "aflw2000"))
        results[name] = (rep, time.perf_counter() - t)

    abs_yaws = sorted({abs(y) for y in yaws})
    print()
    print("NME (%) by |yaw| on synthetic views (mean over images; n/a = no image measured; failed = no face)")
    print("| method | " + " | ".join(f"{y:g}°" for y in abs_yaws) + " | [0,30) | [30,60) | [60,90] | mean | failed | s/image |")
    print("|---|" + "---|" * (len(abs_yaws) + 6))
    for name, (rep, seconds) in results.items():
        by = defaultdict(list)
        for row in rep.rows:
            if row.nme is not None:
                by[abs(row.yaw_deg)].append(100 * row.nme)
        cells = [f"{np.mean(by[y]):.2f}" if by[y] else "n/a" for y in abs_yaws]
        bins = [f"{m:.2f}" if m is not None else "n/a" for m in rep.bin_means()]
        mean = "n/a" if rep.nme_mean is None else f"{rep.nme_mean:.2f}"
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(bins)
              + f" | {mean} | {rep.failed} of {len(rep.rows)} | {seconds / len(rep.rows):.2f} |")  # fmt: skip
    # Means over different images are not comparable (a method that fails at 90 degrees drops its worst
    # images): compare on the images every method measured, against the first method.
    common = set.intersection(*({r.name for r in rep.rows if r.nme is not None} for rep, _ in results.values()))
    print()
    print(f"on the {len(common)} images every method measured (of {len(samples)}):")
    first = None
    for name, (rep, _) in results.items():
        values = [100 * r.nme for r in rep.rows if r.name in common]
        mean = float(np.mean(values)) if values else float("nan")
        first = first or (name, mean)
        print(f"  {name}: mean NME {mean:.2f}%  ratio to {first[0]}: {mean / first[1]:.2f}")

if __name__ == "__main__":
    main()
