"""Tests of the glTF animation of facerecon.io.gltf (write_glb(animation=...), read_glb_animation) and FaceAnimation."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import trimesh

import facerecon.io.gltf as gltf_module
from facerecon.core.errors import MeshFileError
from facerecon.core.mesh import Mesh
from facerecon.io.animation import FaceAnimation
from facerecon.io.gltf import read_glb, read_glb_animation, write_glb
from tests.io.khronos import MISSING, validator_command

NAMES = ("jawOpen", "eyeBlink_L", "mouthSmile_R")


def _cube(morphs: int = 3) -> Mesh:
    """A 20 mm cube with per-face UVs (split at seams), colours and morph targets (dense, one-vertex, half)."""
    v = np.array([[x, y, z] for x in (-10.0, 10.0) for y in (-10.0, 10.0) for z in (-10.0, 10.0)])
    quads = np.array([[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]])
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]).astype(np.int64)
    uv_quad = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]) * 0.15
    uvs = np.concatenate([uv_quad + [0.16 * i, 0.1] for i in range(6)])
    uvq = np.arange(24).reshape(6, 4)
    uv_faces = np.concatenate([uvq[:, [0, 1, 2]], uvq[:, [0, 2, 3]]]).astype(np.int64)
    colors = ((v - v.min(0)) / 20.0 * 255).astype(np.uint8)
    deltas = np.zeros((morphs, 8, 3))
    if morphs:
        deltas[0, :, 1] = 2.0
        deltas[1 % morphs, 7] = [0.0, 0.0, 3.0]
        deltas[2 % morphs, :4, 0] = -1.5
    return Mesh(
        vertices=v,
        faces=faces,
        uvs=uvs,
        uv_faces=uv_faces,
        vertex_colors=colors,
        morph_names=NAMES[:morphs],
        morph_deltas=deltas if morphs else None,
        morph_weights=np.array([0.25, 0.0, 1.0])[:morphs] if morphs else None,
        name="cube",
    )


def _about(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(T, 3, 3)`` about a unit axis (Rodrigues), written out for the test."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.stack([np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k) for a in angles])


def _animation(frames: int = 12, morphs: int = 3, travel_deg: float = 270.0, **kwargs) -> FaceAnimation:
    rng = np.random.default_rng(7)
    axis = np.array([0.2, 1.0, 0.1]) / np.linalg.norm([0.2, 1.0, 0.1])
    return FaceAnimation(
        times_s=0.5 + np.arange(frames) / 25.0,
        morph_weights=rng.uniform(0.0, 1.0, (frames, morphs)),
        rotations=_about(axis, np.radians(np.linspace(0.0, travel_deg, frames))),
        translations=np.stack([np.linspace(-40, 40, frames), rng.normal(0, 5, frames), np.full(frames, -600.0)], 1),
        **kwargs,
    )


def _accessor(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """A dense float32 accessor as ``(count, width)``, read with pygltflib's view offsets (no facerecon code)."""
    acc = gltf.accessors[index]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc.type]
    view = gltf.bufferViews[acc.bufferView]
    assert acc.componentType == pygltflib.FLOAT and view.byteStride in (None, 0)
    data = np.frombuffer(gltf.binary_blob(), "<f4", acc.count * width, view.byteOffset + (acc.byteOffset or 0))
    return data.reshape(acc.count, width)


# --- round trip ------------------------------------------------------------------------------------


@pytest.mark.parametrize("units", ["m", "mm"])
def test_animation_round_trip(tmp_path: Path, units: str) -> None:
    anim = _animation(camera_yfov_rad=0.7, camera_aspect=16 / 9, name="take 1")
    path = tmp_path / "anim.glb"
    write_glb(path, _cube(), units=units, animation=anim)
    back = read_glb_animation(path)
    assert back is not None and back.name == "take 1"
    np.testing.assert_allclose(back.times_s, anim.times_s, rtol=0, atol=1e-6)  # stored as float32
    np.testing.assert_allclose(back.morph_weights, anim.morph_weights, atol=1e-6)
    np.testing.assert_allclose(back.rotations, anim.rotations, atol=1e-6)  # 270 degrees of travel come back
    np.testing.assert_allclose(back.translations, anim.translations, atol=1e-4)  # mm, whatever the file's units
    assert back.camera_yfov_rad == pytest.approx(0.7) and back.camera_aspect == pytest.approx(16 / 9)
    # the file's translations are in its units, like the positions
    gltf = pygltflib.GLTF2.load(path)
    sampler = next(gltf.animations[0].samplers[c.sampler] for c in gltf.animations[0].channels
                   if c.target.path == "translation")
    stored = _accessor(gltf, sampler.output)
    np.testing.assert_allclose(stored, anim.translations * (1e-3 if units == "m" else 1.0), rtol=1e-6, atol=1e-7)
    # the mesh itself still reads back, its default weights now the first frame's
    mesh = read_glb(path)
    np.testing.assert_allclose(mesh.morph_weights, anim.morph_weights[0], atol=1e-12)
    np.testing.assert_allclose(mesh.vertices, _cube().vertices, atol=1e-4)


