"""Everyday, mostly organic contents of luggage: clothes, books, food, drinks, toiletries, shoes.

Each factory draws one object upright at the scene scale ``s`` (pixels per cm) and returns its
:class:`~detectors.synth.xray_shapes.Sprite`. Sizes and thicknesses are those of real objects, so
their attenuation (and therefore their colour and darkness) follows from the material table.
Several of these are confusers for the threat classes: chocolate bars and food bricks look like
drug packages, books and paper stacks like cash bundles.
"""

from __future__ import annotations

import numpy as np

from detectors.synth.xray_materials import MATERIALS as M
from detectors.synth.xray_shapes import Sprite, SpriteCanvas, blob, ellipse_pts, rounded_rect

Rng = np.random.Generator


def clothes(rng: Rng, s: float) -> Sprite:
    """A crumpled or loosely folded garment: soft, uneven fabric with fold lines."""
    w, h = rng.uniform(14, 42), rng.uniform(12, 32)
    c = SpriteCanvas(w, h, s)
    outline = blob(rng, (w / 2, h / 2), (w / 2, h / 2), roughness=rng.uniform(0.1, 0.35))
    c.texture(
        M["fabric"],
        rng,
        outline,
        mean_cm=rng.uniform(4.0, 14.0),
        contrast=rng.uniform(0.25, 0.5),
        cell_cm=rng.uniform(2.0, 5.0),
        folds=rng.uniform(0.3, 1.0),
    )
    if rng.random() < 0.3:  # a zip or a row of buttons
        if rng.random() < 0.5:
            x = rng.uniform(0.3, 0.7) * w
            for y in np.arange(0.2 * h, 0.8 * h, rng.uniform(2.5, 4.0)):
                c.ellipse(M["plastic"], (x, float(y)), (0.6, 0.6), 0.3)
        else:
            y0, y1 = 0.15 * h, rng.uniform(0.5, 0.85) * h
            x = rng.uniform(0.3, 0.7) * w
            c.polyline(M["zinc"], [(x, y0), (x + rng.uniform(-2, 2), y1)], 0.6, 0.12)
            c.rect(M["zinc"], x - 0.6, y1 - 0.5, 1.2, 2.0, 0.25)
    return c.sprite("clothes")


def folded_clothes(rng: Rng, s: float) -> Sprite:
    """A folded shirt, jumper or trousers: a soft, roughly rectangular stack of fabric layers."""
    w, h = rng.uniform(20, 38), rng.uniform(15, 30)
    c = SpriteCanvas(w, h, s)
    for _ in range(int(rng.integers(2, 5))):
        # Each fold is a slightly smaller, slightly shifted soft rectangle.
        iw, ih = w * rng.uniform(0.75, 1.0), h * rng.uniform(0.7, 1.0)
        x0, y0 = rng.uniform(0, w - iw), rng.uniform(0, h - ih)
        pts = [
            (x + rng.normal(0, 0.4), y + rng.normal(0, 0.4))
            for x, y in rounded_rect(x0, y0, iw, ih, rng.uniform(2, 5), 3)
        ]
        c.texture(
            M["fabric"],
            rng,
            pts,
            mean_cm=rng.uniform(1.5, 4.0),
            contrast=0.35,
            cell_cm=rng.uniform(2, 4),
            folds=rng.uniform(0.2, 0.8),
        )
    return c.sprite("folded_clothes")


def book(rng: Rng, s: float) -> Sprite:
    """A book or magazine stack: a dense paper slab with a slightly thicker spine."""
    w, h = rng.uniform(12, 25), rng.uniform(17, 30)
    t = rng.uniform(0.5, 4.5)
    c = SpriteCanvas(w, h, s)
    c.rect(M["paper"], 0, 0, w, h, t, r=0.3)
    c.rect(M["paper"], 0, 0, 1.0, h, 0.3 * t)
    if rng.random() < 0.3:  # a second, smaller book on top
        w2, h2 = w * rng.uniform(0.6, 0.95), h * rng.uniform(0.6, 0.95)
        c.rect(M["paper"], rng.uniform(0, w - w2), rng.uniform(0, h - h2), w2, h2, rng.uniform(0.5, 3))
    return c.sprite("book")


