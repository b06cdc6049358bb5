"""Direct verification of a mark against a named owner: the stage that says genuine or forged.

The Siamese embedding (:mod:`similarity.embedder`) finds *which* owner a mark looks like (1:N
search over the registry, in milliseconds). Whether the mark is that owner's genuine one is better
decided by comparing the crop directly with the owner's registered specimens
(:mod:`similarity.pairwise`):

* **stamps** (method ``"aligned"``): :mod:`similarity.stamp_match` aligns the questioned impression
  onto each specimen at scan resolution and measures ink the genuine die does not have. On held-out
  rendered authorities it brings skilled forgeries from 0.44 (the embedding's cosine) to 0.28 EER;
  random stamps are 0.06 either way (``metrics.heldout_direct.stamp`` of ``models/similarity.json``).
* **signatures** (method ``"shape"``): :mod:`similarity.signature_match` compares gradient-
  orientation shape descriptors. On real signatures of held-out writers, the same name signed by
  another writer falls from 0.23 (the embedding) to 0.13 EER (``metrics.heldout_direct.signature``).

:class:`PairVerifier` holds one such comparison with the calibration and decision policy of its
kind: :meth:`PairVerifier.score` compares a crop with the owner's specimens and maps the combined
score ``s`` through a calibration fitted on held-out pairs,
``percent = 100 * sigmoid(slope * logit(s) + intercept)``; 50 % means "as likely genuine as not"
at a 1:1 prior, exactly as for the embedding's calibration (:mod:`similarity.scoring`).

**Several specimens of one owner** (:class:`OwnerNormalisation`). Some hands and some dies are
steadier than others: two genuine signatures of a careful writer are closer than two of a hasty
one. With K >= 2 specimens the owner's own spread is known, so the query is judged against it:

    logit(s) = mean_k logit(s_k) - alpha * (c - typical)

with ``s_k`` the comparison with specimen k, ``c`` the mean logit of the owner's specimens compared
with each other (:func:`specimen_consistency`) and ``typical`` the mean logit of genuine pairs in
the calibration data (so an owner of ordinary spread keeps the calibrated scale). A forgery that
comes close to one specimen of a steady writer no longer passes on that one specimen. Measured on
rendered writers and authorities held out of all fitting (``python -m
benchmarks.multi_specimen_eval``, ``benchmarks/results/multi_specimen_*.json``); see
:data:`DEFAULT_OWNER_ALPHA`. With one specimen (or a card without the section) the score is the
best specimen's, as before. Calibration, policy and feature weights live in the similarity model
card under ``metrics.scoring.<section>`` (:data:`SECTIONS`; written by ``customs-vision calibrate
stamps|signatures``), so the service, ``compare`` and ``evaluate similarity`` all score a mark the
same way.

A crop in which no ink is found (:class:`~similarity.pairwise.BlankCropError`) cannot be compared;
the caller decides what to do (the service answers with the embedding's score for that mark and
says which method scored it).

Cost per specimen on one CPU core: stamps ~50 ms, signatures ~3 ms. Prepared specimens
are cached by id (:class:`PreparedCache`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from similarity.pairwise import Finding, PairFeatures, PairMatcher, PairMatchError
from similarity.scoring import Calibration, DecisionPolicy, Scorer, ScoringError, fit_calibration
from similarity.signature_match import SignatureMatcher
from similarity.stamp_match import StampMatcher
from vision.types import Verdict

__all__ = [
    "DEFAULT_OWNER_ALPHA",
    "METHODS",
    "SECTIONS",
    "Method",
    "OwnerNormalisation",
    "PairScore",
    "PairVerifier",
    "PreparedCache",
    "default_matcher",
    "similarity_logit",
    "specimen_consistency",
    "verifiers_from_metrics",
]

#: How a match was scored: a direct comparison of its kind, or the embedding's cosine.
Method = Literal["aligned", "shape", "embedding"]

#: Key of each kind's verifier in a similarity card's ``metrics["scoring"]``.
SECTIONS: dict[str, str] = {"stamp": "stamp_aligned", "signature": "signature_shape"}

#: The method name a verified match reports, per kind.
METHODS: dict[str, Method] = {"stamp": "aligned", "signature": "shape"}

#: What each kind's combined score is, for reports and the card.
_DESCRIPTIONS = {
    "stamp": "similarity.stamp_match (aligned ink comparison) with each of the owner's specimens, combined",
    "signature": "similarity.signature_match (shape descriptors) with each of the owner's specimens, combined",
}

#: Scores are clipped to ``[EPS, 1 - EPS]`` before the logit (the combined score saturates).
EPS = 1e-6

#: Findings that make a low score weak evidence of forgery: a questioned mark showing one of them is
#: called ``"forged"`` only below the given percentage, and ``"inconclusive"`` between it and the
#: lower edge of the inconclusive band (never ``"genuine"`` on that account). ``no_colour``: a
#: greyscale or faxed stamp loses the ink-colour cues, and printed text under it reads as ink, so
#: genuine impressions score low. On the card's held-out stamp pairs (calibrate stamps protocol,
#: 2 specimens, 2026-11-23) the 29 genuine queries without colour were called forged 45 % of the
#: time at the card's policy (colour: 9 % of 109); with the bound at 30 %, 10 %. Their random
#: impostors (131) are still called forged 89 % of the time instead of 98 %, skilled forgeries (77)
#: 43 % instead of 71 %; the rest become inconclusive, none genuine. 35 % gave the same genuine
#: figure on these few pairs; 30 % keeps a margin below the next genuine score.
FORGED_ONLY_BELOW: dict[str, float] = {"no_colour": 30.0}

#: Weight ``alpha`` of the owner's specimen consistency, per kind (:class:`OwnerNormalisation`),
#: chosen on held-out rendered owners by ``python -m benchmarks.multi_specimen_eval``.
DEFAULT_OWNER_ALPHA: dict[str, float] = {"signature": 0.5, "stamp": 0.5}


def similarity_logit(similarity: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``log(s / (1 - s))`` of combined pair-match scores, clipped away from 0 and 1.

    The calibration is fitted on this scale: the combined score is itself a logistic output, so
    its logit is the linear score a Platt fit expects.
    """
    s = np.clip(np.asarray(similarity, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(s / (1.0 - s))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0))))


