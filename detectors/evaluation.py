"""Measure a shipped detector on labelled data, through the same code that serves it.

:func:`evaluate_detector` loads the model through its card (so the sha256-verified ONNX file is what
gets measured), runs :class:`detectors.base.YoloDetector` over a labelled set with a confidence
threshold of 0.001 (needed for a meaningful AP; precision and recall are reported at 0.25), and
scores the detections with :func:`vision.metrics.evaluate_detections`.

Two kinds of data set:

* a **synthetic** folder (``images/<split>``, ``labels/<split>``, optional ``metadata.jsonl``):
  class-aware metrics, plus a breakdown by a per-object attribute (``concealment``: easy / hard /
  hidden). The breakdown for level L evaluates the images that contain at least one level-L object,
  with the other objects in them marked *ignored* (neither missed nor false alarms when found), the
  way difficulty subsets are reported in the literature (PIDray's easy / hard / hidden).
* the **real** X-ray scans' held-out ``test`` split (see :func:`detectors.datasets.real_split`):
  class-agnostic metrics, because the real labels are unnamed bladed-item ids all mapped to
  ``"knife"`` and a model boxing a real knife as ``scissors_blade`` still found it.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from detectors.datasets import (
    REAL_TARGET_CLASS,
    DatasetError,
    LabelledImage,
    iter_real,
    labels_to_ground_truth,
    read_yolo_labels,
    synthetic_split,
)
from vision.metrics import DetectionMetrics, GroundTruth, evaluate_detections
from vision.modelcard import ModelCard
from vision.types import Detections

log = logging.getLogger(__name__)

#: Confidence threshold the detector runs at for AP: low enough that the PR curve is complete.
AP_CONF_THRESHOLD = 0.001
#: Confidence at which precision and recall are reported (the service's default reporting level).
REPORT_CONF_THRESHOLD = 0.25


def evaluate_command(
    task: str,
    card_path: str | Path,
    dataset: str | Path,
    *,
    split: str = "val",
    real_dir: str | Path | None = None,
    extra: Sequence[str] = (),
) -> str:
    """The ``customs-vision evaluate`` command line that measures one metrics block (for the card).

    Args:
        task: ``"xray"`` or ``"document"``.
        card_path: the model card.
        dataset: ``"real"`` or a synthetic folder.
        split: the synthetic folder's split (not used for ``"real"``, which is always ``test``).
        real_dir: the real folder, for ``dataset == "real"``.
        extra: further arguments, appended as given (e.g. ``["--limit", "10"]``).
    """
    parts = ["customs-vision", "evaluate", task, "--model", str(card_path), "--data", str(dataset)]
    if str(dataset) == "real":
        parts += ["--real", str(real_dir)]
    else:
        parts += ["--split", split]
    return shlex.join([*parts, *extra])


def read_object_attributes(dataset_dir: Path, split: str, key: str) -> dict[str, list[tuple[int | None, str]]] | None:
    """Per-object attribute values from a synthetic set's ``metadata.jsonl``.

    Each line describes one image: ``{"file": ..., "split": ..., "objects": [{"class_id": ...,
    key: ...}, ...]}``, objects in the order of the image's label file.

    Args:
        dataset_dir: the synthetic dataset folder.
        split: only images of this split are returned.
        key: the attribute, e.g. ``"concealment"``.

    Returns:
        image file name -> ``(class_id, value)`` of each object in label-file order (``class_id``
        ``None`` if not recorded, ``value`` ``""`` for an object without ``key``); ``None`` if the
        folder has no ``metadata.jsonl`` or no object carries ``key``.

    Raises:
        DatasetError: a line is not JSON or lacks ``file`` / ``objects``.
    """
    path = dataset_dir / "metadata.jsonl"
    if not path.is_file():
        return None
    out: dict[str, list[tuple[int | None, str]]] = {}
    seen_key = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name = Path(str(row["file"])).name
            objects = row["objects"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DatasetError(f"{path}:{lineno}: expected a JSON object with 'file' and 'objects': {e}") from e
        if row.get("split", split) != split:
            continue
        values = []
        for o in objects if isinstance(objects, list) else []:
            o = o if isinstance(o, dict) else {}
            class_id = o.get("class_id")
            values.append((int(class_id) if class_id is not None else None, str(o.get(key, ""))))
        seen_key |= any(v for _, v in values)
        out[name] = values
    return out if seen_key else None


def _chunks(items: Sequence[LabelledImage], size: int) -> Iterator[Sequence[LabelledImage]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _summary(m: DetectionMetrics) -> dict[str, Any]:
    full = m.to_dict()
    return {k: full[k] for k in ("map50", "map50_95", "precision", "recall", "num_gt", "num_images")}


def _breakdown(
    predictions: Sequence[Detections],
    ground_truths: Sequence[GroundTruth],
    values: Sequence[Sequence[str]],
    *,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Metrics per attribute level; see the module docstring for the rule."""
    levels = sorted({v for per_image in values for v in per_image if v})
    out: dict[str, Any] = {}
    for level in levels:
        preds, gts = [], []
        for pred, gt, per_image in zip(predictions, ground_truths, values, strict=True):
            mask = np.array([v == level for v in per_image], bool)
            if mask.any():
                preds.append(pred)
                gts.append(gt.only(mask))
        out[level] = _summary(
            evaluate_detections(preds, gts, class_names=class_names, conf_threshold=REPORT_CONF_THRESHOLD)
        )
    return out


