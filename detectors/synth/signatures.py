"""Synthetic handwritten signatures: writers, genuine samples, skilled and random forgeries.

A :class:`Writer` is a persistent hand, derived deterministically from an id: the name it signs,
its script (Latin cursive, Korean Hangul or Chinese-style characters), letter shapes (every letter
template deformed in the writer's own way), slant, size, spacing, legibility, flourish, pen, speed
and pressure. Each genuine signature re-executes the same motor plan with natural variation::

    writer = Writer.for_id("W-0007")
    genuine = render_signature(writer, rng, dpi=200)
    skilled = skilled_forgery(writer, np.random.default_rng(99), dpi=200)
    random_ = random_forgery(writer, rng, dpi=200)       # another writer's genuine signature

A skilled forger sees the genuine shape and copies it slowly: the ink is more uniform and heavier,
stroke ends are blunt, the hand trembles, proportions and slant are slightly off and the pen lifts
where the writer never lifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from detectors.synth import doc_glyphs as glyphs
from detectors.synth import doc_names as names
from detectors.synth.doc_pen import Pen, PenKind, PenPath, add_tremor, kinematics, render, spline
from detectors.synth.doc_raster import InkLayer, derive_rng

WriterScript = Literal["latin", "hangul", "hanzi"]
SignatureKind = Literal["genuine", "skilled", "random"]
Flourish = Literal["none", "underline", "tail", "loop", "strike"]

PEN_INKS: dict[str, tuple[float, float, float]] = {
    "blue": (0.16, 0.22, 0.58),
    "black": (0.12, 0.12, 0.14),
    "blue_gel": (0.10, 0.18, 0.70),
    "blue_black": (0.15, 0.17, 0.32),
}


@dataclass(frozen=True)
class Writer:
    """A persistent hand. Frozen; build with :meth:`for_id`.

    Attributes:
        writer_id: Identity (any string); everything else derives from it.
        script: ``latin``, ``hangul`` or ``hanzi``.
        text: What the writer signs (a romanised name, Hangul name, or ``n`` CJK-like characters).
        size_mm: Latin x-height, or Hangul/CJK character size.
        slant: Shear of the writing, radians (positive leans right).
        width: Horizontal stretch of letters.
        spacing: Letter / character advance multiplier.
        baseline_deg: Baseline rise (counter-clockwise, degrees).
        legibility: Fraction of each word written out before it trails into a wavy line.
        connect: Probability the pen runs on between letters or strokes (cursive / semi-cursive).
        flourish: Closing ornament.
        speed: Typical speed in mm/s.
        pressure: Typical pressure in ``[0.4, 1]``.
        pen: Writing instrument.
        shape_sigma: How far this writer's letters depart from the templates (units).
        variability: Sample-to-sample key-point variation (units).
    """

    writer_id: str
    script: WriterScript
    text: str
    size_mm: float
    slant: float
    width: float
    spacing: float
    baseline_deg: float
    legibility: float
    connect: float
    flourish: Flourish
    speed: float
    pressure: float
    pen: Pen
    shape_sigma: float
    variability: float

    @classmethod
    def for_id(cls, writer_id: str, script: WriterScript | None = None) -> Writer:
        """The writer with this id (same id, same hand, in every process).

        Args:
            writer_id: Identity.
            script: Force a script; by default it is drawn from the id (45 % Latin, 35 % Hangul,
                20 % CJK-style).
        """
        rng = derive_rng("writer", writer_id)
        drawn: WriterScript = ("latin", "hangul", "hanzi")[int(rng.choice(3, p=[0.45, 0.35, 0.2]))]
        script = script or drawn
        if script == "latin":
            given, surname = names.choice(rng, names.EN_GIVEN).replace("-", ""), names.choice(rng, names.EN_SURNAMES)
            style = int(rng.choice(4, p=[0.35, 0.3, 0.2, 0.15]))
            text = (f"{given} {surname}", f"{given[0]}{surname}", surname, f"{given[0]}{surname[0]}")[style]
            size = float(rng.uniform(2.6, 5.0))
        elif script == "hangul":
            text = names.korean_person(rng)
            size = float(rng.uniform(8.0, 14.0))
        else:
            text = "X" * int(rng.choice([2, 3], p=[0.3, 0.7]))  # placeholders: characters come from the id
            size = float(rng.uniform(9.0, 15.0))
        kind: PenKind = ("ballpoint", "gel", "felt", "fountain")[int(rng.choice(4, p=[0.6, 0.25, 0.08, 0.07]))]
        ink = ("blue", "black", "blue_gel", "blue_black")[int(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))]
        widths = {"ballpoint": (0.28, 0.45), "gel": (0.35, 0.6), "felt": (0.5, 0.9), "fountain": (0.4, 0.7)}
        pen = Pen(kind, float(rng.uniform(*widths[kind])), PEN_INKS[ink], float(rng.uniform(0.4, 1.1)))
        flourish: Flourish = ("none", "underline", "tail", "loop", "strike")[
            int(rng.choice(5, p=[0.35, 0.3, 0.2, 0.1, 0.05]))
        ]
        return cls(
            writer_id=writer_id,
            script=script,
            text=text,
            size_mm=round(size, 2),
            slant=round(float(rng.normal(0.25 if script == "latin" else 0.08, 0.15)), 3),
            width=round(float(rng.uniform(0.75, 1.3)), 3),
            spacing=round(float(rng.uniform(0.75, 1.1) if script != "latin" else rng.uniform(0.85, 1.15)), 3),
            baseline_deg=round(float(rng.normal(4.0, 4.0)), 2),
            legibility=round(float(rng.uniform(0.25, 1.0)), 3),
            connect=round(float(rng.uniform(0.55, 1.0) if script == "latin" else rng.uniform(0.2, 0.8)), 3),
            flourish=flourish,
            speed=round(float(rng.uniform(70, 220)), 1),
            pressure=round(float(rng.uniform(0.5, 1.0)), 3),
            pen=pen,
            shape_sigma=round(float(rng.uniform(0.05, 0.12)), 3),
            variability=round(float(rng.uniform(0.015, 0.035)), 4),
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (for dataset metadata)."""
        return {
            "writer_id": self.writer_id,
            "script": self.script,
            "text": self.text,
            "pen": self.pen.kind,
            "flourish": self.flourish,
        }