def chocolate_bar(rng: Rng, s: float) -> Sprite:
    """A chocolate bar (organic brick with a groove grid) in foil: a drug-package confuser."""
    w, h = rng.uniform(8, 20), rng.uniform(4, 9)
    c = SpriteCanvas(w, h, s)
    t = rng.uniform(0.6, 1.3)
    c.rect(M["organic_dense"], 0, 0, w, h, t, r=0.3)
    nx, ny = int(rng.integers(3, 7)), int(rng.integers(2, 4))
    for i in range(1, nx):
        c.polyline(M["organic_dense"], [(i * w / nx, 0.2), (i * w / nx, h - 0.2)], 0.25, -0.35 * t)
    for j in range(1, ny):
        c.polyline(M["organic_dense"], [(0.2, j * h / ny), (w - 0.2, j * h / ny)], 0.25, -0.35 * t)
    c.rect(M["aluminium"], 0, 0, w, h, 0.002)  # foil: barely visible, as in reality
    return c.sprite("chocolate_bar")


def food_brick(rng: Rng, s: float) -> Sprite:
    """Cheese, sausage, a sandwich or a packed snack: dense organic with a rounded profile."""
    kind = rng.integers(0, 3)
    if kind == 0:  # block of cheese / butter
        w, h = rng.uniform(7, 16), rng.uniform(5, 10)
        c = SpriteCanvas(w, h, s)
        c.rect(M["organic_dense"], 0, 0, w, h, rng.uniform(2, 5), r=0.8)
    elif kind == 1:  # sausage / fruit: rounded
        w, h = rng.uniform(8, 25), rng.uniform(4, 8)
        c = SpriteCanvas(w, h, s)
        c.ellipse(M["water"], (w / 2, h / 2), (w / 2, h / 2), h * 0.9, profile="dome")
    else:  # wrapped sandwich
        w, h = rng.uniform(10, 18), rng.uniform(8, 14)
        c = SpriteCanvas(w, h, s)
        pts = blob(rng, (w / 2, h / 2), (w / 2, h / 2), 0.08)
        c.texture(M["organic_dense"], rng, pts, rng.uniform(1.5, 3.5), 0.3, 2.0)
    return c.sprite("food")


def bottle(rng: Rng, s: float) -> Sprite:
    """A lying bottle (PET or glass) with a liquid, neck and cap."""
    glass = rng.random() < 0.35
    length, radius = rng.uniform(15, 32), rng.uniform(2.5, 4.5)
    neck = rng.uniform(3, 7)
    body = length - neck
    c = SpriteCanvas(length, 2 * radius, s)
    shell, wall = (M["glass"], rng.uniform(0.25, 0.5)) if glass else (M["plastic"], rng.uniform(0.03, 0.08))
    cy = radius
    c.rod(shell, (0, cy), (body, cy), radius, wall_cm=wall)
    # Shoulder and neck taper toward the cap.
    r_neck = radius * rng.uniform(0.28, 0.4)
    c.rod(shell, (body, cy), (length - 1.2, cy), r_neck, wall_cm=min(wall, 0.9 * r_neck))
    c.ellipse(shell, (body, cy), (neck * 0.45, radius * 0.95), 2 * wall, profile="shell", inner=0.8)
    c.rod(M["plastic"], (length - 1.2, cy), (length, cy), r_neck * 1.15)
    fill = rng.uniform(0.3, 1.0)
    if fill > 0.35:
        c.rod(M["water"], (wall, cy), (body * fill, cy), radius - wall)
    if glass and rng.random() < 0.5:  # a metal crown cap or screw cap
        c.rod(M["steel"], (length - 1.0, cy), (length, cy), r_neck * 1.2, wall_cm=0.03)
    return c.sprite("bottle_glass" if glass else "bottle")


def can(rng: Rng, s: float) -> Sprite:
    """A lying drink can or aerosol (aluminium or tin-plate shell, liquid inside)."""
    aerosol = rng.random() < 0.5
    length, radius = (rng.uniform(12, 22), rng.uniform(2.2, 3.3)) if aerosol else (12.0, 3.3)
    c = SpriteCanvas(length, 2 * radius, s)
    shell = M["steel"] if aerosol and rng.random() < 0.5 else M["aluminium"]
    wall = 0.025 if shell.name == "steel" else rng.uniform(0.01, 0.04)
    c.rod(shell, (0, radius), (length, radius), radius, wall_cm=wall)
    # End caps seen edge-on, as a line of dense metal.
    for x in (0.0, length - 0.15):
        c.rect(shell, x, 0, 0.15, 2 * radius, 2 * radius * 0.15)
    c.rod(M["water"], (0.2, radius), (length * rng.uniform(0.5, 0.95), radius), radius - wall)
    if aerosol:
        c.rod(M["plastic"], (length, radius), (length + 0.01, radius), 1.0)
        c.polyline(M["plastic"], [(0.5, radius), (length - 0.5, radius)], 0.3, 0.3)  # dip tube
    return c.sprite("aerosol" if aerosol else "drink_can")


