"""Mesh files: Wavefront OBJ (+ MTL + texture PNG) and PLY; GLB lives in :mod:`facerecon.io.gltf`.

All writers take a :class:`facerecon.core.mesh.Mesh` (model millimetres, y up, z out of the face) and
write every file atomically (:mod:`facerecon.io.atomic`). A mesh with a texture becomes three files,
written in this order: the texture PNG, the MTL, the OBJ. The OBJ comes last so that whoever sees it finds
what it refers to; an error part-way leaves no half-written file (a finished PNG or MTL may remain).

All readers return a ``Mesh`` and raise :class:`MeshFileError` (one line naming the file) for a missing
file, a wrong extension, or a corrupt or unsupported file.

Example:
    >>> write_obj("out/face.obj", mesh)    # out/texture.png, out/face.mtl, out/face.obj  # doctest: +SKIP
    >>> read_obj("out/face.obj").faces.shape  # doctest: +SKIP
    (52220, 3)
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from facerecon.core.check import describe
from facerecon.core.errors import MeshFileError
from facerecon.core.mesh import Mesh
from facerecon.io.atomic import write_bytes_atomic, write_text_atomic

__all__ = ["MeshFileError", "read_mesh", "read_obj", "read_ply", "write_mesh", "write_obj", "write_ply"]

_GENERATOR = "facerecon"




# --- shared helpers ------------------------------------------------------------------------------


def _fail(path: Path, what: str) -> MeshFileError:
    return MeshFileError(f"{path}: {' '.join(str(what).split())}")


def _check_mesh(mesh: object) -> Mesh:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh: expected a facerecon.core.mesh.Mesh, got {describe(mesh)}")
    if mesh.texture is not None and mesh.uvs is None:
        raise ValueError("mesh: has a texture but no uvs/uv_faces, so the texture cannot be mapped")
    return mesh


def _output_path(path: object, suffix: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path ending in {suffix}, got {describe(path)}")
    p = Path(path)
    if p.suffix.lower() != suffix:
        raise ValueError(f"path: expected a file name ending in {suffix}, got {p.name!r}")
    return p


def _input_path(path: object, suffixes: tuple[str, ...], kind: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {describe(path)}")
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise _fail(p, f"expected a {kind} file ({', '.join(suffixes)}), got the extension {p.suffix or '(none)'!r}")
    if not p.exists():
        raise _fail(p, "no such file")
    if not p.is_file():
        raise _fail(p, "is not a regular file")
    return p


def _read_bytes(p: Path) -> bytes:
    try:
        data = p.read_bytes()
    except OSError as err:
        raise _fail(p, f"cannot read the file: {err.strerror or err}") from None
    if not data:
        raise _fail(p, "the file is empty")
    return data


def _png_bytes(texture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(texture), "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def _decode_texture(data: bytes, label: str) -> np.ndarray:
    """Decode an embedded or referenced texture to ``(H, W, 3)`` uint8 (alpha dropped: textures are opaque)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # any decoder failure is a corrupt texture
        raise MeshFileError(f"{label}: cannot decode the texture image ({' '.join(str(err).split())})") from None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "face"


# --- OBJ ---------------------------------------------------------------------------------------


