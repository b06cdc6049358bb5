"""Drawing of an ideal stamp face (the rubber or the carved seal), before any inking physics.

:func:`draw_face` turns a :class:`~detectors.synth.stamps.StampDesign` into an ``(H, W)`` float32
coverage mask in ``[0, 1]`` at a given resolution. It is drawn supersampled and box-filtered down,
so thin rings and small ring text keep anti-aliased edges at 150 dpi.

Geometry is in millimetres on the design and converted here; inside this module ``S`` is pixels per
millimetre at the supersampled resolution, angles are in radians measured from +x towards +y
(clockwise on screen, since y points down).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from detectors.synth.doc_raster import FloatArray, downsample
from detectors.synth.fonts import FontCatalog, FontFace, Script, default_catalog

if TYPE_CHECKING:
    from detectors.synth.stamps import StampDesign

_SUPERSAMPLE = 3


def draw_face(design: StampDesign, px_per_mm: float, date: str = "") -> FloatArray:
    """Rasterise the stamp face.

    Args:
        design: What to draw.
        px_per_mm: Output resolution (``dpi / 25.4``).
        date: Date text for date-bearing designs (ignored by others).

    Returns:
        ``(H, W)`` float32 coverage in ``[0, 1]``; ``W`` and ``H`` are the design's size in pixels
        plus a 2-pixel margin on each side.
    """
    if date:
        # Dated faces change with every impression: caching them would only fill memory.
        return _draw(design, px_per_mm, date)
    return _draw_cached(design, round(px_per_mm, 3)).copy()


@functools.lru_cache(maxsize=64)
def _draw_cached(design: StampDesign, px_per_mm: float) -> FloatArray:
    return _draw(design, px_per_mm, "")


def _draw(design: StampDesign, px_per_mm: float, date: str) -> FloatArray:
    S = px_per_mm * _SUPERSAMPLE
    pad = 2 * _SUPERSAMPLE
    W = round(design.width_mm * S) + 2 * pad
    H = round(design.height_mm * S) + 2 * pad
    img = Image.new("L", (W, H), 0)
    canvas = _Canvas(img, S, pad, _face_for(design))
    if design.shape in ("round", "oval", "date"):
        _draw_ringed(canvas, design, date)
    elif design.shape == "square_seal":
        _draw_square_seal(canvas, design)
    else:
        _draw_rect(canvas, design, date)
    mask = np.maximum(np.asarray(img, dtype=np.float32) / 255.0, canvas.glyphs)
    return downsample(mask, _SUPERSAMPLE)


def _face_for(design: StampDesign) -> FontFace:
    catalog = default_catalog()
    face = catalog.by_key(design.font_key)
    if face is not None:
        return face
    # The design was made on a machine with other fonts: fall back deterministically.
    script = text_script(design.ring_text + design.centre_text + design.bottom_text)
    return catalog.faces(script)[0]


def text_script(text: str) -> Script:
    """The most demanding script used in ``text`` (Hanja > Hangul > Latin)."""
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return "hanja"
    if any("\uac00" <= ch <= "\ud7a3" for ch in text):
        return "hangul"
    return "latin"


class _Canvas:
    """A supersampled drawing surface: PIL for shapes, a numpy layer for rotated glyphs."""

    def __init__(self, img: Image.Image, S: float, pad: int, face: FontFace) -> None:
        self.img = img
        self.draw = ImageDraw.Draw(img)
        self.S = S
        self.pad = pad
        self.face = face
        self.glyphs = np.zeros((img.height, img.width), dtype=np.float32)
        self.cx = img.width / 2.0
        self.cy = img.height / 2.0

    def font(self, size_px: float) -> ImageFont.FreeTypeFont:
        return FontCatalog.font(self.face, max(4, round(size_px)))

    def paste(self, glyph: FloatArray, x: float, y: float) -> None:
        """Max-composite ``glyph`` centred at ``(x, y)``."""
        gh, gw = glyph.shape
        x0, y0 = round(x - gw / 2.0), round(y - gh / 2.0)
        H, W = self.glyphs.shape
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + gw), min(H, y0 + gh)
        if xa >= xb or ya >= yb:
            return
        region = self.glyphs[ya:yb, xa:xb]
        np.maximum(region, glyph[ya - y0 : yb - y0, xa - x0 : xb - x0], out=region)

    def ellipse(self, rx: float, ry: float, width: float, fill: bool = False) -> None:
        box = (self.cx - rx, self.cy - ry, self.cx + rx, self.cy + ry)
        if fill:
            self.draw.ellipse(box, fill=255)
        elif width > 0:
            self.draw.ellipse(box, outline=255, width=max(1, round(width)))


def _glyph(font: ImageFont.FreeTypeFont, ch: str) -> FloatArray:
    size = int(font.size * 2)
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).text((size / 2, size / 2), ch, font=font, fill=255, anchor="mm")
    return np.asarray(im, dtype=np.float32) / 255.0


def _rotated_glyph(font: ImageFont.FreeTypeFont, ch: str, angle_deg: float) -> FloatArray:
    g = _glyph(font, ch)
    h, w = g.shape
    M = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    return np.asarray(cv2.warpAffine(g, M, (w, h), flags=cv2.INTER_LINEAR), dtype=np.float32)


def _tight_glyph(font: ImageFont.FreeTypeFont, ch: str) -> FloatArray:
    g = _glyph(font, ch)
    ys, xs = np.nonzero(g > 0.05)
    if ys.size == 0:
        return g[:1, :1]
    return g[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


class _EllipseArc:
    """Arc-length parametrisation of an ellipse, so letters are spaced evenly along it."""

    def __init__(self, rx: float, ry: float) -> None:
        self.rx, self.ry = rx, ry
        self.theta = np.linspace(-2 * math.pi, 2 * math.pi, 8193)
        speed = np.hypot(rx * np.sin(self.theta), ry * np.cos(self.theta))
        self.s = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2 * np.diff(self.theta))])
        self.s -= float(np.interp(0.0, self.theta, self.s))

    def length(self) -> float:
        return float(self.s[-1] - self.s[0]) / 2.0

    def arc(self, theta: float) -> float:
        return float(np.interp(theta, self.theta, self.s))

    def angle(self, s: float) -> float:
        return float(np.interp(s, self.s, self.theta))


def _text_along(
    c: _Canvas,
    text: str,
    size_px: float,
    rx: float,
    ry: float,
    centre_theta: float,
    outward: bool,
    spacing: float,
    max_span: float,
) -> None:
    """Write ``text`` along the ellipse ``(rx, ry)``, centred on ``centre_theta``.

    ``outward=True``: letters stand on the ring with their tops away from the centre, reading
    clockwise (upper arcs, full rings). ``outward=False``: tops towards the centre, reading
    counter-clockwise (lower arcs), so both arcs read left to right like a real seal.
    ``max_span`` is the largest arc (radians at the circle) the text may take; the font shrinks or
    the letters spread to fit.
    """
    if not text:
        return
    arc = _EllipseArc(rx, ry)
    font = c.font(size_px)
    advances = [font.getlength(ch) * spacing for ch in text]
    total = float(sum(advances))
    allowed = arc.length() * max_span / (2 * math.pi)
    if total > allowed:
        font = c.font(size_px * allowed / total)
        advances = [a * allowed / total for a in advances]
        total = allowed
    s_mid = arc.arc(centre_theta)
    direction = 1.0 if outward else -1.0
    s = s_mid - direction * total / 2.0
    for ch, adv in zip(text, advances, strict=True):
        s_ch = s + direction * adv / 2.0
        s += direction * adv
        if ch.isspace():
            continue
        th = arc.angle(s_ch)
        x, y = c.cx + rx * math.cos(th), c.cy + ry * math.sin(th)
        # Tangent direction on the ellipse gives the letter's baseline orientation.
        tangent = math.atan2(ry * math.cos(th), -rx * math.sin(th))
        rot = -math.degrees(tangent) if outward else -math.degrees(tangent) + 180.0
        c.paste(_rotated_glyph(font, ch, rot), x, y)


def _fit_lines(c: _Canvas, lines: list[str], box_w: float, box_h: float, cy: float, bold_first: bool) -> None:
    """Centre ``lines`` in a ``box_w`` x ``box_h`` area around ``(c.cx, cy)``, as large as fits."""
    lines = [ln for ln in lines if ln]
    if not lines:
        return
    n = len(lines)
    line_h = box_h / n
    y = cy - box_h / 2 + line_h / 2
    for i, line in enumerate(lines):
        size = line_h * (0.8 if (i == 0 and bold_first) else 0.68)
        font = c.font(size)
        width = font.getlength(line)
        if width > box_w:
            font = c.font(size * box_w / width)
        c.draw.text((c.cx, y), line, font=font, fill=255, anchor="mm")
        y += line_h


def _draw_ringed(c: _Canvas, d: StampDesign, date: str) -> None:
    S = c.S
    a = d.width_mm * S / 2
    b = d.height_mm * S / 2
    border = d.border_mm * S
    c.ellipse(a, b, border)
    text_px = d.text_mm * S
    band = text_px * d.ring_band
    r_text_x, r_text_y = a - border - band / 2, b - border - band / 2
    spacing = d.letter_spacing
    if d.full_ring:
        # Korean seals space the name evenly round the whole ring, the ornament closing the gap
        # at the bottom; letter_spacing sets how much of the ring the letters themselves fill.
        chars = [ch for ch in d.ring_text if not ch.isspace()]
        mark = "★" if d.separator == "star" else "●" if d.separator == "dot" else ""
        slots = len(chars) + 1
        step = 2 * math.pi / slots
        font = c.font(min(text_px * 1.15, 2 * math.pi * min(r_text_x, r_text_y) / slots * 0.95 / max(spacing, 0.5)))
        for i, ch in enumerate([mark, *chars]):
            if not ch:
                continue
            th = math.pi / 2 + step * i  # the ornament at the bottom, then clockwise over the top
            x, y = c.cx + r_text_x * math.cos(th), c.cy + r_text_y * math.sin(th)
            tangent = math.atan2(r_text_y * math.cos(th), -r_text_x * math.sin(th))
            g_font = c.font(font.size * (0.6 if ch in "★●" else 1.0))
            c.paste(_rotated_glyph(g_font, ch, -math.degrees(tangent)), x, y)
    else:
        _text_along(c, d.ring_text, text_px, r_text_x, r_text_y, -math.pi / 2, True, spacing, math.pi * 1.15)
        bottom_size = text_px * (0.8 if d.shape == "date" else 0.9)
        _text_along(c, d.bottom_text, bottom_size, r_text_x, r_text_y, math.pi / 2, False, spacing, math.pi * 0.7)
        if d.separator != "none":
            mark = "★" if d.separator == "star" else "●"
            star_font = c.font(text_px * (0.75 if mark == "★" else 0.45))
            for side in (-1.0, 1.0):
                c.paste(_rotated_glyph(star_font, mark, 0.0), c.cx + side * r_text_x, c.cy)
    inner_x, inner_y = a - border - band, b - border - band
    if d.inner_mm > 0:
        c.ellipse(inner_x, inner_y, d.inner_mm * S)
    centre_x = inner_x - d.inner_mm * S - 0.06 * a
    centre_y = inner_y - d.inner_mm * S - 0.06 * b
    if d.shape == "date":
        # Date stamps: two chords bound a band carrying the (changeable) date.
        half = text_px * 0.95
        chord = math.sqrt(max(1.0, inner_x**2 * (1 - (half / max(inner_y, 1.0)) ** 2)))
        lw = max(1, round(d.inner_mm * S if d.inner_mm > 0 else border * 0.6))
        for sy in (-half, half):
            c.draw.line((c.cx - chord, c.cy + sy, c.cx + chord, c.cy + sy), fill=255, width=lw)
        _fit_lines(c, [date], chord * 1.7 * d.emblem_scale, half * 1.6 * d.emblem_scale, c.cy, False)
        if d.centre_text:
            _fit_lines(c, [d.centre_text], chord * 1.2, (centre_y - half) * 0.7, c.cy - (centre_y + half) / 2, False)
        return
    if d.emblem == "centre_text" or d.shape == "oval":
        lines = d.centre_text.split("\n")
        _fit_lines(c, lines, centre_x * 1.45 * d.emblem_scale, centre_y * 1.25 * d.emblem_scale, c.cy, True)
        return
    from detectors.synth.doc_emblems import draw_emblem

    r = min(centre_x, centre_y) * d.emblem_scale
    draw_emblem(c.draw, d.emblem, d.emblem_seed, c.cx, c.cy, r, S, d.centre_text, c.font)


def _draw_square_seal(c: _Canvas, d: StampDesign) -> None:
    S = c.S
    W, H = d.width_mm * S, d.height_mm * S
    border = d.border_mm * S
    x0, y0 = c.cx - W / 2, c.cy - H / 2
    radius = round(min(W, H) * 0.04)
    c.draw.rounded_rectangle((x0, y0, x0 + W, y0 + H), radius=radius, outline=255, width=max(1, round(border)))
    inset = border
    if d.inner_mm > 0:
        gap = d.ring_band * S * 0.4
        inset = border + gap + d.inner_mm * S
        c.draw.rectangle(
            (x0 + border + gap, y0 + border + gap, x0 + W - border - gap, y0 + H - border - gap),
            outline=255,
            width=max(1, round(d.inner_mm * S)),
        )
    chars = [ch for ch in d.ring_text if not ch.isspace()]
    n = len(chars)
    cols = 2 if n <= 4 else 3
    rows = math.ceil(n / cols)
    # Columns read right to left; the last (leftmost) column absorbs any shortfall, its characters
    # stretched taller, as seal carvers do.
    per_col = [rows] * cols
    per_col[-1] = n - rows * (cols - 1)
    margin = inset + 0.045 * min(W, H)
    cell_w = (W - 2 * margin) / cols
    font = c.font(cell_w * 1.2)
    k = 0
    for col in range(cols):
        count = per_col[col]
        if count <= 0:
            continue
        cell_h = (H - 2 * margin) / count
        x_centre = x0 + W - margin - (col + 0.5) * cell_w
        for row in range(count):
            g = _tight_glyph(font, chars[k])
            k += 1
            tw = max(1, round(cell_w * d.glyph_fill))
            th = max(1, round(cell_h * d.glyph_fill))
            g = np.asarray(cv2.resize(g, (tw, th), interpolation=cv2.INTER_AREA), dtype=np.float32)
            if d.stroke_mm > 0:
                # Carved seals have heavier strokes than any text face: thicken the glyph.
                ks = 2 * max(1, round(d.stroke_mm * S / 2)) + 1
                kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ks, ks))
                g = np.asarray(cv2.dilate(g, kernel), dtype=np.float32)
            c.paste(g, x_centre, y0 + margin + (row + 0.5) * cell_h)


def _draw_rect(c: _Canvas, d: StampDesign, date: str) -> None:
    S = c.S
    W, H = d.width_mm * S, d.height_mm * S
    border = d.border_mm * S
    x0, y0 = c.cx - W / 2, c.cy - H / 2
    c.draw.rectangle((x0, y0, x0 + W, y0 + H), outline=255, width=max(1, round(border)))
    inset = border
    if d.inner_mm > 0:
        gap = max(1.0, d.ring_band * S * 0.35)
        c.draw.rectangle(
            (x0 + border + gap, y0 + border + gap, x0 + W - border - gap, y0 + H - border - gap),
            outline=255,
            width=max(1, round(d.inner_mm * S)),
        )
        inset = border + gap + d.inner_mm * S
    lines = [d.ring_text, *d.centre_text.split("\n"), d.bottom_text]
    if d.has_date:
        lines.append(date)
    margin = inset + 0.08 * H
    # emblem_scale sizes the text block: the "emblem" of a text-only stamp is its lettering.
    _fit_lines(c, lines, W - 2 * margin, (H - 2 * margin) * (0.15 + 0.85 * d.emblem_scale), c.cy, True)
