"""Containers that go through the scanner: trays, suitcases, backpacks, handbags and parcels.

A container is drawn like any object (hollow shells project to dense outlines) and additionally
says where its contents may lie (``interior``, canvas pixels). Hard-shell suitcases carry the
telescopic trolley rails, the handle and the wheels that are so conspicuous on real scans; soft
bags have zips, straps and buckles; trays have the sloped walls and the lip that frame so many
airport images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.synth.xray_materials import MATERIALS as M
from detectors.synth.xray_shapes import Sprite, SpriteCanvas, blob, ellipse_pts, rounded_rect

Rng = np.random.Generator


@dataclass
class Container:
    """A drawn container and the region its contents may occupy.

    Attributes:
        sprite: the container itself.
        interior: ``(x0, y0, x1, y1)`` canvas pixels where contents' centres may be placed.
        kind: ``"tray"``, ``"suitcase"``, ``"backpack"``, ``"handbag"`` or ``"parcel"``.
        fill: typical clutter density, contents per 1000 cm² of interior.
    """

    sprite: Sprite
    interior: tuple[float, float, float, float]
    kind: str
    fill: float


def _interior(c: SpriteCanvas, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    a, b = c.px(x0, y0)
    e, f = c.px(x1, y1)
    return a, b, e, f


def _zip(c: SpriteCanvas, pts: list[tuple[float, float]], closed: bool = True) -> None:
    """A zip: a chain of small metal teeth along a path, drawn as a dense thin line with a slider."""
    metal = M["zinc"] if len(pts) % 2 else M["steel"]
    c.polyline(metal, pts, 0.5, 0.08, closed=closed)
    x, y = pts[len(pts) // 3]
    c.rect(metal, x - 0.8, y - 0.5, 1.6, 2.2, 0.3, r=0.3)


def tray(rng: Rng, s: float) -> Container:
    """An airport screening tray: thin base, sloped walls seen in perspective, a thick lip.

    The scanner's fan beam sees the tray obliquely, so the base projects shifted away from the rim:
    the near wall shows as a wide, faint band, the side walls as narrow dense ones.
    """
    w, h = rng.uniform(48, 66), rng.uniform(34, 46)
    depth = rng.uniform(8, 14)
    c = SpriteCanvas(w, h, s)
    outer = rounded_rect(0, 0, w, h, 2.5)
    ix = rng.uniform(2.5, 5.5)  # side walls' projected run
    top = rng.uniform(1.2, 3.0)  # far wall's projected run
    band = rng.uniform(0.12, 0.28) * h  # near wall's projected run
    base = rounded_rect(ix, top, w - 2 * ix, h - top - band, 2.0)
    plastic = M["plastic"]
    c.polygon(plastic, base, rng.uniform(0.2, 0.35))
    c.walls(plastic, base, 0.4, 0.4)  # the base's moulded edge
    wall_t = rng.uniform(0.12, 0.2)
    corners_o = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    corners_b = [(ix, top), (w - ix, top), (w - ix, h - band), (ix, h - band)]
    for i in range(4):  # each wall: a ray crosses it obliquely, the shorter the run the denser
        o0, o1 = corners_o[i], corners_o[(i + 1) % 4]
        b0, b1 = corners_b[i], corners_b[(i + 1) % 4]
        run = max(0.5, (top, ix, band, ix)[i])
        c.polygon(plastic, [o0, o1, b1, b0], wall_t * float(np.hypot(run, depth)) / run)
        c.polyline(plastic, [o0, b0], 0.4, 0.6)  # moulded corner edge
    for k in range(int(rng.integers(0, 3))):  # ribs across the near wall
        y = h - band * (k + 1) / 3
        c.polyline(plastic, [(ix * 0.6, y), (w - ix * 0.6, y)], 0.3, 0.8)
    c.walls(plastic, outer, 0.4, rng.uniform(0.5, 0.9))  # lip
    if rng.random() < 0.5:  # hand holes in the short walls
        for x in (0.8, w - 2.8):
            c.rect(plastic, x, h / 2 - 4, 2.0, 8.0, -0.6, r=0.8)
    return Container(
        c.sprite("tray"), _interior(c, ix + 2, top + 2, w - ix - 2, h - band), "tray", rng.uniform(2.0, 7.0)
    )


def suitcase(rng: Rng, s: float) -> Container:
    """A trolley suitcase, hard or soft shell, with telescopic rails, handle, wheels and a zip."""
    w, h = rng.uniform(48, 78), rng.uniform(34, 52)
    depth = rng.uniform(20, 32)
    hard = rng.random() < 0.6
    c = SpriteCanvas(w + 6, h + 4, s)
    ox, oy = 3.0, 2.0
    outline = rounded_rect(ox, oy, w, h, rng.uniform(3, 7))
    shell = M["plastic"] if hard else M["fabric"]
    skin = rng.uniform(0.25, 0.4) if hard else rng.uniform(0.8, 1.5)
    c.polygon(shell, outline, 2 * skin)
    # Shell sides: a vertical wall would project its full depth; real shells curve round the
    # edge, so rays graze only part of it.
    c.walls(shell, outline, 0.3 if hard else 0.8, 0.6 * depth * skin / (0.3 if hard else 0.8))
    if hard:  # moulded ribs of the shell
        for k in range(int(rng.integers(0, 6))):
            y = oy + h * (k + 1) / 7
            c.rect(shell, ox + 1, y, w - 2, 0.8, 0.4)
    _zip(c, rounded_rect(ox + 0.8, oy + 0.8, w - 1.6, h - 1.6, 5))
    # Trolley: two telescopic tubes along the back panel, each a nest of aluminium tubes.
    side = rng.random() < 0.5  # rails along the long side, top or bottom of the image
    rail_gap = rng.uniform(18, min(30, w * 0.5))
    rail_len = h * rng.uniform(0.75, 0.95) if not side else w * rng.uniform(0.7, 0.9)
    for k in (-1, 1):
        if side:
            y = oy + h / 2 + k * rail_gap / 2 * min(1.0, h / w * 1.4)
            p0, p1 = (ox + (w - rail_len) / 2, y), (ox + (w + rail_len) / 2, y)
        else:
            x = ox + w / 2 + k * rail_gap / 2
            p0, p1 = (x, oy + 1.0), (x, oy + rail_len)
        c.rod(M["aluminium"], p0, p1, 1.1, wall_cm=0.12)
        c.rod(M["aluminium"], p0, p1, 0.8, wall_cm=0.1)
        c.rod(M["steel"], p0, p1, 0.2)  # locking rod
    if side:
        c.rect(
            M["plastic"],
            ox + (w - rail_len) / 2 - 2.5,
            oy + h / 2 - rail_gap / 2 * min(1.0, h / w * 1.4) - 1.5,
            2.5,
            rail_gap * min(1.0, h / w * 1.4) + 3,
            3.0,
            r=1.0,
        )
    else:
        c.rect(M["plastic"], ox + w / 2 - rail_gap / 2 - 1.5, oy - 1.5, rail_gap + 3, 3.0, 3.0, r=1.2)  # handle
    # Wheels at the corners of the bottom side: housing, tyre, steel axle.
    wheel_y = oy + h - 2.5
    for wx in (ox + 3.0, ox + w - 3.0):
        for dx in (-1.2, 1.2) if rng.random() < 0.6 else (0.0,):
            cx = wx + dx
            c.rect(M["plastic"], cx - 2.2, wheel_y - 2.5, 4.4, 5.5, 3.0, r=1.0)
            c.walls(M["steel"], rounded_rect(cx - 1.6, wheel_y - 1.5, 3.2, 3.5, 0.3), 0.15, 2.5)  # caster fork
            c.ellipse(M["rubber"], (cx, wheel_y + 2.2), (1.3, 2.6), 3.5, profile="dome")
            c.rod(M["steel"], (cx - 1.5, wheel_y + 2.2), (cx + 1.5, wheel_y + 2.2), 0.35)
    # Side carry handle and a few rivets / screws.
    c.rect(M["plastic"], ox + w * 0.4, oy + h - 0.5, w * 0.2, 2.0, 2.5, r=0.8)
    for _ in range(int(rng.integers(6, 16))):
        c.ellipse(M["steel"], (ox + rng.uniform(1, w - 1), oy + rng.uniform(1, h - 1)), (0.3, 0.3), 0.4)
    if rng.random() < 0.5:  # TSA lock
        c.rect(M["zinc"], ox + w * 0.7, oy + 0.2, 4.0, 2.0, 0.35)
    return Container(
        c.sprite("suitcase"), _interior(c, ox + 3, oy + 3, ox + w - 3, oy + h - 3), "suitcase", rng.uniform(6.0, 12.0)
    )


def backpack(rng: Rng, s: float) -> Container:
    """A backpack: soft irregular body, shoulder straps spilling out to the sides, zips, buckles."""
    w, h = rng.uniform(28, 40), rng.uniform(38, 52)
    c = SpriteCanvas(w + 20, h + 8, s)
    cx, cy = (w + 20) / 2, (h + 8) / 2
    outline = blob(rng, (cx, cy), (w / 2, h / 2), roughness=rng.uniform(0.08, 0.25))
    c.texture(M["fabric"], rng, outline, rng.uniform(1.0, 2.5), 0.35, 4.0, folds=0.5)
    c.walls(M["fabric"], outline, 0.8, rng.uniform(2, 5))
    # Front pocket with its own zip, main zip along the top arc.
    pocket = blob(rng, (cx, cy + h * 0.2), (w * 0.35, h * 0.2), 0.12)
    c.walls(M["fabric"], pocket, 0.6, 3.0)
    _zip(c, ellipse_pts((cx, cy + h * 0.2), (w * 0.33, h * 0.18), 20, 190, 350), closed=False)
    if rng.random() < 0.7:
        _zip(c, ellipse_pts((cx, cy), (w * 0.46, h * 0.46), 30, 200, 340), closed=False)
    for k in (-1, 1):  # padded shoulder straps: from the top seam, out over the sides, to a buckle
        lean = rng.uniform(0.35, 0.6)
        strap = [
            (cx + k * w * 0.12, cy - h * 0.42),
            (cx + k * w * lean, cy - h * rng.uniform(0.1, 0.3)),
            (cx + k * w * (lean + rng.uniform(-0.1, 0.15)), cy + h * rng.uniform(0.15, 0.35)),
        ]
        c.polyline(M["fabric"], strap, 5.0, rng.uniform(1.2, 2.5))
        bx, by = strap[-1]
        c.walls(M["plastic"], rounded_rect(bx - 2.0, by - 1.2, 4.0, 2.5, 0.5), 0.3, 1.0)  # adjuster
        c.polyline(M["fabric"], [(bx, by + 1.2), (bx + k * rng.uniform(0, 3), by + rng.uniform(4, 9))], 2.5, 0.4)
    c.rect(M["fabric"], cx - 4.0, cy - h / 2 - 2.5, 8.0, 3.0, 1.2, r=1.0)  # grab handle
    if rng.random() < 0.5:  # laptop sleeve foam
        c.rect(M["plastic"], cx - w * 0.38, cy - h * 0.38, w * 0.76, h * 0.6, 0.3, r=2.0)
    return Container(
        c.sprite("backpack"),
        _interior(c, cx - w * 0.38, cy - h * 0.4, cx + w * 0.38, cy + h * 0.38),
        "backpack",
        rng.uniform(8.0, 14.0),
    )


def handbag(rng: Rng, s: float) -> Container:
    """A handbag or holdall: soft body, carry handles lying on it, metal fittings, a zip."""
    w, h = rng.uniform(30, 60), rng.uniform(20, 34)
    c = SpriteCanvas(w + 4, h + 4, s)
    ox, oy = 2.0, 2.0
    outline = blob(rng, (ox + w / 2, oy + h / 2), (w / 2, h / 2), rng.uniform(0.08, 0.2))
    c.texture(M["fabric"], rng, outline, rng.uniform(0.8, 2.0), 0.3, 4.0, folds=0.4)
    c.walls(M["rubber"] if rng.random() < 0.3 else M["fabric"], outline, 0.5, rng.uniform(2, 6))
    _zip(
        c, [(ox + w * 0.12, oy + h * 0.15), (ox + w * 0.5, oy + h * 0.1), (ox + w * 0.88, oy + h * 0.15)], closed=False
    )
    for k in (0.3, 0.7):  # handles folded down over the bag, with D-ring fittings at their ends
        hx = ox + w * k
        arc = ellipse_pts((hx, oy + h * 0.15), (w * 0.12, h * rng.uniform(0.3, 0.6)), 16, 0, 180)
        c.polyline(M["rubber"], arc, 1.2, 0.8)
        for end in (arc[0], arc[-1]):
            c.walls(M["steel"], ellipse_pts(end, (0.8, 0.8), 12), 0.25, 0.25)
    return Container(
        c.sprite("handbag"),
        _interior(c, ox + w * 0.15, oy + h * 0.2, ox + w * 0.85, oy + h * 0.8),
        "handbag",
        rng.uniform(7.0, 13.0),
    )


def parcel(rng: Rng, s: float) -> Container:
    """A cardboard parcel: corrugated walls, flaps meeting at the middle, packing tape, filler."""
    w, h = rng.uniform(25, 60), rng.uniform(20, 45)
    depth = rng.uniform(10, 35)
    c = SpriteCanvas(w, h, s)
    outline = rounded_rect(0, 0, w, h, 0.3)
    card = M["paper"]
    c.polygon(card, outline, 0.35 * 0.35)  # base, corrugated board is ~35 % solid
    c.walls(card, outline, 0.45, depth * 0.2)
    c.rect(card, 0, 0, w, h / 2 + 1.0, 0.12)  # two top flaps, overlapping along the middle
    c.rect(card, 0, h / 2 - 1.0, w, h / 2 + 1.0, 0.12)
    c.rect(M["plastic"], 0, h / 2 - 2.5, w, 5.0, 0.01)  # tape
    if rng.random() < 0.5:  # corrugation flutes show as faint parallel lines
        for x in np.arange(0.5, w, 0.8):
            c.polyline(card, [(float(x), 0.3), (float(x), h - 0.3)], 0.1, 0.1)
    if rng.random() < 0.4:  # bubble-wrap or air pillows
        for _ in range(int(w * h / 40)):
            c.ellipse(
                M["plastic"],
                (rng.uniform(1, w - 1), rng.uniform(1, h - 1)),
                (0.6, 0.6),
                0.02,
                profile="shell",
                inner=0.8,
            )
    return Container(c.sprite("parcel"), _interior(c, 2, 2, w - 2, h - 2), "parcel", rng.uniform(3.0, 9.0))


#: Container factories and how often each appears.
CONTAINER_FACTORIES = (
    (tray, 0.34),
    (suitcase, 0.28),
    (backpack, 0.18),
    (handbag, 0.12),
    (parcel, 0.08),
)
