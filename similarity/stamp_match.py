"""Aligned, full-resolution comparison of a stamp crop with registered specimen impressions.

The Siamese embedding (:mod:`similarity.embedder`) sees a stamp letterboxed to 96 x 192 pixels. At
that size a re-carved forgery (one changed character of the ring text, a ring 1-2 px wider, another
typeface, a redrawn emblem) differs from the genuine die by less than two genuine impressions differ
from each other (rotation, faint or partial inking, printed text underneath, scanner). This module
compares the marks where those differences are visible: at the scan's own resolution, after
aligning the questioned impression onto the specimen. It is classical image processing on numpy and
OpenCV only (no training, no torch), so it can run in the serving path.

Per comparison, in order:

1. **Ink map** (:func:`ink_map`). The paper is estimated locally (a grey-scale closing of a 4x
   downsampled copy, so uneven lighting and yellowed paper divide out) and each pixel becomes an
   absorbance ``1 - rgb / paper`` per channel. A *chromatic* crop (red, blue, violet stamp ink in a
   colour scan) keeps only the absorbance along the ink's hue - the component of the absorbance
   that is not the same in all three channels, projected on the ink's chroma direction - so black
   printed text and form lines under the stamp, which absorb all channels alike, vanish. A crop is
   chromatic when its dark pixels are mostly coloured, or when at least :data:`COLOURED_FRACTION`
   of its inked pixels are clearly coloured: a faint impression under heavy black print, whose dark
   pixels are mostly print (before this second test such crops were read by darkness, print and
   all: 18 of the 621 held-out crops of the benchmark below, in 28 of its 276 genuine pairs). A
   crop without colour (black ink, greyscale photocopy, fax) uses darkness, print included: the
   remaining hard case. Either way the map is divided by its ink level (a high percentile), so a
   faint impression and a heavy one both reach ~1. A noisy scan (:func:`scan_noise` above
   :data:`NOISE_SIGMA`) is smoothed by a one-pixel Gaussian first, or its speckled paper would be
   read as ink and its wandering colour as a copy's.
2. **Alignment** (:func:`align`): a similarity transform (rotation, scale, translation) taking the
   query onto the specimen. A brute-force search over rotations and scales, each scored by the peak
   of an FFT cross-correlation of blurred ink maps at a coarse size (translation comes free with the
   peak), then a finer local search at a larger size with a sub-pixel peak. When the two marks'
   sizes differ by more than :data:`RESOLUTION_GAP` (a document scanned at another resolution than
   the specimen), the scales around their size ratio are searched as well.
3. **Comparison** (:func:`compare_ink`) in the specimen's frame at (up to) full resolution, or at
   the coarser scan's resolution when the two were scanned at different ones. Genuine
   impressions of one die differ mainly by *missing* ink (faint, gapped, partial impressions) and by
   unrelated ink (printed text); a re-carved die puts ink *where the genuine die has none* (another
   glyph, a shifted stroke, a wider ring). So the main cues are one-sided: how much of the query's ink
   lies farther than a tolerance from the specimen's ink, globally and in the worst local window,
   and in glyph-sized windows where both marks are inked, how much of the ink the other lacks.
   One cue looks at the query alone (:func:`hue_noise`): a stamp pad holds one dye, so a real
   impression has one hue; a colour photocopy or print lays the same colour as cyan, magenta and
   yellow toner dots out of register, and its hue wanders from pixel to pixel.
4. **Combined score**: a logistic model of the features (:data:`DEFAULT_WEIGHTS`).

Measured (``benchmarks/stamp_match_eval.py``, 69 held-out rendered authorities, best of two
specimens; ``benchmarks/results/stamp_match.json``): better than the CNN cosine on skilled
forgeries (EER 0.304 vs 0.464) and random stamps (0.054 vs 0.138), but far from solving skilled
forgeries: an altered character is still near chance (0.406). The hue-noise cue took colour copies
from 0.333 to 0.203 EER and skilled forgeries overall from 0.333 to 0.299 (random unchanged,
0.051); before the second chromatic test of step 1 the same benchmark gave ~0.35 skilled and
~0.08 random. With the questioned crop at half the specimen's resolution, random stamps went from
EER 0.401 to 0.078 once the resolution search and the coarser-resolution comparison were added
(a third of the resolution: 0.101); with noise of sigma 12 on it, from 0.312 to 0.058 once noisy
crops were smoothed (``scan_conditions`` in the same file).

Tried and dropped (same benchmark): a consensus reference (the union of an owner's aligned
specimens) with a mask over the regions where specimens disagree (date lines) - skilled EER
0.36-0.40, random 0.09-0.12, no better on dated stamps (the mask cannot tell a changed date from a
gapped impression); best of three specimens instead of two - random 0.058, skilled unchanged
(0.36); counting only query ink inside the specimen's outline (convex hull + 6 px) - skilled 0.319,
random 0.058 against 0.333 / 0.051 then, within noise; a local correlation per glyph window after
a shift of up to 2 px (so misalignment residue would not count against genuine impressions) - no
gain on an altered character in a quick refit on the same authorities (0.435 against 0.406).

:class:`StampMatcher` wraps the three steps, keeps the prepared specimens, and with several
specimens of one owner returns the comparison with the best (most similar) specimen.

Coordinates: images are ``(H, W[, 3])`` arrays; points are ``(x, y)`` pixels; a ``(2, 3)`` matrix
maps query pixels to specimen pixels (``cv2.warpAffine`` convention, applied with the query as source).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from similarity.pairwise import BlankCropError, Finding, PairMatchError

__all__ = [
    "COPY_LIKE_HUE_NOISE",
    "DEFAULT_WEIGHTS",
    "FEATURE_NAMES",
    "LATER_FEATURES",
    "Alignment",
    "BlankCropError",
    "BlankStampError",
    "InkMap",
    "StampMatchError",
    "StampMatchFeatures",
    "StampMatcher",
    "align",
    "compare_ink",
    "hue_noise",
    "ink_map",
    "scan_noise",
    "specimen_checks",
]

FloatArray = npt.NDArray[np.float32]

#: Crops smaller than this (either side, pixels) cannot hold a comparable stamp.
MIN_SIDE = 16
#: A crop whose darkest ink (99.5th percentile of darkness) is below this absorbance is blank.
MIN_INK_ABSORBANCE = 0.10
#: Fewer ink pixels (ink map >= 0.5) than this and the crop is treated as blank.
MIN_INK_PIXELS = 40
#: Chroma-to-darkness ratio (90th percentile over inked pixels) above which a crop is chromatic.
CHROMATIC_RATIO = 0.15
#: Chroma (absorbance off the grey axis) from which a pixel counts as clearly coloured.
MIN_CHROMA = 0.05
#: Share of a crop's inked pixels that must be clearly coloured for a crop whose darkest ink is
#: black (printed text over a faint coloured impression) to be treated as chromatic; a black or
#: dark-violet stamp in a colour scan has ~1 % (colour fringes), a faint coloured one under text 8-85 %.
COLOURED_FRACTION = 0.05
#: Scanner noise (:func:`scan_noise`, grey levels) above which a crop is smoothed before its ink map
#: is made. On 1 in 23 of the rendered benchmark crops (``var/synth/stamp-specimens``) the measure
#: was 1.05 median, 3.15 at the 95th percentile, 5.24 at most; JPEG quality 40 stays below 4.2; the
#: same crops with Gaussian noise of sigma 12 measured 6.3-15.7 (white paper clips part of it).
NOISE_SIGMA = 5.5
#: Ink-map value from which a pixel counts as ink in the binary comparisons.
INK_THRESHOLD = 0.3
#: Long side (pixels) the specimen is brought down to, at most, for the comparison: about the size
#: of a 45 mm stamp at 200 dpi; larger scans are compared at this size.
COMPARE_LONG_SIDE = 384
#: Tolerance (pixels at the comparison size) within which query ink counts as on the specimen's ink.
NEAR_PX = 1.5
#: Tolerance for clearly displaced ink.
FAR_PX = 3.0
#: Long side of the specimen in the coarse rotation x scale search.
COARSE_LONG_SIDE = 64
#: Long side of the specimen in the local refinement.
FINE_LONG_SIDE = 160
#: Size ratio beyond which query and specimen count as scanned at different resolutions (a 200 dpi
#: document against a 300 dpi specimen is 1.5). Beyond it the alignment also searches around the
#: ratio of the marks' ink radii, and the pair is compared at the coarser of the two resolutions
#: (:func:`align`, :func:`compare_ink`). The default scale search reaches ~1.34 by itself.
RESOLUTION_GAP = 1.4


class StampMatchError(PairMatchError):
    """A stamp crop cannot be compared: wrong array type or shape, too small, or no ink."""


class BlankStampError(StampMatchError, BlankCropError):
    """The stamp crop holds no visible ink (an empty detector box, a blank region of paper)."""


# ------------------------------------------------------------------------------------------ ink map


@dataclass(frozen=True)
class InkMap:
    """Where the stamp ink lies in one crop.

    Attributes:
        ink: ``(H, W)`` float32 in ``[0, 1]``: 0 paper, ~1 full-strength ink.
        hue: unit chroma direction (3,) of the ink in absorbance space when the map was made along
            a hue (text suppressed); ``None`` when it is darkness.
        chromatic: whether the crop's own ink has colour (its hue can be projected on).
        own_hue: the crop's own ink chroma direction (3,), ``None`` if achromatic.
    """

    ink: FloatArray
    hue: npt.NDArray[np.float32] | None
    chromatic: bool
    own_hue: npt.NDArray[np.float32] | None


@dataclass(frozen=True)
class _Absorbance:
    dark: FloatArray  # (H, W) mean absorbance over channels
    chroma: FloatArray  # (H, W, 3) absorbance minus its channel mean
    hue: npt.NDArray[np.float32] | None  # own chroma direction if chromatic


def _check_crop(crop: npt.NDArray[np.uint8]) -> None:
    if not (isinstance(crop, np.ndarray) and crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3):
        raise StampMatchError(
            f"a stamp crop must be an (H, W, 3) uint8 RGB array, got {getattr(crop, 'shape', None)} "
            f"{getattr(crop, 'dtype', type(crop).__name__)}"
        )
    if crop.shape[0] < MIN_SIDE or crop.shape[1] < MIN_SIDE:
        raise StampMatchError(f"a stamp crop must be at least {MIN_SIDE} x {MIN_SIDE} pixels, got {crop.shape[:2]}")


def _paper(img: FloatArray) -> FloatArray:
    """Local paper colour ``(H, W, 3)``: a closing (max filter) of a 4x smaller copy wipes out
    strokes and text up to ~30 px wide, a blur smooths it, and it is scaled back up. Follows uneven
    lighting, yellowing and stains, which a single paper level would not."""
    h, w = img.shape[:2]
    sw, sh = max(2, w // 4), max(2, h // 4)
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    closed = cv2.dilate(small, k)
    closed = cv2.GaussianBlur(closed, (0, 0), 3.0)
    paper = cv2.resize(closed, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.maximum(np.asarray(paper, dtype=np.float32), 0.2)


def scan_noise(crop: npt.NDArray[np.uint8]) -> float:
    """The crop's pixel noise in grey levels: a robust standard deviation (MAD) of the differences
    between horizontally neighbouring pixels, over all channels, divided by sqrt(2). Strokes and
    edges are a minority of the differences and do not move the median."""
    x = crop.astype(np.int16)
    d = (x[:, 1:] - x[:, :-1]).ravel()
    med = float(np.median(d))
    return float(np.median(np.abs(d - med))) * 1.4826 / math.sqrt(2.0)


def _denoised(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A noisy scan (:func:`scan_noise` above :data:`NOISE_SIGMA`) smoothed by a Gaussian of one
    pixel; a clean one as it is. Unsmoothed, noise speckles the paper with pixels over the ink
    threshold, which the comparison reads as ink the genuine die does not have: on the stamp
    benchmark's held-out pairs with noise of sigma 12 on the questioned crop, random stamps had EER
    0.312 (0.054 as scanned); smoothed, 0.058. On 30 of those authorities a 3x3 median instead gave
    0.14 and non-local means 0.09, against 0.05 for the Gaussian."""
    if scan_noise(crop) <= NOISE_SIGMA:
        return crop
    return np.asarray(cv2.GaussianBlur(crop, (0, 0), 1.0), dtype=np.uint8)


