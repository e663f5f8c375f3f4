"""Benchmark of the MediaPipe-478 landmark calibration: time, held-out reprojection error, pose drift.

Run: ``python benchmarks/calibrate.py [--home DIR]`` (the ICT model must be installed there). Prints the figures
of the default calibration (150 renders at 512 px, points per head-pose cell) and, as the baselines measured in
the same process on the same renders: its pose-free points (one point per landmark at every pose), the best
sampled candidate per landmark without the continuous refinement (``refine_iterations=0``), the plain
geometric-median embedding (no reprojection-scored choice, no refinement), and the time of rendering and
detecting alone.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from facerecon.calibrate import EmbeddingConfig, calibrate_landmarks, render_calibration_views
from facerecon.detect import create_detector
from facerecon.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", help="cache root with the installed model")
    args = parser.parse_args()
    model = load_model(home=args.home, install=False)
    config = EmbeddingConfig()
    with create_detector("mediapipe", max_faces=1) as detector:
        detector.detect(render_calibration_views(model, config, rows=[0])[0][0])  # warm up graphs and numba
        started = time.perf_counter()
        images, views = render_calibration_views(model, config)
        for image in images:
            detector.detect(image)
        base_seconds = time.perf_counter() - started
        embedding = calibrate_landmarks(model, detector, config)
        # Baselines (pose-free points): the best sampled candidate (no refinement); the geometric median + snap alone.
        unrefined = calibrate_landmarks(model, detector, EmbeddingConfig(refine_iterations=0, pose_cells=False))
        median_only = calibrate_landmarks(model, detector, EmbeddingConfig(max_candidates=0, refine_iterations=0, pose_cells=False))
    print(f"renders + detection alone: {len(views)} renders in {base_seconds:.1f} s")
    print(f"calibration:               {embedding.seconds:.1f} s ({embedding.seconds / base_seconds:.2f}x rendering + detection)")
    print(embedding.summary())
    errors = embedding.heldout_errors
    print(f"contour (face-oval) points, frontal embedding, held-out median {np.nanmedian(errors[:, embedding.contour]):.2f} px")
    print(
        f"baseline pose-free points of the same calibration: held-out median {embedding.heldout_posefree_median_px:.2f} px "
        f"(ratio of medians {embedding.heldout_median_px / embedding.heldout_posefree_median_px:.3f})"
    )
    print(
        f"baseline best candidate, no refinement: held-out median {unrefined.heldout_median_px:.2f} px, 90th percentile "
        f"{unrefined.heldout_p90_px:.2f} px, {100 * unrefined.heldout_median_nme:.2f} % NME, {unrefined.seconds:.1f} s "
        f"(ratio of medians {embedding.heldout_median_px / unrefined.heldout_median_px:.3f})"
    )
    print(
        f"baseline geometric median + snap: held-out median {median_only.heldout_median_px:.2f} px, "
        f"90th percentile {median_only.heldout_p90_px:.2f} px (ratio of medians "
        f"{embedding.heldout_median_px / median_only.heldout_median_px:.3f})"
    )


if __name__ == "__main__":
    main()
