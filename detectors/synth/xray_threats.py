"""The labelled threat objects: weapons, ammunition and contraband, in several variants each.

Each factory draws one instance upright at the scene scale ``s`` (pixels per cm) and returns a
sprite named after its subtype. Proportions, materials and thicknesses follow real objects, so a
steel pistol slide is near black, a polymer grip orange, a folded knife's liners a dense outline,
a gold bar black even when thin, a drug brick a dense orange slab and a cash bundle a crisp, pale
organic rectangle.

:data:`THREAT_FACTORIES` maps each class name of :data:`detectors.synth.xray.XRAY_CLASSES` to its
factory; the class ids live in one place only (the class tuple).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from detectors.synth.xray_materials import MATERIALS as M
from detectors.synth.xray_materials import Material
from detectors.synth.xray_shapes import Point, Sprite, SpriteCanvas, ellipse_pts, rounded_rect

Rng = np.random.Generator


def _blade(c: SpriteCanvas, outline: list[Point], spine_cm: float, layers: int = 3) -> None:
    """A ground blade: thickest along the spine, thinning toward the edge.

    The outline runs along the spine first, then back along the edge; the blade is drawn as
    ``layers`` nested slabs shrinking toward the spine, which reads as the grind gradient.
    """
    pts = np.asarray(outline, dtype=np.float64)
    n = len(pts) // 2
    spine, edge = pts[:n], pts[n:][::-1]
    m = min(len(spine), len(edge))
    spine, edge = spine[:m], edge[:m]
    for k in range(layers):
        f = k / layers
        inner = edge + (spine - edge) * f
        poly = [tuple(p) for p in spine] + [tuple(p) for p in inner[::-1]]
        c.polygon(M["steel"], poly, spine_cm / layers)


def _cartridge(c: SpriteCanvas, x: float, y: float, angle: float, case_len: float, r: float, bullet_len: float) -> None:
    """One cartridge lying at ``(x, y)`` (base centre), pointing along ``angle`` (radians)."""
    ca, sa = float(np.cos(angle)), float(np.sin(angle))

    def at(u: float) -> Point:
        return (x + u * ca, y + u * sa)

    c.rod(M["copper"], at(0), at(0.25), r * 1.05)  # rim and head: solid brass
    c.rod(M["copper"], at(0.25), at(case_len), r, wall_cm=0.04)
    c.rod(M["organic_dense"], at(0.25), at(case_len), r - 0.04)  # propellant
    c.rod(M["lead"], at(case_len - 0.3), at(case_len + bullet_len - r * 0.7), r * 0.95, round_ends=True)


# ------------------------------------------------------------------------------------- handguns
def handgun(rng: Rng, s: float) -> Sprite:
    """A pistol (polymer or steel frame, magazine in the grip) or a revolver, lying on its side."""
    return _revolver(rng, s) if rng.random() < 0.35 else _pistol(rng, s)


def _pistol(rng: Rng, s: float) -> Sprite:
    length, height = rng.uniform(16, 21), rng.uniform(11.5, 14.5)
    c = SpriteCanvas(length, height, s)
    polymer = rng.random() < 0.6
    frame: Material = M["plastic"] if polymer else M["steel"]
    frame_t = 2.6 if polymer else 0.6
    sh = height * rng.uniform(0.2, 0.25)  # slide height
    # Slide: two steel side walls (ray crosses both), serrations at the back, ejection port.
    c.rect(M["steel"], 0, 0, length, sh, rng.uniform(0.55, 0.8), r=0.3)
    for k in range(int(rng.integers(5, 10))):
        c.rect(M["steel"], length - 4.0 + k * 0.35, 0.1, 0.15, sh - 0.2, -0.15)
    c.rect(M["steel"], length * 0.45, 0, length * 0.15, sh * 0.45, -0.3)
    c.rod(M["steel"], (0.2, sh * 0.5), (length * 0.72, sh * 0.5), sh * 0.28, wall_cm=0.2)  # barrel
    spring = [(0.6 + i * 0.3, sh * 0.78 + (0.18 if i % 2 else -0.18)) for i in range(int(length * 0.45 / 0.3))]
    c.polyline(M["steel"], spring, 0.05, 0.4)  # recoil spring under the barrel
    # Frame: dust cover under the slide, then the grip raked back.
    c.rect(frame, length * 0.1, sh, length * 0.62, 1.3, frame_t)
    rake = rng.uniform(2.0, 3.5)
    gx0, gx1 = length * 0.62, length * 0.98
    grip = [(gx0, sh), (gx1, sh), (gx1 - 0.5 + rake, height), (gx0 + rake, height)]
    c.polygon(frame, grip, frame_t)
    if not polymer:
        c.polygon(M["wood"] if rng.random() < 0.5 else M["rubber"], grip, 1.6)  # grip panels
    # Magazine: steel box inside the grip, cartridges stacked in it.
    mag = [
        (gx0 + 0.6, sh + 1.0),
        (gx1 - 0.8, sh + 1.0),
        (gx1 - 0.8 + rake, height - 0.3),
        (gx0 + 0.6 + rake, height - 0.3),
    ]
    c.polygon(M["steel"], mag, 0.15)
    c.walls(M["steel"], mag, 0.1, 2.2)
    n_rounds = int(rng.integers(0, 7))
    for k in range(n_rounds):
        f = 0.15 + k * 0.12
        if f > 0.9:
            break
        yy = sh + 1.0 + f * (height - sh - 1.3)
        xx = gx0 + 0.8 + rake * f
        c.rect(M["copper"], xx, yy, gx1 - gx0 - 1.8, 0.8, 0.4, r=0.3)
    # Trigger guard and trigger.
    tg0 = length * rng.uniform(0.42, 0.48)
    guard = [(tg0, sh + 1.2), (tg0 - 0.2, sh + 3.2), (tg0 + 1.5, sh + 3.9), (gx0 + 0.2, sh + 3.6), (gx0, sh + 1.2)]
    c.polyline(frame, guard, 0.6, frame_t * 0.9)
    c.polyline(
        M["steel"] if not polymer else M["plastic"],
        [(tg0 + 2.2, sh + 1.2), (tg0 + 2.0, sh + 2.2), (tg0 + 2.4, sh + 2.8)],
        0.5,
        0.8,
    )
    c.rect(M["steel"], length * 0.55, sh + 0.3, length * 0.35, 0.8, 0.3)  # trigger bar, fire control
    return c.sprite("pistol")


def _revolver(rng: Rng, s: float) -> Sprite:
    barrel = rng.uniform(5, 15)
    cyl_w, cyl_h = rng.uniform(3.8, 4.6), rng.uniform(3.6, 4.2)
    length, height = barrel + cyl_w + 8.0, rng.uniform(12.5, 15.0)
    c = SpriteCanvas(length, height, s)
    yb = 2.0  # bore axis
    c.rod(M["steel"], (0, yb), (barrel + 0.5, yb), 0.8, wall_cm=0.45)  # barrel
    c.rect(M["steel"], 0, yb - 1.1, barrel, 0.5, 0.6)  # top rib
    c.rect(M["steel"], 0.3, yb - 1.6, 0.5, 0.6, 0.4)  # front sight
    if rng.random() < 0.6:  # ejector-rod shroud under the barrel
        c.rod(M["steel"], (barrel * 0.35, yb + 1.1), (barrel, yb + 1.1), 0.45)
    # Frame side plates around the cylinder window, recoil shield behind it.
    fx0, fx1 = barrel - 0.2, barrel + cyl_w + 1.6
    c.polygon(M["steel"], [(fx0, yb - 1.3), (fx1, yb - 1.3), (fx1 + 0.4, yb + 3.0), (fx0, yb + 2.8)], 0.45)
    # Cylinder seen from the side: a thick drum; chambers (with rounds) read as lighter bands.
    cx0, cy0 = barrel + 0.2, yb + 0.3 - cyl_h / 2
    c.rect(M["steel"], cx0, cy0, cyl_w, cyl_h, 1.4, r=0.4)
    for k in range(3):
        yy = cy0 + 0.3 + k * (cyl_h - 0.6) / 3
        c.rect(M["steel"], cx0 + 0.2, yy, cyl_w - 0.4, 0.7, -0.6)
        c.rect(M["copper"], cx0 + 0.2, yy, cyl_w - 0.4, 0.7, 0.1)
    c.polygon(
        M["steel"], [(fx1 - 0.5, yb - 1.3), (fx1 + 1.8, yb - 2.0), (fx1 + 1.4, yb - 0.6), (fx1 + 0.2, yb)], 0.7
    )  # hammer
    # Grip raked down and back, wooden or rubber panels over a steel frame strap.
    gx = fx1 - 0.6
    grip = [(gx, yb + 1.4), (gx + 2.9, yb + 0.6), (gx + 5.6, height - 0.4), (gx + 2.4, height)]
    c.polygon(M["wood"] if rng.random() < 0.5 else M["rubber"], grip, 3.0)
    c.polyline(M["steel"], [(gx + 1.4, yb + 1.2), (gx + 3.9, height - 0.3)], 0.7, 0.6)
    c.ellipse(M["steel"], (gx + 2.6, yb + 4.5), (0.35, 0.35), 1.2)  # grip screw
    guard = [(barrel + 0.6, yb + 2.8), (barrel + 0.8, yb + 4.8), (barrel + 3.2, yb + 5.3), (gx + 0.8, yb + 3.6)]
    c.polyline(M["steel"], guard, 0.45, 0.6)
    c.polyline(M["steel"], [(barrel + 2.4, yb + 2.8), (barrel + 2.2, yb + 3.8), (barrel + 2.7, yb + 4.4)], 0.45, 0.6)
    return c.sprite("revolver")


# --------------------------------------------------------------------------------------- knives
def knife(rng: Rng, s: float) -> Sprite:
    """A straight (fixed-blade), folding, multi-tool or utility/kitchen knife."""
    kind = rng.choice(["straight", "folding", "multitool", "utility"], p=[0.3, 0.3, 0.2, 0.2])
    if kind == "folding":
        return _folding_knife(rng, s)
    if kind == "multitool":
        return _multitool(rng, s)
    blade = rng.uniform(9, 22) if kind == "straight" else rng.uniform(10, 20)
    handle = rng.uniform(9, 13)
    width = rng.uniform(2.0, 4.0) if kind == "straight" else rng.uniform(1.4, 2.6)
    c = SpriteCanvas(blade + handle + 1.0, width + 1.2, s)
    y0 = 0.6
    # Spine from the guard to the tip, then the edge back (drop point, belly near the tip).
    xs = np.linspace(0, 1, 10)
    spine = [(handle + blade * float(x), y0 + 0.0 + width * 0.35 * float(max(0, x - 0.7) / 0.3) ** 1.5) for x in xs]
    belly = [(handle + blade * float(x), y0 + width * (1 - 0.65 * float(max(0, x - 0.55) / 0.45) ** 2)) for x in xs]
    _blade(c, spine + belly[::-1], rng.uniform(0.22, 0.4))
    if kind == "utility" and rng.random() < 0.6:  # serrations along the edge
        for x in np.arange(handle + 0.5, handle + blade * 0.6, 0.35):
            c.ellipse(M["steel"], (float(x), y0 + width - 0.05), (0.14, 0.14), -0.1)
    handle_mat = M[str(rng.choice(["wood", "plastic", "rubber"]))]
    c.rect(handle_mat, 0, y0 - 0.2, handle, width * 0.9 + 0.4, rng.uniform(1.6, 2.4), r=0.8)
    tang = rng.uniform(0.4, 1.0) * handle
    c.rect(M["steel"], handle - tang, y0 + width * 0.2, tang, width * 0.5, 0.35)
    if kind == "straight":
        c.rect(M["steel"], handle - 0.6, y0 - 0.5, 0.8, width * 0.9 + 1.0, 1.2, r=0.2)  # guard
        for x in np.linspace(handle - tang + 1.0, handle - 1.5, int(rng.integers(2, 4))):
            c.ellipse(M["steel"], (float(x), y0 + width * 0.45), (0.3, 0.3), 2.0)  # rivets
    return c.sprite(f"{kind}_knife")


def _folding_knife(rng: Rng, s: float) -> Sprite:
    handle, width = rng.uniform(9, 13), rng.uniform(2.0, 3.0)
    opened = rng.random() < 0.6
    blade = handle * rng.uniform(0.75, 0.9)
    c = SpriteCanvas(handle + (blade if opened else 0) + 1.0, width + 1.5, s)
    y0 = 0.7
    outline = rounded_rect(0, y0, handle, width, width * 0.45)
    scales = M["aluminium"] if rng.random() < 0.4 else M["plastic"]
    c.polygon(scales, outline, 0.3 if scales.name == "aluminium" else 1.2)
    c.polygon(M["steel"], outline, 0.12)  # two steel liners
    c.walls(M["steel"], outline, 0.12, 0.6)
    c.ellipse(M["steel"], (handle - 0.9, y0 + width / 2), (0.55, 0.55), 1.0)  # pivot
    c.rect(M["steel"], 0.3, y0 + 0.2, 2.5, width - 0.4, 0.2)  # lock bar
    c.polyline(M["steel"], [(0.5, y0 - 0.1), (5.0, y0 - 0.1)], 0.3, 0.1)  # pocket clip
    bx = handle - 1.5 if opened else 1.0
    xs = np.linspace(0, 1, 10)
    bw = width * 0.85
    spine = [(bx + blade * float(x), y0 + 0.1 + bw * 0.3 * float(max(0, x - 0.65) / 0.35) ** 1.4) for x in xs]
    edge = [(bx + blade * float(x), y0 + 0.1 + bw * (1 - 0.7 * float(max(0, x - 0.5) / 0.5) ** 2)) for x in xs]
    _blade(c, spine + edge[::-1], rng.uniform(0.25, 0.35))
    return c.sprite("folding_knife" if opened else "folding_knife_closed")


def _multitool(rng: Rng, s: float) -> Sprite:
    length, width = rng.uniform(8.5, 11), rng.uniform(2.4, 3.2)
    opened = int(rng.integers(1, 3))
    c = SpriteCanvas(length * 1.9, length * 0.9 + width, s)
    y0 = length * 0.45
    outline = rounded_rect(0, y0, length, width, width * 0.48)
    c.polygon(M["plastic"], outline, 0.8)  # scales
    for k in range(int(rng.integers(4, 8))):  # stacked tool layers and brass liners
        inset = 0.15 + 0.08 * k
        c.polygon(
            M["steel"] if k % 2 else M["copper"],
            rounded_rect(inset, y0 + inset, length - 2 * inset, width - 2 * inset, width * 0.4),
            0.14,
        )
    for x in (width / 2, length - width / 2):
        c.ellipse(M["steel"], (x, y0 + width / 2), (0.35, 0.35), 1.6)
    for k in range(opened):  # main blade and another tool fanned out of the end
        ang = np.deg2rad([0.0, -35.0, 28.0][k] + rng.uniform(-6, 6))
        ca, sa = float(np.cos(ang)), float(np.sin(ang))
        bl = length * rng.uniform(0.6, 0.85)
        px, py = length - width / 2, y0 + width / 2
        bw = width * 0.55

        def at(u: float, v: float, px: float = px, py: float = py, ca: float = ca, sa: float = sa) -> Point:
            return (px + u * ca - v * sa, py + u * sa + v * ca)

        us = np.linspace(0, bl, 8)
        spine = [at(float(u), -bw / 2) for u in us]
        edge = [at(float(u), -bw / 2 + bw * (1 - 0.8 * (float(u) / bl) ** 3)) for u in us]
        _blade(c, spine + edge[::-1], 0.25, layers=2)
    return c.sprite("multitool")


# --------------------------------------------------------------------------- scissors and blades
def scissors_blade(rng: Rng, s: float) -> Sprite:
    """Scissors, a razor or utility blade (or a pack of them), or a box cutter."""
    kind = rng.choice(["scissors", "razor_blade", "box_cutter"], p=[0.45, 0.25, 0.3])
    if kind == "razor_blade":
        return _razor_blades(rng, s)
    if kind == "box_cutter":
        return _box_cutter(rng, s)
    blade = rng.uniform(6, 13)
    ring_r = rng.uniform(1.3, 2.0)
    length = blade + 2 * ring_r + 2.5
    open_deg = rng.uniform(0, 25)
    c = SpriteCanvas(length + 1, 2 * ring_r * 2.3 + blade * 0.5, s)
    py = c.shape[0] / c.s / 2 - 0.2
    px = 2 * ring_r + 2.0
    handles = M["plastic"] if rng.random() < 0.65 else M["steel"]
    for sign in (-1, 1):
        ang = np.deg2rad(sign * open_deg / 2)
        ca, sa = float(np.cos(ang)), float(np.sin(ang))

        def at(u: float, v: float, ca: float = ca, sa: float = sa) -> Point:
            return (px + u * ca - v * sa, py + u * sa + v * ca)

        us = np.linspace(-0.5, blade, 8)
        w0 = rng.uniform(0.7, 1.1)
        spine = [at(float(u), sign * w0 * (1 - float(u) / blade * 0.85)) for u in us]
        edge = [at(float(u), 0.0) for u in us]
        _blade(c, spine + edge[::-1], 0.3, layers=2)
        # Shank and finger ring on the other side of the pivot.
        rc = at(-ring_r - 1.2, -sign * (ring_r * 0.9))
        c.polyline(M["steel"], [at(0, 0), at(-1.4, -sign * 0.5)], 0.7, 0.3)
        ring = ellipse_pts(rc, (ring_r, ring_r * rng.uniform(0.7, 1.0)), 20)
        t = 0.9 if handles.name == "plastic" else 0.3
        c.walls(handles, ring, 0.5 if handles.name == "plastic" else 0.3, t)
        if handles.name == "plastic":
            c.walls(M["steel"], ellipse_pts(rc, (ring_r * 0.55, ring_r * 0.45), 12), 0.2, 0.25)  # steel insert
    c.ellipse(M["steel"], (px, py), (0.35, 0.35), 0.8)  # pivot screw
    return c.sprite("scissors")


def _razor_blades(rng: Rng, s: float) -> Sprite:
    trapezoid = rng.random() < 0.6
    count = int(rng.choice([1, 2, 5, 10], p=[0.3, 0.2, 0.3, 0.2]))
    if trapezoid:  # utility-knife blade, 0.6 mm steel
        c = SpriteCanvas(6.2, 2.0, s)
        pts = [(0, 1.9), (1.2, 0.0), (5.0, 0.0), (6.1, 1.9)]
        c.polygon(M["steel"], pts, 0.06 * count)
        c.polygon(M["steel"], [(2.4, 0.0), (2.6, 0.0), (2.6, 0.3), (2.4, 0.3)], -0.06 * count)  # notch
        return c.sprite("utility_blade")
    c = SpriteCanvas(4.4, 2.3, s)  # double-edge razor blade, 0.1 mm steel, with the cut-out slot
    c.rect(M["steel"], 0, 0, 4.3, 2.2, 0.012 * count, r=0.15)
    c.rect(M["steel"], 0.9, 0.95, 2.5, 0.3, -0.012 * count, r=0.15)
    for x in (0.7, 3.6):
        c.ellipse(M["steel"], (x, 1.1), (0.25, 0.25), -0.012 * count)
    if count > 1:  # a paper wrapper around the pack
        c.rect(M["paper"], 0, 0, 4.3, 2.2, 0.05)
    return c.sprite("razor_blade")


def _box_cutter(rng: Rng, s: float) -> Sprite:
    body = rng.uniform(12, 17)
    extend = rng.uniform(0, 6)
    bw = rng.uniform(1.8, 2.6)
    c = SpriteCanvas(body + extend + 0.5, bw + 0.4, s)
    c.rect(M["plastic"], 0, 0.2, body, bw, 1.3, r=0.5)
    c.walls(M["steel"], rounded_rect(0.5, 0.5, body - 0.8, bw - 0.6, 0.1), 0.06, 0.8)  # steel channel
    bx0 = body * 0.3
    blade_len = body * 0.7 + extend
    bh = 0.9 if bw < 2.2 else 1.8
    y = 0.2 + (bw - bh) / 2
    pts = [(bx0, y), (bx0 + blade_len - bh * 0.6, y), (bx0 + blade_len, y + bh), (bx0, y + bh)]
    c.polygon(M["steel"], pts, 0.05)
    for x in np.arange(bx0 + 1.0, bx0 + blade_len - 1.0, 0.9):  # snap-off score lines
        c.polyline(M["steel"], [(float(x), y + bh), (float(x) + bh * 0.5, y)], 0.05, -0.02)
    c.rect(M["steel"], body * 0.45, 0.0, 1.2, bw + 0.4, 0.4, r=0.2)  # slider
    return c.sprite("box_cutter")


# ------------------------------------------------------------------------------------ ammunition
def ammunition(rng: Rng, s: float) -> Sprite:
    """Cartridges: a loose handful, a loaded pistol magazine, a stripper clip or an opened box."""
    kind = rng.choice(["loose", "magazine", "clip", "box"], p=[0.4, 0.25, 0.15, 0.2])
    calibres = [(1.9, 0.49, 0.9), (2.5, 0.48, 1.1), (3.3, 0.6, 1.4), (4.5, 0.48, 1.3)]  # case, r, bullet
    case_len, r, bullet = calibres[int(rng.integers(0, len(calibres)))]
    total = case_len + bullet
    if kind == "loose":
        n = int(rng.integers(1, 7))
        size = total * (1.2 + 0.35 * n)
        c = SpriteCanvas(size, size, s)
        for _ in range(n):
            a = rng.uniform(0, 2 * np.pi)
            cx, cy = rng.uniform(total * 0.6, size - total * 0.6), rng.uniform(total * 0.6, size - total * 0.6)
            _cartridge(c, cx - float(np.cos(a)) * total / 2, cy - float(np.sin(a)) * total / 2, a, case_len, r, bullet)
        return c.sprite("cartridges_loose")
    if kind == "magazine":
        n = int(rng.integers(4, 12))
        height = 2.2 + n * 0.55 * 2 * r / 0.98
        c = SpriteCanvas(total + 1.2, height, s)
        box = [(0, 0), (total + 1.0, 0), (total + 1.2, height), (0.2, height)]
        c.polygon(M["steel"], box, 0.16)
        c.walls(M["steel"], box, 0.1, 2.4)
        for k in range(n):  # double-stack: alternate rounds offset sideways
            yy = 0.6 + k * 0.55 * 2 * r / 0.98 + r
            xx = 0.4 + (0.25 if k % 2 else 0.0)
            _cartridge(c, xx, yy, 0.0, case_len, r, bullet)
        c.polyline(M["steel"], [(0.5 + (i % 2) * total * 0.8, height - 0.3 - i * 0.25) for i in range(6)], 0.05, 0.3)
        return c.sprite("magazine")
    if kind == "clip":
        n = int(rng.integers(3, 11))
        c = SpriteCanvas(total + 0.6, n * 2.05 * r + 0.6, s)
        c.rect(M["steel"], 0.0, 0.1, 0.6, n * 2.05 * r + 0.4, 0.3)
        for k in range(n):
            _cartridge(c, 0.2, 0.3 + r + k * 2.05 * r, 0.0, case_len, r, bullet)
        return c.sprite("stripper_clip")
    # Opened box: rounds standing upright, seen end-on as dense discs, in a cardboard tray.
    cols, rows = int(rng.integers(3, 8)), int(rng.integers(2, 6))
    pitch = 2 * r + 0.25
    c = SpriteCanvas(cols * pitch + 1.0, rows * pitch + 1.0, s)
    c.rect(M["paper"], 0, 0, cols * pitch + 1.0, rows * pitch + 1.0, 0.15)
    c.walls(M["paper"], rounded_rect(0, 0, cols * pitch + 1.0, rows * pitch + 1.0, 0), 0.1, total)
    full = rng.random(size=(rows, cols)) < rng.uniform(0.6, 1.0)
    for i in range(rows):
        for j in range(cols):
            if full[i, j]:
                cx, cy = 0.5 + pitch * (j + 0.5), 0.5 + pitch * (i + 0.5)
                c.ellipse(M["copper"], (cx, cy), (r, r), case_len * 0.25)
                c.ellipse(M["lead"], (cx, cy), (r * 0.9, r * 0.9), bullet * 0.8, profile="dome")
    return c.sprite("ammo_box")


# ------------------------------------------------------------------------------------ contraband
def drug_package(rng: Rng, s: float) -> Sprite:
    """A taped brick of compressed powder, a knotted pouch, or a bag of pellets."""
    kind = rng.choice(["brick", "pouch", "pellets"], p=[0.5, 0.35, 0.15])
    if kind == "brick":
        w, h = rng.uniform(10, 24), rng.uniform(8, 16)
        t = rng.uniform(2.0, 5.0)
        c = SpriteCanvas(w, h, s)
        outline = [
            (x + rng.normal(0, 0.15), y + rng.normal(0, 0.15))
            for x, y in rounded_rect(0.2, 0.2, w - 0.4, h - 0.4, 1.0, 3)
        ]
        c.texture(M["drug"], rng, outline, t, rng.uniform(0.04, 0.12), 3.0)
        c.polygon(M["plastic"], outline, 0.08)
        for _ in range(int(rng.integers(2, 6))):  # tape bands wrapped round the brick
            if rng.random() < 0.5:
                x = rng.uniform(0.5, w - 4.5)
                c.rect(M["plastic"], x, 0.0, rng.uniform(2.5, 5.0), h, 0.06)
            else:
                y = rng.uniform(0.5, h - 4.5)
                c.rect(M["plastic"], 0.0, y, w, rng.uniform(2.5, 5.0), 0.06)
        c.walls(M["plastic"], outline, 0.1, t * 0.6)  # wrap layers seen edge-on
        return c.sprite("drug_brick")
    if kind == "pouch":
        w, h = rng.uniform(7, 16), rng.uniform(5, 11)
        c = SpriteCanvas(w + 2.5, h, s)
        c.ellipse(M["drug"], (w / 2, h / 2), (w / 2, h / 2), rng.uniform(1.5, 4.0), profile="dome")
        c.walls(M["plastic"], ellipse_pts((w / 2, h / 2), (w / 2, h / 2), 24), 0.1, 0.8)
        c.ellipse(M["plastic"], (w + 0.8, h / 2), (1.2, 0.6), 0.8, profile="dome")  # knot
        return c.sprite("drug_pouch")
    n = int(rng.integers(5, 16))
    size = rng.uniform(7, 12)
    c = SpriteCanvas(size, size, s)
    c.ellipse(M["plastic"], (size / 2, size / 2), (size / 2, size / 2), 0.05)
    for _ in range(n):
        a = rng.uniform(0, 180)
        c.ellipse(
            M["drug"],
            (rng.uniform(2, size - 2), rng.uniform(2, size - 2)),
            (1.6, 0.7),
            1.4,
            angle_deg=a,
            profile="dome",
        )
    return c.sprite("drug_pellets")


def gold_bar(rng: Rng, s: float) -> Sprite:
    """A cast gold bar (sloped sides) or a thin minted bar; opaque at both energies."""
    if rng.random() < 0.5:
        w, h, t = rng.uniform(8, 12), rng.uniform(4, 5.5), rng.uniform(1.2, 2.0)
        c = SpriteCanvas(w, h, s)
        c.rect(M["gold"], 0, 0, w, h, 0.5 * t, r=0.3)
        c.rect(M["gold"], 0.6, 0.5, w - 1.2, h - 1.0, 0.5 * t, r=0.3)  # top face of the trapezoid
        return c.sprite("gold_cast_bar")
    w, h, t = rng.choice([(5.5, 3.1, 0.9), (4.1, 2.4, 0.2), (3.1, 1.9, 0.15), (8.0, 4.5, 0.5)])
    c = SpriteCanvas(w, h, s)
    c.rect(M["gold"], 0, 0, float(w), float(h), float(t), r=0.2)
    if rng.random() < 0.6:  # blister card
        c.rect(M["plastic"], -0.5, -0.5, float(w) + 1, float(h) + 1, 0.1)
    return c.sprite("gold_minted_bar")


def cash_bundle(rng: Rng, s: float) -> Sprite:
    """A banded bundle or a shrink-wrapped brick of banknotes: a crisp, regular paper slab."""
    w, h = rng.uniform(14.5, 16.5), rng.uniform(6.5, 8.0)
    brick = rng.random() < 0.35
    t = rng.uniform(4.0, 12.0) if brick else rng.uniform(0.6, 2.5)
    c = SpriteCanvas(w + 0.6, h + 0.6, s)
    # Notes are never perfectly aligned: a few sub-stacks slightly offset make the soft edge.
    layers = int(rng.integers(3, 7))
    for _ in range(layers):
        dx, dy = rng.normal(0, 0.12, size=2)
        c.rect(M["paper"], 0.3 + float(dx), 0.3 + float(dy), w, h, t / layers)
    if brick:
        c.rect(M["plastic"], 0.0, 0.0, w + 0.6, h + 0.6, 0.1)
        for k in range(int(t // 1.5)):  # individual bundle bands seen through the wrap
            c.rect(M["paper"], 0.3 + w / 2 - 1.5, 0.3, 3.0, h, 0.02 * (k + 1))
    else:
        if rng.random() < 0.6:
            c.rect(M["paper"], 0.3 + w / 2 - 1.5, 0.2, 3.0, h + 0.2, 0.05)  # paper strap
        else:
            for x in (w * 0.25, w * 0.75):  # rubber bands
                c.rect(M["rubber"], 0.3 + x, 0.1, 0.3, h + 0.4, 0.3)
    return c.sprite("cash_brick" if brick else "cash_bundle")


#: Factory of each threat class, by class name.
THREAT_FACTORIES: Mapping[str, Callable[[Rng, float], Sprite]] = MappingProxyType(
    {
        "handgun": handgun,
        "knife": knife,
        "scissors_blade": scissors_blade,
        "ammunition": ammunition,
        "drug_package": drug_package,
        "gold_bar": gold_bar,
        "cash_bundle": cash_bundle,
    }
)
