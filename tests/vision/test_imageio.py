"""vision.imageio: every format and pixel mode, limits before decoding, typed errors."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from vision import imageio
from vision.imageio import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    SUPPORTED_FORMATS,
    CorruptImageError,
    EmptyImageError,
    ImageDecodeError,
    ImageInfo,
    ImageTooLargeError,
    UnsupportedFormatError,
    decode_image,
    encode_jpeg,
    encode_png,
    load_record,
    probe_image,
    read_image_file,
    window_to_uint8,
)
from vision.types import ImageRecord

LOSSLESS_SAVE = {"JPEG": None, "PNG": {}, "TIFF": {}, "BMP": {}, "WEBP": {"lossless": True}}


def save(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def rgb_image(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def blocky_image(h: int = 32, w: int = 48) -> np.ndarray:
    """Flat 16 px colour blocks: survives JPEG with small error, so positions can be checked."""
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w, 3), np.uint8)
    out[..., 0] = (xs // 16) * 80
    out[..., 1] = (ys // 16) * 120
    out[..., 2] = 40
    return out


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG whose IHDR declares ``width x height`` but whose IDAT holds a single empty row."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00"))
        + png_chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------ formats and modes


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_every_format_decodes_to_rgb_uint8(fmt):
    pixels = blocky_image() if fmt == "JPEG" else rgb_image()
    params = LOSSLESS_SAVE[fmt]
    data = save(Image.fromarray(pixels), fmt, **(params or {"quality": 95}))
    out = decode_image(data)
    assert out.shape == pixels.shape and out.dtype == np.uint8
    assert out.flags.c_contiguous and out.flags.writeable
    if params is None:  # JPEG is lossy
        assert np.abs(out.astype(int) - pixels).mean() < 3
    else:
        np.testing.assert_array_equal(out, pixels)
    assert probe_image(data) == ImageInfo(format=fmt, width=pixels.shape[1], height=pixels.shape[0], mode="RGB")


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_every_format_greyscale_becomes_three_equal_channels(fmt):
    grey = rgb_image()[..., 0] if fmt != "JPEG" else blocky_image()[..., 0]
    data = save(Image.fromarray(grey, mode="L"), fmt, **(LOSSLESS_SAVE[fmt] or {"quality": 95}))
    out = decode_image(data)
    assert out.shape == (*grey.shape, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    if fmt != "JPEG":
        np.testing.assert_array_equal(out[..., 0], grey)


def test_jpeg_with_extra_frames_mpo_counts_as_jpeg():
    frames = [Image.fromarray(blocky_image()), Image.fromarray(255 - blocky_image())]
    data = save(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert probe_image(data).format == "JPEG"
    assert np.abs(decode_image(data).astype(int) - blocky_image()).mean() < 3


# 16-bit greyscale, as X-ray scanners write it


def gradient16(h: int = 40, w: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(1000, 50000, h * w).reshape(h, w)
    return (base + rng.normal(0, 200, (h, w))).clip(0, 65535).astype(np.uint16)


def reference_window(values: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values.astype(np.float64), [0.5, 99.5], method="inverted_cdf")
    return np.rint(np.clip((values - lo) * 255.0 / (hi - lo), 0, 255)).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_greyscale_is_windowed_to_8bit(fmt):
    values = gradient16()
    data = save(Image.fromarray(values), fmt)
    assert probe_image(data).mode == "I;16"
    out = decode_image(data)
    assert out.dtype == np.uint8 and out.shape == (*values.shape, 3)
    grey = out[..., 0]
    # The window spans the whole 8-bit range and 0.5 % tails saturate.
    assert grey.min() == 0 and grey.max() == 255
    assert 0 < np.mean(grey == 0) <= 0.01 and 0 < np.mean(grey == 255) <= 0.01
    # Monotonic increasing: dense (low) stays dark, air (high) stays bright.
    order = np.argsort(values, axis=None, kind="stable")
    assert np.all(np.diff(grey.ravel()[order].astype(int)) >= 0)
    np.testing.assert_array_equal(grey, reference_window(values))


def test_16bit_orientation_tag_in_tiff_is_applied():
    values = gradient16(20, 30)
    data = save(Image.fromarray(values), "TIFF", tiffinfo={274: 6})
    out = decode_image(data)
    assert out.shape == (30, 20, 3)
    np.testing.assert_array_equal(out[..., 0], np.rot90(reference_window(values), k=-1))


def test_16bit_png_made_by_hand_big_endian_and_narrow_range():
    # A 12-bit detector in a 16-bit container: the window still spans 0..255.
    values = (np.arange(64 * 32).reshape(32, 64) % 4096).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in values)
    ihdr = struct.pack(">IIBBBBB", 64, 32, 16, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
    data += png_chunk(b"IEND", b"")
    grey = decode_image(data)[..., 0]
    np.testing.assert_array_equal(grey, reference_window(values.astype(np.uint16)))
    assert grey.min() == 0 and grey.max() == 255


def test_16bit_rgb_png_keeps_the_high_byte():
    values = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 900).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in values)
    ihdr = struct.pack(">IIBBBBB", 6, 4, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
    data += png_chunk(b"IEND", b"")
    np.testing.assert_array_equal(decode_image(data), (values >> 8).astype(np.uint8))


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (65535, 255), (32768, 128)])
def test_constant_16bit_image_uses_the_full_range(value, expected):
    data = save(Image.fromarray(np.full((8, 8), value, np.uint16)), "PNG")
    assert np.all(decode_image(data) == expected)


def test_window_to_uint8_byte_orders_and_dtypes_agree():
    values = gradient16(16, 16, seed=3)
    expected = reference_window(values)
    np.testing.assert_array_equal(window_to_uint8(values), expected)
    np.testing.assert_array_equal(window_to_uint8(values.astype(">u2")), expected)
    np.testing.assert_array_equal(window_to_uint8(values.astype(np.int32)), expected)
    np.testing.assert_array_equal(window_to_uint8(values.astype(np.float32)), expected)


def test_float_tiff_non_finite_pixels_become_black():
    values = np.linspace(-1.0, 3.0, 100, dtype=np.float32).reshape(10, 10)
    values[0, 0], values[5, 5] = np.nan, np.inf
    grey = decode_image(save(Image.fromarray(values), "TIFF"))[..., 0]
    assert grey[0, 0] == 0 and grey[5, 5] == 0
    finite = np.isfinite(values)
    order = np.argsort(values[finite], kind="stable")
    assert np.all(np.diff(grey[finite][order].astype(int)) >= 0)
    assert grey[finite].max() == 255


def test_32bit_integer_tiff():
    values = np.arange(100, dtype=np.int32).reshape(10, 10) * 1000
    data = save(Image.fromarray(values, mode="I"), "TIFF")
    assert probe_image(data).mode == "I"
    np.testing.assert_array_equal(decode_image(data)[..., 0], reference_window(values))


# Transparency, palettes, other colour spaces


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_rgba_is_composited_on_white(fmt):
    rgba = np.zeros((4, 3, 4), np.uint8)
    rgba[..., :3] = (200, 40, 0)
    rgba[0, :, 3] = 0  # transparent: white
    rgba[1, :, 3] = 255  # opaque: the colour
    rgba[2:, :, 3] = 128
    data = save(Image.fromarray(rgba, mode="RGBA"), fmt, **(LOSSLESS_SAVE[fmt] or {}))
    out = decode_image(data)
    assert out.shape == (4, 3, 3)
    np.testing.assert_array_equal(out[0], 255)
    np.testing.assert_array_equal(out[1], [[200, 40, 0]] * 3)
    # 200 * 128/255 + 255 * 127/255 = 227.4 ; 40 -> 147.1 ; 0 -> 127
    np.testing.assert_array_equal(out[2], [[227, 147, 127]] * 3)


def test_greyscale_with_alpha_is_composited_on_white():
    la = Image.new("LA", (5, 5), (0, 0))
    la.putpixel((2, 2), (10, 255))
    out = decode_image(save(la, "PNG"))
    assert out[0, 0].tolist() == [255, 255, 255] and out[2, 2].tolist() == [10, 10, 10]


def test_palette_without_and_with_transparency():
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((1, 1), 1)
    plain = decode_image(save(pal, "PNG"))
    assert plain[0, 0].tolist() == [255, 0, 0] and plain[1, 1].tolist() == [0, 0, 255]
    with_trns = decode_image(save(pal, "PNG", transparency=0))
    assert with_trns[0, 0].tolist() == [255, 255, 255] and with_trns[1, 1].tolist() == [0, 0, 255]
    bmp = decode_image(save(pal, "BMP"))
    np.testing.assert_array_equal(bmp, plain)


def test_bilevel_image():
    image = Image.new("1", (6, 3), 0)
    image.putpixel((5, 2), 1)
    out = decode_image(save(image, "BMP"))
    assert out[0, 0].tolist() == [0, 0, 0] and out[2, 5].tolist() == [255, 255, 255]


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_is_converted(fmt):
    data = save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), fmt)  # pure red ink mix
    assert probe_image(data).mode == "CMYK"
    out = decode_image(data)
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - [255, 0, 0]).max() <= 3


# EXIF orientation


def test_jpeg_exif_orientation_6_rotates_clockwise():
    stored = blocky_image(32, 48)  # 48 wide, 32 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = save(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    info = probe_image(data)
    assert (info.width, info.height) == (48, 32)  # the header is as stored
    out = decode_image(data)
    assert out.shape == (48, 32, 3)
    expected = np.rot90(stored, k=-1)
    assert np.abs(out.astype(int) - expected).mean() < 3
    # The stored top-left block (red 0, green 0) is now at the top-right.
    assert out[2, -3, 0] < 20 and out[2, -3, 1] < 20
    assert out[-3, -3, 0] > 140  # the stored top-right (red 160) is now bottom-right


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(orientation):
    stored = rgb_image(5, 7, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(Image.fromarray(stored), "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    out = decode_image(data)
    np.testing.assert_array_equal(out, expected)
    assert out.shape[:2] == ((7, 5) if orientation >= 5 else (5, 7))
    assert out.flags.c_contiguous


def test_malformed_exif_is_ignored_not_fatal():
    jpeg = save(Image.fromarray(blocky_image()), "JPEG")
    junk = b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff\x00\x00"
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk + jpeg[2:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the corrupt EXIF
        assert decode_image(data).shape == (32, 48, 3)


# ---------------------------------------------------------------------------------- typed errors


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (EmptyImageError, "empty"),
        (UnsupportedFormatError, "unsupported_format"),
        (ImageTooLargeError, "too_large"),
        (CorruptImageError, "corrupt"),
    ],
)
def test_error_classes_and_codes(cls, code):
    assert issubclass(cls, ImageDecodeError) and issubclass(cls, ValueError)
    assert cls.code == code


def test_empty_bytes():
    for fn in (decode_image, probe_image):
        with pytest.raises(EmptyImageError, match="empty"):
            fn(b"")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.random.default_rng(0).bytes(2000), r"unsupported image format; supported"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF"),
        (save(Image.new("RGB", (8, 8)), "GIF"), "GIF"),
        (b"\x00" * 128 + b"DICM" + b"\x00" * 64, "DICOM"),
        (b"PK\x03\x04" + b"\x00" * 40, "ZIP"),
        (b"hello", "unsupported"),
    ],
    ids=["random", "pdf", "gif", "dicom", "zip", "text"],
)
def test_unsupported_formats(data, match):
    with pytest.raises(UnsupportedFormatError, match=match):
        decode_image(data)
    with pytest.raises(UnsupportedFormatError):
        probe_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP"])
def test_truncated_files_are_corrupt_not_grey_filled(fmt):
    data = save(Image.fromarray(rgb_image(64, 64)), fmt, **(LOSSLESS_SAVE[fmt] or {}))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(CorruptImageError) as info:
        decode_image(data[: len(data) // 2])
    assert info.value.code == "corrupt"


@pytest.mark.parametrize("cut", [3, 10, 30])
def test_truncated_headers_are_corrupt(cut):
    for fmt in ("JPEG", "PNG"):
        data = save(Image.fromarray(rgb_image()), fmt)
        with pytest.raises(CorruptImageError):
            decode_image(data[:cut])


def test_corrupt_png_checksum():
    data = bytearray(save(Image.fromarray(rgb_image()), "PNG"))
    data[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    with pytest.raises(CorruptImageError):
        decode_image(bytes(data))


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_fuzzed_files_raise_only_typed_errors(fmt):
    """Bytes flipped and files cut at random points: decoded or an ImageDecodeError, nothing else."""
    good = save(Image.fromarray(rgb_image(16, 16)), fmt, **(LOSSLESS_SAVE[fmt] or {}))
    rng = np.random.default_rng(len(fmt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(40):
            data = bytearray(good)
            for pos in rng.integers(0, len(data), int(rng.integers(1, 8))):
                data[pos] = int(rng.integers(0, 256))
            if rng.random() < 0.5:
                data = data[: int(rng.integers(1, len(data)))]
            try:
                out = decode_image(bytes(data), max_pixels=4096)
            except ImageDecodeError:
                continue
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


def test_load_truncated_images_switch_is_refused(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(save(Image.fromarray(rgb_image()), "PNG"))


# --------------------------------------------------------------------------------------- limits


def test_defaults():
    assert DEFAULT_MAX_BYTES == 50 * 1024**2
    assert DEFAULT_MAX_PIXELS == 100_000_000
    assert SUPPORTED_FORMATS == ("JPEG", "PNG", "TIFF", "BMP", "WEBP")


def test_huge_png_header_is_refused_without_decoding():
    data = png_header_only(60_000, 60_000)
    assert len(data) < 100
    assert probe_image(data) == ImageInfo(format="PNG", width=60_000, height=60_000, mode="RGB")
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(data)
    # Decoding would need 10.8 GB and, since the IDAT is empty, end in CorruptImageError instead.
    assert time.perf_counter() - start < 1.0
    err = info.value
    assert (err.quantity, err.limit, err.actual) == ("pixels", DEFAULT_MAX_PIXELS, 3_600_000_000)
    assert "60000 x 60000 = 3,600,000,000 pixels" in str(err) and "100,000,000" in str(err)


def test_huge_jpeg_and_bmp_headers_are_refused():
    jpeg = bytearray(save(Image.fromarray(blocky_image()), "JPEG"))
    sof = jpeg.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)
    bmp = bytearray(save(Image.fromarray(rgb_image()), "BMP"))
    bmp[18:26] = struct.pack("<ii", 40_000, 40_000)  # BITMAPINFOHEADER width, height
    for data in (bytes(jpeg), bytes(bmp)):
        with pytest.raises(ImageTooLargeError) as info:
            decode_image(data)
        assert info.value.quantity == "pixels" and info.value.actual in (3_600_000_000, 1_600_000_000)


def test_pillow_global_bomb_limit_does_not_interfere(monkeypatch):
    # Our per-call max_pixels is the only pixel limit: no DecompressionBombError or warning.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = save(Image.fromarray(rgb_image(50, 50)), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image(data).shape == (50, 50, 3)
        assert probe_image(data).pixels == 2500


def test_pixel_limit_boundary():
    data = save(Image.fromarray(rgb_image(20, 30)), "PNG")
    assert decode_image(data, max_pixels=600).shape == (20, 30, 3)
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(data, max_pixels=599)
    assert (info.value.limit, info.value.actual) == (599, 600)


def test_byte_limit_boundary():
    data = save(Image.fromarray(rgb_image()), "PNG")
    assert decode_image(data, max_bytes=len(data)).shape == (24, 32, 3)
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(data, max_bytes=len(data) - 1)
    err = info.value
    assert (err.quantity, err.limit, err.actual) == ("bytes", len(data) - 1, len(data))
    assert f"{len(data):,} bytes" in str(err)


def test_byte_limit_is_checked_before_parsing():
    with pytest.raises(ImageTooLargeError):
        decode_image(b"\x00" * 101, max_bytes=100)  # unsupported bytes, but too large first


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_pixels": 0}])
def test_invalid_limits(kwargs):
    with pytest.raises(ValueError, match=">= 1"):
        decode_image(b"x", **kwargs)


def test_non_bytes_input_is_a_type_error():
    with pytest.raises(TypeError, match="bytes"):
        decode_image("not bytes")


def test_bytearray_and_memoryview_are_accepted():
    data = save(Image.fromarray(rgb_image()), "PNG")
    np.testing.assert_array_equal(decode_image(bytearray(data)), decode_image(memoryview(data)))


# ----------------------------------------------------------------------------- files and records


def test_read_image_file(tmp_path):
    pixels = rgb_image()
    path = tmp_path / "scan.png"
    path.write_bytes(save(Image.fromarray(pixels), "PNG"))
    np.testing.assert_array_equal(read_image_file(path), pixels)
    np.testing.assert_array_equal(read_image_file(str(path)), pixels)


def test_read_image_file_refuses_large_file_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(b"\x00" * 2000)

    def must_not_open(*args, **kwargs):
        raise AssertionError("the file was opened although it is over the limit")

    monkeypatch.setattr(Path, "open", must_not_open)
    with pytest.raises(ImageTooLargeError) as info:
        read_image_file(path, max_bytes=1000)
    assert (info.value.limit, info.value.actual) == (1000, 2000)


def test_read_image_file_missing_is_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image_file(tmp_path / "absent.png")


def test_load_record():
    pixels = rgb_image()
    data = save(Image.fromarray(pixels), "TIFF")
    record = load_record(
        data, record_id="r1", modality="xray", source={"filename": "bag.tif", "format": "caller's guess"}
    )
    assert isinstance(record, ImageRecord)
    assert record.id == "r1" and record.modality == "xray"
    np.testing.assert_array_equal(record.pixels, pixels)
    assert record.source == {
        "filename": "bag.tif",
        "format": "TIFF",
        "sha256": hashlib.sha256(data).hexdigest(),
        "mode": "RGB",
        "size_bytes": len(data),
        "original_width": 32,
        "original_height": 24,
    }


def test_load_record_errors():
    with pytest.raises(ValueError, match="modality"):
        load_record(encode_png(rgb_image()), record_id="x", modality="audio")
    with pytest.raises(ImageTooLargeError):
        load_record(encode_png(rgb_image()), record_id="x", modality="document", max_pixels=10)


# ------------------------------------------------------------------------------------- encoders


def test_encode_png_round_trips():
    pixels = rgb_image()
    np.testing.assert_array_equal(decode_image(encode_png(pixels)), pixels)
    grey = pixels[..., 1]
    np.testing.assert_array_equal(decode_image(encode_png(grey))[..., 0], grey)
    values16 = gradient16(8, 8)
    assert probe_image(encode_png(values16)).mode == "I;16"


def test_encode_jpeg():
    pixels = blocky_image()
    data = encode_jpeg(pixels, quality=95)
    assert probe_image(data).format == "JPEG"
    assert np.abs(decode_image(data).astype(int) - pixels).mean() < 3
    assert len(encode_jpeg(pixels, quality=20)) < len(data)


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)],
    ids=["four-channels", "float", "empty"],
)
def test_encoders_reject_bad_arrays(pixels):
    with pytest.raises(ValueError, match="cannot encode"):
        encode_png(pixels)
    with pytest.raises(ValueError, match="cannot encode"):
        encode_jpeg(pixels)


def test_encode_jpeg_rejects_16bit_and_bad_quality():
    with pytest.raises(ValueError, match="cannot encode"):
        encode_jpeg(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(np.zeros((4, 4, 3), np.uint8), quality=0)


def test_module_exports():
    assert set(imageio.__all__) >= {"decode_image", "probe_image", "load_record", "ImageDecodeError"}
