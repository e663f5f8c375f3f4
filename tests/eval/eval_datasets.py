"""Builders of tiny evaluation datasets in the real layouts, from the shared photos and the ICT mean face.

Used by tests/eval and tests/cli/test_eval_cli.py (loaded there by file path).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import scipy.io

# (photo, which face) pairs whose faces dlib's HOG detector finds; the 450 x 450 ones are AFLW-like crops.
# The second face of the two-person photo checks that the ground-truth box picks the annotated face.
AFLW_PHOTOS = (("deca-exp-2.jpg", 0), ("deca-exp-5.jpg", 0), ("d3dfr-000002.jpg", 0), ("deca-exp-6.jpg", 0),
               ("prnet-4.jpg", 0), ("3ddfa-trump_hillary.jpg", 1))
# Yaws (degrees) given to them, covering the three bins and their edges: bins 0, 0, 1, 1, 2, 2.
AFLW_YAWS = (0.0, -29.0, 30.0, 59.5, -60.0, 90.0)


def dlib_landmarks(path: Path, face: int = 0) -> np.ndarray:
    """dlib's 68 points of a face of a photo, largest first (the AFLW2000-3D tests' ground truth)."""
    from facerecon.detect import create_detector
    from facerecon.io.image import read_image

    with create_detector("dlib") as det:
        faces = det.detect(read_image(path))
    return faces[face].landmarks


def write_aflw_mat(path: Path, landmarks68: np.ndarray, yaw_deg: float, pitch: float = 0.05, roll: float = -0.02) -> None:
    pts = np.vstack([np.asarray(landmarks68, dtype=np.float64).T, np.linspace(-20, 20, 68)[None]])  # (3, 68)
    pose = np.array([[pitch, np.radians(yaw_deg), roll, 100.0, 120.0, 0.0, 0.0015]])
    scipy.io.savemat(str(path), {"pt3d_68": pts, "Pose_Para": pose})


def make_aflw(folder: Path, faces_dir: Path, photos=AFLW_PHOTOS, yaws=AFLW_YAWS) -> dict[str, np.ndarray]:
    """``folder/imageNNNNN.jpg`` (byte copies of the photos) + ``.mat`` with dlib's points as ``pt3d_68``."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, ((photo, face), yaw) in enumerate(zip(photos, yaws)):
        name = f"image{i:05d}"
        shutil.copyfile(faces_dir / photo, folder / f"{name}.jpg")
        lm = dlib_landmarks(folder / f"{name}.jpg", face)
        write_aflw_mat(folder / f"{name}.mat", lm, yaw)
        truth[name] = lm
    return truth


def similarity(points: np.ndarray, rotation: np.ndarray, scale: float, translation: np.ndarray) -> np.ndarray:
    return scale * points @ rotation.T + translation


def rotation_xyz(degrees: tuple[float, float, float]) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()


# A known similarity from the mean face's model space to the "scan" space.
SCAN_ROTATION_DEG = (12.0, -25.0, 5.0)
SCAN_SCALE = 1.07
SCAN_TRANSLATION = np.array([12.0, -40.0, 300.0])


def make_now(root: Path, face_model, faces_dir: Path, subjects=("FaMoS_180424_03335_TA", "FaMoS_180426_03336_TA"),
             challenges=(("multiview_neutral", "prnet-1.jpg"), ("selfie", "prnet-2.jpg"))) -> Path:
    """A NoW layout whose scans are the ICT mean face ('face' part) moved by the known similarity.

    Returns the dataset root (``root/NoW_Dataset/final_release_version``).
    """
    from facerecon.core.mesh import Mesh
    from facerecon.eval import now_landmark_vertices, write_pp
    from facerecon.io.mesh import write_obj

    base = root / "NoW_Dataset" / "final_release_version"
    sub = face_model.submesh("face")
    v = face_model.mean[: sub.vertex_count].double().numpy()
    lm = face_model.mean.double().numpy()[now_landmark_vertices(face_model)]
    r = rotation_xyz(SCAN_ROTATION_DEG)
    for subject in subjects:
        (base / "scans" / subject).mkdir(parents=True)
        (base / "scans_lmks_onlypp" / subject).mkdir(parents=True)
        write_obj(base / "scans" / subject / "natural_head_rotation.000001.obj",
                  Mesh(vertices=similarity(v, r, SCAN_SCALE, SCAN_TRANSLATION), faces=sub.triangles.numpy()))
        write_pp(base / "scans_lmks_onlypp" / subject / "natural_head_rotation.000001_picked_points.pp",
                 similarity(lm, r, SCAN_SCALE, SCAN_TRANSLATION))
        for challenge, photo in challenges:
            d = base / "iphone_pictures" / subject / challenge
            d.mkdir(parents=True)
            shutil.copyfile(faces_dir / photo, d / f"IMG_{Path(photo).stem}.jpg")
    return base
