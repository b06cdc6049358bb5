"""Several registered specimens per owner: how to combine a query's comparisons with them.

An agency registers several specimens of a signatory or a seal. The direct comparison
(:mod:`similarity.stamp_match`, :mod:`similarity.signature_match`) scores the query against each;
this benchmark measures ways of turning those K scores into one owner-level score:

* ``best``: the most similar specimen (what the service did before);
* ``mean``: the mean logit over the specimens;
* ``owner_a<alpha>``: :class:`similarity.verifier.OwnerNormalisation`: the mean logit less
  ``alpha`` times the owner's *specimen consistency* (mean logit of its specimens compared with
  each other) above the typical consistency of all owners. A steady hand or a crisp die must be
  matched more closely than a loose one.

Owners: rendered authorities (``SIM-AUTH-*``) or synthetic writers (``SIM-W-*``) numbered from
``--first`` (default 5000): ids no model, weight fit or calibration of the project has seen (the
similarity training and the calibrations use ids below 1000). Per owner ``--genuine`` genuine and
``--forged`` skilled forgeries are rendered (stamps cycle through every forgery kind); for each K of
``--refs`` the first K genuine are the specimens, the other genuine are genuine queries, every forgery
a skilled query, and the last genuine image of ``--random-owners`` other owners random impostors.
Every comparison is made once; the methods only combine them. Metrics:
:func:`similarity.scoring.verification_metrics` (EER, ROC AUC, FAR at 1 % FRR).

Run: ``python -m benchmarks.multi_specimen_eval --kind signature --out
benchmarks/results/multi_specimen_signature.json`` (and ``--kind stamp --owners 100``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.common import csv_floats, csv_ints, machine_description, write_json
from similarity.data import load_specimen_folder, render_specimen_items
from similarity.pairwise import PairMatchError
from similarity.scoring import verification_metrics
from similarity.verifier import OwnerNormalisation, default_matcher, similarity_logit
from vision.imageio import read_image_file

__all__ = ["combine_scores", "get_args_parser", "main"]

_PREFIX = {"signature": "SIM-W-", "stamp": "SIM-AUTH-"}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=sorted(_PREFIX), required=True)
    p.add_argument("--owners", type=int, default=200, help="owners rendered (default 200)")
    p.add_argument("--first", type=int, default=5000, help="number of the first owner id (default 5000)")
    p.add_argument("--genuine", type=int, default=10, help="genuine renders per owner (default 10)")
    p.add_argument("--forged", type=int, default=5, help="skilled forgeries per owner (default 5)")
    p.add_argument("--refs", type=csv_ints, default=[1, 2, 3, 5], help="specimens per owner, K (default 1,2,3,5)")
    p.add_argument("--alphas", type=csv_floats, default=[0.5, 0.75, 1.0], help="alphas (default 0.5,0.75,1)")
    p.add_argument("--random-owners", type=int, default=5, help="owners whose genuine are random impostors")
    p.add_argument("--seed", type=int, default=0, help="render and draw seed (default 0)")
    p.add_argument(
        "--cache", type=Path, default=None, help="render cache folder (default: var/synth/multi-specimen-<kind>)"
    )
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    return p


def combine_scores(
    sims: Sequence[float], consistency: float | None, method: str, alpha: float, typical: float
) -> float:
    """The owner-level logit of one query by ``method`` (``best``, ``mean`` or ``owner``)."""
    if method == "best":
        return float(similarity_logit(max(sims)))
    if method == "mean":
        return float(np.mean(similarity_logit(sims)))
    combined = OwnerNormalisation(alpha=alpha, typical=typical).combine(sims, consistency)
    return float(similarity_logit(combined))


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    cv2.setNumThreads(1)
    start = time.perf_counter()
    ids = [f"{_PREFIX[args.kind]}{i:05d}" for i in range(args.first, args.first + args.owners)]
    folder = args.cache or Path("var/synth") / f"multi-specimen-{args.kind}"
    render_specimen_items(
        args.kind, ids, per_owner=args.genuine, forgeries=args.forged, seed=args.seed, cache_dir=folder
    )
    # Compared at scan resolution, as the service compares (the items' own pixels are downscaled).
    items = load_specimen_folder(folder, args.kind)
    matcher = default_matcher(args.kind)
    prepared: list[Any] = []
    unusable = 0
    for it in items:
        try:
            prepared.append(matcher.prepare(read_image_file(it.source)))
        except PairMatchError:  # no ink, or a degenerate crop (a stamp rendered off the page)
            prepared.append(None)
            unusable += 1
    genuine: dict[str, list[int]] = {}
    forged: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        (genuine if it.genuine else forged).setdefault(it.owner, []).append(i)
    owners = sorted(genuine)
    cache: dict[tuple[int, int], float] = {}

    def sim(q: int, r: int) -> float:
        if (q, r) not in cache:
            cache[(q, r)] = float(matcher.compare(prepared[q], prepared[r]).similarity)
        return cache[(q, r)]

    rng = np.random.default_rng(args.seed)
    impostors = {
        o: [genuine[x][-1] for x in rng.choice([x for x in owners if x != o], args.random_owners, replace=False)]
        for o in owners
    }
    report: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.multi_specimen_eval", *(sys.argv[1:] if argv is None else argv)]),
        "protocol": __doc__.split("\n\n")[3].replace("\n", " "),
        "kind": args.kind,
        "owners": len(owners),
        "unusable_crops": unusable,
        "by_refs": {},
    }
    for k in args.refs:
        rows: list[tuple[str, list[float], float | None]] = []
        for o in owners:
            refs = [r for r in genuine[o][:k] if prepared[r] is not None]
            if not refs:
                continue
            ss = [sim(a, b) for a in refs for b in refs if a != b]
            consistency = float(np.mean(similarity_logit(ss))) if ss else None
            queries = [("genuine", q) for q in genuine[o][k:]]
            queries += [("skilled", q) for q in forged.get(o, [])] + [("random", q) for q in impostors[o]]
            for cat, q in queries:
                if prepared[q] is not None:
                    rows.append((cat, [sim(q, r) for r in refs], consistency))
        cats = np.array([c for c, _, _ in rows])
        typical = float(np.mean(similarity_logit([s for c, sims, _ in rows if c == "genuine" for s in sims])))
        methods = [("best", "best", 0.0), ("mean", "mean", 0.0)]
        methods += [(f"owner_a{a:g}", "owner", a) for a in args.alphas]
        block: dict[str, Any] = {"queries": {c: int((cats == c).sum()) for c in ("genuine", "skilled", "random")}}
        block["typical_logit"] = round(typical, 4)
        for name, method, alpha in methods:
            scores = np.array([combine_scores(s, c, method, alpha, typical) for _, s, c in rows])
            block[name] = {c: _metrics(scores, cats, c) for c in ("skilled", "random")}
        report["by_refs"][str(k)] = block
        eers = {n: {c: v["eer"] for c, v in block[n].items()} for n, _, _ in methods}
        print(f"K={k}: {json.dumps(eers)}", flush=True)
    report["comparisons"] = len(cache)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["machine"] = machine_description()
    if args.out is not None:
        write_json(args.out, report)
    print(json.dumps(report, indent=2))
    return 0


def _metrics(scores: npt.NDArray[np.float64], cats: npt.NDArray[np.str_], impostor: str) -> dict[str, float]:
    m = verification_metrics(scores[cats == "genuine"], scores[cats == impostor])
    return {"eer": round(m.eer, 4), "auc": round(m.auc, 4), "far_at_1pct_frr": round(m.far_at_1pct_frr, 4)}


if __name__ == "__main__":
    raise SystemExit(main())
