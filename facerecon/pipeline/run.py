"""``reconstruct``: photo in, fitted 3D faces out (detect -> landmark fit -> photometric fit -> albedo -> texture).

Analysis-by-synthesis after paper 001 (coarse fit, then albedo refinement) with the energies of paper 004;
see :mod:`facerecon.fit.landmarks` and :mod:`facerecon.fit.photometric` for the stages.

Example:
    >>> import facerecon
    >>> faces = facerecon.reconstruct("photo.jpg")            # doctest: +SKIP
    >>> faces[0].save("out/photo/0")                          # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from facerecon.core.errors import FitDivergedError, NoFaceError
from facerecon.core.mesh import Mesh
from facerecon.core.threads import compute_threads
from facerecon.core.timing import timed
from facerecon.detect import check_detectable
from facerecon.detect.types import Detection
from facerecon.estimate import Estimator, FaceEstimate, create_estimator
from facerecon.fit.landmarks import LandmarkFitter, ibug68_targets
from facerecon.geometry.camera import PerspectiveCamera, focal_px_from_35mm
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.geometry.rotation import camera_rotation_to_head_angles
from facerecon.io.image import read_image_with_info
from facerecon.models.face_model import FaceModel
from facerecon.models.regions import Region
from facerecon.pipeline.options import ReconstructOptions
from facerecon.pipeline.reconstruction import (
    FaceCoefficients,
    FacePictures,
    FaceTextures,
    FitReport,
    FittedMesh,
    HeadPose,
    PhotoCamera,
    Reconstruction,
)
from facerecon.render.images import composite, display_light, normals_to_rgb, to_uint8
from facerecon.render.scene import Scene, render_scene
from facerecon.render.sh import shade
from facerecon.texture.atlas import ExportLayout, export_layout, paint_patches
from facerecon.texture.details import DetailEstimator, DetailResult
from facerecon.texture.photo import CompletedTexture, PhotoTextureBaker

# Where the details stage may put wrinkles: skin without hair (eyebrows), lips or ears.
DETAIL_REGIONS = (Region.FOREHEAD, Region.EYES, Region.NOSE, Region.CHEEKS, Region.CHIN_JAW)
# Paper 001 ("Inverse Rendering - Albedo"): refined albedo = beta * coarse + (1 - beta) * photo / shading.
ALBEDO_BLEND_BETA = 0.65


#: The stages :class:`Progress` reports, in order ("write" is reported by whoever saves the faces).
PROGRESS_STAGES = ("read", "detect", "estimate", "albedo", "texture", "details", "write")


@dataclass(frozen=True)
class Progress:
    """Where a photo's reconstruction is: ``stage`` (one of :data:`PROGRESS_STAGES`) of face ``face`` (0-based)
    of the ``faces`` found (both 0 until the faces are found)."""

    stage: str
    face: int = 0
    faces: int = 0


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class SkippedFace:
    """A face that was found but not reconstructed, and why."""

    face_index: int
    reason: str


@dataclass(frozen=True)
class ImageResult:
    """The reconstructions of one photo and the faces skipped in it."""

    image_name: str
    reconstructions: tuple[Reconstruction, ...]
    skipped: tuple[SkippedFace, ...]
    detect_ms: float


@dataclass(frozen=True, eq=False)
class FaceGeometry:
    """The estimate's ``head`` mesh placed in the photo.

    Attributes:
        camera: the photo's camera (float32, batch 1).
        vertices: ``(1, V, 3)`` model space, mm; camera_vertices: ``(1, V, 3)`` camera space, mm.
        screen: ``(1, V, 3)`` ``(u, v)`` px in the photo and depth mm.
    """

    camera: PerspectiveCamera
    vertices: torch.Tensor
    camera_vertices: torch.Tensor
    screen: torch.Tensor


@dataclass(frozen=True, eq=False)
class AlbedoResult:
    """Per-vertex albedo of the whole head: ``albedo (V_head, 3)`` in [0, 1], ``skin_rgb (3,)`` its mean skin
    colour, and whether paper 001's refinement ran."""

    albedo: torch.Tensor
    skin_rgb: np.ndarray
    refined: bool


@dataclass(frozen=True, eq=False)
class TextureResult:
    """The face texture (``(S, S, 3)`` uint8, UV tile 0), the de-lit albedo texture (None without completion),
    the completion's intermediate maps (for the details stage), and the mesh the files are written from."""

    texture: np.ndarray
    albedo_texture: np.ndarray | None
    completed: CompletedTexture | None
    export_texture: np.ndarray
    export_mesh: Mesh


