"""Timing of facerecon.io mesh writers/readers and image reading, against trimesh/Pillow in the same process.

Run: python benchmarks/bench_io_mesh_image.py   (uses ../shared; prints figures, asserts nothing)
"""

from __future__ import annotations

import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from facerecon.core.mesh import Mesh
from facerecon.io.gltf import read_glb, write_glb
from facerecon.io.image import downscale_for_detection, read_image
from facerecon.io.mesh import read_obj, read_ply, write_obj, write_ply

SHARED = Path(__file__).resolve().parents[2] / "shared"
ICT_ZIP = SHARED / "data" / "ict-facekit" / "ICT-FaceKit-master.zip"
PHOTO = SHARED / "data" / "faces" / "3ddfa-emma.jpg"


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-io-"))
    with zipfile.ZipFile(ICT_ZIP) as z:
        names = [n for n in z.namelist() if n.startswith("ICT-FaceKit-master/FaceXModel/") and n.endswith(".obj")]
        neutral_name = next(n for n in names if n.endswith("/generic_neutral_mesh.obj"))
        (tmp / "neutral.obj").write_bytes(z.read(neutral_name))
        neutral = read_obj(tmp / "neutral.obj", load_texture=False)
        expr = sorted(n for n in names if "identity" not in n and n != neutral_name)[:53]
        deltas = []
        for n in expr:
            (tmp / "e.obj").write_bytes(z.read(n))
            deltas.append((read_obj(tmp / "e.obj", load_texture=False).vertices - neutral.vertices) * 10.0)
    texture = np.asarray(Image.open(PHOTO).convert("RGB").resize((1024, 1024)))
    face = Mesh(
        vertices=neutral.vertices * 10.0, faces=neutral.faces, uvs=neutral.uvs, uv_faces=neutral.uv_faces,
        texture=texture, morph_names=tuple(Path(n).stem for n in expr), morph_deltas=np.stack(deltas),
        morph_weights=np.zeros(len(expr)),
    )  # fmt: skip
    print(f"mesh: {len(face.vertices)} vertices, {len(face.faces)} triangles, {len(expr)} morph targets")

    t_glb = best(lambda: write_glb(tmp / "face.glb", face))
    t_glb_read = best(lambda: read_glb(tmp / "face.glb"))
    size = (tmp / "face.glb").stat().st_size
    print(f"write_glb: {t_glb * 1e3:.0f} ms, {size / 1e6:.1f} MB (dense float32 targets would be "
          f"{len(expr) * len(face.vertices) * 12 / 1e6:.1f} MB); read_glb: {t_glb_read * 1e3:.0f} ms")

    tm = trimesh.Trimesh(face.vertices * 1e-3, face.faces, process=False)
    t_tm_glb = best(lambda: tm.export(tmp / "tm.glb"))
    print(f"baseline trimesh GLB export (no texture, no targets): {t_tm_glb * 1e3:.0f} ms "
          f"-> ratio ours/trimesh {t_glb / t_tm_glb:.1f}")

    t_obj = best(lambda: write_obj(tmp / "face.obj", face))
    t_obj_read = best(lambda: read_obj(tmp / "face.obj"))
    t_tm_obj = best(lambda: trimesh.load(tmp / "face.obj", process=False, maintain_order=True))
    print(f"write_obj (+1024^2 PNG): {t_obj * 1e3:.0f} ms; read_obj: {t_obj_read * 1e3:.0f} ms; "
          f"trimesh.load same OBJ: {t_tm_obj * 1e3:.0f} ms -> ratio ours/trimesh {t_obj_read / t_tm_obj:.2f}")

    t_ply = best(lambda: write_ply(tmp / "face.ply", face))
    t_ply_read = best(lambda: read_ply(tmp / "face.ply"))
    t_tm_ply = best(lambda: trimesh.load(tmp / "face.ply", process=False))
    print(f"write_ply: {t_ply * 1e3:.1f} ms; read_ply: {t_ply_read * 1e3:.1f} ms; trimesh.load same PLY: "
          f"{t_tm_ply * 1e3:.1f} ms -> ratio ours/trimesh {t_ply_read / t_tm_ply:.2f}")

    t_img = best(lambda: read_image(PHOTO))
    t_pil = best(lambda: np.asarray(Image.open(PHOTO).convert("RGB")))
    image = read_image(PHOTO)
    t_down = best(lambda: downscale_for_detection(image, 1280))
    print(f"read_image {image.shape[1]}x{image.shape[0]} JPEG: {t_img * 1e3:.0f} ms; plain Pillow decode: "
          f"{t_pil * 1e3:.0f} ms -> ratio {t_img / t_pil:.2f}; downscale_for_detection to 1280: {t_down * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
