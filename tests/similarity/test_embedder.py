from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
import pytest

from similarity.embedder import Embedder, EmbedderError, normalise_crop, preprocess_crops
from tests.similarity.conftest import make_specimen
from vision.runtime.base import BackendError, TensorSpec
from vision.types import ModelSpec

SPEC = ModelSpec(
    name="simtest",
    version="t1",
    input_size=(32, 64),
    output_names=("embeddings",),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    pad_value=255,
    max_batch=4,
)


class MeanPoolBackend:
    """Embeds a batch as its per-channel, per-quadrant means: deterministic and cheap."""

    name = "fake"

    def __init__(self, output: str = "embeddings") -> None:
        self.batches: list[int] = []
        self.output = output

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("images", "float32", (-1, 3, 32, 64)),)

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec(self.output, "float32", (-1, 12)),)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["images"]
        self.batches.append(x.shape[0])
        q = [x[:, :, :16, :32], x[:, :, :16, 32:], x[:, :, 16:, :32], x[:, :, 16:, 32:]]
        return {self.output: np.concatenate([-p.mean(axis=(2, 3)) + 1.0 for p in q], axis=1)}

    def close(self) -> None:
        pass


def test_preprocess_shape_dtype_and_range():
    x = preprocess_crops([make_specimen(0, 0), np.full((5, 300, 3), 255, np.uint8)], SPEC)
    assert x.shape == (2, 3, 32, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert np.all(x[1] == 1.0)  # a blank crop stays white paper


def test_loose_and_tight_boxes_of_the_same_mark_preprocess_alike():
    crop = make_specimen(3, 1)
    loose = cv2.copyMakeBorder(crop, 40, 25, 70, 10, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    a, b = preprocess_crops([crop, loose], SPEC)
    assert np.abs(a - b).mean() < 0.02


def test_contrast_stretch_maps_pale_scans_to_the_same_levels():
    crop = make_specimen(1, 0)
    pale = (crop.astype(np.float32) * 0.5 + 110).astype(np.uint8)  # grey paper, grey ink
    a, b = preprocess_crops([crop, pale], SPEC)
    assert np.abs(a - b).mean() < 0.05
    assert normalise_crop(pale).min() == 0 and np.percentile(normalise_crop(pale), 90) == 255


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8), "img"],
)
def test_bad_crops_raise_embedder_error(bad):
    with pytest.raises(EmbedderError):
        preprocess_crops([bad], SPEC)
    with pytest.raises(EmbedderError):
        preprocess_crops([], SPEC)


def test_embedder_batches_and_normalises():
    backend = MeanPoolBackend()
    embedder = Embedder(backend=backend, spec=SPEC, batch_size=16)  # capped at spec.max_batch = 4
    crops = [make_specimen(o, 0) for o in range(9)]
    emb = embedder.embed(crops)
    assert backend.batches == [4, 4, 1]
    assert emb.shape == (9, 12) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(embedder.embed_one(crops[4]), emb[4], atol=1e-6)
    assert embedder.embed([]).shape == (0, 12)
    assert embedder.version == "t1"


def test_embedder_reports_a_missing_output():
    embedder = Embedder(backend=MeanPoolBackend(output="other"), spec=SPEC)
    with pytest.raises(BackendError, match="embeddings"):
        embedder.embed([make_specimen(0, 0)])
    with pytest.raises(ValueError):
        Embedder(backend=MeanPoolBackend(), spec=SPEC, batch_size=0)
