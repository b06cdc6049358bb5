"""Inking physics of a stamp impression, and the colour photocopy of one.

A rubber stamp or seal pressed by hand never transfers its face perfectly: pressure is uneven (the
hand tilts, one edge lifts and leaves part of the face blank), ink is thinner in some places and
leaves speckled gaps, too much ink bleeds and thickens lines, a slip smudges, a bounce leaves a
faint double. A colour photocopy of an impression loses all of that: the copier thresholds the ink
to a flat colour, prints it with halftone dots per toner colour, and slightly misregisters them.

Masks are ``(H, W)`` float32 coverage in ``[0, 1]`` at output resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from detectors.synth.doc_raster import FloatArray, InkLayer, rotate_expand, smooth_noise


@dataclass(frozen=True)
class ImpressionCondition:
    """How one impression was made. All fields are physical or fractions; sampled by :meth:`sample`.

    Attributes:
        angle_deg: Rotation of the impression on the page (counter-clockwise).
        density: Overall ink load in ``(0, 1]``; below ~0.45 the impression is faint.
        tilt: Pressure fall-off across the face, 0 (flat) to 1 (one edge barely touches).
        tilt_dir: Direction (radians) in which pressure falls.
        partial: Fraction of the face, from the light edge, that left no ink at all (0 = complete).
        gaps: Strength of speckled ink gaps, 0 to 1.
        bleed_px: Ink spread in pixels (over-inked stamps thicken), may be 0.
        smudge_px: Length of a slip smear in pixels (0 = none).
        smudge_dir: Direction of the smear (radians).
        double_px: Offset of a faint second contact (bounce) in pixels (0 = none).
        hue_jitter: Per-impression colour drift of the ink pad, RGB offsets.
    """

    angle_deg: float = 0.0
    density: float = 0.9
    tilt: float = 0.0
    tilt_dir: float = 0.0
    partial: float = 0.0
    gaps: float = 0.2
    bleed_px: float = 0.0
    smudge_px: float = 0.0
    smudge_dir: float = 0.0
    double_px: float = 0.0
    hue_jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def faint(self) -> bool:
        return self.density < 0.45

    @property
    def is_partial(self) -> bool:
        return self.partial > 0.08

    @classmethod
    def sample(cls, rng: np.random.Generator, *, square: bool = False, hard: float = 0.3) -> ImpressionCondition:
        """A random but plausible impression.

        Args:
            rng: Random source.
            square: Square seals are aligned with the text more carefully (smaller rotations).
            hard: Probability of each hard case (faint, partial, smudged) being drawn.
        """
        if square:
            angle = float(rng.normal(0.0, 4.0))
        elif rng.random() < 0.7:
            angle = float(rng.normal(0.0, 9.0))
        else:
            angle = float(rng.uniform(-40.0, 40.0))
        faint = rng.random() < hard * 0.6
        density = float(rng.uniform(0.22, 0.45) if faint else 0.55 + 0.45 * rng.beta(2.5, 1.2))
        partial = float(rng.uniform(0.12, 0.45)) if rng.random() < hard * 0.5 else 0.0
        tilt = float(rng.uniform(0.3, 0.75)) if partial else float(rng.beta(1.5, 4.0))
        return cls(
            angle_deg=angle,
            density=density,
            tilt=tilt,
            tilt_dir=float(rng.uniform(0, 2 * math.pi)),
            partial=partial,
            gaps=float(rng.beta(2.0, 3.0)),
            bleed_px=float(rng.uniform(0.4, 1.4)) if rng.random() < 0.25 else 0.0,
            smudge_px=float(rng.uniform(2.0, 7.0)) if rng.random() < hard * 0.35 else 0.0,
            smudge_dir=float(rng.uniform(0, 2 * math.pi)),
            double_px=float(rng.uniform(1.5, 4.0)) if rng.random() < 0.06 else 0.0,
            hue_jitter=tuple(float(v) for v in rng.normal(0.0, 0.03, 3)),  # type: ignore[arg-type]
        )

    def for_photocopy(self) -> ImpressionCondition:
        """The clean, complete source impression a forger would photocopy (keeps the rotation)."""
        return replace(self, density=0.95, tilt=0.1, partial=0.0, gaps=0.1, smudge_px=0.0, double_px=0.0)


def impress(
    mask: FloatArray, rgb: tuple[float, float, float], cond: ImpressionCondition, rng: np.random.Generator
) -> InkLayer:
    """Ink ``mask`` (the stamp face) onto paper under ``cond``.

    Args:
        mask: ``(H, W)`` float32 face coverage in ``[0, 1]`` (upright, unrotated).
        rgb: Ink colour at full strength (reflectance, ``[0, 1]``).
        cond: The impression's condition.
        rng: Random source for textures.

    Returns:
        The rotated impression, cropped to its ink.
    """
    h, w = mask.shape
    m = mask
    if cond.bleed_px > 0:
        k = int(2 * math.ceil(cond.bleed_px * 2) + 1)
        spread = cv2.GaussianBlur(m, (k, k), cond.bleed_px)
        m = np.clip(np.maximum(m, spread * 1.6), 0.0, 1.0)

    # Pressure: a ramp along the tilt direction, plus slow lumps from an uneven pad or surface.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = ((xx - w / 2) * math.cos(cond.tilt_dir) + (yy - h / 2) * math.sin(cond.tilt_dir)) / max(w, h)
    proj = proj + 0.5  # 0 at the heavy edge, 1 at the light edge
    pressure = 1.0 - cond.tilt * proj + 0.18 * smooth_noise((h, w), max(w, h) / 3.0, rng)
    if cond.partial > 0:
        edge = 1.0 - cond.partial + 0.05 * smooth_noise((h, w), max(w, h) / 4.0, rng)
        pressure *= np.clip((edge - proj) * 14.0, 0.0, 1.0)
    pressure = np.clip(pressure, 0.0, 1.2) * cond.density

    # Ink transfer: fine mottle thresholded against pressure, so gaps open where pressure is low.
    fine = smooth_noise((h, w), 2.2, rng) + 0.5 * smooth_noise((h, w), 5.0, rng)
    transfer = np.clip(pressure * (1.0 + 0.25 * cond.gaps) + cond.gaps * 0.35 * fine - cond.gaps * 0.15, 0.0, 1.0)
    alpha = m * transfer
    if cond.smudge_px > 0:
        alpha = np.maximum(alpha, 0.55 * _motion_blur(alpha, cond.smudge_px, cond.smudge_dir) * _region(h, w, rng))
    if cond.double_px > 0:
        dx = cond.double_px * math.cos(cond.smudge_dir)
        dy = cond.double_px * math.sin(cond.smudge_dir)
        shifted = cv2.warpAffine(alpha, np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32), (w, h))
        alpha = np.maximum(alpha, 0.35 * shifted)
    alpha = rotate_expand(np.ascontiguousarray(alpha, dtype=np.float32), cond.angle_deg)
    colour = np.clip(np.asarray(rgb, dtype=np.float32) + np.asarray(cond.hue_jitter, dtype=np.float32), 0.02, 0.98)
    # Dense ink looks a little darker and more saturated than thin ink of the same pad.
    absorb = alpha[..., None] * (1.0 - colour)[None, None, :] * (0.8 + 0.25 * alpha[..., None])
    return InkLayer(np.clip(absorb, 0.0, 1.0).astype(np.float32)).crop_to_ink()


def _motion_blur(img: FloatArray, length: float, direction: float) -> FloatArray:
    n = max(3, int(length) | 1)
    kernel = np.zeros((n, n), dtype=np.float32)
    c = n // 2
    dx, dy = math.cos(direction), math.sin(direction)
    for t in np.linspace(0, 1, 2 * n):
        kernel[round(c + dy * t * c), round(c + dx * t * c)] = 1.0
    kernel /= kernel.sum()
    return np.asarray(cv2.filter2D(img, -1, kernel), dtype=np.float32)


def _region(h: int, w: int, rng: np.random.Generator) -> FloatArray:
    """A soft blob covering part of the face: where a smear happened."""
    return np.clip(smooth_noise((h, w), max(h, w) / 2.5, rng) * 1.5 + 0.3, 0.0, 1.0)


# Toner colours a colour copier mixes red, blue... inks from; reflectance of each toner at full
# coverage (cyan absorbs red, magenta absorbs green, yellow absorbs blue).
_TONER_ABSORB = np.array([[0.85, 0.12, 0.05], [0.10, 0.80, 0.15], [0.02, 0.10, 0.85]], dtype=np.float32)
_SCREEN_ANGLES_DEG = (15.0, 75.0, 0.0)


def photocopy(source: InkLayer, px_per_mm: float, rng: np.random.Generator) -> InkLayer:
    """Colour photocopy (or colour print of a scan) of a genuine impression.

    The copier's threshold flattens the ink density, each toner is laid with a rotated halftone
    screen, the toners are misregistered by a fraction of a pixel, and the optics soften edges.

    Args:
        source: The genuine impression that was copied.
        px_per_mm: Output resolution (the halftone screen is physical: 70-130 lines per inch).
        rng: Random source.
    """
    dark = source.absorb.max(axis=2)
    # Copier threshold: everything above a low density prints at full strength.
    flat = np.clip((dark - 0.08) / 0.25, 0.0, 1.0)
    flat = cv2.GaussianBlur(flat, (0, 0), 0.6)
    hue = source.absorb / np.maximum(dark, 1e-6)[..., None]  # per-channel absorbance of the ink hue
    target = flat[..., None] * np.clip(hue * float(rng.uniform(0.85, 1.0)), 0.0, 1.0)
    # Decompose the wanted absorbance into CMY toner coverages (clipped least squares).
    cmy = np.clip(target.reshape(-1, 3) @ np.linalg.pinv(_TONER_ABSORB), 0.0, 1.0).reshape(target.shape)
    h, w = flat.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = px_per_mm * 25.4 / float(rng.uniform(70.0, 130.0))
    out = np.zeros_like(source.absorb)
    for ch in range(3):
        a = math.radians(_SCREEN_ANGLES_DEG[ch] + float(rng.uniform(-3, 3)))
        u = (xx * math.cos(a) + yy * math.sin(a)) * (2 * math.pi / period)
        v = (-xx * math.sin(a) + yy * math.cos(a)) * (2 * math.pi / period)
        screen = 0.5 + 0.25 * (np.cos(u) + np.cos(v))  # dot-shaped threshold in [0, 1]
        dots = np.clip((cmy[..., ch] - screen) * 4.0 + 0.5, 0.0, 1.0) * (cmy[..., ch] > 0.02)
        shift = rng.uniform(-0.7, 0.7, 2)
        move = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], dtype=np.float32)
        dots = cv2.warpAffine(dots.astype(np.float32), move, (w, h))
        out += dots[..., None] * _TONER_ABSORB[ch][None, None, :]
    blurred = cv2.GaussianBlur(np.clip(out, 0.0, 1.0), (0, 0), 0.45)
    return InkLayer(np.asarray(blurred, dtype=np.float32)).crop_to_ink()
