"""Specimen matching for the service: the one place that talks to :mod:`similarity.registry`.

:class:`SpecimenMatcher` puts the registry (raw cosines, 1:1 ``verify`` and 1:N ``identify``) and the
similarity model's scorers (calibrated percentages and verdicts) together into the answers the API
gives, and turns the registry's exceptions into the service's HTTP errors, so that a change in the
similarity package touches this file only.

Ranking of a document's matches: for each stamp or signature found, every *claimed* owner's best
specimen comes first (in the order the owners were claimed), then the other owners most like the
mark, best first, until ``top_k`` entries are listed. Claimed owners are always listed, even beyond
``top_k``: the clerk asked about them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from service.errors import InvalidRequestError, ModelUnavailableError, NotFoundError, sentence
from similarity.registry import (
    KINDS,
    RegistryError,
    SpecimenInfo,
    SpecimenRegistry,
    StaleEmbeddingsError,
    UnknownOwnerError,
    UnknownSpecimenError,
)
from similarity.scoring import Scorer
from vision.types import Match, Verdict

V = TypeVar("V")

__all__ = ["KINDS", "Comparison", "SpecimenMatch", "SpecimenMatcher", "SpecimenScore"]


@dataclass(frozen=True)
class SpecimenMatch:
    """A detected mark compared with one registered specimen.

    Attributes:
        match: the core match (detection index, specimen, owner, percent, threshold, verdict).
        kind: ``"stamp"`` or ``"signature"``.
        claimed: whether the request named this owner.
    """

    match: Match
    kind: str
    claimed: bool


@dataclass(frozen=True)
class SpecimenScore:
    """One specimen's calibrated similarity with an uploaded crop."""

    specimen_id: str
    owner: str
    label: str
    similarity: float
    verdict: Verdict


@dataclass(frozen=True)
class Comparison:
    """The answer to ``POST /v1/compare``: the best specimen's score and every specimen's.

    Attributes:
        kind: mark kind compared.
        similarity: best calibrated similarity in percent (two decimals).
        verdict: verdict at that similarity.
        threshold: decision threshold in percent.
        band: half-width of the inconclusive band, percentage points.
        specimen_id: the best specimen.
        owner: its owner.
        per_specimen: every specimen compared, best first.
    """

    kind: str
    similarity: float
    verdict: Verdict
    threshold: float
    band: float
    specimen_id: str
    owner: str
    per_specimen: tuple[SpecimenScore, ...]


def _translated(call: Callable[[], V]) -> V:
    """Run a registry call, turning its errors into the service's HTTP errors."""
    try:
        return call()
    except UnknownSpecimenError as e:
        raise NotFoundError(_sentence(e), code="unknown_specimen") from e
    except UnknownOwnerError as e:
        raise NotFoundError(_sentence(e), code="unknown_owner") from e
    except StaleEmbeddingsError as e:
        raise ModelUnavailableError(_sentence(e)) from e
    except RegistryError as e:
        raise InvalidRequestError(_sentence(e)) from e


def _sentence(e: Exception) -> str:
    return sentence(str(e))


