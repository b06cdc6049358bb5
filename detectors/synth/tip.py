"""Threat Image Projection (TIP): synthetic threats projected into real pseudo-colour bag scans.

Airports project virtual threats into real bag images to keep screeners alert; the same operation
teaches a detector classes for which no real labelled scans exist, on real clutter and with the real
scanner's colour rendering. Compositing is done where it is physically right, in the log domain:

1. **Read the background back to attenuation.** Each pixel of the real scan is matched to its
   nearest display-palette colour, which inverts the display (:meth:`Palette.attenuation`).
2. **Measure the threat.** The threat comes from the generator's own factories
   (:data:`~detectors.synth.xray_threats.THREAT_FACTORIES`: thickness maps of real materials), drawn
   at the scanner's native resolution (:data:`SUPERSAMPLE` times the exported image's: the real
   416-px scans are resized displays) and rotated, mirrored and stretched to the background's scale.
   Its transmission is blurred by the point spread and gets the quantum noise its absorption costs;
   counts saturate, so opaque parts read as impenetrable (:func:`measure_threat`).
3. **Add and re-display.** The threat's attenuation is added to the background's — objects on one
   ray multiply their transmissions — and both the background estimate and the sum go through the
   same palette at native resolution, then are averaged down to output pixels. The real scan is
   multiplied by the ratio of the two displays (:func:`composite`): what the palette does not model
   (the scanner's texture, noise, JPEG blocks, exact tints) is kept, and a pixel the threat does not
   reach is returned unchanged.

A blade over clothing therefore takes the dark blue-green of a metal/organic mixture, a gold bar
goes black with a dark-blue rim, a drug brick deepens the orange of what lies under it: the
display's material logic, not a colour blend. Brightness follows total attenuation, so a projection
never brightens a pixel (its luma); its hue may change as the mix of materials on the ray changes,
as on a real display.

The design choices were made by looking at projections next to real scans: intensity-domain
partial-volume edges of gold or brass read as organic (orange rims) on the display, which real scans
never show, so the material ratio comes from the object's own materials while the darkness comes
from the measured intensity; the blur and edge defaults match the crisp edges of the real scans.

Typical use::

    palette = calibrate_palette(real_train_scans)          # once per scanner family
    tip = project_threats(scan, np.random.default_rng(0), count=2, palette=palette)
    tip.image, tip.threats[0].box, tip.threats[0].concealment
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from detectors.synth.tip_palette import LUMA, WHITE_ATTENUATION, Palette, calibrate_palette, render_palette
from detectors.synth.xray_display import enhance_edges
from detectors.synth.xray_scene import CONCEALMENT_LEVELS, Concealment, concealment_level
from detectors.synth.xray_shapes import Sprite, modulate
from detectors.synth.xray_threats import THREAT_FACTORIES
from detectors.xray import XRAY_CLASSES

FloatArray = npt.NDArray[np.float32]
ImageU8 = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]
Matrix = npt.NDArray[np.float64]
Box = tuple[float, float, float, float]
Rng = np.random.Generator

__all__ = [
    "DEFAULT_CLASS_WEIGHTS",
    "SUPERSAMPLE",
    "VISIBLE_CHANGE",
    "BackgroundObject",
    "MeasuredThreat",
    "Palette",
    "ProjectedThreat",
    "TipError",
    "TipImage",
    "TipSettings",
    "bag_mask",
    "calibrate_palette",
    "composite",
    "measure_threat",
    "project_threats",
    "threat_matrix",
]

#: Relative frequency of each projected class. Every real background already holds a real bladed
#: item (its own label), so the classes only the synthetic data has are drawn more often.
DEFAULT_CLASS_WEIGHTS: dict[str, float] = {
    "handgun": 1.0,
    "knife": 0.5,
    "scissors_blade": 0.5,
    "ammunition": 1.0,
    "drug_package": 1.0,
    "gold_bar": 1.0,
    "cash_bundle": 1.0,
}

#: Threats are drawn at this multiple of the output resolution, then integrated per output pixel.
SUPERSAMPLE = 2
_ORGANIC_RATIO = 1.42  # low/high attenuation ratio of organics (xray_materials), for empty pixels
# Counts below this many photons are the scanner's "impenetrable" range: the display is black there
# anyway, and modelling their Poisson noise would only sprinkle bright specks over dense metal.
_NOISE_FLOOR_PHOTONS = 30.0
_MIN_INSIDE = 0.9  # share of a threat's footprint that must lie on the bag to count as packed in it
#: Grey levels a projection must change a pixel by (in some channel) for it to count as visible.
VISIBLE_CHANGE = 8


class TipError(ValueError):
    """A background, label or setting cannot be used for projection."""


@dataclass(frozen=True)
class TipSettings:
    """How threats are drawn, measured and placed.

    Ranges ``(lo, hi)`` are drawn uniformly once per image (one scanner, one bag).

    Attributes:
        px_per_cm: scene scale; pulled toward what the bag's size implies (416-px real scans: bags
            150-300 px, a knife 30-100 px).
        aspect: vertical stretch of scanner pixels and of the export's resize to a square.
        blur_sigma_px: detector point spread, output pixels. The real 416-px scans are downscaled
            displays with crisp edges; these defaults and ``edge_enhance`` were chosen by comparing
            projected and real metal edges (99th-percentile luma gradient over the object's contrast).
        edge_enhance: unsharp-mask strength of the display (the dark outlines of dense objects).
        photons: low-energy air counts per output pixel (quantum noise of the threat).
        class_weights: relative frequency of each class name.
        intents: probabilities of aiming at ``easy``, ``hard`` and ``hidden`` placements.
        candidates: placements tried per threat; the one that best fits the intent wins.
        max_overlap: largest share of the smaller of two boxes that a threat may cover of another
            labelled object (the real one included).
    """

    px_per_cm: tuple[float, float] = (2.8, 4.2)
    aspect: tuple[float, float] = (1.0, 1.35)
    blur_sigma_px: tuple[float, float] = (0.2, 0.45)
    edge_enhance: tuple[float, float] = (1.0, 2.0)
    photons: tuple[float, float] = (4000.0, 20000.0)
    class_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CLASS_WEIGHTS))
    intents: tuple[float, float, float] = (0.45, 0.3, 0.25)
    candidates: int = 24
    max_overlap: float = 0.1

    def __post_init__(self) -> None:
        for name in ("px_per_cm", "aspect", "blur_sigma_px", "edge_enhance", "photons"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise TipError(f"{name} must be a range (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")
        if self.px_per_cm[0] <= 0 or self.aspect[0] <= 0 or self.photons[0] <= 0:
            raise TipError("px_per_cm, aspect and photons must be positive")
        unknown = sorted(set(self.class_weights) - set(XRAY_CLASSES))
        if unknown:
            raise TipError(f"unknown classes {unknown}; known: {list(XRAY_CLASSES)}")
        weights = list(self.class_weights.values())
        if min(weights, default=-1.0) < 0 or not any(w > 0 for w in weights):
            raise TipError(f"class weights must be >= 0 with at least one > 0, got {self.class_weights}")
        if len(self.intents) != 3 or min(self.intents) < 0 or sum(self.intents) <= 0:
            raise TipError(f"intents must be three probabilities (easy, hard, hidden), got {self.intents}")
        if self.candidates < 1:
            raise TipError(f"candidates must be >= 1, got {self.candidates}")
        if not 0.0 <= self.max_overlap <= 1.0:
            raise TipError(f"max_overlap must be within [0, 1], got {self.max_overlap}")


@dataclass(frozen=True)
class BackgroundObject:
    """A labelled object the real scan already holds; kept in the output labels.

    Attributes:
        class_id: our class id (real ids remapped, see :data:`detectors.datasets.REAL_TARGET_CLASS`).
        box: ``(x1, y1, x2, y2)`` float pixels.
    """

    class_id: int
    box: Box


@dataclass(frozen=True)
class MeasuredThreat:
    """A threat as the scanner measured it, over its own window of the output image.

    Attributes:
        x0: left column of the window in the output image (the window may overhang the image).
        y0: top row of the window.
        att: ``(h, w, 2)`` float32 measured attenuation (low, high) per output pixel, >= 0.
        fine_att: ``(SUPERSAMPLE*h, SUPERSAMPLE*w, 2)`` float32 the same at the scanner's native
            resolution, before the export's downscaling.
        coverage: ``(h, w)`` float32 share of each output pixel covered by the object's footprint.
        opaque_attenuation: low-energy attenuation of an impenetrable ray (under one photon left).
    """

    x0: int
    y0: int
    att: FloatArray
    fine_att: FloatArray
    coverage: FloatArray
    opaque_attenuation: float

    @property
    def visible(self) -> BoolArray:
        """``(h, w)`` bool: pixels the object covers or visibly darkens (its blurred edge included)."""
        return np.asarray((self.coverage > 0) | (self.att[..., 0] >= WHITE_ATTENUATION))

    def slices(self, height: int, width: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """``(image_slices, window_slices)`` of the part of the window inside a ``height x width`` image."""
        th, tw = self.att.shape[:2]
        ix0, iy0 = max(0, self.x0), max(0, self.y0)
        ix1, iy1 = max(ix0, min(width, self.x0 + tw)), max(iy0, min(height, self.y0 + th))
        return (
            (slice(iy0, iy1), slice(ix0, ix1)),
            (slice(iy0 - self.y0, iy1 - self.y0), slice(ix0 - self.x0, ix1 - self.x0)),
        )


@dataclass(frozen=True)
class ProjectedThreat:
    """A threat projected into the scan.

    Attributes:
        class_id: index into :data:`~detectors.xray.XRAY_CLASSES`.
        class_name: ``XRAY_CLASSES[class_id]``.
        subtype: variant from the threat factory (``"pistol"``, ``"gold_cast_bar"``, ...).
        box: ``(x1, y1, x2, y2)`` pixel edges of the tight box of ``mask``: columns ``x1 .. x2-1``,
            rows ``y1 .. y2-1``.
        concealment: ``easy``/``hard``/``hidden`` measured from everything else on its pixels' rays
            (the generator's rule, :func:`~detectors.synth.xray_scene.concealment_level`).
        intent: the difficulty its placement aimed at.
        overlapped_fraction: share of its pixels over clutter.
        dense_fraction: share of its pixels over dense clutter.
        mask: ``(H, W)`` bool, the pixels it covers or visibly changed (see :func:`composite`).
    """

    class_id: int
    class_name: str
    subtype: str
    box: tuple[int, int, int, int]
    concealment: Concealment
    intent: Concealment
    overlapped_fraction: float
    dense_fraction: float
    mask: BoolArray

    def yolo(self, width: int, height: int) -> tuple[int, float, float, float, float]:
        """``(class_id, cx, cy, w, h)`` normalised to ``[0, 1]`` by the image size."""
        x1, y1, x2, y2 = self.box
        return self.class_id, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height


@dataclass(frozen=True)
class TipImage:
    """A real scan with projected threats.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        threats: projected threats, in projection order.
        background_objects: the real scan's own labelled objects (remapped class ids).
        px_per_cm: scene scale the threats were drawn at.
    """

    image: ImageU8
    threats: tuple[ProjectedThreat, ...]
    background_objects: tuple[BackgroundObject, ...]
    px_per_cm: float


# ------------------------------------------------------------------------------------ background
def bag_mask(image: ImageU8, palette: Palette | None = None, close_px: int = 15) -> BoolArray:
    """Where the belt carries something: the non-white area of a scan, small gaps closed.

    Args:
        image: ``(H, W, 3)`` uint8 RGB scan.
        palette: reads each pixel's darkness (the default palette if ``None``).
        close_px: size of the closing that joins a bag's sparse regions.

    Returns:
        ``(H, W)`` bool.
    """
    _, lv = (palette or Palette()).cells(image)
    m = (lv > 2).astype(np.uint8)  # JPEG ringing around objects reaches level ~2 on the empty belt
    opened = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px))
    return np.asarray(cv2.morphologyEx(opened, cv2.MORPH_CLOSE, kernel), dtype=bool)


# --------------------------------------------------------------------------------------- threats
def threat_matrix(sprite: Sprite, cx: float, cy: float, angle_deg: float, mirror: bool, aspect: float) -> Matrix:
    """``3x3`` affine map from a supersampled sprite's pixels to output pixels.

    The sprite's centre lands on ``(cx, cy)``; it is mirrored (left-right) if asked, rotated by
    ``angle_deg`` counter-clockwise on screen, then stretched vertically by ``aspect``.
    """
    w, h = sprite.size
    a = np.deg2rad(angle_deg)
    to_origin = np.array([[1.0, 0.0, -w / 2], [0.0, 1.0, -h / 2], [0.0, 0.0, 1.0]])
    down = np.diag([1.0 / SUPERSAMPLE, 1.0 / SUPERSAMPLE, 1.0])
    flip = np.diag([-1.0 if mirror else 1.0, 1.0, 1.0])
    rot = np.array([[np.cos(a), np.sin(a), 0.0], [-np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    stretch = np.diag([1.0, aspect, 1.0])
    move = np.array([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
    return move @ stretch @ rot @ flip @ down @ to_origin


def _window(sprite: Sprite, matrix: Matrix, margin: int) -> tuple[int, int, int, int]:
    """Output-pixel window ``(x0, y0, x1, y1)`` covering the placed sprite plus ``margin``."""
    w, h = sprite.size
    corners = matrix @ np.array([[0, w, w, 0], [0, 0, h, h], [1, 1, 1, 1]], dtype=np.float64)
    return (
        int(np.floor(corners[0].min())) - margin,
        int(np.floor(corners[1].min())) - margin,
        int(np.ceil(corners[0].max())) + margin,
        int(np.ceil(corners[1].max())) + margin,
    )


def _warp(src: FloatArray, matrix: Matrix, window: tuple[int, int, int, int], scale: int) -> FloatArray:
    """Warp ``src`` (sprite pixels) into ``window`` (output pixels) sampled ``scale`` times finer."""
    x0, y0, x1, y1 = window
    m = np.diag([float(scale), float(scale), 1.0]) @ np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]]) @ matrix
    size = ((x1 - x0) * scale, (y1 - y0) * scale)
    out = cv2.warpAffine(src, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.asarray(out, dtype=np.float32)


def measure_threat(
    sprite: Sprite,
    matrix: Matrix,
    *,
    blur_sigma_px: float,
    photons: float,
    rng: Rng,
    margin: int = 3,
) -> MeasuredThreat | None:
    """Simulate how the scanner measures a placed threat.

    The scanner's native pixels are :data:`SUPERSAMPLE` times finer than the exported image (real
    416-px scans are resized displays). At that resolution the sprite's transmission is blurred by
    the point spread and given the quantum noise its absorption costs; counts saturate at half a
    photon, so an opaque object reads as opaque, not as noise. The output-resolution attenuation
    integrates the native intensity over each output pixel (for labels and concealment).

    Args:
        sprite: drawn at :data:`SUPERSAMPLE` times the scene scale.
        matrix: map from sprite pixels to output pixels (:func:`threat_matrix`).
        blur_sigma_px: point spread, output pixels.
        photons: low-energy air counts per output pixel.
        rng: noise generator.
        margin: output pixels kept around the footprint for the blur.

    Returns:
        The measured threat, or ``None`` when nothing of the sprite lands in its window.
    """
    window = _window(sprite, matrix, margin)
    s = SUPERSAMPLE
    att2 = _warp(sprite.att, matrix, window, s)
    if not att2[..., 0].any():
        return None
    out_w, out_h = window[2] - window[0], window[3] - window[1]
    coverage = cv2.resize((att2[..., 0] > 0).astype(np.float32), (out_w, out_h), interpolation=cv2.INTER_AREA)
    sigma = blur_sigma_px * s
    low = np.ascontiguousarray(att2[..., 0])
    intensity = cv2.exp(-low)
    if sigma > 0:
        intensity = cv2.GaussianBlur(intensity, (0, 0), sigma)
    air = np.float32(photons / (s * s))
    intensity = np.clip(np.asarray(intensity, dtype=np.float32), 0.5 / air, 1.0)  # at least half a photon
    # The real background carries its own noise already; a threat adds what its absorption costs:
    # var(A) grows from 1/(N T_bg) to 1/(N T_bg T_threat) (T_bg ~ 1 here).
    counted = np.maximum(intensity, _NOISE_FLOOR_PHOTONS / air)
    extra_sd = np.sqrt((1.0 / counted - 1.0) / air).astype(np.float32)
    fine_low = np.clip(
        -np.log(intensity) + rng.standard_normal(intensity.shape).astype(np.float32) * extra_sd, 0.0, None
    )
    # The material (low/high ratio) comes from what the object is made of, blurred like the image:
    # the ratio of two blurred *intensities* of an object opaque at both energies tends to 1 at its
    # edge, which the display would call organic; real scans show dense metal with dark-blue rims.
    num: FloatArray = low
    den: FloatArray = np.ascontiguousarray(att2[..., 1])
    if sigma > 0:
        num = np.asarray(cv2.GaussianBlur(num, (0, 0), sigma), dtype=np.float32)
        den = np.asarray(cv2.GaussianBlur(den, (0, 0), sigma), dtype=np.float32)
    ratio = np.where(den > 1e-4, num / np.maximum(den, 1e-4), _ORGANIC_RATIO).astype(np.float32)
    fine = np.stack([fine_low, fine_low / ratio], axis=-1).astype(np.float32)
    coarse = cv2.resize(np.exp(-fine), (out_w, out_h), interpolation=cv2.INTER_AREA).reshape(out_h, out_w, 2)
    return MeasuredThreat(
        x0=window[0],
        y0=window[1],
        att=(-np.log(coarse)).astype(np.float32),
        fine_att=fine,
        coverage=np.asarray(coverage, dtype=np.float32),
        opaque_attenuation=float(np.log(air)),
    )


# ------------------------------------------------------------------------------------- compositing
def composite(
    image: ImageU8, bg_att: FloatArray, threat: MeasuredThreat, palette: Palette, *, edge_amount: float
) -> BoolArray:
    """Project a measured threat into ``image`` in place, and add its attenuation to ``bg_att``.

    Both the background alone and background plus threat are displayed at the scanner's native
    resolution, then averaged down to the output pixels, as the exported image was: the edge of a
    black gold bar blends into its surroundings, it does not turn into a partial-volume mixture
    (whose energy ratio the display would call organic). The real pixels are multiplied by the
    ratio of the two displays.

    Args:
        image: ``(H, W, 3)`` uint8 RGB scan; changed only near the threat.
        bg_att: ``(H, W, 2)`` float32 attenuation estimate of ``image`` (:meth:`Palette.attenuation`),
            updated so that later threats see this one as clutter.
        threat: the measured threat (a window overhanging the image is clipped).
        palette: the display palette both renderings go through.
        edge_amount: unsharp-mask strength of the display, applied to the threat's attenuation.

    Returns:
        ``(H, W)`` bool: the pixels the projection changed by more than :data:`VISIBLE_CHANGE` grey
        levels in some channel (the threat's own pixels and the display's colour fringe around them).
    """
    H, W = image.shape[:2]
    changed = np.zeros((H, W), dtype=bool)
    (isy, isx), (tsy, tsx) = threat.slices(H, W)
    if isy.start == isy.stop or isx.start == isx.stop:
        return changed
    s = SUPERSAMPLE
    # A padded window: the display's neighbourhood filters must see the same context in both renderings.
    pad = 4
    wy0, wx0 = max(0, isy.start - pad), max(0, isx.start - pad)
    wy1, wx1 = min(H, isy.stop + pad), min(W, isx.stop + pad)
    wh, ww = wy1 - wy0, wx1 - wx0
    add = np.zeros((wh * s, ww * s, 2), dtype=np.float32)
    add[(isy.start - wy0) * s : (isy.stop - wy0) * s, (isx.start - wx0) * s : (isx.stop - wx0) * s] = threat.fine_att[
        tsy.start * s : tsy.stop * s, tsx.start * s : tsx.stop * s
    ]
    upsampled = cv2.resize(bg_att[wy0:wy1, wx0:wx1], (ww * s, wh * s), interpolation=cv2.INTER_LINEAR)
    before: FloatArray = np.asarray(upsampled, dtype=np.float32).reshape(wh * s, ww * s, 2)
    shown = before + add
    # Scanners sharpen brightness; only the threat's dark outline is drawn, never its light halo,
    # which would brighten the real scan around it (no object makes a ray brighter).
    shown[..., 0] = before[..., 0] + np.maximum(enhance_edges(np.ascontiguousarray(add[..., 0]), edge_amount), 0.0)
    opaque = threat.opaque_attenuation
    c_before = render_palette(before, palette.lut, opaque_attenuation=opaque)
    c_after = render_palette(shown, palette.lut, opaque_attenuation=opaque)
    gain = cv2.resize(c_after + 1.0, (ww, wh), interpolation=cv2.INTER_AREA) / cv2.resize(
        c_before + 1.0, (ww, wh), interpolation=cv2.INTER_AREA
    )
    real = image[wy0:wy1, wx0:wx1].astype(np.float32)
    out = real * gain
    luma_in, luma_out = real @ LUMA, out @ LUMA
    out *= np.where(luma_out > luma_in, luma_in / np.maximum(luma_out, 1e-6), 1.0)[..., None]
    new = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    changed[wy0:wy1, wx0:wx1] = np.abs(new.astype(np.int16) - image[wy0:wy1, wx0:wx1]).max(axis=2) > VISIBLE_CHANGE
    image[wy0:wy1, wx0:wx1] = new
    bg_att[isy, isx] += threat.att[tsy, tsx]
    return changed


# ------------------------------------------------------------------------------------- placement
def _shared_area(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def _area(b: Box) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def _scene_scale(rng: Rng, mask: BoolArray, settings: TipSettings) -> float:
    """Pixels per cm: drawn from the settings' range, pulled halfway toward what the bag implies."""
    lo, hi = settings.px_per_cm
    s = float(rng.uniform(lo, hi))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if n > 1:
        biggest = stats[1:][np.argmax(stats[1:, cv2.CC_STAT_AREA])]
        # A single bag is 50-75 cm long; bags touching each other only make the extent an upper bound.
        extent = float(max(biggest[cv2.CC_STAT_WIDTH], biggest[cv2.CC_STAT_HEIGHT]))
        s = 0.5 * s + 0.5 * extent / float(rng.uniform(50.0, 75.0))
    return float(np.clip(s, lo, hi))


def _score(other_low: FloatArray, intent: Concealment) -> float:
    """Lower is better: ``easy`` wants open space, ``hard`` clutter that is not dense, ``hidden`` dense clutter."""
    level, over, dense = concealment_level(other_low)
    if intent == "easy":
        return over
    if intent == "hard":
        return -over + (1.0 if level == "hidden" else 0.0)
    return -dense


def _draw_class(rng: Rng, weights: dict[str, float]) -> str:
    names = [n for n in XRAY_CLASSES if weights.get(n, 0.0) > 0]
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


@dataclass
class _Scene:
    """The per-image state of a projection."""

    image: ImageU8
    att: FloatArray
    mask: BoolArray
    taken: list[Box]
    bag_xy: npt.NDArray[np.intp]


def _best_placement(
    rng: Rng, scene: _Scene, sprite: Sprite, intent: Concealment, aspect: float, settings: TipSettings
) -> Matrix | None:
    """The candidate placement that best fits ``intent``, judged on the sprite's coarse footprint."""
    H, W = scene.mask.shape
    footprint = (sprite.att[..., 0] > 0).astype(np.float32)
    best: tuple[float, Matrix] | None = None
    for _ in range(settings.candidates):
        if len(scene.bag_xy):
            x, y = scene.bag_xy[int(rng.integers(0, len(scene.bag_xy)))]
            cx, cy = float(x) + float(rng.uniform(-0.5, 0.5)), float(y) + float(rng.uniform(-0.5, 0.5))
        else:
            cx, cy = float(rng.uniform(0, W)), float(rng.uniform(0, H))
        m = threat_matrix(sprite, cx, cy, float(rng.uniform(0.0, 360.0)), bool(rng.random() < 0.5), aspect)
        x0, y0, x1, y1 = _window(sprite, m, 1)
        if x0 < 0 or y0 < 0 or x1 > W or y1 > H:
            continue  # projected whole: a threat cut by the frame would teach a wrong extent
        foot = _warp(footprint, m, (x0, y0, x1, y1), 1) > 0.25
        if not foot.any():
            continue
        ys, xs = np.nonzero(foot)
        box = (float(x0 + xs.min()), float(y0 + ys.min()), float(x0 + xs.max() + 1), float(y0 + ys.max() + 1))
        if any(_shared_area(box, t) > settings.max_overlap * min(_area(box), _area(t)) for t in scene.taken):
            continue
        inside = float(scene.mask[y0:y1, x0:x1][foot].mean())
        score = _score(scene.att[y0:y1, x0:x1, 0][foot], intent) + (10.0 if inside < _MIN_INSIDE else 0.0)
        if best is None or score < best[0]:
            best = (score, m)
    return None if best is None else best[1]


def project_threats(
    background: ImageU8,
    rng: Rng,
    *,
    count: int,
    palette: Palette,
    background_objects: Sequence[BackgroundObject] = (),
    settings: TipSettings | None = None,
    classes: Sequence[str] | None = None,
) -> TipImage:
    """Project up to ``count`` synthetic threats into a real pseudo-colour scan.

    Threats are placed on the bag (the non-white area), each at the best of several random candidate
    spots for a drawn intent (open, among clutter, under dense clutter), never cut by the frame and
    never covering another labelled object. Their concealment is then measured the generator's way,
    from everything else on their pixels' rays.

    Args:
        background: ``(H, W, 3)`` uint8 RGB real scan (not modified).
        rng: the image's random generator; every choice comes from it.
        count: threats to try to place (>= 0); fewer are placed when no room is found.
        palette: display palette, ideally calibrated to the background's scanner.
        background_objects: the scan's own labelled objects, kept and avoided.
        settings: drawing, measuring and placement settings (defaults if ``None``).
        classes: the classes to project, in order (cycled); drawn by ``settings.class_weights``
            when ``None``.

    Returns:
        The composited image and the labels of what was placed.

    Raises:
        TipError: for an image that is not ``(H, W, 3)`` uint8, a negative count or an unknown class.
    """
    if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
        raise TipError(f"background must be (H, W, 3) uint8 RGB, got {background.shape} {background.dtype}")
    if count < 0:
        raise TipError(f"count must be >= 0, got {count}")
    unknown = sorted(set(classes or ()) - set(XRAY_CLASSES))
    if unknown:
        raise TipError(f"unknown classes {unknown}; known: {list(XRAY_CLASSES)}")
    settings = settings or TipSettings()
    H, W = background.shape[:2]
    mask = bag_mask(background, palette)
    # Placements are judged on the bag's interior: its rim and the faint streaks of the empty belt
    # next to it are no place to pack a gun.
    inner = cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))).astype(bool)
    if inner.any():
        mask = inner
    ys, xs = np.nonzero(mask)
    scene = _Scene(
        image=background.copy(),
        att=palette.attenuation(background),
        mask=mask,
        taken=[o.box for o in background_objects],
        bag_xy=np.stack([xs, ys], axis=1),
    )
    s = _scene_scale(rng, mask, settings)
    aspect = float(rng.uniform(*settings.aspect))
    blur = float(rng.uniform(*settings.blur_sigma_px))
    edges = float(rng.uniform(*settings.edge_enhance))
    photons = float(rng.uniform(*settings.photons))
    p_intent = np.asarray(settings.intents, dtype=np.float64)
    placed: list[tuple[str, str, Concealment, MeasuredThreat, BoolArray]] = []
    for k in range(count):
        name = classes[k % len(classes)] if classes else _draw_class(rng, settings.class_weights)
        intent = CONCEALMENT_LEVELS[int(rng.choice(3, p=p_intent / p_intent.sum()))]
        sprite = THREAT_FACTORIES[name](rng, s * SUPERSAMPLE)
        sprite = modulate(sprite, rng, float(rng.uniform(0.03, 0.1)), cell_px=float(rng.uniform(6.0, 16.0)))
        matrix = _best_placement(rng, scene, sprite, intent, aspect, settings)
        if matrix is None:
            continue
        measured = measure_threat(sprite, matrix, blur_sigma_px=blur, photons=photons, rng=rng)
        if measured is None:
            continue
        changed = composite(scene.image, scene.att, measured, palette, edge_amount=edges)
        (isy, isx), (tsy, tsx) = measured.slices(H, W)
        changed[isy, isx] |= measured.visible[tsy, tsx]
        vy, vx = np.nonzero(changed)
        if vx.size == 0:
            continue
        scene.taken.append((float(vx.min()), float(vy.min()), float(vx.max() + 1), float(vy.max() + 1)))
        placed.append((name, sprite.name, intent, measured, changed))
    threats = tuple(_label(name, subtype, intent, m, mask, scene.att) for name, subtype, intent, m, mask in placed)
    return TipImage(image=scene.image, threats=threats, background_objects=tuple(background_objects), px_per_cm=s)


def _label(
    name: str, subtype: str, intent: Concealment, m: MeasuredThreat, mask: BoolArray, att: FloatArray
) -> ProjectedThreat:
    """The label of a projected threat, its concealment measured on the final scene."""
    H, W = mask.shape
    (isy, isx), (tsy, tsx) = m.slices(H, W)
    ys, xs = np.nonzero(mask)
    core = m.coverage[tsy, tsx] >= 0.5
    # Everything else on the threat's rays: the scene minus the threat itself (other threats count).
    other = (att[isy, isx, 0] - m.att[tsy, tsx, 0])[core]
    level, over, dense = concealment_level(other)
    return ProjectedThreat(
        class_id=XRAY_CLASSES.index(name),
        class_name=name,
        subtype=subtype,
        box=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
        concealment=level,
        intent=intent,
        overlapped_fraction=round(over, 4),
        dense_fraction=round(dense, 4),
        mask=mask,
    )
