"""``customs-vision calibrate stamps``: fit the aligned stamp verifier's calibration and policy.

The aligned comparison (:mod:`similarity.stamp_match`) gives a combined score in ``[0, 1]``; the
percentage a clerk sees and the genuine / inconclusive / forged verdict come from a Platt
calibration and a threshold fitted here on held-out pairs (:meth:`AlignedStampScorer.fit`) and
stored in the similarity model card under ``metrics.scoring.stamp_aligned``, with the measurement
under ``metrics.heldout_aligned.stamp`` (``--write-card``).

Protocol (:func:`similarity.evaluation.owner_pairs`, as ``benchmarks/stamp_match_eval.py``): per
owner of ``--data`` (``<owner>/genuine/*``, ``<owner>/forged/*``) the first ``--refs`` genuine
images by name are the registered specimens, the other genuine images are genuine queries, every
forged image is a skilled query, and the genuine queries of ``--random-owners`` other owners are
random impostors; a query's score is its best over the claimed owner's specimens. With
``--heldout-only`` (the default) only the authorities the card's network never trained on take
part: ``heldout_fraction_of("stamp:<owner>")`` below the card's held-out fraction, which holds for
folders named by the training's synthetic ids (``SIM-AUTH-00042``). The calibration is fitted on
genuine pairs against skilled and random pairs pooled at equal weight
(:func:`similarity.evaluation.pool_impostors`, as the embedding's calibration pools its categories).

``--render 300x4+5`` first renders ``SIM-AUTH-00000..`` authorities into ``--data`` exactly as
``customs-vision train similarity`` caches them (:func:`similarity.data.render_specimen_items`;
a matching earlier render is reused as is), so the recorded command reproduces its own data.

Serial on purpose (one comparison ~50 ms on one core); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from service.cli import CommandGroups, fail

#: ``OWNERSxGENUINE+FORGED`` of ``--render``.
_RENDER = re.compile(r"(\d+)x(\d+)\+(\d+)")


def register(groups: CommandGroups) -> None:
    calibrate = groups.root.add_parser(
        "calibrate",
        help="fit a verifier's calibration and decision threshold on held-out pairs",
        description="Fit a verifier's calibration and decision threshold on held-out pairs.",
    )
    what = calibrate.add_subparsers(dest="calibrate_what", metavar="WHAT", required=True)
    s = what.add_parser(
        "stamps",
        help="calibrate the aligned stamp comparison (percent and verdict for a named authority)",
        description="Score held-out stamp pairs with the aligned comparison (and the CNN, for comparison), fit "
        "percent = 100*sigmoid(slope*logit(score)+intercept) and the threshold, print the report as JSON and, "
        "with --write-card, store both in the similarity model card (metrics.scoring.stamp_aligned, "
        "metrics.heldout_aligned.stamp).",
    )
    s.add_argument("--data", type=Path, required=True, help="folder of <owner>/genuine/* and <owner>/forged/*")
    s.add_argument("--model", type=Path, default=None, help="model card (default: <models dir>/similarity.json)")
    s.add_argument("--refs", type=int, default=2, help="registered specimens per owner, K (default: 2)")
    s.add_argument(
        "--heldout-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="only owners the network never trained on (default: on; --no-heldout-only for an unseen archive)",
    )
    s.add_argument(
        "--random-owners", type=int, default=5, help="other owners whose queries are random impostors (default: 5)"
    )
    s.add_argument("--band", type=float, default=5.0, help="inconclusive band, +- percentage points (default: 5)")
    s.add_argument(
        "--far", type=float, default=None, help="threshold at this false-accept rate on the pooled impostors "
        "(default: at the equal-error point)",
    )  # fmt: skip
    s.add_argument("--seed", type=int, default=0, help="seed of the random-owner draw and the pooling (default: 0)")
    s.add_argument(
        "--render",
        default=None,
        metavar="OWNERSxGENUINE+FORGED",
        help="first render SIM-AUTH-* authorities into --data as the training caches them, e.g. 300x4+5",
    )
    s.add_argument("--render-seed", type=int, default=0, help="seed of --render (default: 0)")
    s.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the CNN (default: 1)")
    s.add_argument("--write-card", action="store_true", help="store the calibration and the report in --model")
    s.set_defaults(func=_stamps)


def command_line(args: argparse.Namespace, model: Path) -> str:
    """The command with every option spelled out (defaults included), for the card."""
    argv = ["customs-vision", "calibrate", "stamps", "--data", str(args.data), "--model", str(model)]
    argv += ["--refs", str(args.refs), "--heldout-only" if args.heldout_only else "--no-heldout-only"]
    argv += ["--random-owners", str(args.random_owners), "--band", f"{args.band:g}"]
    if args.far is not None:
        argv += ["--far", f"{args.far:g}"]
    argv += ["--seed", str(args.seed)]
    if args.render is not None:
        argv += ["--render", args.render, "--render-seed", str(args.render_seed)]
    argv += ["--threads", str(args.threads)]
    if args.write_card:
        argv.append("--write-card")
    return shlex.join(argv)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _render(data: Path, spec: str, seed: int) -> None:
    """Render (or reuse) the synthetic authorities of ``--render`` into ``data``.

    Raises:
        DataError: a malformed spec, or ``data`` holds something that is not such a render.
    """
    from similarity.data import DataError, render_specimen_items

    m = _RENDER.fullmatch(spec)
    if m is None:
        raise DataError(f"--render must be OWNERSxGENUINE+FORGED, e.g. 300x4+5, got {spec!r}")
    owners, per_owner, forgeries = (int(v) for v in m.groups())
    if data.exists() and any(data.iterdir()) and not (data / "params.json").is_file():
        raise DataError(f"{data} is not empty and not a specimen render (no params.json): refusing to render into it")
    t0 = time.perf_counter()
    render_specimen_items(
        "stamp",
        [f"SIM-AUTH-{i:05d}" for i in range(owners)],
        per_owner=per_owner,
        forgeries=forgeries,
        seed=seed,
        cache_dir=data,
    )
    _log(
        f"specimens in {data}: {owners} authorities x ({per_owner} genuine + {forgeries} forged), "
        f"{time.perf_counter() - t0:.0f} s"
    )


def _stamps(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from similarity.aligned import SECTION, AlignedStampScorer
    from similarity.data import DataError, heldout_fraction_of, load_specimen_folder
    from similarity.embedder import Embedder
    from similarity.evaluation import (
        aligned_calibration_check,
        aligned_pair_scores,
        aligned_report,
        cosine_pair_scores,
        owner_pairs,
        pool_impostors,
    )
    from similarity.stamp_match import StampMatcher
    from vision.imageio import ImageDecodeError, read_image_file
    from vision.runtime.base import BackendError

    start = time.perf_counter()
    cv2.setNumThreads(1)
    model = args.model
    if model is None:
        from service.settings import Settings

        model = Settings().models_dir / "similarity.json"
    command = command_line(args, model)
    try:
        if args.refs < 1 or args.random_owners < 0 or args.band < 0:
            raise ValueError("need --refs >= 1, --random-owners >= 0 and --band >= 0")
        embedder, card = Embedder.from_card(model, threads=args.threads)
        if args.render is not None:
            _render(args.data, args.render, args.render_seed)
        items = load_specimen_folder(args.data, "stamp")
        fraction = float(card.training.get("config", {}).get("heldout", 0.2))
        if args.heldout_only:
            items = [it for it in items if heldout_fraction_of(f"stamp:{it.owner}") < fraction]
            if not items:
                raise DataError(
                    f"no owner of {args.data} was held out of {card.name}@{card.version}'s training (owner folders "
                    "must carry the training's ids, e.g. SIM-AUTH-00042); use --no-heldout-only for an archive "
                    "the network never saw"
                )
        protocol = owner_pairs(items, refs=args.refs, random_owners=args.random_owners, seed=args.seed)
        counts = protocol.counts()
        _log(
            f"{len(protocol.references)} owners, {len(protocol.pairs)} pairs ({counts}), "
            f"{len(protocol.pairs) * args.refs} aligned comparisons"
        )
        aligned = aligned_pair_scores(
            protocol, lambda i: read_image_file(items[i].source), StampMatcher(), progress=_log
        )
        used = sorted({p.query for p in protocol.pairs} | {r for refs in protocol.references.values() for r in refs})
        vectors = np.concatenate(
            [
                embedder.embed([read_image_file(items[i].source) for i in used[k : k + 64]])
                for k in range(0, len(used), 64)
            ]
        )
        cosine = cosine_pair_scores(protocol, dict(zip(used, vectors, strict=True)))
        s, cat, valid = aligned.similarity, protocol.categories(), aligned.valid
        scorer = AlignedStampScorer.fit(
            s[valid & (cat == "genuine")],
            pool_impostors([s[valid & (cat == "skilled")], s[valid & (cat == "random")]], args.seed),
            band=args.band,
            far=args.far,
        )
        check = aligned_calibration_check(protocol, s, band=args.band, far=args.far, seed=args.seed)
    except (DataError, ImageDecodeError, OSError, ValueError, BackendError) as e:
        return fail(str(e), 2)

    report: dict[str, Any] = {
        "command": command,
        "model": f"{card.name}@{card.version}",
        "model_sha256": card.sha256,
        "data": str(args.data),
        "protocol": (
            f"per owner the first {args.refs} genuine images by name are the registered specimens, the other genuine "
            f"images genuine queries, every forged image a skilled query, the genuine queries of {args.random_owners} "
            "other owners (seeded draw) random impostors; score = best over the claimed owner's specimens"
        ),
        "owners": len(protocol.references),
        "owner_selection": (
            f"held out of the network's training: heldout_fraction_of('stamp:<owner>') < {fraction:g}"
            if args.heldout_only
            else "every owner of the folder"
        ),
        "calibration_impostors": "skilled and random pooled at equal weight (each resampled to the larger count)",
        "threshold": scorer.threshold,
        **aligned_report(protocol, aligned, scorer, cosine),
        "calibration_check": check,
        "seconds": round(time.perf_counter() - start, 1),
    }
    if args.write_card:
        try:
            _write_card(model, scorer.to_dict() | {"calibration_impostors": ["skilled", "random"]}, report, SECTION)
        except (OSError, ValueError) as e:
            return fail(str(e), 2)
        _log(f"wrote metrics.scoring.{SECTION} and metrics.heldout_aligned.stamp to {model}")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def _write_card(path: Path, section: dict[str, Any], report: dict[str, Any], key: str) -> None:
    """Store the scorer section and the report in the card at ``path``, keeping the rest intact.

    The card is read again here (not the copy loaded before the minutes of scoring) and must still
    describe the model that was measured; it is written to a temporary file beside it and moved
    into place, so a reader never sees half a card.

    Raises:
        ModelCardError: the card changed to another model file meanwhile, or is malformed.
        OSError: it cannot be written.
    """
    from similarity.aligned import AlignedStampScorer
    from vision.modelcard import ModelCard, ModelCardError

    card = ModelCard.load(path)
    if card.sha256 != report["model_sha256"]:
        raise ModelCardError(
            f"{path} now describes a model with sha256 {card.sha256[:12]}..., not the one calibrated "
            f"({str(report['model_sha256'])[:12]}...): nothing written"
        )
    card.metrics.setdefault("scoring", {})[key] = section
    card.metrics.setdefault("heldout_aligned", {})["stamp"] = report
    AlignedStampScorer.from_metrics(card.metrics)  # what the service will read must parse
    tmp = path.with_name(f".{path.name}.tmp")
    card.save(tmp)
    os.replace(tmp, path)
