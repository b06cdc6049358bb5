"""COCO-style object-detection metrics in numpy.

What is computed, and how (read this before comparing numbers with other tools):

* **Matching** (per image, per class, per IoU threshold ``t``), the rule of pycocotools'
  ``COCOeval.evaluateImg``: detections are visited in order of decreasing confidence (stable sort,
  so ties keep their input order); each takes the *unmatched, non-ignored* ground-truth box of its
  class with the highest IoU ``>= t`` and is a true positive. If no such box exists but an
  unmatched *ignored* ground-truth box has IoU ``>= t``, the detection takes that box and is
  **ignored**: neither a true nor a false positive. Otherwise it is a false positive. Every
  ground-truth box (ignored or not) is matched at most once, so a duplicate detection of an
  already-found object is a false positive.
* **Ignored ground truth** restricts an evaluation to a subset of the objects (for example one
  concealment level) without punishing the detector for finding the others: ignored boxes do not
  count towards recall, and detections of them are dropped as above.
* **AP** is COCO's 101-point interpolated average precision: the precision envelope
  (``p(r) = max precision at recall >= r``) is sampled at recall ``0, 0.01, ..., 1`` and averaged,
  a sample above the highest reached recall counting as 0. (Ultralytics integrates the same envelope
  with the trapezoid rule instead, so its numbers differ slightly, typically in the third decimal.)
* **mAP** is the mean AP over the classes that have at least one non-ignored ground-truth box;
  classes without any have AP ``NaN`` and are left out, as in COCO. ``mAP50`` uses IoU 0.50,
  ``mAP50-95`` averages IoU 0.50, 0.55, ..., 0.95.
* **Precision and recall at a confidence threshold** (IoU 0.50): detections with
  ``confidence >= conf_threshold`` are counted; per class, and *micro-averaged* over all classes
  (pooled counts: the fraction of all objects found, and the fraction of all alarms that were
  right), which is what an operator experiences.
* **Class-agnostic** evaluation maps every prediction and ground-truth class to one class before
  matching: it measures "was there a box on the object", whatever class the model named.
  Detections are pooled as they are (no extra NMS), so two boxes of different classes on one object
  count as one true and one false positive.
* Area ranges and COCO's ``maxDets`` are not applied; ``max_detections`` optionally keeps the most
  confident detections per image across all classes (the way YOLO's NMS limits them).

Boxes are ``x1, y1, x2, y2`` pixels, as everywhere in :mod:`vision.types`. Ground-truth and
prediction boxes of one image must be in the same pixel frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vision.boxes import box_iou
from vision.types import Detections

COCO_IOU_THRESHOLDS: npt.NDArray[np.float64] = np.round(np.linspace(0.5, 0.95, 10), 2)
# Exactly k/100: IEEE division is correctly rounded, so a recall of e.g. 7/10 equals the point 70/100.
# (pycocotools' linspace yields 0.7000000000000001 there and skips that point at recall exactly 0.7.)
RECALL_POINTS: npt.NDArray[np.float64] = np.arange(101) / 100

PredictionArrays = tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]
"""``(xyxy (N, 4), confidence (N,), class_id (N,))`` as an alternative to :class:`Detections`."""


class MetricsError(ValueError):
    """Inputs to an evaluation are inconsistent (lengths, shapes, class ids)."""


@dataclass(frozen=True)
class GroundTruth:
    """The labelled objects of one image.

    Attributes:
        xyxy: ``(M, 4)`` float32 boxes, ``x1, y1, x2, y2`` pixels.
        class_id: ``(M,)`` int64 class index of each box.
        ignore: ``(M,)`` bool; ``True`` marks a box that neither counts towards recall nor produces
            a false positive when detected (see the module docstring). Defaults to all ``False``.
    """

    xyxy: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int64]
    ignore: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0,), np.bool_))

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise MetricsError(f"GroundTruth.xyxy must have shape (M, 4), got {xyxy.shape}")
        m = xyxy.shape[0]
        ignore = np.asarray(self.ignore, dtype=np.bool_).reshape(-1)
        if ignore.size == 0 and m:
            ignore = np.zeros((m,), np.bool_)
        if cls.shape != (m,) or ignore.shape != (m,):
            raise MetricsError(
                f"GroundTruth class_id {cls.shape} and ignore {ignore.shape} must both have shape ({m},)"
            )
        if not np.all(np.isfinite(xyxy)):
            raise MetricsError("GroundTruth.xyxy contains NaN or infinite coordinates")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "class_id", cls)
        object.__setattr__(self, "ignore", ignore)

    @classmethod
    def empty(cls) -> GroundTruth:
        """An image without labelled objects (every detection on it is a false positive)."""
        return cls(xyxy=np.zeros((0, 4), np.float32), class_id=np.zeros((0,), np.int64))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def only(self, keep: npt.ArrayLike) -> GroundTruth:
        """The same boxes with every box outside ``keep`` (an ``(M,)`` bool mask) marked ignored.

        Boxes already ignored stay ignored.
        """
        mask = np.asarray(keep, dtype=np.bool_).reshape(-1)
        if mask.shape != (len(self),):
            raise MetricsError(f"keep mask must have shape ({len(self)},), got {mask.shape}")
        return GroundTruth(xyxy=self.xyxy, class_id=self.class_id, ignore=self.ignore | ~mask)


@dataclass(frozen=True)
class DetectionMetrics:
    """Result of :func:`evaluate_detections`.

    Attributes:
        class_names: names of the evaluated classes (``("object",)`` when class-agnostic).
        iou_thresholds: ``(T,)`` IoU thresholds; index 0 is 0.50 for the default thresholds.
        ap: ``(C, T)`` average precision per class and IoU threshold; ``NaN`` for a class without
            non-ignored ground truth.
        num_gt: ``(C,)`` non-ignored ground-truth boxes per class.
        num_pred: ``(C,)`` detections per class (after ``max_detections``), ignored ones included.
        conf_threshold: confidence threshold of the precision/recall counts.
        tp: ``(C,)`` true positives at IoU 0.50 among detections with ``confidence >= conf_threshold``.
        fp: ``(C,)`` false positives, same condition.
        num_images: number of evaluated images.
    """

    class_names: tuple[str, ...]
    iou_thresholds: npt.NDArray[np.float64]
    ap: npt.NDArray[np.float64]
    num_gt: npt.NDArray[np.int64]
    num_pred: npt.NDArray[np.int64]
    conf_threshold: float
    tp: npt.NDArray[np.int64]
    fp: npt.NDArray[np.int64]
    num_images: int

    def _iou_index(self, iou: float) -> int:
        hits = np.flatnonzero(np.isclose(self.iou_thresholds, iou))
        if hits.size == 0:
            raise MetricsError(f"IoU threshold {iou} was not evaluated (have {self.iou_thresholds.tolist()})")
        return int(hits[0])

    @property
    def ap50(self) -> npt.NDArray[np.float64]:
        """``(C,)`` AP at IoU 0.50 per class (``NaN`` where the class has no ground truth)."""
        return self.ap[:, self._iou_index(0.5)]

    @property
    def ap50_95(self) -> npt.NDArray[np.float64]:
        """``(C,)`` AP averaged over all evaluated IoU thresholds, per class."""
        return self.ap.mean(axis=1)

    @property
    def map50(self) -> float:
        """Mean AP at IoU 0.50 over classes with ground truth; ``NaN`` if no class has any."""
        return _nanmean(self.ap50)

    @property
    def map50_95(self) -> float:
        """Mean of :attr:`ap50_95` over classes with ground truth; ``NaN`` if no class has any."""
        return _nanmean(self.ap50_95)

    @property
    def class_precision(self) -> npt.NDArray[np.float64]:
        """``(C,)`` precision at the confidence threshold; ``NaN`` for a class with no detections."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.tp / (self.tp + self.fp)

    @property
    def class_recall(self) -> npt.NDArray[np.float64]:
        """``(C,)`` recall at the confidence threshold; ``NaN`` for a class without ground truth."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.num_gt > 0, self.tp / np.maximum(self.num_gt, 1), np.nan)

    @property
    def precision(self) -> float:
        """Micro-averaged precision at the confidence threshold (``NaN`` without detections)."""
        n = int(self.tp.sum() + self.fp.sum())
        return float(self.tp.sum() / n) if n else math.nan

    @property
    def recall(self) -> float:
        """Micro-averaged recall at the confidence threshold (``NaN`` without ground truth)."""
        n = int(self.num_gt.sum())
        return float(self.tp.sum() / n) if n else math.nan

    def to_dict(self, ndigits: int = 4) -> dict[str, Any]:
        """JSON-ready summary (``NaN`` becomes ``None``) for model cards and reports."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), ndigits)

        per_class = {
            name: {
                "ap50": num(self.ap50[i]),
                "ap50_95": num(self.ap50_95[i]),
                "precision": num(self.class_precision[i]),
                "recall": num(self.class_recall[i]),
                "num_gt": int(self.num_gt[i]),
                "num_pred": int(self.num_pred[i]),
            }
            for i, name in enumerate(self.class_names)
        }
        return {
            "map50": num(self.map50),
            "map50_95": num(self.map50_95),
            "precision": num(self.precision),
            "recall": num(self.recall),
            "conf_threshold": self.conf_threshold,
            "num_images": self.num_images,
            "num_gt": int(self.num_gt.sum()),
            "ap_method": "COCO 101-point interpolated AP; mAP over classes with ground truth",
            "per_class": per_class,
        }


