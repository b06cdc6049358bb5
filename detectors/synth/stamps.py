"""Synthetic stamps and seals: one design per issuing authority, impressions, and forgeries.

A design is everything carved into the rubber or the seal: shape, size, ring widths, text, font and
emblem. It is derived deterministically from an authority id, so a population of authorities can be
regenerated anywhere from their ids::

    design = StampDesign.for_authority("AUTH-00042")
    genuine = render_impression(design, rng, dpi=200)          # one hand-made impression
    fake = render_impression(forge(design, ForgeryKind.ALTERED_TEXT, rng), rng, dpi=200)

Sizes are physical (millimetres), so a stamp is as large on a 300 dpi page as on a 150 dpi one
relative to the text around it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np

from detectors.synth import doc_names as names
from detectors.synth.doc_emblems import EMBLEMS, EmblemKind
from detectors.synth.doc_raster import InkLayer, derive_rng
from detectors.synth.doc_stamp_draw import draw_face, text_script
from detectors.synth.doc_stamp_ink import ImpressionCondition, impress, photocopy
from detectors.synth.fonts import FontNotFoundError, FontStyle, default_catalog

StampShape = Literal["round", "square_seal", "oval", "rect", "date"]
InkName = Literal["red", "vermilion", "blue", "violet", "black"]
Separator = Literal["star", "dot", "none"]

STAMP_SHAPES: tuple[StampShape, ...] = ("round", "square_seal", "oval", "rect", "date")

#: Full-strength reflectance of stamp-pad inks (sRGB, 0-1).
INK_RGB: dict[InkName, tuple[float, float, float]] = {
    "red": (0.80, 0.10, 0.16),
    "vermilion": (0.90, 0.28, 0.14),
    "blue": (0.14, 0.24, 0.66),
    "violet": (0.42, 0.22, 0.62),
    "black": (0.13, 0.13, 0.15),
}


class ForgeryKind(StrEnum):
    """Ways a stamp is forged (see DOMAIN.md)."""

    ALTERED_TEXT = "altered_text"
    """A re-carved stamp with some characters of the text changed."""
    PROPORTIONS = "proportions"
    """Re-made by eye: size, ring widths and text size slightly off."""
    REDRAWN_EMBLEM = "redrawn_emblem"
    """The centre emblem (or seal glyph layout) redrawn with different details."""
    OTHER_FONT = "other_font"
    """Re-typeset in a different typeface."""
    PHOTOCOPY = "photocopy"
    """A colour photocopy or print of a genuine impression: flat ink, halftone dots."""


FORGERY_KINDS: tuple[ForgeryKind, ...] = tuple(ForgeryKind)


@dataclass(frozen=True)
class StampDesign:
    """Everything carved into one stamp. Frozen and hashable (used as a cache key).

    Attributes:
        authority_id: Whose stamp this is.
        shape: ``round``, ``square_seal`` (Korean 4-9 character grid), ``oval``, ``rect`` or ``date``.
        ink: Pad colour the authority uses.
        width_mm, height_mm: Outer size.
        border_mm: Width of the outer ring or border line.
        inner_mm: Width of the inner ring or border line (0 = none).
        ring_band: Height of the text band between rings, as a multiple of ``text_mm``.
        ring_text: Text along the upper arc or whole ring; first line of a rectangular stamp;
            the characters of a square seal.
        bottom_text: Text along the lower arc, or last line of a rectangular stamp.
        centre_text: Centre lines (``\\n``-separated) or monogram initials.
        full_ring: Whether ``ring_text`` runs round the whole ring (Korean style).
        text_mm: Ring text height.
        letter_spacing: Multiplier on the font's advance widths.
        glyph_fill: Fraction of a square-seal cell a character fills.
        stroke_mm: Extra stroke weight carved into square-seal characters.
        font_key: :attr:`~detectors.synth.fonts.FontFace.key` of the typeface.
        emblem: Centre emblem family.
        emblem_seed: Fixes the emblem's details.
        emblem_scale: Emblem radius as a fraction of the free centre disc; for faces without a
            pictorial emblem, the relative size of the lettering block.
        separator: Ornament between the upper and lower ring texts.
        has_date: Whether a changeable date line is part of the face.
        date_style: Format of that date.
        language: Language of the text.
        authority_kind: ``customs``, ``chamber``, ``ministry``, ``company_ko`` or ``company_en``.
        forgery: ``None`` for the genuine design, else how this copy was forged.
    """

    authority_id: str
    shape: StampShape
    ink: InkName
    width_mm: float
    height_mm: float
    border_mm: float
    inner_mm: float
    ring_band: float
    ring_text: str
    bottom_text: str
    centre_text: str
    full_ring: bool
    text_mm: float
    letter_spacing: float
    glyph_fill: float
    stroke_mm: float
    font_key: str
    emblem: EmblemKind
    emblem_seed: int
    emblem_scale: float
    separator: Separator
    has_date: bool
    date_style: Literal["dot", "iso", "en"]
    language: names.Language
    authority_kind: names.AuthorityKind
    forgery: ForgeryKind | None = field(default=None)

    @classmethod
    def for_authority(cls, authority_id: str) -> StampDesign:
        """The genuine design of ``authority_id`` (same id, same design, in every process).

        Raises:
            FontNotFoundError: No installed font can draw the authority's script.
        """
        return _design_for(authority_id)

    @property
    def is_genuine(self) -> bool:
        return self.forgery is None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (for dataset metadata)."""
        d = dataclasses.asdict(self)
        d["forgery"] = self.forgery.value if self.forgery else None
        return d


