"""The texture and details stages inside ``reconstruct``: a profile photo gets a complete face texture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facerecon.cli.main import main
from facerecon.pipeline.run import ReconstructOptions, Reconstructor
from facerecon.texture.details import decode_displacement

PROFILE = "prnet-3.jpg"  # a left profile: the subject's right side is hidden


@pytest.fixture(scope="module")
def profile(face_model, faces_dir):
    with Reconstructor(face_model, ReconstructOptions(render_images=False)) as rec:
        face = rec.run(faces_dir / PROFILE).reconstructions[0]
        plain = Reconstructor(face_model, ReconstructOptions(render_images=False, texture_completion=False, details=False),
                              detector=rec.detector).run(faces_dir / PROFILE).reconstructions[0]  # fmt: skip
    return face, plain


def _sides(face_model, size: int):
    """Texel masks of the subject's right (x < -15 mm) and left (x > 15 mm) cheek areas on the mean face."""

    from facerecon.render.uv import position_map, rasterize_uv

    sub = face_model.submesh("face")
    frags = rasterize_uv(face_model.uvs, sub.uv_triangles, size)
    pos = position_map(face_model.mean[None, : sub.vertex_count], sub.triangles, frags)[0].numpy()
    covered = frags.mask[0].numpy()
    band = covered & (pos[1] > -60) & (pos[1] < 20) & (pos[2] > 40)  # the face, not the ears or neck
    return band & (pos[0] < -15), band & (pos[0] > 15)


def test_profile_texture_is_complete(profile, face_model, artifacts_dir) -> None:
    face, plain = profile
    assert abs(face.pose.angles_deg[1]) > 40  # really a profile
    right, left = _sides(face_model, face.textures.texture.shape[0])
    seen, hidden = (left, right) if face.pose.angles_deg[1] < 0 else (right, left)
    lum = lambda t: t.astype(np.float64) @ [0.299, 0.587, 0.114]
    # The completed hidden cheek looks like the seen one (mirror image of the de-lit albedo, re-lit)...
    assert abs(np.median(lum(face.textures.albedo[hidden])) - np.median(lum(face.textures.albedo[seen]))) < 20
    # ... with photo detail (texture variance), not a flat fill; the plain bake is flat there.
    assert lum(face.textures.albedo[hidden]).std() > 1.5 * lum(plain.textures.texture[hidden]).std() or \
        abs(np.median(lum(plain.textures.texture[hidden])) - np.median(lum(plain.textures.texture[seen]))) > 20  # fmt: skip
    assert lum(face.textures.texture[hidden]).min() >= 0 and np.median(lum(face.textures.texture[hidden])) > 60  # not black
    if artifacts_dir is not None:
        cv2.imwrite(str(artifacts_dir / "profile_texture.png"), cv2.cvtColor(np.hstack([plain.textures.texture, face.textures.texture, face.textures.albedo]), cv2.COLOR_RGB2BGR))


def test_details_outputs(profile, face_model, tmp_path: Path) -> None:
    face, plain = profile
    assert plain.textures.albedo is None and plain.textures.displacement is None and plain.textures.detailed_mesh is None
    size = face.textures.texture.shape[0]
    assert face.textures.displacement.shape == (size, size) and face.textures.normal_map.shape == (size, size, 3)
    assert np.abs(face.textures.displacement).max() <= 2.0 + 1e-6 and np.abs(face.textures.displacement).max() > 0
    assert "details" in face.fit.timings_ms and face.fit.losses["details"]["con"] <= face.fit.losses["details"]["con_start"]
    out = face.save(tmp_path / "f", outputs=("default", "details-obj"))
    disp = cv2.imread(str(out / "displacement.png"), cv2.IMREAD_UNCHANGED)
    assert disp.dtype == np.uint16 and disp.shape == (size, size)
    np.testing.assert_allclose(decode_displacement(disp), face.textures.displacement, atol=6e-4)
    import json

    files = json.loads((out / "params.json").read_text())["texture_files"]
    assert files["displacement.png"] == {"bits": 16, "mm_per_unit": 0.001, "zero": 32768, "direction": "outward normal"}
    albedo = cv2.imread(str(out / "albedo.png"))
    assert albedo.shape == (1024, 1024, 3)
    from facerecon.io.gltf import read_glb
    from facerecon.io.mesh import read_obj

    detailed = read_glb(out / "mesh_detailed.glb")  # the default, binary form
    assert len(detailed.vertices) > 50_000 and detailed.texture is not None
    as_text = read_obj(out / "mesh_detailed.obj")  # on request: the same mesh as text
    np.testing.assert_allclose(as_text.vertices, detailed.vertices, atol=2e-3)
    assert (out / "mesh_detailed.obj").stat().st_size > 2 * (out / "mesh_detailed.glb").stat().st_size
    # The detailed mesh lies on the fitted face (model space, mm): near its vertices (ICT's vertex spacing
    # is up to ~8 mm on the scalp and neck).
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(face.mesh.vertices).query(detailed.vertices)
    assert np.median(dist) < 1.5 and np.quantile(dist, 0.99) < 6.0
    # Object-space normal map: mostly facing +z (out of the face) on the front of the face.
    n = face.textures.normal_map.astype(np.float64) / 127.5 - 1.0
    assert np.median(n[size // 2 - 50 : size // 2 + 50, size // 2 - 50 : size // 2 + 50, 2]) > 0.7
    plain_out = plain.save(tmp_path / "p")
    assert not (plain_out / "albedo.png").exists() and not (plain_out / "displacement.png").exists()


def test_cli_switches(faces_dir, tmp_path: Path, model_home, monkeypatch) -> None:
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    out = tmp_path / "out"
    assert main(["reconstruct", str(faces_dir / "prnet-4.jpg"), "-o", str(out), "--no-images", "--quiet",
                 "--no-completion", "--no-details"]) == 0  # fmt: skip
    files = {p.name for p in (out / "prnet-4" / "0").iterdir()}
    assert "texture.png" in files and not files & {"albedo.png", "displacement.png", "normal_map.png", "mesh_detailed.glb"}
    assert not files & {"overlay.png", "depth.png", "depth.npy"}  # --no-images
    assert main(["reconstruct", str(faces_dir / "prnet-4.jpg"), "-o", str(tmp_path / "few"), "--quiet", "--stages",
                 "landmarks", "--outputs", "glb,depth"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "few" / "prnet-4" / "0").iterdir()) == ["depth.npy", "face.glb", "params.json"]
    assert main(["reconstruct", str(faces_dir / "prnet-4.jpg"), "-o", str(tmp_path / "bad"), "--outputs", "glb,fbx"]) == 2
    assert not (tmp_path / "bad").exists()
