"""Tests of facerecon.io.mesh (OBJ, PLY) and facerecon.io.gltf (GLB) on the real ICT-FaceKit face."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import trimesh
from PIL import Image

import facerecon.io.obj as mesh_module
from facerecon.core.mesh import Mesh
from facerecon.io.gltf import VERTEX_ID_ATTRIBUTE, read_glb, write_glb
from facerecon.io.mesh import MeshFileError, read_mesh, read_obj, read_ply, write_mesh, write_obj, write_ply
from tests.io.khronos import MISSING, validator_command

EXPRESSIONS = ("jawOpen", "eyeBlink_L", "mouthSmile_L")
WEIGHTS = np.array([0.25, 0.0, 1.0])


@pytest.fixture(scope="module")
def ict_objs(ict_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The neutral ICT mesh and three expression OBJs, extracted from the shared archive."""
    folder = tmp_path_factory.mktemp("ict")
    with zipfile.ZipFile(ict_zip) as z:
        for name in z.namelist():
            stem = Path(name).stem
            if name.endswith(".obj") and stem in ("generic_neutral_mesh", *EXPRESSIONS):
                (folder / f"{stem}.obj").write_bytes(z.read(name))
    return folder


@pytest.fixture(scope="module")
def face(ict_objs: Path, faces_dir: Path) -> Mesh:
    """The ICT face in mm with a photo as texture, vertex colours and three real blendshapes."""
    neutral = read_obj(ict_objs / "generic_neutral_mesh.obj", load_texture=False)
    vertices = neutral.vertices * 10.0  # ICT ships centimetres
    deltas = np.stack(
        [read_obj(ict_objs / f"{n}.obj", load_texture=False).vertices * 10.0 - vertices for n in EXPRESSIONS]
    )
    with Image.open(faces_dir / "3ddfa-emma.jpg") as im:
        texture = np.asarray(im.convert("RGB").resize((192, 128)))
    span = vertices.max(0) - vertices.min(0)
    colors = np.round((vertices - vertices.min(0)) / span * 255).astype(np.uint8)
    return Mesh(
        vertices=vertices,
        faces=neutral.faces,
        uvs=neutral.uvs,
        uv_faces=neutral.uv_faces,
        texture=texture,
        vertex_colors=colors,
        morph_names=EXPRESSIONS,
        morph_deltas=deltas,
        morph_weights=WEIGHTS,
        name="ict face",
    )


def _one_line_naming(err: pytest.ExceptionInfo, path: Path) -> None:
    assert "\n" not in str(err.value) and str(path) in str(err.value), str(err.value)


# --- OBJ ---------------------------------------------------------------------------------------


def test_read_obj_splits_ict_quads_as_the_conventions_say(ict_objs: Path) -> None:
    mesh = read_obj(ict_objs / "generic_neutral_mesh.obj", load_texture=False)
    # 25,836 quads and 548 triangles: 2 * 25836 + 548 triangles
    assert mesh.vertices.shape == (26719, 3) and mesh.faces.shape == (52220, 3) and mesh.uvs.shape == (28911, 2)
    # the first polygon is "f 874/1 12/2 871/3 873/4": (a, b, c), (a, c, d), 0-based
    np.testing.assert_array_equal(mesh.faces[:2], [[873, 11, 870], [873, 870, 872]])
    np.testing.assert_array_equal(mesh.uv_faces[:2], [[0, 1, 2], [0, 2, 3]])
    assert mesh.texture is None and mesh.vertex_colors is None and mesh.name == "generic_neutral_mesh"


