"""Drawing one object as a pair of attenuation maps (a *sprite*).

Every object of a scan is drawn upright on its own small canvas, in centimetres, and stored as the
Beer–Lambert line integrals it adds at the two energies (see :mod:`detectors.synth.xray_materials`).
The scene later rotates and places the sprite with one ``cv2.warpAffine`` and composites it by
addition, which is exact in the log domain.

The primitives return *projected* thickness — the path length of a vertical ray through a 3-D
solid — so a lying cylinder is thickest on its axis, a hollow tube or a box wall shows up as a
bright (dense) outline, and a thin sheet is faint: the cues that make real scans readable.

Coordinates: canvas centimetres, origin at the top-left of the object's extent, x right, y down.
Canvas pixels are ``pad + cm * px_per_cm``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors.synth.xray_materials import Material

FloatArray = npt.NDArray[np.float32]
Point = tuple[float, float]

_SHIFT = 4  # cv2 drawing sub-pixel bits: vertices are placed to 1/16 px
_ONE = float(1 << _SHIFT)


@dataclass
class Sprite:
    """One object rendered upright on its own canvas.

    Attributes:
        att: ``(h, w, 2)`` float32 attenuation ``-ln(I/I0)`` added by the object, low then high
            energy; exactly 0 outside the object's footprint.
        name: what the object is (``"laptop"``, ``"pistol"``, ...).
    """

    att: FloatArray
    name: str

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in canvas pixels."""
        return int(self.att.shape[1]), int(self.att.shape[0])


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell_px: float) -> FloatArray:
    """Band-limited noise: unit-variance Gaussian values on a coarse grid, bicubically upsampled.

    Args:
        rng: random generator.
        height: output rows.
        width: output columns.
        cell_px: grid spacing in pixels (feature size of the noise).

    Returns:
        ``(height, width)`` float32, roughly zero mean, values mostly in ``[-2, 2]``.
    """
    gh = max(2, int(np.ceil(height / max(cell_px, 1.0))) + 2)
    gw = max(2, int(np.ceil(width / max(cell_px, 1.0))) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    out = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.asarray(out, dtype=np.float32)


def rounded_rect(x: float, y: float, w: float, h: float, r: float, n: int = 4) -> list[Point]:
    """Vertices of a rectangle with rounded corners (``n`` segments per corner), clockwise."""
    r = max(0.0, min(r, w / 2, h / 2))
    if r == 0:
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    pts: list[Point] = []
    corners = ((x + w - r, y + r, -90.0), (x + w - r, y + h - r, 0.0), (x + r, y + h - r, 90.0))
    for cx, cy, start in ((x + r, y + r, 180.0), *corners):
        for k in range(n + 1):
            a = np.deg2rad(start + 90.0 * k / n)
            pts.append((cx + r * float(np.cos(a)), cy + r * float(np.sin(a))))
    return pts


class SpriteCanvas:
    """Accumulates the attenuation of an object's parts on an upright canvas.

    Args:
        width_cm: extent of the object along x, cm.
        height_cm: extent along y, cm.
        px_per_cm: scene scale.
        pad_px: empty border kept around the object so rotation never clips it.
    """

    def __init__(self, width_cm: float, height_cm: float, px_per_cm: float, pad_px: int = 2) -> None:
        if width_cm <= 0 or height_cm <= 0 or px_per_cm <= 0:
            raise ValueError(f"canvas needs positive size and scale, got {width_cm}x{height_cm} cm @ {px_per_cm}")
        self.s = float(px_per_cm)
        self.pad = int(pad_px)
        w = int(np.ceil(width_cm * self.s)) + 2 * self.pad + 1
        h = int(np.ceil(height_cm * self.s)) + 2 * self.pad + 1
        self.att: FloatArray = np.zeros((h, w, 2), dtype=np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the canvas in pixels."""
        return int(self.att.shape[0]), int(self.att.shape[1])

    def px(self, x_cm: float, y_cm: float) -> tuple[float, float]:
        """Canvas pixel coordinates of a point given in canvas centimetres."""
        return self.pad + x_cm * self.s, self.pad + y_cm * self.s

    def sprite(self, name: str) -> Sprite:
        """The finished sprite (negative round-off clipped to 0)."""
        np.maximum(self.att, 0.0, out=self.att)
        return Sprite(self.att, name)

    # ----------------------------------------------------------------------------------- helpers
    def _region(self, xs: npt.ArrayLike, ys: npt.ArrayLike, grow: float = 1.0) -> tuple[int, int, int, int]:
        """Pixel bbox ``x0, y0, x1, y1`` (exclusive) of the given pixel coordinates, clipped."""
        h, w = self.shape
        ax, ay = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        x0 = max(0, math.floor(ax.min() - grow))
        y0 = max(0, math.floor(ay.min() - grow))
        x1 = min(w, math.ceil(ax.max() + grow) + 1)
        y1 = min(h, math.ceil(ay.max() + grow) + 1)
        return x0, y0, x1, y1

    def add_thickness(self, mat: Material, x0: int, y0: int, thickness: FloatArray) -> None:
        """Add a thickness map (cm) of ``mat`` whose top-left pixel is ``(x0, y0)``; clipped."""
        h, w = self.shape
        th, tw = thickness.shape
        ax0, ay0 = max(0, x0), max(0, y0)
        ax1, ay1 = min(w, x0 + tw), min(h, y0 + th)
        if ax1 <= ax0 or ay1 <= ay0:
            return
        t = thickness[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
        self.att[ay0:ay1, ax0:ax1] += t[..., None] * mat.linear

    def _grid(self, x0: int, y0: int, x1: int, y1: int) -> tuple[FloatArray, FloatArray]:
        """Pixel-centre coordinates of a region, in canvas cm, as broadcastable (1,w) and (h,1)."""
        xs = ((np.arange(x0, x1, dtype=np.float32) - self.pad) / self.s)[None, :]
        ys = ((np.arange(y0, y1, dtype=np.float32) - self.pad) / self.s)[:, None]
        return xs, ys

    # --------------------------------------------------------------------------------- primitives
    def polygon(self, mat: Material, pts_cm: Sequence[Point], thickness_cm: float) -> None:
        """Uniform slab of ``thickness_cm`` with the given outline (cm vertices)."""
        p = np.array([self.px(x, y) for x, y in pts_cm], dtype=np.float64)
        x0, y0, x1, y1 = self._region(p[:, 0], p[:, 1])
        if x1 <= x0 or y1 <= y0:
            return
        tmp = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        q = np.round((p - (x0, y0)) * _ONE).astype(np.int32)
        cv2.fillPoly(tmp, [q], float(thickness_cm), lineType=cv2.LINE_8, shift=_SHIFT)
        self.add_thickness(mat, x0, y0, tmp)

    def rect(self, mat: Material, x: float, y: float, w: float, h: float, t: float, r: float = 0.0) -> None:
        """Uniform slab over an axis-aligned, optionally rounded, rectangle."""
        self.polygon(mat, rounded_rect(x, y, w, h, r), t)

    def polyline(
        self,
        mat: Material,
        pts_cm: Sequence[Point],
        width_cm: float,
        thickness_cm: float,
        closed: bool = False,
    ) -> None:
        """A strip of ``width_cm`` along a polyline, ``thickness_cm`` deep.

        Strips narrower than a pixel are drawn one pixel wide with the thickness scaled by their
        true width, so a thin wire keeps its total attenuation (what a detector pixel integrates).
        """
        wpx = width_cm * self.s
        t = thickness_cm
        if wpx < 1.0:
            t *= wpx
            wpx = 1.0
        p = np.array([self.px(x, y) for x, y in pts_cm], dtype=np.float64)
        x0, y0, x1, y1 = self._region(p[:, 0], p[:, 1], grow=wpx / 2 + 1)
        if x1 <= x0 or y1 <= y0:
            return
        tmp = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
        q = np.round((p - (x0, y0)) * _ONE).astype(np.int32)
        cv2.polylines(tmp, [q], closed, float(t), thickness=max(1, round(wpx)), lineType=cv2.LINE_8, shift=_SHIFT)
        self.add_thickness(mat, x0, y0, tmp)

    def walls(self, mat: Material, pts_cm: Sequence[Point], wall_cm: float, height_cm: float) -> None:
        """Vertical walls of a container along a closed outline, seen from above.

        A ray grazing a wall crosses its whole height, so walls project to a dense outline.
        """
        self.polyline(mat, pts_cm, wall_cm, height_cm, closed=True)

    def ellipse(
        self,
        mat: Material,
        centre: Point,
        axes: Point,
        thickness_cm: float,
        angle_deg: float = 0.0,
        profile: str = "flat",
        inner: float = 0.0,
    ) -> None:
        """Ellipse-outlined solid.

        Args:
            mat: material.
            centre: centre, cm.
            axes: semi-axes ``(a, b)`` along the rotated x and y, cm.
            thickness_cm: thickness on the centre (``flat``: everywhere).
            angle_deg: rotation of the ``a`` axis from +x, degrees (clockwise on screen, y down).
            profile: ``"flat"`` (disc/slab), ``"dome"`` (ellipsoid: ``t·sqrt(1-r²)``) or ``"shell"``
                (hollow ellipsoid whose inner surface is scaled by ``inner``, 0 < inner < 1).
            inner: relative size of the cavity for ``"shell"``.
        """
        a, b = max(axes[0], 1e-3), max(axes[1], 1e-3)
        cx, cy = self.px(*centre)
        rad = max(a, b) * self.s
        x0, y0, x1, y1 = self._region([cx - rad, cx + rad], [cy - rad, cy + rad])
        if x1 <= x0 or y1 <= y0:
            return
        xs, ys = self._grid(x0, y0, x1, y1)
        th = np.deg2rad(angle_deg)
        c, s = np.float32(np.cos(th)), np.float32(np.sin(th))
        dx, dy = xs - np.float32(centre[0]), ys - np.float32(centre[1])
        u = (dx * c + dy * s) / np.float32(a)
        v = (-dx * s + dy * c) / np.float32(b)
        r2 = u * u + v * v
        if profile == "flat":
            t = np.where(r2 <= 1.0, np.float32(thickness_cm), np.float32(0.0))
        elif profile == "dome":
            t = np.float32(thickness_cm) * np.sqrt(np.maximum(1.0 - r2, 0.0))
        elif profile == "shell":
            if not 0.0 < inner < 1.0:
                raise ValueError(f"shell needs 0 < inner < 1, got {inner}")
            outer = np.sqrt(np.maximum(1.0 - r2, 0.0))
            cav = inner * np.sqrt(np.maximum(1.0 - r2 / (inner * inner), 0.0))
            t = np.float32(thickness_cm) * (outer - cav)
        else:
            raise ValueError(f"unknown ellipse profile {profile!r}; use flat, dome or shell")
        self.add_thickness(mat, x0, y0, t.astype(np.float32, copy=False))

    def rod(
        self,
        mat: Material,
        p0: Point,
        p1: Point,
        radius_cm: float,
        wall_cm: float | None = None,
        round_ends: bool = False,
    ) -> None:
        """A cylinder lying along ``p0 -> p1`` (solid, or a tube with ``wall_cm`` walls).

        The projected thickness across the axis is ``2·sqrt(r² - d²)`` (minus the cavity for a
        tube), so rods look dense on the axis and tubes show two dense edge lines.
        """
        (ax, ay), (bx, by) = p0, p1
        length = float(np.hypot(bx - ax, by - ay))
        if length < 1e-6 or radius_cm <= 0:
            return
        pa, pb = self.px(ax, ay), self.px(bx, by)
        rad = radius_cm * self.s + 1
        x0, y0, x1, y1 = self._region(
            [pa[0] - rad, pa[0] + rad, pb[0] - rad, pb[0] + rad], [pa[1] - rad, pa[1] + rad, pb[1] - rad, pb[1] + rad]
        )
        if x1 <= x0 or y1 <= y0:
            return
        xs, ys = self._grid(x0, y0, x1, y1)
        ux, uy = (bx - ax) / length, (by - ay) / length
        dx, dy = xs - np.float32(ax), ys - np.float32(ay)
        along = dx * np.float32(ux) + dy * np.float32(uy)
        across = -dx * np.float32(uy) + dy * np.float32(ux)
        if round_ends:
            a = np.clip(along, 0.0, length)
            d2 = (along - a) ** 2 + across**2
            inside = np.ones_like(d2, dtype=bool)
        else:
            d2 = across * across
            inside = (along >= 0.0) & (along <= length)
        r2 = np.float32(radius_cm * radius_cm)
        t = 2.0 * np.sqrt(np.maximum(r2 - d2, 0.0))
        if wall_cm is not None and 0 < wall_cm < radius_cm:
            ri2 = np.float32((radius_cm - wall_cm) ** 2)
            t = t - 2.0 * np.sqrt(np.maximum(ri2 - d2, 0.0))
        t = np.where(inside, t, np.float32(0.0)).astype(np.float32, copy=False)
        self.add_thickness(mat, x0, y0, t)

    def texture(
        self,
        mat: Material,
        rng: np.random.Generator,
        pts_cm: Sequence[Point],
        mean_cm: float,
        contrast: float,
        cell_cm: float,
        folds: float = 0.0,
    ) -> None:
        """A soft, uneven layer (clothing, stuffing) inside an outline.

        Args:
            mat: material (usually ``fabric``).
            rng: random generator.
            pts_cm: outline, cm.
            mean_cm: mean thickness, cm.
            contrast: relative thickness variation (0 = uniform).
            cell_cm: feature size of the variation, cm.
            folds: strength of the fold lines (ridges of the noise where fabric doubles over).
        """
        p = np.array([self.px(x, y) for x, y in pts_cm], dtype=np.float64)
        x0, y0, x1, y1 = self._region(p[:, 0], p[:, 1])
        if x1 <= x0 or y1 <= y0:
            return
        h, w = y1 - y0, x1 - x0
        mask = np.zeros((h, w), dtype=np.uint8)
        q = np.round((p - (x0, y0)) * _ONE).astype(np.int32)
        cv2.fillPoly(mask, [q], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        n = smooth_noise(rng, h, w, cell_cm * self.s)
        t = 1.0 + contrast * n
        if folds > 0:
            # Ridges (zero crossings) of a second noise field read as folds where cloth doubles.
            f = smooth_noise(rng, h, w, 1.7 * cell_cm * self.s)
            t += folds * np.exp(-(f * f) * 12.0)
        # Soft edges: cloth thins out toward the outline instead of ending as a hard slab.
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        edge = np.minimum(dist / max(1.0, 0.8 * cell_cm * self.s), 1.0)
        t = np.maximum(t, 0.0) * edge * np.float32(mean_cm)
        self.add_thickness(mat, x0, y0, t.astype(np.float32, copy=False))


def blob(
    rng: np.random.Generator,
    centre: Point,
    axes: Point,
    roughness: float = 0.15,
    n: int = 28,
) -> list[Point]:
    """Irregular closed outline around an ellipse (soft bags, clothes, pouches).

    Args:
        rng: random generator.
        centre: centre, cm.
        axes: semi-axes, cm.
        roughness: relative radial deviation (0 = exact ellipse); kept within ``[0, 0.45]``.
        n: number of vertices.
    """
    roughness = float(np.clip(roughness, 0.0, 0.45))
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    # Low harmonics only, so the outline wobbles instead of zig-zagging.
    r = np.ones(n)
    for k in (2, 3, 4, 5):
        r += roughness / k**0.7 * rng.uniform(-1, 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.55, 1.0 + roughness) / (1.0 + roughness)
    return [
        (centre[0] + axes[0] * float(ri * np.cos(t)), centre[1] + axes[1] * float(ri * np.sin(t)))
        for ri, t in zip(r, theta, strict=True)
    ]


def random_walk(
    rng: np.random.Generator,
    start: Point,
    steps: int,
    step_cm: float,
    turn: float,
    bounds: tuple[float, float, float, float],
) -> list[Point]:
    """A smooth random path (cables, straps) that reflects off ``bounds = (x0, y0, x1, y1)`` cm."""
    x, y = start
    heading = rng.uniform(0, 2 * np.pi)
    omega = 0.0
    pts = [(x, y)]
    for _ in range(steps):
        omega = 0.8 * omega + rng.normal(0.0, turn)
        heading += omega
        nx, ny = x + step_cm * np.cos(heading), y + step_cm * np.sin(heading)
        if not bounds[0] <= nx <= bounds[2]:
            heading = np.pi - heading
            nx = float(np.clip(nx, bounds[0], bounds[2]))
        if not bounds[1] <= ny <= bounds[3]:
            heading = -heading
            ny = float(np.clip(ny, bounds[1], bounds[3]))
        x, y = float(nx), float(ny)
        pts.append((x, y))
    return pts


def ellipse_pts(centre: Point, axes: Point, n: int = 32, start_deg: float = 0.0, end_deg: float = 360.0) -> list[Point]:
    """Vertices of an ellipse or elliptic arc (cm), angles clockwise on screen from +x."""
    a = np.deg2rad(np.linspace(start_deg, end_deg, n, endpoint=end_deg - start_deg < 360.0))
    return [(centre[0] + axes[0] * float(np.cos(t)), centre[1] + axes[1] * float(np.sin(t))) for t in a]


def modulate(sprite: Sprite, rng: np.random.Generator, amount: float, cell_px: float = 6.0) -> Sprite:
    """Real objects are never uniform (density, wear, contents): vary the attenuation smoothly.

    The factor ``1 + amount * noise`` (clipped to [0.5, 1.5]) multiplies both energies, so the
    material ratio and the footprint (where attenuation > 0) are unchanged.
    """
    if amount <= 0:
        return sprite
    h, w = sprite.att.shape[:2]
    f = np.clip(1.0 + amount * smooth_noise(rng, h, w, cell_px), 0.5, 1.5)
    return Sprite((sprite.att * f[..., None]).astype(np.float32), sprite.name)
