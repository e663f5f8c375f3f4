"""Timing of the evaluation metrics, with baselines measured in the same process.

* exact scan-to-mesh distance (facerecon.eval.point_mesh_distance) vs testing every triangle (brute force),
  per scan point, on the ICT head mesh;
* the whole NoW error of one reconstruction (crop, 7-landmark similarity, ICP, distances);
* SSIM (facerecon.eval.ssim_map) vs scikit-image's structural_similarity with the same settings.

Run: python benchmarks/eval_metrics.py   (installs the ICT model into a temporary FACERECON_HOME if needed)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from facerecon.eval import (
    now_landmark_vertices,
    now_scan_error,
    point_mesh_distance,
    ssim_map,
)
from facerecon.eval.mesh_metrics import closest_points_on_triangles

ICT_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "ict-facekit" / "ICT-FaceKit-master.zip"


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def load_face_model():
    from facerecon.models import load_model
    from facerecon.models.ict import install_ict, read_meta

    home = os.environ.get("FACERECON_HOME")
    if home is None or read_meta(home) is None:
        home = tempfile.mkdtemp(prefix="facerecon-bench-")
        install_ict(str(ICT_ZIP), home=home, progress=False)
    return load_model(home=home, install=False)


def main() -> None:
    rng = np.random.default_rng(0)
    model = load_face_model()
    head = model.submesh("head")
    v = model.mean[: head.vertex_count].double().numpy()
    f = head.triangles.numpy()
    face_n = model.submesh("face").vertex_count
    # A "scan": the face vertices, four times, each jittered by 1 mm.
    scan = np.concatenate([v[:face_n] + rng.normal(0, 1.0, (face_n, 3)) for _ in range(4)])

    t_fast = best_of(lambda: point_mesh_distance(scan, v, f), repeat=2)
    few = scan[:100]
    pairs_p = np.repeat(np.arange(len(few)), len(f))
    pairs_t = np.tile(np.arange(len(f)), len(few))

    def brute() -> None:
        closest_points_on_triangles(few[pairs_p], v[f[pairs_t, 0]], v[f[pairs_t, 1]], v[f[pairs_t, 2]])

    t_brute = best_of(brute, repeat=1) / len(few) * len(scan)
    print(f"scan-to-mesh distance, {len(scan)} points vs {len(f)} triangles (ICT head):")
    print(f"  point_mesh_distance      {t_fast * 1e3:9.1f} ms  ({t_fast / len(scan) * 1e6:.2f} us/point)")
    print(f"  brute force (estimated)  {t_brute * 1e3:9.1f} ms  (from 100 points)")
    print(f"  speed-up                 {t_brute / t_fast:9.1f} x")

    lm = model.mean.double().numpy()[now_landmark_vertices(model)]
    t_now = best_of(lambda: now_scan_error(scan, lm, v, f, lm), repeat=2)
    err = now_scan_error(scan, lm, v, f, lm)
    print(f"NoW error of one reconstruction ({int(err.crop.sum())} cropped scan points, "
          f"{err.alignment.icp_iterations} ICP rounds): {t_now * 1e3:.1f} ms; mean {err.mean:.3f} mm")

    from skimage.metrics import structural_similarity

    a = rng.uniform(0, 1, (512, 512, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    t_ours = best_of(lambda: ssim_map(a, b))
    t_sk = best_of(lambda: structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                 data_range=1.0, channel_axis=-1, full=True))  # fmt: skip
    print("SSIM map of a 512 x 512 RGB pair:")
    print(f"  facerecon.eval.ssim_map  {t_ours * 1e3:9.1f} ms")
    print(f"  skimage (baseline)       {t_sk * 1e3:9.1f} ms")
    print(f"  ratio ours / skimage     {t_ours / t_sk:9.2f}")


if __name__ == "__main__":
    main()