def _nanmean(x: npt.NDArray[np.float64]) -> float:
    valid = x[~np.isnan(x)]
    return float(valid.mean()) if valid.size else math.nan


def _as_prediction(
    pred: Detections | PredictionArrays,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    xyxy: npt.ArrayLike
    conf: npt.ArrayLike
    cls: npt.ArrayLike
    if isinstance(pred, Detections):
        xyxy, conf, cls = pred.xyxy, pred.confidence, pred.class_id
    else:
        try:
            xyxy, conf, cls = pred
        except (TypeError, ValueError):
            raise MetricsError("a prediction must be a Detections or an (xyxy, confidence, class_id) tuple") from None
    xyxy_a = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    conf_a = np.asarray(conf, dtype=np.float64).reshape(-1)
    cls_a = np.asarray(cls, dtype=np.int64).reshape(-1)
    n = xyxy_a.shape[0]
    if conf_a.shape != (n,) or cls_a.shape != (n,):
        raise MetricsError(f"prediction confidence {conf_a.shape} and class_id {cls_a.shape} must be ({n},)")
    return xyxy_a, conf_a, cls_a


def _match_image(
    det_xyxy: npt.NDArray[np.float64],
    gt_xyxy: npt.NDArray[np.float64],
    gt_ignore: npt.NDArray[np.bool_],
    thresholds: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Greedy COCO matching of one image and class; detections must be sorted by confidence.

    Returns:
        ``(tp, ignored)``, each ``(T, D)`` bool; a detection neither TP nor ignored is a FP.
    """
    t_count, d_count = thresholds.size, det_xyxy.shape[0]
    tp = np.zeros((t_count, d_count), np.bool_)
    ignored = np.zeros((t_count, d_count), np.bool_)
    if d_count == 0 or gt_xyxy.shape[0] == 0:
        return tp, ignored
    iou = box_iou(det_xyxy, gt_xyxy).astype(np.float64)
    taken = np.zeros((t_count, gt_xyxy.shape[0]), np.bool_)
    rows = np.arange(t_count)
    for d in range(d_count):
        ok = (iou[d][None, :] >= thresholds[:, None]) & ~taken  # (T, G)
        real = np.where(ok & ~gt_ignore[None, :], iou[d][None, :], -1.0)
        best_real = real.argmax(axis=1)
        hit = real[rows, best_real] >= 0
        soft = np.where(ok & gt_ignore[None, :], iou[d][None, :], -1.0)
        best_soft = soft.argmax(axis=1)
        hit_soft = ~hit & (soft[rows, best_soft] >= 0)
        tp[hit, d] = True
        taken[rows[hit], best_real[hit]] = True
        ignored[hit_soft, d] = True
        taken[rows[hit_soft], best_soft[hit_soft]] = True
    return tp, ignored


def average_precision(tp: npt.NDArray[np.bool_], confidence: npt.NDArray[np.float64], num_gt: int) -> float:
    """COCO 101-point AP of one class at one IoU threshold.

    Args:
        tp: ``(D,)`` bool, whether each (non-ignored) detection is a true positive.
        confidence: ``(D,)`` detection confidences.
        num_gt: number of non-ignored ground-truth boxes; 0 gives ``NaN``.

    Returns:
        AP in ``[0, 1]``, or ``NaN`` if there is no ground truth.
    """
    if num_gt <= 0:
        return math.nan
    if tp.size == 0:
        return 0.0
    order = np.argsort(-confidence, kind="mergesort")
    tps = np.cumsum(tp[order])
    fps = np.cumsum(~tp[order])
    recall = tps / num_gt
    precision = tps / (tps + fps)
    # Precision envelope: the best precision reachable at this recall or any higher one.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(idx < envelope.size, envelope[np.minimum(idx, envelope.size - 1)], 0.0)
    return float(sampled.mean())


def evaluate_detections(
    predictions: Sequence[Detections | PredictionArrays],
    ground_truths: Sequence[GroundTruth],
    *,
    class_names: Sequence[str],
    iou_thresholds: npt.ArrayLike = COCO_IOU_THRESHOLDS,
    conf_threshold: float = 0.25,
    class_agnostic: bool = False,
    max_detections: int | None = None,
) -> DetectionMetrics:
    """Evaluate detections against ground truth over a set of images.

    Args:
        predictions: one entry per image: a :class:`Detections` or an ``(xyxy, confidence,
            class_id)`` tuple of arrays. Run the detector with a very low confidence threshold
            (e.g. 0.001) for meaningful AP.
        ground_truths: one :class:`GroundTruth` per image, same order and length.
        class_names: names of the model's classes; class ids index into it.
        iou_thresholds: IoU thresholds for matching; must include 0.5 (the default is COCO's
            0.50:0.05:0.95).
        conf_threshold: confidence at which precision and recall are counted.
        class_agnostic: merge all classes into one (``"object"``) before matching.
        max_detections: keep at most this many most-confident detections per image (all classes
            together); ``None`` keeps all.

    Returns:
        The per-class AP table and counts (see :class:`DetectionMetrics`).

    Raises:
        MetricsError: on mismatched lengths, bad shapes or class ids outside ``class_names``.
    """
    if len(predictions) != len(ground_truths):
        raise MetricsError(f"got predictions for {len(predictions)} images but ground truth for {len(ground_truths)}")
    if not class_names:
        raise MetricsError("class_names must not be empty")
    thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    if thresholds.size == 0 or not np.any(np.isclose(thresholds, 0.5)):
        raise MetricsError(f"iou_thresholds must include 0.5, got {thresholds.tolist()}")
    if np.any((thresholds <= 0) | (thresholds > 1)):
        raise MetricsError(f"iou_thresholds must lie in (0, 1], got {thresholds.tolist()}")
    if max_detections is not None and max_detections < 1:
        raise MetricsError(f"max_detections must be >= 1 or None, got {max_detections}")
    i50 = int(np.flatnonzero(np.isclose(thresholds, 0.5))[0])

    num_classes = len(class_names)
    names = ("object",) if class_agnostic else tuple(class_names)
    c_eval = len(names)
    confs: list[list[npt.NDArray[np.float64]]] = [[] for _ in range(c_eval)]
    tps: list[list[npt.NDArray[np.bool_]]] = [[] for _ in range(c_eval)]
    ignoreds: list[list[npt.NDArray[np.bool_]]] = [[] for _ in range(c_eval)]
    num_gt = np.zeros(c_eval, np.int64)
    num_pred = np.zeros(c_eval, np.int64)

    for image_index, (pred, gt) in enumerate(zip(predictions, ground_truths, strict=True)):
        xyxy, conf, cls = _as_prediction(pred)
        for what, ids in (("prediction", cls), ("ground-truth", gt.class_id)):
            if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
                raise MetricsError(
                    f"image {image_index}: {what} class id {int(ids.min())}..{int(ids.max())} outside "
                    f"0..{num_classes - 1} ({num_classes} class names)"
                )
        order = np.argsort(-conf, kind="mergesort")
        if max_detections is not None:
            order = order[:max_detections]
        xyxy, conf, cls = xyxy[order], conf[order], cls[order]
        gt_cls = gt.class_id
        if class_agnostic:
            cls = np.zeros_like(cls)
            gt_cls = np.zeros_like(gt_cls)
        for c in np.union1d(np.unique(cls), np.unique(gt_cls)).tolist():
            dsel = cls == c
            gsel = gt_cls == c
            tp, ign = _match_image(xyxy[dsel], gt.xyxy[gsel].astype(np.float64), gt.ignore[gsel], thresholds)
            confs[c].append(conf[dsel])
            tps[c].append(tp)
            ignoreds[c].append(ign)
            num_gt[c] += int(np.count_nonzero(~gt.ignore[gsel]))
            num_pred[c] += int(np.count_nonzero(dsel))

    ap = np.full((c_eval, thresholds.size), np.nan)
    tp_at = np.zeros(c_eval, np.int64)
    fp_at = np.zeros(c_eval, np.int64)
    for c in range(c_eval):
        conf_c = np.concatenate(confs[c]) if confs[c] else np.zeros((0,), np.float64)
        tp_c = np.concatenate(tps[c], axis=1) if tps[c] else np.zeros((thresholds.size, 0), np.bool_)
        ign_c = np.concatenate(ignoreds[c], axis=1) if ignoreds[c] else np.zeros((thresholds.size, 0), np.bool_)
        for t in range(thresholds.size):
            keep = ~ign_c[t]
            ap[c, t] = average_precision(tp_c[t][keep], conf_c[keep], int(num_gt[c]))
        above = (conf_c >= conf_threshold) & ~ign_c[i50]
        tp_at[c] = int(np.count_nonzero(tp_c[i50] & above))
        fp_at[c] = int(np.count_nonzero(~tp_c[i50] & above))

    return DetectionMetrics(
        class_names=names,
        iou_thresholds=thresholds,
        ap=ap,
        num_gt=num_gt,
        num_pred=num_pred,
        conf_threshold=float(conf_threshold),
        tp=tp_at,
        fp=fp_at,
        num_images=len(predictions),
    )