@dataclass(frozen=True, eq=False)
class Diagnostics:
    """How well the result explains the photo: the re-rendered face and its mask, the pixel photometric error,
    the fitted iBUG-68 points and their median distance to the detected ones, and the pictures for a person."""

    rendered: np.ndarray
    face_mask: np.ndarray
    photometric_error: float | None
    landmarks68: np.ndarray
    landmark_error_px: float
    overlay: np.ndarray | None
    landmarks_image: np.ndarray | None
    depth: np.ndarray | None
    normals_image: np.ndarray | None


class Reconstructor:
    """Holds the model, the detector, the estimator and the texture stages for a batch of photos.

    The estimator (``options.method``, see :mod:`facerecon.estimate`) finds the face's parameters; everything
    after it (albedo, texture, details, diagnostics) is the same for every method.

    Example:
        >>> with Reconstructor() as rec:                               # doctest: +SKIP
        ...     for path in paths:
        ...         result = rec.run(path)
    """

    def __init__(
        self,
        model: FaceModel | None = None,
        options: ReconstructOptions = ReconstructOptions(),
        detector=None,
        estimator: Estimator | None = None,
    ) -> None:
        if model is None:
            from facerecon.pipeline.setup import load_model

            model = load_model()
        self.model = model
        self.options = options
        if detector is None:
            from facerecon.detect import create_detector

            detector = create_detector("mediapipe")
            self._owns_detector = True
        else:
            self._owns_detector = False
        self.detector = detector
        self.estimator = estimator if estimator is not None else _make_estimator(model, options)
        # The fitted model's 68 iBUG points in the photo, its jaw slid to the detected jaw (paper 004 sec. 6.1).
        self.projector68 = LandmarkFitter(model, ibug68_targets(model), options.landmark)
        self.layout: ExportLayout = export_layout(model, "head")
        face_sub = model.submesh("face")
        face_n = face_sub.vertex_count
        self.baker = PhotoTextureBaker(
            model.uvs, face_sub.uv_triangles, options.texture_size, triangles=face_sub.triangles, mirror=model.mirror[:face_n]
        )
        self._details: DetailEstimator | None = None
        self._nearest: dict[int, torch.Tensor] = {}
        self._progress: ProgressCallback | None = None
        self._face_at = (0, 0)  # (face, faces) of the face being reconstructed, for progress reports

    @property
    def detail_estimator(self) -> DetailEstimator:
        """The details stage (made on first use)."""
        if self._details is None:
            model, face = self.model, self.model.submesh("face")
            labels = model.region_labels[: face.vertex_count]
            skin = torch.zeros(face.vertex_count, dtype=torch.bool)
            for region in DETAIL_REGIONS:
                skin |= labels == region
            self._details = DetailEstimator(
                model.uvs, face.uv_triangles, face.triangles, skin, self.options.detail, self.options.detail_mesh_size
            )
        return self._details

    def close(self) -> None:
        self.estimator.close()
        if self._owns_detector:
            self.detector.close()

    def __enter__(self) -> Reconstructor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------
    def run(self, image: str | os.PathLike[str] | np.ndarray, name: str | None = None, *,
            progress: ProgressCallback | None = None) -> ImageResult:  # fmt: skip
        """Reconstruct the faces of one photo; ``progress`` is called with a :class:`Progress` as each stage starts.

        Raises:
            ImageReadError: the file cannot be read.
            NoFaceError: no face, or none of at least ``min_face_px``.
        """
        self._progress, self._face_at = progress, (0, 0)
        try:
            with compute_threads(self.options.torch_threads):
                return self._run(image, name)
        finally:
            self._progress = None

    def _report(self, stage: str) -> None:
        if self._progress is not None:
            self._progress(Progress(stage, *self._face_at))

    def _run(self, image: str | os.PathLike[str] | np.ndarray, name: str | None) -> ImageResult:
        focal_35 = None
        self._report("read")
        if isinstance(image, np.ndarray):
            from facerecon.io.image import as_rgb_uint8

            rgb = as_rgb_uint8(image)
            name = name or "image"
        else:
            info = read_image_with_info(image, max_side=self.options.max_image_side)
            rgb, focal_35 = info.image, info.focal_35mm
            name = name or Path(image).stem
        check_detectable(rgb, name)
        timings: dict[str, float] = {}
        self._report("detect")
        with timed(timings, "detect"):
            detections = self.detector.detect(rgb)
        detect_ms = timings["detect"]
        if not detections:
            raise NoFaceError(f"{name}: no face found")
        if self.options.faces == "largest":
            detections = detections[:1]
        results: list[Reconstruction] = []
        skipped: list[SkippedFace] = []
        for index, det in enumerate(detections):
            if det.box_size < self.options.min_face_px:
                skipped.append(SkippedFace(index, f"face {index} is {det.box_size:.0f} px, below {self.options.min_face_px:.0f} px"))
                continue
            self._face_at = (index, len(detections))
            try:
                rec = self.reconstruct_face(rgb, det, name=name, face_index=index, focal_35mm=focal_35)
            except FitDivergedError as err:
                skipped.append(SkippedFace(index, f"face {index}: {err}"))
                continue
            timings = {"detect": detect_ms / len(detections), **rec.fit.timings_ms}
            results.append(replace(rec, fit=replace(rec.fit, timings_ms=timings)))
        if not results and all("below" in s.reason for s in skipped):
            raise NoFaceError(f"{name}: no face of at least {self.options.min_face_px:.0f} px ({len(skipped)} smaller)")
        return ImageResult(name, tuple(results), tuple(skipped), detect_ms)

    def camera_for(self, image: np.ndarray, focal_35mm: float | None = None) -> PerspectiveCamera:
        """The photo's camera (:func:`photo_camera` with this reconstructor's default focal length)."""
        return photo_camera(image, focal_35mm, self.options.default_focal_35mm)

    def reconstruct_face(
        self,
        image: np.ndarray,
        detection: Detection,
        *,
        name: str = "image",
        face_index: int = 0,
        focal_35mm: float | None = None,
        init: FaceEstimate | None = None,
    ) -> Reconstruction:
        """Reconstruct one detected face of ``image`` ``(H, W, 3)`` uint8: estimate, then everything after it.

        Args:
            init: an estimate to start the estimator from (a previous video frame's, another method's).
        """
        self._report("estimate")
        estimate = self.estimator.estimate(image, detection, self.camera_for(image, focal_35mm), init=init)
        timings, losses = dict(estimate.timings_ms), {k: dict(v) for k, v in estimate.losses.items()}
        stages = list(estimate.stages)
        photo = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        geometry = self._geometry(estimate)
        self._report("albedo")
        albedo = self._albedo(photo, estimate, geometry, timings)
        if albedo.refined:
            stages.append("albedo")
        self._report("texture")
        with timed(timings, "texture"):
            texture = self._texture(photo, estimate, geometry, albedo)
        details = None
        if self.options.details and estimate.sh is not None:
            self._report("details")
            with timed(timings, "details"):
                details = self._details_stage(photo, estimate, geometry, albedo, texture)
            losses["details"] = details.details.energy
        diagnostics = self._diagnostics(image, photo, detection, estimate, geometry, albedo, timings)
        return self._reconstruction(name, face_index, detection, estimate, geometry, albedo, texture, details,
                                    diagnostics, focal_35mm, stages, timings, losses)  # fmt: skip

    # ------------------------------------------------------------------------------------- the steps
    def _geometry(self, estimate: FaceEstimate) -> FaceGeometry:
        """The head in model and camera space and its projection into the photo."""
        verts = estimate.vertices[None]  # (1, V, 3)
        cam = verts @ estimate.rotation.T + estimate.translation
        if not torch.isfinite(cam).all():
            raise FitDivergedError("the fitted mesh has NaN or infinite vertices")
        camera = estimate.camera.to(dtype=cam.dtype)
        return FaceGeometry(camera, verts, cam, camera.project_with_depth(cam))

    def _albedo(self, photo: torch.Tensor, estimate: FaceEstimate, geometry: FaceGeometry, timings: dict[str, float]) -> AlbedoResult:
        """Paper 001's refinement of the estimated albedo, then its completion from the fitted region to the head."""
        model = self.model
        fit_n = model.submesh(estimate.albedo_region).vertex_count
        albedo_fit = estimate.albedo
        refine = albedo_fit is not None and self.options.stages == "all" and estimate.visible is not None
        if refine:
            with timed(timings, "albedo"):
                face = model.submesh("face")
                normals = vertex_normals(geometry.camera_vertices[:, : face.vertex_count], face.triangles)
                use = estimate.visible & ~estimate.occluded
                albedo_fit = _refine_albedo(photo, geometry.screen[:, :fit_n], normals[:, :fit_n], albedo_fit, estimate.sh, use)
        skin_rgb = _skin_colour(model, photo, geometry.screen, fit_n, albedo_fit)
        return AlbedoResult(self._complete_albedo(albedo_fit, skin_rgb), skin_rgb, refine)

    def _texture(self, photo: torch.Tensor, estimate: FaceEstimate, geometry: FaceGeometry, albedo: AlbedoResult) -> TextureResult:
        """The photo unwrapped into the face's UV tile (completed and de-lit unless switched off), and the export mesh."""
        face = self.model.submesh("face")
        face_n = face.vertex_count
        screen, cam, sh = geometry.screen[:, :face_n], geometry.camera_vertices[:, :face_n], estimate.sh
        completed = albedo_texture = None
        if self.options.texture_completion:
            unoccluded = torch.ones(face_n, dtype=torch.bool)
            if estimate.occluded is not None:
                unoccluded[: len(estimate.occluded)] = ~estimate.occluded
            completed = self.baker.complete(photo, screen, cam, face.triangles, albedo.albedo[:face_n], sh, unoccluded=unoccluded)
            face_texture, albedo_texture = completed.texture, completed.albedo
        else:
            normals = vertex_normals(cam, face.triangles)
            fallback = albedo.albedo[:face_n] if sh is None else shade(albedo.albedo[None, :face_n], normals, sh[None])[0].clamp(0, 1)
            face_texture = self.baker.bake(photo, screen, cam, face.triangles, fallback).texture
        export_texture = paint_patches(face_texture, self.layout, albedo.skin_rgb)
        mesh = export_mesh(self.model, self.layout, geometry.vertices[0], estimate.expression, export_texture)
        return TextureResult(face_texture, albedo_texture, completed, export_texture, mesh)

    def _details_stage(self, photo: torch.Tensor, estimate: FaceEstimate, geometry: FaceGeometry, albedo: AlbedoResult,
                       texture: TextureResult) -> DetailResult:  # fmt: skip
        """Shape-from-shading details on the completed texture's maps."""
        face = self.model.submesh("face")
        face_n = face.vertex_count
        cam = geometry.camera_vertices[:, :face_n]
        completed = texture.completed
        if completed is None:
            completed = self.baker.complete(photo, geometry.screen[:, :face_n], cam, face.triangles, albedo.albedo[:face_n], estimate.sh)
        return self.detail_estimator.estimate(
            cam, geometry.vertices[:, :face_n], estimate.rotation, estimate.sh, completed.photo, completed.fitted,
            completed.weight, completed.normals, texture=texture.export_texture,
        )  # fmt: skip

    def _diagnostics(self, image: np.ndarray, photo: torch.Tensor, detection: Detection, estimate: FaceEstimate,
                     geometry: FaceGeometry, albedo: AlbedoResult, timings: dict[str, float]) -> Diagnostics:  # fmt: skip
        """The face re-rendered over the photo, the photometric and landmark errors, and the pictures."""
        model, opts = self.model, self.options
        fit_sub = model.submesh(estimate.albedo_region)
        fit_n = fit_sub.vertex_count
        with timed(timings, "render"):
            unoccluded = ~estimate.occluded if estimate.occluded is not None else torch.ones(fit_n, dtype=torch.bool)
            rendered, face_mask = _render_face(photo, geometry.camera, geometry.camera_vertices[:, :fit_n],
                                               fit_sub.triangles, albedo.albedo[:fit_n], estimate.sh, unoccluded)  # fmt: skip
            photometric_error = None if estimate.sh is None else _pixel_photometric_error(photo, rendered, face_mask)
        landmarks68 = detection.to_ibug68()
        identity, expression, rotation, translation = estimate.numpy_pose()
        projected68 = self.projector68.project(
            landmarks68, identity=identity, expression=expression, rotation=rotation, translation=translation,
            camera=estimate.camera,
        ).astype(np.float64)  # fmt: skip
        overlay = landmarks_image = depth = normals_image = None
        if opts.render_images:
            with timed(timings, "images"):
                head = model.submesh("head")
                overlay, depth, normals_image = _pictures(photo, geometry.camera, geometry.camera_vertices, head.triangles)
                landmarks_image = _landmarks_picture(image, landmarks68, projected68)
        error = float(np.median(np.linalg.norm(projected68 - landmarks68, axis=1)))
        return Diagnostics(rendered, face_mask, photometric_error, projected68, error, overlay, landmarks_image, depth, normals_image)

    def _reconstruction(self, name: str, face_index: int, detection: Detection, estimate: FaceEstimate,
                        geometry: FaceGeometry, albedo: AlbedoResult, texture: TextureResult,
                        details: DetailResult | None, diagnostics: Diagnostics, focal_35mm: float | None,
                        stages: list[str], timings: dict[str, float],
                        losses: dict[str, dict[str, float]]) -> Reconstruction:  # fmt: skip
        """The NumPy record of one face that the files are written from."""
        identity, expression, rotation, translation = estimate.numpy_pose()
        camera = estimate.camera
        return Reconstruction(
            image_name=name,
            face_index=face_index,
            detection=detection,
            camera=PhotoCamera(image_size=(camera.height, camera.width),
                               intrinsics=(estimate.focal, float(camera.fy[0]), *estimate.principal_point),
                               focal_source="exif" if focal_35mm else "default"),
            pose=HeadPose(rotation=rotation, translation=translation,
                          angles_deg=np.degrees(camera_rotation_to_head_angles(estimate.rotation.double()).numpy())),
            coefficients=FaceCoefficients(identity=identity, expression=expression,
                                          expression_names=self.model.expression_names,
                                          sh=None if estimate.sh is None else estimate.sh.double().numpy()),
            mesh=FittedMesh(vertices=geometry.vertices[0].double().numpy(),
                            triangles=self.model.submesh("head").triangles.numpy(), submesh="head",
                            albedo=albedo.albedo.double().numpy(), export_mesh=texture.export_mesh),
            textures=FaceTextures(texture=texture.texture, albedo=texture.albedo_texture,
                                  displacement=None if details is None else details.displacement,
                                  normal_map=None if details is None else details.normal_map,
                                  detailed_mesh=None if details is None else details.mesh),
            fit=FitReport(landmarks68=diagnostics.landmarks68, landmark_error_px=diagnostics.landmark_error_px,
                          photometric_error=diagnostics.photometric_error, stages=tuple(stages),
                          timings_ms={k: round(v, 2) for k, v in timings.items()}, losses=losses),
            pictures=FacePictures(overlay=diagnostics.overlay, landmarks_image=diagnostics.landmarks_image,
                                  depth=diagnostics.depth, normals_image=diagnostics.normals_image,
                                  rendered=diagnostics.rendered, face_mask=diagnostics.face_mask),
        )  # fmt: skip

    # ---------------------------------------------------------------------------------------------
    def _complete_albedo(self, albedo_fit: torch.Tensor | None, skin_rgb: np.ndarray) -> torch.Tensor:
        """``(V_head, 3)`` albedo: fitted where fitted, nearest fitted vertex on the rest of the face area,
        the skin colour on the back of the head, flat colours inside the mouth and on the eyes."""
        model = self.model
        head_n = model.submesh("head").vertex_count
        face_n = model.submesh("face").vertex_count
        skin = torch.tensor(skin_rgb, dtype=torch.float32)
        albedo = skin.expand(head_n, 3).clone()
        if albedo_fit is not None:
            albedo[:face_n] = albedo_fit[self._nearest_estimated(len(albedo_fit))]
            albedo[: len(albedo_fit)] = albedo_fit
        labels = model.region_labels[:head_n]
        albedo[labels == Region.MOUTH_INTERIOR] = torch.tensor([0.42, 0.16, 0.16])
        albedo[labels == Region.EYEBALLS] = torch.tensor([0.86, 0.84, 0.80])
        return albedo

    def _nearest_estimated(self, count: int) -> torch.Tensor:
        """``(V_face,)`` int64: for each face vertex, the nearest of the first ``count`` vertices (an estimate's
        albedo region) on the mean face."""
        if count not in self._nearest:
            mean = self.model.mean.cpu().numpy()
            face_n = self.model.submesh("face").vertex_count
            self._nearest[count] = torch.from_numpy(cKDTree(mean[:count]).query(mean[:face_n])[1])
        return self._nearest[count]


