"""Robust image input: any common photo file (or array) to one ``(H, W, 3)`` uint8 RGB array.

What :func:`read_image_with_info` does to a file, in order:

1. Reads its bytes and opens it with Pillow, header only (JPEG, PNG, WebP, BMP, TIFF, and whatever else Pillow
   decodes, e.g. GIF, AVIF); HEIC/HEIF, which Pillow cannot decode, gets its own message.
2. Checks its size from the header, before decoding anything:

   * **decompression bombs**: a file whose header promises more pixels than its bytes could hold is refused,
     naming both numbers. The bound comes from the format's maximum compression (:func:`_byte_bound`): PNG's
     deflate compresses at most 1032:1, a Huffman-coded JPEG needs at least one bit per 8 x 8 block, and other
     formats get a generic bound of 1032 pixels per byte. Real photos hold ~0.1 to 3 bytes per pixel and pass
     by orders of magnitude;
   * more than ``max_pixels`` pixels (default :data:`DEFAULT_MAX_PIXELS`, 1 gigapixel: 2.5 times a 400 MP
     pixel-shift camera's output) is an error naming both numbers.

   Pillow's own pixel-count guard (``Image.MAX_IMAGE_PIXELS``, 89 MP: it would refuse a 108 MP phone photo) is
   replaced by these checks for this module's reads only: its warning is ignored locally and, above twice the
   limit, the file is opened with the same plugin Pillow would use; the global is never read or changed.
3. Decodes it (Pillow loads lazily: a truncated file would otherwise go unnoticed), without ever setting
   ``ImageFile.LOAD_TRUNCATED_IMAGES``. With ``max_side``, a larger image is decoded reduced where the
   format allows it: a JPEG through libjpeg's DCT scaling (Pillow's ``draft``: 1/2, 1/4 or 1/8 of the size,
   at about that fraction of the memory and time), a grey or RGB image of another format box-averaged by an
   integer factor right after decoding (Pillow's ``reduce``); TIFFs above Pillow's decoding limit are decoded
   with OpenCV.
4. Converts to 8-bit RGB: grayscale is repeated in the three channels; 16-bit samples are scaled as
   ``round(v * 255 / 65535)`` (16-bit colour PNG/TIFF is decoded with OpenCV because Pillow keeps only the
   high byte); CMYK and palette images are converted by Pillow (CMYK without colour management: an embedded
   ICC profile is not applied); **transparency is composited on white** (a transparent background then looks
   like paper, not like a black hole a face detector could trip on).
5. With ``max_side``: shrinks it with OpenCV's area averaging to exactly ``scale = max_side / long side``
   of the stored picture (``ImageInfo.scale``; :func:`points_to_original` maps points back).
6. Applies the EXIF orientation (the table of Pillow's ``ImageOps.exif_transpose``), so the array is upright as
   a viewer shows it. The EXIF 35 mm focal length is a field of view, so it holds at any working size.

Every user-fixable failure raises :class:`facerecon.core.errors.ImageReadError` with one line that names
the file. Photos already in memory are meant to be detected on a smaller copy: :func:`downscale_for_detection`
and :func:`points_to_original`.

Example:
    >>> info = read_image_with_info("photo.jpg", max_side=4096)     # doctest: +SKIP
    >>> info.image.shape, info.original_size, info.scale            # doctest: +SKIP
    ((3072, 4096, 3), (9000, 12000), 0.3413333333333333)
    >>> small, scale = downscale_for_detection(info.image, 1280)    # doctest: +SKIP
    >>> landmarks = points_to_original(detect(small), scale)        # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from facerecon.core.check import check_positive, check_range, describe
from facerecon.core.errors import ImageReadError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageInfo",
    "as_rgb_uint8",
    "check_image",
    "downscale_for_detection",
    "points_to_original",
    "read_image",
    "read_image_with_info",
]

#: The default pixel limit: 1 gigapixel, 2.5 times the largest photos cameras make (400 MP pixel-shift; phones
#: reach 200 MP). Files are refused below it only when their bytes cannot hold their pixels (:func:`_byte_bound`).
#: Decoding at full size costs ~7 bytes per pixel for a moment; with ``max_side`` a JPEG costs ~3 bytes per
#: pixel of the reduced decode only, other formats ~4 bytes per full-size pixel.
DEFAULT_MAX_PIXELS = 1_000_000_000

# --- decompression bombs: the most pixels a file of n bytes can hold ----------------------------------------
# Deflate (PNG's coder) compresses at most 1032:1: a 258-byte match costs at least 2 bits (a 1-bit
# length/literal code and a 1-bit distance code), 258 * 8 / 2 = 1032 (zlib's "technical details",
# https://zlib.net/zlib_tech.html: "the limit is 1032:1"). Every pixel's bits are in the inflated data.
_DEFLATE_MAX_RATIO = 1032
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel (PNG spec, 11.2.2)
# A Huffman-coded JPEG (ITU-T T.81) codes every 8 x 8 block's DC difference with a Huffman code of at least 1 bit
# (F.1.2.1 sequential, G.1.2.1 progressive; code lengths are 1 to 16 bits, C.2), so n bytes hold at most 8 n blocks
# of the full-resolution grid = 512 n pixels. (A sequential block also needs an EOB code, a real photo ~1 bit per
# pixel: 64 times more.) The arithmetic coder (SOF9-15) has no such floor and gets the generic bound.
_JPEG_HUFFMAN_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7})
_JPEG_PIXELS_PER_BYTE = 8 * 64
# Other formats (WebP, TIFF, BMP, GIF, arithmetic JPEG...): their coders (VP8's boolean coder, WebP lossless' prefix
# codes with single-symbol trees, LZW, CCITT fax) have no useful floor on flat pictures, so this is a policy, not a
# derived limit: deflate's ratio on one byte per pixel (one bit for a bilevel image). A real photo holds ~0.1 to
# 3 bytes per pixel.
_GENERIC_PIXELS_PER_BYTE = _DEFLATE_MAX_RATIO

_EXIF_ORIENTATION = 0x0112  # IFD0 Orientation (EXIF 2.32, table 4)
_EXIF_IFD = 0x8769  # pointer to the Exif sub-IFD
_EXIF_FOCAL_35MM = 0xA405  # FocalLengthIn35mmFilm, in the Exif sub-IFD (mm, SHORT)

_SUPPORTED = "JPEG, PNG, WebP, BMP or TIFF"


@dataclass(frozen=True)
class ImageInfo:
    """An image read from a file, with what was learnt on the way.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, upright (EXIF orientation applied), transparency on white; the working
            image: the file's picture resized by ``scale``.
        original_size: ``(height, width)`` in pixels as stored in the file, before the EXIF orientation and
            any reduction (``image.shape[:2]`` or its transpose when ``scale == 1``).
        orientation: the EXIF orientation that was applied, 1 (none) to 8.
        focal_35mm: the EXIF ``FocalLengthIn35mmFilm`` in mm (the focal length a 36 x 24 mm frame would
            need for the same field of view), or None when the file does not record it. A field of view: it
            holds for the working image (``f_px = f35 * hypot(W, H) / hypot(36, 24)`` of ``image``).
        path: the file that was read.
        scale: working / original size, 1.0 when read at full size; else ``max_side / max(original_size)``
            (each side rounded to whole pixels: ``round(side * scale)``). A working pixel maps back as
            ``x_orig = (x + 0.5) / scale - 0.5`` (:func:`points_to_original`).
        decode_reduction: the JPEG decoder's reduction, 1, 2, 4 or 8 (1: decoded at full size).
    """

    image: np.ndarray
    original_size: tuple[int, int]
    orientation: int
    focal_35mm: float | None
    path: Path
    scale: float = 1.0
    decode_reduction: int = 1


def _fail(path: Path, what: str) -> ImageReadError:
    # One line, always: Pillow's messages sometimes carry newlines.
    return ImageReadError(f"{path}: {' '.join(what.split())}")


def _check_max_pixels(max_pixels: int) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int):
        raise TypeError(f"max_pixels: expected a positive int, got {describe(max_pixels)}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels: expected a positive int, got {max_pixels}")


def _check_max_side(max_side: int | None) -> None:
    if max_side is None:
        return
    if isinstance(max_side, bool) or not isinstance(max_side, int):
        raise TypeError(f"max_side: expected a positive int or None, got {describe(max_side)}")
    if max_side <= 0:
        raise ValueError(f"max_side: expected a positive int or None, got {max_side}")


def _too_large(label: Path | str, width: int, height: int, limit: int) -> ImageReadError:
    return ImageReadError(
        f"{label}: image is {width} x {height} = {width * height / 1e6:.1f} megapixels, above the limit of "
        f"{limit:,} pixels ({limit / 1e6:.1f} megapixels); downscale it first or raise max_pixels"
    )


def _jpeg_sof(data: bytes) -> tuple[int, int, int] | None:
    """``(marker, width, height)`` of a JPEG's first start-of-frame segment (markers 0xC0-0xCF but DHT, JPG, DAC),
    or None when there is none before SOS or the end."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # TEM, RSTn, SOI: no length
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])  # after the length and the sample precision
            return marker, width, height
        elif marker in (0xDA, 0xD9):  # SOS or EOI before any frame
            return None
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _byte_bound(data: bytes, fmt: str | None, mode: str = "") -> tuple[int, str]:
    """The most pixels ``data`` (a whole file of format ``fmt``, Pillow mode ``mode``) could hold, and where the
    figure comes from."""
    n = len(data)
    if fmt == "PNG" and len(data) >= 29 and data[12:16] == b"IHDR":
        bits = _PNG_CHANNELS.get(data[25], 1) * max(data[24], 1)  # samples per pixel x bit depth
        return n * 8 * _DEFLATE_MAX_RATIO // bits, f"deflate compresses at most {_DEFLATE_MAX_RATIO}:1, {bits}-bit pixels"
    sof = _jpeg_sof(data) if fmt in ("JPEG", "MPO") else None
    if sof is not None and sof[0] in _JPEG_HUFFMAN_SOF:
        return n * _JPEG_PIXELS_PER_BYTE, "a Huffman-coded JPEG needs at least 1 bit per 8 x 8 block"
    per_byte = _GENERIC_PIXELS_PER_BYTE * (8 if mode == "1" else 1)
    return n * per_byte, f"at most {per_byte} pixels per byte for {fmt or 'this format'}, the generic bound"


