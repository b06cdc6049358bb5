"""Quantize a shipped model to INT8 for the CPU, and ship it only if it keeps its accuracy.

``customs-vision quantize models/xray.json`` calls :func:`quantize_card`:

1. The card is read and its ONNX file sha256-verified. An INT8 card is refused: a model is
   quantized once, from its float32 parent.
2. The graph is statically quantized with a recipe of :data:`deploy.precision.INT8_RECIPES`
   (default ``cpu-qoperator``), its scales calibrated on generated images
   (:data:`deploy.samples.CALIBRATION_SEED`) or on a folder of images.
3. The accuracy gate (:mod:`deploy.accuracy`) measures the float32 model and the INT8 graph on the
   same held-out set through the serving code (mAP50 for detectors, EER for the embedder), each
   through its own sha256-verified card. The held-out set is the one given, else the card's own
   synthetic val split (``metrics.synthetic_val.path``), else one generated with
   :data:`deploy.samples.HELDOUT_SEED` (:func:`resolve_heldout`); the card says which.
4. Within the margin: ``<out>/<name>-int8.onnx`` and its card ``<out>/<name>-int8.json`` are
   written (the model first, the card last, each by an atomic rename). Beyond it:
   :class:`~deploy.accuracy.AccuracyGateError`, and nothing is written: the work happens in a
   temporary folder.

The INT8 card is a full card (:class:`~vision.modelcard.ModelCard`, loads and verifies like any
other) with the parent's spec, classes and input, and:

* ``version``: the parent's with :data:`INT8_SUFFIX`, so ``/readyz``, every report's ``models`` and
  the specimen registry (which re-embeds specimens when the version changes) tell the variants apart;
* ``training.precision = "int8"``, ``training.quantization`` (recipe, calibration method and
  images, tool versions) and ``training.parent`` (name, version, file and sha256 of the float32
  card): the service serves an INT8 card only while its parent is the float32 card beside it;
* ``metrics.int8_gate``: the metric of both models on the held-out set, the loss, the margin, the
  held-out set and the command; for detectors also the full evaluation blocks ``heldout_fp32`` and
  ``heldout_int8`` (per class, ``model_sha256`` of the file measured);
* the parent's ``scoring`` block (the embedder's calibration and thresholds), which the service
  needs to serve an embedder; its thresholds were fit on float32 cosines, and the EER gate bounds
  how far the INT8 model's differ.

The ``training``/``metrics`` placement is because :class:`~vision.modelcard.ModelCard` keeps only its
own top-level fields when a card is loaded and saved again (``evaluate --record`` does).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deploy.accuracy import AccuracyGateError, GateResult, Metric, accuracy_gate
from deploy.precision import INT8_RECIPES, CalibrationMethodName, CalibrationReader, calibration_batches, quantize_int8
from vision.modelcard import ModelCard, ModelCardError, load_verified, sha256_file

#: Appended to a model's name for its INT8 files (``xray-int8.onnx``) and to its version.
INT8_SUFFIX = "-int8"
#: What each task's gate measures.
TASK_METRIC: dict[str, Metric] = {"detect": "map50", "embed": "eer"}


class QuantizeError(ValueError):
    """The model cannot be quantized as asked (an INT8 card, no held-out data, a bad option)."""


@dataclass(frozen=True)
class HeldoutSet:
    """The labelled data the gate measures both models on.

    Attributes:
        path: a YOLO data set folder (detectors) or a specimen folder ``<owner>/genuine|forged``
            (embedder).
        split: detectors: the split measured (``images/<split>``); ``None`` for the embedder.
        source: how it was chosen, for the card: ``{"source": "given" | "card" | "generated", ...}``.
    """

    path: Path
    split: str | None
    source: dict[str, Any]


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_card` wrote and measured.

    Attributes:
        card: the INT8 card (``<out>/<name>-int8.json``).
        model: the INT8 graph (``<out>/<name>-int8.onnx``).
        gate: float32 (``baseline``) vs INT8 (``candidate``) on the held-out set.
        heldout: the held-out set's description.
        seconds: wall time.
    """

    card: Path
    model: Path
    gate: GateResult
    heldout: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "card": str(self.card),
            "model": str(self.model),
            "gate": self.gate.to_dict(),
            "heldout": self.heldout,
            "seconds": round(self.seconds, 1),
        }


def is_int8(card: ModelCard) -> bool:
    """Whether a card describes an INT8 model written by :func:`quantize_card`."""
    return card.training.get("precision") == "int8"


