"""Stamp verification on rendered specimens: aligned ink comparison vs the shipped CNN vs a fusion.

Protocol (per owner of a ``customs-vision synth specimens``-style folder, ``<owner>/genuine/NN.png``
and ``<owner>/forged/NN-<kind>.png``):

* genuine ``00`` and ``01`` (first two by name) are the registered specimens;
* the other genuine images are genuine queries; every forged image is a skilled query (by kind);
* random impostors: the genuine queries of ``--random-per-owner`` other owners of the same split
  (drawn deterministically per owner);
* a query's score for an owner is its best score over that owner's specimens.

Owners with ``heldout_fraction_of("stamp:<owner>") < 0.2`` are the similarity model's held-out
authorities: every metric is reported on them only. ``--train-owners`` of the other owners are used
to fit the logistic models (stamp-match features alone, and the fusion of the CNN cosine with them);
the fitted stamp-match weights are printed so that :data:`similarity.stamp_match.DEFAULT_WEIGHTS`
can be set from them.

Methods: ``cnn`` (cosine of :class:`similarity.embedder.Embedder` on ONNX Runtime, ``--card``),
``stamp_match`` (logistic model on the features, scale feature left out), ``stamp_match+scale``
(with ``scale_dev``, valid only when all scans share one dpi, as these do), ``fusion`` (CNN cosine +
features), plus each feature alone (oriented by the sign of its training weight). Metrics are
:func:`similarity.scoring.verification_metrics` (EER, ROC AUC, FAR at 1 % FRR). Also reported: the
time of one :meth:`StampMatcher.compare` call and of one :meth:`StampMatcher.prepare`.
With ``--conditions``, every held-out questioned crop is degraded (:data:`STAMP_CONDITIONS`: a
greyscale scan, lower resolution, JPEG, noise, binarisation, rotation), the specimens are left as
they are, and the pairs are scored again with the fitted weights.

Run: ``python -m benchmarks.stamp_match_eval --root /tmp/simexp/cache_new/stamp-300x4+5-s0``;
prints the JSON report (``--out FILE`` also writes it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.common import machine_description
from benchmarks.scan_conditions import CONDITIONS, Condition, greyscale
from similarity.data import IMAGE_SUFFIXES, heldout_fraction_of
from similarity.scoring import verification_metrics
from similarity.stamp_match import FEATURE_NAMES, PreparedStamp, StampMatcher, StampMatchError
from vision.imageio import read_image_file

__all__ = ["get_args_parser", "main"]

#: Scan conditions of the questioned crop (``--conditions``): greyscale, and a subset of
#: :data:`benchmarks.scan_conditions.CONDITIONS` (each costs a full pass over the held-out pairs).
STAMP_CONDITIONS: dict[str, Condition] = {"greyscale": greyscale} | {
    k: CONDITIONS[k]
    for k in (
        "half resolution",
        "third resolution",
        "JPEG quality 40",
        "noise sigma 12",
        "binarised (Otsu)",
        "rotated 10 degrees",
    )
}

_KINDS = ("altered_text", "proportions", "redrawn_emblem", "other_font", "photocopy")


@dataclass
class _Owner:
    name: str
    specimens: list[Path]
    genuine_queries: list[Path]
    forged: list[tuple[Path, str]]


@dataclass
class _Pairs:
    """One row per (query, owner) pair; per specimen the feature rows and CNN cosines."""

    label: list[str] = field(default_factory=list)  # "genuine", "skilled", "random"
    kind: list[str] = field(default_factory=list)  # forgery kind for skilled pairs
    feats: list[npt.NDArray[np.float64]] = field(default_factory=list)  # (S, F) per pair
    cosine: list[npt.NDArray[np.float64]] = field(default_factory=list)  # (S,) per pair
    paths: list[tuple[Path, list[Path]]] = field(default_factory=list)  # (query, specimens) per pair


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=True)
    p.add_argument("--root", type=Path, required=True, help="<owner>/genuine|forged/*.png folder")
    p.add_argument("--card", type=Path, default=Path("models/similarity.json"), help="CNN model card")
    p.add_argument("--no-cnn", action="store_true", help="skip the CNN and the fusion")
    p.add_argument("--train-owners", type=int, default=100, help="non-held-out owners used for fitting")
    p.add_argument("--heldout-owners", type=int, default=0, help="cap on held-out owners (0 = all)")
    p.add_argument("--random-per-owner", type=int, default=5, help="other owners whose queries are random impostors")
    p.add_argument("--specimens", type=int, default=2, help="registered specimens per owner")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conditions", action="store_true", help="also score degraded questioned crops (CONDITIONS)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    return p


def _owners(root: Path, n_specimens: int) -> list[_Owner]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        gen = sorted(p for p in (d / "genuine").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        forged = sorted(p for p in (d / "forged").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(gen) <= n_specimens:
            continue
        kinds = [p.stem.split("-", 1)[1] if "-" in p.stem else "" for p in forged]
        out.append(_Owner(d.name, gen[:n_specimens], gen[n_specimens:], list(zip(forged, kinds, strict=True))))
    return out


def _fit_logistic(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], w: npt.NDArray[np.float64], l2: float = 1e-2
) -> tuple[npt.NDArray[np.float64], float, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Weighted L2-regularised logistic regression by Newton's method on standardised features.

    Returns:
        ``(coef, intercept, mean, std)``: ``p = sigmoid(((x - mean) / std) @ coef + intercept)``.
    """
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    beta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -50, 50)))
        grad = z.T @ (w * (p - y)) + reg * beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return beta[:-1], float(beta[-1]), mean, std


