"""The position-map network (paper 002) against the parameter regressor and the optimisation fit, validation people only.

Usage: python benchmarks/posmap.py [--r1 NAME|PATH] [--r2 NAME|PATH] [--corpus corpus/val] [--limit 900]
       [--fit-limit 150] [--out DIR]

Prints, in one run, on the synthetic full-pose views with exact ground truth of the validation corpus
(``facerecon train corpus --split val``: the people of ``../shared/data/faces`` re-rendered at yaws to 90 degrees,
pitch to 35, roll; no network trained on them):

1. the 68-landmark NME (% of the ground-truth landmarks' sqrt(w * h), AFLW2000-3D style) by yaw bin of
   * ``posmap r1``: the position-map network trained with paper 002's weight mask 16 : 5 : 4 : 3 : 0,
   * ``posmap r2``: the same network and recipe trained with 1 : 1 : 1 : 1 : 0 (paper 002's ablation),
   * ``regress``: the parameter regressor (the shipped default),
   each as the estimator runs it (two passes, the second re-cropped around the first's face; the landmarks are
   the final mesh's, projected), on ``--limit`` faces spread evenly over the corpus;
2. the same for ``fit`` (today's default pipeline: MediaPipe on the crop upscaled 4x, then the fit) and the
   networks on ``--fit-limit`` of those faces (the fit takes seconds a face); a face the detector misses counts
   as failed and the means are over the faces every method measured;
3. the ratio of each method's mean NME to ``fit``'s on those faces;
4. a CED curve (paper 002, fig. 7) of every method on those faces, as ``OUT/posmap_ced.png``, and the two weight
   masks at the network's map size and at 512 texels, as ``OUT/posmap_weight_masks.png``;
5. the position-map network's time per face with ONNX Runtime on one thread (batch 1; the network alone, and the
   whole estimate: network, map read-back and model fit, two passes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.01))


def _nme(pred: np.ndarray, truth: np.ndarray) -> float:
    lo, hi = truth.min(0), truth.max(0)
    return float(np.linalg.norm(pred - truth, axis=1).mean() / np.sqrt(np.prod(hi - lo)))


def _landmarks(model, estimate) -> np.ndarray:
    """The estimate's 68 landmarks projected into its camera ``(68, 2)`` px."""
    index = model.landmarks("ibug68").vertex_indices.cpu()
    cam = estimate.vertices[index] @ estimate.rotation.T + estimate.translation
    return estimate.camera.to(dtype=cam.dtype).project(cam[None])[0].double().numpy()


def _crop_camera(row: np.ndarray, size: int, upscale: int = 1):
    import torch

    from facerecon.geometry.camera import PerspectiveCamera

    f, cx, cy = (float(v) for v in row)
    s = upscale
    return PerspectiveCamera(torch.tensor([f * s], dtype=torch.float64), torch.tensor([f * s], dtype=torch.float64),
                             torch.tensor([(cx + 0.5) * s - 0.5], dtype=torch.float64),
                             torch.tensor([(cy + 0.5) * s - 0.5], dtype=torch.float64), size * s, size * s)  # fmt: skip


def _network_method(estimator, crops, cameras, size):
    from facerecon.core.errors import FitDivergedError
    from facerecon.nets.crop import CropBox

    out = []
    whole = CropBox((size - 1) / 2, (size - 1) / 2, float(size))
    for crop, cam_row in zip(crops, cameras):
        camera = _crop_camera(cam_row, size)
        try:
            out.append(estimator.estimate_from_box(crop, camera, whole)[1])
        except FitDivergedError:
            out.append(None)
    return out


def _fit_method(model, crops, cameras, size, upscale=4):
    import cv2

    from facerecon.core.errors import FitDivergedError
    from facerecon.detect import create_detector
    from facerecon.estimate import create_estimator

    detector = create_detector("mediapipe")
    fit = create_estimator("fit", model)
    out = []
    try:
        for crop, cam_row in zip(crops, cameras):
            big = cv2.resize(crop, (size * upscale, size * upscale), interpolation=cv2.INTER_CUBIC)
            found = detector.detect(big)
            if not found:
                out.append(None)
                continue
            try:
                est = fit.estimate(big, found[0], _crop_camera(cam_row, size, upscale))
            except FitDivergedError:
                out.append(None)
                continue
            out.append((_landmarks(model, est) + 0.5) / upscale - 0.5)
    finally:
        detector.close()
        fit.close()
    return out