def write_obj(path: str | os.PathLike[str], mesh: Mesh, texture_name: str = "texture.png") -> None:
    """Write a Wavefront OBJ with an MTL beside it and, when the mesh has one, its texture as PNG.

    The OBJ holds positions in millimetres (stated in a comment), vertex colours as the common
    ``v x y z r g b`` extension (when present, r g b in [0, 1]), UVs (v up) and faces with per-corner UV
    indices (``f v/vt``), so UV seams survive. Morph targets are not written (OBJ has none; use GLB).
    Files, in the order written (each atomically): ``<texture_name>`` (when ``mesh.texture`` is set),
    ``<stem>.mtl``, ``<stem>.obj``.

    Args:
        path: the ``.obj`` file to write; its folder is created when missing.
        mesh: the mesh; vertices ``(V, 3)`` mm, faces ``(F, 3)``, optional uvs ``(T, 2)`` + uv_faces ``(F, 3)``,
            texture ``(H, W, 3)`` uint8, vertex_colors ``(V, 3)`` uint8.
        texture_name: the PNG's file name, beside the OBJ (a plain name ending in ``.png``).

    Raises:
        TypeError, ValueError: a wrong path, extension, texture name or mesh.
        OSError: the folder cannot be written.

    Example:
        >>> write_obj("out/face.obj", mesh, texture_name="face.png")  # doctest: +SKIP
    """
    p = _output_path(path, ".obj")
    _check_mesh(mesh)
    if not isinstance(texture_name, str) or Path(texture_name).name != texture_name or not texture_name:
        raise ValueError(f"texture_name: expected a plain file name such as 'texture.png', got {texture_name!r}")
    if not texture_name.lower().endswith(".png"):
        raise ValueError(f"texture_name: expected a name ending in .png, got {texture_name!r}")
    if any(c.isspace() for c in texture_name):
        raise ValueError(f"texture_name: expected a name without spaces (MTL cannot quote them), got {texture_name!r}")
    if mesh.texture is not None and texture_name.lower() in (p.name.lower(), p.with_suffix(".mtl").name.lower()):
        raise ValueError(f"texture_name: must differ from the OBJ and MTL names, got {texture_name!r}")
    mtl_path = p.with_suffix(".mtl")
    material = _safe_name(mesh.name) + "_material"

    if mesh.texture is not None:
        write_bytes_atomic(p.parent / texture_name, _png_bytes(mesh.texture))
    mtl = [
        f"# {_GENERATOR} material for {p.name}",
        f"newmtl {material}",
        "Ka 1.000000 1.000000 1.000000",
        "Kd 1.000000 1.000000 1.000000",
        "Ks 0.000000 0.000000 0.000000",
        "d 1.0",
        "illum 1",
    ]
    if mesh.texture is not None:
        mtl.append(f"map_Kd {texture_name}")
    write_text_atomic(mtl_path, "\n".join(mtl) + "\n")

    vertices = np.asarray(mesh.vertices)
    parts = [
        f"# {_GENERATOR} OBJ: {vertices.shape[0]} vertices, {mesh.faces.shape[0]} triangles\n"
        "# units: millimetres (model space: x right, y up, z out of the face)\n"
        f"mtllib {mtl_path.name}\no {_safe_name(mesh.name)}\n"
    ]
    if mesh.vertex_colors is not None:
        rows = np.concatenate([vertices.astype(np.float64), mesh.vertex_colors.astype(np.float64) / 255.0], axis=1)
        parts.append(("v %.9g %.9g %.9g %.6g %.6g %.6g\n" * len(rows)) % tuple(rows.ravel().tolist()))
    else:
        parts.append(("v %.9g %.9g %.9g\n" * len(vertices)) % tuple(vertices.ravel().tolist()))
    faces = np.asarray(mesh.faces, dtype=np.int64) + 1
    if mesh.uvs is not None:
        uvs = np.asarray(mesh.uvs)
        parts.append(("vt %.9g %.9g\n" * len(uvs)) % tuple(uvs.ravel().tolist()))
        parts.append(f"usemtl {material}\ns off\n")
        corners = np.stack([faces, np.asarray(mesh.uv_faces, dtype=np.int64) + 1], axis=2).reshape(len(faces), 6)
        parts.append(("f %d/%d %d/%d %d/%d\n" * len(corners)) % tuple(corners.ravel().tolist()))
    else:
        parts.append(f"usemtl {material}\ns off\n")
        parts.append(("f %d %d %d\n" * len(faces)) % tuple(faces.ravel().tolist()))
    write_text_atomic(p, "".join(parts))


def _parse_mtl_texture(mtl_path: Path, material: str | None) -> str | None:
    """The ``map_Kd`` file name of ``material`` (or of the first material that has one) in an MTL."""
    text = _read_bytes(mtl_path).decode("utf-8", errors="replace")
    maps: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        tokens = line.strip().split(None, 1)
        if not tokens:
            continue
        if tokens[0] == "newmtl" and len(tokens) == 2:
            current = tokens[1].strip()
        elif tokens[0] == "map_Kd" and len(tokens) == 2 and current is not None:
            value = tokens[1].strip()
            # Options such as "-s 1 1 1" may come before the file name: take the whole value when it names
            # a file, else its last word.
            name = value if (mtl_path.parent / value).is_file() else value.split()[-1]
            maps.setdefault(current, name)
    if material is not None and material in maps:
        return maps[material]
    return next(iter(maps.values()), None)