def _align_attributes(
    items: Sequence[LabelledImage],
    ground_truths: Sequence[GroundTruth],
    attributes: Mapping[str, list[tuple[int | None, str]]],
) -> list[list[str]]:
    """Each image's per-object attribute values, checked against its label file's classes.

    Raises:
        DatasetError: an image is missing from the metadata, or its objects' count or classes
            disagree with the label file (the breakdown would otherwise be silently wrong).
    """
    values = []
    for item, gt in zip(items, ground_truths, strict=True):
        per_image = attributes.get(item.image.name)
        labelled = gt.class_id.tolist()
        found = None if per_image is None else [c for c, _ in per_image]
        if (
            per_image is None
            or found is None
            or len(found) != len(labelled)
            or any(c is not None and c != k for c, k in zip(found, labelled, strict=True))
        ):
            raise DatasetError(
                f"metadata.jsonl objects {found} of {item.image.name} do not match its label file's "
                f"classes {labelled} (same order expected)"
            )
        values.append([v for _, v in per_image])
    return values


def evaluate_detector(
    card_path: str | Path,
    dataset: str | Path,
    *,
    split: str | None = None,
    real_dir: str | Path | None = None,
    backend_name: str = "onnxruntime",
    backend_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    breakdown_key: str = "concealment",
    command: str = "",
) -> dict[str, Any]:
    """Measure the model of a card on a labelled set and return a metrics block for the card.

    Args:
        card_path: the model card (``models/xray.json``); its ONNX file is sha256-verified.
        dataset: ``"real"`` for the real scans' held-out test split, or a synthetic folder.
        split: the split of a synthetic folder (default ``"val"``); the real set is always ``"test"``.
        real_dir: the real folder (required when ``dataset == "real"``).
        backend_name: inference backend (``"onnxruntime"`` measures the shipped file).
        backend_kwargs: backend arguments (e.g. ``{"threads": 2}``).
        batch_size: images per detector call.
        limit: evaluate only the first ``limit`` images (by file name), for quick checks.
        breakdown_key: per-object attribute of a synthetic set's ``metadata.jsonl`` to break the
            metrics down by; ignored when absent.
        command: the command line that reproduces this block, recorded in it.

    Returns:
        A JSON-ready block: ``map50``, ``map50_95``, ``precision``, ``recall`` (micro, at 0.25),
        ``per_class``, counts, the data set, the detector settings, ``command``, ``model_sha256``,
        and for synthetic sets ``by_<breakdown_key>`` when available.

    Raises:
        ModelCardError: the card or its model file is missing, malformed or changed.
        DatasetError: the data set is missing or malformed.
    """
    from detectors.base import YoloDetector
    from vision.imageio import read_image_file

    card = ModelCard.load(card_path)
    class_names = card.spec.class_names
    real = str(dataset) == "real"
    if real:
        if real_dir is None:
            raise DatasetError("evaluating on 'real' needs the real folder (real_dir / --real)")
        if REAL_TARGET_CLASS not in class_names:
            raise DatasetError(f"the model has no {REAL_TARGET_CLASS!r} class to map the real labels to")
        split = "test"
        items = list(iter_real(Path(real_dir), "test"))
        source = str(Path(real_dir).resolve())
    else:
        split = split or "val"
        source = str(Path(dataset).resolve())
        items = synthetic_split(Path(dataset), split)
    if limit is not None:
        items = items[:limit]
    if not items:
        raise DatasetError(f"no images to evaluate in {source} ({split})")

    detector = YoloDetector.from_card(
        card_path,
        backend_name=backend_name,
        detector_kwargs={"conf_threshold": AP_CONF_THRESHOLD, "max_det": 300},
        **dict(backend_kwargs or {}),
    )
    started = time.perf_counter()
    predictions: list[Detections] = []
    ground_truths: list[GroundTruth] = []
    try:
        for chunk in _chunks(items, batch_size):
            pixels = [read_image_file(item.image) for item in chunk]
            predictions.extend(detector.detect(pixels))
            for item, image in zip(chunk, pixels, strict=True):
                labels = read_yolo_labels(item.label, None if real else len(class_names))
                if real:
                    labels[:, 0] = class_names.index(REAL_TARGET_CLASS)
                ground_truths.append(labels_to_ground_truth(labels, image.shape[1], image.shape[0]))
    finally:
        detector.backend.close()
    seconds = time.perf_counter() - started

    metrics = evaluate_detections(
        predictions,
        ground_truths,
        class_names=class_names,
        class_agnostic=real,
        conf_threshold=REPORT_CONF_THRESHOLD,
    )
    block: dict[str, Any] = {
        "dataset": "real" if real else "synthetic",
        "path": source,
        "split": split,
        "class_agnostic": real,
        **metrics.to_dict(),
        "detector": {
            "backend": backend_name,
            "conf_threshold": AP_CONF_THRESHOLD,
            "nms_iou": detector.options.iou_threshold,
            "max_det": detector.options.max_det,
            "input_size": list(card.spec.input_size),
        },
        "seconds": round(seconds, 2),
        "model_sha256": card.sha256,
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
    }
    if not real:
        try:
            attributes = read_object_attributes(Path(dataset), split, breakdown_key)
            if attributes is not None:
                values = _align_attributes(items, ground_truths, attributes)
                block[f"by_{breakdown_key}"] = _breakdown(predictions, ground_truths, values, class_names=class_names)
        except DatasetError as e:
            # The headline numbers are valid without the breakdown; say why it is missing.
            log.warning("no %s breakdown: %s", breakdown_key, e)
            block[f"by_{breakdown_key}"] = {"error": str(e)}
    return block


def record_metrics(card_path: str | Path, key: str, block: Mapping[str, Any]) -> ModelCard:
    """Store a metrics block in a card under ``key`` (replacing an older one) and save it.

    Raises:
        ModelCardError: the card is missing or malformed, or the block was measured on another
            model file (its ``model_sha256`` differs from the card's).
    """
    from vision.modelcard import ModelCardError

    card = ModelCard.load(card_path)
    measured = block.get("model_sha256")
    if measured is not None and measured != card.sha256:
        raise ModelCardError(
            f"metrics were measured on a model with sha256 {str(measured)[:12]}..., but {card_path} "
            f"describes {card.sha256[:12]}..."
        )
    card.metrics[key] = dict(block)
    card.save(card_path)
    return card
