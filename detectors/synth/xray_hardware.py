"""Small harmless metal objects: keys, coins, tools, cutlery, glasses, watches, pens, padlocks.

These are the metal confusers of the threat classes: a spanner or a pair of pliers is as blue and
as dense as a knife, a handful of coins as dense as loose cartridges. None of them is labelled.
Factories take the random generator and the scene scale ``s`` (pixels per cm).
"""

from __future__ import annotations

import numpy as np

from detectors.synth.xray_materials import MATERIALS as M
from detectors.synth.xray_shapes import Sprite, SpriteCanvas, ellipse_pts, rounded_rect

Rng = np.random.Generator


def _key(c: SpriteCanvas, rng: Rng, x: float, y: float, angle: float, metal_name: str) -> None:
    """One key hanging from a ring at ``(x, y)``, pointing along ``angle`` (radians)."""
    metal = M[metal_name]
    ln = rng.uniform(4.5, 6.5)
    ca, sa = float(np.cos(angle)), float(np.sin(angle))

    def at(u: float, v: float) -> tuple[float, float]:
        return (x + u * ca - v * sa, y + u * sa + v * ca)

    head = [at(0.3, -1.2), at(2.4, -1.3), at(2.6, 1.3), at(0.3, 1.2)]
    c.polygon(metal, head, 0.2)
    c.ellipse(metal, at(0.9, 0), (0.3, 0.3), -0.2)  # the ring hole
    blade = [at(2.4, -0.45), at(ln, -0.35), at(ln + 0.3, 0.1), at(2.4, 0.45)]
    c.polygon(metal, blade, 0.18)
    for u in np.linspace(3.0, ln - 0.3, 5):  # bitting notches
        c.ellipse(metal, at(float(u), 0.5), (0.15, 0.2), -0.16 * rng.uniform(0.3, 1.0))


def keys(rng: Rng, s: float) -> Sprite:
    """A bunch of keys on a split ring, sometimes with a fob."""
    c = SpriteCanvas(16, 16, s)
    cx, cy = 8.0, 8.0
    c.walls(M["steel"], ellipse_pts((cx, cy), (1.4, 1.4), 20), 0.12, 0.25)
    n = int(rng.integers(1, 6))
    base = rng.uniform(0, 2 * np.pi)
    for k in range(n):
        a = base + k * rng.uniform(0.4, 0.9)
        _key(
            c,
            rng,
            cx + 1.3 * float(np.cos(a)),
            cy + 1.3 * float(np.sin(a)),
            a,
            str(rng.choice(["copper", "steel", "zinc"])),
        )
    if rng.random() < 0.4:  # plastic fob with an electronic chip
        a = base - 1.2
        fx, fy = cx + 3.5 * float(np.cos(a)), cy + 3.5 * float(np.sin(a))
        c.ellipse(M["plastic"], (fx, fy), (1.8, 2.5), 1.2, angle_deg=float(np.rad2deg(a)) + 90)
        c.ellipse(M["battery"], (fx, fy), (0.9, 0.9), 0.3)
    return c.sprite("keys")


def coins(rng: Rng, s: float) -> Sprite:
    """A few coins scattered or stacked (steel, cupronickel or brass discs)."""
    n = int(rng.integers(1, 9))
    c = SpriteCanvas(9, 9, s)
    for _ in range(n):
        r = rng.uniform(0.8, 1.4)
        x, y = rng.uniform(r, 9 - r), rng.uniform(r, 9 - r)
        metal = M[str(rng.choice(["copper", "steel", "zinc"]))]
        t = rng.uniform(0.15, 0.25)
        c.ellipse(metal, (x, y), (r, r), t)
        c.walls(metal, ellipse_pts((x, y), (r - 0.05, r - 0.05), 20), 0.1, 0.05)  # raised rim
    return c.sprite("coins")


def spanner(rng: Rng, s: float) -> Sprite:
    """An open-ended or combination spanner (wrench)."""
    length = rng.uniform(12, 25)
    width = length * rng.uniform(0.09, 0.12)
    jaw = width * 2.0
    c = SpriteCanvas(length + jaw, jaw + 0.5, s)
    cy = jaw / 2 + 0.25
    c.rect(M["steel"], jaw / 2, cy - width / 2, length - jaw / 2, width, 0.45, r=width / 3)
    for ex in (jaw / 2, length + jaw / 2 - 0.2):
        c.ellipse(M["steel"], (ex, cy), (jaw / 2, jaw / 2), 0.55)
    # Open jaw at one end, ring at the other.
    c.rect(M["steel"], -0.1, cy - width * 0.45, jaw * 0.6, width * 0.9, -0.55)
    c.ellipse(M["steel"], (length + jaw / 2 - 0.2, cy), (jaw * 0.28, jaw * 0.28), -0.55)
    return c.sprite("spanner")


def pliers(rng: Rng, s: float) -> Sprite:
    """Pliers: two steel arms crossing at a pivot, with plastic-dipped handles."""
    length = rng.uniform(14, 22)
    c = SpriteCanvas(length, 6, s)
    piv = length * 0.35
    spread = rng.uniform(0.8, 2.5)
    for sign in (-1, 1):
        arm = [(0.0, 3.0 + sign * 0.3), (piv, 3.0), (length, 3.0 + sign * spread)]
        c.polyline(M["steel"], arm[:2], 1.1, 0.5)
        c.polyline(M["steel"], arm[1:], 0.8, 0.45)
        c.polyline(M["plastic"], [(piv + 2, 3.0 + sign * spread * 0.2), (length, 3.0 + sign * spread)], 1.5, 1.0)
    c.ellipse(M["steel"], (piv, 3.0), (0.7, 0.7), 0.5)
    return c.sprite("pliers")


