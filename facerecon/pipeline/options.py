"""What a reconstruction does: :class:`ReconstructOptions`, a plain frozen dataclass that imports no torch, so that
planning a batch (which compares options with an earlier run's) and a resumed run that finds everything done stay
light."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facerecon.core.check import check_choice
from facerecon.estimate.registry import FIT_STARTS, available_estimators
from facerecon.fit.config import LandmarkFitConfig, PhotometricConfig
from facerecon.texture.config import DetailConfig

__all__ = ["FACE_CHOICES", "STAGES", "ReconstructOptions"]

STAGES = ("landmarks", "photometric", "all")
FACE_CHOICES = ("all", "largest")


@dataclass(frozen=True)
class ReconstructOptions:
    """What :func:`reconstruct` does.

    Attributes:
        method: the estimator (:func:`facerecon.estimate.available_estimators`; ``"fit"``: the optimisation fit).
        start: where the fit starts (``"pnp"``, ``"regress"`` or ``"auto"``: from the regressor where it sees a
            large yaw; :class:`facerecon.estimate.fit.FitConfig`); the fit only.
        method_options: keyword options of the method (the fit takes ``stages``, ``max_fit_side``, ``landmark``
            and ``photometric`` from these options, and the rest of :class:`facerecon.estimate.fit.FitConfig`
            from here, e.g. ``{"start": "auto"}``).
        stages: ``"landmarks"`` (pose, shape, expression from landmarks), ``"photometric"`` (adds light, albedo
            and the dense photometric refinement) or ``"all"`` (adds the albedo refinement of paper 001).
        faces: ``"all"`` faces of the photo, largest first, or only the ``"largest"``.
        min_face_px: faces whose box is smaller (geometric mean of width and height) are reported and skipped.
        default_focal_35mm: the 35 mm-equivalent focal length assumed when the photo's EXIF has none (50 mm:
            a portrait lens; horizontal field of view ~40 degrees).
        max_fit_side: the photometric stage works on a copy whose long side is at most this (px).
        max_image_side: a photo file is read at a working size whose long side is at most this (px; None: full
            size): a JPEG decoded at 1/2, 1/4 or 1/8 by libjpeg, then area-averaged
            (:func:`facerecon.io.image.read_image_with_info`). The camera comes from the working size and the
            35 mm focal length, and every output in pixels (box, landmarks, intrinsics, ``image_size``, overlay,
            depth, rendered) is at the working size. 2048: the fit works at 1280 (boxes) and ``max_fit_side`` anyway,
            a face box of ~700 px already gives one photo pixel per texel of the 1024 texture (a face a third
            of the long side high), and a 108 MP photo peaks at ~1.6 GB through ``facerecon reconstruct`` (4096:
            ~2.9 GB, the full-size pictures and renders). Arrays passed to :meth:`Reconstructor.run` are used
            as they are.
        texture_size: texels per side of the face texture.
        landmark: settings of the landmark stage.
        photometric: settings of the photometric stage.
        render_images: also draw the overlay, landmarks, depth and normals pictures.
        torch_threads: torch threads, and BLAS threads of NumPy, while reconstructing one photo
            (:func:`facerecon.core.threads.compute_threads`: the same bits on any machine and engine); None leaves
            both settings alone.
        texture_completion: de-light the photo texture, complete the hidden side from its mirror image and a
            seamless fill, re-light it (:mod:`facerecon.texture.complete`); off: the photo blended with the
            fitted per-vertex colour, and no ``albedo.png``.
        details: estimate a displacement map by shape-from-shading (:mod:`facerecon.texture.details`; needs
            the photometric stage) and write ``displacement.png``, ``normal_map.png``, ``mesh_detailed.obj``.
        detail: settings of the details stage.
        detail_mesh_size: texels per side of the detailed mesh's grid.
    """

    method: str = "fit"
    method_options: dict[str, Any] = field(default_factory=dict)
    start: str = "auto"
    stages: str = "all"
    faces: str = "all"
    min_face_px: float = 48.0
    default_focal_35mm: float = 50.0
    max_fit_side: int = 1024
    max_image_side: int | None = 2048
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
        check_choice(self.method, "method", available_estimators())
        check_choice(self.start, "start", FIT_STARTS)