def test_animation_without_morph_targets_and_single_frame(tmp_path: Path) -> None:
    anim = FaceAnimation(
        times_s=np.array([0.0]), morph_weights=np.zeros((1, 0)), rotations=_about(np.array([1.0, 0, 0]), [0.3]),
        translations=np.array([[1.0, 2.0, -300.0]]),
    )
    write_glb(tmp_path / "one.glb", _cube(morphs=0), animation=anim)
    gltf = pygltflib.GLTF2.load(tmp_path / "one.glb")
    assert [c.target.path for c in gltf.animations[0].channels] == ["rotation", "translation"]
    back = read_glb_animation(tmp_path / "one.glb")
    assert back.morph_weights.shape == (1, 0) and back.camera_yfov_rad is None
    np.testing.assert_allclose(back.rotations, anim.rotations, atol=1e-6)
    np.testing.assert_allclose(back.translations, anim.translations, atol=1e-4)


# --- structure -------------------------------------------------------------------------------------


def test_animation_structure(tmp_path: Path) -> None:
    anim = _animation(frames=9, camera_yfov_rad=0.5, camera_aspect=1.5)
    frames, morphs = anim.morph_weights.shape
    write_glb(tmp_path / "anim.glb", _cube(), animation=anim)
    gltf = pygltflib.GLTF2.load(tmp_path / "anim.glb")
    assert len(gltf.animations) == 1
    animation = gltf.animations[0]
    assert animation.name == "performance"
    assert sorted(c.target.path for c in animation.channels) == ["rotation", "translation", "weights"]
    assert {c.target.node for c in animation.channels} == {0} and gltf.nodes[0].mesh == 0
    samplers = {c.target.path: animation.samplers[c.sampler] for c in animation.channels}
    assert {s.interpolation for s in samplers.values()} == {"LINEAR"}
    assert len({s.input for s in samplers.values()}) == 1  # one shared time accessor
    times = gltf.accessors[samplers["weights"].input]
    assert (times.count, times.type) == (frames, "SCALAR")
    assert times.min == [pytest.approx(anim.times_s[0])] and times.max == [pytest.approx(anim.times_s[-1])]
    rotation, translation = gltf.accessors[samplers["rotation"].output], gltf.accessors[samplers["translation"].output]
    weights = gltf.accessors[samplers["weights"].output]
    assert (rotation.count, rotation.type) == (frames, "VEC4")
    assert (translation.count, translation.type) == (frames, "VEC3")
    assert (weights.count, weights.type) == (frames * morphs, "SCALAR")  # glTF: T * K scalars
    # frame-major: all K weights of key 0, then key 1, ...
    np.testing.assert_allclose(_accessor(gltf, samplers["weights"].output)[:, 0], anim.morph_weights.ravel(), atol=1e-7)
    for s in samplers.values():  # animation data are no vertex data: no bufferView target
        assert gltf.bufferViews[gltf.accessors[s.output].bufferView].target is None
    # the node rests at the first frame; the mesh's default weights are the first frame's
    np.testing.assert_allclose(gltf.nodes[0].translation, anim.translations[0] * 1e-3, rtol=1e-6)
    np.testing.assert_allclose(gltf.nodes[0].rotation, _accessor(gltf, samplers["rotation"].output)[0], atol=1e-7)
    np.testing.assert_allclose(gltf.meshes[0].weights, anim.morph_weights[0], atol=1e-12)
    assert gltf.meshes[0].extras["targetNames"] == list(NAMES)  # what three.js maps the weights track with
    # the camera: its own node at the origin (no transform: looking along -z), in the scene
    (camera_node,) = [n for n in gltf.nodes if n.camera is not None]
    assert camera_node.translation is None and camera_node.rotation is None and camera_node.matrix is None
    assert gltf.nodes.index(camera_node) in gltf.scenes[0].nodes
    perspective = gltf.cameras[camera_node.camera].perspective
    assert gltf.cameras[0].type == "perspective"
    assert (perspective.yfov, perspective.aspectRatio) == (pytest.approx(0.5), pytest.approx(1.5))
    assert perspective.znear == pytest.approx(0.01) and perspective.zfar > 10  # metres


