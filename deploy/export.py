"""Export trained weights to ONNX, and write the file only if it reproduces PyTorch.

``customs-vision export`` calls :func:`export_model`. The graph is exported into a temporary file
beside the destination, compared with the PyTorch model on real generated inputs
(:mod:`deploy.samples`), and moved into place (atomically) only when every check passes; a failed
check raises :class:`~detectors.training.ExportError` and leaves the destination untouched.

Checks, per task:

* **detect** (ultralytics YOLO weights): the graph layout (:func:`detectors.training.export_onnx`,
  which also proves the batch dimension is dynamic), the raw head outputs
  (:func:`detectors.training.parity_check`: largest box and score differences), and the
  detections after decoding and NMS through the serving pipeline
  (:class:`detectors.base.YoloDetector` over PyTorch vs over ONNX Runtime, in original-image
  pixels): same boxes, classes and confidences, see :func:`compare_detections`.
* **embed** (similarity checkpoint): :func:`similarity.model.export_onnx` (random inputs at batch
  1 and 3), then the embeddings of real crops through :func:`similarity.embedder.preprocess_crops`.

The export helpers of :mod:`detectors.training` and :mod:`similarity.model` are reused as they
are; this module adds the real-input checks and the write-only-after-checking rule.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from detectors.training import ExportError
from vision.modelcard import sha256_file
from vision.types import Detections, ModelSpec

if TYPE_CHECKING:
    from torch import nn

    from similarity.model import EmbeddingNet

Task = Literal["detect", "embed"]
#: Default ONNX opsets: ultralytics exports detectors at 18; the embedder's graph uses only opset-17 ops.
DEFAULT_OPSET: dict[str, int] = {"detect": 18, "embed": 17}

__all__ = [
    "DEFAULT_OPSET",
    "DetectionParity",
    "ExportError",
    "ExportReport",
    "compare_detections",
    "export_detector",
    "export_embedder",
    "export_model",
]


@dataclass(frozen=True)
class DetectionParity:
    """How the detections of the exported graph compare with PyTorch's on the same images.

    Attributes:
        images: images compared.
        reference: detections from PyTorch, all images together.
        exported: detections from the ONNX graph.
        matched: detections paired across the two (same image, class, box and confidence within
            tolerance).
        borderline: unpaired detections whose confidence lies within the score tolerance of their
            class threshold (a rounding difference may legitimately keep one side's and drop the
            other's); tolerated.
        max_box_px: largest coordinate difference of a matched pair, original-image pixels.
        max_confidence: largest confidence difference of a matched pair.
    """

    images: int
    reference: int
    exported: int
    matched: int
    borderline: int
    max_box_px: float
    max_confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "reference_detections": self.reference,
            "exported_detections": self.exported,
            "matched": self.matched,
            "borderline": self.borderline,
            "max_box_px": self.max_box_px,
            "max_confidence": self.max_confidence,
        }


def compare_detections(
    reference: Sequence[Detections],
    exported: Sequence[Detections],
    *,
    thresholds: npt.ArrayLike,
    box_atol_px: float = 0.5,
    score_atol: float = 1e-3,
) -> DetectionParity:
    """Pair the detections of two runs image by image and require them to agree.

    Within an image, detections are visited by descending reference confidence; each takes the
    unpaired exported detection of the same class whose box and confidence lie within tolerance
    (the closest box if several). Every detection left unpaired must be *borderline*: its
    confidence within ``score_atol`` of its class threshold.

    Args:
        reference: detections of the reference model (PyTorch), one entry per image.
        exported: detections of the exported model, same images and order.
        thresholds: confidence threshold per class id, ``(nc,)``, or one value for all.
        box_atol_px: largest allowed coordinate difference, original-image pixels.
        score_atol: largest allowed confidence difference.

    Returns:
        The comparison (see :class:`DetectionParity`).

    Raises:
        ExportError: different numbers of images, or a detection on one side without a partner
            that is not borderline (the message names the image and the detection).
    """
    if len(reference) != len(exported):
        raise ExportError(f"compared {len(reference)} reference images with {len(exported)} exported ones")
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    matched = borderline = 0
    max_box = max_conf = 0.0
    for index, (ref, got) in enumerate(zip(reference, exported, strict=True)):
        free = np.ones(len(got), dtype=bool)
        ref_unpaired = []
        for i in np.argsort(-ref.confidence, kind="mergesort"):
            cls = int(ref.class_id[i])
            box_diff = np.abs(got.xyxy - ref.xyxy[i]).max(axis=1) if len(got) else np.zeros(0)
            conf_diff = np.abs(got.confidence - ref.confidence[i]) if len(got) else np.zeros(0)
            ok = free & (got.class_id == cls) & (box_diff <= box_atol_px) & (conf_diff <= score_atol)
            if not ok.any():
                ref_unpaired.append(i)
                continue
            j = int(np.flatnonzero(ok)[np.argmin(box_diff[ok])])
            free[j] = False
            matched += 1
            max_box = max(max_box, float(box_diff[j]))
            max_conf = max(max_conf, float(conf_diff[j]))
        leftovers = [("PyTorch", ref, i) for i in ref_unpaired] + [("ONNX", got, j) for j in np.flatnonzero(free)]
        for side, dets, k in leftovers:
            cls = int(dets.class_id[k])
            threshold = float(thr[cls] if thr.size > 1 else thr[0])
            if abs(float(dets.confidence[k]) - threshold) <= score_atol:
                borderline += 1
                continue
            raise ExportError(
                f"image {index}: the {side} detection class {cls} confidence {float(dets.confidence[k]):.4f} "
                f"box {np.round(dets.xyxy[k], 2).tolist()} has no partner on the other side within "
                f"{box_atol_px} px and {score_atol} confidence ({len(ref)} PyTorch vs {len(got)} ONNX detections)"
            )
    return DetectionParity(
        images=len(reference),
        reference=sum(len(d) for d in reference),
        exported=sum(len(d) for d in exported),
        matched=matched,
        borderline=borderline,
        max_box_px=max_box,
        max_confidence=max_conf,
    )


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` wrote, from what, and how closely it reproduces PyTorch.

    Attributes:
        model: model name (the spec's).
        task: ``"detect"`` or ``"embed"``.
        path: the written ONNX file.
        sha256: its sha256 (what a model card records).
        opset: ONNX opset of the graph.
        weights: the PyTorch weights exported.
        weights_sha256: their sha256.
        samples: number of real inputs compared.
        checks: the measured differences, per check (JSON-ready).
        seconds: wall time of export and checks.
    """

    model: str
    task: str
    path: Path
    sha256: str
    opset: int
    weights: Path
    weights_sha256: str
    samples: int
    checks: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "task": self.task,
            "path": str(self.path),
            "sha256": self.sha256,
            "opset": self.opset,
            "weights": str(self.weights),
            "weights_sha256": self.weights_sha256,
            "samples": self.samples,
            "checks": self.checks,
            "seconds": round(self.seconds, 2),
        }

    def save(self, path: str | Path) -> None:
        """Write the report as JSON (``<model>.export.json`` beside the ONNX file by convention)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def _square_size(spec: ModelSpec) -> int:
    h, w = spec.input_size
    if h != w:
        raise ExportError(f"YOLO detectors are exported square; the spec of {spec.name!r} has input size {h}x{w}")
    return h


def _head_only(model: nn.Module) -> nn.Module:
    """Wrap an ultralytics ``DetectionModel``, whose eval forward returns ``(head, features)``, so
    that it returns the head tensor only (what the exported graph outputs)."""
    from torch import nn

    class HeadOnly(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            raw = self.inner(x)
            return raw[0] if isinstance(raw, (list, tuple)) else raw

    return HeadOnly(model)


def _detections(backend: Any, spec: ModelSpec, images: Sequence[np.ndarray], **kwargs: Any) -> list[Detections]:
    from detectors.base import YoloDetector

    try:
        return YoloDetector(backend=backend, spec=spec, **kwargs).detect(list(images))
    finally:
        backend.close()


def export_detector(
    weights: str | Path,
    out_path: str | Path,
    *,
    spec: ModelSpec,
    images: Sequence[npt.NDArray[np.uint8]],
    opset: int = DEFAULT_OPSET["detect"],
    box_atol: float = 0.05,
    score_atol: float = 1e-3,
    det_box_atol_px: float = 0.5,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
) -> ExportReport:
    """Export an ultralytics YOLO checkpoint and check it before writing ``out_path``.

    Args:
        weights: the ``.pt`` checkpoint (``runs/<task>/train/weights/best.pt``).
        out_path: the ONNX file to write.
        spec: the served model's spec: square ``input_size``, ``input_name="images"``, class names.
        images: ``(H, W, 3)`` uint8 RGB inputs, e.g. :func:`deploy.samples.generated_images`.
        opset: ONNX opset.
        box_atol: largest raw box difference, network pixels (:func:`detectors.training.parity_check`).
        score_atol: largest raw class-score difference, and largest confidence difference of two
            paired detections.
        det_box_atol_px: largest box difference of two paired detections, original-image pixels.
        conf_threshold: detector confidence threshold for the detection comparison.
        iou_threshold: NMS IoU threshold for the detection comparison.

    Returns:
        The report; the file is written. (Ultralytics also leaves its own ``<weights>.onnx`` beside
        the checkpoint; that copy is not checked and not used.)

    Raises:
        ExportError: no images, a non-square spec, a wrong graph layout, or any difference above
            its tolerance; ``out_path`` is then not written (an existing file is left as it was).
    """
    from detectors.training import export_onnx, parity_check, ultralytics_yolo
    from vision.runtime.base import TensorSpec
    from vision.runtime.onnxruntime import OnnxRuntimeBackend
    from vision.runtime.torch import TorchBackend

    started = time.perf_counter()
    if not images:
        raise ExportError("the parity check needs at least one image")
    imgsz = _square_size(spec)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_path.parent) as tmp:
        candidate = Path(tmp) / out_path.name
        info = export_onnx(weights, candidate, imgsz=imgsz, num_classes=len(spec.class_names), opset=opset)
        if info.input_name != spec.input_name or info.output_name != spec.output_names[0]:
            raise ExportError(
                f"the graph has input {info.input_name!r} / output {info.output_name!r}, the spec names "
                f"{spec.input_name!r} / {spec.output_names[0]!r}"
            )
        checks: dict[str, Any] = {"graph": {"head": info.head, "output_shape_batch2": list(info.output_shape)}}
        if info.head == "anchor_free":
            checks["raw_outputs"] = parity_check(
                weights, candidate, images, imgsz=imgsz, box_atol=box_atol, score_atol=score_atol
            ).to_dict()

        ultralytics_yolo()
        from ultralytics.nn.tasks import load_checkpoint

        module, _ = load_checkpoint(str(weights))
        torch_backend = TorchBackend(
            module=_head_only(module.float()),
            inputs=(TensorSpec(spec.input_name, spec.input_dtype, (-1, 3, imgsz, imgsz)),),
            output_names=spec.output_names[:1],
            name=f"{spec.name}-pytorch",
        )
        detector_kw = {"conf_threshold": conf_threshold, "iou_threshold": iou_threshold}
        reference = _detections(torch_backend, spec, images, **detector_kw)
        exported = _detections(OnnxRuntimeBackend(path=candidate, threads=None), spec, images, **detector_kw)
        checks["detections"] = compare_detections(
            reference,
            exported,
            thresholds=conf_threshold,
            box_atol_px=det_box_atol_px,
            score_atol=score_atol,
        ).to_dict()
        os.replace(candidate, out_path)
    return ExportReport(
        model=spec.name,
        task="detect",
        path=out_path,
        sha256=sha256_file(out_path),
        opset=info.opset,
        weights=Path(weights),
        weights_sha256=sha256_file(weights),
        samples=len(images),
        checks=checks,
        seconds=time.perf_counter() - started,
    )


def load_embedder_checkpoint(checkpoint: str | Path) -> tuple[EmbeddingNet, ModelSpec]:
    """The embedding branch and spec stored by :func:`similarity.training.train`.

    The checkpoint is ``{"model": state_dict, "config": EmbeddingNet kwargs, "spec": ModelSpec dict}``.

    Raises:
        ExportError: the file is missing or does not have that layout.
    """
    import torch

    from similarity.model import EmbeddingNet

    path = Path(checkpoint)
    if not path.is_file():
        raise ExportError(f"checkpoint {path} does not exist")
    # Tensors and plain containers only: weights_only refuses anything that would run code.
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or not {"model", "config", "spec"} <= ckpt.keys():
        raise ExportError(f"{path} is not a similarity checkpoint (needs 'model', 'config' and 'spec')")
    model = EmbeddingNet(**{k: int(v) for k, v in ckpt["config"].items()})
    model.load_state_dict(ckpt["model"])
    return model.eval(), ModelSpec.from_dict(ckpt["spec"])


def export_embedder(
    checkpoint: str | Path,
    out_path: str | Path,
    *,
    crops: Sequence[npt.NDArray[np.uint8]],
    spec: ModelSpec | None = None,
    opset: int = DEFAULT_OPSET["embed"],
    atol: float = 1e-4,
) -> ExportReport:
    """Export the similarity embedder and check it on real crops before writing ``out_path``.

    Args:
        checkpoint: ``runs/similarity/<version>/last.pt`` (see :func:`load_embedder_checkpoint`).
        out_path: the ONNX file to write.
        crops: ``(H, W, 3)`` uint8 RGB stamp/signature crops.
        spec: the served spec; default the checkpoint's.
        opset: ONNX opset.
        atol: largest allowed difference of any embedding component (unit-norm embeddings, so
            also a bound on how far a cosine similarity can move: at most ``2 * atol * sqrt(D)``).

    Returns:
        The report; the file is written.

    Raises:
        ExportError: no crops, a bad checkpoint, or a difference above ``atol``; ``out_path`` is
            then not written.
    """
    import torch

    from similarity.embedder import preprocess_crops
    from similarity.model import ExportParityError
    from similarity.model import export_onnx as export_embedding_onnx
    from vision.runtime.onnxruntime import OnnxRuntimeBackend

    started = time.perf_counter()
    if not crops:
        raise ExportError("the parity check needs at least one crop")
    model, stored_spec = load_embedder_checkpoint(checkpoint)
    spec = spec or stored_spec
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_path.parent) as tmp:
        candidate = Path(tmp) / out_path.name
        try:
            random_check = export_embedding_onnx(model, candidate, spec, opset=opset, atol=atol)
        except ExportParityError as e:
            raise ExportError(str(e)) from e
        batch = preprocess_crops(list(crops), spec)
        with torch.no_grad():
            expected = model(torch.from_numpy(batch)).numpy()
        backend = OnnxRuntimeBackend(path=candidate)
        try:
            got = backend.run({spec.input_name: batch})[spec.output_names[0]]
        finally:
            backend.close()
        worst = float(np.abs(got - expected).max())
        cosine_shift = float(np.abs(got @ got.T - expected @ expected.T).max())
        if worst > atol:
            raise ExportError(
                f"ONNX embeddings of {len(crops)} real crops differ from PyTorch by up to {worst:.2e} "
                f"(allowed {atol:.0e}); cosine similarities move by up to {cosine_shift:.2e}"
            )
        os.replace(candidate, out_path)
    import onnx

    imports = onnx.load(str(out_path), load_external_data=False).opset_import
    opset_found = next((int(o.version) for o in imports if o.domain in ("", "ai.onnx")), opset)
    return ExportReport(
        model=spec.name,
        task="embed",
        path=out_path,
        sha256=sha256_file(out_path),
        opset=opset_found,
        weights=Path(checkpoint),
        weights_sha256=sha256_file(checkpoint),
        samples=len(crops),
        checks={
            "random_inputs": {
                "max_abs_diff": random_check.max_abs_diff,
                "batch_sizes": list(random_check.batch_sizes_checked),
            },
            "real_crops": {"max_abs_diff": worst, "max_cosine_shift": cosine_shift},
        },
        seconds=time.perf_counter() - started,
    )


def export_model(
    *,
    task: Task,
    weights: str | Path,
    out_path: str | Path,
    samples: Sequence[npt.NDArray[np.uint8]],
    spec: ModelSpec | None = None,
    opset: int | None = None,
    **tolerances: float,
) -> ExportReport:
    """Export one model with its parity checks; dispatches on ``task``.

    Args:
        task: ``"detect"`` (ultralytics checkpoint; ``spec`` required) or ``"embed"`` (similarity
            checkpoint; ``spec`` defaults to the checkpoint's).
        weights: the PyTorch weights.
        out_path: the ONNX file to write (only after every check passed).
        samples: real inputs: whole images for detectors, crops for the embedder.
        spec: the served model's spec.
        opset: ONNX opset; default :data:`DEFAULT_OPSET` of the task.
        **tolerances: passed to :func:`export_detector` or :func:`export_embedder`.

    Raises:
        ExportError: as the task's function; also an unknown task or a detector without a spec.
    """
    if task == "detect":
        if spec is None:
            raise ExportError("exporting a detector needs its ModelSpec (input size, class names)")
        return export_detector(
            weights, out_path, spec=spec, images=samples, opset=opset or DEFAULT_OPSET["detect"], **tolerances
        )
    if task == "embed":
        return export_embedder(
            weights, out_path, crops=samples, spec=spec, opset=opset or DEFAULT_OPSET["embed"], **tolerances
        )
    raise ExportError(f"unknown task {task!r}; expected 'detect' or 'embed'")
