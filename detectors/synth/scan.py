"""Scanner, copier and fax artefacts applied to a rendered page.

A page arrives at a customs office as a flatbed scan, a scan of a photocopy, a fax or a low
resolution capture, often of old, yellowed paper. :func:`simulate_scan` reproduces those in the
order they happen physically: the paper ages, the sheet lies skewed on the glass, the lamp lights
it unevenly, the optics blur, a copier or fax reduces it to grey or black and white, the sensor adds
noise, and the file is saved as JPEG.

The geometric part is an affine map from page pixels to scan pixels, returned with the image so
that label boxes can follow the ink (see :func:`warp_box`).

Images: ``page`` is ``(H, W, 3)`` float32 RGB reflectance in ``[0, 1]``; the scan is ``(H, W, 3)``
uint8 RGB of the same size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from detectors.synth.doc_raster import VISIBLE_DARKENING, FloatArray, mask_box, smooth_noise

ScanKind = Literal["clean", "office", "photocopy", "fax", "low_res", "old_paper"]
SCAN_KINDS: tuple[ScanKind, ...] = ("clean", "office", "photocopy", "fax", "low_res", "old_paper")
_KIND_WEIGHTS = (0.12, 0.38, 0.17, 0.08, 0.12, 0.13)


@dataclass(frozen=True)
class ScanProfile:
    """Parameters of one scan. :meth:`sample` draws a realistic set; :meth:`identity` does nothing.

    Attributes:
        kind: The scenario the parameters were drawn for.
        skew_deg: Rotation of the sheet on the glass (counter-clockwise).
        shift_px: Translation of the sheet ``(dx, dy)`` in pixels.
        lid: Reflectance of what surrounds the sheet (white lid, or black for an open copier).
        yellowing: Age tint strength, 0 (white paper) to 1 (old yellowed paper with foxing).
        lighting: Strength of uneven illumination (fraction of brightness lost at worst).
        blur_sigma: Optical blur in pixels.
        greyscale: Whether the output is greyscale (photocopy, fax, greyscale scanner setting).
        contrast: Copier contrast boost (1 = none); greys are pushed to black or white.
        toner_speckle: Density of stray toner dots (photocopies).
        downscale: Effective resolution factor (1 = full, 0.4 = captured at 40 % then upsampled).
        binarize: Fax: 1-bit output at about 200 x 100 dpi.
        noise_sigma: Sensor noise std in 8-bit levels.
        jpeg_quality: JPEG quality, or ``None`` for lossless output.
    """

    kind: ScanKind = "clean"
    skew_deg: float = 0.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    lid: float = 0.97
    yellowing: float = 0.0
    lighting: float = 0.0
    blur_sigma: float = 0.0
    greyscale: bool = False
    contrast: float = 1.0
    toner_speckle: float = 0.0
    downscale: float = 1.0
    binarize: bool = False
    noise_sigma: float = 0.0
    jpeg_quality: int | None = None

    @property
    def is_photocopy(self) -> bool:
        return self.kind == "photocopy"

    @classmethod
    def identity(cls) -> ScanProfile:
        """No artefacts at all: the scan equals the rendered page (tests, previews)."""
        return cls()

    @classmethod
    def sample(cls, rng: np.random.Generator, kind: ScanKind | None = None, dpi: float = 200.0) -> ScanProfile:
        """Draw a scan of ``kind`` (random kind when ``None``) for a page rendered at ``dpi``."""
        if kind is None:
            kind = SCAN_KINDS[int(rng.choice(len(SCAN_KINDS), p=_KIND_WEIGHTS))]
        skew = float(rng.normal(0.0, 0.8)) if rng.random() < 0.8 else float(rng.uniform(-4.0, 4.0))
        base = cls(
            kind=kind,
            skew_deg=skew,
            shift_px=(float(rng.normal(0, dpi * 0.03)), float(rng.normal(0, dpi * 0.03))),
            lid=float(rng.uniform(0.9, 1.0)),
            lighting=float(rng.uniform(0.0, 0.12)),
            blur_sigma=float(rng.uniform(0.3, 0.9)) * dpi / 200.0,
            noise_sigma=float(rng.uniform(1.0, 3.5)),
            jpeg_quality=int(rng.integers(70, 96)),
            yellowing=float(rng.uniform(0.0, 0.15)),
        )
        if kind == "clean":
            return replace(
                base,
                skew_deg=skew * 0.3,
                lighting=base.lighting * 0.3,
                noise_sigma=1.0,
                jpeg_quality=int(rng.integers(88, 98)),
            )
        if kind == "office":
            return base
        if kind == "photocopy":
            return replace(
                base,
                greyscale=True,
                lid=float(rng.uniform(0.05, 0.3)) if rng.random() < 0.5 else base.lid,
                contrast=float(rng.uniform(1.3, 2.2)),
                toner_speckle=float(rng.uniform(0.0002, 0.002)),
                lighting=float(rng.uniform(0.05, 0.25)),
                blur_sigma=base.blur_sigma * 1.3,
                jpeg_quality=int(rng.integers(50, 90)),
            )
        if kind == "fax":
            return replace(
                base,
                greyscale=True,
                binarize=True,
                skew_deg=skew * 1.5,
                noise_sigma=0.5,
                jpeg_quality=int(rng.integers(75, 95)),
            )
        if kind == "low_res":
            return replace(
                base,
                downscale=float(rng.uniform(0.35, 0.6)),
                jpeg_quality=int(rng.integers(40, 80)),
                blur_sigma=base.blur_sigma * 1.2,
            )
        return replace(base, yellowing=float(rng.uniform(0.45, 1.0)), lighting=float(rng.uniform(0.05, 0.2)))

    def matrix(self, shape: tuple[int, int]) -> npt.NDArray[np.float64]:
        """The ``(2, 3)`` affine map from page pixels to scan pixels for a page of ``shape`` (H, W)."""
        h, w = shape
        M = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), self.skew_deg, 1.0)
        M[:, 2] += np.asarray(self.shift_px, dtype=np.float64)
        return np.asarray(M, dtype=np.float64)


@dataclass(frozen=True)
class Scan:
    """Result of :func:`simulate_scan`.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        matrix: ``(2, 3)`` affine page-pixel -> scan-pixel map.
        binary_ink: For fax scans, ``(H, W)`` bool of black pixels; ``None`` otherwise.
        fax_threshold: For fax scans, the reflectance below which a pixel came out black.
    """

    image: npt.NDArray[np.uint8]
    matrix: npt.NDArray[np.float64]
    binary_ink: npt.NDArray[np.bool_] | None = None
    fax_threshold: float | None = None

    def visible_darkening(self, base: float = VISIBLE_DARKENING) -> float:
        """Darkening a mark needs to show in this scan: a fax only shows ink dark enough to cross
        its black/white threshold on its own (on typical paper of reflectance ~0.95)."""
        if self.fax_threshold is None:
            return base
        return max(base, 1.0 - self.fax_threshold / 0.95)


def age_paper(page: FloatArray, strength: float, rng: np.random.Generator) -> FloatArray:
    """Yellow the paper (multiplicatively, so ink on it yellows too) and add foxing stains."""
    if strength <= 0.01:
        return page
    h, w = page.shape[:2]
    sh, sw = max(4, h // 8), max(4, w // 8)
    field = np.clip(1.0 + 0.5 * smooth_noise((sh, sw), max(sh, sw) / 4.0, rng), 0.3, 1.7)
    tint = np.array([0.02, 0.07, 0.2], dtype=np.float32) * strength
    absorb = field[..., None] * tint
    if strength > 0.4:
        # Foxing: scattered brown spots where the paper oxidised; edges darkened by handling.
        spots = np.clip(smooth_noise((sh, sw), max(2.0, sw / 150.0), rng) - 2.0, 0.0, 1.0)
        absorb = absorb + spots[..., None] * np.array([0.1, 0.25, 0.45], dtype=np.float32) * strength
        absorb = (
            absorb + _edge_darkening(sh, sw, rng)[..., None] * np.array([0.05, 0.12, 0.25], dtype=np.float32) * strength
        )
    keep = cv2.resize(np.clip(1.0 - absorb, 0.0, 1.0).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(page * keep, dtype=np.float32)


def _edge_darkening(h: int, w: int, rng: np.random.Generator) -> FloatArray:
    yy = np.minimum(np.arange(h), np.arange(h)[::-1])[:, None] / max(h, 1)
    xx = np.minimum(np.arange(w), np.arange(w)[::-1])[None, :] / max(w, 1)
    d = np.minimum(yy, xx).astype(np.float32)
    return np.clip(1.0 - d / float(rng.uniform(0.02, 0.06)), 0.0, 1.0)


def simulate_scan(page: FloatArray, profile: ScanProfile, rng: np.random.Generator) -> Scan:
    """Scan ``page`` under ``profile``.

    Args:
        page: ``(H, W, 3)`` float32 reflectance in ``[0, 1]``.
        profile: What happens to it.
        rng: Random source for stains, lighting, noise and speckle.

    Returns:
        The scan (same size as the page) and the page-to-scan affine map.
    """
    h, w = page.shape[:2]
    # Past the paper itself everything runs on 8-bit images, as in a scanner; OpenCV is several
    # times faster there and the 8-bit quantisation is what real scans have anyway.
    img: npt.NDArray[Any] = cv2.convertScaleAbs(age_paper(page, profile.yellowing, rng), alpha=255.0)
    M = profile.matrix((h, w))
    if profile.skew_deg != 0.0 or profile.shift_px != (0.0, 0.0):
        lid = round(profile.lid * 255)
        img = cv2.warpAffine(
            img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(lid, lid, lid)
        )
    if profile.lighting > 0:
        light = cv2.convertScaleAbs(_lighting((h, w), profile.lighting, rng), alpha=255.0)
        img = cv2.multiply(img, cv2.merge([light, light, light]), scale=1.0 / 255.0)
    if profile.blur_sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), profile.blur_sigma)
    if profile.greyscale:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if profile.contrast != 1.0:
            # Copier curve: paper to white, mid-greys pushed apart around the midpoint.
            v = np.arange(256, dtype=np.float32) / 255.0
            curve = (v - 0.5) * profile.contrast + 0.5 + 0.08 * (profile.contrast - 1.0)
            img = cv2.LUT(img, np.clip(curve * 255.0 + 0.5, 0, 255).astype(np.uint8))
        if profile.toner_speckle > 0:
            n = int(profile.toner_speckle * h * w)
            ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
            img[ys, xs] = (img[ys, xs] * rng.uniform(0.2, 0.6, n)).astype(np.uint8)
    if profile.downscale < 1.0:
        small = cv2.resize(
            img, (max(8, int(w * profile.downscale)), max(8, int(h * profile.downscale))), interpolation=cv2.INTER_AREA
        )
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    binary: npt.NDArray[np.bool_] | None = None
    threshold: float | None = None
    if profile.binarize:
        grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        img, binary, threshold = _fax(np.asarray(grey, dtype=np.uint8), rng)
    if profile.noise_sigma > 0:
        # Sensor noise is mostly luminance noise: one field shared by the channels is close enough.
        # OpenCV's generator is several times faster than numpy's for millions of samples; seeding
        # it from ``rng`` right before use keeps the page deterministic.
        cv2.setRNGSeed(int(rng.integers(2**31)))
        noise: npt.NDArray[Any] = np.empty((h, w), dtype=np.int16)
        cv2.randn(noise, np.array([0.0]), np.array([float(profile.noise_sigma)]))
        if img.ndim == 3:
            noise = cv2.merge([noise, noise, noise])
        img = cv2.add(img, noise, dtype=cv2.CV_8U)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if profile.jpeg_quality is not None:
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(profile.jpeg_quality)]
        )
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            img = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return Scan(image=np.ascontiguousarray(img, dtype=np.uint8), matrix=M, binary_ink=binary, fax_threshold=threshold)


def _lighting(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> FloatArray:
    """Brightness field of an uneven lamp: a broad blotch plus a side-to-side fall-off."""
    h, w = shape
    sh, sw = max(4, h // 16), max(4, w // 16)
    blotch = np.clip(0.5 + 0.5 * smooth_noise((sh, sw), max(sh, sw) / 1.5, rng), 0.0, 1.0)
    ramp = (np.linspace(-1.0, 1.0, sw, dtype=np.float32)[None, :] * float(rng.uniform(-1, 1)) + 1.0) / 2.0
    small = 1.0 - strength * blotch - 0.5 * strength * ramp
    return np.asarray(cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


def _fax(
    grey: npt.NDArray[np.uint8], rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_], float]:
    """Group-3 fax look: sample at about 1 x 0.5 of the page resolution, threshold, upsample by
    nearest neighbour; a few scan-line dropouts. Returns grey ``(H, W)`` uint8, the black mask
    and the threshold (reflectance)."""
    h, w = grey.shape
    fh, fw = max(8, int(h * 0.5)), max(8, int(w * 0.98))
    small = cv2.resize(grey, (fw, fh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    threshold = float(rng.uniform(0.55, 0.7))
    black = small + rng.normal(0.0, 0.04, small.shape).astype(np.float32) < threshold
    for row in rng.integers(0, fh, size=int(rng.integers(0, 4))):
        black[row, :] = rng.random(fw) < 0.02  # a dropped line
    big = cv2.resize(black.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return np.where(big, np.uint8(15), np.uint8(247)).astype(np.uint8), big, threshold


def warp_box(
    visible: npt.NDArray[np.float32],
    origin: tuple[int, int],
    matrix: npt.NDArray[np.float64],
    out_shape: tuple[int, int],
    threshold: float,
    binary_ink: npt.NDArray[np.bool_] | None = None,
) -> tuple[int, int, int, int] | None:
    """Tight box, in scan pixels, around a mark's visible ink after the scan's geometry.

    Args:
        visible: ``(h, w)`` float32 darkening the mark causes, in page pixels, cropped.
        origin: ``(x, y)`` of the crop's top-left corner on the page.
        matrix: Page -> scan affine ``(2, 3)``.
        out_shape: Scan ``(H, W)``; the box is clipped to it.
        threshold: Darkening above which ink counts as visible.
        binary_ink: For fax scans, only pixels that came out black count.

    Returns:
        ``x1, y1, x2, y2`` (exclusive ends), or ``None`` when no ink is visible in the scan.
    """
    h, w = visible.shape
    ox, oy = origin
    corners = np.array([[ox, oy], [ox + w, oy], [ox, oy + h], [ox + w, oy + h]], dtype=np.float64)
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    H, W = out_shape
    bx0 = max(0, math.floor(mapped[:, 0].min()) - 1)
    by0 = max(0, math.floor(mapped[:, 1].min()) - 1)
    bx1 = min(W, math.ceil(mapped[:, 0].max()) + 1)
    by1 = min(H, math.ceil(mapped[:, 1].max()) + 1)
    if bx0 >= bx1 or by0 >= by1:
        return None
    local = matrix.copy()
    # local(p) = M (p + origin) - (bx0, by0), for p in crop pixels.
    local[:, 2] = matrix[:, :2] @ np.array([ox, oy], dtype=np.float64) + matrix[:, 2] - np.array([bx0, by0])
    warped = cv2.warpAffine(visible, local, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = warped >= threshold
    if binary_ink is not None:
        mask &= binary_ink[by0:by1, bx0:bx1]
    box = mask_box(mask)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return x1 + bx0, y1 + by0, x2 + bx0, y2 + by0