def test_quaternions_known_answer_and_sign_continuity(tmp_path: Path) -> None:
    # a quarter turn about y: (x, y, z, w) = (0, sin 45, 0, cos 45)
    quarter = FaceAnimation(
        times_s=np.array([0.0, 1.0]), morph_weights=np.zeros((2, 3)),
        rotations=np.stack([np.eye(3), [[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]]), translations=np.zeros((2, 3)),
    )
    write_glb(tmp_path / "quarter.glb", _cube(), animation=quarter)
    gltf = pygltflib.GLTF2.load(tmp_path / "quarter.glb")
    sampler = next(gltf.animations[0].samplers[c.sampler] for c in gltf.animations[0].channels
                   if c.target.path == "rotation")
    np.testing.assert_allclose(_accessor(gltf, sampler.output), [[0, 0, 0, 1], [0, np.sqrt(0.5), 0, np.sqrt(0.5)]],
                               atol=1e-7)

    # 340 degrees about a tilted axis in 18 steps of 20: past 180 degrees w < 0 on the continuous path
    anim = _animation(frames=18, travel_deg=340.0)
    write_glb(tmp_path / "turn.glb", _cube(), animation=anim)
    gltf = pygltflib.GLTF2.load(tmp_path / "turn.glb")
    sampler = next(gltf.animations[0].samplers[c.sampler] for c in gltf.animations[0].channels
                   if c.target.path == "rotation")
    q = _accessor(gltf, sampler.output).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
    assert q[0, 3] >= 0
    dots = np.einsum("ij,ij->i", q[1:], q[:-1])
    assert (dots > 0).all(), dots
    assert (q[:, 3] < 0).any()  # a w >= 0 hemisphere convention would have flipped these keys
    # what interpolating a pair of keys gives: halfway, i.e. 10 degrees from each key (not the long way round)
    half = (q[:-1] + q[1:]) / np.linalg.norm(q[:-1] + q[1:], axis=1, keepdims=True)
    angle_to_key = 2 * np.degrees(np.arccos(np.clip(np.abs(np.einsum("ij,ij->i", half, q[:-1])), -1, 1)))
    np.testing.assert_allclose(angle_to_key, 20.0 / 2, atol=1e-3)


# --- errors ----------------------------------------------------------------------------------------


def _fields(**change) -> dict:
    anim = _animation(frames=4)
    fields = {"times_s": anim.times_s, "morph_weights": anim.morph_weights, "rotations": anim.rotations,
              "translations": anim.translations}
    fields.update(change)
    return fields


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"times_s": [0.0, 0.1, 0.2, 0.3]}, TypeError, "times_s: expected a NumPy array"),
        ({"times_s": np.arange(4)}, TypeError, "times_s: expected a floating-point array"),
        ({"times_s": np.zeros((4, 1))}, ValueError, r"times_s: expected shape \(T,\)"),
        ({"morph_weights": np.zeros((5, 3))}, ValueError, r"morph_weights: expected shape \(T, K\) with T=4"),
        ({"rotations": np.zeros((4, 3, 4))}, ValueError, r"rotations: expected shape \(T, 3, 3\)"),
        ({"translations": np.full((4, 3), np.nan)}, ValueError, "translations: expected finite values"),
        ({"times_s": np.array([-0.1, 0.0, 0.1, 0.2])}, ValueError, "times_s: expected times >= 0"),
        ({"times_s": np.array([0.0, 0.2, 0.2, 0.3])}, ValueError, "strictly increasing.*frames 1 and 2"),
        ({"rotations": np.tile(2.0 * np.eye(3), (4, 1, 1))}, ValueError, "rotations: expected proper rotation"),
        ({"rotations": np.tile(np.diag([1.0, 1.0, -1.0]), (4, 1, 1))}, ValueError, r"det -1"),
        ({"name": ""}, TypeError, "name: expected a non-empty string"),
        ({"camera_yfov_rad": 3.5}, ValueError, r"camera_yfov_rad: expected a field of view in \(0, pi\)"),
        ({"camera_yfov_rad": "wide"}, TypeError, "camera_yfov_rad: expected a number"),
        ({"camera_yfov_rad": 0.5, "camera_aspect": 0.0}, ValueError, "camera_aspect: expected a width / height"),
        ({"camera_aspect": 1.5}, ValueError, "camera_aspect: given without camera_yfov_rad"),
    ],
)
def test_face_animation_rejects_bad_inputs(change: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        FaceAnimation(**_fields(**change))


def test_face_animation_rejects_no_frames() -> None:
    with pytest.raises(ValueError, match="at least one key frame"):
        FaceAnimation(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 3)))


def test_write_glb_rejects_a_mismatched_animation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"animation.morph_weights: expected shape \(T, 3\)"):
        write_glb(tmp_path / "a.glb", _cube(), animation=_animation(morphs=2))
    with pytest.raises(ValueError, match=r"expected shape \(T, 0\)"):
        write_glb(tmp_path / "a.glb", _cube(morphs=0), animation=_animation(morphs=3))
    with pytest.raises(TypeError, match="animation: expected a facerecon.io.animation.FaceAnimation"):
        write_glb(tmp_path / "a.glb", _cube(), animation={"times_s": [0.0]})
    # distinct in float64, the same in float32 (spacing 6e-5 at 1000 s)
    close = FaceAnimation(**_fields(times_s=np.array([0.0, 1000.0, 1000.00001, 1001.0])))
    with pytest.raises(ValueError, match="strictly increasing as float32"):
        write_glb(tmp_path / "a.glb", _cube(), animation=close)
    assert not list(tmp_path.iterdir())  # nothing written


