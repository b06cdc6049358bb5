"""Centre emblems of round stamps, drawn procedurally from a seed.

Each emblem kind is a family of drawings; the seed fixes the details (number of points or petals,
rotation, fill, line weight, inner ornament). A genuine stamp and a "redrawn emblem" forgery share
the kind but not the seed, which is what a forger copying by eye produces: the same motif with
different details.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from PIL import ImageDraw, ImageFont

EmblemKind = Literal["star", "flower", "shield", "globe", "wreath", "taegeuk", "monogram", "centre_text"]
EMBLEMS: tuple[EmblemKind, ...] = ("star", "flower", "shield", "globe", "wreath", "taegeuk", "monogram")

Point = tuple[float, float]


def _star(cx: float, cy: float, r_out: float, r_in: float, n: int, rot: float) -> list[Point]:
    pts = []
    for i in range(2 * n):
        r = r_out if i % 2 == 0 else r_in
        a = rot - math.pi / 2 + i * math.pi / n
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _ellipse_poly(cx: float, cy: float, a: float, b: float, rot: float, n: int = 40) -> list[Point]:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + float(xi * c - yi * s), cy + float(xi * s + yi * c)) for xi, yi in zip(x, y, strict=True)]


def draw_emblem(
    draw: ImageDraw.ImageDraw,
    kind: EmblemKind,
    seed: int,
    cx: float,
    cy: float,
    r: float,
    S: float,
    text: str,
    font: Callable[[float], ImageFont.FreeTypeFont],
) -> None:
    """Draw emblem ``kind`` centred at ``(cx, cy)`` within radius ``r`` (pixels).

    Args:
        draw: PIL drawing context on an ``"L"`` image; ink is drawn with value 255.
        kind: Emblem family.
        seed: Fixes the family's free details.
        cx, cy, r: Centre and radius of the available disc, in pixels.
        S: Pixels per millimetre (line weights are physical).
        text: Initials for ``"monogram"``, lines for ``"centre_text"``.
        font: ``size_px -> font`` in the stamp's face.
    """
    rng = np.random.default_rng(seed)
    lw = max(1, round(S * float(rng.uniform(0.25, 0.5))))
    rot = float(rng.uniform(-0.15, 0.15))
    if kind == "star":
        n = int(rng.choice([5, 5, 6, 8]))
        ratio = float(rng.uniform(0.36, 0.5))
        pts = _star(cx, cy, r, r * ratio, n, rot)
        if rng.random() < 0.6:
            draw.polygon(pts, fill=255)
        else:
            draw.polygon(pts, outline=255, width=lw)
            draw.polygon(_star(cx, cy, r * 0.55, r * 0.55 * ratio, n, rot), fill=255)
    elif kind == "flower":
        n = int(rng.integers(5, 8))
        petal_len = float(rng.uniform(0.5, 0.62))
        for i in range(n):
            a = rot + i * 2 * math.pi / n - math.pi / 2
            pcx, pcy = cx + r * petal_len * math.cos(a), cy + r * petal_len * math.sin(a)
            draw.polygon(_ellipse_poly(pcx, pcy, r * 0.42, r * 0.24, a), outline=255, width=lw)
        draw.ellipse((cx - r * 0.2, cy - r * 0.2, cx + r * 0.2, cy + r * 0.2), fill=255)
    elif kind == "shield":
        w, h = r * float(rng.uniform(0.7, 0.85)), r * 0.95
        top = cy - h * 0.85
        # Right half as a quadratic Bezier from the shoulder down to the point, then mirrored.
        right = [(cx, top), (cx + w, top)]
        p0, p1, p2 = (cx + w, cy + 0.1 * h), (cx + w, cy + 0.7 * h), (cx, cy + 0.95 * h)
        for t in np.linspace(0.0, 1.0, 14):
            right.append(
                (
                    (1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * p1[0] + t**2 * p2[0],
                    (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * p1[1] + t**2 * p2[1],
                )
            )
        pts = right + [(2 * cx - x, y) for x, y in reversed(right[1:-1])]
        draw.polygon(pts, outline=255, width=lw * 2)
        motif = int(rng.integers(3))
        if motif == 0:
            draw.line((cx, top, cx, cy + h * 0.95), fill=255, width=lw * 2)
            draw.line((cx - w, cy - h * 0.2, cx + w, cy - h * 0.2), fill=255, width=lw * 2)
        elif motif == 1:
            draw.line((cx - w, cy + h * 0.3, cx, cy - h * 0.35, cx + w, cy + h * 0.3), fill=255, width=lw * 3)
        else:
            draw.polygon(_star(cx, cy - h * 0.1, w * 0.6, w * 0.25, 5, 0.0), fill=255)
    elif kind == "globe":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=lw)
        for k in range(1, int(rng.integers(2, 4))):
            a = r * k / 3.0
            draw.ellipse((cx - a, cy - r, cx + a, cy + r), outline=255, width=lw)
        for lat in (-0.5, 0.0, 0.5):
            half = r * math.sqrt(1 - lat * lat)
            draw.line((cx - half, cy + lat * r, cx + half, cy + lat * r), fill=255, width=lw)
    elif kind == "wreath":
        n = int(rng.integers(6, 10))
        for side in (-1.0, 1.0):
            for i in range(n):
                a = math.pi / 2 + side * (0.35 + i * 2.3 / n)
                lx, ly = cx + r * 0.82 * math.cos(a), cy + r * 0.82 * math.sin(a)
                draw.polygon(_ellipse_poly(lx, ly, r * 0.17, r * 0.07, a + side * 0.9, 16), fill=255)
        draw.polygon(_star(cx, cy, r * 0.5, r * 0.2, 5, rot), fill=255)
    elif kind == "taegeuk":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=lw)
        # Upper half plus the S-curve: two half-discs of radius r/2 along the tilted diameter.
        t = np.linspace(0, math.pi, 48)
        c, s = math.cos(rot), math.sin(rot)

        def tf(x: float, y: float) -> Point:
            return cx + x * c - y * s, cy + x * s + y * c

        pts = [tf(-r * math.cos(a), -r * math.sin(a)) for a in t]
        pts += [tf(r / 2 + r / 2 * math.cos(a), r / 2 * math.sin(a)) for a in t]
        pts += [tf(-r / 2 + r / 2 * math.cos(a), -r / 2 * math.sin(a)) for a in t[::-1]]
        draw.polygon(pts, fill=255)
    elif kind in ("monogram", "centre_text"):
        lines = [ln for ln in text.split("\n") if ln] or ["*"]
        line_h = 1.6 * r / len(lines)
        y = cy - line_h * (len(lines) - 1) / 2
        for line in lines:
            f = font(line_h * 0.85)
            width = f.getlength(line)
            if width > 1.7 * r:
                f = font(line_h * 0.85 * 1.7 * r / width)
            draw.text((cx, y), line, font=f, fill=255, anchor="mm")
            y += line_h
