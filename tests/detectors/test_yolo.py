"""YOLO head decoding (detectors.yolo) and the shared detector (detectors.base) on a real ONNX model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from detectors.base import YoloDetector
from detectors.yolo import (
    DecodeOptions,
    YoloOutputError,
    decode_anchor_free,
    decode_batch,
    decode_end_to_end,
    head_format,
)
from vision.modelcard import ModelCard, ModelCardError, sha256_file
from vision.types import ModelSpec

NAMES = ("cat", "dog", "bird")


def options(conf: float = 0.25, **kw) -> DecodeOptions:
    return DecodeOptions.build(NAMES, conf_threshold=conf, **kw)


def anchor_free(rows: list[tuple[float, float, float, float, int, float]], nc: int = 3, pad: int = 2) -> np.ndarray:
    """(4+nc, A) prediction: one anchor per row (cx, cy, w, h, class, score), plus ``pad`` empty anchors."""
    pred = np.zeros((4 + nc, len(rows) + pad), np.float32)
    pred[:4, len(rows) :] = [[5.0], [5.0], [2.0], [2.0]]
    for a, (cx, cy, w, h, cls, score) in enumerate(rows):
        pred[:4, a] = (cx, cy, w, h)
        pred[4 + cls, a] = score
    return pred


# ------------------------------------------------------------------------------ anchor-free head


def test_anchor_free_decodes_boxes_sorted_by_confidence():
    pred = anchor_free([(20, 30, 10, 4, 1, 0.6), (50, 50, 20, 20, 0, 0.9)])
    pred[4 + 2, 0] = 0.3  # a weaker second class on the first anchor: single-label keeps the best only

    det = decode_anchor_free(pred, options())

    np.testing.assert_allclose(det.xyxy, [[40, 40, 60, 60], [15, 28, 25, 32]])
    np.testing.assert_allclose(det.confidence, [0.9, 0.6], rtol=1e-6)
    assert det.class_id.tolist() == [0, 1]
    assert det.labels == ["cat", "dog"]
    assert det.xyxy.dtype == np.float32 and det.class_id.dtype == np.int64


def test_anchor_free_per_class_threshold_replaces_the_global_one():
    pred = anchor_free([(10, 10, 4, 4, 0, 0.30), (40, 40, 4, 4, 1, 0.60), (70, 70, 4, 4, 2, 0.15)])

    det = decode_anchor_free(pred, options(0.25, class_thresholds={"dog": 0.7, "bird": 0.1}))

    # cat 0.30 >= global 0.25; dog 0.60 < its own 0.7; bird 0.15 >= its own 0.1 (below the global)
    assert det.labels == ["cat", "bird"]


def test_anchor_free_threshold_is_inclusive():
    pred = anchor_free([(10, 10, 4, 4, 0, 0.5)])
    assert len(decode_anchor_free(pred, options(0.5))) == 1


def test_nms_suppresses_overlapping_boxes_of_the_same_class_only():
    pred = anchor_free(
        [
            (50, 50, 20, 20, 0, 0.9),
            (51, 50, 20, 20, 0, 0.8),  # same class, IoU ~0.9 -> suppressed
            (50, 51, 20, 20, 1, 0.7),  # other class on the same spot -> kept (class-aware)
            (90, 90, 10, 10, 0, 0.6),  # same class, far away -> kept
        ]
    )
    det = decode_anchor_free(pred, options(iou_threshold=0.45))
    assert det.class_id.tolist() == [0, 1, 0]
    np.testing.assert_allclose(det.confidence, [0.9, 0.7, 0.6], rtol=1e-6)


def test_nms_iou_threshold_controls_suppression():
    # IoU of these two boxes is 10*20 / (20*20 + 20*20 - 10*20) = 1/3
    pred = anchor_free([(50, 50, 20, 20, 0, 0.9), (60, 50, 20, 20, 0, 0.8)])
    assert len(decode_anchor_free(pred, options(iou_threshold=0.5))) == 2
    assert len(decode_anchor_free(pred, options(iou_threshold=0.3))) == 1


def test_max_det_keeps_the_most_confident():
    rows = [(10.0 + 20 * i, 10, 8, 8, 0, 0.3 + 0.05 * i) for i in range(6)]
    det = decode_anchor_free(anchor_free(rows), options(max_det=2))
    np.testing.assert_allclose(det.confidence, [0.55, 0.5], rtol=1e-6)


def test_multi_label_reports_each_class_above_threshold():
    pred = anchor_free([(30, 30, 10, 10, 0, 0.8)])
    pred[4 + 2, 0] = 0.5
    assert decode_anchor_free(pred, options()).labels == ["cat"]
    multi = decode_anchor_free(pred, options(multi_label=True))
    assert multi.labels == ["cat", "bird"]
    np.testing.assert_allclose(multi.xyxy[0], multi.xyxy[1])


def test_empty_when_nothing_reaches_the_threshold():
    pred = anchor_free([(30, 30, 10, 10, 0, 0.2)])
    det = decode_anchor_free(pred, options(0.25))
    assert len(det) == 0
    assert det.class_names == NAMES
    assert det.xyxy.shape == (0, 4)


def test_non_finite_predictions_are_dropped():
    pred = anchor_free([(np.nan, 30, 10, 10, 0, 0.9), (30, 30, np.inf, 10, 1, 0.9), (60, 60, 10, 10, 2, 0.8)])
    assert decode_anchor_free(pred, options()).labels == ["bird"]


def test_candidates_are_capped_before_nms(monkeypatch):
    monkeypatch.setattr("detectors.yolo.MAX_NMS_CANDIDATES", 100)
    a = 150
    rng = np.random.default_rng(0)
    pred = np.zeros((7, a), np.float32)
    pred[0] = np.arange(a) * 10.0  # disjoint boxes, so NMS removes none
    pred[1] = 5.0
    pred[2:4] = 2.0
    pred[4] = rng.permutation(np.linspace(0.3, 1.0, a))
    det = decode_anchor_free(pred, options(max_det=1000))
    assert len(det) == 100
    # the cap keeps the most confident candidates
    np.testing.assert_allclose(np.sort(det.confidence), np.sort(pred[4])[50:], rtol=1e-6)


@pytest.mark.parametrize("max_det", [1, 5, 40, 1000])
def test_max_det_early_stop_equals_full_nms(max_det):
    from vision.boxes import batched_nms

    rng = np.random.default_rng(3)
    a = 3000
    pred = np.zeros((7, a), np.float32)
    pred[:2] = rng.uniform(0, 200, (2, a))
    pred[2:4] = rng.uniform(4, 40, (2, a))
    pred[4:] = rng.uniform(0, 1, (3, a)).round(2)  # many tied scores on purpose
    opts = options(max_det=max_det)

    det = decode_anchor_free(pred, opts)

    best = pred[4:].argmax(0)
    conf = pred[4:].max(0)
    keep = np.flatnonzero(conf >= 0.25)
    xyxy = np.concatenate([pred[:2, keep] - pred[2:4, keep] / 2, pred[:2, keep] + pred[2:4, keep] / 2]).T
    full = keep[batched_nms(xyxy, conf[keep], best[keep], 0.45)][:max_det]
    assert len(det) == min(max_det, len(full))
    np.testing.assert_allclose(det.xyxy, xyxy[np.searchsorted(keep, full)], atol=1e-4)
    np.testing.assert_array_equal(det.class_id, best[full])


# ------------------------------------------------------------------------------ end-to-end head


def test_end_to_end_applies_thresholds_without_nms():
    pred = np.array(
        [
            [10, 10, 30, 30, 0.9, 1],
            [11, 10, 31, 30, 0.8, 1],  # overlapping duplicate: the model already decided to keep it
            [50, 50, 60, 70, 0.4, 2.0001],  # class ids are floats in the graph
            [0, 0, 0, 0, 0.0, 0],  # padding row
        ],
        np.float32,
    )
    det = decode_end_to_end(pred, options(class_thresholds={"bird": 0.5}))
    assert det.labels == ["dog", "dog"]
    np.testing.assert_allclose(det.xyxy, pred[:2, :4])

    det = decode_end_to_end(pred, options())
    assert det.labels == ["dog", "dog", "bird"]


def test_end_to_end_sorts_and_limits():
    pred = np.array([[0, 0, 5, 5, 0.3, 0], [0, 0, 5, 5, 0.9, 1], [0, 0, 5, 5, 0.6, 2]], np.float32)
    det = decode_end_to_end(pred, options(max_det=2))
    assert det.labels == ["dog", "bird"]


def test_end_to_end_unknown_class_above_threshold_is_an_error():
    pred = np.array([[0, 0, 5, 5, 0.9, 7], [0, 0, 5, 5, 0.01, 9]], np.float32)
    with pytest.raises(YoloOutputError, match="class id 7"):
        decode_end_to_end(pred, options())
    # below the threshold an out-of-range id is just padding
    assert len(decode_end_to_end(pred[1:], options())) == 0


def test_end_to_end_empty():
    det = decode_end_to_end(np.zeros((300, 6), np.float32), options())
    assert len(det) == 0 and det.class_names == NAMES


# ------------------------------------------------------------------------------ layouts and options


@pytest.mark.parametrize(
    ("shape", "nc", "expected"),
    [
        ((1, 7, 8400), 3, "anchor_free"),
        ((4, 11, 2100), 7, "anchor_free"),
        ((1, 300, 6), 3, "end_to_end"),
        ((2, 300, 6), 2, "end_to_end"),
        ((2, 6, 8400), 2, "anchor_free"),  # a 2-class anchor-free head also has 6 rows
    ],
)
def test_head_format_by_shape(shape, nc, expected):
    assert head_format(shape, nc) == expected


@pytest.mark.parametrize(
    ("shape", "nc", "message"),
    [
        ((1, 8400, 7), 3, "transposed"),
        ((1, 9, 8400), 3, "neither anchor-free"),
        ((7, 8400), 3, "3-D"),
        ((1, 1, 7, 8400), 3, "3-D"),
        ((1, 6, 6), 2, "both"),
    ],
)
def test_head_format_rejects_unknown_layouts(shape, nc, message):
    with pytest.raises(YoloOutputError, match=message):
        head_format(shape, nc)


def test_decode_batch_with_explicit_head_checks_the_shape():
    out = np.zeros((2, 6, 6), np.float32)
    opts = DecodeOptions.build(("a", "b"))
    assert len(decode_batch(out, opts, head="end_to_end")) == 2
    assert len(decode_batch(out, opts, head="anchor_free")) == 2
    with pytest.raises(YoloOutputError, match="not a end_to_end head"):
        decode_batch(np.zeros((2, 6, 100), np.float32), opts, head="end_to_end")
    with pytest.raises(ValueError, match="head must be one of"):
        decode_batch(out, opts, head="yolo")


def test_decode_batch_decodes_every_item_and_accepts_float16():
    out = np.stack([anchor_free([(20, 20, 10, 10, 0, 0.9)]), anchor_free([(20, 20, 10, 10, 2, 0.1)])])
    dets = decode_batch(out.astype(np.float16), options())
    assert [d.labels for d in dets] == [["cat"], []]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_thresholds": {"horse": 0.5}}, "unknown classes"),
        ({"conf_threshold": 1.5}, r"\[0, 1\]"),
        ({"class_thresholds": {"cat": -0.1}}, r"\[0, 1\]"),
        ({"iou_threshold": 2.0}, "iou_threshold"),
        ({"max_det": 0}, "max_det"),
    ],
)
def test_decode_options_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecodeOptions.build(NAMES, **kwargs)


def test_decode_options_need_class_names():
    with pytest.raises(ValueError, match="class name"):
        DecodeOptions.build(())


# ------------------------------------------------------------------------------ real ONNX model

INPUT = 64


def constant_model(path: Path, constant: np.ndarray) -> None:
    """An ONNX model whose output is ``constant`` (shape ``(1, ...)``) repeated along the input batch."""
    zeros = helper.make_node("ReduceMean", ["images", "axes"], ["mean"], keepdims=0)  # (B,)
    nodes = [
        zeros,
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
        helper.make_node("Reshape", ["zeros", "shape"], ["zeros3"]),  # (B, 1, 1)
        helper.make_node("Add", ["zeros3", "constant"], ["output0"]),  # broadcast to (B, ...)
    ]
    graph = helper.make_graph(
        nodes,
        "constant_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, INPUT, INPUT])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", *constant.shape[1:]])],
        initializer=[
            numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
            numpy_helper.from_array(constant.astype(np.float32), "constant"),
        ],
    )
    # IR 10: what onnxruntime 1.31 reads (onnx 1.23 would write a newer IR by default).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def write_card(tmp_path: Path, constant: np.ndarray, class_names=NAMES, max_batch: int = 4) -> Path:
    onnx_path = tmp_path / "toy.onnx"
    constant_model(onnx_path, constant)
    spec = ModelSpec(name="toy", version="1", input_size=(INPUT, INPUT), class_names=class_names, max_batch=max_batch)
    card = ModelCard(name="toy", version="1", task="detect", file="toy.onnx", sha256=sha256_file(onnx_path), spec=spec)
    card_path = tmp_path / "toy.json"
    card.save(card_path)
    return card_path


def test_detector_maps_letterbox_boxes_back_to_original_pixels(tmp_path):
    # In the 64x64 network input: a cat at (22, 27)-(42, 37) and a dog that lies wholly in the
    # letterbox padding of both test images (y < 16 for the wide one, x < 16 for the tall one).
    constant = anchor_free([(32, 32, 20, 10, 0, 0.9), (10, 5, 8, 6, 1, 0.8)])[None]
    detector = YoloDetector.from_card(write_card(tmp_path, constant), threads=1)
    wide = np.zeros((64, 128, 3), np.uint8)  # scale 0.5, padded 16 px top and bottom
    tall = np.zeros((64, 32, 3), np.uint8)  # scale 1 (no upscaling past the input), padded 16 px left/right
    wider = np.zeros((48, 96, 3), np.uint8)  # scale 2/3, padded 16 px top and bottom

    dets = detector.detect([wide, tall, wider])

    assert [d.labels for d in dets] == [["cat"], ["cat"], ["cat"]]
    np.testing.assert_allclose(dets[0].xyxy, [[44, 22, 84, 42]], atol=1e-3)
    np.testing.assert_allclose(dets[1].xyxy, [[6, 27, 26, 37]], atol=1e-3)
    np.testing.assert_allclose(dets[2].xyxy, [[33, 16.5, 63, 31.5]], atol=1e-3)
    np.testing.assert_allclose([d.confidence[0] for d in dets], 0.9, rtol=1e-6)
    t = detector.last_timings
    assert t.images == 3 and t.model_calls == 1
    assert t.preprocess_ms > 0 and t.model_ms > 0 and t.postprocess_ms > 0


def test_detector_maps_boxes_of_reduced_images_to_original_pixels(tmp_path):
    # The constant head puts a cat at (22, 27)-(42, 37) of the 64x64 input whatever the pixels, so
    # a half-size decode of a 64 x 128 original (given its original size) must report the boxes the
    # full-size image gets, in the original's pixels.
    constant = anchor_free([(32, 32, 20, 10, 0, 0.9)])[None]
    detector = YoloDetector.from_card(write_card(tmp_path, constant), threads=1)
    full = np.zeros((64, 128, 3), np.uint8)
    half = np.zeros((32, 64, 3), np.uint8)

    (expected,) = detector.detect([full])
    (got,) = detector.detect([half], original_hw=[(64, 128)])
    (unscaled,) = detector.detect([half])

    np.testing.assert_allclose(got.xyxy, expected.xyxy, atol=1e-3)
    np.testing.assert_allclose(got.xyxy, [[44, 22, 84, 42]], atol=1e-3)
    np.testing.assert_allclose(unscaled.xyxy, [[22, 11, 42, 21]], atol=1e-3)  # the half image's own pixels


@pytest.mark.parametrize(
    ("original_hw", "match"),
    [([(64, 128), (64, 128)], "2 sizes for 1 images"), ([(0, 128)], "positive"), ([(64,)], "positive")],
)
def test_detector_rejects_bad_original_sizes(tmp_path, original_hw, match):
    detector = YoloDetector.from_card(write_card(tmp_path, anchor_free([])[None]))
    with pytest.raises(ValueError, match=match):
        detector.detect([np.zeros((32, 64, 3), np.uint8)], original_hw=original_hw)


def test_detector_on_an_end_to_end_model(tmp_path):
    rows = np.zeros((1, 10, 6), np.float32)
    rows[0, 0] = (22, 27, 42, 37, 0.8, 2)
    rows[0, 1] = (0, 20, 64, 44, 0.1, 1)  # below threshold
    detector = YoloDetector.from_card(write_card(tmp_path, rows), threads=1)

    (det,) = detector.detect([np.zeros((64, 128, 3), np.uint8)])

    assert det.labels == ["bird"]
    np.testing.assert_allclose(det.xyxy, [[44, 22, 84, 42]], atol=1e-3)


def test_detector_empty_result_keeps_class_names(tmp_path):
    detector = YoloDetector.from_card(write_card(tmp_path, anchor_free([(32, 32, 8, 8, 0, 0.1)])[None]))
    (det,) = detector.detect([np.zeros((40, 50, 3), np.uint8)])
    assert len(det) == 0 and det.class_names == NAMES
    assert detector.detect([]) == []


def test_detector_reports_a_model_with_the_wrong_classes(tmp_path):
    # The card claims 3 classes but the head has 5 class rows.
    constant = np.zeros((1, 9, 20), np.float32)
    detector = YoloDetector.from_card(write_card(tmp_path, constant))
    with pytest.raises(YoloOutputError, match="model card list the model's classes"):
        detector.detect([np.zeros((64, 64, 3), np.uint8)])


def test_detector_rejects_bad_images(tmp_path):
    detector = YoloDetector.from_card(write_card(tmp_path, anchor_free([])[None]))
    with pytest.raises(ValueError, match="image 1"):
        detector.detect([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="uint8"):
        detector.detect([np.zeros((8, 8, 3), np.float32)])


def test_from_card_refuses_a_changed_model_file(tmp_path):
    card_path = write_card(tmp_path, anchor_free([])[None])
    with open(tmp_path / "toy.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelCardError, match="changed after it was measured"):
        YoloDetector.from_card(card_path)


def test_from_card_missing_files(tmp_path):
    with pytest.raises(ModelCardError, match="not found"):
        YoloDetector.from_card(tmp_path / "nope.json")
    card_path = write_card(tmp_path, anchor_free([])[None])
    (tmp_path / "toy.onnx").unlink()
    with pytest.raises(ModelCardError, match="does not exist"):
        YoloDetector.from_card(card_path)


def test_from_card_refuses_an_embedding_model(tmp_path):
    card_path = write_card(tmp_path, anchor_free([])[None])
    card = ModelCard.load(card_path)
    card.task = "embed"
    card.save(card_path)
    with pytest.raises(ModelCardError, match="not a detector"):
        YoloDetector.from_card(card_path)


# ------------------------------------------------------------------------------ parity with ultralytics


@pytest.mark.parametrize(("multi_label", "iou"), [(False, 0.45), (True, 0.45), (False, 0.7)])
def test_anchor_free_decoding_matches_ultralytics(multi_label, iou):
    """Same detections as ultralytics' own NMS on a realistic random head output (ties aside:
    ultralytics keeps scores strictly above the threshold, we keep scores equal to it too)."""
    pytest.importorskip("torchvision")
    nms = pytest.importorskip("ultralytics.utils.nms")
    import torch

    rng = np.random.default_rng(7)
    b, nc, a = 2, 7, 2100
    pred = np.empty((b, 4 + nc, a), np.float32)
    pred[:, :2] = rng.uniform(0, 320, (b, 2, a))
    pred[:, 2:4] = rng.uniform(5, 80, (b, 2, a))
    pred[:, 4:] = 1 / (1 + np.exp(-rng.normal(-4, 2, (b, nc, a))))  # a few hundred above 0.25

    ours = decode_batch(
        pred, DecodeOptions.build([str(i) for i in range(nc)], iou_threshold=iou, multi_label=multi_label)
    )
    theirs = nms.non_max_suppression(torch.from_numpy(pred), 0.25, iou, multi_label=multi_label, max_det=300)

    for d, t in zip(ours, theirs, strict=True):
        t = t.numpy()
        assert len(d) == len(t) > 20
        np.testing.assert_allclose(d.xyxy, t[:, :4], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(d.confidence, t[:, 4], rtol=1e-6)
        np.testing.assert_array_equal(d.class_id, t[:, 5].astype(np.int64))
