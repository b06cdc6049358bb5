"""X-ray threat detection: the classes, their thresholds and the risk rule an officer acts on.

The whole decision policy is the table :data:`RISK_RULES`; :func:`assess_risk` applies it and
:class:`ThreatDetector` reports it for every scan.

Scanners export either a positive display (air white, dense objects dark: every dual-energy colour
palette and most single-energy grey ones) or a negative one (air black, dense objects bright). The
model is trained on positives and finds nothing in a negative (``evaluate xray --view
grey-inverted`` measured mAP50 0.000), so :class:`ThreatDetector` turns a negative back before the
model sees it (:func:`is_negative`): the scan's border, which is air or belt, is dark, and the
content is brighter. No positive scan of the real or generated sets was mistaken for one.

A bag can lie either way round on the belt, so a scan and its left-right mirror image are equally
likely; :class:`ThreatDetector` runs the model on both (one batch of twice the images) and fuses
the two sets of boxes (:func:`vision.boxes.weighted_box_fusion`): an object found in both views keeps
its mean score and a mean box, one found in a single view half its score. On the held-out real scans
(class-agnostic, model 2026.11.22.1707) that raised mAP50 from 0.646 to 0.664 and mAP50-95 from 0.240
to 0.258, the grey view from 0.576 to 0.596 and the TIP validation set from 0.532 to 0.541, for twice
the model time (``flip_tta=False`` or ``CV_XRAY_FLIP_TTA=false`` turns it off). Flipping upside down
as well (four views) measured lower (0.652): the model was trained with left-right flips only.

Small items are what the model misses most (on the real test split, items under 1 % of the scan were
found 60 % of the time, larger ones 87 %). :class:`ThreatDetector` therefore also looks at the scan
more closely (``tile_tta``): four overlapping tiles, each :data:`TILE_FRACTION` of the scan's width
and height and anchored at one corner, go through the model at its input size, so every item is seen
1.4 times larger. A tile's box cut by the tile's inner edge is dropped (the item is whole in another
tile or in the full view), the tiles' boxes are merged by NMS into one *close-up* view, and that
view is fused with the full view exactly as the mirrored view is: an item both find keeps its mean
score, one only the close-up finds half its score. On the held-out real scans (model 2026.11.23.0307,
class-agnostic, both with the mirrored view) mAP50 went from 0.764 to 0.795, for three times the model
time (six images per scan instead of two). Tiles of 0.6 / 0.8 of the scan measured 0.787 / 0.796
(mirrored tiles as well), tiles that are also mirrored 0.800 for ten images per scan, and pooling
the close-up boxes with the full view's through NMS 0.760: a close-up alone raises false alarms.
With the tiles and without the mirrored view it measured 0.793. On the real validation split (212
scans, on which the checkpoint was picked) the tiles measured 0.773 against 0.782 without: a few
hundred scans differ by +-0.02-0.03 from noise alone. ``tile_tta=False`` or
``CV_XRAY_TILES=false`` turns the tiles off.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import ClassVar

import cv2
import numpy as np

from detectors.base import StageTimings, YoloDetector, check_images, original_sizes
from detectors.yolo import DecodeOptions
from vision.boxes import batched_nms, mirror_boxes, weighted_box_fusion
from vision.runtime.base import InferenceBackend
from vision.types import Detections, Modality, ModelSpec, RiskLevel

#: Classes of the X-ray model, in class-id order (the order the synthetic-data generator labels them).
XRAY_CLASSES: tuple[str, ...] = (
    "handgun",
    "knife",
    "scissors_blade",
    "ammunition",
    "drug_package",
    "gold_bar",
    "cash_bundle",
)

#: Views of a scan that :class:`ThreatDetector` runs with ``flip_tta``: as scanned and mirrored.
FLIP_VIEWS: tuple[str, ...] = ("as scanned", "mirrored left-right")
#: IoU above which boxes of the two views are one object (0.45 / 0.55 / 0.65 measured 0.663 / 0.664 / 0.659
#: real-scan mAP50 on model 2026.11.22.1707).
FLIP_FUSION_IOU = 0.55
#: Lowest score a view's box is decoded at (the evaluation's AP threshold).
VIEW_SCORE_FLOOR = 0.001
#: Side of each close-up tile as a fraction of the scan's side (``tile_tta``): 2 x 2 tiles anchored at
#: the corners, so neighbouring tiles overlap by 40 % of the scan and any item up to 40 % of the
#: scan's side lies whole in at least one of them.
TILE_FRACTION = 0.7
#: A tile's box closer than this (original pixels) to an edge the tile shares with the scan's
#: interior is cut by that edge and dropped.
TILE_EDGE_MARGIN_PX = 2.0
#: Scans with a side shorter than this (pixels) are not tiled: there is nothing to look closer at.
MIN_TILED_SIDE = 64


@dataclass(frozen=True)
class RiskRule:
    """How detections of one class change a scan's risk level.

    Attributes:
        review: confidence at or above which a detection is shown to the officer and the scan goes to
            *review*. It is also the detector's default reporting threshold for the class.
        alarm: confidence at or above which the scan is an *alarm*; ``None`` means this class alone
            never raises an alarm (the officer decides on review).
        reason: why the class matters, in words for the officer.
    """

    review: float
    alarm: float | None
    reason: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= 1.0:
            raise ValueError(f"review threshold must lie in [0, 1], got {self.review}")
        if self.alarm is not None and not self.review <= self.alarm <= 1.0:
            raise ValueError(f"alarm threshold must lie in [review={self.review}, 1], got {self.alarm}")


#: The risk policy, one row per class. How to read it:
#:
#: * **alarm** — at least one detection reaches its class's ``alarm`` confidence: stop the item and
#:   search it by hand.
#: * **review** — no alarm, but at least one detection reaches its class's ``review`` confidence: an
#:   officer looks at the highlighted boxes and decides.
#: * **clear** — nothing reaches a ``review`` threshold.
#:
#: Prohibited items (firearms, ammunition) get the lowest thresholds because a missed one costs far
#: more than a needless search. Scissors are usually allowed, so they only ever ask for review.
#: These values are starting points: tune them against the held-out precision/recall recorded in the
#: shipped model card before relying on them, and record the change.
RISK_RULES: Mapping[str, RiskRule] = MappingProxyType(
    {
        "handgun": RiskRule(0.25, 0.50, "firearm: prohibited without a permit"),
        "ammunition": RiskRule(0.25, 0.50, "ammunition: prohibited without a permit"),
        "knife": RiskRule(0.30, 0.55, "bladed weapon"),
        "scissors_blade": RiskRule(0.35, None, "scissors: usually allowed, officer checks blade length"),
        "drug_package": RiskRule(0.30, 0.60, "dense organic brick or pouch: possible narcotics"),
        "gold_bar": RiskRule(0.30, 0.60, "gold: must be declared, frequently smuggled"),
        "cash_bundle": RiskRule(0.35, 0.65, "currency: must be declared above the allowance"),
    }
)

_LEVELS: tuple[RiskLevel, ...] = ("clear", "review", "alarm")


def assess_risk(detections: Detections, rules: Mapping[str, RiskRule] = RISK_RULES) -> RiskLevel:
    """Risk level of one scan from its detections, by the rule table (see :data:`RISK_RULES`).

    Args:
        detections: one scan's detections with class names.
        rules: class name -> rule; every detected class must have one.

    Returns:
        ``"alarm"``, ``"review"`` or ``"clear"``; the highest level any single detection reaches.

    Raises:
        ValueError: a detection's class has no rule (a model with classes the policy does not cover).
    """
    level = 0
    for label, conf in zip(detections.labels, detections.confidence, strict=True):
        rule = rules.get(label)
        if rule is None:
            raise ValueError(f"no risk rule for class {label!r}; rules cover {sorted(rules)}")
        # Compare in float32, as the detector's threshold filter does: a confidence reported at
        # exactly a threshold (0.35 is 0.34999999 in float32) must count as reaching it.
        if rule.alarm is not None and conf >= np.float32(rule.alarm):
            return "alarm"
        if conf >= np.float32(rule.review):
            level = 1
    return _LEVELS[level]


#: Width of the border sampled by :func:`is_negative`, as a fraction of the shorter side.
BORDER_FRACTION = 0.04
#: Luma (0-255) below which a scan's border median and overall median count as dark.
DARK_LUMA = 128
#: How much brighter than its border (99th luma percentile minus border median) a negative's content is.
MIN_CONTENT_CONTRAST = 32


def is_negative(image: np.ndarray) -> bool:
    """Whether an ``(H, W, 3)`` uint8 X-ray scan is a negative display (air dark, dense objects bright).

    A scan's border is air or conveyor belt: white on a positive display, black on a negative one.
    The scan is a negative when the median luma of a border strip (:data:`BORDER_FRACTION` of the
    shorter side) and of the whole image are both below :data:`DARK_LUMA`, and something in it is
    brighter than the border by :data:`MIN_CONTENT_CONTRAST` (a uniformly dark image has nothing
    to turn around). Measured on the 3,974 real scans and 700 generated validation scans: border
    medians 227-255 on every positive, so none is taken for a negative; every inverted copy is.
    """
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = luma.shape
    b = max(1, round(BORDER_FRACTION * min(h, w)))
    border = np.concatenate([luma[:b].ravel(), luma[-b:].ravel(), luma[:, :b].ravel(), luma[:, -b:].ravel()])
    edge = float(np.median(border))
    return (
        edge < DARK_LUMA
        and float(np.median(luma)) < DARK_LUMA
        and float(np.percentile(luma, 99)) - edge >= MIN_CONTENT_CONTRAST
    )


def as_positive(image: np.ndarray) -> np.ndarray:
    """The scan as a positive display: a negative (:func:`is_negative`) inverted, anything else as is."""
    return np.subtract(255, image, dtype=np.uint8) if is_negative(image) else image


class ThreatDetector(YoloDetector):
    """Threat detector for X-ray scans, reporting a risk level with every inspection.

    Args:
        backend, spec, conf_threshold, iou_threshold, max_det, multi_label, head: as for
            :class:`~detectors.base.YoloDetector`.
        class_thresholds: per-class reporting thresholds; ``None`` (the default) uses each class's
            ``review`` threshold from ``risk_rules``, so exactly the detections that matter are shown.
            Pass ``{}`` to apply ``conf_threshold`` to every class.
        risk_rules: the risk policy; defaults to :data:`RISK_RULES`.
        auto_polarity: turn negative displays into positives before the model (:func:`as_positive`;
            module docstring). Boxes are unaffected: inverting moves no pixel.
        flip_tta: also run every scan mirrored left-right and fuse the two views' boxes (module
            docstring).
        tile_tta: also run four overlapping close-up tiles of every scan and fuse their boxes with
            the full view's (module docstring). With either view added, each view is decoded at the
            lowest score that can still reach a class's threshold after fusion; the thresholds apply
            to the fused scores.

    Raises:
        ValueError: the model has a class the risk policy does not cover.
    """

    modality: ClassVar[Modality | None] = "xray"

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
        risk_rules: Mapping[str, RiskRule] = RISK_RULES,
        auto_polarity: bool = True,
        flip_tta: bool = True,
        tile_tta: bool = True,
    ) -> None:
        uncovered = [n for n in spec.class_names if n not in risk_rules]
        if uncovered:
            raise ValueError(
                f"X-ray model {spec.name!r} has classes {uncovered} with no risk rule; "
                f"the policy covers {sorted(risk_rules)}"
            )
        if class_thresholds is None:
            class_thresholds = {n: risk_rules[n].review for n in spec.class_names}
        self.risk_rules = risk_rules
        self.auto_polarity = auto_polarity
        self.flip_tta = flip_tta
        self.tile_tta = tile_tta
        super().__init__(
            backend=backend,
            spec=spec,
            conf_threshold=conf_threshold,
            iou_threshold=iou_threshold,
            class_thresholds=class_thresholds,
            max_det=max_det,
            multi_label=multi_label,
            head=head,
        )

        # A fused score is the mean over the fused views (as scanned and mirrored, then the full
        # view and the close-up), so a view's box can still count if its score is at least
        # n*t - (n - 1), n being the number of scores averaged in the end (the others at most 1).
        n = (len(FLIP_VIEWS) if flip_tta else 1) * (2 if tile_tta else 1)
        view_thresholds = np.maximum(n * self.options.thresholds - (n - 1), VIEW_SCORE_FLOOR)
        self._view_options = replace(self.options, thresholds=view_thresholds.astype(np.float32))

    def _decode_options(self) -> DecodeOptions:
        return self._view_options if self.flip_tta or self.tile_tta else self.options

    def detect_with_timings(
        self, images: Sequence[np.ndarray], *, original_hw: Sequence[tuple[int, int]] | None = None
    ) -> tuple[list[Detections], StageTimings]:
        check_images(images)
        sizes = original_sizes(images, original_hw)
        t0 = time.perf_counter()
        if self.auto_polarity:
            # On the whole scan, before any tiling: a tile's edge is not the scan's border.
            images = [as_positive(im) for im in images]
        polarity_ms = (time.perf_counter() - t0) * 1e3
        if not self.flip_tta and not self.tile_tta:
            detections, timings = super().detect_with_timings(images, original_hw=sizes)
            return detections, replace(timings, preprocess_ms=timings.preprocess_ms + polarity_ms)

        # Every view of every scan in one batch: as scanned, mirrored, then the tiles.
        n = len(images)
        views: list[np.ndarray] = list(images)
        view_hw: list[tuple[int, int]] = list(sizes)
        if self.flip_tta:
            views += [np.ascontiguousarray(im[:, ::-1]) for im in images]
            view_hw += sizes
        tiles = [self._tiles(im, hw) if self.tile_tta else [] for im, hw in zip(images, sizes, strict=True)]
        for scan_tiles in tiles:
            views += [t.pixels for t in scan_tiles]
            view_hw += [t.original_hw for t in scan_tiles]
        found, timings = super().detect_with_timings(views, original_hw=view_hw)

        t0 = time.perf_counter()
        fused: list[Detections] = []
        next_tile = (2 if self.flip_tta else 1) * n
        for i in range(n):
            width = sizes[i][1]
            full = _as_view(found[i])
            if self.flip_tta:
                mirrored = found[n + i]
                full = weighted_box_fusion(
                    [full, (mirror_boxes(mirrored.xyxy, width), mirrored.confidence, mirrored.class_id)],
                    iou_threshold=FLIP_FUSION_IOU,
                )
            if tiles[i]:
                k = len(tiles[i])
                close_up = self._merge_tiles(tiles[i], found[next_tile : next_tile + k], sizes[i])
                next_tile += k
                full = weighted_box_fusion([full, close_up], iou_threshold=FLIP_FUSION_IOU)
            fused.append(self._threshold(*full))
        fuse_ms = (time.perf_counter() - t0) * 1e3
        return fused, replace(
            timings,
            images=n,
            preprocess_ms=timings.preprocess_ms + polarity_ms,
            postprocess_ms=timings.postprocess_ms + fuse_ms,
        )

    @staticmethod
    def _tiles(image: np.ndarray, original_hw: tuple[int, int]) -> list[_Tile]:
        """The 2 x 2 close-up tiles of one scan (none for a scan too small to tile)."""
        h, w = image.shape[:2]
        if min(h, w) < MIN_TILED_SIDE:
            return []
        sy, sx = original_hw[0] / h, original_hw[1] / w
        th, tw = round(h * TILE_FRACTION), round(w * TILE_FRACTION)
        out = []
        for y in (0, h - th):
            for x in (0, w - tw):
                out.append(
                    _Tile(
                        pixels=np.ascontiguousarray(image[y : y + th, x : x + tw]),
                        original_hw=(max(1, round(th * sy)), max(1, round(tw * sx))),
                        box=(x * sx, y * sy, (x + tw) * sx, (y + th) * sy),
                    )
                )
        return out

    def _merge_tiles(
        self, tiles: Sequence[_Tile], found: Sequence[Detections], original_hw: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tiles' boxes in the scan's frame, those cut by an inner tile edge dropped, merged by
        class-aware NMS at the detector's IoU threshold (where tiles overlap, both find the item)."""
        height, width = original_hw
        boxes, scores, classes = [], [], []
        m = TILE_EDGE_MARGIN_PX
        for tile, det in zip(tiles, found, strict=True):
            x1, y1, x2, y2 = tile.box
            b = det.xyxy.astype(np.float64) + np.array([x1, y1, x1, y1])
            cut = (
                ((b[:, 0] <= x1 + m) & (x1 > 0))
                | ((b[:, 1] <= y1 + m) & (y1 > 0))
                | ((b[:, 2] >= x2 - m) & (x2 < width - 0.5))
                | ((b[:, 3] >= y2 - m) & (y2 < height - 0.5))
            )
            boxes.append(b[~cut])
            scores.append(det.confidence[~cut])
            classes.append(det.class_id[~cut])
        xyxy, conf, cls = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
        keep = batched_nms(xyxy, conf, cls, self.options.iou_threshold)
        return xyxy[keep], conf[keep], cls[keep]

    def _threshold(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> Detections:
        """Fused boxes -> Detections: per-class thresholds on the fused scores, at most ``max_det``."""
        keep = np.flatnonzero(conf >= self.options.thresholds[cls])[: self.options.max_det]
        return Detections(
            xyxy=np.asarray(xyxy[keep], dtype=np.float32),
            confidence=np.asarray(conf[keep], dtype=np.float32),
            class_id=np.asarray(cls[keep], dtype=np.int64),
            class_names=self.class_names,
        )

    def risk(self, detections: Detections) -> RiskLevel:
        """Risk level of one scan's detections (see :data:`RISK_RULES`)."""
        return assess_risk(detections, self.risk_rules)


@dataclass(frozen=True)
class _Tile:
    """One close-up tile of a scan: its pixels, the size it stands for in the original scan, and its
    ``x1, y1, x2, y2`` box there."""

    pixels: np.ndarray
    original_hw: tuple[int, int]
    box: tuple[float, float, float, float]


def _as_view(det: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return det.xyxy, det.confidence, det.class_id