def _design_for(authority_id: str) -> StampDesign:
    rng = derive_rng("stamp-design", authority_id)
    auth = names.make_authority(rng)
    catalog = default_catalog()
    shape = _pick_shape(auth, rng)
    korean = auth.language == "ko"
    ink: InkName
    if korean and shape in ("square_seal", "round"):
        ink = "red" if rng.random() < 0.6 else "vermilion"
    else:
        ink = ("red", "blue", "violet", "black", "vermilion")[int(rng.choice(5, p=[0.25, 0.35, 0.2, 0.1, 0.1]))]
    emblem: EmblemKind = EMBLEMS[int(rng.integers(len(EMBLEMS)))]
    full_ring = False
    separator: Separator = ("star", "dot", "none")[int(rng.integers(3))]
    has_date = False
    ring_text, bottom_text, centre_text = auth.name, auth.unit, ""
    if shape == "round":
        size = float(rng.uniform(36, 46) if auth.kind in ("customs", "chamber", "ministry") else rng.uniform(24, 38))
        w = h = size
        if korean:
            full_ring = rng.random() < 0.85
            if full_ring:
                ring_text = auth.name
                bottom_text = ""
            if auth.kind == "company_ko":
                emblem, centre_text = "centre_text", "대표이사\n인" if rng.random() < 0.5 else "대표이사"
            elif rng.random() < 0.4:
                # Long titles are carved on two lines ("울산본부" / "세관장").
                short = auth.short
                emblem, centre_text = "centre_text", short if len(short) <= 4 else f"{short[:-3]}\n{short[-3:]}"
        if emblem == "monogram":
            centre_text = "".join(word[0] for word in auth.name.replace("(주)", "").split()[:3]) or auth.name[:2]
    elif shape == "square_seal":
        w = h = float(rng.uniform(18, 30))
        use_hanja = bool(auth.hanja) and catalog.has("hanja") and rng.random() < 0.5
        if auth.kind == "company_ko":
            stem = auth.name.replace("(주)", "").replace("주식회사", "").strip()
            ring_text = stem + ("인" if rng.random() < 0.5 else "대표이사인")
        elif use_hanja:
            ring_text = auth.hanja
        else:
            ring_text = auth.short + "인" if korean else auth.name.replace(" ", "")[:4]
        bottom_text = ""
    elif shape == "oval":
        w, h = float(rng.uniform(40, 54)), float(rng.uniform(25, 33))
        centre_text = _centre_word(auth, rng)
    elif shape == "rect":
        w, h = float(rng.uniform(45, 66)), float(rng.uniform(16, 28))
        centre_text = _centre_word(auth, rng)
        bottom_text = auth.unit if rng.random() < 0.5 else ""
        has_date = rng.random() < 0.6
    else:  # date
        w = h = float(rng.uniform(28, 38))
        has_date = True
        centre_text = "" if rng.random() < 0.5 else _centre_word(auth, rng)
    script = text_script(ring_text + bottom_text + centre_text)
    style: FontStyle | None = "serif" if shape == "square_seal" else None
    face = catalog.pick(script, rng, style=style, bold=bool(rng.random() < 0.6))
    return StampDesign(
        authority_id=authority_id,
        shape=shape,
        ink=ink,
        width_mm=round(w, 2),
        height_mm=round(h, 2),
        border_mm=round(float(rng.uniform(0.5, 1.3) if shape != "square_seal" else rng.uniform(0.9, 2.0)), 2),
        inner_mm=round(float(rng.uniform(0.25, 0.6)) if rng.random() < 0.7 else 0.0, 2),
        ring_band=round(float(rng.uniform(1.35, 1.7)), 3),
        ring_text=ring_text,
        bottom_text=bottom_text,
        centre_text=centre_text,
        full_ring=full_ring,
        text_mm=round(min(w, h) * float(rng.uniform(0.09, 0.12)), 2),
        letter_spacing=round(float(rng.uniform(1.0, 1.25)), 3),
        glyph_fill=round(float(rng.uniform(0.86, 0.96)), 3),
        stroke_mm=round(float(rng.uniform(0.15, 0.45)), 2) if shape == "square_seal" else 0.0,
        font_key=face.key,
        emblem=emblem,
        emblem_seed=int(rng.integers(2**31)),
        emblem_scale=round(float(rng.uniform(0.75, 0.95)), 3),
        separator=separator,
        has_date=has_date,
        date_style=("dot", "iso", "en")[int(rng.integers(3))] if not korean else "dot",
        language=auth.language,
        authority_kind=auth.kind,
    )


