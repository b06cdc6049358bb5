"""Decode the raw output of an exported YOLO detection head into :class:`~vision.types.Detections`.

Two head layouts are understood, both as exported to ONNX by ultralytics:

* **Anchor-free** (YOLOv8 / YOLO11, ``nms=False``): one tensor ``(B, 4 + nc, A)``. For each of the A
  anchor points, rows ``0..3`` are ``cx, cy, w, h`` in *network-input* (letterboxed) pixels and rows
  ``4..4+nc`` are per-class scores, already passed through a sigmoid in the exported graph. These
  need confidence filtering and non-maximum suppression (NMS).
* **End-to-end** (YOLO26, or any model exported with ``nms=True``): one tensor ``(B, K, 6)``; each row
  is ``x1, y1, x2, y2, score, class_id`` in network-input pixels, already de-duplicated by the model.
  Rows are padded with low scores when fewer than K objects are present, so only thresholds apply.

Everything here works in network-input pixels; mapping back to the original image is the caller's
job (:class:`detectors.base.YoloDetector` does it with the letterbox transform). All decoding is
vectorised numpy; the anchor-free path filters by confidence *before* NMS so NMS only sees the few
candidates that can survive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from vision.boxes import batched_nms, xywh_to_xyxy
from vision.types import Detections

HeadFormat = Literal["anchor_free", "end_to_end"]
HEAD_FORMATS: tuple[str, ...] = ("auto", "anchor_free", "end_to_end")

# Upper bound on candidates handed to NMS per image; ultralytics uses the same figure. With an untrained
# or badly calibrated model nearly every anchor can pass a low threshold, and NMS is quadratic.
MAX_NMS_CANDIDATES = 30_000


class YoloOutputError(ValueError):
    """The model's output tensor does not have a YOLO detection-head layout this decoder knows."""


@dataclass(frozen=True)
class DecodeOptions:
    """Thresholds and limits applied while decoding one model's output.

    Attributes:
        class_names: names of the model's classes; ``len(class_names)`` is ``nc``.
        thresholds: ``(nc,)`` float32, the minimum confidence a detection of each class needs; a score
            equal to it passes (ultralytics keeps only scores strictly above; the difference matters
            only at exact ties, and the X-ray risk table is inclusive too).
        iou_threshold: IoU above which the lower-scoring of two same-class boxes is suppressed
            (anchor-free head only).
        max_det: largest number of detections kept per image, highest confidence first.
        multi_label: anchor-free head only; if True an anchor may yield one detection per class above
            its threshold (better recall for overlapping classes), otherwise only its best class.
    """

    class_names: tuple[str, ...]
    thresholds: npt.NDArray[np.float32]
    iou_threshold: float = 0.45
    max_det: int = 300
    multi_label: bool = False

    def __post_init__(self) -> None:
        if not self.class_names:
            raise ValueError("a detector needs at least one class name")
        thr = np.asarray(self.thresholds, dtype=np.float32).reshape(-1)
        if thr.shape != (len(self.class_names),):
            raise ValueError(
                f"thresholds must have one value per class ({len(self.class_names)}), got shape {thr.shape}"
            )
        if np.any((thr < 0) | (thr > 1)):
            raise ValueError(f"confidence thresholds must lie in [0, 1], got {thr.tolist()}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must lie in [0, 1], got {self.iou_threshold}")
        if self.max_det < 1:
            raise ValueError(f"max_det must be >= 1, got {self.max_det}")
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "thresholds", thr)

    @classmethod
    def build(
        cls,
        class_names: Sequence[str],
        *,
        conf_threshold: float = 0.25,
        class_thresholds: Mapping[str, float] | None = None,
        iou_threshold: float = 0.45,
        max_det: int = 300,
        multi_label: bool = False,
    ) -> DecodeOptions:
        """Options from a global threshold plus per-class overrides by class name.

        A class named in ``class_thresholds`` uses that value *instead of* ``conf_threshold`` (it may be
        lower or higher); every other class uses ``conf_threshold``.

        Raises:
            ValueError: a name in ``class_thresholds`` is not one of ``class_names``, or a value is out
                of range.
        """
        names = tuple(class_names)
        overrides = dict(class_thresholds or {})
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"class_thresholds names unknown classes {unknown}; the model has {list(names)}")
        thresholds = np.array([overrides.get(n, conf_threshold) for n in names], dtype=np.float32)
        return cls(names, thresholds, iou_threshold=iou_threshold, max_det=max_det, multi_label=multi_label)


