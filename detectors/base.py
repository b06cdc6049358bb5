"""The machinery every YOLO detector shares: letterbox a batch, run it through a backend, decode.

:class:`YoloDetector` knows nothing about X-rays or documents; :mod:`detectors.xray` and
:mod:`detectors.document` subclass it with their classes, thresholds and domain rules. It talks to
the model only through the :class:`~vision.runtime.base.InferenceBackend` protocol, so the same
detector runs on ONNX Runtime, TensorRT or Triton.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from detectors.yolo import HEAD_FORMATS, DecodeOptions, decode_batch
from vision.letterbox import LetterboxTransform, letterbox_nchw
from vision.modelcard import ModelCardError, load_verified
from vision.runtime.base import BackendError, InferenceBackend
from vision.runtime.registry import create_backend
from vision.types import Detections, ImageRecord, InspectionReport, Modality, ModelSpec, RiskLevel

# Backends that load the card's ONNX file themselves and so receive it as ``path=``. Others (TensorRT
# engines, a Triton server) are given their location by the caller.
_ONNX_FILE_BACKENDS = frozenset({"onnxruntime"})


@dataclass(frozen=True)
class StageTimings:
    """Wall time of one :meth:`YoloDetector.detect` call, per stage, for the whole batch.

    Attributes:
        preprocess_ms: letterboxing and conversion to the network's input tensor.
        model_ms: backend calls (all chunks together).
        postprocess_ms: decoding, NMS and mapping back to original pixels.
        images: number of images in the call, to turn totals into per-image figures.
        model_calls: number of backend calls made (one per chunk of at most ``max_batch`` images).
    """

    preprocess_ms: float = 0.0
    model_ms: float = 0.0
    postprocess_ms: float = 0.0
    images: int = 0
    model_calls: int = 0

    def per_image(self) -> dict[str, float]:
        """Stage name -> milliseconds per image (batch totals divided by the number of images)."""
        n = max(self.images, 1)
        return {
            "preprocess": self.preprocess_ms / n,
            "model": self.model_ms / n,
            "postprocess": self.postprocess_ms / n,
        }


class YoloDetector:
    """A YOLO detector over any inference backend.

    Args:
        backend: a loaded model whose input is ``spec.input_name`` ``(B, 3, H, W)`` and whose output
            ``spec.output_names[0]`` is an anchor-free ``(B, 4+nc, A)`` or end-to-end ``(B, K, 6)``
            detection head (see :mod:`detectors.yolo`).
        spec: what the model expects (input size, normalisation, class names, largest batch).
        conf_threshold: minimum confidence of a reported detection, for classes without their own.
        iou_threshold: NMS IoU threshold (anchor-free heads only).
        class_thresholds: class name -> minimum confidence, replacing ``conf_threshold`` for that class.
        max_det: most detections kept per image.
        multi_label: let one anchor report several classes (anchor-free heads only).
        head: ``"auto"`` (tell by output shape), ``"anchor_free"`` or ``"end_to_end"``.

    Raises:
        ValueError: the spec has no class names, a threshold is out of range or names an unknown class.
        BackendError: the backend does not have the input the spec names.

    The detector is not thread-safe (the backend is called from one thread at a time);
    :attr:`last_timings` describes the most recent :meth:`detect` call.

    Subclasses set :attr:`modality` and may override :meth:`risk` to turn detections into a risk level.
    """

    #: Modality of the records :meth:`inspect` accepts; ``None`` accepts any.
    modality: ClassVar[Modality | None] = None

    def __init__(
        self,
        *,
        backend: InferenceBackend,
        spec: ModelSpec,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        class_thresholds: Mapping[str, float] | None = None,
        max_det: int = 300,
        multi_label: bool = False,
        head: str = "auto",
    ) -> None:
        if head not in HEAD_FORMATS:
            raise ValueError(f"head must be one of {HEAD_FORMATS}, got {head!r}")
        self.backend = backend
        self.spec = spec
        self.head = head
        self.options = DecodeOptions.build(
            spec.class_names,
            conf_threshold=conf_threshold,
            class_thresholds=class_thresholds,
            iou_threshold=iou_threshold,
            max_det=max_det,
            multi_label=multi_label,
        )
        inputs = {t.name: t for t in backend.inputs}
        if spec.input_name not in inputs:
            raise BackendError(
                f"model {spec.name!r} has inputs {sorted(inputs)}, but its spec names {spec.input_name!r}"
            )
        # A static-batch graph (e.g. a TensorRT engine built for batch 1) accepts exactly that batch.
        fixed = inputs[spec.input_name].shape[0] if inputs[spec.input_name].shape else -1
        self._fixed_batch: int | None = fixed if fixed > 0 else None
        self.chunk_size = self._fixed_batch or spec.max_batch
        self.last_timings = StageTimings()

    @classmethod
    def from_card(
        cls,
        card_path: str | Path,
        *,
        backend_name: str = "onnxruntime",
        detector_kwargs: Mapping[str, Any] | None = None,
        **backend_kwargs: Any,
    ) -> Self:
        """Load a shipped model through its model card.

        The card is read and its ONNX file checked against the recorded sha256 (so the served model is
        the one that was measured). For ONNX-file backends the verified file is passed as ``path=``; a
        Triton backend gets ``model_name=<card name>`` unless given one.

        Args:
            card_path: the model card JSON, e.g. ``models/xray.json``.
            backend_name: registered backend name (see :func:`vision.runtime.registry.create_backend`).
            detector_kwargs: keyword arguments for the detector's constructor (thresholds, max_det, ...).
            **backend_kwargs: passed to the backend factory, e.g. ``threads=2``.

        Raises:
            ModelCardError: the card is missing or malformed, is not a detection model, or its model
                file is missing or changed.
            BackendError: the backend cannot load the model.
            ValueError: ``detector_kwargs`` are invalid for this model (e.g. an unknown class name).
        """
        card, onnx_path = load_verified(card_path)
        if card.task != "detect":
            raise ModelCardError(f"{card_path} describes a {card.task!r} model, not a detector")
        if backend_name in _ONNX_FILE_BACKENDS:
            backend_kwargs.setdefault("path", onnx_path)
        elif backend_name == "triton":
            # The Triton model repository names each model after its card (see deploy/).
            backend_kwargs.setdefault("model_name", card.name)
        backend = create_backend(backend_name, **backend_kwargs)
        try:
            return cls(backend=backend, spec=card.spec, **dict(detector_kwargs or {}))
        except Exception:
            backend.close()
            raise

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    def detect(
        self, images: Sequence[np.ndarray], *, original_hw: Sequence[tuple[int, int]] | None = None
    ) -> list[Detections]:
        """Detect objects in a batch of images.

        Args:
            images: ``(H, W, 3)`` uint8 RGB arrays; sizes may differ.
            original_hw: per image, the ``(height, width)`` of the original that image was decoded
                from at reduced scale (:func:`vision.imageio.decode_image_reduced`); boxes are then
                reported in the original's pixels. ``None``: the images are the originals.

        Returns:
            One :class:`Detections` per image, boxes ``x1, y1, x2, y2`` in that image's original pixels,
            sorted by descending confidence. Timings are left in :attr:`last_timings`.

        Raises:
            ValueError: an image is not ``(H, W, 3)`` uint8, or ``original_hw`` does not hold one
                positive ``(height, width)`` per image.
            BackendError: the backend failed or returned no output the spec names.
            YoloOutputError: the model's output is not a known detection-head layout.
        """
        detections, self.last_timings = self.detect_with_timings(images, original_hw=original_hw)
        return detections

    def detect_with_timings(
        self, images: Sequence[np.ndarray], *, original_hw: Sequence[tuple[int, int]] | None = None
    ) -> tuple[list[Detections], StageTimings]:
        """Like :meth:`detect`, but return the timings instead of storing them (safe to share)."""
        check_images(images)
        sizes = original_sizes(images, original_hw)
        results: list[Detections] = []
        pre = model = post = 0.0
        calls = 0
        for start in range(0, len(images), self.chunk_size):
            chunk = slice(start, start + self.chunk_size)
            t0 = time.perf_counter()
            tensor, transforms = self._preprocess(images[chunk], sizes[chunk])
            t1 = time.perf_counter()
            output = self._run(tensor)[: len(transforms)]
            t2 = time.perf_counter()
            results.extend(self._postprocess(output, transforms))
            t3 = time.perf_counter()
            pre, model, post, calls = pre + t1 - t0, model + t2 - t1, post + t3 - t2, calls + 1
        timings = StageTimings(
            preprocess_ms=pre * 1e3,
            model_ms=model * 1e3,
            postprocess_ms=post * 1e3,
            images=len(images),
            model_calls=calls,
        )
        return results, timings

    def risk(self, detections: Detections) -> RiskLevel | None:
        """Risk level of one image's detections; ``None`` where the domain has no risk level."""
        return None

    def inspect(self, record: ImageRecord) -> InspectionReport:
        """Inspect one record; see :meth:`inspect_batch`."""
        return self.inspect_batch([record])[0]

    def inspect_batch(self, records: Sequence[ImageRecord]) -> list[InspectionReport]:
        """Detect on several records with batched model calls and build one report per record.

        Each report's ``timings_ms`` holds ``preprocess``, ``model`` and ``postprocess`` milliseconds
        *per image*, i.e. the batch's totals divided by the number of records (batching makes a single
        image's share of a model call the only meaningful per-image figure).

        Raises:
            ValueError: a record's modality is not the one this detector inspects.
        """
        if self.modality is not None:
            wrong = [r.id for r in records if r.modality != self.modality]
            if wrong:
                raise ValueError(
                    f"{type(self).__name__} inspects {self.modality!r} images; records {wrong[:5]} are not"
                )
        detections, timings = self.detect_with_timings([r.pixels for r in records])
        self.last_timings = timings
        per_image = timings.per_image()
        return [
            InspectionReport(
                record_id=record.id,
                modality=record.modality,
                detections=det,
                risk=self.risk(det),
                models={self.spec.name: self.spec.version},
                timings_ms=per_image,
            )
            for record, det in zip(records, detections, strict=True)
        ]

    def _preprocess(
        self, images: Sequence[np.ndarray], original_hw: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, list[LetterboxTransform]]:
        spec = self.spec
        # Letterbox and normalise straight into the batch tensor; a static-batch graph gets padding
        # images after the real ones (their outputs are dropped).
        return letterbox_nchw(
            images,
            spec.input_size,
            pad_value=spec.pad_value,
            mean=spec.mean,
            std=spec.std,
            dtype=np.dtype(spec.input_dtype),
            src_hw=original_hw,
            batch=max(self._fixed_batch or 0, len(images)),
        )

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        outputs = self.backend.run({self.spec.input_name: tensor})
        name = self.spec.output_names[0]
        if name not in outputs:
            raise BackendError(
                f"model {self.spec.name!r} returned outputs {sorted(outputs)}, but its spec names {name!r}"
            )
        output = np.asarray(outputs[name])
        if output.ndim == 0 or output.shape[0] != tensor.shape[0]:
            raise BackendError(
                f"model {self.spec.name!r} returned output {name!r} with shape {output.shape} "
                f"for a batch of {tensor.shape[0]}"
            )
        return output

    def _decode_options(self) -> DecodeOptions:
        """The thresholds the raw output is decoded with (a subclass may decode lower and filter later)."""
        return self.options

    def _postprocess(self, output: np.ndarray, transforms: Sequence[LetterboxTransform]) -> list[Detections]:
        decoded = decode_batch(output, self._decode_options(), head=self.head)
        return [_to_original(d, t) for d, t in zip(decoded, transforms, strict=True)]


