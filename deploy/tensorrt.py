"""Build a TensorRT engine for a shipped model, and write it only if it keeps its accuracy.

``customs-vision build-engine MODEL --precision fp16|int8`` calls :func:`build_checked_engine`:

1. The model card is read and its ONNX file sha256-verified.
2. The graph gets its precision (:mod:`deploy.precision`: TensorRT 11 builds strongly typed
   networks only, so fp16 is a converted graph and INT8 is explicit Q/DQ quantization calibrated on
   batches cut from generated data, or from ``--calibration DIR``).
3. TensorRT builds the engine with one optimisation profile for batch 1..N from the spec
   (:func:`profile_shapes`, the same :func:`deploy.batching.batch_plan` the Triton config uses).
4. The accuracy gate (:mod:`deploy.accuracy`) measures the float32 ONNX model and the engine on the
   same held-out set (mAP50 for detectors, EER for the embedder) and refuses to write an engine
   that lost more than the margin.
5. The engine is moved into place (``triton_models/<model>/<version>/model.plan`` by default) with
   a JSON build report beside it.

Engines only run on the GPU model and TensorRT version that built them, so they are built on the
target machine and never committed. Steps 3-5 need an NVIDIA GPU; without one,
:func:`require_gpu` raises :class:`NoGPUError` before any work is done. ``dry_run=True`` runs
steps 1, 2 and 4 on the CPU, with the converted graph on ONNX Runtime standing in for the engine:
an estimate of the precision's cost, not a measurement of TensorRT's kernels.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deploy.accuracy import AccuracyGateError, GateResult, Metric, accuracy_gate, detector_map50, embedder_eer, enforce
from deploy.batching import batch_plan
from deploy.precision import CalibrationMethodName, Precision, calibration_batches, prepare_graph, quantization_summary
from vision.modelcard import ModelCard, load_verified
from vision.types import ModelSpec

__all__ = [
    "AccuracyGateError",
    "EngineBuild",
    "EngineBuildError",
    "NoGPUError",
    "ProfileShapes",
    "build_checked_engine",
    "build_engine",
    "gpu_unavailable_reason",
    "profile_shapes",
    "require_gpu",
]

#: What each task's gate measures.
TASK_METRIC: dict[str, Metric] = {"detect": "map50", "embed": "eer"}


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the graph or build the engine."""


class NoGPUError(EngineBuildError):
    """No NVIDIA GPU (or no TensorRT) on this machine: engines are built on the GPU they run on."""


@dataclass(frozen=True)
class ProfileShapes:
    """The optimisation profile of the image input.

    Attributes:
        input_name: the input tensor.
        min: ``(1, 3, H, W)``.
        opt: ``(opt_batch, 3, H, W)``: the shape the kernels are tuned for.
        max: ``(max_batch, 3, H, W)``.
    """

    input_name: str
    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input_name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def profile_shapes(spec: ModelSpec) -> ProfileShapes:
    """Profile shapes for batch 1..``spec.max_batch`` at the spec's input size (see :func:`batch_plan`)."""
    plan = batch_plan(spec)
    h, w = spec.input_size
    return ProfileShapes(
        input_name=spec.input_name,
        min=(plan.min_batch, 3, h, w),
        opt=(plan.opt_batch, 3, h, w),
        max=(plan.max_batch, 3, h, w),
    )


