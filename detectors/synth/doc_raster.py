"""Raster primitives shared by the document, stamp and signature generators.

Ink is modelled as subtractive absorbance: a layer stores, per pixel and per RGB channel, the
fraction of light it absorbs (0 = no ink, 1 = opaque black in that channel). Laying ink on paper
multiplies the paper's reflectance by ``1 - absorbance``, which is the multiply blend that real
ink obeys: a red stamp over black print stays black, a blue signature over a red stamp turns dark
violet, and two layers commute.

Conventions: images are ``(H, W, 3)`` float32 RGB reflectance in ``[0, 1]`` unless stated;
``(x, y)`` is column, row with the origin at the top-left pixel corner; boxes are ``x1, y1, x2, y2``
pixel-edge coordinates (``x2``/``y2`` exclusive), as in :mod:`vision.types`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

#: Rec. 601 luma weights: how much each channel's absorbance darkens a greyscale view.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: Minimum luma drop (fraction of white) for ink to count as visible: about 15 grey levels,
#: below what a clerk notices on a scan with paper texture and noise.
VISIBLE_DARKENING = 0.06


def derive_rng(*keys: str | int) -> np.random.Generator:
    """A generator seeded from arbitrary keys (ids, indices), stable across processes and platforms.

    Python's ``hash()`` is salted per process, so the keys are hashed with SHA-256 instead.
    """
    digest = hashlib.sha256("\x1f".join(str(k) for k in keys).encode("utf-8")).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32).astype(np.uint64))


@dataclass
class InkLayer:
    """A patch of ink: what a stamp impression or a signature leaves on paper.

    Attributes:
        absorb: ``(H, W, 3)`` float32 absorbance per RGB channel in ``[0, 1]``.
    """

    absorb: FloatArray

    def __post_init__(self) -> None:
        a = self.absorb
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.float32:
            raise ValueError(f"InkLayer.absorb must be (H, W, 3) float32, got {a.shape} {a.dtype}")

    @classmethod
    def from_alpha(cls, alpha: FloatArray, rgb: tuple[float, float, float] | FloatArray) -> InkLayer:
        """Ink of one colour: ``alpha`` ``(H, W)`` coverage in ``[0, 1]``, ``rgb`` its full-strength colour."""
        colour = np.asarray(rgb, dtype=np.float32).reshape(1, 1, 3)
        return cls(np.ascontiguousarray(alpha[..., None] * (1.0 - colour), dtype=np.float32))

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.absorb.shape[0]), int(self.absorb.shape[1])

    def darkening(self) -> FloatArray:
        """``(H, W)`` luma drop this ink causes on white paper, in ``[0, 1]``."""
        return np.asarray(self.absorb @ LUMA, dtype=np.float32)

    def visible(self, threshold: float = VISIBLE_DARKENING) -> npt.NDArray[np.bool_]:
        """``(H, W)`` mask of pixels where the ink is visible on white paper."""
        return self.darkening() >= threshold

    def box(self, threshold: float = VISIBLE_DARKENING) -> tuple[int, int, int, int] | None:
        """Tight ``x1, y1, x2, y2`` box around visible ink in layer pixels, or ``None`` if none."""
        return mask_box(self.visible(threshold))

    def rgba(self) -> npt.NDArray[np.uint8]:
        """``(H, W, 4)`` uint8 straight-alpha RGBA rendering, for previews and specimen files."""
        alpha = self.absorb.max(axis=2)
        rgb = 1.0 - self.absorb / np.maximum(alpha, 1e-6)[..., None]
        out = np.concatenate([rgb, alpha[..., None]], axis=2)
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def crop_to_ink(self, margin: int = 2) -> InkLayer:
        """The smallest sub-layer holding every non-zero absorbance, plus ``margin`` pixels."""
        box = mask_box(self.absorb.max(axis=2) > 1e-3)
        if box is None:
            return self
        x1, y1, x2, y2 = box
        h, w = self.shape
        return InkLayer(
            self.absorb[max(0, y1 - margin) : min(h, y2 + margin), max(0, x1 - margin) : min(w, x2 + margin)]
        )


def mask_box(mask: npt.NDArray[np.bool_]) -> tuple[int, int, int, int] | None:
    """Tight ``x1, y1, x2, y2`` (exclusive ends) around the true pixels of ``mask``; ``None`` if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def lay_ink(page: FloatArray, ink: InkLayer, x: int, y: int) -> tuple[int, int, int, int] | None:
    """Multiply ``ink`` onto ``page`` in place with its top-left corner at ``(x, y)``.

    Parts falling outside the page are clipped, as when a stamp overhangs the paper edge.

    Returns:
        The page region ``x1, y1, x2, y2`` that was touched, or ``None`` if the ink missed the page.
    """
    h, w = ink.shape
    H, W = page.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 >= x2 or y1 >= y2:
        return None
    patch = ink.absorb[y1 - y : y2 - y, x1 - x : x2 - x]
    page[y1:y2, x1:x2] *= 1.0 - patch
    return x1, y1, x2, y2


def smooth_noise(shape: tuple[int, int], cell_px: float, rng: np.random.Generator) -> FloatArray:
    """Band-limited noise, zero mean and unit-ish std, with features about ``cell_px`` pixels wide.

    Built by bicubic upsampling of a coarse Gaussian grid: cheap, and smooth enough for pressure,
    lighting and paper-tone fields. Wide features are synthesised at reduced resolution and
    stretched linearly (page-sized fields would otherwise dominate the page generation time).
    """
    h, w = shape
    reduce = max(1.0, cell_px / 4.0)
    sh, sw = max(2, int(np.ceil(h / reduce))), max(2, int(np.ceil(w / reduce)))
    cell = cell_px / reduce
    gh, gw = max(2, int(np.ceil(sh / cell)) + 2), max(2, int(np.ceil(sw / cell)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(grid, (max(sw, int(gw * cell)), max(sh, int(gh * cell))), interpolation=cv2.INTER_CUBIC)
    oy = int(rng.integers(0, max(1, big.shape[0] - sh)))
    ox = int(rng.integers(0, max(1, big.shape[1] - sw)))
    field = big[oy : oy + sh, ox : ox + sw]
    if reduce > 1.0:
        field = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(field, dtype=np.float32)


def rotate_expand(img: FloatArray, angle_deg: float, interpolation: int = cv2.INTER_LINEAR) -> FloatArray:
    """Rotate ``img`` (``(H, W)`` or ``(H, W, C)``) counter-clockwise by ``angle_deg`` about its
    centre, growing the canvas so nothing is cut off; new pixels are zero."""
    h, w = img.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    cos, sin = abs(M[0, 0]), abs(M[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    M[0, 2] += nw / 2.0 - w / 2.0
    M[1, 2] += nh / 2.0 - h / 2.0
    out = cv2.warpAffine(img, M, (nw, nh), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.asarray(out, dtype=np.float32)


def downsample(img: FloatArray, factor: int) -> FloatArray:
    """Box-filter downsampling by an integer factor (anti-aliases supersampled drawings)."""
    if factor == 1:
        return img
    h, w = img.shape[:2]
    out = cv2.resize(img, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    return np.asarray(out, dtype=np.float32)
