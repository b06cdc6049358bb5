"""Specimen matching for the service: the one place that talks to :mod:`similarity.registry`.

:class:`SpecimenMatcher` puts the registry (raw cosines, 1:1 ``verify`` and 1:N ``identify``) and the
similarity model's scorers (calibrated percentages and verdicts) together into the answers the API
gives, and turns the registry's exceptions into the service's HTTP errors, so that a change in the
similarity package touches this file only.

Ranking of a document's matches: for each stamp or signature found, every *claimed* owner's best
specimen comes first (in the order the owners were claimed), then the other owners most like the
mark, best first, until ``top_k`` entries are listed. Claimed owners are always listed, even beyond
``top_k``: the clerk asked about them.

How a mark is scored: the embedding finds the candidate owners (claimed ones, and the 1:N
search); when the similarity card has a direct verifier for the mark's kind
(:mod:`similarity.verifier`: stamps aligned onto the specimen, signatures compared by shape), each
candidate owner's percentage and verdict then come from that direct comparison of the crop with the
owner's specimens, which catches what the embedding cannot see (a re-carved die, another writer's
hand). With several specimens of the owner, the percentage is the owner's (all its specimens,
judged against how alike they are to each other: :class:`similarity.verifier.OwnerNormalisation`);
that consistency is measured once per set of specimens and cached. A crop in which no ink is found
cannot be compared directly and keeps the embedding's score.
Every match says which ``method`` scored it (``"aligned"``, ``"shape"`` or ``"embedding"``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from service.errors import InvalidRequestError, ModelUnavailableError, NotFoundError, sentence
from similarity.pairwise import BlankCropError, Finding, PairMatchError
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
from similarity.verifier import Method, PairScore, PairVerifier, PreparedCache
from vision.types import Match, Verdict

V = TypeVar("V")
log = logging.getLogger(__name__)

#: A match scored by the embedding's cosine (see the module docstring).
EMBEDDING: Method = "embedding"

__all__ = ["KINDS", "Comparison", "SpecimenMatch", "SpecimenMatcher", "SpecimenScore"]


@dataclass(frozen=True)
class SpecimenMatch:
    """A detected mark compared with one registered specimen.

    Attributes:
        match: the core match (detection index, specimen, owner, percent, threshold, verdict).
        kind: ``"stamp"`` or ``"signature"``.
        claimed: whether the request named this owner.
        method: ``"aligned"``, ``"shape"`` or ``"embedding"``: what produced the percentage.
        findings: what the detected mark shows by itself (direct comparison only; e.g. a stamp
            whose colour wanders like a photocopy's).
    """

    match: Match
    kind: str
    claimed: bool
    method: Method = EMBEDDING
    findings: tuple[Finding, ...] = ()


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
    """The answer to ``POST /v1/compare``: the score against the specimen or owner, and every
    specimen's own.

    Attributes:
        kind: mark kind compared.
        similarity: calibrated similarity in percent (two decimals): against the one specimen, or
            against the owner (its specimens combined when compared directly, module docstring;
            the best specimen's with the embedding).
        verdict: verdict at that similarity.
        threshold: decision threshold in percent.
        band: half-width of the inconclusive band, percentage points.
        specimen_id: the most similar specimen.
        owner: its owner.
        per_specimen: every specimen compared, best first.
        method: ``"aligned"``, ``"shape"`` or ``"embedding"``: what produced the percentages.
        findings: what the uploaded crop shows by itself (direct comparison only).
    """

    kind: str
    similarity: float
    verdict: Verdict
    threshold: float
    band: float
    specimen_id: str
    owner: str
    per_specimen: tuple[SpecimenScore, ...]
    method: Method = EMBEDDING
    findings: tuple[Finding, ...] = ()


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
        verifiers: mark kind -> direct verifier from the card; kinds without one are scored by
            the embedding.

    Every method may block on the database or the registry's lock: call from a worker thread.
    """

    def __init__(
        self,
        registry: SpecimenRegistry,
        scorers: Mapping[str, Scorer],
        *,
        top_k: int = 3,
        verifiers: Mapping[str, PairVerifier] | None = None,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.registry = registry
        self.scorers = dict(scorers)
        self.top_k = top_k
        self.verifiers = dict(verifiers or {})
        self._prepared = PreparedCache()
        # Keyed by kind and the owner's specimen ids: adding or deleting a specimen changes the key.
        self._consistency = PreparedCache(capacity=256)

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
        *,
        crops: Sequence[npt.NDArray[np.uint8]] | None = None,
    ) -> list[SpecimenMatch]:
        """Rank specimens for each detected mark.

        Args:
            marks: ``(detection index, kind)`` of each mark, in the order of ``embeddings``.
            embeddings: ``(len(marks), D)`` float32 unit rows.
            claimed: owners named by the request, in their order of importance.
            crops: the marks' pixels, in the same order, for the direct comparison (without
                them every mark is scored by the embedding).

        Returns:
            Matches grouped by mark in ``marks`` order; within a mark, claimed owners first, then
            the others best first.
        """
        if len(marks) != len(embeddings):
            raise ValueError(f"{len(marks)} marks but {len(embeddings)} embeddings")
        if crops is not None and len(crops) != len(marks):
            raise ValueError(f"{len(marks)} marks but {len(crops)} crops")

        def rank_all() -> list[SpecimenMatch]:
            out: list[SpecimenMatch] = []
            for j, ((index, kind), vector) in enumerate(zip(marks, embeddings, strict=True)):
                query = self._direct_query(kind, None if crops is None else crops[j])
                out += self._rank(index, kind, vector, claimed, query)
            return out

        return _translated(rank_all)

    def _rank(
        self,
        index: int,
        kind: str,
        vector: npt.NDArray[np.float32],
        claimed: Sequence[str],
        query: Any,
    ) -> list[SpecimenMatch]:
        self.scorer(kind)  # 503 before any search when the kind cannot be scored
        ranked: list[SpecimenMatch] = []
        seen: set[str] = set()
        for owner in claimed:
            try:
                best = self.registry.verify(vector, owner, kind)[0]
            except UnknownOwnerError:
                continue  # the owner has specimens of the other kind only
            ranked.append(self._owner_match(index, kind, owner, best.specimen_id, best.cosine, query, claimed=True))
            seen.add(owner)
        if len(ranked) < self.top_k:
            others: list[SpecimenMatch] = []
            for hit in self.registry.identify(vector, kind, top_k=self.top_k + len(seen)):
                if hit.owner in seen:
                    continue
                others.append(
                    self._owner_match(index, kind, hit.owner, hit.specimen_id, hit.cosine, query, claimed=False)
                )
                if len(ranked) + len(others) >= self.top_k:
                    break
            # The embedding picked these owners; their order is that of the scores shown.
            ranked += sorted(others, key=lambda m: -m.match.similarity)
        return ranked

    # ------------------------------------------------------------------------ direct verifiers

    def _direct_query(self, kind: str, crop: npt.NDArray[np.uint8] | None) -> Any:
        """The crop prepared for the direct comparison of its kind, or ``None`` when it is scored by
        the embedding (no verifier for the kind, no crop, or no ink in it)."""
        verifier = self.verifiers.get(kind)
        if verifier is None or crop is None:
            return None
        try:
            return verifier.prepare(crop)
        except PairMatchError as e:
            log.info("%s crop cannot be compared directly (%s); scored by the embedding", kind, e)
            return None

    def _prepared_specimens(self, owner: str, kind: str) -> list[tuple[str, Any]]:
        """The owner's specimens of ``kind`` prepared for the direct comparison (cached by id);
        specimens without ink are skipped."""
        out = []
        for info in self.registry.specimens(owner=owner, kind=kind):
            try:
                prepared = self._prepare_specimen(info.id, kind)
            except PairMatchError as e:
                log.warning("%s specimen %s of %s cannot be compared (%s); skipped", kind, info.id, owner, e)
                continue
            out.append((info.id, prepared))
        return out

    def _prepare_specimen(self, specimen_id: str, kind: str) -> Any:
        """One registered specimen prepared for its kind's direct comparison (cached by id).

        Raises:
            PairMatchError: no ink in it.
        """
        verifier = self.verifiers[kind]
        return self._prepared.get(specimen_id, functools.partial(self.registry.image, specimen_id), verifier.prepare)

    def _direct_score(self, kind: str, query: Any, specimens: Sequence[tuple[str, Any]]) -> PairScore:
        """The query against one owner's prepared specimens (or one specimen), the owner's
        specimen consistency taken from the cache."""
        verifier = self.verifiers[kind]
        consistency = None
        if verifier.owner_normalisation is not None and len(specimens) > 1:
            key = "|".join([kind, *sorted(sid for sid, _ in specimens)])
            prepared = [p for _, p in specimens]
            consistency = self._consistency.get(key, lambda: prepared, verifier.consistency)
        return verifier.score(query, [p for _, p in specimens], consistency=consistency)

    def _owner_match(
        self,
        index: int,
        kind: str,
        owner: str,
        specimen_id: str,
        cosine: float,
        query: Any,
        *,
        claimed: bool,
    ) -> SpecimenMatch:
        """One owner's match: direct when the query could be prepared and the owner has usable
        specimens of the kind, else the embedding's score of its best specimen."""
        if query is not None:
            specimens = self._prepared_specimens(owner, kind)
            if specimens:
                verifier = self.verifiers[kind]
                result = self._direct_score(kind, query, specimens)
                match = Match(
                    detection=index,
                    specimen_id=specimens[result.specimen_index][0],
                    owner=owner,
                    similarity=result.percent,
                    threshold=verifier.threshold,
                    verdict=result.verdict,
                )
                return SpecimenMatch(match, kind, claimed=claimed, method=verifier.method, findings=result.findings)
        match = self.scorer(kind).match(cosine, detection=index, specimen_id=specimen_id, owner=owner)
        return SpecimenMatch(match, kind, claimed=claimed, method=EMBEDDING)

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
        self,
        vector: npt.NDArray[np.float32],
        kind: str,
        *,
        specimen_id: str | None = None,
        owner: str | None = None,
        crop: npt.NDArray[np.uint8] | None = None,
    ) -> Comparison:
        """Score an uploaded crop against one specimen, or against every specimen of one owner.

        Exactly one of ``specimen_id`` and ``owner`` must be given. ``crop`` (the uploaded pixels)
        lets the mark be scored by its kind's direct comparison (module docstring).
        """
        if (specimen_id is None) == (owner is None):
            raise InvalidRequestError("Give exactly one of 'specimen_id' and 'owner'.")
        self.check_target(kind, specimen_id=specimen_id, owner=owner)
        query = self._direct_query(kind, crop)
        if query is not None:
            comparison = _translated(lambda: self._compare_direct(query, kind, specimen_id, owner))
            if comparison is not None:
                return comparison
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

    def _compare_direct(self, query: Any, kind: str, specimen_id: str | None, owner: str | None) -> Comparison | None:
        """The direct comparison, or ``None`` when no specimen can be compared."""
        verifier = self.verifiers[kind]
        if specimen_id is not None:
            info = self.get(specimen_id)
            infos = {info.id: info}
            try:
                specimens = [(info.id, self._prepare_specimen(info.id, kind))]
            except PairMatchError:
                return None
        else:
            assert owner is not None
            infos = {i.id: i for i in self.registry.specimens(owner=owner, kind=kind)}
            specimens = self._prepared_specimens(owner, kind)
        if not specimens:
            return None
        result = self._direct_score(kind, query, specimens)
        scores = sorted(
            (
                SpecimenScore(
                    sid, infos[sid].owner, infos[sid].label, percent, verifier.verdict(percent, result.findings)
                )
                for (sid, _), percent in zip(specimens, result.specimen_percents, strict=True)
            ),
            key=lambda s: -s.similarity,
        )
        best_id = specimens[result.specimen_index][0]
        return Comparison(
            kind=kind,
            similarity=result.percent,
            verdict=result.verdict,
            threshold=verifier.threshold,
            band=verifier.band,
            specimen_id=best_id,
            owner=infos[best_id].owner,
            per_specimen=tuple(scores),
            method=verifier.method,
            findings=result.findings,
        )

    # ----------------------------------------------------------------------------- specimens

    def register(
        self, *, owner: str, kind: str, image: npt.NDArray[np.uint8], embedding: npt.NDArray[np.float32], label: str
    ) -> SpecimenInfo:
        """Store a specimen (commits at once).

        Raises:
            InvalidRequestError: a specimen in which no ink is found, while its kind is verified by
                a direct comparison (it could never be matched).
        """
        verifier = self.verifiers.get(kind)
        if verifier is not None:
            ink = "stamp ink" if kind == "stamp" else "ink"
            try:
                verifier.prepare(image)
            except BlankCropError as e:
                raise InvalidRequestError(
                    f"No {ink} was found in this image, so it cannot serve as a {kind} specimen ({e}).",
                    code="blank_specimen",
                ) from e
            except PairMatchError as e:
                raise InvalidRequestError(f"This image cannot serve as a {kind} specimen: {e}.") from e
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
        self._prepared.discard(specimen_id)
