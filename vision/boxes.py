"""Box arithmetic in numpy: IoU, non-maximum suppression, clipping, format conversion.

Boxes are ``(N, 4)`` arrays of ``x1, y1, x2, y2`` pixels (origin top-left, see :mod:`vision.types`)
unless a function says otherwise. A box with ``x2 <= x1`` or ``y2 <= y1`` has zero area; it
overlaps nothing (IoU 0, even with itself) and therefore never suppresses or is suppressed.

NMS reproduces ``torchvision.ops.nms`` / ``batched_nms`` decision for decision on valid boxes: the
same greedy order (scores sorted descending, ties kept in index order), the same IoU formula
evaluated in the boxes' own float precision, and the same strict ``IoU > threshold`` test. That
matters because the export parity checks compare this code with models that run NMS in torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["batched_nms", "box_iou", "clip_boxes", "mirror_boxes", "nms", "weighted_box_fusion", "xywh_to_xyxy"]


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Pairwise intersection over union.

    Args:
        a: ``(N, 4)`` boxes ``x1, y1, x2, y2``.
        b: ``(M, 4)`` boxes ``x1, y1, x2, y2``.

    Returns:
        ``(N, M)`` float32, ``iou[i, j]`` of ``a[i]`` and ``b[j]`` in ``[0, 1]``; 0 where the union
        is empty (two zero-area boxes), where ``torchvision.ops.box_iou`` returns NaN.
    """
    a_ = _as_boxes(a, "a")
    b_ = _as_boxes(b, "b")
    common = np.result_type(a_, b_)  # float64 if either is, like torch's type promotion
    a_, b_ = a_.astype(common, copy=False), b_.astype(common, copy=False)
    if a_.shape[0] == 0 or b_.shape[0] == 0:
        return np.zeros((a_.shape[0], b_.shape[0]), dtype=np.float32)
    area_a = _area(a_)
    area_b = _area(b_)
    lt = np.maximum(a_[:, None, :2], b_[None, :, :2])
    rb = np.minimum(a_[:, None, 2:], b_[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=union > 0)
    return iou.astype(np.float32, copy=False)


def nms(xyxy: npt.ArrayLike, scores: npt.ArrayLike, iou_threshold: float) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression.

    Boxes are visited by descending score; each kept box removes every later box whose IoU with it
    is strictly greater than ``iou_threshold``.

    Args:
        xyxy: ``(N, 4)`` boxes ``x1, y1, x2, y2``.
        scores: ``(N,)`` finite scores.
        iou_threshold: suppression threshold, typically in ``[0, 1]``.

    Returns:
        ``(K,)`` int64 indices into ``xyxy`` of the kept boxes, by descending score (equal scores
        in index order). Empty input gives an empty array.
    """
    return _greedy_nms(xyxy, scores, None, iou_threshold)


def batched_nms(
    xyxy: npt.ArrayLike, scores: npt.ArrayLike, class_ids: npt.ArrayLike, iou_threshold: float
) -> npt.NDArray[np.int64]:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Equivalent to running :func:`nms` per class and merging by score, in one pass. torchvision
    offsets each class's boxes by ``class_id * (max_coordinate + 1)`` instead; adding that offset
    rounds away low bits of every coordinate in float32 and can flip decisions at the threshold,
    so here the class test is a mask on the IoU comparison (torchvision itself falls back to an
    exact per-class loop for large CPU inputs).

    Args:
        xyxy: ``(N, 4)`` boxes ``x1, y1, x2, y2``.
        scores: ``(N,)`` finite scores.
        class_ids: ``(N,)`` integer class of each box.
        iou_threshold: suppression threshold.

    Returns:
        ``(K,)`` int64 indices of the kept boxes, by descending score (ties in index order).
    """
    classes = np.asarray(class_ids)
    if classes.dtype.kind not in "iub":
        raise ValueError(f"class_ids must be integers, got {classes.dtype}")
    return _greedy_nms(xyxy, scores, classes.reshape(-1).astype(np.int64, copy=False), iou_threshold)


def weighted_box_fusion(
    views: Sequence[tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]],
    iou_threshold: float = 0.55,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Fuse the detections of several views of one image (test-time augmentation) into one set.

    Weighted box fusion (Solovyev et al., 2021) as used here: per class, boxes are taken in
    descending score order; a box joins the cluster whose fused box it overlaps most (IoU above
    ``iou_threshold``) unless that cluster already holds a box of the same view, otherwise it starts
    a cluster. A cluster's box is the score-weighted mean of its boxes, and its score the *sum* of
    its scores divided by the number of views: an object every view found keeps its mean score, one
    that a single view of two found keeps half. That is what makes the fusion better than pooling
    the views through NMS, which keeps every view's false positives at full score.

    Args:
        views: per view, ``(xyxy (N, 4), scores (N,), class_ids (N,))`` in the same image frame.
        iou_threshold: overlap above which boxes of different views are the same object.

    Returns:
        ``(xyxy, scores, class_ids)`` of the clusters, in descending score order.

    Raises:
        ValueError: no views, malformed boxes, or mismatched lengths.
    """
    if not views:
        raise ValueError("weighted_box_fusion needs at least one view")
    boxes, scores, classes, view_of = [], [], [], []
    for k, (xyxy, sc, cls) in enumerate(views):
        b = _as_boxes(xyxy, f"view {k} boxes").astype(np.float64)
        s = np.asarray(sc, dtype=np.float64).reshape(-1)
        c = np.asarray(cls, dtype=np.int64).reshape(-1)
        if not (b.shape[0] == s.shape[0] == c.shape[0]):
            raise ValueError(f"view {k}: {b.shape[0]} boxes, {s.shape[0]} scores, {c.shape[0]} class ids")
        boxes.append(b)
        scores.append(s)
        classes.append(c)
        view_of.append(np.full(b.shape[0], k))
    all_b, all_s = np.concatenate(boxes), np.concatenate(scores)
    all_c, all_v = np.concatenate(classes), np.concatenate(view_of)
    n_views = len(views)
    out_b: list[npt.NDArray[np.float64]] = []
    out_s: list[float] = []
    out_c: list[int] = []
    for c in np.unique(all_c):
        idx = np.flatnonzero(all_c == c)
        idx = idx[np.argsort(-all_s[idx], kind="stable")]
        fused = np.zeros((0, 4))
        weighted: list[npt.NDArray[np.float64]] = []
        weight: list[float] = []
        members: list[set[int]] = []
        for i in idx:
            target = -1
            if fused.shape[0]:
                ious = box_iou(all_b[i : i + 1], fused)[0]
                for j in np.argsort(-ious, kind="stable"):
                    if ious[j] <= iou_threshold:
                        break
                    if int(all_v[i]) not in members[j]:
                        target = int(j)
                        break
            if target < 0:
                weighted.append(all_b[i] * all_s[i])
                weight.append(float(all_s[i]))
                members.append({int(all_v[i])})
                fused = np.vstack([fused, all_b[i]])
            else:
                weighted[target] = weighted[target] + all_b[i] * all_s[i]
                weight[target] += float(all_s[i])
                members[target].add(int(all_v[i]))
                fused[target] = weighted[target] / max(weight[target], 1e-12)
        out_b.extend(fused)
        out_s.extend(w / n_views for w in weight)
        out_c.extend([int(c)] * len(weight))
    order = np.argsort(-np.asarray(out_s), kind="stable")
    return (
        np.asarray(out_b, dtype=np.float32).reshape(-1, 4)[order],
        np.asarray(out_s, dtype=np.float32)[order],
        np.asarray(out_c, dtype=np.int64)[order],
    )


def mirror_boxes(xyxy: npt.ArrayLike, width: float) -> npt.NDArray[np.floating]:
    """Boxes found on a left-right mirrored image, in the unmirrored image: ``x -> width - x``."""
    b = _as_boxes(xyxy, "xyxy").copy()
    b[:, [0, 2]] = width - b[:, [2, 0]]
    return b


def clip_boxes(xyxy: npt.ArrayLike, height: int, width: int) -> npt.NDArray[np.floating]:
    """Clip boxes to an image: x to ``[0, width]``, y to ``[0, height]``.

    Args:
        xyxy: ``(N, 4)`` boxes ``x1, y1, x2, y2``.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        A new ``(N, 4)`` array, float dtype of the input kept (float32 for other dtypes).
    """
    boxes = _as_boxes(xyxy, "xyxy")
    upper = np.array([width, height, width, height], dtype=boxes.dtype)
    return np.clip(boxes, 0, upper)


def xywh_to_xyxy(cxcywh: npt.ArrayLike) -> npt.NDArray[np.floating]:
    """Convert centre-size boxes (YOLO's ``cx, cy, w, h``) to corners ``x1, y1, x2, y2``.

    Args:
        cxcywh: ``(N, 4)`` boxes ``centre x, centre y, width, height``.

    Returns:
        A new ``(N, 4)`` array, float dtype of the input kept (float32 for other dtypes).
    """
    boxes = _as_boxes(cxcywh, "cxcywh")
    half = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def _greedy_nms(
    xyxy: npt.ArrayLike,
    scores: npt.ArrayLike,
    classes: npt.NDArray[np.int64] | None,
    iou_threshold: float,
) -> npt.NDArray[np.int64]:
    boxes = _as_boxes(xyxy, "xyxy")
    score = np.asarray(scores).reshape(-1)
    n = boxes.shape[0]
    if score.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {np.shape(scores)}")
    if classes is not None and classes.shape != (n,):
        raise ValueError(f"class_ids must have shape ({n},), got {classes.shape}")
    if n == 0:
        return np.zeros((0,), dtype=np.int64)
    if not np.all(np.isfinite(score)):
        raise ValueError("scores contain NaN or infinite values")
    threshold = np.float64(iou_threshold)  # compare in double, as torchvision's C++ kernel does

    # Stable sort of negated scores: descending order with ties in index order, like
    # torch.sort(stable=True, descending=True) in torchvision's kernel.
    order = np.argsort(-score.astype(np.float64), kind="stable")
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k]) for k in range(4))
    area = _area(boxes)[order]
    cls = classes[order] if classes is not None else None

    keep: list[int] = []
    candidates = np.arange(n)  # positions in the sorted arrays still in play, ascending
    while candidates.size:
        i = int(candidates[0])
        keep.append(i)
        rest = candidates[1:]
        if rest.size == 0:
            break
        # Same operations in the same precision as torchvision's nms_kernel.cpp.
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = w * h
        union = area[i] + area[rest] - inter
        overlap = np.zeros_like(inter)
        np.divide(inter, union, out=overlap, where=union > 0)
        suppress = overlap > threshold
        if cls is not None:
            suppress &= cls[rest] == cls[i]
        candidates = rest[~suppress]
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64, copy=False)


def _area(boxes: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
    return wh[:, 0] * wh[:, 1]


def _as_boxes(xyxy: npt.ArrayLike, name: str) -> npt.NDArray[np.floating]:
    """Validated ``(N, 4)`` float32 or float64 view/copy (other dtypes become float32)."""
    boxes = np.asarray(xyxy)
    if boxes.dtype not in (np.float32, np.float64):
        boxes = boxes.astype(np.float32)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {boxes.shape}")
    if not np.all(np.isfinite(boxes)):
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return boxes