def _pick_shape(auth: names.Authority, rng: np.random.Generator) -> StampShape:
    korean = auth.language == "ko"
    weights: dict[StampShape, float]
    if auth.kind in ("customs", "ministry"):
        weights = {"round": 0.3, "square_seal": 0.35, "rect": 0.15, "date": 0.2} if korean else {
            "round": 0.4, "oval": 0.15, "rect": 0.2, "date": 0.25}  # fmt: skip
    elif auth.kind == "chamber":
        weights = {"round": 0.5, "oval": 0.2, "rect": 0.2, "square_seal": 0.1 if korean else 0.0}
    elif auth.kind == "company_ko":
        weights = {"round": 0.5, "square_seal": 0.3, "rect": 0.2}
    else:
        weights = {"round": 0.4, "oval": 0.25, "rect": 0.35}
    shapes = [s for s, p in weights.items() if p > 0]
    p = np.array([weights[s] for s in shapes])
    return shapes[int(rng.choice(len(shapes), p=p / p.sum()))]


def _centre_word(auth: names.Authority, rng: np.random.Generator) -> str:
    if auth.language == "ko":
        return ("접 수", "검 사 필", "확 인", "승 인", "통관필", auth.short[:6])[int(rng.integers(6))]
    return ("RECEIVED", "APPROVED", "CLEARED", "INSPECTED", "CERTIFIED", "PAID")[int(rng.integers(6))]


# --------------------------------------------------------------------------------------- forgery

_HANGUL_SWAPS = dict(zip("부산인천대구광주세관장본청수입과", "무선임전데군강수새간정븐정두임파", strict=True))
_LATIN_SWAPS = dict(zip("ABCDEGHIKLMNOPRSTUVY", "RPGOFCNLXIWMQBPBIVUV", strict=True))


