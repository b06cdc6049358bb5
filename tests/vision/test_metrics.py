"""Tests of vision.metrics: COCO-style AP, precision/recall, ignore regions, class-agnostic merging."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vision.metrics import (
    COCO_IOU_THRESHOLDS,
    GroundTruth,
    MetricsError,
    average_precision,
    evaluate_detections,
)
from vision.types import Detections

NAMES = ("a", "b", "c")


def gt(boxes, classes, ignore=None) -> GroundTruth:
    return GroundTruth(
        xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
        class_id=np.asarray(classes, np.int64),
        ignore=np.asarray(ignore if ignore is not None else [False] * len(classes), bool),
    )


def det(boxes, conf, classes) -> Detections:
    return Detections(
        xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
        confidence=np.asarray(conf, np.float32),
        class_id=np.asarray(classes, np.int64),
        class_names=NAMES,
    )


def test_perfect_predictions_score_one():
    gts = [gt([[0, 0, 10, 10], [20, 20, 40, 30]], [0, 1]), gt([[5, 5, 50, 60]], [2])]
    preds = [det(g.xyxy, [0.9] * len(g), g.class_id) for g in gts]
    m = evaluate_detections(preds, gts, class_names=NAMES)
    assert m.map50 == pytest.approx(1.0)
    assert m.map50_95 == pytest.approx(1.0)
    assert m.precision == 1.0 and m.recall == 1.0
    assert m.num_gt.tolist() == [1, 1, 1]


def test_no_predictions_score_zero():
    gts = [gt([[0, 0, 10, 10]], [0]), gt([[5, 5, 50, 60]], [2])]
    m = evaluate_detections([Detections.empty(NAMES)] * 2, gts, class_names=NAMES)
    assert m.map50 == 0.0 and m.map50_95 == 0.0
    assert m.recall == 0.0
    assert math.isnan(m.precision)  # nothing was reported, so precision is undefined
    assert math.isnan(m.ap50[1])  # class "b" has no ground truth: left out of the mean


def test_empty_evaluation_is_nan_not_an_error():
    m = evaluate_detections([], [], class_names=NAMES)
    assert math.isnan(m.map50) and math.isnan(m.recall) and m.num_images == 0
    d = m.to_dict()
    assert d["map50"] is None
    json.dumps(d)  # JSON-ready


def test_hand_computed_case():
    # Two objects; detections: 0.9 hits the first, 0.8 misses, 0.7 hits the second.
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; the envelope is 1 up to recall 0.5 (51 of the 101
    # points) and 2/3 above (50 points).
    gts = [gt([[0, 0, 10, 10], [100, 100, 120, 120]], [0, 0])]
    preds = [det([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 120, 120]], [0.9, 0.8, 0.7], [0, 0, 0])]
    m = evaluate_detections(preds, gts, class_names=NAMES, conf_threshold=0.75)
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert m.ap50[0] == pytest.approx(expected)
    assert m.map50 == pytest.approx(expected)
    # At confidence 0.75 only the first two count: one TP, one FP.
    assert m.tp[0] == 1 and m.fp[0] == 1
    assert m.precision == pytest.approx(0.5) and m.recall == pytest.approx(0.5)


def test_iou_threshold_sweep():
    # IoU of a 10x10 box with a 10x6 box inside it is 0.6: a hit at 0.50, 0.55, 0.60 only.
    gts = [gt([[0, 0, 10, 10]], [1])]
    preds = [det([[0, 0, 10, 6]], [0.5], [1])]
    m = evaluate_detections(preds, gts, class_names=NAMES)
    assert m.ap[1].tolist() == [1.0, 1.0, 1.0] + [0.0] * 7
    assert m.map50_95 == pytest.approx(0.3)


def test_duplicate_detection_is_a_false_positive():
    gts = [gt([[0, 0, 10, 10], [100, 100, 120, 120]], [0, 0])]
    preds = [det([[0, 0, 10, 10], [0.5, 0, 10, 10], [100, 100, 120, 120]], [0.9, 0.8, 0.7], [0, 0, 0])]
    m = evaluate_detections(preds, gts, class_names=NAMES, conf_threshold=0.0)
    assert (m.tp[0], m.fp[0]) == (2, 1)
    assert m.ap50[0] == pytest.approx((51 + 50 * (2 / 3)) / 101)


def test_ignored_ground_truth_is_neither_tp_nor_fp():
    gts = [gt([[0, 0, 10, 10], [100, 100, 120, 120]], [0, 0], ignore=[False, True])]
    preds = [det([[0, 0, 10, 10], [100, 100, 120, 120]], [0.6, 0.9], [0, 0])]
    m = evaluate_detections(preds, gts, class_names=NAMES, conf_threshold=0.0)
    assert m.num_gt[0] == 1
    assert (m.tp[0], m.fp[0]) == (1, 0)
    assert m.ap50[0] == pytest.approx(1.0)
    # Without the ignore flag the same detections give full recall and precision too, but count 2 TPs.
    full = evaluate_detections(preds, [gt(gts[0].xyxy, [0, 0])], class_names=NAMES, conf_threshold=0.0)
    assert (full.tp[0], full.num_gt[0]) == (2, 2)


def test_ignored_box_matched_once_then_duplicates_are_false_positives():
    gts = [gt([[0, 0, 10, 10]], [0], ignore=[True])]
    preds = [det([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    m = evaluate_detections(preds, gts, class_names=NAMES, conf_threshold=0.0)
    assert (m.tp[0], m.fp[0], m.num_gt[0]) == (0, 1, 0)
    assert math.isnan(m.ap50[0])


def test_detection_prefers_a_real_box_over_an_ignored_one():
    # The detection overlaps the ignored box more, but a non-ignored box above the threshold wins.
    gts = [gt([[0, 0, 10, 10], [0, 0, 10, 12]], [0, 0], ignore=[True, False])]
    preds = [det([[0, 0, 10, 10]], [0.9], [0])]
    m = evaluate_detections(preds, gts, class_names=NAMES, conf_threshold=0.0)
    assert (m.tp[0], m.fp[0]) == (1, 0)


def test_only_marks_other_boxes_ignored():
    g = gt([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]], [0, 1, 2], ignore=[False, True, False])
    sub = g.only([True, True, False])
    assert sub.ignore.tolist() == [False, True, True]
    with pytest.raises(MetricsError, match="keep mask"):
        g.only([True])


def test_class_agnostic_merges_classes():
    gts = [gt([[0, 0, 10, 10]], [0])]
    preds = [det([[0, 0, 10, 10]], [0.9], [2])]  # right place, wrong class
    aware = evaluate_detections(preds, gts, class_names=NAMES)
    agnostic = evaluate_detections(preds, gts, class_names=NAMES, class_agnostic=True)
    assert aware.map50 == 0.0
    assert agnostic.class_names == ("object",)
    assert agnostic.map50 == pytest.approx(1.0)
    assert agnostic.recall == 1.0


def test_max_detections_keeps_the_most_confident():
    gts = [gt([[0, 0, 10, 10]], [0])]
    preds = [det([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.1], [0, 0])]
    assert evaluate_detections(preds, gts, class_names=NAMES).map50 == pytest.approx(0.5)
    assert evaluate_detections(preds, gts, class_names=NAMES, max_detections=1).map50 == 0.0


def test_tuple_predictions_equal_detections():
    g = [gt([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])]
    boxes = np.array([[1, 1, 10, 10], [20, 21, 30, 30], [0, 0, 5, 5]], np.float32)
    conf = np.array([0.3, 0.8, 0.5], np.float32)
    cls = np.array([0, 1, 0])
    a = evaluate_detections([det(boxes, conf, cls)], g, class_names=NAMES)
    b = evaluate_detections([(boxes, conf, cls)], g, class_names=NAMES)
    np.testing.assert_array_equal(a.ap, b.ap)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iou_thresholds": [0.75]}, "must include 0.5"),
        ({"iou_thresholds": [0.5, 1.5]}, r"\(0, 1\]"),
        ({"max_detections": 0}, "max_detections"),
        ({"class_names": ()}, "class_names"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"class_names": NAMES, **kwargs}
    with pytest.raises(MetricsError, match=message):
        evaluate_detections([Detections.empty(NAMES)], [GroundTruth.empty()], **args)


def test_bad_inputs():
    with pytest.raises(MetricsError, match="1 images but ground truth for 2"):
        evaluate_detections([Detections.empty()], [GroundTruth.empty()] * 2, class_names=NAMES)
    with pytest.raises(MetricsError, match="ground-truth class id"):
        evaluate_detections([Detections.empty()], [gt([[0, 0, 1, 1]], [3])], class_names=NAMES)
    with pytest.raises(MetricsError, match="prediction class id"):
        evaluate_detections([(np.zeros((1, 4)), [0.5], [-1])], [GroundTruth.empty()], class_names=NAMES)
    with pytest.raises(MetricsError, match="must be"):
        evaluate_detections([(np.zeros((2, 4)), [0.5], [0])], [GroundTruth.empty()], class_names=NAMES)
    with pytest.raises(MetricsError, match="shape"):
        GroundTruth(xyxy=np.zeros((2, 3)), class_id=np.zeros(2))


def test_average_precision_edge_cases():
    assert math.isnan(average_precision(np.zeros(0, bool), np.zeros(0), 0))
    assert average_precision(np.zeros(0, bool), np.zeros(0), 3) == 0.0
    assert average_precision(np.array([False, False]), np.array([0.9, 0.8]), 1) == 0.0


# --- comparison with a literal, loop-by-loop reference implementation -------------------------------


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _reference_ap(preds, gts, c, thr) -> float:
    """COCO AP of class c at one threshold, written as directly as possible."""
    records = []  # (confidence, outcome) with outcome "tp" / "fp" / "ignore"
    n_gt = 0
    for (boxes, conf, cls), g in zip(preds, gts, strict=True):
        gboxes = [(b.tolist(), bool(ig)) for b, k, ig in zip(g.xyxy, g.class_id, g.ignore, strict=True) if k == c]
        n_gt += sum(1 for _, ig in gboxes if not ig)
        used = [False] * len(gboxes)
        order = sorted((i for i in range(len(conf)) if cls[i] == c), key=lambda i: -conf[i])
        for i in order:
            best, best_iou = None, -1.0
            for want_ignored in (False, True):
                for j, (gb, ig) in enumerate(gboxes):
                    if used[j] or ig != want_ignored:
                        continue
                    v = _iou(boxes[i].tolist(), gb)
                    if v >= thr and v > best_iou:
                        best, best_iou = j, v
                if best is not None:
                    break
            if best is None:
                records.append((conf[i], "fp"))
            else:
                used[best] = True
                records.append((conf[i], "ignore" if gboxes[best][1] else "tp"))
    if n_gt == 0:
        return math.nan
    records = [r for r in sorted(records, key=lambda r: -r[0]) if r[1] != "ignore"]
    tp = fp = 0
    points = []
    for _, outcome in records:
        tp += outcome == "tp"
        fp += outcome == "fp"
        points.append((tp / n_gt, tp / (tp + fp)))
    total = 0.0
    for k in range(101):
        r = k / 100
        total += max([p for rec, p in points if rec >= r], default=0.0)
    return total / 101


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(6):
        m = int(rng.integers(0, 5))
        xy = rng.uniform(0, 80, (m, 2))
        wh = rng.uniform(5, 30, (m, 2))
        gboxes = np.concatenate([xy, xy + wh], 1)
        gcls = rng.integers(0, 3, m)
        gts.append(gt(gboxes, gcls, ignore=rng.random(m) < 0.2))
        # Detections: jittered copies of some objects (sometimes twice, sometimes the wrong class)
        # plus random clutter.
        pick = rng.integers(0, max(m, 1), int(rng.integers(0, 2 * m + 1))) if m else np.zeros(0, int)
        jitter = rng.normal(0, 1.5, (pick.size, 4))
        dboxes = gboxes[pick] + jitter if m else np.zeros((0, 4))
        dcls = np.where(rng.random(pick.size) < 0.15, rng.integers(0, 3, pick.size), gcls[pick] if m else 0)
        k = int(rng.integers(0, 4))
        cxy = rng.uniform(0, 80, (k, 2))
        clutter = np.concatenate([cxy, cxy + rng.uniform(5, 30, (k, 2))], 1)
        boxes = np.concatenate([dboxes.reshape(-1, 4), clutter]).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        cls = np.concatenate([dcls, rng.integers(0, 3, k)]).astype(np.int64)
        conf = rng.random(boxes.shape[0]).astype(np.float32)
        preds.append((boxes, conf, cls))
    m = evaluate_detections(preds, gts, class_names=NAMES)
    for c in range(3):
        for t, thr in enumerate(COCO_IOU_THRESHOLDS):
            ref = _reference_ap(preds, gts, c, float(thr))
            if math.isnan(ref):
                assert math.isnan(m.ap[c, t])
            else:
                assert m.ap[c, t] == pytest.approx(ref, abs=1e-9), (c, thr)


def test_recall_points_are_exact_hundredths():
    # 7 of 10 objects found with no false positive: the envelope is 1 at recall 0.00 ... 0.70 exactly
    # (71 of 101 points). A linspace-made point 0.7000000000000001 would drop the last one.
    tp = np.array([True] * 7)
    assert average_precision(tp, np.linspace(0.9, 0.3, 7), 10) == pytest.approx(71 / 101)
