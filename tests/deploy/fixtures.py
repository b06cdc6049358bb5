"""Tiny seeded models with model cards, for the deployment tests (no trained weights, no ../shared).

* :func:`make_tiny_detector`: a three-layer CNN with an anchor-free YOLO head ``(B, 4 + nc, A)`` in
  network pixels (one stride-8 grid; boxes are grid centres plus learnt offsets, scores a sigmoid),
  exported with a dynamic batch. Seeded random weights give many overlapping boxes with scores
  spread around the threshold, so decoding and NMS have real work to do.
* :func:`make_tiny_embedder`: :class:`similarity.model.EmbeddingNet` at its smallest width,
  exported with the project's own exporter.

Both write ``<dir>/<name>.onnx`` and ``<dir>/<name>.json`` (a card whose sha256 matches), so they
load through ``from_card`` exactly like the shipped models. :func:`make_service_models` names them
the way the service loads them (``xray``, ``similarity``), with the cards the service needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detectors.xray import XRAY_CLASSES
from vision.modelcard import ModelCard, sha256_file
from vision.types import ModelSpec

DETECTOR_CLASSES = ("knife", "gun", "gold")


class TinyYolo(nn.Module):
    """``(B, 3, S, S)`` -> ``(B, 4 + nc, (S / 8) ** 2)``: ``cx, cy, w, h`` then class scores."""

    def __init__(self, size: int, num_classes: int) -> None:
        super().__init__()
        self.size = size
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(8, 4 + num_classes, 3, 2, 1),
        )
        cells = size // 8
        ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
        grid = torch.stack([xs, ys]).float().reshape(1, 2, -1) * 8 + 4
        self.grid: torch.Tensor
        self.register_buffer("grid", grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x).flatten(2)
        xy = self.grid + torch.tanh(y[:, :2]) * 8
        wh = torch.sigmoid(y[:, 2:4]) * (self.size / 1.5)
        # Scaled logits spread the scores on both sides of the usual 0.25 threshold.
        scores = torch.sigmoid(y[:, 4:] * 4)
        return torch.cat([xy, wh, scores], dim=1)


#: Similarity calibration for :func:`make_service_models`: ``percent = 100 * sigmoid(4 * cos - 2)``, gentle
#: enough that the tiny embedder's cosines (mostly high) land between 0 and 100 rather than at 100.
SERVICE_SCORING: dict[str, Any] = {
    kind: {
        "calibration": {"method": "platt", "slope": 4.0, "intercept": -2.0, "prior": 0.5},
        "decision": {"threshold": 50.0, "band": 5.0, "basis": "test"},
    }
    for kind in ("stamp", "signature")
}


def _write_card(model_path: Path, spec: ModelSpec, task: str, metrics: dict[str, Any] | None = None) -> Path:
    card = ModelCard(
        name=spec.name,
        version=spec.version,
        task=task,
        file=model_path.name,
        sha256=sha256_file(model_path),
        spec=spec,
        notes="tiny seeded test model",
        metrics=metrics or {},
    )
    card_path = model_path.with_suffix(".json")
    card.save(card_path)
    return card_path


def make_tiny_detector(
    out_dir: Path,
    *,
    name: str = "tiny_detector",
    size: int = 64,
    seed: int = 0,
    class_names: tuple[str, ...] = DETECTOR_CLASSES,
) -> Path:
    """Write a tiny detector and its card; returns the card path."""
    torch.manual_seed(seed)
    model = TinyYolo(size, len(class_names)).eval()
    spec = ModelSpec(
        name=name,
        version="2026.11.22-test",
        input_size=(size, size),
        input_name="images",
        output_names=("output0",),
        class_names=class_names,
        max_batch=8,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, size, size),),
        str(path),
        input_names=["images"],
        output_names=["output0"],
        dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return _write_card(path, spec, "detect")


def make_tiny_embedder(
    out_dir: Path, *, name: str = "tiny_embedder", seed: int = 0, metrics: dict[str, Any] | None = None
) -> Path:
    """Write a tiny embedding network and its card (with ``metrics``, e.g. a calibration); returns the card path."""
    from similarity.model import EmbeddingNet, export_onnx

    torch.manual_seed(seed)
    model = EmbeddingNet(embedding_dim=16, width=4)
    spec = ModelSpec(
        name=name,
        version="2026.11.22-test",
        input_size=(32, 64),
        input_name="images",
        output_names=("embeddings",),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        max_batch=16,
        pad_value=255,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.onnx"
    export_onnx(model, path, spec)
    return _write_card(path, spec, "embed", metrics)


def make_service_models(out_dir: Path) -> dict[str, Path]:
    """The tiny models as the service loads them: ``xray`` and ``similarity`` cards in ``out_dir``.

    The detector has the service's X-ray classes (its risk policy refuses other classes), the
    embedder a calibration for stamps and signatures (:data:`SERVICE_SCORING`). Load them with
    ``CV_MODELS_DIR=out_dir CV_REQUIRED_MODELS=xray,similarity``.

    Returns:
        Model name -> card path.
    """
    return {
        "xray": make_tiny_detector(out_dir, name="xray", class_names=XRAY_CLASSES),
        "similarity": make_tiny_embedder(out_dir, name="similarity", metrics={"scoring": SERVICE_SCORING}),
    }


def scenes(count: int, *, seed: int = 0, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    """Seeded ``(H, W, 3)`` uint8 images with a few coloured rectangles on grey."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        img = np.full((*size, 3), 150, np.uint8)
        for _ in range(3):
            y, x = int(rng.integers(0, size[0] - 20)), int(rng.integers(0, size[1] - 20))
            img[y : y + 20, x : x + 20] = rng.integers(0, 255, 3)
        images.append(img)
    return images


def crops(count: int, *, seed: int = 0) -> list[np.ndarray]:
    """Seeded ink-on-paper crops of varying sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        h, w = int(rng.integers(30, 70)), int(rng.integers(60, 140))
        img = np.full((h, w, 3), 245, np.uint8)
        for _ in range(4):
            y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 10))
            img[y : y + 3, x : x + int(rng.integers(5, w - x))] = (30, 30, 160)
        out.append(img)
    return out


def pseudo_labelled_heldout(card_path: Path, root: Path, *, count: int = 12, seed: int = 40, conf: float = 0.5) -> Path:
    """A YOLO held-out set (``images/val``, ``labels/val``) labelled with the card's own detections.

    The seeded tiny detectors detect nothing real, so their mAP50 on drawn labels is near 0 and an
    accuracy gate could not tell a faithful INT8 copy from a broken one. Labelled with the float32
    model's confident detections (>= ``conf``), the float32 model scores a high mAP50 and a model
    that detects differently scores clearly lower.
    """
    import cv2

    from detectors.base import YoloDetector

    images = scenes(count, seed=seed)
    detector = YoloDetector.from_card(card_path, detector_kwargs={"conf_threshold": conf})
    try:
        detections = detector.detect(images)
    finally:
        detector.backend.close()
    for sub in ("images/val", "labels/val"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (image, found) in enumerate(zip(images, detections, strict=True)):
        h, w = image.shape[:2]
        cv2.imwrite(str(root / "images" / "val" / f"{i:03d}.png"), image[:, :, ::-1])
        rows = [
            f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n"
            for (x1, y1, x2, y2), c in zip(found.xyxy.tolist(), found.class_id.tolist(), strict=True)
        ]
        (root / "labels" / "val" / f"{i:03d}.txt").write_text("".join(rows))
    return root
