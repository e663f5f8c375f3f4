"""Wavefront OBJ, with its MTL material and texture PNG beside it.

:func:`write_obj` takes a :class:`facerecon.core.mesh.Mesh` (model millimetres, y up, z out of the face)
and writes up to three files, each atomically (:mod:`facerecon.io.atomic`), in this order: the texture PNG,
the MTL, the OBJ. The OBJ comes last so that whoever sees it finds what it refers to; an error part-way
leaves no half-written file (a finished PNG or MTL may remain). :func:`read_obj` returns a ``Mesh`` and
raises :class:`~facerecon.core.errors.MeshFileError` (one line naming the file) for a missing file, a
wrong extension, or a corrupt or unsupported file.

Example:
    >>> write_obj("out/face.obj", mesh)    # out/texture.png, out/face.mtl, out/face.obj  # doctest: +SKIP
    >>> read_obj("out/face.obj").faces.shape  # doctest: +SKIP
    (52220, 3)
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from facerecon.core.mesh import Mesh
from facerecon.io._meshfile import (
    GENERATOR,
    check_mesh,
    decode_texture,
    fail,
    fan,
    input_path,
    output_path,
    png_bytes,
    read_bytes,
    safe_name,
)
from facerecon.io.atomic import write_bytes_atomic, write_text_atomic

__all__ = ["READERS", "WRITERS", "read_obj", "write_obj"]


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
    p = output_path(path, ".obj")
    check_mesh(mesh)
    if not isinstance(texture_name, str) or Path(texture_name).name != texture_name or not texture_name:
        raise ValueError(f"texture_name: expected a plain file name such as 'texture.png', got {texture_name!r}")
    if not texture_name.lower().endswith(".png"):
        raise ValueError(f"texture_name: expected a name ending in .png, got {texture_name!r}")
    if any(c.isspace() for c in texture_name):
        raise ValueError(f"texture_name: expected a name without spaces (MTL cannot quote them), got {texture_name!r}")
    if mesh.texture is not None and texture_name.lower() in (p.name.lower(), p.with_suffix(".mtl").name.lower()):
        raise ValueError(f"texture_name: must differ from the OBJ and MTL names, got {texture_name!r}")
    mtl_path = p.with_suffix(".mtl")
    material = safe_name(mesh.name) + "_material"

    if mesh.texture is not None:
        write_bytes_atomic(p.parent / texture_name, png_bytes(mesh.texture))
    mtl = [
        f"# {GENERATOR} material for {p.name}",
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
        f"# {GENERATOR} OBJ: {vertices.shape[0]} vertices, {mesh.faces.shape[0]} triangles\n"
        "# units: millimetres (model space: x right, y up, z out of the face)\n"
        f"mtllib {mtl_path.name}\no {safe_name(mesh.name)}\n"
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
    text = read_bytes(mtl_path).decode("utf-8", errors="replace")
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
                raise fail(p, f"line {number}: a face needs at least 3 corners, got {line[:60]!r}")
            face_rows.append((number, corners, len(positions), len(uv_rows)))
        elif key == "mtllib" and mtllib is None:
            mtllib = rest.strip()
        elif key == "usemtl" and first_material is None:
            first_material = rest.strip()
    if not positions:
        raise fail(p, "no vertices ('v' lines): not an OBJ mesh")
    if not face_rows:
        raise fail(p, "no faces ('f' lines): a point cloud, not a mesh")

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
        raise fail(p, f"bad vertex data: {err}") from None

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
                    raise fail(p, f"line {number}: cannot parse the face corner {corner[:30]!r}") from None
                if v == 0 or t == 0:
                    raise fail(p, f"line {number}: OBJ indices start at 1, got 0")
                corner_index[k, 0] = v - 1 if v > 0 else n_v + v
                corner_index[k, 1] = -1 if t is None else (t - 1 if t > 0 else n_vt + t)
                k += 1
    triangles = fan(counts)
    faces = corner_index[:, 0][triangles]
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise fail(p, f"a face refers to a vertex outside 1..{len(vertices)}")
    have_uv = corner_index[:, 1] >= 0
    uv_faces = None
    if uvs is not None and have_uv.all():
        uv_faces = corner_index[:, 1][triangles]
        if uv_faces.max() >= len(uvs):
            raise fail(p, f"a face refers to a texture coordinate outside 1..{len(uvs)}")
    elif have_uv.any():
        raise fail(p, "some faces have texture coordinates and some do not (or refer to missing ones)")
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
    p = input_path(path, (".obj",), "Wavefront OBJ")
    text = read_bytes(p).decode("utf-8", errors="replace")
    vertices, colors, uvs, faces, uv_faces, mtllib, first_material = _parse_obj(p, text)
    texture = None
    if load_texture and mtllib is not None and uvs is not None:
        mtl_path = p.parent / mtllib
        if not mtl_path.is_file():
            raise fail(p, f"its material library {mtllib!r} is missing (pass load_texture=False to skip it)")
        name = _parse_mtl_texture(mtl_path, first_material)
        if name is not None:
            tex_path = mtl_path.parent / name.replace("\\", "/")
            if not tex_path.is_file():
                raise fail(mtl_path, f"its texture {name!r} is missing (pass load_texture=False to skip it)")
            texture = decode_texture(read_bytes(tex_path), str(tex_path))
    return Mesh(
        vertices=vertices, faces=faces, uvs=uvs, uv_faces=uv_faces, texture=texture, vertex_colors=colors, name=p.stem
    )


def _write_obj_texture_beside(path: str | os.PathLike[str], mesh: Mesh) -> None:
    """:func:`write_obj` with the texture named after the OBJ (``face.obj`` → ``face.png``), for ``write_mesh``."""
    write_obj(path, mesh, texture_name=f"{Path(path).stem}.png")


# --- table ---------------------------------------------------------------------------------------

#: Readers and writers by lower-case extension, merged by :mod:`facerecon.io.mesh`.
READERS = {".obj": read_obj}
WRITERS = {".obj": _write_obj_texture_beside}
