from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from similarity.scoring import (
    Calibration,
    CalibrationError,
    DecisionPolicy,
    Scorer,
    ScoringError,
    equal_error_rate,
    far_at_frr,
    fit_calibration,
    roc_auc,
    score_distribution,
    threshold_at_far,
    verification_metrics,
)


def test_eer_of_two_shifted_uniforms_matches_the_closed_form():
    # Genuine ~ U[a, a+1], impostor ~ U[0, 1]: FAR(t) = 1 - t, FRR(t) = t - a, equal at t = (1+a)/2,
    # so EER = (1 - a) / 2.
    a = 0.3
    genuine = np.linspace(a, a + 1.0, 2001)
    impostor = np.linspace(0.0, 1.0, 2001)
    eer, t = equal_error_rate(genuine, impostor)
    assert eer == pytest.approx(0.35, abs=1e-3)
    assert t == pytest.approx(0.65, abs=1e-3)


def test_separated_scores_have_zero_eer_and_unit_auc():
    eer, t = equal_error_rate([0.8, 0.9, 0.95], [0.1, 0.2, 0.3])
    assert eer == 0.0
    assert 0.3 < t <= 0.8
    assert roc_auc([0.8, 0.9], [0.1, 0.2]) == 1.0
    assert roc_auc([0.1, 0.2], [0.8, 0.9]) == 0.0


def test_reversed_scores_have_eer_one():
    eer, _ = equal_error_rate([0.1, 0.2], [0.8, 0.9])
    assert eer == pytest.approx(1.0)


def test_auc_counts_ties_as_half_and_matches_brute_force():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 10, 200).astype(float)
    i = rng.integers(0, 8, 300).astype(float)
    brute = ((g[:, None] > i[None, :]).sum() + 0.5 * (g[:, None] == i[None, :]).sum()) / (g.size * i.size)
    assert roc_auc(g, i) == pytest.approx(brute)
    assert roc_auc([0.5, 0.5], [0.5]) == 0.5


def test_far_at_frr_rejects_at_most_the_allowed_genuine_fraction():
    genuine = np.arange(100, dtype=float)  # 0..99
    impostor = np.array([-1.0, 0.5, 1.5, 50.0])
    far, t = far_at_frr(genuine, impostor, 0.01)
    assert t == 1.0  # rejects exactly one genuine score (0.0)
    assert far == pytest.approx(2 / 4)  # 1.5 and 50 accepted
    far0, t0 = far_at_frr(genuine, impostor, 0.0)
    assert t0 == 0.0 and far0 == pytest.approx(3 / 4)


def test_threshold_at_far_meets_the_target_on_the_data():
    rng = np.random.default_rng(0)
    impostor = rng.normal(0, 1, 1000)
    for target in (0.0, 0.001, 0.01, 0.1, 0.5):
        t = threshold_at_far(impostor, target)
        assert np.mean(impostor >= t) <= target + 1e-12
    assert threshold_at_far(impostor, 1.0) == impostor.min()


@pytest.mark.parametrize(
    ("genuine", "impostor"),
    [([], [0.1]), ([0.1], []), ([np.nan], [0.1]), ([0.1], [np.inf])],
)
def test_metrics_reject_empty_and_non_finite_scores(genuine, impostor):
    with pytest.raises(ScoringError):
        equal_error_rate(genuine, impostor)
    with pytest.raises(ScoringError):
        roc_auc(genuine, impostor)
    with pytest.raises(ScoringError):
        fit_calibration(genuine, impostor)


def test_verification_metrics_and_distribution_are_json_ready():
    rng = np.random.default_rng(1)
    m = verification_metrics(rng.normal(1, 0.3, 500), rng.normal(0, 0.3, 800)).to_dict()
    assert set(m) == {"eer", "eer_threshold", "roc_auc", "far_at_1pct_frr", "n_genuine", "n_impostor"}
    assert 0.0 < m["eer"] < 0.2 and m["roc_auc"] > 0.9
    d = score_distribution([10.0, 20.0, 150.0], bins=4)
    assert d["n"] == 3 and sum(d["histogram"]["counts"]) == 3 and d["histogram"]["counts"][-1] == 1
    assert len(d["histogram"]["edges"]) == 5


def _gaussian_pairs(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.7, 0.1, n), rng.normal(0.3, 0.1, 3 * n)


def test_platt_fit_recovers_the_true_posterior_at_a_balanced_prior():
    # Equal-variance Gaussians: the true log-odds at a 1:1 prior is 40 x - 20 (50 % at x = 0.5),
    # whatever the ratio of genuine to impostor pairs in the sample (here 1:3).
    genuine, impostor = _gaussian_pairs()
    cal = fit_calibration(genuine, impostor)
    assert cal.slope == pytest.approx(40.0, rel=0.1)
    assert float(cal.percent(0.5)) == pytest.approx(50.0, abs=2.0)
    assert cal.prior == 0.5 and cal.n_genuine == 4000 and cal.n_impostor == 12000


def test_calibrated_percentages_are_monotone_bounded_and_two_decimal():
    genuine, impostor = _gaussian_pairs(1)
    cal = fit_calibration(genuine, impostor)
    grid = np.linspace(-1.0, 1.0, 4001)
    pct = cal.percent(grid)
    assert np.all(np.diff(pct) >= 0)
    assert pct.min() >= 0.0 and pct.max() <= 100.0
    assert np.allclose(pct, np.round(pct, 2))
    assert float(cal.percent(1.0)) == 100.0  # a perfect match reads 100.00 %


