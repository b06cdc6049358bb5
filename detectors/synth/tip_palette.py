"""The dual-energy display palette read backwards: from a real scan's colours to attenuation.

Threat Image Projection (:mod:`detectors.synth.tip`) composites in the log domain, so it needs the
attenuation behind every pixel of a *real* pseudo-colour scan. The generator's display
(:mod:`~detectors.synth.xray_display`) maps ``(material class, darkness)`` to a colour through a
``(33, 256, 3)`` table whose ramps were read off real scans; matching each real pixel to its nearest
table cell inverts the display: darkness gives the low-energy attenuation through the inverse of the
display curve, the class gives the low/high attenuation ratio.

:func:`calibrate_palette` moves the table's colours to the real scanner's (Lloyd iterations over real
scans), so that what is rendered through it — a projected threat — takes that scanner's tints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from detectors.synth.xray_display import colour_lut, darkness, material_coordinate

FloatArray = npt.NDArray[np.float32]
ImageU8 = npt.NDArray[np.uint8]

__all__ = ["LUMA", "WHITE_ATTENUATION", "Palette", "PaletteError", "calibrate_palette", "render_palette"]

#: Below the display curve's first knot a ray renders white (see ``xray_display.darkness``).
WHITE_ATTENUATION = 0.05
#: Rec. 601 luma weights of RGB; brightness as the display's darkness axis sees it.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

_CUBE_BITS = 5  # the colour -> cell table covers a 32x32x32 RGB cube (steps of 8 grey levels)


class PaletteError(ValueError):
    """A palette table is malformed."""


@lru_cache(maxsize=1)
def _darkness_inverse() -> tuple[FloatArray, FloatArray]:
    """``(darkness, attenuation)`` samples of the display curve at contrast 1, for ``np.interp``."""
    att = np.geomspace(WHITE_ATTENUATION, 64.0, 2048).astype(np.float32)
    d = darkness(att)
    # The curve is flat where the display saturates; keep the first attenuation of each level.
    keep = np.concatenate([[True], np.diff(d) > 0])
    return d[keep], att[keep]


@lru_cache(maxsize=4)
def _class_ratios(bins: int) -> FloatArray:
    """A representative low/high attenuation ratio for every material-class bin.

    The display's class curve is flat at both ends (every organic ratio is class 0, every metal ratio
    class 1), so each bin gets the median of the ratios between water (1.36) and steel (6.15) that
    fall in it; bins the curve jumps over are interpolated.
    """
    ratios = np.linspace(1.36, 6.15, 4096).astype(np.float32)
    zb = np.rint(material_coordinate(ratios) * (bins - 1)).astype(np.intp)
    centres = np.arange(bins, dtype=np.float32)
    out = np.full(bins, np.nan, dtype=np.float32)
    for b in range(bins):
        hit = ratios[zb == b]
        if hit.size:
            out[b] = float(np.median(hit))
    known = ~np.isnan(out)
    out[~known] = np.interp(centres[~known], centres[known], out[known])
    return out


@dataclass(frozen=True)
class Palette:
    """A dual-energy display palette and its inverse.

    Attributes:
        lut: ``(C, L, 3)`` uint8 RGB indexed by material-class bin (0 organic .. C-1 metal) and
            darkness level (0 white .. L-1 black), like :func:`~detectors.synth.xray_display.colour_lut`
            (the default).
    """

    lut: ImageU8 = field(default_factory=colour_lut)

    def __post_init__(self) -> None:
        lut = self.lut
        if lut.ndim != 3 or lut.shape[2] != 3 or lut.dtype != np.uint8 or lut.shape[0] < 2 or lut.shape[1] < 2:
            raise PaletteError(f"palette must be a (classes, levels, 3) uint8 table, got {lut.shape} {lut.dtype}")

    @property
    def classes(self) -> int:
        """Number of material-class bins."""
        return int(self.lut.shape[0])

    @property
    def levels(self) -> int:
        """Number of darkness levels."""
        return int(self.lut.shape[1])

    @cached_property
    def _cube(self) -> npt.NDArray[np.int32]:
        """Flat index of the nearest palette cell per cell of a coarse RGB cube; -1 until needed.

        Filled lazily: a scan uses a few thousand of the cube's 32,768 colours, and resolving all
        of them against the palette's 8,448 cells costs seconds.
        """
        return np.full(1 << (3 * _CUBE_BITS), -1, dtype=np.int32)

    @cached_property
    def _flat(self) -> tuple[FloatArray, FloatArray]:
        flat = self.lut.reshape(-1, 3).astype(np.float32)
        return flat, (flat**2).sum(1)

    def _resolve(self, keys: npt.NDArray[np.intp]) -> None:
        """Fill the cube table for the given cube cells."""
        step = 256 >> _CUBE_BITS
        mask = (1 << _CUBE_BITS) - 1
        rgb = np.stack([(keys >> (2 * _CUBE_BITS)) & mask, (keys >> _CUBE_BITS) & mask, keys & mask], axis=1)
        centres = (rgb * step + step / 2).astype(np.float32)
        flat, flat_sq = self._flat
        for s in range(0, len(keys), 1024):
            # |c - p|^2 minus |c|^2, which is the same for every palette cell p of a row.
            d = flat_sq[None, :] - 2.0 * (centres[s : s + 1024] @ flat.T)
            self._cube[keys[s : s + 1024]] = d.argmin(1)

    def cells(self, image: ImageU8) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Nearest palette cell of every pixel.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.

        Returns:
            ``(class_bin, level)``, each ``(H, W)`` intp.
        """
        q = image.astype(np.intp) >> (8 - _CUBE_BITS)
        key = (q[..., 0] << (2 * _CUBE_BITS)) | (q[..., 1] << _CUBE_BITS) | q[..., 2]
        idx = self._cube[key]
        if (idx < 0).any():
            self._resolve(np.unique(key[idx < 0]))
            idx = self._cube[key]
        return idx // self.levels, idx % self.levels

    def attenuation(self, image: ImageU8) -> FloatArray:
        """Estimated attenuation behind a displayed image (the inverse of :func:`render_palette`).

        Args:
            image: ``(H, W, 3)`` uint8 RGB pseudo-colour scan.

        Returns:
            ``(H, W, 2)`` float32 attenuation ``-ln(I/I0)`` (low, high energy); 0 where white.
        """
        zb, lv = self.cells(image)
        d_knots, a_knots = _darkness_inverse()
        d = lv.astype(np.float32) / np.float32(self.levels - 1)
        low = np.interp(d, d_knots, a_knots).astype(np.float32)
        low[d <= d_knots[0]] = 0.0
        ratio = _class_ratios(self.classes)[zb]
        return np.stack([low, low / ratio], axis=-1).astype(np.float32)