def specimen_consistency(matcher: PairMatcher, specimens: Sequence[Any]) -> float | None:
    """How alike an owner's prepared specimens are: the mean :func:`similarity_logit` of every
    ordered pair of two of them (comparisons are not symmetric); ``None`` with fewer than two.

    Costs K(K-1) comparisons (a stamp ~50 ms each): callers that score many queries against one
    owner compute it once (the service caches it per set of specimen ids).
    """
    if len(specimens) < 2:
        return None
    n = len(specimens)
    sims = [matcher.compare(specimens[i], specimens[j]).similarity for i in range(n) for j in range(n) if i != j]
    return float(np.mean(similarity_logit(sims)))


#: The combination :class:`OwnerNormalisation` applies, as written into the card.
OWNER_FORMULA = "logit(s) = mean_k logit(s_k) - alpha * (consistency - typical)"


@dataclass(frozen=True)
class OwnerNormalisation:
    """Combine a query's comparisons with several specimens of one owner (module docstring).

    Attributes:
        alpha: weight of the owner's deviation from typical consistency (0: plain mean of logits).
        typical: mean :func:`similarity_logit` of genuine pairs in the calibration data.
    """

    alpha: float
    typical: float

    def combine(self, similarities: Sequence[float], consistency: float | None) -> float:
        """The owner-level combined score in ``(0, 1)`` from the per-specimen scores.

        With one specimen (or no consistency known) it is the best specimen's score.
        """
        if len(similarities) == 0:
            raise PairMatchError("no specimen scores to combine")
        if len(similarities) == 1 or consistency is None:
            return float(max(similarities))
        logit = float(np.mean(similarity_logit(similarities))) - self.alpha * (consistency - self.typical)
        return _sigmoid(logit)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "typical": round(self.typical, 6), "formula": OWNER_FORMULA}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OwnerNormalisation:
        """Raises: KeyError, TypeError, ValueError on a malformed section."""
        alpha, typical = float(d["alpha"]), float(d["typical"])
        if not (np.isfinite(alpha) and np.isfinite(typical)) or alpha < 0:
            raise ValueError(f"owner_normalisation needs a finite alpha >= 0 and typical, got {alpha}, {typical}")
        return cls(alpha=alpha, typical=typical)

    @classmethod
    def fit(
        cls, kind: str, genuine_pair_similarity: npt.ArrayLike, *, alpha: float | None = None
    ) -> OwnerNormalisation:
        """``typical`` from genuine pairs' per-specimen scores; ``alpha`` as given, else the kind's
        :data:`DEFAULT_OWNER_ALPHA`.

        Raises:
            ScoringError: no finite genuine score; ValueError: a negative ``alpha``.
        """
        if alpha is not None and alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        g = np.asarray(genuine_pair_similarity, dtype=np.float64)
        g = g[np.isfinite(g)]
        if g.size == 0:
            raise ScoringError("no genuine pair to measure the typical consistency of an owner's specimens")
        chosen = DEFAULT_OWNER_ALPHA[kind] if alpha is None else alpha
        return cls(alpha=chosen, typical=float(np.mean(similarity_logit(g))))