def _absorbance(crop: npt.NDArray[np.uint8]) -> _Absorbance:
    _check_crop(crop)
    img = _denoised(crop).astype(np.float32) * (1.0 / 255.0)
    absorb = np.clip(1.0 - img / _paper(img), 0.0, 1.0)
    dark = absorb.mean(axis=2)
    if float(np.percentile(dark, 99.5)) < MIN_INK_ABSORBANCE:
        raise BlankStampError(
            f"crop {crop.shape[:2]} holds no visible ink (darkest 0.5 % absorbs < {MIN_INK_ABSORBANCE})"
        )
    chroma = absorb - dark[..., None]
    norm = np.sqrt((chroma * chroma).sum(axis=2))
    inked = dark > max(0.08, 0.4 * float(np.percentile(dark, 99)))
    ratio = norm[inked] / np.maximum(dark[inked], 1e-3)
    # Clearly coloured pixels at any ink level: a faint coloured impression under heavy black print
    # is a minority of the dark pixels (``inked`` may miss it entirely) but still thousands of pixels.
    coloured = (norm > MIN_CHROMA) & (norm > 2.0 * CHROMATIC_RATIO * dark)
    n_coloured = int(coloured.sum())
    hue = None
    strong: npt.NDArray[np.bool_] | None = None
    if ratio.size >= MIN_INK_PIXELS and float(np.percentile(ratio, 90)) > CHROMATIC_RATIO:
        # Chroma direction of clearly coloured pixels, weighted by their chroma: the stamp's ink.
        strong = inked & (norm > CHROMATIC_RATIO * np.maximum(dark, 1e-3))
    elif n_coloured >= 4 * MIN_INK_PIXELS and n_coloured >= COLOURED_FRACTION * int((dark > 0.08).sum()):
        strong = coloured
    if strong is not None:
        v = chroma[strong].sum(axis=0)
        n = float(np.linalg.norm(v))
        if n > 1e-6:
            hue = (v / n).astype(np.float32)
    return _Absorbance(dark=dark.astype(np.float32), chroma=chroma.astype(np.float32), hue=hue)


