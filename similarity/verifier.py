"""Direct verification of a mark against a named owner: the stage that says genuine or forged.

The Siamese embedding (:mod:`similarity.embedder`) finds *which* owner a mark looks like (1:N
search over the registry, in milliseconds). Whether the mark is that owner's genuine one is better
decided by comparing the crop directly with the owner's registered specimens
(:mod:`similarity.pairwise`):

* **stamps** (method ``"aligned"``): :mod:`similarity.stamp_match` aligns the questioned impression
  onto each specimen at scan resolution and measures ink the genuine die does not have. On held-out
  rendered authorities it brings skilled forgeries from 0.46 to 0.35 EER and random stamps from
  0.13 to 0.09 (``metrics.heldout_direct.stamp`` of ``models/similarity.json``).
* **signatures** (method ``"shape"``): :mod:`similarity.signature_match` compares gradient-
  orientation shape descriptors. On real signatures of held-out writers, the same name signed by
  another writer falls from 0.29 to 0.14 EER (``metrics.heldout_direct.signature``).

:class:`PairVerifier` holds one such comparison with the calibration and decision policy of its
kind: :meth:`PairVerifier.score` compares a crop with the owner's specimens (the best specimen
wins, as with the embedding) and maps the combined score ``s`` through a calibration fitted on
held-out pairs, ``percent = 100 * sigmoid(slope * logit(s) + intercept)``; 50 % means "as likely
genuine as not" at a 1:1 prior, exactly as for the embedding's calibration
(:mod:`similarity.scoring`). Calibration, policy and feature weights live in the similarity model
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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from similarity.pairwise import PairFeatures, PairMatcher, PairMatchError
from similarity.scoring import Calibration, DecisionPolicy, Scorer, ScoringError, fit_calibration
from similarity.signature_match import SignatureMatcher
from similarity.stamp_match import StampMatcher
from vision.types import Verdict

__all__ = [
    "METHODS",
    "SECTIONS",
    "Method",
    "PairScore",
    "PairVerifier",
    "PreparedCache",
    "default_matcher",
    "similarity_logit",
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
    "stamp": "similarity.stamp_match (aligned ink comparison), best specimen of the owner",
    "signature": "similarity.signature_match (shape descriptors), best specimen of the owner",
}

#: Scores are clipped to ``[EPS, 1 - EPS]`` before the logit (the combined score saturates).
EPS = 1e-6


def similarity_logit(similarity: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``log(s / (1 - s))`` of combined pair-match scores, clipped away from 0 and 1.

    The calibration is fitted on this scale: the combined score is itself a logistic output, so
    its logit is the linear score a Platt fit expects.
    """
    s = np.clip(np.asarray(similarity, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(s / (1.0 - s))


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
        percent: calibrated similarity in percent, two decimals.
        verdict: genuine / forged / inconclusive at the card's threshold and band.
        features: the comparison with that specimen (for the report and for audits).
    """

    specimen_index: int
    percent: float
    verdict: Verdict
    features: PairFeatures


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

    def score(self, query: Any, specimens: Sequence[Any]) -> PairScore:
        """Compare ``query`` with each specimen and score the most similar one (crops or
        :meth:`prepare` results).

        Raises:
            PairMatchError: no specimens or a bad array; BlankCropError: the query has no ink.
        """
        if len(specimens) == 0:
            raise PairMatchError(f"a {self.kind} comparison needs at least one registered specimen")
        q = self.matcher.prepare(query) if isinstance(query, np.ndarray) else query
        results = [self.matcher.compare(q, s) for s in specimens]
        best = int(np.argmax([r.similarity for r in results]))
        percent, verdict = self.scorer.score(float(similarity_logit(results[best].similarity)))
        return PairScore(specimen_index=best, percent=percent, verdict=verdict, features=results[best])

    @property
    def threshold(self) -> float:
        return self.scorer.policy.threshold

    @property
    def band(self) -> float:
        return self.scorer.policy.band

    def with_policy(self, policy: DecisionPolicy) -> PairVerifier:
        """The same comparison and calibration with another threshold or band."""
        return PairVerifier(matcher=self.matcher, scorer=self.scorer.with_policy(policy))

    def to_dict(self) -> dict[str, Any]:
        """The card section (``metrics["scoring"][self.section]``)."""
        formula = f"percent = 100 * sigmoid(slope * logit({self.kind} match similarity) + intercept)"
        scoring = self.scorer.to_dict()
        scoring["calibration"]["formula"] = formula  # its input is the logit, not a cosine
        out: dict[str, Any] = {"method": _DESCRIPTIONS[self.kind], "formula": formula}
        out["weights"] = dict(self.matcher.weights)
        if self.kind == "stamp":
            out["use_scale"] = self.use_scale
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
        except (KeyError, TypeError, ValueError) as e:
            raise ScoringError(f"the card's {SECTIONS.get(kind, kind)!r} section is malformed: {e}") from e
        return cls(matcher=matcher, scorer=scorer)

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
    ) -> PairVerifier:
        """Calibrate on held-out combined scores (genuine and impostor pairs, 1:1 prior); the
        threshold at the equal-error point, or at a target false-accept rate ``far``.

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

    def get(self, key: str, load: Callable[[], npt.NDArray[np.uint8]], prepare: Callable[..., Any]) -> Any:
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
