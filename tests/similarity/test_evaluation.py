from __future__ import annotations

import numpy as np
import pytest

from similarity.data import SpecimenItem
from similarity.evaluation import pair_scores, reference_scores, report, skilled_by_forgery
from similarity.scoring import ScoringError


def _item(owner, genuine=True, group=None, dataset="a", source=None, forgery=""):
    return SpecimenItem(
        owner,
        "signature",
        genuine,
        group or owner,
        owner,
        source or f"{owner}/{genuine}",
        dataset=dataset,
        forgery=forgery,
    )


def test_pair_categories_and_no_pairs_across_data_sets():
    items = [
        _item("w1#0", group="name0"),
        _item("w1#0", group="name0"),
        _item("w1#0", genuine=False, group="name0"),
        _item("w2#0", group="name0"),  # same name, other writer: hard
        _item("w3#1", group="name1"),  # other name: random
        _item("s1", group="s1", dataset="b"),  # another data set: never paired with the above
    ]
    emb = np.eye(6, dtype=np.float32)
    scores = pair_scores(items, emb)
    assert {k: v.size for k, v in scores.items()} == {"genuine": 1, "skilled": 2, "hard": 2, "random": 3}


def test_reference_protocol_takes_the_first_k_by_file_name_and_the_best_reference():
    items = [
        _item("A", source="A/genuine/01.png"),
        _item("A", source="A/genuine/00.png"),
        _item("A", source="A/genuine/02.png"),
        _item("A", genuine=False, source="A/forged/00.png"),
        _item("B", source="B/genuine/00.png"),
        _item("B", source="B/genuine/01.png"),
    ]
    # Embeddings chosen so the cosines are readable: rows are unit vectors at known angles.
    angles = np.array([0.0, 0.1, 0.3, 1.2, 2.0, 2.2])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    scores = reference_scores(items, emb, refs=2)
    # A's references: 00.png (0.1 rad) and 01.png (0 rad); its query 02.png (0.3 rad) is closest to 00.
    assert scores["genuine"] == pytest.approx([np.cos(0.2)])
    assert scores["skilled"] == pytest.approx([np.cos(1.1)])
    # B has no query left after its 2 references; A's query against B's best reference (2.0 rad).
    assert scores["random"] == pytest.approx([np.cos(1.7)])
    scores1 = reference_scores(items, emb, refs=1)
    assert scores1["genuine"].size == 3 and scores1["random"].size == 3
    with pytest.raises(ScoringError):
        reference_scores(items, emb, refs=4)
    with pytest.raises(ScoringError):
        reference_scores(items, emb[:3], refs=1)


def test_report_skips_categories_without_pairs():
    out = report(
        {"genuine": np.array([0.9, 0.8]), "skilled": np.zeros(0), "hard": np.zeros(0), "random": np.array([0.1])}
    )
    assert set(out["metrics"]) == {"random"}
    assert out["pairs"] == {"genuine": 2, "skilled": 0, "hard": 0, "random": 1}
    assert "percent_distributions" not in out


def test_skilled_metrics_per_forgery_kind_keep_kinds_apart():
    items = [
        _item("A"),
        _item("A"),
        _item("A", genuine=False, forgery="photocopy"),
        _item("A", genuine=False, forgery="other_font"),
        _item("A", genuine=False),  # kind unknown: left out
        _item("B"),
        _item("B"),
        _item("B", genuine=False, forgery="other_font"),
    ]
    # Genuine pairs at cosine 1; photocopies identical to their owner, other fonts orthogonal.
    a, b, c = np.eye(3, dtype=np.float32)
    emb = np.stack([a, a, a, c, c, b, b, c])
    out = skilled_by_forgery(items, emb)
    assert list(out) == ["other_font", "photocopy"]
    assert out["other_font"]["eer"] == 0.0 and out["other_font"]["n_impostor"] == 4
    assert out["photocopy"]["n_impostor"] == 2 and out["photocopy"]["eer"] >= 0.5
    assert skilled_by_forgery(items[:2], emb[:2]) == {}
