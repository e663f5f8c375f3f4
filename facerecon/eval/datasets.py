"""Readers of evaluation datasets: AFLW2000-3D, NoW, and a plain folder of photos.

A reader lists the samples of a dataset folder without opening them (a listing never fails because of one bad
file); each sample's ``load*`` method reads its files and raises :class:`DatasetFileError` (missing or unreadable
annotation or scan) or :class:`~facerecon.core.errors.ImageReadError` (photo), which the evaluation turns into a
failed row.

Layouts:

* **AFLW2000-3D** (Zhu et al., "Face alignment across large poses: a 3D solution", CVPR 2016): ``DIR/<name>.jpg``
  with ``DIR/<name>.mat`` holding ``pt3d_68`` (3 x 68: x, y in image pixels and z) and ``Pose_Para`` (1 x 7:
  pitch, yaw, roll in radians, tx, ty, tz, scale).
* **NoW** (Sanyal et al., CVPR 2019): ``ROOT/iphone_pictures/<subject>/<challenge>/<name>.jpg``, one scan per
  subject ``ROOT/scans/<subject>/<any>.obj`` and its 7 landmarks ``ROOT/scans_lmks_onlypp/<subject>/<any>.pp``
  (MeshLab picked points). ``ROOT`` is ``NoW_Dataset/final_release_version``; the reader also accepts a folder
  above it. An image list ``imagepaths<split>.txt`` (lines ``<subject>/<challenge>/<name>.jpg``) selects a split.
* **photos**: every image file (by extension) of a folder, optionally of its sub-folders.

Example:
    >>> samples = read_aflw2000("AFLW2000")            # doctest: +SKIP
    >>> image, ann = samples[0].load()                 # doctest: +SKIP
    >>> ann.landmarks68.shape, ann.yaw_deg             # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerecon.core.check import describe
from facerecon.core.errors import FaceReconError

__all__ = [
    "IMAGE_EXTENSIONS",
    "AFLW2000Annotation",
    "AFLW2000Sample",
    "DatasetFileError",
    "NoWSample",
    "PhotoSample",
    "read_aflw2000",
    "read_now",
    "read_photos",
    "read_pp",
    "write_pp",
]

#: File extensions counted as photos (lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DatasetFileError(FaceReconError):
    """A file of an evaluation dataset (annotation, scan, landmarks) is missing or unreadable."""


def _dataset_dir(path: object, name: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a folder path, got {describe(path)}")
    p = Path(path)
    if not p.is_dir():
        raise DatasetFileError(f"{p}: no such folder")
    return p


# ---------------------------------------------------------------------------------------------- AFLW2000-3D
@dataclass(frozen=True, eq=False)
class AFLW2000Annotation:
    """The ground truth of one AFLW2000-3D image.

    Attributes:
        landmarks68: ``(68, 2)`` float64 ``(x, y)`` px of ``pt3d_68`` (the 2D part used by NME), read as given.
        landmarks68_3d: ``(68, 3)`` float64, ``pt3d_68`` transposed.
        pitch, yaw, roll: head angles in radians (``Pose_Para[0:3]``).
    """

    landmarks68: np.ndarray
    landmarks68_3d: np.ndarray
    pitch: float
    yaw: float
    roll: float

    @property
    def yaw_deg(self) -> float:
        """Yaw in degrees, rounded to 1e-9 degree so that a yaw stored as radians(30) bins as 30, not 29.99..."""
        return round(math.degrees(self.yaw), 9)

    @property
    def box(self) -> np.ndarray:
        """``(4,)`` ``[x0, y0, x1, y1]`` px, the tight box around the 68 ground-truth points."""
        return np.concatenate([self.landmarks68.min(axis=0), self.landmarks68.max(axis=0)])


def read_aflw2000_mat(path: str | os.PathLike[str]) -> AFLW2000Annotation:
    """Read one AFLW2000-3D ``.mat`` file.

    Raises:
        DatasetFileError: missing, unreadable, or without a well-formed ``pt3d_68`` (3 x 68) / ``Pose_Para``
            (7 values) of finite numbers.
    """
    from scipy.io import loadmat

    p = Path(path)
    if not p.is_file():
        raise DatasetFileError(f"{p}: annotation file missing")
    try:
        data = loadmat(str(p))
    except Exception as err:  # noqa: BLE001 - scipy raises ValueError, TypeError, MatReadError... on corrupt files
        raise DatasetFileError(f"{p}: unreadable .mat file ({type(err).__name__}: {err})") from None
    for key in ("pt3d_68", "Pose_Para"):
        if key not in data:
            raise DatasetFileError(f"{p}: no '{key}' in the .mat file")
    try:
        pts = np.asarray(data["pt3d_68"], dtype=np.float64)
        pose = np.asarray(data["Pose_Para"], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise DatasetFileError(f"{p}: 'pt3d_68' or 'Pose_Para' is not numeric") from None
    if pts.shape != (3, 68):
        raise DatasetFileError(f"{p}: expected 'pt3d_68' of shape (3, 68), got {pts.shape}")
    if pose.shape != (7,):
        raise DatasetFileError(f"{p}: expected 7 values in 'Pose_Para', got {pose.size}")
    if not (np.isfinite(pts).all() and np.isfinite(pose[:3]).all()):
        raise DatasetFileError(f"{p}: 'pt3d_68' or the angles of 'Pose_Para' hold NaN or infinite values")
    return AFLW2000Annotation(
        landmarks68=np.ascontiguousarray(pts[:2].T),
        landmarks68_3d=np.ascontiguousarray(pts.T),
        pitch=float(pose[0]),
        yaw=float(pose[1]),
        roll=float(pose[2]),
    )


@dataclass(frozen=True)
class AFLW2000Sample:
    """One AFLW2000-3D item. Either path may name a missing file (reported when loading)."""

    name: str
    image_path: Path
    mat_path: Path

    def load_annotation(self) -> AFLW2000Annotation:
        """The ground truth (:func:`read_aflw2000_mat`); raises :class:`DatasetFileError`."""
        return read_aflw2000_mat(self.mat_path)

    def load_image(self) -> np.ndarray:
        """The photo, ``(H, W, 3)`` uint8 RGB; raises :class:`~facerecon.core.errors.ImageReadError`."""
        from facerecon.io.image import read_image

        return read_image(self.image_path)


def read_aflw2000(folder: str | os.PathLike[str]) -> list[AFLW2000Sample]:
    """List the samples of an AFLW2000-3D folder, sorted by name.

    Every stem with an image or a ``.mat`` file is a sample, so an image without its annotation (or the reverse)
    is listed and fails when loaded. Looks in ``folder`` and, when it has no ``.mat`` file, in
    ``folder/AFLW2000``.

    Raises:
        DatasetFileError: ``folder`` does not exist.
    """
    root = _dataset_dir(folder, "folder")
    if not any(root.glob("*.mat")) and (root / "AFLW2000").is_dir():
        root = root / "AFLW2000"
    images: dict[str, Path] = {}
    mats: dict[str, Path] = {}
    for f in root.iterdir():
        if not f.is_file() or f.name.startswith("."):
            continue
        ext = f.suffix.lower()
        if ext == ".mat":
            mats[f.stem] = f
        elif ext in IMAGE_EXTENSIONS:
            images.setdefault(f.stem, f)
    return [
        AFLW2000Sample(name=stem, image_path=images.get(stem, root / f"{stem}.jpg"), mat_path=mats.get(stem, root / f"{stem}.mat"))
        for stem in sorted(set(images) | set(mats))
    ]


# ---------------------------------------------------------------------------------------------------- NoW
def read_pp(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a MeshLab picked-points ``.pp`` file: the ``<point x= y= z=>`` elements in file order.

    Raises:
        DatasetFileError: missing or unreadable file, or a point without finite x, y, z.

    Returns:
        ``(P, 3)`` float64.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetFileError(f"{p}: landmark file missing")
    try:
        root = ET.parse(str(p)).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as err:
        raise DatasetFileError(f"{p}: unreadable picked-points file ({err})") from None
    out = []
    for el in root.iter("point"):
        try:
            xyz = [float(el.attrib[k]) for k in ("x", "y", "z")]
        except (KeyError, ValueError):
            raise DatasetFileError(f"{p}: a <point> without numeric x, y, z") from None
        out.append(xyz)
    arr = np.array(out, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(arr).all():
        raise DatasetFileError(f"{p}: landmarks hold NaN or infinite values")
    return arr


def write_pp(path: str | os.PathLike[str], points: np.ndarray) -> None:
    """Write ``(P, 3)`` points as a MeshLab picked-points ``.pp`` file (atomically), named ``0``, ``1``, ..."""
    from facerecon.io.atomic import write_text_atomic

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points: expected shape (P, 3), got {pts.shape}")
    lines = ["<!DOCTYPE PickedPoints>", "<PickedPoints>", " <DocumentData>", '  <DataFileName name=""/>',
             '  <templateName name=""/>', " </DocumentData>"]  # fmt: skip
    lines += [f' <point x="{x!r}" y="{y!r}" z="{z!r}" active="1" name="{i}"/>' for i, (x, y, z) in enumerate(pts.tolist())]
    lines.append("</PickedPoints>")
    write_text_atomic(path, "\n".join(lines) + "\n")


@dataclass(frozen=True)
class NoWSample:
    """One NoW image with its subject's scan. ``scan_path``/``landmarks_path`` are None when missing."""

    name: str
    subject: str
    challenge: str
    image_path: Path
    scan_path: Path | None
    landmarks_path: Path | None

    def load_image(self) -> np.ndarray:
        """The photo, ``(H, W, 3)`` uint8 RGB; raises :class:`~facerecon.core.errors.ImageReadError`."""
        from facerecon.io.image import read_image

        return read_image(self.image_path)

    def load_scan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(vertices (N, 3) mm, triangles (F, 3), landmarks (7, 3) mm)`` of the subject's scan.

        Raises:
            DatasetFileError: the scan or its landmarks are missing or unreadable, or there are not 7 landmarks.
        """
        from facerecon.io.mesh import read_mesh

        if self.scan_path is None:
            raise DatasetFileError(f"{self.name}: no scan (.obj/.ply) for subject {self.subject}")
        if self.landmarks_path is None:
            raise DatasetFileError(f"{self.name}: no scan landmarks (.pp) for subject {self.subject}")
        try:
            mesh = read_mesh(self.scan_path)
        except FaceReconError as err:  # MeshFileError: missing / corrupt
            raise DatasetFileError(str(err)) from None
        lm = read_pp(self.landmarks_path)
        if lm.shape[0] != 7:
            raise DatasetFileError(f"{self.landmarks_path}: expected 7 landmarks, got {lm.shape[0]}")
        return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces), lm


def _now_root(folder: Path) -> Path:
    for candidate in (folder, folder / "final_release_version", folder / "NoW_Dataset" / "final_release_version"):
        if (candidate / "iphone_pictures").is_dir():
            return candidate
    raise DatasetFileError(f"{folder}: not a NoW dataset folder (no iphone_pictures/ in it or in "
                           "final_release_version/ or NoW_Dataset/final_release_version/)")  # fmt: skip


def _first(folder: Path, suffixes: tuple[str, ...]) -> Path | None:
    if not folder.is_dir():
        return None
    found = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
    return found[0] if found else None


def read_now(folder: str | os.PathLike[str], split: str | None = None) -> list[NoWSample]:
    """List the images of a NoW dataset folder with their subjects' scans.

    Args:
        folder: ``NoW_Dataset/final_release_version`` or a folder above it.
        split: None: every image under ``iphone_pictures``; ``"validation"`` / ``"test"`` (or any name): the images
            listed in ``imagepaths<split>.txt`` of the dataset root.

    Returns:
        Samples sorted by ``subject/challenge/name``; a missing scan or landmark file leaves its path None.

    Raises:
        DatasetFileError: not a NoW folder, or the split's list is missing or unreadable.
    """
    root = _now_root(_dataset_dir(folder, "folder"))
    pictures = root / "iphone_pictures"
    if split is None:
        images = sorted(
            f for f in pictures.glob("*/*/*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
    else:
        listing = root / f"imagepaths{split}.txt"
        try:
            lines = listing.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise DatasetFileError(f"{listing}: cannot read the image list of split {split!r} ({err})") from None
        images = []
        for line in lines:
            parts = [s for s in line.strip().split("/") if s]
            if len(parts) >= 3:
                images.append(pictures / parts[-3] / parts[-2] / parts[-1])
        images.sort()
    scans: dict[str, tuple[Path | None, Path | None]] = {}
    out = []
    for img in images:
        subject, challenge = img.parent.parent.name, img.parent.name
        if subject not in scans:
            scans[subject] = (
                _first(root / "scans" / subject, (".obj", ".ply")),
                _first(root / "scans_lmks_onlypp" / subject, (".pp",)),
            )
        scan, lmk = scans[subject]
        out.append(NoWSample(name=f"{subject}/{challenge}/{img.name}", subject=subject, challenge=challenge,
                             image_path=img, scan_path=scan, landmarks_path=lmk))  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------- photos
@dataclass(frozen=True)
class PhotoSample:
    """One photo of a folder."""

    name: str
    image_path: Path

    def load_image(self) -> np.ndarray:
        """The photo, ``(H, W, 3)`` uint8 RGB; raises :class:`~facerecon.core.errors.ImageReadError`."""
        from facerecon.io.image import read_image

        return read_image(self.image_path)


def read_photos(folder: str | os.PathLike[str], recursive: bool = False) -> list[PhotoSample]:
    """List the image files (by extension, :data:`IMAGE_EXTENSIONS`) of a folder, sorted by relative path.

    Raises:
        DatasetFileError: ``folder`` does not exist.
    """
    root = _dataset_dir(folder, "folder")
    files = root.rglob("*") if recursive else root.iterdir()
    found = sorted(
        f for f in files
        if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".") and (f.is_file() or not f.exists())
    )  # fmt: skip
    return [PhotoSample(name=f.relative_to(root).as_posix(), image_path=f) for f in found]