def _header_size(data: bytes) -> tuple[str, int, int] | None:
    """``(format, width, height)`` read by us from a PNG's IHDR or a JPEG's SOF, before Pillow sees the file (so
    a bare header with no data at all is still judged by its size), or None for other files."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 29 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "PNG", width, height
    if data.startswith(b"\xff\xd8\xff"):
        sof = _jpeg_sof(data)
        if sof is not None:
            return "JPEG", sof[1], sof[2]
    return None


def _bomb(path: Path, width: int, height: int, size: int, bound: int, why: str) -> ImageReadError:
    return _fail(
        path,
        f"image is {width} x {height} = {width * height / 1e6:.1f} megapixels, but a file of {size:,} bytes can "
        f"hold at most {bound:,} pixels ({why}): a decompression bomb or a damaged file",
    )


def _pillow_open(data: bytes) -> Image.Image:
    """``Image.open`` of the bytes without Pillow's pixel-count guard (the caller checks the byte bound next,
    before anything is decoded; opening reads the header only)."""
    with warnings.catch_warnings():  # restores the warning filters when the block ends
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            pass
    # Above twice MAX_IMAGE_PIXELS Image.open raises after its plugin has read the header. Call that plugin's
    # factory ourselves, as Image.open does (its registry, read only), leaving Pillow's settings alone.
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        result = not accept or accept(prefix)
        if isinstance(result, str) or not result:
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise UnidentifiedImageError("cannot identify image file")


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
    header = _header_size(data)
    if header is not None:  # the byte bound before Pillow parses anything
        fmt, width, height = header
        bound, why = _byte_bound(data, fmt)
        if width * height > bound:
            raise _bomb(path, width, height, len(data), bound, why)
    try:
        im = _pillow_open(data)
    except Image.DecompressionBombError as err:  # a plugin's own check at open (WebP above twice Pillow's limit)
        raise _fail(path, f"Pillow refuses to open it: {err}") from None
    except UnidentifiedImageError:
        raise _fail(path, f"not an image, or not of a supported format (expected {_SUPPORTED})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise _fail(path, f"corrupt image header: {err}") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise _fail(path, f"image has no pixels ({width} x {height})")
    bound, why = _byte_bound(data, im.format, im.mode)
    if width * height > bound:
        raise _bomb(path, width, height, len(data), bound, why)
    if width * height > max_pixels:
        raise _too_large(path, width, height, max_pixels)
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


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (as stored) turned upright for an EXIF orientation, as ``ImageOps.exif_transpose`` turns it (2 flip
    left-right, 3 rotate 180, 4 flip top-bottom, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
    counter-clockwise; EXIF 2.32, table 4), as a NumPy view (no copy of a large image)."""
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return image.swapaxes(0, 1)
    if orientation == 6:
        return image.swapaxes(0, 1)[:, ::-1]
    if orientation == 7:
        return image[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return image.swapaxes(0, 1)[::-1]
    return image


def _working_size(width: int, height: int, max_side: int | None) -> tuple[int, int, float]:
    """``(width, height, scale)`` of the working image: the long side at most ``max_side``, both sides by one factor."""
    longest = max(width, height)
    if max_side is None or longest <= max_side:
        return width, height, 1.0
    scale = max_side / longest
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5)), scale


