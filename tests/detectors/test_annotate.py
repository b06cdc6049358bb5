"""Drawing detections: a copy is annotated, colours follow classes, labels read on any background."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.annotate import PALETTE, _text_colour, annotate, class_colour, label_text
from vision.types import Detections

NAMES = ("stamp", "signature")


def dets(*rows: tuple[float, float, float, float, int, float]) -> Detections:
    arr = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(arr[:, :4], arr[:, 5], arr[:, 4].astype(np.int64), NAMES)


@pytest.mark.parametrize("background", [0, 255])
def test_box_is_drawn_in_the_class_colour_on_a_copy(background):
    image = np.full((200, 300, 3), background, np.uint8)
    before = image.copy()

    out = annotate(image, dets((100, 80, 200, 160, 1, 0.87)), line_width=3)

    np.testing.assert_array_equal(image, before)  # the input is untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    # the middle of the right edge is the class colour, with a black stroke just outside it
    np.testing.assert_array_equal(out[120, 200], class_colour(1))
    assert out[120, 203].max() < 60
    np.testing.assert_array_equal(out[120, 150], before[120, 150])  # inside the box is untouched
    # the label tag sits above the box, in the class colour
    tag = out[50:78, 100:200].reshape(-1, 3)
    assert (tag == class_colour(1)).all(axis=1).mean() > 0.3


def test_label_moves_inside_a_box_at_the_top_edge():
    image = np.full((100, 200, 3), 255, np.uint8)
    out = annotate(image, dets((20, 0, 180, 90, 0, 0.5)), line_width=2)
    inside = out[3:20, 25:100].reshape(-1, 3)
    assert (inside == class_colour(0)).all(axis=1).mean() > 0.3


def test_empty_detections_give_an_identical_copy():
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = annotate(image, Detections.empty(NAMES))
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)


def test_label_text_with_and_without_similarity():
    assert label_text("stamp", 0.912) == "stamp 0.91"
    assert label_text("stamp", 0.912, 87.254) == "stamp 0.91 | 87.25%"


def test_similarities_change_the_drawing_and_must_match_the_detections():
    image = np.full((120, 240, 3), 255, np.uint8)
    d = dets((40, 60, 200, 110, 0, 0.9))
    plain = annotate(image, d)
    with_sim = annotate(image, d, similarities=[60.05])
    assert not np.array_equal(plain, with_sim)
    np.testing.assert_array_equal(annotate(image, d, similarities=[None]), plain)
    with pytest.raises(ValueError, match="1 detections"):
        annotate(image, d, similarities=[1.0, 2.0])


def test_rejects_non_rgb_images():
    with pytest.raises(ValueError, match="uint8"):
        annotate(np.zeros((10, 10), np.uint8), Detections.empty())


def test_text_is_black_or_white_by_contrast():
    assert _text_colour((255, 255, 0)) == (0, 0, 0)
    assert _text_colour((0, 0, 128)) == (255, 255, 255)
    # every palette colour differs from both white and black backgrounds
    for colour in PALETTE:
        assert 40 < 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] < 200
    assert class_colour(len(PALETTE)) == class_colour(0)
