"""The scene renderer: camera-space meshes, a pinhole camera, albedo and SH light to images and coverage.

One function, :func:`render_scene`, draws a :class:`Scene` in the nvdiffrast / pytorch3d order, each step an
existing piece of :mod:`facerecon.render`:

1. **Project**: ``screen = camera.resized(W s, H s).project_with_depth(vertices)`` at the supersampled raster
   (``s = supersample``; the camera unchanged for ``s = 1``), in the vertices' dtype.
2. **Rasterize** (:func:`~facerecon.render.rasterize.rasterize`) the screen vertices cast to ``raster_dtype``:
   :class:`~facerecon.render.fragments.Fragments` at ``(H s, W s)``.
3. **Shade** (:func:`~facerecon.render.sh.shade`, ``C = albedo * S(n)``, clamped to [0, 1]) in the vertices'
   dtype, with vertex normals computed in ``raster_dtype`` (:func:`~facerecon.geometry.mesh_ops.vertex_normals`):

   * ``"vertex"`` (Gouraud): shade and clamp the vertices, interpolate the colours
     (:func:`~facerecon.render.interpolate.interpolate`). Cheap; enough for a landmark detector.
   * ``"pixel"``: interpolate albedo and normals, shade each pixel. With a :class:`UVTexture` the textured
     triangles take their albedo from the texture (bilinear, OpenCV ``remap``; not differentiable), the others
     from the interpolated per-vertex albedo. ``renormalize`` divides the interpolated normal by its length
     first (the SH shading normalises it again, so this changes results by rounding only; the synthetic
     benchmark's renders were made that way).

4. **Background and antialiasing**: a background *colour* fills the uncovered raster pixels before the
   ``s x s`` blocks are averaged; a background *image* (at the output size) is laid under the averaged image with
   its coverage, ``image + (1 - coverage) * background`` (in the wider dtype of the two). Blocks are averaged by ``torch`` ``avg_pool2d``
   (``downsample="pool"``: any device, differentiable) or OpenCV ``INTER_AREA`` (``"area"``: CPU, NumPy, weights in
   float32 even for float64 images); the two agree up to rounding. The image is clamped to [0, 1].

Images, coverage and fragments are in ``raster_dtype`` (default the vertices' dtype). The arithmetic order of
each step is fixed, so a given :class:`Scene` always gives the same bits: the calibration renders, the
synthetic benchmark (:mod:`facerecon.eval.synth`) and the pipeline's pictures are all drawn here.

With ``downsample="pool"``, no texture and ``supersample`` any, the image is differentiable with respect to the
albedo, the light, the normals and (through the barycentrics, when the vertices require gradients) the
vertices; silhouettes are not (the raster is piecewise constant).

Example:
    >>> import torch
    >>> from facerecon.geometry.camera import PerspectiveCamera
    >>> from facerecon.render.sh import ambient_sh
    >>> quad = torch.tensor([[[-10.0, -10.0, 100.0], [10.0, -10.0, 100.0], [10.0, 10.0, 100.0], [-10.0, 10.0, 100.0]]])
    >>> scene = Scene(quad, torch.tensor([[0, 1, 2], [0, 2, 3]]), PerspectiveCamera.from_focal(40.0, 16, 16),
    ...               albedo=torch.full((4, 3), 0.5), sh=ambient_sh(0.8))
    >>> out = render_scene(scene)
    >>> out.image.shape, round(float(out.image[0, 0, 8, 8]), 6)        # albedo 0.5 x shading 0.8
    (torch.Size([1, 3, 16, 16]), 0.4)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import cv2
import numpy as np
import torch

from facerecon.core.check import (
    check_choice,
    check_finite,
    check_floating,
    check_index_range,
    check_integer,
    check_shape,
    describe,
)
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.render.fragments import Fragments
from facerecon.render.interpolate import interpolate, interpolate_covered
from facerecon.render.rasterize import rasterize
from facerecon.render.sh import irradiance, shade

__all__ = ["DOWNSAMPLES", "SHADINGS", "RenderedScene", "Scene", "UVTexture", "render_scene"]

#: Shading modes of :class:`Scene`: per vertex (Gouraud) or per pixel.
SHADINGS: tuple[str, ...] = ("vertex", "pixel")
#: How supersampled blocks are averaged: torch ``avg_pool2d`` or OpenCV ``INTER_AREA``.
DOWNSAMPLES: tuple[str, ...] = ("pool", "area")
_RASTER_DTYPES = (torch.float32, torch.float64)


def _tensor(value: object, name: str, spec: tuple) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape {spec}, got {describe(value)}")
    return value


def _check_data(value: object, name: str, spec: tuple, sizes: dict[str, int]) -> torch.Tensor:
    """A floating, finite tensor of shape ``spec`` (sizes bound in ``sizes``)."""
    value = _tensor(value, name, spec)
    check_shape(value, name, spec, sizes)
    check_floating(value, name)
    check_finite(value, name)
    return value


def _check_batch_or_shared(value: object, name: str, tail: tuple, sizes: dict[str, int]) -> None:
    """``("B", *tail)`` or ``tail`` (shared by the batch)."""
    value = _tensor(value, name, ("B", *tail))
    spec = tail if value.dim() == len(tail) else ("B", *tail)
    _check_data(value, name, spec, sizes)


@dataclass(frozen=True, eq=False)
class UVTexture:
    """An RGB albedo texture mapped onto some of a scene's triangles.

    Texel convention of :mod:`facerecon.render.uv`: row 0 is ``v = 1``, texel centres at
    ``(u S - 0.5, (1 - v) S - 0.5)``.

    Attributes:
        image: ``(S_h, S_w, 3)`` (shared) or ``(B, S_h, S_w, 3)`` float RGB albedo in [0, 1] (float32 for OpenCV).
        uvs: ``(T, 2)`` floating texture coordinates ``(u, v)`` in [0, 1].
        uv_triangles: ``(F, 3)`` int64 indices into ``uvs`` for the corners of every triangle of the scene (rows
            of untextured triangles are not read but must be valid indices, e.g. 0).
        textured: ``(F,)`` bool, the triangles whose albedo comes from the texture.

    Raises:
        TypeError / ValueError: other kinds, shapes or dtypes, NaN, indices out of range.
    """

    image: torch.Tensor
    uvs: torch.Tensor
    uv_triangles: torch.Tensor
    textured: torch.Tensor

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        _check_batch_or_shared(self.image, "texture.image", ("S_h", "S_w", 3), sizes)
        _check_data(self.uvs, "texture.uvs", ("T", 2), sizes)
        _tensor(self.uv_triangles, "texture.uv_triangles", ("F", 3))
        check_shape(self.uv_triangles, "texture.uv_triangles", ("F", 3), sizes)
        check_integer(self.uv_triangles, "texture.uv_triangles")
        check_index_range(self.uv_triangles, "texture.uv_triangles", sizes["T"])
        _tensor(self.textured, "texture.textured", ("F",))
        check_shape(self.textured, "texture.textured", ("F",), sizes)
        if self.textured.dtype != torch.bool:
            raise TypeError(f"texture.textured: expected a bool tensor of shape (F,), got {describe(self.textured)}")

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> UVTexture:
        """A copy on ``device`` with the image and UVs cast to ``dtype``."""
        return UVTexture(self.image.to(device=device, dtype=dtype), self.uvs.to(device=device, dtype=dtype),
                         self.uv_triangles.to(device), self.textured.to(device))  # fmt: skip


@dataclass(frozen=True, eq=False)
class Scene:
    """What :func:`render_scene` draws (see the module docstring for the steps).

    Attributes:
        vertices: ``(B, V, 3)`` camera-space vertices, mm (OpenCV axes: x right, y down, z forward).
        triangles: ``(F, 3)`` int64, counter-clockwise seen from outside; both windings are drawn.
        camera: a :class:`~facerecon.geometry.camera.PerspectiveCamera` for the *output* image (``width x
            height``), batch ``B`` or 1, in the vertices' dtype.
        albedo: ``(B, V, 3)`` or ``(V, 3)`` per-vertex RGB albedo in [0, 1].
        sh: ``(B, 9, 3)`` SH radiance coefficients of the light, camera space (:mod:`facerecon.render.sh`).
        texture: a :class:`UVTexture` for some triangles (``shading="pixel"`` only), or None.
        normals: ``(B, V, 3)`` camera-space vertex normals to shade with (default: the area-weighted normals of
            the vertices, computed in ``raster_dtype``).
        shading: ``"vertex"`` or ``"pixel"``.
        renormalize: divide interpolated normals by their length before shading (``"pixel"``; rounding only).
        background: None (black), a ``(3,)`` RGB colour, or a ``(B, 3, H, W)`` image at the output size.
        supersample: rasterize at this factor (a positive int) and average ``s x s`` blocks.
        downsample: ``"pool"`` or ``"area"`` (see :data:`DOWNSAMPLES`).
        raster_dtype: float32 or float64 for rasterization, vertex normals and the images (default: the
            vertices' dtype).

    Raises:
        TypeError / ValueError: naming the field, on other kinds, shapes, dtypes or values (NaN, an unknown mode,
        a bad supersample factor, a texture with vertex shading).
    """

    vertices: torch.Tensor
    triangles: torch.Tensor
    camera: PerspectiveCamera
    albedo: torch.Tensor
    sh: torch.Tensor
    texture: UVTexture | None = None
    normals: torch.Tensor | None = None
    shading: str = "pixel"
    renormalize: bool = False
    background: torch.Tensor | None = None
    supersample: int = 1
    downsample: str = "pool"
    raster_dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        _check_data(self.vertices, "vertices", ("B", "V", 3), sizes)
        _tensor(self.triangles, "triangles", ("F", 3))
        check_shape(self.triangles, "triangles", ("F", 3), sizes)
        check_integer(self.triangles, "triangles")
        check_index_range(self.triangles, "triangles", sizes["V"])
        if not isinstance(self.camera, PerspectiveCamera):
            raise TypeError(f"camera: expected a PerspectiveCamera, got {describe(self.camera)}")
        if self.camera.batch_size not in (1, sizes["B"]):
            raise ValueError(f"camera: expected batch size 1 or {sizes['B']} (the vertices'), got {self.camera.batch_size}")
        if self.camera.dtype != self.vertices.dtype:
            raise TypeError(f"camera: expected dtype {self.vertices.dtype} (the vertices'), got {self.camera.dtype}")
        _check_batch_or_shared(self.albedo, "albedo", ("V", 3), sizes)
        _check_data(self.sh, "sh", ("B", 9, 3), sizes)
        if self.normals is not None:
            _check_data(self.normals, "normals", ("B", "V", 3), sizes)
        check_choice(self.shading, "shading", SHADINGS)
        check_choice(self.downsample, "downsample", DOWNSAMPLES)
        if not isinstance(self.renormalize, bool):
            raise TypeError(f"renormalize: expected a bool, got {describe(self.renormalize)}")
        if self.texture is not None:
            if not isinstance(self.texture, UVTexture):
                raise TypeError(f"texture: expected a UVTexture or None, got {describe(self.texture)}")
            if self.shading != "pixel":
                raise ValueError(f"texture: needs shading='pixel', got shading={self.shading!r}")
            if self.texture.textured.shape[0] != sizes["F"]:
                raise ValueError(f"texture: expected {sizes['F']} triangles (the scene's), got {self.texture.textured.shape[0]}")
            if self.texture.image.dim() == 4 and self.texture.image.shape[0] != sizes["B"]:
                raise ValueError(f"texture.image: expected batch size {sizes['B']}, got {describe(self.texture.image)}")
        if self.background is not None:
            bg = _tensor(self.background, "background", "(3,) or (B, 3, H, W)")
            spec = (3,) if bg.dim() == 1 else ("B", 3, self.camera.height, self.camera.width)
            _check_data(bg, "background", spec, sizes)
        s = self.supersample
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"supersample: expected a positive int, got {describe(s)}")
        if s < 1:
            raise ValueError(f"supersample: expected a positive int, got {s}")
        if self.raster_dtype is not None and self.raster_dtype not in _RASTER_DTYPES:
            raise TypeError(f"raster_dtype: expected torch.float32, torch.float64 or None, got {self.raster_dtype!r}")

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.vertices.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the output image, pixels."""
        return self.camera.height, self.camera.width

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Scene:
        """A copy with every tensor on ``device`` and the floating ones (camera included) cast to ``dtype``."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            elif isinstance(value, (PerspectiveCamera, UVTexture)):
                changes[f.name] = value.to(device=device, dtype=dtype)
        return replace(self, **changes)


@dataclass(frozen=True)
class RenderedScene:
    """What :func:`render_scene` returns; images ``(B, C, H, W)`` at the output size, in ``raster_dtype``.

    Attributes:
        image: ``(B, 3, H, W)`` RGB in [0, 1].
        coverage: ``(B, 1, H, W)`` the share of each pixel covered by the mesh, in [0, 1].
        texture_coverage: ``(B, 1, H, W)`` the share covered by textured triangles (0 without a texture).
        fragments: the rasterization at ``(H s, W s)`` (``face_index`` indexes the scene's triangles).
        screen: ``(B, V, 3)`` ``(u px, v px, z mm)`` of the vertices at the raster resolution, vertices' dtype.
        supersample: ``s``: raster pixel ``u_r + 0.5 = s (u + 0.5)``.
    """

    image: torch.Tensor
    coverage: torch.Tensor
    texture_coverage: torch.Tensor
    fragments: Fragments
    screen: torch.Tensor
    supersample: int


def _sample_texture(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples ``(N, C)`` of a UV image ``(S_h, S_w, C)`` (row 0 is v = 1) at ``uv`` ``(N, 2)``."""
    height, width = image.shape[:2]
    n = len(uv)
    rows_needed = max(-(-n // 1024), 1)  # cv2.remap maps must stay below 32767 on each side: lay out 1024 wide
    col = np.zeros(rows_needed * 1024, np.float32)
    row = np.zeros(rows_needed * 1024, np.float32)
    col[:n] = uv[:, 0] * width - 0.5
    row[:n] = (1.0 - uv[:, 1]) * height - 0.5
    out = cv2.remap(image, col.reshape(rows_needed, 1024), row.reshape(rows_needed, 1024), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out.reshape(rows_needed * 1024, -1)[:n]


def _pixel_albedo(scene: Scene, fragments: Fragments, batch_of: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(N, 3)`` albedo of the covered pixels (row-major over the batch; ``batch_of`` their item): interpolated,
    or on textured triangles the texture's."""
    albedo = interpolate_covered(scene.albedo.to(dtype), scene.triangles, fragments)
    tex = scene.texture
    if tex is None:
        return albedo
    on_texture = tex.textured.to(fragments.face_index.device)[fragments.face_index[fragments.mask]]
    if not bool(on_texture.any()):
        return albedo
    uv = interpolate_covered(tex.uvs.to(dtype), tex.uv_triangles, fragments)
    image = tex.image.detach().cpu().numpy()
    albedo = albedo.clone()
    for b in range(scene.batch_size):
        sel = on_texture & (batch_of == b)
        if bool(sel.any()):
            texels = _sample_texture(image if image.ndim == 3 else image[b], uv[sel].detach().cpu().numpy())
            albedo[sel] = torch.from_numpy(texels).to(device=albedo.device, dtype=dtype)
    return albedo


def _shade_pixels(scene: Scene, fragments: Fragments, normals: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(N, 3)`` clamped colours of the covered pixels, shaded per pixel."""
    batch_of = torch.nonzero(fragments.mask)[:, 0]
    albedo = _pixel_albedo(scene, fragments, batch_of, dtype)
    nrm = interpolate_covered(normals, scene.triangles, fragments)
    if scene.renormalize:
        nrm = nrm / torch.linalg.vector_norm(nrm, dim=-1, keepdim=True).clamp_min(1e-12)
    sh = scene.sh.to(dtype)
    pieces = []
    for b in range(scene.batch_size):
        sel = batch_of == b
        pieces.append(albedo[sel] * irradiance(nrm[sel][None], sh[b : b + 1])[0])
    return torch.cat(pieces).clamp(0.0, 1.0)


def _downsample(image: torch.Tensor, s: int, how: str) -> torch.Tensor:
    """``(B, H s, W s, C)`` to ``(B, H, W, C)``: the mean of each ``s x s`` block."""
    if how == "pool":
        return torch.nn.functional.avg_pool2d(image.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1)
    height, width = image.shape[1] // s, image.shape[2] // s
    channels = image.shape[3]
    out = []
    for item in image.detach().cpu().numpy():
        small = cv2.resize(item if channels > 1 else item[..., 0], (width, height), interpolation=cv2.INTER_AREA)
        out.append(small.reshape(height, width, channels))
    return torch.from_numpy(np.stack(out)).to(image.device)


def render_scene(scene: Scene) -> RenderedScene:
    """Render a :class:`Scene`: project, rasterize, shade, lay over the background, average the supersamples.

    Args:
        scene: the meshes, camera, albedo, light and options.

    Returns:
        A :class:`RenderedScene`: ``image (B, 3, H, W)`` in [0, 1], ``coverage`` and ``texture_coverage``
        ``(B, 1, H, W)``, the raster's ``fragments`` and ``screen`` vertices.

    Raises:
        TypeError: ``scene`` is not a :class:`Scene` (its fields are checked when it is made).

    Example:
        >>> out = render_scene(Scene(vertices, triangles, camera, albedo=albedo, sh=sh, supersample=2))  # doctest: +SKIP
        >>> out.fragments.image_size == (2 * camera.height, 2 * camera.width)                            # doctest: +SKIP
        True
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene: expected a Scene, got {describe(scene)}")
    s = scene.supersample
    height, width = scene.image_size
    dtype = scene.vertices.dtype
    raster_dtype = scene.raster_dtype or dtype
    camera = scene.camera if s == 1 else scene.camera.resized(width * s, height * s)
    screen = camera.project_with_depth(scene.vertices)
    fragments = rasterize(screen.to(raster_dtype), scene.triangles, (height * s, width * s))
    normals = scene.normals
    if normals is None:
        normals = vertex_normals(scene.vertices.to(raster_dtype), scene.triangles)
    normals = normals.to(dtype)
    mask = fragments.mask
    batch = scene.batch_size
    if scene.shading == "vertex":
        albedo = scene.albedo.to(dtype).expand(batch, -1, -1).contiguous()
        colours = shade(albedo, normals, scene.sh.to(dtype)).clamp(0.0, 1.0)
        image = interpolate(colours, scene.triangles, fragments).to(raster_dtype)
    else:
        image = torch.zeros(batch, height * s, width * s, 3, dtype=raster_dtype, device=screen.device)
        image[mask] = _shade_pixels(scene, fragments, normals, dtype).to(raster_dtype)
    coverage = mask[..., None].to(raster_dtype)
    if scene.texture is None:
        texture_coverage = torch.zeros_like(coverage)
    else:
        textured = scene.texture.textured.to(mask.device)[fragments.face_index.clamp_min(0)] & mask
        texture_coverage = textured[..., None].to(raster_dtype)
    background = scene.background
    if background is not None and background.dim() == 1:  # a colour: fill the raster before averaging
        image = torch.where(mask[..., None], image, background.to(device=image.device, dtype=raster_dtype))
    if s > 1:
        image = _downsample(image, s, scene.downsample)
        coverage = _downsample(coverage, s, scene.downsample)
        texture_coverage = _downsample(texture_coverage, s, scene.downsample)
    image, coverage, texture_coverage = (x.permute(0, 3, 1, 2) for x in (image, coverage, texture_coverage))
    if background is not None and background.dim() == 4:  # an image at the output size: under the coverage
        image = image + (1.0 - coverage) * background.to(image.device)  # in the wider dtype of the two
    return RenderedScene(
        image=image.clamp(0.0, 1.0).to(raster_dtype),
        coverage=coverage,
        texture_coverage=texture_coverage,
        fragments=fragments,
        screen=screen,
        supersample=s,
    )
