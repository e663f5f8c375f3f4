"""Robust image input: any common photo file (or array) to one ``(H, W, 3)`` uint8 RGB array.

What :func:`read_image` does to a file, in order:

1. Opens it with Pillow (JPEG, PNG, WebP, BMP, TIFF, and whatever else Pillow decodes, e.g. GIF, AVIF);
   HEIC/HEIF, which Pillow cannot decode, gets its own message.
2. Checks its size from the header, before decoding: more than ``max_pixels`` pixels (default
   :data:`DEFAULT_MAX_PIXELS`, 50 megapixels plus a 20 % margin) is an error naming both numbers.
   Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) also becomes that error; this
   module never changes Pillow's global setting.
3. Decodes it fully (Pillow loads lazily: a truncated file would otherwise go unnoticed), without ever
   setting ``ImageFile.LOAD_TRUNCATED_IMAGES``.
4. Converts to 8-bit RGB: grayscale is repeated in the three channels; 16-bit samples are scaled as
   ``round(v * 255 / 65535)`` (16-bit colour PNG/TIFF is decoded with OpenCV because Pillow keeps only the
   high byte); CMYK and palette images are converted by Pillow (CMYK without colour management: an embedded
   ICC profile is not applied); **transparency is composited on white** (a transparent background then looks
   like paper, not like a black hole a face detector could trip on).
5. Applies the EXIF orientation (Pillow's ``ImageOps.exif_transpose``), so the array is upright as a
   viewer shows it.

Every user-fixable failure raises :class:`facerecon.core.errors.ImageReadError` with one line that names
the file. Large photos are meant to be detected on a smaller copy: :func:`downscale_for_detection` and
:func:`points_to_original`.

Example:
    >>> image = read_image("photo.jpg")                       # doctest: +SKIP
    >>> small, scale = downscale_for_detection(image, 1280)   # doctest: +SKIP
    >>> landmarks = points_to_original(detect(small), scale)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from facerecon.core.check import check_positive, check_range, describe
from facerecon.core.errors import ImageReadError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageInfo",
    "as_rgb_uint8",
    "downscale_for_detection",
    "points_to_original",
    "read_image",
    "read_image_with_info",
]

#: The default pixel limit: 50 megapixels plus a 20 % margin (a "50 MP" camera may give 8688 x 5792).
DEFAULT_MAX_PIXELS = 60_000_000

_EXIF_ORIENTATION = 0x0112  # IFD0 Orientation (EXIF 2.32, table 4)
_EXIF_IFD = 0x8769  # pointer to the Exif sub-IFD
_EXIF_FOCAL_35MM = 0xA405  # FocalLengthIn35mmFilm, in the Exif sub-IFD (mm, SHORT)

# Pillow's transposition for each EXIF orientation, the table ImageOps.exif_transpose uses.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_SUPPORTED = "JPEG, PNG, WebP, BMP or TIFF"


@dataclass(frozen=True)
class ImageInfo:
    """An image read from a file, with what was learnt on the way.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, upright (EXIF orientation applied), transparency on white.
        original_size: ``(height, width)`` in pixels as stored in the file, before the EXIF orientation
            (equal to ``image.shape[:2]`` or its transpose).
        orientation: the EXIF orientation that was applied, 1 (none) to 8.
        focal_35mm: the EXIF ``FocalLengthIn35mmFilm`` in mm (the focal length a 36 x 24 mm frame would
            need for the same field of view), or None when the file does not record it.
        path: the file that was read.
    """

    image: np.ndarray
    original_size: tuple[int, int]
    orientation: int
    focal_35mm: float | None
    path: Path


def _fail(path: Path, what: str) -> ImageReadError:
    # One line, always: Pillow's messages sometimes carry newlines.
    return ImageReadError(f"{path}: {' '.join(what.split())}")


def _check_max_pixels(max_pixels: int) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int):
        raise TypeError(f"max_pixels: expected a positive int, got {describe(max_pixels)}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels: expected a positive int, got {max_pixels}")


def _too_large(label: Path | str, width: int, height: int, limit: int, whose: str = "") -> ImageReadError:
    return ImageReadError(
        f"{label}: image is {width} x {height} = {width * height / 1e6:.1f} megapixels, above the limit of "
        f"{limit:,} pixels ({limit / 1e6:.1f} megapixels){whose}; downscale it first or raise max_pixels"
    )


def _sniff_unsupported(head: bytes) -> str | None:
    """Name formats Pillow cannot decode but a user may well hand us, from the first bytes."""
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
        return "HEIC/HEIF images are not supported; convert it to JPEG or PNG"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return f"SVG/XML is not a supported image format (expected {_SUPPORTED})"
    if head.startswith(b"%PDF"):
        return f"PDF is not a supported image format (expected {_SUPPORTED})"
    return None


def _open(path: Path, max_pixels: int) -> tuple[Image.Image, bytes]:
    """Open ``path`` with Pillow (header only), with every failure turned into an ImageReadError."""
    if not path.exists():
        raise _fail(path, "no such file")
    if path.is_dir():
        raise _fail(path, "is a directory, expected an image file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _fail(path, f"cannot read the file: {err.strerror or err}") from None
    if not data:
        raise _fail(path, "the file is empty")
    unsupported = _sniff_unsupported(data[:64])
    if unsupported:
        raise _fail(path, unsupported)
    pil_limit = Image.MAX_IMAGE_PIXELS
    try:
        # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; both become our error.
        # catch_warnings restores the warning filters when the block ends (nothing global is kept).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise _fail(
            path,
            f"image is above Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS = {pil_limit} pixels, "
            "error at twice that)",
        ) from None
    except UnidentifiedImageError:
        raise _fail(path, f"not an image, or not of a supported format (expected {_SUPPORTED})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise _fail(path, f"corrupt image header: {err}") from None
    width, height = im.size
    if width * height > max_pixels:
        raise _too_large(path, width, height, max_pixels)
    if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
        raise _too_large(path, width, height, int(pil_limit or 0), " set by Pillow's Image.MAX_IMAGE_PIXELS")
    if width <= 0 or height <= 0:
        raise _fail(path, f"image has no pixels ({width} x {height})")
    return im, data


def _rawmode(im: Image.Image) -> str:
    if not im.tile:
        return ""
    args = im.tile[0].args
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _scale16(values: np.ndarray) -> np.ndarray:
    """``round(v * 255 / 65535)`` for 16-bit samples, exactly, in integers."""
    v = values.astype(np.uint32)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha-blend uint8 RGB over white: ``round(c * a / 255 + 255 * (1 - a / 255))``."""
    c = rgb.astype(np.uint32)
    a = alpha.astype(np.uint32)[..., None]
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _decode_16bit_color(path: Path, data: bytes) -> np.ndarray:
    """Decode a 16-bit-per-sample colour PNG/TIFF with OpenCV (Pillow keeps only the high byte)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise _fail(path, "cannot decode the 16-bit colour image")
    rgb = _scale16(arr[..., 2::-1])
    if arr.shape[2] == 4:
        rgb = _composite_on_white(rgb, _scale16(arr[..., 3]))
    return np.ascontiguousarray(rgb)


def _pil_to_rgb(im: Image.Image, path: Path) -> np.ndarray:
    """A fully loaded Pillow image of any mode to ``(H, W, 3)`` uint8 RGB (alpha on white)."""
    mode = im.mode
    if mode.startswith("I;16"):
        gray = _scale16(np.asarray(im))
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("I", "F"):
        values = np.asarray(im)
        vmin, vmax = float(values.min()), float(values.max())
        if mode == "F" and vmin >= 0.0 and vmax <= 1.0:
            gray = np.round(values.astype(np.float64) * 255.0).astype(np.uint8)
        elif vmin >= 0 and vmax <= 65535 and float(np.abs(values - np.round(values)).max()) == 0.0:
            gray = _scale16(values.astype(np.uint32))
        else:
            raise _fail(path, f"unsupported {mode!r} image with values in [{vmin:g}, {vmax:g}]")
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
    mode = im.mode
    if mode == "L":
        return np.repeat(np.asarray(im)[..., None], 3, axis=2)
    if mode == "LA":
        la = np.asarray(im)
        return _composite_on_white(np.repeat(la[..., :1], 3, axis=2), la[..., 1])
    if mode in ("RGBA", "RGBa"):
        rgba = np.asarray(im.convert("RGBA") if mode == "RGBa" else im)
        return _composite_on_white(rgba[..., :3], rgba[..., 3])
    if mode != "RGB":
        try:
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...
        except (ValueError, OSError) as err:
            raise _fail(path, f"unsupported pixel mode {mode!r}: {err}") from None
    return np.asarray(im)


def _exif_values(im: Image.Image) -> tuple[int, float | None]:
    """The EXIF orientation (1 when absent or invalid) and the 35 mm focal length (None when absent)."""
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block must not make the photo unreadable
        return 1, None
    orientation = exif.get(_EXIF_ORIENTATION, 1)
    if not isinstance(orientation, int) or orientation not in range(1, 9):
        orientation = 1
    focal: float | None = None
    try:
        value = exif.get_ifd(_EXIF_IFD).get(_EXIF_FOCAL_35MM)
    except Exception:
        value = None
    if value is not None:
        try:
            f = float(value[0] if isinstance(value, tuple) else value)
        except (TypeError, ValueError):
            f = 0.0
        if math.isfinite(f) and f > 0:  # 0 means "unknown" in EXIF
            focal = f
    return orientation, focal


def read_image_with_info(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read an image file as upright 8-bit RGB, with its stored size, orientation and 35 mm focal length.

    Args:
        path: the image file (JPEG, PNG, WebP, BMP, TIFF, ...).
        max_pixels: the largest accepted width x height, checked from the header before decoding.

    Returns:
        An :class:`ImageInfo`; ``info.image`` is ``(H, W, 3)`` uint8 RGB, row 0 the top of the picture.

    Raises:
        ImageReadError: the file is missing, empty, not an image, of an unsupported format, truncated or
            corrupt, or larger than ``max_pixels`` (or Pillow's ``Image.MAX_IMAGE_PIXELS``).
        TypeError, ValueError: ``path`` or ``max_pixels`` is of the wrong kind.

    Example:
        >>> info = read_image_with_info("photo.jpg")  # doctest: +SKIP
        >>> info.image.shape, info.orientation, info.focal_35mm  # doctest: +SKIP
        ((4032, 3024, 3), 6, 26.0)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {describe(path)}")
    _check_max_pixels(max_pixels)
    p = Path(path)
    im, data = _open(p, max_pixels)
    with im:
        # Pillow decodes 16-bit colour to 8 bits by dropping the low byte; the tile says so (before load).
        wide_color = im.mode in ("RGB", "RGBA") and im.format in ("PNG", "TIFF") and "16" in _rawmode(im)
        try:
            im.load()  # Pillow is lazy: force decoding so that truncation shows here
        except Image.DecompressionBombError as err:
            raise _fail(p, f"image is above Pillow's decompression-bomb limit: {err}") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as err:
            text = str(err)
            if "truncated" in text or isinstance(err, EOFError):
                raise _fail(p, f"truncated image file ({text})") from None
            raise _fail(p, f"cannot decode the image, the file is corrupt or unsupported ({text})") from None
        orientation, focal = _exif_values(im)
        original_size = (im.size[1], im.size[0])
        if wide_color:
            rgb = _decode_16bit_color(p, data)
            upright = Image.fromarray(rgb)
            if orientation in _TRANSPOSE:
                upright = upright.transpose(_TRANSPOSE[orientation])
            image = np.asarray(upright)
        else:
            upright = ImageOps.exif_transpose(im) if orientation != 1 else im
            image = _pil_to_rgb(upright, p)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.flags.writeable is False:
        image = image.copy()
    return ImageInfo(image=image, original_size=original_size, orientation=orientation, focal_35mm=focal, path=p)


def read_image(
    source: str | os.PathLike[str] | np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Read an image file (or normalise an array) to upright ``(H, W, 3)`` uint8 RGB.

    Args:
        source: an image file path, or an array accepted by :func:`as_rgb_uint8`.
        max_pixels: the largest accepted width x height (see :data:`DEFAULT_MAX_PIXELS`).

    Returns:
        ``(H, W, 3)`` uint8 RGB, row 0 the top of the picture, EXIF orientation applied,
        transparency composited on white. A new array: changing it changes nothing else.

    Raises:
        ImageReadError: see :func:`read_image_with_info`; an array above ``max_pixels`` too.

    Example:
        >>> read_image("photo.png").shape  # doctest: +SKIP
        (1080, 1920, 3)
    """
    if isinstance(source, np.ndarray):
        _check_max_pixels(max_pixels)
        if source.ndim >= 2 and source.shape[0] * source.shape[1] > max_pixels:
            raise _too_large("image array", source.shape[1], source.shape[0], max_pixels)
        return as_rgb_uint8(source, "source")
    return read_image_with_info(source, max_pixels).image


