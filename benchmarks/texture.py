"""Benchmark the texture and details stages over the shared photos: re-rendering quality and time.

Usage: python benchmarks/texture.py [--faces DIR] [--out out/bench-texture] [--limit N] [--only NAME...]

For every photo (largest face, default options: completion and details on), on the visible face mask of the
fit (``Reconstruction.face_mask``: the photometric region, seen, not occluded) against the photo:
  * **textured**: the face re-rendered with the completed texture (``texture.png``) at each pixel's UV;
  * **albedo x shading, coarse**: the fitted per-vertex albedo under the fitted SH light with the coarse
    normals (sampled from a model-space normal map of the undisplaced face, as the detailed one is);
  * **albedo x shading, details**: the same with the normals of ``normal_map.png`` (the displaced surface).
  PSNR (dB), SSIM and L1 (channels in [0, 1]) from ``facerecon.eval.image_metrics``. Paper 003 reports PSNR
  21.7 to 27.6; our target for the textured face is >= 28 dB.
Time: the ``texture`` and ``details`` stages of ``Reconstruction.timings_ms`` (target: <= 2 s together per
face), and, as a baseline measured in the same process, the plain photo bake (``PhotoTextureBaker.bake``,
no de-lighting or completion) on the same face.
Pictures in --out: per photo ``<stem>.png`` = photo | textured re-render | frontal render of the completed
head | albedo.png | displacement (grey, +-0.5 mm) | normal_map.png.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facerecon.eval.image_metrics import l1_error, psnr, ssim
from facerecon.io.image import read_image_with_info
from facerecon.models import load_model
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.pipeline.run import ReconstructOptions, Reconstructor
from facerecon.render.interpolate import interpolate
from facerecon.render.rasterize import rasterize
from facerecon.render.sh import irradiance
from facerecon.render.uv import rasterize_uv
from facerecon.texture.delight import texel_normals

DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared/data/faces"


def sample_uv(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of an ``(S, S, C)`` UV image at UVs ``(..., 2)`` (v up)."""
    size = image.shape[0]
    x = (uv[..., 0] * size - 0.5).astype(np.float32)
    y = ((1.0 - uv[..., 1]) * size - 0.5).astype(np.float32)
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def project(cam: torch.Tensor, intrinsics, image_size) -> torch.Tensor:
    """``(1, N, 3)`` pixel coordinates and depth of camera-space points ``(1, N, 3)`` with a reconstruction's
    intrinsics ``(fx, fy, cx, cy)``."""
    fx, fy, cx, cy = (torch.tensor([float(v)], dtype=cam.dtype) for v in intrinsics)
    return PerspectiveCamera(fx, fy, cx, cy, image_size[1], image_size[0]).project_with_depth(cam)


def pixel_uvs(model, rec, submesh: str = "face"):
    """Per photo pixel: the face's UV (``(H, W, 2)``) and coverage, from the fitted pose."""
    sub = model.submesh(submesh)
    n = sub.vertex_count
    verts = torch.tensor(rec.mesh.vertices[:n], dtype=torch.float32)[None]
    cam = verts @ torch.tensor(rec.pose.rotation, dtype=torch.float32).T + torch.tensor(rec.pose.translation, dtype=torch.float32)
    screen = project(cam, rec.camera.intrinsics, rec.camera.image_size)
    frags = rasterize(screen, sub.triangles, rec.camera.image_size)
    uv = interpolate(model.uvs, sub.uv_triangles, frags)[0].numpy()
    return uv, frags.mask[0].numpy(), frags, sub, cam