def _decode_with_opencv(path: Path, data: bytes) -> np.ndarray:
    """A file Pillow will not decode (a TIFF above twice its ``MAX_IMAGE_PIXELS``) to RGB uint8 with OpenCV, as
    stored (no EXIF rotation: ``IMREAD_UNCHANGED``). OpenCV has its own limit of 2^30 pixels."""
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise _fail(path, f"cannot decode the image with OpenCV either ({err})") from None
    if arr is None or arr.ndim not in (2, 3):
        raise _fail(path, "cannot decode the image with OpenCV either")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = np.concatenate([arr[..., 2::-1], arr[..., 3:]], axis=2)  # BGR(A) -> RGB(A)
    try:
        return as_rgb_uint8(arr)
    except (TypeError, ValueError) as err:
        raise _fail(path, f"unsupported image samples: {err}") from None


def check_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int]:
    """Check from its header alone that ``path`` is an image :func:`read_image` accepts: ``(format, width, height)``
    as stored (before EXIF rotation). Nothing is decoded, so it is quick, but a file truncated further on passes.

    Raises:
        ImageReadError: as :func:`read_image_with_info`, for everything its header tells.
    """
    _check_max_pixels(max_pixels)
    im, _ = _open(Path(path), max_pixels)
    with im:
        return str(im.format), int(im.size[0]), int(im.size[1])


