"""Binary glTF 2.0 (GLB): the mesh, its texture and its expression blendshapes as named morph targets.

Coordinates: glTF is metres, y up, with the camera looking along -z. facerecon's model space is
millimetres, y up, z out of the face (towards a viewer), x to the viewer's right, i.e. the same axes
(right-handed, y up, the face looking along +z towards a default glTF camera). So the only change is a
scale: ``units="m"`` multiplies positions and morph deltas by 0.001; ``units="mm"`` keeps millimetres (a
viewer then shows the face 1000 times too large). The units are also recorded in ``asset.extras``.

What a GLB written here holds (one scene, one node, one mesh, one triangle primitive):

- ``POSITION`` float32 (with min/max), ``NORMAL`` (area-weighted vertex normals of the original mesh, so
  seams shade smoothly), ``TEXCOORD_0`` with v flipped (glTF's texture origin is the top-left:
  ``t = 1 - v``), ``COLOR_0`` (linear RGB from the sRGB vertex colours, when present), and ``_VERTEX_ID``
  (float32, the index of the facerecon vertex each glTF vertex came from).
- Vertices split at UV seams: glTF has one UV per vertex, so a vertex with several UVs becomes several
  glTF vertices, ordered by (original vertex, UV index); vertices of no face are kept (UV 0, 0).
- One morph target per expression: ``POSITION`` deltas, float32, stored sparse when that is smaller
  (a blendshape that moves only the eyelid stores only the eyelid). Names in ``mesh.extras.targetNames``
  (the convention Blender and three.js read), default ``mesh.weights`` = ``Mesh.morph_weights``.
  Normals are not morphed (no ``NORMAL`` deltas).
- The texture embedded as PNG in a ``baseColorTexture`` of a non-metallic material.

:func:`read_glb` reads the first mesh of any GLB (node transforms are not applied). For a file with a
``_VERTEX_ID`` attribute (ours) it merges the seam-split vertices back, so vertices, faces, colours and
morph deltas come back in the original indexing; ``uvs`` then hold one UV per glTF vertex with
``uv_faces`` indexing them (the same UV per face corner as written, not the same arrays). Without
``_VERTEX_ID`` the glTF vertices are returned as they are.
"""

from __future__ import annotations

import base64
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib

from facerecon import __version__
from facerecon.core.check import check_choice
from facerecon.core.errors import MeshFileError
from facerecon.core.mesh import Mesh
from facerecon.io._meshfile import check_mesh, decode_texture, fail, input_path, output_path, png_bytes
from facerecon.io.atomic import write_bytes_atomic

__all__ = ["READERS", "VERTEX_ID_ATTRIBUTE", "WRITERS", "read_glb", "write_glb"]

#: The application-specific attribute (glTF requires a leading underscore) mapping glTF to facerecon vertices.
VERTEX_ID_ATTRIBUTE = "_VERTEX_ID"

