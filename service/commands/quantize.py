"""``customs-vision quantize CARD``: an INT8 copy of a model for the CPU, behind an accuracy gate.

A thin layer over :func:`deploy.quantize.quantize_card` (see that module for what is written).
Exit status: 0 written, 1 the accuracy gate refused the INT8 model (nothing written), 2 the
command cannot run (missing card or data, bad option).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from service.cli import CommandGroups, fail

#: Generated calibration images by default (as ``build-engine``).
DEFAULT_CALIBRATION_COUNT = 256
#: Generated held-out images (owners for the embedder) when the card names no held-out set.
DEFAULT_HELDOUT_COUNT = 200


def register(groups: CommandGroups) -> None:
    from deploy.precision import INT8_RECIPES

    p = groups.root.add_parser(
        "quantize",
        help="write an INT8 copy of a model for ONNX Runtime on the CPU, behind an accuracy gate",
        description="Quantize a model card's ONNX file statically to INT8 (scales calibrated on generated "
        "images or --calibration DIR), measure the float32 and INT8 models on the same held-out set "
        "(mAP50 for detectors, EER for the embedder) and, if the INT8 model lost at most --margin, write "
        "<out>/<name>-int8.onnx and its card <out>/<name>-int8.json (served with CV_PRECISION=int8). "
        "Held-out data: --heldout DIR, else the card's own synthetic val split, else a generated set "
        "(fixed seed); the card records which.",
    )
    p.add_argument("card", help="the float32 model card, e.g. models/xray.json")
    p.add_argument(
        "--recipe", choices=sorted(INT8_RECIPES), default="cpu-qoperator", help="INT8 recipe (default cpu-qoperator)"
    )
    p.add_argument("--calibration", default=None, metavar="DIR", help="calibration images (default: generated)")
    p.add_argument(
        "--calibration-count",
        type=int,
        default=DEFAULT_CALIBRATION_COUNT,
        help=f"generated calibration images (default {DEFAULT_CALIBRATION_COUNT})",
    )
    p.add_argument(
        "--calibration-method",
        choices=("minmax", "entropy", "percentile"),
        default="minmax",
        help="default minmax (entropy and percentile keep every activation of every calibration image in memory)",
    )
    p.add_argument(
        "--heldout",
        default=None,
        metavar="DIR",
        help="held-out data: a YOLO data set (val split) for detectors, <owner>/genuine|forged for the embedder "
        "(default: the card's synthetic_val set, else generated)",
    )
    p.add_argument(
        "--heldout-count",
        type=int,
        default=DEFAULT_HELDOUT_COUNT,
        help=f"generated held-out images (owners for the embedder) (default {DEFAULT_HELDOUT_COUNT})",
    )
    p.add_argument("--heldout-limit", type=int, default=None, help="detectors: first N held-out images only")
    p.add_argument("--kind", choices=("stamp", "signature"), default="stamp", help="embedder held-out kind")
    p.add_argument("--margin", type=float, default=0.01, help="largest accepted loss, mAP50 or EER (default 0.01)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads of the gate (default: its own)")
    p.add_argument("--out", default="models", help="output folder (default models)")
    p.set_defaults(func=_quantize)


def _quantize(args: argparse.Namespace) -> int:
    from deploy.precision import PrecisionError
    from deploy.quantize import AccuracyGateError, QuantizeError, is_int8, quantize_card, resolve_heldout
    from deploy.samples import CALIBRATION_SEED, GENERATORS, SampleError, folder_images, generated_images
    from vision.modelcard import ModelCard, ModelCardError

    for option, value, least in (
        ("--margin", args.margin, 0),
        ("--calibration-count", args.calibration_count, 1),
        ("--heldout-count", args.heldout_count, 1),
        ("--heldout-limit", args.heldout_limit, 1),
        ("--threads", args.threads, 1),
    ):
        if value is not None and value < least:
            return fail(f"{option} must be >= {least}, got {value}", 2)
    try:
        card = ModelCard.load(args.card)
    except ModelCardError as e:
        return fail(str(e), 2)
    if is_int8(card):
        return fail(f"{args.card} is already an INT8 card: quantize its float32 parent instead", 2)
    if args.calibration is None and card.name not in GENERATORS:
        return fail(f"no generator for model {card.name!r}: give --calibration DIR", 2)
    calibration: dict[str, Any]
    try:
        if args.calibration:
            images = folder_images(args.calibration)
            calibration = {"source": "folder", "path": str(Path(args.calibration).resolve())}
        else:
            images = generated_images(card.name, args.calibration_count, seed=CALIBRATION_SEED)
            calibration = {"source": "generated", "generator": GENERATORS[card.name], "seed": CALIBRATION_SEED}
        with resolve_heldout(card, args.heldout, count=args.heldout_count, kind=args.kind) as heldout:
            result = quantize_card(
                args.card,
                args.out,
                calibration_images=images,
                calibration_source=calibration,
                heldout=heldout,
                recipe=args.recipe,
                method=args.calibration_method,
                margin=args.margin,
                heldout_limit=args.heldout_limit,
                heldout_kind=args.kind,
                threads=args.threads,
                command=_command(args, card.task, heldout.source["source"]),
            )
    except AccuracyGateError as e:
        return fail(f"{e}; nothing was written", 1)
    except (ModelCardError, QuantizeError, PrecisionError, SampleError) as e:
        return fail(str(e), 2)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _command(args: argparse.Namespace, task: str, heldout_source: str) -> str:
    """The command line with every choice spelled out (defaults included), for the card."""
    parts = ["customs-vision", "quantize", str(args.card), "--recipe", args.recipe]
    if args.calibration:
        parts += ["--calibration", str(args.calibration)]
    else:
        parts += ["--calibration-count", str(args.calibration_count)]
    parts += ["--calibration-method", args.calibration_method]
    if args.heldout:
        parts += ["--heldout", str(args.heldout)]
    elif heldout_source == "generated":
        parts += ["--heldout-count", str(args.heldout_count)]
    for option, value in (("--heldout-limit", args.heldout_limit), ("--threads", args.threads)):
        if value is not None:
            parts += [option, str(value)]
    if task == "embed":
        parts += ["--kind", args.kind]
    parts += ["--margin", f"{args.margin:g}", "--out", str(args.out)]
    return shlex.join(parts)
