"""Files of the synthetic benchmark in the AFLW2000-3D and NoW layouts, each written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facerecon.core.mesh import Mesh
from facerecon.eval.synth.presets import SynthConfig
from facerecon.eval.synth.views import SynthView
from facerecon.io.atomic import atomic_path

if TYPE_CHECKING:
    from facerecon.eval.synth.batch import SynthFailure

__all__ = ["view_name", "write_aflw2000_view", "write_now_scan", "write_now_view"]


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    with atomic_path(path) as tmp:
        ok = cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise OSError(f"could not write {path}")


def write_aflw2000_view(
    folder: str | os.PathLike[str],
    name: str,
    view: SynthView,
    triangles: np.ndarray | None = None,
    *,
    source: str = "",
    jpeg_quality: int = 95,
) -> tuple[Path, ...]:
    """Write ``folder/<name>.jpg``, ``<name>.mat`` (``pt3d_68`` 3 x 68, ``Pose_Para`` 1 x 7 and the exact camera)
    and, with ``triangles``, the ground-truth mesh ``<name>.obj`` (+ ``.mtl``), each atomically.

    Returns:
        The files written, the ``.mat`` last.
    """
    from scipy.io import savemat

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if triangles is not None:
        from facerecon.io.mesh import write_obj

        write_obj(out / f"{name}.obj", Mesh(vertices=view.face_vertices, faces=np.asarray(triangles, np.int64), name=name),
                  texture_name=f"{name}.png")  # fmt: skip
        files += [out / f"{name}.obj", out / f"{name}.mtl"]
    _write_jpeg(out / f"{name}.jpg", view.image, jpeg_quality)
    files.append(out / f"{name}.jpg")
    fx, fy, cx, cy = view.intrinsics
    data = {
        "pt3d_68": view.landmarks68.T.copy(),
        "Pose_Para": view.pose_para[None].copy(),
        "camera_matrix": np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64),
        "rotation": view.rotation,
        "translation": view.translation[None],
        "expression": view.expression,
        "lighting": view.lighting,
        "source_photo": source,
        "convention": "facerecon synth: pt3d_68 = the 68 fixed iBUG vertices projected (x, y px; z px towards "
        "the camera from the pivot); Pose_Para = [pitch, yaw, roll] rad (facerecon docs/conventions.md), "
        "[tx, ty, tz] mm, scale px/mm; X_cam = rotation @ X_model + translation",
    }
    with atomic_path(out / f"{name}.mat") as tmp:
        savemat(str(tmp), data)
    files.append(out / f"{name}.mat")
    return tuple(files)


def write_now_scan(root: str | os.PathLike[str], subject: str, vertices: np.ndarray, triangles: np.ndarray,
                   landmarks: np.ndarray) -> tuple[Path, ...]:  # fmt: skip
    """Write a subject's ground-truth scan ``root/scans/<subject>/<subject>.obj`` and its 7 landmarks
    ``root/scans_lmks_onlypp/<subject>/<subject>.pp`` (NoW layout), each atomically."""
    from facerecon.eval.datasets import write_pp
    from facerecon.io.mesh import write_obj

    base = Path(root)
    obj = base / "scans" / subject / f"{subject}.obj"
    write_obj(obj, Mesh(vertices=np.asarray(vertices, np.float64), faces=np.asarray(triangles, np.int64), name=subject),
              texture_name=f"{subject}.png")  # fmt: skip
    pp = base / "scans_lmks_onlypp" / subject / f"{subject}.pp"
    write_pp(pp, np.asarray(landmarks, np.float64))
    return obj, obj.with_suffix(".mtl"), pp


def write_now_view(root: str | os.PathLike[str], subject: str, challenge: str, name: str, view: SynthView,
                   jpeg_quality: int = 95) -> Path:  # fmt: skip
    """Write ``root/iphone_pictures/<subject>/<challenge>/<name>.jpg`` atomically; returns its path."""
    path = Path(root) / "iphone_pictures" / subject / challenge / f"{name}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_jpeg(path, view.image, jpeg_quality)
    return path


def view_name(subject: str, yaw_deg: float, expression: str, lighting: str) -> str:
    """``<subject>_yaw+060_<expression>_<lighting>`` (yaw rounded to a degree, sign always shown)."""
    return f"{subject}_yaw{round(yaw_deg):+04d}_{expression}_{lighting}"


def _unique(stem: str, taken: set[str]) -> str:
    name, k = stem, 2
    while name in taken:
        name, k = f"{stem}-{k}", k + 1
    taken.add(name)
    return name


def _readme(yaws, exprs, lights, layout, config: SynthConfig, count: int, failures: list[SynthFailure]) -> str:
    lines = [
        "facerecon synth: fitted photos re-rendered with ground truth (facerecon.eval.synth).",
        (f"views: {count}; yaws (deg): {', '.join(f'{y:g}' for y in yaws)}; expressions: {', '.join(exprs)}; "
         f"lightings: {', '.join(lights)}; layout: {layout}"),
        f"image {config.image_size} px, focal {config.focal_35mm:g} mm (35 mm equiv.), background {config.background}",
        ("aflw2000/: <view>.jpg + <view>.mat (pt3d_68: the 68 fixed iBUG vertices projected, occluded ones too; "
         "Pose_Para: pitch, yaw, roll rad (facerecon convention: +yaw = nose to the viewer's right), tx, ty, tz mm, "
         "scale px/mm) + <view>.obj (ground-truth face mesh, camera space, mm)"),
        ("now/: iphone_pictures/<subject>/<neutral|expression>/<view>.jpg, scans/<subject>/<subject>.obj "
         "(neutral face, model space, mm), scans_lmks_onlypp/<subject>/<subject>.pp (7 NoW landmarks)"),
        "Evaluate: facerecon eval aflw2000 OUT/aflw2000 --method mediapipe; facerecon eval now OUT/now",
    ]
    lines += [f"failed: {f.photo}: {f.reason}" for f in failures]
    return "\n".join(lines) + "\n"