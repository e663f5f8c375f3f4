"""Tests of facerecon.io.image with real files made here from the shared face photos."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from facerecon.core.errors import ImageReadError
from facerecon.io.image import (
    DEFAULT_MAX_PIXELS,
    ImageInfo,
    as_rgb_uint8,
    downscale_for_detection,
    points_to_original,
    read_image,
    read_image_with_info,
)

PHOTO = "3ddfa-emma.jpg"  # 3913 x 1901 JPEG
PHOTO_WITH_FOCAL = "3ddfa-JianzhuGuo.jpg"  # records FocalLengthIn35mmFilm = 28


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> np.ndarray:
    """A real face photo, decoded by Pillow directly and cut to a small size to keep the tests fast."""
    with Image.open(faces_dir / PHOTO) as im:
        rgb = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(rgb[200:520, 1500:1740])  # 320 x 240, the face


def _assert_one_line_naming(err: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    text = str(err.value)
    assert "\n" not in text
    assert str(path) in text
    for word in words:
        assert word in text.lower(), text


def _png_header_only(path: Path, width: int, height: int, bit_depth: int = 1, color_type: int = 0) -> None:
    """A PNG with a valid IHDR (and no pixel data): Pillow learns the size without decoding anything."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


# --- the real photos and lossless formats --------------------------------------------------------


def test_reads_every_shared_photo_as_rgb_uint8(faces_dir: Path) -> None:
    files = sorted(faces_dir.iterdir())
    assert len(files) >= 50
    for f in files[:8]:
        image = read_image(f)
        with Image.open(f) as im:
            expected = np.asarray(im.convert("RGB"))
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        np.testing.assert_array_equal(image, expected)  # none of these carries an EXIF rotation


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif"), ("WEBP", ".webp")])
def test_lossless_formats_round_trip_exactly(photo: np.ndarray, tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"face{suffix}"
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(photo).save(path, fmt, **kwargs)
    image = read_image(path)
    np.testing.assert_array_equal(image, photo)
    assert image.flags.writeable and image.flags.c_contiguous


def test_lossy_webp_reads_close_to_the_original(photo: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "face.webp"
    Image.fromarray(photo).save(path, "WEBP", quality=90)
    image = read_image(path)
    assert image.shape == photo.shape
    assert np.abs(image.astype(int) - photo).mean() < 4.0


def test_grayscale_png_is_repeated_in_three_channels(photo: np.ndarray, tmp_path: Path) -> None:
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    image = read_image(tmp_path / "gray.png")
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], gray)


def test_one_bit_and_palette_images(photo: np.ndarray, tmp_path: Path) -> None:
    bw = Image.fromarray(photo).convert("1")
    bw.save(tmp_path / "bw.png")
    image = read_image(tmp_path / "bw.png")
    assert set(np.unique(image)) <= {0, 255}
    np.testing.assert_array_equal(image[..., 0], np.asarray(bw.convert("L")))
    pal = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png"), np.asarray(pal.convert("RGB")))


# --- 16-bit ------------------------------------------------------------------------------------


