"""FaceModel on the real ICT-FaceKit archive: exact reproduction of the source OBJs, structure, errors."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest
import torch

from facerecon.models import FaceModel, Region

FOLDER = "ICT-FaceKit-master/FaceXModel"

# iBUG 68 left/right partners (a symmetric face maps each onto the other); from the 68-point markup.
IBUG_MIRROR_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
)
IBUG_ON_MIDLINE = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)


def _obj_vertices_mm(ict_zip, name: str) -> np.ndarray:
    """Vertices of one source OBJ in mm, read independently of the installer's parser."""
    with zipfile.ZipFile(ict_zip) as zf:
        text = zf.read(f"{FOLDER}/{name}").decode()
    rows = re.findall(r"^v\s+(\S+)\s+(\S+)\s+(\S+)", text, flags=re.M)
    return np.array(rows, dtype=np.float64) * 10.0


def test_counts(face_model: FaceModel) -> None:
    assert face_model.vertex_count == 26_719
    assert face_model.identity_count == 100
    assert face_model.expression_count == 53
    assert face_model.triangles.shape == (548 + 2 * 25_836, 3)  # 548 triangles and 25,836 quads in the OBJ
    assert face_model.triangles.dtype == torch.int64
    assert face_model.uv_triangles.shape == face_model.triangles.shape
    assert int(face_model.triangles.max()) == 26_718
    assert face_model.albedo_mean is None and face_model.albedo_basis is None
    assert "jawOpen" in face_model.expression_names and "eyeBlink_L" in face_model.expression_names


def test_mean_reproduces_neutral_obj(face_model: FaceModel, ict_zip) -> None:
    neutral = _obj_vertices_mm(ict_zip, "generic_neutral_mesh.obj")
    assert np.abs(face_model().squeeze(0).numpy() - neutral).max() < 1e-3


@pytest.mark.parametrize("k", [0, 1, 37, 99])
def test_unit_identity_coefficient_reproduces_its_obj(face_model: FaceModel, ict_zip, k: int) -> None:
    identity = torch.zeros(1, 100)
    identity[0, k] = 1.0
    expected = _obj_vertices_mm(ict_zip, f"identity{k:03d}.obj")
    got = face_model(identity).squeeze(0).double().numpy()
    assert np.abs(got - expected).max() < 1e-3


@pytest.mark.parametrize("name", ["jawOpen", "eyeBlink_L", "mouthSmile_R", "browInnerUp_L", "noseSneer_R"])
def test_unit_expression_weight_reproduces_its_obj(face_model: FaceModel, ict_zip, name: str) -> None:
    expression = torch.zeros(1, 53)
    expression[0, face_model.expression_index(name)] = 1.0
    expected = _obj_vertices_mm(ict_zip, f"{name}.obj")
    got = face_model(expression=expression).squeeze(0).double().numpy()
    assert np.abs(got - expected).max() < 1e-3
    # The expression really moves something (a test that cannot fail is a defect).
    assert np.abs(expected - _obj_vertices_mm(ict_zip, "generic_neutral_mesh.obj")).max() > 0.5


def test_expression_names_follow_the_archive(face_model: FaceModel, ict_zip) -> None:
    import json

    with zipfile.ZipFile(ict_zip) as zf:
        names = json.loads(zf.read(f"{FOLDER}/vertex_indices.json"))["expressions"]
    assert face_model.expression_names == tuple(names)


def test_forward_is_linear_and_batched(face_model: FaceModel) -> None:
    torch.manual_seed(0)
    a, b = torch.randn(3, 100), torch.rand(3, 53)
    v = face_model(a, b)
    assert v.shape == (3, 26_719, 3) and v.dtype == torch.float32
    mean = face_model()
    expected = face_model(a) + face_model(expression=b) - mean
    assert torch.allclose(v, expected, atol=1e-3)
    for batch in (1, 2):
        assert face_model(a[:batch], b[:batch]).shape == (batch, 26_719, 3)
    assert torch.allclose(face_model(a[1:2], b[1:2])[0], v[1], atol=1e-4)


def test_forward_dtype_follows_inputs(face_model: FaceModel) -> None:
    v64 = face_model(torch.zeros(2, 100, dtype=torch.float64), submesh="face")
    assert v64.dtype == torch.float64 and v64.shape == (2, 9409, 3)


def test_forward_does_not_modify_inputs_or_buffers(face_model: FaceModel) -> None:
    identity = torch.randn(1, 100)
    before = identity.clone()
    mean_before = face_model.mean.clone()
    out = face_model()
    out += 1.0  # the returned tensor must not alias the model's mean
    face_model(identity)
    assert torch.equal(identity, before)
    assert torch.equal(face_model.mean, mean_before)