def read_image_with_info(
    path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None
) -> ImageInfo:
    """Read an image file as upright 8-bit RGB, with its stored size, orientation and 35 mm focal length.

    Args:
        path: the image file (JPEG, PNG, WebP, BMP, TIFF, ...).
        max_pixels: the largest accepted width x height, checked from the header before decoding.
        max_side: the longest side of the returned image; a larger picture is decoded reduced where the format
            allows (JPEG: 1/2, 1/4 or 1/8 in the decoder) and shrunk by area averaging to exactly
            ``scale = max_side / long side`` (``info.scale``). None: full size.

    Returns:
        An :class:`ImageInfo`; ``info.image`` is ``(H, W, 3)`` uint8 RGB, row 0 the top of the picture.

    Raises:
        ImageReadError: the file is missing, empty, not an image, of an unsupported format, truncated or
            corrupt, larger than ``max_pixels``, or its header promises more pixels than its bytes can hold.
        TypeError, ValueError: ``path``, ``max_pixels`` or ``max_side`` is of the wrong kind.

    Example:
        >>> info = read_image_with_info("photo.jpg")  # doctest: +SKIP
        >>> info.image.shape, info.orientation, info.focal_35mm  # doctest: +SKIP
        ((4032, 3024, 3), 6, 26.0)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {describe(path)}")
    _check_max_pixels(max_pixels)
    _check_max_side(max_side)
    p = Path(path)
    im, data = _open(p, max_pixels)
    width, height = im.size
    target_w, target_h, scale = _working_size(width, height, max_side)
    reduction = 1
    with im:
        # Pillow decodes 16-bit colour to 8 bits by dropping the low byte; the tile says so (before load).
        wide_color = im.mode in ("RGB", "RGBA") and im.format in ("PNG", "TIFF") and "16" in _rawmode(im)
        if scale < 1.0 and im.format in ("JPEG", "MPO"):
            # libjpeg's DCT scaling: the largest reduction 1/2, 1/4 or 1/8 that stays at least the target size.
            drafted = im.draft(None, (target_w, target_h))
            if drafted is not None:
                reduction = max(1, round(width / drafted[1][2]))
        opencv = False
        try:
            with warnings.catch_warnings():  # Pillow's pixel guard in TIFF's load: our checks were made
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()  # Pillow is lazy: force decoding so that truncation shows here
        except Image.DecompressionBombError as err:
            if im.format != "TIFF":
                raise _fail(p, f"image is above Pillow's decompression-bomb limit: {err}") from None
            opencv = True  # TIFF refuses to allocate above twice MAX_IMAGE_PIXELS; the byte bound was checked
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as err:
            text = str(err)
            if "truncated" in text or isinstance(err, EOFError):
                raise _fail(p, f"truncated image file ({text})") from None
            raise _fail(p, f"cannot decode the image, the file is corrupt or unsupported ({text})") from None
        orientation, focal = _exif_values(im)
        if wide_color:
            rgb = _decode_16bit_color(p, data)
        elif opencv:
            rgb = _decode_with_opencv(p, data)
        else:
            factor = min(im.size[0] // target_w, im.size[1] // target_h)
            if factor >= 2 and im.mode in ("1", "L", "RGB") and "transparency" not in im.info:
                # Box-average by a whole factor in Pillow first: the full-size RGB array is never made.
                grey = im.convert("L") if im.mode == "1" else im
                reduced = grey.reduce(factor)
                grey.close()
                im.close()
                with reduced:
                    rgb = _pil_to_rgb(reduced, p)
            else:
                rgb = _pil_to_rgb(im, p)
    del data
    if rgb.shape[:2] != (target_h, target_w):
        rgb = cv2.resize(rgb, (target_w, target_h), interpolation=cv2.INTER_AREA)
    image = np.ascontiguousarray(_orient(rgb, orientation), dtype=np.uint8)
    if not image.flags.writeable:  # a view of Pillow's bytes
        image = image.copy()
    return ImageInfo(image=image, original_size=(height, width), orientation=orientation, focal_35mm=focal, path=p,
                     scale=scale, decode_reduction=reduction)  # fmt: skip


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