def export_mesh(model: FaceModel, layout: ExportLayout, vertices: torch.Tensor, expression: torch.Tensor,
                texture: np.ndarray) -> Mesh:  # fmt: skip
    """The head mesh ``vertices (V_head, 3)`` mm with the export UVs of ``layout``, the export ``texture``, and the
    expressions as morph targets at the weights ``expression (K_exp,)``."""
    base = model.to_mesh(vertices, submesh="head", expression=expression)
    uvs = layout.uvs.astype(np.float64)
    colours = _vertex_colours(texture, uvs, layout.uv_triangles, base.faces, len(base.vertices))
    return Mesh(
        vertices=base.vertices,
        faces=base.faces,
        uvs=uvs,
        uv_faces=layout.uv_triangles,
        texture=texture,
        vertex_colors=colours,
        morph_names=base.morph_names,
        morph_deltas=base.morph_deltas,
        morph_weights=base.morph_weights,
        name="face",
    )


def reconstruct(
    image: str | os.PathLike[str] | np.ndarray,
    *,
    stages: str = "all",
    faces: str = "all",
    model: FaceModel | None = None,
    options: ReconstructOptions | None = None,
) -> list[Reconstruction]:
    """Reconstruct every face of a photo (largest first).

    Args:
        image: a file path or an ``(H, W, 3)`` RGB array.
        stages: ``"landmarks"``, ``"photometric"`` or ``"all"``.
        faces: ``"all"`` or ``"largest"``.
        model: the face model (default: :func:`facerecon.load_model`).
        options: full settings (``stages`` and ``faces`` override its fields).

    Returns:
        A list of :class:`Reconstruction` (each has ``.save(directory)``).

    Raises:
        ImageReadError: the image cannot be read.
        NoFaceError: no face (of at least ``min_face_px``) in the image.
    """
    opts = replace(options or ReconstructOptions(), stages=stages, faces=faces)
    with Reconstructor(model, opts) as rec:
        return list(rec.run(image).reconstructions)