def test_obj_round_trip(face: Mesh, tmp_path: Path) -> None:
    write_obj(tmp_path / "face.obj", face)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.mtl", "face.obj", "texture.png"]
    text = (tmp_path / "face.obj").read_text()
    assert "millimetres" in text.splitlines()[1] and "mtllib face.mtl" in text
    assert "map_Kd texture.png" in (tmp_path / "face.mtl").read_text()
    back = read_obj(tmp_path / "face.obj")
    np.testing.assert_allclose(back.vertices, face.vertices, rtol=1e-7, atol=1e-6)
    np.testing.assert_array_equal(back.faces, face.faces)
    np.testing.assert_array_equal(back.uv_faces, face.uv_faces)
    np.testing.assert_allclose(back.uvs, face.uvs, atol=1e-8)
    np.testing.assert_array_equal(back.vertex_colors, face.vertex_colors)
    np.testing.assert_array_equal(back.texture, face.texture)
    assert back.morph_deltas is None  # OBJ has no morph targets
    assert (os.stat(tmp_path / "face.obj").st_mode & 0o777) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_obj_files_are_written_texture_first(face: Mesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    for name in ("write_bytes_atomic", "write_text_atomic"):
        real = getattr(mesh_module, name)
        monkeypatch.setattr(mesh_module, name, lambda p, d, _real=real: (order.append(Path(p).name), _real(p, d)))
    write_obj(tmp_path / "a.obj", face, texture_name="a_tex.png")
    assert order == ["a_tex.png", "a.mtl", "a.obj"]


def test_obj_without_uvs_or_texture(face: Mesh, tmp_path: Path) -> None:
    plain = Mesh(vertices=face.vertices[:4], faces=np.array([[0, 1, 2], [0, 2, 3]]))
    write_obj(tmp_path / "plain.obj", plain)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.mtl", "plain.obj"]
    assert "f 1 2 3\nf 1 3 4\n" in (tmp_path / "plain.obj").read_text()
    back = read_obj(tmp_path / "plain.obj")
    assert back.uvs is None and back.texture is None and back.vertex_colors is None
    np.testing.assert_array_equal(back.faces, plain.faces)


def test_read_obj_relative_indices_polygons_and_options(tmp_path: Path) -> None:
    (tmp_path / "m.mtl").write_text("newmtl skin\nKd 1 1 1\nmap_Kd -s 1 1 1 tex.png\n")
    Image.fromarray(np.full((2, 3, 3), 7, np.uint8)).save(tmp_path / "tex.png")
    (tmp_path / "m.obj").write_text(
        "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 2 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 0.5\nusemtl skin\n"
        "f -5/-5/1 -4/-4/1 -3/-3/1 -2/-2/1\nf 1/1 3/3 4/4 5/5 2/2\n"
    )
    mesh = read_obj(tmp_path / "m.obj")
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    np.testing.assert_array_equal(mesh.uv_faces, mesh.faces)
    assert mesh.texture.shape == (2, 3, 3) and (mesh.texture == 7).all()


def test_obj_errors(face: Mesh, tmp_path: Path) -> None:
    with pytest.raises(MeshFileError) as err:
        read_obj(tmp_path / "missing.obj")
    _one_line_naming(err, tmp_path / "missing.obj")
    (tmp_path / "x.ply").write_text("v 0 0 0\n")
    with pytest.raises(MeshFileError, match="extension"):
        read_obj(tmp_path / "x.ply")
    cases = {
        "bad_number.obj": "v 0 0 zero\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
        "out_of_range.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n",
        "two_corners.obj": "v 0 0 0\nv 1 0 0\nf 1 2\n",
        "points.obj": "v 0 0 0\nv 1 0 0\n",
        "text.obj": "hello, this is not a mesh\n",
        "mixed_uv.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1\nf 1 2 3\n",
        "zero.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(MeshFileError) as err:
            read_obj(tmp_path / name)
        _one_line_naming(err, tmp_path / name)
    # a missing MTL or texture is an error unless textures are not wanted
    write_obj(tmp_path / "f.obj", face)
    (tmp_path / "texture.png").unlink()
    with pytest.raises(MeshFileError, match="texture.png"):
        read_obj(tmp_path / "f.obj")
    assert read_obj(tmp_path / "f.obj", load_texture=False).texture is None
    with pytest.raises(ValueError, match="path"):
        write_obj(tmp_path / "f.ply", face)
    with pytest.raises(ValueError, match="texture_name"):
        write_obj(tmp_path / "f.obj", face, texture_name="sub/t.png")
    with pytest.raises(ValueError, match="texture_name"):
        write_obj(tmp_path / "f.obj", face, texture_name="t.jpg")
    with pytest.raises(TypeError, match="mesh"):
        write_obj(tmp_path / "f.obj", face.vertices)  # type: ignore[arg-type]
    untextured = Mesh(vertices=face.vertices, faces=face.faces, texture=face.texture)
    with pytest.raises(ValueError, match="uvs"):
        write_obj(tmp_path / "g.obj", untextured)
    assert not (tmp_path / "g.obj").exists()


# --- PLY ---------------------------------------------------------------------------------------


def test_ply_round_trip(face: Mesh, tmp_path: Path) -> None:
    write_ply(tmp_path / "face.ply", face)
    data = (tmp_path / "face.ply").read_bytes()
    header = data[: data.index(b"end_header")].decode()
    assert "format binary_little_endian 1.0" in header and "millimetres" in header
    assert "property uchar red" in header and f"element vertex {len(face.vertices)}" in header
    back = read_ply(tmp_path / "face.ply")
    np.testing.assert_array_equal(back.vertices, face.vertices.astype(np.float32))
    np.testing.assert_array_equal(back.faces, face.faces)
    np.testing.assert_array_equal(back.vertex_colors, face.vertex_colors)
    # the file trimesh reads is the same mesh
    loaded = trimesh.load(tmp_path / "face.ply", process=False)
    np.testing.assert_array_equal(loaded.faces, face.faces)
    np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], face.vertex_colors)
    # without colours there are no colour properties
    write_ply(tmp_path / "plain.ply", Mesh(vertices=face.vertices, faces=face.faces))
    assert b"red" not in (tmp_path / "plain.ply").read_bytes()[:400]
    assert read_ply(tmp_path / "plain.ply").vertex_colors is None