@settings(max_examples=60, deadline=None)
@given(
    slope=st.floats(0.01, 500),
    intercept=st.floats(-300, 300),
    a=st.floats(-1, 1),
    b=st.floats(-1, 1),
)
def test_any_valid_calibration_is_monotone(slope, intercept, a, b):
    cal = Calibration(slope=slope, intercept=intercept)
    lo, hi = min(a, b), max(a, b)
    assert cal.percent(lo) <= cal.percent(hi)
    assert 0.0 <= float(cal.percent(lo)) <= 100.0


def test_cosine_at_inverts_the_mapping_and_posterior_shifts_with_the_prior():
    cal = Calibration(slope=20.0, intercept=-10.0)
    c = cal.cosine_at(75.0)
    assert float(100 * cal.probability(c)) == pytest.approx(75.0)
    assert float(cal.posterior(0.5, 0.5)) == pytest.approx(0.5)
    assert float(cal.posterior(0.5, 0.9)) == pytest.approx(0.9)  # neutral evidence: posterior = prior
    with pytest.raises(ScoringError):
        cal.cosine_at(100.0)


@pytest.mark.parametrize("slope", [0.0, -1.0, math.nan, math.inf])
def test_calibration_refuses_non_monotone_slopes(slope):
    with pytest.raises(CalibrationError):
        Calibration(slope=slope, intercept=0.0)


def test_fit_refuses_data_where_impostors_score_higher():
    with pytest.raises(CalibrationError, match="cannot be calibrated"):
        fit_calibration([0.1, 0.2, 0.15], [0.8, 0.9, 0.85])


def test_calibration_round_trips_through_json_dict():
    cal = Calibration(slope=12.5, intercept=-7.25, n_genuine=3, n_impostor=4)
    assert Calibration.from_dict(cal.to_dict()) == cal
    with pytest.raises(CalibrationError):
        Calibration.from_dict({"method": "isotonic", "slope": 1, "intercept": 0})


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        (100.0, "genuine"),
        (65.0, "genuine"),
        (64.99, "inconclusive"),
        (60.0, "inconclusive"),
        (55.0, "inconclusive"),
        (54.99, "forged"),
        (0.0, "forged"),
    ],
)
def test_verdict_bands(percent, expected):
    assert DecisionPolicy(threshold=60.0, band=5.0).verdict(percent) == expected


def test_zero_band_has_no_inconclusive_verdict():
    policy = DecisionPolicy(threshold=60.0, band=0.0)
    assert policy.verdict(60.0) == "genuine"
    assert policy.verdict(59.99) == "forged"


@pytest.mark.parametrize(("threshold", "band"), [(-1.0, 1.0), (101.0, 1.0), (50.0, -0.1)])
def test_policy_rejects_out_of_range_values(threshold, band):
    with pytest.raises(ScoringError):
        DecisionPolicy(threshold=threshold, band=band)


def test_policies_at_eer_and_at_far():
    genuine, impostor = _gaussian_pairs(2)
    cal = fit_calibration(genuine, impostor)
    at_eer = DecisionPolicy.at_eer(cal, genuine, impostor)
    assert at_eer.basis == "eer"
    # Symmetric equal-variance classes at a balanced prior: the EER point is the 50 % point.
    assert at_eer.threshold == pytest.approx(50.0, abs=3.0)
    strict = DecisionPolicy.at_far(cal, impostor, 0.001, band=0.0)
    assert strict.threshold > at_eer.threshold
    accepted = cal.percent(impostor) >= strict.threshold
    assert accepted.mean() <= 0.001


def test_scorer_reads_its_kind_from_card_metrics_and_builds_matches():
    scorer = Scorer(
        kind="stamp", calibration=Calibration(slope=20.0, intercept=-10.0), policy=DecisionPolicy(50.0, 5.0)
    )
    metrics = {"scoring": {"stamp": scorer.to_dict()}}
    again = Scorer.from_metrics(metrics, "stamp")
    assert again == scorer
    match = again.match(0.9, detection=2, specimen_id="s1", owner="AUTH-1")
    assert match.verdict == "genuine" and match.similarity == 99.97 and match.threshold == 50.0
    with pytest.raises(ScoringError, match="no calibration for 'signature'"):
        Scorer.from_metrics(metrics, "signature")
    with pytest.raises(ScoringError):
        Scorer(kind="fingerprint", calibration=scorer.calibration, policy=scorer.policy)


def test_reliability_is_small_for_a_true_calibration_and_large_for_a_wrong_one():
    from similarity.scoring import reliability

    # Overlapping classes (true log-odds 10 x - 5), so most pairs get mid-range percentages.
    rng = np.random.default_rng(4)
    genuine, impostor = rng.normal(0.55, 0.1, 5000), rng.normal(0.45, 0.1, 5000)
    fitted = fit_calibration(rng.normal(0.55, 0.1, 5000), rng.normal(0.45, 0.1, 5000))
    good = reliability(fitted, genuine, impostor)
    assert good["ece"] < 3.0
    assert len(good["shown"]) == len(good["observed"]) == len(good["weight"])
    assert sum(good["weight"]) == pytest.approx(1.0, abs=1e-3)
    overconfident = reliability(Calibration(slope=40.0, intercept=-20.0), genuine, impostor)
    shifted = reliability(Calibration(slope=10.0, intercept=-7.0), genuine, impostor)
    assert overconfident["ece"] > good["ece"] + 5 and shifted["ece"] > good["ece"] + 5