def render_palette(att: FloatArray, lut: ImageU8, *, opaque_attenuation: float | None = None) -> FloatArray:
    """Display colours of an attenuation map, as :func:`~detectors.synth.xray_display.fuse_dual_energy`.

    The same steps — material class from the lightly smoothed low/high ratio, darkness from the
    low-energy attenuation, faint rays organic — through any palette. Unlike the generator's display
    no edge enhancement is applied (a projected threat brings its own) and colours stay float, so the
    ratio of two renderings is smooth.

    Args:
        att: ``(H, W, 2)`` float32 attenuation (low, high).
        lut: ``(C, L, 3)`` uint8 palette.
        opaque_attenuation: low-energy attenuation at and above which a ray counts as impenetrable
            (no photons left): shown at the darkest level, as scanners show such regions black;
            ``None`` leaves the display curve alone.

    Returns:
        ``(H, W, 3)`` float32 RGB in ``[0, 255]``.
    """
    low = np.ascontiguousarray(att[..., 0])
    high = np.ascontiguousarray(att[..., 1])
    low_s = cv2.GaussianBlur(low, (0, 0), 1.0)
    high_s = cv2.GaussianBlur(high, (0, 0), 1.0)
    z = material_coordinate(low_s / np.maximum(high_s, np.float32(1e-3)))
    zi = np.rint(z * (lut.shape[0] - 1)).astype(np.intp)
    zi[low_s < WHITE_ATTENUATION] = 0
    di = np.rint(darkness(low) * (lut.shape[1] - 1)).astype(np.intp)
    if opaque_attenuation is not None:
        di[low >= opaque_attenuation] = lut.shape[1] - 1
    return lut[zi, di].astype(np.float32)


