"""Benchmark image formation on the ICT face area: rasterizer, shading + backward, point-based formation.

Usage: python benchmarks/render.py [--runs 50] [--source ZIP]

Prints each figure beside a baseline measured in the same process:

* the numba rasterizer at 512 x 512 against a naive rasterizer (a Python loop over triangles with a NumPy
  bounding-box test per triangle, as research code often does), on the same mesh and view;
* its first-call JIT compile time (in a fresh process with an empty numba cache) and the first call with the
  on-disk cache warm;
* projection + rasterize (differentiable barycentrics) + interpolation + per-pixel SH shading + backward at
  256 x 256 (gradients to the camera-space vertices, albedo, normals and light; vertex normals are given),
  beside the point-based image formation of paper 004 (per-vertex shading + bilinear sampling + backward).

Targets (issue 3): rasterize_ms <= 5; interpolation + SH shading + backward <= 30 ms at 256 x 256.
The last line is ``rasterize_ms=<median over the runs> faces=<count> size=512`` followed by the baseline.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from facerecon.core.errors import ModelCacheError
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.models import load_model
from facerecon.models.ict import install_ict
from facerecon.render.images import shade_fragments
from facerecon.render.rasterize import rasterize
from facerecon.render.sample import sample_image
from facerecon.render.sh import directional_sh, shade
from facerecon.render.visibility import vertex_visibility
from _timing import median_ms  # benchmarks/_timing.py (the script folder is on sys.path)

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared/data/ict-facekit/ICT-FaceKit-master.zip"

_COLD_JIT = """
import time, torch
from facerecon.render.rasterize import rasterize
v = torch.tensor([[[0.0, 0.0, 1.0], [4.0, 0.0, 1.0], [0.0, 4.0, 1.0]]])
start = time.perf_counter()
rasterize(v, torch.tensor([[0, 1, 2]]), (8, 8))
print(time.perf_counter() - start)
"""



def _naive_rasterize(screen: np.ndarray, faces: np.ndarray, height: int, width: int) -> np.ndarray:
    """Baseline: loop over triangles in Python, NumPy edge functions over each bounding box, z-buffer."""
    zbuf = np.full((height, width), np.inf)
    face_index = np.full((height, width), -1, dtype=np.int64)
    for f, (a, b, c) in enumerate(faces):
        p = screen[[a, b, c]]
        x0, y0 = np.maximum(np.ceil(p[:, :2].min(0)), 0).astype(int)
        x1, y1 = np.minimum(np.floor(p[:, :2].max(0)), [width - 1, height - 1]).astype(int)
        if x1 < x0 or y1 < y0:
            continue
        ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        area = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0])
        if area == 0:
            continue
        w0 = ((p[1, 0] - xs) * (p[2, 1] - ys) - (p[1, 1] - ys) * (p[2, 0] - xs)) / area
        w1 = ((p[2, 0] - xs) * (p[0, 1] - ys) - (p[2, 1] - ys) * (p[0, 0] - xs)) / area
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        inv_z = w0 / p[0, 2] + w1 / p[1, 2] + w2 / p[2, 2]
        z = 1.0 / np.where(inside, inv_z, 1e-30)
        region = zbuf[y0 : y1 + 1, x0 : x1 + 1]
        closer = inside & (z < region)
        region[closer] = z[closer]
        face_index[y0 : y1 + 1, x0 : x1 + 1][closer] = f
    return face_index


def _load(source: str):
    try:
        return load_model(install=False)
    except ModelCacheError:
        home = tempfile.mkdtemp(prefix="facerecon-bench-")
        install_ict(source, home=home, progress=False)
        return load_model(home=home, install=False)


def _view(model, used: int, size: int):
    """Camera-space vertices ``(1, V, 3)`` of the neutral face seen frontally at 600 mm (its first ``used``
    vertices centred on the optical axis) and a camera in which they fill about 90% of ``size`` x ``size``."""
    flip = torch.tensor([1.0, -1.0, -1.0])
    cam = model.mean * flip + torch.tensor([0.0, 0.0, 600.0])
    cam = cam - torch.tensor([0.0, float(cam[:used, 1].max() + cam[:used, 1].min()) / 2, 0.0])
    extent = float((cam[:used, :2] / cam[:used, 2:3]).abs().amax())
    return cam[None], PerspectiveCamera.from_focal(0.45 * size / extent, size, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is steadier on a busy machine)")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", _COLD_JIT], env=env, capture_output=True, text=True, check=True)
        cold_s = float(out.stdout.strip().splitlines()[-1])
    out = subprocess.run([sys.executable, "-c", _COLD_JIT], capture_output=True, text=True, check=True)
    warm_s = float(out.stdout.strip().splitlines()[-1])
    print(f"first call: {cold_s:.2f} s with an empty numba cache (JIT compile), {warm_s * 1000:.0f} ms with the cache")

    model = _load(args.source)
    face = model.submesh("face")
    faces = face.triangles
    n_faces = int(faces.shape[0])

    cam512, camera512 = _view(model, face.vertex_count, 512)
    screen512 = camera512.project_with_depth(cam512)
    frags = rasterize(screen512, faces, (512, 512))
    fast_ms = median_ms(lambda: rasterize(screen512, faces, (512, 512)), args.runs)
    screen_np = screen512[0].double().numpy()
    faces_np = faces.numpy()
    naive_runs = 3
    naive_ms = median_ms(lambda: _naive_rasterize(screen_np, faces_np, 512, 512), naive_runs)
    naive = _naive_rasterize(screen_np, faces_np, 512, 512)
    agree = float((torch.from_numpy(naive) >= 0).eq(frags.mask[0]).double().mean())
    print(
        f"rasterize 512x512, {n_faces} faces, {int(frags.mask.sum())} px covered: {fast_ms:.2f} ms "
        f"(median of {args.runs}); naive per-triangle NumPy loop {naive_ms:.0f} ms (median of {naive_runs}); "
        f"speed-up {naive_ms / fast_ms:.0f}x; coverage agreement {agree:.5f}"
    )

    # Differentiable shading at 256 x 256: rasterize (bary recomputed with gradients), interpolate albedo and
    # normals, SH-shade per pixel, L2 loss against a target image, backward.
    cam256, camera = _view(model, face.vertex_count, 256)
    cam256 = cam256.clone().requires_grad_(True)
    albedo = torch.full((1, cam256.shape[1], 3), 0.7, requires_grad=True)
    light = directional_sh(torch.tensor([[-0.3, -0.4, -1.0]]), torch.full((1, 3), 2.0), ambient=0.3).requires_grad_(True)
    target = torch.rand(1, 3, 256, 256)

    normals256 = vertex_normals(cam256.detach(), model.triangles).requires_grad_(True)

    def pixel_step() -> None:
        screen = camera.project_with_depth(cam256)
        fr = rasterize(screen, faces, (256, 256))
        image = shade_fragments(fr, faces, albedo, normals256, light)
        loss = ((image - target) ** 2 * fr.mask[:, None]).sum()
        loss.backward()

    pixel_ms = median_ms(pixel_step, 20)

    def point_step() -> None:
        screen = camera.project_with_depth(cam256)
        normals = normals256
        with torch.no_grad():
            fr = rasterize(screen.detach(), faces, (256, 256))
            visible = vertex_visibility(screen.detach(), model.triangles, fr)[:, : face.vertex_count]
        colours = shade(albedo[:, : face.vertex_count], normals[:, : face.vertex_count], light)
        observed = sample_image(target, screen[:, : face.vertex_count, :2])
        loss = (((colours - observed) ** 2).sum(-1) * visible).sum()
        loss.backward()

    point_ms = median_ms(point_step, 20)
    print(
        f"rasterize + interpolate + SH shading + backward 256x256: {pixel_ms:.1f} ms (target 30); "
        f"point-based formation (paper 004: per-vertex shading + visibility + bilinear sampling + backward) "
        f"{point_ms:.1f} ms; ratio {pixel_ms / point_ms:.2f}"
    )
    status = "OK" if fast_ms <= 5 else "ABOVE TARGET"
    print(f"target rasterize_ms <= 5: {status}; torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}")
    print(
        f"rasterize_ms={fast_ms:.2f} faces={n_faces} size=512 "
        f"naive_ms={naive_ms:.0f} speedup={naive_ms / fast_ms:.0f}x"
    )


if __name__ == "__main__":
    main()
