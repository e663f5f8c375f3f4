"""Training the position-map network: ground-truth maps from the corpus's parameters match the rendered crops, a
few steps lower the weighted loss, the run resumes exactly, and the weights it writes load as a PosMapNet."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facerecon.nets.posmap import PosMapConfig, PosMapNet
from facerecon.nets.weights import load_weights
from facerecon.train.corpus import CorpusConfig, write_corpus
from facerecon.train.posmap import MapTargets, PosMapTrainConfig, evaluate_posmap, train_posmap, weighted_map_loss
from facerecon.train.regressor import Corpus
from tests.train.subjects import plain_subject as _subject

TINY_NET = PosMapConfig(input_size=64, stem_channels=8, encoder_channels=(8, 16, 32), map_stride=2)
TINY_CORPUS = CorpusConfig(crop_size=64, views_per_subject=10, negative_fraction=0.1, supersample=1)


@pytest.fixture(scope="module")
def corpora(face_model, faces_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("posmap-corpus")
    train = [_subject(face_model, faces_dir, f"s{k}", c) for k, c in enumerate([(0.8, 0.6, 0.5), (0.5, 0.35, 0.25)])]
    write_corpus(face_model, train, root / "train", TINY_CORPUS)
    write_corpus(face_model, [_subject(face_model, faces_dir, "v0", (0.7, 0.5, 0.4))], root / "val", TINY_CORPUS, split="val")
    return root


def _config(root, **overrides) -> PosMapTrainConfig:
    values = dict(train_corpus=str(root / "train"), val_corpus=str(root / "val"), network=TINY_NET, steps=20, batch_size=8,
                  lr=1e-2, halve_every=100, eval_every=8, eval_faces=8, checkpoint_every=4, threads=1)  # fmt: skip
    return PosMapTrainConfig(**{**values, **overrides})


def test_ground_truth_maps_hold_the_crops_landmarks(face_model, corpora) -> None:
    """The maps made from a crop's parameters put the 68 landmarks where the corpus recorded them (< 0.5 px)."""
    corpus = Corpus(corpora / "val")
    targets = MapTargets(face_model, 128)  # a fine map: the landmarks' texels are small
    faces = torch.nonzero(corpus.is_face)[:, 0]
    read = targets.layout.landmarks(targets.maps(corpus, faces), corpus.crop_size)
    error = (read - corpus.landmarks[faces]).norm(dim=-1)
    assert float(error.median()) < 0.2 and float(error.max()) < 1.5
    # and the whole face: the map's vertices are the corpus's mesh, in the crop's camera
    cam, depth = targets.camera_vertices(corpus, faces[:2])
    camera = corpus.targets(faces[:2]).camera.to(dtype=torch.float64)
    back = targets.layout.unit_points(targets.layout.vertex_points(targets.layout.encode(cam, camera, depth)), camera)
    resolved = targets.layout.resolved_vertices(0.1)
    assert float(((back * depth[:, None, None] - cam).norm(dim=-1)[:, resolved]).mean()) < 0.05


def test_a_few_steps_lower_the_weighted_loss_and_resume_exactly(face_model, corpora, tmp_path) -> None:
    config = _config(corpora)
    first = train_posmap(face_model, config, tmp_path / "run", device="cpu")
    history = np.array(first.history)
    assert history[-5:].mean() < history[:5].mean() * 0.9  # measured: 0.649 -> 0.566
    assert set(first.metrics) >= {"map_loss", "nme", "nme_yaw_0_30", "faces"}
    loaded = load_weights(first.weights, sha256=first.sha256)
    assert isinstance(loaded.model, PosMapNet) and loaded.config == TINY_NET
    assert loaded.training_config["weights"] == "r1" and loaded.metrics == pytest.approx(first.metrics)
    # Killed after step 5 (its last checkpoint: step 4) and resumed: the same weights as the run straight through.
    class Killed(Exception):
        pass

    def kill_at_5(step: int, loss: float) -> None:
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        train_posmap(face_model, config, tmp_path / "resumed", device="cpu", on_step=kill_at_5)
    assert not (tmp_path / "resumed" / "posmap.safetensors").exists()
    resumed = train_posmap(face_model, config, tmp_path / "resumed", device="cpu")
    assert len(resumed.history) == 16 and resumed.sha256 == first.sha256
    with pytest.raises(ValueError, match="another training config"):
        train_posmap(face_model, dataclasses.replace(config, lr=5e-3), tmp_path / "resumed", device="cpu")


def test_r1_and_r2_weigh_the_loss_by_region(face_model, corpora) -> None:
    corpus = Corpus(corpora / "val")
    targets = MapTargets(face_model, 32)
    faces = torch.nonzero(corpus.is_face)[:, 0][:4]
    truth = targets.maps(corpus, faces)
    r1, r2 = targets.layout.weight_mask("r1"), targets.layout.weight_mask("r2")
    assert float(weighted_map_loss(truth, truth, r1)) < 1e-5
    off_landmarks = truth.clone()
    off_landmarks[:, :, r1 == 16] += 0.1  # move only the landmark areas
    assert float(weighted_map_loss(off_landmarks, truth, r1)) > float(weighted_map_loss(off_landmarks, truth, r2))
    neck = truth.clone()
    neck[:, :, r1 == 0] += 5.0  # the neck and outside weigh nothing
    assert float(weighted_map_loss(neck, truth, r1)) < 1e-5
    net = PosMapNet(TINY_NET)
    figures = evaluate_posmap(net, corpus, targets, r1)
    assert figures["faces"] == float(len(torch.nonzero(corpus.is_face)))


def test_a_bad_config_is_one_clear_line(tmp_path) -> None:
    with pytest.raises(ValueError, match="weights: expected one of r1, r2"):
        PosMapTrainConfig(weights="r3")
    with pytest.raises(ValueError, match="unknown keys speed"):
        PosMapTrainConfig.from_json(json.dumps({"speed": 1}))
    configs = Path(__file__).resolve().parents[2] / "facerecon" / "train" / "configs"
    shipped = PosMapTrainConfig.from_json((configs / "posmap.json").read_text())
    ablation = PosMapTrainConfig.from_json((configs / "posmap-r2.json").read_text())
    assert shipped.weights == "r1" and ablation.weights == "r2"
    assert dataclasses.replace(ablation, weights="r1") == shipped  # the same recipe but the mask


def test_the_train_posmap_command(face_model, model_home, corpora, tmp_path, capsys, monkeypatch) -> None:
    from facerecon.cli.exit_codes import ExitCode
    from facerecon.cli.main import main

    monkeypatch.setenv("FACERECON_HOME", str(model_home))  # the command line reads the model from there

    config = tmp_path / "tiny.json"
    config.write_text(dataclasses.replace(_config(corpora), steps=3, eval_every=100).to_json())
    code = main(["train", "posmap", "--config", str(config), "-o", str(tmp_path / "run"), "--device", "cpu", "--quiet"])
    out = capsys.readouterr().out
    assert code == ExitCode.OK and "sha256" in out and '"nme"' in out
    assert isinstance(load_weights(tmp_path / "run" / "posmap.safetensors").model, PosMapNet)
    config.write_text('{"weights": "r9"}')
    code = main(["train", "posmap", "--config", str(config), "-o", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ExitCode.USAGE and len(err) == 1 and "weights: expected one of r1, r2" in err[0]
