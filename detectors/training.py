"""Train a YOLO detector with ultralytics, export it to ONNX, measure it, and write its model card.

The pipeline behind ``customs-vision train xray`` / ``train document``:

1. :func:`detectors.datasets.prepare_detection_data` writes ``<run>/data/`` (synthetic sets plus
   the real scans' train/val splits; the real test split is never seen).
2. :func:`train_detector` trains with ultralytics, offline, into ``<run>/train/``. A run is planned
   in epochs (the learning-rate schedule spans them) and can be paused and resumed across sessions:
   ``time_limit_h`` stops the current session after that long, and ``resume=True`` continues from
   the last saved epoch with optimizer state, schedule and augmentation settings intact.
3. :func:`export_onnx` exports ``best.pt`` (opset 18, dynamic batch, onnxslim), checks the graph's
   input and output layout, and :func:`parity_check` compares PyTorch and ONNX Runtime outputs on a
   few real images.
4. :func:`write_model_card` writes ``models/<task>.onnx`` + ``models/<task>.json``; then
   :func:`evaluate_detector` measures the *shipped* ONNX file through our own serving pipeline
   (:class:`detectors.base.YoloDetector`) on the held-out sets and records every number in the card
   with the command that reproduces it.

Why not ultralytics' own ``time=`` option: it re-plans the epoch count after every epoch from the
time left *in this session*, and its end-of-training clean-up strips the optimizer from
``last.pt``, so a run stopped by time can never be resumed. Here the plan stays fixed, a callback
stops the session, and every saved ``last.pt`` is also kept as ``weights/resume.pt`` before
ultralytics strips it.

Run folder layout::

    <run>/data/           prepared data (see detectors.datasets)
    <run>/train/          ultralytics save_dir: weights/{best,last,resume}.pt, results.csv, args.yaml
    <run>/sessions.jsonl  one line per training session (wall time, epochs, why it stopped)
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from detectors.datasets import (
    REAL_SPLIT_PERCENT,
    PreparedData,
    iter_real,
    load_prepared,
    prepare_detection_data,
    read_data_names,
    synthetic_split,
)
from detectors.document import DOCUMENT_CLASSES
from detectors.evaluation import evaluate_command, evaluate_detector, record_metrics
from detectors.xray import XRAY_CLASSES
from vision.letterbox import letterbox, to_nchw
from vision.modelcard import ModelCard, sha256_file
from vision.types import ModelSpec

if TYPE_CHECKING:
    from ultralytics import YOLO

log = logging.getLogger(__name__)

Task = Literal["xray", "document"]
#: Classes of each task's model, in class-id order; the detectors' own tables are the source.
TASK_CLASSES: Mapping[str, tuple[str, ...]] = {"xray": XRAY_CLASSES, "document": DOCUMENT_CLASSES}
#: Ultralytics' letterbox padding grey; the exported spec tells serving to pad the same way.
PAD_VALUE = 114


class TrainingError(RuntimeError):
    """Training cannot start or continue (bad run folder, nothing to resume, finished run)."""


class ExportError(RuntimeError):
    """The exported ONNX graph has the wrong layout or disagrees with the PyTorch model."""


# --- ultralytics, offline ---------------------------------------------------------------------------


def ultralytics_yolo() -> type[YOLO]:
    """Import ultralytics configured to never touch the network, and return its ``YOLO`` class.

    Sets ``YOLO_OFFLINE=1`` (no hub downloads, no update or connectivity checks) and
    ``YOLO_AUTOINSTALL=false`` (ultralytics must never pip-install at run time), points
    ``YOLO_CONFIG_DIR`` at a private folder unless the caller chose one, and turns analytics sync
    off in that folder's settings. Must run before anything else imports ultralytics.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "customs-vision-ultralytics"))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
    import ultralytics.utils as uutils
    from ultralytics import YOLO

    if uutils.SETTINGS.get("sync", False):
        uutils.SETTINGS.update({"sync": False})
    if uutils.ONLINE:
        log.warning("ultralytics was imported before YOLO_OFFLINE was set and believes it is online")
    return YOLO


