"""``customs-vision calibrate stamps|signatures``: fit a direct verifier's calibration and policy.

The direct comparisons (:mod:`similarity.verifier`: stamps aligned by :mod:`similarity.stamp_match`,
signatures compared by shape in :mod:`similarity.signature_match`) give a combined score in
``[0, 1]``; the percentage a clerk sees and the genuine / inconclusive / forged verdict come from a
Platt calibration and a threshold fitted here on held-out pairs (:meth:`PairVerifier.fit`) and
stored in the similarity model card under ``metrics.scoring.stamp_aligned`` or
``metrics.scoring.signature_shape``, with the measurement under ``metrics.heldout_direct.<kind>``
(``--write-card``).

Protocol (:func:`similarity.evaluation.owner_pairs`): per owner of ``--data``
(``<owner>/genuine/*``, ``<owner>/forged/*``) the first ``--refs`` genuine images by name are the
registered specimens, the other genuine images are genuine queries, every forged image is a skilled
query, and the genuine queries of ``--random-owners`` other owners are random impostors; a query's
score combines its comparisons with the claimed owner's specimens as the service combines them
(:class:`similarity.verifier.OwnerNormalisation`; with ``--refs 1`` it is that specimen's score),
and the calibration is fitted on those combined scores. ``calibrate signatures`` also takes the real
cross-media signatures (``--real``; owner = writer x name, the paper signature registered, the
tablet one questioned), whose same-name-other-writer pairs are hard impostors. With
``--heldout-only`` (the default) only owners the card's network never trained on take part:
``heldout_fraction_of("<kind>:<owner>")`` (a real writer's own split key) below the card's held-out
fraction, which holds for folders named by the training's synthetic ids (``SIM-AUTH-00042``,
``SIM-W-00042``). The calibration is fitted on genuine pairs against every impostor category pooled
at equal weight (:func:`similarity.evaluation.pooled_impostors`, as the embedding's calibration
pools its categories).

``--render 300x4+5`` first renders ``SIM-AUTH-00000..`` authorities (``SIM-W-..`` writers for
signatures) into ``--data`` exactly as ``customs-vision train similarity`` caches them
(:func:`similarity.data.render_specimen_items`; a matching earlier render is reused as is), so the
recorded command reproduces its own data.

Serial on purpose (one stamp comparison ~50 ms on one core); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
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
    for kind, name in (("stamp", "stamps"), ("signature", "signatures")):
        _add_parser(what, kind, name)


def _add_parser(what: Any, kind: str, name: str) -> None:
    method = "aligned comparison" if kind == "stamp" else "shape comparison"
    s = what.add_parser(
        name,
        help=f"calibrate the {method} of {name} (percent and verdict for a named owner)",
        description=f"Score held-out {kind} pairs with the {method} (and the CNN, for comparison), fit "
        "percent = 100*sigmoid(slope*logit(score)+intercept) and the threshold, print the report as JSON and, "
        f"with --write-card, store both in the similarity model card (metrics.scoring, "
        f"metrics.heldout_direct.{kind}).",
    )
    s.add_argument(
        "--data",
        type=Path,
        required=kind == "stamp",
        default=None,
        help="folder of <owner>/genuine/* and <owner>/forged/*",
    )
    if kind == "signature":
        s.add_argument(
            "--real",
            nargs="?",
            type=Path,
            const=True,
            default=None,
            metavar="DIR",
            help="also the real cross-media signatures (default location, or DIR)",
        )
    s.add_argument("--model", type=Path, default=None, help="model card (default: <models dir>/similarity.json)")
    refs = 2 if kind == "stamp" else 1
    s.add_argument("--refs", type=int, default=refs, help=f"registered specimens per owner, K (default: {refs})")
    s.add_argument(
        "--heldout-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="only owners the network never trained on (default: on; --no-heldout-only for an unseen archive)",
    )
    s.add_argument(
        "--random-owners",
        type=int,
        default=5,
        help="other owners whose queries are random (and, same name, hard) impostors (default: 5)",
    )
    s.add_argument("--band", type=float, default=5.0, help="inconclusive band, +- percentage points (default: 5)")
    s.add_argument(
        "--far", type=float, default=None, help="threshold at this false-accept rate on the pooled impostors "
        "(default: at the equal-error point)",
    )  # fmt: skip
    s.add_argument("--seed", type=int, default=0, help="seed of the random-owner draw and the pooling (default: 0)")
    s.add_argument(
        "--owner-alpha",
        type=float,
        default=None,
        help="weight of an owner's specimen consistency when it has several specimens "
        "(default: similarity.verifier.DEFAULT_OWNER_ALPHA, chosen by benchmarks/multi_specimen_eval.py)",
    )
    prefix = "SIM-AUTH-* authorities" if kind == "stamp" else "SIM-W-* writers"
    s.add_argument(
        "--render",
        default=None,
        metavar="OWNERSxGENUINE+FORGED",
        help=f"first render {prefix} into --data as the training caches them, e.g. 300x4+5",
    )
    s.add_argument("--render-seed", type=int, default=0, help="seed of --render (default: 0)")
    s.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the CNN (default: 1)")
    s.add_argument("--write-card", action="store_true", help="store the calibration and the report in --model")
    s.set_defaults(func=functools.partial(_calibrate, kind), calibrate_kind=kind, calibrate_name=name)


def command_line(args: argparse.Namespace, model: Path) -> str:
    """The command with every option spelled out (defaults included), for the card."""
    argv = ["customs-vision", "calibrate", args.calibrate_name]
    if args.data is not None:
        argv += ["--data", str(args.data)]
    real = getattr(args, "real", None)
    if real is not None:
        argv += ["--real"] if real is True else ["--real", str(real)]
    argv += ["--model", str(model)]
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


#: Synthetic owner ids of ``--render``, as ``customs-vision train similarity`` names them.
_RENDER_PREFIX = {"stamp": "SIM-AUTH-", "signature": "SIM-W-"}


def _render(kind: str, data: Path, spec: str, seed: int) -> None:
    """Render (or reuse) the synthetic owners of ``--render`` into ``data``.

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
        kind,
        [f"{_RENDER_PREFIX[kind]}{i:05d}" for i in range(owners)],
        per_owner=per_owner,
        forgeries=forgeries,
        seed=seed,
        cache_dir=data,
    )
    _log(
        f"specimens in {data}: {owners} owners x ({per_owner} genuine + {forgeries} forged), "
        f"{time.perf_counter() - t0:.0f} s"
    )