def _normalise_level(raw: FloatArray) -> FloatArray:
    """Divide by the ink level (97th percentile of clearly inked pixels) so that faint and heavy
    impressions both reach ~1; raises :class:`BlankCropError` if too little ink remains."""
    vals = raw[raw > 0.05]
    if vals.size < MIN_INK_PIXELS:
        raise BlankStampError(f"only {vals.size} inked pixels along the ink's hue or darkness")
    level = max(float(np.percentile(vals, 97)), 0.08)
    out = np.clip(raw * (1.0 / level), 0.0, 1.0).astype(np.float32)
    if int((out >= 0.5).sum()) < MIN_INK_PIXELS:
        raise BlankStampError("too few ink pixels to compare")
    return out


def ink_map(crop: npt.NDArray[np.uint8], *, hue: npt.ArrayLike | None = None) -> InkMap:
    """The stamp-ink map of a crop (step 1 of the module docstring).

    Args:
        crop: ``(H, W, 3)`` uint8 RGB, H, W >= :data:`MIN_SIDE`.
        hue: chroma direction (3,) to project on, e.g. the registered specimen's ink; ``None`` uses
            the crop's own ink hue. Ignored (darkness is used) when the crop has no colour.

    Returns:
        The map; ``map.hue`` is the direction actually used (``None`` for darkness).

    Raises:
        StampMatchError: not an ``(H, W, 3)`` uint8 array, or smaller than :data:`MIN_SIDE`.
        BlankCropError: no visible ink.
    """
    ab = _absorbance(crop)
    return _ink_from(ab, hue, use_hue=True)


def _ink_from(ab: _Absorbance, hue: npt.ArrayLike | None, *, use_hue: bool) -> InkMap:
    direction = None
    if use_hue and ab.hue is not None:
        direction = ab.hue if hue is None else np.asarray(hue, dtype=np.float32)
        direction = (direction / max(float(np.linalg.norm(direction)), 1e-6)).astype(np.float32)
    raw = np.maximum(ab.chroma @ direction, 0.0).astype(np.float32) if direction is not None else ab.dark
    return InkMap(ink=_normalise_level(raw), hue=direction, chromatic=ab.hue is not None, own_hue=ab.hue)


# ---------------------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class Alignment:
    """A similarity transform taking query pixels onto specimen pixels.

    Attributes:
        angle_deg: rotation of the query (counter-clockwise in image display, OpenCV convention).
        scale: the factor taking the query's size to the specimen's (2 for a query scanned at
            half the specimen's resolution).
        matrix: ``(2, 3)`` float64 affine matrix (query ``(x, y)`` -> specimen ``(x, y)``).
        score: normalised cross-correlation peak of the blurred ink maps at the refinement size
            (0..1; about how much of the two maps' ink energy coincides).
    """

    angle_deg: float
    scale: float
    matrix: npt.NDArray[np.float64]
    score: float


def _centre(ink: FloatArray) -> tuple[float, float]:
    """Centre of the crop (the detector box is centred on the mark; the ink centroid is pulled off
    by partial impressions and is not used)."""
    h, w = ink.shape
    return (w - 1) / 2.0, (h - 1) / 2.0


def _query_matrix(
    angle_deg: float, scale: float, cq: tuple[float, float], target: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """``(2, 3)``: rotate by ``angle_deg`` and scale by ``scale`` about ``cq``, moving it to ``target``."""
    m = cv2.getRotationMatrix2D(cq, angle_deg, scale)
    m[0, 2] += target[0] - cq[0]
    m[1, 2] += target[1] - cq[1]
    return np.asarray(m, dtype=np.float64)


def _peak(corr: FloatArray) -> tuple[float, float, float]:
    """``(dx, dy, value)`` of the circular correlation's maximum, sub-pixel by a parabola per axis."""
    n_y, n_x = corr.shape
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    v = float(corr[iy, ix])

    def sub(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return 0.0 if abs(d) < 1e-12 else float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))

    fx = sub(float(corr[iy, (ix - 1) % n_x]), v, float(corr[iy, (ix + 1) % n_x]))
    fy = sub(float(corr[(iy - 1) % n_y, ix]), v, float(corr[(iy + 1) % n_y, ix]))
    dx = ix + fx if ix < n_x // 2 else ix + fx - n_x
    dy = iy + fy if iy < n_y // 2 else iy + fy - n_y
    return float(dx), float(dy), v


class _Canvas:
    """The specimen at one working size on a zero-padded FFT canvas, ready to correlate with.

    The query is blurred once at its native size (blur commutes with rotation), then each candidate
    rotation/scale is a warp, one forward DFT and one inverse DFT (OpenCV's packed real DFTs).
    """

    def __init__(self, specimen: FloatArray, query: FloatArray, factor: float, pad_to: int, sigma: float) -> None:
        self.factor = factor
        n = cv2.getOptimalDFTSize(pad_to)
        self.n = n
        self.centre = (n / 2.0, n / 2.0)
        s_small, s_resize = _shrink(specimen, factor)
        s_small = np.asarray(cv2.GaussianBlur(s_small, (0, 0), sigma), dtype=np.float32)
        m = _query_matrix(0.0, 1.0, _centre(s_small), self.centre)
        self.to_canvas = _compose(m, s_resize)  # specimen native -> canvas
        img = cv2.warpAffine(s_small, m, (n, n), flags=cv2.INTER_LINEAR)
        self.norm = float(np.linalg.norm(img)) + 1e-6
        self.fft = cv2.dft(img)
        # The query, shrunk to the working size and blurred there (its scale is applied by the warp).
        q_small, self.q_resize = _shrink(query, factor)
        self.query = np.asarray(cv2.GaussianBlur(q_small, (0, 0), sigma), dtype=np.float32)

    def score(self, angle: float, scale: float) -> tuple[float, float, float]:
        """``(dx, dy, ncc)``: the query rotated/scaled onto the canvas centre, best shift and score."""
        m = _query_matrix(angle, scale, _centre(self.query), self.centre)
        img = cv2.warpAffine(self.query, m, (self.n, self.n), flags=cv2.INTER_LINEAR)
        qn = float(np.linalg.norm(img)) + 1e-6
        spec = cv2.mulSpectrums(self.fft, cv2.dft(img), 0, conjB=True)
        corr = np.asarray(cv2.idft(spec, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT), dtype=np.float32)
        dx, dy, v = _peak(corr)
        return dx, dy, v / (qn * self.norm)

    def native_matrix(self, angle: float, scale: float, dx: float, dy: float) -> npt.NDArray[np.float64]:
        """Query native pixels -> specimen native pixels for a canvas solution."""
        mq = _query_matrix(angle, scale, _centre(self.query), self.centre)
        mq[:, 2] += (dx, dy)
        inv = np.asarray(cv2.invertAffineTransform(self.to_canvas), dtype=np.float64)
        return _compose(inv, _compose(mq, self.q_resize))