def forge(design: StampDesign, kind: ForgeryKind, rng: np.random.Generator) -> StampDesign:
    """A forged copy of ``design``.

    Design-level forgeries change what is carved; :attr:`ForgeryKind.PHOTOCOPY` keeps the design
    and changes how :func:`render_impression` reproduces it.

    Args:
        design: A genuine design.
        kind: How to forge it.
        rng: Random source for the forger's choices.

    Returns:
        A design with ``forgery == kind`` that renders differently from ``design``.
    """
    f = dataclasses.replace(design, forgery=kind)
    if kind == ForgeryKind.ALTERED_TEXT:
        return dataclasses.replace(f, **_alter_text(design, rng))  # type: ignore[arg-type]
    if kind == ForgeryKind.PROPORTIONS:
        scale = float(rng.choice([-1, 1])) * float(rng.uniform(0.06, 0.14))
        aspect = float(rng.uniform(-0.05, 0.05)) if design.shape in ("oval", "rect") else 0.0
        return dataclasses.replace(
            f,
            width_mm=round(design.width_mm * (1 + scale + aspect), 2),
            height_mm=round(design.height_mm * (1 + scale - aspect), 2),
            border_mm=round(design.border_mm * float(rng.choice([0.55, 0.7, 1.5, 1.8])), 2),
            inner_mm=round(design.inner_mm * float(rng.uniform(0.5, 1.6)), 2),
            ring_band=round(design.ring_band * float(rng.uniform(0.85, 1.2)), 3),
            text_mm=round(design.text_mm * float(rng.choice([0.85, 0.9, 1.1, 1.15])), 2),
            glyph_fill=round(min(0.99, design.glyph_fill * float(rng.uniform(0.85, 1.05))), 3),
            stroke_mm=round(design.stroke_mm * float(rng.choice([0.5, 1.6])), 2),
        )
    if kind == ForgeryKind.REDRAWN_EMBLEM:
        changes: dict[str, object] = {
            "emblem_seed": int(rng.integers(2**31)),
            "separator": _other_separator(design, rng),
        }
        if design.emblem in ("centre_text", "monogram") or design.shape in ("square_seal", "rect", "oval", "date"):
            # No pictorial emblem: the forger re-lays the glyphs instead (spacing, fill).
            changes["letter_spacing"] = round(design.letter_spacing * float(rng.choice([0.85, 1.2])), 3)
            changes["glyph_fill"] = round(design.glyph_fill * float(rng.uniform(0.82, 0.9)), 3)
            changes["emblem_scale"] = round(design.emblem_scale * float(rng.uniform(0.75, 0.9)), 3)
        else:
            changes["emblem_scale"] = round(design.emblem_scale * float(rng.uniform(0.85, 1.05)), 3)
        return dataclasses.replace(f, **changes)  # type: ignore[arg-type]
    if kind == ForgeryKind.OTHER_FONT:
        catalog = default_catalog()
        script = text_script(design.ring_text + design.bottom_text + design.centre_text)
        options = [face for face in catalog.faces(script) if face.key != design.font_key]
        if not options:
            # Only one face installed: a forger's "other font" is then at least another weight/size.
            return dataclasses.replace(
                f, text_mm=round(design.text_mm * 0.88, 2), letter_spacing=design.letter_spacing * 1.1
            )
        return dataclasses.replace(f, font_key=options[int(rng.integers(len(options)))].key)
    if kind == ForgeryKind.PHOTOCOPY:
        return f
    raise ValueError(f"unknown forgery kind {kind!r}; expected one of {[k.value for k in ForgeryKind]}")


def _other_separator(design: StampDesign, rng: np.random.Generator) -> Separator:
    others = [s for s in ("star", "dot", "none") if s != design.separator]
    return others[int(rng.integers(len(others)))]  # type: ignore[return-value]


