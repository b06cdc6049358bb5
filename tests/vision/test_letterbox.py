"""vision.letterbox: pixels identical to ultralytics, exact box round trip, NCHW packing."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.letterbox import LetterboxTransform, letterbox, letterbox_nchw, to_nchw

SHAPES = [
    ((480, 640), (640, 640)),  # landscape into square: pad top/bottom
    ((700, 300), (640, 640)),  # portrait: pad left/right
    ((37, 1001), (320, 416)),  # odd padding split
    ((1, 3000), (640, 640)),  # thin strip: resized height kept at 1 px
    ((640, 640), (640, 640)),  # no resize, no padding
    ((100, 50), (640, 640)),  # upscale
    ((333, 517), (384, 640)),  # rectangular target
]


@pytest.fixture(scope="module")
def ultralytics_letterbox():
    os.environ.setdefault("YOLO_OFFLINE", "1")
    augment = pytest.importorskip("ultralytics.data.augment")
    return augment.LetterBox


@pytest.mark.parametrize(("src_hw", "dst_hw"), SHAPES)
@pytest.mark.parametrize("scaleup", [True, False])
def test_pixels_identical_to_ultralytics(ultralytics_letterbox, src_hw, dst_hw, scaleup):
    rng = np.random.default_rng(sum(src_hw) + sum(dst_hw))
    image = rng.integers(0, 256, (*src_hw, 3), dtype=np.uint8)
    out, transform = letterbox(image, dst_hw, scaleup=scaleup)
    expected = ultralytics_letterbox(new_shape=dst_hw, scaleup=scaleup)(image=image)
    assert out.shape == (*dst_hw, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
    assert transform.dst_hw == dst_hw and transform.src_hw == src_hw


@pytest.mark.parametrize(("src_hw", "dst_hw"), SHAPES)
def test_boxes_map_like_ultralytics_scale_boxes(src_hw, dst_hw):
    ops = pytest.importorskip("ultralytics.utils.ops")
    rng = np.random.default_rng(5)
    h, w = src_hw
    xy = rng.uniform(0, 0.5, (20, 2)) * (w, h)
    boxes = np.concatenate([xy, xy + rng.uniform(0, 0.5, (20, 2)) * (w, h)], axis=1)
    transform = LetterboxTransform.fit(src_hw, dst_hw)
    in_net = transform.to_letterbox(boxes)
    expected = ops.scale_boxes(dst_hw, in_net.copy(), src_hw)
    np.testing.assert_allclose(transform.to_original(in_net), expected, atol=1e-3)


def test_padding_layout_and_value():
    image = np.full((100, 200, 3), 7, np.uint8)
    out, t = letterbox(image, (64, 64), pad_value=0)
    # 200 -> 64 wide, 100 -> 32 high: 16 rows of padding on each side.
    assert (t.pad_x, t.pad_y, t.resized_hw) == (0, 16, (32, 64))
    assert np.all(out[:16] == 0) and np.all(out[48:] == 0)
    assert np.all(out[16:48] == 7)


def test_odd_padding_extra_pixel_goes_bottom_right():
    out, t = letterbox(np.zeros((10, 10, 3), np.uint8), (13, 13), scaleup=False, pad_value=255)
    assert (t.pad_x, t.pad_y, t.scale) == (1, 1, 1.0)
    assert np.all(out[:1] == 255) and np.all(out[11:] == 255)  # 1 row on top, 2 at the bottom
    assert np.all(out[1:11, 1:11] == 0)


def test_scaleup_false_only_pads():
    _, t = letterbox(np.zeros((100, 50, 3), np.uint8), (640, 640), scaleup=False)
    assert t.scale == 1.0 and t.resized_hw == (100, 50)


def test_interpolation_is_configurable():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    linear, _ = letterbox(image, (100, 100))
    area, _ = letterbox(image, (100, 100), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(area, cv2.resize(image, (100, 100), interpolation=cv2.INTER_AREA))
    assert not np.array_equal(linear, area)


@pytest.mark.parametrize(
    ("image", "size", "kwargs", "match"),
    [
        (np.zeros((10, 10), np.uint8), (32, 32), {}, r"\(H, W, 3\) uint8"),
        (np.zeros((10, 10, 3), np.float32), (32, 32), {}, r"\(H, W, 3\) uint8"),
        (np.zeros((0, 10, 3), np.uint8), (32, 32), {}, "src_hw must be positive"),
        (np.zeros((10, 10, 3), np.uint8), (0, 32), {}, "dst_hw must be positive"),
        (np.zeros((10, 10, 3), np.uint8), (32, 32), {"pad_value": 256}, "pad_value"),
    ],
)
def test_letterbox_rejects_bad_input(image, size, kwargs, match):
    with pytest.raises(ValueError, match=match):
        letterbox(image, size, **kwargs)


def test_to_original_clips_to_the_image():
    t = LetterboxTransform.fit((100, 200), (64, 64))
    out = t.to_original(np.array([[-10, 0, 70, 64]], np.float32))  # reaches into the padding
    np.testing.assert_allclose(out, [[0, 0, 200, 100]])
    assert out.dtype == np.float32


def test_empty_boxes():
    t = LetterboxTransform.fit((100, 200), (64, 64))
    assert t.to_original(np.zeros((0, 4))).shape == (0, 4)
    assert t.to_letterbox([]).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        t.to_original(np.zeros((3, 5)))


@st.composite
def transform_and_boxes(draw):
    src_h, src_w = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
    # Network inputs: 32..4096 px a side, aspect within 1:4. (The round trip goes through float32
    # letterbox coordinates, whose rounding is divided by the scale on the way back; a 1-px-wide
    # input of a 4000-px image would amplify it beyond 1e-3 px.)
    dst_h = draw(st.integers(32, 4096))
    dst = (dst_h, draw(st.integers(max(32, dst_h // 4), min(4096, 4 * dst_h))))
    n = draw(st.integers(1, 8))
    unit = st.floats(0.0, 1.0, allow_nan=False)
    corners = np.array([[draw(unit) for _ in range(4)] for _ in range(n)])
    x = np.sort(corners[:, [0, 2]], axis=1) * src_w
    y = np.sort(corners[:, [1, 3]], axis=1) * src_h
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    return LetterboxTransform.fit((src_h, src_w), dst, scaleup=draw(st.booleans())), boxes


@settings(max_examples=300, derandomize=True, deadline=None)
@given(transform_and_boxes())
def test_round_trip_is_exact(case):
    transform, boxes = case
    back = transform.to_original(transform.to_letterbox(boxes))
    np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-3)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000), st.integers(1, 4000), st.integers(1, 4000))
def test_fit_invariants(src_h, src_w, dst_h, dst_w):
    t = LetterboxTransform.fit((src_h, src_w), (dst_h, dst_w))
    new_h, new_w = t.resized_hw
    assert 1 <= new_h <= dst_h and 1 <= new_w <= dst_w
    assert new_h == dst_h or new_w == dst_w  # the image touches two opposite borders
    # Centred; an odd leftover pixel goes to the right / bottom.
    assert dst_w - new_w - 2 * t.pad_x in (0, 1)
    assert dst_h - new_h - 2 * t.pad_y in (0, 1)
    # The exact per-axis gains differ from the nominal one only by the rounding of the size.
    assert abs(t.scale_x - t.scale) * src_w <= 0.5 or new_w == 1
    assert abs(t.scale_y - t.scale) * src_h <= 0.5 or new_h == 1


def test_to_nchw_values_and_layout():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = to_nchw(images, mean=mean, std=std)
    expected = (np.stack(images).transpose(0, 3, 1, 2) / 255.0 - np.reshape(mean, (3, 1, 1))) / np.reshape(
        std, (3, 1, 1)
    )
    assert out.shape == (3, 3, 5, 7) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_to_nchw_default_is_bitwise_x_over_255():
    # The same float32 division ultralytics does on torch tensors (im.float() / 255).
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    expected = image.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(to_nchw([image])[0], expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_to_nchw_other_dtypes(dtype):
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(2)]
    out = to_nchw(images, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), dtype=dtype)
    expected = (np.stack(images).transpose(0, 3, 1, 2) / 255.0 - 0.5) / np.reshape((0.25, 0.5, 1.0), (3, 1, 1))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=1e-3 if dtype == np.float16 else 1e-12, atol=1e-3)


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        ([], {}, "at least one image"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)], {}, "image 1"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)], {}, "image 1"),
        ([np.zeros((4, 4), np.uint8)], {}, r"\(h, w, 3\)"),
        ([np.zeros((4, 4, 3), np.uint8)], {"std": (1.0, 0.0, 1.0)}, "non-zero"),
        ([np.zeros((4, 4, 3), np.uint8)], {"dtype": np.int32}, "float dtype"),
    ],
)
def test_to_nchw_rejects_bad_input(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_nchw(images, **kwargs)


# ------------------------------------------------------------------------------ letterbox_nchw


@pytest.mark.parametrize(("src_hw", "dst_hw"), SHAPES)
@pytest.mark.parametrize(
    ("mean", "std", "dtype"),
    [
        ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), np.float32),
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), np.float32),
        ((0.5, 0.5, 0.5), (0.25, 0.5, 1.0), np.float16),
        ((0.1, 0.2, 0.3), (1.0, 1.0, 1.0), np.float64),
    ],
)
def test_letterbox_nchw_is_bitwise_letterbox_then_to_nchw(src_hw, dst_hw, mean, std, dtype):
    rng = np.random.default_rng(sum(src_hw))
    images = [rng.integers(0, 256, (*src_hw, 3), dtype=np.uint8), rng.integers(0, 256, (50, 80, 3), dtype=np.uint8)]
    tensor, transforms = letterbox_nchw(images, dst_hw, pad_value=114, mean=mean, std=std, dtype=dtype)
    boxed = [letterbox(im, dst_hw, pad_value=114) for im in images]
    expected = to_nchw([b for b, _ in boxed], mean=mean, std=std, dtype=dtype)
    assert tensor.dtype == dtype and tensor.flags.c_contiguous
    np.testing.assert_array_equal(tensor, expected)
    assert transforms == [t for _, t in boxed]


def test_letterbox_nchw_fills_extra_batch_rows_with_padding():
    image = np.full((30, 60, 3), 200, np.uint8)
    tensor, transforms = letterbox_nchw([image], (32, 32), pad_value=114, batch=3)
    assert tensor.shape == (3, 3, 32, 32) and len(transforms) == 1
    np.testing.assert_array_equal(tensor[1:], np.float32(114) / np.float32(255))
    assert tensor[0, :, 16, 16].tolist() == [np.float32(200) / np.float32(255)] * 3


def test_letterbox_nchw_with_src_hw_maps_to_the_original():
    # A 200 x 300 original decoded at half size: the transform is the original's, the pixels are the
    # half-size image resized to the original's letterboxed size.
    rng = np.random.default_rng(3)
    half = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    tensor, (transform,) = letterbox_nchw([half], (64, 64), src_hw=[(200, 300)])
    assert transform == LetterboxTransform.fit((200, 300), (64, 64))
    new_h, new_w = transform.resized_hw
    resized = cv2.resize(half, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = transform.pad_y, transform.pad_x
    np.testing.assert_array_equal(tensor[0, :, top : top + new_h, left : left + new_w], to_nchw([resized])[0])
    # A box over the whole letterboxed content is the whole original.
    content = [[left, top, left + new_w, top + new_h]]
    np.testing.assert_allclose(transform.to_original(content), [[0, 0, 300, 200]], atol=1e-3)


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        ([], {}, "at least one image"),
        ([np.zeros((4, 4), np.uint8)], {}, r"image 0 must be an \(H, W, 3\) uint8"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)], {}, "image 1"),
        ([np.zeros((4, 4, 3), np.uint8)], {"src_hw": [(4, 4), (4, 4)]}, "2 sizes for 1 images"),
        ([np.zeros((4, 4, 3), np.uint8)], {"src_hw": [(0, 4)]}, "positive"),
        ([np.zeros((4, 4, 3), np.uint8)] * 2, {"batch": 1}, "at least the number of images"),
        ([np.zeros((4, 4, 3), np.uint8)], {"pad_value": 300}, "pad_value"),
        ([np.zeros((4, 4, 3), np.uint8)], {"std": (1.0, 0.0, 1.0)}, "non-zero"),
        ([np.zeros((4, 4, 3), np.uint8)], {"dtype": np.uint8}, "float dtype"),
    ],
)
def test_letterbox_nchw_rejects_bad_input(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        letterbox_nchw(images, (8, 8), **kwargs)
