"""Detector metrics broken down by the document generator's hard cases and scan kinds.

A tiny seeded document set (8 pages at 75 dpi, half of them in ``val``) is scored with
predictions made from its own labels, so every expected number follows from the metadata alone:
perfect predictions score 1 on every subset, and dropping the faint marks' boxes lowers exactly the
subsets that hold faint marks. Two tests go through the entry points (``evaluate_detector`` and
``customs-vision evaluate document``) with a tiny constant ONNX model. No training.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors.datasets import labels_to_ground_truth, read_yolo_labels, synthetic_split
from detectors.document import DOCUMENT_CLASSES
from detectors.evaluation import (
    Breakdown,
    align_objects,
    evaluate_detector,
    read_object_metadata,
    synthetic_breakdowns,
)
from detectors.synth.doc_dataset import write_document_dataset
from detectors.synth.documents import PageConfig
from detectors.synth.fonts import default_catalog
from detectors.xray import XRAY_CLASSES
from service.cli import main
from tests.detectors.fixtures_yolo import make_synthetic
from tests.detectors.test_inspect_cli import write_model
from vision.imageio import read_image_file
from vision.metrics import GroundTruth
from vision.types import Detections

if not default_catalog().has("latin"):
    pytest.skip("no Latin font installed (Debian: fonts-dejavu-core fonts-liberation2)", allow_module_level=True)

# Seed 2 puts 14 marks on 6 val pages, with every hard-case flag true at least once.
SEED, PAGES = 2, 8
LOW = PageConfig(dpi_range=(75.0, 75.0), languages=("en",), hard_rate=0.6)


@pytest.fixture(scope="module")
def doc_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "set"
    write_document_dataset(out, PAGES, SEED, config=LOW, val_fraction=0.5)
    return out


def marks(dataset: Path, split: str = "val") -> list[dict[str, Any]]:
    """The metadata lines (one per mark) of a split."""
    rows = [json.loads(line) for line in (dataset / "metadata.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def write_marks(dataset: Path, rows: list[dict[str, Any]]) -> None:
    (dataset / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def labelled(dataset: Path, split: str = "val"):
    """The split's images and their ground truth, read the way ``evaluate_detector`` reads them."""
    items = synthetic_split(dataset, split)
    gts = []
    for item in items:
        h, w = read_image_file(item.image).shape[:2]
        gts.append(labels_to_ground_truth(read_yolo_labels(item.label, len(DOCUMENT_CLASSES)), w, h))
    return items, gts


def predict(gts: list[GroundTruth], keep=None) -> list[Detections]:
    """Detections on the labelled boxes (confidence 0.9), only where ``keep(image, row)`` is true."""
    out = []
    for i, gt in enumerate(gts):
        rows = [k for k in range(len(gt)) if keep is None or keep(i, k)]
        out.append(
            Detections(
                xyxy=gt.xyxy[rows].reshape(-1, 4),
                confidence=np.full(len(rows), 0.9, np.float32),
                class_id=gt.class_id[rows],
                class_names=DOCUMENT_CLASSES,
            )
        )
    return out


def breakdowns(dataset: Path, predictions=None, keep=None) -> dict[str, Any]:
    items, gts = labelled(dataset)
    preds = predictions if predictions is not None else predict(gts, keep)
    return synthetic_breakdowns(dataset, "val", items, preds, gts, class_names=DOCUMENT_CLASSES)


