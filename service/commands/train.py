"""``customs-vision train xray`` and ``train document``: train a detector and ship it with its card.

Thin layer over :func:`detectors.training.train_and_package`; see that module for what happens and
where files go.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from service.cli import CommandGroups

#: Environment variable naming the real X-ray folder when ``--real`` is not given.
REAL_ENV = "CV_XRAY_REAL_DIR"


def register(groups: CommandGroups) -> None:
    for task, what in (
        ("xray", "X-ray threat detector (synthetic scans + real scans)"),
        ("document", "document stamp/signature detector (synthetic documents)"),
    ):
        p = groups.train.add_parser(
            task,
            help=f"train the {what}",
            description=f"Train the {what} with ultralytics (offline), export models/{task}.onnx, check "
            f"PyTorch/ONNX parity, measure it on held-out data and write models/{task}.json. "
            "Runs can be paused (--time-hours) and continued (--resume).",
        )
        p.add_argument(
            "--synthetic",
            action="append",
            default=[],
            metavar="DIR",
            help=f"synthetic dataset folder from 'customs-vision synth {task}' (repeatable)",
        )
        if task == "xray":
            real = p.add_mutually_exclusive_group()
            real.add_argument(
                "--real",
                metavar="PATH",
                default=None,
                help=f"real X-ray folder (images/, labels/); default ${REAL_ENV}",
            )
            real.add_argument("--no-real", action="store_true", help="train on synthetic data only")
            p.add_argument(
                "--real-repeat",
                type=int,
                default=1,
                metavar="N",
                help="list each real training scan N times per epoch (weights real scanners up; default 1)",
            )
        p.add_argument(
            "--synthetic-limit",
            type=int,
            default=None,
            metavar="N",
            help="train on at most N images of each synthetic folder (evenly spaced; default all)",
        )
        p.add_argument(
            "--greyscale-fraction",
            type=float,
            default=0.0,
            metavar="F",
            help="show this share of the images in grey, as single-energy scanners do (default 0)",
        )
        p.add_argument(
            "--hue-jitter",
            type=float,
            default=None,
            metavar="DEG",
            help="rotate each training image's hue by up to +-DEG degrees, so other scanners' colour maps "
            "look familiar (default: ultralytics' +-5.4)",
        )
        p.add_argument("--model", default="yolo11n.yaml", help="ultralytics architecture YAML (default yolo11n.yaml)")
        p.add_argument("--imgsz", type=int, default=416, help="square training size, multiple of 32 (default 416)")
        p.add_argument("--epochs", type=int, default=30, help="planned epochs (default 30)")
        p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
        p.add_argument(
            "--warmup-epochs",
            type=float,
            default=None,
            help="learning-rate warm-up epochs (default min(3, max(0.5, epochs/10)))",
        )
        p.add_argument("--workers", type=int, default=2, help="data-loader processes (default 2)")
        p.add_argument(
            "--time-hours",
            type=float,
            default=None,
            metavar="H",
            help="stop this session after H hours; continue later with --resume",
        )
        p.add_argument("--run-dir", default=f"runs/{task}", help=f"run folder (default runs/{task})")
        p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
        p.add_argument("--out", default="models", help="folder for <task>.onnx and <task>.json (default models)")
        p.add_argument("--init", default=None, metavar="WEIGHTS", help="start from these weights (fine-tuning)")
        p.add_argument("--cache", choices=["ram", "disk"], default=None, help="cache decoded images")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        p.add_argument("--device", default=None, help="'cpu', '0', ... (default: GPU if present)")
        p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
        p.set_defaults(func=_train, task=task)


def _command_line(args: argparse.Namespace) -> str:
    """The command as a person would type it again (recorded in the model card)."""
    parts = ["customs-vision", "train", args.task]
    for folder in args.synthetic:
        parts += ["--synthetic", folder]
    if args.task == "xray":
        if args.no_real:
            parts.append("--no-real")
        elif args.real_resolved:
            parts += ["--real", str(args.real_resolved)]
            if args.real_repeat != 1:
                parts += ["--real-repeat", str(args.real_repeat)]
    if args.synthetic_limit is not None:
        parts += ["--synthetic-limit", str(args.synthetic_limit)]
    if args.greyscale_fraction:
        parts += ["--greyscale-fraction", str(args.greyscale_fraction)]
    for flag, value in (
        ("--hue-jitter", args.hue_jitter),
        ("--model", args.model),
        ("--imgsz", args.imgsz),
        ("--epochs", args.epochs),
        ("--batch", args.batch),
        ("--warmup-epochs", args.warmup_epochs),
        ("--workers", args.workers),
        ("--time-hours", args.time_hours),
        ("--run-dir", args.run_dir),
        ("--out", args.out),
        ("--init", args.init),
        ("--cache", args.cache),
        ("--seed", args.seed),
        ("--device", args.device),
    ):
        if value is not None:
            parts += [flag, str(value)]
    parts += [flag for flag, on in (("--resume", args.resume), ("--no-eval", args.no_eval)) if on]
    return shlex.join(parts)


def hue_gain(degrees: float) -> float:
    """ultralytics' ``hsv_h`` for a hue rotation of up to +-``degrees``: it shifts OpenCV's hue
    (0-180, 2 degrees a unit) by ``uniform(-1, 1) * hsv_h * 180`` units, i.e. ``hsv_h * 360`` degrees.

    Raises:
        ValueError: a negative angle or one over 180 degrees.
    """
    if not 0.0 <= degrees <= 180.0:
        raise ValueError(f"--hue-jitter must be between 0 and 180 degrees, got {degrees}")
    return degrees / 360.0


def _train(args: argparse.Namespace) -> int:
    from detectors.training import train_and_package

    real_dir: str | None = None
    if args.task == "xray" and not args.no_real:
        real_dir = args.real or os.environ.get(REAL_ENV)
        if not args.resume and not real_dir:
            print(f"error: give --real PATH (or set ${REAL_ENV}), or --no-real to train without real scans")
            return 2
        if real_dir and not Path(real_dir, "images").is_dir():
            print(f"error: {real_dir} has no images/ folder; is it the real X-ray folder?")
            return 2
    args.real_resolved = real_dir
    if args.hue_jitter is not None:
        try:
            hue_gain(args.hue_jitter)
        except ValueError as e:
            print(f"error: {e}")
            return 2
    if not args.synthetic and not args.resume and real_dir is None:
        print(f"error: give at least one --synthetic DIR (from 'customs-vision synth {args.task}')")
        return 2

    result = train_and_package(
        task=args.task,
        run_dir=args.run_dir,
        out_dir=args.out,
        synthetic_dirs=args.synthetic,
        real_dir=real_dir,
        real_repeat=getattr(args, "real_repeat", 1),
        synthetic_train_limit=args.synthetic_limit,
        greyscale_fraction=args.greyscale_fraction,
        resume=args.resume,
        evaluate=not args.no_eval,
        command=_command_line(args),
        model_yaml=args.model,
        imgsz=args.imgsz,
        epochs=args.epochs,
        batch=args.batch,
        warmup_epochs=args.warmup_epochs,
        extra=None if args.hue_jitter is None else {"hsv_h": hue_gain(args.hue_jitter)},
        workers=args.workers,
        time_limit_h=args.time_hours,
        seed=args.seed,
        init_weights=args.init,
        cache=args.cache,
        device=args.device,
    )
    t = result.train
    state = "finished" if t.finished else "paused: continue with --resume"
    print(
        f"trained {t.epochs_completed}/{t.epochs_planned} epochs ({state}); "
        f"{t.total_seconds / 60:.1f} min over {t.sessions} session(s)"
    )
    print(f"wrote {result.onnx_path} and {result.card_path}")
    for key, block in result.metrics.items():
        print(
            f"  {key}: mAP50 {_fmt(block.get('map50'))}  mAP50-95 {_fmt(block.get('map50_95'))}  "
            f"recall@{block.get('conf_threshold')} {_fmt(block.get('recall'))}  ({block.get('num_images')} images)"
        )
    return 0


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
