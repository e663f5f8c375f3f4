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
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from facerecon.core.check import check_choice
from facerecon.core.errors import FitDivergedError, NoFaceError
from facerecon.core.threads import torch_threads
from facerecon.core.mesh import Mesh
from facerecon.detect.types import Detection
from facerecon.fit.landmarks import LandmarkFit, LandmarkFitConfig, LandmarkFitter, ibug68_targets, mediapipe478_targets
from facerecon.fit.photometric import PhotometricConfig, PhotometricFit, fit_photometric
from facerecon.geometry.camera import PerspectiveCamera, focal_px_from_35mm
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.geometry.rotation import camera_rotation_to_head_angles
from facerecon.io.image import read_image_with_info
from facerecon.models.face_model import FaceModel
from facerecon.models.regions import Region
from facerecon.pipeline.reconstruction import Reconstruction
from facerecon.render.images import composite, display_light, normals_to_rgb, render_images, to_uint8
from facerecon.render.sh import shade
from facerecon.texture.atlas import ExportLayout, export_layout, paint_patches
from facerecon.texture.details import DetailConfig, DetailEstimator
from facerecon.texture.photo import PhotoTextureBaker

STAGES = ("landmarks", "photometric", "all")
FACE_CHOICES = ("all", "largest")
# Where the details stage may put wrinkles: skin without hair (eyebrows), lips or ears.
DETAIL_REGIONS = (Region.FOREHEAD, Region.EYES, Region.NOSE, Region.CHEEKS, Region.CHIN_JAW)
# Paper 001 ("Inverse Rendering - Albedo"): refined albedo = beta * coarse + (1 - beta) * photo / shading.
ALBEDO_BLEND_BETA = 0.65


@dataclass(frozen=True)
class ReconstructOptions:
    """What :func:`reconstruct` does.

    Attributes:
        stages: ``"landmarks"`` (pose, shape, expression from landmarks), ``"photometric"`` (adds light, albedo
            and the dense photometric refinement) or ``"all"`` (adds the albedo refinement of paper 001).
        faces: ``"all"`` faces of the photo, largest first, or only the ``"largest"``.
        min_face_px: faces whose box is smaller (geometric mean of width and height) are reported and skipped.
        default_focal_35mm: the 35 mm-equivalent focal length assumed when the photo's EXIF has none (50 mm:
            a portrait lens; horizontal field of view ~40 degrees).
        max_fit_side: the photometric stage works on a copy whose long side is at most this (px).
        texture_size: texels per side of the face texture.
        landmark: settings of the landmark stage.
        photometric: settings of the photometric stage.
        render_images: also draw the overlay, landmarks, depth and normals pictures.
        torch_threads: torch threads while fitting one photo (see :mod:`facerecon.core.threads`); None leaves
            torch's setting alone.
        texture_completion: de-light the photo texture, complete the hidden side from its mirror image and a
            seamless fill, re-light it (:mod:`facerecon.texture.complete`); off: the photo blended with the
            fitted per-vertex colour, and no ``albedo.png``.
        details: estimate a displacement map by shape-from-shading (:mod:`facerecon.texture.details`; needs
            the photometric stage) and write ``displacement.png``, ``normal_map.png``, ``mesh_detailed.obj``.
        detail: settings of the details stage.
        detail_mesh_size: texels per side of the detailed mesh's grid.
    """

    stages: str = "all"
    faces: str = "all"
    min_face_px: float = 48.0
    default_focal_35mm: float = 50.0
    max_fit_side: int = 1024
    texture_size: int = 1024
    landmark: LandmarkFitConfig = field(default_factory=LandmarkFitConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)
    render_images: bool = True
    torch_threads: int | None = 1
    texture_completion: bool = True
    details: bool = True
    detail: DetailConfig = field(default_factory=DetailConfig)
    detail_mesh_size: int = 512

    def __post_init__(self) -> None:
        check_choice(self.stages, "stages", STAGES)
        check_choice(self.faces, "faces", FACE_CHOICES)


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


