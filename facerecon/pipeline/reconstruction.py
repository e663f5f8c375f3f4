"""``Reconstruction``: one fitted face of one photo, and how it is written to disk."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facerecon.core.mesh import Mesh
from facerecon.detect.types import Detection
from facerecon.io.atomic import atomic_path, write_text_atomic
from facerecon.io.gltf import write_glb
from facerecon.io.mesh import write_obj, write_ply
from facerecon.pipeline.outputs import DEFAULT_OUTPUTS, output_files
from facerecon.texture.details import DISPLACEMENT_MM_PER_UNIT, DISPLACEMENT_OFFSET, encode_displacement


@dataclass(frozen=True)
class PhotoCamera:
    """The photo's pinhole camera as numbers.

    Attributes:
        image_size: ``(H, W)`` of the photo, px.
        intrinsics: ``(fx, fy, cx, cy)`` px.
        focal_source: ``"exif"`` or ``"default"``.
    """

    image_size: tuple[int, int]
    intrinsics: tuple[float, float, float, float]
    focal_source: str


@dataclass(frozen=True, eq=False)
class HeadPose:
    """Where the head is.

    Attributes:
        rotation: ``(3, 3)`` model-to-camera rotation; translation: ``(3,)`` mm (OpenCV camera axes).
        angles_deg: ``(3,)`` head (pitch, yaw, roll) in degrees (docs/conventions.md).
    """

    rotation: np.ndarray
    translation: np.ndarray
    angles_deg: np.ndarray


@dataclass(frozen=True, eq=False)
class FaceCoefficients:
    """The model's coefficients and the light.

    Attributes:
        identity: ``(K_id,)`` identity coefficients (N(0, 1) prior).
        expression: ``(K_exp,)`` expression weights in [0, 1]; names in ``expression_names`` (ARKit-style).
        sh: ``(9, 3)`` SH radiance coefficients, or None when the photometric stage did not run.
    """

    identity: np.ndarray
    expression: np.ndarray
    expression_names: tuple[str, ...]
    sh: np.ndarray | None


@dataclass(frozen=True, eq=False)
class FittedMesh:
    """The fitted mesh.

    Attributes:
        vertices: ``(V, 3)`` the fitted ``submesh`` in model space, mm (apply the pose for camera space).
        triangles: ``(F, 3)`` int64 triangles of ``submesh`` (``"head"``).
        albedo: ``(V, 3)`` per-vertex albedo in [0, 1] (the landmark stage alone gives a flat skin colour).
        export_mesh: the textured mesh with morph targets that the files are written from.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    submesh: str
    albedo: np.ndarray
    export_mesh: Mesh


@dataclass(frozen=True, eq=False)
class FaceTextures:
    """The face's texture maps (the model's UV tile 0, ``S x S``).

    Attributes:
        texture: ``(S, S, 3)`` uint8 from the photo (completed and re-lit with texture completion).
        albedo: ``(S, S, 3)`` uint8 de-lit, completed albedo (None without texture completion).
        displacement: ``(S, S)`` float32 mm along the outward normal (None without details).
        normal_map: ``(S, S, 3)`` uint8 object-space (model-space) normals of the detailed face,
            ``rgb = (n + 1) / 2`` (None without details).
        detailed_mesh: the face displaced at UV resolution (model space, mm; None without details).
    """

    texture: np.ndarray
    albedo: np.ndarray | None = None
    displacement: np.ndarray | None = None
    normal_map: np.ndarray | None = None
    detailed_mesh: Mesh | None = None


