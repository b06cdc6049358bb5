"""vision.imageio.decode_image_reduced: JPEGs decoded only as large as the letterbox needs."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from vision.imageio import (
    CorruptImageError,
    ImageTooLargeError,
    decode_image,
    decode_image_reduced,
    encode_jpeg,
    encode_png,
)
from vision.letterbox import LetterboxTransform


def scan(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour blobs (JPEG-friendly, so full and reduced decodes are comparable)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))


def jpeg(pixels: np.ndarray, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    extra = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    Image.fromarray(pixels).save(buf, "JPEG", quality=92, **extra)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("hw", "fit", "max_factor", "factor"),
    [
        ((1280, 960), (416, 416), 2, 2),  # gain 0.325: half size still covers 416 x 312
        ((1280, 960), (416, 416), 8, 2),  # a quarter (320 x 240) would not
        ((1700, 900), (416, 416), 8, 4),  # gain 0.245: a quarter (425 x 225) still covers 416 x 220
        ((1700, 900), (416, 416), 2, 2),  # capped by max_factor
        ((3400, 3400), (416, 416), 8, 8),
        ((640, 640), (416, 416), 8, 1),  # gain 0.65: nothing to gain
        ((800, 800), (416, 416), 8, 1),  # gain 0.52 > 1/2: half size (400) would be smaller than 416
        ((1280, 960), (416, 416), 1, 1),  # reduction off
    ],
)
def test_factor_is_the_largest_the_letterbox_allows(hw, fit, max_factor, factor):
    h, w = hw
    reduced = decode_image_reduced(jpeg(scan(h, w)), fit, max_factor=max_factor)
    assert reduced.factor == factor and reduced.original_hw == (h, w)
    assert reduced.pixels.shape == (-(-h // factor), -(-w // factor), 3)
    assert reduced.pixels.dtype == np.uint8 and reduced.pixels.flags.c_contiguous and reduced.pixels.flags.writeable
    new_h, new_w = LetterboxTransform.fit((h, w), fit).resized_hw
    assert reduced.pixels.shape[0] >= new_h and reduced.pixels.shape[1] >= new_w


def test_reduced_pixels_match_a_full_decode_shrunk_by_area():
    pixels = scan(1024, 768, seed=1)
    data = jpeg(pixels)
    reduced = decode_image_reduced(data, (416, 416))
    expected = cv2.resize(decode_image(data), (384, 512), interpolation=cv2.INTER_AREA)
    assert reduced.factor == 2
    diff = np.abs(reduced.pixels.astype(np.int16) - expected.astype(np.int16))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 8


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_orientation_applies_to_pixels_and_original_size(orientation):
    stored = scan(1200, 900, seed=2)  # 1200 rows x 900 columns as stored
    data = jpeg(stored, orientation)
    reduced = decode_image_reduced(data, (416, 416))
    full = decode_image(data)
    assert reduced.original_hw == full.shape[:2]
    assert reduced.factor == 2 and reduced.pixels.shape[:2] == (-(-full.shape[0] // 2), -(-full.shape[1] // 2))
    shrunk = cv2.resize(full, reduced.pixels.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.pixels.astype(np.int16) - shrunk).mean() < 2.0


def test_non_jpeg_formats_decode_at_full_size():
    pixels = scan(1280, 960)
    reduced = decode_image_reduced(encode_png(pixels), (416, 416), max_factor=8)
    assert reduced.factor == 1 and reduced.original_hw == (1280, 960)
    np.testing.assert_array_equal(reduced.pixels, pixels)


def test_limits_apply_to_the_full_size():
    data = encode_jpeg(scan(1280, 960))
    with pytest.raises(ImageTooLargeError) as caught:
        decode_image_reduced(data, (416, 416), max_pixels=1280 * 960 - 1)  # the half-size image would fit
    assert caught.value.quantity == "pixels" and caught.value.actual == 1280 * 960
    with pytest.raises(ImageTooLargeError):
        decode_image_reduced(data, (416, 416), max_bytes=len(data) - 1)


def test_truncated_jpeg_is_still_an_error():
    data = encode_jpeg(scan(1280, 960))
    with pytest.raises(CorruptImageError):
        decode_image_reduced(data[: len(data) // 2], (416, 416))


@pytest.mark.parametrize(
    ("fit", "kwargs", "match"),
    [((0, 416), {}, "fit_hw"), ((416,), {}, "fit_hw"), ((416, 416), {"max_factor": 3}, "max_factor")],
)
def test_bad_arguments(fit, kwargs, match):
    with pytest.raises(ValueError, match=match):
        decode_image_reduced(encode_jpeg(scan(64, 64)), fit, **kwargs)
