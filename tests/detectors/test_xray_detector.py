"""ThreatDetector: batching through a backend, per-class thresholds and the X-ray risk rule table."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from detectors.synth.xray import generate_scan
from detectors.xray import RISK_RULES, XRAY_CLASSES, RiskRule, ThreatDetector, as_positive, assess_risk, is_negative
from vision.runtime.base import BackendError, InferenceBackend, TensorSpec
from vision.types import Detections, ImageRecord, ModelSpec

SIZE = 32
NC = len(XRAY_CLASSES)


class ScriptedBackend:
    """A backend whose anchor-free output is scripted per image from the image's brightness.

    Image ``k`` (mean pixel value ``k``, as made by :func:`image`) gets one box at
    ``(k, k)-(k+4, k+4)`` in network pixels with the class and score of ``script[k]``. The box does
    not move when the image is mirrored, so the tests using it switch ``flip_tta`` off (see
    :class:`BlobBackend` for the mirrored view).
    """

    name = "scripted"

    def __init__(self, script: Mapping[int, tuple[int, float]], batch: int = -1) -> None:
        self.script = script
        self.calls: list[int] = []
        self._inputs = (TensorSpec("images", "float32", (batch, 3, SIZE, SIZE)),)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("output0", "float32", (-1, 4 + NC, 3)),)

    def run(self, inputs):
        x = inputs["images"]
        assert x.dtype == np.float32 and x.shape[1:] == (3, SIZE, SIZE)
        if self._inputs[0].shape[0] > 0:
            assert x.shape[0] == self._inputs[0].shape[0]
        self.calls.append(x.shape[0])
        out = np.zeros((x.shape[0], 4 + NC, 3), np.float32)
        out[:, :4] = 1.0  # small empty boxes on every anchor
        for b in range(x.shape[0]):
            k = round(float(x[b].mean()) * 255)
            if k in self.script:
                cls, score = self.script[k]
                out[b, :4, 0] = (k + 2, k + 2, 4, 4)
                out[b, 4 + cls, 0] = score
        return {"output0": out}

    def close(self) -> None:
        pass


def spec(max_batch: int = 3, class_names=XRAY_CLASSES) -> ModelSpec:
    return ModelSpec(
        name="xray", version="test-1", input_size=(SIZE, SIZE), class_names=class_names, max_batch=max_batch
    )


def image(k: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), k, np.uint8)


def record(k: int, modality="xray") -> ImageRecord:
    return ImageRecord(id=f"scan-{k}", pixels=image(k), modality=modality)


HANDGUN, KNIFE, SCISSORS, AMMO, DRUGS, GOLD, CASH = range(NC)


def test_backend_fake_satisfies_the_protocol():
    assert isinstance(ScriptedBackend({}), InferenceBackend)


def test_batches_are_chunked_by_max_batch_and_kept_in_order():
    script = {k: (k % NC, 0.9) for k in range(10, 17)}
    backend = ScriptedBackend(script)
    detector = ThreatDetector(backend=backend, spec=spec(max_batch=3), flip_tta=False)

    dets = detector.detect([image(k) for k in range(10, 17)])

    assert backend.calls == [3, 3, 1]  # one backend call per chunk, never one per image
    assert [d.class_id.tolist() for d in dets] == [[k % NC] for k in range(10, 17)]
    np.testing.assert_allclose([d.xyxy[0, 0] for d in dets], list(range(10, 17)))
    assert detector.last_timings.model_calls == 3 and detector.last_timings.images == 7


def test_static_batch_graph_is_filled_with_padding_images():
    backend = ScriptedBackend({20: (HANDGUN, 0.9)}, batch=4)
    detector = ThreatDetector(backend=backend, spec=spec(max_batch=16), flip_tta=False)

    dets = detector.detect([image(20)] * 5)

    assert backend.calls == [4, 4]
    assert len(dets) == 5 and all(d.labels == ["handgun"] for d in dets)


def test_default_thresholds_are_the_review_thresholds():
    # scissors at 0.30 is under its review threshold (0.35) and is not reported; handgun at 0.30 is.
    backend = ScriptedBackend({10: (SCISSORS, 0.30), 11: (HANDGUN, 0.30)})
    detector = ThreatDetector(backend=backend, spec=spec(), flip_tta=False)
    assert [len(d) for d in detector.detect([image(10), image(11)])] == [0, 1]
    expected = {name: rule.review for name, rule in RISK_RULES.items()}
    assert dict(zip(XRAY_CLASSES, detector.options.thresholds.tolist(), strict=True)) == pytest.approx(expected)


def test_one_global_threshold_when_class_thresholds_are_empty():
    backend = ScriptedBackend({10: (SCISSORS, 0.30)})
    detector = ThreatDetector(backend=backend, spec=spec(), conf_threshold=0.2, class_thresholds={}, flip_tta=False)
    (det,) = detector.detect([image(10)])
    assert det.labels == ["scissors_blade"]


def test_inspect_batch_builds_reports_with_risk_models_and_timings():
    backend = ScriptedBackend({10: (HANDGUN, 0.9), 11: (CASH, 0.5), 12: (KNIFE, 0.1)})
    detector = ThreatDetector(backend=backend, spec=spec(max_batch=8), flip_tta=False)

    reports = detector.inspect_batch([record(10), record(11), record(12)])

    assert [r.record_id for r in reports] == ["scan-10", "scan-11", "scan-12"]
    assert [r.risk for r in reports] == ["alarm", "review", "clear"]
    assert all(r.modality == "xray" and r.models == {"xray": "test-1"} for r in reports)
    assert set(reports[0].timings_ms) == {"preprocess", "model", "postprocess"}
    assert backend.calls == [3]
    assert detector.inspect(record(10)).risk == "alarm"


def test_inspect_refuses_document_records():
    detector = ThreatDetector(backend=ScriptedBackend({}), spec=spec())
    with pytest.raises(ValueError, match="inspects 'xray' images"):
        detector.inspect(record(10, modality="document"))


def test_model_with_a_class_outside_the_policy_is_refused():
    with pytest.raises(ValueError, match=r"\['grenade'\] with no risk rule"):
        ThreatDetector(backend=ScriptedBackend({}), spec=spec(class_names=(*XRAY_CLASSES, "grenade")))


def test_backend_without_the_spec_input_is_refused():
    backend = ScriptedBackend({})
    backend._inputs = (TensorSpec("pixels", "float32", (-1, 3, SIZE, SIZE)),)
    with pytest.raises(BackendError, match="'images'"):
        ThreatDetector(backend=backend, spec=spec())


def test_backend_returning_the_wrong_output_is_reported():
    class Renamed(ScriptedBackend):
        def run(self, inputs):
            return {"boxes": super().run(inputs)["output0"]}

    detector = ThreatDetector(backend=Renamed({}), spec=spec())
    with pytest.raises(BackendError, match="'output0'"):
        detector.detect([image(1)])


# ------------------------------------------------------------------------- the mirrored view (TTA)


class BlobBackend(ScriptedBackend):
    """Boxes the dark (dense) pixels of each image (a model that really looks): mirroring the image
    mirrors the box. ``left_score`` / ``right_score``: the score when the blob's centre lies in the
    left / right half of the network input, so the two views of one scan can disagree."""

    def __init__(self, left_score: float, right_score: float, cls: int = HANDGUN) -> None:
        super().__init__({})
        self.left_score, self.right_score, self.cls = left_score, right_score, cls

    def run(self, inputs):
        x = inputs["images"]
        self.calls.append(x.shape[0])
        out = np.zeros((x.shape[0], 4 + NC, 3), np.float32)
        out[:, :4] = 1.0
        for b in range(x.shape[0]):
            ys, xs = np.nonzero(x[b].mean(axis=0) < 0.1)
            if xs.size:
                x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
                out[b, :4, 0] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
                left = (x1 + x2) / 2 < SIZE / 2
                out[b, 4 + self.cls, 0] = self.left_score if left else self.right_score
        return {"output0": out}


def blob_scan() -> np.ndarray:
    """A scan (air white) with one dense object left of centre, at x 4..12, y 10..20 (network pixels)."""
    img = np.full((SIZE, SIZE, 3), 230, np.uint8)
    img[10:20, 4:12] = 0
    return img


def test_the_mirrored_view_runs_in_the_same_batch_and_agreeing_views_keep_their_box_and_score():
    backend = BlobBackend(0.8, 0.8)
    detector = ThreatDetector(backend=backend, spec=spec(max_batch=8))
    assert detector.flip_tta  # the default: what the service and the card's metrics use

    (det,) = detector.detect([blob_scan()])

    assert backend.calls == [2]  # the scan and its mirror image, one model call
    assert det.labels == ["handgun"]
    np.testing.assert_allclose(det.xyxy[0], [4, 10, 12, 20], atol=1e-4)
    assert det.confidence[0] == pytest.approx(0.8)
    assert detector.last_timings.images == 1


def test_an_object_only_one_view_finds_keeps_half_its_score():
    # Found at 0.9 as scanned (left half), missed mirrored (right half): fused score 0.45.
    backend = BlobBackend(0.9, 0.0)
    (det,) = ThreatDetector(backend=backend, spec=spec(), class_thresholds={"handgun": 0.4}).detect([blob_scan()])
    assert det.confidence.tolist() == pytest.approx([0.45])
    # The class threshold applies to the fused score: at 0.5 the object is not reported.
    (det,) = ThreatDetector(backend=backend, spec=spec(), class_thresholds={"handgun": 0.5}).detect([blob_scan()])
    assert len(det) == 0
    # Without the mirrored view the one view's score is reported as is.
    (det,) = ThreatDetector(backend=backend, spec=spec(), flip_tta=False).detect([blob_scan()])
    assert det.confidence.tolist() == pytest.approx([0.9])


def test_views_decode_low_enough_for_a_fused_score_to_reach_the_threshold():
    # 0.3 as scanned is below the 0.5 threshold on its own, but with 0.9 mirrored the mean is 0.6.
    backend = BlobBackend(0.3, 0.9)
    (det,) = ThreatDetector(backend=backend, spec=spec(), class_thresholds={"handgun": 0.5}).detect([blob_scan()])
    assert det.confidence.tolist() == pytest.approx([0.6])


# ------------------------------------------------------------------------------- close-up tiles


class SizedBlobBackend(BlobBackend):
    """A :class:`BlobBackend` that, like a real model, misses objects too small in its input: a blob
    narrower than ``min_side`` network pixels is not reported."""

    def __init__(self, min_side: float, score: float = 0.8) -> None:
        super().__init__(score, score)
        self.min_side = min_side

    def run(self, inputs):
        out = super().run(inputs)["output0"]
        small = out[:, 2, 0] < self.min_side
        out[small, 4:, 0] = 0.0
        return {"output0": out}


TILED = SIZE * 4  # a 128 px scan: tiles of 90 px, at x (and y) 0 and 38


def scan_with_blob(x1: int, y1: int, x2: int, y2: int, size: int = TILED) -> np.ndarray:
    img = np.full((size, size, 3), 230, np.uint8)
    img[y1:y2, x1:x2] = 0
    return img


def test_tiles_run_in_the_same_batch_as_the_full_views():
    backend = BlobBackend(0.8, 0.8)
    detector = ThreatDetector(backend=backend, spec=spec(max_batch=8))
    assert detector.tile_tta  # the default: what the service and the card's metrics use

    (det,) = detector.detect([scan_with_blob(20, 20, 40, 40)])

    assert backend.calls == [6]  # as scanned, mirrored, four tiles: one model call
    assert detector.last_timings.images == 1
    assert det.labels == ["handgun"]
    np.testing.assert_allclose(det.xyxy[0], [20, 20, 40, 40], atol=2.5)
    assert det.confidence[0] == pytest.approx(0.8)


def test_a_small_object_only_the_close_up_sees_is_found_at_half_its_score():
    # 12 px of a 128 px scan: 3 network pixels in the full view (missed), 4.3 in a 90 px tile (found).
    backend = SizedBlobBackend(min_side=4.0, score=0.9)
    scan = scan_with_blob(20, 20, 32, 32)

    (det,) = ThreatDetector(backend=backend, spec=spec(), class_thresholds={"handgun": 0.4}).detect([scan])
    assert det.labels == ["handgun"]
    assert det.confidence.tolist() == pytest.approx([0.45])
    np.testing.assert_allclose(det.xyxy[0], [20, 20, 32, 32], atol=2.5)

    (det,) = ThreatDetector(backend=backend, spec=spec(), tile_tta=False, class_thresholds={}).detect([scan])
    assert len(det) == 0


def test_boxes_are_in_original_pixels_when_the_scan_was_decoded_smaller():
    backend = SizedBlobBackend(min_side=4.0, score=0.9)
    detector = ThreatDetector(backend=backend, spec=spec(), class_thresholds={"handgun": 0.4})
    (det,) = detector.detect([scan_with_blob(20, 20, 32, 32)], original_hw=[(TILED * 2, TILED * 3)])
    np.testing.assert_allclose(det.xyxy[0], [60, 40, 96, 64], atol=6)


def test_a_box_cut_by_a_tiles_inner_edge_is_dropped():
    # x 84..96 crosses the right edge (x 90) of the left tiles: they see a truncated 84..90 box,
    # the right tiles the whole object. Kept, the truncated box would pull the fused box to ~93.
    backend = BlobBackend(0.8, 0.8)
    (det,) = ThreatDetector(backend=backend, spec=spec(max_batch=8), flip_tta=False).detect(
        [scan_with_blob(84, 20, 96, 32)]
    )
    assert det.labels == ["handgun"]
    np.testing.assert_allclose(det.xyxy[0], [84, 20, 96, 32], atol=1.5)
    assert det.confidence[0] == pytest.approx(0.8)


def test_small_scans_are_not_tiled():
    backend = BlobBackend(0.8, 0.8)
    ThreatDetector(backend=backend, spec=spec(max_batch=8)).detect([blob_scan()])
    assert backend.calls == [2]


# ------------------------------------------------------------------------------ the risk table


def dets(*items: tuple[str, float]) -> Detections:
    n = len(items)
    return Detections(
        xyxy=np.tile(np.array([[0, 0, 10, 10]], np.float32), (n, 1)),
        confidence=np.array([c for _, c in items], np.float32),
        class_id=np.array([XRAY_CLASSES.index(label) for label, _ in items], np.int64),
        class_names=XRAY_CLASSES,
    )


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ((), "clear"),
        ((("handgun", 0.24),), "clear"),
        ((("handgun", 0.25),), "review"),  # thresholds are inclusive
        ((("handgun", 0.49),), "review"),
        ((("handgun", 0.50),), "alarm"),
        ((("ammunition", 0.7),), "alarm"),
        ((("knife", 0.54),), "review"),
        ((("knife", 0.55),), "alarm"),
        ((("scissors_blade", 0.34),), "clear"),
        ((("scissors_blade", 0.99),), "review"),  # scissors never raise an alarm on their own
        ((("drug_package", 0.6),), "alarm"),
        ((("gold_bar", 0.59),), "review"),
        ((("gold_bar", 0.6),), "alarm"),
        ((("cash_bundle", 0.64),), "review"),
        ((("cash_bundle", 0.65),), "alarm"),
        ((("scissors_blade", 0.9), ("cash_bundle", 0.1)), "review"),
        ((("scissors_blade", 0.9), ("gold_bar", 0.95)), "alarm"),  # the highest level wins
        ((("knife", 0.2), ("drug_package", 0.2), ("cash_bundle", 0.3)), "clear"),
    ],
)
def test_risk_levels(items, expected):
    assert assess_risk(dets(*items)) == expected


def test_risk_with_a_custom_policy():
    strict = {name: RiskRule(0.1, 0.1, "everything alarms") for name in XRAY_CLASSES}
    assert assess_risk(dets(("scissors_blade", 0.15)), strict) == "alarm"


def test_risk_for_an_unknown_class_is_an_error():
    d = Detections(np.zeros((1, 4), np.float32), np.array([0.9], np.float32), np.array([0]), ("grenade",))
    with pytest.raises(ValueError, match="no risk rule for class 'grenade'"):
        assess_risk(d)


def test_rule_table_covers_exactly_the_model_classes():
    assert set(RISK_RULES) == set(XRAY_CLASSES)
    for name, rule in RISK_RULES.items():
        assert rule.reason, name
        assert rule.alarm is None or rule.alarm >= rule.review


@pytest.mark.parametrize(("review", "alarm"), [(-0.1, None), (0.5, 0.4), (0.5, 1.1)])
def test_rule_rejects_inconsistent_thresholds(review, alarm):
    with pytest.raises(ValueError, match="threshold"):
        RiskRule(review, alarm, "bad")


# ------------------------------------------------------------------------------------- polarity


class RecordingBackend(ScriptedBackend):
    """Keeps every input tensor the detector sends."""

    def __init__(self) -> None:
        super().__init__({})
        self.tensors: list[np.ndarray] = []

    def run(self, inputs):
        self.tensors.append(inputs["images"].copy())
        return super().run(inputs)


@pytest.mark.parametrize("greyscale", [False, True])
def test_a_negative_scan_is_recognised_and_turned_back(greyscale: bool) -> None:
    scan = generate_scan(7, 2, size=(160, 128), greyscale=greyscale).image
    negative = 255 - scan
    assert not is_negative(scan)
    assert is_negative(negative)
    np.testing.assert_array_equal(as_positive(negative), scan)
    assert as_positive(scan) is scan
    # A uniformly dark image has no content to turn around (and a dark positive scan stays as is).
    assert not is_negative(np.full((64, 64, 3), 20, np.uint8))


def test_the_detector_shows_the_model_a_negative_as_its_positive() -> None:
    scan = generate_scan(7, 3, size=(SIZE * 4, SIZE * 3)).image
    backend = RecordingBackend()
    ThreatDetector(backend=backend, spec=spec()).detect([scan, 255 - scan])
    views = np.concatenate(backend.tensors)
    assert len(views) == 12  # per scan: as scanned, mirrored, four close-up tiles
    # The batch is [scan, negative, their mirror images, the scan's tiles, the negative's tiles]:
    # every view of the negative, tiles included, is the same as the positive's.
    np.testing.assert_array_equal(views[0], views[1])
    np.testing.assert_array_equal(views[2], views[3])
    np.testing.assert_array_equal(views[4:8], views[8:12])

    plain = RecordingBackend()
    ThreatDetector(backend=plain, spec=spec(), auto_polarity=False).detect([scan, 255 - scan])
    assert not np.array_equal(plain.tensors[0][0], plain.tensors[0][1])
