"""Stamp and signature detection on scanned documents, and the crops handed to the similarity model."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from detectors.base import YoloDetector
from vision.types import Detections, Modality

#: Classes of the document model, in class-id order.
DOCUMENT_CLASSES: tuple[str, ...] = ("stamp", "signature")


class MarkDetector(YoloDetector):
    """Finds stamps (seal impressions) and signatures on document images.

    Constructor arguments are those of :class:`~detectors.base.YoloDetector`. Reports carry no risk
    level: a document's verdict comes from comparing each mark's crop with registered specimens
    (:meth:`crops` produces those crops).
    """

    modality: ClassVar[Modality | None] = "document"

    @staticmethod
    def crops(image: np.ndarray, detections: Detections, pad: float = 0.08) -> list[np.ndarray]:
        """Cut each detected mark out of the image with a margin.

        The margin keeps the outer ring of a seal and the pen strokes' ends that a tight box clips.

        Args:
            image: ``(H, W, 3)`` uint8 RGB, the image the detections were made on (original pixels).
            detections: boxes ``x1, y1, x2, y2`` in that image's pixels.
            pad: margin on every side as a fraction of the box's width (left/right) and height
                (top/bottom), ``>= 0``.

        Returns:
            One C-contiguous ``(h, w, 3)`` uint8 copy per detection, in detection order, clipped to the
            image and at least one pixel in each dimension.

        Raises:
            ValueError: ``pad`` is negative or ``image`` is not ``(H, W, 3)``.
        """
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3), got {image.shape}")
        height, width = image.shape[:2]
        out = []
        for x1, y1, x2, y2 in detections.xyxy.tolist():
            dx, dy = (x2 - x1) * pad, (y2 - y1) * pad
            # Expand outwards to whole pixels so no part of the box is lost to rounding.
            left = min(max(math.floor(x1 - dx), 0), width - 1)
            top = min(max(math.floor(y1 - dy), 0), height - 1)
            right = max(min(math.ceil(x2 + dx), width), left + 1)
            bottom = max(min(math.ceil(y2 + dy), height), top + 1)
            out.append(np.ascontiguousarray(image[top:bottom, left:right]))
        return out