_FLOAT = pygltflib.FLOAT
_ARRAY_BUFFER = pygltflib.ARRAY_BUFFER
_ELEMENT_ARRAY_BUFFER = pygltflib.ELEMENT_ARRAY_BUFFER
_COMPONENT_DTYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_MM_PER_UNIT = {"m": 1000.0, "mm": 1.0}


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear (IEC 61966-2-1)."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] to sRGB encoding (IEC 61966-2-1)."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)``; (0, 0, 1) for vertices of no (non-degenerate) face."""
    v = vertices.astype(np.float64)
    tri = v[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    corners = faces.reshape(-1)
    repeated = np.repeat(face_normals, 3, axis=0)  # one row per face corner
    normals = np.stack([np.bincount(corners, repeated[:, c], minlength=len(v)) for c in range(3)], axis=1)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    out = np.tile(np.array([0.0, 0.0, 1.0]), (len(v), 1))
    good = length[:, 0] > 0
    out[good] = normals[good] / length[good]
    return out


def _split_at_seams(mesh: Mesh) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """glTF vertices: ``(vertex_map (N,), uv_index (N,) or None, faces (F, 3))`` with one UV per vertex.

    ``uv_index`` is -1 for vertices of no face. Without UVs nothing is split (``vertex_map = arange(V)``).
    """
    n_vertices = len(mesh.vertices)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if mesh.uvs is None:
        return np.arange(n_vertices), None, faces
    if len(mesh.uvs) == n_vertices and np.array_equal(mesh.uv_faces, faces):  # one UV per vertex already (a UV grid)
        return np.arange(n_vertices), np.arange(n_vertices), faces
    width = len(mesh.uvs) + 1
    keys = faces.ravel() * width + (np.asarray(mesh.uv_faces, dtype=np.int64).ravel() + 1)
    unused = np.setdiff1d(np.arange(n_vertices), faces.ravel())
    keys = np.concatenate([keys, unused * width])  # uv index -1 for vertices of no face
    unique, inverse = np.unique(keys, return_inverse=True)
    split_faces = inverse[: faces.size].reshape(faces.shape)
    return unique // width, unique % width - 1, split_faces


class _Blob:
    """The GLB binary chunk, built view by view (each view starts 4-byte aligned)."""

    def __init__(self, gltf: pygltflib.GLTF2) -> None:
        self.gltf = gltf
        self.parts: list[bytes] = []
        self.size = 0

    def view(self, data: bytes, target: int | None = None) -> int:
        pad = -self.size % 4
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        self.gltf.bufferViews.append(
            pygltflib.BufferView(buffer=0, byteOffset=self.size, byteLength=len(data), target=target)
        )
        self.parts.append(data)
        self.size += len(data)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        """Add a float32 accessor (or uint indices when ``array`` is unsigned) for ``array``."""
        data = np.ascontiguousarray(array)
        component = pygltflib.UNSIGNED_INT if data.dtype == np.uint32 else (
            pygltflib.UNSIGNED_SHORT if data.dtype == np.uint16 else _FLOAT
        )
        acc = pygltflib.Accessor(
            bufferView=self.view(data.astype(data.dtype.newbyteorder("<")).tobytes(), target),
            componentType=component,
            count=len(data),
            type=kind,
        )
        if bounds:
            flat = data.reshape(len(data), -1)
            acc.min = [float(x) for x in flat.min(axis=0)]
            acc.max = [float(x) for x in flat.max(axis=0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def morph_accessor(self, deltas: np.ndarray) -> int:
        """A VEC3 float32 POSITION-delta accessor, sparse when that takes fewer bytes than dense."""
        deltas = np.ascontiguousarray(deltas, dtype=np.float32)
        moved = np.flatnonzero(np.any(deltas != 0, axis=1))
        index_dtype = np.uint16 if len(deltas) <= 65535 else np.uint32
        sparse_bytes = len(moved) * (np.dtype(index_dtype).itemsize + 12)
        if sparse_bytes >= deltas.nbytes or len(moved) == 0:
            return self.accessor(deltas, "VEC3", _ARRAY_BUFFER, bounds=True)
        indices_view = self.view(moved.astype(index_dtype).astype(np.dtype(index_dtype).newbyteorder("<")).tobytes())
        values_view = self.view(deltas[moved].astype("<f4").tobytes())
        acc = pygltflib.Accessor(
            byteOffset=None,  # no bufferView: the validator rejects a byteOffset without one
            componentType=_FLOAT,
            count=len(deltas),
            type="VEC3",
            # min/max over the whole accessor, i.e. including the implicit zeros
            min=[float(x) for x in np.minimum(deltas[moved].min(axis=0), 0.0)],
            max=[float(x) for x in np.maximum(deltas[moved].max(axis=0), 0.0)],
            sparse=pygltflib.Sparse(
                count=len(moved),
                indices=pygltflib.AccessorSparseIndices(
                    bufferView=indices_view,
                    componentType=pygltflib.UNSIGNED_SHORT if index_dtype == np.uint16 else pygltflib.UNSIGNED_INT,
                ),
                values=pygltflib.AccessorSparseValues(bufferView=values_view),
            ),
        )
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def bytes(self) -> bytes:
        pad = -self.size % 4
        return b"".join(self.parts) + b"\0" * pad


def write_glb(path: str | os.PathLike[str], mesh: Mesh, units: str = "m") -> None:
    """Write a binary glTF 2.0 file with the mesh, its texture and its morph targets (see the module docstring).

    Args:
        path: the ``.glb`` file to write (atomically; the folder is created when missing).
        mesh: the mesh; vertices ``(V, 3)`` mm, faces ``(F, 3)``, optional uvs/uv_faces, texture
            ``(H, W, 3)`` uint8, vertex_colors ``(V, 3)`` uint8, morph_names + morph_deltas ``(K, V, 3)`` mm
            + morph_weights ``(K,)`` (zeros when None).
        units: ``"m"`` (glTF's unit: positions and deltas times 0.001) or ``"mm"`` (unscaled).

    Raises:
        TypeError, ValueError: a wrong path, extension, units or mesh (e.g. NaN vertices, a texture without UVs).

    Example:
        >>> write_glb("out/face.glb", mesh)  # then open it in Blender or https://gltf-viewer.donmccurdy.com  # doctest: +SKIP
    """
    p = output_path(path, ".glb")
    check_mesh(mesh)
    check_choice(units, "units", ("m", "mm"))
    if not np.isfinite(mesh.vertices).all():
        raise ValueError("mesh.vertices: expected finite values, got NaN or infinite entries")
    if mesh.morph_deltas is not None and not np.isfinite(mesh.morph_deltas).all():
        raise ValueError("mesh.morph_deltas: expected finite values, got NaN or infinite entries")
    scale = 1.0 / _MM_PER_UNIT[units]
    vertex_map, uv_index, faces = _split_at_seams(mesh)

    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(
            version="2.0",
            generator=f"facerecon {__version__}",
            extras={"facerecon": {"units": units, "vertexIdAttribute": VERTEX_ID_ATTRIBUTE}},
        ),
        scene=0,
        scenes=[pygltflib.Scene(nodes=[0])],
        nodes=[pygltflib.Node(mesh=0, name=mesh.name)],
    )
    blob = _Blob(gltf)
    index_dtype = np.uint16 if len(vertex_map) <= 65535 else np.uint32
    indices = blob.accessor(faces.reshape(-1).astype(index_dtype), "SCALAR", _ELEMENT_ARRAY_BUFFER)
    positions = (np.asarray(mesh.vertices, dtype=np.float64)[vertex_map] * scale).astype(np.float32)
    normals = _vertex_normals(np.asarray(mesh.vertices), np.asarray(mesh.faces))[vertex_map].astype(np.float32)
    attributes = pygltflib.Attributes(
        POSITION=blob.accessor(positions, "VEC3", _ARRAY_BUFFER, bounds=True),
        NORMAL=blob.accessor(normals, "VEC3", _ARRAY_BUFFER),
    )
    if uv_index is not None:
        uvs = np.zeros((len(vertex_map), 2))
        used = uv_index >= 0
        uvs[used] = np.asarray(mesh.uvs, dtype=np.float64)[uv_index[used]]
        texcoords = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], axis=1).astype(np.float32)  # glTF: origin top-left
        attributes.TEXCOORD_0 = blob.accessor(texcoords, "VEC2", _ARRAY_BUFFER)
    if mesh.vertex_colors is not None:
        linear = _srgb_to_linear(mesh.vertex_colors[vertex_map].astype(np.float64) / 255.0).astype(np.float32)
        attributes.COLOR_0 = blob.accessor(linear, "VEC3", _ARRAY_BUFFER)
    setattr(attributes, VERTEX_ID_ATTRIBUTE, blob.accessor(vertex_map.astype(np.float32), "SCALAR", _ARRAY_BUFFER))

    material = pygltflib.Material(
        name=f"{mesh.name}_material",
        pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.7
        ),
        doubleSided=False,
    )
    if mesh.texture is not None:
        gltf.images.append(pygltflib.Image(bufferView=blob.view(png_bytes(mesh.texture)), mimeType="image/png"))
        gltf.samplers.append(
            pygltflib.Sampler(
                magFilter=pygltflib.LINEAR,
                minFilter=pygltflib.LINEAR_MIPMAP_LINEAR,
                # REPEAT (glTF's default), as OBJ viewers do: UVs outside [0, 1] tile, e.g. the ICT eyes
                wrapS=pygltflib.REPEAT,
                wrapT=pygltflib.REPEAT,
            )
        )
        gltf.textures.append(pygltflib.Texture(sampler=0, source=0))
        material.pbrMetallicRoughness.baseColorTexture = pygltflib.TextureInfo(index=0)
    gltf.materials.append(material)

    primitive = pygltflib.Primitive(attributes=attributes, indices=indices, material=0, mode=pygltflib.TRIANGLES)
    gltf_mesh = pygltflib.Mesh(primitives=[primitive], name=mesh.name)
    if mesh.morph_deltas is not None:
        deltas = np.asarray(mesh.morph_deltas, dtype=np.float64)
        primitive.targets = [
            {"POSITION": blob.morph_accessor((deltas[k][vertex_map] * scale).astype(np.float32))}
            for k in range(deltas.shape[0])
        ]
        weights = np.zeros(len(deltas)) if mesh.morph_weights is None else np.asarray(mesh.morph_weights, np.float64)
        gltf_mesh.weights = [float(w) for w in weights]
        gltf_mesh.extras = {"targetNames": [str(name) for name in mesh.morph_names]}
    gltf.meshes.append(gltf_mesh)

    data = blob.bytes()
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    write_bytes_atomic(p, b"".join(gltf.save_to_bytes()))


# --- reading -------------------------------------------------------------------------------------


def _get(obj: Any, name: str, default: Any = None) -> Any:
    value = getattr(obj, name, default)
    return default if value is None else value


class _Reader:
    def __init__(self, p: Path, gltf: pygltflib.GLTF2, blob: bytes) -> None:
        self.p, self.gltf, self.blob = p, gltf, blob

    def view_bytes(self, index: int) -> memoryview:
        views = self.gltf.bufferViews
        if not 0 <= index < len(views):
            raise fail(self.p, f"bufferView {index} does not exist")
        view = views[index]
        if _get(view, "buffer", 0) != 0:
            raise fail(self.p, "only GLB files with one embedded buffer are supported")
        start = _get(view, "byteOffset", 0)
        end = start + (view.byteLength or 0)
        if start < 0 or end > len(self.blob):
            raise fail(self.p, f"bufferView {index} reaches beyond the binary chunk ({end} > {len(self.blob)} bytes)")
        return memoryview(self.blob)[start:end]

    def accessor(self, index: int) -> np.ndarray:
        """An accessor as ``(count, width)`` float64 (normalised integers scaled to [0, 1] / [-1, 1])."""
        accessors = self.gltf.accessors
        if not isinstance(index, int) or not 0 <= index < len(accessors):
            raise fail(self.p, f"accessor {index} does not exist")
        acc = accessors[index]
        if acc.componentType not in _COMPONENT_DTYPES or acc.type not in _TYPE_WIDTHS:
            raise fail(self.p, f"accessor {index} has an unknown component type or type")
        dtype = np.dtype(_COMPONENT_DTYPES[acc.componentType])
        width = _TYPE_WIDTHS[acc.type]
        count = acc.count or 0
        if acc.bufferView is not None:
            raw = self.view_bytes(acc.bufferView)
            view = self.gltf.bufferViews[acc.bufferView]
            item = dtype.itemsize * width
            stride = _get(view, "byteStride", 0) or item
            start = _get(acc, "byteOffset", 0)
            if count and start + (count - 1) * stride + item > len(raw):
                raise fail(self.p, f"accessor {index} reaches beyond its bufferView")
            rows = np.lib.stride_tricks.as_strided(
                np.frombuffer(raw, dtype=np.uint8, offset=start, count=max(len(raw) - start, 0)),
                shape=(count, item),
                strides=(stride, 1),
            )
            values = np.ascontiguousarray(rows).view(dtype).reshape(count, width).astype(np.float64)
        else:
            values = np.zeros((count, width))
        sparse = acc.sparse
        if sparse is not None and sparse.count:
            idx_dtype = np.dtype(_COMPONENT_DTYPES.get(sparse.indices.componentType, "<u4"))
            idx_raw = self.view_bytes(sparse.indices.bufferView)
            val_raw = self.view_bytes(sparse.values.bufferView)
            i0 = _get(sparse.indices, "byteOffset", 0)
            v0 = _get(sparse.values, "byteOffset", 0)
            if i0 + sparse.count * idx_dtype.itemsize > len(idx_raw) or (
                v0 + sparse.count * width * dtype.itemsize > len(val_raw)
            ):
                raise fail(self.p, f"sparse accessor {index} reaches beyond its bufferViews")
            idx = np.frombuffer(idx_raw, dtype=idx_dtype, count=sparse.count, offset=i0).astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= count):
                raise fail(self.p, f"sparse accessor {index} has indices outside 0..{count - 1}")
            values[idx] = np.frombuffer(val_raw, dtype=dtype, count=sparse.count * width, offset=v0).reshape(-1, width)
        if acc.normalized and dtype.kind in "iu":
            info = np.iinfo(dtype)
            values = np.maximum(values / info.max, -1.0)
        return values

    def texture(self, material_index: int | None) -> np.ndarray | None:
        if material_index is None or not 0 <= material_index < len(self.gltf.materials):
            return None
        pbr = self.gltf.materials[material_index].pbrMetallicRoughness
        info = None if pbr is None else pbr.baseColorTexture
        if info is None or not 0 <= info.index < len(self.gltf.textures):
            return None
        source = self.gltf.textures[info.index].source
        if source is None or not 0 <= source < len(self.gltf.images):
            return None
        image = self.gltf.images[source]
        if image.bufferView is not None:
            data = bytes(self.view_bytes(image.bufferView))
        elif image.uri and image.uri.startswith("data:"):
            try:
                data = base64.b64decode(image.uri.split(",", 1)[1])
            except (IndexError, ValueError):
                raise fail(self.p, "its texture's data URI is corrupt") from None
        elif image.uri:
            file = self.p.parent / image.uri
            if not file.is_file():
                raise fail(self.p, f"its texture {image.uri!r} is missing")
            data = file.read_bytes()
        else:
            return None
        return decode_texture(data, f"{self.p} (texture)")


def read_glb(path: str | os.PathLike[str]) -> Mesh:
    """Read the first mesh of a GLB: positions, triangles, UVs, texture, colours and named morph targets.

    Positions and deltas are converted to millimetres (glTF metres unless the file says ``mm`` in its
    facerecon ``asset.extras``). UVs are flipped back to v up. Names come from ``mesh.extras.targetNames``
    (else ``target_0``, ...), weights from ``mesh.weights`` (else zeros). Several triangle primitives are
    concatenated; node transforms are ignored. See the module docstring for how split vertices come back.

    Returns:
        A ``Mesh`` with vertices ``(V, 3)`` float64 mm, faces ``(F, 3)`` int64, and what the file holds.

    Raises:
        MeshFileError: missing file, wrong extension, not a GLB, corrupt structure (bad chunk, views or
            accessors out of range), no mesh, a primitive that is not triangles.
    """
    p = input_path(path, (".glb",), "binary glTF")
    data = p.read_bytes()
    if len(data) < 20 or data[:4] != b"glTF":
        raise fail(p, "not a binary glTF file (no 'glTF' magic)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pygltflib warns about unknown chunks; we check what we use
            gltf = pygltflib.GLTF2.load_from_bytes(data)
    except Exception as err:  # pygltflib raises many kinds on corrupt JSON or chunks
        raise fail(p, f"corrupt GLB ({type(err).__name__}: {err})") from None
    if gltf is None:
        raise fail(p, "corrupt GLB: no JSON chunk")
    blob = gltf.binary_blob() or b""
    if not gltf.meshes:
        raise fail(p, "the file holds no mesh")
    reader = _Reader(p, gltf, blob)
    extras = _get(gltf.asset, "extras", {}) if gltf.asset is not None else {}
    units = extras.get("facerecon", {}).get("units", "m") if isinstance(extras, dict) else "m"
    mm = _MM_PER_UNIT.get(units, 1000.0)
    gmesh = gltf.meshes[0]

    positions, texcoords, colors, ids, faces, targets = [], [], [], [], [], []
    offset = 0
    try:
        for number, prim in enumerate(gmesh.primitives):
            if _get(prim, "mode", pygltflib.TRIANGLES) != pygltflib.TRIANGLES:
                raise fail(p, f"primitive {number} is not made of triangles (mode {prim.mode})")
            attrs = prim.attributes
            if attrs.POSITION is None:
                raise fail(p, f"primitive {number} has no POSITION")
            pos = reader.accessor(attrs.POSITION)[:, :3]
            n = len(pos)
            idx = (reader.accessor(prim.indices)[:, 0] if prim.indices is not None else np.arange(n)).astype(np.int64)
            if idx.size % 3 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
                raise fail(p, f"primitive {number} has bad indices (not triangles, or outside 0..{n - 1})")
            positions.append(pos)
            faces.append(idx.reshape(-1, 3) + offset)
            texcoords.append(reader.accessor(attrs.TEXCOORD_0)[:, :2] if attrs.TEXCOORD_0 is not None else None)
            colors.append(reader.accessor(attrs.COLOR_0)[:, :3] if attrs.COLOR_0 is not None else None)
            vid = getattr(attrs, VERTEX_ID_ATTRIBUTE, None)
            ids.append(reader.accessor(vid)[:, 0] if vid is not None else None)
            targets.append([reader.accessor(t["POSITION"])[:, :3] if t.get("POSITION") is not None else np.zeros((n, 3))
                            for t in (prim.targets or [])])
            offset += n
    except MeshFileError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        raise fail(p, f"corrupt GLB structure ({type(err).__name__}: {err})") from None

    vertices = np.concatenate(positions) * mm
    all_faces = np.concatenate(faces)
    uvs = uv_faces = None
    if all(t is not None for t in texcoords):
        tc = np.concatenate(texcoords)
        uvs = np.stack([tc[:, 0], 1.0 - tc[:, 1]], axis=1)
        uv_faces = all_faces.copy()
    vertex_colors = None
    if all(c is not None for c in colors):
        vertex_colors = np.round(_linear_to_srgb(np.concatenate(colors)) * 255.0).astype(np.uint8)
    counts = {len(t) for t in targets}
    morph_names: tuple[str, ...] = ()
    morph_deltas = morph_weights = None
    if len(counts) != 1:
        raise fail(p, "its primitives have different numbers of morph targets")
    k = counts.pop()
    if k:
        morph_deltas = np.stack([np.concatenate([t[j] for t in targets]) for j in range(k)]) * mm
        mesh_extras = _get(gmesh, "extras", {})
        names = mesh_extras.get("targetNames") if isinstance(mesh_extras, dict) else None
        morph_names = tuple(str(x) for x in names) if isinstance(names, list) and len(names) == k else tuple(
            f"target_{j}" for j in range(k)
        )
        weights = _get(gmesh, "weights", [])
        morph_weights = np.array(weights, dtype=np.float64) if len(weights) == k else np.zeros(k)

    faces_out = all_faces
    if all(i is not None for i in ids):
        vid = np.concatenate(ids)
        vid_int = np.round(vid).astype(np.int64)
        n_orig = int(vid_int.max()) + 1 if vid_int.size else 0
        if (
            np.array_equal(vid, vid_int)
            and vid_int.min() >= 0
            and np.unique(vid_int).size == n_orig  # every original vertex is present
        ):
            first = np.full(n_orig, -1, dtype=np.int64)
            order = np.arange(len(vid_int))[::-1]
            first[vid_int[order]] = order  # the first glTF vertex of each original vertex
            vertices = vertices[first]
            faces_out = vid_int[all_faces]
            vertex_colors = None if vertex_colors is None else vertex_colors[first]
            morph_deltas = None if morph_deltas is None else morph_deltas[:, first]
    texture = reader.texture(gmesh.primitives[0].material) if uvs is not None else None
    try:
        return Mesh(
            vertices=vertices,
            faces=faces_out,
            uvs=uvs,
            uv_faces=uv_faces,
            texture=texture,
            vertex_colors=vertex_colors,
            morph_names=morph_names,
            morph_deltas=morph_deltas,
            morph_weights=morph_weights,
            name=gmesh.name or p.stem,
        )
    except ValueError as err:
        raise fail(p, f"inconsistent mesh data ({err})") from None


# --- table ---------------------------------------------------------------------------------------

#: Readers and writers by lower-case extension, merged by :mod:`facerecon.io.mesh` (glTF metres).
READERS = {".glb": read_glb}
WRITERS = {".glb": write_glb}
