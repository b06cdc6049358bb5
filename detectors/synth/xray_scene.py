"""Composing a scan: containers on the belt, their contents, and the threats placed among them.

Every object is a sprite of attenuation (see :mod:`detectors.synth.xray_shapes`). A placement is
an affine map from the sprite's pixels to the scene's pixels (rotation, mirror, translation, and
the scanner's anisotropic pixel aspect); the sprite is warped with ``cv2.warpAffine`` into the
bounding box it covers and *added* to the scene, which is Beer–Lambert in the log domain.

Threats are placed with an intended difficulty (``easy``: in the open; ``hard``: among clutter;
``hidden``: under or inside a dense item), but the recorded concealment is measured afterwards from
what actually lies on the same rays — see :func:`concealment_level`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from detectors.synth import xray_clutter as clutter
from detectors.synth import xray_devices as devices
from detectors.synth import xray_hardware as hardware
from detectors.synth.xray_containers import CONTAINER_FACTORIES, Container, backpack, handbag
from detectors.synth.xray_shapes import Sprite, modulate
from detectors.synth.xray_threats import THREAT_FACTORIES

FloatArray = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float64]
Rng = np.random.Generator
Concealment = Literal["easy", "hard", "hidden"]
Factory = Callable[[Rng, float], Sprite]

CONCEALMENT_LEVELS: tuple[Concealment, ...] = ("easy", "hard", "hidden")

#: Low-energy attenuation of *other* objects above which a threat pixel counts as overlapped
#: (transmission below ~55 %: a folded jumper, a book, a few mm of aluminium, ~0.5 mm of steel).
OVERLAP_ATTENUATION = 0.6
#: ... and as overlapped by dense clutter (transmission below ~17 %: laptop battery and board
#: stacks, a few mm of steel, a thick stack of books, a bag packed solid with garments).
DENSE_ATTENUATION = 1.8
#: Fraction of a threat's pixels that must be overlapped for ``hard``.
HARD_FRACTION = 0.3
#: Fraction of a threat's pixels that must be densely overlapped for ``hidden``.
HIDDEN_FRACTION = 0.4
#: Threats whose footprint is less than this fraction inside the frame are not placed.
MIN_VISIBLE_FRACTION = 0.7


def concealment_level(other_low: FloatArray) -> tuple[Concealment, float, float]:
    """Concealment of a threat from the attenuation of everything else on its pixels' rays.

    Args:
        other_low: ``(N,)`` low-energy attenuation of all other objects on each of the threat's N
            footprint pixels (the scene minus the threat itself).

    Returns:
        ``(level, overlapped_fraction, dense_fraction)``: ``hidden`` when at least
        :data:`HIDDEN_FRACTION` of the pixels lie under dense clutter, else ``hard`` when at least
        :data:`HARD_FRACTION` are overlapped, else ``easy``. An empty footprint is ``easy``.
    """
    if other_low.size == 0:
        return "easy", 0.0, 0.0
    over = float(np.mean(other_low > OVERLAP_ATTENUATION))
    dense = float(np.mean(other_low > DENSE_ATTENUATION))
    if dense >= HIDDEN_FRACTION:
        return "hidden", over, dense
    if over >= HARD_FRACTION:
        return "hard", over, dense
    return "easy", over, dense


def placement(sprite: Sprite, cx: float, cy: float, angle_deg: float, mirror: bool = False) -> Matrix:
    """``3x3`` affine map from sprite pixels to parent pixels.

    The sprite's centre goes to ``(cx, cy)``; it is mirrored (left-right) first if asked, then
    rotated by ``angle_deg`` (counter-clockwise on screen, y pointing down).
    """
    w, h = sprite.size
    t0 = np.array([[1.0, 0.0, -w / 2], [0.0, 1.0, -h / 2], [0.0, 0.0, 1.0]])
    f = np.diag([-1.0 if mirror else 1.0, 1.0, 1.0])
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), np.sin(a), 0.0], [-np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    t1 = np.array([[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]])
    return t1 @ r @ f @ t0


@dataclass
class Patch:
    """A sprite warped into the scene: its attenuation over the bounding box it covers.

    Attributes:
        x0: left column of the box in the scene.
        y0: top row.
        att: ``(h, w, 2)`` float32 attenuation of the object alone over the box.
        full_area: footprint area in scene pixels had the frame been unbounded.
    """

    x0: int
    y0: int
    att: FloatArray
    full_area: float

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """``(h, w)`` bool: the object's footprint (attenuation > 0) inside the box."""
        return np.asarray(self.att[..., 0] > 0)

    @property
    def visible_fraction(self) -> float:
        """Share of the footprint that lies inside the frame."""
        return float(self.mask.sum()) / max(self.full_area, 1.0)