@dataclass(frozen=True)
class Signature:
    """One rendered signature.

    Attributes:
        ink: The ink, cropped to its extent.
        writer_id: Whose signature it purports to be.
        kind: ``genuine``, ``skilled`` (imitation) or ``random`` (someone else's own signature).
        author_id: Who actually wrote it.
    """

    ink: InkLayer
    writer_id: str
    kind: SignatureKind
    author_id: str


@dataclass(frozen=True)
class _Execution:
    """How one signature is executed: the hand's state on the day, or the forger's handicap."""

    speed: float
    jitter: float
    tremor_mm: float = 0.0
    tremor_hz: float = 0.0
    fluent: bool = True
    extra_lifts: float = 0.0  # pen lifts per 10 mm of path
    scale_error: float = 0.0  # per-letter proportion error (relative)
    slant_error: float = 0.0
    own_sigma: float = 0.0  # forger's own letter habits leaking in
    forger_id: str = ""


def render_signature(writer: Writer, rng: np.random.Generator, *, dpi: float = 200.0) -> Signature:
    """A genuine signature by ``writer``.

    Args:
        writer: The hand.
        rng: Sample-to-sample variation (two calls with different rng give two natural variants).
        dpi: Output resolution; size is physical.
    """
    ex = _Execution(speed=writer.speed * float(rng.uniform(0.85, 1.15)), jitter=writer.variability)
    ink = _execute(writer, writer.text, ex, rng, dpi, signature=True)
    return Signature(ink=ink, writer_id=writer.writer_id, kind="genuine", author_id=writer.writer_id)


