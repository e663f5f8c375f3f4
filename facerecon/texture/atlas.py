"""The export layout: one texture for the whole displayed head.

The model's own UV layout puts the face on tile [0, 1]^2 and the other parts on further tiles (ICT: head and
neck on [1, 2], gums [2, 3], teeth [3, 4]) or on top of the face tile (the eyeballs). Engines expect one
texture in [0, 1]^2, so for export the face keeps its UVs and every other part is mapped onto a small patch of
flat colour placed in an unused corner of the face tile (the face tile is ~96 % covered; the free texels sit
between the UV islands). Parts: the back of the head and neck (skin colour), mouth interior, eyeball sclera
and iris.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon.models.face_model import FaceModel
from facerecon.models.regions import Region
from facerecon.render.uv import rasterize_uv

# Flat colours (sRGB in [0, 1]) of the parts that the photo never shows well.
MOUTH_INTERIOR_RGB = (0.42, 0.16, 0.16)
SCLERA_RGB = (0.86, 0.84, 0.80)
IRIS_RGB = (0.22, 0.15, 0.11)
PATCHES = ("skin", "mouth_interior", "sclera", "iris")
# The iris is the front cap of the eyeball within this angle of its forward axis (iris radius ~6 mm on an
# eyeball of radius ~12 mm).
IRIS_HALF_ANGLE_DEG = 32.0


@dataclass(frozen=True)
class ExportLayout:
    """UVs of a sub-mesh for a single [0, 1]^2 texture.

    Attributes:
        submesh: the sub-mesh name (e.g. ``"head"``).
        uvs: ``(T, 2)`` float32 UVs in [0, 1] (v up).
        uv_triangles: ``(F_sub, 3)`` int64 indices into ``uvs``.
        patch_centres: per part in :data:`PATCHES`, the ``(u, v)`` its triangles are mapped to.
        patch_radius: half the side of each patch in UV units.
    """

    submesh: str
    uvs: np.ndarray
    uv_triangles: np.ndarray
    patch_centres: dict[str, tuple[float, float]]
    patch_radius: float


def _free_patches(covered: np.ndarray, count: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` disjoint ``side x side`` blocks with no covered texel (row-major order)."""
    integral = np.pad(covered.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]
    found: list[tuple[int, int]] = []
    for r, c in zip(*np.nonzero(sums == 0)):
        if all(abs(r - r0) >= side or abs(c - c0) >= side for r0, c0 in found):
            found.append((int(r), int(c)))
            if len(found) == count:
                return found
    raise ValueError(f"no room for {count} patches of {side} texels in the face tile")


def _iris_vertices(model: FaceModel) -> np.ndarray:
    """``(V,)`` bool: eyeball vertices on the iris cap, found geometrically on the mean face."""
    mean = model.mean.cpu().numpy()
    eye = model.region_labels.cpu().numpy() == Region.EYEBALLS
    head = model.submesh("head").vertex_count
    eye[head:] = False  # eye effect meshes are not exported
    face = model.submesh("face").vertex_count
    eye[:face] = False
    iris = np.zeros(len(mean), dtype=bool)
    for side in (mean[:, 0] < 0, mean[:, 0] >= 0):
        idx = np.flatnonzero(eye & side)
        if len(idx) == 0:
            continue
        pts = mean[idx]
        centre = pts.mean(0)
        offsets = pts - centre
        forward = np.array([0.0, 0.0, 1.0])  # model space: z out of the face
        cos = offsets @ forward / np.maximum(np.linalg.norm(offsets, axis=1), 1e-9)
        iris[idx[cos > np.cos(np.radians(IRIS_HALF_ANGLE_DEG))]] = True
    return iris


def export_layout(model: FaceModel, submesh: str = "head", coverage_size: int = 256) -> ExportLayout:
    """Single-texture UVs for ``submesh``: the face keeps its UVs, other parts go to flat-colour patches."""
    sub = model.submesh(submesh)
    face_tris = model.submesh("face").triangles.shape[0]
    uvs = model.uvs.cpu().numpy().astype(np.float32)
    uv_tri = sub.uv_triangles.cpu().numpy().copy()
    coverage = rasterize_uv(model.uvs, model.submesh("face").uv_triangles, coverage_size).mask[0].cpu().numpy()
    side = max(coverage_size // 64, 3)
    corners = _free_patches(coverage, len(PATCHES), side)
    centres = {
        name: ((c + side / 2) / coverage_size, 1.0 - (r + side / 2) / coverage_size)
        for name, (r, c) in zip(PATCHES, corners)
    }
    labels = model.region_labels.cpu().numpy()
    iris = _iris_vertices(model)
    tris = sub.triangles.cpu().numpy()
    rest = np.arange(face_tris, len(tris))
    tri_labels = labels[tris[rest, 0]]
    part = np.full(len(rest), "skin", dtype=object)
    part[tri_labels == Region.MOUTH_INTERIOR] = "mouth_interior"
    part[tri_labels == Region.EYEBALLS] = "sclera"
    part[iris[tris[rest]].all(axis=1)] = "iris"
    extra = np.array([centres[name] for name in PATCHES], dtype=np.float32)
    first_extra = len(uvs)
    uvs = np.concatenate([uvs, extra])
    for k, name in enumerate(PATCHES):
        uv_tri[rest[part == name]] = first_extra + k
    used, inverse = np.unique(uv_tri, return_inverse=True)
    return ExportLayout(
        submesh=submesh,
        uvs=uvs[used],
        uv_triangles=inverse.reshape(-1, 3).astype(np.int64),
        patch_centres=centres,
        patch_radius=side / 2 / coverage_size,
    )


def paint_patches(texture: np.ndarray, layout: ExportLayout, skin_rgb: np.ndarray) -> np.ndarray:
    """A copy of ``texture`` ``(S, S, 3)`` uint8 with the layout's patches filled with their colours."""
    out = texture.copy()
    size = out.shape[0]
    colours = {"skin": np.asarray(skin_rgb, dtype=np.float64), "mouth_interior": MOUTH_INTERIOR_RGB,
               "sclera": SCLERA_RGB, "iris": IRIS_RGB}  # fmt: skip
    for name, (u, v) in layout.patch_centres.items():
        col = int(round(u * size - 0.5))
        row = int(round((1.0 - v) * size - 0.5))
        half = max(int(np.ceil(layout.patch_radius * size)), 1)
        rgb = np.clip(np.round(np.asarray(colours[name]) * 255), 0, 255).astype(np.uint8)
        out[max(row - half, 0) : row + half + 1, max(col - half, 0) : col + half + 1] = rgb
    return out