def _raw_weights(
    coef: npt.NDArray[np.float64], intercept: float, mean: npt.NDArray[np.float64], std: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float]:
    """The same model on unstandardised features."""
    w = coef / std
    return w, intercept - float((mean * w).sum())


def _metrics(scores: npt.NDArray[np.float64], label: npt.NDArray[np.str_], kind: npt.NDArray[np.str_]) -> dict:
    g = scores[label == "genuine"]
    out: dict[str, Any] = {
        "skilled": verification_metrics(g, scores[label == "skilled"]).to_dict(),
        "skilled_shape_kinds": verification_metrics(g, scores[(label == "skilled") & (kind != "photocopy")]).to_dict(),
        "random": verification_metrics(g, scores[label == "random"]).to_dict(),
        "skilled_by_kind": {},
    }
    for k in _KINDS:
        sel = (label == "skilled") & (kind == k)
        if sel.any():
            out["skilled_by_kind"][k] = verification_metrics(g, scores[sel]).to_dict()
    return out


def _brief(m: dict) -> dict:
    """EERs only, for the summary table."""
    return {
        "skilled": m["skilled"]["eer"],
        "skilled_no_photocopy": m["skilled_shape_kinds"]["eer"],
        "random": m["random"]["eer"],
        **{k: v["eer"] for k, v in m["skilled_by_kind"].items()},
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    cv2.setNumThreads(1)
    machine = machine_description()
    owners = _owners(args.root, args.specimens)
    held = [o for o in owners if heldout_fraction_of(f"stamp:{o.name}") < 0.2]
    train = [o for o in owners if heldout_fraction_of(f"stamp:{o.name}") >= 0.2]
    rng = np.random.default_rng(args.seed)
    if args.heldout_owners:
        held = held[: args.heldout_owners]
    if args.train_owners < len(train):
        train = [train[i] for i in sorted(rng.choice(len(train), size=args.train_owners, replace=False))]

    matcher = StampMatcher()
    prepared: dict[Path, PreparedStamp | None] = {}
    prep_times: list[float] = []
    images: dict[Path, npt.NDArray[np.uint8]] = {}

    def prep(path: Path) -> PreparedStamp | None:
        if path not in prepared:
            img = read_image_file(path)
            images[path] = img
            t = time.perf_counter()
            try:
                prepared[path] = matcher.prepare(img)
            except StampMatchError:
                prepared[path] = None  # blank crop: scored as the least similar
            prep_times.append(time.perf_counter() - t)
        return prepared[path]

    compare_times: list[float] = []
    blank = np.full(len(FEATURE_NAMES), np.nan)

    def build(split: list[_Owner], split_seed: int) -> _Pairs:
        pairs = _Pairs()
        srng = np.random.default_rng([args.seed, split_seed])
        for i, owner in enumerate(split):
            others = [o for j, o in enumerate(split) if j != i]
            pick = srng.choice(len(others), size=min(args.random_per_owner, len(others)), replace=False)
            queries = [(p, "genuine", "") for p in owner.genuine_queries]
            queries += [(p, "skilled", k) for p, k in owner.forged]
            queries += [(p, "random", "") for j in sorted(pick) for p in others[int(j)].genuine_queries]
            specs = [prep(p) for p in owner.specimens]
            for path, label, kind in queries:
                q = prep(path)
                rows = []
                for s in specs:
                    if q is None or s is None:
                        rows.append(blank)
                        continue
                    t = time.perf_counter()
                    rows.append(matcher.compare(q, s).vector())
                    compare_times.append(time.perf_counter() - t)
                pairs.label.append(label)
                pairs.kind.append(kind)
                pairs.feats.append(np.stack(rows))
                pairs.cosine.append(np.zeros(len(specs)))
                pairs.paths.append((path, owner.specimens))
        return pairs

    train_pairs = build(train, 1)
    held_pairs = build(held, 2)

    if not args.no_cnn:
        from similarity.embedder import Embedder

        embedder, _card = Embedder.from_card(args.card, threads=1)
        paths = sorted(images)
        emb = embedder.embed([images[p] for p in paths])
        row = {p: i for i, p in enumerate(paths)}
        for pairs in (train_pairs, held_pairs):
            for n, (qp, sps) in enumerate(pairs.paths):
                pairs.cosine[n] = np.array([float(emb[row[qp]] @ emb[row[sp]]) for sp in sps])

    def design(
        pairs: _Pairs, cols: Sequence[str], with_cnn: bool
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Per-comparison rows (pairs x specimens flattened) of the chosen columns."""
        idx = [FEATURE_NAMES.index(c) for c in cols]
        x = np.concatenate([f[:, idx] for f in pairs.feats])
        if with_cnn:
            x = np.hstack([np.concatenate(pairs.cosine)[:, None], x])
        pair_of = np.concatenate([np.full(len(f), n, dtype=np.int64) for n, f in enumerate(pairs.feats)])
        return x, pair_of

    def labels(pairs: _Pairs) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.str_]]:
        return np.array(pairs.label), np.array(pairs.kind)

    def fit_and_score(cols: Sequence[str], with_cnn: bool) -> tuple[npt.NDArray[np.float64], dict[str, float]]:
        x, pair_of = design(train_pairs, cols, with_cnn)
        lab, _ = labels(train_pairs)
        lab_rows = lab[pair_of]
        ok = np.all(np.isfinite(x), axis=1)
        y = (lab_rows == "genuine").astype(np.float64)
        # Balance: genuine weighs one half, skilled and random one quarter each.
        w = np.zeros(len(y))
        for name, share in (("genuine", 0.5), ("skilled", 0.25), ("random", 0.25)):
            sel = (lab_rows == name) & ok
            w[sel] = share / max(int(sel.sum()), 1)
        coef, b, mean, std = _fit_logistic(np.where(ok[:, None], x, 0.0), y, w * len(y))
        raw_w, raw_b = _raw_weights(coef, b, mean, std)
        xh, pair_h = design(held_pairs, cols, with_cnn)
        z = xh @ raw_w + raw_b
        z = np.where(np.all(np.isfinite(xh), axis=1), z, -np.inf)
        best = np.full(len(held_pairs.label), -np.inf)
        np.maximum.at(best, pair_h, z)
        names = (["cnn_cosine"] if with_cnn else []) + list(cols)
        weights = {n: round(float(v), 6) for n, v in zip(names, raw_w, strict=True)} | {"intercept": round(raw_b, 6)}
        return np.where(np.isfinite(best), best, -1e6), weights

    lab_h, kind_h = labels(held_pairs)
    no_scale = [c for c in FEATURE_NAMES if c != "scale_dev"]
    results: dict[str, Any] = {}
    weights: dict[str, Any] = {}
    s_match, weights["stamp_match"] = fit_and_score(no_scale, False)
    results["stamp_match"] = _metrics(s_match, lab_h, kind_h)
    s, weights["stamp_match+scale"] = fit_and_score(list(FEATURE_NAMES), False)
    results["stamp_match+scale"] = _metrics(s, lab_h, kind_h)
    if not args.no_cnn:
        cos = np.array([c.max() for c in held_pairs.cosine])
        results["cnn"] = _metrics(cos, lab_h, kind_h)
        s, weights["fusion"] = fit_and_score(no_scale, True)
        results["fusion"] = _metrics(s, lab_h, kind_h)
        s, weights["fusion+scale"] = fit_and_score(list(FEATURE_NAMES), True)
        results["fusion+scale"] = _metrics(s, lab_h, kind_h)
    single: dict[str, Any] = {}
    for n, name in enumerate(FEATURE_NAMES):
        sign = 1.0 if weights["stamp_match+scale"][name] >= 0 else -1.0
        vals = np.array([np.nan_to_num(f[:, n] * sign, nan=-1e6).max() for f in held_pairs.feats])
        single[name] = _brief(_metrics(vals, lab_h, kind_h)) | {"sign": sign}

    # What the questioned crop shows by itself (StampMatcher.findings), per kind of query.
    def findings_of(path: Path) -> list[str]:
        q = prepared[path]
        return [f.code for f in matcher.findings(q)] if q is not None else ["blank"]

    findings: dict[str, Any] = {}
    for (qpath, _), label, kind in zip(held_pairs.paths, lab_h, kind_h, strict=True):
        codes = findings_of(qpath)
        row = findings.setdefault(str(kind or label), {"queries": 0})
        row["queries"] += 1
        for code in codes:
            row[code] = row.get(code, 0) + 1
    achromatic = np.array(["no_colour" in findings_of(q) for q, _ in held_pairs.paths])
    by_colour = {
        name: _brief(_metrics(s_match[sel], lab_h[sel], kind_h[sel]))
        for name, sel in (("query_no_colour", achromatic), ("query_colour", ~achromatic))
    }

    conditions: dict[str, Any] = {}
    if args.conditions:
        fitted = weights["stamp_match"]

        def best_score(query: PreparedStamp, specimens: list[Path]) -> float:
            zs = []
            for path in specimens:
                spec = prepared[path]
                if spec is not None:
                    f = matcher.compare(query, spec)
                    zs.append(sum(fitted[c] * float(getattr(f, c)) for c in no_scale) + fitted["intercept"])
            return max(zs, default=-1e6)

        for name, degrade in STAMP_CONDITIONS.items():
            degraded: dict[Path, PreparedStamp | None] = {}
            scores = np.full(len(held_pairs.paths), -1e6)
            for n, (qpath, specimens) in enumerate(held_pairs.paths):
                if qpath not in degraded:
                    try:
                        degraded[qpath] = matcher.prepare(degrade(images[qpath]))
                    except StampMatchError:
                        degraded[qpath] = None
                query = degraded[qpath]
                if query is not None:
                    scores[n] = best_score(query, specimens)
            conditions[name] = _brief(_metrics(scores, lab_h, kind_h))

    ct = np.array(compare_times) * 1000.0
    pt = np.array(prep_times) * 1000.0
    report = {
        "command": f"python -m benchmarks.stamp_match_eval {shlex.join(sys.argv[1:])}".rstrip(),
        "machine": machine,
        "root": str(args.root),
        "owners": {"heldout": len(held), "train": len(train)},
        "pairs_heldout": {k: int((lab_h == k).sum()) for k in ("genuine", "skilled", "random")},
        "blank_crops": sum(v is None for v in prepared.values()),
        "summary_eer": {k: _brief(v) for k, v in results.items()},
        "metrics": results,
        "single_feature_eer": single,
        **({"scan_conditions": {"as scanned": _brief(results["stamp_match"])} | conditions} if conditions else {}),
        "findings": {
            "protocol": "held-out queries by kind (genuine, random, or the forgery kind), and how many "
            "StampMatcher.findings flags: copy_like (colour wandering like a copy's), no_colour (greyscale)",
            "counts": findings,
            "stamp_match_eer_by_query_colour": by_colour,
        },
        "weights": weights,
        "timing_ms": {
            "compare_per_specimen": {
                "mean": round(float(ct.mean()), 2),
                "p50": round(float(np.percentile(ct, 50)), 2),
                "p95": round(float(np.percentile(ct, 95)), 2),
                "max": round(float(ct.max()), 2),
                "n": int(ct.size),
            },
            "prepare_per_crop": {
                "mean": round(float(pt.mean()), 2),
                "p95": round(float(np.percentile(pt, 95)), 2),
                "n": int(pt.size),
            },
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main(get_args_parser().parse_args())