def test_16bit_gray_png_is_scaled_by_255_over_65535(tmp_path: Path) -> None:
    values = np.array([[0, 1, 128, 129, 257, 32767], [32768, 32896, 65278, 65279, 65534, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I;16")  # the mode the test means to exercise
    image = read_image(tmp_path / "g16.png")
    expected = np.array([[0, 0, 0, 1, 1, 127], [128, 128, 254, 254, 255, 255]], np.uint8)
    np.testing.assert_array_equal(image[..., 0], expected)
    np.testing.assert_array_equal(image[..., 2], expected)
    # the same rule, exactly, on every 16-bit value
    np.testing.assert_array_equal(
        as_rgb_uint8(np.arange(65536, dtype=np.uint16).reshape(256, 256))[..., 1].ravel(),
        np.round(np.arange(65536) * 255 / 65535).astype(np.uint8),
    )


def test_16bit_colour_png_and_tiff_keep_their_rounding(photo: np.ndarray, tmp_path: Path) -> None:
    # p * 257 is the exact 16-bit value of an 8-bit level; add an offset that truncation would get wrong
    wide = photo.astype(np.uint16) * 257
    wide = np.where(wide <= 65535 - 200, wide + 200, wide).astype(np.uint16)
    expected = np.round(wide.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert (expected != (wide >> 8)).any()  # high-byte truncation would fail this test
    for name in ("c16.png", "c16.tif"):
        assert cv2.imwrite(str(tmp_path / name), wide[..., ::-1])
        np.testing.assert_array_equal(read_image(tmp_path / name), expected)


def test_16bit_rgba_png_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint16)
    rgba[..., 0] = 65535
    rgba[..., 3] = [[65535, 0], [32896, 65535]]  # opaque, transparent, half, opaque
    assert cv2.imwrite(str(tmp_path / "a16.png"), rgba[..., [2, 1, 0, 3]])
    image = read_image(tmp_path / "a16.png")
    np.testing.assert_array_equal(image[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(image[0, 1], [255, 255, 255])
    np.testing.assert_array_equal(image[1, 0], [255, 127, 127])  # round(255 * (1 - 128/255))


# --- transparency, CMYK ------------------------------------------------------------------------


def test_rgba_png_is_composited_on_white(photo: np.ndarray, tmp_path: Path) -> None:
    h, w = photo.shape[:2]
    alpha = np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))
    Image.fromarray(np.dstack([photo, alpha])).save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    a = alpha.astype(np.float64)[..., None] / 255
    expected = np.round(photo * a + 255 * (1 - a)).astype(np.uint8)
    np.testing.assert_array_equal(image, expected)
    assert (image[:, 0] == 255).all()  # fully transparent column: white
    np.testing.assert_array_equal(image[:, -1], photo[:, -1])  # opaque column: unchanged


def test_gray_alpha_and_palette_transparency_are_on_white(tmp_path: Path) -> None:
    la = np.array([[[0, 0], [0, 255], [100, 51]]], np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[0, :, 0], [255, 0, 224])
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50])
    pal.putdata([0, 1])
    pal.save(tmp_path / "pal.png", transparency=0)
    np.testing.assert_array_equal(read_image(tmp_path / "pal.png")[0], [[255, 255, 255], [200, 100, 50]])


def test_cmyk_tiff_and_jpeg(photo: np.ndarray, tmp_path: Path) -> None:
    cmyk = Image.fromarray(photo).convert("CMYK")
    cmyk.save(tmp_path / "cmyk.tif")
    cmyk.save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    # Pillow's RGB -> CMYK -> RGB is exact when K = 0, which its conversion always writes
    np.testing.assert_array_equal(read_image(tmp_path / "cmyk.tif"), photo)
    image = read_image(tmp_path / "cmyk.jpg")
    assert image.shape == photo.shape
    assert np.abs(image.astype(int) - photo).mean() < 4.0  # colours right, not inverted


# --- EXIF --------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation, k", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_applied(photo: np.ndarray, tmp_path: Path, orientation: int, k: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rot{orientation}.png"
    Image.fromarray(photo).save(path, exif=exif)
    info = read_image_with_info(path)
    # 6: the stored picture must turn 90 degrees clockwise to stand up (np.rot90 k=-1), 8: counter-clockwise
    np.testing.assert_array_equal(info.image, np.rot90(photo, k))
    assert info.orientation == orientation
    assert info.original_size == photo.shape[:2]
    assert isinstance(info, ImageInfo) and info.path == path


def test_exif_orientation_on_jpeg_and_16bit_png(photo: np.ndarray, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo).save(tmp_path / "rot.jpg", exif=exif, quality=92)
    with Image.open(tmp_path / "rot.jpg") as im:
        stored = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "rot.jpg"), np.rot90(stored, -1))
    # the 16-bit colour path (decoded with OpenCV) must rotate too: insert an eXIf chunk after IHDR
    wide = photo.astype(np.uint16) * 257
    ok, png = cv2.imencode(".png", wide[..., ::-1])
    assert ok
    data = png.tobytes()
    body = exif.tobytes()
    body = body[6:] if body.startswith(b"Exif\x00\x00") else body
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    ihdr_end = 8 + 8 + 13 + 4
    (tmp_path / "rot16.png").write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])
    assert cv2.imread(str(tmp_path / "rot16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    info = read_image_with_info(tmp_path / "rot16.png")
    assert info.orientation == 6
    np.testing.assert_array_equal(info.image, np.rot90(photo, -1))


def test_focal_length_35mm(faces_dir: Path, photo: np.ndarray, tmp_path: Path) -> None:
    assert read_image_with_info(faces_dir / PHOTO_WITH_FOCAL).focal_35mm == 28.0
    assert read_image_with_info(faces_dir / PHOTO).focal_35mm is None
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 52
    Image.fromarray(photo).save(tmp_path / "f.jpg", exif=exif)
    assert read_image_with_info(tmp_path / "f.jpg").focal_35mm == 52.0
    exif.get_ifd(0x8769)[0xA405] = 0  # EXIF: 0 means unknown
    Image.fromarray(photo).save(tmp_path / "f0.jpg", exif=exif)
    assert read_image_with_info(tmp_path / "f0.jpg").focal_35mm is None


# --- errors ------------------------------------------------------------------------------------


def test_missing_file_directory_and_empty_file(tmp_path: Path) -> None:
    for path, word in [(tmp_path / "nope.jpg", "no such file"), (tmp_path, "directory")]:
        with pytest.raises(ImageReadError) as err:
            read_image(path)
        _assert_one_line_naming(err, path, word)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError) as err:
        read_image(tmp_path / "empty.png")
    _assert_one_line_naming(err, tmp_path / "empty.png", "empty")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    _assert_one_line_naming(err, path, "not an image")


def test_unsupported_heic_and_svg(tmp_path: Path) -> None:
    heic = tmp_path / "phone.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    with pytest.raises(ImageReadError) as err:
        read_image(heic)
    _assert_one_line_naming(err, heic, "heic", "not supported")
    svg = tmp_path / "logo.png"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    with pytest.raises(ImageReadError) as err:
        read_image(svg)
    _assert_one_line_naming(err, svg, "svg", "not a supported")


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp")])
def test_truncated_files(faces_dir: Path, photo: np.ndarray, tmp_path: Path, fmt: str, suffix: str) -> None:
    if fmt == "JPEG":
        data = (faces_dir / PHOTO).read_bytes()  # the real file
    else:
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, fmt)
        data = buffer.getvalue()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    _assert_one_line_naming(err, path)
    assert any(w in str(err.value).lower() for w in ("truncated", "corrupt")), str(err.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_header_only_file_is_refused_from_its_bytes(tmp_path: Path) -> None:
    # Large photos are read (tests/io/test_big_photos.py); a header promising 63 MP with no pixel data is refused
    # from the header alone, by what its bytes can hold.
    assert DEFAULT_MAX_PIXELS == 1_000_000_000
    path = tmp_path / "huge.png"
    _png_header_only(path, 9000, 7000)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    _assert_one_line_naming(err, path, "9000 x 7000", "63.0 megapixels", "decompression bomb")
    # a real (all black) 1-bit PNG of the old limit's size, made cheaply, reads; and a custom limit applies
    real = tmp_path / "big1bit.png"
    Image.new("1", (7800, 7700)).save(real)  # 60.06 MP
    assert read_image(real).shape == (7700, 7800, 3)
    with pytest.raises(ImageReadError) as err:
        read_image(real, max_pixels=7800 * 7700 - 1)
    _assert_one_line_naming(err, real, "7800 x 7700", "60.1 megapixels")


def test_custom_pixel_limit_on_a_real_photo(faces_dir: Path) -> None:
    with pytest.raises(ImageReadError) as err:
        read_image(faces_dir / PHOTO, max_pixels=3913 * 1901 - 1)
    _assert_one_line_naming(err, faces_dir / PHOTO, "3913 x 1901")
    assert read_image(faces_dir / PHOTO, max_pixels=3913 * 1901).shape == (1901, 3913, 3)


def test_pillows_bomb_limits_give_way_to_the_byte_bound(tmp_path: Path) -> None:
    # Above Pillow's MAX_IMAGE_PIXELS (warning) and twice it (error), a header with no data is judged by its bytes:
    # our error, one line with both numbers; Pillow's global setting is neither changed nor consulted.
    limit_before = Image.MAX_IMAGE_PIXELS
    assert limit_before is not None
    for name, side in (("bomb.png", int((2 * limit_before) ** 0.5) + 10), ("warn.png", int(limit_before**0.5) + 10)):
        path = tmp_path / name
        _png_header_only(path, side, side)
        with pytest.raises(ImageReadError) as err:
            read_image(path, max_pixels=10**12)
        bound = path.stat().st_size * 8 * 1032  # deflate's 1032:1 over 1-bit pixels
        _assert_one_line_naming(err, path, f"{side} x {side}", f"at most {bound:,} pixels", "1032:1")
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="path"):
        read_image_with_info(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_pixels"):
        read_image(tmp_path / "x.png", max_pixels=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pixels"):
        read_image(tmp_path / "x.png", max_pixels=0)


# --- arrays ------------------------------------------------------------------------------------


def test_as_rgb_uint8_normalises_like_files(photo: np.ndarray) -> None:
    before = photo.copy()
    out = as_rgb_uint8(photo)
    np.testing.assert_array_equal(out, photo)
    assert not np.shares_memory(out, photo)
    out[0, 0] = 0
    np.testing.assert_array_equal(photo, before)
    gray = photo[..., 1]
    np.testing.assert_array_equal(as_rgb_uint8(gray), np.repeat(gray[..., None], 3, 2))
    np.testing.assert_array_equal(as_rgb_uint8(gray[..., None]), np.repeat(gray[..., None], 3, 2))
    np.testing.assert_array_equal(as_rgb_uint8(photo.astype(np.float32) / 255), photo)
    np.testing.assert_array_equal(as_rgb_uint8(photo.astype(np.uint16) * 257), photo)
    rgba = np.dstack([photo, np.zeros_like(gray)])
    assert (as_rgb_uint8(rgba) == 255).all()
    np.testing.assert_array_equal(as_rgb_uint8(np.dstack([photo, np.full_like(gray, 255)])), photo)
    np.testing.assert_array_equal(read_image(photo), photo)


def test_as_rgb_uint8_errors() -> None:
    with pytest.raises(TypeError, match="img"):
        as_rgb_uint8([[1, 2]], "img")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dtype"):
        as_rgb_uint8(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match=r"\(H, W, 4\)"):
        as_rgb_uint8(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="non-empty"):
        as_rgb_uint8(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_rgb_uint8(np.full((2, 2), 1.5))
    with pytest.raises(ValueError, match="finite"):
        as_rgb_uint8(np.full((2, 2), np.nan))
    with pytest.raises(ImageReadError, match="megapixels"):
        read_image(np.zeros((20, 20, 3), np.uint8), max_pixels=399)


# --- downscaling for detection -----------------------------------------------------------------


def test_downscale_exact_known_answer() -> None:
    image = np.zeros((600, 1000, 3), np.uint8)
    image[40:44, 80:84] = 255  # one 4 x 4 block: exactly one pixel of the quarter-size image
    small, scale = downscale_for_detection(image, 250)
    assert scale == 0.25 and small.shape == (150, 250, 3)
    ys, xs = np.nonzero(small[..., 0])
    assert (ys.tolist(), xs.tolist()) == ([10], [20]) and small[10, 20, 0] == 255
    np.testing.assert_array_equal(points_to_original(np.array([[20.0, 10.0]]), scale), [[81.5, 41.5]])
    np.testing.assert_array_equal(points_to_original(np.array([0.0, 0.0]), scale), [1.5, 1.5])
    np.testing.assert_array_equal(points_to_original(np.array([-0.5, 149.5]), scale), [-0.5, 599.5])


def test_downscale_non_integer_factor_maps_a_blob_back(photo: np.ndarray) -> None:
    h, w = 900, 1300
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = 731.3, 402.8
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 30.0**2))
    image = np.repeat(np.round(blob * 255).astype(np.uint8)[..., None], 3, axis=2)
    small, scale = downscale_for_detection(image, 457)
    assert small.shape[:2] == (round(h * scale), round(w * scale)) and max(small.shape) == 457
    weights = small[..., 0].astype(np.float64)
    sy, sx = np.mgrid[0 : small.shape[0], 0 : small.shape[1]]
    centre = np.array([(weights * sx).sum(), (weights * sy).sum()]) / weights.sum()
    back = points_to_original(centre, scale)
    assert np.abs(back - [cx, cy]).max() < 0.25  # original pixels; a half-pixel shift would be 1.4


def test_downscale_small_image_is_a_copy_and_torch_points(photo: np.ndarray) -> None:
    small, scale = downscale_for_detection(photo, 1000)
    assert scale == 1.0 and not np.shares_memory(small, photo)
    np.testing.assert_array_equal(small, photo)
    pts = torch.tensor([[[3.0, 4.0]]], dtype=torch.float64)
    before = pts.clone()
    out = points_to_original(pts, 0.5)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert torch.equal(out, torch.tensor([[[6.5, 8.5]]], dtype=torch.float64))
    assert torch.equal(pts, before)


def test_downscale_and_mapping_errors(photo: np.ndarray) -> None:
    with pytest.raises(TypeError, match="image"):
        downscale_for_detection([[0]], 10)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="uint8"):
        downscale_for_detection(photo.astype(np.float32), 10)
    with pytest.raises(ValueError, match="max_side"):
        downscale_for_detection(photo, 0)
    with pytest.raises(TypeError, match="max_side"):
        downscale_for_detection(photo, 10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="points"):
        points_to_original(np.zeros((3, 3)), 0.5)
    with pytest.raises(TypeError, match="floating"):
        points_to_original(np.zeros((3, 2), np.int64), 0.5)
    with pytest.raises(ValueError, match="scale"):
        points_to_original(np.zeros((3, 2)), 0.0)
