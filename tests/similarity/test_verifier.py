"""Direct pair verifiers of both kinds (card sections, calibration fit, best specimen) and the 1:1 pair
protocol that calibrates and measures them (:mod:`similarity.evaluation`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from similarity.data import SpecimenItem
from similarity.evaluation import (
    DirectPairScores,
    cosine_pair_scores,
    direct_calibration_check,
    direct_pair_scores,
    direct_report,
    forgery_kind_of,
    owner_pairs,
    owner_pairs_metrics,
    pool_impostors,
    pooled_impostors,
)
from similarity.pairwise import BlankCropError, Finding, PairMatcher, PairMatchError
from similarity.scoring import CalibrationError, DecisionPolicy, ScoringError, equal_error_rate
from similarity.signature_match import DEFAULT_WEIGHTS as SIGNATURE_WEIGHTS
from similarity.signature_match import SignatureMatcher, SignatureMatchFeatures
from similarity.stamp_match import DEFAULT_WEIGHTS as STAMP_WEIGHTS
from similarity.stamp_match import StampMatcher
from similarity.verifier import (
    DEFAULT_OWNER_ALPHA,
    FORGED_ONLY_BELOW,
    METHODS,
    SECTIONS,
    OwnerNormalisation,
    PairVerifier,
    default_matcher,
    similarity_logit,
    specimen_consistency,
    verifiers_from_metrics,
)
from tests.similarity.conftest import make_specimen

DEFAULT_WEIGHTS = {"stamp": STAMP_WEIGHTS, "signature": SIGNATURE_WEIGHTS}
#: A weight of each kind the section tests remove or spoil.
SOME_WEIGHT = {"stamp": ("ncc", "chamfer"), "signature": ("hog_dist", "grid_dist")}


@dataclass(frozen=True)
class _Features:
    similarity: float


class _ValueMatcher:
    """Test double of a :class:`PairMatcher`: a crop's "ink" is its mean grey level; a pair's
    similarity is the specimen's level / 255 (so a test picks each specimen's score), and an
    all-white crop is blank."""

    def __init__(self) -> None:
        self.weights = {"intercept": 0.0}
        self.compared = 0

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        if int(crop.min()) == 255:
            raise BlankCropError("no ink")
        return crop

    def compare(self, query: Any, specimen: Any) -> _Features:
        self.compared += 1
        return _Features(float(np.asarray(specimen).mean()) / 255.0)

    def findings(self, query: Any) -> list[Finding]:
        return [Finding("dark", "a dark query")] if float(np.asarray(query).mean()) < 64 else []

    def comparison_findings(self, features: _Features) -> list[Finding]:
        return [Finding("weak", "a weak match")] if features.similarity < 0.1 else []


def _grey(level: int) -> np.ndarray:
    return np.full((24, 24, 3), level, np.uint8)


def _scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Combined scores in (0, 1): genuine pairs high, impostor pairs low, overlapping."""
    rng = np.random.default_rng(seed)
    return rng.beta(6, 2, size=300), rng.beta(2, 5, size=900)


def _fitted(kind: str = "stamp", **kwargs: Any) -> PairVerifier:
    g, i = _scores()
    return PairVerifier.fit(kind, g, i, **kwargs)


# --------------------------------------------------------------------------------- card section


def test_a_stamp_section_round_trips_through_json():
    weights = {k: v * 1.5 for k, v in STAMP_WEIGHTS.items()}
    matcher = StampMatcher(weights=weights, use_scale=True)
    verifier = PairVerifier(matcher=matcher, scorer=_fitted(band=3.0).scorer)
    section = json.loads(json.dumps(verifier.to_dict()))
    back = PairVerifier.from_section("stamp", section)
    assert isinstance(back.matcher, StampMatcher) and back.matcher.use_scale is True and back.use_scale is True
    assert back.scorer == verifier.scorer and back.kind == "stamp"
    assert back.matcher.weights == pytest.approx(weights)
    assert back.band == 3.0 and back.threshold == verifier.threshold
    assert (back.method, back.section) == ("aligned", "stamp_aligned")
    again = verifiers_from_metrics({"scoring": {"stamp": {"other": 1}, SECTIONS["stamp"]: section}})
    assert list(again) == ["stamp"] and again["stamp"].scorer == verifier.scorer


