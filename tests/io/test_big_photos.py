"""Big camera photos and decompression bombs (issue 12.3), with real files made here from the shared face photos.

A 108 MP JPEG (12000 x 9000, a 108 MP phone's size, stored sideways with EXIF orientation 6 and a 26 mm focal
length, as a phone stores a portrait) is read at a working size through libjpeg's reduced decode; files whose
header promises more pixels than their bytes can hold are refused with one line naming both numbers.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from facerecon.core.errors import ImageReadError
from facerecon.io.image import DEFAULT_MAX_PIXELS, read_image, read_image_with_info
from facerecon.pipeline.run import photo_camera

REPO = Path(__file__).resolve().parents[2]
SOURCE = "deca-exp-4.jpg"  # 2444 x 1718, a frontal face
STORED = (12000, 9000)  # width x height as the file stores it (a 108 MP sensor)
FOCAL_35MM = 26
# Pillow's transposition for each EXIF orientation (the table of ImageOps.exif_transpose)
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}  # fmt: skip


def _exif_app1(orientation: int, focal_35mm: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0xA405] = focal_35mm
    body = exif.tobytes()  # starts with b"Exif\0\0"
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def _png(width: int, height: int, bit_depth: int, color_type: int, *chunks: tuple[bytes, bytes]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(chunk(k, b) for k, b in chunks)


@pytest.fixture(scope="module")
def upright(faces_dir: Path) -> np.ndarray:
    """The portrait as a viewer sees it: a 3:4 crop of the shared photo around the face, RGB."""
    with Image.open(faces_dir / SOURCE) as im:
        rgb = np.asarray(im.convert("RGB"))
    h, w = rgb.shape[:2]
    crop_w = round(h * 3 / 4)
    x0 = (w - crop_w) // 2
    return np.ascontiguousarray(rgb[:, x0 : x0 + crop_w])


@pytest.fixture(scope="module")
def photo108(upright: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 12000 x 9000 JPEG (the shared photo upscaled, so it holds a real face), stored turned 90 degrees
    counter-clockwise with EXIF orientation 6 (turn clockwise to view) and a 35 mm focal length of 26 mm."""
    stored_small = np.ascontiguousarray(np.rot90(upright, 1))  # what the sensor saw, sideways
    stored = cv2.resize(stored_small[..., ::-1], STORED, interpolation=cv2.INTER_LINEAR)  # BGR for OpenCV
    ok, jpg = cv2.imencode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    del stored
    data = jpg.tobytes()
    path = tmp_path_factory.mktemp("big") / "phone108.jpg"
    path.write_bytes(data[:2] + _exif_app1(6, FOCAL_35MM) + data[2:])
    return path


# --- reading a big photo at a working size ------------------------------------------------------------------


def test_108mp_jpeg_reads_reduced_upright_with_its_focal(photo108: Path, upright: np.ndarray) -> None:
    limit_before = Image.MAX_IMAGE_PIXELS
    assert STORED[0] * STORED[1] > 60_000_000 and STORED[0] * STORED[1] > limit_before  # refused before, Pillow warns
    info = read_image_with_info(photo108, max_side=2048)
    assert info.original_size == (9000, 12000)  # as stored
    assert info.image.shape == (2048, 1536, 3) and info.image.dtype == np.uint8  # upright: portrait
    assert info.scale == 2048 / 12000
    assert info.decode_reduction == 4  # libjpeg decoded 3000 x 2250, not 108 MP
    assert info.orientation == 6 and info.focal_35mm == FOCAL_35MM
    assert info.image.flags.writeable and info.image.flags.c_contiguous
    # the picture itself: the upright portrait, not a mirrored or turned one
    reference = cv2.resize(upright, (1536, 2048), interpolation=cv2.INTER_AREA).astype(np.int16)
    error = np.abs(info.image.astype(np.int16) - reference).mean()
    assert error < 3.0, error
    assert np.abs(info.image.astype(np.int16) - reference[::-1, ::-1]).mean() > 5 * error
    # the camera of the working image has the same field of view as the full photo's
    camera = photo_camera(info.image, info.focal_35mm)
    expected = FOCAL_35MM * math.hypot(1536, 2048) / math.hypot(36, 24)
    assert float(camera.fx[0]) == pytest.approx(expected, rel=1e-12)
    full = FOCAL_35MM * math.hypot(9000, 12000) / math.hypot(36, 24)
    assert float(camera.fx[0]) == pytest.approx(full * info.scale, rel=1e-12)
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_reduced_decode_matches_full_decode_and_area_averaging(photo108: Path) -> None:
    half = read_image_with_info(photo108, max_side=6000)  # libjpeg at 1/2: exactly the working size
    assert half.decode_reduction == 2 and half.image.shape == (6000, 4500, 3)
    small = read_image_with_info(photo108, max_side=1500)
    assert small.decode_reduction == 8 and small.image.shape == (1500, 1125, 3)
    reference = cv2.resize(half.image, (1125, 1500), interpolation=cv2.INTER_AREA).astype(np.int16)
    assert np.abs(small.image.astype(np.int16) - reference).mean() < 1.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_at_full_and_working_size(faces_dir: Path, tmp_path: Path, orientation: int) -> None:
    with Image.open(faces_dir / "d3dfr-000007.jpg") as im:  # 334 x 500
        stored = np.asarray(im.convert("RGB"))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(path, exif=exif)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(read_image(path), expected)
    info = read_image_with_info(path, max_side=400)  # 500 -> 400: OpenCV's area averaging, then the orientation
    small = Image.fromarray(cv2.resize(stored, (267, 400), interpolation=cv2.INTER_AREA))
    if orientation in TRANSPOSE:
        small = small.transpose(TRANSPOSE[orientation])
    np.testing.assert_array_equal(info.image, np.asarray(small))
    assert info.scale == 400 / 500 and info.original_size == (500, 334)


