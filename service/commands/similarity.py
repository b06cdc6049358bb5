"""``customs-vision train similarity``, ``evaluate similarity`` and ``compare``.

Thin wrappers: argument parsing here, the work in :mod:`similarity`. torch is imported only by
``train similarity``; ``evaluate`` and ``compare`` run on ONNX Runtime.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.cli import CommandGroups

if TYPE_CHECKING:
    from similarity.embedder import Embedder
    from similarity.scoring import Scorer
    from vision.modelcard import ModelCard

KIND_CHOICES = ("signature", "stamp")


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
        "rest are questioned crops. Prints EER, ROC AUC, FAR at 1%% FRR and score distributions as JSON.",
    )
    evaluate.add_argument("--kind", choices=KIND_CHOICES, required=True)
    evaluate.add_argument("--data", type=Path, required=True, help="folder of <owner>/genuine/* and <owner>/forged/*")
    evaluate.add_argument("--refs", type=int, default=1, help="reference images per owner, K (default: 1)")
    evaluate.add_argument("--model", type=Path, default=None, help="model card (default: <models dir>/similarity.json)")
    evaluate.add_argument("--threads", type=int, default=None)
    evaluate.set_defaults(func=_evaluate)

    compare = groups.root.add_parser(
        "compare",
        help="similarity of one stamp/signature crop with a specimen or a registered owner",
        description="Prints the calibrated similarity percentage and the verdict as JSON.",
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
    from vision.imageio import ImageDecodeError, read_image_file
    from vision.runtime.base import BackendError

    try:
        embedder, card, scorer = _load(args.model, args.kind, args.threads)
        items = load_specimen_folder(args.data, args.kind)
        # Full-resolution files, a chunk at a time: exactly what the service would embed, without
        # holding an archive's images in memory.
        chunks = [
            embedder.embed([read_image_file(it.source) for it in items[i : i + 64]]) for i in range(0, len(items), 64)
        ]
        embeddings = np.concatenate(chunks)
        scores = reference_scores(items, embeddings, refs=args.refs)
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
    print(json.dumps(out, indent=2))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from similarity.registry import SpecimenRegistry, UnknownOwnerError
    from vision.imageio import ImageDecodeError, read_image_file
    from vision.runtime.base import BackendError

    try:
        embedder, card, scorer = _load(args.model, args.kind, args.threads)
        query = embedder.embed_one(read_image_file(args.image))
        out: dict[str, Any] = {"model": f"{card.name}@{card.version}", "kind": args.kind, "image": str(args.image)}
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
