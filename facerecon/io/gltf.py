"""Binary glTF 2.0 (GLB): the mesh, its texture and its expression blendshapes as named morph targets.

Coordinates: glTF is metres, y up, with the camera looking along -z. facerecon's model space is
millimetres, y up, z out of the face (towards a viewer), x to the viewer's right, i.e. the same axes
(right-handed, y up, the face looking along +z towards a default glTF camera). So the only change is a
scale: ``units="m"`` multiplies positions and morph deltas by 0.001; ``units="mm"`` keeps millimetres (a
viewer then shows the face 1000 times too large). The units are also recorded in ``asset.extras``.

What a GLB written here holds (one scene, one node (and a camera node, see below), one mesh, one triangle
primitive):

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
- Optionally (``write_glb(..., animation=FaceAnimation(...))``, e.g. a video's reconstruction) one animation,
  named after ``FaceAnimation.name``, with three LINEAR channels on the mesh's node sharing one float32 time
  accessor (seconds, with min/max): ``weights`` (T * K float32 scalars, frame-major: the K weights of key 0,
  then of key 1, ...), ``rotation`` (unit quaternions x, y, z, w; the first with w >= 0, each later one the sign
  nearer its predecessor, so interpolation turns the short way) and ``translation`` (scaled to the file's units
  like positions). The node's rest transform and ``mesh.weights`` are then the first frame's, so a reader that
  ignores animations shows frame 0. The transforms are in glTF's world with the video's camera at the origin
  looking along -z; with ``camera_yfov_rad`` a perspective camera node sits there (no transform; ``aspectRatio``
  when given, ``znear`` 10 mm, ``zfar`` 100 m), so looking through it reproduces the video's view. three.js's
  GLTFLoader turns the channels into ``morphTargetInfluences`` (named by ``targetNames``), ``quaternion`` and
  ``position`` tracks; Blender's importer into one action with the object's rotation/location and the shape-key
  values. Without an animation the file is byte for byte what earlier versions wrote.

:func:`read_glb_animation` reads the first animation back as a ``FaceAnimation`` (matrices, millimetres), or
None. :func:`read_glb` reads the first mesh of any GLB (node transforms are not applied). For a file with a
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
from facerecon.core.check import check_choice, describe
from facerecon.core.errors import MeshFileError
from facerecon.core.mesh import Mesh
from facerecon.io._meshfile import check_mesh, decode_texture, fail, input_path, output_path, png_bytes
from facerecon.io.animation import FaceAnimation
from facerecon.io.atomic import write_bytes_atomic

__all__ = ["READERS", "VERTEX_ID_ATTRIBUTE", "WRITERS", "FaceAnimation", "read_glb", "read_glb_animation", "write_glb"]

#: The application-specific attribute (glTF requires a leading underscore) mapping glTF to facerecon vertices.
VERTEX_ID_ATTRIBUTE = "_VERTEX_ID"

_FLOAT = pygltflib.FLOAT
_ARRAY_BUFFER = pygltflib.ARRAY_BUFFER
_ELEMENT_ARRAY_BUFFER = pygltflib.ELEMENT_ARRAY_BUFFER
_COMPONENT_DTYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_MM_PER_UNIT = {"m": 1000.0, "mm": 1.0}
#: The written camera's clipping planes in millimetres (scaled to the file's units like positions).
_CAMERA_ZNEAR_MM = 10.0
_CAMERA_ZFAR_MM = 100_000.0


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


def _quaternions_xyzw(rotations: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(T, 4)`` as glTF stores them (x, y, z, w) for rotation matrices ``(T, 3, 3)``.

    Each matrix picks the best-conditioned of the four textbook formulas (the largest of 1 + trace and
    1 + 2 R_ii - trace). The first quaternion has ``w >= 0`` (the library's convention); every later one takes
    the sign nearer its predecessor (``q_t . q_{t-1} >= 0``), so interpolating consecutive keys turns the
    short way, also when the head turns through more than 180 degrees in all.
    """
    r = np.asarray(rotations, dtype=np.float64)
    m00, m01, m02 = r[:, 0, 0], r[:, 0, 1], r[:, 0, 2]
    m10, m11, m12 = r[:, 1, 0], r[:, 1, 1], r[:, 1, 2]
    m20, m21, m22 = r[:, 2, 0], r[:, 2, 1], r[:, 2, 2]
    # 4 w^2, 4 x^2, 4 y^2, 4 z^2 (each times 1 for a unit quaternion)
    squares = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=1)
    best = squares.argmax(axis=1)
    s = 2.0 * np.sqrt(np.maximum(squares[np.arange(len(r)), best], 1e-300))  # = 4 |largest component|
    wxyz = np.select(
        [best[:, None] == k for k in range(4)],
        [
            np.stack([s / 4, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s], axis=1),
            np.stack([(m21 - m12) / s, s / 4, (m01 + m10) / s, (m02 + m20) / s], axis=1),
            np.stack([(m02 - m20) / s, (m01 + m10) / s, s / 4, (m12 + m21) / s], axis=1),
            np.stack([(m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, s / 4], axis=1),
        ],
    )
    wxyz /= np.linalg.norm(wxyz, axis=1, keepdims=True)
    if wxyz[0, 0] < 0:
        wxyz[0] = -wxyz[0]
    # flip q_t when it points away from q_{t-1}; the flips accumulate along the sequence
    agree = np.where(np.einsum("ij,ij->i", wxyz[1:], wxyz[:-1]) < 0, -1.0, 1.0)
    wxyz[1:] *= np.cumprod(agree)[:, None]
    return wxyz[:, [1, 2, 3, 0]]


def _matrices(quaternions_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(T, 3, 3)`` for quaternions ``(T, 4)`` (x, y, z, w), normalised first."""
    q = np.asarray(quaternions_xyzw, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x, y, z, w = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
        ],
        axis=1,
    )


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


def write_glb(
    path: str | os.PathLike[str], mesh: Mesh, units: str = "m", animation: FaceAnimation | None = None
) -> None:
    """Write a binary glTF 2.0 file with the mesh, its texture and its morph targets (see the module docstring).

    Args:
        path: the ``.glb`` file to write (atomically; the folder is created when missing).
        mesh: the mesh; vertices ``(V, 3)`` mm, faces ``(F, 3)``, optional uvs/uv_faces, texture
            ``(H, W, 3)`` uint8, vertex_colors ``(V, 3)`` uint8, morph_names + morph_deltas ``(K, V, 3)`` mm
            + morph_weights ``(K,)`` (zeros when None).
        units: ``"m"`` (glTF's unit: positions and deltas times 0.001) or ``"mm"`` (unscaled).
        animation: optional key frames (:class:`~facerecon.io.animation.FaceAnimation`): ``(T, K)`` weights of the
            mesh's K morph targets and the head node's rotation and translation (mm, scaled like positions) per
            frame, written as one glTF animation with LINEAR ``weights``, ``rotation`` and ``translation`` channels
            on the mesh's node; the node's static transform and ``mesh.weights`` are then the first frame's, and
            an optional perspective camera node sits at the origin. None writes exactly what earlier versions did.

    Raises:
        TypeError, ValueError: a wrong path, extension, units or mesh (e.g. NaN vertices, a texture without UVs),
            an animation that is not a ``FaceAnimation``, or one whose weights are not one per morph target, or
            whose key times are not strictly increasing once stored as float32.

    Example:
        >>> write_glb("out/face.glb", mesh)  # then open it in Blender or https://gltf-viewer.donmccurdy.com  # doctest: +SKIP
        >>> write_glb("out/video.glb", mesh, animation=FaceAnimation(times, weights, rotations, translations))  # doctest: +SKIP
    """
    p = output_path(path, ".glb")
    check_mesh(mesh)
    check_choice(units, "units", ("m", "mm"))
    if not np.isfinite(mesh.vertices).all():
        raise ValueError("mesh.vertices: expected finite values, got NaN or infinite entries")
    if mesh.morph_deltas is not None and not np.isfinite(mesh.morph_deltas).all():
        raise ValueError("mesh.morph_deltas: expected finite values, got NaN or infinite entries")
    scale = 1.0 / _MM_PER_UNIT[units]
    if animation is not None:
        _check_animation(animation, mesh)
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
        if animation is not None:
            weights = np.asarray(animation.morph_weights[0], dtype=np.float64)
        gltf_mesh.weights = [float(w) for w in weights]
        gltf_mesh.extras = {"targetNames": [str(name) for name in mesh.morph_names]}
    gltf.meshes.append(gltf_mesh)
    if animation is not None:
        _add_animation(gltf, blob, animation, scale)

    data = blob.bytes()
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(data)))
    gltf.set_binary_blob(data)
    write_bytes_atomic(p, b"".join(gltf.save_to_bytes()))


def _check_animation(animation: object, mesh: Mesh) -> None:
    if not isinstance(animation, FaceAnimation):
        raise TypeError(f"animation: expected a facerecon.io.animation.FaceAnimation or None, got {describe(animation)}")
    targets = 0 if mesh.morph_deltas is None else int(mesh.morph_deltas.shape[0])
    if animation.morph_count != targets:
        raise ValueError(
            f"animation.morph_weights: expected shape (T, {targets}) (one weight per morph target of the mesh), "
            f"got {describe(animation.morph_weights)}"
        )
    times = animation.times_s.astype(np.float32)
    if (np.diff(times) <= 0).any():
        raise ValueError(
            "animation.times_s: expected key times that stay strictly increasing as float32 (glTF stores float32), "
            "got two that round to the same value"
        )


def _add_animation(gltf: pygltflib.GLTF2, blob: _Blob, animation: FaceAnimation, scale: float) -> None:
    """One animation with LINEAR weights/rotation/translation channels on node 0, its first frame as node 0's
    rest transform, and the optional camera node."""
    node = gltf.nodes[0]
    quaternions = _quaternions_xyzw(animation.rotations)
    translations = np.asarray(animation.translations, dtype=np.float64) * scale
    node.rotation = [float(x) for x in quaternions[0]]
    node.translation = [float(x) for x in translations[0]]
    times = blob.accessor(np.asarray(animation.times_s, dtype=np.float32), "SCALAR", bounds=True)  # min/max required
    outputs = []
    if animation.morph_count:
        # glTF: a weights output holds T * K scalars, frame-major (all K weights of key 0, then of key 1, ...)
        outputs.append((pygltflib.WEIGHTS, blob.accessor(animation.morph_weights.astype(np.float32).reshape(-1), "SCALAR")))
    outputs.append((pygltflib.ROTATION, blob.accessor(quaternions.astype(np.float32), "VEC4")))
    outputs.append((pygltflib.TRANSLATION, blob.accessor(translations.astype(np.float32), "VEC3")))
    gltf.animations.append(
        pygltflib.Animation(
            name=animation.name,
            samplers=[
                pygltflib.AnimationSampler(input=times, interpolation=pygltflib.ANIM_LINEAR, output=output)
                for _, output in outputs
            ],
            channels=[
                pygltflib.AnimationChannel(sampler=i, target=pygltflib.AnimationChannelTarget(node=0, path=target))
                for i, (target, _) in enumerate(outputs)
            ],
        )
    )
    if animation.camera_yfov_rad is not None:
        gltf.cameras.append(
            pygltflib.Camera(
                name="camera",
                type=pygltflib.PERSPECTIVE,
                perspective=pygltflib.Perspective(
                    yfov=float(animation.camera_yfov_rad),
                    aspectRatio=None if animation.camera_aspect is None else float(animation.camera_aspect),
                    znear=_CAMERA_ZNEAR_MM * scale,
                    zfar=_CAMERA_ZFAR_MM * scale,
                ),
            )
        )
        gltf.nodes.append(pygltflib.Node(camera=0, name="camera"))  # at the origin, looking along -z: the video's view
        gltf.scenes[0].nodes.append(len(gltf.nodes) - 1)


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


def _load(path: str | os.PathLike[str]) -> tuple[Path, pygltflib.GLTF2, bytes]:
    """The checked path, the parsed glTF and its binary chunk (MeshFileError when it is no readable GLB)."""
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
    return p, gltf, gltf.binary_blob() or b""


def _mm_per_unit(gltf: pygltflib.GLTF2) -> float:
    """Millimetres per file unit: the facerecon ``asset.extras`` units, else glTF's metres."""
    extras = _get(gltf.asset, "extras", {}) if gltf.asset is not None else {}
    units = extras.get("facerecon", {}).get("units", "m") if isinstance(extras, dict) else "m"
    return _MM_PER_UNIT.get(units, 1000.0)


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
    p, gltf, blob = _load(path)
    if not gltf.meshes:
        raise fail(p, "the file holds no mesh")
    reader = _Reader(p, gltf, blob)
    mm = _mm_per_unit(gltf)
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


def read_glb_animation(path: str | os.PathLike[str]) -> FaceAnimation | None:
    """Read the first animation of a GLB as written by :func:`write_glb` (None when the file has none).

    The animated node is the one its channels target (the node of the first mesh in our files). Key times come
    from the samplers' input, which must be the same for all channels; rotations are converted from quaternions
    to matrices and translations to millimetres (the file's units as in :func:`read_glb`). A channel that is
    missing repeats the node's rest rotation / translation or the mesh's default weights. The camera's field of
    view and aspect come from the first perspective camera, when the file has one.

    Returns:
        A :class:`~facerecon.io.animation.FaceAnimation` with ``(T,)`` float64 times in seconds, ``(T, K)``
        weights (K = the morph targets of the node's mesh), ``(T, 3, 3)`` rotations and ``(T, 3)`` mm
        translations, or None.

    Raises:
        MeshFileError: missing or corrupt file, channels on several nodes, samplers with different key times,
            CUBICSPLINE samplers, outputs whose size does not match the key times, invalid key frames.
    """
    p, gltf, blob = _load(path)
    if not gltf.animations:
        return None
    reader = _Reader(p, gltf, blob)
    mm = _mm_per_unit(gltf)
    anim = gltf.animations[0]
    try:
        channels = [c for c in anim.channels if c.target is not None and c.target.path in ("weights", "rotation", "translation")]
        nodes = {c.target.node for c in channels}
        if len(nodes) != 1:
            raise fail(p, f"expected an animation of one node, got channels on {len(nodes)} nodes")
        node_index = nodes.pop()
        if not isinstance(node_index, int) or not 0 <= node_index < len(gltf.nodes):
            raise fail(p, f"the animation targets node {node_index}, which does not exist")
        node = gltf.nodes[node_index]
        times = None
        values: dict[str, np.ndarray] = {}
        for channel in channels:
            sampler = anim.samplers[channel.sampler]
            if _get(sampler, "interpolation", pygltflib.ANIM_LINEAR) == pygltflib.ANIM_CUBICSPLINE:
                raise fail(p, "CUBICSPLINE animation samplers are not supported")
            keys = reader.accessor(sampler.input)[:, 0]
            if times is None:
                times = keys
            elif not np.array_equal(times, keys):
                raise fail(p, "its animation channels have different key times (not supported)")
            values[channel.target.path] = reader.accessor(sampler.output)
        if times is None:
            return None
        frames = len(times)
        morph_count = 0
        default_weights = np.zeros(0)
        if node.mesh is not None and 0 <= node.mesh < len(gltf.meshes):
            gmesh = gltf.meshes[node.mesh]
            morph_count = len(gmesh.primitives[0].targets or []) if gmesh.primitives else 0
            default_weights = np.array(_get(gmesh, "weights", [0.0] * morph_count), dtype=np.float64)
        if "weights" in values:
            flat = values["weights"][:, 0]
            if flat.size != frames * morph_count:
                raise fail(p, f"its weights output holds {flat.size} values, expected {frames} keys x {morph_count} targets")
            weights = flat.reshape(frames, morph_count)
        else:
            weights = np.tile(default_weights if len(default_weights) == morph_count else np.zeros(morph_count), (frames, 1))
        if "rotation" in values:
            quaternions = values["rotation"]
        else:
            quaternions = np.tile(np.array(_get(node, "rotation", [0.0, 0.0, 0.0, 1.0]), dtype=np.float64), (frames, 1))
        if "translation" in values:
            translations = values["translation"]
        else:
            translations = np.tile(np.array(_get(node, "translation", [0.0, 0.0, 0.0]), dtype=np.float64), (frames, 1))
        for name, array, width in (("rotation", quaternions, 4), ("translation", translations, 3)):
            if array.shape != (frames, width):
                raise fail(p, f"its {name} output has {len(array)} keys of width {array.shape[1]}, expected {frames} of {width}")
        if not np.all(np.linalg.norm(quaternions, axis=1) > 0.5):
            raise fail(p, "its rotation keys are not unit quaternions")
        yfov = aspect = None
        for camera in gltf.cameras:
            if camera.type == pygltflib.PERSPECTIVE and camera.perspective is not None:
                yfov, aspect = camera.perspective.yfov, camera.perspective.aspectRatio
                break
        return FaceAnimation(
            times_s=times,
            morph_weights=weights,
            rotations=_matrices(quaternions),
            translations=translations * mm,
            name=anim.name or "performance",
            camera_yfov_rad=None if yfov is None else float(yfov),
            camera_aspect=None if aspect is None else float(aspect),
        )
    except MeshFileError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as err:
        raise fail(p, f"invalid animation ({type(err).__name__}: {err})") from None


# --- table ---------------------------------------------------------------------------------------

#: Readers and writers by lower-case extension, merged by :mod:`facerecon.io.mesh` (glTF metres).
READERS = {".glb": read_glb}
WRITERS = {".glb": write_glb}