def check_images(images: Sequence[np.ndarray]) -> None:
    """Raise ``ValueError`` naming the first image that is not a non-empty ``(H, W, 3)`` uint8 array."""
    for i, image in enumerate(images):
        if not (
            isinstance(image, np.ndarray)
            and image.dtype == np.uint8
            and image.ndim == 3
            and image.shape[2] == 3
            and image.shape[0] > 0
            and image.shape[1] > 0
        ):
            raise ValueError(
                f"image {i} must be a non-empty (H, W, 3) uint8 array, got "
                f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}"
            )


def original_sizes(
    images: Sequence[np.ndarray], original_hw: Sequence[tuple[int, int]] | None
) -> list[tuple[int, int]]:
    """Each image's original ``(height, width)``: its own shape unless ``original_hw`` says otherwise."""
    if original_hw is None:
        return [(int(im.shape[0]), int(im.shape[1])) for im in images]
    if len(original_hw) != len(images):
        raise ValueError(f"original_hw has {len(original_hw)} sizes for {len(images)} images")
    sizes = []
    for i, hw in enumerate(original_hw):
        if len(hw) != 2 or int(hw[0]) < 1 or int(hw[1]) < 1:
            raise ValueError(f"original_hw[{i}] must be a positive (height, width), got {hw!r}")
        sizes.append((int(hw[0]), int(hw[1])))
    return sizes


def _to_original(det: Detections, transform: LetterboxTransform) -> Detections:
    """Map letterbox-pixel detections to original pixels, dropping boxes that lie wholly in padding."""
    if len(det) == 0:
        return det
    xyxy = np.asarray(transform.to_original(det.xyxy), dtype=np.float32)
    # After clipping to the image a box in the padding border collapses to zero width or height.
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return Detections(
        xyxy=xyxy[keep],
        confidence=det.confidence[keep],
        class_id=det.class_id[keep],
        class_names=det.class_names,
        data={k: v[keep] for k, v in det.data.items()},
    )