def _items(kind: str, args: argparse.Namespace, heldout: float) -> list[Any]:
    """The specimens to pair: the folder (rendered first with ``--render``) and, for signatures
    with ``--real``, the real cross-media signatures; only held-out owners with ``--heldout-only``.

    Raises:
        DataError: nothing to calibrate on, or no held-out owner.
    """
    from similarity.data import DataError, heldout_fraction_of, load_signature_dataset, load_specimen_folder

    items = []
    if args.data is not None:
        if args.render is not None:
            _render(kind, args.data, args.render, args.render_seed)
        items += load_specimen_folder(args.data, kind)
    real = getattr(args, "real", None)
    if real is not None:
        items += load_signature_dataset(None if real is True else real)
    if not items:
        raise DataError("give --data (and/or --real for signatures)")
    if args.heldout_only:

        def key(item: Any) -> str:
            return str(item.split_key) if item.dataset == "signatures-crossmedia" else f"{kind}:{item.owner}"

        items = [it for it in items if heldout_fraction_of(key(it)) < heldout]
        if not items:
            raise DataError(
                "no owner was held out of the network's training (owner folders must carry the training's ids, "
                f"e.g. {_RENDER_PREFIX[kind]}00042); use --no-heldout-only for an archive the network never saw"
            )
    return items


