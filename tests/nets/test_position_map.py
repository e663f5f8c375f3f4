"""Position maps in the ICT UV layout: mesh -> map -> mesh round trips, landmarks read from a map, paper 002's
weight masks, the network (shapes, folding, ONNX), and bad maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.rotation import head_angles_to_camera_rotation
from facerecon.models.regions import Region
from facerecon.nets.position_map import PositionMapLayout, check_position_maps
from facerecon.nets.posmap import PosMapConfig, PosMapNet, fold_posmap_batchnorm

CAMERA = PerspectiveCamera.from_focal(400.0, 128, 128, dtype=torch.float64)


def _random_faces(model, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random faces (identity N(0, 1), sparse expressions, heads turned up to 60 degrees) in the camera's
    space ``(count, V_face, 3)`` float64, and their pivots' depths ``(count,)``."""
    rng = np.random.default_rng(seed)
    faces, depths = [], []
    for _ in range(count):
        identity = torch.from_numpy(rng.normal(size=(1, model.identity_count))).float()
        expression = torch.from_numpy((rng.random((1, model.expression_count)) < 0.2) * rng.random((1, model.expression_count))).float()
        vertices = model(identity, expression, submesh="face").double()[0]
        rotation = head_angles_to_camera_rotation(torch.from_numpy(np.radians(rng.uniform(-60, 60, 3))))
        shift = torch.tensor([rng.uniform(-40, 40), rng.uniform(-40, 40), rng.uniform(500, 900)], dtype=torch.float64)
        faces.append(vertices @ rotation.T + shift)
        depths.append(float(shift[2]))
    return torch.stack(faces), torch.tensor(depths, dtype=torch.float64)


@pytest.fixture(scope="module")
def layout256(face_model):
    return PositionMapLayout(face_model, 256)


def test_mesh_map_mesh_round_trips_within_a_tenth_of_a_millimetre(face_model, layout256) -> None:
    """A 256-texel map holds 80 %+ of the face's vertices to 0.1 mm (measured on other random faces than the ones
    that decide which vertices are resolved); reading back is exact up to the texels' resolution: 99 % within
    0.1 mm, mean under 0.01 mm, at any reference depth."""
    resolved = layout256.resolved_vertices(0.1)
    face = layout256.vertex_weights("r1") > 0
    assert resolved[face].mean() > 0.8
    cam, depth = _random_faces(face_model, 3, seed=11)
    reference = depth * 0.97  # any reference depth: the map is the same up to that one scale
    back = layout256.unit_points(layout256.vertex_points(layout256.encode(cam, CAMERA, reference)), CAMERA) * reference[:, None, None]
    error = (back - cam).norm(dim=-1)[:, resolved & face].numpy()
    assert np.percentile(error, 99) < 0.1
    assert error.mean() < 0.01


def test_landmarks_read_from_a_map_are_the_projected_landmarks(face_model) -> None:
    layout = PositionMapLayout(face_model, 128)
    cam, depth = _random_faces(face_model, 2, seed=3)
    maps = layout.encode(cam, CAMERA, depth)
    read = layout.landmarks(maps, 128)
    truth = CAMERA.project(cam[:, face_model.landmarks("ibug68").vertex_indices])
    error = (read - truth).norm(dim=-1)
    assert read.shape == (2, 68, 2)
    assert float(error.median()) < 0.3 and float(error.max()) < 3.0  # px in a 128-px crop


