"""vision.boxes against torchvision.ops, plus the edge cases (empty, single, identical, degenerate)."""

from __future__ import annotations

import numpy as np
import pytest

from vision.boxes import batched_nms, box_iou, clip_boxes, mirror_boxes, nms, weighted_box_fusion, xywh_to_xyxy


@pytest.fixture(scope="module")
def tv_ops():
    """torchvision.ops, the reference; the comparisons skip where torch is not installed."""
    pytest.importorskip("torch")
    return pytest.importorskip("torchvision.ops")


def random_boxes(rng: np.random.Generator, n: int, *, size: float = 200.0, dtype=np.float32) -> np.ndarray:
    """n boxes with corners in [0, size + 60], clustered enough that many overlap."""
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, 60, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def _t(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("seed", range(40))
def test_nms_and_batched_nms_equal_torchvision(seed, tv_ops):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    boxes = random_boxes(rng, n, size=float(rng.uniform(20, 400)))
    scores = rng.random(n).astype(np.float32)  # continuous: no ties
    classes = rng.integers(0, int(rng.integers(1, 6)), n)
    thr = float(rng.uniform(0.05, 0.95))

    expected = tv_ops.nms(_t(boxes), _t(scores), thr).numpy()
    got = nms(boxes, scores, thr)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)

    expected_b = tv_ops.batched_nms(_t(boxes), _t(scores), _t(classes), thr).numpy()
    got_b = batched_nms(boxes, scores, classes, thr)
    assert got_b.dtype == np.int64
    np.testing.assert_array_equal(got_b, expected_b)


def test_batched_nms_equal_torchvision_on_large_input(tv_ops):
    # Above 4,000 coordinates torchvision switches to its per-class loop on CPU.
    rng = np.random.default_rng(123)
    n = 2500
    boxes = random_boxes(rng, n, size=300.0)
    scores = rng.random(n).astype(np.float32)
    classes = rng.integers(0, 10, n)
    expected = tv_ops.batched_nms(_t(boxes), _t(scores), _t(classes), 0.5).numpy()
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.5), expected)


def test_nms_float64_boxes_equal_torchvision(tv_ops):
    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 200, dtype=np.float64)
    scores = rng.random(200)
    expected = tv_ops.nms(_t(boxes), _t(scores), 0.4).numpy()
    np.testing.assert_array_equal(nms(boxes, scores, 0.4), expected)


def test_nms_keeps_boxes_by_descending_score():
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 100)
    scores = rng.random(100).astype(np.float32)
    keep = nms(boxes, scores, 0.5)
    assert np.all(np.diff(scores[keep]) <= 0)
    # No two kept boxes overlap more than the threshold.
    iou = box_iou(boxes[keep], boxes[keep])
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.5


@pytest.mark.parametrize("seed", range(10))
def test_box_iou_equals_torchvision(seed, tv_ops):
    rng = np.random.default_rng(seed)
    a = random_boxes(rng, int(rng.integers(1, 60)))
    b = random_boxes(rng, int(rng.integers(1, 60)))
    got = box_iou(a, b)
    assert got.dtype == np.float32 and got.shape == (len(a), len(b))
    np.testing.assert_allclose(got, tv_ops.box_iou(_t(a), _t(b)).numpy(), rtol=0, atol=1e-6)


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]], atol=1e-7)


def test_box_iou_mixed_precision_promotes():
    a = np.array([[0.0, 0.0, 1.0, 1.0]], np.float64)
    b = np.array([[0.0, 0.0, 1.0, 1.0 + 1e-9]], np.float32)
    assert box_iou(a, b).dtype == np.float32


@pytest.mark.parametrize("fn", ["nms", "batched_nms"])
def test_empty_input_returns_empty_int64(fn):
    boxes = np.zeros((0, 4), np.float32)
    scores = np.zeros((0,), np.float32)
    keep = nms(boxes, scores, 0.5) if fn == "nms" else batched_nms(boxes, scores, np.zeros(0, np.int64), 0.5)
    assert keep.dtype == np.int64 and keep.shape == (0,)


def test_empty_list_input():
    assert nms([], [], 0.5).shape == (0,)
    assert box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert box_iou(np.zeros((2, 4)), []).shape == (2, 0)
    assert clip_boxes(np.zeros((0, 4)), 10, 10).shape == (0, 4)
    assert xywh_to_xyxy(np.zeros((0, 4))).shape == (0, 4)


def test_single_box():
    boxes = np.array([[1, 2, 3, 4]], np.float32)
    np.testing.assert_array_equal(nms(boxes, np.array([0.3]), 0.5), [0])
    np.testing.assert_array_equal(batched_nms(boxes, np.array([0.3]), np.array([2]), 0.5), [0])


def test_all_identical_boxes(tv_ops):
    boxes = np.tile(np.array([[10, 10, 50, 40]], np.float32), (6, 1))
    scores = np.array([0.1, 0.9, 0.3, 0.9, 0.5, 0.2], np.float32)
    classes = np.array([0, 0, 1, 0, 1, 2])
    # Equal top scores: the lower index wins, as in torchvision's stable sort.
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), tv_ops.nms(_t(boxes), _t(scores), 0.5).numpy())
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1])
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.5), [1, 4, 5])
    # IoU 1 is not > 1: nothing is suppressed at threshold 1.
    np.testing.assert_array_equal(nms(boxes, scores, 1.0), [1, 3, 4, 2, 5, 0])


