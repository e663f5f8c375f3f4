"""Protocols end to end on tiny datasets: exact values with controlled methods, failures counted, reports."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from facerecon.core.errors import NoFaceError
from facerecon.eval import (
    MethodOutput,
    PhotosReport,
    Status,
    create_method,
    evaluate_aflw2000,
    evaluate_now,
    evaluate_photos,
    read_aflw2000,
    read_now,
    read_photos,
)


class _Method:
    """A controlled method: ``fn(image, face_box) -> MethodOutput``."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.calls = 0

    def predict(self, image, *, face_box=None):
        self.calls += 1
        return self.fn(image, face_box)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


# ------------------------------------------------------------------------------------------------ AFLW2000-3D
@pytest.fixture(scope="module")
def aflw_dir(tmp_path_factory, faces_dir, eval_data):
    folder = tmp_path_factory.mktemp("aflw") / "AFLW2000"
    truth = eval_data.make_aflw(folder, faces_dir)
    return folder, truth


def test_aflw2000_exact_nme_by_yaw(aflw_dir, tmp_path, eval_data) -> None:
    src, truth = aflw_dir
    shutil.copytree(src, tmp_path / "d")
    samples = read_aflw2000(tmp_path / "d")
    offsets = dict(zip(sorted(truth), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)))  # px right, per image

    def predict(image, face_box):
        name = next(n for n, lm in truth.items() if np.allclose(face_box, np.r_[lm.min(0), lm.max(0)]))
        return MethodOutput(landmarks68=truth[name] + (offsets[name], 0.0))

    report = evaluate_aflw2000(samples, _Method(predict), method_name="shifted", dataset="d")
    sizes = {n: math.sqrt(np.prod(lm.max(0) - lm.min(0))) for n, lm in truth.items()}
    expected = [100 * offsets[n] / sizes[n] for n in sorted(truth)]
    assert [r.status for r in report.rows] == [Status.OK] * 6
    assert [100 * r.nme for r in report.rows] == pytest.approx(expected, rel=1e-12)
    assert [r.yaw_bin for r in report.rows] == [0, 0, 1, 1, 2, 2]
    bins = [np.mean(expected[0:2]), np.mean(expected[2:4]), np.mean(expected[4:6])]
    assert report.bin_means() == pytest.approx(bins)
    assert report.nme_mean == pytest.approx(np.mean(expected))
    assert report.nme_balanced_mean == pytest.approx(np.mean(bins))
    js = json.loads(json.dumps(report.to_json()))
    assert js["nme_mean"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert list(js["nme_by_yaw"]) == ["[0, 30)", "[30, 60)", "[60, 90]"]
    assert [b["count"] for b in js["nme_by_yaw"].values()] == [2, 2, 2]
    assert [b["nme_mean"] for b in js["nme_by_yaw"].values()] == pytest.approx(bins, abs=1e-6)
    assert js["failed"] == 0 and len(js["rows"]) == 6
    md = report.to_markdown()
    assert "| shifted |" in md and "failed: 0 of 6" in md


def test_aflw2000_failures_are_rows(aflw_dir, tmp_path, eval_data) -> None:
    src, _ = aflw_dir
    d = tmp_path / "d"
    shutil.copytree(src, d)
    (d / "image00000.mat").unlink()  # missing annotation
    (d / "image00001.jpg").unlink()  # missing image
    (d / "image00002.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")  # unreadable image
    (d / "image00003.mat").write_bytes(b"garbage")  # unreadable annotation
    eval_data.write_aflw_mat(d / "image00004.mat", np.zeros((68, 2)), 70.0)  # a zero-area box

    def predict(image, face_box):
        if image.shape[1] > 1000:
            raise NoFaceError("no face here")
        return MethodOutput(landmarks68=np.zeros((68, 2)))

    seen = []
    report = evaluate_aflw2000(read_aflw2000(d), _Method(predict), method_name="m", on_row=lambda i, r: seen.append(i))
    assert seen == list(range(6))
    assert [r.status for r in report.rows] == [Status.MISSING, Status.MISSING, Status.UNREADABLE, Status.UNREADABLE,
                                               Status.UNREADABLE, Status.NO_FACE]  # fmt: skip
    assert all(r.message for r in report.rows)
    assert report.rows[1].yaw_deg == pytest.approx(-29.0)  # the annotation was read before the image failed
    assert report.nme_mean is None and report.nme_balanced_mean is None and report.failed == 6
    js = report.to_json()
    assert js["failed_by_status"] == {"missing": 2, "unreadable": 3, "no_face": 1}
    assert js["nme_mean"] is None and [b["count"] for b in js["nme_by_yaw"].values()] == [0, 0, 0]
    assert "failed: 6 of 6 (missing 2, unreadable 3, no_face 1)" in report.to_markdown()
    json.dumps(js)  # serialisable


def test_aflw2000_method_without_landmarks_fails_rows(aflw_dir) -> None:
    src, _ = aflw_dir
    report = evaluate_aflw2000(read_aflw2000(src)[:2], _Method(lambda i, b: MethodOutput()), method_name="m")
    assert [r.status for r in report.rows] == [Status.FAILED] * 2 and "no landmarks68" in report.rows[0].message


def test_aflw2000_with_dlib_is_exact(aflw_dir) -> None:
    """Ground truth made by dlib on the same files: dlib's NME is 0 (the box hint picks the annotated face)."""
    src, _ = aflw_dir
    with create_method("dlib") as m:
        report = evaluate_aflw2000(read_aflw2000(src), m, method_name="dlib")
    assert [r.status for r in report.rows] == [Status.OK] * 6
    assert report.nme_mean == 0.0


# ------------------------------------------------------------------------------------------------------ NoW
@pytest.fixture(scope="module")
def now_dir(tmp_path_factory, face_model, faces_dir, eval_data):
    root = tmp_path_factory.mktemp("now")
    eval_data.make_now(root, face_model, faces_dir)
    return root


def test_now_mean_face_is_zero_and_perturbed_is_known(now_dir, face_model, model_home) -> None:
    samples = read_now(now_dir)
    with create_method("mean-face", home=str(model_home)) as m:
        report = evaluate_now(samples, m, method_name="mean-face")
    assert [r.status for r in report.rows] == [Status.OK] * 4
    js = report.to_json()
    assert js["median_mm"] < 1e-4 and js["mean_mm"] < 1e-4 and js["std_mm"] < 1e-4
    assert set(js["by_challenge"]) == {"multiview_neutral", "selfie"}
    assert all(c["count"] == 2 for c in js["by_challenge"].values())
    # A uniformly scaled face is the same shape: still 0 (NoW aligns with scale).
    with create_method("mean-face", home=str(model_home)) as m:
        base = m.predict(np.zeros((2, 2, 3), np.uint8))
    scaled = MethodOutput(vertices=base.vertices * 0.01, triangles=base.triangles, now_landmarks=base.now_landmarks * 0.01)
    report = evaluate_now(samples[:1], _Method(lambda i, b: scaled), method_name="scaled")
    assert report.rows[0].mean < 1e-4
    # The face 'fattened' by 2 mm in x about its centre: a shape change the alignment can only partly absorb.
    v = base.vertices.copy()
    v[:, 0] *= 1.05
    wide = MethodOutput(vertices=v, triangles=base.triangles, now_landmarks=base.now_landmarks * [1.05, 1, 1])
    report = evaluate_now(samples[:2], _Method(lambda i, b: wide), method_name="wide")
    assert all(r.status == Status.OK for r in report.rows)
    assert 0.2 < report.rows[0].mean < 3.0
    assert report.to_json()["mean_mm"] == pytest.approx(report.rows[0].mean, rel=1e-5)


def test_now_failures_are_rows(now_dir, tmp_path, model_home) -> None:
    shutil.copytree(now_dir, tmp_path / "n")
    base = tmp_path / "n" / "NoW_Dataset" / "final_release_version"
    shutil.rmtree(base / "scans" / "FaMoS_180426_03336_TA")  # the second subject has no scan
    pic = base / "iphone_pictures" / "FaMoS_180424_03335_TA" / "selfie" / "IMG_prnet-2.jpg"
    pic.write_bytes(b"broken")
    samples = read_now(tmp_path / "n")
    with create_method("mean-face", home=str(model_home)) as m:
        report = evaluate_now(samples, m, method_name="mean-face")
    assert [r.status for r in report.rows] == [Status.OK, Status.UNREADABLE, Status.MISSING, Status.MISSING]
    assert "no scan" in report.rows[2].message
    md = report.to_markdown()
    assert "failed: 3 of 4 (missing 2, unreadable 1)" in md
    # A method with landmarks only cannot be measured by NoW.
    report = evaluate_now(samples[:1], _Method(lambda i, b: MethodOutput(landmarks68=np.zeros((68, 2)))), method_name="x")
    assert report.rows[0].status == Status.FAILED
    # Degenerate landmarks: reported, not raised.
    with create_method("mean-face", home=str(model_home)) as m:
        base_out = m.predict(np.zeros((2, 2, 3), np.uint8))
    flat = MethodOutput(vertices=base_out.vertices, triangles=base_out.triangles, now_landmarks=np.zeros((7, 3)))
    report = evaluate_now(samples[:1], _Method(lambda i, b: flat), method_name="flat")
    assert report.rows[0].status == Status.FAILED and "cannot align" in report.rows[0].message


# --------------------------------------------------------------------------------------------------- photos
def offset_render(image: np.ndarray, face_box=None) -> MethodOutput:
    """A 'rendering' that differs from the photo by exactly +-0.1 in every channel inside a central box."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), dtype=bool)
    mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = True
    photo = image / 255.0
    rendered = photo + np.where(photo > 0.5, -0.1, 0.1)
    return MethodOutput(rendered=rendered, mask=mask, box=np.array([w / 4, h / 4, 3 * w / 4, 3 * h / 4]))


def test_photos_exact_metrics_and_identity(tmp_path, faces_dir) -> None:
    from facerecon.eval.identity import FaceEmbedder

    for name in ("deca-exp-2.jpg", "d3dfr-000002.jpg"):
        shutil.copyfile(faces_dir / name, tmp_path / name)
    (tmp_path / "zz-broken.png").write_bytes(b"\x89PNG broken")
    samples = read_photos(tmp_path)
    with FaceEmbedder() as emb:
        report = evaluate_photos(samples, _Method(offset_render), method_name="offset", embedder=emb)
    ok = report.rows[:2]
    assert [r.status for r in report.rows] == [Status.OK, Status.OK, Status.UNREADABLE]
    for r in ok:
        assert r.photometric == pytest.approx(math.sqrt(3) * 0.1, abs=1e-9)
        assert r.psnr == pytest.approx(20.0, abs=1e-6)
        assert r.l1 == pytest.approx(0.1, abs=1e-9)
        assert 0.5 < r.ssim < 1.0
        assert 0.9 < r.identity_cosine <= 1.0  # the same face, slightly brighter/darker
    js = json.loads(json.dumps(report.to_json()))
    for key in ("photometric_mean", "psnr_mean", "ssim_mean", "l1_mean", "identity_cosine_mean"):
        assert js[key] is not None
    assert js["psnr_mean"] == pytest.approx(20.0, abs=1e-5) and js["failed"] == 1 and len(js["rows"]) == 3
    assert js["identity_status"] == "measured" and js["identity_cosine_count"] == 2
    assert js["rows"][2]["status"] == "unreadable" and js["rows"][2]["psnr"] is None
    assert "failed: 1 of 3 (unreadable 1)" in report.to_markdown()


def test_identity_cosine_tells_people_apart(faces_dir) -> None:
    from facerecon.eval.identity import FaceEmbedder, cosine_similarity
    from facerecon.io.image import read_image

    a = read_image(faces_dir / "d3dfr-000002.jpg")
    b = read_image(faces_dir / "d3dfr-000031.jpg")
    with FaceEmbedder() as emb:
        same = emb.cosine(a, a.copy())
        ea, eb = emb.embed(a), emb.embed(b)  # each face found by dlib's detector
        other = cosine_similarity(ea, eb)
        with pytest.raises(ValueError, match="shape"):
            emb.cosine(a, b)
    assert same == pytest.approx(1.0, abs=1e-6)
    assert ea.shape == (128,)
    # dlib's own rule: embeddings of different people are more than 0.6 apart.
    assert np.linalg.norm(ea - eb) > 0.6 and other < same - 0.05
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == 0.0
    with pytest.raises(ValueError):
        cosine_similarity(np.zeros(3), np.ones(3))
    with FaceEmbedder() as emb, pytest.raises(NoFaceError):
        emb.embed(np.full((100, 100, 3), 90, np.uint8))


def test_photos_render_size_mismatch_and_identity_skipped(tmp_path, faces_dir) -> None:
    shutil.copyfile(faces_dir / "deca-exp-2.jpg", tmp_path / "a.jpg")
    wrong = _Method(lambda im, b: MethodOutput(rendered=np.zeros((5, 5, 3)), mask=np.ones((5, 5), bool)))
    report = evaluate_photos(read_photos(tmp_path), wrong, method_name="w")
    assert report.rows[0].status == Status.FAILED and "shape" in report.rows[0].message
    report = evaluate_photos(read_photos(tmp_path), _Method(offset_render), method_name="o", embedder=None)
    assert report.rows[0].status == Status.OK and report.rows[0].identity_cosine is None
    assert report.to_json()["identity_cosine_mean"] is None


def test_photos_identity_skipped_or_unavailable_is_said_not_counted(tmp_path, faces_dir) -> None:
    """Without an embedder the identity column says why (skipped / unavailable), never a number."""
    shutil.copyfile(faces_dir / "deca-exp-2.jpg", tmp_path / "a.jpg")
    samples = read_photos(tmp_path)
    skipped = evaluate_photos(samples, _Method(offset_render), method_name="o")
    assert skipped.identity_status == "skipped" and skipped.identity_message == ""
    assert skipped.rows[0].identity_message == "skipped"
    assert "| skipped |" in skipped.to_markdown() and "unavailable" not in skipped.to_markdown()

    why = 'the identity metric needs dlib, which is not installed; install it with: pip install "facerecon[dlib]"'
    report = evaluate_photos(samples, _Method(offset_render), method_name="o", identity_unavailable=why)
    assert report.identity_status == "unavailable" and report.identity_message == why
    row = report.rows[0]
    assert row.status == Status.OK and row.identity_cosine is None and row.identity_message == "unavailable"
    assert row.psnr == pytest.approx(20.0, abs=1e-6)  # the other metrics as usual
    js = json.loads(json.dumps(report.to_json()))
    assert js["identity_status"] == "unavailable" and js["identity_message"] == why
    assert js["identity_cosine_mean"] is None and js["identity_cosine_count"] == 0 and js["psnr_count"] == 1
    md = report.to_markdown()
    assert "| unavailable |" in md and md.splitlines()[-1] == f"Identity cosine unavailable: {why}"

    with pytest.raises(ValueError, match="identity_unavailable"):
        evaluate_photos(samples, _Method(offset_render), method_name="o", embedder=object(), identity_unavailable=why)
    with pytest.raises(ValueError, match="identity_status"):
        PhotosReport(method="o", dataset="", rows=(), identity_status="maybe")
