"""How a questioned crop may differ from the registered specimen's scan, for robustness benchmarks.

Each condition maps an ``(H, W, 3)`` uint8 RGB crop to another one: lower resolution, JPEG, scanner
noise, dim paper, binarisation (a fax), a wider detector box, rotation. The benchmarks degrade the
questioned crops only and leave the specimens as they are (``benchmarks.signature_match_eval
--conditions``, ``benchmarks.stamp_match_eval --conditions``).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["CONDITIONS", "Condition", "greyscale"]

Image = npt.NDArray[np.uint8]
Condition = Callable[[Image], Image]


def _jpeg(img: Image, quality: int) -> Image:
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError("JPEG round trip failed")
    return np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _pad(img: Image) -> Image:
    return np.asarray(cv2.copyMakeBorder(img, 30, 30, 60, 60, cv2.BORDER_CONSTANT, value=(255, 255, 255)))


def _rotated(img: Image, degrees: float) -> Image:
    img = _pad(img)
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255)))


def _binarised(img: Image) -> Image:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    _, bw = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return np.repeat(bw[..., None], 3, axis=2)


def _scaled(img: Image, factor: float) -> Image:
    return np.asarray(cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA))


def _noisy(img: Image) -> Image:
    noise = np.random.default_rng(0).normal(0.0, 12.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def greyscale(img: Image) -> Image:
    """A greyscale scan or copy of ``img`` (three equal channels)."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


#: How a questioned crop may differ from the registered specimen's scan.
CONDITIONS: dict[str, Condition] = {
    "half resolution": lambda i: _scaled(i, 0.5),
    "third resolution": lambda i: _scaled(i, 1 / 3),
    "JPEG quality 40": lambda i: _jpeg(i, 40),
    "noise sigma 12": _noisy,
    "dim paper (x0.8 + 20)": lambda i: np.clip(i.astype(np.float32) * 0.8 + 20, 0, 255).astype(np.uint8),
    "binarised (Otsu)": _binarised,
    "wider box (+30/+60 px white)": _pad,
    "rotated 5 degrees": lambda i: _rotated(i, 5.0),
    "rotated 10 degrees": lambda i: _rotated(i, 10.0),
}