def head_format(shape: Sequence[int], num_classes: int) -> HeadFormat:
    """Tell the head layout from an output shape.

    Args:
        shape: shape of the output tensor, batch dimension first.
        num_classes: number of classes the model was trained on.

    Returns:
        ``"anchor_free"`` for ``(B, 4 + nc, A)``, ``"end_to_end"`` for ``(B, K, 6)``.

    Raises:
        YoloOutputError: the shape fits neither layout, or fits both (a 2-class model with exactly 6
            anchors, which no real export produces) so that the caller must say which one it is.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise YoloOutputError(f"expected a 3-D detection output (B, 4+nc, A) or (B, K, 6), got shape {shape}")
    anchor_free = shape[1] == 4 + num_classes
    end_to_end = shape[2] == 6
    if anchor_free and end_to_end:
        raise YoloOutputError(
            f"output shape {shape} fits both the anchor-free (B, 4+{num_classes}, A) and the end-to-end "
            "(B, K, 6) layout; pass head='anchor_free' or head='end_to_end' explicitly"
        )
    if anchor_free:
        return "anchor_free"
    if end_to_end:
        return "end_to_end"
    hint = ""
    if shape[2] == 4 + num_classes:
        hint = " (it looks transposed: (B, A, 4+nc); export with ultralytics' default layout)"
    raise YoloOutputError(
        f"output shape {shape} is neither anchor-free (B, {4 + num_classes}, A) for {num_classes} classes "
        f"nor end-to-end (B, K, 6){hint}; does the model card list the model's classes?"
    )


def decode_anchor_free(pred: np.ndarray, options: DecodeOptions) -> Detections:
    """Decode one image of an anchor-free head.

    Args:
        pred: ``(4 + nc, A)`` float array: ``cx, cy, w, h`` in network-input pixels, then nc class
            scores in ``[0, 1]``.
        options: thresholds, NMS IoU, max_det, multi-label switch.

    Returns:
        Detections in network-input pixels (``x1, y1, x2, y2``), sorted by descending confidence,
        at most ``options.max_det`` of them.
    """
    nc = len(options.class_names)
    if pred.ndim != 2 or pred.shape[0] != 4 + nc:
        raise YoloOutputError(f"expected a ({4 + nc}, A) anchor-free prediction, got shape {pred.shape}")
    thr = options.thresholds
    scores = pred[4:]  # (nc, A)

    if options.multi_label:
        cls_idx, anchor_idx = np.nonzero(scores >= thr[:, None])
        conf = scores[cls_idx, anchor_idx]
    else:
        # Only anchors whose best score clears the lowest class threshold can survive: pick them
        # with one vectorised max before the (costlier) argmax, which then runs on a few anchors.
        cand = np.flatnonzero(scores.max(axis=0) >= thr.min())
        cand_scores = scores[:, cand]
        best = cand_scores.argmax(axis=0)
        best_conf = np.take_along_axis(cand_scores, best[None, :], axis=0)[0]
        keep_cand = np.flatnonzero(best_conf >= thr[best])
        anchor_idx = cand[keep_cand]
        cls_idx, conf = best[keep_cand], best_conf[keep_cand]

    boxes = pred[:4, anchor_idx].T.astype(np.float32, copy=False)  # (n, 4) cx, cy, w, h
    # A non-finite box or score (a broken export, fp16 overflow) must not reach the report.
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(conf)
    if not finite.all():
        boxes, conf, cls_idx = boxes[finite], conf[finite], cls_idx[finite]
    if conf.size == 0:
        return Detections.empty(options.class_names)

    # Most confident first, ties in anchor order (the order batched_nms itself visits boxes in).
    order = np.argsort(-conf, kind="stable")[:MAX_NMS_CANDIDATES]
    boxes, conf, cls_idx = boxes[order], conf[order].astype(np.float32, copy=False), cls_idx[order]
    xyxy = np.asarray(xywh_to_xyxy(boxes), dtype=np.float32)
    keep = _greedy_nms_top(xyxy, conf, cls_idx, options.iou_threshold, options.max_det)
    return Detections(
        xyxy=xyxy[keep],
        confidence=conf[keep],
        class_id=cls_idx[keep].astype(np.int64),
        class_names=options.class_names,
    )


def decode_end_to_end(pred: np.ndarray, options: DecodeOptions) -> Detections:
    """Decode one image of an end-to-end head (no NMS needed).

    Args:
        pred: ``(K, 6)`` float array of ``x1, y1, x2, y2, score, class_id`` in network-input pixels.
        options: thresholds and max_det (``iou_threshold`` and ``multi_label`` do not apply).

    Returns:
        Detections in network-input pixels, sorted by descending confidence, at most ``max_det``.

    Raises:
        YoloOutputError: a row above threshold names a class id the model does not have.
    """
    if pred.ndim != 2 or pred.shape[1] != 6:
        raise YoloOutputError(f"expected a (K, 6) end-to-end prediction, got shape {pred.shape}")
    nc = len(options.class_names)
    finite = np.isfinite(pred).all(axis=1)
    pred = pred[finite]
    # Class ids travel as floats; round rather than truncate so 2.9999 means class 3.
    cls_f = np.rint(pred[:, 5])
    valid = (cls_f >= 0) & (cls_f < nc)
    score = pred[:, 4]
    cls_safe = np.where(valid, cls_f, 0).astype(np.int64)
    above = score >= options.thresholds[cls_safe]
    bad = above & ~valid
    if bad.any():
        raise YoloOutputError(
            f"end-to-end output names class id {int(cls_f[bad][0])}, but the model card lists {nc} classes"
        )
    idx = np.flatnonzero(above)
    idx = idx[np.argsort(-score[idx], kind="stable")][: options.max_det]
    return Detections(
        xyxy=pred[idx, :4].astype(np.float32),
        confidence=score[idx].astype(np.float32),
        class_id=cls_safe[idx],
        class_names=options.class_names,
    )


def decode_batch(output: np.ndarray, options: DecodeOptions, *, head: str = "auto") -> list[Detections]:
    """Decode a whole batch of one detection output tensor.

    Args:
        output: ``(B, 4 + nc, A)`` anchor-free or ``(B, K, 6)`` end-to-end, any float dtype.
        options: decoding thresholds and limits.
        head: ``"auto"`` (tell by shape), ``"anchor_free"`` or ``"end_to_end"``.

    Returns:
        One :class:`Detections` per batch item, in network-input pixels.

    Raises:
        YoloOutputError: the shape fits no known layout, or not the one named by ``head``.
    """
    output = np.asarray(output)
    nc = len(options.class_names)
    if head == "auto":
        fmt: str = head_format(output.shape, nc)
    elif head in HEAD_FORMATS:
        fmt = head
        expected = (4 + nc, None) if head == "anchor_free" else (None, 6)
        if output.ndim != 3 or any(e is not None and e != s for e, s in zip(expected, output.shape[1:], strict=True)):
            raise YoloOutputError(f"output shape {output.shape} is not a {head} head for {nc} classes")
    else:
        raise ValueError(f"head must be one of {HEAD_FORMATS}, got {head!r}")
    # Thresholds are float32; comparing float16 scores against them is exact after an upcast.
    if output.dtype != np.float32:
        output = output.astype(np.float32)
    decode = decode_anchor_free if fmt == "anchor_free" else decode_end_to_end
    return [decode(output[i], options) for i in range(output.shape[0])]


def _greedy_nms_top(
    xyxy: npt.NDArray[np.float32],
    conf: npt.NDArray[np.float32],
    cls_idx: npt.NDArray[np.integer],
    iou_threshold: float,
    max_det: int,
) -> npt.NDArray[np.int64]:
    """The first ``max_det`` boxes class-aware greedy NMS keeps, for inputs sorted by confidence.

    Greedy NMS decides a box only from the more confident boxes kept before it, so NMS over the
    ``m`` most confident candidates keeps exactly the full run's kept boxes among them. Once that
    prefix yields ``max_det`` boxes the rest cannot change the answer; otherwise the prefix grows.
    This bounds the cost for noisy outputs (thousands of candidates, most of them kept) without
    changing the result.
    """
    n = conf.shape[0]
    m = min(4 * max_det, n)
    while True:
        keep = batched_nms(xyxy[:m], conf[:m], cls_idx[:m], iou_threshold)
        if keep.shape[0] >= max_det or m == n:
            return keep[:max_det]
        m = min(4 * m, n)