def default_matcher(kind: str, weights: Mapping[str, float] | None = None, *, use_scale: bool = False) -> PairMatcher:
    """The direct comparison of ``kind`` (``"stamp"`` or ``"signature"``).

    Raises:
        ScoringError: an unknown kind; PairMatchError: bad weights.
    """
    if kind == "stamp":
        return StampMatcher(weights=weights, use_scale=use_scale)
    if kind == "signature":
        return SignatureMatcher(weights=weights)
    raise ScoringError(f"no direct comparison for {kind!r} marks")


@dataclass(frozen=True)
class PairScore:
    """One questioned mark against one owner's specimens.

    Attributes:
        specimen_index: index (into the specimens given) of the best-matching specimen.
        percent: calibrated similarity in percent, two decimals: the owner-level score (all the
            specimens combined, :class:`OwnerNormalisation`) when the card has the section and
            several specimens were given, else the best specimen's.
        verdict: genuine / forged / inconclusive of ``percent`` at the card's threshold and band.
        features: the comparison with the best specimen (for the report and for audits).
        specimen_percents: each specimen's own calibrated percent, in the order given.
        findings: what the questioned mark shows by itself (:meth:`PairMatcher.findings`), then what
            the comparison with the best specimen says about its own reliability
            (:meth:`PairMatcher.comparison_findings`).
    """

    specimen_index: int
    percent: float
    verdict: Verdict
    features: PairFeatures
    specimen_percents: tuple[float, ...] = ()
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class PairVerifier:
    """A direct comparison plus the calibration and decision policy of its kind, from the card.

    Attributes:
        matcher: the comparison with the card's feature weights (:func:`default_matcher`).
        scorer: calibration (on :func:`similarity_logit` of the combined score) and decision policy;
            its ``kind`` is the kind of mark verified.
    """

    matcher: PairMatcher
    scorer: Scorer
    owner_normalisation: OwnerNormalisation | None = None

    @property
    def use_scale(self) -> bool:
        """Stamps only: whether the scale deviation enters the combined score (the matcher's setting)."""
        return bool(getattr(self.matcher, "use_scale", False))

    @property
    def kind(self) -> str:
        return self.scorer.kind

    @property
    def method(self) -> Method:
        """``"aligned"`` (stamps) or ``"shape"`` (signatures)."""
        return METHODS[self.kind]

    @property
    def section(self) -> str:
        """This verifier's key under the card's ``metrics["scoring"]``."""
        return SECTIONS[self.kind]

    def prepare(self, crop: npt.NDArray[np.uint8]) -> Any:
        """Preprocess one crop, reusable as query or specimen.

        Raises:
            PairMatchError: not an RGB uint8 crop; BlankCropError: no ink in it.
        """
        return self.matcher.prepare(crop)

    def consistency(self, specimens: Sequence[Any]) -> float | None:
        """:func:`specimen_consistency` of one owner's specimens (crops or :meth:`prepare` results)."""
        return specimen_consistency(self.matcher, [self._prepared(s) for s in specimens])

    def _prepared(self, crop: Any) -> Any:
        return self.matcher.prepare(crop) if isinstance(crop, np.ndarray) else crop

    def combine(self, similarities: Sequence[float], consistency: float | None) -> float:
        """The owner-level combined score of per-specimen scores: :class:`OwnerNormalisation` when
        the card has it, else the best specimen's."""
        if self.owner_normalisation is None:
            return float(max(similarities))
        return self.owner_normalisation.combine(similarities, consistency)

    def score(self, query: Any, specimens: Sequence[Any], *, consistency: float | None = None) -> PairScore:
        """Compare ``query`` with each of one owner's specimens (crops or :meth:`prepare` results)
        and score the owner.

        Args:
            query: the questioned crop.
            specimens: the owner's specimens (one specimen: that specimen's score).
            consistency: :meth:`consistency` of ``specimens`` if the caller has it cached; computed
                here when the card normalises by owner and it is not given.

        Raises:
            PairMatchError: no specimens or a bad array; BlankCropError: the query has no ink.
        """
        if len(specimens) == 0:
            raise PairMatchError(f"a {self.kind} comparison needs at least one registered specimen")
        q = self._prepared(query)
        prepared = [self._prepared(s) for s in specimens]
        results = [self.matcher.compare(q, s) for s in prepared]
        sims = [r.similarity for r in results]
        best = int(np.argmax(sims))
        if self.owner_normalisation is not None and len(prepared) > 1 and consistency is None:
            consistency = specimen_consistency(self.matcher, prepared)
        percent, _ = self.scorer.score(float(similarity_logit(self.combine(sims, consistency))))
        own = tuple(self.scorer.score(float(similarity_logit(s)))[0] for s in sims)
        findings = (*self.matcher.findings(q), *self.matcher.comparison_findings(results[best]))
        return PairScore(
            specimen_index=best,
            percent=percent,
            verdict=self.verdict(percent, findings),
            features=results[best],
            specimen_percents=own,
            findings=findings,
        )

    def verdict(self, percent: float, findings: Sequence[Finding] = ()) -> Verdict:
        """The verdict of the card's policy at ``percent``, except that a ``"forged"`` verdict
        becomes ``"inconclusive"`` when a finding makes the low score weak evidence and ``percent``
        is not below that finding's :data:`FORGED_ONLY_BELOW` bound."""
        verdict = self.scorer.policy.verdict(percent)
        if verdict == "forged" and any(
            f.code in FORGED_ONLY_BELOW and percent >= FORGED_ONLY_BELOW[f.code] for f in findings
        ):
            return "inconclusive"
        return verdict

    @property
    def threshold(self) -> float:
        return self.scorer.policy.threshold

    @property
    def band(self) -> float:
        return self.scorer.policy.band

    def with_policy(self, policy: DecisionPolicy) -> PairVerifier:
        """The same comparison and calibration with another threshold or band."""
        return replace(self, scorer=self.scorer.with_policy(policy))

    def to_dict(self) -> dict[str, Any]:
        """The card section (``metrics["scoring"][self.section]``)."""
        formula = f"percent = 100 * sigmoid(slope * logit({self.kind} match similarity) + intercept)"
        scoring = self.scorer.to_dict()
        scoring["calibration"]["formula"] = formula  # its input is the logit, not a cosine
        out: dict[str, Any] = {"method": _DESCRIPTIONS[self.kind], "formula": formula}
        out["weights"] = dict(self.matcher.weights)
        if self.kind == "stamp":
            out["use_scale"] = self.use_scale
        if self.owner_normalisation is not None:
            out["owner_normalisation"] = self.owner_normalisation.to_dict()
        return out | scoring

    @classmethod
    def from_section(cls, kind: str, section: Mapping[str, Any]) -> PairVerifier:
        """Build from a card section written by :meth:`to_dict`.

        Raises:
            ScoringError: the section is malformed (missing calibration or decision, bad weights).
        """
        try:
            weights = section.get("weights") or None
            use_scale = bool(section.get("use_scale", False))
            matcher = default_matcher(kind, weights, use_scale=use_scale)
            scorer = Scorer(
                kind=kind,
                calibration=Calibration.from_dict(section["calibration"]),
                policy=DecisionPolicy.from_dict(section["decision"]),
            )
            norm = section.get("owner_normalisation")
            owner_normalisation = None if norm is None else OwnerNormalisation.from_dict(norm)
        except (KeyError, TypeError, ValueError) as e:
            raise ScoringError(f"the card's {SECTIONS.get(kind, kind)!r} section is malformed: {e}") from e
        return cls(matcher=matcher, scorer=scorer, owner_normalisation=owner_normalisation)

    @classmethod
    def fit(
        cls,
        kind: str,
        genuine: npt.ArrayLike,
        impostor: npt.ArrayLike,
        *,
        matcher: PairMatcher | None = None,
        band: float = 5.0,
        far: float | None = None,
        owner_normalisation: OwnerNormalisation | None = None,
    ) -> PairVerifier:
        """Calibrate on held-out combined scores (genuine and impostor pairs, 1:1 prior); the
        threshold at the equal-error point, or at a target false-accept rate ``far``. The scores
        must have been combined over each owner's specimens as ``owner_normalisation`` combines them.

        Raises:
            CalibrationError: impostors score as high as genuine pairs.
        """
        g, i = similarity_logit(genuine), similarity_logit(impostor)
        calibration = fit_calibration(g, i)
        policy = (
            DecisionPolicy.at_eer(calibration, g, i, band=band)
            if far is None
            else DecisionPolicy.at_far(calibration, i, far, band=band)
        )
        return cls(
            matcher=matcher or default_matcher(kind),
            scorer=Scorer(kind=kind, calibration=calibration, policy=policy),
            owner_normalisation=owner_normalisation,
        )