def gpu_unavailable_reason() -> str | None:
    """``None`` when TensorRT and a CUDA GPU are usable here, else a sentence saying what is missing."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return (
            "TensorRT is not installed (pip install 'customs-vision[gpu]' on the machine with the NVIDIA GPU "
            "the engine will run on)"
        )
    try:
        import torch
    except ImportError:
        return "torch is not installed; it is needed to find the CUDA GPU (pip install 'customs-vision[train]')"
    if not torch.cuda.is_available():
        return (
            "no NVIDIA GPU found on this machine: a TensorRT engine is built on the GPU model it will run on. "
            "Run build-engine on the target GPU machine (or use --dry-run to check the precision on the CPU)"
        )
    return None


def require_gpu() -> None:
    """Raise :class:`NoGPUError` with a plain explanation unless TensorRT and a GPU are usable."""
    reason = gpu_unavailable_reason()
    if reason is not None:
        raise NoGPUError(reason)


def build_engine(graph_path: str | Path, spec: ModelSpec, *, workspace_gib: float = 4.0) -> bytes:
    """Build a serialized engine from an ONNX graph whose precision is already set (GPU only).

    Args:
        graph_path: the graph from :func:`deploy.precision.prepare_graph`.
        spec: the model's spec (input name, size, batch range).
        workspace_gib: TensorRT's workspace memory limit.

    Returns:
        The serialized engine.

    Raises:
        NoGPUError: no TensorRT or no GPU here.
        EngineBuildError: the ONNX parser or the builder failed (the parser's errors are listed).
    """
    require_gpu()
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    # Strongly typed (layers keep the graph's types): always on in TensorRT 11, opt-in in 10.
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(graph_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {graph_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    shapes = profile_shapes(spec)
    profile = builder.create_optimization_profile()
    profile.set_shape(shapes.input_name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {graph_path} (see the log above)")
    return bytes(serialized)


@dataclass(frozen=True)
class EngineBuild:
    """Outcome of :func:`build_checked_engine`.

    Attributes:
        model: model name.
        version: model card version.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        engine: the written engine; ``None`` for a dry run.
        gate: the accuracy comparison.
        profile: the optimisation profile.
        graph: Q/DQ node counts and float types of the built graph.
        calibration_images: images used for INT8 calibration (0 otherwise).
        dry_run: the candidate was the converted graph on ONNX Runtime, not an engine.
        machine: GPU, TensorRT version, host.
        seconds: wall time.
    """

    model: str
    version: str
    precision: str
    engine: Path | None
    gate: GateResult
    profile: ProfileShapes
    graph: dict[str, Any]
    calibration_images: int
    dry_run: bool
    machine: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "precision": self.precision,
            "engine": str(self.engine) if self.engine else None,
            "gate": self.gate.to_dict(),
            "profile": self.profile.to_dict(),
            "graph": self.graph,
            "calibration_images": self.calibration_images,
            "dry_run": self.dry_run,
            "machine": self.machine,
            "seconds": round(self.seconds, 1),
        }


def _machine() -> dict[str, Any]:
    desc: dict[str, Any] = {"host": platform.node(), "python": platform.python_version()}
    try:
        import tensorrt as trt

        desc["tensorrt"] = trt.__version__
    except ImportError:
        desc["tensorrt"] = None
    try:
        import torch

        desc["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        desc["gpu"] = None
    return desc


def _measure(
    card_path: Path, card: ModelCard, heldout: Path, backend_name: str, kwargs: dict[str, Any], **opts: Any
) -> float:
    if card.task == "detect":
        return detector_map50(
            card_path, heldout, backend_name=backend_name, backend_kwargs=kwargs, limit=opts.get("heldout_limit")
        )
    return embedder_eer(card_path, heldout, backend_name=backend_name, backend_kwargs=kwargs, kind=opts["heldout_kind"])


def build_checked_engine(
    card_path: str | Path,
    out_path: str | Path,
    *,
    precision: Precision,
    heldout: str | Path,
    calibration_images: Sequence[npt.NDArray[np.uint8]] = (),
    calibration_method: CalibrationMethodName = "entropy",
    calibration_batch: int = 8,
    margin: float | None = None,
    heldout_limit: int | None = None,
    heldout_kind: str = "stamp",
    workspace_gib: float = 4.0,
    dry_run: bool = False,
) -> EngineBuild:
    """Steps 1-5 of the module docstring.

    Args:
        card_path: the model card (``models/xray.json``).
        out_path: the engine to write (e.g. ``triton_models/xray/1/model.plan``); its build report
            goes to ``<out_path>.json``.
        precision: ``"fp16"``, ``"int8"`` (or ``"fp32"``).
        heldout: held-out data: a YOLO data set folder (detectors, its ``val`` split) or a specimen
            folder ``<owner>/genuine|forged`` (embedder); never the calibration images.
        calibration_images: INT8 calibration inputs (whole images; crops for the embedder).
        calibration_method: ``"entropy"``, ``"minmax"`` or ``"percentile"``.
        calibration_batch: images per calibration batch.
        margin: largest accepted accuracy loss (absolute mAP50 or EER); default per metric.
        heldout_limit: detectors: measure only the first N held-out images.
        heldout_kind: embedder: ``"stamp"`` or ``"signature"``.
        workspace_gib: TensorRT workspace limit.
        dry_run: CPU only: gate the converted graph on ONNX Runtime, build and write nothing.

    Returns:
        What was built and measured.

    Raises:
        NoGPUError: not a dry run and no GPU/TensorRT here (raised before any other work).
        ModelCardError: the card or its ONNX file is missing or changed.
        PrecisionError: INT8 without calibration images.
        AccuracyGateError: the candidate lost more than the margin; nothing is written.
        EngineBuildError: TensorRT failed.
    """
    started = time.perf_counter()
    if not dry_run:
        require_gpu()
    card_path = Path(card_path)
    card, onnx_path = load_verified(card_path)
    metric = TASK_METRIC[card.task]
    calibration = (
        calibration_batches(calibration_images, card.spec, task=card.task, batch_size=calibration_batch)
        if precision == "int8"
        else []
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    opts = {"heldout_limit": heldout_limit, "heldout_kind": heldout_kind}
    with tempfile.TemporaryDirectory(prefix=".engine-", dir=out_path.parent) as tmp:
        graph = prepare_graph(
            onnx_path,
            Path(tmp) / f"{card.name}.{precision}.onnx",
            precision=precision,
            calibration=calibration,
            input_name=card.spec.input_name,
            method=calibration_method,
        )
        if dry_run:
            candidate_backend, candidate_kwargs = "onnxruntime", {"path": graph}
        else:
            engine_tmp = Path(tmp) / out_path.name
            engine_tmp.write_bytes(build_engine(graph, card.spec, workspace_gib=workspace_gib))
            candidate_backend, candidate_kwargs = "tensorrt", {"engine_path": engine_tmp}
        baseline = _measure(card_path, card, Path(heldout), "onnxruntime", {}, **opts)
        candidate = _measure(card_path, card, Path(heldout), candidate_backend, candidate_kwargs, **opts)
        gate = enforce(accuracy_gate(metric, baseline=baseline, candidate=candidate, margin=margin))
        result = EngineBuild(
            model=card.name,
            version=card.version,
            precision=precision,
            engine=None if dry_run else out_path,
            gate=gate,
            profile=profile_shapes(card.spec),
            graph=quantization_summary(graph),
            calibration_images=len(calibration_images) if precision == "int8" else 0,
            dry_run=dry_run,
            machine=_machine(),
            seconds=time.perf_counter() - started,
        )
        if not dry_run:
            os.replace(engine_tmp, out_path)
            out_path.with_name(out_path.name + ".json").write_text(
                json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8"
            )
    return result
