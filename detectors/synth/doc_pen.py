"""Pen dynamics and ink deposition for synthetic handwriting.

Key points become a smooth path (centripetal Catmull-Rom spline); the pen's speed along it follows
the two-thirds power law of human movement (speed falls where the path bends, v ∝ κ^(-1/3)) with
accelerations at pen-down and pen-up; ink follows speed and pressure: a fast stroke is thinner and
lighter and ends in a tapered flick, a slow one is uniform and blunt, with ink pooling where the
pen rests. A forger's hand adds tremor (a 4-10 Hz wobble across the stroke).

Coordinates are millimetres with y pointing down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from detectors.synth.doc_raster import InkLayer, downsample, smooth_noise

PenKind = Literal["ballpoint", "gel", "felt", "fountain"]
Points = npt.NDArray[np.float64]

_SUPERSAMPLE = 3
_STEP_MM = 0.08  # path sampling interval: finer than a pixel at 300 dpi (0.085 mm)


@dataclass(frozen=True)
class Pen:
    """A writing instrument.

    Attributes:
        kind: ``ballpoint`` (near-constant width, skips at speed), ``gel``/``felt`` (width falls
            with speed), ``fountain`` (width depends on stroke direction against the nib).
        width_mm: Line width at normal pressure and speed.
        rgb: Ink reflectance at full strength.
        nib_angle: Nib direction (radians) for fountain pens.
    """

    kind: PenKind
    width_mm: float
    rgb: tuple[float, float, float]
    nib_angle: float = 0.7


@dataclass
class PenPath:
    """One continuous pen-down movement.

    Attributes:
        xy: ``(N, 2)`` positions in mm, sampled every ~0.08 mm.
        speed: ``(N,)`` pen speed in mm/s.
        pressure: ``(N,)`` relative pressure in ``[0, 1.2]``.
    """

    xy: Points
    speed: npt.NDArray[np.float64]
    pressure: npt.NDArray[np.float64]


def spline(points: Points, step: float = _STEP_MM) -> Points:
    """Centripetal Catmull-Rom curve through ``points`` ``(K, 2)``, sampled every ``step`` mm."""
    pts = np.asarray(points, dtype=np.float64)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6])
    pts = pts[keep]
    if len(pts) == 1:
        return pts.copy()
    if len(pts) == 2:
        n = max(2, int(np.linalg.norm(pts[1] - pts[0]) / step) + 1)
        return np.linspace(pts[0], pts[1], n)
    ext = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
    out = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        t0 = 0.0
        t1 = t0 + max(float(np.linalg.norm(p1 - p0)), 1e-6) ** 0.5
        t2 = t1 + max(float(np.linalg.norm(p2 - p1)), 1e-6) ** 0.5
        t3 = t2 + max(float(np.linalg.norm(p3 - p2)), 1e-6) ** 0.5
        n = max(2, int(np.linalg.norm(p2 - p1) / step) + 1)
        t = np.linspace(t1, t2, n, endpoint=(i == len(ext) - 3))[:, None]
        a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    return np.vstack(out)


def kinematics(
    xy: Points, base_speed: float, pressure: float, rng: np.random.Generator, fluent: bool = True
) -> PenPath:
    """Speed and pressure along a sampled path.

    Args:
        xy: ``(N, 2)`` path in mm.
        base_speed: Typical writing speed in mm/s on gentle curves (genuine: 60-250 mm/s).
        pressure: Writer's typical pressure, ``[0.4, 1]``.
        rng: Random source (pressure wander).
        fluent: Fluent writers accelerate into strokes and flick out of them (tapered ends);
            hesitant ones land and lift slowly (blunt ends).
    """
    n = len(xy)
    if n < 3:
        return PenPath(xy, np.full(n, base_speed * 0.3), np.full(n, pressure))
    d1 = np.gradient(xy, axis=0)
    d2 = np.gradient(d1, axis=0)
    ds = np.maximum(np.linalg.norm(d1, axis=1), 1e-9)
    curvature = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / ds**3
    k = min(9, n if n % 2 else n - 1)
    curvature = np.convolve(curvature, np.ones(k) / k, mode="same")
    # Two-thirds power law: v = k * kappa^(-1/3); kappa floor keeps straight lines finite.
    speed = base_speed * np.clip((curvature + 0.15) ** (-1.0 / 3.0) / 0.15 ** (-1.0 / 3.0), 0.2, 1.0) * 1.6
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    length = s[-1]
    ramp_mm = min(2.5, length / 3) if fluent else min(0.8, length / 4)
    ramp_in = np.clip(s / max(ramp_mm, 1e-6), 0.0, 1.0)
    ramp_out = np.clip((length - s) / max(ramp_mm, 1e-6), 0.0, 1.0)
    speed = speed * (0.25 + 0.75 * np.sin(ramp_in * math.pi / 2) * np.sin(ramp_out * math.pi / 2))
    wander = 1.0 + 0.12 * np.interp(s, np.linspace(0, length, 8), rng.standard_normal(8))
    p = pressure * wander
    if fluent:
        # Pen lands firmly and flicks off: pressure rises quickly and fades over the last stretch.
        p = p * np.clip(s / 0.6, 0.35, 1.0) * (0.25 + 0.75 * np.clip((length - s) / max(ramp_mm, 1e-6), 0, 1) ** 0.7)
    return PenPath(xy, speed, np.clip(p, 0.05, 1.2))


def add_tremor(path: PenPath, amp_mm: float, freq_hz: float, rng: np.random.Generator) -> PenPath:
    """Displace ``path`` across its direction with a wobble of ``freq_hz`` in writing time."""
    xy = path.xy
    if len(xy) < 3 or amp_mm <= 0:
        return path
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    t = np.concatenate([[0.0], np.cumsum(step / np.maximum(path.speed[1:], 1e-3))])
    d = np.gradient(xy, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    phase = rng.uniform(0, 2 * math.pi)
    drift = np.interp(t, np.linspace(0, t[-1] + 1e-9, 6), rng.standard_normal(6))
    offset = amp_mm * (np.sin(2 * math.pi * freq_hz * t + phase) * (0.7 + 0.3 * drift))
    return PenPath(xy + normal * offset[:, None], path.speed, path.pressure)


def render(paths: list[PenPath], pen: Pen, px_per_mm: float, rng: np.random.Generator) -> InkLayer:
    """Deposit ink along ``paths``.

    Args:
        paths: Pen-down movements in mm (any origin).
        pen: The instrument.
        px_per_mm: Output resolution.
        rng: Random source for ink texture.

    Returns:
        The ink layer, cropped to the ink with a small margin.
    """
    paths = [p for p in paths if len(p.xy) > 0]
    if not paths:
        return InkLayer(np.zeros((1, 1, 3), dtype=np.float32))
    allxy = np.vstack([p.xy for p in paths])
    margin = pen.width_mm * 2 + 1.0
    origin = allxy.min(axis=0) - margin
    size = allxy.max(axis=0) + margin - origin
    ss = _SUPERSAMPLE
    scale = px_per_mm * ss
    W, H = math.ceil(size[0] * scale), math.ceil(size[1] * scale)
    canvas = np.zeros((H, W), dtype=np.float32)
    mean_speed = float(np.mean(np.concatenate([p.speed for p in paths])))
    shift = 4  # cv2 fixed-point bits: sub-pixel positions
    for p in paths:
        q = np.round((p.xy - origin) * scale * (1 << shift)).astype(np.int64)
        width, density = _width_density(p, pen, mean_speed)
        wpx = np.maximum(1, np.round(width * scale)).astype(int)
        for i in range(len(q) - 1):
            cv2.line(canvas, tuple(q[i]), tuple(q[i + 1]), float(density[i]), int(wpx[i]), cv2.LINE_8, shift)
        if len(q) == 1:
            cv2.circle(canvas, tuple(q[0]), int(wpx[0] // 2 + 1) << shift, float(density[0]), -1, cv2.LINE_8, shift)
        # Ink pools where a slow pen lands or rests.
        for idx in (0, len(q) - 1):
            if p.speed[idx] < 0.25 * mean_speed:
                r = round(width[idx] * scale * 0.62) << shift
                cv2.circle(canvas, tuple(q[idx]), r, 1.0, -1, cv2.LINE_8, shift)
    alpha = downsample(canvas, ss)
    h, w = alpha.shape
    if pen.kind == "ballpoint":
        # Ballpoints skip: fine streaks of missing ink, more where the stroke was fast.
        grain = smooth_noise((h, w), 1.3, rng)
        alpha = alpha * np.clip(1.15 - 0.3 * np.maximum(grain, 0.0), 0.35, 1.0)
    else:
        alpha = alpha * np.clip(1.0 + 0.08 * smooth_noise((h, w), 3.0, rng), 0.8, 1.0)
    return InkLayer.from_alpha(np.clip(alpha, 0.0, 1.0).astype(np.float32), pen.rgb).crop_to_ink()


def _width_density(p: PenPath, pen: Pen, mean_speed: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    rel = p.speed / max(mean_speed, 1e-6)
    pr = p.pressure
    if pen.kind == "ballpoint":
        width = pen.width_mm * (0.75 + 0.3 * np.clip(pr, 0, 1.2))
        density = np.clip(0.55 + 0.45 * pr - 0.18 * (rel - 1.0), 0.3, 1.0)
    elif pen.kind == "fountain":
        d = np.gradient(p.xy, axis=0) if len(p.xy) > 1 else np.ones((1, 2))
        theta = np.arctan2(d[:, 1], d[:, 0])
        width = pen.width_mm * (0.35 + 0.9 * np.abs(np.sin(theta - pen.nib_angle))) * (0.6 + 0.5 * pr)
        density = np.clip(0.8 + 0.2 * pr - 0.1 * rel, 0.55, 1.0)
    else:  # gel, felt: width follows pressure and falls with speed
        width = pen.width_mm * (0.45 + 0.65 * pr) / (0.65 + 0.35 * np.clip(rel, 0.2, 3.0))
        density = np.clip(0.75 + 0.25 * pr, 0.5, 1.0)
    return np.maximum(width, 0.05), density
