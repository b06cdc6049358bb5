"""Held-out evaluation of the similarity model: which pairs are compared, and the report.

Two protocols, both on embeddings already computed (one row per item):

* :func:`pair_scores` - every pair of held-out items, by category. This is what training reports
  and calibrates on: each genuine pair is one comparison of a questioned crop with one specimen.
* :func:`reference_scores` - the agency's protocol (``customs-vision evaluate similarity``): per
  owner, the first K genuine images sorted by file name are the registered specimens, the other
  images are questioned crops, and a query's score for an owner is its *highest* cosine over that
  owner's specimens (as :meth:`similarity.registry.SpecimenRegistry.verify` reports it).

Impostor categories:

``skilled``  forgeries of the owner (synthetic: altered text, re-drawn, photocopied, imitated).
``hard``     another owner of the same group: for the real signatures, the same name written by
             another writer (unskilled simulation).
``random``   another owner of another group: someone else's own stamp or signature.

A third protocol serves the direct comparisons (:mod:`similarity.verifier`: stamps aligned at
~50 ms per (query, specimen), signatures by shape), which are not scored for every query against
every owner:

* :func:`owner_pairs` - per owner the first K genuine images are the registered specimens, the
  other genuine images are genuine queries, every forged image is a skilled query, the genuine
  queries of a deterministic sample of :data:`RANDOM_OWNERS` owners of the same group are its hard
  impostors and those of as many owners of other groups its random impostors (each pair is scored
  1:1 against the *claimed* owner only, as the service verifies a named owner).
  :func:`direct_pair_scores` and :func:`cosine_pair_scores` score these pairs,
  :func:`owner_pairs_metrics` summarises them (skilled overall and per forgery kind, hard, random).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from similarity.data import SpecimenItem, heldout_fraction_of
from similarity.pairwise import BlankCropError, PairMatcher
from similarity.scoring import (
    Scorer,
    ScoringError,
    reliability,
    score_distribution,
    verification_metrics,
)
from similarity.verifier import PairVerifier, similarity_logit, specimen_consistency

__all__ = [
    "IMPOSTOR_CATEGORIES",
    "RANDOM_OWNERS",
    "DirectPairScores",
    "OwnerPair",
    "OwnerProtocol",
    "cosine_pair_scores",
    "direct_calibration_check",
    "direct_pair_scores",
    "direct_report",
    "forgery_kind_of",
    "owner_pairs",
    "owner_pairs_metrics",
    "pair_scores",
    "pool_impostors",
    "pooled_impostors",
    "reference_scores",
    "report",
    "skilled_by_forgery",
]

IMPOSTOR_CATEGORIES = ("skilled", "hard", "random")

#: Other owners whose genuine queries are each owner's random impostors in :func:`owner_pairs`.
RANDOM_OWNERS = 5

#: A forged file's stem: ``05-altered_text`` (the similarity training's render cache) or
#: ``004_altered_text`` (``customs-vision synth specimens``).
_FORGED_STEM = re.compile(r"\d+[-_]([a-z][a-z_]*)")


def pair_scores(
    items: Sequence[SpecimenItem],
    embeddings: npt.NDArray[np.float32],
    *,
    max_pairs: int = 50_000,
    seed: int = 0,
) -> dict[str, npt.NDArray[np.float64]]:
    """Cosines of held-out pairs by category (impostor pairs only within one data set).

    Args:
        items: N items.
        embeddings: ``(N, D)`` unit rows, row i embedding item i.
        max_pairs: cap per category; larger sets are subsampled uniformly (seeded).
        seed: subsampling seed.

    Returns:
        ``{"genuine": ..., "skilled": ..., "hard": ..., "random": ...}``, float64 cosines; a
        category without pairs is an empty array.
    """
    emb = _check(items, embeddings)
    sims = emb @ emb.T
    owner = np.array([it.owner for it in items])
    group = np.array([it.group for it in items])
    genuine = np.array([it.genuine for it in items])
    dataset = np.array([it.dataset for it in items])
    iu, ju = np.triu_indices(len(items), k=1)
    same_owner = owner[iu] == owner[ju]
    both_genuine = genuine[iu] & genuine[ju]
    one_forged = genuine[iu] != genuine[ju]
    same_group = group[iu] == group[ju]
    # A real signature against a synthetic one is a trivially easy "random" pair; never mix sets.
    same_set = dataset[iu] == dataset[ju]
    masks = {
        "genuine": same_owner & both_genuine,
        "skilled": same_owner & one_forged,
        "hard": ~same_owner & same_group & both_genuine & same_set,
        "random": ~same_owner & ~same_group & both_genuine & same_set,
    }
    rng = np.random.default_rng(seed)
    out = {}
    for name, mask in masks.items():
        pick = np.flatnonzero(mask)
        if pick.size > max_pairs:
            pick = np.sort(rng.choice(pick, size=max_pairs, replace=False))
        out[name] = sims[iu[pick], ju[pick]].astype(np.float64)
    return out


def skilled_by_forgery(items: Sequence[SpecimenItem], embeddings: npt.NDArray[np.float32]) -> dict[str, Any]:
    """Skilled-forgery metrics per forgery kind (:attr:`SpecimenItem.forgery`): each owner's
    genuine pairs against the pairs of a genuine item and a forgery of that kind of the same owner.

    Reported apart because the kinds differ in what a crop comparison can see: a re-carved stamp
    changes the mark's shape, a colour photocopy of a genuine impression does not (only its ink
    texture changes), so one pooled EER hides which kinds are caught. Forgeries of unknown kind
    (``""``) are left out.

    Returns:
        ``{kind: VerificationMetrics.to_dict()}`` for every kind with pairs, sorted by kind.
    """
    emb = _check(items, embeddings)
    out: dict[str, Any] = {}
    for kind in sorted({it.forgery for it in items if not it.genuine and it.forgery}):
        rows = [i for i, it in enumerate(items) if it.genuine or it.forgery == kind]
        scores = pair_scores([items[i] for i in rows], emb[rows])
        if scores["genuine"].size and scores["skilled"].size:
            out[kind] = verification_metrics(scores["genuine"], scores["skilled"]).to_dict()
    return out


def _split_references(
    items: Sequence[SpecimenItem], refs: int
) -> tuple[dict[str, list[int]], dict[str, list[int]], dict[str, list[int]]]:
    """The reference protocol's split, per owner in sorted order: the first ``refs`` genuine items
    (by file name) are the registered references, the other genuine items and every forgery are
    queries. Owners with fewer than ``refs`` genuine items are left out.

    Returns:
        ``(references, genuine queries, forgeries)``, each owner -> item indices.

    Raises:
        ScoringError: ``refs < 1`` or no owner has ``refs`` genuine items.
    """
    if refs < 1:
        raise ScoringError(f"refs must be >= 1, got {refs}")
    by_owner: dict[str, list[int]] = defaultdict(list)
    for i in sorted(range(len(items)), key=lambda i: (items[i].owner, Path(items[i].source).name, items[i].source)):
        by_owner[items[i].owner].append(i)
    references: dict[str, list[int]] = {}
    genuine_queries: dict[str, list[int]] = {}
    forged: dict[str, list[int]] = {}
    for owner in sorted(by_owner):
        idx = by_owner[owner]
        gen = [i for i in idx if items[i].genuine]
        if len(gen) < refs:
            continue
        references[owner] = gen[:refs]
        genuine_queries[owner] = gen[refs:]
        forged[owner] = [i for i in idx if not items[i].genuine]
    if not references:
        raise ScoringError(f"no owner has {refs} genuine images to register as references")
    return references, genuine_queries, forged


def reference_scores(
    items: Sequence[SpecimenItem],
    embeddings: npt.NDArray[np.float32],
    *,
    refs: int = 1,
) -> dict[str, npt.NDArray[np.float64]]:
    """Scores under the reference protocol (module docstring).

    Owners with no genuine image left as a query still take part as references (their forgeries
    are queries). Items are ordered by ``source`` within each owner, so "first K" means first K
    file names.

    Returns:
        ``{"genuine", "skilled", "hard", "random"}`` → float64 scores (max cosine over refs).

    Raises:
        ScoringError: ``refs < 1`` or no owner has K genuine images.
    """
    emb = _check(items, embeddings)
    ref_rows, genuine_queries, forged = _split_references(items, refs)
    queries: list[tuple[int, str]] = []  # (item index, owner of the item)
    for owner in ref_rows:
        queries.extend((i, owner) for i in genuine_queries[owner])
        queries.extend((i, owner) for i in forged[owner])

    ref_owners = sorted(ref_rows)
    empty = np.zeros(0, dtype=np.float64)
    if not queries:
        return {c: empty for c in ("genuine", *IMPOSTOR_CATEGORIES)}
    # (Q, O): best cosine of each query over each owner's references.
    q_idx = np.array([i for i, _ in queries], dtype=np.int64)
    best = np.stack([(emb[q_idx] @ emb[ref_rows[o]].T).max(axis=1) for o in ref_owners], axis=1).astype(np.float64)
    col_of = {o: c for c, o in enumerate(ref_owners)}
    same = np.arange(len(ref_owners))[None, :] == np.array([col_of[o] for _, o in queries])[:, None]
    q_genuine = np.array([items[i].genuine for i in q_idx])[:, None]
    same_group = (
        np.array([items[ref_rows[o][0]].group for o in ref_owners])[None, :]
        == np.array([items[i].group for i in q_idx])[:, None]
    )
    return {
        "genuine": best[same & q_genuine],
        "skilled": best[same & ~q_genuine],
        "hard": best[~same & q_genuine & same_group],
        "random": best[~same & q_genuine & ~same_group],
    }


def report(scores: Mapping[str, npt.NDArray[np.float64]], scorer: Scorer | None = None) -> dict[str, Any]:
    """The JSON report of one kind: per impostor category EER, ROC AUC and FAR at 1 % FRR
    (genuine versus that category), plus score distributions.

    Args:
        scores: output of :func:`pair_scores` or :func:`reference_scores`.
        scorer: when given, distributions are also reported as calibrated percentages, and the
            verdict counts per category at the scorer's threshold.

    Returns:
        JSON-ready dict.
    """
    genuine = scores.get("genuine", np.zeros(0))
    out: dict[str, Any] = {"pairs": {k: int(np.size(v)) for k, v in scores.items()}, "metrics": {}}
    for category in IMPOSTOR_CATEGORIES:
        impostor = scores.get(category, np.zeros(0))
        if genuine.size and impostor.size:
            out["metrics"][category] = verification_metrics(genuine, impostor).to_dict()
    out["cosine_distributions"] = {k: score_distribution(v, lo=-1.0, hi=1.0) for k, v in scores.items() if np.size(v)}
    if scorer is not None:
        out["percent_distributions"] = {
            k: score_distribution(scorer.calibration.percent(v)) for k, v in scores.items() if np.size(v)
        }
        out["verdicts"] = {k: _verdicts(scorer, v) for k, v in scores.items() if np.size(v)}
        out["decision"] = scorer.policy.to_dict()
    return out


def _verdicts(scorer: Scorer, cosines: npt.NDArray[np.float64]) -> dict[str, int]:
    counts = {"genuine": 0, "inconclusive": 0, "forged": 0}
    for pct in scorer.calibration.percent(cosines).tolist():
        counts[scorer.policy.verdict(pct)] += 1
    return counts


def _check(items: Sequence[SpecimenItem], embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(items):
        raise ScoringError(f"need one embedding row per item: {len(items)} items, embeddings {emb.shape}")
    return emb


# ------------------------------------------------------------------------- 1:1 protocol (aligned)


def forgery_kind_of(path: str | Path) -> str:
    """The forgery kind in a forged file's name (``05-photocopy.png`` or ``004_photocopy.png`` →
    ``"photocopy"``); ``""`` when the name does not say (an archive's own naming)."""
    match = _FORGED_STEM.fullmatch(Path(path).stem)
    return match.group(1) if match else ""


@dataclass(frozen=True)
class OwnerPair:
    """One questioned image presented as one owner's mark.

    Attributes:
        query: index of the questioned item.
        owner: the claimed owner.
        category: ``"genuine"`` (the owner's own), ``"skilled"`` (a forgery of the owner),
            ``"hard"`` (the genuine mark of another owner of the same group: the same name signed
            by another writer) or ``"random"`` (another owner's genuine mark, of another group).
        forgery: for skilled pairs the forgery kind (:attr:`SpecimenItem.forgery`, else read from
            the file name by :func:`forgery_kind_of`); ``""`` otherwise or when unknown.
        dataset: the data set of the owner and the query (:attr:`SpecimenItem.dataset`).
    """

    query: int
    owner: str
    category: str
    forgery: str = ""
    dataset: str = ""


@dataclass(frozen=True)
class OwnerProtocol:
    """The pairs of :func:`owner_pairs`.

    Attributes:
        references: owner → item indices of its registered specimens (first K genuine by name).
        pairs: every (query, claimed owner) pair, grouped by claimed owner in sorted owner order.
    """

    references: dict[str, list[int]]
    pairs: list[OwnerPair]

    def categories(self) -> npt.NDArray[np.str_]:
        """``(P,)`` category of each pair."""
        return np.array([p.category for p in self.pairs], dtype=str)

    def counts(self, valid: npt.NDArray[np.bool_] | None = None) -> dict[str, int]:
        """Pairs per category (only those where ``valid`` is true, when given)."""
        cat = self.categories()
        keep = np.ones(cat.size, dtype=bool) if valid is None else valid
        return {c: int(((cat == c) & keep).sum()) for c in ("genuine", *IMPOSTOR_CATEGORIES)}


def owner_pairs(
    items: Sequence[SpecimenItem], *, refs: int, random_owners: int = RANDOM_OWNERS, seed: int = 0
) -> OwnerProtocol:
    """The 1:1 protocol of the module docstring.

    Owners with fewer than ``refs`` genuine images take no part. An owner with exactly ``refs``
    still has its forgeries questioned; it supplies no genuine, hard or random queries. The random
    owners of each owner are drawn (without replacement) from the owners of other groups (of the
    same data set) that have genuine queries, then its hard owners from those of its own group,
    by one generator seeded
    with ``seed`` walking the owners in sorted order, so the same folder and seed always give the
    same pairs. A folder's owners each form their own group (no hard pairs); the real signatures'
    groups are the names signed.

    Args:
        items: the specimens (e.g. :func:`similarity.data.load_specimen_folder`).
        refs: registered specimens per owner, K >= 1.
        random_owners: owners of other groups whose genuine queries are random impostors of each
            owner; as many owners of its own group give its hard impostors.
        seed: seed of the draws.

    Raises:
        ScoringError: ``refs < 1``, ``random_owners < 0``, or no owner has ``refs`` genuine images.
    """
    if random_owners < 0:
        raise ScoringError(f"random_owners must be >= 0, got {random_owners}")
    references, genuine_queries, forged = _split_references(items, refs)
    group = {o: items[refs_[0]].group for o, refs_ in references.items()}
    dataset = {o: items[refs_[0]].dataset for o, refs_ in references.items()}
    with_queries = [o for o in references if genuine_queries[o]]
    rng = np.random.default_rng(seed)
    pairs: list[OwnerPair] = []
    for owner in references:
        ds = dataset[owner]
        pairs += [OwnerPair(i, owner, "genuine", dataset=ds) for i in genuine_queries[owner]]
        pairs += [
            OwnerPair(i, owner, "skilled", items[i].forgery or forgery_kind_of(items[i].source), ds)
            for i in forged[owner]
        ]
        peers = [o for o in with_queries if o != owner and dataset[o] == dataset[owner]]
        for category, others in (
            ("random", [o for o in peers if group[o] != group[owner]]),
            ("hard", [o for o in peers if group[o] == group[owner]]),
        ):
            if others and random_owners:
                pick = rng.choice(len(others), size=min(random_owners, len(others)), replace=False)
                for j in sorted(int(k) for k in pick):
                    pairs += [OwnerPair(i, owner, category, dataset=ds) for i in genuine_queries[others[j]]]
    return OwnerProtocol(references=references, pairs=pairs)


def cosine_pair_scores(
    protocol: OwnerProtocol, embeddings: Mapping[int, npt.NDArray[np.float32]]
) -> npt.NDArray[np.float64]:
    """Each pair's highest cosine over its claimed owner's references.

    Args:
        protocol: from :func:`owner_pairs`.
        embeddings: item index → ``(D,)`` unit embedding, for every query and reference.

    Returns:
        ``(P,)`` float64 cosines in pair order.
    """
    out = np.empty(len(protocol.pairs), dtype=np.float64)
    for n, pair in enumerate(protocol.pairs):
        refs = np.stack([embeddings[r] for r in protocol.references[pair.owner]])
        out[n] = float((refs @ embeddings[pair.query]).max())
    return out


@dataclass
class DirectPairScores:
    """Direct-comparison scores of the pairs of one :class:`OwnerProtocol`.

    Attributes:
        similarity: ``(P,)`` float64: the score of each pair, combined over the claimed owner's
            references: the best reference's as measured (:func:`direct_pair_scores`), or as a
            verifier combines them (:meth:`combined`); NaN for a pair that could not be compared
            (blank query, or every reference of the owner blank).
        reference_similarity: per pair, the combined similarity with each usable reference of the
            owner (empty for an unscored pair).
        consistency: per owner with two or more usable references, the mean logit of its
            references compared with each other (:func:`similarity.verifier.specimen_consistency`).
        blank_items: item indices whose crop holds no ink (:class:`BlankCropError`).
        compare_seconds: wall time of each ``matcher.compare`` call.
        seconds: wall time of the whole scoring.
    """

    similarity: npt.NDArray[np.float64]
    reference_similarity: list[tuple[float, ...]] = field(default_factory=list)
    consistency: dict[str, float] = field(default_factory=dict)
    blank_items: set[int] = field(default_factory=set)
    compare_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def combined(
        self, protocol: OwnerProtocol, combine: Callable[[Sequence[float], float | None], float]
    ) -> DirectPairScores:
        """The same pairs with each pair's references combined by ``combine(similarities,
        consistency)`` (:meth:`PairVerifier.combine`, :meth:`OwnerNormalisation.combine`)."""
        if len(self.reference_similarity) != len(protocol.pairs):
            raise ValueError("these scores keep no per-reference similarities to combine")
        out = np.full(len(protocol.pairs), np.nan)
        for n, (pair, sims) in enumerate(zip(protocol.pairs, self.reference_similarity, strict=True)):
            if sims:
                out[n] = combine(sims, self.consistency.get(pair.owner))
        return replace(self, similarity=out)

    def genuine_reference_similarity(self, protocol: OwnerProtocol) -> npt.NDArray[np.float64]:
        """Every per-reference similarity of the genuine pairs (what a typical owner's specimens
        score against each other)."""
        cat = protocol.categories()
        vals = [s for n, sims in enumerate(self.reference_similarity) if cat[n] == "genuine" for s in sims]
        return np.asarray(vals, dtype=np.float64)

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """``(P,)`` whether each pair was scored."""
        return np.isfinite(self.similarity)

    def timing(self) -> dict[str, Any]:
        """JSON-ready timing summary (milliseconds per comparison, total seconds)."""
        ms = np.array(self.compare_seconds) * 1000.0
        out: dict[str, Any] = {"seconds": round(self.seconds, 1), "comparisons": int(ms.size)}
        if ms.size:
            out["compare_ms"] = {
                "mean": round(float(ms.mean()), 2),
                "p50": round(float(np.percentile(ms, 50)), 2),
                "p95": round(float(np.percentile(ms, 95)), 2),
            }
        return out


def direct_pair_scores(
    protocol: OwnerProtocol,
    image: Callable[[int], npt.NDArray[np.uint8]],
    matcher: PairMatcher,
    *,
    progress: Callable[[str], None] | None = None,
    every: int = 100,
) -> DirectPairScores:
    """Score every pair with a direct comparison with each reference of the claimed owner
    (``similarity``: the best reference's; :meth:`DirectPairScores.combined` combines them as a
    verifier does), and measure each owner's reference consistency.

    Runs serially (one stamp comparison ~50 ms on one core). Each owner's references are prepared
    once; query crops are prepared when their pair comes up (an impostor's crop is prepared again
    for each owner it is shown to: a few ms, and memory stays at one owner's worth of data).

    Args:
        protocol: from :func:`owner_pairs`.
        image: item index → ``(H, W, 3)`` uint8 RGB crop at scan resolution.
        matcher: the comparison (:func:`similarity.verifier.default_matcher`; its weights give the
            combined similarity).
        progress: called with a one-line status every ``every`` pairs and at the end.
        every: pairs between progress lines.

    Raises:
        PairMatchError: a crop that is not an RGB uint8 image (blank crops are recorded, not raised).
    """
    out = DirectPairScores(
        similarity=np.full(len(protocol.pairs), np.nan), reference_similarity=[()] * len(protocol.pairs)
    )
    start = time.perf_counter()

    def prepare(i: int) -> Any:
        if i in out.blank_items:
            return None
        try:
            return matcher.prepare(image(i))
        except BlankCropError:
            out.blank_items.add(i)
            return None

    owner: str | None = None
    refs: list[Any] = []
    for n, pair in enumerate(protocol.pairs):
        if pair.owner != owner:
            owner = pair.owner
            refs = [p for p in (prepare(r) for r in protocol.references[owner]) if p is not None]
            consistency = specimen_consistency(matcher, refs)
            if consistency is not None:
                out.consistency[owner] = consistency
        query = prepare(pair.query) if refs else None
        if query is not None:
            sims = []
            for ref in refs:
                t = time.perf_counter()
                sims.append(float(matcher.compare(query, ref).similarity))
                out.compare_seconds.append(time.perf_counter() - t)
            out.reference_similarity[n] = tuple(sims)
            out.similarity[n] = max(sims)
        if progress is not None and ((n + 1) % every == 0 or n + 1 == len(protocol.pairs)):
            elapsed = time.perf_counter() - start
            eta = elapsed / (n + 1) * (len(protocol.pairs) - n - 1)
            progress(f"direct comparison: {n + 1}/{len(protocol.pairs)} pairs, {elapsed:.0f} s, ~{eta:.0f} s left")
    out.seconds = time.perf_counter() - start
    return out


def owner_pairs_metrics(
    scores: npt.NDArray[np.float64], protocol: OwnerProtocol, valid: npt.NDArray[np.bool_] | None = None
) -> dict[str, Any]:
    """EER, ROC AUC and FAR at 1 % FRR of genuine pairs against skilled pairs (overall and per
    forgery kind), hard pairs and random pairs; only pairs where ``valid`` is true count.

    Returns:
        ``{"skilled": ..., "skilled_by_kind": {kind: ...}, "hard": ..., "random": ...}`` of
        :meth:`VerificationMetrics.to_dict`; a comparison without pairs on either side is left out.
    """
    s = np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(s) if valid is None else (valid & np.isfinite(s))
    cat = protocol.categories()
    kind = np.array([p.forgery for p in protocol.pairs], dtype=str)
    g = s[keep & (cat == "genuine")]
    out: dict[str, Any] = {}
    if g.size == 0:
        return out
    sk = s[keep & (cat == "skilled")]
    if sk.size:
        out["skilled"] = verification_metrics(g, sk).to_dict()
    by_kind = {}
    for k in sorted({p.forgery for p in protocol.pairs if p.category == "skilled" and p.forgery}):
        sel = s[keep & (cat == "skilled") & (kind == k)]
        if sel.size:
            by_kind[k] = verification_metrics(g, sel).to_dict()
    if by_kind:
        out["skilled_by_kind"] = by_kind
    for c in ("hard", "random"):
        imp = s[keep & (cat == c)]
        if imp.size:
            out[c] = verification_metrics(g, imp).to_dict()
    return out


def pool_impostors(groups: Sequence[npt.ArrayLike], seed: int = 0) -> npt.NDArray[np.float64]:
    """An equal mix of impostor categories: each non-empty group resampled (with replacement,
    seeded) to the size of the largest, then concatenated, so every category weighs the same in
    a calibration fitted on the pool (as the embedding's calibration in :mod:`similarity.training`).

    Raises:
        ScoringError: every group is empty.
    """
    rng = np.random.default_rng(seed)
    present = [np.asarray(g, dtype=np.float64).reshape(-1) for g in groups]
    present = [g for g in present if g.size]
    if not present:
        raise ScoringError("no impostor scores to pool")
    n = max(g.size for g in present)
    return np.concatenate([g if g.size == n else rng.choice(g, size=n, replace=True) for g in present])


#: What the direct block's scores are, for reports.
DIRECT_SCORE = "{module} combined similarity (0-1), best of the claimed owner's registered specimens"
_MODULES = {"stamp": "similarity.stamp_match", "signature": "similarity.signature_match"}
COSINE_SCORE = "cosine of the embeddings (similarity.embedder on ONNX Runtime), best of the same specimens"


def pooled_impostors(
    similarity: npt.NDArray[np.float64], categories: npt.NDArray[np.str_], mask: npt.NDArray[np.bool_], seed: int = 0
) -> npt.NDArray[np.float64]:
    """The impostor scores a direct verifier is calibrated on: every impostor category present
    among the ``mask``ed pairs (skilled, hard, random), pooled at equal weight (:func:`pool_impostors`).

    Raises:
        ScoringError: no impostor pair.
    """
    return pool_impostors([similarity[mask & (categories == c)] for c in IMPOSTOR_CATEGORIES], seed)


def direct_report(
    protocol: OwnerProtocol,
    scores: DirectPairScores,
    verifier: PairVerifier,
    cosine: npt.NDArray[np.float64] | None = None,
) -> dict[str, Any]:
    """The report of a direct comparison on the pairs of :func:`owner_pairs`.

    Only pairs the direct comparison could score count, for both methods, so the embedding's
    figures (``cosine``, when given) are measured on exactly the same pairs.

    Returns:
        JSON-ready dict: ``pairs`` (scored, per category), ``unscored_pairs``, ``blank_crops``,
        ``direct`` (``method``, ``metrics`` per :func:`owner_pairs_metrics`,
        ``percent_distributions`` and ``verdicts`` per category under ``verifier``, ``decision``),
        ``cnn`` (``metrics`` of the cosines), ``by_dataset`` (both metrics per data set, when the
        pairs come from more than one) and ``timing``.
    """
    valid = scores.valid
    cat = protocol.categories()
    percent = np.full(valid.size, np.nan)
    percent[valid] = verifier.scorer.calibration.percent(similarity_logit(scores.similarity[valid]))
    policy = verifier.scorer.policy
    distributions: dict[str, Any] = {}
    verdicts: dict[str, dict[str, int]] = {}
    for c in ("genuine", *IMPOSTOR_CATEGORIES):
        sel = percent[valid & (cat == c)]
        if sel.size:
            distributions[c] = score_distribution(sel)
            counts = {"genuine": 0, "inconclusive": 0, "forged": 0}
            for pct in sel.tolist():
                counts[policy.verdict(pct)] += 1
            verdicts[c] = counts
    out: dict[str, Any] = {
        "pairs": protocol.counts(valid),
        "unscored_pairs": protocol.counts(~valid),
        "blank_crops": len(scores.blank_items),
        "direct": {
            "method": verifier.method,
            "score": DIRECT_SCORE.format(module=_MODULES[verifier.kind]),
            "metrics": owner_pairs_metrics(scores.similarity, protocol, valid),
            "percent_distributions": distributions,
            "verdicts": verdicts,
            "decision": policy.to_dict(),
        },
    }
    if cosine is not None:
        out["cnn"] = {"score": COSINE_SCORE, "metrics": owner_pairs_metrics(cosine, protocol, valid)}
    datasets = sorted({p.dataset for p in protocol.pairs})
    if len(datasets) > 1:
        # Genuine pairs of different data sets differ (a real paper-vs-tablet pair is harder than
        # two renders of one synthetic writer): each impostor kind against its own data set's genuine.
        of = np.array([p.dataset for p in protocol.pairs], dtype=str)
        out["by_dataset"] = {
            d: {"pairs": protocol.counts(valid & (of == d))}
            | {"direct": owner_pairs_metrics(scores.similarity, protocol, valid & (of == d))}
            | ({} if cosine is None else {"cnn": owner_pairs_metrics(cosine, protocol, valid & (of == d))})
            for d in datasets
        }
    out["timing"] = scores.timing()
    return out


def direct_calibration_check(
    kind: str,
    protocol: OwnerProtocol,
    similarity: npt.NDArray[np.float64],
    *,
    band: float = 5.0,
    far: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A direct verifier's calibration measured on owners it was not fitted on.

    The owners are halved by a hash of their name; a calibration and threshold are fitted on the
    pairs claimed for one half (genuine against the impostor categories pooled at equal weight,
    :func:`pooled_impostors`, as ``customs-vision calibrate`` fits the card's) and measured on the
    other half: the reliability of the percentages (:func:`similarity.scoring.reliability`) and the
    error rates at the fitted threshold (FRR of genuine pairs, FAR of each impostor category; the
    band is ignored here). Then the halves swap.

    Returns:
        JSON-ready dict with ``protocol`` and ``fit_a_check_b`` / ``fit_b_check_a``, or ``skipped``
        with the reason when a half lacks genuine or impostor pairs.
    """
    s = np.asarray(similarity, dtype=np.float64)
    cat = protocol.categories()
    side = np.array([heldout_fraction_of(p.owner, "calibration-check") < 0.5 for p in protocol.pairs], dtype=bool)
    ok = np.isfinite(s)
    out: dict[str, Any] = {"protocol": "2-fold by owner: fit on one half of the owners, measure on the other"}
    try:
        for name, fit_side in (("fit_a_check_b", True), ("fit_b_check_a", False)):
            fit, check = ok & (side == fit_side), ok & (side != fit_side)
            verifier = PairVerifier.fit(
                kind, s[fit & (cat == "genuine")], pooled_impostors(s, cat, fit, seed), band=band, far=far
            )
            g = s[check & (cat == "genuine")]
            impostor = pooled_impostors(s, cat, check, seed)
            rates: dict[str, Any] = {"threshold": verifier.threshold, "frr": round(1.0 - _accepted(verifier, g), 4)}
            for c in IMPOSTOR_CATEGORIES:
                sel = s[check & (cat == c)]
                if sel.size:
                    rates[f"far_{c}"] = round(_accepted(verifier, sel), 4)
            calibration = verifier.scorer.calibration
            out[name] = {
                "reliability": reliability(calibration, similarity_logit(g), similarity_logit(impostor)),
                "at_threshold": rates,
            }
    except ScoringError as e:  # too few owners to halve
        out = {"protocol": out["protocol"], "skipped": str(e)}
    return out


def _accepted(verifier: PairVerifier, similarity: npt.NDArray[np.float64]) -> float:
    """Share of combined scores whose calibrated percent reaches the verifier's threshold."""
    percent = verifier.scorer.calibration.percent(similarity_logit(similarity))
    return float(np.mean(percent >= verifier.threshold))