@dataclass(frozen=True, eq=False)
class FitReport:
    """How the fit went.

    Attributes:
        landmarks68: ``(68, 2)`` the fitted model's iBUG landmarks projected into the photo, px.
        landmark_error_px: median distance between fitted and detected landmarks, px.
        photometric_error: mean RGB distance between the rendered face and the photo over its mask (paper 004
            sec. 7.2, channels in [0, 1]), or None without the photometric stage.
        stages: the stages that ran, in order.
        timings_ms: wall time per stage, ms.
        losses: final energy terms per stage.
    """

    landmarks68: np.ndarray
    landmark_error_px: float
    photometric_error: float | None
    stages: tuple[str, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
    losses: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class FacePictures:
    """Pictures over the photo's pixel grid (None when not rendered).

    Attributes:
        overlay / landmarks_image / normals_image: ``(H, W, 3)`` uint8 pictures for a person.
        depth: ``(H, W)`` float32 mm, 0 = background.
        rendered: ``(H, W, 3)`` float32 in [0, 1], the fitted face (albedo under the fitted light) over the photo.
        face_mask: ``(H, W)`` bool, the pixels of ``rendered``'s face (the photometric region, brow to chin).
    """

    overlay: np.ndarray | None = None
    landmarks_image: np.ndarray | None = None
    depth: np.ndarray | None = None
    normals_image: np.ndarray | None = None
    rendered: np.ndarray | None = None
    face_mask: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Reconstruction:
    """A face reconstructed from a photo (NumPy arrays; one face), in groups.

    Attributes:
        image_name: the photo's file stem (or "image" for arrays).
        face_index: 0 for the largest face of the photo, then by size.
        detection: the detector's result for this face.
        camera: the photo's camera (:class:`PhotoCamera`).
        pose: rotation, translation, head angles (:class:`HeadPose`).
        coefficients: identity, expression, SH light (:class:`FaceCoefficients`).
        mesh: vertices, triangles, per-vertex albedo, the export mesh (:class:`FittedMesh`).
        textures: texture, albedo, displacement, normal map, detailed mesh (:class:`FaceTextures`).
        fit: landmarks, errors, stages, timings, losses (:class:`FitReport`).
        pictures: overlay, landmarks, depth, normals, rendered face and its mask (:class:`FacePictures`).
    """

    image_name: str
    face_index: int
    detection: Detection
    camera: PhotoCamera
    pose: HeadPose
    coefficients: FaceCoefficients
    mesh: FittedMesh
    textures: FaceTextures
    fit: FitReport
    pictures: FacePictures = field(default_factory=FacePictures)

    @property
    def camera_vertices(self) -> np.ndarray:
        """``(V, 3)`` the fitted mesh in camera space, mm (OpenCV axes)."""
        return self.mesh.vertices @ self.pose.rotation.T + self.pose.translation

    def params(self) -> dict:
        """Everything numeric about the fit, JSON-ready (what ``params.json`` holds)."""
        fx, fy, cx, cy = self.camera.intrinsics
        box = self.detection.box
        return {
            "image": self.image_name,
            "face_index": self.face_index,
            "image_size": {"height": self.camera.image_size[0], "width": self.camera.image_size[1]},
            "box": [float(v) for v in box],
            "detection_score": self.detection.score,
            "identity": [float(v) for v in self.coefficients.identity],
            "expression": {n: float(v) for n, v in zip(self.coefficients.expression_names, self.coefficients.expression)},
            "rotation": self.pose.rotation.tolist(),
            "translation_mm": self.pose.translation.tolist(),
            "head_angles_deg": dict(zip(("pitch", "yaw", "roll"), map(float, self.pose.angles_deg))),
            "head_angles_convention": "R_camera = diag(1,-1,-1) @ Rz(roll) @ Ry(yaw) @ Rx(pitch); see docs/conventions.md",
            "intrinsics": {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "focal_source": self.camera.focal_source},
            "sh_coefficients": None if self.coefficients.sh is None else self.coefficients.sh.tolist(),
            "sh_convention": "radiance SH, 3 bands, (9, 3) RGB; shading = sum (A_l/pi) L_lm Y_lm(n); see facerecon.render.sh",
            "landmarks68": self.fit.landmarks68.tolist(),
            "landmark_error_px": self.fit.landmark_error_px,
            "landmark_nme": self.fit.landmark_error_px / max(self.detection.box_size, 1e-9),
            "photometric_error": self.fit.photometric_error,
            "stages": list(self.fit.stages),
            "timings_ms": self.fit.timings_ms,
            "losses": self.fit.losses,
            "units": "mm",
            "texture_files": {
                "texture.png": "completed face texture (photo where seen, mirror image, membrane fill), re-lit",
                "albedo.png": None if self.textures.albedo is None else "de-lit completed albedo",
                "displacement.png": None if self.textures.displacement is None else
                {"bits": 16, "mm_per_unit": DISPLACEMENT_MM_PER_UNIT, "zero": DISPLACEMENT_OFFSET, "direction": "outward normal"},
                "normal_map.png": None if self.textures.normal_map is None else "object space (model axes), rgb = (n + 1) / 2",
            },
            "model": "ICT Face Model Light (MIT)",
        }

    def save(self, directory: str | os.PathLike[str], outputs: tuple[str, ...] | list[str] = DEFAULT_OUTPUTS) -> Path:
        """Write the outputs ``outputs`` (names of :data:`OUTPUTS`) into ``directory`` (created), each file atomically.

        ``face.glb`` (textured, 53 expression morph targets with the fitted weights), ``mesh.obj`` + ``mesh.mtl`` +
        ``texture.png``, ``mesh.ply`` (vertex colours), ``params.json``; with texture completion ``albedo.png``; with
        details ``displacement.png`` (16-bit: ``32768 + d / 0.001 mm``, see :mod:`facerecon.texture.details`),
        ``normal_map.png`` (object space) and ``mesh_detailed.glb`` (textured), or ``mesh_detailed.obj`` (+ .mtl,
        textured with ``texture.png``); the pictures ``overlay.png``, ``landmarks.png``, ``depth.png``,
        ``normals.png``; the raw ``depth.npy``. ``params.json`` is always written, last.

        Returns:
            The directory.

        Raises:
            ValueError: an unknown output name.
        """
        files = set(output_files(outputs))
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if "mesh.obj" in files:  # with mesh.mtl and texture.png (write_obj writes them beside it)
            write_obj(out / "mesh.obj", self.mesh.export_mesh, texture_name="texture.png")
        if "mesh.ply" in files:
            write_ply(out / "mesh.ply", self.mesh.export_mesh)
        if "face.glb" in files:
            write_glb(out / "face.glb", self.mesh.export_mesh)
        if self.textures.albedo is not None and "albedo.png" in files:
            _write_png(out / "albedo.png", self.textures.albedo)
        if self.textures.displacement is not None and "displacement.png" in files:
            with atomic_path(out / "displacement.png") as tmp:
                if not cv2.imwrite(str(tmp), encode_displacement(self.textures.displacement)):
                    raise OSError(f"could not write {out / 'displacement.png'}")
        if self.textures.normal_map is not None and "normal_map.png" in files:
            _write_png(out / "normal_map.png", self.textures.normal_map)
        if self.textures.detailed_mesh is not None:
            if "mesh_detailed.glb" in files:
                write_glb(out / "mesh_detailed.glb", self.textures.detailed_mesh)
            if "mesh_detailed.obj" in files:  # the same texture.png as mesh.obj (both are the export texture)
                write_obj(out / "mesh_detailed.obj", self.textures.detailed_mesh, texture_name="texture.png")
        shown = self.pictures
        pictures = (("overlay.png", shown.overlay), ("landmarks.png", shown.landmarks_image), ("normals.png", shown.normals_image))
        for name, picture in pictures:
            if picture is not None and name in files:
                _write_png(out / name, picture)
        if shown.depth is not None:
            if "depth.npy" in files:
                with atomic_path(out / "depth.npy") as tmp:
                    np.save(tmp, shown.depth.astype(np.float32))
            if "depth.png" in files:
                _write_png(out / "depth.png", _depth_picture(shown.depth))
        write_text_atomic(out / "params.json", json.dumps(self.params(), indent=2, allow_nan=False))
        return out


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")


def _depth_picture(depth: np.ndarray) -> np.ndarray:
    """Depth (mm, 0 = background) as 8-bit grey: near white, far dark grey, background black."""
    covered = depth > 0
    out = np.zeros(depth.shape + (3,), np.uint8)
    if covered.any():
        near, far = depth[covered].min(), depth[covered].max()
        grey = 1.0 - 0.8 * (depth - near) / max(far - near, 1e-9)
        out[covered] = np.round(np.clip(grey[covered], 0, 1) * 255).astype(np.uint8)[:, None]
    return out

