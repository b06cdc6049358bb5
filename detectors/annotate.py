"""Draw detections onto an image for officers, clerks and reports.

Boxes get a per-class colour with a thin black outer stroke, and labels sit on a filled tag in the
class colour with black or white text picked by contrast, so both read on white documents and on
dark X-ray backgrounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from vision.types import Detections

# Saturated mid-luminance colours (RGB) that stay distinguishable for most colour-vision deficiencies
# and stand out against both white paper and dark X-ray clutter.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (60, 180, 75),
    (240, 50, 230),
    (0, 150, 150),
    (170, 110, 40),
)
_OUTLINE = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colour(class_id: int) -> tuple[int, int, int]:
    """RGB colour used for a class id (the palette repeats after eight classes)."""
    return PALETTE[int(class_id) % len(PALETTE)]


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def label_text(label: str, confidence: float, similarity: float | None = None) -> str:
    """The text drawn on a box, e.g. ``"stamp 0.91 | 87.25%"``."""
    text = f"{label} {confidence:.2f}"
    if similarity is not None:
        text += f" | {similarity:.2f}%"
    return text


def annotate(
    image: npt.NDArray[np.uint8],
    detections: Detections,
    *,
    similarities: Sequence[float | None] | None = None,
    line_width: int | None = None,
) -> npt.NDArray[np.uint8]:
    """Draw boxes and labels onto a copy of an image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB; not modified.
        detections: boxes ``x1, y1, x2, y2`` in this image's pixels.
        similarities: optional similarity percentage per detection (``None`` to leave one out), shown
            after the confidence.
        line_width: box line width in pixels; default scales with the image size.

    Returns:
        The annotated ``(H, W, 3)`` uint8 RGB copy.

    Raises:
        ValueError: the image is not ``(H, W, 3)`` uint8, or ``similarities`` has the wrong length.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    n = len(detections)
    if similarities is not None and len(similarities) != n:
        raise ValueError(f"got {len(similarities)} similarities for {n} detections")
    canvas = np.ascontiguousarray(image.copy())
    height, width = canvas.shape[:2]
    lw = line_width or max(round((height + width) / 2 * 0.003), 2)
    font_scale = max(lw / 3, 0.4)
    font_thickness = max(lw - 1, 1)

    labels = detections.labels
    # Least confident first, so where labels overlap the most confident one stays readable on top.
    for i in np.argsort(detections.confidence, kind="stable").tolist():
        x1, y1, x2, y2 = (round(v) for v in detections.xyxy[i].tolist())
        colour = class_colour(int(detections.class_id[i]))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), _OUTLINE, lw + 2, cv2.LINE_AA)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, lw, cv2.LINE_AA)

        sim = similarities[i] if similarities is not None else None
        text = label_text(labels[i], float(detections.confidence[i]), sim)
        (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, font_thickness)
        tag_h = th + baseline + 2 * lw
        # Put the tag above the box when there is room, otherwise just inside its top edge.
        top = y1 - tag_h if y1 - tag_h >= 0 else y1
        left = min(max(x1, 0), max(width - tw - 2 * lw, 0))
        cv2.rectangle(canvas, (left, top), (left + tw + 2 * lw, top + tag_h), colour, cv2.FILLED)
        cv2.rectangle(canvas, (left, top), (left + tw + 2 * lw, top + tag_h), _OUTLINE, 1)
        cv2.putText(
            canvas,
            text,
            (left + lw, top + lw + th),
            _FONT,
            font_scale,
            _text_colour(colour),
            font_thickness,
            cv2.LINE_AA,
        )
    return canvas