def _fan(counts: np.ndarray) -> np.ndarray:
    """Corner positions of the fan triangles of polygons with ``counts`` corners laid out one after another.

    Polygon ``q`` with corners ``(a, b, c, d, ...)`` gives ``(a, b, c), (a, c, d), ...`` in polygon order
    (the quad split of docs/conventions.md). Returns ``(T, 3)`` int64 indices into the flat corner list.
    """
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per = counts - 2
    poly = np.repeat(np.arange(len(counts)), per)
    step = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per) + 1
    first = starts[poly]
    return np.stack([first, first + step, first + step + 1], axis=1)


def _float_rows(rows: list[str], what: str) -> np.ndarray:
    """Lines of numbers (all with the same count) to an ``(N, width)`` float64 table, with NumPy's C parser."""
    width = len(rows[0].split())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fromstring warns when it stops early; we check
        values = np.fromstring(" ".join(rows), dtype=np.float64, sep=" ")
    if values.size == len(rows) * width and all(len(r.split()) == width for r in rows):
        return values.reshape(len(rows), width)
    split = [r.split() for r in rows]
    widths = {len(r) for r in split}
    if len(widths) != 1:
        raise ValueError(f"{what} lines have different numbers of values: {sorted(widths)}")
    return np.array(split, dtype=np.float64)  # raises ValueError naming a bad token


def _obj_corners_fast(flat: list[str]) -> np.ndarray | None:
    """``(C, 2)`` int64 (vertex, uv or 0) 1-based indices of corners that all share one layout, else None."""
    first = flat[0]
    slashes = first.count("/")
    double = "//" in first
    joined = " ".join(flat)
    if joined.count("/") != slashes * len(flat) or joined.count("//") != (len(flat) if double else 0):
        return None
    try:
        numbers = np.array(joined.replace("//", " ").replace("/", " ").split(), dtype=np.int64)
    except ValueError:
        return None
    fields = 1 + slashes - (1 if double else 0)
    if numbers.size != fields * len(flat) or (numbers.size and numbers.min() <= 0):
        return None  # relative (negative) indices or a 0: the slow path resolves or reports them
    table = numbers.reshape(len(flat), fields)
    uv = table[:, 1] if (slashes >= 1 and not double) else np.zeros(len(flat), np.int64)
    return np.stack([table[:, 0], uv], axis=1)