def _shrink(img: FloatArray, factor: float) -> tuple[FloatArray, npt.NDArray[np.float64]]:
    """``img`` resized by ``factor`` and the exact ``(2, 3)`` map from its pixels to the result's
    (pixel centres: ``x' = (x + 0.5) * fx - 0.5`` with the realised per-axis factors)."""
    if factor == 1.0:
        return img, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    h, w = img.shape
    nw, nh = max(2, round(w * factor)), max(2, round(h * factor))
    out = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    fx, fy = nw / w, nh / h
    return np.asarray(out, dtype=np.float32), np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5]])


def _compose(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``a ∘ b`` of two ``(2, 3)`` affine matrices (apply ``b`` first)."""
    a3 = np.vstack([a, [0.0, 0.0, 1.0]])
    b3 = np.vstack([b, [0.0, 0.0, 1.0]])
    return np.asarray((a3 @ b3)[:2], dtype=np.float64)


def _ink_radius(ink: FloatArray) -> float:
    """Radius of gyration (px) of a map's ink (>= 0.5): its size, whatever its rotation."""
    ys, xs = np.nonzero(ink >= 0.5)
    if xs.size < 2:
        return 0.0
    return math.sqrt(float(((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2).mean()))


def _with_resolution_scales(query: FloatArray, specimen: FloatArray, scales: Sequence[float]) -> tuple[float, ...]:
    """``scales``, plus the same scales around the ratio of the two marks' ink radii when that ratio
    is beyond :data:`RESOLUTION_GAP` either way: the query was scanned at another resolution than
    the specimen (half, a third, 1.5x), far outside the search's own reach. The radius ratio alone
    is too rough to trust (a partial impression, printed text under a greyscale one), so the
    original scales stay in the search and the correlation decides."""
    rq, rs = _ink_radius(query), _ink_radius(specimen)
    if rq <= 0.0 or rs <= 0.0:
        return tuple(scales)
    ratio = rs / rq
    if abs(math.log(ratio)) <= math.log(RESOLUTION_GAP):
        return tuple(scales)
    return tuple(scales) + tuple(ratio * s for s in scales)


def align(
    query: FloatArray,
    specimen: FloatArray,
    *,
    max_angle: float = 90.0,
    angle_step: float = 5.0,
    scales: Sequence[float] = (0.8, 0.894, 1.0, 1.118, 1.25),
    top_k: int = 6,
) -> Alignment:
    """Find the similarity transform taking ``query`` onto ``specimen`` (step 2 of the module docstring).

    A coarse search scores every rotation in ``[-max_angle, max_angle]`` (step ``angle_step``) and
    every scale in ``scales`` by the normalised FFT cross-correlation peak of blurred ink maps, the
    specimen's long side at :data:`COARSE_LONG_SIDE` pixels. The ``top_k`` best are refined at
    :data:`FINE_LONG_SIDE` (distinct in angle or scale; a ring correlates at any rotation, the text
    decides at the finer size) over half an angle step and 4 % of scale either way, and the best of
    those is polished in 1 and 0.5 degree, 2 and 1 % steps.

    Args:
        query: ``(Hq, Wq)`` float32 ink map (:attr:`InkMap.ink`).
        specimen: ``(Hs, Ws)`` float32 ink map.
        max_angle: largest rotation searched, degrees (stamps are pressed at up to ~40 degrees
            either way, and the specimen may be rotated too).
        angle_step: coarse rotation step, degrees.
        scales: coarse scales (the factor taking the query's size to the specimen's). When the
            marks' ink radii differ by more than :data:`RESOLUTION_GAP`, the same scales around
            their ratio are searched too (a query scanned at another resolution).
        top_k: coarse candidates refined.

    Returns:
        The best alignment.

    Raises:
        StampMatchError: an ink map is not a 2-D float array, or no scales were given.
    """
    for name, arr in (("query", query), ("specimen", specimen)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 2 or min(arr.shape) < 2:
            raise StampMatchError(f"{name} ink map must be a 2-D array, got {getattr(arr, 'shape', None)}")
    if not scales:
        raise StampMatchError("align needs at least one scale")
    query = np.ascontiguousarray(query, dtype=np.float32)
    specimen = np.ascontiguousarray(specimen, dtype=np.float32)
    scales = _with_resolution_scales(query, specimen, scales)
    s_long = max(specimen.shape)
    extent = max(math.hypot(*query.shape) * max(scales), math.hypot(*specimen.shape))

    f = min(1.0, COARSE_LONG_SIDE / s_long)
    coarse = _Canvas(specimen, query, f, int(extent * f) + 8, sigma=1.2)
    angles = np.arange(-max_angle, max_angle + 1e-6, angle_step)
    results = sorted(
        ((coarse.score(float(ang), float(sc))[2], float(ang), float(sc)) for sc in scales for ang in angles.tolist()),
        reverse=True,
    )
    # Distinct candidates: a round ring correlates almost equally at every rotation, so the best
    # coarse peak is not always the right one; the text decides at the finer size.
    picked: list[tuple[float, float]] = []
    for _, ang, sc in results:
        if all(abs(ang - pa) > 1.5 * angle_step or abs(math.log(sc / ps)) > 0.05 for pa, ps in picked):
            picked.append((ang, sc))
        if len(picked) == top_k:
            break

    f2 = min(1.0, FINE_LONG_SIDE / s_long)
    fine = _Canvas(specimen, query, f2, int(extent * f2) + 8, sigma=1.0)
    best: tuple[float, float, float, float, float] = (-math.inf, 0.0, 1.0, 0.0, 0.0)
    step = angle_step / 2.0
    for a0, s0 in picked:
        for a in (a0 - step, a0, a0 + step):
            for s in (s0 / 1.04, s0, s0 * 1.04):
                dx, dy, v = fine.score(a, s)
                if v > best[0]:
                    best = (v, a, s, dx, dy)
    # Polish around the best: 1 degree and 2 % steps, then half a degree and 1 %.
    for da, ds in ((1.0, 1.02), (0.5, 1.01)):
        v, a, s, dx, dy = best
        for a2 in (a - da, a, a + da):
            for s2 in (s / ds, s, s * ds):
                if a2 == a and s2 == s:
                    continue
                dx2, dy2, v2 = fine.score(a2, s2)
                if v2 > best[0]:
                    best = (v2, a2, s2, dx2, dy2)
    v, a, s, dx, dy = best
    return Alignment(angle_deg=a, scale=s, matrix=fine.native_matrix(a, s, dx, dy), score=v)


# --------------------------------------------------------------------------------------- comparison

#: Feature names in the order of :meth:`StampMatchFeatures.vector`.
FEATURE_NAMES: tuple[str, ...] = (
    "ncc",
    "extra_ink",
    "extra_ink_far",
    "missing_ink",
    "worst_window",
    "window_max",
    "window_p90",
    "window_median",
    "chamfer",
    "stroke_ratio",
    "align_score",
    "scale_dev",
    "hue_noise",
)
#: Features added after cards were first written: a card's weights without them weigh them 0, which
#: is the score that card was calibrated with.
LATER_FEATURES: tuple[str, ...] = ("hue_noise",)

#: Weights of the combined score (a logistic regression on :data:`FEATURE_NAMES` in raw units, then
#: the intercept; positive = more likely genuine). The ``weights["stamp_match"]`` that
#: ``python -m benchmarks.stamp_match_eval --root var/synth/stamp-specimens --train-owners 80
#: --out benchmarks/results/stamp_match.json`` fitted on 80 rendered authorities outside the
#: similarity model's held-out split (``scale_dev`` left out; the folder is what ``customs-vision
#: calibrate stamps --render 300x4+5`` renders). The features are collinear, so single weights'
#: signs mean little.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "ncc": -0.97694,
    "extra_ink": -1.499949,
    "extra_ink_far": 7.216798,
    "missing_ink": 3.477371,
    "worst_window": -3.660481,
    "window_max": -1.278397,
    "window_p90": -4.940953,
    "window_median": -1.591629,
    "chamfer": -0.297196,
    "stroke_ratio": -0.951424,
    "align_score": 3.608749,
    "scale_dev": 0.0,
    "hue_noise": -3.536216,
    "intercept": -0.337471,
}


@dataclass(frozen=True)
class StampMatchFeatures:
    """What one aligned comparison measured. Distances are in specimen pixels at the comparison size.

    Attributes:
        ncc: Pearson correlation of the blurred (sigma 1.5 px) ink maps over where either has ink;
            the overall look of the aligned marks (1 = same). Lowered by faint/partial impressions
            and by every kind of design change alike.
        extra_ink: fraction of the query's ink farther than :data:`NEAR_PX` from any specimen ink: strokes
            the genuine die does not have (another glyph, another font, a moved or wider ring).
            Missing ink (faint, partial, gapped impressions) does not raise it.
        extra_ink_far: the same with the :data:`FAR_PX` tolerance: only clearly displaced or new strokes,
            insensitive to bleed and to residual misalignment.
        missing_ink: fraction of the specimen's ink (inside the query crop) farther than :data:`NEAR_PX`
            from the query's ink. High for faint or partial genuine impressions, so weighted lightly.
        worst_window: the far-extra ink (> :data:`FAR_PX` off) in the worst window of about an eighth of the
            stamp (one or two glyphs), as a fraction of all the query's ink: one altered character
            is a local change that a global fraction dilutes.
        window_max, window_p90, window_median: over glyph-sized windows (~1/12 of the stamp) in
            which both marks have comparable amounts of ink, the share of that ink which the other
            mark lacks (query ink off the specimen plus specimen ink off the query, tolerance
            1.5 px); maximum, 90th percentile and median over windows. A faint or partial region is
            skipped (little query ink), a differently carved glyph is not: the maximum catches one
            altered character, the median a whole other typeface.
        chamfer: mean distance (px, clipped at 10) of query ink to the nearest specimen ink.
        hue_noise: how far the query's ink strays from one hue, pixel by pixel
            (:func:`hue_noise`), 0 for a crop without colour. A stamp pad holds one dye, so a real
            impression has one hue everywhere; a colour photocopy or print of an impression lays it
            as cyan, magenta and yellow toner dots, a fraction of a pixel out of register, and its hue
            wanders from pixel to pixel. A property of the query alone, beyond its scanner's noise.
        stroke_ratio: ``|log|`` of the ratio of mean stroke widths (twice ink area over boundary
            length) of query and specimen: ring and line widths carved differently.
        align_score: normalised cross-correlation peak of the alignment (how well any rotation and
            scale fit at all).
        scale_dev: ``|log(scale)|`` of the alignment. Same-dpi scans of one die have scale ~1, a
            re-made die may not; only meaningful when query and specimen were scanned at the same
            resolution (see :class:`StampMatcher`'s ``use_scale``).
        angle_deg, scale: the alignment found.
        similarity: combined score in ``[0, 1]`` (logistic model of the features; higher = more
            likely the same die).
    """

    ncc: float
    extra_ink: float
    extra_ink_far: float
    missing_ink: float
    worst_window: float
    window_max: float
    window_p90: float
    window_median: float
    chamfer: float
    stroke_ratio: float
    align_score: float
    scale_dev: float
    hue_noise: float = 0.0
    angle_deg: float = 0.0
    scale: float = 1.0
    similarity: float = field(default=0.0)

    def vector(self) -> npt.NDArray[np.float64]:
        """The features of :data:`FEATURE_NAMES` as a ``(F,)`` float64 row."""
        d = asdict(self)
        return np.array([d[n] for n in FEATURE_NAMES], dtype=np.float64)


def _stroke_width(mask: npt.NDArray[np.bool_]) -> float:
    """Mean stroke width of a binary ink mask: 2 x area / boundary length (px)."""
    m = mask.astype(np.uint8)
    area = float(m.sum())
    if area == 0:
        return 0.0
    boundary = float((m - cv2.erode(m, np.ones((3, 3), np.uint8))).sum())
    return 2.0 * area / max(boundary, 1.0)


def _refine_ecc(query: FloatArray, spec: FloatArray, m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Refine ``m`` (query -> specimen at the comparison size) by ECC on blurred ink maps.

    ECC runs with an affine model (OpenCV has no similarity model) and the result is projected back
    onto the nearest similarity transform, so a forgery's changed aspect ratio is not absorbed by
    the alignment. The grid search leaves up to ~1 px error at the rim of a large stamp; ECC removes
    most of it. If ECC fails to converge or moves far, the grid solution is kept.
    """
    h, w = spec.shape
    template = np.asarray(cv2.GaussianBlur(spec, (0, 0), 1.2), dtype=np.float32)
    moving = np.asarray(cv2.GaussianBlur(query, (0, 0), 1.2), dtype=np.float32)
    warp = m.astype(np.float32)
    try:
        # findTransformECC warps its *input* with the inverse map: give it specimen -> query.
        inv = np.asarray(cv2.invertAffineTransform(warp), dtype=np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4)
        mask = np.ones(template.shape, np.uint8)
        _, found = cv2.findTransformECC(template, moving, inv, cv2.MOTION_AFFINE, criteria, mask, 1)
    except cv2.error:
        return m
    refined = np.asarray(cv2.invertAffineTransform(np.asarray(found)), dtype=np.float64)
    # Nearest similarity: a*[[c, -s], [s, c]] from the 2x2 part (mean of the conformal components).
    a = refined[:, :2]
    p = 0.5 * (a[0, 0] + a[1, 1])
    q = 0.5 * (a[1, 0] - a[0, 1])
    sim = np.array([[p, -q], [q, p]])
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    # Keep where the specimen's centre comes from (the translation that ECC found there).
    src_c = np.linalg.solve(a, centre - refined[:, 2])
    t = centre - sim @ src_c
    out = np.hstack([sim, t[:, None]])
    probe = np.array([[0.0, 0.0, 1.0], [w, 0.0, 1.0], [0.0, h, 1.0], [w, h, 1.0]])
    moved = probe @ cv2.invertAffineTransform(out).T - probe @ cv2.invertAffineTransform(m).T
    if float(np.abs(moved).max()) > 0.05 * max(h, w):
        return m
    return out


def compare_ink(query: FloatArray, specimen: FloatArray, alignment: Alignment) -> StampMatchFeatures:
    """Compare two ink maps after alignment (step 3 of the module docstring).

    The specimen is brought to at most :data:`COMPARE_LONG_SIDE` on its long side and the query is
    warped into that frame. Only the part of the specimen that the query crop covers is compared.
    Scans of different resolution (an alignment scale beyond :data:`RESOLUTION_GAP` either way) are
    compared at the coarser resolution: the specimen is shrunk to the query's, or the query (area
    averaged) to the specimen's, so that neither side's detail is invented by interpolation and the
    pixel tolerances mean the same on both.

    Args:
        query: ``(Hq, Wq)`` float32 ink map.
        specimen: ``(Hs, Ws)`` float32 ink map.
        alignment: from :func:`align` (query -> specimen pixels).

    Returns:
        Features; ``similarity`` is left at 0 (see :meth:`StampMatcher.compare`).
    """
    f = min(1.0, COMPARE_LONG_SIDE / max(specimen.shape))
    if alignment.scale > RESOLUTION_GAP:  # the query is the coarser scan: compare at its resolution
        f = min(f, 1.0 / alignment.scale)
    spec = specimen
    if f < 1.0:
        spec = np.asarray(cv2.resize(specimen, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), dtype=np.float32)
    h, w = spec.shape
    m = alignment.matrix.copy()
    m *= f
    shrink = alignment.scale * f
    if shrink < 1.0 / RESOLUTION_GAP:
        # The query is much finer than the comparison frame (a finer scan, or a large crop brought
        # down to COMPARE_LONG_SIDE): area-average it down first rather than sample it in the warp.
        query, to_small = _shrink(query, shrink)
        m = _compose(m, np.asarray(cv2.invertAffineTransform(to_small), dtype=np.float64))
    m = _refine_ecc(query, spec, m)
    q = cv2.warpAffine(query, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    valid = cv2.warpAffine(np.ones(query.shape, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    valid_b = cv2.erode(valid, np.ones((5, 5), np.uint8)) > 0

    qb = (cv2.GaussianBlur(q, (0, 0), 0.7) >= INK_THRESHOLD) & valid_b
    sb = cv2.GaussianBlur(spec, (0, 0), 0.7) >= INK_THRESHOLD
    sb_in = sb & valid_b
    n_q = max(int(qb.sum()), 1)
    n_s = max(int(sb_in.sum()), 1)

    dt_s = cv2.distanceTransform((~sb).astype(np.uint8), cv2.DIST_L2, 3)
    dt_q = cv2.distanceTransform((~qb).astype(np.uint8), cv2.DIST_L2, 3)
    near, far = NEAR_PX, FAR_PX
    extra = qb & (dt_s > near)
    extra_ink = float(extra.sum()) / n_q
    extra_far = float((qb & (dt_s > far)).sum()) / n_q
    s_only = sb_in & (dt_q > near)
    missing = float(s_only.sum()) / n_s
    chamfer = float(np.minimum(dt_s[qb], 10.0).mean()) if qb.any() else 10.0

    # Worst window: the largest cluster of clearly displaced ink (> far) in a window of ~1/8 of the
    # stamp, as a share of all the query's ink. One re-carved glyph concentrates there; scattered
    # residue of misalignment, bleed or noise does not.
    win = max(12, round(max(h, w) / 8))
    far_extra = (qb & (dt_s > far)).astype(np.float32)
    worst = float(cv2.boxFilter(far_extra, -1, (win, win), normalize=False).max()) / n_q

    # Glyph windows where both marks are inked: the share of their ink that the other lacks
    # (extra plus missing). A partial or faint region is skipped (the query has little ink there);
    # a glyph carved differently has ink in both, in different places.
    gw = max(10, round(max(h, w) / 12))
    box = (gw, gw)
    q_sum = cv2.boxFilter(qb.astype(np.float32), -1, box, normalize=False)
    s_sum = cv2.boxFilter(sb_in.astype(np.float32), -1, box, normalize=False)
    odd = cv2.boxFilter((extra | s_only).astype(np.float32), -1, box, normalize=False)
    step = max(1, gw // 2)
    q_g, s_g, o_g = q_sum[::step, ::step], s_sum[::step, ::step], odd[::step, ::step]
    both = (q_g >= 0.5 * s_g) & (s_g >= 0.5 * q_g) & (np.minimum(q_g, s_g) >= 0.04 * gw * gw)
    if both.any():
        local = o_g[both] / (q_g[both] + s_g[both])
        win_max, win_p90, win_median = float(local.max()), float(np.percentile(local, 90)), float(np.median(local))
    else:
        win_max = win_p90 = win_median = 1.0

    qs = cv2.GaussianBlur(q, (0, 0), 1.5)
    ss = cv2.GaussianBlur(spec, (0, 0), 1.5)
    region = cv2.dilate((qb | sb_in).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & valid_b
    ncc = 0.0
    if region.any():
        a, b = qs[region].astype(np.float64), ss[region].astype(np.float64)
        a -= a.mean()
        b -= b.mean()
        ncc = float((a * b).sum() / (math.sqrt(float((a * a).sum() * (b * b).sum())) + 1e-9))

    wq, ws = _stroke_width(qb), _stroke_width(sb_in)
    stroke_ratio = abs(math.log(max(wq, 0.5) / max(ws, 0.5)))
    return StampMatchFeatures(
        ncc=ncc,
        extra_ink=extra_ink,
        extra_ink_far=extra_far,
        missing_ink=missing,
        worst_window=worst,
        window_max=win_max,
        window_p90=win_p90,
        window_median=win_median,
        chamfer=chamfer,
        stroke_ratio=stroke_ratio,
        align_score=alignment.score,
        scale_dev=abs(math.log(alignment.scale)),
        angle_deg=alignment.angle_deg,
        scale=alignment.scale,
    )


# ------------------------------------------------------------------------------------------ matcher


#: Floor of the hue-noise measure (:func:`hue_noise`); its logarithm is measured above it.
HUE_NOISE_FLOOR = 1e-3


def hue_noise(crop: npt.NDArray[np.uint8]) -> float:
    """How far a stamp crop's ink strays from a single hue, pixel by pixel, beyond the scanner's noise.

    Over the pixels where the impression's own-hue ink map is at least half strength: the mean
    ``1 - cos`` of the angle between each pixel's chroma (absorbance off the grey axis) and the ink's
    hue, less what the scanner's colour noise alone would give a pixel of that chroma (``sigma^2 /
    |chroma|^2``, with ``sigma^2`` the mean squared chroma of the bare paper), floored at 0; returned
    as ``log(excess + HUE_NOISE_FLOOR) - log(HUE_NOISE_FLOOR)`` (0 = one hue). Without the noise term
    a faint, speckled genuine impression (little chroma, so a noisy direction) looked like a copy.
    Measured on the 80 training authorities of the stamp benchmark (238 genuine colour crops, 65
    colour copies), the unlogged excess separates colour copies from impressions with ROC AUC 0.990
    (genuine median 0.0000, 95th percentile 0.0003; copies median 0.0066); without the noise term,
    0.958.

    Returns:
        The measure, or 0.0 for a crop without colour (greyscale, black ink: nothing to measure).

    Raises:
        StampMatchError: not an ``(H, W, 3)`` uint8 array, or too small; BlankCropError: no ink.
    """
    ab = _absorbance(crop)
    return _hue_noise(ab, _ink_from(ab, None, use_hue=True)) or 0.0


#: :func:`hue_noise` above which a stamp looks like a colour copy (:func:`specimen_checks`,
#: :meth:`StampMatcher.findings`). Chosen on the 80 training authorities of the stamp benchmark (0 of
#: 320 genuine crops above it); on the 69 held-out authorities it flags 2 of 276 genuine crops and 44
#: of the 50 colour copies that kept their colour (a copy scanned in greyscale has none to measure).
COPY_LIKE_HUE_NOISE = 1.0

_NO_COLOUR = {
    "specimen": "The impression has no colour (greyscale scan or copy, fax, or black ink): printed text under "
    "it cannot be told from stamp ink. Register a colour scan of a clean impression if the archive has one.",
    "query": "The questioned impression has no colour (greyscale scan or copy, fax, or black ink): printed text "
    "under it cannot be told from stamp ink, and a copy cannot be told from an impression, so the similarity "
    "is less reliable. Compare a colour scan of the original document if there is one.",
}
_COPY_LIKE = {
    "specimen": "The ink's colour wanders from pixel to pixel like a colour photocopy or print (hue noise "
    "{noise:.2f} > {limit}); a specimen should be an original impression.",
    "query": "The questioned impression's colour wanders from pixel to pixel like a colour photocopy or print "
    "(hue noise {noise:.2f} > {limit}), not like the one dye of a stamp pad: examine the original document.",
}


def _colour_findings(prepared: PreparedStamp, role: Literal["specimen", "query"]) -> list[Finding]:
    """``no_colour`` / ``copy_like`` of a prepared crop, worded for a specimen or a questioned mark."""
    if prepared.absorbance.hue is None:
        return [Finding("no_colour", _NO_COLOUR[role])]
    noise = prepared.hue_noise
    if noise is not None and noise > COPY_LIKE_HUE_NOISE:
        return [Finding("copy_like", _COPY_LIKE[role].format(noise=noise, limit=COPY_LIKE_HUE_NOISE))]
    return []


def specimen_checks(crop: npt.NDArray[np.uint8]) -> list[Finding]:
    """What a clerk should know before registering ``crop`` as a stamp specimen.

    * ``no_colour``: the impression has no colour (a greyscale scan or copy, a fax, black ink).
      Printed text under it cannot be told from stamp ink, and every comparison with this specimen
      is weaker for it (README: greyscale copies under print are the comparison's main failure).
    * ``copy_like``: its colour wanders pixel to pixel like a colour photocopy's or print's
      (:func:`hue_noise` above :data:`COPY_LIKE_HUE_NOISE`). A specimen should be an original
      impression; a copy registered as one makes copies look genuine.

    Returns:
        The checks that apply, possibly none.

    Raises:
        StampMatchError: not an ``(H, W, 3)`` uint8 array, or too small; BlankCropError: no ink.
    """
    return _colour_findings(_prepare(crop), "specimen")


def _hue_noise(ab: _Absorbance, own: InkMap) -> float | None:
    if ab.hue is None:
        return None
    strong = own.ink > 0.5
    if int(strong.sum()) < MIN_INK_PIXELS:
        return None
    paper = ab.dark < 0.03
    if int(paper.sum()) < 100:  # ink or print nearly everywhere: the faintest fifth stands in for paper
        paper = ab.dark <= float(np.percentile(ab.dark, 20))
    noise = float((ab.chroma[paper] ** 2).sum(axis=1).mean())
    chroma = ab.chroma[strong]
    norm2 = np.maximum((chroma * chroma).sum(axis=1), 1e-12)
    cos = (chroma @ ab.hue) / np.sqrt(norm2)
    expected = np.minimum(1.0, noise / norm2)
    excess = max(float((1.0 - cos).mean() - expected.mean()), 0.0)
    return math.log(excess + HUE_NOISE_FLOOR) - math.log(HUE_NOISE_FLOOR)


@dataclass(frozen=True)
class PreparedStamp:
    """A crop's absorbance, computed once (registered specimens are compared many times).

    ``hue_noise`` is :func:`hue_noise` of the crop, ``None`` when it has no colour."""

    absorbance: _Absorbance
    darkness: InkMap
    own: InkMap
    hue_noise: float | None = None


def _prepare(crop: npt.NDArray[np.uint8]) -> PreparedStamp:
    ab = _absorbance(crop)
    dark = _ink_from(ab, None, use_hue=False)
    own = _ink_from(ab, None, use_hue=True) if ab.hue is not None else dark
    return PreparedStamp(absorbance=ab, darkness=dark, own=own, hue_noise=_hue_noise(ab, own))


class StampMatcher:
    """Compares questioned stamp crops with registered specimen crops (module docstring).

    Args:
        weights: logistic weights per :data:`FEATURE_NAMES` entry plus ``"intercept"``; the combined
            :attr:`StampMatchFeatures.similarity` is ``sigmoid(w . features + intercept)``. Entries of
            :data:`LATER_FEATURES` may be absent (weight 0: a card written before they existed).
        use_scale: whether ``scale_dev`` enters the combined score. Only valid when specimens and
            queries are scanned at the same resolution; off by default.

    Raises:
        StampMatchError: a weight is missing or not finite.
    """

    def __init__(self, *, weights: Mapping[str, float] | None = None, use_scale: bool = False) -> None:
        w = {n: 0.0 for n in LATER_FEATURES} | dict(DEFAULT_WEIGHTS if weights is None else weights)
        missing = [n for n in (*FEATURE_NAMES, "intercept") if n not in w]
        if missing:
            raise StampMatchError(f"weights lack {missing}")
        if not all(math.isfinite(float(v)) for v in w.values()):
            raise StampMatchError("weights must be finite")
        self.weights = w
        self.use_scale = use_scale

    def prepare(self, crop: npt.NDArray[np.uint8]) -> PreparedStamp:
        """Preprocess a crop once (ink maps); pass the result to :meth:`compare` as either side.

        Raises:
            StampMatchError: bad array; BlankCropError: no ink.
        """
        return _prepare(crop)

    def _pair_maps(self, query: PreparedStamp, specimen: PreparedStamp) -> tuple[FloatArray, FloatArray]:
        """The two ink maps to compare: each as clean as it can be. A chromatic specimen's hue is
        also the query's projection (a query in another colour then shows little ink); a chromatic
        query of a greyscale specimen uses its own hue (its printed text still vanishes); a greyscale
        query is compared by darkness with the specimen's darkness."""
        s_hue = specimen.absorbance.hue
        if query.absorbance.hue is None:
            return query.darkness.ink, specimen.darkness.ink
        if s_hue is None:
            return query.own.ink, specimen.darkness.ink
        try:
            q = _ink_from(query.absorbance, s_hue, use_hue=True).ink
        except BlankCropError:
            q = np.zeros_like(query.own.ink)
            q[0, 0] = 1.0  # no ink of the specimen's colour at all: compare (and fail) gracefully
        return q, specimen.own.ink

    def compare(
        self, query: PreparedStamp | npt.NDArray[np.uint8], specimen: PreparedStamp | npt.NDArray[np.uint8]
    ) -> StampMatchFeatures:
        """Align and compare one query with one specimen.

        Args:
            query: ``(H, W, 3)`` uint8 RGB crop or its :meth:`prepare` result.
            specimen: the same for the registered specimen.

        Raises:
            StampMatchError: bad array; BlankCropError: a crop without ink.
        """
        q = query if isinstance(query, PreparedStamp) else _prepare(query)
        s = specimen if isinstance(specimen, PreparedStamp) else _prepare(specimen)
        qi, si = self._pair_maps(q, s)
        feats = compare_ink(qi, si, align(qi, si))
        feats = replace(feats, hue_noise=q.hue_noise or 0.0)
        return _with_similarity(feats, self.weights, self.use_scale)

    def findings(self, query: PreparedStamp | npt.NDArray[np.uint8]) -> list[Finding]:
        """What the questioned impression shows by itself (the same cues as :func:`specimen_checks`):

        * ``copy_like``: its colour wanders like a colour copy's or print's. The hue-noise feature
          already lowers the similarity; this says why. On the stamp benchmark's 69 held-out
          authorities (``benchmarks/results/stamp_match.json``, ``findings``) it is raised for the
          colour copies and almost no genuine impression.
        * ``no_colour``: a greyscale questioned impression, compared less reliably.

        Raises:
            StampMatchError: bad array; BlankCropError: a crop without ink.
        """
        return _colour_findings(query if isinstance(query, PreparedStamp) else _prepare(query), "query")

    def comparison_findings(self, features: StampMatchFeatures) -> list[Finding]:
        """``low_resolution`` when the questioned stamp and the specimen were scanned at resolutions
        more than :data:`RESOLUTION_GAP` apart (the alignment's scale): the pair is compared at the
        coarser one, where the carving differences the comparison looks for (1-3 px at 200-300 dpi)
        shrink below a pixel. On the stamp benchmark's held-out authorities, skilled forgeries went
        from EER 0.304 as scanned to 0.336 with the questioned crop at half the resolution and 0.380
        at a third (``scan_conditions`` in ``benchmarks/results/stamp_match.json``)."""
        if features.scale > RESOLUTION_GAP:
            coarser, ratio = "questioned stamp", features.scale
        elif features.scale < 1.0 / RESOLUTION_GAP:
            coarser, ratio = "registered specimen", 1.0 / features.scale
        else:
            return []
        return [
            Finding(
                "low_resolution",
                f"The {coarser} was scanned at about 1/{ratio:.1f} of the other's resolution, and the two were "
                "compared at the coarser one: carving differences of a pixel or two are lost there, so a skilled "
                "forgery is harder to catch. Scan documents and specimens alike (200-300 dpi) where possible.",
            )
        ]

    def verify(
        self,
        query: PreparedStamp | npt.NDArray[np.uint8],
        specimens: Sequence[PreparedStamp | npt.NDArray[np.uint8]],
    ) -> StampMatchFeatures:
        """Compare with every specimen of one owner; the most similar comparison is returned.

        Raises:
            StampMatchError: no specimens, or a bad array; BlankCropError: a crop without ink.
        """
        if len(specimens) == 0:
            raise StampMatchError("verify needs at least one registered specimen")
        q = query if isinstance(query, PreparedStamp) else _prepare(query)
        results = [self.compare(q, s) for s in specimens]
        return max(results, key=lambda r: r.similarity)


def _with_similarity(feats: StampMatchFeatures, weights: Mapping[str, float], use_scale: bool) -> StampMatchFeatures:
    x = feats.vector()
    w = np.array([float(weights[n]) for n in FEATURE_NAMES])
    if not use_scale:
        w[FEATURE_NAMES.index("scale_dev")] = 0.0
    z = float(x @ w) + float(weights["intercept"])
    sim = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
    return StampMatchFeatures(**{**asdict(feats), "similarity": sim})