def test_read_glb_animation_errors(tmp_path: Path) -> None:
    (tmp_path / "text.glb").write_text("not a GLB")
    for name in ("text.glb", "missing.glb"):
        with pytest.raises(MeshFileError) as err:
            read_glb_animation(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    # a CUBICSPLINE sampler (3 values per key) is refused, not misread
    write_glb(tmp_path / "anim.glb", _cube(), animation=_animation())
    gltf = pygltflib.GLTF2.load(tmp_path / "anim.glb")
    gltf.animations[0].samplers[0].interpolation = "CUBICSPLINE"
    gltf.save(tmp_path / "cubic.glb")
    with pytest.raises(MeshFileError, match="CUBICSPLINE"):
        read_glb_animation(tmp_path / "cubic.glb")


# --- no regression, other readers ------------------------------------------------------------------

# SHA-256 of what write_glb wrote for _cube() before animations existed (commit bd8d3cf, pygltflib 1.16.5), with the
# generator's version pinned. A change of pygltflib's JSON output would change them too: then compare by hand.
_BEFORE_ANIMATIONS = {
    "m": "75b90539f1d5777a9d6830d746d6699d00ac7b92c384b2ae3d1e2f97ebb743a5",
    "mm": "08f12af821f7e1c21a8f8b5c6fe0905cd1ec3b1f595416a34cd5addf0e4e70b5",
}


@pytest.mark.parametrize("units", ["m", "mm"])
def test_glb_without_animation_is_unchanged(tmp_path: Path, units: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gltf_module, "__version__", "0.0.0-test")
    write_glb(tmp_path / "plain.glb", _cube(), units=units)
    write_glb(tmp_path / "none.glb", _cube(), units=units, animation=None)
    for name in ("plain.glb", "none.glb"):
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == _BEFORE_ANIMATIONS[units]
        assert read_glb_animation(tmp_path / name) is None
    # and a GLB by another tool without animations
    trimesh.Trimesh(vertices=_cube().vertices * 1e-3, faces=_cube().faces, process=False).export(tmp_path / "o.glb")
    assert read_glb_animation(tmp_path / "o.glb") is None


def test_trimesh_loads_the_animated_file(tmp_path: Path) -> None:
    anim = _animation(camera_yfov_rad=0.6, camera_aspect=1.25)
    write_glb(tmp_path / "anim.glb", _cube(), animation=anim)
    scene = trimesh.load(tmp_path / "anim.glb")
    assert isinstance(scene, trimesh.Scene) and len(scene.geometry) == 1
    (node,) = scene.graph.nodes_geometry
    transform, geometry = scene.graph[node]
    assert len(scene.geometry[geometry].faces) == len(_cube().faces)
    np.testing.assert_allclose(transform[:3, :3], anim.rotations[0], atol=1e-6)  # the node rests at frame 0
    np.testing.assert_allclose(transform[:3, 3], anim.translations[0] * 1e-3, atol=1e-7)


# --- the real model, the Khronos validator ---------------------------------------------------------


def test_ict_head_animation_round_trip(face_model, tmp_path: Path) -> None:
    """The exported head with all 53 expressions animated; valid glTF when the Khronos validator is installed."""
    mesh = face_model.to_mesh(name="ict face")
    names = list(mesh.morph_names)
    frames = 6
    weights = np.zeros((frames, len(names)))
    weights[:, names.index("jawOpen")] = np.linspace(0.0, 1.0, frames)
    anim = FaceAnimation(
        times_s=np.arange(frames) / 30.0, morph_weights=weights,
        rotations=_about(np.array([0.0, 1.0, 0.0]), np.radians(np.linspace(-30, 30, frames))),
        translations=np.tile([0.0, 0.0, -550.0], (frames, 1)), camera_yfov_rad=np.radians(40.0), camera_aspect=0.75,
    )
    write_glb(tmp_path / "head.glb", mesh, animation=anim)
    back = read_glb_animation(tmp_path / "head.glb")
    assert back.morph_weights.shape == (frames, 53)
    np.testing.assert_allclose(back.morph_weights, weights, atol=1e-7)
    np.testing.assert_allclose(back.rotations, anim.rotations, atol=1e-6)
    command = validator_command()
    if command is None:
        pytest.skip(MISSING)
    out = subprocess.run([*command, str(tmp_path / "head.glb")], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    issues = json.loads(out.stdout)
    assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"]