def _parse_obj(
    p: Path, text: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray | None, str | None, str | None]:
    """Parse OBJ text: vertices, colours, uvs, triangle faces, uv faces, mtllib and first usemtl."""
    positions: list[str] = []
    uv_rows: list[str] = []
    face_rows: list[tuple[int, list[str], int, int]] = []  # line number, corners, #v and #vt so far
    mtllib: str | None = None
    first_material: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        key, _, rest = line.partition(" ")
        if key == "v":
            positions.append(rest)
        elif key == "vt":
            uv_rows.append(rest)
        elif key == "f":
            corners = rest.split()
            if len(corners) < 3:
                raise _fail(p, f"line {number}: a face needs at least 3 corners, got {line[:60]!r}")
            face_rows.append((number, corners, len(positions), len(uv_rows)))
        elif key == "mtllib" and mtllib is None:
            mtllib = rest.strip()
        elif key == "usemtl" and first_material is None:
            first_material = rest.strip()
    if not positions:
        raise _fail(p, "no vertices ('v' lines): not an OBJ mesh")
    if not face_rows:
        raise _fail(p, "no faces ('f' lines): a point cloud, not a mesh")

    try:
        table = _float_rows(positions, "'v'")
        if table.shape[1] in (3, 4):  # x y z [w]
            vertices, colors = table[:, :3], None
        elif table.shape[1] == 6:  # x y z r g b, the common colour extension
            vertices, rgb = table[:, :3], table[:, 3:6]
            if rgb.min() < 0.0 or rgb.max() > 1.0:
                raise ValueError("vertex colours outside [0, 1]")
            colors = np.round(rgb * 255.0).astype(np.uint8)
        else:
            raise ValueError(f"'v' lines have {table.shape[1]} numbers; expected 3, 4 or 6")
        if not np.isfinite(vertices).all():
            raise ValueError("non-finite vertex coordinates")
        uvs = _float_rows(uv_rows, "'vt'")[:, :2] if uv_rows else None
        if uvs is not None and (uvs.shape[1] != 2 or not np.isfinite(uvs).all()):
            raise ValueError("'vt' lines need 2 finite numbers")
    except ValueError as err:
        raise _fail(p, f"bad vertex data: {err}") from None

    counts = np.array([len(corners) for _, corners, _, _ in face_rows], dtype=np.int64)
    flat = [c for _, corners, _, _ in face_rows for c in corners]
    fast = _obj_corners_fast(flat)
    if fast is not None:
        corner_index = fast - 1  # uv -1 where absent
    else:
        corner_index = np.empty((len(flat), 2), dtype=np.int64)
        k = 0
        for number, corners, n_v, n_vt in face_rows:
            for corner in corners:
                fields = corner.split("/")
                try:
                    v = int(fields[0])
                    t = int(fields[1]) if len(fields) > 1 and fields[1] else None
                except ValueError:
                    raise _fail(p, f"line {number}: cannot parse the face corner {corner[:30]!r}") from None
                if v == 0 or t == 0:
                    raise _fail(p, f"line {number}: OBJ indices start at 1, got 0")
                corner_index[k, 0] = v - 1 if v > 0 else n_v + v
                corner_index[k, 1] = -1 if t is None else (t - 1 if t > 0 else n_vt + t)
                k += 1
    triangles = _fan(counts)
    faces = corner_index[:, 0][triangles]
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise _fail(p, f"a face refers to a vertex outside 1..{len(vertices)}")
    have_uv = corner_index[:, 1] >= 0
    uv_faces = None
    if uvs is not None and have_uv.all():
        uv_faces = corner_index[:, 1][triangles]
        if uv_faces.max() >= len(uvs):
            raise _fail(p, f"a face refers to a texture coordinate outside 1..{len(uvs)}")
    elif have_uv.any():
        raise _fail(p, "some faces have texture coordinates and some do not (or refer to missing ones)")
    else:
        uvs = None
    return vertices, colors, uvs, faces, uv_faces, mtllib, first_material


def read_obj(path: str | os.PathLike[str], load_texture: bool = True) -> Mesh:
    """Read a Wavefront OBJ: positions, optional ``v x y z r g b`` colours, UVs, polygons, MTL texture.

    Polygons of 4 corners ``(a, b, c, d)`` become triangles ``(a, b, c), (a, c, d)`` in face order
    (docs/conventions.md); larger polygons are fanned the same way. Normals (``vn``), groups and smoothing
    are ignored; several materials are read as one mesh, the texture being the ``map_Kd`` of the first
    material used (or of the first one that has a map). Units are whatever the file holds (mm for files
    written by :func:`write_obj`).

    Args:
        path: the ``.obj`` file.
        load_texture: read the texture named by the MTL's ``map_Kd``; when False, the MTL is not opened.

    Returns:
        A ``Mesh`` with vertices ``(V, 3)`` float64, faces ``(F, 3)`` int64, and uvs ``(T, 2)`` + uv_faces
        ``(F, 3)`` when every face has texture coordinates, texture ``(H, W, 3)`` uint8 when found,
        vertex_colors ``(V, 3)`` uint8 when every vertex has a colour. ``name`` is the file's stem.

    Raises:
        MeshFileError: missing file, wrong extension, unparsable line, index out of range, a face with
            fewer than 3 corners, UVs on some faces only, a missing MTL or texture (when ``load_texture``).
    """
    p = _input_path(path, (".obj",), "Wavefront OBJ")
    text = _read_bytes(p).decode("utf-8", errors="replace")
    vertices, colors, uvs, faces, uv_faces, mtllib, first_material = _parse_obj(p, text)
    texture = None
    if load_texture and mtllib is not None and uvs is not None:
        mtl_path = p.parent / mtllib
        if not mtl_path.is_file():
            raise _fail(p, f"its material library {mtllib!r} is missing (pass load_texture=False to skip it)")
        name = _parse_mtl_texture(mtl_path, first_material)
        if name is not None:
            tex_path = mtl_path.parent / name.replace("\\", "/")
            if not tex_path.is_file():
                raise _fail(mtl_path, f"its texture {name!r} is missing (pass load_texture=False to skip it)")
            texture = _decode_texture(_read_bytes(tex_path), str(tex_path))
    return Mesh(
        vertices=vertices, faces=faces, uvs=uvs, uv_faces=uv_faces, texture=texture, vertex_colors=colors, name=p.stem
    )


