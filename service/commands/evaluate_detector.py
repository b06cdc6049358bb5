"""``customs-vision evaluate xray`` and ``evaluate document``: re-measure a shipped detector.

Thin layer over :func:`detectors.evaluation.evaluate_detector`; ``--write-card`` stores the result
in the model card under ``real_test`` / ``synthetic_val`` (or ``--key``).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from service.cli import CommandGroups
from service.commands.train import REAL_ENV


def register(groups: CommandGroups) -> None:
    for task in ("xray", "document"):
        p = groups.evaluate.add_parser(
            task,
            help=f"measure the {task} detector on labelled data (mAP, precision, recall)",
            description=f"Run the {task} detector of a model card over a labelled set through the serving "
            "pipeline and report COCO-style mAP50 / mAP50-95 and precision/recall at confidence 0.25"
            + (
                "; 'real' means the real scans' held-out test split, scored class-agnostically. A synthetic "
                "set is also broken down by concealment level."
                if task == "xray"
                else ", overall and broken down by hard case (stamp over signature, faint, partial, greyscale "
                "photocopy, fax) and by scan kind, as the set's metadata.jsonl records them."
            ),
        )
        p.add_argument("--model", default=f"models/{task}.json", help=f"model card (default models/{task}.json)")
        p.add_argument(
            "--data",
            required=True,
            metavar="DIR" + ("|real" if task == "xray" else ""),
            help="synthetic dataset folder" + (", or 'real'" if task == "xray" else ""),
        )
        if task == "xray":
            p.add_argument("--real", default=None, metavar="PATH", help=f"real X-ray folder (default ${REAL_ENV})")
        p.add_argument("--split", default="val", help="split of a synthetic folder (default val)")
        p.add_argument("--limit", type=int, default=None, help="only the first N images (quick check)")
        p.add_argument("--backend", default="onnxruntime", help="inference backend (default onnxruntime)")
        p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
        p.add_argument("--batch", type=int, default=8, help="images per detector call (default 8)")
        p.add_argument("--write-card", action="store_true", help="record the result in the model card")
        p.add_argument("--key", default=None, help="metrics key in the card (default real_test / synthetic_val)")
        p.add_argument("--json", action="store_true", help="print the full metrics block as JSON")
        p.add_argument(
            "--greyscale",
            action="store_true",
            help="show the model each image in grey (luma), as a single-energy scanner's display would",
        )
        p.set_defaults(func=_evaluate, task=task)


def _command_line(args: argparse.Namespace, real_dir: str | None) -> str:
    from detectors.evaluation import evaluate_command

    extra = [] if args.limit is None else ["--limit", str(args.limit)]
    if args.backend != "onnxruntime":
        extra += ["--backend", args.backend]
    if args.greyscale:
        extra.append("--greyscale")
    return evaluate_command(args.task, args.model, args.data, split=args.split, real_dir=real_dir, extra=extra)


def _evaluate(args: argparse.Namespace) -> int:
    from detectors.evaluation import evaluate_detector, record_metrics

    real = args.data == "real"
    real_dir: str | None = None
    if real:
        if args.task != "xray":
            print("error: only the X-ray detector has a real data set")
            return 2
        real_dir = args.real or os.environ.get(REAL_ENV)
        if not real_dir:
            print(f"error: --data real needs --real PATH (or ${REAL_ENV})")
            return 2
    backend_kwargs: dict[str, Any] = {}
    if args.threads is not None:
        backend_kwargs["threads"] = args.threads
    block = evaluate_detector(
        args.model,
        "real" if real else args.data,
        split=None if real else args.split,
        real_dir=real_dir,
        backend_name=args.backend,
        backend_kwargs=backend_kwargs,
        batch_size=args.batch,
        limit=args.limit,
        greyscale=args.greyscale,
        command=_command_line(args, real_dir),
    )
    if args.json:
        print(json.dumps(block, indent=2))
    else:
        _print_block(block)
    if args.write_card:
        key = args.key or ("real_test" if real else "synthetic_val") + ("_greyscale" if args.greyscale else "")
        record_metrics(args.model, key, block)
        print(f"recorded as metrics[{key!r}] in {args.model}")
    return 0


def _num(x: Any) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def _print_block(block: dict[str, Any]) -> None:
    scope = "class-agnostic" if block["class_agnostic"] else "per class"
    print(
        f"{block['dataset']} {block['split']} ({block['path']}): {block['num_images']} images, "
        f"{block['num_gt']} objects, {scope}, {block.get('view', 'as scanned')}, {block['seconds']} s"
    )
    print(
        f"mAP50 {_num(block['map50'])}  mAP50-95 {_num(block['map50_95'])}  "
        f"precision {_num(block['precision'])}  recall {_num(block['recall'])}  (at conf {block['conf_threshold']})"
    )
    print(f"{'class':<16}{'AP50':>8}{'AP50-95':>9}{'P':>8}{'R':>8}{'objects':>9}")
    for name, row in block["per_class"].items():
        print(
            f"{name:<16}{_num(row['ap50']):>8}{_num(row['ap50_95']):>9}{_num(row['precision']):>8}"
            f"{_num(row['recall']):>8}{row['num_gt']:>9}"
        )
    if "breakdown_error" in block:
        print(f"breakdowns: not available ({block['breakdown_error']})")
    for key, value in block.items():
        if key.startswith("by_") and isinstance(value, dict):
            if "error" in value:
                print(f"{key}: not available ({value['error']})")
                continue
            width = max([8, *(len(level) for level in value)])
            for level, row in value.items():
                print(
                    f"{key[3:]} = {level:<{width}} mAP50 {_num(row['map50'])}  mAP50-95 {_num(row['map50_95'])}  "
                    f"recall {_num(row['recall'])}  ({row['num_gt']} objects in {row['num_images']} images)"
                )
