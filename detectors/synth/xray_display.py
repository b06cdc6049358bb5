"""Turning measured attenuation into what the screener sees.

Dual-energy operator displays follow one convention: the hue encodes the material class read from
the ratio of low- to high-energy attenuation (effective atomic number) — orange for organics, green
for inorganics and organic/metal mixtures, blue for metals — and the brightness encodes how much
the ray was attenuated: thin things are pale, dense things dark, opaque things black, and the empty
belt is white. Single-energy scanners show the attenuation only, in grey.

The colour ramps below were read off real pseudo-colour baggage scans (mean RGB of pixels of each
hue family, binned by brightness), so the synthetic palette matches what detectors meet in service;
the organic ramp's mid-tones were then made more saturated, because those bin means mix the vivid
orange fill of organics with their dark edge pixels.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ImageU8 = npt.NDArray[np.uint8]

# Low/high attenuation ratios separating the material classes (see the table in xray_materials):
# organics ~1.36-1.45, glass/aluminium ~2.0, metals above. Mixtures of organic and metal on one
# ray fall in between and come out green, as on real displays.
_RATIO_KNOTS = (1.52, 1.80, 2.12, 2.32)
_CLASS_KNOTS = (0.0, 0.5, 0.5, 1.0)

# Ramps from white (nothing on the ray) to black (opaque), evenly spaced in "darkness".
_ORGANIC = (
    (255, 255, 255), (253, 230, 192), (244, 213, 172), (238, 195, 142), (235, 170, 98),
    (232, 144, 54), (220, 122, 32), (196, 100, 22), (160, 80, 16), (122, 60, 12),
    (86, 42, 8), (54, 26, 5), (24, 11, 2), (4, 2, 1),
)  # fmt: skip
_INORGANIC = (
    (255, 255, 255), (214, 240, 200), (186, 224, 172), (160, 206, 150), (128, 188, 134),
    (104, 167, 118), (88, 143, 98), (74, 118, 80), (58, 93, 62), (41, 68, 43),
    (24, 45, 26), (8, 20, 8), (2, 5, 2),
)  # fmt: skip
_METAL = (
    (255, 255, 255), (190, 230, 250), (160, 208, 236), (128, 182, 222), (100, 158, 208),
    (74, 130, 196), (52, 104, 184), (36, 80, 162), (26, 60, 134), (18, 42, 102),
    (10, 26, 68), (5, 13, 38), (2, 5, 16), (0, 0, 4),
)  # fmt: skip

_LUT_CLASSES = 33  # material-class bins (0 organic .. 1 metal)
_LUT_LEVELS = 256  # darkness bins


def material_coordinate(ratio: npt.ArrayLike) -> FloatArray:
    """Material class from the low/high attenuation ratio: 0 organic, 0.5 inorganic, 1 metal.

    Args:
        ratio: ``A_low / A_high`` (any shape).

    Returns:
        float32 array of the same shape in ``[0, 1]``.
    """
    r = np.asarray(ratio, dtype=np.float32)
    return np.interp(r, _RATIO_KNOTS, _CLASS_KNOTS).astype(np.float32)


# Per-pixel curves are applied through tables over quantised inputs: np.interp on a full image costs
# ~10 ms, a table lookup ~1 ms, and 4096 bins over log attenuation are far finer than 256 grey levels.
_RATIO_MAX, _RATIO_BINS = 8.0, 2048
_LOG_LO, _LOG_HI, _LOG_BINS = float(np.log(1e-3)), float(np.log(64.0)), 4096


@lru_cache(maxsize=1)
def _class_bin_table() -> npt.NDArray[np.intp]:
    centres = (np.arange(_RATIO_BINS) + 0.5) * (_RATIO_MAX / _RATIO_BINS)
    z = np.interp(centres, _RATIO_KNOTS, _CLASS_KNOTS)
    return np.rint(z * (_LUT_CLASSES - 1)).astype(np.intp)


def _ratio_bins(ratio: FloatArray) -> npt.NDArray[np.intp]:
    idx = np.clip(ratio * np.float32(_RATIO_BINS / _RATIO_MAX), 0, _RATIO_BINS - 1)
    return idx.astype(np.intp)


def _ramp(anchors: tuple[tuple[int, int, int], ...]) -> FloatArray:
    knots = np.linspace(0.0, 1.0, len(anchors))
    levels = np.linspace(0.0, 1.0, _LUT_LEVELS)
    a = np.asarray(anchors, dtype=np.float32)
    return np.stack([np.interp(levels, knots, a[:, c]) for c in range(3)], axis=1).astype(np.float32)


@lru_cache(maxsize=1)
def colour_lut() -> ImageU8:
    """``(33, 256, 3)`` uint8 RGB palette indexed by material class bin and darkness level."""
    org, ino, met = _ramp(_ORGANIC), _ramp(_INORGANIC), _ramp(_METAL)
    lut = np.empty((_LUT_CLASSES, _LUT_LEVELS, 3), dtype=np.float32)
    for i, z in enumerate(np.linspace(0.0, 1.0, _LUT_CLASSES)):
        # Real palettes switch class over a narrow band; smoothstep keeps mixtures from going muddy.
        if z <= 0.5:
            w = float(z / 0.5)
            w = w * w * (3 - 2 * w)
            lut[i] = (1 - w) * org + w * ino
        else:
            w = float((z - 0.5) / 0.5)
            w = w * w * (3 - 2 * w)
            lut[i] = (1 - w) * ino + w * met
    return np.clip(np.round(lut), 0, 255).astype(np.uint8)


# Display transfer curve: darkness against attenuation. Operator displays compress attenuation
# roughly logarithmically (thin clothing must stay visible next to steel) and saturate to black
# only for near-opaque rays. The knots put a folded jumper (A~0.4) at the peach-orange real scans
# show most, a 2-3 mm steel blade (A~2.5) at mid blue, and 1 mm of gold (A~9) near black; that is
# where real scans' organic and metal pixels concentrate.
_CURVE_ATT = (0.05, 0.12, 0.4, 1.0, 2.5, 5.0, 9.0, 16.0)
_CURVE_DARK = (0.0, 0.07, 0.23, 0.34, 0.47, 0.64, 0.86, 1.0)
_LOG_CURVE_ATT = tuple(float(np.log(a)) for a in _CURVE_ATT)


@lru_cache(maxsize=1)
def _darkness_table() -> FloatArray:
    centres = _LOG_LO + (np.arange(_LOG_BINS) + 0.5) * ((_LOG_HI - _LOG_LO) / _LOG_BINS)
    return np.interp(centres, _LOG_CURVE_ATT, _CURVE_DARK).astype(np.float32)


def _log_bins(att: FloatArray, scale: float) -> npt.NDArray[np.intp]:
    a = np.maximum(np.asarray(att, dtype=np.float32) * np.float32(1.0 / scale), np.float32(1e-6))
    lg = np.asarray(cv2.log(a), dtype=np.float32)
    idx = np.clip((lg - np.float32(_LOG_LO)) * np.float32(_LOG_BINS / (_LOG_HI - _LOG_LO)), 0, _LOG_BINS - 1)
    return idx.astype(np.intp)


def darkness(att: FloatArray, scale: float = 1.0) -> FloatArray:
    """Display darkness in ``[0, 1]`` (0 white, 1 black) of an attenuation map.

    Args:
        att: attenuation ``-ln(I/I0)``, any shape.
        scale: contrast setting: the curve is applied to ``att / scale``, so > 1 renders paler.
            Attenuation below the first knot (0.05: the empty belt and its noise) stays white.

    Returns:
        float32 array of the same shape.
    """
    return _darkness_table()[_log_bins(att, scale)]


@lru_cache(maxsize=1)
def _level_table() -> npt.NDArray[np.intp]:
    return np.rint(_darkness_table() * (_LUT_LEVELS - 1)).astype(np.intp)


def enhance_edges(att: FloatArray, amount: float, sigma_px: float = 1.6) -> FloatArray:
    """Unsharp mask on attenuation; scanners do this, and it draws the thin dark outlines."""
    if amount <= 0:
        return att
    blur = cv2.GaussianBlur(att, (0, 0), sigma_px)
    return np.maximum(att + np.float32(amount) * (att - blur), 0.0).astype(np.float32)


def fuse_dual_energy(
    att: FloatArray,
    *,
    scale: float = 1.0,
    edge_amount: float = 0.6,
) -> ImageU8:
    """Pseudo-colour operator image of a dual-energy measurement.

    Args:
        att: ``(H, W, 2)`` float32 measured attenuation ``-ln(I/I0)``, low then high energy.
        scale: display contrast (see :func:`darkness`); larger = paler image.
        edge_amount: unsharp-mask strength applied to the brightness channel.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if att.ndim != 3 or att.shape[2] != 2:
        raise ValueError(f"expected (H, W, 2) attenuation, got shape {att.shape}")
    low = np.ascontiguousarray(att[..., 0])
    high = np.ascontiguousarray(att[..., 1])
    # The class is read from lightly smoothed maps: the ratio of two noisy numbers is noisier than
    # either, and real systems classify on a neighbourhood too.
    low_s = cv2.GaussianBlur(low, (0, 0), 1.0)
    high_s = cv2.GaussianBlur(high, (0, 0), 1.0)
    ratio = np.asarray(low_s / np.maximum(high_s, np.float32(1e-3)), dtype=np.float32)
    zi = _class_bin_table()[_ratio_bins(ratio)]
    # Where almost nothing is on the ray the ratio is meaningless; the faint tint there is organic.
    zi[low_s < 0.05] = 0
    di = _level_table()[_log_bins(enhance_edges(low, edge_amount), scale)]
    return colour_lut().reshape(-1, 3)[zi * _LUT_LEVELS + di]


def render_greyscale(
    att: FloatArray,
    *,
    scale: float = 1.0,
    edge_amount: float = 0.6,
) -> ImageU8:
    """Greyscale image of a single-energy scanner (white = nothing, dark = dense).

    The single broad-spectrum beam is modelled as the mean of the two energies' attenuation.

    Args:
        att: ``(H, W, 2)`` float32 attenuation, low then high energy.
        scale: display contrast (see :func:`darkness`).
        edge_amount: unsharp-mask strength.

    Returns:
        ``(H, W, 3)`` uint8 RGB with equal channels.
    """
    if att.ndim != 3 or att.shape[2] != 2:
        raise ValueError(f"expected (H, W, 2) attenuation, got shape {att.shape}")
    single = np.ascontiguousarray(0.5 * (att[..., 0] + att[..., 1]))
    grey_table = (255 - _level_table()).astype(np.uint8)
    grey = grey_table[_log_bins(enhance_edges(single, edge_amount), scale)]
    return np.repeat(grey[..., None], 3, axis=2)
