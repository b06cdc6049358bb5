"""benchmarks/signature_match_eval.py: the pairs it measures on (the run itself needs the real
signatures and a trained card, so only :func:`build_pairs` is checked here, on items without pixels)."""

from __future__ import annotations

import itertools
from collections import Counter

from benchmarks.signature_match_eval import build_pairs
from similarity.data import SpecimenItem

REAL = "signatures-crossmedia"


def _items() -> list[SpecimenItem]:
    """Real: writers ``w0..w2`` each sign names ``n0`` and ``n1`` twice (paper and tablet); synthetic:
    writers ``S0..S3`` with 3 genuine signatures and 2 skilled forgeries each (interleaved)."""
    items = []
    for n in range(2):
        for w in range(3):
            owner = f"sig:w{w}#n{n}"
            items += [
                SpecimenItem(owner, "signature", True, f"name{n}", f"w{w}", f"{owner}/{m}", dataset=REAL)
                for m in ("paper", "tablet")
            ]
    for j in range(5):
        for k in range(4):
            owner = f"signature:S{k}"
            genuine = j < 3
            items.append(
                SpecimenItem(
                    owner, "signature", genuine, f"{owner}/forgeries", owner, f"{owner}/{j}", dataset="synthetic"
                )
            )
    return items


def test_build_pairs_forms_each_kind_of_pair_within_one_data_set() -> None:
    items = _items()
    pairs = build_pairs(items, seed=0)
    by_cat: dict[str, list[tuple[int, int]]] = {}
    for q, r, c in pairs:
        by_cat.setdefault(c, []).append((q, r))
    assert set(by_cat) == {"genuine", "skilled", "hard", "random"}
    for q, r, c in pairs:
        a, b = items[q], items[r]
        assert a.dataset == b.dataset and q != r, (a, b, c)
        assert b.genuine  # the reference side is always a genuine signature
        assert (a.owner == b.owner) == (c in ("genuine", "skilled"))
        assert a.genuine == (c != "skilled")
        if c == "hard":
            assert a.group == b.group and a.dataset == REAL
        if c == "random":
            assert a.group != b.group

    genuine_of = {
        o: [i for i, it in enumerate(items) if it.owner == o and it.genuine] for o in {it.owner for it in items}
    }
    # Every two genuine signatures of an owner, once.
    expected = {(a, b) for idx in genuine_of.values() for a, b in itertools.combinations(idx, 2)}
    assert sorted(by_cat["genuine"]) == sorted(expected)
    # Each forgery against its writer's first two genuine renders.
    forged = [i for i, it in enumerate(items) if not it.genuine]
    assert sorted(by_cat["skilled"]) == sorted((f, g) for f in forged for g in genuine_of[items[f].owner][:2])
    # The same name by two different writers: one pair per two writers of a name (real data only).
    hard = {(items[q].owner, items[r].owner) for q, r in by_cat["hard"]}
    assert len(by_cat["hard"]) == len(hard) == 2 * 3
    assert all(q == genuine_of[items[q].owner][0] and r == genuine_of[items[r].owner][-1] for q, r in by_cat["hard"])
    # Random pairs of both data sets, at most one draw per try.
    datasets = Counter(items[q].dataset for q, _ in by_cat["random"])
    assert datasets[REAL] > 0 and datasets["synthetic"] > 0
    assert len(by_cat["random"]) <= max(len(hard), 20 * len(genuine_of))


def test_build_pairs_is_seeded():
    items = _items()
    assert build_pairs(items, seed=4) == build_pairs(items, seed=4)
    other = build_pairs(items, seed=5)
    assert other != build_pairs(items, seed=4)
    # Only the random draw depends on the seed.
    assert [p for p in other if p[2] != "random"] == [p for p in build_pairs(items, seed=4) if p[2] != "random"]


def test_synthetic_writers_give_no_hard_pairs():
    synthetic = [it for it in _items() if it.dataset == "synthetic"]
    counts = Counter(c for _, _, c in build_pairs(synthetic, seed=0))
    assert counts["hard"] == 0 and counts["genuine"] == 4 * 3 and counts["skilled"] == 4 * 2 * 2
    assert counts["random"] > 0


def test_every_scan_condition_keeps_a_comparable_signature() -> None:
    """``--conditions`` degrades the questioned crop only; each degraded crop is still an RGB image
    the shape verifier can describe, and the same crop as scanned stays the most similar."""
    import numpy as np

    from benchmarks.scan_conditions import CONDITIONS
    from detectors.synth.signatures import Writer, render_signature
    from similarity.signature_match import SignatureMatcher

    ink = render_signature(Writer.for_id("W-00042"), np.random.default_rng(1), dpi=200).ink.absorb
    crop = np.clip((1.0 - np.pad(ink, ((10, 10), (10, 10), (0, 0)))) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    matcher = SignatureMatcher()
    specimen = matcher.prepare(crop)
    itself = matcher.compare(crop, specimen).similarity
    for name, degrade in CONDITIONS.items():
        out = degrade(crop)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, name
        assert not np.array_equal(out, crop), name
        assert matcher.compare(matcher.prepare(out), specimen).similarity <= itself + 1e-9, name