# ------------------------------------------------------------------------------------------------- helpers
def photo_camera(image: np.ndarray, focal_35mm: float | None = None, default_focal_35mm: float = 50.0) -> PerspectiveCamera:
    """A photo's camera: centred, square pixels, the EXIF 35 mm focal length or ``default_focal_35mm`` (float64,
    so the focal length in px is exact)."""
    height, width = image.shape[:2]
    return sized_camera(width, height, focal_35mm, default_focal_35mm)


def sized_camera(width: int, height: int, focal_35mm: float | None = None,
                 default_focal_35mm: float = 50.0) -> PerspectiveCamera:  # fmt: skip
    """:func:`photo_camera` of a ``width x height`` px picture (e.g. a video's frames), known by its size alone."""
    focal = focal_px_from_35mm(focal_35mm or default_focal_35mm, width, height)
    return PerspectiveCamera.from_focal(focal, width, height, dtype=torch.float64)


def _make_estimator(model: FaceModel, options: ReconstructOptions) -> Estimator:
    """The estimator ``options.method`` with its options (the fit's from the stage settings)."""
    if options.method == "fit":
        return create_estimator("fit", model, photometric=options.stages in ("photometric", "all"),
                                max_fit_side=options.max_fit_side, landmark=options.landmark,
                                photometric_stage=options.photometric,
                                **{"start": options.start, **options.method_options})  # fmt: skip
    return create_estimator(options.method, model, **options.method_options)