@contextlib.contextmanager
def resolve_heldout(
    card: ModelCard, given: str | Path | None, *, count: int = 200, kind: str = "stamp"
) -> Iterator[HeldoutSet]:
    """The held-out set for a card's gate: ``given``, else the card's synthetic val split, else generated.

    A generated set lives in a temporary folder for the duration of the ``with`` block.

    Args:
        card: the float32 card.
        given: a folder, or ``None``.
        count: generated sets: images (detectors) or owners (embedder), see
            :func:`deploy.samples.write_heldout`.
        kind: embedder: ``"stamp"`` or ``"signature"`` specimens.

    Raises:
        QuantizeError: ``given`` is not a folder.
        SampleError: nothing can be generated for this model.
    """
    from deploy.samples import write_heldout

    split = "val" if card.task == "detect" else None
    if given is not None:
        path = Path(given)
        if not path.is_dir():
            raise QuantizeError(f"held-out data {path} is not a folder")
        yield HeldoutSet(path, split, {"source": "given", "path": str(path.resolve()), "split": split})
        return
    own = card.metrics.get("synthetic_val", {}) if card.task == "detect" else {}
    if own.get("path") and Path(own["path"]).is_dir():
        split = str(own.get("split") or "val")
        yield HeldoutSet(
            Path(own["path"]),
            split,
            {"source": "card", "path": str(Path(own["path"]).resolve()), "split": split, "card_block": "synthetic_val"},
        )
        return
    with tempfile.TemporaryDirectory(prefix="cv-heldout-") as tmp:
        described = write_heldout(card.name, tmp, count, kind=kind)
        yield HeldoutSet(Path(tmp), described.get("split"), {"source": "generated", **described})


def quantize_card(
    card_path: str | Path,
    out_dir: str | Path,
    *,
    calibration_images: Sequence[npt.NDArray[np.uint8]],
    calibration_source: dict[str, Any],
    heldout: HeldoutSet,
    recipe: str = "cpu-qoperator",
    method: CalibrationMethodName = "minmax",
    margin: float | None = None,
    calibration_batch: int = 8,
    heldout_limit: int | None = None,
    heldout_kind: str = "stamp",
    threads: int | None = None,
    command: str = "",
) -> QuantizeResult:
    """Steps 1-4 of the module docstring.

    Args:
        card_path: the float32 model card (``models/xray.json``).
        out_dir: where ``<name>-int8.onnx`` and ``<name>-int8.json`` go (created if needed, and
            only when the gate passes).
        calibration_images: ``(H, W, 3)`` uint8 RGB images (crops for the embedder); never the
            held-out images.
        calibration_source: how they were obtained, for the card (``{"source": "generated", ...}``).
        heldout: from :func:`resolve_heldout`.
        recipe: a name in :data:`~deploy.precision.INT8_RECIPES`.
        method: calibration method (``minmax`` keeps one running range per tensor; the histogram
            methods hold every activation of every calibration batch in memory).
        margin: largest accepted loss, absolute mAP50 or EER, >= 0; default 0.01.
        calibration_batch: images per calibration batch.
        heldout_limit: detectors: measure only the first N held-out images.
        heldout_kind: embedder: ``"stamp"`` or ``"signature"``.
        threads: ONNX Runtime intra-op threads of the gate's sessions (default: ONNX Runtime's).
        command: the command line, recorded in the card.

    Returns:
        What was written and measured.

    Raises:
        ModelCardError: the card or its ONNX file is missing, malformed or changed.
        QuantizeError: the card is already INT8, an unknown recipe, or a negative margin.
        PrecisionError: no calibration images.
        AccuracyGateError: the INT8 model lost more than the margin; nothing was written.
    """
    started = time.perf_counter()
    card_path = Path(card_path)
    card, onnx_path = load_verified(card_path)
    if is_int8(card):
        raise QuantizeError(f"{card_path} is already an INT8 card: quantize its float32 parent instead")
    if recipe not in INT8_RECIPES:
        raise QuantizeError(f"unknown INT8 recipe {recipe!r}; expected one of {sorted(INT8_RECIPES)}")
    if margin is not None and margin < 0:
        raise QuantizeError(f"margin must be >= 0, got {margin}")
    metric = TASK_METRIC[card.task]
    batches = calibration_batches(calibration_images, card.spec, task=card.task, batch_size=calibration_batch)
    name = f"{card.name}{INT8_SUFFIX}"
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="cv-quantize-") as tmp:
        t0 = time.perf_counter()
        reader = CalibrationReader(card.spec.input_name, batches)
        graph = quantize_int8(onnx_path, Path(tmp) / f"{name}.onnx", reader, method=method, recipe=recipe)
        quantize_seconds = time.perf_counter() - t0
        quantization = {
            "recipe": recipe,
            "recipe_purpose": INT8_RECIPES[recipe].purpose,
            "method": method,
            "calibration": {**calibration_source, "images": len(calibration_images), "batch": calibration_batch},
            "tool": _tools(),
            "seconds": round(quantize_seconds, 1),
        }
        draft = _int8_card(card, card_path, graph, quantization, metrics={})
        draft_path = Path(tmp) / f"{name}.json"
        draft.save(draft_path)
        measure = functools.partial(
            _measure,
            task=card.task,
            heldout=heldout.path,
            split=heldout.split,
            limit=heldout_limit,
            kind=heldout_kind,
            kwargs={} if threads is None else {"threads": threads},
            command=command,
        )
        fp32_value, fp32_block = measure(card_path)
        int8_value, int8_block = measure(draft_path)
        try:
            gate = accuracy_gate(metric, baseline=fp32_value, candidate=int8_value, margin=margin)
        except ValueError as e:  # a held-out set without ground truth measures nothing
            raise QuantizeError(str(e)) from e
        if not gate.passed:
            raise AccuracyGateError(f"refusing to write {name}: {gate.message}")
        metrics: dict[str, Any] = {
            "int8_gate": {
                "metric": metric,
                "fp32": gate.baseline,
                "int8": gate.candidate,
                "loss": round(gate.loss, 6),
                "margin": gate.margin,
                "passed": gate.passed,
                "heldout": {**heldout.source, **({"limit": heldout_limit} if heldout_limit else {})},
                "backend": "onnxruntime",
                "measured": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": command,
            }
        }
        if fp32_block is not None and int8_block is not None:
            metrics["heldout_fp32"], metrics["heldout_int8"] = fp32_block, int8_block
        if "scoring" in card.metrics:
            metrics["scoring"] = card.metrics["scoring"]
        final = _int8_card(card, card_path, graph, quantization, metrics=metrics)
        out_dir.mkdir(parents=True, exist_ok=True)
        model_out, card_out = out_dir / f"{name}.onnx", out_dir / f"{name}.json"
        _place(graph, model_out)
        final.save(draft_path)
        _place(draft_path, card_out)
    return QuantizeResult(card_out, model_out, gate, heldout.source, time.perf_counter() - started)


