from __future__ import annotations

import numpy as np
import pytest

from similarity.data import SpecimenItem
from similarity.evaluation import (
    owner_pairs,
    owner_pairs_metrics,
    pair_scores,
    reference_scores,
    report,
    skilled_by_forgery,
)
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


# ------------------------------------------------------------------------- 1:1 protocol: hard pairs


def _named_items() -> list[SpecimenItem]:
    """Data set ``real``: writers ``w0..w3`` each sign names ``n0..n2`` (owner ``w#n``, group the
    name; 3 genuine + 1 forged each) and ``w4`` signs ``n0`` once only (a reference, no query). Data
    set ``other``: three owners whose group is also called ``n0`` and two of their own groups."""
    items = []
    for w in range(4):
        for n in range(3):
            owner = f"w{w}#n{n}"
            for j in range(3):
                items.append(_item(owner, group=f"n{n}", dataset="real", source=f"{owner}/genuine/{j:02d}.png"))
            items.append(_item(owner, False, group=f"n{n}", dataset="real", source=f"{owner}/forged/03.png"))
    items.append(_item("w4#n0", group="n0", dataset="real", source="w4#n0/genuine/00.png"))
    items.append(_item("w4#n0", False, group="n0", dataset="real", source="w4#n0/forged/01.png"))
    for k, group in enumerate(["n0", "n0", "n0", "y3", "y4"]):
        items += [_item(f"x{k}", group=group, dataset="other", source=f"x{k}/genuine/{j:02d}.png") for j in range(3)]
    return items


def test_owner_pairs_draw_hard_impostors_among_the_owners_of_the_same_group() -> None:
    items = _named_items()
    protocol = owner_pairs(items, refs=1, random_owners=2, seed=3)
    group = {o: items[r[0]].group for o, r in protocol.references.items()}
    dataset = {o: items[r[0]].dataset for o, r in protocol.references.items()}
    refs = {i for r in protocol.references.values() for i in r}
    hard_owners: dict[str, set[str]] = {o: set() for o in protocol.references}
    random_owners: dict[str, set[str]] = {o: set() for o in protocol.references}
    for p in protocol.pairs:
        q = items[p.query]
        assert q.dataset == dataset[p.owner]  # never across data sets, though "n0" is a group in both
        assert p.query not in refs
        if p.category in ("hard", "random"):
            assert q.genuine and q.owner != p.owner and q.owner != "w4#n0"  # w4#n0 has no query to give
            assert (q.group == group[p.owner]) == (p.category == "hard")
            (hard_owners if p.category == "hard" else random_owners)[p.owner].add(q.owner)
    for owner in protocol.references:
        peers = [
            o
            for o in protocol.references
            if o not in (owner, "w4#n0") and dataset[o] == dataset[owner] and group[o] == group[owner]
        ]
        others = [
            o for o in protocol.references if o != "w4#n0" and dataset[o] == dataset[owner] and group[o] != group[owner]
        ]
        assert len(hard_owners[owner]) == min(2, len(peers)), owner
        assert len(random_owners[owner]) == min(2, len(others)), owner
    # Each drawn owner gives all of its genuine queries (2 each: 3 genuine, 1 registered).
    n_real = 12 * 2 * 2 + 2 * 2  # every real owner (w4#n0 too) has >= 2 same-name peers with queries
    n_other = 3 * 2 * 2  # x0..x2 share "n0"; x3 and x4 are alone in their groups
    assert protocol.counts()["hard"] == n_real + n_other
    assert protocol.counts()["random"] == (13 + 5) * 2 * 2
    assert hard_owners["x3"] == set() and hard_owners["x0"] == {"x1", "x2"}


def test_owner_pairs_hard_draw_is_seeded():
    items = _named_items()

    def drawn(its: list[SpecimenItem], seed: int) -> list[tuple[str, str, str]]:
        protocol = owner_pairs(its, refs=1, random_owners=2, seed=seed)
        return [(its[p.query].source, p.owner, p.category) for p in protocol.pairs]

    assert drawn(items, 0) == drawn(items, 0) == drawn(list(reversed(items)), 0)
    hard = [{(s, o) for s, o, c in drawn(items, seed) if c == "hard"} for seed in (0, 1)]
    assert hard[0] != hard[1]


def test_owner_pairs_metrics_report_hard_pairs_when_present():
    items = _named_items()
    protocol = owner_pairs(items, refs=1, random_owners=2)
    cat = protocol.categories()
    rng = np.random.default_rng(0)
    means = {"genuine": 0.8, "skilled": 0.5, "hard": 0.55, "random": 0.2}
    sim = np.array([rng.normal(means[c], 0.1) for c in cat])
    metrics = owner_pairs_metrics(sim, protocol)
    assert set(metrics) == {"skilled", "hard", "random"}  # forgeries of unknown kind: no per-kind block
    assert metrics["hard"]["n_impostor"] == protocol.counts()["hard"]
    assert metrics["hard"]["n_genuine"] == protocol.counts()["genuine"]
    assert metrics["random"]["eer"] < metrics["hard"]["eer"]
    without = owner_pairs_metrics(sim, protocol, valid=cat != "hard")
    assert "hard" not in without and without["random"] == metrics["random"]
