"""What the X-ray detector's settings change for an officer: the share of labelled threats that reach
their class's *review* and *alarm* thresholds (:data:`detectors.xray.RISK_RULES`).

mAP averages over every threshold; an officer only sees what crosses the risk table's. Per class, a
labelled item counts as raising a review (an alarm) when a detection of its class overlaps it at IoU
0.5 or more with a confidence at or above the class's ``review`` (``alarm``) threshold. Each
detector configuration (``--configs``: the default, ``no-tiles``, ``no-flip``, ``one-view``) runs the
same images of a synthetic X-ray set with labels (the TIP validation split by default: real bags,
projected threats of every class).

Run: ``python -m benchmarks.xray_risk_recall --data var/synth/tip-3k --out
benchmarks/results/xray_risk_recall.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import csv_words, machine_description, result_document, write_json
from detectors.datasets import labels_to_ground_truth, read_yolo_labels, synthetic_split
from detectors.xray import RISK_RULES, ThreatDetector
from vision.boxes import box_iou
from vision.imageio import read_image_file
from vision.metrics import GroundTruth
from vision.types import Detections

__all__ = ["CONFIGS", "get_args_parser", "main", "risk_recall"]

#: Detector configurations by name: the ``ThreatDetector`` switches each one sets.
CONFIGS: dict[str, dict[str, bool]] = {
    "default": {"flip_tta": True, "tile_tta": True},
    "no-tiles": {"flip_tta": True, "tile_tta": False},
    "no-flip": {"flip_tta": False, "tile_tta": True},
    "one-view": {"flip_tta": False, "tile_tta": False},
}
#: IoU at which a detection of the right class counts as finding a labelled item.
MATCH_IOU = 0.5


def risk_recall(
    predictions: Sequence[Detections], ground_truths: Sequence[GroundTruth], class_names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per class: labelled items, and the share reaching the review and (where the class has one) alarm
    thresholds of :data:`RISK_RULES` with a detection of their class at IoU >= :data:`MATCH_IOU`."""
    best_scores: dict[str, list[float]] = {name: [] for name in class_names}
    for det, gt in zip(predictions, ground_truths, strict=True):
        iou = box_iou(gt.xyxy, det.xyxy) if len(det) else np.zeros((len(gt.class_id), 0), np.float32)
        for j, cls in enumerate(gt.class_id.tolist()):
            hit = (det.class_id == cls) & (iou[j] >= MATCH_IOU)
            best_scores[class_names[cls]].append(float(det.confidence[hit].max()) if hit.any() else 0.0)
    out: dict[str, dict[str, Any]] = {}
    for name, scores in best_scores.items():
        rule = RISK_RULES[name]
        s = np.asarray(scores)
        out[name] = {
            "items": len(scores),
            "review_threshold": rule.review,
            "review_recall": round(float((s >= rule.review).mean()), 4) if len(s) else None,
            "alarm_threshold": rule.alarm,
            "alarm_recall": round(float((s >= rule.alarm).mean()), 4) if len(s) and rule.alarm is not None else None,
        }
    return out


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--card", default="models/xray.json", help="X-ray model card (default models/xray.json)")
    p.add_argument("--data", type=Path, required=True, help="synthetic X-ray set with labels (YOLO layout)")
    p.add_argument("--split", default="val", help="split of --data (default val)")
    p.add_argument("--configs", type=csv_words, default=list(CONFIGS), help=f"of {', '.join(CONFIGS)}")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        print(f"error: unknown --configs {unknown}; choose from {list(CONFIGS)}", file=sys.stderr)
        return 2
    items = synthetic_split(args.data, args.split)
    if not items:
        print(f"error: no images in {args.data} ({args.split})", file=sys.stderr)
        return 2
    machine = machine_description()
    pixels = [read_image_file(item.image) for item in items]
    results: dict[str, Any] = {}
    for name in args.configs:
        # Every detection at 0.05 or more is kept; the risk thresholds are applied here.
        detector = ThreatDetector.from_card(
            args.card,
            detector_kwargs={**CONFIGS[name], "conf_threshold": 0.05, "class_thresholds": {}},
            threads=args.threads,
        )
        try:
            class_names = detector.class_names
            ground_truths = [
                labels_to_ground_truth(read_yolo_labels(item.label, len(class_names)), im.shape[1], im.shape[0])
                for item, im in zip(items, pixels, strict=True)
            ]
            predictions: list[Detections] = []
            for start in range(0, len(pixels), 8):
                predictions += detector.detect(pixels[start : start + 8])
        finally:
            detector.backend.close()
        results[name] = {"detector": CONFIGS[name], "per_class": risk_recall(predictions, ground_truths, class_names)}
        print(
            name,
            json.dumps({c: (v["review_recall"], v["alarm_recall"]) for c, v in results[name]["per_class"].items()}),
        )
    document = result_document(
        "xray_risk_recall",
        vars(args),
        machine,
        data={"path": str(args.data.resolve()), "split": args.split, "images": len(items)},
        match_iou=MATCH_IOU,
        results=results,
    )
    if args.out is not None:
        write_json(args.out, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