def skilled_forgery(
    writer: Writer, forger_rng: np.random.Generator, *, dpi: float = 200.0, skill: float | None = None
) -> Signature:
    """A careful imitation of ``writer``'s signature.

    Args:
        writer: Whose signature is imitated.
        forger_rng: The forger's randomness (their habits and this attempt).
        dpi: Output resolution.
        skill: 0 (clumsy) to 1 (expert); drawn from ``forger_rng`` when ``None``. More skill means
            faster, smaller errors and less tremor, never the writer's fluency.
    """
    skill = float(forger_rng.uniform(0.2, 0.95)) if skill is None else float(np.clip(skill, 0.0, 1.0))
    forger_id = f"forger-{int(forger_rng.integers(1 << 30))}"
    ex = _Execution(
        speed=writer.speed * (0.18 + 0.3 * skill) * float(forger_rng.uniform(0.85, 1.15)),
        jitter=writer.variability * 1.3,
        tremor_mm=(0.05 + 0.12 * (1 - skill)) * float(forger_rng.uniform(0.6, 1.3)),
        tremor_hz=float(forger_rng.uniform(4.0, 10.0)),
        fluent=False,
        extra_lifts=(0.04 + 0.18 * (1 - skill)),
        scale_error=0.04 + 0.14 * (1 - skill),
        slant_error=float(forger_rng.normal(0.0, 0.04 + 0.1 * (1 - skill))),
        own_sigma=0.02 + 0.06 * (1 - skill),
        forger_id=forger_id,
    )
    # Forgers use their own pen about half the time.
    if forger_rng.random() < 0.5:
        kind: PenKind = ("ballpoint", "gel", "felt")[int(forger_rng.integers(3))]
        ink = ("blue", "black", "blue_gel")[int(forger_rng.integers(3))]
        writer = replace(writer, pen=Pen(kind, float(forger_rng.uniform(0.3, 0.6)), PEN_INKS[ink]))
    ink_layer = _execute(writer, writer.text, ex, forger_rng, dpi, signature=True)
    return Signature(ink=ink_layer, writer_id=writer.writer_id, kind="skilled", author_id=forger_id)


def random_forgery(
    writer: Writer, rng: np.random.Generator, *, dpi: float = 200.0, pool: Sequence[str] | None = None
) -> Signature:
    """Someone else's own genuine signature presented as ``writer``'s.

    Args:
        writer: Whose signature it purports to be.
        rng: Random source (which other writer, and their variation).
        dpi: Output resolution.
        pool: Other writer ids to draw from; a fresh synthetic id when ``None``.
    """
    others = [w for w in (pool or ()) if w != writer.writer_id]
    other_id = (
        others[int(rng.integers(len(others)))] if others else f"{writer.writer_id}~other{int(rng.integers(1 << 30))}"
    )
    other = Writer.for_id(other_id)
    sig = render_signature(other, rng, dpi=dpi)
    return Signature(ink=sig.ink, writer_id=writer.writer_id, kind="random", author_id=other_id)


def render_handwriting(
    writer: Writer, text: str, rng: np.random.Generator, *, dpi: float = 200.0, size_mm: float | None = None
) -> InkLayer:
    """``text`` hand-printed by ``writer`` (form fill-ins: names, dates, quantities).

    Latin letters and digits are written unjoined and fully legible; Hangul syllables keep the
    writer's semi-cursive habits. Characters without a template are left as gaps.
    """
    w = replace(
        writer, legibility=1.0, flourish="none", connect=min(writer.connect, 0.3) if writer.script != "latin" else 0.0
    )
    if size_mm is not None:
        w = replace(w, size_mm=size_mm)
    ex = _Execution(speed=writer.speed * float(rng.uniform(0.8, 1.1)), jitter=writer.variability)
    return _execute(w, text, ex, rng, dpi, signature=False)


# ------------------------------------------------------------------------------ motor planning


def _deform(glyph: glyphs.Glyph, rng: np.random.Generator, sigma: float) -> glyphs.Glyph:
    return [s + rng.normal(0.0, sigma, s.shape) for s in glyph]