def screwdriver(rng: Rng, s: float) -> Sprite:
    """A screwdriver: plastic handle with a steel shaft (blade-shaped but unlabelled)."""
    shaft, handle = rng.uniform(5, 15), rng.uniform(8, 11)
    c = SpriteCanvas(shaft + handle, 3.2, s)
    c.rod(M["plastic"], (0, 1.6), (handle, 1.6), 1.4, round_ends=True)
    c.rod(M["steel"], (handle - 2, 1.6), (handle + shaft, 1.6), rng.uniform(0.2, 0.35))
    return c.sprite("screwdriver")


def cutlery(rng: Rng, s: float) -> Sprite:
    """A spoon or a fork (stainless steel)."""
    length = rng.uniform(14, 20)
    c = SpriteCanvas(length, 4, s)
    c.polygon(M["steel"], [(0, 1.6), (length * 0.65, 1.85), (length * 0.65, 2.15), (0, 2.4)], 0.25)
    c.ellipse(M["steel"], (0.8, 2.0), (0.9, 0.7), 0.25)
    if rng.random() < 0.5:  # spoon bowl: dished, so its rim is denser
        c.ellipse(M["steel"], (length * 0.83, 2.0), (length * 0.17, 1.7), 0.15)
        c.walls(M["steel"], ellipse_pts((length * 0.83, 2.0), (length * 0.17, 1.7), 24), 0.08, 0.6)
        return c.sprite("spoon")
    x0 = length * 0.65
    c.rect(M["steel"], x0, 0.6, 1.5, 2.8, 0.25, r=0.4)
    for k in range(4):
        y = 0.8 + k * 0.8
        c.rect(M["steel"], x0 + 1.4, y, length - x0 - 1.4, 0.35, 0.22)
    return c.sprite("fork")


def glasses(rng: Rng, s: float) -> Sprite:
    """Spectacles (metal frame, plastic lenses), folded, possibly in a hard case."""
    c = SpriteCanvas(15, 6, s)
    for cx in (3.7, 11.3):
        c.ellipse(M["plastic"], (cx, 3.0), (2.8, 2.2), 0.3)
        c.walls(M["steel"], ellipse_pts((cx, 3.0), (2.9, 2.3), 24), 0.12, 0.2)
    c.polyline(M["steel"], [(6.5, 2.4), (7.5, 2.0), (8.5, 2.4)], 0.12, 0.2)
    c.polyline(M["steel"], [(1.0, 1.2), (14.0, 1.4)], 0.15, 0.15)  # folded temples
    if rng.random() < 0.5:
        c.walls(M["plastic"], rounded_rect(0, 0, 15, 6, 2.5), 0.2, 4.0)
        c.walls(M["steel"], rounded_rect(0.1, 0.1, 14.8, 5.8, 2.4), 0.02, 4.0)  # spring-steel case
    return c.sprite("glasses")


def watch(rng: Rng, s: float) -> Sprite:
    """A wristwatch: steel case and movement, a steel bracelet or a strap."""
    c = SpriteCanvas(4.5, 20, s)
    c.ellipse(M["steel"], (2.25, 10), (2.0, 2.0), 0.5)
    c.ellipse(M["copper"], (2.25, 10), (1.4, 1.4), 0.25)
    if rng.random() < 0.5:
        for y in np.arange(0.5, 19.5, 0.7):
            if abs(y - 10) > 2:
                c.rect(M["steel"], 0.6, float(y), 3.3, 0.55, 0.25)
    else:
        c.rect(M["rubber"], 0.8, 0, 2.9, 20, 0.4, r=1.0)
        c.walls(M["steel"], rounded_rect(0.5, 1.0, 3.5, 2.5, 0.2), 0.2, 0.3)
    return c.sprite("watch")


def pen(rng: Rng, s: float) -> Sprite:
    """A pen: plastic barrel, ink refill, spring and clip."""
    length = rng.uniform(12, 15)
    c = SpriteCanvas(length, 1.4, s)
    c.rod(M["plastic"], (0, 0.7), (length, 0.7), 0.55, wall_cm=0.1)
    c.rod(M["plastic"], (0.5, 0.7), (length - 1, 0.7), 0.15)
    c.rod(M["steel"], (length - 1.2, 0.7), (length, 0.7), 0.12)  # tip
    c.polyline(M["steel"], [(length * 0.6 + i * 0.15, 0.7 + (0.25 if i % 2 else -0.25)) for i in range(10)], 0.03, 0.03)
    if rng.random() < 0.6:
        c.rect(M["steel"], 0.5, 0.05, 4.0, 0.25, 0.05)
    return c.sprite("pen")


def padlock(rng: Rng, s: float) -> Sprite:
    """A luggage padlock: brass or zinc body with a steel shackle."""
    w = rng.uniform(2.5, 4.5)
    c = SpriteCanvas(w, w * 1.6, s)
    c.rect(M["zinc"], 0, w * 0.6, w, w, 1.0, r=0.3)
    c.polyline(M["steel"], ellipse_pts((w / 2, w * 0.6), (w * 0.33, w * 0.5), 16, 180, 360), 0.35, 0.35)
    return c.sprite("padlock")