def warp(sprite: Sprite, matrix: Matrix, width: int, height: int) -> Patch | None:
    """Warp a sprite into a ``width x height`` scene; ``None`` when it lands fully outside."""
    w, h = sprite.size
    corners = matrix @ np.array([[0, w, w, 0], [0, 0, h, h], [1, 1, 1, 1]], dtype=np.float64)
    x0 = max(0, int(np.floor(corners[0].min())) - 1)
    y0 = max(0, int(np.floor(corners[1].min())) - 1)
    x1 = min(width, int(np.ceil(corners[0].max())) + 2)
    y1 = min(height, int(np.ceil(corners[1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    m = matrix[:2].copy()
    m[0, 2] -= x0
    m[1, 2] -= y0
    att = cv2.warpAffine(
        sprite.att,
        m,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0.0, 0.0, 0.0, 0.0),
    )
    att = np.asarray(att, dtype=np.float32).reshape(y1 - y0, x1 - x0, 2)
    if not att[..., 0].any():
        return None
    full_area = float(np.count_nonzero(sprite.att[..., 0])) * abs(float(np.linalg.det(matrix[:2, :2])))
    return Patch(x0, y0, att, full_area)


@dataclass
class SceneThreat:
    """A labelled object placed in the scene.

    Attributes:
        class_name: threat class (a name of ``XRAY_CLASSES``).
        subtype: variant (``"pistol"``, ``"folding_knife"``, ...).
        intent: difficulty the placement aimed at.
        patch: the object's own attenuation where it was composited.
        concealment: measured level, set by :meth:`Scene.measure_concealment`.
        overlapped_fraction: share of its pixels under other objects (> OVERLAP_ATTENUATION).
        dense_fraction: share under dense clutter (> DENSE_ATTENUATION).
    """

    class_name: str
    subtype: str
    intent: Concealment
    patch: Patch
    concealment: Concealment = "easy"
    overlapped_fraction: float = 0.0
    dense_fraction: float = 0.0


@dataclass
class Scene:
    """Ideal attenuation of a whole scan and its threats.

    Attributes:
        att: ``(H, W, 2)`` float32 attenuation (low, high energy) before the scanner's blur and noise.
        threats: placed, labelled objects.
        containers: kinds of the containers on the belt (left to right).
    """

    att: FloatArray
    threats: list[SceneThreat] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.att.shape[0])

    @property
    def width(self) -> int:
        return int(self.att.shape[1])

    def add(self, patch: Patch) -> None:
        """Composite a patch: attenuations add along every ray."""
        h, w = patch.att.shape[:2]
        self.att[patch.y0 : patch.y0 + h, patch.x0 : patch.x0 + w] += patch.att

    def other_low(self, patch: Patch, exclude_self: bool = True) -> FloatArray:
        """Low-energy attenuation of everything but ``patch`` on the patch's footprint pixels."""
        h, w = patch.att.shape[:2]
        region = self.att[patch.y0 : patch.y0 + h, patch.x0 : patch.x0 + w, 0]
        mask = patch.mask
        other = region[mask]
        if exclude_self:
            other = other - patch.att[..., 0][mask]
        return np.asarray(other, dtype=np.float32)

    def measure_concealment(self) -> None:
        """Set every threat's concealment from the final scene (other threats count as clutter)."""
        for t in self.threats:
            t.concealment, t.overlapped_fraction, t.dense_fraction = concealment_level(self.other_low(t.patch))


# ----------------------------------------------------------------------------------- contents
_CLUTTER: tuple[tuple[Factory, float, float], ...] = (
    # factory, weight in soft bags/suitcases, weight in trays and parcels
    (clutter.clothes, 3.0, 0.8),
    (clutter.folded_clothes, 2.0, 0.6),
    (clutter.book, 1.0, 0.8),
    (clutter.paper_stack, 0.8, 0.8),
    (clutter.chocolate_bar, 0.6, 0.4),
    (clutter.food_brick, 0.6, 0.4),
    (clutter.bottle, 1.0, 1.5),
    (clutter.can, 0.6, 0.8),
    (clutter.toiletries, 1.0, 1.0),
    (clutter.shoe, 1.0, 1.2),
    (clutter.umbrella, 0.5, 0.6),
    (clutter.belt, 0.6, 1.0),
    (devices.laptop, 0.8, 2.5),
    (devices.phone, 0.8, 1.8),
    (devices.tablet, 0.4, 1.0),
    (devices.cable, 2.5, 1.5),
    (devices.charger, 1.0, 1.0),
    (devices.power_bank, 0.6, 0.8),
    (devices.loose_batteries, 0.5, 0.5),
    (devices.headphones, 0.6, 0.8),
    (devices.hair_dryer, 0.4, 0.3),
    (devices.camera, 0.3, 0.5),
    (hardware.keys, 0.7, 1.2),
    (hardware.coins, 0.5, 0.9),
    (hardware.spanner, 0.3, 0.3),
    (hardware.pliers, 0.3, 0.3),
    (hardware.screwdriver, 0.3, 0.3),
    (hardware.cutlery, 0.5, 0.4),
    (hardware.glasses, 0.5, 0.6),
    (hardware.watch, 0.4, 0.7),
    (hardware.pen, 0.6, 0.5),
    (hardware.padlock, 0.3, 0.3),
)
_SOFT_WEIGHTS = np.array([w for _, w, _ in _CLUTTER]) / sum(w for _, w, _ in _CLUTTER)
_TRAY_WEIGHTS = np.array([w for _, _, w in _CLUTTER]) / sum(w for _, _, w in _CLUTTER)

# Dense items a threat can be hidden under or inside, and the longest threat side (cm) each hides.
_CONCEALERS: tuple[tuple[Factory, float], ...] = (
    (devices.laptop, 30.0),
    (devices.tablet, 20.0),
    (devices.hair_dryer, 14.0),
    (devices.camera, 9.0),
    (devices.power_bank, 8.0),
    (devices.charger, 6.0),
    (clutter.book, 18.0),
    (clutter.shoe, 18.0),
    (clutter.bottle, 12.0),
    (clutter.toiletries, 14.0),
)

_CONTAINER_WEIGHTS = np.array([w for _, w in CONTAINER_FACTORIES]) / sum(w for _, w in CONTAINER_FACTORIES)


@dataclass
class _Slot:
    """A placed container: its interior in scene coordinates is ``matrix`` applied to ``interior``."""

    container: Container
    matrix: Matrix
    visible: float


def _sample_point(rng: Rng, slot: _Slot, sprite: Sprite | None = None, angle: float = 0.0) -> tuple[float, float]:
    """A centre in the container's interior such that ``sprite`` rotated by ``angle`` stays inside.

    Items larger than the interior are centred along that axis (packed corner to corner).
    """
    x0, y0, x1, y1 = slot.container.interior
    hw = hh = 0.0
    if sprite is not None:
        w, h = sprite.size
        a = np.deg2rad(angle)
        hw = (abs(w * np.cos(a)) + abs(h * np.sin(a))) / 2 * 0.9
        hh = (abs(w * np.sin(a)) + abs(h * np.cos(a))) / 2 * 0.9
    lo_x, hi_x = x0 + hw, x1 - hw
    lo_y, hi_y = y0 + hh, y1 - hh
    cx = float(rng.uniform(lo_x, hi_x)) if hi_x > lo_x else (x0 + x1) / 2
    cy = float(rng.uniform(lo_y, hi_y)) if hi_y > lo_y else (y0 + y1) / 2
    return cx, cy


def _item_angle(rng: Rng) -> float:
    if rng.random() < 0.5:  # packed along the container's sides
        return float(rng.choice([0.0, 90.0, 180.0, 270.0]) + rng.normal(0, 6))
    return float(rng.uniform(0, 360))


class SceneBuilder:
    """Builds one scene from one random generator; every choice comes from ``rng``.

    Args:
        rng: the scene's random generator.
        width: scene width in pixels.
        height: scene height in pixels.
    """

    def __init__(self, rng: Rng, width: int, height: int) -> None:
        if width < 32 or height < 32:
            raise ValueError(f"scan size must be at least 32x32 pixels, got {width}x{height}")
        self.rng = rng
        self.width, self.height = width, height
        # Field of view along the belt; real frames show whole bags small in a mostly white image.
        fov_cm = float(rng.uniform(65.0, 135.0))
        self.s = width / fov_cm
        # Scanners' pixel aspect is rarely 1, and exports of long belt strips are often squeezed
        # into a square image: objects come out stretched across the belt.
        self.aspect = np.diag([1.0, float(rng.uniform(0.9, 1.6)), 1.0])
        self.scene = Scene(np.zeros((height, width, 2), dtype=np.float32))
        self.slots: list[_Slot] = []

    # ------------------------------------------------------------------------------------ belt
    def place_containers(self) -> None:
        """Put one to three containers along the belt, some possibly cut off by the frame."""
        rng = self.rng
        n = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
        items: list[tuple[Container, float, bool, float, float]] = []
        for _ in range(n):
            factory = CONTAINER_FACTORIES[int(rng.choice(len(CONTAINER_FACTORIES), p=_CONTAINER_WEIGHTS))][0]
            cont = factory(rng, self.s)
            # Bags are mostly put down along the belt; some lie askew, a few at any angle.
            u = rng.random()
            if cont.kind == "tray" or u < 0.65:
                angle = float(rng.normal(0, 5) + rng.choice([0.0, 180.0]))
            elif u < 0.85:
                angle = float(rng.normal(0, 25) + rng.choice([0.0, 90.0, 180.0, 270.0]))
            else:
                angle = float(rng.uniform(0, 360))
            mirror = bool(rng.random() < 0.5)
            w, h = cont.sprite.size
            a = np.deg2rad(angle)
            bw = abs(w * np.cos(a)) + abs(h * np.sin(a))
            bh = (abs(w * np.sin(a)) + abs(h * np.cos(a))) * self.aspect[1, 1]
            items.append((cont, angle, mirror, float(bw), float(bh)))
        gaps = [float(rng.uniform(-2, 12)) * self.s for _ in range(n - 1)]
        span = sum(it[3] for it in items) + sum(gaps)
        if span < self.width and rng.random() < 0.75:
            x = float(rng.uniform(0.02 * self.width, max(0.02 * self.width, 0.98 * self.width - span)))
        else:  # conveyor position cuts a container at the frame edge
            x = float(
                rng.uniform(
                    min(0.0, self.width - span) - 0.3 * items[0][3], max(0.0, self.width - span) + 0.3 * items[-1][3]
                )
            )
        for k, (cont, angle, mirror, bw, bh) in enumerate(items):
            cx = x + bw / 2
            cy = self.height / 2 + float(rng.uniform(-0.5, 0.5)) * max(0.0, self.height - bh) * 0.8
            m = self.aspect @ placement(cont.sprite, cx, cy / self.aspect[1, 1], angle, mirror)
            patch = warp(cont.sprite, m, self.width, self.height)
            if patch is not None:
                self.scene.add(patch)
                self.slots.append(_Slot(cont, m, patch.visible_fraction))
                self.scene.containers.append(cont.kind)
            x += bw + (gaps[k] if k < len(gaps) else 0.0)

    def _put(self, sprite: Sprite, slot: _Slot, cx: float, cy: float, angle: float) -> Patch | None:
        sprite = modulate(sprite, self.rng, float(self.rng.uniform(0.05, 0.2)), cell_px=float(self.rng.uniform(3, 10)))
        m = slot.matrix @ placement(sprite, cx, cy, angle, bool(self.rng.random() < 0.5))
        patch = warp(sprite, m, self.width, self.height)
        if patch is not None:
            self.scene.add(patch)
        return patch

    def fill(self, slot: _Slot, depth: int = 0) -> None:
        """Pack a container with clutter; trays sometimes hold a soft bag with its own contents."""
        rng = self.rng
        cont = slot.container
        x0, y0, x1, y1 = cont.interior
        area_cm2 = (x1 - x0) * (y1 - y0) / self.s**2
        soft = cont.kind in ("suitcase", "backpack", "handbag")
        weights = _SOFT_WEIGHTS if soft else _TRAY_WEIGHTS
        if cont.kind == "tray" and depth == 0 and rng.random() < 0.3:
            inner = (handbag if rng.random() < 0.5 else backpack)(rng, self.s)
            w, h = inner.sprite.size
            if w < (x1 - x0) * 1.1 and h < (y1 - y0) * 1.3:
                angle = float(rng.normal(0, 8))
                cx, cy = _sample_point(rng, slot, inner.sprite, angle)
                m = slot.matrix @ placement(inner.sprite, cx, cy, angle, bool(rng.random() < 0.5))
                patch = warp(inner.sprite, m, self.width, self.height)
                if patch is not None:
                    self.scene.add(patch)
                    self.fill(_Slot(inner, m, patch.visible_fraction), depth + 1)
        if soft:  # garments packed wall to wall first, the other contents among them
            w_cm, h_cm = (x1 - x0) / self.s, (y1 - y0) / self.s
            for _ in range(int(rng.integers(1, 4))):
                layer = clutter.clothes_layer(rng, self.s, w_cm, h_cm)
                cx, cy = _sample_point(rng, slot, layer, 0.0)
                self._put(layer, slot, cx, cy, float(rng.choice([0.0, 180.0]) + rng.normal(0, 4)))
        n = int(rng.poisson(max(1.0, cont.fill * area_cm2 / 1000.0)))
        max_side = max(x1 - x0, y1 - y0) * 1.15
        for _ in range(n):
            factory = _CLUTTER[int(rng.choice(len(_CLUTTER), p=weights))][0]
            sprite = factory(rng, self.s)
            if max(sprite.size) > max_side:
                continue
            angle = _item_angle(rng)
            cx, cy = _sample_point(rng, slot, sprite, angle)
            self._put(sprite, slot, cx, cy, angle)

    # --------------------------------------------------------------------------------- threats
    def _candidate(self, sprite: Sprite, slot: _Slot, cx: float, cy: float, angle: float, mirror: bool) -> Patch | None:
        m = slot.matrix @ placement(sprite, cx, cy, angle, mirror)
        patch = warp(sprite, m, self.width, self.height)
        if patch is None or patch.visible_fraction < MIN_VISIBLE_FRACTION:
            return None
        for t in self.scene.threats:  # threats do not sit on top of each other
            if _overlap(patch, t.patch) > 0.05 * patch.mask.sum():
                return None
        return patch

    def place_threat(self, class_name: str, intent: Concealment) -> bool:
        """Draw a threat of ``class_name`` and place it following ``intent``; False if no room."""
        rng = self.rng
        slots = [sl for sl in self.slots if sl.visible > 0.5]
        if not slots:
            return False
        slot = slots[int(rng.integers(0, len(slots)))]
        sprite = THREAT_FACTORIES[class_name](rng, self.s)
        sprite = modulate(sprite, rng, float(rng.uniform(0.03, 0.1)), cell_px=float(rng.uniform(3, 8)))
        if intent == "hidden":
            patch = self._hide(sprite, slot)
        else:
            best: tuple[float, Patch] | None = None
            for _ in range(16):
                angle = _item_angle(rng)
                cx, cy = _sample_point(rng, slot, sprite, angle)
                patch_c = self._candidate(sprite, slot, cx, cy, angle, bool(rng.random() < 0.5))
                if patch_c is None:
                    continue
                score = _placement_score(self.scene.other_low(patch_c, exclude_self=False), intent)
                if best is None or score < best[0]:
                    best = (score, patch_c)
            patch = best[1] if best is not None else None
        if patch is None:
            return False
        self.scene.add(patch)
        self.scene.threats.append(SceneThreat(class_name, sprite.name, intent, patch))
        return True

    def _hide(self, sprite: Sprite, slot: _Slot) -> Patch | None:
        """Put a dense item in the container and the threat under it (or inside it)."""
        rng = self.rng
        longest = max(sprite.size) / self.s
        options = [f for f, cap in _CONCEALERS if cap >= longest * 0.8] or [devices.laptop]
        concealer = options[int(rng.integers(0, len(options)))](rng, self.s)
        for _ in range(6):
            angle = _item_angle(rng)
            cx, cy = _sample_point(rng, slot, concealer, angle)
            m = slot.matrix @ placement(concealer, cx, cy, angle, False)
            cpatch = warp(concealer, m, self.width, self.height)
            if cpatch is None or cpatch.visible_fraction < 0.8:
                continue
            for _ in range(6):
                jitter = max(1.0, 0.15 * min(concealer.size))
                tx, ty = cx + float(rng.normal(0, jitter)), cy + float(rng.normal(0, jitter))
                tpatch = self._candidate(
                    sprite,
                    slot,
                    tx,
                    ty,
                    angle + float(rng.choice([0.0, 90.0, 180.0]) + rng.normal(0, 10)),
                    bool(rng.random() < 0.5),
                )
                if tpatch is not None:
                    self.scene.add(cpatch)
                    return tpatch
        return None


def _placement_score(other_low: FloatArray, intent: Concealment) -> float:
    """How well a candidate spot suits the intent; lower is better.

    ``easy`` wants the clearest spot, ``hard`` the most cluttered one that is not yet densely
    covered (dense cover is what ``hidden`` placements are for).
    """
    if other_low.size == 0:
        return 0.0
    over = float(np.mean(other_low > OVERLAP_ATTENUATION))
    if intent == "easy":
        return over
    dense = float(np.mean(other_low > DENSE_ATTENUATION))
    return -over + (2.0 if dense > HIDDEN_FRACTION else 0.0)


def _overlap(a: Patch, b: Patch) -> int:
    """Number of scene pixels where the footprints of two patches intersect."""
    ah, aw = a.att.shape[:2]
    bh, bw = b.att.shape[:2]
    x0, y0 = max(a.x0, b.x0), max(a.y0, b.y0)
    x1, y1 = min(a.x0 + aw, b.x0 + bw), min(a.y0 + ah, b.y0 + bh)
    if x1 <= x0 or y1 <= y0:
        return 0
    ma = a.mask[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0]
    mb = b.mask[y0 - b.y0 : y1 - b.y0, x0 - b.x0 : x1 - b.x0]
    return int(np.count_nonzero(ma & mb))


def compose_scene(
    rng: Rng,
    width: int,
    height: int,
    class_names: Sequence[str],
    threat_counts: Sequence[float] = (0.12, 0.55, 0.23, 0.10),
    intents: Sequence[float] = (0.45, 0.3, 0.25),
) -> Scene:
    """Build a complete scene.

    Args:
        rng: the scene's random generator (the only source of randomness).
        width: pixels.
        height: pixels.
        class_names: threat classes to draw from (uniformly).
        threat_counts: probabilities of placing 0, 1, 2, ... threats.
        intents: probabilities of aiming at ``easy``, ``hard`` and ``hidden``.

    Returns:
        The scene with measured concealment for every threat.
    """
    b = SceneBuilder(rng, width, height)
    b.place_containers()
    for slot in list(b.slots):
        b.fill(slot)
    p_counts = np.asarray(threat_counts, dtype=np.float64)
    p_intent = np.asarray(intents, dtype=np.float64)
    n = int(rng.choice(len(p_counts), p=p_counts / p_counts.sum()))
    for _ in range(n):
        name = class_names[int(rng.integers(0, len(class_names)))]
        intent = CONCEALMENT_LEVELS[int(rng.choice(3, p=p_intent / p_intent.sum()))]
        b.place_threat(name, intent)
    b.scene.measure_concealment()
    return b.scene