def test_degenerate_zero_area_boxes_never_suppress(tv_ops):
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 0], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.1), [0, 1, 2, 3])
    np.testing.assert_array_equal(nms(boxes, scores, 0.1), tv_ops.nms(_t(boxes), _t(scores), 0.1).numpy())
    iou = box_iou(boxes, boxes)
    assert np.all(np.isfinite(iou))
    np.testing.assert_array_equal(iou[:3], 0.0)  # where torchvision gives NaN or 0
    assert iou[3, 3] == 1.0


def test_nms_compares_threshold_in_double_precision(tv_ops):
    # IoU exactly 1/3 in float32 (0.33333334) is above the double 1/3 but equals float32(1/3).
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    thr = 1 / 3
    np.testing.assert_array_equal(nms(boxes, scores, thr), tv_ops.nms(_t(boxes), _t(scores), thr).numpy())


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((3, 4)), np.zeros(2), 0.5), "scores must have shape"),
        ((np.zeros((3, 5)), np.zeros(3), 0.5), r"shape \(N, 4\)"),
        ((np.zeros((2, 4)), np.array([0.1, np.nan]), 0.5), "NaN"),
        ((np.array([[0, 0, np.inf, 1]]), np.array([0.1]), 0.5), "NaN or infinite"),
    ],
)
def test_nms_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        nms(*args)


def test_batched_nms_rejects_bad_classes():
    with pytest.raises(ValueError, match="integers"):
        batched_nms(np.zeros((2, 4)), np.zeros(2), np.array([0.5, 1.0]), 0.5)
    with pytest.raises(ValueError, match="class_ids must have shape"):
        batched_nms(np.zeros((2, 4)), np.zeros(2), np.array([0]), 0.5)


def test_clip_boxes():
    boxes = np.array([[-5, -1, 20, 30], [3, 4, 5, 6]], np.float32)
    out = clip_boxes(boxes, height=10, width=15)
    np.testing.assert_array_equal(out, [[0, 0, 15, 10], [3, 4, 5, 6]])
    assert out.dtype == np.float32
    assert boxes[0, 0] == -5  # input untouched
    assert clip_boxes(boxes.astype(np.float64), 10, 15).dtype == np.float64
    assert clip_boxes(boxes.astype(np.int32), 10, 15).dtype == np.float32


def test_xywh_to_xyxy(tv_ops):
    cxcywh = np.array([[10, 20, 4, 6], [0.5, 0.5, 1, 1]], np.float32)
    out = xywh_to_xyxy(cxcywh)
    np.testing.assert_allclose(out, [[8, 17, 12, 23], [0, 0, 1, 1]])
    assert out.dtype == np.float32
    expected = tv_ops.box_convert(_t(cxcywh), "cxcywh", "xyxy").numpy()
    np.testing.assert_allclose(out, expected)


# ------------------------------------------------------------------------------ weighted box fusion


def test_fusion_averages_matching_boxes_by_score_and_halves_lone_ones():
    view_a = ([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.6], [0, 0])
    view_b = ([[2, 0, 12, 10]], [0.3], [0])
    xyxy, scores, classes = weighted_box_fusion([view_a, view_b], iou_threshold=0.55)
    # The overlapping pair (IoU 0.67) fuses: box weighted 0.9 : 0.3, score (0.9 + 0.3) / 2.
    np.testing.assert_allclose(xyxy, [[0.5, 0, 10.5, 10], [50, 50, 60, 60]], atol=1e-5)
    np.testing.assert_allclose(scores, [0.6, 0.3], atol=1e-6)
    assert classes.tolist() == [0, 0]


def test_fusion_keeps_classes_and_views_apart():
    same_place = [[0, 0, 10, 10]]
    # Another class at the same place is another object.
    _, scores, classes = weighted_box_fusion([(same_place, [0.8], [0]), (same_place, [0.8], [1])])
    assert sorted(classes.tolist()) == [0, 1] and scores.tolist() == pytest.approx([0.4, 0.4])
    # Two boxes of one view never fuse with each other (NMS already decided they are two objects):
    # the second view's box joins the best-scoring one only.
    view_a = ([[0, 0, 10, 10], [1, 0, 11, 10]], [0.8, 0.7], [0, 0])
    view_b = ([[0, 0, 10, 10]], [0.6], [0])
    _, scores, _ = weighted_box_fusion([view_a, view_b])
    assert scores.tolist() == pytest.approx([0.7, 0.35])


def test_fusion_of_nothing_and_bad_input():
    xyxy, scores, classes = weighted_box_fusion([(np.zeros((0, 4)), [], []), (np.zeros((0, 4)), [], [])])
    assert xyxy.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)
    with pytest.raises(ValueError, match="at least one view"):
        weighted_box_fusion([])
    with pytest.raises(ValueError, match="view 0"):
        weighted_box_fusion([([[0, 0, 1, 1]], [0.5, 0.4], [0])])


def test_mirror_boxes_is_its_own_inverse():
    boxes = np.array([[2.0, 3.0, 10.0, 8.0]])
    np.testing.assert_allclose(mirror_boxes(boxes, 100), [[90.0, 3.0, 98.0, 8.0]])
    np.testing.assert_allclose(mirror_boxes(mirror_boxes(boxes, 100), 100), boxes)