def test_fit_keeps_the_stamp_matchers_use_scale():
    verifier = _fitted(matcher=StampMatcher(use_scale=True))
    assert verifier.use_scale is True
    assert verifier.to_dict()["use_scale"] is True  # else the card would lose it
    assert verifier.with_policy(DecisionPolicy(threshold=60.0)).use_scale is True


def test_a_signature_section_round_trips_through_json():
    weights = {k: round(v * 0.5, 4) for k, v in SIGNATURE_WEIGHTS.items()}
    verifier = _fitted("signature", matcher=SignatureMatcher(weights=weights), band=3.0)
    assert (verifier.kind, verifier.method, verifier.section) == ("signature", "shape", "signature_shape")
    section = json.loads(json.dumps(verifier.to_dict()))
    assert "use_scale" not in section and "signature_match" in section["method"]
    assert "signature match similarity" in section["calibration"]["formula"]
    assert section["weights"] == weights
    back = PairVerifier.from_section("signature", section)
    assert isinstance(back.matcher, SignatureMatcher) and back.matcher.weights == weights
    assert back.scorer == verifier.scorer and back.band == 3.0 and back.threshold == verifier.threshold
    assert (back.kind, back.method) == ("signature", "shape")
    # Without weights in the section the matcher takes its defaults.
    del section["weights"]
    assert PairVerifier.from_section("signature", section).matcher.weights == SIGNATURE_WEIGHTS


def test_a_card_holds_a_verifier_per_kind():
    stamp = json.loads(json.dumps(_fitted("stamp").to_dict()))
    signature = json.loads(json.dumps(_fitted("signature", band=1.0).to_dict()))
    both = verifiers_from_metrics({"scoring": {"stamp": {}, "stamp_aligned": stamp, "signature_shape": signature}})
    assert sorted(both) == ["signature", "stamp"]
    assert {k: v.method for k, v in both.items()} == METHODS
    assert isinstance(both["signature"].matcher, SignatureMatcher) and both["signature"].band == 1.0
    assert isinstance(both["stamp"].matcher, StampMatcher) and both["stamp"].band == 5.0
    only = verifiers_from_metrics({"scoring": {"signature_shape": signature}})
    assert list(only) == ["signature"]


@pytest.mark.parametrize(
    "metrics",
    [{}, {"scoring": {}}, {"scoring": {"stamp": {"calibration": {}}}}, {"scoring": {"stamp_aligned": {}}}],
)
def test_a_card_without_a_section_has_no_direct_verifier(metrics):
    assert verifiers_from_metrics(metrics) == {}