def test_the_weight_masks_have_paper_002s_areas_and_ratios(face_model) -> None:
    layout = PositionMapLayout(face_model, 128)
    r1, r2 = layout.weight_mask("r1"), layout.weight_mask("r2")
    values = sorted(float(v) for v in torch.unique(r1))
    assert values == [0.0, 3.0, 4.0, 5.0, 16.0]  # neck and outside : 16 : 5 : 4 : 3
    for value in (3.0, 4.0, 5.0, 16.0):
        assert int((r1 == value).sum()) > 20  # every area is painted
    assert sorted(float(v) for v in torch.unique(r2)) == [0.0, 1.0]
    assert torch.equal(r2 > 0, r1 > 0)
    # Texels whose surface point is on the neck are 0: the centres of the neck's triangles in UV space, at 512
    # texels (at 128, 4 % of them are small triangles at the neck's border whose texel a face triangle shares).
    labels = face_model.region_labels.cpu().numpy()
    sub = face_model.submesh("face")
    neck = np.flatnonzero((labels[sub.triangles.numpy()] == Region.NECK_BACK_OF_HEAD).all(1))
    centres = face_model.uvs.cpu().numpy()[sub.uv_triangles.numpy()[neck]].mean(1)
    fine = PositionMapLayout(face_model, 512).weight_mask("r1")
    cols = np.clip((centres[:, 0] * 512).astype(int), 0, 511)
    rows = np.clip(((1 - centres[:, 1]) * 512).astype(int), 0, 511)
    assert len(neck) > 100 and float(fine[rows, cols].max()) == 0.0
    with pytest.raises(ValueError, match="ratio: expected one of r1, r2"):
        layout.weight_mask("r3")


def test_bad_maps_get_one_clear_line(face_model) -> None:
    layout = PositionMapLayout(face_model, 32)
    with pytest.raises(ValueError, match=r"maps: expected shape \(\*, 3, 32, 32\)|maps: .*32"):
        layout.vertex_points(torch.zeros(1, 3, 64, 64))
    bad = torch.zeros(1, 3, 32, 32)
    bad[0, 1, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="maps: .*(NaN|finite)"):
        layout.landmarks(bad, 128)
    with pytest.raises(TypeError, match="maps: expected a tensor"):
        check_position_maps(np.zeros((1, 3, 32, 32)), 32)
    with pytest.raises(ValueError, match="size: expected an int >= 8"):
        PositionMapLayout(face_model, 4)


def test_the_encoding_is_differentiable(face_model) -> None:
    """``normalise`` (what the maps hold per vertex) passes gradcheck; the map is linear in those values."""
    points = torch.tensor([[[10.0, -5.0, 610.0], [-30.0, 20.0, 590.0]]], dtype=torch.float64, requires_grad=True)
    depth = torch.tensor([600.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: PositionMapLayout.normalise(p, CAMERA, depth), (points,))


TINY = PosMapConfig(input_size=64, stem_channels=8, encoder_channels=(8, 16, 32), map_stride=2)


def test_the_network_maps_crops_to_maps_and_folds_exactly() -> None:
    net = PosMapNet(TINY)
    crops = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    net.train()
    net(crops).sum().backward()  # BatchNorm statistics move
    net.eval()
    with torch.no_grad():
        out = net(crops)
        folded = fold_posmap_batchnorm(net)(crops)
    assert out.shape == (2, 3, 32, 32) and TINY.map_size == 32 and TINY.bottleneck_size == 8
    assert torch.allclose(out, folded, atol=1e-5)
    assert PosMapConfig.from_json(TINY.to_json()) == TINY
    with pytest.raises(ValueError, match="input_size: expected a power of two"):
        PosMapConfig(input_size=96)
    with pytest.raises(ValueError, match="map_stride: expected 1 or 2"):
        PosMapConfig(map_stride=4)


def test_onnx_and_torch_give_the_same_maps(tmp_path) -> None:
    pytest.importorskip("onnxscript")
    from facerecon.nets.onnx import OnnxNetwork, TorchRunner, export_onnx

    net = PosMapNet(TINY)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
                m.running_mean.normal_(0, 0.1)
        net.head.weight.normal_(0.0, 0.5)
        net.head.bias.normal_(0.0, 0.5)
    net.eval()
    crops = np.random.default_rng(1).random((3, 3, 64, 64)).astype(np.float32)
    export_onnx(net, tmp_path / "posmap.onnx")
    runner = OnnxNetwork(tmp_path / "posmap.onnx")
    assert runner.architecture.name == "PosMapNet" and runner.config == TINY
    with torch.no_grad():
        want = net(torch.from_numpy(crops))
    assert torch.allclose(runner(crops), want, atol=1e-4)
    assert torch.allclose(TorchRunner(net)(crops), want, atol=1e-5)
    assert float(want.std()) > 0.05  # not a flat map