class Reconstructor:
    """Holds the model, the detector and the fitters for a batch of photos.

    Example:
        >>> with Reconstructor() as rec:                               # doctest: +SKIP
        ...     for path in paths:
        ...         result = rec.run(path)
    """

    def __init__(self, model: FaceModel | None = None, options: ReconstructOptions = ReconstructOptions(), detector=None) -> None:
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
        self.targets = ibug68_targets(model)
        self.fitter = LandmarkFitter(model, self.targets, options.landmark)
        # Dense MediaPipe landmarks once the model is calibrated for them (facerecon.calibrate).
        self.dense_fitter = (
            LandmarkFitter(model, mediapipe478_targets(model), options.landmark)
            if "mediapipe478" in model.landmark_scheme_names
            else None
        )
        self.layout: ExportLayout = export_layout(model, "head")
        face_sub = model.submesh("face")
        face_n = face_sub.vertex_count
        self.baker = PhotoTextureBaker(
            model.uvs, face_sub.uv_triangles, options.texture_size, triangles=face_sub.triangles, mirror=model.mirror[:face_n]
        )
        self._details: DetailEstimator | None = None
        fit_n = model.submesh(options.photometric.fit_region).vertex_count
        mean = model.mean.cpu().numpy()
        # For albedo outside the photometric region: the nearest fitted vertex on the mean face.
        self._nearest_fit = cKDTree(mean[:fit_n]).query(mean[:face_n])[1]

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
        if self._owns_detector:
            self.detector.close()

    def __enter__(self) -> Reconstructor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------
    def run(self, image: str | os.PathLike[str] | np.ndarray, name: str | None = None) -> ImageResult:
        """Reconstruct the faces of one photo.

        Raises:
            ImageReadError: the file cannot be read.
            NoFaceError: no face, or none of at least ``min_face_px``.
        """
        with torch_threads(self.options.torch_threads):
            return self._run(image, name)

    def _run(self, image: str | os.PathLike[str] | np.ndarray, name: str | None) -> ImageResult:
        focal_35 = None
        if isinstance(image, np.ndarray):
            from facerecon.io.image import as_rgb_uint8

            rgb = as_rgb_uint8(image)
            name = name or "image"
        else:
            info = read_image_with_info(image)
            rgb, focal_35 = info.image, info.focal_35mm
            name = name or Path(image).stem
        start = time.perf_counter()
        detections = self.detector.detect(rgb)
        detect_ms = (time.perf_counter() - start) * 1000
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
            try:
                rec = self.reconstruct_face(rgb, det, name=name, face_index=index, focal_35mm=focal_35)
            except FitDivergedError as err:
                skipped.append(SkippedFace(index, f"face {index}: {err}"))
                continue
            results.append(replace(rec, timings_ms={"detect": detect_ms / len(detections), **rec.timings_ms}))
        if not results and all("below" in s.reason for s in skipped):
            raise NoFaceError(f"{name}: no face of at least {self.options.min_face_px:.0f} px ({len(skipped)} smaller)")
        return ImageResult(name, tuple(results), tuple(skipped), detect_ms)

    def reconstruct_face(
        self,
        image: np.ndarray,
        detection: Detection,
        *,
        name: str = "image",
        face_index: int = 0,
        focal_35mm: float | None = None,
    ) -> Reconstruction:
        """Fit one detected face of ``image`` ``(H, W, 3)`` uint8."""
        model, opts = self.model, self.options
        height, width = image.shape[:2]
        timings: dict[str, float] = {}
        losses: dict[str, dict[str, float]] = {}
        focal_source = "exif" if focal_35mm else "default"
        focal = focal_px_from_35mm(focal_35mm or opts.default_focal_35mm, width, height)
        pp = ((width - 1) / 2.0, (height - 1) / 2.0)

        t = time.perf_counter()
        landmarks68 = detection.to_ibug68()
        fitter = self.dense_fitter if (self.dense_fitter is not None and detection.scheme == "mediapipe478") else self.fitter
        landmarks = fitter.targets.select(detection.landmarks) if fitter is self.dense_fitter else landmarks68
        confidence = np.clip(fitter.targets.select(detection.confidence[:, None])[:, 0] if fitter is self.dense_fitter
                             else (detection.confidence if detection.scheme == "ibug68" else np.full(68, detection.score)), 0, 1)  # fmt: skip
        lm_fit = fitter.fit(landmarks, focal=focal, principal_point=pp, confidence=confidence)
        timings["landmarks"] = (time.perf_counter() - t) * 1000
        losses["landmarks"] = {"energy": lm_fit.history[-1] if lm_fit.history else float("nan"),
                               "scheme": 478.0 if fitter is self.dense_fitter else 68.0}  # fmt: skip
        _check_finite_fit(lm_fit)
        stages = ["landmarks"]

        identity = torch.tensor(lm_fit.identity, dtype=torch.float32)
        expression = torch.tensor(lm_fit.expression, dtype=torch.float32)
        rotation = torch.tensor(lm_fit.rotation, dtype=torch.float32)
        translation = torch.tensor(lm_fit.translation, dtype=torch.float32)
        photo = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        sh: torch.Tensor | None = None
        fit_n = model.submesh(opts.photometric.fit_region).vertex_count
        albedo_fit: torch.Tensor | None = None
        photometric_error: float | None = None
        pfit: PhotometricFit | None = None
        if opts.stages in ("photometric", "all"):
            t = time.perf_counter()
            scale = min(1.0, opts.max_fit_side / max(height, width))
            small = photo
            if scale < 1.0:
                size = (max(int(round(width * scale)), 1), max(int(round(height * scale)), 1))
                small = torch.from_numpy(cv2.resize(image, size, interpolation=cv2.INTER_AREA)).permute(2, 0, 1).float() / 255.0
                scale = size[0] / width
            start = replace(lm_fit, focal=lm_fit.focal * scale)
            small_pp = ((pp[0] + 0.5) * scale - 0.5, (pp[1] + 0.5) * scale - 0.5)
            small_lm = (landmarks + 0.5) * scale - 0.5
            pfit = fit_photometric(model, small, start, small_lm, principal_point=small_pp, confidence=confidence, config=opts.photometric)
            timings["photometric"] = (time.perf_counter() - t) * 1000
            losses["photometric"] = pfit.losses
            identity, expression, rotation, translation = pfit.identity, pfit.expression, pfit.rotation, pfit.translation
            sh = pfit.sh
            albedo_fit = pfit.albedo
            photometric_error = pfit.photometric_error
            stages.append("photometric")

        # Geometry of the displayed head, in model and camera space, and its projection into the photo.
        verts = model(identity[None], expression[None], submesh="head")  # (1, V, 3)
        cam = verts @ rotation.T + translation
        if not torch.isfinite(cam).all():
            raise FitDivergedError("the fitted mesh has NaN or infinite vertices")
        camera = PerspectiveCamera(*(torch.tensor([v], dtype=cam.dtype) for v in (focal, focal, *pp)), width, height)
        screen = camera.project_with_depth(cam)
        face_sub = model.submesh("face")
        face_n = face_sub.vertex_count
        head_sub = model.submesh("head")

        # Albedo: paper 001's refinement, then completion from the fitted region to the whole head.
        normals_face = vertex_normals(cam[:, :face_n], face_sub.triangles)
        if albedo_fit is not None and opts.stages == "all" and pfit is not None:
            t = time.perf_counter()
            albedo_fit = _refine_albedo(photo, screen[:, :fit_n], normals_face[:, :fit_n], albedo_fit, sh, pfit.visible & ~pfit.occluded)
            timings["albedo"] = (time.perf_counter() - t) * 1000
            stages.append("albedo")
        skin_rgb = _skin_colour(model, photo, screen, fit_n, albedo_fit)
        albedo = self._complete_albedo(albedo_fit, skin_rgb)

        t = time.perf_counter()
        albedo_texture = completed = None
        if opts.texture_completion:
            unoccluded_face = torch.ones(face_n, dtype=torch.bool)
            if pfit is not None:
                unoccluded_face[:fit_n] = ~pfit.occluded
            completed = self.baker.complete(
                photo, screen[:, :face_n], cam[:, :face_n], face_sub.triangles, albedo[:face_n], sh, unoccluded=unoccluded_face
            )
            face_texture, albedo_texture = completed.texture, completed.albedo
        else:
            fallback = albedo[:face_n] if sh is None else shade(albedo[None, :face_n], normals_face, sh[None])[0].clamp(0, 1)
            face_texture = self.baker.bake(photo, screen[:, :face_n], cam[:, :face_n], face_sub.triangles, fallback).texture
        export_texture = paint_patches(face_texture, self.layout, skin_rgb)
        export_mesh = self._export_mesh(verts[0], expression, export_texture)
        timings["texture"] = (time.perf_counter() - t) * 1000

        detail = None
        if opts.details and sh is not None:
            t = time.perf_counter()
            if completed is None:
                completed = self.baker.complete(photo, screen[:, :face_n], cam[:, :face_n], face_sub.triangles, albedo[:face_n], sh)
            detail = self.detail_estimator.estimate(
                cam[:, :face_n], verts[:, :face_n], rotation, sh, completed.photo, completed.fitted, completed.weight,
                completed.normals, texture=export_texture,
            )  # fmt: skip
            losses["details"] = detail.details.energy
            timings["details"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        fit_sub = model.submesh(opts.photometric.fit_region)
        unoccluded = (~pfit.occluded) if pfit is not None else torch.ones(fit_n, dtype=torch.bool)
        rendered, face_mask = _render_face(photo, screen[:, :fit_n], cam[:, :fit_n], fit_sub.triangles, albedo[:fit_n], sh, unoccluded)
        if sh is not None:
            photometric_error = _pixel_photometric_error(photo, rendered, face_mask)
        timings["render"] = (time.perf_counter() - t) * 1000
        overlay = landmarks_image = depth = normals_image = None
        # The fitted model's 68 iBUG points, its jaw slid to the detected jaw (paper 004 sec. 6.1).
        projected68 = self.fitter.project(
            landmarks68, identity=identity.double().numpy(), expression=expression.double().numpy(),
            rotation=rotation.double().numpy(), translation=translation.double().numpy(), focal=focal, principal_point=pp,
        )  # fmt: skip
        if opts.render_images:
            t = time.perf_counter()
            overlay, depth, normals_image = _pictures(photo, screen, cam, head_sub.triangles)
            landmarks_image = _landmarks_picture(image, landmarks68, projected68)
            timings["images"] = (time.perf_counter() - t) * 1000
        angles = np.degrees(camera_rotation_to_head_angles(rotation.double()).numpy())
        return Reconstruction(
            image_name=name,
            face_index=face_index,
            detection=detection,
            image_size=(height, width),
            intrinsics=(float(focal), float(focal), float(pp[0]), float(pp[1])),
            focal_source=focal_source,
            identity=identity.double().numpy(),
            expression=expression.double().numpy(),
            expression_names=model.expression_names,
            rotation=rotation.double().numpy(),
            translation=translation.double().numpy(),
            angles_deg=angles,
            sh=None if sh is None else sh.double().numpy(),
            vertices=verts[0].double().numpy(),
            triangles=head_sub.triangles.numpy(),
            submesh="head",
            albedo=albedo.double().numpy(),
            texture=face_texture,
            export_mesh=export_mesh,
            landmarks68=projected68.astype(np.float64),
            landmark_error_px=float(np.median(np.linalg.norm(projected68 - landmarks68, axis=1))),
            photometric_error=photometric_error,
            stages=tuple(stages),
            timings_ms={k: round(v, 2) for k, v in timings.items()},
            losses=losses,
            overlay=overlay,
            landmarks_image=landmarks_image,
            depth=depth,
            normals_image=normals_image,
            rendered=rendered,
            face_mask=face_mask,
            albedo_texture=albedo_texture,
            displacement=None if detail is None else detail.displacement,
            normal_map=None if detail is None else detail.normal_map,
            detailed_mesh=None if detail is None else detail.mesh,
        )

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
            albedo[:face_n] = albedo_fit[torch.from_numpy(self._nearest_fit)]
            albedo[: len(albedo_fit)] = albedo_fit
        labels = model.region_labels[:head_n]
        albedo[labels == Region.MOUTH_INTERIOR] = torch.tensor([0.42, 0.16, 0.16])
        albedo[labels == Region.EYEBALLS] = torch.tensor([0.86, 0.84, 0.80])
        return albedo

    def _export_mesh(self, vertices: torch.Tensor, expression: torch.Tensor, texture: np.ndarray) -> Mesh:
        """The head mesh with the export UVs, the texture, and the expressions as morph targets."""
        base = self.model.to_mesh(vertices, submesh="head", expression=expression)
        uvs = self.layout.uvs.astype(np.float64)
        colours = _vertex_colours(texture, uvs, self.layout.uv_triangles, base.faces, len(base.vertices))
        return Mesh(
            vertices=base.vertices,
            faces=base.faces,
            uvs=uvs,
            uv_faces=self.layout.uv_triangles,
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
def _check_finite_fit(fit: LandmarkFit) -> None:
    values = np.concatenate([fit.identity, fit.expression, fit.rotation.ravel(), fit.translation])
    if not np.isfinite(values).all() or fit.translation[2] <= 0:
        raise FitDivergedError("the landmark fit diverged (non-finite parameters or a face behind the camera)")


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


def _pictures(photo: torch.Tensor, screen: torch.Tensor, cam: torch.Tensor, triangles: torch.Tensor):
    """Overlay (grey-shaded mesh over the photo), depth (mm, 0 = background) and a normal map picture."""
    _, height, width = photo.shape
    normals = vertex_normals(cam, triangles)
    images = render_images(screen, triangles, (height, width), normals=normals, sh_coeffs=display_light(1))
    overlay = composite(images.shaded.clamp(0, 1), images.mask, photo[None], opacity=0.8)
    depth = (images.depth * images.mask)[0, 0].numpy()
    normals_rgb = normals_to_rgb(images.normals, images.mask)
    return to_uint8(overlay)[0], depth, to_uint8(normals_rgb)[0]


def _render_face(
    photo: torch.Tensor,
    screen: torch.Tensor,
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

    _, height, width = photo.shape
    normals = vertex_normals(cam, triangles)
    light = sh[None] if sh is not None else ambient_sh(1.0, batch_size=1)
    images = render_images(screen, triangles, (height, width), normals=normals, albedo=albedo[None], sh_coeffs=light)
    rendered = images.shaded[0].clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float32)
    clean = interpolate(unoccluded.float()[:, None], triangles, images.fragments)[0, ..., 0]
    mask = (images.mask[0, 0] > 0.5) & (clean > 0.5)
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
