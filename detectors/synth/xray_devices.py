"""Electronics: laptops, phones, tablets, chargers, cables, batteries, headphones, hair dryers.

Electronics are the main source of dense clutter in real scans (circuit boards, battery packs,
metal frames, heat pipes) and the usual hiding place for threats. Every factory takes the random
generator and the scene scale ``s`` (pixels per cm) and returns a
:class:`~detectors.synth.xray_shapes.Sprite`.
"""

from __future__ import annotations

import numpy as np

from detectors.synth.xray_materials import MATERIALS as M
from detectors.synth.xray_shapes import Sprite, SpriteCanvas, ellipse_pts, random_walk, rounded_rect

Rng = np.random.Generator


def _components(c: SpriteCanvas, rng: Rng, x: float, y: float, w: float, h: float, n: int) -> None:
    """Chips, capacitors, connectors and traces scattered on a circuit board region (cm)."""
    for _ in range(n):
        kind = rng.random()
        cw, ch = rng.uniform(0.3, 2.5), rng.uniform(0.3, 2.0)
        cx, cy = x + rng.uniform(0, max(w - cw, 0.1)), y + rng.uniform(0, max(h - ch, 0.1))
        if kind < 0.45:  # IC package: ceramic/plastic body with a copper lead frame
            c.rect(M["ceramic"], cx, cy, cw, ch, 0.15)
            c.walls(M["copper"], rounded_rect(cx, cy, cw, ch, 0), 0.06, 0.05)
        elif kind < 0.7:  # electrolytic capacitor: aluminium can, seen from above
            r = rng.uniform(0.2, 0.5)
            c.ellipse(M["aluminium"], (cx + r, cy + r), (r, r), 0.8, profile="shell", inner=0.85)
        elif kind < 0.85:  # connector / shield can: thin steel box
            c.walls(M["steel"], rounded_rect(cx, cy, cw, ch, 0), 0.03, 0.4)
            c.rect(M["steel"], cx, cy, cw, ch, 0.02)
        else:  # screw
            c.ellipse(M["steel"], (cx, cy), (0.15, 0.15), 0.4)
    for _ in range(n // 2):  # copper traces, visible as faint straight lines
        x0, y0 = x + rng.uniform(0, w), y + rng.uniform(0, h)
        horizontal = rng.random() < 0.5
        end = (x + rng.uniform(0, w), y0) if horizontal else (x0, y + rng.uniform(0, h))
        c.polyline(M["copper"], [(x0, y0), end], 0.05, 0.004)


def laptop(rng: Rng, s: float) -> Sprite:
    """A closed laptop: chassis, board with components, heat pipe, fan, battery, keyboard, hinges."""
    w, h = rng.uniform(28, 38), rng.uniform(19, 26)
    c = SpriteCanvas(w, h, s)
    chassis = M["aluminium"] if rng.random() < 0.6 else M["plastic"]
    skin = 0.12 if chassis.name == "aluminium" else 0.25
    outline = rounded_rect(0, 0, w, h, 1.0)
    c.polygon(chassis, outline, 2 * skin)  # base and lid
    c.walls(chassis, outline, skin, 1.6)
    c.rect(M["glass"], 0.8, 0.8, w - 1.6, h - 1.6, 0.07)  # display panel
    # Battery along the front edge: several cells side by side.
    cells = int(rng.integers(2, 5))
    bw, bh = (w - 4) / cells, h * rng.uniform(0.3, 0.4)
    by = h - bh - 1.0
    for k in range(cells):
        c.rect(M["battery"], 2 + k * bw + 0.15, by, bw - 0.3, bh, rng.uniform(0.45, 0.7), r=0.3)
    # Logic board along the back, with the heat pipe running to the fan.
    bx, bw2 = 1.5, w * rng.uniform(0.55, 0.75)
    bh2 = h - bh - 3.5
    c.rect(M["pcb"], bx, 1.5, bw2, bh2, 0.12)
    _components(c, rng, bx, 1.5, bw2, bh2, int(rng.integers(12, 26)))
    fx, fy, fr = bx + bw2 + rng.uniform(1.5, 3), 1.5 + bh2 / 2, min(3.0, bh2 / 2)
    c.ellipse(M["plastic"], (fx, fy), (fr, fr), 0.8)
    c.ellipse(M["steel"], (fx, fy), (0.5, 0.5), 0.6)
    for k in range(9):  # fan blades
        a = 2 * np.pi * k / 9
        c.polyline(M["plastic"], [(fx, fy), (fx + fr * float(np.cos(a)), fy + fr * float(np.sin(a)))], 0.15, 0.8)
    c.rod(M["copper"], (bx + bw2 * 0.4, 1.5 + bh2 * 0.45), (fx - fr, fy), 0.35, wall_cm=0.05)
    # Keyboard: a thin steel backing plate and rows of key switches.
    c.rect(M["steel"], 1.5, by - 0.5, w - 3, 0.4, 0.02)
    for k in range(2):  # hinges
        hx = [1.5, w - 4.5][k]
        c.rect(M["steel"], hx, 0.1, 3.0, 1.0, 0.5)
    for _ in range(int(rng.integers(6, 14))):  # case screws
        c.ellipse(M["steel"], (rng.uniform(0.8, w - 0.8), rng.uniform(0.8, h - 0.8)), (0.15, 0.15), 0.4)
    # Speakers: small magnets near the front corners.
    for sx in (2.5, w - 2.5):
        c.ellipse(M["steel"], (sx, h - 2.0), (0.6, 0.6), 0.3)
    return c.sprite("laptop")


def phone(rng: Rng, s: float) -> Sprite:
    """A smartphone: metal frame, glass, a big battery, a small dense board, camera lenses."""
    w, h = rng.uniform(6.5, 8.0), rng.uniform(13.5, 16.5)
    c = SpriteCanvas(w, h, s)
    outline = rounded_rect(0, 0, w, h, 0.9)
    c.polygon(M["glass"], outline, 0.12)
    frame = M["aluminium"] if rng.random() < 0.6 else M["steel"]
    c.walls(frame, outline, 0.15, 0.8)
    c.rect(M["battery"], 0.7, h * 0.38, w - 1.4, h * 0.5, 0.45, r=0.3)
    c.rect(M["pcb"], 0.6, 0.6, w - 1.2, h * 0.32, 0.15)
    _components(c, rng, 0.6, 0.6, w - 1.2, h * 0.32, 8)
    c.rect(M["steel"], 0.6, 0.6, w - 1.2, h * 0.32, 0.03)  # shield can
    for k in range(int(rng.integers(1, 4))):
        c.ellipse(M["glass"], (1.5, 1.4 + 1.1 * k), (0.45, 0.45), 0.3)
        c.walls(M["steel"], ellipse_pts((1.5, 1.4 + 1.1 * k), (0.5, 0.5), 16), 0.05, 0.2)
    return c.sprite("phone")


def tablet(rng: Rng, s: float) -> Sprite:
    """A tablet or e-reader: a large thin device with battery plates and a narrow board."""
    w, h = rng.uniform(15, 22), rng.uniform(20, 28)
    c = SpriteCanvas(w, h, s)
    outline = rounded_rect(0, 0, w, h, 1.0)
    c.polygon(M["aluminium"], outline, 0.15)
    c.polygon(M["glass"], outline, 0.1)
    c.walls(M["aluminium"], outline, 0.15, 0.6)
    c.rect(M["battery"], 1.0, h * 0.15, w * 0.42, h * 0.7, 0.35, r=0.2)
    c.rect(M["battery"], w * 0.55, h * 0.15, w * 0.42 - 1.0, h * 0.7, 0.35, r=0.2)
    c.rect(M["pcb"], 1.0, 1.0, w - 2.0, h * 0.1, 0.12)
    _components(c, rng, 1.0, 1.0, w - 2.0, h * 0.1, 8)
    return c.sprite("tablet")


def cable(rng: Rng, s: float) -> Sprite:
    """A loose cable or a coiled one, with plug ends: copper cores show as thin dense lines."""
    w, h = rng.uniform(10, 35), rng.uniform(8, 25)
    c = SpriteCanvas(w, h, s)
    cores = int(rng.choice([1, 2, 3]))
    core_r = rng.uniform(0.04, 0.12)
    jacket = rng.uniform(0.3, 0.6)
    if rng.random() < 0.5:  # coiled: loops of similar radius drifting along
        r = rng.uniform(2.5, min(w, h) / 2 - 0.5)
        pts = []
        loops = rng.uniform(2, 6)
        for t in np.linspace(0, 2 * np.pi * loops, int(40 * loops)):
            rr = r * (1 + 0.12 * np.sin(3.1 * t))
            pts.append((w / 2 + rr * float(np.cos(t)) + rng.normal(0, 0.1) + 0.3 * t, h / 2 + rr * float(np.sin(t))))
        pts = [(min(max(x, 0.3), w - 0.3), min(max(y, 0.3), h - 0.3)) for x, y in pts]
    else:
        pts = random_walk(rng, (w / 2, h / 2), int(rng.integers(30, 120)), 0.6, 0.25, (0.3, 0.3, w - 0.3, h - 0.3))
    c.polyline(M["plastic"], pts, jacket, jacket)
    for k in range(cores):  # cores lie side by side inside the jacket, each a dense thread
        off = (k - (cores - 1) / 2) * 2.2 * core_r
        c.polyline(M["copper"], [(x + off, y) for x, y in pts], 2 * core_r, 1.6 * core_r)
    for end in (pts[0], pts[-1]):  # plugs: plastic moulding around brass/steel contacts
        c.rect(M["plastic"], end[0] - 0.8, end[1] - 0.5, 1.6, 1.0, 0.9)
        c.rect(M["steel"] if rng.random() < 0.5 else M["copper"], end[0] - 0.4, end[1] - 0.3, 0.8, 0.6, 0.12)
    return c.sprite("cable")


def charger(rng: Rng, s: float) -> Sprite:
    """A power adapter: plastic case, transformer (steel core, copper winding), board, prongs."""
    w, h = rng.uniform(4.5, 12), rng.uniform(4.5, 8)
    c = SpriteCanvas(w + 3, h, s)
    c.rect(M["plastic"], 0, 0, w, h, 3.0, r=0.6)
    c.walls(M["plastic"], rounded_rect(0, 0, w, h, 0.6), 0.2, 3.0)
    c.rect(M["pcb"], 0.4, 0.4, w - 0.8, h - 0.8, 0.12)
    _components(c, rng, 0.4, 0.4, w - 0.8, h - 0.8, int(rng.integers(5, 10)))
    tw = min(2.5, w * 0.35)
    c.rect(M["steel"], w * 0.35, h * 0.2, tw, h * 0.6, 0.5)  # transformer core
    c.rect(M["copper"], w * 0.35 + tw * 0.25, h * 0.2, tw * 0.5, h * 0.6, 0.8)  # winding
    for y in (h * 0.3, h * 0.6):  # prongs
        c.rect(M["copper"], w, y, 2.0, 0.6, 0.15)
    return c.sprite("charger")


def power_bank(rng: Rng, s: float) -> Sprite:
    """A power bank: a row of 18650 cells (steel cans) in a plastic or aluminium case."""
    n = int(rng.integers(1, 5))
    w, h = 7.0 * 1.0 + 0.8, n * 1.85 + 0.8
    c = SpriteCanvas(w, h, s)
    case = M["aluminium"] if rng.random() < 0.5 else M["plastic"]
    c.rect(case, 0, 0, w, h, 0.3, r=0.5)
    c.walls(case, rounded_rect(0, 0, w, h, 0.5), 0.15, 2.0)
    for k in range(n):
        cy = 0.4 + 0.925 + k * 1.85
        c.rod(M["steel"], (0.4, cy), (0.4 + 6.5, cy), 0.9, wall_cm=0.025)
        c.rod(M["battery"], (0.5, cy), (0.4 + 6.4, cy), 0.85)
    c.rect(M["pcb"], w - 0.7, 0.3, 0.5, h - 0.6, 0.8)
    return c.sprite("power_bank")


def loose_batteries(rng: Rng, s: float) -> Sprite:
    """AA/AAA cells or a 9 V block: steel cans with a dense core (a cartridge confuser)."""
    if rng.random() < 0.25:  # 9 V block
        c = SpriteCanvas(4.9, 2.7, s)
        c.rect(M["steel"], 0, 0, 4.9, 2.7, 0.06)
        c.walls(M["steel"], rounded_rect(0, 0, 4.9, 2.7, 0.2), 0.03, 1.6)
        c.rect(M["battery"], 0.3, 0.3, 4.3, 2.1, 1.4)
        for y in (0.6, 1.8):
            c.ellipse(M["steel"], (5.0 - 0.3, y), (0.35, 0.35), 0.3)
        return c.sprite("battery_9v")
    n = int(rng.integers(1, 5))
    length, r = (5.0, 0.72) if rng.random() < 0.6 else (4.45, 0.52)
    c = SpriteCanvas(length + 0.5, n * 2 * r + (n - 1) * 0.2, s)
    for k in range(n):
        cy = r + k * (2 * r + 0.2)
        c.rod(M["steel"], (0, cy), (length, cy), r, wall_cm=0.03)
        c.rod(M["battery"], (0.15, cy), (length - 0.15, cy), r - 0.05)
        c.rod(M["steel"], (length, cy), (length + 0.15, cy), r * 0.35)  # positive terminal
    return c.sprite("batteries")


def headphones(rng: Rng, s: float) -> Sprite:
    """Over-ear headphones folded flat: magnet cups, a steel spring band, a cable; or earbuds case."""
    if rng.random() < 0.5:
        w, h = 18.0, 16.0
        c = SpriteCanvas(w, h, s)
        c.polyline(M["steel"], ellipse_pts((w / 2, h * 0.6), (w * 0.42, h * 0.55), 24, 190, 350), 0.3, 0.15)
        c.polyline(M["plastic"], ellipse_pts((w / 2, h * 0.6), (w * 0.42, h * 0.55), 24, 190, 350), 2.0, 1.2)
        for cx in (w * 0.17, w * 0.83):
            c.ellipse(M["plastic"], (cx, h * 0.68), (3.2, 4.0), 3.0, profile="shell", inner=0.8)
            c.ellipse(M["steel"], (cx, h * 0.68), (1.1, 1.1), 0.5)  # magnet
            c.ellipse(M["copper"], (cx, h * 0.68), (1.5, 1.5), 0.05, profile="shell", inner=0.7)
        return c.sprite("headphones")
    w, h = 6.0, 5.0
    c = SpriteCanvas(w, h, s)
    c.rect(M["plastic"], 0, 0, w, h, 2.5, r=2.0)
    c.rect(M["battery"], 1.5, 3.0, 3.0, 1.4, 0.5, r=0.3)
    for cx in (1.8, 4.2):
        c.ellipse(M["steel"], (cx, 1.6), (0.45, 0.45), 0.4)
    return c.sprite("earbuds")


def hair_dryer(rng: Rng, s: float) -> Sprite:
    """A hair dryer: barrel with heating-wire coil, motor (steel and copper), handle, cable stub."""
    length, r = rng.uniform(18, 26), rng.uniform(3.5, 4.5)
    handle = rng.uniform(9, 14)
    c = SpriteCanvas(length, 2 * r + handle, s)
    cy = r
    c.rod(M["plastic"], (0, cy), (length, cy), r, wall_cm=0.25)
    # Heating element: a zig-zag resistance wire on a mica frame.
    zz = [(length * 0.45 + i * 0.45, cy + (1 if i % 2 else -1) * r * 0.6) for i in range(int(length * 0.45 / 0.45))]
    c.polyline(M["steel"], zz, 0.06, 0.06)
    c.rect(M["ceramic"], length * 0.45, cy - r * 0.6, length * 0.45, r * 1.2, 0.1)
    mx = length * 0.18
    c.rod(M["steel"], (mx, cy), (mx + 3.5, cy), 1.6)  # motor
    c.rod(M["copper"], (mx + 0.5, cy), (mx + 3.0, cy), 1.8, wall_cm=0.35)
    hx = length * 0.3
    c.rect(M["plastic"], hx, 2 * r - 0.5, 3.0, handle, 2.6, r=1.0)
    c.rect(M["pcb"], hx + 0.7, 2 * r, 1.6, 3.0, 0.4)
    c.polyline(M["copper"], [(hx + 1.5, 2 * r), (hx + 1.5, 2 * r + handle)], 0.12, 0.2)
    return c.sprite("hair_dryer")


def camera(rng: Rng, s: float) -> Sprite:
    """A compact or mirrorless camera: magnesium/plastic body, glass lens stack, battery."""
    w, h = rng.uniform(10, 14), rng.uniform(6, 9)
    c = SpriteCanvas(w, h + 3, s)
    c.rect(M["aluminium"], 0, 0, w, h, 0.5, r=0.8)
    c.walls(M["aluminium"], rounded_rect(0, 0, w, h, 0.8), 0.15, 4.0)
    c.rect(M["battery"], 0.8, 1.0, 2.0, h - 2.0, 1.2, r=0.2)
    c.rect(M["pcb"], 3.2, 1.0, w - 4.0, h - 2.0, 0.15)
    _components(c, rng, 3.2, 1.0, w - 4.0, h - 2.0, 8)
    lr = min(h, w) * 0.35
    for k in range(3):
        c.rect(M["glass"], w / 2 - lr, h + k * 0.9 - 1.5, 2 * lr, 0.6, 2 * lr * 0.6)
    c.walls(M["aluminium"], rounded_rect(w / 2 - lr - 0.2, h - 1.5, 2 * lr + 0.4, 4.0, 0.2), 0.15, 2 * lr)
    return c.sprite("camera")