def _table(title, methods, truth, yaws, faces, reference=None):
    print(f"\n## {title}")
    print("| method | [0, 30) | [30, 60) | [60, 90] | mean | failed |" + (" ratio to fit |" if reference else ""))
    print("|---|---|---|---|---|---|" + ("---|" if reference else ""))
    means = {}
    for name, preds in methods.items():
        nme = np.array([_nme(preds[i], truth[i]) if preds[i] is not None else np.nan for i in faces])
        cells = []
        for lo, hi in BINS:
            m = (yaws[faces] >= lo) & (yaws[faces] < hi) & np.isfinite(nme)
            cells.append(f"{100 * nme[m].mean():.2f}" if m.any() else "n/a")
        means[name] = float(np.nanmean(nme))
        row = f"| {name} | " + " | ".join(cells) + f" | {100 * means[name]:.2f} | {int(np.isnan(nme).sum())} of {len(faces)} |"
        if reference:
            row += f" {means[name] / means[reference]:.3f} |" if reference in means else " |"
        print(row)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--r1", default="posmap-128-v1", help="the r1 network (shipped name or .safetensors)")
    parser.add_argument("--r2", default="posmap-128-r2", help="the r2 ablation network (shipped name or .safetensors)")
    parser.add_argument("--regressor", default="regressor-128-v2")
    parser.add_argument("--corpus", type=Path, default=Path("corpus/val"))
    parser.add_argument("--limit", type=int, default=900)
    parser.add_argument("--fit-limit", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()

    from facerecon.core.threads import compute_threads

    with compute_threads(1):  # as the pipeline runs estimators: one torch and one BLAS thread
        run(args)


def run(args: argparse.Namespace) -> None:
    from facerecon.estimate import create_estimator
    from facerecon.models import load_model
    from facerecon.train.corpus import ViewBatch

    model = load_model()
    shards = sorted(args.corpus.glob("shards/*.npz"))
    if not shards:
        raise SystemExit(f"{args.corpus}: no corpus shards; make one with `facerecon train corpus --split val`")
    views = ViewBatch.concatenate([ViewBatch.load(p) for p in shards])
    faces_all = np.flatnonzero(views.is_face)
    chosen = faces_all[np.linspace(0, len(faces_all) - 1, min(args.limit, len(faces_all))).round().astype(int)]
    crops, cameras, truth = views.crops[chosen], views.camera[chosen], views.landmarks[chosen].astype(np.float64)
    yaws = np.abs(views.angles[chosen, 1])
    size = crops.shape[1]
    print(f"validation corpus {args.corpus}: {len(faces_all)} face views of {len(shards)} validation faces; "
          f"measuring {len(chosen)} ({[int(((yaws >= lo) & (yaws < hi)).sum()) for lo, hi in BINS]} by yaw bin)")

    nets = {"posmap r1": ("posmap", args.r1), "posmap r2": ("posmap", args.r2), "regress": ("regress", args.regressor)}
    predictions, seconds = {}, {}
    for label, (method, weights) in nets.items():
        estimator = create_estimator(method, model, weights=weights)
        start = time.perf_counter()
        predictions[label] = _network_method(estimator, crops, cameras, size)
        seconds[label] = (time.perf_counter() - start) / len(chosen)
    everything = np.arange(len(chosen))
    _table(f"networks on {len(chosen)} validation views", predictions, truth, yaws, everything)

    subset = everything[np.linspace(0, len(chosen) - 1, min(args.fit_limit, len(chosen))).round().astype(int)]
    fit_preds = [None] * len(chosen)
    start = time.perf_counter()
    for i, pred in zip(subset, _fit_method(model, crops[subset], cameras[subset], size)):
        fit_preds[i] = pred
    seconds["fit"] = (time.perf_counter() - start) / len(subset)
    methods = {"fit": fit_preds, **predictions}
    common = np.array([i for i in subset if all(methods[m][i] is not None for m in methods)])
    print(f"\nthe fit found {sum(fit_preds[i] is not None for i in subset)} of {len(subset)} faces")
    _table(f"every method on the {len(common)} views all of them measured", methods, truth, yaws, common, reference="fit")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    grid = np.linspace(0, 0.1, 201)
    for name, preds in methods.items():
        nme = np.sort([_nme(preds[i], truth[i]) for i in common])
        ax.plot(100 * grid, 100 * np.searchsorted(nme, grid, side="right") / len(nme),
                label=f"{name} (mean {100 * nme.mean():.2f} %)")  # fmt: skip
    ax.set_xlabel("NME (% of sqrt(w h) of the 68 points' box)")
    ax.set_ylabel("views (%)")
    ax.set_title(f"CED, synthetic full-pose validation views (n = {len(common)})")
    ax.grid(alpha=0.3)
    ax.legend()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "posmap_ced.png", dpi=120, bbox_inches="tight")
    print(f"\nCED curve: {args.out / 'posmap_ced.png'}")

    from facerecon.nets.position_map import PositionMapLayout

    estimator = create_estimator("posmap", model, weights=args.r1, threads=1)
    panels = []
    for size in (estimator.layout.size, 512):
        layout = PositionMapLayout(model, size)
        for ratio in ("r1", "r2"):
            mask = layout.weight_mask(ratio).numpy()
            panels.append((f"{ratio} at {size} texels", mask / mask.max()))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (title, mask) in zip(axes, panels):
        ax.imshow(mask, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    fig.savefig(args.out / "posmap_weight_masks.png", dpi=100, bbox_inches="tight")
    print(f"weight masks (16 : 5 : 4 : 3 : 0 and 1 : 1 : 1 : 1 : 0): {args.out / 'posmap_weight_masks.png'}")

    crop = (crops[0].transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
    for _ in range(5):
        estimator.network(crop)
    runs = []
    for _ in range(50):
        start = time.perf_counter()
        estimator.network(crop)
        runs.append(time.perf_counter() - start)
    print(f"\nposmap network, batch 1, one thread ({type(estimator.network).__name__}): median "
          f"{1000 * float(np.median(runs)):.2f} ms per face (target <= 15 ms)")
    print("whole estimate per face (two passes: network, map read-back, model fit): "
          + ", ".join(f"{name} {1000 * s:.0f} ms" for name, s in seconds.items()))


if __name__ == "__main__":
    main()
