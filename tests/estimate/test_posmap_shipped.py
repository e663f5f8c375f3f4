"""The shipped position-map network as the pipeline runs it: ``reconstruct --method posmap`` on a real photo writes
every output a method without light writes, in milliseconds, with the face where the detector sees it; eval takes
the same method; wrong weights are one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facerecon.cli.exit_codes import ExitCode
from facerecon.cli.main import main
from facerecon.nets.weights import SHIPPED_WEIGHTS, load_shipped

PHOTO = "3ddfa-emma.jpg"


def test_the_shipped_weights_are_registered_and_load() -> None:
    for name in ("posmap-128-v1", "posmap-128-r2"):
        entry = SHIPPED_WEIGHTS[name]
        loaded = load_shipped(name)
        assert type(loaded.model).__name__ == "PosMapNet" and loaded.metrics == pytest.approx(dict(entry.metrics))
        assert loaded.training_config["weights"] == ("r1" if name.endswith("v1") else "r2")
        assert loaded.metrics["nme"] < 0.08  # validation views: see the README's table


@pytest.fixture
def home(model_home, monkeypatch):
    """The session's model home as FACERECON_HOME (the command line reads the model from there)."""
    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    return model_home


def test_reconstruct_with_posmap_writes_the_outputs(home, faces_dir, tmp_path, face_model) -> None:
    out = tmp_path / "out"
    code = main(["reconstruct", str(faces_dir / PHOTO), "-o", str(out), "--method", "posmap", "--faces", "largest"])
    assert code == ExitCode.OK
    face = out / "3ddfa-emma" / "0"
    for name in ("face.glb", "mesh.obj", "mesh.ply", "params.json", "texture.png", "overlay.png", "landmarks.png"):
        assert (face / name).is_file(), name
    params = json.loads((face / "params.json").read_text())
    assert params["stages"][0] == "posmap" and params["sh_coefficients"] is None  # the network predicts no light
    assert 0 < params["timings_ms"]["posmap"] < 2000
    assert len(params["expression"]) == 53 and len(params["identity"]) == face_model.identity_count
    # The face is where the detector sees it: the mesh's 68 points against MediaPipe's, within 8 % of the face box.
    from facerecon.detect import create_detector
    from facerecon.io.image import read_image

    image = read_image(faces_dir / PHOTO)
    with create_detector("mediapipe") as detector:
        detected = max(detector.detect(image), key=lambda d: d.box_size).to_ibug68()
    ours = np.asarray(params["landmarks68"], dtype=float)
    detected = detected * params["image_size"]["width"] / image.shape[1]  # a large photo is reconstructed at working size
    box = np.sqrt(np.prod(detected.max(0) - detected.min(0)))
    assert np.median(np.linalg.norm(ours - detected, axis=1)) / box < 0.08


def test_wrong_weights_are_one_clear_line(home, faces_dir, tmp_path, capsys) -> None:
    code = main(["reconstruct", str(faces_dir / PHOTO), "-o", str(tmp_path / "o"), "--method", "posmap",
                 "--weights", "regressor-128-v2"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code != ExitCode.OK
    assert any("not a position-map network" in line for line in err)
    code = main(["reconstruct", str(faces_dir / PHOTO), "-o", str(tmp_path / "o2"), "--weights", "posmap-128-v1"])
    assert code == ExitCode.USAGE