def expected_subsets(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Subset name -> the marks in it, per breakdown, straight from the metadata."""
    flags = sorted({f for r in rows for f in r["flags"]})
    return {
        "by_hard_case": {f: [r for r in rows if r["flags"][f]] for f in flags},
        "by_scan": {s: [r for r in rows if r["scan"] == s] for s in sorted({r["scan"] for r in rows})},
    }


def test_perfect_predictions_score_one_on_every_subset(doc_set):
    rows = marks(doc_set)
    expected = expected_subsets(rows)
    # The set covers every hard case the generator writes, or this test would check less than it says.
    assert set(expected["by_hard_case"]) == {"stamp_over_signature", "faint", "partial", "greyscale_photocopy", "fax"}
    assert all(expected["by_hard_case"].values()), "every flag should be true on some val mark"
    blocks = breakdowns(doc_set)
    assert set(blocks) == {"by_hard_case", "by_scan"}  # no concealment in document metadata
    for key, subsets in expected.items():
        assert list(blocks[key]) == list(subsets)
        for name, members in subsets.items():
            row = blocks[key][name]
            assert row["num_gt"] == len(members), (key, name)
            assert row["num_images"] == len({m["image"] for m in members}), (key, name)
            assert row["map50"] == row["map50_95"] == row["precision"] == row["recall"] == 1.0, (key, name)


def test_missing_the_faint_marks_lowers_only_the_subsets_that_hold_them(doc_set):
    rows = marks(doc_set)
    items, gts = labelled(doc_set)
    aligned = align_objects(items, gts, read_object_metadata(doc_set, "val"))
    blocks = breakdowns(doc_set, predict(gts, keep=lambda i, k: not aligned[i][k]["flags"]["faint"]))
    faint = blocks["by_hard_case"]["faint"]
    assert faint["num_gt"] > 0 and faint["recall"] == 0.0 and faint["map50"] == 0.0
    # The other marks on those pages are found but ignored: no true positives, no false alarms.
    assert faint["precision"] is None
    recalls = []
    for key, subsets in expected_subsets(rows).items():
        for name, members in subsets.items():
            recall = round(sum(not m["flags"]["faint"] for m in members) / len(members), 4)
            assert blocks[key][name]["recall"] == recall, (key, name)
            recalls.append(recall)
    # Some subsets lose marks (faint ones among others), some lose none.
    assert any(0.0 < r < 1.0 for r in recalls) and 1.0 in recalls


def test_marks_are_matched_to_label_rows_by_box_not_by_order(doc_set, tmp_path):
    shuffled = tmp_path / "shuffled"
    shutil.copytree(doc_set, shuffled)
    rows = marks(doc_set, "train") + marks(doc_set)
    write_marks(shuffled, rows[::-1])  # every page's marks now listed in the opposite order
    items, gts = labelled(shuffled)
    aligned = align_objects(items, gts, read_object_metadata(shuffled, "val"))
    assert any(len(gt) > 1 and len(set(gt.class_id.tolist())) > 1 for gt in gts)  # the order matters somewhere
    for gt, objs in zip(gts, aligned, strict=True):
        assert [o["class_id"] for o in objs] == gt.class_id.tolist()
        np.testing.assert_allclose([o["box"] for o in objs], gt.xyxy.reshape(-1, 4), atol=0.05)

    def not_faint(i: int, k: int) -> bool:
        return not aligned[i][k]["flags"]["faint"]

    assert breakdowns(shuffled, keep=not_faint) == breakdowns(doc_set, keep=not_faint)


def _move_a_box(rows):
    rows[0]["box"] = [v + 40 for v in rows[0]["box"]]


def _drop_a_mark(rows):
    del rows[0]


def _swap_a_class(rows):
    rows[0]["class_id"] = 1 - rows[0]["class_id"]


@pytest.mark.parametrize("damage", [_move_a_box, _drop_a_mark, _swap_a_class])
def test_metadata_that_does_not_match_the_labels_is_reported(doc_set, tmp_path, damage):
    broken = tmp_path / "broken"
    shutil.copytree(doc_set, broken)
    rows = marks(doc_set)
    damage(rows)
    write_marks(broken, rows)
    blocks = breakdowns(broken)
    assert set(blocks) == {"by_hard_case", "by_scan"}
    for block in blocks.values():
        assert list(block) == ["error"] and "do not match" in block["error"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["not json"], "not JSON"),
        (['{"split": "val"}'], "expected a JSON object"),
        (['{"image": "images/val/a.jpg", "split": "val"}', '{"file": "b.jpg", "objects": []}'], "mixes"),
        (['{"file": "b.jpg", "objects": []}', '{"file": "b.jpg", "objects": []}'], "listed twice"),
    ],
)
def test_unreadable_metadata_leaves_the_headline_numbers(doc_set, tmp_path, lines, message):
    broken = tmp_path / "broken"
    shutil.copytree(doc_set, broken)
    (broken / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    blocks = breakdowns(broken)
    assert list(blocks) == ["breakdown_error"] and message in blocks["breakdown_error"]


def test_empty_subsets_and_pages_without_marks_are_scored_not_crashed(doc_set, tmp_path):
    extra = tmp_path / "extra"
    shutil.copytree(doc_set, extra)
    rows = marks(doc_set)
    for r in rows:
        r["flags"]["smudged"] = False  # a flag the data names but no mark has
    write_marks(extra, rows)
    # A page without marks has no metadata line and no label file.
    shutil.copy(extra / "images" / "val" / Path(rows[0]["image"]).name, extra / "images" / "val" / "zzz_blank.jpg")
    blocks = breakdowns(extra)
    assert blocks["by_hard_case"]["smudged"] == {
        "map50": None,
        "map50_95": None,
        "precision": None,
        "recall": None,
        "num_gt": 0,
        "num_images": 0,
    }
    assert blocks["by_hard_case"]["faint"]["recall"] == 1.0
    assert synthetic_breakdowns(extra, "val", [], [], [], class_names=DOCUMENT_CLASSES) == {
        "by_hard_case": {},
        "by_scan": {},
    }


def test_xray_sets_keep_their_concealment_breakdown(tmp_path):
    synth = make_synthetic(tmp_path / "xray", train=1, val=6)
    items = synthetic_split(synth, "val")
    gts = [labels_to_ground_truth(read_yolo_labels(i.label, len(XRAY_CLASSES)), 64, 64) for i in items]
    preds = [
        Detections(
            xyxy=g.xyxy, confidence=np.full(len(g), 0.9, np.float32), class_id=g.class_id, class_names=XRAY_CLASSES
        )
        for g in gts
    ]
    blocks = synthetic_breakdowns(synth, "val", items, preds, gts, class_names=XRAY_CLASSES)
    assert list(blocks) == ["by_concealment"]
    assert list(blocks["by_concealment"]) == ["easy", "hard", "hidden"]
    assert sum(level["num_gt"] for level in blocks["by_concealment"].values()) == 12
    assert all(level["map50"] == 1.0 for level in blocks["by_concealment"].values())


@pytest.mark.parametrize(
    ("breakdown", "obj", "expected"),
    [
        (Breakdown("concealment", "concealment"), {"concealment": "hard"}, {"hard": True}),
        (Breakdown("concealment", "concealment"), {"concealment": None}, {"None": True}),
        (Breakdown("concealment", "concealment"), {"class_id": 0}, {}),
        (
            Breakdown("hard_case", "flags", flags=True),
            {"flags": {"faint": True, "fax": False}},
            {"faint": True, "fax": False},
        ),
        (Breakdown("hard_case", "flags", flags=True), {"flags": "faint"}, {}),
    ],
)
def test_memberships(breakdown, obj, expected):
    assert breakdown.memberships(obj) == expected


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    """A tiny constant document model (one stamp in the middle of bright pages) with its card."""
    return write_model(tmp_path_factory.mktemp("models"), "document", DOCUMENT_CLASSES)


def test_evaluate_detector_records_the_document_breakdowns(doc_set, card):
    block = evaluate_detector(card, doc_set, backend_kwargs={"threads": 1})
    rows = marks(doc_set)
    assert block["num_gt"] == len(rows) and block["num_images"] == 6
    for key, subsets in expected_subsets(rows).items():
        assert {name: entry["num_gt"] for name, entry in block[key].items()} == {n: len(m) for n, m in subsets.items()}
    assert json.loads(json.dumps(block)) == block  # JSON-ready for the card


def test_evaluate_document_cli_prints_and_records_the_breakdowns(doc_set, card, tmp_path, capsys):
    card_copy = tmp_path / "document.json"
    shutil.copy(card, card_copy)
    shutil.copy(card.with_suffix(".onnx"), tmp_path / "document.onnx")
    code = main(
        ["evaluate", "document", "--model", str(card_copy), "--data", str(doc_set), "--threads", "1", "--write-card"]
    )
    assert code == 0
    out = capsys.readouterr().out
    faint = Counter(f for r in marks(doc_set) for f, on in r["flags"].items() if on)["faint"]
    assert any(line.startswith("hard_case = faint ") and f"({faint} objects in" in line for line in out.splitlines())
    assert "scan = " in out and "recorded as metrics['synthetic_val']" in out
    recorded = json.loads(card_copy.read_text())["metrics"]["synthetic_val"]
    assert set(recorded["by_hard_case"]) == {"stamp_over_signature", "faint", "partial", "greyscale_photocopy", "fax"}
