"""PLY meshes: binary little-endian written; ASCII and binary of either byte order read.

:func:`write_ply` takes a :class:`facerecon.core.mesh.Mesh` (model millimetres, y up, z out of the face)
and writes it atomically (:mod:`facerecon.io.atomic`). :func:`read_ply` returns a ``Mesh`` and raises
:class:`~facerecon.core.errors.MeshFileError` (one line naming the file) for a missing file, a wrong
extension, or a corrupt or unsupported file.

Example:
    >>> write_ply("out/face.ply", mesh)  # doctest: +SKIP
    >>> read_ply("out/face.ply").vertex_colors.shape  # doctest: +SKIP
    (26719, 3)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from facerecon.core.mesh import Mesh
from facerecon.io._meshfile import GENERATOR, check_mesh, fail, fan, input_path, output_path, read_bytes
from facerecon.io.atomic import write_bytes_atomic

__all__ = ["READERS", "WRITERS", "read_ply", "write_ply"]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def write_ply(path: str | os.PathLike[str], mesh: Mesh) -> None:
    """Write a binary little-endian PLY: float32 positions in mm, uchar RGB colours when present, triangles.

    UVs, the texture and morph targets are not written (PLY has no standard for them; use OBJ or GLB).

    Args:
        path: the ``.ply`` file to write (atomically).
        mesh: the mesh; vertices ``(V, 3)`` mm, faces ``(F, 3)``, optional vertex_colors ``(V, 3)`` uint8.

    Example:
        >>> write_ply("out/face.ply", mesh)  # doctest: +SKIP
    """
    p = output_path(path, ".ply")
    check_mesh(mesh, texture=False)  # PLY writes no texture
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    header = [
        "ply",
        "format binary_little_endian 1.0",
        f"comment {GENERATOR} mesh; units: millimetres (x right, y up, z out of the face)",
        f"element vertex {len(vertices)}",
        "property float x",
        "property float y",
        "property float z",
    ]
    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.vertex_colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        vertex_fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    vertex_table = np.empty(len(vertices), dtype=np.dtype(vertex_fields))
    vertex_table["x"], vertex_table["y"], vertex_table["z"] = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    if mesh.vertex_colors is not None:
        for c, name in enumerate(("red", "green", "blue")):
            vertex_table[name] = mesh.vertex_colors[:, c]
    face_table = np.empty(len(faces), dtype=np.dtype([("n", "u1"), ("v", "<i4", (3,))]))
    face_table["n"] = 3
    face_table["v"] = faces
    data = ("\n".join(header) + "\n").encode("ascii") + vertex_table.tobytes() + face_table.tobytes()
    write_bytes_atomic(p, data)


class _PlyElement:
    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count
        self.properties: list[tuple[str, str, str | None]] = []  # (name, value type, list count type or None)


def _parse_ply_header(p: Path, data: bytes) -> tuple[str, list[_PlyElement], int]:
    if not data.startswith(b"ply"):
        raise fail(p, "not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header")
    if end < 0:
        raise fail(p, "corrupt PLY: no 'end_header'")
    body_start = data.index(b"\n", end) + 1 if b"\n" in data[end:] else len(data)
    fmt = None
    elements: list[_PlyElement] = []
    for raw in data[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append(_PlyElement(words[1], int(words[2])))
            elif words[0] == "property" and words[1] == "list":
                elements[-1].properties.append((words[4], _PLY_TYPES[words[3]], _PLY_TYPES[words[2]]))
            elif words[0] == "property":
                elements[-1].properties.append((words[2], _PLY_TYPES[words[1]], None))
            else:
                raise ValueError(f"unknown header line {raw.strip()!r}")
        except (IndexError, KeyError, ValueError) as err:
            raise fail(p, f"corrupt PLY header at {raw.strip()[:60]!r} ({err})") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise fail(p, f"unsupported PLY format {fmt!r}")
    return fmt, elements, body_start


def _read_ply_binary(
    p: Path, data: bytes, offset: int, element: _PlyElement, order: str
) -> tuple[dict[str, np.ndarray], dict[str, Any], int]:
    """Read one element of a binary PLY: scalar columns and list columns, and the offset after it."""
    props = element.properties
    if all(kind is None for _, _, kind in props):
        dtype = np.dtype([(name, order + t) for name, t, _ in props])
        end = offset + dtype.itemsize * element.count
        if end > len(data):
            raise fail(p, f"truncated PLY: the {element.name} data ends early")
        table = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
        return {name: table[name] for name, _, _ in props}, {}, end
    # Fast path: every list has the length of the first record's (all triangles, say).
    fields, pos = [], offset
    try:
        for name, t, kind in props:
            if kind is None:
                fields.append((name, order + t))
                pos += np.dtype(t).itemsize
            else:
                n = int(np.frombuffer(data, dtype=order + kind, count=1, offset=pos)[0])
                fields.append((name + "#n", order + kind))
                fields.append((name, order + t, (n,)))
                pos += np.dtype(kind).itemsize + n * np.dtype(t).itemsize
        dtype = np.dtype(fields)
        if offset + dtype.itemsize * element.count <= len(data):
            table = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
            if all((table[name + "#n"] == table.dtype[name].shape[0]).all() for name, _, k in props if k is not None):
                scalars = {name: table[name] for name, _, k in props if k is None}
                lists = {name: table[name] for name, _, k in props if k is not None}  # (count, n) arrays
                return scalars, lists, offset + dtype.itemsize * element.count
    except (ValueError, IndexError):
        pass
    # General path, record by record.
    scalar_rows: dict[str, list] = {name: [] for name, _, k in props if k is None}
    list_rows: dict[str, list[np.ndarray]] = {name: [] for name, _, k in props if k is not None}
    pos = offset
    try:
        for _ in range(element.count):
            for name, t, kind in props:
                if kind is None:
                    scalar_rows[name].append(np.frombuffer(data, dtype=order + t, count=1, offset=pos)[0])
                    pos += np.dtype(t).itemsize
                else:
                    n = int(np.frombuffer(data, dtype=order + kind, count=1, offset=pos)[0])
                    pos += np.dtype(kind).itemsize
                    list_rows[name].append(np.frombuffer(data, dtype=order + t, count=n, offset=pos))
                    pos += n * np.dtype(t).itemsize
    except ValueError:
        raise fail(p, f"truncated PLY: the {element.name} data ends early") from None
    return {k: np.array(v) for k, v in scalar_rows.items()}, list_rows, pos


def _read_ply_ascii(
    p: Path, tokens: list[str], cursor: int, element: _PlyElement
) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]], int]:
    props = element.properties
    scalar_rows: dict[str, list[float]] = {name: [] for name, _, k in props if k is None}
    list_rows: dict[str, list[np.ndarray]] = {name: [] for name, _, k in props if k is not None}
    try:
        for _ in range(element.count):
            for name, t, kind in props:
                if kind is None:
                    scalar_rows[name].append(float(tokens[cursor]))
                    cursor += 1
                else:
                    n = int(tokens[cursor])
                    list_rows[name].append(np.array(tokens[cursor + 1 : cursor + 1 + n], dtype=np.float64).astype(t))
                    if len(list_rows[name][-1]) != n:
                        raise IndexError
                    cursor += 1 + n
    except (IndexError, ValueError):
        raise fail(p, f"corrupt or truncated PLY: bad {element.name} data") from None
    columns = {name: np.array(scalar_rows[name], dtype=np.dtype(t)) for name, t, kind in props if kind is None}
    return columns, list_rows, cursor


def read_ply(path: str | os.PathLike[str]) -> Mesh:
    """Read a PLY mesh (ASCII or binary, either byte order): positions, faces, vertex colours, per-vertex UVs.

    Polygons are split as in :func:`read_obj`. Colours are read from ``red green blue`` (uchar, or float
    in [0, 1]); per-vertex UVs from ``s t``, ``u v`` or ``texture_u texture_v`` (then ``uv_faces = faces``).
    Other elements and properties are skipped. Units are whatever the file holds (mm for :func:`write_ply`).

    Returns:
        A ``Mesh``: vertices ``(V, 3)`` float64, faces ``(F, 3)`` int64, vertex_colors ``(V, 3)`` uint8 or None.

    Raises:
        MeshFileError: missing file, wrong extension, not a PLY, a corrupt or truncated body, no faces.
    """
    p = input_path(path, (".ply",), "PLY")
    data = read_bytes(p)
    fmt, elements, offset = _parse_ply_header(p, data)
    scalars: dict[str, dict[str, np.ndarray]] = {}
    lists: dict[str, dict[str, Any]] = {}
    if fmt == "ascii":
        tokens = data[offset:].decode("ascii", errors="replace").split()
        cursor = 0
        for element in elements:
            scalars[element.name], lists[element.name], cursor = _read_ply_ascii(p, tokens, cursor, element)
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        for element in elements:
            scalars[element.name], lists[element.name], offset = _read_ply_binary(p, data, offset, element, order)
            if element.name in ("vertex", "face") and all(e in scalars for e in ("vertex", "face")):
                break  # nothing after the faces is needed
    vertex = scalars.get("vertex", {})
    if not all(k in vertex for k in "xyz"):
        raise fail(p, "no vertex element with x, y, z")
    vertices = np.stack([vertex[k].astype(np.float64) for k in "xyz"], axis=1)
    face_lists = lists.get("face", {})
    polys = face_lists.get("vertex_indices", face_lists.get("vertex_index"))
    if polys is None or len(polys) == 0:
        raise fail(p, "no faces (a point cloud, not a mesh)")
    if isinstance(polys, np.ndarray):  # every face has the same number of corners
        counts = np.full(len(polys), polys.shape[1], dtype=np.int64)
        flat = polys.reshape(-1).astype(np.int64)
    else:
        counts = np.array([len(poly) for poly in polys], dtype=np.int64)
        flat = np.concatenate(polys).astype(np.int64)
    if counts.min() < 3:
        raise fail(p, "a face has fewer than 3 corners")
    faces = flat[fan(counts)]
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise fail(p, f"a face refers to a vertex outside 0..{len(vertices) - 1}")
    colors = None
    if all(k in vertex for k in ("red", "green", "blue")):
        rgb = np.stack([vertex[k] for k in ("red", "green", "blue")], axis=1)
        if np.issubdtype(rgb.dtype, np.floating):
            colors = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
        else:
            colors = np.clip(rgb, 0, 255).astype(np.uint8)
    uvs = uv_faces = None
    for u, v in (("s", "t"), ("u", "v"), ("texture_u", "texture_v")):
        if u in vertex and v in vertex:
            uvs = np.stack([vertex[u], vertex[v]], axis=1).astype(np.float64)
            uv_faces = faces.copy()
            break
    if not np.isfinite(vertices).all():
        raise fail(p, "non-finite vertex coordinates")
    return Mesh(vertices=vertices, faces=faces, uvs=uvs, uv_faces=uv_faces, vertex_colors=colors, name=p.stem)


# --- table ---------------------------------------------------------------------------------------

#: Readers and writers by lower-case extension, merged by :mod:`facerecon.io.mesh`.
READERS = {".ply": read_ply}
WRITERS = {".ply": write_ply}
