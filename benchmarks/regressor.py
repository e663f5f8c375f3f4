"""The learned regressor against the optimisation fit, on validation people only (``../shared/data/faces``).

Usage: python benchmarks/regressor.py [--weights NAME|PATH[,NAME|PATH...]] [--corpus corpus/val] [--limit N]

Several weights (comma-separated: e.g. the previous and the new shipped ones) are measured in the same run.

Prints, in one run:

1. **Synthetic full-pose views with exact ground truth** (the validation corpus of ``facerecon train corpus
   --split val``: faces/ re-rendered at yaws to 90 degrees, pitch to 35, roll): 68-landmark NME (% of the
   landmarks' box, AFLW2000-3D style) and median head-pose error by yaw bin, and the share the confidence
   output calls a face. Targets: NME <= 3 / 3.5 / 4.5 %, pose error <= 3 degrees in every bin.
2. **Real validation photos**: for each method (``fit start=pnp``: the fit from a PnP pose, ``regress``: detect +
   network, ``fit start=auto``: the default, the fit started from the regressor where it sees a large yaw) the median
   landmark error against the detector's 68 points (px) and the photometric error of the face re-rendered with its
   own light, the time per face of the estimate alone and of detection + estimate (target: fast path
   <= 10 ms per face), and the regressor's confidence on these real faces.

The network alone (ONNX Runtime, batch 1 on one thread, and batched) is timed by ``benchmarks/regressor_speed.py``;
the detection-inclusive large-pose benchmark is ``benchmarks/large_pose.py --methods mediapipe,fit,regress``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"


def synthetic(weights: str, corpus: Path) -> None:
    import torch

    from facerecon.models import load_model
    from facerecon.nets.weights import load_shipped, load_weights
    from facerecon.train.losses import VertexSubset
    from facerecon.train.regressor import Corpus, evaluate

    model = load_model()
    loaded = load_weights(Path(weights)) if weights.endswith(".safetensors") else load_shipped(weights)
    val = Corpus(corpus)
    with torch.no_grad():
        figures = evaluate(loaded.model, val, VertexSubset(model))
    print(f"## {weights}: synthetic validation views ({int(figures['faces'])} faces, {len(val)} crops)")
    print("| yaw bin | NME % | head-pose error median (deg) |")
    print("|---|---|---|")
    for lo, hi in ((0, 30), (30, 60), (60, 90)):
        key = f"{lo}_{hi}"
        print(f"| [{lo}, {hi}) | {100 * figures[f'nme_yaw_{key}']:.2f} | {figures[f'pose_error_yaw_{key}_deg']:.2f} |")
    print(f"| all | {100 * figures['nme']:.2f} | {figures['pose_error_median_deg']:.2f} |")
    print(f"confidence right on {100 * figures['confidence_accuracy']:.1f} % of the crops (faces and face-free crops)\n")


def real_photos(weights: list[str], limit: int) -> None:
    import numpy as np

    from facerecon.detect import create_detector
    from facerecon.io.image import read_image
    from facerecon.models import load_model
    from facerecon.pipeline.run import Reconstructor, ReconstructOptions

    model = load_model()
    paths = sorted(p for p in FACES.iterdir() if p.suffix.lower() in (".jpg", ".png"))[: limit or None]
    images = [read_image(p) for p in paths]
    detector = create_detector("mediapipe")
    rows = []
    methods = [("fit start=pnp", "fit", {"start": "pnp"})]
    methods += [(f"regress {w}", "regress", {"weights": w}) for w in weights]
    methods += [("fit start=auto", "fit", {"start": "auto", "regressor_weights": weights[-1]})]
    for label, method, extra in methods:
        options = ReconstructOptions(method=method, method_options=extra, render_images=False, details=False,
                                     texture_completion=False, faces="largest")  # fmt: skip
        lm, photo, est_ms, path_ms, confidence = [], [], [], [], []
        with Reconstructor(model, options, detector=detector) as rec:
            rec.run(images[0])  # warm-up (JIT, ONNX session)
            for image in images:
                start = time.perf_counter()
                faces = detector.detect(image)
                if not faces:
                    continue
                estimate = rec.estimator.estimate(image, faces[0], rec.camera_for(image))
                path_ms.append((time.perf_counter() - start) * 1000)
                est_ms.append(sum(estimate.timings_ms.values()))
                confidence.append(estimate.confidence)
                out = rec.reconstruct_face(image, faces[0])
                lm.append(out.fit.landmark_error_px / max(out.detection.box_size, 1e-9))
                photo.append(out.fit.photometric_error)
        rows.append((label, len(lm), statistics.median(lm) * 100, float(np.mean(photo)), statistics.median(est_ms),
                     statistics.median(path_ms), min(confidence), float(np.mean(np.array(confidence) > 0.5))))  # fmt: skip
    detector.close()
    print(f"## Real validation photos ({len(images)} of faces/, the largest face each)")
    print("| method | faces | landmark error vs detections (median, % of box) | photometric error (mean) "
          "| estimate ms (median) | detect + estimate ms | confidence min | confidence > 0.5 |")
    print("|---|---|---|---|---|---|---|---|")
    for method, n, lm, ph, est, total, cmin, cshare in rows:
        print(f"| {method} | {n} | {lm:.2f} | {ph:.4f} | {est:.1f} | {total:.1f} | {cmin:.2f} | {100 * cshare:.0f} % |")
    fit = rows[0]
    for row in rows[1:]:
        print(f"{row[0]} / fit: estimate time {row[4] / fit[4]:.3f}x, detect + estimate {row[5] / fit[5]:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="regressor-128-v1,regressor-128-v2",
                        help="shipped weights names or .safetensors paths, comma-separated (default: %(default)s)")
    parser.add_argument("--corpus", type=Path, default=Path("corpus/val"), help="the validation corpus folder")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N photos (0: all)")
    args = parser.parse_args()
    weights = args.weights.split(",")
    for w in weights:
        synthetic(w, args.corpus)
    real_photos(weights, args.limit)


if __name__ == "__main__":
    main()
