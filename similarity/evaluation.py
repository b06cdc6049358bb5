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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from similarity.data import SpecimenItem
from similarity.scoring import Scorer, ScoringError, score_distribution, verification_metrics

__all__ = ["IMPOSTOR_CATEGORIES", "pair_scores", "reference_scores", "report", "skilled_by_forgery"]

IMPOSTOR_CATEGORIES = ("skilled", "hard", "random")


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
    if refs < 1:
        raise ScoringError(f"refs must be >= 1, got {refs}")
    emb = _check(items, embeddings)
    by_owner: dict[str, list[int]] = defaultdict(list)
    for i in sorted(range(len(items)), key=lambda i: (items[i].owner, Path(items[i].source).name, items[i].source)):
        by_owner[items[i].owner].append(i)
    ref_rows: dict[str, list[int]] = {}
    queries: list[tuple[int, str]] = []  # (item index, owner of the item)
    for owner, idx in by_owner.items():
        gen = [i for i in idx if items[i].genuine]
        if len(gen) < refs:
            continue
        ref_rows[owner] = gen[:refs]
        queries.extend((i, owner) for i in gen[refs:])
        queries.extend((i, owner) for i in idx if not items[i].genuine)
    if not ref_rows:
        raise ScoringError(f"no owner has {refs} genuine images to register as references")

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
