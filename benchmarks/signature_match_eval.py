"""Signature verification: shape descriptors (:mod:`similarity.signature_match`) vs the shipped CNN.

Data: the real cross-media signatures (``$CV_SIGNATURES_DIR`` or ``../shared/datasets/
signatures-crossmedia``; 111 writers x 10 names, genuine only) and the similarity training's
synthetic writers (``SIM-W-*`` with skilled forgeries, rendered or read from ``--synthetic``, as
``customs-vision train similarity`` caches them). Writers are split exactly as the embedding's
training split them (``similarity-split-v1``, held out below 0.2): pairs of training writers fit
the logistic weights (``--fit``), pairs of held-out writers measure.

Pairs, within one data set:

* genuine: every two images of one owner (a real owner = a writer x a name: its paper and tablet
  signatures; a synthetic owner = a writer: its genuine renders);
* hard (real only): the same name signed by two different writers;
* random: two owners of different names (as many pairs as hard ones, seeded draw);
* skilled (synthetic only): each forgery against the writer's first two genuine renders.

Methods: ``signature_match`` (the logistic combination, weights fitted on the training writers with
``--fit``, else :data:`~similarity.signature_match.DEFAULT_WEIGHTS`), ``cnn`` (cosine of
:class:`similarity.embedder.Embedder` on ONNX Runtime, ``--card``), and each distance alone. Metrics:
:func:`similarity.scoring.verification_metrics` (EER, ROC AUC, FAR at 1 % FRR) per data set and
impostor kind. Also the time of one ``prepare`` and one ``compare``.

Scan conditions (``--conditions``): every held-out *questioned* crop is degraded the way a scan or a
detector crop may differ from the registered specimen (:data:`CONDITIONS`: lower resolution, JPEG,
noise, dim paper, binarisation, a wider box, rotation), the specimens are left as they are, and the
same pairs are scored again with the fitted weights: EER per data set and impostor kind, and the
median score of genuine pairs.

Run: ``python -m benchmarks.signature_match_eval --fit --out benchmarks/results/signature_match.json``
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.common import machine_description
from benchmarks.scan_conditions import CONDITIONS
from similarity.data import SpecimenItem, load_signature_dataset, render_specimen_items, split_items
from similarity.scoring import verification_metrics
from similarity.signature_match import FEATURE_NAMES, SignatureMatcher, fit_weights

__all__ = ["build_pairs", "get_args_parser", "main"]

Pair = tuple[int, int, str]  # (query index, reference index, category)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--signatures", type=Path, default=None, help="real signature folder (default: the shared one)")
    p.add_argument(
        "--synthetic",
        type=Path,
        default=Path("runs/similarity/cache/signature-300x4+3-s0"),
        help="render cache of the synthetic writers (rendered there if missing)",
    )
    p.add_argument("--writers", type=int, default=300, help="synthetic writers SIM-W-00000.. (default 300)")
    p.add_argument("--card", type=Path, default=Path("models/similarity.json"), help="embedding card for the CNN")
    p.add_argument("--fit", action="store_true", help="fit the weights on the training writers' pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-pair draw")
    p.add_argument("--conditions", action="store_true", help="also score degraded questioned crops (CONDITIONS)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    return p


def _brief(scores: npt.NDArray[np.float64], pairs: Sequence[Pair], items: Sequence[SpecimenItem]) -> dict[str, Any]:
    """EER per data set and impostor kind, and the median score of the genuine pairs."""
    full = _metrics(scores, pairs, items)
    cat = np.array([c for _, _, c in pairs])
    ds = np.array([items[q].dataset for q, _, _ in pairs])
    return {
        dataset: {c: round(m["eer"], 4) for c, m in block.items()}
        | {"genuine_median_score": round(float(np.median(scores[(ds == dataset) & (cat == "genuine")])), 3)}
        for dataset, block in full.items()
    }


def build_pairs(items: Sequence[SpecimenItem], seed: int) -> list[Pair]:
    """The pairs of the module docstring over ``items`` (indices into it)."""
    rng = np.random.default_rng(seed)
    by_owner: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_owner.setdefault(it.owner, []).append(i)
    pairs: list[Pair] = []
    genuine = {o: [i for i in idx if items[i].genuine] for o, idx in by_owner.items()}
    for owner, idx in sorted(by_owner.items()):
        pairs += [(a, b, "genuine") for a, b in itertools.combinations(genuine[owner], 2)]
        pairs += [(f, g, "skilled") for f in idx if not items[f].genuine for g in genuine[owner][:2]]
    owners = sorted(o for o in genuine if genuine[o])
    by_group: dict[tuple[str, str], list[str]] = {}
    for o in owners:
        first = items[genuine[o][0]]
        by_group.setdefault((first.dataset, first.group), []).append(o)
    n_hard = 0
    for (dataset, _), group in sorted(by_group.items()):
        if dataset == "synthetic":
            continue  # a synthetic writer's group holds its own forgeries only
        for a, b in itertools.combinations(group, 2):
            pairs.append((genuine[a][0], genuine[b][-1], "hard"))
            n_hard += 1
    for _ in range(max(n_hard, 20 * len(owners)) if len(owners) >= 2 else 0):
        a, b = (owners[int(k)] for k in rng.choice(len(owners), size=2, replace=False))
        ia, ib = items[genuine[a][0]], items[genuine[b][-1]]
        if ia.group != ib.group and ia.dataset == ib.dataset:
            pairs.append((genuine[a][0], genuine[b][-1], "random"))
    return pairs


def _metrics(scores: npt.NDArray[np.float64], pairs: Sequence[Pair], items: Sequence[SpecimenItem]) -> dict[str, Any]:
    cat = np.array([c for _, _, c in pairs])
    ds = np.array([items[q].dataset for q, _, _ in pairs])
    out: dict[str, Any] = {}
    for dataset in sorted(set(ds.tolist())):
        g = scores[(ds == dataset) & (cat == "genuine")]
        block = {}
        for c in ("hard", "random", "skilled"):
            imp = scores[(ds == dataset) & (cat == c)]
            if g.size and imp.size:
                block[c] = verification_metrics(g, imp).to_dict()
        out[dataset] = block
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    cv2.setNumThreads(1)
    start = time.perf_counter()
    real = load_signature_dataset(args.signatures)
    synthetic = render_specimen_items(
        "signature",
        [f"SIM-W-{i:05d}" for i in range(args.writers)],
        per_owner=4,
        forgeries=3,
        seed=0,
        cache_dir=args.synthetic,
    )
    train, held = split_items(real + synthetic, 0.2)
    matcher = SignatureMatcher()

    def described(subset: Sequence[SpecimenItem]) -> list[Any]:
        return [matcher.prepare(it.image()) for it in subset]

    t0 = time.perf_counter()
    d_train, d_held = described(train), described(held)
    prepare_ms = (time.perf_counter() - t0) / (len(train) + len(held)) * 1000.0
    p_train, p_held = build_pairs(train, args.seed), build_pairs(held, args.seed + 1)

    def dist(desc: list[Any], pairs: Sequence[Pair]) -> npt.NDArray[np.float64]:
        # The distances the matcher scores: as written, or with the questioned signature turned onto
        # the specimen's axis when that scores higher under the current weights (module step 5).
        return np.array([matcher.compare(desc[q], desc[r]).vector() for q, r, _ in pairs])

    x_train, x_held = dist(d_train, p_train), dist(d_held, p_held)
    report: dict[str, Any] = {"command": "python -m benchmarks.signature_match_eval" + (" --fit" if args.fit else "")}
    if args.fit:
        weights = fit_weights(x_train, [c == "genuine" for _, _, c in p_train])
        matcher = SignatureMatcher(weights=weights)
        report["fitted_weights"] = weights
    t0 = time.perf_counter()
    scores = np.array([matcher.compare(d_held[q], d_held[r]).similarity for q, r, _ in p_held])
    compare_ms = (time.perf_counter() - t0) / max(1, len(p_held)) * 1000.0

    conditions: dict[str, Any] = {}
    if args.conditions:
        for name, degrade in CONDITIONS.items():
            queries: dict[int, Any] = {}

            def query(i: int, degrade: Any = degrade, queries: dict[int, Any] = queries) -> Any:
                if i not in queries:
                    queries[i] = matcher.prepare(degrade(held[i].image()))
                return queries[i]

            s_cond = np.array([matcher.compare(query(q), d_held[r]).similarity for q, r, _ in p_held])
            conditions[name] = _brief(s_cond, p_held, held)

    from similarity.embedder import Embedder

    embedder, card = Embedder.from_card(args.card, threads=1)
    vectors = embedder.embed([it.image() for it in held])
    cosine = np.array([float(vectors[q] @ vectors[r]) for q, r, _ in p_held])
    counts: dict[str, dict[str, int]] = {}
    for q, _, c in p_held:
        block = counts.setdefault(held[q].dataset, {})
        block[c] = block.get(c, 0) + 1
    report |= {
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "heldout_writers": len({it.split_key for it in held}),
        "training_writers": len({it.split_key for it in train}),
        "pairs": counts,
        "signature_match": _metrics(scores, p_held, held),
        "cnn": {"model": f"{card.name}@{card.version}", **_metrics(cosine, p_held, held)},
        "single_distance": {
            name: _metrics(-x_held[:, k], p_held, held) for k, name in enumerate(FEATURE_NAMES) if k < 4
        },
        **({"scan_conditions": {"as scanned": _brief(scores, p_held, held)} | conditions} if conditions else {}),
        "timing_ms": {"prepare": round(prepare_ms, 2), "compare": round(compare_ms, 4)},
        "seconds": round(time.perf_counter() - start, 1),
        "machine": machine_description(),
    }
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