class SpecimenMatcher:
    """Registered specimens plus calibrated scoring.

    Args:
        registry: the specimen registry, opened for the embedding model's version.
        scorers: mark kind -> scorer from the embedding model's card; kinds without one cannot be
            compared (503).
        top_k: entries listed per detected mark (claimed owners may add more).

    Every method may block on the database or the registry's lock: call from a worker thread.
    """

    def __init__(self, registry: SpecimenRegistry, scorers: Mapping[str, Scorer], *, top_k: int = 3) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.registry = registry
        self.scorers = dict(scorers)
        self.top_k = top_k

    @property
    def model_version(self) -> str:
        """Version of the embedding model whose embeddings are searched."""
        return self.registry.model_version

    def scorer(self, kind: str) -> Scorer:
        """The scorer of ``kind``; 503 when the model has no calibration for it."""
        scorer = self.scorers.get(kind)
        if scorer is None:
            raise ModelUnavailableError(
                f"The similarity model has no calibration for {kind!r} marks, so they cannot be compared."
            )
        return scorer

    # ------------------------------------------------------------------------------ documents

    def check_owners(self, owners: Iterable[str]) -> None:
        """Raise 404 (``unknown_owner``) for the first owner with no specimen of any kind."""
        known = {owner for kind in KINDS for owner in self.registry.owners(kind)}
        for owner in owners:
            if owner not in known:
                raise NotFoundError(
                    f"No stamp or signature specimen is registered for owner {owner!r}.", "unknown_owner"
                )

    def searchable_kinds(self) -> frozenset[str]:
        """Kinds that have a scorer and at least one registered specimen."""
        return frozenset(k for k in self.scorers if self.registry.owners(k))

    def match_marks(
        self,
        marks: Sequence[tuple[int, str]],
        embeddings: npt.NDArray[np.float32],
        claimed: Sequence[str],
    ) -> list[SpecimenMatch]:
        """Rank specimens for each detected mark.

        Args:
            marks: ``(detection index, kind)`` of each mark, in the order of ``embeddings``.
            embeddings: ``(len(marks), D)`` float32 unit rows.
            claimed: owners named by the request, in their order of importance.

        Returns:
            Matches grouped by mark in ``marks`` order; within a mark, claimed owners first.
        """
        if len(marks) != len(embeddings):
            raise ValueError(f"{len(marks)} marks but {len(embeddings)} embeddings")

        def rank_all() -> list[SpecimenMatch]:
            out: list[SpecimenMatch] = []
            for (index, kind), vector in zip(marks, embeddings, strict=True):
                out += self._rank(index, kind, vector, claimed)
            return out

        return _translated(rank_all)

    def _rank(
        self, index: int, kind: str, vector: npt.NDArray[np.float32], claimed: Sequence[str]
    ) -> list[SpecimenMatch]:
        scorer = self.scorer(kind)
        ranked: list[SpecimenMatch] = []
        seen: set[str] = set()
        for owner in claimed:
            try:
                best = self.registry.verify(vector, owner, kind)[0]
            except UnknownOwnerError:
                continue  # the owner has specimens of the other kind only
            match = scorer.match(best.cosine, detection=index, specimen_id=best.specimen_id, owner=owner)
            ranked.append(SpecimenMatch(match, kind, claimed=True))
            seen.add(owner)
        if len(ranked) < self.top_k:
            for hit in self.registry.identify(vector, kind, top_k=self.top_k + len(seen)):
                if hit.owner in seen:
                    continue
                match = scorer.match(hit.cosine, detection=index, specimen_id=hit.specimen_id, owner=hit.owner)
                ranked.append(SpecimenMatch(match, kind, claimed=False))
                if len(ranked) >= self.top_k:
                    break
        return ranked

    # ------------------------------------------------------------------------------- compare

    def check_target(self, kind: str, *, specimen_id: str | None, owner: str | None) -> None:
        """404/422 before any inference: the specimen exists and is of ``kind``, or the owner has one."""
        self.scorer(kind)
        if specimen_id is not None:
            info = self.get(specimen_id)
            if info.kind != kind:
                raise InvalidRequestError(
                    f"Specimen {specimen_id!r} is a {info.kind}, not a {kind}; compare it with kind={info.kind}.",
                    code="kind_mismatch",
                )
        elif owner is not None and owner not in self.registry.owners(kind):
            raise NotFoundError(f"No {kind} specimen is registered for owner {owner!r}.", "unknown_owner")

    def compare(
        self, vector: npt.NDArray[np.float32], kind: str, *, specimen_id: str | None = None, owner: str | None = None
    ) -> Comparison:
        """Score an uploaded crop against one specimen, or against every specimen of one owner.

        Exactly one of ``specimen_id`` and ``owner`` must be given.
        """
        if (specimen_id is None) == (owner is None):
            raise InvalidRequestError("Give exactly one of 'specimen_id' and 'owner'.")
        self.check_target(kind, specimen_id=specimen_id, owner=owner)
        scorer = self.scorer(kind)
        if specimen_id is not None:
            info = self.get(specimen_id)
            cosine = _translated(lambda: self.registry.similarity(vector, specimen_id))
            hits = [(info.id, info.owner, info.label, cosine)]
        else:
            assert owner is not None
            found = _translated(lambda: self.registry.verify(vector, owner, kind))
            hits = [(h.specimen_id, h.owner, h.label, h.cosine) for h in found]
        scores = []
        for sid, who, label, cosine in hits:
            percent, verdict = scorer.score(cosine)
            scores.append(SpecimenScore(sid, who, label, percent, verdict))
        best = max(scores, key=lambda s: s.similarity)
        return Comparison(
            kind=kind,
            similarity=best.similarity,
            verdict=best.verdict,
            threshold=scorer.policy.threshold,
            band=scorer.policy.band,
            specimen_id=best.specimen_id,
            owner=best.owner,
            per_specimen=tuple(scores),
        )

    # ----------------------------------------------------------------------------- specimens

    def register(
        self, *, owner: str, kind: str, image: npt.NDArray[np.uint8], embedding: npt.NDArray[np.float32], label: str
    ) -> SpecimenInfo:
        """Store a specimen (commits at once)."""
        return _translated(
            lambda: self.registry.add(owner=owner, kind=kind, image=image, embedding=embedding, label=label)
        )

    def specimens(self, *, owner: str | None = None, kind: str | None = None) -> list[SpecimenInfo]:
        """Specimens, optionally of one owner and/or kind, oldest first."""
        return _translated(lambda: self.registry.specimens(owner=owner, kind=kind))

    def get(self, specimen_id: str) -> SpecimenInfo:
        """One specimen's metadata; 404 if unknown."""
        return _translated(lambda: self.registry.get(specimen_id))

    def image(self, specimen_id: str) -> npt.NDArray[np.uint8]:
        """The stored specimen image, ``(H, W, 3)`` uint8 RGB; 404 if unknown."""
        return _translated(lambda: self.registry.image(specimen_id))

    def delete(self, specimen_id: str) -> None:
        """Remove a specimen (commits at once); 404 if unknown."""
        _translated(lambda: self.registry.delete(specimen_id))