def as_rgb_uint8(array: np.ndarray, name: str = "image") -> np.ndarray:
    """Normalise an image array to ``(H, W, 3)`` uint8 RGB, as :func:`read_image` does for files.

    Args:
        array: ``(H, W)`` gray, ``(H, W, 1)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA; dtype uint8,
            uint16 (scaled by 255 / 65535) or floating point in [0, 1] (scaled by 255). Alpha is
            composited on white.
        name: the argument's name for error messages.

    Returns:
        A new ``(H, W, 3)`` uint8 array (never a view of ``array``).

    Raises:
        TypeError: not an array, or of another dtype.
        ValueError: another shape, an empty image, or float values outside [0, 1] or not finite.

    Example:
        >>> as_rgb_uint8(np.full((2, 2), 0.5)).shape
        (2, 2, 3)
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name}: expected an array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                        f"got {describe(array)}")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {describe(array)}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty image, got {describe(array)}")
    if array.dtype == np.uint8:
        values = array
    elif array.dtype == np.uint16:
        values = _scale16(array)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: expected finite values, got NaN or infinite entries in {describe(array)}")
        check_range(array, name, 0.0, 1.0)
        values = np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise TypeError(f"{name}: expected dtype uint8, uint16 or float in [0, 1], got {describe(array)}")
    if values.ndim == 2:
        values = values[..., None]
    channels = values.shape[2]
    if channels == 1:
        out = np.repeat(values, 3, axis=2)
    elif channels == 4:
        out = _composite_on_white(values[..., :3], values[..., 3])
    else:
        out = np.array(values, dtype=np.uint8, copy=True)
    return np.ascontiguousarray(out)


def downscale_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink an image so that its longer side is at most ``max_side``, keeping the aspect ratio.

    The small image samples the original with exactly one factor ``scale`` on both axes (area
    averaging), so a pixel position maps back with :func:`points_to_original`:
    ``x_orig = (x_small + 0.5) / scale - 0.5`` (pixel centres at integer coordinates).

    Args:
        image: ``(H, W, 3)`` (or ``(H, W)``) uint8 image.
        max_side: the largest allowed side of the result in pixels.

    Returns:
        ``(small, scale)``: ``small`` has size ``(round(H * scale), round(W * scale))`` and is a new array;
        ``scale <= 1`` (1.0 and a copy of ``image`` when it is small enough already).

    Example:
        >>> small, scale = downscale_for_detection(np.zeros((4000, 3000, 3), np.uint8), 1000)
        >>> small.shape, scale
        ((1000, 750, 3), 0.25)
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise (TypeError if not isinstance(image, np.ndarray) else ValueError)(
            f"image: expected a non-empty array of shape (H, W, 3) or (H, W), got {describe(image)}"
        )
    if image.dtype != np.uint8:
        raise TypeError(f"image: expected dtype uint8, got {describe(image)}")
    if isinstance(max_side, bool) or not isinstance(max_side, int):
        raise TypeError(f"max_side: expected a positive int, got {describe(max_side)}")
    check_positive(max_side, "max_side")
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image.copy(), 1.0
    scale = max_side / longest
    # dsize=(0, 0) with fx = fy = scale: OpenCV then uses exactly this factor for the sampling
    # geometry (centre-aligned), and rounds the output size.
    small = cv2.resize(image, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small), scale


def points_to_original(points: np.ndarray | torch.Tensor, scale: float) -> np.ndarray | torch.Tensor:
    """Map pixel coordinates found on a downscaled image back to the original image.

    ``x_orig = (x_small + 0.5) / scale - 0.5``, the same for y: pixel centres are at integer coordinates,
    so pixel ``(0, 0)`` of the small image covers ``[-0.5, 1 / scale - 0.5]`` in the original.

    Args:
        points: ``(..., 2)`` pixel coordinates ``(x, y)`` in the small image (array or tensor, float).
        scale: the factor returned by :func:`downscale_for_detection`.

    Returns:
        A new array or tensor like ``points`` (same type, dtype and device), in original-image pixels.

    Example:
        >>> points_to_original(np.array([[0.0, 0.0]]), 0.25)
        array([[1.5, 1.5]])
    """
    if not isinstance(points, (np.ndarray, torch.Tensor)) or points.ndim < 1 or points.shape[-1] != 2:
        raise (TypeError if not isinstance(points, (np.ndarray, torch.Tensor)) else ValueError)(
            f"points: expected an array or tensor of shape (..., 2), got {describe(points)}"
        )
    if isinstance(points, torch.Tensor):
        if not points.is_floating_point():
            raise TypeError(f"points: expected a floating-point tensor, got {describe(points)}")
    elif not np.issubdtype(points.dtype, np.floating):
        raise TypeError(f"points: expected a floating-point array, got {describe(points)}")
    check_positive(scale, "scale")
    return (points + 0.5) / scale - 0.5
