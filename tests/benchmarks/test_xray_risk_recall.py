"""benchmarks.xray_risk_recall: the share of labelled threats that reach the risk table's thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.xray_risk_recall import main, risk_recall
from detectors.synth.xray_dataset import write_dataset
from detectors.xray import RISK_RULES, XRAY_CLASSES
from tests.detectors.test_inspect_cli import write_model
from vision.metrics import GroundTruth
from vision.types import Detections


def _dets(rows: list[tuple[list[float], float, int]]) -> Detections:
    return Detections(
        xyxy=np.array([r[0] for r in rows], np.float32).reshape(-1, 4),
        confidence=np.array([r[1] for r in rows], np.float32),
        class_id=np.array([r[2] for r in rows], np.int64),
        class_names=XRAY_CLASSES,
    )


def test_an_item_counts_at_a_threshold_only_with_its_own_class_overlapping_it() -> None:
    gt = GroundTruth(
        xyxy=np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32),
        class_id=np.array([0, 0, 6], np.int64),  # two handguns, one cash bundle
    )
    det = _dets(
        [
            ([0, 0, 10, 10], 0.60, 0),  # handgun 1: alarm (0.50)
            ([20, 20, 30, 30], 0.90, 1),  # handgun 2 called a knife: not found as a handgun
            ([21, 21, 30, 30], 0.30, 0),  # ... but also a handgun box at 0.30: review (0.25) only
            ([40, 40, 45, 50], 0.99, 6),  # the cash bundle at IoU 0.5 exactly: found, alarm (0.65)
        ]
    )
    out = risk_recall([det], [gt], XRAY_CLASSES)
    assert out["handgun"] == {
        "items": 2,
        "review_threshold": RISK_RULES["handgun"].review,
        "review_recall": 1.0,
        "alarm_threshold": RISK_RULES["handgun"].alarm,
        "alarm_recall": 0.5,
    }
    assert out["cash_bundle"]["review_recall"] == out["cash_bundle"]["alarm_recall"] == 1.0
    assert out["knife"]["items"] == 0 and out["knife"]["review_recall"] is None
    # Scissors never raise an alarm by themselves: no alarm recall.
    assert out["scissors_blade"]["alarm_threshold"] is None


def test_a_small_run_reports_each_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = write_model(tmp_path / "models", "xray", XRAY_CLASSES)
    data = tmp_path / "scans"
    write_dataset(data, count=4, seed=3, size=(96, 96), val_fraction=0.5)
    out = tmp_path / "rr.json"
    assert main(["--card", str(card), "--data", str(data), "--configs", "default,one-view", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"default", "one-view"}
    assert report["results"]["one-view"]["detector"] == {"flip_tta": False, "tile_tta": False}
    assert set(report["results"]["default"]["per_class"]) == set(XRAY_CLASSES)
    assert report["data"]["images"] >= 1 and "machine" in report
    assert main(["--card", str(card), "--data", str(data), "--configs", "bogus"]) == 2
