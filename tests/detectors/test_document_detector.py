"""MarkDetector: stamp/signature crops for the similarity model, and document inspection."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.document import DOCUMENT_CLASSES, MarkDetector
from vision.runtime.base import TensorSpec
from vision.types import Detections, ImageRecord, ModelSpec


def boxes(*xyxy: tuple[float, float, float, float]) -> Detections:
    n = len(xyxy)
    return Detections(
        xyxy=np.array(xyxy, np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.zeros(n, np.int64),
        class_names=DOCUMENT_CLASSES,
    )


@pytest.fixture
def page() -> np.ndarray:
    # Every pixel encodes its own position, so a crop shows where it came from.
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)


def test_crop_is_padded_by_a_fraction_of_the_box(page):
    (crop,) = MarkDetector.crops(page, boxes((50, 40, 100, 60)), pad=0.1)
    # 5 px more left/right (10 % of 50), 2 px more top/bottom (10 % of 20)
    assert crop.shape == (24, 60, 3)
    np.testing.assert_array_equal(crop, page[38:62, 45:105])
    assert crop.flags.c_contiguous and not np.shares_memory(crop, page)


def test_fractional_boxes_grow_outwards_to_whole_pixels(page):
    (crop,) = MarkDetector.crops(page, boxes((10.6, 20.2, 30.4, 40.9)), pad=0.0)
    np.testing.assert_array_equal(crop, page[20:41, 10:31])


def test_crops_are_clipped_to_the_image(page):
    crops = MarkDetector.crops(page, boxes((0, 0, 20, 10), (180, 90, 200, 100)), pad=0.5)
    np.testing.assert_array_equal(crops[0], page[0:15, 0:30])
    np.testing.assert_array_equal(crops[1], page[85:100, 170:200])


def test_degenerate_boxes_still_give_one_pixel(page):
    crops = MarkDetector.crops(page, boxes((50, 50, 50, 50), (200, 100, 200, 100)), pad=0.08)
    assert [c.shape for c in crops] == [(1, 1, 3), (1, 1, 3)]


def test_no_detections_no_crops(page):
    assert MarkDetector.crops(page, Detections.empty(DOCUMENT_CLASSES)) == []


def test_crop_rejects_negative_padding(page):
    with pytest.raises(ValueError, match="pad"):
        MarkDetector.crops(page, boxes((0, 0, 5, 5)), pad=-0.1)


class OneStamp:
    """A backend that finds a stamp in the middle of every 32x32 input."""

    name = "one-stamp"
    inputs = (TensorSpec("images", "float32", (-1, 3, 32, 32)),)
    outputs = (TensorSpec("output0", "float32", (-1, 6, 2)),)

    def run(self, inputs):
        out = np.zeros((inputs["images"].shape[0], 6, 2), np.float32)
        out[:, :4, :] = ((16, 4), (16, 4), (8, 2), (8, 2))
        out[:, 4, 0] = 0.8
        return {"output0": out}

    def close(self) -> None:
        pass


def test_inspect_reports_marks_without_a_risk_level():
    spec = ModelSpec(name="document", version="t", input_size=(32, 32), class_names=DOCUMENT_CLASSES)
    detector = MarkDetector(backend=OneStamp(), spec=spec, head="anchor_free")
    page = np.full((64, 64, 3), 255, np.uint8)

    report = detector.inspect(ImageRecord(id="doc-1", pixels=page, modality="document"))

    assert report.risk is None and report.modality == "document"
    assert report.detections.labels == ["stamp"]
    np.testing.assert_allclose(report.detections.xyxy, [[24, 24, 40, 40]])
    with pytest.raises(ValueError, match="inspects 'document' images"):
        detector.inspect(ImageRecord(id="scan", pixels=page, modality="xray"))
