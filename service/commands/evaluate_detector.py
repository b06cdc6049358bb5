"""``customs-vision evaluate xray`` and ``evaluate document``: re-measure a shipped detector.

Thin layer over :func:`detectors.evaluation.evaluate_detector`; ``--write-card`` stores the result
in the model card under ``real_test`` / ``synthetic_val`` (or ``--key``). ``--view NAME`` shows the
model every image through another display (:data:`detectors.evaluation.VIEWS`) and adds the view's
suffix to the default key (:func:`detectors.evaluation.view_key_suffix`: ``real_test_greyscale``,
``real_test_hue_plus25``, ...); ``--greyscale`` is the older spelling of ``--view grey``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from typing import Any

from service.cli import CommandGroups
from service.commands.train import REAL_ENV


class _ViewNames:
    """The names of :data:`detectors.evaluation.VIEWS` as argparse ``choices``, read on first use.

    Importing the evaluation module (OpenCV) when the parser is built would slow every command.
    """

    def __contains__(self, name: object) -> bool:
        from detectors.evaluation import VIEWS

        return name in VIEWS

    def __iter__(self) -> Iterator[str]:
        from detectors.evaluation import VIEWS

        return iter(VIEWS)


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
        if task == "xray":
            p.add_argument(
                "--no-flip-tta",
                dest="flip_tta",
                action="store_false",
                help="measure without the mirrored view the detector fuses in by default",
            )
            p.add_argument(
                "--no-tiles",
                dest="tile_tta",
                action="store_false",
                help="measure without the close-up tiles the detector fuses in by default",
            )
        # Both store into ``view`` and default to None: argparse counts an option as given only when its value
        # is not the default object, so a default of "scanned" would let `--view scanned --greyscale` through.
        views = p.add_mutually_exclusive_group()
        views.add_argument(
            "--view",
            default=None,
            choices=_ViewNames(),
            metavar="NAME",
            help="show the model each image through this display: %(choices)s (default scanned; grey and "
            "grey-inverted as a single-energy scanner's display, hue+25 / hue-25 as another vendor's palette)",
        )
        views.add_argument(
            "--greyscale",
            dest="view",
            action="store_const",
            const="grey",
            default=None,
            help="the same as --view grey: each image in grey (luma), as a single-energy scanner's display",
        )
        p.set_defaults(func=_evaluate, task=task)


def _view(args: argparse.Namespace) -> str:
    """The view a parsed command line asks for (``--view``, ``--greyscale``, else the default)."""
    from detectors.evaluation import DEFAULT_VIEW

    return str(args.view or DEFAULT_VIEW)


def view_arguments(view: str) -> list[str]:
    """The arguments that select ``view`` in a recorded command line.

    None for the default view, and ``--greyscale`` for grey: the spelling that the cards measured
    before ``--view`` existed record, so their commands and the new ones read the same.
    """
    from detectors.evaluation import DEFAULT_VIEW

    if view == DEFAULT_VIEW:
        return []
    return ["--greyscale"] if view == "grey" else ["--view", view]


def _command_line(args: argparse.Namespace, real_dir: str | None) -> str:
    from detectors.evaluation import evaluate_command

    extra = [] if args.limit is None else ["--limit", str(args.limit)]
    if args.backend != "onnxruntime":
        extra += ["--backend", args.backend]
    extra += view_arguments(_view(args))
    if not getattr(args, "flip_tta", True):
        extra += ["--no-flip-tta"]
    if not getattr(args, "tile_tta", True):
        extra += ["--no-tiles"]
    return evaluate_command(args.task, args.model, args.data, split=args.split, real_dir=real_dir, extra=extra)


def _evaluate(args: argparse.Namespace) -> int:
    from detectors.evaluation import evaluate_detector, record_metrics, view_key_suffix

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
        view=_view(args),
        command=_command_line(args, real_dir),
        detector_kwargs={name: False for name in ("flip_tta", "tile_tta") if not getattr(args, name, True)},
    )
    if args.json:
        print(json.dumps(block, indent=2))
    else:
        _print_block(block)
    if args.write_card:
        key = args.key or ("real_test" if real else "synthetic_val") + view_key_suffix(_view(args))
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