def test_read_ply_ascii_quads_and_big_endian(tmp_path: Path) -> None:
    (tmp_path / "q.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
        "property float s\nproperty float t\nelement face 2\nproperty list uchar int vertex_indices\n"
        "end_header\n0 0 0 0 0\n1 0 0 1 0\n1 1 0 1 1\n0 1 0 0 1\n2 2 0 .5 .5\n4 0 1 2 3\n3 2 3 4\n"
    )
    mesh = read_ply(tmp_path / "q.ply")
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(mesh.uvs[4], [0.5, 0.5])
    header = (
        "ply\nformat binary_big_endian 1.0\nelement vertex 3\nproperty double x\nproperty double y\n"
        "property double z\nelement face 1\nproperty list uchar uint vertex_indices\nend_header\n"
    )
    body = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], ">f8").tobytes() + b"\x03" + np.array([0, 1, 2], ">u4").tobytes()
    (tmp_path / "be.ply").write_bytes(header.encode() + body)
    mesh = read_ply(tmp_path / "be.ply")
    np.testing.assert_array_equal(mesh.vertices[1], [1, 0, 0])
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2]])


def test_ply_errors(face: Mesh, tmp_path: Path) -> None:
    write_ply(tmp_path / "face.ply", face)
    data = (tmp_path / "face.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.ply").write_text("not a ply\n")
    (tmp_path / "noheader.ply").write_text("ply\nformat ascii 1.0\nelement vertex 1\n")
    (tmp_path / "points.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
        "end_header\n0 0 0\n"
    )
    for name in ("cut.ply", "text.ply", "noheader.ply", "points.ply", "missing.ply"):
        with pytest.raises(MeshFileError) as err:
            read_ply(tmp_path / name)
        _one_line_naming(err, tmp_path / name)
    with pytest.raises(MeshFileError, match="extension"):
        read_ply(tmp_path / "face.obj")
    with pytest.raises(ValueError, match="path"):
        write_ply(tmp_path / "face.glb", face)


# --- GLB ---------------------------------------------------------------------------------------