# --- PLY ---------------------------------------------------------------------------------------

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
    p = _output_path(path, ".ply")
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh: expected a facerecon.core.mesh.Mesh, got {describe(mesh)}")
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    header = [
        "ply",
        "format binary_little_endian 1.0",
        f"comment {_GENERATOR} mesh; units: millimetres (x right, y up, z out of the face)",
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
        raise _fail(p, "not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header")
    if end < 0:
        raise _fail(p, "corrupt PLY: no 'end_header'")
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
            raise _fail(p, f"corrupt PLY header at {raw.strip()[:60]!r} ({err})") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise _fail(p, f"unsupported PLY format {fmt!r}")
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
            raise _fail(p, f"truncated PLY: the {element.name} data ends early")
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
        raise _fail(p, f"truncated PLY: the {element.name} data ends early") from None
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
        raise _fail(p, f"corrupt or truncated PLY: bad {element.name} data") from None
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
    p = _input_path(path, (".ply",), "PLY")
    data = _read_bytes(p)
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
        raise _fail(p, "no vertex element with x, y, z")
    vertices = np.stack([vertex[k].astype(np.float64) for k in "xyz"], axis=1)
    face_lists = lists.get("face", {})
    polys = face_lists.get("vertex_indices", face_lists.get("vertex_index"))
    if polys is None or len(polys) == 0:
        raise _fail(p, "no faces (a point cloud, not a mesh)")
    if isinstance(polys, np.ndarray):  # every face has the same number of corners
        counts = np.full(len(polys), polys.shape[1], dtype=np.int64)
        flat = polys.reshape(-1).astype(np.int64)
    else:
        counts = np.array([len(poly) for poly in polys], dtype=np.int64)
        flat = np.concatenate(polys).astype(np.int64)
    if counts.min() < 3:
        raise _fail(p, "a face has fewer than 3 corners")
    faces = flat[_fan(counts)]
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise _fail(p, f"a face refers to a vertex outside 0..{len(vertices) - 1}")
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
        raise _fail(p, "non-finite vertex coordinates")
    return Mesh(vertices=vertices, faces=faces, uvs=uvs, uv_faces=uv_faces, vertex_colors=colors, name=p.stem)


# --- by extension --------------------------------------------------------------------------------


def write_mesh(path: str | os.PathLike[str], mesh: Mesh) -> None:
    """Write ``mesh`` in the format its extension names: ``.obj`` (+ MTL/PNG), ``.ply`` or ``.glb`` (metres)."""
    suffix = Path(path).suffix.lower() if isinstance(path, (str, os.PathLike)) else ""
    if suffix == ".obj":
        write_obj(path, mesh, texture_name=f"{Path(path).stem}.png")
    elif suffix == ".ply":
        write_ply(path, mesh)
    elif suffix == ".glb":
        from facerecon.io.gltf import write_glb

        write_glb(path, mesh)
    else:
        raise ValueError(f"path: expected a file name ending in .obj, .ply or .glb, got {describe(path) if not suffix else repr(str(path))}")


def read_mesh(path: str | os.PathLike[str]) -> Mesh:
    """Read an ``.obj``, ``.ply`` or ``.glb`` file by its extension (see the readers for what comes back)."""
    suffix = Path(path).suffix.lower() if isinstance(path, (str, os.PathLike)) else ""
    if suffix == ".obj":
        return read_obj(path)
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".glb":
        from facerecon.io.gltf import read_glb

        return read_glb(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {describe(path)}")
    raise _fail(Path(path), "expected a mesh file ending in .obj, .ply or .glb")