def _section(kind: str, path: tuple[str, ...], value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    section = json.loads(json.dumps(_fitted(kind).to_dict()))
    node = section
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return section


_MALFORMED = {
    "no-calibration": (("calibration",), None, True),
    "no-decision": (("decision",), None, True),
    "no-slope": (("calibration", "slope"), None, True),
    "missing-weight": (("weights", 0), None, True),
    "nan-weight": (("weights", 1), float("nan"), False),
    "text-weight": (("weights", 0), "heavy", False),
    "negative-slope": (("calibration", "slope"), -1.0, False),
    "unknown-method": (("calibration", "method"), "isotonic", False),
    "threshold-over-100": (("decision", "threshold"), 150.0, False),
    "negative-band": (("decision", "band"), -2.0, False),
}


@pytest.mark.parametrize("kind", ["stamp", "signature"])
@pytest.mark.parametrize("case", list(_MALFORMED))
def test_a_malformed_section_is_a_scoring_error(kind, case):
    path, value, delete = _MALFORMED[case]
    if path[0] == "weights":
        path = ("weights", SOME_WEIGHT[kind][int(path[1])])
    section = _section(kind, tuple(str(p) for p in path), value, delete=delete)
    with pytest.raises(ScoringError, match=SECTIONS[kind]):
        verifiers_from_metrics({"scoring": {SECTIONS[kind]: section}})
    with pytest.raises(ScoringError, match=SECTIONS[kind]):
        PairVerifier.from_section(kind, section)


def test_a_section_of_the_other_kind_is_refused():
    stamp = _fitted("stamp").to_dict()
    with pytest.raises(ScoringError, match="signature_shape"):
        verifiers_from_metrics({"scoring": {"signature_shape": stamp}})  # stamp weights, no shape features
    with pytest.raises(ScoringError, match="stamp_aligned"):
        PairVerifier.from_section("stamp", _fitted("signature").to_dict())


def test_default_matcher_per_kind() -> None:
    stamp: PairMatcher = default_matcher("stamp", use_scale=True)
    assert isinstance(stamp, StampMatcher) and stamp.use_scale and stamp.weights == STAMP_WEIGHTS
    signature = default_matcher("signature")
    assert isinstance(signature, SignatureMatcher) and signature.weights == SIGNATURE_WEIGHTS
    halved = {k: v / 2 for k, v in SIGNATURE_WEIGHTS.items()}
    assert default_matcher("signature", halved).weights == halved
    with pytest.raises(ScoringError, match="seal"):
        default_matcher("seal")
    with pytest.raises(PairMatchError, match="lack"):
        default_matcher("signature", {"hog_dist": -1.0})


# ------------------------------------------------------------------------------------------- fit


@pytest.mark.parametrize("kind", ["stamp", "signature"])
def test_fit_is_monotone_with_the_threshold_at_the_equal_error_point(kind):
    g, i = _scores()
    verifier = PairVerifier.fit(kind, g, i, band=5.0)
    assert verifier.kind == kind and isinstance(verifier.matcher, type(default_matcher(kind)))
    assert verifier.matcher.weights == DEFAULT_WEIGHTS[kind]
    calibration = verifier.scorer.calibration
    assert calibration.slope > 0 and calibration.n_genuine == g.size and calibration.n_impostor == i.size
    grid = np.linspace(0.001, 0.999, 500)
    assert np.all(np.diff(calibration.probability(similarity_logit(grid))) > 0)
    eer, t = equal_error_rate(similarity_logit(g), similarity_logit(i))
    assert verifier.threshold == round(float(100 * calibration.probability(t)), 2)
    assert verifier.scorer.policy.basis == "eer" and verifier.band == 5.0
    # At that threshold the two error rates meet (up to one step of the empirical curves).
    pg = calibration.percent(similarity_logit(g))
    pi = calibration.percent(similarity_logit(i))
    frr, far = float(np.mean(pg < verifier.threshold)), float(np.mean(pi >= verifier.threshold))
    assert abs(frr - far) < 0.02 and abs(frr - eer) < 0.02 and 0.05 < eer < 0.4


def test_fit_at_a_target_far_accepts_at_most_that_share_of_impostors():
    g, i = _scores(1)
    verifier = PairVerifier.fit("signature", g, i, far=0.02, band=0.0)
    assert verifier.scorer.policy.basis == "far=0.02"
    accepted = 100.0 * verifier.scorer.calibration.probability(similarity_logit(i)) >= verifier.threshold
    assert 0.0 < accepted.mean() <= 0.02
    assert verifier.threshold > PairVerifier.fit("signature", g, i).threshold  # stricter than the EER point


def test_a_far_threshold_holds_on_the_shown_two_decimal_percentages():
    g, i = _scores(1)
    verifier = PairVerifier.fit("stamp", g, i, far=0.02, band=0.0)
    shown = verifier.scorer.calibration.percent(similarity_logit(i))
    assert np.mean([verifier.scorer.policy.verdict(float(p)) == "genuine" for p in shown]) <= 0.02


def test_fit_refuses_impostors_that_score_higher_and_unknown_kinds():
    g, i = _scores()
    with pytest.raises(CalibrationError):
        PairVerifier.fit("stamp", i, g)
    with pytest.raises(ScoringError, match="seal"):
        PairVerifier.fit("seal", g, i)


# ----------------------------------------------------------------------------------------- score


def test_score_compares_with_every_specimen_and_keeps_the_best():
    matcher = _ValueMatcher()
    verifier = PairVerifier(matcher=matcher, scorer=_fitted().scorer)
    specimens = [_grey(40), _grey(200), _grey(120)]
    result = verifier.score(_grey(10), specimens)
    assert matcher.compared == 3
    assert result.specimen_index == 1 and result.features.similarity == pytest.approx(200 / 255)
    assert (result.percent, result.verdict) == verifier.scorer.score(float(similarity_logit(200 / 255)))
    low = verifier.score(_grey(10), [_grey(5)])
    assert low.percent < result.percent and low.verdict == "forged"


def test_score_carries_what_the_query_shows_and_what_its_best_comparison_says():
    verifier = PairVerifier(matcher=_ValueMatcher(), scorer=_fitted().scorer)

    def codes(query: np.ndarray, specimens: list[np.ndarray]) -> list[str]:
        return [f.code for f in verifier.score(query, specimens).findings]

    assert codes(_grey(10), [_grey(200)]) == ["dark"]
    assert verifier.score(_grey(100), [_grey(200)]).findings == ()
    # The comparison's own findings follow the query's, from the best specimen's comparison only.
    assert codes(_grey(10), [_grey(5)]) == ["dark", "weak"]
    assert codes(_grey(100), [_grey(5), _grey(200)]) == []


class _ColourlessMatcher(_ValueMatcher):
    """:class:`_ValueMatcher` whose dark queries show ``no_colour`` (a greyscale stamp)."""

    def findings(self, query: Any) -> list[Finding]:
        return [Finding("no_colour", "no colour")] if float(np.asarray(query).mean()) < 64 else []


def test_a_colourless_query_is_called_forged_only_on_a_clearly_low_score():
    verifier = PairVerifier(matcher=_ColourlessMatcher(), scorer=_fitted().scorer)
    policy, bound = verifier.scorer.policy, FORGED_ONLY_BELOW["no_colour"]
    percent = {level: verifier.score(_grey(100), [_grey(level)]).percent for level in range(1, 255)}
    between = next(lv for lv, pc in percent.items() if bound + 1 < pc < policy.threshold - policy.band - 1)
    clearly_low = next(lv for lv, pc in percent.items() if pc < bound - 1)
    high = next(lv for lv, pc in percent.items() if pc > policy.threshold + policy.band + 1)
    # A colour query keeps the card's verdicts.
    assert verifier.score(_grey(100), [_grey(between)]).verdict == "forged"
    assert verifier.score(_grey(100), [_grey(clearly_low)]).verdict == "forged"
    # A colourless one: between the bound and the band it is inconclusive, below it still forged,
    # and a high score is genuine as before (the percentages themselves do not change).
    grey = verifier.score(_grey(10), [_grey(between)])
    assert grey.verdict == "inconclusive" and [f.code for f in grey.findings] == ["no_colour"]
    assert grey.percent == percent[between]
    assert verifier.score(_grey(10), [_grey(clearly_low)]).verdict == "forged"
    assert verifier.score(_grey(10), [_grey(high)]).verdict == "genuine"
    assert verifier.verdict(percent[between]) == "forged"
    assert verifier.verdict(percent[between], [Finding("copy_like", "")]) == "forged"


def test_a_signature_verifier_scores_the_writers_own_specimen_best():
    verifier = _fitted("signature")
    query = make_specimen(3, 0)
    specimens = [make_specimen(5, 0), make_specimen(3, 1), make_specimen(7, 0)]
    result = verifier.score(query, specimens)
    assert result.specimen_index == 1 and isinstance(result.features, SignatureMatchFeatures)
    assert result.features == SignatureMatcher().compare(query, specimens[1])
    best = float(similarity_logit(result.features.similarity))
    assert (result.percent, result.verdict) == verifier.scorer.score(best)
    prepared = verifier.score(verifier.prepare(query), [verifier.prepare(s) for s in specimens])
    assert prepared == result
    strangers = verifier.score(query, [specimens[0], specimens[2]])
    assert strangers.percent < result.percent


# ------------------------------------------------------------------------- owner normalisation


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def test_owner_normalisation_follows_its_formula():
    norm = OwnerNormalisation(alpha=0.75, typical=1.0)
    sims = [_sigmoid(2.0), _sigmoid(0.0), _sigmoid(1.0)]
    # One specimen, or no consistency known: the best specimen's score.
    assert norm.combine(sims[:1], None) == pytest.approx(sims[0])
    assert norm.combine(sims, None) == pytest.approx(max(sims))
    # Several: mean logit less alpha x (consistency - typical).
    assert similarity_logit(norm.combine(sims, 3.0)) == pytest.approx(1.0 - 0.75 * 2.0)
    assert similarity_logit(norm.combine(sims, 1.0)) == pytest.approx(1.0)
    # A steadier owner (higher consistency) needs a closer match for the same score.
    assert norm.combine(sims, 4.0) < norm.combine(sims, 1.0) < norm.combine(sims, -2.0)
    with pytest.raises(PairMatchError):
        norm.combine([], 1.0)


def test_owner_normalisation_section_round_trips_and_refuses_bad_values():
    verifier = PairVerifier(
        matcher=default_matcher("signature"),
        scorer=_fitted("signature").scorer,
        owner_normalisation=OwnerNormalisation(alpha=0.75, typical=2.5),
    )
    section = json.loads(json.dumps(verifier.to_dict()))
    assert section["owner_normalisation"]["formula"].startswith("logit(s) = mean_k")
    back = PairVerifier.from_section("signature", section)
    assert back.owner_normalisation == verifier.owner_normalisation
    # A card written before the section existed scores the best specimen.
    del section["owner_normalisation"]
    assert PairVerifier.from_section("signature", section).owner_normalisation is None
    bad_sections = ({"alpha": -1, "typical": 0}, {"alpha": 0.5}, {"alpha": "x", "typical": 0}, {"typical": 1})
    for bad in bad_sections:
        with pytest.raises(ScoringError, match="malformed"):
            PairVerifier.from_section("signature", section | {"owner_normalisation": bad})


def test_owner_normalisation_fit_takes_typical_from_genuine_pairs():
    g = np.array([_sigmoid(1.0), _sigmoid(3.0), np.nan])
    norm = OwnerNormalisation.fit("stamp", g)
    assert norm.alpha == DEFAULT_OWNER_ALPHA["stamp"] and norm.typical == pytest.approx(2.0)
    assert OwnerNormalisation.fit("stamp", g, alpha=0.25) == OwnerNormalisation(alpha=0.25, typical=norm.typical)
    with pytest.raises(ScoringError):
        OwnerNormalisation.fit("stamp", [np.nan])
    with pytest.raises(ValueError, match="alpha"):
        OwnerNormalisation.fit("stamp", g, alpha=-0.5)


def test_specimen_consistency_compares_every_ordered_pair():
    matcher = _ValueMatcher()
    assert specimen_consistency(matcher, [_grey(100)]) is None and matcher.compared == 0
    # _ValueMatcher's similarity is the second crop's level: each specimen is "specimen" K-1 times.
    got = specimen_consistency(matcher, [_grey(100), _grey(200), _grey(150)])
    assert matcher.compared == 6
    expected = np.mean(similarity_logit([v / 255 for v in (200, 150, 100, 150, 100, 200)]))
    assert got == pytest.approx(expected)


def test_score_with_owner_normalisation_judges_the_owner_against_its_own_spread():
    matcher = _ValueMatcher()
    norm = OwnerNormalisation(alpha=1.0, typical=0.0)
    verifier = PairVerifier(matcher=matcher, scorer=_fitted().scorer, owner_normalisation=norm)
    specimens = [_grey(100), _grey(200)]
    result = verifier.score(_grey(10), specimens)
    consistency = specimen_consistency(matcher, specimens)
    assert consistency is not None
    expected = norm.combine([100 / 255, 200 / 255], consistency)
    assert (result.percent, result.verdict) == verifier.scorer.score(float(similarity_logit(expected)))
    assert result.specimen_index == 1
    # Each specimen's own percent is listed, as if compared alone.
    alone = tuple(verifier.score(_grey(10), [s]).percent for s in specimens)
    assert result.specimen_percents == alone
    # A cached consistency is used as given (no specimen-to-specimen comparison).
    matcher.compared = 0
    cached = verifier.score(_grey(10), specimens, consistency=consistency)
    assert cached == result and matcher.compared == 2
    # One specimen: that specimen's score, normalisation or not.
    assert verifier.score(_grey(10), specimens[1:]).percent == alone[1]


def test_direct_pair_scores_keep_every_reference_and_combine_like_the_verifier():
    items = _items(3, genuine=4, forged=1)
    levels = {i: 20 + 7 * i for i in range(len(items))}
    protocol = owner_pairs(items, refs=2, random_owners=1)
    matcher = _ValueMatcher()
    scores = direct_pair_scores(protocol, lambda i: _grey(levels[i]), matcher)
    assert set(scores.consistency) == set(protocol.references)
    verifier = PairVerifier(
        matcher=matcher, scorer=_fitted().scorer, owner_normalisation=OwnerNormalisation(alpha=0.75, typical=-1.0)
    )
    combined = scores.combined(protocol, verifier.combine)
    for n, p in enumerate(protocol.pairs):
        refs = [_grey(levels[r]) for r in protocol.references[p.owner]]
        assert scores.reference_similarity[n] == tuple(levels[r] / 255 for r in protocol.references[p.owner])
        expected = verifier.score(_grey(levels[p.query]), refs)
        assert verifier.scorer.score(float(similarity_logit(combined.similarity[n]))) == (
            expected.percent,
            expected.verdict,
        )
    genuine = scores.genuine_reference_similarity(protocol)
    assert genuine.size == 2 * int((protocol.categories() == "genuine").sum())
    with pytest.raises(ValueError, match="per-reference"):
        DirectPairScores(similarity=scores.similarity).combined(protocol, verifier.combine)


@pytest.mark.parametrize("kind", ["stamp", "signature"])
def test_score_needs_a_specimen_and_an_inked_query(kind):
    verifier = PairVerifier(matcher=_ValueMatcher(), scorer=_fitted(kind).scorer)
    with pytest.raises(PairMatchError, match="at least one"):
        verifier.score(_grey(10), [])
    with pytest.raises(BlankCropError):
        verifier.score(_grey(255), [_grey(100)])
    real = PairVerifier(matcher=default_matcher(kind), scorer=_fitted(kind).scorer)
    paper = np.full((80, 120, 3), 250, np.uint8)
    with pytest.raises(BlankCropError):
        real.score(paper, [paper])
    with pytest.raises(PairMatchError, match=kind):
        real.score(paper, [])


def test_with_policy_keeps_the_comparison_and_the_calibration():
    for verifier in (_fitted(matcher=StampMatcher(use_scale=True)), _fitted("signature")):
        other = verifier.with_policy(DecisionPolicy(threshold=80.0, band=0.0, basis="far=0.001"))
        assert other.threshold == 80.0 and other.band == 0.0 and other.kind == verifier.kind
        assert other.scorer.calibration == verifier.scorer.calibration and other.matcher is verifier.matcher
        assert other.use_scale == verifier.use_scale


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


def _items(owners: int, genuine: int, forged: int, *, per_group: int = 1) -> list[SpecimenItem]:
    """Owners ``o0..`` (``per_group`` of them share a group); file names as the training's render
    writes them (listed out of order)."""
    kinds = ("altered_text", "photocopy", "proportions")
    items = []
    for o in reversed(range(owners)):
        group = f"g{o // per_group}"
        for j in reversed(range(genuine)):
            items.append(SpecimenItem(f"o{o}", "stamp", True, group, f"o{o}", f"/d/o{o}/genuine/{j:02d}.png"))
        for j in range(forged):
            name = f"/d/o{o}/forged/{genuine + j:02d}-{kinds[j % len(kinds)]}.png"
            items.append(SpecimenItem(f"o{o}", "stamp", False, group, f"o{o}", name))
    return items


def test_owner_pairs_registers_the_first_images_and_draws_random_owners():
    items = _items(6, genuine=4, forged=2)
    protocol = owner_pairs(items, refs=2, random_owners=3, seed=7)
    assert sorted(protocol.references) == [f"o{o}" for o in range(6)]
    for owner, refs in protocol.references.items():
        assert [items[r].source for r in refs] == [f"/d/{owner}/genuine/00.png", f"/d/{owner}/genuine/01.png"]
    assert protocol.counts() == {"genuine": 12, "skilled": 12, "hard": 0, "random": 6 * 3 * 2}
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
    items = _items(3, genuine=2, forged=1)
    protocol = owner_pairs(items, refs=2)  # every genuine image is a reference: forgeries only
    assert protocol.counts() == {"genuine": 0, "skilled": 3, "hard": 0, "random": 0}
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


def test_direct_pair_scores_skip_blank_crops_and_report_progress() -> None:
    items = _items(3, genuine=3, forged=1)
    # Image of item i: grey level from its file name, white (blank) for o2's genuine/02 query.
    levels = {i: 20 + 7 * i for i in range(len(items))}
    blank = next(i for i, it in enumerate(items) if it.source == "/d/o2/genuine/02.png")
    blank_ref = next(i for i, it in enumerate(items) if it.source == "/d/o1/genuine/00.png")
    levels[blank] = levels[blank_ref] = 255
    protocol = owner_pairs(items, refs=2, random_owners=2)
    lines: list[str] = []
    out = direct_pair_scores(protocol, lambda i: _grey(levels[i]), _ValueMatcher(), progress=lines.append, every=4)
    assert out.blank_items == {blank, blank_ref}
    for n, p in enumerate(protocol.pairs):
        live = [r for r in protocol.references[p.owner] if levels[r] != 255]
        if p.query == blank:
            assert np.isnan(out.similarity[n])
        else:
            assert out.similarity[n] == pytest.approx(max(levels[r] for r in live) / 255)
    assert len(lines) == -(-len(protocol.pairs) // 4) and lines[-1].startswith(
        f"direct comparison: {len(protocol.pairs)}/"
    )
    assert out.timing()["comparisons"] == len(out.compare_seconds) > 0


def test_direct_pair_scores_raise_on_a_malformed_crop():
    protocol = owner_pairs(_items(2, genuine=3, forged=0), refs=2, random_owners=1)
    with pytest.raises(PairMatchError):
        direct_pair_scores(protocol, lambda i: np.zeros((24, 24), np.uint8), SignatureMatcher())


def _similarities(cat: np.ndarray, seed: int = 3) -> np.ndarray:
    """Genuine pairs high, skilled and hard in between, random low."""
    rng = np.random.default_rng(seed)
    low = np.where(cat == "random", rng.beta(1, 6, cat.size), rng.beta(3, 3, cat.size))
    return np.where(cat == "genuine", rng.beta(6, 2, cat.size), low)


def test_metrics_report_and_check_count_only_scored_pairs():
    items = _items(8, genuine=4, forged=3)
    protocol = owner_pairs(items, refs=2, random_owners=3)
    cat = protocol.categories()
    sim = _similarities(cat)
    sim[0] = np.nan  # one genuine pair could not be compared
    metrics = owner_pairs_metrics(sim, protocol)
    assert metrics["skilled"]["n_genuine"] == 15 and metrics["skilled"]["n_impostor"] == 24
    assert set(metrics["skilled_by_kind"]) == {"altered_text", "photocopy", "proportions"}
    assert metrics["random"]["eer"] < metrics["skilled"]["eer"] and "hard" not in metrics

    scores = DirectPairScores(similarity=sim, compare_seconds=[0.05] * 10, seconds=0.5)
    valid = ~np.isnan(sim)
    verifier = PairVerifier.fit("stamp", sim[(cat == "genuine") & valid], pooled_impostors(sim, cat, valid))
    rng = np.random.default_rng(4)
    report = direct_report(protocol, scores, verifier, cosine=rng.uniform(-1, 1, cat.size))
    assert report["pairs"] == {"genuine": 15, "skilled": 24, "hard": 0, "random": 48}
    assert report["unscored_pairs"] == {"genuine": 1, "skilled": 0, "hard": 0, "random": 0}
    direct = report["direct"]
    assert direct["method"] == "aligned" and direct["score"].startswith("similarity.stamp_match ")
    assert direct["percent_distributions"]["genuine"]["n"] == 15
    assert sum(direct["verdicts"]["random"].values()) == 48
    assert direct["decision"]["threshold"] == verifier.threshold
    assert report["cnn"]["metrics"]["skilled"]["n_genuine"] == 15  # the same pairs as the direct figures
    check = direct_calibration_check("stamp", protocol, sim)
    assert {"fit_a_check_b", "fit_b_check_a"} <= set(check), check
    assert 0.0 <= check["fit_a_check_b"]["at_threshold"]["far_random"] <= 1.0


def test_a_signature_report_and_check_include_hard_pairs():
    items = _items(12, genuine=4, forged=1, per_group=3)  # the same name signed by three writers
    protocol = owner_pairs(items, refs=2, random_owners=2)
    cat = protocol.categories()
    sim = _similarities(cat, seed=5)
    counts = protocol.counts()
    assert counts["hard"] == 12 * 2 * 2 and counts["random"] == 12 * 2 * 2
    verifier = PairVerifier.fit("signature", sim[cat == "genuine"], pooled_impostors(sim, cat, np.ones_like(sim, bool)))
    report = direct_report(protocol, DirectPairScores(similarity=sim), verifier)
    assert report["pairs"]["hard"] == counts["hard"] and "cnn" not in report
    direct = report["direct"]
    assert direct["method"] == "shape" and direct["score"].startswith("similarity.signature_match ")
    assert direct["metrics"]["hard"]["n_impostor"] == counts["hard"]
    assert sum(direct["verdicts"]["hard"].values()) == counts["hard"]
    assert direct["percent_distributions"]["hard"]["n"] == counts["hard"]
    check = direct_calibration_check("signature", protocol, sim)
    for side in ("fit_a_check_b", "fit_b_check_a"):
        rates = check[side]["at_threshold"]
        assert {"frr", "far_skilled", "far_hard", "far_random"} <= set(rates), check
        assert rates["far_random"] < rates["far_hard"]  # hard impostors score higher here, by construction


def test_pool_impostors_weighs_each_category_equally():
    pooled = pool_impostors([np.zeros(10), np.ones(3), np.zeros(0)], seed=1)
    assert pooled.size == 20 and pooled.sum() == 10
    np.testing.assert_array_equal(pooled, pool_impostors([np.zeros(10), np.ones(3)], seed=1))
    with pytest.raises(ScoringError):
        pool_impostors([np.zeros(0)])


def test_pooled_impostors_take_every_impostor_category_of_the_masked_pairs():
    cat = np.array(["genuine"] * 4 + ["skilled"] * 10 + ["hard"] * 3 + ["random"] * 5)
    sim = np.select([cat == "genuine", cat == "skilled", cat == "hard"], [9.0, 1.0, 2.0], 3.0)
    pooled = pooled_impostors(sim, cat, np.ones(cat.size, bool), seed=2)
    assert pooled.size == 30 and [int((pooled == v).sum()) for v in (1.0, 2.0, 3.0, 9.0)] == [10, 10, 10, 0]
    np.testing.assert_array_equal(pooled, pooled_impostors(sim, cat, np.ones(cat.size, bool), seed=2))
    no_hard = pooled_impostors(sim, cat, cat != "hard")
    assert no_hard.size == 20 and 2.0 not in no_hard
    with pytest.raises(ScoringError):
        pooled_impostors(sim, cat, cat == "genuine")