def test_submeshes_are_prefixes(face_model: FaceModel) -> None:
    face = face_model.submesh("face")
    assert face.vertex_count == 9409
    assert int(face.triangles.max()) < 9409
    assert face.triangles.shape[0] == 18_460  # polygons [0, 9230) of the README, quads split
    head = face_model.submesh("head")
    assert head.vertex_count == 24_591
    sub = face_model(torch.ones(2, 100), torch.ones(2, 53), submesh="face")
    full = face_model(torch.ones(2, 100), torch.ones(2, 53))
    assert torch.allclose(sub, full[:, :9409])


def test_gradcheck_forward(face_model: FaceModel) -> None:
    small = face_model.submesh("narrow_face")
    def f(identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        # float64 inputs: the float32 buffers are cast to the inputs' dtype inside forward.
        return face_model(identity, expression, submesh="narrow_face")[:, ::97]

    identity = torch.randn(2, 100, dtype=torch.float64, requires_grad=True)
    expression = torch.rand(2, 53, dtype=torch.float64, requires_grad=True)
    assert small.vertex_count == 6706
    assert torch.autograd.gradcheck(f, (identity, expression), eps=1e-6, atol=1e-4)


def test_landmarks_lie_in_the_face_area(face_model: FaceModel) -> None:
    scheme = face_model.landmarks("ibug68")
    idx = scheme.vertex_indices
    assert idx.shape == (68,) and int(idx.max()) < 9409
    labels = face_model.region_labels[idx]
    assert not torch.isin(labels, torch.tensor([Region.NECK_BACK_OF_HEAD, Region.EYEBALLS, Region.MOUTH_INTERIOR], dtype=torch.int8)).any()
    assert scheme.contour[:17].all() and not scheme.contour[17:].any()
    # iBUG 0 is the subject's right jaw: x < 0 in model space; the nose tip (30) is the frontmost landmark.
    mean = face_model.mean
    assert mean[idx[0], 0] < 0 < mean[idx[16], 0]
    assert int(torch.argmax(mean[idx, 2])) == 30
    for name in ("right_jawline", "left_jawline", "right_jawline_extended", "left_jawline_extended"):
        jaw = face_model.landmarks(name).vertex_indices
        side = mean[jaw, 0]
        assert (side < 0).all() if name.startswith("right") else (side > 0).all()


def test_mirror_map_is_an_involution_that_mirrors(face_model: FaceModel) -> None:
    m = face_model.mirror
    assert torch.equal(m[m], torch.arange(face_model.vertex_count))
    mean = face_model.mean.double()
    mirrored = mean[m] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    error = (mirrored - mean).norm(dim=1)
    assert float(torch.quantile(error, 0.99)) < 0.05  # mm
    assert float(error.max()) < 0.5
    idx = face_model.landmarks("ibug68").vertex_indices
    for left, right in IBUG_MIRROR_PAIRS:
        assert int(m[idx[left]]) == int(idx[right]), (left, right)
    for centre in IBUG_ON_MIDLINE:
        assert abs(float(mean[idx[centre], 0])) < 0.05
        assert int(m[idx[centre]]) == int(idx[centre])


def test_regions_skin_mask_and_weights(face_model: FaceModel) -> None:
    labels = face_model.region_labels
    counts = torch.bincount(labels.long(), minlength=len(Region))
    assert (counts > 100).all(), counts  # every region is present
    mean = face_model.mean
    nose_tip = face_model.landmarks().vertex_indices[30]
    assert int(labels[nose_tip]) == Region.NOSE
    assert (labels[9409:11248] == Region.NECK_BACK_OF_HEAD).all()
    assert (labels[21451:24591] == Region.EYEBALLS).all()
    assert (labels[17039:21451] == Region.MOUTH_INTERIOR).all()
    # Regions are (nearly) symmetric: a vertex and its mirror share a label.
    assert float((labels == labels[face_model.mirror]).float().mean()) > 0.97
    skin = face_model.skin_mask
    assert skin.any() and not (skin & torch.isin(labels, torch.tensor([Region.MOUTH, Region.EYEBROWS, Region.EYES, Region.CHIN_JAW], dtype=torch.int8))).any()
    w = face_model.region_weights
    assert set(torch.unique(w).tolist()) == {0.0, 3.0, 4.0, 5.0, 16.0}
    assert float(w[face_model.landmarks().vertex_indices].min()) == 16.0
    assert float(w[labels == Region.NECK_BACK_OF_HEAD].max()) == 0.0
    assert mean.shape == (26_719, 3)


def test_region_weight_map(face_model: FaceModel) -> None:
    wmap = face_model.region_weight_map(256)
    assert wmap.shape == (256, 256) and wmap.dtype == np.float32
    assert set(np.unique(wmap).tolist()) <= {0.0, 3.0, 4.0, 5.0, 16.0}
    # The landmark texels sit where the landmarks' UVs are.
    idx = face_model.landmarks().vertex_indices.numpy()
    tri = face_model.triangles.numpy()
    uv_tri = face_model.uv_triangles.numpy()
    rows, cols = np.nonzero(tri == idx[30])  # a triangle corner at the nose tip
    u, v = face_model.uvs.numpy()[uv_tri[rows[0], cols[0]]]
    r, c = int((1 - v) * 256), int(u * 256)
    assert wmap[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].max() == 16.0
    assert (wmap == 16).sum() > 500 and (wmap == 3).sum() > (wmap == 16).sum()
    with pytest.raises(ValueError, match="size"):
        face_model.region_weight_map(3)


def test_to_mesh_for_export(face_model: FaceModel) -> None:
    weights = torch.zeros(53)
    weights[face_model.expression_index("jawOpen")] = 0.7
    posed = face_model(expression=weights[None])[0]
    mesh = face_model.to_mesh(posed, submesh="head", expression=weights)
    assert mesh.vertices.shape == (24_591, 3)
    assert mesh.morph_deltas.shape == (53, 24_591, 3) and mesh.morph_names == face_model.expression_names
    # The base plus the weighted morph targets gives back the posed face.
    rebuilt = mesh.vertices + np.einsum("k,kvc->vc", mesh.morph_weights, mesh.morph_deltas)
    assert np.abs(rebuilt - posed[:24_591].numpy()).max() < 1e-3
    assert mesh.uv_faces.max() < len(mesh.uvs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"identity": torch.zeros(2, 99)}, ValueError, r"identity: expected shape \(B, 100\)"),
        ({"identity": torch.zeros(100)}, ValueError, r"identity: expected shape"),
        ({"expression": torch.zeros(2, 53, dtype=torch.int64)}, TypeError, "expression: expected a floating-point"),
        ({"identity": torch.zeros(2, 100), "expression": torch.zeros(3, 53)}, ValueError, "B=2"),
        ({"identity": [0.0] * 100}, TypeError, "identity: expected a tensor"),
        ({"identity": torch.zeros(1, 100), "submesh": "torso"}, ValueError, "submesh: expected one of"),
        ({"identity": torch.zeros(1, 100), "expression": torch.zeros(1, 53, dtype=torch.float64)}, TypeError, "dtype"),
    ],
)
def test_forward_errors(face_model: FaceModel, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        face_model(**kwargs)


def test_module_moves_and_saves_its_buffers(face_model: FaceModel) -> None:
    state = face_model.state_dict()
    for key in ("mean", "identity_basis", "expression_basis", "triangles", "mirror", "region_labels", "_landmarks_ibug68"):
        assert key in state
    as64 = FaceModel(
        mean=face_model.mean[:10].double(), identity_basis=face_model.identity_basis[:3, :10],
        expression_basis=face_model.expression_basis[:2, :10], expression_names=["a", "b"],
        triangles=torch.tensor([[0, 1, 2]]), uvs=torch.zeros(3, 2), uv_triangles=torch.tensor([[0, 1, 2]]),
        mirror=torch.arange(10), region_labels=torch.zeros(10, dtype=torch.int8), skin_mask=torch.zeros(10, dtype=torch.bool),
        region_weights=torch.zeros(10),
    )  # fmt: skip
    assert as64(torch.zeros(1, 3)).shape == (1, 10, 3)
    with pytest.raises(ValueError, match="expression_names: expected 2 names"):
        FaceModel(**{**dict(
            mean=torch.zeros(10, 3), identity_basis=torch.zeros(3, 10, 3), expression_basis=torch.zeros(2, 10, 3),
            triangles=torch.tensor([[0, 1, 2]]), uvs=torch.zeros(3, 2), uv_triangles=torch.tensor([[0, 1, 2]]),
            mirror=torch.arange(10), region_labels=torch.zeros(10), skin_mask=torch.zeros(10), region_weights=torch.zeros(10),
        ), "expression_names": ["a"]})  # fmt: skip
    with pytest.raises(ValueError, match=r"identity_basis: expected shape \(K_id, V, 3\) with V=10"):
        FaceModel(
            mean=torch.zeros(10, 3), identity_basis=torch.zeros(3, 11, 3), expression_basis=torch.zeros(2, 10, 3),
            expression_names=["a", "b"], triangles=torch.tensor([[0, 1, 2]]), uvs=torch.zeros(3, 2),
            uv_triangles=torch.tensor([[0, 1, 2]]), mirror=torch.arange(10), region_labels=torch.zeros(10),
            skin_mask=torch.zeros(10), region_weights=torch.zeros(10),
        )  # fmt: skip


def test_adjacency_and_laplacian(face_model: FaceModel) -> None:
    adjacency = face_model.vertex_adjacency("face")
    assert adjacency.shape == (9409, 9409)
    dense_rows = adjacency.to_dense()[:50]
    assert torch.equal(dense_rows, adjacency.to_dense().T[:50])  # symmetric
    lap = face_model.laplacian("face")
    # The Laplacian of the mean face's coordinates is small, and exactly zero on a constant field.
    ones = torch.ones(9409, 1)
    assert torch.allclose(torch.sparse.mm(lap, ones), torch.zeros(9409, 1), atol=1e-5)
    mean = face_model.mean[:9409]
    assert float(torch.sparse.mm(lap, mean).norm(dim=1).median()) < 2.0  # mm; neighbours ~ 1-5 mm apart