def test_other_formats_are_box_averaged_before_conversion(faces_dir: Path, tmp_path: Path) -> None:
    with Image.open(faces_dir / "d3dfr-000007.jpg") as im:
        photo = np.asarray(im.convert("RGB"))
    big = cv2.resize(photo, (334 * 6, 500 * 6), interpolation=cv2.INTER_NEAREST)  # 6 x 6 blocks
    Image.fromarray(big).save(tmp_path / "big.png", compress_level=1)
    info = read_image_with_info(tmp_path / "big.png", max_side=500)  # Pillow's reduce(6): the blocks come back
    assert info.decode_reduction == 1 and info.image.shape == photo.shape
    assert np.abs(info.image.astype(np.int16) - photo).max() <= 1


def test_a_bilevel_png_above_pillows_error_limit_reads(tmp_path: Path) -> None:
    limit_before = Image.MAX_IMAGE_PIXELS
    side = int((2 * limit_before) ** 0.5) + 100  # above twice Pillow's limit: Image.open itself would raise
    im = Image.new("1", (side, side))
    im.paste(1, (0, 0, side // 2, side))
    im.save(tmp_path / "bilevel.png")
    im.close()
    info = read_image_with_info(tmp_path / "bilevel.png", max_side=1000)
    assert info.image.shape == (1000, 1000, 3)
    assert (info.image[:, :495] == 255).all() and (info.image[:, 505:] == 0).all()
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_a_tiff_above_pillows_decoding_limit_is_decoded_with_opencv(tmp_path: Path) -> None:
    limit_before = Image.MAX_IMAGE_PIXELS
    width, height = 13400, 13360  # 179.0 MP: TIFF's load refuses above twice Pillow's limit
    assert width * height > 2 * limit_before
    ramp = np.add.outer((np.arange(height) // 40).astype(np.uint8), (np.arange(width) // 53).astype(np.uint8))  # wraps
    Image.fromarray(ramp).save(tmp_path / "big.tif", compression="packbits")  # runs of 53: ~7 MB
    expected = cv2.resize(ramp, (1000, 997), interpolation=cv2.INTER_AREA)
    del ramp
    info = read_image_with_info(tmp_path / "big.tif", max_side=1000)
    assert info.image.shape == (997, 1000, 3) and info.original_size == (height, width)
    np.testing.assert_array_equal(info.image[..., 0], expected)
    assert Image.MAX_IMAGE_PIXELS == limit_before


# --- decompression bombs ----------------------------------------------------------------------------------


def test_png_header_of_60000_x_60000_with_no_data_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.png"
    bare.write_bytes(_png(60000, 60000, 8, 2))  # signature + IHDR, nothing else: 33 bytes
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(_png(60000, 60000, 8, 2, (b"IDAT", zlib.compress(bytes(1000))), (b"IEND", b"")))
    for path in (bare, tiny):
        size = path.stat().st_size
        bound = size * 8 * 1032 // 24  # deflate's 1032:1 over 24-bit pixels
        with pytest.raises(ImageReadError) as err:
            read_image(path)
        text = str(err.value)
        assert "\n" not in text and str(path) in text
        assert "60000 x 60000 = 3600.0 megapixels" in text and f"at most {bound:,} pixels" in text, text
        assert "1032:1" in text and "decompression bomb" in text


def test_jpeg_with_a_huge_header_and_few_bytes_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 80, 60)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 50000, 40000)  # height, width
    path = tmp_path / "huge.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as err:
        read_image_with_info(path, max_side=2048)
    text = str(err.value)
    assert "\n" not in text and str(path) in text
    assert "40000 x 50000 = 2000.0 megapixels" in text and f"at most {len(data) * 512:,} pixels" in text, text
    assert "8 x 8 block" in text


def test_the_pixel_cap_still_applies_when_the_bytes_justify_the_pixels(tmp_path: Path) -> None:
    assert DEFAULT_MAX_PIXELS == 1_000_000_000
    side = 33000  # 1.089 gigapixels of 1 bit: 136 MB inflated, so >= 132 KB of deflate; padded with a private chunk
    path = tmp_path / "gigapixel.png"
    path.write_bytes(_png(side, side, 1, 0, (b"prVt", bytes(200_000)), (b"IEND", b"")))
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    text = str(err.value)
    assert "\n" not in text and "33000 x 33000 = 1089.0 megapixels" in text and "1,000,000,000 pixels" in text, text


def test_a_valid_file_at_deflates_maximum_ratio_is_not_a_bomb(tmp_path: Path) -> None:
    path = tmp_path / "black.png"
    Image.new("1", (7800, 7700)).save(path, optimize=True)  # all black: deflate near its 1032:1
    assert path.stat().st_size * 8 * 1032 < 7800 * 7700 * 8  # beyond the generic bound of an 8-bit picture
    assert read_image_with_info(path, max_side=1000).image.shape == (987, 1000, 3)


def test_max_side_arguments(photo108: Path) -> None:
    with pytest.raises(TypeError, match="max_side"):
        read_image_with_info(photo108, max_side=2048.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_side"):
        read_image_with_info(photo108, max_side=0)


# --- the whole command ------------------------------------------------------------------------------------


def test_reconstruct_a_108mp_photo_and_refuse_the_bombs(photo108: Path, tmp_path: Path, model_home: Path,
                                                        monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # fmt: skip
    from facerecon.cli.exit_codes import ExitCode
    from facerecon.cli.main import main

    monkeypatch.setenv("FACERECON_HOME", str(model_home))
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo108), "-o", str(out), "--stages", "landmarks", "--quiet"]) == 0
    params = json.loads((out / "phone108" / "0" / "params.json").read_text())
    assert params["image_size"] == {"height": 2048, "width": 1536}  # the working image (default max_image_side)
    fx = params["intrinsics"]["fx"]
    assert params["intrinsics"]["focal_source"] == "exif"
    assert fx == pytest.approx(FOCAL_35MM * math.hypot(1536, 2048) / math.hypot(36, 24), rel=1e-9)
    x0, y0, x1, y1 = params["box"]
    assert 0 <= x0 < x1 <= 1536 and 0 <= y0 < y1 <= 2048 and x1 - x0 > 500  # the face fills the portrait
    assert 250 < params["translation_mm"][2] < 450  # a head at arm's length: the focal length is right
    capsys.readouterr()

    png = tmp_path / "bomb.png"
    png.write_bytes(_png(60000, 60000, 8, 2))
    jpeg = tmp_path / "bomb.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    jpeg.write_bytes(bytes(data))
    code = main(["reconstruct", str(png), str(jpeg), "-o", str(tmp_path / "bombs"), "--quiet"])
    assert code == ExitCode.IMAGE_READ == 5  # every image failed for that one reason
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 2, lines  # one line per file
    for bomb, line in zip((png, jpeg), lines):
        assert str(bomb) in line and "3600.0 megapixels" in line and "at most" in line and "decompression bomb" in line


@pytest.mark.slow
def test_the_whole_reconstruction_of_a_108mp_photo_stays_at_the_working_size(photo108: Path, tmp_path: Path,
                                                                    model_home: Path) -> None:  # fmt: skip
    script = ("import resource, sys\nfrom facerecon.cli.main import main\ncode = main(sys.argv[1:])\n"
              "print('peak_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", script, "reconstruct", str(photo108), "-o", str(tmp_path / "out"), "--quiet"],
        check=False, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, cwd=REPO,
        env={**os.environ, "FACERECON_HOME": str(model_home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    peak = int(result.stdout.split("peak_kib")[-1]) * 1024
    # A guard against decoding or processing at full size (the 108 MP array alone is 324 MB, its float copies
    # several GB). The 2 GB target is measured by benchmarks/big_photo.py (1.69 GB); inside the suite this
    # process once peaked at 2.33 GB, so the test leaves room.
    assert peak <= 3_000_000_000, f"peak RSS {peak / 1e9:.2f} GB"
    assert (tmp_path / "out" / "phone108" / "0" / "overlay.png").is_file()
