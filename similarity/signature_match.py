"""Direct comparison of a questioned signature with a registered specimen, by shape descriptors.

The Siamese embedding sees a signature letterboxed to 96 x 192 pixels after a short CPU training;
on real signatures of writers it never saw it separates a writer's own signature from the same
name written by someone else no better than 0.30 EER. Classical writer-independent descriptors of
the signature's shape do much better on the same pairs (figures below), so a signature claimed to
be a named person's is verified here, the way a document examiner compares the overall form:

1. **Ink** (:func:`signature_ink`): grey level, paper = 90th percentile, ink = 1st percentile; a
   crop whose ink is less than :data:`MIN_INK_CONTRAST` grey levels darker than its paper, or that
   has fewer than :data:`MIN_INK_PIXELS` ink pixels, is blank (:class:`BlankSignatureError`). The
   ink box is cut between the 0.3rd and 99.7th percentile of the ink's coordinates (a speck or the
   detector's slack does not move it).
2. **Shape** (:func:`describe`): the ink box is resized to :data:`SHAPE_SIZE` (64 x 128; its aspect
   ratio is kept aside as a feature) and blurred (sigma 1.5 px) so the stroke width of the pen (a
   tablet stylus, a felt pen, a ball-point) matters little. Descriptors: histograms of gradient
   orientation (HOG) on 4 x 8 cells (12 bins), 2 x 4 cells (16 bins) and 8 x 16 cells (8 bins);
   horizontal and vertical ink projections; an 8 x 16 ink-density grid; slant and elongation from
   the second moments.
3. **Alignment** (:func:`align_shape`): the questioned signature's blurred shape is aligned onto the
   specimen's by an affine ECC fit (a hand's signatures differ by slant, shear and proportions);
   the aligned shapes are compared by normalised cross-correlation and by orientation histograms on
   16 x 32 and 8 x 16 cells, where a different hand shows as strokes in other places.
4. **Comparison** (:meth:`SignatureMatcher.compare`): twelve distances between the two signatures
   (:data:`FEATURE_NAMES`), combined by a logistic model into a similarity in ``[0, 1]``. The
   weights (:data:`DEFAULT_WEIGHTS`) were fitted writer-independently by
   ``python -m benchmarks.signature_match_eval --fit`` on pairs of the *training* writers only
   (real cross-media signatures and synthetic writers with skilled forgeries).
5. **Rotation** (also :meth:`SignatureMatcher.compare`): the descriptors of steps 2-3 are computed
   upright, so a signature scanned or signed at an angle used to lose most of its score (10
   degrees: median genuine score 0.82 -> 0.53). Each signature's principal axis
   (:func:`principal_axis`: the direction of the ink's largest spread) is measured; when both are
   elongated enough to have a stable axis (:data:`AXIS_MIN_RATIO`) and they differ by more than
   a hand's own spread (:data:`ROTATION_MIN_DEG`, up to :data:`ROTATION_MAX_DEG`), the questioned
   signature is also compared turned onto the specimen's axis, and the more similar of the two
   comparisons counts (``query_rotation_deg`` says which). The weights were fitted with this step.
   Tried and dropped before: turning every signature to its own axis, and a rotation search within
   +-12 degrees; both cost more as scanned than they gained rotated (README).

Measured by that command on writers held out of the embedding's training (``similarity-split-v1``
hash < 0.2), EER of genuine pairs against each impostor kind, this comparison vs the embedding's
cosine on the same pairs (``benchmarks/results/signature_match.json``): real signatures, same name
by another writer 0.145 vs 0.303, another name 0.011 vs 0.093; synthetic writers,
skilled forgeries 0.336 vs 0.428, random 0.055 vs 0.149. Without the alignment
(step 3, before step 5 existed) the same fit gave 0.173, 0.028, 0.378 and 0.077. Step 5 costs a
little as scanned (before it: 0.139, 0.012, 0.328, 0.052) and keeps a turned signature: with the
questioned crop turned by 10 degrees, 0.229 -> 0.160, 0.032 -> 0.018, 0.415 -> 0.333 and
0.143 -> 0.082 (``scan_conditions`` in the same file).
Skilled forgeries remain the hard case: a careful imitation has the writer's shape, and the cues
that betray it (tremor, blunt stroke ends, pen lifts) did not help at this resolution (tried:
contour roughness, stroke-width variation, component count; no gain).

Cost on one core (``benchmarks/results/signature_match.json``, measured while a training run shared
the CPU): 4.5 ms to prepare a crop, 5.4 ms per comparison (mostly the ECC fit; a turned query is
described and aligned a second time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import numpy.typing as npt

from similarity.pairwise import BlankCropError, Finding, PairMatchError

__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_NAMES",
    "MIN_INK_CONTRAST",
    "MIN_INK_PIXELS",
    "SHAPE_SIZE",
    "BlankSignatureError",
    "PreparedSignature",
    "SignatureMatchError",
    "SignatureMatchFeatures",
    "SignatureMatcher",
    "describe",
    "fit_weights",
    "principal_axis",
    "rotated",
    "signature_ink",
]

FloatArray = npt.NDArray[np.float32]

#: Smallest paper-minus-ink difference (grey levels) for a crop to hold a signature.
MIN_INK_CONTRAST = 24.0

#: Fewest ink pixels for a crop to hold a signature.
MIN_INK_PIXELS = 30

#: Smallest crop side, in pixels.
MIN_SIDE = 8

#: Principal-axis ratio (major / minor spread of the ink) from which a signature's axis is stable
#: enough to turn by; 1 in 10 real signatures of the benchmark is below 3, 1 in 100 below 1.4.
AXIS_MIN_RATIO = 2.0

#: Axis differences (degrees) between questioned signature and specimen for which the questioned
#: one is also compared turned onto the specimen's axis: above the smaller (a hand's own spread
#: stays compared as written), up to the larger (beyond it the two are not the same shape).
ROTATION_MIN_DEG, ROTATION_MAX_DEG = 2.0, 30.0

#: ``(height, width)`` the ink box is resized to for the shape descriptors.
SHAPE_SIZE = (64, 128)

#: Blur of the resized ink (pixels), so stroke width matters little.
SHAPE_BLUR = 1.5

#: The distances compared, in :meth:`SignatureMatchFeatures.vector` order.
FEATURE_NAMES = (
    "aspect_diff",
    "hog_dist",
    "hog_coarse_dist",
    "hog_fine_dist",
    "projection_x_l1",
    "projection_y_l1",
    "grid_dist",
    "slant_diff",
    "elongation_diff",
    "aligned_corr_dist",
    "aligned_hog_dist",
    "aligned_hog_fine_dist",
)

#: Logistic weights on the raw distances (``python -m benchmarks.signature_match_eval --fit``).
DEFAULT_WEIGHTS: dict[str, float] = {
    "aspect_diff": -2.7515,
    "hog_dist": -4.5046,
    "hog_coarse_dist": -5.2856,
    "hog_fine_dist": -3.9784,
    "projection_x_l1": -1.2077,
    "projection_y_l1": 5.269,
    "grid_dist": 1.6624,
    "slant_diff": -0.0457,
    "elongation_diff": 0.5598,
    "aligned_corr_dist": -0.1091,
    "aligned_hog_dist": -6.7041,
    "aligned_hog_fine_dist": -4.0885,
    "intercept": 9.402,
}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class SignatureMatchError(PairMatchError):
    """A signature crop cannot be compared: wrong array type or shape, or no ink."""


class BlankSignatureError(SignatureMatchError, BlankCropError):
    """The signature crop holds no visible ink."""


# ------------------------------------------------------------------------------------------ features


def _check_crop(crop: npt.NDArray[np.uint8]) -> None:
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise SignatureMatchError("expected an (H, W, 3) uint8 RGB crop")
    if min(crop.shape[:2]) < MIN_SIDE:
        raise SignatureMatchError(f"crop {crop.shape[1]}x{crop.shape[0]} is smaller than {MIN_SIDE} px")


def signature_ink(crop: npt.NDArray[np.uint8]) -> FloatArray:
    """Ink level in ``[0, 1]`` (0 paper, 1 the darkest ink) inside the signature's ink box.

    Raises:
        SignatureMatchError: not an RGB uint8 crop; BlankSignatureError: no ink.
    """
    _check_crop(crop)
    grey = crop.astype(np.float32) @ _LUMA
    paper, ink = np.percentile(grey, [90.0, 1.0])
    if paper - ink < MIN_INK_CONTRAST:
        raise BlankSignatureError(f"ink only {paper - ink:.0f} grey levels darker than the paper")
    level = np.clip((paper - grey) / (paper - ink), 0.0, 1.0).astype(np.float32)
    return _ink_box(level)


def _ink_box(level: FloatArray) -> FloatArray:
    """``level`` cut to its ink box (0.3rd-99.7th percentile of the ink's coordinates).

    Raises:
        BlankSignatureError: fewer than :data:`MIN_INK_PIXELS` ink pixels.
    """
    ys, xs = np.nonzero(level > 0.5)
    if ys.size < MIN_INK_PIXELS:
        raise BlankSignatureError(f"only {ys.size} ink pixels")
    y0, y1 = (int(v) for v in np.percentile(ys, [0.3, 99.7]))
    x0, x1 = (int(v) for v in np.percentile(xs, [0.3, 99.7]))
    return level[y0 : y1 + 1, x0 : x1 + 1]


def principal_axis(level: FloatArray) -> tuple[float, float]:
    """``(angle, ratio)`` of the ink's principal axis: the angle in degrees from the image's x axis
    (positive when the axis falls to the right, y pointing down), and the spread along the axis
    over the spread across it (1 = round ink, large = a long flat signature)."""
    ys, xs = np.nonzero(level > 0.5)
    w = level[ys, xs].astype(np.float64)
    if ys.size < 2 or float(w.sum()) <= 0.0:
        return 0.0, 1.0
    dx, dy = xs - np.average(xs, weights=w), ys - np.average(ys, weights=w)
    cxx, cyy, cxy = (float(np.average(v, weights=w)) for v in (dx * dx, dy * dy, dx * dy))
    half_trace, det = (cxx + cyy) / 2.0, cxx * cyy - cxy * cxy
    spread = math.sqrt(max(half_trace * half_trace - det, 0.0))
    ratio = (half_trace + spread) / max(half_trace - spread, 1e-6)
    return math.degrees(0.5 * math.atan2(2.0 * cxy, cxx - cyy)), ratio


def _hog(img: FloatArray, cells: tuple[int, int], bins: int) -> FloatArray:
    """Unsigned gradient-orientation histograms on a ``cells`` grid, L2-normalised as one vector."""
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    b = (np.floor((np.arctan2(gy, gx) % np.pi) / np.pi * bins).astype(np.int64)) % bins
    rows, cols = cells
    ch, cw = img.shape[0] // rows, img.shape[1] // cols
    cell = (np.arange(rows * ch) // ch)[:, None] * cols + (np.arange(cols * cw) // cw)[None, :]
    idx = cell * bins + b[: rows * ch, : cols * cw]
    hist = np.bincount(idx.ravel(), mag[: rows * ch, : cols * cw].ravel(), rows * cols * bins).astype(np.float32)
    return hist / (float(np.linalg.norm(hist)) + 1e-6)


def _unit(v: FloatArray) -> FloatArray:
    return v / (float(np.linalg.norm(v)) + 1e-6)


@dataclass(frozen=True)
class PreparedSignature:
    """A signature's shape descriptors (computed once; registered specimens are compared often)."""

    log_aspect: float
    hog: FloatArray
    hog_coarse: FloatArray
    hog_fine: FloatArray
    hog_grid: FloatArray
    projection_x: FloatArray
    projection_y: FloatArray
    grid: FloatArray
    slant: float
    elongation: float
    shape: FloatArray
    axis_angle: float = 0.0
    axis_ratio: float = 1.0
    ink: npt.NDArray[np.uint8] | None = None


def describe(crop: npt.NDArray[np.uint8]) -> PreparedSignature:
    """The shape descriptors of one signature crop (module docstring, step 2).

    Raises:
        SignatureMatchError: not an RGB uint8 crop; BlankSignatureError: no ink.
    """
    return _describe_level(signature_ink(crop))


def rotated(signature: PreparedSignature, degrees: float) -> PreparedSignature:
    """``signature`` turned by ``degrees`` (counter-clockwise as displayed, OpenCV convention, so
    its :func:`principal_axis` angle drops by ``degrees``) and described again.

    Raises:
        SignatureMatchError: ``signature`` keeps no ink map; BlankSignatureError: no ink left.
    """
    if signature.ink is None:
        raise SignatureMatchError("this prepared signature keeps no ink map to turn")
    level = signature.ink.astype(np.float32) / 255.0
    h, w = level.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos) + 2, int(h * cos + w * sin) + 2
    m[0, 2] += nw / 2.0 - w / 2.0
    m[1, 2] += nh / 2.0 - h / 2.0
    turned = cv2.warpAffine(level, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return _describe_level(_ink_box(np.asarray(turned, dtype=np.float32)))


def _describe_level(level: FloatArray) -> PreparedSignature:
    """:func:`describe` from the ink box's ink level."""
    angle, ratio = principal_axis(level)
    h, w = SHAPE_SIZE
    ink = (level > 0.5).astype(np.float32)
    shape = np.asarray(cv2.resize(ink, (w, h), interpolation=cv2.INTER_AREA), dtype=np.float32)
    blurred = np.asarray(cv2.GaussianBlur(shape, (0, 0), SHAPE_BLUR), dtype=np.float32)
    px, py = shape.sum(axis=0), shape.sum(axis=1)
    m = cv2.moments(shape)
    return PreparedSignature(
        log_aspect=math.log(level.shape[1] / level.shape[0]),
        hog=_hog(blurred, (4, 8), 12),
        hog_coarse=_hog(blurred, (2, 4), 16),
        hog_fine=_hog(blurred, (8, 16), 8),
        hog_grid=_hog(blurred, GRID_CELLS, 8),
        projection_x=px / (float(px.sum()) + 1e-6),
        projection_y=py / (float(py.sum()) + 1e-6),
        grid=_unit(np.asarray(cv2.resize(shape, (16, 8), interpolation=cv2.INTER_AREA), dtype=np.float32).ravel()),
        slant=float(m["mu11"] / (m["mu02"] + 1e-6)),
        elongation=math.log(m["mu20"] / (m["mu02"] + 1e-6) + 1e-3),
        shape=blurred,
        axis_angle=angle,
        axis_ratio=ratio,
        ink=np.round(level * 255.0).astype(np.uint8),
    )


#: Cells of the finest orientation histograms (compared after alignment only).
GRID_CELLS = (16, 32)

#: ECC stopping rule of :func:`align_shape`: iterations, and the smallest update.
ECC_ITERATIONS, ECC_EPS = 50, 1e-4
#: Largest stretch (singular value of the linear part, or its inverse) and shift (share of the
#: canvas side) of an ECC warp :func:`align_shape` accepts: beyond them the fit has degenerated.
ECC_MAX_GAIN, ECC_MAX_SHIFT = 1.5, 0.25


def align_shape(query: FloatArray, specimen: FloatArray) -> FloatArray:
    """``query``'s blurred shape warped onto ``specimen``'s by an affine ECC fit; unwarped when the
    fit does not converge (e.g. nearly empty shapes), degenerates (:data:`ECC_MAX_GAIN`,
    :data:`ECC_MAX_SHIFT`) or correlates worse than no warp at all."""
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    mask = np.ones(specimen.shape, dtype=np.uint8)
    try:
        _, fitted = cv2.findTransformECC(
            specimen, query, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE, criteria, mask, 1
        )
    except cv2.error:
        return query
    warp = np.asarray(fitted, dtype=np.float32)
    h, w = specimen.shape
    # Both shapes fill the same canvas, so a true fit is near the identity. On dissimilar shapes ECC
    # can "converge" to a warp that blows a few strokes up 20-57 times; its correlation may still
    # beat the unwarped shape's (near zero), so such a warp is refused outright.
    gains = np.linalg.svd(warp[:, :2].astype(np.float64), compute_uv=False)
    shift = np.abs(warp[:, 2]) / np.array([w, h], dtype=np.float32)
    if gains.max() > ECC_MAX_GAIN or gains.min() < 1.0 / ECC_MAX_GAIN or shift.max() > ECC_MAX_SHIFT:
        return query
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP
    warped = np.asarray(cv2.warpAffine(query, warp, (w, h), flags=flags), dtype=np.float32)
    # ECC can walk off to a worse local optimum on dissimilar shapes: never align to a worse fit.
    return warped if _ncc(warped, specimen) >= _ncc(query, specimen) else query


def _ncc(a: FloatArray, b: FloatArray) -> float:
    x, y = a - a.mean(), b - b.mean()
    return float((x * y).sum() / (math.sqrt(float((x * x).sum()) * float((y * y).sum())) + 1e-6))


@dataclass(frozen=True)
class SignatureMatchFeatures:
    """Distances between a questioned signature and one specimen (0 = identical descriptors).

    Attributes:
        aspect_diff: ``|log(w/h)|`` difference of the ink boxes.
        hog_dist, hog_coarse_dist, hog_fine_dist: ``1 - cosine`` of the orientation histograms.
        projection_x_l1, projection_y_l1: L1 distance of the normalised ink projections.
        grid_dist: ``1 - cosine`` of the 8 x 16 ink-density grids.
        slant_diff, elongation_diff: differences of the second-moment slant and log elongation.
        aligned_corr_dist: ``1 -`` normalised cross-correlation of the aligned shapes.
        aligned_hog_dist, aligned_hog_fine_dist: ``1 - cosine`` of orientation histograms of the
            aligned shapes on 16 x 32 (8 bins) and 8 x 16 cells.
        similarity: ``sigmoid(weights . distances + intercept)``; ``nan`` until combined.
        query_rotation_deg: how far the questioned signature was turned onto the specimen's
            principal axis for these distances (0: compared as written; :meth:`SignatureMatcher.compare`).
    """

    aspect_diff: float
    hog_dist: float
    hog_coarse_dist: float
    hog_fine_dist: float
    projection_x_l1: float
    projection_y_l1: float
    grid_dist: float
    slant_diff: float
    elongation_diff: float
    aligned_corr_dist: float
    aligned_hog_dist: float
    aligned_hog_fine_dist: float
    similarity: float = float("nan")
    query_rotation_deg: float = 0.0

    def vector(self) -> npt.NDArray[np.float64]:
        """The distances in :data:`FEATURE_NAMES` order."""
        return np.array([getattr(self, n) for n in FEATURE_NAMES], dtype=np.float64)


def distances(query: PreparedSignature, specimen: PreparedSignature) -> SignatureMatchFeatures:
    """The distances of module docstring steps 3-4 (no combined score yet)."""
    aligned = align_shape(query.shape, specimen.shape)
    return SignatureMatchFeatures(
        aspect_diff=abs(query.log_aspect - specimen.log_aspect),
        hog_dist=1.0 - float(query.hog @ specimen.hog),
        hog_coarse_dist=1.0 - float(query.hog_coarse @ specimen.hog_coarse),
        hog_fine_dist=1.0 - float(query.hog_fine @ specimen.hog_fine),
        projection_x_l1=float(np.abs(query.projection_x - specimen.projection_x).sum()),
        projection_y_l1=float(np.abs(query.projection_y - specimen.projection_y).sum()),
        grid_dist=1.0 - float(query.grid @ specimen.grid),
        slant_diff=abs(query.slant - specimen.slant),
        elongation_diff=abs(query.elongation - specimen.elongation),
        aligned_corr_dist=1.0 - _ncc(aligned, specimen.shape),
        aligned_hog_dist=1.0 - float(_hog(aligned, GRID_CELLS, 8) @ specimen.hog_grid),
        aligned_hog_fine_dist=1.0 - float(_hog(aligned, (8, 16), 8) @ specimen.hog_fine),
    )


# ------------------------------------------------------------------------------------------- matcher


class SignatureMatcher:
    """Compares questioned signature crops with registered specimen crops (module docstring).

    Args:
        weights: logistic weights per :data:`FEATURE_NAMES` entry plus ``"intercept"``.

    Raises:
        SignatureMatchError: a weight is missing or not finite.
    """

    def __init__(self, *, weights: Mapping[str, float] | None = None) -> None:
        w = {k: float(v) for k, v in dict(DEFAULT_WEIGHTS if weights is None else weights).items()}
        missing = [n for n in (*FEATURE_NAMES, "intercept") if n not in w]
        if missing:
            raise SignatureMatchError(f"weights lack {missing}")
        if not all(math.isfinite(v) for v in w.values()):
            raise SignatureMatchError("weights must be finite")
        self.weights = w
        self._w = np.array([w[n] for n in FEATURE_NAMES], dtype=np.float64)

    def prepare(self, crop: npt.NDArray[np.uint8]) -> PreparedSignature:
        """Describe a crop once; pass the result to :meth:`compare` as either side.

        Raises:
            SignatureMatchError: bad array; BlankSignatureError: no ink.
        """
        return describe(crop)

    def compare(
        self,
        query: PreparedSignature | npt.NDArray[np.uint8],
        specimen: PreparedSignature | npt.NDArray[np.uint8],
    ) -> SignatureMatchFeatures:
        """Compare one query with one specimen (crops or :meth:`prepare` results).

        Raises:
            SignatureMatchError: bad array; BlankSignatureError: a crop without ink.
        """
        q = query if isinstance(query, PreparedSignature) else describe(query)
        s = specimen if isinstance(specimen, PreparedSignature) else describe(specimen)
        feats, turn = distances(q, s), 0.0
        z = float(feats.vector() @ self._w)
        turn_by = (q.axis_angle - s.axis_angle + 90.0) % 180.0 - 90.0  # an axis has no head or tail
        if (
            min(q.axis_ratio, s.axis_ratio) >= AXIS_MIN_RATIO
            and ROTATION_MIN_DEG < abs(turn_by) <= ROTATION_MAX_DEG
            and q.ink is not None
        ):
            try:
                turned = distances(rotated(q, turn_by), s)
            except BlankSignatureError:  # the turn left too few ink pixels: compare as written
                turned = None
            z_turned = -math.inf if turned is None else float(turned.vector() @ self._w)
            if turned is not None and z_turned > z:
                feats, turn, z = turned, turn_by, z_turned
        z += self.weights["intercept"]
        sim = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
        return SignatureMatchFeatures(**{**asdict(feats), "similarity": sim, "query_rotation_deg": turn})

    def findings(self, query: PreparedSignature | npt.NDArray[np.uint8]) -> list[Finding]:
        """Nothing: no cue measured on a signature alone has told forgeries apart (module docstring:
        tremor, stroke ends and pen lifts gave no gain)."""
        return []

    def comparison_findings(self, features: SignatureMatchFeatures) -> list[Finding]:
        """Nothing: signatures are compared at a fixed size, and lower resolution, JPEG, noise and
        binarisation moved the benchmark's EER by under 0.02 (README, *Signature verification*)."""
        return []

    def verify(
        self,
        query: PreparedSignature | npt.NDArray[np.uint8],
        specimens: Sequence[PreparedSignature | npt.NDArray[np.uint8]],
    ) -> SignatureMatchFeatures:
        """The most similar comparison with one owner's specimens.

        Raises:
            SignatureMatchError: no specimens, or a bad array; BlankSignatureError: no ink.
        """
        if len(specimens) == 0:
            raise SignatureMatchError("verify needs at least one registered specimen")
        q = query if isinstance(query, PreparedSignature) else describe(query)
        return max((self.compare(q, s) for s in specimens), key=lambda r: r.similarity)


def fit_weights(
    features: npt.ArrayLike, genuine: npt.ArrayLike, *, l2: float = 0.01, iterations: int = 2000
) -> dict[str, float]:
    """Fit :data:`DEFAULT_WEIGHTS`-style logistic weights on pair distances.

    Classes are weighted to 1:1 (the prior the calibration assumes too), features standardised
    for the fit (with an L2 penalty ``l2`` on the standardised weights) and the weights returned
    on the raw distances.

    Args:
        features: ``(N, len(FEATURE_NAMES))`` distances of training pairs.
        genuine: ``(N,)`` True for a genuine pair.

    Raises:
        SignatureMatchError: wrong shapes, or a class without pairs.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(genuine, dtype=bool).astype(np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES) or y.shape != (x.shape[0],):
        raise SignatureMatchError(f"need (N, {len(FEATURE_NAMES)}) features and (N,) labels")
    if y.min() == y.max():
        raise SignatureMatchError("need both genuine and impostor pairs")
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mu) / sd
    weight = np.where(y == 1.0, 0.5 / y.mean(), 0.5 / (1.0 - y.mean()))
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w + b, -50.0, 50.0)))
        g = (p - y) * weight
        w -= 0.5 * (z.T @ g / y.size + l2 * w)
        b -= 0.5 * float(g.mean())
    raw = w / sd
    out = {n: round(float(v), 4) for n, v in zip(FEATURE_NAMES, raw, strict=True)}
    out["intercept"] = round(b - float((raw * mu).sum()), 4)
    return out