def _refine_albedo(
    photo: torch.Tensor, screen: torch.Tensor, normals: torch.Tensor, albedo: torch.Tensor, sh: torch.Tensor, use: torch.Tensor
) -> torch.Tensor:
    """Paper 001's albedo refinement: blend the coarse albedo with photo / shading where the photo is reliable."""
    from facerecon.render.sample import sample_image
    from facerecon.render.sh import irradiance

    observed = sample_image(photo[None], screen[..., :2])[0]
    shading = irradiance(normals, sh[None])[0].clamp_min(0.05)
    ratio = (observed / shading).clamp(0.0, 1.0)
    refined = ALBEDO_BLEND_BETA * albedo + (1.0 - ALBEDO_BLEND_BETA) * ratio
    return torch.where(use[:, None], refined, albedo)


def _skin_colour(model: FaceModel, photo: torch.Tensor, screen: torch.Tensor, fit_n: int, albedo: torch.Tensor | None) -> np.ndarray:
    """The mean skin albedo (or, without one, the median photo colour at the skin-mask vertices)."""
    skin = model.skin_mask[:fit_n]
    if albedo is not None:
        return albedo[skin].mean(0).clamp(0, 1).numpy()
    from facerecon.render.sample import sample_image

    colours = sample_image(photo[None], screen[:, :fit_n, :2])[0][skin]
    return colours.median(0).values.clamp(0, 1).numpy()


