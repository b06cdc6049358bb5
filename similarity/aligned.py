"""Aligned stamp verification: the second stage that decides whether a stamp is genuine.

The Siamese embedding (:mod:`similarity.embedder`) finds *which* authority a stamp looks like (1:N
search over the registry, in milliseconds). It cannot tell a re-carved die from the genuine one:
at its 96 x 192 input the changes of a skilled forgery are smaller than the differences between two
genuine impressions. :mod:`similarity.stamp_match` aligns the questioned impression onto each
registered specimen at scan resolution and measures ink the genuine die does not have; on held-out
rendered authorities it halves the CNN's distance to chance on skilled forgeries and lowers the
random-stamp error too (figures in ``models/similarity.json``, ``metrics.heldout_aligned``).

So a stamp's percentage and verdict against a *named* owner come from this module:

* :meth:`AlignedStampScorer.score` compares a crop with the owner's specimens (the best specimen
  wins, as with the embedding) and maps the combined score through a calibration fitted on
  held-out pairs, ``percent = 100 * sigmoid(slope * logit(s) + intercept)``, where ``s`` is
  :attr:`~similarity.stamp_match.StampMatchFeatures.similarity`; 50 % means "as likely genuine as
  not" at a 1:1 prior, exactly as for the embedding's calibration (:mod:`similarity.scoring`).
* The calibration, the decision policy and the feature weights live in the similarity model card
  under ``metrics.scoring.stamp_aligned`` (written by ``customs-vision calibrate stamps``), so the
  service, ``compare`` and ``evaluate similarity`` all score a stamp the same way.

A crop in which no stamp ink is found (:class:`~similarity.stamp_match.BlankCropError`) cannot be
aligned; the caller decides what to do (the service answers with the embedding's score for that
mark and says which method scored it).

Cost: ~50 ms per specimen on one CPU core; specimens are prepared once and cached by id
(:class:`PreparedCache`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from similarity.scoring import Calibration, DecisionPolicy, Scorer, ScoringError, fit_calibration
from similarity.stamp_match import (
    DEFAULT_WEIGHTS,
    PreparedStamp,
    StampMatcher,
    StampMatchError,
    StampMatchFeatures,
)
from vision.types import Verdict

__all__ = [
    "SECTION",
    "AlignedScore",
    "AlignedStampScorer",
    "PreparedCache",
    "similarity_logit",
]

#: Key of the aligned stamp scorer in a similarity card's ``metrics["scoring"]``.
SECTION = "stamp_aligned"

#: Scores are clipped to ``[EPS, 1 - EPS]`` before the logit (the combined score saturates).
EPS = 1e-6


def similarity_logit(similarity: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``log(s / (1 - s))`` of combined stamp-match scores, clipped away from 0 and 1.

    The calibration is fitted on this scale: the combined score is itself a logistic output, so
    its logit is the linear score a Platt fit expects.
    """
    s = np.clip(np.asarray(similarity, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(s / (1.0 - s))


@dataclass(frozen=True)
class AlignedScore:
    """One questioned stamp against one owner's specimens.

    Attributes:
        specimen_index: index (into the specimens given) of the best-matching specimen.
        percent: calibrated similarity in percent, two decimals.
        verdict: genuine / forged / inconclusive at the card's threshold and band.
        features: the aligned comparison with that specimen (for the report and for audits).
    """

    specimen_index: int
    percent: float
    verdict: Verdict
    features: StampMatchFeatures


@dataclass(frozen=True)
class AlignedStampScorer:
    """Stamp-match comparison plus the calibration and decision policy from the model card.

    Attributes:
        matcher: the aligned comparison with the card's feature weights.
        scorer: calibration (on :func:`similarity_logit` of the combined score) and decision policy;
            its ``kind`` is ``"stamp"``.
    """

    matcher: StampMatcher
    scorer: Scorer

    def prepare(self, crop: npt.NDArray[np.uint8]) -> PreparedStamp:
        """Ink maps of one crop, reusable as query or specimen.

        Raises:
            StampMatchError: not an RGB uint8 crop; BlankCropError: no ink in it.
        """
        return self.matcher.prepare(crop)

    def score(
        self, query: PreparedStamp | npt.NDArray[np.uint8], specimens: Sequence[PreparedStamp | npt.NDArray[np.uint8]]
    ) -> AlignedScore:
        """Compare ``query`` with each specimen and score the most similar one.

        Raises:
            StampMatchError: no specimens or a bad array; BlankCropError: the query has no ink.
        """
        if len(specimens) == 0:
            raise StampMatchError("an aligned comparison needs at least one registered specimen")
        q = query if isinstance(query, PreparedStamp) else self.matcher.prepare(query)
        results = [self.matcher.compare(q, s) for s in specimens]
        best = int(np.argmax([r.similarity for r in results]))
        percent, verdict = self.scorer.score(float(similarity_logit(results[best].similarity)))
        return AlignedScore(specimen_index=best, percent=percent, verdict=verdict, features=results[best])

    @property
    def threshold(self) -> float:
        return self.scorer.policy.threshold

    @property
    def band(self) -> float:
        return self.scorer.policy.band

    def with_policy(self, policy: DecisionPolicy) -> AlignedStampScorer:
        """The same comparison and calibration with another threshold or band."""
        return AlignedStampScorer(matcher=self.matcher, scorer=self.scorer.with_policy(policy))

    def to_dict(self) -> dict[str, Any]:
        """The card section (``metrics["scoring"]["stamp_aligned"]``)."""
        formula = "percent = 100 * sigmoid(slope * logit(stamp_match similarity) + intercept)"
        scoring = self.scorer.to_dict()
        scoring["calibration"]["formula"] = formula  # its input is the logit, not a cosine
        return {
            "method": "similarity.stamp_match (aligned ink comparison), best specimen of the owner",
            "formula": formula,
            "weights": dict(self.matcher.weights),
            "use_scale": self.matcher.use_scale,
            **scoring,
        }

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> AlignedStampScorer:
        """Build from a card section written by :meth:`to_dict`.

        Raises:
            ScoringError: the section is malformed (missing calibration or decision, bad weights).
        """
        try:
            weights = {str(k): float(v) for k, v in dict(section.get("weights") or DEFAULT_WEIGHTS).items()}
            matcher = StampMatcher(weights=weights, use_scale=bool(section.get("use_scale", False)))
            scorer = Scorer(
                kind="stamp",
                calibration=Calibration.from_dict(section["calibration"]),
                policy=DecisionPolicy.from_dict(section["decision"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ScoringError(f"the card's {SECTION!r} section is malformed: {e}") from e
        return cls(matcher=matcher, scorer=scorer)

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> AlignedStampScorer | None:
        """The aligned scorer of a similarity card's metrics, or ``None`` if it has none.

        Raises:
            ScoringError: the section exists but is malformed.
        """
        section = metrics.get("scoring", {}).get(SECTION)
        return None if not section else cls.from_section(section)

    @classmethod
    def fit(
        cls,
        genuine: npt.ArrayLike,
        impostor: npt.ArrayLike,
        *,
        matcher: StampMatcher | None = None,
        band: float = 5.0,
        far: float | None = None,
    ) -> AlignedStampScorer:
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
            matcher=matcher or StampMatcher(), scorer=Scorer(kind="stamp", calibration=calibration, policy=policy)
        )


class PreparedCache:
    """Prepared specimens by id, least recently used dropped first (thread-safe).

    Registered specimens are compared with every questioned stamp that claims their owner;
    preparing one (ink maps) costs ~10 ms, so the service keeps the recent ones. Ids are
    specimen ids, which are never reused, so a cached entry can never be stale.
    """

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[str, PreparedStamp] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: str, load: Callable[[], npt.NDArray[np.uint8]], prepare: Callable[..., PreparedStamp]
    ) -> PreparedStamp:
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
