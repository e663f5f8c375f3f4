"""Benchmark the geometry and SH-lighting ops on the full ICT head mesh (26,719 vertices, 52,220 triangles).

Usage: python benchmarks/geometry.py [--source ZIP] [--runs 30] [--threads 2]

Each figure is printed beside a baseline measured in the same process (a plain NumPy version of the same
computation, as research code usually writes it) and their ratio (ours / baseline; below 1 is faster).
"""

from __future__ import annotations

import argparse
import math
import zipfile
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from facerecon.geometry.align import SimilarityTransform, icp, umeyama
from facerecon.geometry.camera import PerspectiveCamera, transform
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.geometry.rotation import axis_angle_to_matrix, head_angles_to_camera_rotation
from facerecon.render.sh import ambient_sh, shade
from _timing import median_ms  # benchmarks/_timing.py (the script folder is on sys.path)

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared/data/ict-facekit/ICT-FaceKit-master.zip"
MEMBER = "ICT-FaceKit-master/FaceXModel/generic_neutral_mesh.obj"



def _read_mesh(source: str) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(source) as z:
        lines = z.read(MEMBER).decode("ascii").splitlines()
    v, f = [], []
    for line in lines:
        if line.startswith("v "):
            v.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(c.split("/")[0]) - 1 for c in line.split()[1:]]
            f += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
    return np.asarray(v) * 10.0, np.asarray(f, dtype=np.int64)


def _np_vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    out = np.empty_like(v)
    for b in range(v.shape[0]):
        cross = np.cross(v[b, f[:, 1]] - v[b, f[:, 0]], v[b, f[:, 2]] - v[b, f[:, 0]])
        acc = np.zeros_like(v[b])
        for k in range(3):
            np.add.at(acc, f[:, k], cross)
        out[b] = acc / np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-20)
    return out


def _np_shade(albedo: np.ndarray, n: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    c0, c1, c2 = 0.5 / math.sqrt(math.pi), math.sqrt(3 / (4 * math.pi)), 0.5 * math.sqrt(15 / math.pi)
    basis = np.stack(
        [np.full_like(x, c0), c1 * y, c1 * z, c1 * x, c2 * x * y, c2 * y * z,
         0.25 * math.sqrt(5 / math.pi) * (3 * z * z - 1), c2 * x * z, 0.25 * math.sqrt(15 / math.pi) * (x * x - y * y)],
        -1,
    )  # fmt: skip
    factors = np.array([1, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25])
    return albedo * np.einsum("bnk,bkc->bnc", basis, coeffs * factors[:, None])


def _np_umeyama(src: np.ndarray, tgt: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    out = []
    for s, t in zip(src, tgt):
        ms, mt = s.mean(0), t.mean(0)
        u, d, vt = np.linalg.svd((t - mt).T @ (s - ms) / len(s))
        sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
        r = u @ np.diag([1, 1, sign]) @ vt
        scale = (d * [1, 1, sign]).sum() / ((s - ms) ** 2).sum(1).mean()
        out.append((r, mt - scale * r @ ms, scale))
    return out


def _row(name: str, ours: float, base: float, unit: str = "ms") -> None:
    print(f"{name:<44s} {ours:9.2f} {unit}   baseline {base:9.2f} {unit}   ratio {ours / base:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(DEFAULT_SOURCE))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (use 1 on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = args.runs

    v_np, f_np = _read_mesh(args.source)
    print(f"mesh: {v_np.shape[0]} vertices, {f_np.shape[0]} triangles; torch {torch.__version__}, {args.threads} thread(s)")
    batch = 8
    faces = torch.from_numpy(f_np)
    angles = torch.tensor([[0.1 * i, 0.2 - 0.05 * i, 0.02 * i] for i in range(batch)])
    rotation = head_angles_to_camera_rotation(angles)
    t = torch.tensor([[0.0, 0.0, 800.0]]).expand(batch, 3)
    verts = transform(torch.from_numpy(v_np).float()[None].expand(batch, -1, -1).contiguous(), rotation, t)
    verts64 = verts.double().numpy()

    _row(
        f"vertex_normals forward, B={batch} (float32)",
        median_ms(lambda: vertex_normals(verts, faces), runs),
        median_ms(lambda: _np_vertex_normals(verts64, f_np), max(3, runs // 5)),
    )
    vg = verts.clone().requires_grad_()

    def normals_fb() -> None:
        vertex_normals(vg, faces).sum().backward()

    _row(f"vertex_normals forward+backward, B={batch}", median_ms(normals_fb, runs), median_ms(lambda: vertex_normals(verts, faces), runs))

    normals = vertex_normals(verts, faces)
    albedo = torch.full_like(verts, 0.6)
    coeffs = ambient_sh(1.0, batch) + 0.1 * torch.randn(batch, 9, 3, generator=torch.Generator().manual_seed(0))
    _row(
        f"shade (SH, 9x3), B={batch}, V={v_np.shape[0]}",
        median_ms(lambda: shade(albedo, normals, coeffs), runs),
        median_ms(lambda: _np_shade(albedo.numpy(), normals.numpy(), coeffs.numpy()), runs),
    )

    cam = PerspectiveCamera.from_fov(math.radians(30), 512, 512)
    k = cam.intrinsics[0].numpy()

    def np_project() -> np.ndarray:
        p = verts.numpy() @ k.T
        return p[..., :2] / p[..., 2:]

    _row(f"project, B={batch}, V={v_np.shape[0]}", median_ms(lambda: cam.project(verts), runs), median_ms(np_project, runs))

    g = torch.Generator().manual_seed(1)
    src = torch.randn(64, 68, 3, generator=g, dtype=torch.float64) * 40
    truth = SimilarityTransform(
        axis_angle_to_matrix(torch.randn(64, 3, generator=g, dtype=torch.float64)),
        torch.randn(64, 3, generator=g, dtype=torch.float64),
        torch.rand(64, generator=g, dtype=torch.float64) + 0.5,
    )
    tgt = truth.apply(src)
    _row(
        "umeyama, B=64 x 68 landmarks (float64)",
        median_ms(lambda: umeyama(src, tgt), runs),
        median_ms(lambda: _np_umeyama(src.numpy(), tgt.numpy()), runs),
    )

    target = torch.from_numpy(v_np)
    crop = target[(target[:, 2] > 20) & (target[:, 0] > -40) & (target[:, 1] > -60)]
    perturb = SimilarityTransform(
        axis_angle_to_matrix(torch.tensor([0.05, -0.12, 0.04], dtype=torch.float64)),
        torch.tensor([6.0, -4.0, 3.0], dtype=torch.float64),
        torch.tensor(1.0, dtype=torch.float64),
    )
    scan = perturb.apply(crop)
    result = icp(scan, target, max_iterations=100)
    scan_np = scan.numpy()

    def tree_pass() -> None:
        cKDTree(v_np).query(scan_np)

    icp_ms = median_ms(lambda: icp(scan, target, max_iterations=100), 3)
    _row(f"icp, {scan.shape[0]} pts onto {v_np.shape[0]} ({result.iterations} rounds)", icp_ms, median_ms(tree_pass, 5))
    print(f"icp final rmse {result.rmse:.2e} mm, converged={result.converged} (baseline: one cKDTree build + query)")


if __name__ == "__main__":
    main()