def _vertex_colours(texture: np.ndarray, uvs: np.ndarray, uv_faces: np.ndarray, faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """``(V, 3)`` uint8: the texture at each vertex's (first) UV."""
    first_uv = np.zeros(n_vertices, dtype=np.int64)
    first_uv[faces.ravel()[::-1]] = uv_faces.ravel()[::-1]
    size = texture.shape[0]
    cols = np.clip(np.round(uvs[first_uv, 0] * size - 0.5), 0, size - 1).astype(int)
    rows = np.clip(np.round((1.0 - uvs[first_uv, 1]) * size - 0.5), 0, size - 1).astype(int)
    return texture[rows, cols]


def _pictures(photo: torch.Tensor, camera: PerspectiveCamera, cam: torch.Tensor, triangles: torch.Tensor):
    """Overlay (grey-shaded mesh over the photo), depth (mm, 0 = background) and a normal map picture."""
    from facerecon.render.interpolate import interpolate

    normals = vertex_normals(cam, triangles)
    grey = torch.full((cam.shape[1], 3), 0.75, dtype=cam.dtype)
    out = render_scene(Scene(cam, triangles, camera, albedo=grey, sh=display_light(1), normals=normals))
    overlay = composite(out.image, out.coverage, photo[None], opacity=0.8)
    depth = (out.fragments.depth * out.fragments.mask)[0].numpy()
    pixel_normals = torch.nn.functional.normalize(interpolate(normals, triangles, out.fragments), dim=-1, eps=1e-12)
    normals_rgb = normals_to_rgb(pixel_normals.permute(0, 3, 1, 2), out.coverage)
    return to_uint8(overlay)[0], depth, to_uint8(normals_rgb)[0]


def _render_face(
    photo: torch.Tensor,
    camera: PerspectiveCamera,
    cam: torch.Tensor,
    triangles: torch.Tensor,
    albedo: torch.Tensor,
    sh: torch.Tensor | None,
    unoccluded: torch.Tensor,
) -> tuple[np.ndarray, np.ndarray]:
    """The fitted face (albedo under the fitted light) rendered over the photo's pixels, and the mask of its
    pixels that show the face itself (covered by the mesh, not by an occluder the fit found: hair, hands...)."""
    from facerecon.render.interpolate import interpolate
    from facerecon.render.sh import ambient_sh

    light = sh[None] if sh is not None else ambient_sh(1.0, batch_size=1)
    out = render_scene(Scene(cam, triangles, camera, albedo=albedo[None], sh=light))
    rendered = out.image[0].clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float32)
    clean = interpolate(unoccluded.float()[:, None], triangles, out.fragments)[0, ..., 0]
    mask = (out.coverage[0, 0] > 0.5) & (clean > 0.5)
    return rendered, mask.numpy()


def _pixel_photometric_error(photo: torch.Tensor, rendered: np.ndarray, mask: np.ndarray) -> float:
    """Paper 004 sec. 7.2: the mean RGB distance (channels in [0, 1]) over the face's visible pixels."""
    if not mask.any():
        return float("nan")
    diff = photo.permute(1, 2, 0).numpy()[mask] - rendered[mask]
    return float(np.linalg.norm(diff, axis=1).mean())


def _landmarks_picture(image: np.ndarray, detected: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """The photo with the detected 68 landmarks (green) and the fitted model's 68 (red), joined by lines."""
    out = image.copy()
    radius = max(1, int(round(max(image.shape[:2]) / 400)))
    for (x0, y0), (x1, y1) in zip(detected, fitted):
        cv2.line(out, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), (255, 255, 0), 1, cv2.LINE_AA)
    for x, y in detected:
        cv2.circle(out, (int(round(x)), int(round(y))), radius + 1, (0, 220, 0), -1, cv2.LINE_AA)
    for x, y in fitted:
        cv2.circle(out, (int(round(x)), int(round(y))), radius, (230, 0, 0), -1, cv2.LINE_AA)
    return out