def _int8_card(
    parent: ModelCard, parent_path: Path, graph: Path, quantization: dict[str, Any], *, metrics: dict[str, Any]
) -> ModelCard:
    """The INT8 card for ``graph`` (the file name it will have in the output folder)."""
    version = f"{parent.version}{INT8_SUFFIX}"
    gate = metrics.get("int8_gate")
    gate_note = (
        f" Accuracy gate on {gate['heldout'].get('path') or 'generated data'}: {gate['metric']} float32 "
        f"{gate['fp32']:.4f}, int8 {gate['int8']:.4f} (loss {gate['loss']:+.4f}, margin {gate['margin']:.4f})."
        if gate
        else ""
    )
    return ModelCard(
        name=parent.name,
        version=version,
        task=parent.task,
        file=graph.name,
        sha256=sha256_file(graph),
        spec=replace(parent.spec, version=version),
        data={**parent.data, "calibration": quantization["calibration"]},
        metrics=metrics,
        training={
            "precision": "int8",
            "quantization": quantization,
            "parent": {
                "name": parent.name,
                "version": parent.version,
                "card": str(parent_path),
                "file": parent.file,
                "sha256": parent.sha256,
            },
        },
        notes=f"INT8 quantization ({quantization['recipe']}, {quantization['method']} calibration) of "
        f"{parent.name} {parent.version} for ONNX Runtime's CPU provider; served with CV_PRECISION=int8."
        f"{gate_note} Training data and history: the parent card.",
    )


def _measure(
    card_path: Path,
    *,
    task: str,
    heldout: Path,
    split: str | None,
    limit: int | None,
    kind: str,
    kwargs: dict[str, Any],
    command: str,
) -> tuple[float, dict[str, Any] | None]:
    """The gate's metric of one card on the held-out set, and the full evaluation block of a detector."""
    from deploy.accuracy import embedder_eer

    if task == "detect":
        from detectors.evaluation import evaluate_detector

        block = evaluate_detector(card_path, heldout, split=split, backend_kwargs=kwargs, limit=limit, command=command)
        value = block.get("map50")
        return (float("nan") if value is None else float(value)), block
    return embedder_eer(card_path, heldout, backend_name="onnxruntime", backend_kwargs=kwargs, kind=kind), None


def _place(source: Path, target: Path) -> None:
    """Copy ``source`` next to ``target`` and rename it into place (atomic within the folder)."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def _tools() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "python": platform.python_version(),
        "function": "deploy.precision.quantize_int8",
    }


__all__ = [
    "INT8_SUFFIX",
    "AccuracyGateError",
    "HeldoutSet",
    "ModelCardError",
    "QuantizeError",
    "QuantizeResult",
    "is_int8",
    "quantize_card",
    "resolve_heldout",
]