def _calibrate(kind: str, args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from similarity.data import DataError
    from similarity.embedder import Embedder
    from similarity.evaluation import (
        cosine_pair_scores,
        direct_calibration_check,
        direct_pair_scores,
        direct_report,
        owner_pairs,
        pooled_impostors,
    )
    from similarity.verifier import OwnerNormalisation, PairVerifier, default_matcher
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
        if args.refs < 1 or args.random_owners < 0 or args.band < 0 or (args.owner_alpha or 0.0) < 0:
            raise ValueError("need --refs >= 1, --random-owners >= 0, --band >= 0 and --owner-alpha >= 0")
        embedder, card = Embedder.from_card(model, threads=args.threads)
        fraction = float(card.training.get("config", {}).get("heldout", 0.2))
        items = _items(kind, args, fraction)
        protocol = owner_pairs(items, refs=args.refs, random_owners=args.random_owners, seed=args.seed)
        counts = protocol.counts()
        _log(
            f"{len(protocol.references)} owners, {len(protocol.pairs)} pairs ({counts}), "
            f"{len(protocol.pairs) * args.refs} direct comparisons"
        )
        matcher = default_matcher(kind)
        scores = direct_pair_scores(protocol, lambda i: read_image_file(items[i].source), matcher, progress=_log)
        # Several specimens per owner are judged against the owner's own consistency; "typical" is
        # that of these genuine pairs, so the calibration below is fitted on the combined scores.
        norm = OwnerNormalisation.fit(kind, scores.genuine_reference_similarity(protocol), alpha=args.owner_alpha)
        scores = scores.combined(protocol, norm.combine)
        used = sorted({p.query for p in protocol.pairs} | {r for refs in protocol.references.values() for r in refs})
        vectors = np.concatenate(
            [
                embedder.embed([read_image_file(items[i].source) for i in used[k : k + 64]])
                for k in range(0, len(used), 64)
            ]
        )
        cosine = cosine_pair_scores(protocol, dict(zip(used, vectors, strict=True)))
        s, cat, valid = scores.similarity, protocol.categories(), scores.valid
        verifier = PairVerifier.fit(
            kind,
            s[valid & (cat == "genuine")],
            pooled_impostors(s, cat, valid, args.seed),
            matcher=matcher,
            band=args.band,
            far=args.far,
            owner_normalisation=norm,
        )
        check = direct_calibration_check(kind, protocol, s, band=args.band, far=args.far, seed=args.seed)
    except (DataError, ImageDecodeError, OSError, ValueError, BackendError) as e:
        return fail(str(e), 2)

    present = [c for c, n in counts.items() if n and c != "genuine"]
    sources = [str(args.data)] if args.data is not None else []
    if getattr(args, "real", None) is not None:
        sources.append("signatures-crossmedia (real)")
    report: dict[str, Any] = {
        "command": command,
        "model": f"{card.name}@{card.version}",
        "model_sha256": card.sha256,
        "data": sources,
        "protocol": (
            f"per owner the first {args.refs} genuine images by name are the registered specimens, the other genuine "
            f"images genuine queries, every forged image a skilled query, the genuine queries of {args.random_owners} "
            f"owners of other groups random impostors and of {args.random_owners} owners of the same group (the same "
            "name, real signatures) hard impostors, within one data set (seeded draws); score = the claimed owner's "
            "specimens combined (one specimen: its score; several: mean logit less alpha x the owner's consistency "
            "above typical, see owner_normalisation)"
        ),
        "owners": len(protocol.references),
        "owner_selection": (
            f"held out of the network's training: heldout_fraction_of('{kind}:<owner>' or the real writer's key) "
            f"< {fraction:g}"
            if args.heldout_only
            else "every owner"
        ),
        "calibration_impostors": f"{', '.join(present)} pooled at equal weight (each resampled to the larger count)",
        "threshold": verifier.threshold,
        "owner_normalisation": norm.to_dict(),
        **direct_report(protocol, scores, verifier, cosine),
        "calibration_check": check,
        "seconds": round(time.perf_counter() - start, 1),
    }
    if args.write_card:
        try:
            _write_card(model, verifier, report, present)
        except (OSError, ValueError) as e:
            return fail(str(e), 2)
        _log(f"wrote metrics.scoring.{verifier.section} and metrics.heldout_direct.{kind} to {model}")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def _write_card(path: Path, verifier: Any, report: dict[str, Any], impostors: list[str]) -> None:
    """Store the verifier's section (fitted against the ``impostors`` categories) and the report in
    the card at ``path``, keeping the rest intact.

    The card is read again here (not the copy loaded before the minutes of scoring) and must still
    describe the model that was measured; it is written to a temporary file beside it and moved
    into place, so a reader never sees half a card.

    Raises:
        ModelCardError: the card changed to another model file meanwhile, or is malformed.
        OSError: it cannot be written.
    """
    from similarity.verifier import verifiers_from_metrics
    from vision.modelcard import ModelCard, ModelCardError

    card = ModelCard.load(path)
    if card.sha256 != report["model_sha256"]:
        raise ModelCardError(
            f"{path} now describes a model with sha256 {card.sha256[:12]}..., not the one calibrated "
            f"({str(report['model_sha256'])[:12]}...): nothing written"
        )
    section = verifier.to_dict() | {"calibration_impostors": impostors}
    card.metrics.setdefault("scoring", {})[verifier.section] = section
    card.metrics.setdefault("heldout_direct", {})[verifier.kind] = report
    if verifier.kind == "stamp":
        card.metrics.pop("heldout_aligned", None)  # its name before signatures were verified directly
    verifiers_from_metrics(card.metrics)  # what the service will read must parse
    tmp = path.with_name(f".{path.name}.tmp")
    card.save(tmp)
    os.replace(tmp, path)
