"""Dataset readers on small files written in each layout; MethodOutput, the method registry, built-in methods."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io

from facerecon.core.errors import ImageReadError, NoFaceError
from facerecon.eval import (
    DatasetFileError,
    MethodOutput,
    available_methods,
    create_method,
    method_info,
    read_aflw2000,
    read_aflw2000_mat,
    read_now,
    read_photos,
    read_pp,
    register_method,
    unregister_method,
    write_pp,
)
from facerecon.eval.methods import pick_face


# ------------------------------------------------------------------------------------------------ AFLW2000-3D
def test_aflw_mat_round_trip(tmp_path, eval_data) -> None:
    lm = np.stack([np.linspace(10, 200, 68), np.linspace(30, 250, 68)], 1)
    eval_data.write_aflw_mat(tmp_path / "image00001.mat", lm, yaw_deg=-45.0, pitch=0.1, roll=0.2)
    ann = read_aflw2000_mat(tmp_path / "image00001.mat")
    assert np.array_equal(ann.landmarks68, lm)
    assert ann.landmarks68_3d.shape == (68, 3) and np.array_equal(ann.landmarks68_3d[:, :2], lm)
    assert ann.yaw_deg == pytest.approx(-45.0) and ann.pitch == pytest.approx(0.1) and ann.roll == pytest.approx(0.2)
    assert np.array_equal(ann.box, [10, 30, 200, 250])


@pytest.mark.parametrize(
    "content, what",
    [
        ({"Pose_Para": np.zeros((1, 7))}, "no 'pt3d_68'"),
        ({"pt3d_68": np.zeros((3, 68))}, "no 'Pose_Para'"),
        ({"pt3d_68": np.zeros((2, 68)), "Pose_Para": np.zeros((1, 7))}, "shape (3, 68)"),
        ({"pt3d_68": np.zeros((3, 68)), "Pose_Para": np.zeros((1, 6))}, "7 values"),
        ({"pt3d_68": np.full((3, 68), np.nan), "Pose_Para": np.zeros((1, 7))}, "NaN"),
        ({"pt3d_68": "text", "Pose_Para": np.zeros((1, 7))}, "not numeric"),
    ],
)
def test_aflw_mat_bad_content(tmp_path, content, what) -> None:
    scipy.io.savemat(str(tmp_path / "a.mat"), content)
    with pytest.raises(DatasetFileError, match=what.replace("(", r"\(").replace(")", r"\)")):
        read_aflw2000_mat(tmp_path / "a.mat")


def test_aflw_mat_missing_or_corrupt(tmp_path) -> None:
    with pytest.raises(DatasetFileError, match="missing"):
        read_aflw2000_mat(tmp_path / "none.mat")
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file, but then garbage" + bytes(200))
    with pytest.raises(DatasetFileError, match="unreadable"):
        read_aflw2000_mat(tmp_path / "bad.mat")


def test_read_aflw2000_layout(tmp_path, faces_dir, eval_data) -> None:
    folder = tmp_path / "AFLW2000"
    folder.mkdir()
    lm = np.stack([np.linspace(10, 200, 68), np.linspace(30, 250, 68)], 1)
    for name in ("image00002", "image00004"):
        shutil.copyfile(faces_dir / "deca-exp-2.jpg", folder / f"{name}.jpg")
        eval_data.write_aflw_mat(folder / f"{name}.mat", lm, 10.0)
    shutil.copyfile(faces_dir / "deca-exp-2.jpg", folder / "image00009.jpg")  # no .mat
    eval_data.write_aflw_mat(folder / "image00001.mat", lm, 10.0)  # no image
    (folder / "readme.txt").write_text("not part of it")
    (folder / ".image00003.jpg").write_bytes(b"hidden")
    for where in (folder, tmp_path):  # the folder itself, or the folder above it
        samples = read_aflw2000(where)
        assert [s.name for s in samples] == ["image00001", "image00002", "image00004", "image00009"]
    s1, s2, _, s9 = samples
    assert not s1.image_path.exists() and s1.mat_path.exists()
    assert s9.image_path.exists() and not s9.mat_path.exists()
    assert s2.load_image().shape == (450, 450, 3)
    assert np.array_equal(s2.load_annotation().landmarks68, lm)
    with pytest.raises(DatasetFileError):
        s9.load_annotation()
    with pytest.raises(ImageReadError):
        s1.load_image()
    with pytest.raises(DatasetFileError, match="no such folder"):
        read_aflw2000(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------------ NoW
def test_pp_round_trip_and_errors(tmp_path) -> None:
    pts = np.array([[1.5, -2.25, 3.0], [4.0, 5.0, 6.125e-3]] * 3 + [[7.0, 8.0, 9.0]])
    write_pp(tmp_path / "a.pp", pts)
    assert np.array_equal(read_pp(tmp_path / "a.pp"), pts)
    # A file as MeshLab writes it.
    (tmp_path / "m.pp").write_text(
        '<!DOCTYPE PickedPoints>\n<PickedPoints>\n <DocumentData>\n  <DateTime time="16:00:00" date="2019-01-01"/>\n'
        '  <User name="x"/>\n  <DataFileName name="scan.obj"/>\n  <templateName name=""/>\n </DocumentData>\n'
        ' <point active="1" x="-35.1" y="10.2" name="0" z="90.5"/>\n <point z="3" y="2" x="1" name="1" active="1"/>\n'
        "</PickedPoints>\n"
    )
    assert np.array_equal(read_pp(tmp_path / "m.pp"), [[-35.1, 10.2, 90.5], [1, 2, 3]])
    (tmp_path / "bad.pp").write_text("<PickedPoints><point x='1' y='2'/></PickedPoints>")
    with pytest.raises(DatasetFileError, match="x, y, z"):
        read_pp(tmp_path / "bad.pp")
    (tmp_path / "broken.pp").write_text("<PickedPoints><point x=")
    with pytest.raises(DatasetFileError, match="unreadable"):
        read_pp(tmp_path / "broken.pp")
    with pytest.raises(DatasetFileError, match="missing"):
        read_pp(tmp_path / "none.pp")
    with pytest.raises(ValueError):
        write_pp(tmp_path / "c.pp", np.zeros((3, 2)))


def test_read_now_layout(tmp_path, face_model, faces_dir, eval_data) -> None:
    base = eval_data.make_now(tmp_path, face_model, faces_dir)
    for where in (tmp_path, tmp_path / "NoW_Dataset", base):
        samples = read_now(where)
        assert len(samples) == 4
    assert [s.challenge for s in samples] == ["multiview_neutral", "selfie"] * 2
    s = samples[0]
    assert s.name == "FaMoS_180424_03335_TA/multiview_neutral/IMG_prnet-1.jpg"
    v, f, lm = s.load_scan()
    sub = face_model.submesh("face")
    assert v.shape == (sub.vertex_count, 3) and f.shape == tuple(sub.triangles.shape) and lm.shape == (7, 3)
    assert s.load_image().shape == (227, 227, 3)
    # A split list selects images (and may name missing ones).
    (base / "imagepathsvalidation.txt").write_text(
        "FaMoS_180426_03336_TA/selfie/IMG_prnet-2.jpg\nFaMoS_180424_03335_TA/selfie/IMG_none.jpg\n\n")
    split = read_now(tmp_path, split="validation")
    assert [x.name for x in split] == ["FaMoS_180424_03335_TA/selfie/IMG_none.jpg",
                                       "FaMoS_180426_03336_TA/selfie/IMG_prnet-2.jpg"]  # fmt: skip
    with pytest.raises(DatasetFileError, match="image list"):
        read_now(tmp_path, split="test")
    # A subject without scan or landmarks.
    shutil.rmtree(base / "scans_lmks_onlypp" / "FaMoS_180426_03336_TA")
    (base / "scans" / "FaMoS_180424_03335_TA" / "natural_head_rotation.000001.obj").write_text("v 1 2\nf 1 2 3\n")
    samples = read_now(tmp_path)
    assert samples[2].landmarks_path is None and samples[2].scan_path is not None
    with pytest.raises(DatasetFileError, match="landmarks"):
        samples[2].load_scan()
    with pytest.raises(DatasetFileError):
        samples[0].load_scan()  # a corrupt OBJ
    with pytest.raises(DatasetFileError, match="not a NoW dataset"):
        read_now(tmp_path / "NoW_Dataset" / "final_release_version" / "scans")


# --------------------------------------------------------------------------------------------------- photos
def test_read_photos(tmp_path, faces_dir) -> None:
    shutil.copyfile(faces_dir / "prnet-1.jpg", tmp_path / "b.JPG")
    shutil.copyfile(faces_dir / "d3dfr-vd006.png", tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    shutil.copyfile(faces_dir / "prnet-2.jpg", tmp_path / "sub" / "c.jpeg")
    (tmp_path / "folder.jpg").mkdir()  # a folder named like a photo is not a photo
    assert [s.name for s in read_photos(tmp_path)] == ["a.png", "b.JPG"]
    samples = read_photos(tmp_path, recursive=True)
    assert [s.name for s in samples] == ["a.png", "b.JPG", "sub/c.jpeg"]
    assert samples[2].load_image().shape == (227, 227, 3)
    with pytest.raises(DatasetFileError):
        read_photos(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------ methods
def test_method_output_validation() -> None:
    lm = np.zeros((68, 2))
    out = MethodOutput(landmarks68=lm)
    lm[0, 0] = 5.0
    assert out.landmarks68[0, 0] == 0.0 and not out.landmarks68.flags.writeable  # a read-only copy
    assert out.provides == frozenset({"landmarks68"})
    r8 = np.full((4, 5, 3), 51, dtype=np.uint8)
    out = MethodOutput(rendered=r8, mask=np.ones((4, 5), bool), box=[0, 0, 4, 3])
    assert out.rendered.dtype == np.float64 and np.allclose(out.rendered, 0.2) and out.provides == {"render"}
    verts = np.zeros((4, 3))
    out = MethodOutput(vertices=verts, triangles=np.array([[0, 1, 2], [0, 2, 3]]), now_landmarks=np.zeros((7, 3)))
    assert out.triangles.dtype == np.int64 and out.provides == {"mesh"}
    bad = [
        dict(landmarks68=np.zeros((5, 2))),
        dict(landmarks68=np.full((68, 2), np.nan)),
        dict(vertices=verts, triangles=np.array([[0, 1, 2]])),  # no now_landmarks
        dict(vertices=verts, triangles=np.array([[0, 1, 9]]), now_landmarks=np.zeros((7, 3))),
        dict(vertices=verts, triangles=np.zeros((0, 3), np.int64), now_landmarks=np.zeros((7, 3))),
        dict(rendered=np.zeros((4, 5, 3))),  # no mask
        dict(rendered=np.zeros((4, 5, 3)), mask=np.ones((4, 4), bool)),
        dict(rendered=np.full((4, 5, 3), 2.0), mask=np.ones((4, 5), bool)),
        dict(box=[1, 2, 3]),
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            MethodOutput(**kwargs)
    with pytest.raises(TypeError):
        MethodOutput(vertices=verts, triangles=np.zeros((1, 3)), now_landmarks=np.zeros((7, 3)))
    with pytest.raises(TypeError):
        MethodOutput(rendered=np.zeros((4, 5, 3)), mask=np.ones((4, 5)))
    with pytest.raises(TypeError):
        MethodOutput(landmarks68=[[0, 0]] * 68)


class _Fixed:
    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def predict(self, image, *, face_box=None):
        return MethodOutput(landmarks68=np.full((68, 2), self.value))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def test_registry() -> None:
    assert available_methods()[:3] == ("mediapipe", "dlib", "mean-face")
    assert method_info("dlib").provides == {"landmarks68"} and method_info("mean-face").provides == {"mesh"}
    info = register_method("test-fixed", _Fixed, provides=["landmarks68"], description="a test method")
    try:
        assert info.name == "test-fixed" and "test-fixed" in available_methods()
        with create_method("test-fixed", value=3.0) as m:
            assert m.predict(np.zeros((4, 4, 3), np.uint8)).landmarks68[0, 0] == 3.0
        with pytest.raises(ValueError, match="registered already"):
            register_method("test-fixed", _Fixed, provides=["landmarks68"], description="")
        register_method("test-fixed", _Fixed, provides=["landmarks68", "mesh"], description="", replace=True)
        assert method_info("test-fixed").provides == {"landmarks68", "mesh"}
    finally:
        unregister_method("test-fixed")
    assert "test-fixed" not in available_methods()
    for name, provides, err in [("bad name", ["mesh"], ValueError), ("", ["mesh"], ValueError),
                                ("ok", [], ValueError), ("ok", ["colour"], ValueError), ("ok", "mesh", ValueError)]:
        with pytest.raises(err):
            register_method(name, _Fixed, provides=provides, description="")
    with pytest.raises(TypeError):
        register_method("ok", 42, provides=["mesh"], description="")
    with pytest.raises(ValueError, match="expected one of"):
        create_method("no-such-method")
    with pytest.raises(ValueError):
        unregister_method("no-such-method")


def test_pick_face() -> None:
    boxes = [np.array([0.0, 0, 100, 100]), np.array([200.0, 0, 260, 60])]
    assert pick_face(boxes, None) == 0
    assert pick_face(boxes, np.array([205.0, 5, 255, 58])) == 1
    assert pick_face(boxes, np.array([10.0, 10, 90, 90])) == 0
    with pytest.raises(ValueError):
        pick_face([], None)


def test_landmark_methods_on_a_photo(faces_dir) -> None:
    from facerecon.detect import create_detector
    from facerecon.io.image import read_image

    image = read_image(faces_dir / "3ddfa-trump_hillary.jpg")
    with create_detector("dlib") as det:
        faces = det.detect(image)
    with create_method("dlib") as m:
        first = m.predict(image)
        second = m.predict(image, face_box=faces[1].box)  # the hint picks the smaller face
        assert np.array_equal(first.landmarks68, faces[0].landmarks)
        assert np.array_equal(second.landmarks68, faces[1].landmarks)
        with pytest.raises(NoFaceError):
            m.predict(np.full((200, 200, 3), 128, np.uint8))
    with create_method("mediapipe") as m:
        out = m.predict(image, face_box=faces[1].box)
        assert out.landmarks68.shape == (68, 2) and out.vertices is None and out.rendered is None
        # Near dlib's points on the same face (a few px), far from the other face's.
        assert np.linalg.norm(out.landmarks68 - faces[1].landmarks, axis=1).mean() < 0.1 * faces[1].box_size
        assert np.linalg.norm(out.landmarks68 - faces[0].landmarks, axis=1).mean() > faces[0].box_size


def test_mean_face_method(face_model, model_home) -> None:
    from facerecon.eval import now_landmark_vertices

    with create_method("mean-face", home=str(model_home)) as m:
        out = m.predict(np.zeros((8, 8, 3), np.uint8))
    head = face_model.submesh("head")
    assert out.vertices.shape == (head.vertex_count, 3) and np.array_equal(out.triangles, head.triangles.numpy())
    assert out.provides == {"mesh"}
    # Camera space: x kept, y and z flipped, 600 mm in front of the camera.
    mean = face_model.mean.double().numpy()
    assert np.allclose(out.vertices, mean[: head.vertex_count] * [1, -1, -1] + [0, 0, 600])
    assert np.allclose(out.now_landmarks, out.vertices[now_landmark_vertices(face_model)])
    with pytest.raises(ValueError):
        create_method("mean-face", submesh="nose", home=str(model_home))
