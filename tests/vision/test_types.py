"""Core types validate their arrays and keep shapes consistent."""

from __future__ import annotations

import numpy as np
import pytest

from vision.types import Detections, ImageRecord, Match, ModelSpec

NAMES = ("handgun", "knife", "gold_bar")


def _dets(n: int, seed: int = 0) -> Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(1, 50, (n, 2))
    return Detections(
        xyxy=np.concatenate([xy, xy + wh], axis=1),
        confidence=rng.uniform(0, 1, n),
        class_id=rng.integers(0, len(NAMES), n),
        class_names=NAMES,
        data={"concealment": np.array(["easy"] * n)},
    )


def test_detections_coerce_dtypes_and_filter_with_mask() -> None:
    d = _dets(10)
    assert d.xyxy.dtype == np.float32 and d.confidence.dtype == np.float32 and d.class_id.dtype == np.int64
    keep = d.confidence > 0.5
    sub = d[keep]
    assert len(sub) == int(keep.sum())
    assert np.array_equal(sub.xyxy, d.xyxy[keep])
    assert sub.class_names == NAMES
    assert len(sub.data["concealment"]) == len(sub)
    assert sub.labels == [NAMES[c] for c in d.class_id[keep]]


def test_empty_detections() -> None:
    e = Detections.empty(NAMES)
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.class_names == NAMES
    assert len(e[np.zeros(0, bool)]) == 0
    assert e.labels == [] and e.area.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": np.zeros((2, 3)), "confidence": np.zeros(2), "class_id": np.zeros(2)}, "shape"),
        ({"xyxy": np.zeros((2, 4)), "confidence": np.zeros(3), "class_id": np.zeros(2)}, "must both"),
        ({"xyxy": np.full((1, 4), np.nan), "confidence": np.zeros(1), "class_id": np.zeros(1)}, "NaN"),
        (
            {"xyxy": np.zeros((1, 4)), "confidence": np.zeros(1), "class_id": np.array([3]), "class_names": NAMES},
            "out of range",
        ),
    ],
)
def test_detections_reject_inconsistent_arrays(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


def test_boolean_mask_of_wrong_length_is_refused() -> None:
    with pytest.raises(IndexError):
        _dets(4)[np.ones(3, bool)]


def test_concatenate_requires_same_classes() -> None:
    joined = Detections.concatenate([_dets(2, 1), _dets(3, 2)])
    assert len(joined) == 5 and len(joined.data["concealment"]) == 5
    other = Detections.empty(("stamp",))
    with pytest.raises(ValueError):
        Detections.concatenate([_dets(1), other])


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8), [[1]]],
)
def test_image_record_rejects_bad_pixels(pixels: object) -> None:
    with pytest.raises(ValueError):
        ImageRecord(id="x", pixels=pixels, modality="xray")  # type: ignore[arg-type]


def test_image_record_rejects_unknown_modality() -> None:
    with pytest.raises(ValueError, match="modality"):
        ImageRecord(id="x", pixels=np.zeros((2, 2, 3), np.uint8), modality="mri")  # type: ignore[arg-type]


def test_match_similarity_is_a_percentage() -> None:
    m = Match(detection=0, specimen_id="s", owner="o", similarity=99.5, threshold=50.0, verdict="genuine")
    assert m.similarity == 99.5
    with pytest.raises(ValueError):
        Match(detection=0, specimen_id="s", owner="o", similarity=101.0, threshold=50.0, verdict="genuine")
    with pytest.raises(ValueError):
        Match(detection=0, specimen_id="s", owner="o", similarity=1.0, threshold=50.0, verdict="maybe")  # type: ignore[arg-type]


def test_model_spec_roundtrip_and_validation() -> None:
    spec = ModelSpec(name="xray", version="1", input_size=(416, 416), class_names=NAMES)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        ModelSpec(name="bad name!", version="1", input_size=(1, 1))
    with pytest.raises(ValueError):
        ModelSpec(name="x", version="1", input_size=(0, 1))
    with pytest.raises(ValueError):
        ModelSpec(name="x", version="1", input_size=(1, 1), input_dtype="int8")
