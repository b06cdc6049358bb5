"""``customs-vision export``, ``build-engine`` and ``triton-repo``: the deployment commands.

Thin layers over :mod:`deploy.export`, :mod:`deploy.tensorrt` and :mod:`deploy.triton_repo`; see
those modules for what happens. Exit status: 0 done, 1 a check refused the result (parity or
accuracy), 2 the command cannot run here (no GPU, missing input).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from service.cli import CommandGroups, fail

MODELS = ("xray", "document", "similarity")


def register(groups: CommandGroups) -> None:
    p = groups.root.add_parser(
        "export",
        help="export trained weights to ONNX, checked against PyTorch before writing",
        description="Export a model's PyTorch weights to ONNX (dynamic batch, fixed opset). The graph is "
        "compared with PyTorch on generated inputs (raw outputs and, for detectors, detections after "
        "NMS) and written only if every check passes, with <model>.export.json beside it.",
    )
    p.add_argument("model", choices=MODELS)
    p.add_argument(
        "--weights",
        required=True,
        help="detectors: ultralytics best.pt; similarity: the checkpoint runs/similarity/<version>/last.pt",
    )
    p.add_argument("--card", default=None, help="detectors: model card for the spec (default models/<model>.json)")
    p.add_argument("--imgsz", type=int, default=None, help="detectors without a card: square input size")
    p.add_argument("--out", default="build/export", help="output folder (default build/export)")
    p.add_argument("--samples", default=None, metavar="DIR", help="images to compare on (default: generated)")
    p.add_argument("--count", type=int, default=8, help="generated images to compare on (default 8)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18 detectors, 17 similarity)")
    p.set_defaults(func=_export)

    p = groups.root.add_parser(
        "build-engine",
        help="build a TensorRT engine (GPU only) behind an accuracy gate",
        description="Build a TensorRT engine for a shipped model on this machine's GPU, with an optimisation "
        "profile for batch 1..max_batch. fp16 converts the graph; int8 quantizes it explicitly (Q/DQ) "
        "with scales calibrated on generated data or --calibration DIR. The engine is written only if "
        "its held-out accuracy (mAP50 / EER) is within --margin of the float32 model's.",
    )
    p.add_argument("model", choices=MODELS)
    p.add_argument("--precision", choices=("fp16", "int8"), required=True)
    p.add_argument("--calibration", default=None, metavar="DIR", help="int8 calibration images (default: generated)")
    p.add_argument("--calibration-count", type=int, default=256, help="generated calibration images (default 256)")
    p.add_argument(
        "--calibration-method", choices=("entropy", "minmax", "percentile"), default="entropy", help="default entropy"
    )
    p.add_argument(
        "--heldout",
        default=None,
        metavar="DIR",
        help="held-out data: a YOLO data set (val split) for detectors, <owner>/genuine|forged for similarity "
        "(default for detectors: the card's synthetic_val set)",
    )
    p.add_argument("--heldout-limit", type=int, default=None, help="detectors: first N held-out images only")
    p.add_argument("--kind", choices=("stamp", "signature"), default="stamp", help="similarity held-out kind")
    p.add_argument("--margin", type=float, default=None, help="largest accepted loss (default 0.01 mAP50 / EER)")
    p.add_argument("--models", default="models", help="folder of model cards (default models)")
    p.add_argument("--out", default=None, help="engine file (default triton_models/<model>/1/model.plan)")
    p.add_argument("--workspace-gib", type=float, default=4.0, help="TensorRT workspace (default 4)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU: convert the graph and run the accuracy gate on ONNX Runtime; build nothing",
    )
    p.set_defaults(func=_build_engine)

    p = groups.root.add_parser(
        "triton-repo",
        help="render the Triton model repository from the model cards",
        description="Write <out>/<model>/config.pbtxt for every model card, from its ModelSpec (and, for the "
        "ONNX Runtime variants, the model files). --check compares instead of writing.",
    )
    p.add_argument("--models", default="models", help="folder of model cards (default models)")
    p.add_argument("--out", default="triton_models", help="repository folder (default triton_models)")
    p.add_argument(
        "--variant",
        choices=("tensorrt", "onnxruntime", "python-onnxruntime"),
        default="tensorrt",
        help="tensorrt (GPU, default), onnxruntime (NVIDIA's container on CPU), python-onnxruntime "
        "(the server bundled in nvidia-pytriton)",
    )
    p.add_argument("--instances", type=int, default=1, help="instances per GPU (or in total on CPU); default 1")
    p.add_argument("--queue-delay-us", type=int, default=2000, help="dynamic batcher delay (default 2000)")
    p.add_argument("--version", type=int, default=1, help="Triton version folder for model files (default 1)")
    p.add_argument("--check", action="store_true", help="exit 1 if the rendered configs differ from the files")
    p.set_defaults(func=_triton_repo)


def _export(args: argparse.Namespace) -> int:
    from deploy.export import ExportError, Task, export_model
    from deploy.samples import SampleError, folder_images, generated_images
    from vision.modelcard import ModelCard, ModelCardError
    from vision.types import ModelSpec

    task: Task = "embed" if args.model == "similarity" else "detect"
    spec = None
    if task == "detect":
        card_path = Path(args.card or f"models/{args.model}.json")
        if card_path.is_file():
            try:
                spec = ModelCard.load(card_path).spec
            except ModelCardError as e:
                return fail(str(e), 2)
        elif args.imgsz:
            from detectors.training import PAD_VALUE, TASK_CLASSES, card_version

            spec = ModelSpec(
                name=args.model,
                version=card_version(),
                input_size=(args.imgsz, args.imgsz),
                class_names=TASK_CLASSES[args.model],
                pad_value=PAD_VALUE,
            )
        else:
            return fail(f"no model card {card_path}: give --card or --imgsz", 2)
    try:
        samples = folder_images(args.samples) if args.samples else generated_images(args.model, args.count)
    except SampleError as e:
        return fail(str(e), 2)
    out = Path(args.out) / f"{args.model}.onnx"
    try:
        report = export_model(
            task=task, weights=args.weights, out_path=out, samples=samples, spec=spec, opset=args.opset
        )
    except ExportError as e:
        return fail(f"{e}; nothing was written", 1)
    report.save(out.with_name(f"{args.model}.export.json"))
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _build_engine(args: argparse.Namespace) -> int:
    from deploy.accuracy import AccuracyGateError
    from deploy.samples import CALIBRATION_SEED, SampleError, folder_images, generated_images
    from deploy.tensorrt import EngineBuildError, build_checked_engine, gpu_unavailable_reason
    from vision.modelcard import ModelCard, ModelCardError

    if not args.dry_run:
        reason = gpu_unavailable_reason()
        if reason is not None:
            return fail(f"cannot build a TensorRT engine here: {reason}", 2)
    card_path = Path(args.models) / f"{args.model}.json"
    try:
        card = ModelCard.load(card_path)
    except ModelCardError as e:
        return fail(str(e), 2)
    heldout = args.heldout
    if heldout is None and card.task == "detect":
        heldout = card.metrics.get("synthetic_val", {}).get("path")
    if not heldout or not Path(heldout).is_dir():
        return fail(f"no held-out data {heldout!r} for the accuracy gate: give --heldout DIR", 2)
    calibration = []
    if args.precision == "int8":
        try:
            calibration = (
                folder_images(args.calibration)
                if args.calibration
                else generated_images(args.model, args.calibration_count, seed=CALIBRATION_SEED)
            )
        except SampleError as e:
            return fail(str(e), 2)
    out = Path(args.out or f"triton_models/{args.model}/1/model.plan")
    try:
        result = build_checked_engine(
            card_path,
            out,
            precision=args.precision,
            heldout=heldout,
            calibration_images=calibration,
            calibration_method=args.calibration_method,
            margin=args.margin,
            heldout_limit=args.heldout_limit,
            heldout_kind=args.kind,
            workspace_gib=args.workspace_gib,
            dry_run=args.dry_run,
        )
    except AccuracyGateError as e:
        return fail(str(e), 1)
    except EngineBuildError as e:
        return fail(str(e), 2)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def _triton_repo(args: argparse.Namespace) -> int:
    import tempfile

    from deploy.triton_repo import ServingOptions, TritonRepoError, model_cards, render_repository
    from vision.modelcard import ModelCardError

    cards = model_cards(args.models)
    if not cards:
        return fail(f"no model cards in {args.models}", 2)
    try:
        options = ServingOptions(instances=args.instances, max_queue_delay_us=args.queue_delay_us)
        if not args.check:
            for model in render_repository(
                cards, args.out, variant=args.variant, options=options, triton_version=args.version
            ):
                print(f"wrote {model.config}" + (f" and {model.model_file}" if model.model_file else ""))
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            rendered = render_repository(cards, tmp, variant=args.variant, options=options)
            stale = [m.name for m in rendered if _read(Path(args.out) / m.name / "config.pbtxt") != _read(m.config)]
    except (TritonRepoError, ModelCardError) as e:
        return fail(str(e), 2)
    if stale:
        return fail(f"{args.out} is out of date for {stale}: run customs-vision triton-repo", 1)
    print(f"{args.out} matches the model cards in {args.models}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None