def verifiers_from_metrics(metrics: Mapping[str, Any]) -> dict[str, PairVerifier]:
    """The direct verifiers a similarity card's metrics hold, by kind (none: an empty dict).

    Raises:
        ScoringError: a section exists but is malformed.
    """
    scoring = metrics.get("scoring", {})
    return {kind: PairVerifier.from_section(kind, scoring[key]) for kind, key in SECTIONS.items() if scoring.get(key)}


class PreparedCache:
    """Prepared specimens by id, least recently used dropped first (thread-safe).

    Registered specimens are compared with every questioned mark that claims their owner;
    preparing one (a stamp's ink maps ~10 ms, a signature's descriptors ~4 ms) is done once, and
    the service keeps the recent ones. Ids are specimen ids, which are never reused, so a cached
    entry can never be stale (a verifier of another kind never asks for the same id).
    """

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[], Any], prepare: Callable[[Any], Any]) -> Any:
        """The prepared specimen ``key``, preparing ``load()`` on a miss.

        Raises:
            whatever ``load`` or ``prepare`` raise (nothing is cached then).
        """
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        prepared = prepare(load())
        with self._lock:
            self._items[key] = prepared
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return prepared

    def discard(self, key: str) -> None:
        """Forget ``key`` (a deleted specimen)."""
        with self._lock:
            self._items.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