def toiletries(rng: Rng, s: float) -> Sprite:
    """A wash bag: a soft pouch holding small bottles, a tube, a toothbrush and a razor."""
    w, h = rng.uniform(18, 28), rng.uniform(10, 16)
    c = SpriteCanvas(w, h, s)
    c.texture(M["fabric"], rng, blob(rng, (w / 2, h / 2), (w / 2, h / 2), 0.08), 0.8, 0.2, 3.0)
    c.polyline(M["zinc"], [(1.5, 0.8), (w - 1.5, 0.8)], 0.5, 0.15)  # zip
    x = 1.5
    while x < w - 4:
        kind = rng.integers(0, 4)
        if kind == 0:  # small bottle standing... lying
            r = rng.uniform(1.5, 2.5)
            ln = min(rng.uniform(6, 12), h - 2)
            c.rod(M["plastic"], (x + r, 1.0), (x + r, 1.0 + ln), r, wall_cm=0.08)
            c.rod(M["water"], (x + r, 1.5), (x + r, 1.0 + ln * 0.9), r - 0.1)
            x += 2 * r + 0.5
        elif kind == 1:  # toothpaste tube, crimped end
            ln = min(rng.uniform(10, 16), h - 1.5)
            c.ellipse(M["organic_dense"], (x + 1.8, 1 + ln / 2), (1.6, ln / 2), 1.6, profile="dome")
            c.rect(M["aluminium"], x + 0.2, 1 + ln - 0.6, 3.2, 0.6, 0.1)
            x += 4.0
        elif kind == 2:  # toothbrush with a steel staple row in the head
            ln = min(18.0, h - 1)
            c.rect(M["plastic"], x, 0.5, 1.2, ln, 0.8, r=0.5)
            for yy in np.arange(1.0, 3.0, 0.5):
                c.rect(M["steel"], x + 0.2, float(yy), 0.8, 0.1, 0.05)
            x += 2.0
        else:  # disposable razor: plastic handle, tiny steel blades
            ln = min(14.0, h - 1)
            c.rect(M["plastic"], x, 0.5, 1.2, ln, 0.7, r=0.5)
            c.rect(M["plastic"], x - 0.8, 0.5, 2.8, 1.2, 0.6)
            c.rect(M["steel"], x - 0.6, 0.8, 2.4, 0.25, 0.04)
            x += 3.0
    return c.sprite("toiletries")


def shoe(rng: Rng, s: float) -> Sprite:
    """A shoe seen from above: rubber sole rim, walls of the upper, insole, eyelets, maybe a shank."""
    length, width = rng.uniform(24, 32), rng.uniform(8.5, 11.5)
    c = SpriteCanvas(length, width, s)
    # Half-width along the sole (heel at x=0): round heel, narrow waist, wide ball, round toe.
    xs = np.linspace(0.0, 1.0, 25)
    heel = 0.78 * np.sqrt(np.clip(1 - ((0.14 - xs) / 0.14) ** 2, 0, 1))
    body = 0.7 + 0.3 * np.clip((xs - 0.4) / 0.3, 0, 1) ** 1.5
    toe = np.sqrt(np.clip(1 - ((xs - 0.72) / 0.28) ** 2, 0, 1))
    half = width / 2 * np.where(xs < 0.14, heel, np.where(xs > 0.72, toe, np.maximum(body, 0.7)))
    bend = rng.uniform(-0.08, 0.08) * width  # asymmetric last: the toe points inwards
    mid = width / 2 + bend * xs**2
    top = [(float(length * x), float(m - hw)) for x, m, hw in zip(xs, mid, half, strict=True)]
    bottom = [(float(length * x), float(m + hw)) for x, m, hw in zip(xs[::-1], mid[::-1], half[::-1], strict=True)]
    outline = top + bottom
    sole = rng.uniform(1.5, 3.5)
    c.polygon(M["rubber"], outline, sole * 0.5)
    c.walls(M["rubber"], outline, 0.6, sole)  # the sole's rim is the dense outline
    c.walls(M["fabric"], outline, 0.3, rng.uniform(6, 12))  # the upper's sides
    c.ellipse(M["rubber"], (length * 0.15, width / 2), (length * 0.12, width * 0.35), sole * 0.6)  # heel
    if rng.random() < 0.4:  # steel shank under the arch
        c.rect(M["steel"], length * 0.3, width / 2 - 0.6, length * 0.25, 1.2, 0.12)
    if rng.random() < 0.6:  # eyelets along the lacing
        for x in np.linspace(length * 0.45, length * 0.7, 5):
            for y in (width / 2 - 1.5, width / 2 + 1.5):
                c.ellipse(M["steel"], (float(x), y), (0.35, 0.35), 0.04, profile="shell", inner=0.6)
    return c.sprite("shoe")