# --- training ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one :func:`train_detector` session.

    Attributes:
        run_dir: the run folder.
        best: ``best.pt`` (highest validation fitness so far).
        epochs_planned: epochs the learning-rate schedule spans.
        epochs_completed: epochs saved so far, over all sessions (a session stopped by its time
            limit mid-epoch counts that epoch as done: resuming starts the next one).
        finished: all planned epochs are done (or early stopping ended the run).
        stopped_by_time: this session ended because of ``time_limit_h``.
        session_seconds: wall time of this session.
        total_seconds: wall time of all sessions of the run.
        sessions: number of sessions so far.
    """

    run_dir: Path
    best: Path
    epochs_planned: int
    epochs_completed: int
    finished: bool
    stopped_by_time: bool
    session_seconds: float
    total_seconds: float
    sessions: int


def _weights_dir(run_dir: Path) -> Path:
    return run_dir / "train" / "weights"


def _load_checkpoint_dict(path: Path) -> dict[str, Any]:
    import torch

    # Our own checkpoints: they pickle ultralytics model classes, so weights_only cannot be used.
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict):
        raise TrainingError(f"{path} is not an ultralytics checkpoint")
    return ckpt


def resumable_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run resumes from: ``resume.pt`` (see the module docstring) or ``last.pt``.

    Raises:
        TrainingError: the run has no resumable checkpoint, or it already finished every planned
            epoch (fine-tune its ``best.pt`` in a new run with ``init_weights`` instead).
    """
    wdir = _weights_dir(run_dir)
    for candidate in (wdir / "resume.pt", wdir / "last.pt"):
        if not candidate.is_file():
            continue
        ckpt = _load_checkpoint_dict(candidate)
        epoch = int(ckpt.get("epoch", -1))
        if epoch < 0 or ckpt.get("optimizer") is None:
            continue
        planned = int(ckpt.get("train_args", {}).get("epochs", 0))
        if epoch + 1 >= planned:
            raise TrainingError(
                f"the run in {run_dir} finished all {planned} planned epochs; nothing to resume. "
                f"To train further, start a new run with --init {wdir / 'best.pt'}"
            )
        return candidate
    raise TrainingError(f"nothing to resume in {run_dir}: no {wdir}/resume.pt or last.pt with optimizer state")