def _alter_text(design: StampDesign, rng: np.random.Generator) -> dict[str, str]:
    field_name = "ring_text"
    if design.shape in ("rect", "oval") and design.centre_text and rng.random() < 0.5:
        field_name = "centre_text"
    text = getattr(design, field_name)
    positions = [
        i
        for i, ch in enumerate(text)
        if ch in _HANGUL_SWAPS or ch.upper() in _LATIN_SWAPS or "\u4e00" <= ch <= "\u9fff"
    ]
    if not positions:
        return {field_name: text + ("." if design.language == "en" else "인")}
    chars = list(text)
    for i in rng.choice(positions, size=min(len(positions), int(rng.integers(1, 3))), replace=False):
        ch = chars[int(i)]
        if ch in _HANGUL_SWAPS:
            chars[int(i)] = _HANGUL_SWAPS[ch]
        elif "\u4e00" <= ch <= "\u9fff":
            chars[int(i)] = "川" if ch != "川" else "山"
        else:
            swapped = _LATIN_SWAPS[ch.upper()]
            chars[int(i)] = swapped if ch.isupper() else swapped.lower()
    return {field_name: "".join(chars)}


# ------------------------------------------------------------------------------------ impression


@dataclass(frozen=True)
class Impression:
    """One stamp impression ready to lay on a page.

    Attributes:
        ink: The ink, cropped to its extent (rotation included).
        condition: How it was pressed (for hard-case flags).
        date: Date text on the face ("" if the design has none).
        design: The design that was pressed.
    """

    ink: InkLayer
    condition: ImpressionCondition
    date: str
    design: StampDesign


def render_impression(
    design: StampDesign,
    rng: np.random.Generator,
    *,
    dpi: float = 200.0,
    condition: ImpressionCondition | None = None,
    date: str | None = None,
    hard: float = 0.3,
) -> Impression:
    """Press ``design`` once.

    Args:
        design: Genuine or forged design (a photocopy forgery renders as a colour copy of a genuine
            impression).
        rng: Random source for the condition (if not given), the date and ink textures.
        dpi: Output resolution; the stamp keeps its physical size.
        condition: How it is pressed; sampled from ``rng`` when ``None``.
        date: Date on date-bearing faces; random when ``None``.
        hard: Probability weight of hard cases when sampling the condition.

    Returns:
        The impression; ``impression.ink.absorb`` is ``(H, W, 3)`` float32 absorbance.
    """
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    px_per_mm = dpi / 25.4
    if condition is None:
        condition = ImpressionCondition.sample(rng, square=design.shape == "square_seal", hard=hard)
    if date is None:
        date = names.date_text(rng, design.date_style) if (design.has_date or design.shape == "date") else ""
    rgb = INK_RGB[design.ink]
    if design.forgery == ForgeryKind.PHOTOCOPY:
        genuine = dataclasses.replace(design, forgery=None)
        source = impress(draw_face(genuine, px_per_mm, date), rgb, condition.for_photocopy(), rng)
        ink = photocopy(source, px_per_mm, rng)
        condition = dataclasses.replace(condition.for_photocopy(), density=1.0)
    else:
        ink = impress(draw_face(design, px_per_mm, date), rgb, condition, rng)
    return Impression(ink=ink, condition=condition, date=date, design=design)


def stamp_size_px(design: StampDesign, dpi: float) -> tuple[int, int]:
    """Upright face size ``(width, height)`` in pixels at ``dpi`` (before rotation)."""
    return math.ceil(design.width_mm * dpi / 25.4), math.ceil(design.height_mm * dpi / 25.4)


__all__ = [
    "FORGERY_KINDS",
    "INK_RGB",
    "STAMP_SHAPES",
    "FontNotFoundError",
    "ForgeryKind",
    "Impression",
    "ImpressionCondition",
    "StampDesign",
    "forge",
    "render_impression",
    "stamp_size_px",
]