def shade_map(albedo_px: np.ndarray, normals_model: np.ndarray, rotation: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """``albedo * S(R n)`` per pixel; normals ``(H, W, 3)`` in model space."""
    n = normals_model / np.maximum(np.linalg.norm(normals_model, axis=-1, keepdims=True), 1e-9)
    cam_n = torch.from_numpy((n @ rotation.T).reshape(1, -1, 3).astype(np.float32))
    s = irradiance(cam_n, torch.from_numpy(sh.astype(np.float32))[None])[0].numpy().reshape(albedo_px.shape)
    return np.clip(albedo_px * s, 0, 1)


def frontal_render(model, rec, texture: np.ndarray, size: int = 512) -> np.ndarray:
    """The textured head seen from the front (orthographic), over grey."""
    sub = model.submesh("face")
    verts = torch.tensor(rec.mesh.vertices[: sub.vertex_count], dtype=torch.float32)
    lo, hi = verts[:, :2].min(0).values, verts[:, :2].max(0).values
    scale = 0.9 * size / float((hi - lo).max())
    centre = (lo + hi) / 2
    screen = torch.stack([(verts[:, 0] - centre[0]) * scale + size / 2, -(verts[:, 1] - centre[1]) * scale + size / 2,
                          1000.0 - verts[:, 2]], 1)[None]  # fmt: skip
    frags = rasterize(screen, sub.triangles, (size, size))
    uv = interpolate(model.uvs, sub.uv_triangles, frags)[0].numpy()
    out = np.full((size, size, 3), 0.5, np.float32)
    mask = frags.mask[0].numpy()
    out[mask] = sample_uv(texture.astype(np.float32) / 255.0, uv)[mask]
    return (out * 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--out", type=Path, default=Path("out/bench-texture"))
    parser.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    parser.add_argument("--only", nargs="*", default=None, help="these file names only")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if args.only:
        photos = [p for p in photos if p.name in args.only]
    if args.limit:
        photos = photos[: args.limit]
    model = load_model()
    face = model.submesh("face")
    rows, times, base_times = [], [], []
    with Reconstructor(model, ReconstructOptions(render_images=False)) as rec:
        coarse_frags = rasterize_uv(model.uvs, face.uv_triangles, rec.options.texture_size)
        for path in photos:
            try:
                result = rec.run(path)
            except Exception as err:  # noqa: BLE001 - a benchmark reports and goes on
                print(f"{path.name}: skipped ({type(err).__name__}: {err})")
                continue
            if not result.reconstructions:
                print(f"{path.name}: skipped (no face reconstructed)")
                continue
            r = result.reconstructions[0]
            if r.coefficients.sh is None or r.textures.normal_map is None:
                print(f"{path.name}: skipped (no photometric stage)")
                continue
            photo = read_image_with_info(path, max_side=rec.options.max_image_side).image.astype(np.float32) / 255.0
            uv, covered, _, sub, cam = pixel_uvs(model, r)
            mask = r.pictures.face_mask & covered
            if mask.sum() < 100:
                print(f"{path.name}: skipped (face mask of {mask.sum()} px)")
                continue
            textured = photo.copy()
            textured[covered] = sample_uv(r.textures.texture.astype(np.float32) / 255.0, uv)[covered]
            # Albedo x shading with coarse / detailed normals (model-space normal maps sampled alike).
            albedo_tex = interpolate(torch.tensor(r.mesh.albedo[: sub.vertex_count], dtype=torch.float32), sub.triangles, coarse_frags)[0].numpy()
            coarse_n = texel_normals(torch.tensor(r.mesh.vertices[None, : sub.vertex_count], dtype=torch.float32), sub.triangles, coarse_frags)[0]
            coarse_map = coarse_n.permute(1, 2, 0).numpy()
            detail_map = r.textures.normal_map.astype(np.float32) / 255.0 * 2.0 - 1.0
            albedo_px = sample_uv(albedo_tex, uv)
            plain = photo.copy()
            plain[covered] = shade_map(albedo_px, sample_uv(coarse_map, uv), r.pose.rotation, r.coefficients.sh)[covered]
            detailed = photo.copy()
            detailed[covered] = shade_map(albedo_px, sample_uv(detail_map, uv), r.pose.rotation, r.coefficients.sh)[covered]
            row = {"name": path.stem, "yaw": float(r.pose.angles_deg[1])}
            for key, img in (("tex", textured), ("coarse", plain), ("detail", detailed)):
                row[key] = (psnr(photo, img, mask), ssim(photo, img, mask), l1_error(photo, img, mask))
            t_total = r.fit.timings_ms.get("texture", 0.0) + r.fit.timings_ms.get("details", 0.0)
            row["ms"] = (r.fit.timings_ms.get("texture", 0.0), r.fit.timings_ms.get("details", 0.0), t_total)
            # Baseline in the same process: the plain bake of the same face.
            head_n = face.vertex_count
            photo_t = torch.from_numpy(photo).permute(2, 0, 1)
            screen = project(cam, r.camera.intrinsics, r.camera.image_size)
            start = time.perf_counter()
            rec.baker.bake(photo_t, screen, cam, face.triangles, torch.tensor(r.mesh.albedo[:head_n], dtype=torch.float32))
            base_times.append((time.perf_counter() - start) * 1000)
            times.append(t_total)
            rows.append(row)
            print(f"{path.stem:<58} yaw {row['yaw']:+4.0f}  textured {row['tex'][0]:5.2f} dB  coarse {row['coarse'][0]:5.2f}"
                  f"  details {row['detail'][0]:5.2f}  texture {row['ms'][0]:5.0f} ms  details {row['ms'][1]:5.0f} ms", flush=True)  # fmt: skip
            # Pictures for a person.
            disp = np.clip(128 + r.textures.displacement / 0.5 * 127, 0, 255).astype(np.uint8)
            h = 256
            tiles = [cv2.resize((photo * 255).astype(np.uint8), (h * photo.shape[1] // photo.shape[0], h)),
                     cv2.resize((textured * 255).clip(0, 255).astype(np.uint8), (h * photo.shape[1] // photo.shape[0], h)),
                     cv2.resize(frontal_render(model, r, r.mesh.export_mesh.texture), (h, h)),
                     cv2.resize(r.textures.albedo, (h, h)), cv2.resize(np.dstack([disp] * 3), (h, h)),
                     cv2.resize(r.textures.normal_map, (h, h))]  # fmt: skip
            cv2.imwrite(str(args.out / f"{path.stem}.png"), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))
    if not rows:
        print("no face measured")
        return
    print()
    print(f"faces measured: {len(rows)} of {len(photos)} photos")
    print("| render | PSNR dB (median) | PSNR dB (mean) | SSIM (mean) | L1 (mean) |")
    print("|---|---|---|---|---|")
    for key, label in (("tex", "textured (completed texture)"), ("coarse", "albedo x shading, coarse normals"),
                       ("detail", "albedo x shading, detailed normals")):  # fmt: skip
        values = np.array([r[key] for r in rows])
        print(f"| {label} | {np.median(values[:, 0]):.2f} | {values[:, 0].mean():.2f} | {values[:, 1].mean():.4f} | {values[:, 2].mean():.4f} |")
    better = sum(r["detail"][0] > r["coarse"][0] for r in rows)
    print(f"details raise the albedo x shading PSNR on {better} of {len(rows)} faces "
          f"(mean {np.mean([r['detail'][0] - r['coarse'][0] for r in rows]):+.3f} dB)")
    tex_ms = [r["ms"][0] for r in rows]
    det_ms = [r["ms"][1] for r in rows]
    print(f"time per face: texture median {statistics.median(tex_ms):.0f} ms, details median {statistics.median(det_ms):.0f} ms, "
          f"together median {statistics.median(times):.0f} ms, max {max(times):.0f} ms (target <= 2000 ms)")
    print(f"baseline (plain photo bake, same process): median {statistics.median(base_times):.0f} ms; "
          f"texture + details / baseline = {statistics.median(times) / statistics.median(base_times):.2f}x")


if __name__ == "__main__":
    main()
