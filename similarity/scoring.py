"""From cosine similarity to a calibrated percentage and a verdict; verification metrics.

Calibration (:class:`Calibration`)
    The percentage a clerk sees is ``100 * sigmoid(slope * cos + intercept)``, rounded to two
    decimals, with ``slope > 0`` so that a higher cosine never gives a lower percentage. The two
    parameters are fitted by Platt scaling (logistic regression of "genuine?" on the cosine, with
    Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``) on held-out pairs of
    owners the network never saw. Genuine and impostor pairs are weighted so that each class
    carries half of the total weight, whatever their counts: the fitted value is the posterior
    probability that the pair is genuine **at a prior of 1:1**. So 50.00 % means "as likely
    genuine as not" when, before looking, a questioned crop is as likely genuine as forged. At
    another prior ``pi`` the posterior odds are the shown odds times ``pi / (1 - pi)``
    (:meth:`Calibration.posterior`).

Decision (:class:`DecisionPolicy`)
    The threshold is a percentage. The default is the equal-error point of the held-out pairs
    (FAR = FRR); :func:`threshold_at_far` gives the threshold for a target false-accept rate
    instead. Around the threshold lies an *inconclusive band* of ``band`` percentage points on
    each side: ``percent >= threshold + band`` is ``"genuine"``, ``percent < threshold - band`` is
    ``"forged"``, anything between is ``"inconclusive"`` (refer to a document examiner). With
    ``band = 0`` there is no inconclusive verdict.

Metrics
    Scores are "higher = more likely genuine"; a pair is accepted when ``score >= t``.
    FAR(t) = fraction of impostor scores ``>= t``; FRR(t) = fraction of genuine scores ``< t``.
    :func:`equal_error_rate`, :func:`roc_auc`, :func:`far_at_frr`, :func:`score_distribution` and
    :func:`verification_metrics` (all of them at once) work on any scores, calibrated or not;
    EER, AUC and FAR@FRR do not change under a monotone calibration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vision.types import Match, Verdict

__all__ = [
    "Calibration",
    "CalibrationError",
    "DecisionPolicy",
    "Scorer",
    "ScoringError",
    "VerificationMetrics",
    "equal_error_rate",
    "far_at_frr",
    "far_frr",
    "fit_calibration",
    "reliability",
    "roc_auc",
    "score_distribution",
    "threshold_at_far",
    "verification_metrics",
]

KINDS = ("stamp", "signature")


class ScoringError(ValueError):
    """Scores or scoring parameters are unusable (empty, non-finite, out of range)."""


class CalibrationError(ScoringError):
    """The held-out scores do not allow a monotone calibration (e.g. impostors score higher)."""


def _scores(x: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ScoringError(f"no {what} scores")
    if not np.all(np.isfinite(arr)):
        raise ScoringError(f"{what} scores contain NaN or infinite values")
    return arr


# --------------------------------------------------------------------------------------------- metrics


def far_frr(
    genuine: npt.ArrayLike, impostor: npt.ArrayLike, thresholds: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """FAR and FRR at each threshold (accept when ``score >= t``).

    Returns:
        ``(far, frr)``, each shaped like ``thresholds`` (flattened), float64 in ``[0, 1]``.
    """
    g = np.sort(_scores(genuine, "genuine"))
    i = np.sort(_scores(impostor, "impostor"))
    t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    frr = np.searchsorted(g, t, side="left") / g.size
    far = 1.0 - np.searchsorted(i, t, side="left") / i.size
    return far, frr


def equal_error_rate(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> tuple[float, float]:
    """Equal error rate and the threshold where it occurs.

    FAR falls and FRR rises as the threshold goes up; both are step functions. They are evaluated
    at every observed score, and the EER is found by linear interpolation between the last
    threshold where FRR <= FAR and the next one (the usual convex-hull-free estimate, exact when
    the two curves cross on a step).

    Args:
        genuine: scores of genuine pairs (higher = more similar), at least one.
        impostor: scores of impostor pairs, at least one.

    Returns:
        ``(eer, threshold)``: EER in ``[0, 1]`` and the score threshold at the crossing.

    Raises:
        ScoringError: an empty or non-finite score set.
    """
    g = _scores(genuine, "genuine")
    i = _scores(impostor, "impostor")
    # One threshold above every score closes the curve at FAR = 0, FRR = 1.
    t = np.unique(np.concatenate([g, i, [max(g.max(), i.max()) + 1.0]]))
    far, frr = far_frr(g, i, t)
    diff = far - frr  # decreasing in t: from FAR=1-ish - 0 down to 0 - 1
    k = int(np.searchsorted(-diff, 0.0, side="left"))  # first index with diff <= 0
    if k == 0:
        return float((far[0] + frr[0]) / 2), float(t[0])
    d0, d1 = diff[k - 1], diff[k]
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    eer = (1 - w) * (far[k - 1] + frr[k - 1]) / 2 + w * (far[k] + frr[k]) / 2
    threshold = (1 - w) * t[k - 1] + w * t[k]
    return float(eer), float(threshold)


def roc_auc(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> float:
    """Area under the ROC curve: the probability that a random genuine pair outscores a random
    impostor pair, ties counting one half (the Mann-Whitney U statistic, via average ranks).
    """
    g = _scores(genuine, "genuine")
    i = _scores(impostor, "impostor")
    both = np.concatenate([g, i])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size, dtype=np.float64)
    sorted_vals = both[order]
    # Average 1-based ranks over runs of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], both.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[: g.size].sum() - g.size * (g.size + 1) / 2.0
    return float(u / (g.size * i.size))


def far_at_frr(genuine: npt.ArrayLike, impostor: npt.ArrayLike, frr: float = 0.01) -> tuple[float, float]:
    """False-accept rate at the highest threshold whose false-reject rate is at most ``frr``.

    Returns:
        ``(far, threshold)``.
    """
    if not 0.0 <= frr < 1.0:
        raise ScoringError(f"frr must be in [0, 1), got {frr}")
    g = np.sort(_scores(genuine, "genuine"))
    i = _scores(impostor, "impostor")
    # Rejecting the k lowest genuine scores keeps FRR = k / n <= frr; threshold = the (k+1)-th.
    k = math.floor(frr * g.size + 1e-9)
    threshold = float(g[k])
    return float(np.mean(i >= threshold)), threshold


def threshold_at_far(impostor: npt.ArrayLike, far: float) -> float:
    """Lowest threshold (an observed impostor score, or just above the highest) whose FAR <= ``far``."""
    if not 0.0 <= far <= 1.0:
        raise ScoringError(f"target FAR must be in [0, 1], got {far}")
    i = np.sort(_scores(impostor, "impostor"))
    allowed = math.floor(far * i.size + 1e-9)  # impostors allowed at or above the threshold
    if allowed >= i.size:
        return float(i[0])
    # Accept scores strictly above the (n - allowed)-th lowest impostor.
    return float(np.nextafter(i[i.size - allowed - 1], np.inf))


def score_distribution(scores: npt.ArrayLike, *, bins: int = 20, lo: float = 0.0, hi: float = 100.0) -> dict[str, Any]:
    """Summary of a set of scores for a report: count, mean, std, quantiles and a histogram.

    Returns:
        JSON-ready dict: ``n``, ``mean``, ``std``, ``min``, ``p05``, ``p25``, ``median``, ``p75``,
        ``p95``, ``max`` and ``histogram`` (``edges`` of length bins + 1, ``counts`` of length bins;
        scores outside ``[lo, hi]`` go to the end bins).
    """
    s = _scores(scores, "")
    q = np.percentile(s, [5, 25, 50, 75, 95])
    counts, edges = np.histogram(np.clip(s, lo, hi), bins=bins, range=(lo, hi))
    return {
        "n": int(s.size),
        "mean": round(float(s.mean()), 4),
        "std": round(float(s.std()), 4),
        "min": round(float(s.min()), 4),
        "p05": round(float(q[0]), 4),
        "p25": round(float(q[1]), 4),
        "median": round(float(q[2]), 4),
        "p75": round(float(q[3]), 4),
        "p95": round(float(q[4]), 4),
        "max": round(float(s.max()), 4),
        "histogram": {"edges": [round(float(e), 4) for e in edges], "counts": counts.astype(int).tolist()},
    }


@dataclass(frozen=True)
class VerificationMetrics:
    """EER, AUC and FAR@1%FRR of one genuine-vs-impostor comparison."""

    eer: float
    eer_threshold: float
    auc: float
    far_at_1pct_frr: float
    n_genuine: int
    n_impostor: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "eer": round(self.eer, 4),
            "eer_threshold": round(self.eer_threshold, 6),
            "roc_auc": round(self.auc, 4),
            "far_at_1pct_frr": round(self.far_at_1pct_frr, 4),
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
        }


def verification_metrics(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> VerificationMetrics:
    """All summary metrics of one genuine-vs-impostor score set."""
    g = _scores(genuine, "genuine")
    i = _scores(impostor, "impostor")
    eer, t = equal_error_rate(g, i)
    far, _ = far_at_frr(g, i, 0.01)
    return VerificationMetrics(eer, t, roc_auc(g, i), far, int(g.size), int(i.size))


# ----------------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """Monotone map from cosine similarity to a percentage (see the module docstring).

    Attributes:
        slope: > 0.
        intercept: any finite value.
        prior: genuine prior the fit assumed (0.5: genuine and impostor pairs weighted equally).
        n_genuine: genuine pairs it was fitted on.
        n_impostor: impostor pairs it was fitted on.
    """

    slope: float
    intercept: float
    prior: float = 0.5
    n_genuine: int = 0
    n_impostor: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slope) and self.slope > 0):
            raise CalibrationError(f"calibration slope must be finite and > 0 (monotone), got {self.slope}")
        if not math.isfinite(self.intercept):
            raise CalibrationError(f"calibration intercept must be finite, got {self.intercept}")
        if not 0.0 < self.prior < 1.0:
            raise CalibrationError(f"calibration prior must be in (0, 1), got {self.prior}")

    def probability(self, cosine: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``P(genuine | cosine)`` at the calibration prior, unrounded, same shape as ``cosine``."""
        z = self.slope * np.asarray(cosine, dtype=np.float64) + self.intercept
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # = sigmoid(z) without overflow warnings

    def percent(self, cosine: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Calibrated similarity in percent, rounded to two decimals, in ``[0, 100]``."""
        return np.round(100.0 * self.probability(cosine), 2)

    def posterior(self, cosine: npt.ArrayLike, prior: float) -> npt.NDArray[np.float64]:
        """``P(genuine | cosine)`` at another genuine prior (Bayes: odds scale by the prior odds ratio)."""
        if not 0.0 < prior < 1.0:
            raise ScoringError(f"prior must be in (0, 1), got {prior}")
        p = np.clip(self.probability(cosine), 1e-300, 1 - 1e-16)
        odds = p / (1 - p) * (prior / (1 - prior)) / (self.prior / (1 - self.prior))
        return odds / (1 + odds)

    def cosine_at(self, percent: float) -> float:
        """Cosine at which the (unrounded) percentage equals ``percent``, ``0 < percent < 100``."""
        if not 0.0 < percent < 100.0:
            raise ScoringError(f"percent must be strictly between 0 and 100, got {percent}")
        p = percent / 100.0
        return (math.log(p / (1 - p)) - self.intercept) / self.slope

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "platt",
            "formula": "percent = 100 * sigmoid(slope * cosine + intercept)",
            "slope": self.slope,
            "intercept": self.intercept,
            "prior": self.prior,
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        method = d.get("method", "platt")
        if method != "platt":
            raise CalibrationError(f"unknown calibration method {method!r}")
        return cls(
            slope=float(d["slope"]),
            intercept=float(d["intercept"]),
            prior=float(d.get("prior", 0.5)),
            n_genuine=int(d.get("n_genuine", 0)),
            n_impostor=int(d.get("n_impostor", 0)),
        )


def fit_calibration(
    genuine: npt.ArrayLike, impostor: npt.ArrayLike, *, l2: float = 1e-7, iterations: int = 100
) -> Calibration:
    """Platt-scale cosine similarities of held-out pairs at a 1:1 prior.

    Args:
        genuine: cosines of genuine pairs.
        impostor: cosines of impostor pairs (random and skilled forgeries pooled as the
            operating population; say which in the card).
        l2: ridge penalty on the slope. The sample weights sum to 1, so this is relative to the whole
            data set: 1e-7 only guards the Newton step numerically (Platt's smoothed targets already
            keep the slope finite on separable data); 1e-4 would shrink a true slope of 40 to 24.
        iterations: Newton steps (the problem is 2-D and convex; ~10 are usually enough).

    Returns:
        The calibration.

    Raises:
        CalibrationError: the fitted slope is not positive (impostors score as high as genuine).
    """
    g = _scores(genuine, "genuine")
    i = _scores(impostor, "impostor")
    x = np.concatenate([g, i])
    y = np.concatenate([np.full(g.size, (g.size + 1.0) / (g.size + 2.0)), np.full(i.size, 1.0 / (i.size + 2.0))])
    w = np.concatenate([np.full(g.size, 0.5 / g.size), np.full(i.size, 0.5 / i.size)])
    X = np.stack([x, np.ones_like(x)], axis=1)
    theta = np.zeros(2)
    ridge = np.diag([l2, 0.0])
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (X @ theta)))
        grad = X.T @ (w * (p - y)) + ridge @ theta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + ridge + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    slope, intercept = float(theta[0]), float(theta[1])
    if not slope > 0:
        raise CalibrationError(
            f"held-out genuine pairs do not score higher than impostors (fitted slope {slope:.3g}); "
            "the model cannot be calibrated on this data"
        )
    return Calibration(slope=slope, intercept=intercept, prior=0.5, n_genuine=int(g.size), n_impostor=int(i.size))


def reliability(
    calibration: Calibration, genuine: npt.ArrayLike, impostor: npt.ArrayLike, *, bins: int = 10
) -> dict[str, Any]:
    """How well the shown percentages match observed odds on pairs the calibration was *not*
    fitted on, at the calibration's 1:1 prior.

    Pairs are binned by their calibrated percentage. In each bin the observed genuine rate is
    ``G / (G + I)`` with genuine and impostor pairs weighted so that each class totals one half (the
    1:1 prior the percentage refers to). The expected calibration error (ECE) is the weighted mean
    of ``|observed - mean shown|`` over bins.

    Returns:
        JSON-ready dict: ``ece`` (in percentage points) and per-bin ``shown``, ``observed`` and
        ``weight`` lists (empty bins omitted).
    """
    g = calibration.percent(_scores(genuine, "genuine"))
    i = calibration.percent(_scores(impostor, "impostor"))
    edges = np.linspace(0.0, 100.0, bins + 1)
    wg, wi = 0.5 / g.size, 0.5 / i.size
    gb = np.clip(np.searchsorted(edges, g, side="right") - 1, 0, bins - 1)
    ib = np.clip(np.searchsorted(edges, i, side="right") - 1, 0, bins - 1)
    shown, observed, weight = [], [], []
    ece = 0.0
    for b in range(bins):
        mg, mi = gb == b, ib == b
        total = wg * mg.sum() + wi * mi.sum()
        if total == 0:
            continue
        obs = 100.0 * wg * mg.sum() / total
        mean_shown = float((wg * g[mg].sum() + wi * i[mi].sum()) / total)
        ece += total * abs(obs - mean_shown)
        shown.append(round(mean_shown, 2))
        observed.append(round(float(obs), 2))
        weight.append(round(float(total), 4))
    return {"ece": round(ece, 2), "shown": shown, "observed": observed, "weight": weight}


# -------------------------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class DecisionPolicy:
    """Threshold and inconclusive band, both in percent (see the module docstring).

    Attributes:
        threshold: decision threshold in ``[0, 100]``.
        band: half-width of the inconclusive band in percentage points, ``>= 0``.
        basis: how the threshold was chosen, e.g. ``"eer"`` or ``"far=0.01"`` (for the card).
    """

    threshold: float
    band: float = 5.0
    basis: str = "eer"

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 100.0:
            raise ScoringError(f"threshold must be a percentage in [0, 100], got {self.threshold}")
        if not self.band >= 0.0:
            raise ScoringError(f"inconclusive band must be >= 0 percentage points, got {self.band}")

    def verdict(self, percent: float) -> Verdict:
        """``"genuine"``, ``"forged"`` or ``"inconclusive"`` for one calibrated percentage."""
        if percent >= self.threshold + self.band:
            return "genuine"
        if percent < self.threshold - self.band:
            return "forged"
        if self.band == 0.0:
            return "genuine" if percent >= self.threshold else "forged"
        return "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "band": self.band, "basis": self.basis}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DecisionPolicy:
        return cls(threshold=float(d["threshold"]), band=float(d.get("band", 5.0)), basis=str(d.get("basis", "eer")))

    @classmethod
    def at_eer(
        cls, calibration: Calibration, genuine: npt.ArrayLike, impostor: npt.ArrayLike, *, band: float = 5.0
    ) -> DecisionPolicy:
        """Threshold at the equal-error point of held-out cosines, expressed in percent."""
        _, t = equal_error_rate(genuine, impostor)
        return cls(threshold=round(float(100.0 * calibration.probability(t)), 2), band=band, basis="eer")

    @classmethod
    def at_far(
        cls, calibration: Calibration, impostor: npt.ArrayLike, far: float, *, band: float = 5.0
    ) -> DecisionPolicy:
        """Threshold giving at most ``far`` false accepts on held-out impostor cosines."""
        t = threshold_at_far(impostor, far)
        pct = float(100.0 * calibration.probability(t))
        threshold = math.ceil(pct * 100.0) / 100.0
        # Verdicts are taken on the shown (two-decimal) percentages: the highest impostor that must be
        # rejected may round up onto the threshold, so the threshold must lie above its shown value.
        scores = np.asarray(_scores(impostor, "impostor"))
        rejected = scores[scores < t]
        if rejected.size:
            highest_shown = float(calibration.percent(float(rejected.max())))
            threshold = max(threshold, round(highest_shown + 0.01, 2))
        return cls(threshold=min(threshold, 100.0), band=band, basis=f"far={far:g}")


@dataclass(frozen=True)
class Scorer:
    """Calibration plus decision policy of one kind of mark (``"stamp"`` or ``"signature"``)."""

    kind: str
    calibration: Calibration
    policy: DecisionPolicy

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ScoringError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def score(self, cosine: float) -> tuple[float, Verdict]:
        """``(percent, verdict)`` for one cosine similarity."""
        pct = float(self.calibration.percent(cosine))
        return pct, self.policy.verdict(pct)

    def match(self, cosine: float, *, detection: int, specimen_id: str, owner: str) -> Match:
        """A :class:`vision.types.Match` for one comparison."""
        pct, verdict = self.score(cosine)
        return Match(
            detection=detection,
            specimen_id=specimen_id,
            owner=owner,
            similarity=pct,
            threshold=self.policy.threshold,
            verdict=verdict,
        )

    def with_policy(self, policy: DecisionPolicy) -> Scorer:
        """The same calibration with another threshold or band (e.g. the agency's target FAR)."""
        return Scorer(kind=self.kind, calibration=self.calibration, policy=policy)

    def to_dict(self) -> dict[str, Any]:
        return {"calibration": self.calibration.to_dict(), "decision": self.policy.to_dict()}

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any], kind: str) -> Scorer:
        """Read the scorer of ``kind`` from a model card's ``metrics["scoring"][kind]`` section.

        Raises:
            ScoringError: the card has no calibration for ``kind``.
        """
        section = metrics.get("scoring", {}).get(kind)
        if not section:
            have = sorted(metrics.get("scoring", {}))
            raise ScoringError(f"the model card has no calibration for {kind!r} (it has: {have or 'none'})")
        return cls(
            kind=kind,
            calibration=Calibration.from_dict(section["calibration"]),
            policy=DecisionPolicy.from_dict(section["decision"]),
        )