def calibrate_palette(
    images: Iterable[ImageU8],
    base: Palette | None = None,
    *,
    iterations: int = 3,
    sigma_classes: float = 1.5,
    sigma_levels: float = 6.0,
    min_pixels: float = 20.0,
) -> Palette:
    """A palette whose colours are the real scanner's, measured on real scans.

    Lloyd iterations: every non-white pixel is assigned to its nearest cell of the current palette;
    a cell moves to the mean real colour of its pixels. The move is smoothed over neighbouring cells
    (weighted by their pixel counts) so sparse cells follow their neighbours and the ramps stay
    ramps; cells seen too rarely keep the base colour; along each class ramp, brightness may only
    fall with darkness.

    Args:
        images: ``(H, W, 3)`` uint8 RGB real scans of one scanner family.
        base: palette to start from (the generator's by default).
        iterations: assignment/update rounds (0 returns ``base``).
        sigma_classes: smoothing across material-class bins.
        sigma_levels: smoothing across darkness levels.
        min_pixels: smoothed pixel count below which a cell keeps the base colour.

    Returns:
        The calibrated palette.

    Raises:
        PaletteError: for a negative iteration count or an image that is not ``(H, W, 3)`` uint8.
    """
    if iterations < 0:
        raise PaletteError(f"iterations must be >= 0, got {iterations}")
    base = base or Palette()
    pixels = []
    for im in images:
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise PaletteError(f"calibration images must be (H, W, 3) uint8 RGB, got {im.shape} {im.dtype}")
        pixels.append(im)
    palette = base
    for _ in range(iterations):
        palette = _calibration_step(pixels, palette, base, sigma_classes, sigma_levels, min_pixels)
    return palette


def _calibration_step(
    images: Sequence[ImageU8],
    current: Palette,
    base: Palette,
    sigma_classes: float,
    sigma_levels: float,
    min_pixels: float,
) -> Palette:
    """One Lloyd step: assign pixels to the current palette's cells, move the cells to their means."""
    nc, nl = base.classes, base.levels
    sums = np.zeros((nc * nl, 3), dtype=np.float64)
    counts = np.zeros(nc * nl, dtype=np.float64)
    for image in images:
        zb, lv = current.cells(image)
        keep = lv > 0  # the empty belt says nothing about the scanner's colours
        flat = (zb * nl + lv)[keep]
        counts += np.bincount(flat, minlength=nc * nl)
        for c in range(3):
            sums[:, c] += np.bincount(flat, weights=image[..., c][keep].astype(np.float64), minlength=nc * nl)
    per_cell = counts.reshape(nc, nl)
    lut = base.lut.astype(np.float64)
    offset = (sums.reshape(nc, nl, 3) - lut * per_cell[..., None]).astype(np.float32)
    w = cv2.GaussianBlur(per_cell.astype(np.float32), (0, 0), sigmaX=sigma_levels, sigmaY=sigma_classes)
    o = cv2.GaussianBlur(offset, (0, 0), sigmaX=sigma_levels, sigmaY=sigma_classes)
    trust = np.clip(w / min_pixels, 0.0, 1.0)[..., None]
    out = lut + trust * (o / np.maximum(w[..., None], 1e-6))
    out[:, 0] = lut[:, 0]  # level 0 is the empty belt: white by definition
    luma = out @ LUMA.astype(np.float64)
    ceiling = np.minimum.accumulate(luma, axis=1)
    out *= (ceiling / np.maximum(luma, 1e-6))[..., None]
    return Palette(np.clip(np.rint(out), 0, 255).astype(np.uint8))