def _read_sessions(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "sessions.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _append_session(run_dir: Path, record: Mapping[str, Any]) -> None:
    with (run_dir / "sessions.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(dict(record)) + "\n")


def _keep_resumable_copy(trainer: Any) -> None:
    """``on_model_save`` callback: keep last.pt, optimizer included, as resume.pt (atomically)."""
    last = Path(trainer.last)
    if last.is_file():
        tmp = last.with_name("resume.pt.tmp")
        shutil.copyfile(last, tmp)
        os.replace(tmp, last.with_name("resume.pt"))


def train_detector(
    *,
    task: Task,
    data_yaml: str | Path,
    run_dir: str | Path,
    model_yaml: str = "yolo11n.yaml",
    imgsz: int = 416,
    epochs: int = 100,
    batch: int = 16,
    workers: int = 2,
    resume: bool = False,
    time_limit_h: float | None = None,
    seed: int = 0,
    init_weights: str | Path | None = None,
    cache: Literal["ram", "disk"] | None = None,
    close_mosaic: int | None = None,
    warmup_epochs: float | None = None,
    patience: int = 50,
    device: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume training) a YOLO detector with ultralytics, offline.

    Args:
        task: ``"xray"`` or ``"document"``; the data's class names must be this task's classes.
        data_yaml: ultralytics data file (from :func:`~detectors.datasets.prepare_detection_data`).
            Ignored on resume (the checkpoint remembers it).
        run_dir: the run folder; ultralytics writes into ``<run_dir>/train``.
        model_yaml: architecture, an ultralytics model YAML such as ``yolo11n.yaml``,
            ``yolo11s.yaml`` or ``yolo26n.yaml`` (never a ``*.pt`` hub name: nothing is downloaded).
        imgsz: square training image size, a multiple of 32.
        epochs: planned epochs; the learning-rate schedule spans them.
        batch: images per batch.
        workers: data-loader processes (``0`` loads in the training process).
        resume: continue the run in ``run_dir`` from its last saved epoch (see
            :func:`resumable_checkpoint`); the other settings come from the checkpoint, except
            ``workers``, ``cache`` and ``device``.
        time_limit_h: stop this session after this many hours (resumable); ``None`` runs to the end.
        seed: random seed of ultralytics (augmentation, initialisation, data order).
        init_weights: start from these weights (e.g. a previous run's ``best.pt``) instead of random
            initialisation; layers whose shapes differ (another class count) start fresh.
        cache: cache decoded images in ``"ram"`` or on ``"disk"`` (``None``: decode every time).
        close_mosaic: switch mosaic augmentation off for this many final epochs; ``None`` uses
            ``min(10, epochs // 5)`` (ultralytics' fixed 10 would disable it entirely in short runs).
        warmup_epochs: learning-rate warm-up length; ``None`` uses ``min(3, max(0.5, epochs / 10))``
            (ultralytics' fixed 3 would spend a third of a short CPU run warming up).
        patience: stop early after this many epochs without validation improvement.
        device: ``"cpu"``, ``"0"``, ...; ``None`` lets ultralytics pick (the GPU if there is one).
        extra: further ultralytics training arguments (e.g. ``{"lr0": 0.005}``), passed as given.

    Returns:
        Where the weights are and how far the run got.

    Raises:
        TrainingError: the run folder already holds a run (and ``resume`` is False), there is
            nothing to resume, the data's classes do not fit the task, or a setting is invalid.
    """
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    run_dir = Path(run_dir).resolve()
    wdir = _weights_dir(run_dir)
    if task not in TASK_CLASSES:
        raise TrainingError(f"task must be one of {sorted(TASK_CLASSES)}, got {task!r}")
    if imgsz <= 0 or imgsz % 32:
        raise TrainingError(f"imgsz must be a positive multiple of 32, got {imgsz}")
    if epochs < 1 or batch < 1 or workers < 0:
        raise TrainingError(f"need epochs >= 1, batch >= 1, workers >= 0; got {epochs}, {batch}, {workers}")
    if time_limit_h is not None and time_limit_h <= 0:
        raise TrainingError(f"time_limit_h must be positive, got {time_limit_h}")

    YOLO = ultralytics_yolo()
    stopped = {"by_time": False}

    def stop_on_time(trainer: Any) -> None:
        if time_limit_h is not None and time.monotonic() - started > time_limit_h * 3600:
            stopped["by_time"] = True
            trainer.stop = True

    common: dict[str, Any] = {"workers": workers, "cache": cache or False}
    if device is not None:
        common["device"] = device
    if resume:
        checkpoint = resumable_checkpoint(run_dir)
        model = YOLO(str(checkpoint))
        start_epoch = int(_load_checkpoint_dict(checkpoint)["epoch"]) + 1
        kwargs: dict[str, Any] = {"resume": True, **common}
    else:
        if (wdir / "last.pt").exists():
            raise TrainingError(
                f"{run_dir} already holds a training run; pass resume=True (--resume) to continue it "
                "or choose another run folder"
            )
        if init_weights is not None and not Path(init_weights).is_file():
            raise TrainingError(f"init weights {init_weights} do not exist")
        names = read_data_names(Path(data_yaml))
        if names != TASK_CLASSES[task]:
            raise TrainingError(f"{data_yaml} names classes {names}, but the {task} model's are {TASK_CLASSES[task]}")
        model = YOLO(model_yaml)
        start_epoch = 0
        kwargs = {
            "data": str(Path(data_yaml).resolve()),
            "epochs": epochs,
            "imgsz": imgsz,
            "batch": batch,
            "seed": seed,
            "deterministic": True,
            "project": str(run_dir),
            "name": "train",
            "exist_ok": True,
            "plots": False,
            "close_mosaic": min(10, epochs // 5) if close_mosaic is None else close_mosaic,
            "warmup_epochs": min(3.0, max(0.5, epochs / 10)) if warmup_epochs is None else warmup_epochs,
            "patience": patience,
            **common,
            **dict(extra or {}),
        }
        if init_weights is not None:
            kwargs["pretrained"] = str(Path(init_weights).resolve())
    run_dir.mkdir(parents=True, exist_ok=True)
    model.add_callback("on_train_batch_end", stop_on_time)
    model.add_callback("on_model_save", _keep_resumable_copy)

    outcome = "error"
    try:
        model.train(**kwargs)
        outcome = "time_limit" if stopped["by_time"] else "finished"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        seconds = time.monotonic() - started
        epochs_completed, planned = _progress(wdir)
        _append_session(
            run_dir,
            {
                "started": started_at,
                "seconds": round(seconds, 1),
                "resumed": resume,
                "start_epoch": start_epoch,
                "epochs_completed": epochs_completed,
                "epochs_planned": planned,
                "outcome": outcome,
            },
        )
    sessions = _read_sessions(run_dir)
    best = wdir / "best.pt"
    if not best.is_file():
        raise TrainingError(f"training ended without writing {best}")
    return TrainResult(
        run_dir=run_dir,
        best=best,
        epochs_planned=planned,
        epochs_completed=epochs_completed,
        finished=outcome == "finished" or (planned > 0 and epochs_completed >= planned),
        stopped_by_time=stopped["by_time"],
        session_seconds=seconds,
        total_seconds=sum(float(s["seconds"]) for s in sessions),
        sessions=len(sessions),
    )


def _progress(wdir: Path) -> tuple[int, int]:
    """(epochs saved so far, epochs planned) from the newest resumable copy, else (0, 0)."""
    path = wdir / "resume.pt"
    if not path.is_file():
        return 0, 0
    ckpt = _load_checkpoint_dict(path)
    return int(ckpt.get("epoch", -1)) + 1, int(ckpt.get("train_args", {}).get("epochs", 0))


# --- export and parity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportInfo:
    """An exported detector graph.

    Attributes:
        path: the ONNX file.
        input_name: name of the image input (``"images"``).
        output_name: name of the detection output (``"output0"``).
        output_shape: output shape for a probe batch of 2 at the export size, e.g.
            ``(2, 4 + nc, A)`` for an anchor-free head or ``(2, K, 6)`` for an end-to-end head.
        head: ``"anchor_free"`` or ``"end_to_end"``.
        opset: the graph's default-domain ONNX opset.
    """

    path: Path
    input_name: str
    output_name: str
    output_shape: tuple[int, ...]
    head: str
    opset: int


def export_onnx(
    weights: str | Path,
    out_path: str | Path,
    *,
    imgsz: int,
    num_classes: int,
    opset: int = 18,
    dynamic: bool = True,
    simplify: bool = True,
) -> ExportInfo:
    """Export ultralytics weights to ONNX and check the graph's layout.

    Args:
        weights: a ``.pt`` checkpoint written by :func:`train_detector`.
        out_path: where the ONNX file goes (written atomically: a reader never sees half a file).
        imgsz: square input size the graph is exported (and probed) at.
        num_classes: number of classes the model must output.
        opset: ONNX opset.
        dynamic: dynamic batch (and spatial) dimensions.
        simplify: simplify the graph with onnxslim.

    Returns:
        The checked graph's description.

    Raises:
        ExportError: the graph's input or output does not have the expected layout.
    """
    YOLO = ultralytics_yolo()
    exported = Path(
        YOLO(str(weights)).export(
            format="onnx",
            imgsz=imgsz,
            opset=opset,
            dynamic=dynamic,
            simplify=simplify,
            nms=False,
            device="cpu",
        )
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    shutil.copyfile(exported, tmp)
    os.replace(tmp, out_path)
    return check_onnx_graph(out_path, imgsz=imgsz, num_classes=num_classes)


def check_onnx_graph(path: str | Path, *, imgsz: int, num_classes: int) -> ExportInfo:
    """Check that an ONNX detector takes ``images (B, 3, H, W)`` and outputs a YOLO head.

    Runs a batch of 2 blank images through ONNX Runtime, which also proves the batch is dynamic.

    Raises:
        ExportError: wrong input name or rank, or an output that is neither ``(B, 4 + nc, A)`` nor
            ``(B, K, 6)``.
    """
    import onnx
    import onnxruntime as ort

    path = Path(path)
    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path), load_external_data=False)
    except (onnx.checker.ValidationError, OSError, ValueError) as e:
        raise ExportError(f"{path} is not a valid ONNX model: {e}") from e
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped Fail / InvalidGraph errors
        raise ExportError(f"ONNX Runtime cannot load {path}: {e}") from e
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or inputs[0].name != "images" or len(inputs[0].shape) != 4:
        raise ExportError(
            f"{path}: expected one input 'images' (B, 3, H, W), got {[(i.name, i.shape) for i in inputs]}"
        )
    probe = np.zeros((2, 3, imgsz, imgsz), np.float32)
    out = session.run([outputs[0].name], {"images": probe})[0]
    shape = tuple(int(s) for s in out.shape)
    if len(shape) == 3 and shape[0] == 2 and shape[1] == 4 + num_classes:
        head = "anchor_free"
    elif len(shape) == 3 and shape[0] == 2 and shape[2] == 6:
        head = "end_to_end"
    else:
        raise ExportError(
            f"{path}: output {outputs[0].name!r} has shape {shape} for a batch of 2; expected "
            f"(2, {4 + num_classes}, anchors) or (2, K, 6)"
        )
    return ExportInfo(
        path=path, input_name="images", output_name=outputs[0].name, output_shape=shape, head=head, opset=opset
    )


@dataclass(frozen=True)
class ParityReport:
    """Largest differences between the PyTorch model and the ONNX graph on the same inputs.

    Attributes:
        images: number of images compared.
        max_abs_box: largest absolute difference of a box coordinate, in network pixels.
        max_abs_score: largest absolute difference of a class score.
    """

    images: int
    max_abs_box: float
    max_abs_score: float

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "max_abs_box_px": self.max_abs_box, "max_abs_score": self.max_abs_score}


def parity_check(
    weights: str | Path,
    onnx_path: str | Path,
    images: Sequence[np.ndarray],
    *,
    imgsz: int,
    box_atol: float = 0.05,
    score_atol: float = 1e-3,
) -> ParityReport:
    """Run the same letterboxed images through PyTorch and ONNX Runtime and compare raw outputs.

    Args:
        weights: the ``.pt`` checkpoint the ONNX file was exported from.
        onnx_path: the exported graph (anchor-free head).
        images: ``(H, W, 3)`` uint8 RGB images, e.g. a few real scans.
        imgsz: network input size.
        box_atol: largest allowed box-coordinate difference (pixels of the network input).
        score_atol: largest allowed class-score difference.

    Returns:
        The measured differences.

    Raises:
        ExportError: no images, different output shapes, or a difference above the tolerance.
    """
    import onnxruntime as ort
    import torch

    if not images:
        raise ExportError("parity check needs at least one image")
    ultralytics_yolo()
    from ultralytics.nn.tasks import load_checkpoint

    boxed = [letterbox(im, (imgsz, imgsz), pad_value=PAD_VALUE)[0] for im in images]
    tensor = to_nchw(boxed, dtype=np.float32)
    model, _ = load_checkpoint(str(weights))
    model = model.float().eval()
    with torch.no_grad():
        raw = model(torch.from_numpy(tensor))
    expected = (raw[0] if isinstance(raw, (list, tuple)) else raw).cpu().numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": tensor})[0]
    if got.shape != expected.shape:
        raise ExportError(f"ONNX output {got.shape} differs from PyTorch output {expected.shape}")
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    report = ParityReport(
        images=len(images),
        max_abs_box=float(diff[:, :4].max()),
        max_abs_score=float(diff[:, 4:].max()) if diff.shape[1] > 4 else 0.0,
    )
    if report.max_abs_box > box_atol or report.max_abs_score > score_atol:
        raise ExportError(
            f"ONNX and PyTorch outputs differ: boxes by up to {report.max_abs_box:.4g} px (allowed "
            f"{box_atol}), scores by up to {report.max_abs_score:.4g} (allowed {score_atol})"
        )
    return report


# --- model card -------------------------------------------------------------------------------------


def machine_description() -> dict[str, Any]:
    """CPU model, core count, accelerator and library versions of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc: dict[str, Any] = {
        "cpu": cpu,
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch
        import ultralytics

        desc["torch"] = torch.__version__
        desc["ultralytics"] = ultralytics.__version__
        desc["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return desc


def card_version(now: datetime | None = None) -> str:
    """Date-based model version, ``YYYY.MM.DD.HHMM`` (UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y.%m.%d.%H%M")


def write_model_card(
    *,
    task: Task,
    onnx_path: Path,
    card_path: Path,
    imgsz: int,
    prepared: PreparedData,
    training: Mapping[str, Any],
    export: ExportInfo,
    parity: ParityReport | None,
    version: str | None = None,
) -> ModelCard:
    """Write the model card of a freshly exported detector (metrics are added by evaluation).

    Args:
        task: ``"xray"`` or ``"document"`` (also the model name).
        onnx_path: the exported model; must sit in the card's folder.
        card_path: where the card goes (``models/<task>.json``).
        imgsz: network input size.
        prepared: the training data folder (its sources become the card's ``data`` section).
        training: the card's ``training`` section.
        export: the checked graph.
        parity: the PyTorch/ONNX comparison, if one was run.
        version: model version; defaults to :func:`card_version`.

    Returns:
        The saved card.
    """
    if onnx_path.parent.resolve() != card_path.parent.resolve():
        raise ExportError(f"the card {card_path} must sit in the same folder as its model {onnx_path}")
    version = version or card_version()
    spec = ModelSpec(
        name=task,
        version=version,
        input_size=(imgsz, imgsz),
        input_name=export.input_name,
        output_names=(export.output_name,),
        class_names=prepared.class_names,
        pad_value=PAD_VALUE,
    )
    train_data, heldout = [], []
    for source in prepared.sources:
        entry = {"name": source.name, "path": source.path, "provenance": source.provenance}
        train_data.append(
            {**entry, "images": source.counts.get("train", 0), "validation_images": source.counts.get("val", 0)}
        )
        if source.repeat != 1:
            train_data[-1]["repeat_per_epoch"] = source.repeat
        if source.name == "real":
            train_data[-1]["class_mapping"] = "every source class id -> 'knife' (ids are unnamed bladed items)"
            heldout.append(
                {
                    **entry,
                    "split": "test",
                    "images": source.counts.get("test", 0),
                    "rule": f"sha256 of the file stem: {REAL_SPLIT_PERCENT['test']} % test, never trained on "
                    "or used for checkpoint selection",
                }
            )
        else:
            heldout.append(
                {
                    **entry,
                    "split": "val",
                    "images": source.counts.get("val", 0),
                    "note": "not trained on, but ultralytics picks best.pt by it",
                }
            )
    card = ModelCard(
        name=task,
        version=version,
        task="detect",
        file=onnx_path.name,
        sha256=sha256_file(onnx_path),
        spec=spec,
        data={"train": train_data, "heldout": heldout},
        metrics={},
        training={
            **dict(training),
            "export": {
                "opset": export.opset,
                "head": export.head,
                "output_shape_batch2": list(export.output_shape),
                "parity": parity.to_dict() if parity else None,
            },
        },
        notes=(
            "Real X-ray scans carry five unnamed bladed-item class ids, all mapped to 'knife'; "
            "metrics on them are class-agnostic (was the object boxed, whatever class was named)."
            if task == "xray" and any(s.name == "real" for s in prepared.sources)
            else ""
        ),
    )
    card.save(card_path)
    return card


# --- the whole pipeline -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageResult:
    """What :func:`train_and_package` produced."""

    train: TrainResult
    onnx_path: Path
    card_path: Path
    metrics: dict[str, Any]


def _sample_images(prepared: PreparedData, count: int) -> list[np.ndarray]:
    """A few images for the parity check: real held-out scans if the run has them, else synthetic val."""
    from vision.imageio import read_image_file

    paths: list[Path] = []
    for source in prepared.sources:
        if source.name == "real":
            paths += [item.image for item in iter_real(Path(source.path), "test")][:count]
    for source in prepared.sources:
        if source.name == "synthetic" and len(paths) < count:
            paths += [item.image for item in synthetic_split(Path(source.path), "val")][: count - len(paths)]
    return [read_image_file(p) for p in paths[:count]]


def train_and_package(
    *,
    task: Task,
    run_dir: str | Path,
    out_dir: str | Path,
    synthetic_dirs: Sequence[str | Path] = (),
    real_dir: str | Path | None = None,
    real_repeat: int = 1,
    synthetic_train_limit: int | None = None,
    greyscale_fraction: float = 0.0,
    resume: bool = False,
    evaluate: bool = True,
    command: str = "",
    **train_kwargs: Any,
) -> PackageResult:
    """Prepare data, train, export, check parity, write the card, and measure on held-out data.

    Args:
        task: ``"xray"`` or ``"document"``.
        run_dir: the run folder (data, checkpoints, session log).
        out_dir: where ``<task>.onnx`` and ``<task>.json`` are written (``models/``).
        synthetic_dirs: synthetic dataset folders (ignored on resume: the prepared data is reused).
        real_dir: the real X-ray folder, or ``None`` to train without real scans.
        real_repeat, synthetic_train_limit, greyscale_fraction: the mix of an epoch (see
            :func:`~detectors.datasets.prepare_detection_data`); ignored on resume.
        resume: continue the run in ``run_dir``.
        evaluate: measure the exported model on each source's held-out split and record it.
        command: the command line that started this, recorded in the card.
        **train_kwargs: passed to :func:`train_detector` (model_yaml, imgsz, epochs, ...).

    Returns:
        The training outcome, the written files and the metrics blocks.
    """
    run_dir = Path(run_dir).resolve()
    out_dir = Path(out_dir)
    class_names = TASK_CLASSES[task]
    data_dir = run_dir / "data"
    if resume:
        prepared = load_prepared(data_dir)
    else:
        prepared = prepare_detection_data(
            out_dir=data_dir,
            class_names=class_names,
            synthetic_dirs=synthetic_dirs,
            real_dir=real_dir,
            real_repeat=real_repeat,
            synthetic_train_limit=synthetic_train_limit,
            greyscale_fraction=greyscale_fraction,
        )
    result = train_detector(task=task, data_yaml=prepared.data_yaml, run_dir=run_dir, resume=resume, **train_kwargs)

    best_ckpt = _load_checkpoint_dict(result.best)
    args = best_ckpt.get("train_args", {})
    # The model's own YAML name: on resume ultralytics replaces train_args["model"] by the checkpoint path.
    architecture = getattr(best_ckpt.get("model"), "yaml", {}).get("yaml_file") or args.get("model", "")
    imgsz = int(args.get("imgsz", train_kwargs.get("imgsz", 416)))
    onnx_path = out_dir / f"{task}.onnx"
    card_path = out_dir / f"{task}.json"
    export = export_onnx(result.best, onnx_path, imgsz=imgsz, num_classes=len(class_names))
    parity = None
    if export.head == "anchor_free":
        parity = parity_check(result.best, onnx_path, _sample_images(prepared, 4), imgsz=imgsz)
    init = args.get("pretrained")
    training = {
        "architecture": str(architecture),
        "init_weights": (
            {"path": str(init), "sha256": sha256_file(init)} if isinstance(init, str) and Path(init).is_file() else None
        ),
        "epochs_planned": result.epochs_planned,
        "epochs_completed": result.epochs_completed,
        "status": "finished" if result.finished else "paused (resumable with --resume)",
        "imgsz": imgsz,
        "batch": int(args.get("batch", 0)),
        "seed": int(args.get("seed", 0)),
        "train_wall_time_s": round(result.total_seconds, 1),
        "sessions": result.sessions,
        "machine": machine_description(),
        "run_dir": str(run_dir),
        "command": command,
    }
    write_model_card(
        task=task,
        onnx_path=onnx_path,
        card_path=card_path,
        imgsz=imgsz,
        prepared=prepared,
        training=training,
        export=export,
        parity=parity,
    )
    metrics: dict[str, Any] = {}
    if evaluate:
        first_synthetic = True
        for source in prepared.sources:
            if source.name == "real":
                key, dataset, split = "real_test", "real", "test"
            else:
                key = "synthetic_val" if first_synthetic else f"synthetic_val_{Path(source.path).name}"
                first_synthetic = False
                dataset, split = source.path, "val"
            real = source.path if source.name == "real" else None
            metrics[key] = evaluate_detector(
                card_path,
                dataset,
                split=split,
                real_dir=real,
                command=evaluate_command(task, card_path, dataset, split=split, real_dir=real),
            )
        for key, block in metrics.items():
            record_metrics(card_path, key, block)
    return PackageResult(train=result, onnx_path=onnx_path, card_path=card_path, metrics=metrics)