def umbrella(rng: Rng, s: float) -> Sprite:
    """A folded umbrella: steel shaft and ribs, fabric canopy, a plastic or wooden handle."""
    length = rng.uniform(24, 60)
    c = SpriteCanvas(length + 8, 7, s)
    cy = 3.5
    c.ellipse(M["fabric"], (length * 0.55, cy), (length * 0.42, 2.6), 4.0, profile="dome")
    c.rod(M["steel"], (2, cy), (length + 2, cy), 0.45, wall_cm=0.06)
    if length > 35:  # full-size: a long inner rod
        c.rod(M["steel"], (2, cy), (length + 2, cy), 0.2)
    for k in range(int(rng.integers(6, 9))):
        dy = (k - 3.5) * 0.5
        c.polyline(M["steel"], [(length * 0.2, cy + dy * 0.4), (length * 0.95, cy + dy)], 0.12, 0.12)
    c.rect(M["steel"], length * 0.15, cy - 1.0, 2.0, 2.0, 0.5)  # runner
    if rng.random() < 0.5:  # J handle
        c.polyline(M["plastic"], [(2, cy), (0.5, cy + 0.5), (0.3, cy + 2.5), (1.5, cy + 3.2)], 1.6, 1.5)
    else:
        c.rod(M["wood" if rng.random() < 0.5 else "plastic"], (0, cy), (6, cy), 1.4)
    return c.sprite("umbrella")


def belt(rng: Rng, s: float) -> Sprite:
    """A leather belt, coiled or lying straight, with a metal buckle (a classic metal confuser)."""
    coiled = rng.random() < 0.6
    if coiled:
        r = rng.uniform(4, 7)
        c = SpriteCanvas(2 * r + 6, 2 * r + 2, s)
        cx, cy = r + 1, r + 1
        for k in range(3):  # the strap stands on its edge: each turn is a dense ring
            rr = r - k * 1.1
            c.walls(M["rubber"], ellipse_pts((cx, cy), (rr, rr * rng.uniform(0.9, 1.0))), 0.35, 3.5)
        bx, by = cx + r - 0.5, cy - 2.5
    else:
        length = rng.uniform(40, 90)
        c = SpriteCanvas(length + 6, 6, s)
        c.rect(M["rubber"], 0, 1.2, length, 3.5, 0.35, r=0.8)
        for x in np.arange(length * 0.75, length - 2, 2.5):
            c.ellipse(M["rubber"], (float(x), 3.0), (0.3, 0.3), -0.35)  # punched holes
        bx, by = length, 0.5
    frame = [(bx, by), (bx + 5, by), (bx + 5, by + 5), (bx, by + 5)]
    metal = M["zinc"] if rng.random() < 0.5 else M["steel"]
    c.walls(metal, frame, 0.6, 0.4)
    c.polyline(metal, [(bx, by + 2.5), (bx + 4.6, by + 2.5)], 0.25, 0.25)  # prong
    return c.sprite("belt")


def paper_stack(rng: Rng, s: float) -> Sprite:
    """Documents, envelopes or a notebook: a thin paper slab, sometimes with staples or a spiral."""
    w, h = rng.uniform(15, 30), rng.uniform(21, 32)
    c = SpriteCanvas(w, h, s)
    c.rect(M["paper"], 0, 0, w, h, rng.uniform(0.1, 1.5))
    if rng.random() < 0.4:  # wire spiral binding
        for y in np.arange(1.0, h - 1.0, 0.8):
            c.ellipse(M["steel"], (0.6, float(y)), (0.5, 0.3), 0.05, profile="shell", inner=0.7)
    elif rng.random() < 0.5:
        c.polyline(M["steel"], [(1.0, 1.0), (2.0, 1.4)], 0.08, 0.08)  # staple
    return c.sprite("papers")


def clothes_layer(rng: Rng, s: float, width_cm: float, height_cm: float) -> Sprite:
    """Garments packed wall to wall in a bag: the orange mass that fills real suitcases."""
    w, h = width_cm * rng.uniform(0.55, 1.0), height_cm * rng.uniform(0.55, 1.0)
    c = SpriteCanvas(w, h, s)
    outline = blob(rng, (w / 2, h / 2), (w / 2, h / 2), roughness=rng.uniform(0.05, 0.2))
    c.texture(
        M["fabric"],
        rng,
        outline,
        mean_cm=rng.uniform(2.5, 8.0),
        contrast=rng.uniform(0.3, 0.6),
        cell_cm=rng.uniform(2.5, 6.0),
        folds=rng.uniform(0.4, 1.2),
    )
    return c.sprite("clothes")