def _execute(
    writer: Writer, text: str, ex: _Execution, rng: np.random.Generator, dpi: float, *, signature: bool
) -> InkLayer:
    strokes = _plan(writer, text, ex, rng, signature)
    # Per-sample global pose: baseline angle, size and slant drift.
    angle = math.radians(writer.baseline_deg + float(rng.normal(0.0, 1.5)))
    scale = float(rng.normal(1.0, 0.035))
    c, s = math.cos(-angle), math.sin(-angle)
    rot = np.array([[c, -s], [s, c]]) * scale
    paths: list[PenPath] = []
    for key in strokes:
        key = key @ rot.T
        xy = spline(key)
        for piece in _lift(xy, ex.extra_lifts, rng):
            path = kinematics(piece, ex.speed, writer.pressure, rng, fluent=ex.fluent)
            if ex.tremor_mm > 0:
                path = add_tremor(path, ex.tremor_mm, ex.tremor_hz, rng)
            paths.append(path)
    return render(paths, writer.pen, dpi / 25.4, rng)


def _lift(xy: np.ndarray, per_10mm: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Split a path where a hesitant hand lifts the pen; pieces overlap or leave a hairline gap."""
    if per_10mm <= 0 or len(xy) < 20:
        return [xy]
    length = float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)))
    n = int(rng.poisson(per_10mm * length / 10.0))
    if n == 0:
        return [xy]
    cuts = np.sort(rng.integers(8, len(xy) - 8, size=n))
    pieces, start = [], 0
    for cut in cuts:
        if cut - start < 6:
            continue
        pieces.append(xy[start : cut + 1])
        # Restart a little before (overlap) or after (gap) the lift point.
        start = int(np.clip(cut + rng.integers(-4, 4), start + 1, len(xy) - 2))
    pieces.append(xy[start:])
    return pieces


def _plan(writer: Writer, text: str, ex: _Execution, rng: np.random.Generator, signature: bool) -> list[np.ndarray]:
    """Key-point strokes (mm, y down) for ``text`` in ``writer``'s hand, before pen dynamics."""
    if writer.script == "latin" or (not signature and not any("\uac00" <= ch <= "\ud7a3" for ch in text)):
        strokes, extent = _plan_latin(writer, text, ex, rng, signature)
    else:
        strokes, extent = _plan_blocks(writer, text, ex, rng, signature)
    slant = writer.slant + ex.slant_error
    shear = np.array([[1.0, -math.tan(slant)], [0.0, 1.0]])
    strokes = [s @ shear.T for s in strokes]
    if signature and writer.flourish != "none" and strokes:
        strokes = _add_flourish(writer, strokes, extent, rng)
    return strokes


def _letter_scale(ex: _Execution, rng: np.random.Generator) -> float:
    return float(1.0 + rng.normal(0.0, ex.scale_error)) if ex.scale_error > 0 else 1.0


def _plan_latin(
    writer: Writer, text: str, ex: _Execution, rng: np.random.Generator, signature: bool
) -> tuple[list[np.ndarray], float]:
    size = writer.size_mm if signature else writer.size_mm * 0.9
    strokes: list[np.ndarray] = []
    x = 0.0
    for word in text.split():
        current: np.ndarray | None = None  # the stroke the pen is still drawing (cursive run-on)
        deferred: list[np.ndarray] = []  # i dots and t bars, added after the word
        readable = max(1, round(len(word) * writer.legibility)) if signature else len(word)
        for i, ch in enumerate(word):
            template = glyphs.latin(ch)
            if template is None:
                x += 0.6 * size
                continue
            habit = derive_rng("glyph", writer.writer_id, ch)
            g = _deform(template, habit, writer.shape_sigma)
            if ex.own_sigma > 0:
                g = _deform(g, derive_rng("glyph", ex.forger_id, ch), ex.own_sigma)
            g = _deform(g, rng, ex.jitter)
            k = _letter_scale(ex, rng)
            if i >= readable:
                # Past the legible part the letters flatten into an ever lower garland.
                fade = min(1.0, (i - readable + 1) / 3.0)
                g = [np.column_stack([s[:, 0], s[:, 1] * (1.0 - 0.65 * fade)]) for s in g[:1]]
            adv = glyphs.latin_width(g) * writer.width * writer.spacing * k
            placed = [np.column_stack([x + s[:, 0] * writer.width * k * size, s[:, 1] * k * size]) for s in g]
            x += adv * size
            main, extras = placed[0], placed[1:]
            deferred += extras
            join = signature and current is not None and ch.islower() and rng.random() < writer.connect
            if join and current is not None:
                current = np.vstack([current, main])
            else:
                if current is not None:
                    strokes.append(current)
                current = main
        if current is not None:
            strokes.append(current)
        strokes += deferred
        x += 0.7 * size * writer.spacing
    return strokes, x


def _plan_blocks(
    writer: Writer, text: str, ex: _Execution, rng: np.random.Generator, signature: bool
) -> tuple[list[np.ndarray], float]:
    """Hangul syllables or CJK-like characters, each in a square block, semi-cursively joined."""
    size = writer.size_mm if signature else writer.size_mm * 0.55
    strokes: list[np.ndarray] = []
    x = 0.0
    for i, ch in enumerate(text):
        if ch.isspace():
            x += 0.5 * size
            continue
        if writer.script == "hanzi" and signature:
            template = glyphs.pseudo_hanzi(derive_rng("hanzi", writer.writer_id, i))
        else:
            hg = glyphs.hangul(ch)
            latin = glyphs.latin(ch) if hg is None else None
            if hg is None and latin is None:
                x += 0.6 * size
                continue
            template = hg if hg is not None else [s * 0.5 + np.array([0.1, 0.9]) for s in latin or []]
        habit = derive_rng("glyph", writer.writer_id, ch, i if writer.script == "hanzi" else 0)
        g = _deform(template, habit, writer.shape_sigma * 0.8)
        if ex.own_sigma > 0:
            g = _deform(g, derive_rng("glyph", ex.forger_id, ch), ex.own_sigma)
        g = _deform(g, rng, ex.jitter)
        k = _letter_scale(ex, rng) * (0.92**i if signature else 1.0)
        placed = [np.column_stack([x + s[:, 0] * writer.width * k * size, (s[:, 1] - 1.0) * k * size]) for s in g]
        # Semi-cursive: the pen often runs on from one stroke into the next within a block.
        run: np.ndarray | None = None
        for s in placed:
            if run is not None and rng.random() < writer.connect * (1.0 if signature else 0.5):
                run = np.vstack([run, s])
            else:
                if run is not None:
                    strokes.append(run)
                run = s
        if run is not None:
            strokes.append(run)
        x += size * writer.width * k * writer.spacing
    return strokes, x


def _add_flourish(
    writer: Writer, strokes: list[np.ndarray], extent: float, rng: np.random.Generator
) -> list[np.ndarray]:
    allpts = np.vstack(strokes)
    x0, y0 = allpts.min(axis=0)
    x1, y1 = allpts.max(axis=0)
    h = max(y1 - y0, 1.0)
    j = lambda v: float(v + rng.normal(0.0, 0.04 * h))  # noqa: E731
    last = strokes[-1]
    if writer.flourish == "underline":
        pts = np.array(
            [[j(x1), j(y1 + 0.05 * h)], [j((x0 + x1) / 2), j(y1 + 0.25 * h)], [j(x0 - 0.1 * h), j(y1 + 0.15 * h)]]
        )
        strokes.append(pts)
    elif writer.flourish == "tail":
        end = last[-1]
        strokes[-1] = np.vstack(
            [last, [[j(end[0] + 0.4 * h), j(end[1] - 0.1 * h)], [j(end[0] + 1.2 * h), j(end[1] - 0.6 * h)]]]
        )
    elif writer.flourish == "loop":
        cx, cy = x0 + 0.3 * h, (y0 + y1) / 2
        t = np.linspace(0.3, 2 * math.pi + 0.8, 9)
        strokes.append(
            np.column_stack(
                [
                    cx + 0.7 * h * np.cos(t) + rng.normal(0, 0.03 * h, 9),
                    cy + 0.55 * h * np.sin(t) + rng.normal(0, 0.03 * h, 9),
                ]
            )
        )
    elif writer.flourish == "strike":
        strokes.append(np.array([[j(x0 - 0.1 * h), j(y0 + 0.6 * h)], [j(x1 + 0.2 * h), j(y0 + 0.35 * h)]]))
    return strokes