def _accessor_array(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """A plain decoder for the accessors this writer makes (tight views, float32 or uint), with sparse."""
    acc = gltf.accessors[index]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[acc.type]
    dtype = {5126: "<f4", 5125: "<u4", 5123: "<u2"}[acc.componentType]
    if acc.bufferView is None:
        out = np.zeros((acc.count, width), dtype)
    else:
        view = gltf.bufferViews[acc.bufferView]
        out = np.frombuffer(blob, dtype, acc.count * width, view.byteOffset + (acc.byteOffset or 0))
        out = out.reshape(acc.count, width).copy()
    if acc.sparse is not None:
        sp = acc.sparse
        idx_dtype = {5125: "<u4", 5123: "<u2"}[sp.indices.componentType]
        idx = np.frombuffer(blob, idx_dtype, sp.count, gltf.bufferViews[sp.indices.bufferView].byteOffset)
        out[idx.astype(np.int64)] = np.frombuffer(
            blob, dtype, sp.count * width, gltf.bufferViews[sp.values.bufferView].byteOffset
        ).reshape(-1, width)
    return out


def test_glb_round_trip(face: Mesh, tmp_path: Path) -> None:
    write_glb(tmp_path / "face.glb", face)
    back = read_glb(tmp_path / "face.glb")
    # vertices come back in the original indexing (merged through _VERTEX_ID), within float32 of metres
    np.testing.assert_allclose(back.vertices, face.vertices, atol=2e-5 * np.abs(face.vertices).max())
    np.testing.assert_array_equal(back.faces, face.faces)
    np.testing.assert_allclose(back.uvs[back.uv_faces], face.uvs[face.uv_faces], atol=1e-6)
    np.testing.assert_array_equal(back.vertex_colors, face.vertex_colors)
    np.testing.assert_array_equal(back.texture, face.texture)
    assert back.morph_names == EXPRESSIONS
    np.testing.assert_allclose(back.morph_deltas, face.morph_deltas, atol=1e-4)
    np.testing.assert_array_equal(back.morph_weights, WEIGHTS)
    assert back.name == "ict face"
    # millimetres: the same, and the stored positions are the millimetres
    write_glb(tmp_path / "mm.glb", face, units="mm")
    np.testing.assert_allclose(read_glb(tmp_path / "mm.glb").vertices, face.vertices, rtol=1e-6, atol=1e-4)
    gltf = pygltflib.GLTF2.load(tmp_path / "mm.glb")
    pos = _accessor_array(gltf, gltf.binary_blob(), gltf.meshes[0].primitives[0].attributes.POSITION)
    assert abs(np.abs(pos).max() - np.abs(face.vertices).max()) < 1e-3


def test_glb_structure(face: Mesh, tmp_path: Path) -> None:
    path = tmp_path / "face.glb"
    write_glb(path, face)
    data = path.read_bytes()
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    gltf = pygltflib.GLTF2.load(path)
    blob = gltf.binary_blob()
    assert len(gltf.buffers) == 1 and gltf.buffers[0].byteLength == len(blob)
    for view in gltf.bufferViews:  # every view inside the buffer, 4-byte aligned
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= len(blob)
    prim = gltf.meshes[0].primitives[0]
    attrs = prim.attributes
    positions = _accessor_array(gltf, blob, attrs.POSITION)
    n = len(positions)
    corners = {(int(v), int(t)) for v, t in zip(face.faces.ravel(), face.uv_faces.ravel())}
    assert n == len(corners)  # split exactly at the UV seams (every ICT vertex is in a face)
    for index in (attrs.NORMAL, attrs.TEXCOORD_0, attrs.COLOR_0, getattr(attrs, VERTEX_ID_ATTRIBUTE)):
        assert gltf.accessors[index].count == n
    indices = _accessor_array(gltf, blob, prim.indices).ravel()
    assert len(indices) == face.faces.size and indices.max() < n
    # POSITION accessors (base and targets) carry min/max equal to their data, as glTF requires
    position_accessors = [attrs.POSITION] + [t["POSITION"] for t in prim.targets]
    for index in position_accessors:
        acc, values = gltf.accessors[index], _accessor_array(gltf, blob, index)
        assert acc.count == n
        np.testing.assert_array_equal(acc.min, values.min(0))
        np.testing.assert_array_equal(acc.max, values.max(0))
    assert any(gltf.accessors[t["POSITION"]].sparse is not None for t in prim.targets)  # the eye blink
    # the mapping to facerecon vertices, the metres and the flipped texcoords
    ids = _accessor_array(gltf, blob, getattr(attrs, VERTEX_ID_ATTRIBUTE)).ravel().astype(np.int64)
    np.testing.assert_allclose(positions, face.vertices[ids] * 1e-3, rtol=1e-6, atol=1e-9)
    tri_ids = ids[indices.reshape(-1, 3)]
    np.testing.assert_array_equal(tri_ids, face.faces)
    texcoords = _accessor_array(gltf, blob, attrs.TEXCOORD_0)[indices.reshape(-1, 3)]
    uv = face.uvs[face.uv_faces]
    np.testing.assert_allclose(texcoords[..., 0], uv[..., 0], atol=1e-6)
    np.testing.assert_allclose(texcoords[..., 1], 1.0 - uv[..., 1], atol=1e-6)
    deltas = _accessor_array(gltf, blob, prim.targets[2]["POSITION"])
    np.testing.assert_allclose(deltas, face.morph_deltas[2][ids] * 1e-3, atol=1e-9)
    normals = _accessor_array(gltf, blob, attrs.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    # names, weights, texture, material, units
    assert gltf.meshes[0].extras["targetNames"] == list(EXPRESSIONS)
    assert gltf.meshes[0].weights == WEIGHTS.tolist()
    material = gltf.materials[prim.material]
    assert material.pbrMetallicRoughness.baseColorTexture.index == 0
    assert material.pbrMetallicRoughness.metallicFactor == 0.0
    image = gltf.images[gltf.textures[0].source]
    assert image.mimeType == "image/png"
    view = gltf.bufferViews[image.bufferView]
    png = blob[view.byteOffset : view.byteOffset + view.byteLength]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert gltf.asset.version == "2.0" and gltf.asset.extras["facerecon"]["units"] == "m"


def test_glb_passes_the_khronos_validator(face: Mesh, tmp_path: Path) -> None:
    """Uses the npm package gltf-validator (the official Khronos validator) when it is installed."""
    command = validator_command()
    if command is None:
        pytest.skip(MISSING)
    write_glb(tmp_path / "face.glb", face)
    plain = Mesh(vertices=face.vertices, faces=face.faces)
    write_glb(tmp_path / "plain.glb", plain, units="mm")
    for name in ("face.glb", "plain.glb"):
        out = subprocess.run([*command, str(tmp_path / name)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        issues = json.loads(out.stdout)
        assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"]


def test_glb_loads_in_trimesh(face: Mesh, tmp_path: Path) -> None:
    write_glb(tmp_path / "face.glb", face)
    loaded = trimesh.load(tmp_path / "face.glb", force="mesh", process=False)
    gltf_back = read_glb(tmp_path / "face.glb")
    assert len(loaded.faces) == len(face.faces)
    # trimesh sees the seam-split vertices; mapped through the faces they are our corners, in metres
    np.testing.assert_allclose(
        np.asarray(loaded.vertices)[loaded.faces] * 1000.0, gltf_back.vertices[gltf_back.faces], atol=1e-3
    )
    assert loaded.visual.uv is not None and len(loaded.visual.uv) == len(loaded.vertices)


def test_glb_without_extras_and_plain_mesh(face: Mesh, tmp_path: Path) -> None:
    plain = Mesh(vertices=face.vertices, faces=face.faces, name="plain")
    write_glb(tmp_path / "plain.glb", plain)
    back = read_glb(tmp_path / "plain.glb")
    np.testing.assert_array_equal(back.faces, plain.faces)
    assert back.uvs is None and back.texture is None and back.morph_deltas is None and back.vertex_colors is None
    # a GLB by another tool (here trimesh): split vertices come back as they are, in millimetres
    other = trimesh.Trimesh(vertices=face.vertices[:3] * 1e-3, faces=[[0, 1, 2]], process=False)
    other.export(tmp_path / "other.glb")
    back = read_glb(tmp_path / "other.glb")
    np.testing.assert_allclose(back.vertices, face.vertices[:3], atol=1e-4)
    np.testing.assert_array_equal(back.faces, [[0, 1, 2]])


def test_glb_errors(face: Mesh, tmp_path: Path) -> None:
    write_glb(tmp_path / "face.glb", face)
    data = (tmp_path / "face.glb").read_bytes()
    (tmp_path / "cut.glb").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.glb").write_text("not binary glTF at all")
    json_len = struct.unpack("<I", data[12:16])[0]
    (tmp_path / "badjson.glb").write_bytes(data[:20] + b"{" * json_len + data[20 + json_len :])
    for name in ("cut.glb", "text.glb", "badjson.glb", "missing.glb"):
        with pytest.raises(MeshFileError) as err:
            read_glb(tmp_path / name)
        _one_line_naming(err, tmp_path / name)
    with pytest.raises(MeshFileError, match="extension"):
        read_glb(tmp_path / "face.gltf")
    with pytest.raises(ValueError, match="units"):
        write_glb(tmp_path / "x.glb", face, units="cm")
    with pytest.raises(ValueError, match="path"):
        write_glb(tmp_path / "x.gltf", face)
    bad = Mesh(vertices=np.full((3, 3), np.nan), faces=np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="finite"):
        write_glb(tmp_path / "x.glb", bad)
    assert not (tmp_path / "x.glb").exists() and not list(tmp_path.glob(".x.*"))


def test_write_and_read_mesh_by_extension(face: Mesh, tmp_path: Path) -> None:
    small = Mesh(vertices=face.vertices[:4], faces=np.array([[0, 1, 2], [0, 2, 3]]))
    for suffix in (".obj", ".ply", ".glb"):
        write_mesh(tmp_path / f"m{suffix}", small)
        np.testing.assert_array_equal(read_mesh(tmp_path / f"m{suffix}").faces, small.faces)
    with pytest.raises(ValueError, match="path"):
        write_mesh(tmp_path / "m.stl", small)
    with pytest.raises(MeshFileError):
        read_mesh(tmp_path / "m.stl")


def _draw(mesh: Mesh, weights: np.ndarray, size: int = 360) -> np.ndarray:
    """A front view (orthographic, painter's order) of a mesh shaded by its normals and textured."""
    import cv2

    v = mesh.vertices + np.einsum("k,kvc->vc", weights, mesh.morph_deltas)
    tri = v[mesh.faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    keep = normal[:, 2] > 0  # facing the viewer (+z)
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    px = (tri[..., :2] - lo) / (hi - lo).max() * (size - 20) + 10
    px[..., 1] = size - px[..., 1]  # y up -> rows down
    uv = mesh.uvs[mesh.uv_faces].mean(1) % 1.0  # ICT's UVs leave [0, 1] (eyes, mouth): repeat
    h, w = mesh.texture.shape[:2]
    tex = mesh.texture[((1 - uv[:, 1]) * (h - 1)).round().astype(int), (uv[:, 0] * (w - 1)).round().astype(int)]
    color = tex * (0.3 + 0.7 * normal[:, 2:3])
    image = np.full((size, size, 3), 255, np.uint8)
    for f in np.argsort(tri[:, :, 2].mean(1)):
        if keep[f]:
            cv2.fillConvexPoly(image, np.round(px[f] * 16).astype(np.int32), color[f].tolist(), cv2.LINE_8, 4)
    return image


def test_glb_morph_targets_move_the_face(face: Mesh, tmp_path: Path, artifacts_dir: Path | None) -> None:
    write_glb(tmp_path / "face.glb", face)
    back = read_glb(tmp_path / "face.glb")
    jaw = back.morph_deltas[0]
    moved = np.linalg.norm(jaw, axis=1) > 1.0
    assert moved.sum() > 1000 and jaw[moved, 1].mean() < -3.0  # the jaw opens downwards (y up), by mm
    blink = back.morph_deltas[1]
    assert 0 < (np.abs(blink).max(1) > 0.1).sum() < len(blink) // 10  # a small, local target (eyelid)
    assert (blink[:, 1] < -0.5).sum() > 500 and blink[:, 1].min() < -10.0  # the upper lid comes down
    if artifacts_dir is not None:
        u, v = np.meshgrid(np.linspace(0, 1, 256), np.linspace(1, 0, 256))
        checker = (((u * 16).astype(int) + (v * 16).astype(int)) % 2 * 155 + 100).astype(np.uint8)
        textured = Mesh(
            vertices=back.vertices, faces=back.faces, uvs=back.uvs, uv_faces=back.uv_faces,
            texture=np.dstack([checker, (u * 255).astype(np.uint8), (v * 255).astype(np.uint8)]),
            morph_names=back.morph_names, morph_deltas=back.morph_deltas,
        )  # fmt: skip
        panels = [_draw(textured, np.array(w, float)) for w in ([0, 0, 0], [1, 0, 0], [0, 1, 1])]
        Image.fromarray(np.concatenate(panels, axis=1)).save(artifacts_dir / "io_glb_morph_targets.png")
