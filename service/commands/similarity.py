"""``customs-vision train similarity``, ``evaluate similarity`` and ``compare``.

Thin wrappers: argument parsing here, the work in :mod:`similarity`. torch is imported only by
``train similarity``; ``evaluate`` and ``compare`` run on ONNX Runtime.

A mark claimed for a named owner is verified the way the service verifies it: when the card has
the direct verifier of the mark's kind (:func:`similarity.verifier.verifiers_from_metrics`:
stamps by the aligned ink comparison, ``metrics.scoring.stamp_aligned``; signatures by the shape
comparison, ``metrics.scoring.signature_shape``; written by ``customs-vision calibrate
stamps|signatures``), ``compare --kind K`` scores with it and ``evaluate similarity --kind K``
reports it in a ``"direct"`` block beside the embedding. Without that section the embedding scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.cli import CommandGroups, fail

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    from similarity.data import SpecimenItem
    from similarity.embedder import Embedder
    from similarity.scoring import Scorer
    from similarity.verifier import PairVerifier
    from vision.modelcard import ModelCard

KIND_CHOICES = ("signature", "stamp")

#: Method name in the output when the embedding scores (a direct verifier reports its own ``.method``).
EMBEDDING = "embedding"

#: What the service does with each kind when the card has its direct verifier (for the reports).
SERVICE_USES = {
    "stamp": "aligned: a stamp's percentage and verdict against a named authority (1:1 verification, and each "
    "candidate owner the embedding proposes) come from the aligned comparison calibrated in "
    "metrics.scoring.stamp_aligned; the embedding finds the candidate owners and scores a crop without stamp ink",
    "signature": "shape: a signature's percentage and verdict against a named writer (1:1 verification, and each "
    "candidate owner the embedding proposes) come from the shape comparison calibrated in "
    "metrics.scoring.signature_shape; the embedding finds the candidate owners and scores a crop without ink",
}

#: What a crop without ink lacks, per kind (error messages).
_INK = {"stamp": "stamp ink", "signature": "ink"}


def register(groups: CommandGroups) -> None:
    train = groups.train.add_parser(
        "similarity",
        help="train the stamp/signature similarity model (Siamese CNN)",
        description="Train the Siamese embedding network on real signatures and synthetic stamps, measure it on "
        "held-out writers/authorities, calibrate it and write <out>/similarity.onnx + similarity.json.",
    )
    train.add_argument("--kind", choices=[*KIND_CHOICES, "both"], default="both", help="which marks to train on")
    train.add_argument("--out", type=Path, default=Path("models"), help="output folder (default: models)")
    train.add_argument("--steps", type=int, default=1500, help="optimiser steps (default: 1500)")
    train.add_argument("--time-budget", type=float, default=None, help="stop training after this many seconds")
    train.add_argument("--batch-owners", type=int, default=24, help="owners per batch, P (default: 24)")
    train.add_argument("--forgeries", type=int, default=8, help="forged images per batch (default: 8)")
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--loss", choices=["supcon", "triplet"], default="supcon", help="metric loss (default: supcon)")
    train.add_argument("--temperature", type=float, default=0.1, help="SupCon temperature (default: 0.1)")
    train.add_argument(
        "--forgery-weight",
        type=float,
        default=0.0,
        help="weight of the own-forgery hinge: each owner's genuine pairs above its forgeries (default: 0 = off)",
    )
    train.add_argument(
        "--forgery-margin", type=float, default=0.2, help="cosine margin of the own-forgery hinge (default: 0.2)"
    )
    train.add_argument(
        "--augment", type=float, default=1.0, help="scan-condition augmentation strength, 0-1 (default: 1)"
    )
    train.add_argument("--width", type=int, default=32, help="channels of the first stage (default: 32)")
    train.add_argument("--input-size", default="96x192", help="network input HxW (default: 96x192)")
    train.add_argument(
        "--synth-owners", type=int, default=300, help="synthetic authorities/writers per kind (default: 300; 0 = none)"
    )
    train.add_argument("--synth-per-owner", type=int, default=4, help="genuine crops per synthetic owner (default: 4)")
    train.add_argument(
        "--synth-forgeries", type=int, default=3, help="skilled forgeries per synthetic owner (default: 3)"
    )
    train.add_argument(
        "--cache-dir", type=Path, default=Path("runs/similarity/cache"), help="rendered specimens kept between runs"
    )
    train.add_argument(
        "--signatures-dir", type=Path, default=None, help="real signature set (default: $CV_SIGNATURES_DIR)"
    )
    train.add_argument("--no-real-signatures", action="store_true", help="do not use the real signature set")
    train.add_argument(
        "--folder",
        action="append",
        default=[],
        metavar="KIND:DIR",
        help="extra <owner>/genuine|forged tree, e.g. signature:data/synth-signatures (repeatable)",
    )
    train.add_argument("--heldout", type=float, default=0.2, help="fraction of writers/authorities held out")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    train.add_argument("--version", default="", help="model version (default: YYYY.MM.DD-<seed>)")
    train.add_argument("--name", default="similarity", help="model name / file stem (default: similarity)")
    train.add_argument("--notes", default="", help="text recorded in the card (e.g. why this model is interim)")
    train.set_defaults(func=_train)

    evaluate = groups.evaluate.add_parser(
        "similarity",
        help="measure the similarity model on <owner>/genuine|forged folders",
        description="The first K genuine images per owner (sorted by name) become the registered specimens, the "
        "rest are questioned crops. Prints EER, ROC AUC, FAR at 1 % FRR and score distributions as JSON. When the "
        "card has the direct verifier of --kind (stamps: aligned comparison; signatures: shape comparison), a "
        "'direct' block measures it too (1:1 against the claimed owner; random impostors from --random-owners "
        "other owners).",
    )
    evaluate.add_argument("--kind", choices=KIND_CHOICES, required=True)
    evaluate.add_argument("--data", type=Path, required=True, help="folder of <owner>/genuine/* and <owner>/forged/*")
    evaluate.add_argument("--refs", type=int, default=1, help="reference images per owner, K (default: 1)")
    evaluate.add_argument("--model", type=Path, default=None, help="model card (default: <models dir>/similarity.json)")
    evaluate.add_argument("--threads", type=int, default=None)
    evaluate.add_argument(
        "--random-owners",
        type=int,
        default=5,
        help="other owners whose queries are each owner's random impostors in the direct block, when the card "
        "has the kind's verifier (default: 5)",
    )
    evaluate.set_defaults(func=_evaluate)

    compare = groups.root.add_parser(
        "compare",
        help="similarity of one stamp/signature crop with a specimen or a registered owner",
        description="Prints the calibrated similarity percentage, the verdict and the method as JSON. A crop is "
        "compared by the direct verifier of its kind when the card has its calibration (stamps: 'aligned'; "
        "signatures: 'shape'), otherwise by the embedding.",
    )
    compare.add_argument("image", type=Path, help="the questioned crop")
    compare.add_argument("--kind", choices=KIND_CHOICES, required=True)
    target = compare.add_mutually_exclusive_group(required=True)
    target.add_argument("--specimen", type=Path, help="a specimen image file")
    target.add_argument("--owner", help="a registered owner id (reads the service's specimen registry)")
    compare.add_argument("--model", type=Path, default=None, help="model card (default: <models dir>/similarity.json)")
    compare.add_argument("--threads", type=int, default=None)
    compare.set_defaults(func=_compare)


def _train(args: argparse.Namespace) -> int:
    from similarity.data import DataError
    from similarity.training import TrainConfig, main_command_line, train

    try:
        size = tuple(int(v) for v in args.input_size.lower().split("x"))
        if len(size) != 2:
            raise ValueError
        folders = []
        for spec in args.folder:
            kind, _, folder = spec.partition(":")
            if kind not in KIND_CHOICES or not folder:
                raise ValueError
            folders.append((kind, Path(folder)))
    except ValueError:
        print("error: --input-size must be HxW and --folder KIND:DIR with KIND signature or stamp", file=sys.stderr)
        return 2
    config = TrainConfig(
        kinds=KIND_CHOICES if args.kind == "both" else (args.kind,),
        name=args.name,
        version=args.version,
        input_size=(size[0], size[1]),
        width=args.width,
        steps=args.steps,
        time_budget_s=args.time_budget,
        p=args.batch_owners,
        forgeries=args.forgeries,
        lr=args.lr,
        loss=args.loss,
        temperature=args.temperature,
        forgery_weight=args.forgery_weight,
        forgery_margin=args.forgery_margin,
        augment=args.augment,
        threads=args.threads,
        seed=args.seed,
        heldout=args.heldout,
        signatures_dir=args.signatures_dir,
        use_real_signatures=not args.no_real_signatures,
        synth_owners=args.synth_owners,
        synth_per_owner=args.synth_per_owner,
        synth_forgeries=args.synth_forgeries,
        cache_dir=args.cache_dir,
        extra_folders=tuple(folders),
        notes=args.notes,
    )
    try:
        result = train(config, args.out, command=main_command_line(), log=lambda m: print(m, file=sys.stderr))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"card": str(result.card_path), "heldout": _headline(result.metrics)}, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from similarity.data import DataError, load_specimen_folder
    from similarity.evaluation import reference_scores, report
    from similarity.scoring import ScoringError
    from similarity.verifier import verifiers_from_metrics
    from vision.imageio import ImageDecodeError, read_image_file
    from vision.runtime.base import BackendError

    try:
        embedder, card, scorer = _load(args.model, args.kind, args.threads)
        verifier = verifiers_from_metrics(card.metrics).get(args.kind)
        if args.random_owners < 0:
            raise ValueError("--random-owners must be >= 0")
        items = load_specimen_folder(args.data, args.kind)
        # Full-resolution files, a chunk at a time: exactly what the service would embed, without
        # holding an archive's images in memory.
        chunks = [
            embedder.embed([read_image_file(it.source) for it in items[i : i + 64]]) for i in range(0, len(items), 64)
        ]
        embeddings = np.concatenate(chunks)
        scores = reference_scores(items, embeddings, refs=args.refs)
        block = None if verifier is None else _direct_block(items, embeddings, verifier, args.refs, args.random_owners)
    except (DataError, ScoringError, ImageDecodeError, OSError, ValueError, BackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = {
        "model": f"{card.name}@{card.version}",
        "kind": args.kind,
        "data": str(args.data),
        "refs": args.refs,
        "protocol": "score = highest cosine of a query over its claimed owner's K reference images",
        "owners": len({it.owner for it in items}),
        "images": len(items),
    } | report(scores, scorer)
    if block is not None:
        out[f"service_uses_for_{args.kind}s"] = SERVICE_USES[args.kind]
        out["direct"] = block
    print(json.dumps(out, indent=2))
    return 0


def _direct_block(
    items: Sequence[SpecimenItem],
    embeddings: npt.NDArray[np.float32],
    verifier: PairVerifier,
    refs: int,
    random_owners: int,
) -> dict[str, Any]:
    """The card's direct verifier of the kind on the archive: 1:1 pairs
    (:func:`similarity.evaluation.owner_pairs`), scored serially (a stamp ~50 ms per comparison,
    progress on stderr), with the embedding on the same pairs."""
    from similarity.evaluation import cosine_pair_scores, direct_pair_scores, direct_report, owner_pairs
    from vision.imageio import read_image_file

    protocol = owner_pairs(items, refs=refs, random_owners=random_owners, seed=0)
    scores = direct_pair_scores(
        protocol,
        lambda i: read_image_file(items[i].source),
        verifier.matcher,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    ).combined(protocol, verifier.combine)
    cosine = cosine_pair_scores(protocol, dict(enumerate(embeddings)))
    measured = direct_report(protocol, scores, verifier, cosine)
    return {
        "method": verifier.method,
        "protocol": f"1:1 against the claimed owner's first {refs} genuine images, combined as the service combines "
        "an owner's specimens (owner_normalisation of the card; one image: its score); genuine queries, "
        f"every forgery, and the genuine queries of {random_owners} other owners (seeded draw) as random impostors; "
        "'cnn_same_pairs' is the embedding's cosine on the same pairs",
        "pairs": measured["pairs"],
        "unscored_pairs": measured["unscored_pairs"],
        "blank_crops": measured["blank_crops"],
        **measured["direct"],
        "cnn_same_pairs": measured["cnn"],
        "timing": measured["timing"],
    }


def _compare(args: argparse.Namespace) -> int:
    from similarity.registry import SpecimenRegistry, UnknownOwnerError
    from similarity.verifier import verifiers_from_metrics
    from vision.imageio import ImageDecodeError, read_image_file
    from vision.runtime.base import BackendError

    try:
        embedder, card, scorer = _load(args.model, args.kind, args.threads)
        verifier = verifiers_from_metrics(card.metrics).get(args.kind)
        if verifier is not None:
            return _compare_direct(args, card, verifier, embedder.version)
        query = embedder.embed_one(read_image_file(args.image))
        out: dict[str, Any] = {
            "model": f"{card.name}@{card.version}",
            "kind": args.kind,
            "method": EMBEDDING,
            "image": str(args.image),
        }
        if args.specimen is not None:
            cosine = float(query @ embedder.embed_one(read_image_file(args.specimen)))
            out["specimen"] = str(args.specimen)
        else:
            from service.settings import Settings

            # Read-only: a compare with a candidate model must not re-embed the service's registry.
            registry = SpecimenRegistry.from_url(Settings().sqlalchemy_url, model_version=embedder.version)
            try:
                hits = registry.verify_read_only(query, args.owner, args.kind, embedder)
            finally:
                registry.close()
            cosine = hits[0].cosine
            out["owner"] = args.owner
            out["specimens"] = [
                {"specimen_id": h.specimen_id, "label": h.label, "similarity": scorer.score(h.cosine)[0]} for h in hits
            ]
    except (OSError, ImageDecodeError, UnknownOwnerError, ValueError, BackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    percent, verdict = scorer.score(cosine)
    out |= {"similarity": percent, "verdict": verdict, "threshold": scorer.policy.threshold, "band": scorer.policy.band}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _compare_direct(args: argparse.Namespace, card: ModelCard, verifier: PairVerifier, model_version: str) -> int:
    """``compare`` with the card's direct verifier of ``args.kind``: the crop against the specimen
    file or against each specimen of that kind of the owner (a specimen without ink is skipped, as
    the service skips it); the owner's specimens combined give the percentage and the verdict
    (:meth:`PairVerifier.score`; one specimen: its own score).

    Raises:
        OSError, ImageDecodeError, ValueError (unknown owner, unusable crop), BackendError: the
        caller turns these into exit code 2.
    """
    from similarity.pairwise import BlankCropError
    from similarity.registry import SpecimenRegistry, UnknownOwnerError
    from similarity.stamp_match import StampMatchFeatures
    from vision.imageio import read_image_file

    kind, ink = args.kind, _INK[args.kind]
    try:
        query = verifier.prepare(read_image_file(args.image))
    except BlankCropError:
        return fail(
            f"no {ink} found in {args.image}: the crop cannot be compared with a specimen "
            "(an empty or mis-placed detector box?)",
            2,
        )
    out: dict[str, Any] = {
        "model": f"{card.name}@{card.version}",
        "kind": kind,
        "method": verifier.method,
        "image": str(args.image),
    }
    if args.specimen is not None:
        try:
            specimens = [(str(args.specimen), "", verifier.prepare(read_image_file(args.specimen)))]
        except BlankCropError:
            return fail(f"no {ink} found in the specimen {args.specimen}: it cannot be compared", 2)
        out["specimen"] = str(args.specimen)
    else:
        from service.settings import Settings

        registry = SpecimenRegistry.from_url(Settings().sqlalchemy_url, model_version=model_version)
        specimens, skipped = [], []
        try:
            infos = registry.specimens(owner=args.owner, kind=kind)
            if not infos:
                raise UnknownOwnerError(f"no {kind} specimen is registered for owner {args.owner!r}")
            for info in infos:
                try:
                    specimens.append((info.id, info.label, verifier.prepare(registry.image(info.id))))
                except BlankCropError:
                    skipped.append(info.id)
        finally:
            registry.close()
        if not specimens:
            return fail(f"none of {args.owner!r}'s {kind} specimens holds {ink}: nothing to compare with", 2)
        out["owner"] = args.owner
        if skipped:
            out["skipped_specimens"] = skipped
    result = verifier.score(query, [prepared for _, _, prepared in specimens])
    if args.owner is not None:
        listed = sorted(zip(specimens, result.specimen_percents, strict=True), key=lambda r: -r[1])
        out["specimens"] = [{"specimen_id": sid, "label": label, "similarity": pct} for (sid, label, _), pct in listed]
    out |= {
        "similarity": result.percent,
        "verdict": result.verdict,
        "threshold": verifier.threshold,
        "band": verifier.band,
        "findings": [{"code": f.code, "detail": f.detail} for f in result.findings],
    }
    features = result.features
    if isinstance(features, StampMatchFeatures):
        out["stamp_match"] = {
            "score": round(features.similarity, 6),
            "angle_deg": round(features.angle_deg, 2),
            "scale": round(features.scale, 4),
        }
    else:
        out[f"{kind}_match"] = {"score": round(features.similarity, 6)}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _load(model: Path | None, kind: str, threads: int | None) -> tuple[Embedder, ModelCard, Scorer]:
    from similarity.embedder import Embedder
    from similarity.scoring import Scorer

    if model is None:
        from service.settings import Settings

        model = Settings().models_dir / "similarity.json"
    embedder, card = Embedder.from_card(model, threads=threads)
    return embedder, card, Scorer.from_metrics(card.metrics, kind)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {name: ds["metrics"] for name, ds in block.get("by_dataset", {}).items()} or block["metrics"]
        for kind, block in metrics.get("heldout", {}).items()
    }
