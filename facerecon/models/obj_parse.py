"""A fast, minimal Wavefront OBJ parser for model sources (vertices, UVs, polygons of 3 or 4 corners).

The model installer parses 154 OBJs of 26,719 vertices each, so this reads bytes with NumPy's C text
parser instead of going line by line in Python. General-purpose mesh reading lives in ``facerecon.io``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class ObjParseError(ValueError):
    """An OBJ's text is not what the parser expects; the message names the problem."""


@dataclass(frozen=True)
class ObjPolygons:
    """Polygons of an OBJ with per-corner vertex and UV indices (0-based).

    Attributes:
        vertices: ``(V, 3)`` float64 positions in the file's units.
        uvs: ``(T, 2)`` float64 texture coordinates (v up).
        corner_counts: ``(P,)`` int64 number of corners of each polygon (3 or 4).
        vertex_index: ``(P, 4)`` int64 vertex indices; the 4th is -1 for triangles.
        uv_index: ``(P, 4)`` int64 UV indices; -1 where absent.
    """

    vertices: np.ndarray
    uvs: np.ndarray
    corner_counts: np.ndarray
    vertex_index: np.ndarray
    uv_index: np.ndarray


def _floats(lines: list[bytes], width: int, what: str) -> np.ndarray:
    if not lines:
        return np.zeros((0, width), dtype=np.float64)
    values = np.fromstring(b" ".join(lines), dtype=np.float64, sep=" ")
    if values.size != len(lines) * width:
        # Some writers add an optional component (w for positions, w for UVs, colours after xyz).
        rows = [np.array(line.split(), dtype=np.float64) for line in lines]
        if any(r.size < width for r in rows):
            raise ObjParseError(f"an OBJ {what} line has fewer than {width} numbers")
        return np.stack([r[:width] for r in rows])
    return values.reshape(len(lines), width)


def _split_lines(data: bytes) -> list[bytes]:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data.split(b"\n")


def parse_obj_vertices(data: bytes) -> np.ndarray:
    """Vertex positions of an OBJ as ``(V, 3)`` float64 (only the ``v`` lines are read)."""
    lines = [line[2:] for line in _split_lines(data) if line.startswith(b"v ")]
    return _floats(lines, 3, "vertex")


def parse_obj(data: bytes) -> ObjPolygons:
    """Vertices, UVs and polygons (triangles and quads) of an OBJ.

    Raises:
        ObjParseError: a face with other than 3 or 4 corners, or an index out of range.
    """
    lines = _split_lines(data)
    v_lines = [line[2:] for line in lines if line.startswith(b"v ")]
    vt_lines = [line[3:] for line in lines if line.startswith(b"vt ")]
    f_lines = [line[2:].split() for line in lines if line.startswith(b"f ")]
    vertices = _floats(v_lines, 3, "vertex")
    uvs = _floats(vt_lines, 2, "texture coordinate")
    count = len(f_lines)
    # Raw OBJ indices: 1-based, negative = relative to the end, 0 = absent (OBJ never uses 0).
    vertex_index = np.zeros((count, 4), dtype=np.int64)
    uv_index = np.zeros((count, 4), dtype=np.int64)
    corner_counts = np.empty(count, dtype=np.int64)
    for p, corners in enumerate(f_lines):
        n = len(corners)
        if n not in (3, 4):
            raise ObjParseError(f"face {p} has {n} corners; only triangles and quads are supported")
        corner_counts[p] = n
        for c, corner in enumerate(corners):
            parts = corner.split(b"/")
            vertex_index[p, c] = int(parts[0])
            if len(parts) > 1 and parts[1]:
                uv_index[p, c] = int(parts[1])
    # Negative indices are resolved against the full list, which is exact for files that define all
    # vertices before their faces (every file we read does).
    for index, size in ((vertex_index, len(vertices)), (uv_index, len(uvs))):
        present = index != 0
        index[index > 0] -= 1
        index[index < 0] += size
        index[~present] = -1
        if present.any() and (index[present].min() < 0 or index[present].max() >= size):
            raise ObjParseError("a face refers to a vertex or texture coordinate that does not exist")
    return ObjPolygons(vertices, uvs, corner_counts, vertex_index, uv_index)


def triangulate(polygons: np.ndarray, corner_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split quads ``(a, b, c, d)`` into ``(a, b, c)`` and ``(a, c, d)``, keeping polygon order.

    Args:
        polygons: ``(P, 4)`` int64 corner indices, -1 in the 4th column for triangles.
        corner_counts: ``(P,)`` 3 or 4 per polygon.

    Returns:
        triangles ``(F, 3)`` int64 and ``(F,)`` int64 index of the polygon each triangle came from.
    """
    is_quad = corner_counts == 4
    first = polygons[:, [0, 1, 2]]
    second = polygons[is_quad][:, [0, 2, 3]]
    source = np.concatenate([np.arange(len(polygons)), np.flatnonzero(is_quad)])
    tris = np.concatenate([first, second])
    # Stable order: by source polygon, first triangle before second.
    order = np.lexsort((np.concatenate([np.zeros(len(first)), np.ones(len(second))]), source))
    return tris[order], source[order]
