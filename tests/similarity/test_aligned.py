"""Aligned stamp verifier (card section, calibration fit, best specimen) and the 1:1 pair protocol
that calibrates and measures it (:mod:`similarity.evaluation`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest

from similarity.aligned import SECTION, AlignedStampScorer, similarity_logit
from similarity.data import SpecimenItem
from similarity.evaluation import (
    aligned_calibration_check,
    aligned_pair_scores,
    aligned_report,
    cosine_pair_scores,
    forgery_kind_of,
    owner_pairs,
    owner_pairs_metrics,
    pool_impostors,
)
from similarity.scoring import CalibrationError, DecisionPolicy, ScoringError, equal_error_rate
from similarity.stamp_match import (
    DEFAULT_WEIGHTS,
    BlankCropError,
    PreparedStamp,
    StampMatcher,
    StampMatchError,
    StampMatchFeatures,
)


def _features(similarity: float) -> StampMatchFeatures:
    # Every measured field zero (the required ones: whatever features the comparison has today).
    zeros = {f.name: 0.0 for f in dataclasses.fields(StampMatchFeatures) if f.default is dataclasses.MISSING}
    return StampMatchFeatures(**zeros, similarity=similarity)


class _ValueMatcher(StampMatcher):
    """Test double: a crop's "ink" is its mean grey level; a pair's similarity is the specimen's
    level / 255 (so a test picks each specimen's score), and an all-white crop is blank."""

    def __init__(self) -> None:
        super().__init__()
        self.compared = 0

    def prepare(self, crop: np.ndarray) -> PreparedStamp:
        if int(crop.min()) == 255:
            raise BlankCropError("no ink")
        return crop  # type: ignore[return-value]  # opaque to AlignedStampScorer and the protocol

    def compare(self, query: Any, specimen: Any) -> StampMatchFeatures:
        self.compared += 1
        return _features(float(np.asarray(specimen).mean()) / 255.0)


def _grey(level: int) -> np.ndarray:
    return np.full((24, 24, 3), level, np.uint8)


def _scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Combined scores in (0, 1): genuine pairs high, impostor pairs low, overlapping."""
    rng = np.random.default_rng(seed)
    return rng.beta(6, 2, size=300), rng.beta(2, 5, size=900)


def _fitted(**kwargs: Any) -> AlignedStampScorer:
    g, i = _scores()
    return AlignedStampScorer.fit(g, i, **kwargs)


# --------------------------------------------------------------------------------- card section


def test_the_card_section_round_trips_through_json():
    weights = {k: v * 1.5 for k, v in DEFAULT_WEIGHTS.items()}
    scorer = _fitted(matcher=StampMatcher(weights=weights, use_scale=True), band=3.0)
    section = json.loads(json.dumps(scorer.to_dict()))
    back = AlignedStampScorer.from_section(section)
    assert back.scorer == scorer.scorer
    assert back.matcher.weights == pytest.approx(weights) and back.matcher.use_scale is True
    assert back.band == 3.0 and back.threshold == scorer.threshold
    again = AlignedStampScorer.from_metrics({"scoring": {"stamp": {"other": 1}, SECTION: section}})
    assert again is not None and again.scorer == scorer.scorer


@pytest.mark.parametrize("metrics", [{}, {"scoring": {}}, {"scoring": {"stamp": {"calibration": {}}}}])
def test_a_card_without_the_section_has_no_aligned_scorer(metrics):
    assert AlignedStampScorer.from_metrics(metrics) is None


def _section_without(path: tuple[str, ...]) -> dict[str, Any]:
    section = json.loads(json.dumps(_fitted().to_dict()))
    node = section
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return section


def _section_with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    section = json.loads(json.dumps(_fitted().to_dict()))
    node = section
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return section


@pytest.mark.parametrize(
    "section",
    [
        _section_without(("calibration",)),
        _section_without(("decision",)),
        _section_without(("calibration", "slope")),
        _section_without(("weights", "ncc")),
        _section_with(("weights", "chamfer"), float("nan")),
        _section_with(("weights", "ncc"), "heavy"),
        _section_with(("calibration", "slope"), -1.0),
        _section_with(("calibration", "method"), "isotonic"),
        _section_with(("decision", "threshold"), 150.0),
        _section_with(("decision", "band"), -2.0),
    ],
    ids=[
        "no-calibration",
        "no-decision",
        "no-slope",
        "missing-weight",
        "nan-weight",
        "text-weight",
        "negative-slope",
        "unknown-method",
        "threshold-over-100",
        "negative-band",
    ],
)
def test_a_malformed_section_is_a_scoring_error(section):
    with pytest.raises(ScoringError, match=SECTION):
        AlignedStampScorer.from_metrics({"scoring": {SECTION: section}})


# ------------------------------------------------------------------------------------------- fit


def test_fit_is_monotone_with_the_threshold_at_the_equal_error_point():
    g, i = _scores()
    scorer = AlignedStampScorer.fit(g, i, band=5.0)
    calibration = scorer.scorer.calibration
    assert calibration.slope > 0 and calibration.n_genuine == g.size and calibration.n_impostor == i.size
    grid = np.linspace(0.001, 0.999, 500)
    assert np.all(np.diff(calibration.probability(similarity_logit(grid))) > 0)
    eer, t = equal_error_rate(similarity_logit(g), similarity_logit(i))
    assert scorer.threshold == round(float(100 * calibration.probability(t)), 2)
    assert scorer.scorer.policy.basis == "eer" and scorer.band == 5.0
    # At that threshold the two error rates meet (up to one step of the empirical curves).
    pg = calibration.percent(similarity_logit(g))
    pi = calibration.percent(similarity_logit(i))
    frr, far = float(np.mean(pg < scorer.threshold)), float(np.mean(pi >= scorer.threshold))
    assert abs(frr - far) < 0.02 and abs(frr - eer) < 0.02 and 0.05 < eer < 0.4


def test_fit_at_a_target_far_accepts_at_most_that_share_of_impostors():
    g, i = _scores(1)
    scorer = AlignedStampScorer.fit(g, i, far=0.02, band=0.0)
    assert scorer.scorer.policy.basis == "far=0.02"
    accepted = 100.0 * scorer.scorer.calibration.probability(similarity_logit(i)) >= scorer.threshold
    assert 0.0 < accepted.mean() <= 0.02
    assert scorer.threshold > AlignedStampScorer.fit(g, i).threshold  # stricter than the EER point


def test_a_far_threshold_holds_on_the_shown_two_decimal_percentages():
    g, i = _scores(1)
    scorer = AlignedStampScorer.fit(g, i, far=0.02, band=0.0)
    shown = scorer.scorer.calibration.percent(similarity_logit(i))
    assert np.mean([scorer.scorer.policy.verdict(float(p)) == "genuine" for p in shown]) <= 0.02


def test_fit_refuses_impostors_that_score_higher():
    g, i = _scores()
    with pytest.raises(CalibrationError):
        AlignedStampScorer.fit(i, g)


# ----------------------------------------------------------------------------------------- score


def test_score_compares_with_every_specimen_and_keeps_the_best():
    matcher = _ValueMatcher()
    scorer = AlignedStampScorer(matcher=matcher, scorer=_fitted().scorer)
    specimens = [_grey(40), _grey(200), _grey(120)]
    result = scorer.score(_grey(10), specimens)
    assert matcher.compared == 3
    assert result.specimen_index == 1 and result.features.similarity == pytest.approx(200 / 255)
    assert (result.percent, result.verdict) == scorer.scorer.score(float(similarity_logit(200 / 255)))
    low = scorer.score(_grey(10), [_grey(5)])
    assert low.percent < result.percent and low.verdict == "forged"


def test_score_needs_a_specimen_and_an_inked_query():
    scorer = AlignedStampScorer(matcher=_ValueMatcher(), scorer=_fitted().scorer)
    with pytest.raises(StampMatchError, match="at least one"):
        scorer.score(_grey(10), [])
    with pytest.raises(BlankCropError):
        scorer.score(_grey(255), [_grey(100)])
    real = AlignedStampScorer(matcher=StampMatcher(), scorer=_fitted().scorer)
    with pytest.raises(BlankCropError):
        real.score(np.full((80, 120, 3), 250, np.uint8), [np.full((80, 120, 3), 250, np.uint8)])


def test_with_policy_keeps_the_comparison_and_the_calibration():
    scorer = _fitted()
    other = scorer.with_policy(DecisionPolicy(threshold=80.0, band=0.0, basis="far=0.001"))
    assert other.threshold == 80.0 and other.band == 0.0
    assert other.scorer.calibration == scorer.scorer.calibration and other.matcher is scorer.matcher


# ------------------------------------------------------------------------------- 1:1 protocol


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("05-altered_text.png", "altered_text"),
        ("004_redrawn_emblem.png", "redrawn_emblem"),
        ("07.png", ""),
        ("scan-a.png", ""),
        ("12-Photocopy.png", ""),
    ],
)
def test_forgery_kind_is_read_from_both_file_layouts(name, kind):
    assert forgery_kind_of(f"/data/AUTH-1/forged/{name}") == kind


def _items(owners: int, genuine: int, forged: int, *, level: dict[str, int] | None = None) -> list[SpecimenItem]:
    """Owners ``o0..``; file names as the training's render writes them (listed out of order)."""
    kinds = ("altered_text", "photocopy", "proportions")
    items = []
    for o in reversed(range(owners)):
        for j in reversed(range(genuine)):
            items.append(SpecimenItem(f"o{o}", "stamp", True, f"g{o}", f"o{o}", f"/d/o{o}/genuine/{j:02d}.png"))
        for j in range(forged):
            name = f"/d/o{o}/forged/{genuine + j:02d}-{kinds[j % len(kinds)]}.png"
            items.append(SpecimenItem(f"o{o}", "stamp", False, f"g{o}", f"o{o}", name))
    return items


def test_owner_pairs_registers_the_first_images_and_draws_random_owners():
    items = _items(6, genuine=4, forged=2)
    protocol = owner_pairs(items, refs=2, random_owners=3, seed=7)
    assert sorted(protocol.references) == [f"o{o}" for o in range(6)]
    for owner, refs in protocol.references.items():
        assert [items[r].source for r in refs] == [f"/d/{owner}/genuine/00.png", f"/d/{owner}/genuine/01.png"]
    assert protocol.counts() == {"genuine": 12, "skilled": 12, "random": 6 * 3 * 2}
    for p in protocol.pairs:
        q = items[p.query]
        assert q.source not in {items[r].source for r in protocol.references[q.owner]}  # never a reference
        assert (q.owner == p.owner) == (p.category in ("genuine", "skilled"))
        assert q.genuine == (p.category != "skilled")
        assert p.forgery == ("" if p.category != "skilled" else q.source.rsplit("-", 1)[1][:-4])
    again = owner_pairs(list(reversed(items)), refs=2, random_owners=3, seed=7)
    assert [(items[p.query].source, p.owner) for p in protocol.pairs] == [
        (list(reversed(items))[p.query].source, p.owner) for p in again.pairs
    ]
    other = owner_pairs(items, refs=2, random_owners=3, seed=8)
    assert [p.query for p in other.pairs] != [p.query for p in protocol.pairs]


def test_owner_pairs_edge_cases():
    items = _items(3, genuine=2, forged=1) + _items(1, genuine=1, forged=1)[:0]
    protocol = owner_pairs(items, refs=2)  # every genuine image is a reference: forgeries only
    assert protocol.counts() == {"genuine": 0, "skilled": 3, "random": 0}
    few = [it for it in _items(2, genuine=3, forged=1) if not (it.owner == "o1" and it.genuine)]
    assert sorted(owner_pairs(few, refs=2).references) == ["o0"]  # o1 has no genuine image: left out
    with pytest.raises(ScoringError, match="refs"):
        owner_pairs(items, refs=0)
    with pytest.raises(ScoringError, match="3 genuine"):
        owner_pairs(items, refs=3)
    with pytest.raises(ScoringError, match="random_owners"):
        owner_pairs(items, refs=1, random_owners=-1)


def test_cosine_pair_scores_take_the_best_reference():
    items = _items(2, genuine=3, forged=0)
    protocol = owner_pairs(items, refs=2, random_owners=1)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(items), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = cosine_pair_scores(protocol, dict(enumerate(vectors)))
    for p, s in zip(protocol.pairs, scores, strict=True):
        assert s == pytest.approx(max(float(vectors[r] @ vectors[p.query]) for r in protocol.references[p.owner]))


def test_aligned_pair_scores_skip_blank_crops_and_report_progress():
    items = _items(3, genuine=3, forged=1)
    # Image of item i: grey level from its file name, white (blank) for o2's genuine/02 query.
    levels = {i: 20 + 7 * i for i in range(len(items))}
    blank = next(i for i, it in enumerate(items) if it.source == "/d/o2/genuine/02.png")
    blank_ref = next(i for i, it in enumerate(items) if it.source == "/d/o1/genuine/00.png")
    levels[blank] = levels[blank_ref] = 255
    protocol = owner_pairs(items, refs=2, random_owners=2)
    lines: list[str] = []
    out = aligned_pair_scores(protocol, lambda i: _grey(levels[i]), _ValueMatcher(), progress=lines.append, every=4)
    assert out.blank_items == {blank, blank_ref}
    for n, p in enumerate(protocol.pairs):
        live = [r for r in protocol.references[p.owner] if levels[r] != 255]
        if p.query == blank:
            assert np.isnan(out.similarity[n])
        else:
            assert out.similarity[n] == pytest.approx(max(levels[r] for r in live) / 255)
    assert len(lines) == -(-len(protocol.pairs) // 4) and lines[-1].startswith(
        f"aligned comparison: {len(protocol.pairs)}/"
    )
    assert out.timing()["comparisons"] == len(out.compare_seconds) > 0


def test_metrics_report_and_check_count_only_scored_pairs():
    items = _items(8, genuine=4, forged=3)
    protocol = owner_pairs(items, refs=2, random_owners=3)
    cat = protocol.categories()
    rng = np.random.default_rng(3)
    sim = np.where(
        cat == "genuine",
        rng.beta(6, 2, cat.size),
        np.where(cat == "skilled", rng.beta(3, 3, cat.size), rng.beta(1, 6, cat.size)),
    )
    sim[0] = np.nan  # one genuine pair could not be aligned
    metrics = owner_pairs_metrics(sim, protocol)
    assert metrics["skilled"]["n_genuine"] == 15 and metrics["skilled"]["n_impostor"] == 24
    assert set(metrics["skilled_by_kind"]) == {"altered_text", "photocopy", "proportions"}
    assert metrics["random"]["eer"] < metrics["skilled"]["eer"]

    from similarity.evaluation import AlignedPairScores

    scores = AlignedPairScores(similarity=sim, compare_seconds=[0.05] * 10, seconds=0.5)
    scorer = AlignedStampScorer.fit(
        sim[(cat == "genuine") & ~np.isnan(sim)],
        pool_impostors([sim[cat == "skilled"], sim[cat == "random"]]),
    )
    report = aligned_report(protocol, scores, scorer, cosine=rng.uniform(-1, 1, cat.size))
    assert report["pairs"] == {"genuine": 15, "skilled": 24, "random": 48}
    assert report["unscored_pairs"] == {"genuine": 1, "skilled": 0, "random": 0}
    assert report["aligned"]["percent_distributions"]["genuine"]["n"] == 15
    assert sum(report["aligned"]["verdicts"]["random"].values()) == 48
    assert report["aligned"]["decision"]["threshold"] == scorer.threshold
    assert report["cnn"]["metrics"]["skilled"]["n_genuine"] == 15  # the same pairs as the aligned figures
    check = aligned_calibration_check(protocol, sim)
    assert {"fit_a_check_b", "fit_b_check_a"} <= set(check), check
    assert 0.0 <= check["fit_a_check_b"]["at_threshold"]["far_random"] <= 1.0


def test_pool_impostors_weighs_each_category_equally():
    pooled = pool_impostors([np.zeros(10), np.ones(3), np.zeros(0)], seed=1)
    assert pooled.size == 20 and pooled.sum() == 10
    np.testing.assert_array_equal(pooled, pool_impostors([np.zeros(10), np.ones(3)], seed=1))
    with pytest.raises(ScoringError):
        pool_impostors([np.zeros(0)])


def test_features_double_is_a_complete_feature_row():
    assert set(asdict(_features(0.5))) >= set(DEFAULT_WEIGHTS) - {"intercept"}
