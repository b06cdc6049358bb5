"""A small page-layout toolkit in millimetres, drawing printed matter onto an A4 raster.

Document templates (:mod:`detectors.synth.doc_templates`) describe pages with it: text, wrapped
paragraphs, ruled tables, labelled form boxes, logos. Besides drawing, the canvas collects
*requests* the page composer fulfils afterwards with the ink models: where a signature or stamp
belongs (:class:`MarkSlot`) and which fields are filled in by hand (:class:`HandFill`).

Units: positions and sizes in millimetres from the page's top-left corner, font sizes in points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from detectors.synth.doc_names import Language
from detectors.synth.fonts import FontCatalog, FontFace, FontStyle, Script, default_catalog

A4_MM = (210.0, 297.0)
Colour = tuple[int, int, int]
INK_BLACK: Colour = (28, 28, 30)


@dataclass(frozen=True)
class MarkSlot:
    """Where a stamp or signature belongs on the page.

    Attributes:
        kind: ``"stamp"`` or ``"signature"``.
        x_mm, y_mm: Centre of the intended position.
        w_mm: Width available (a signature is scaled down to fit if wider).
        role: Who marks it: ``issuer`` (the document's authority), ``party`` (a company or
            person on the document) or ``officer`` (a customs officer's signature).
        probability: Chance the mark is actually there (blank signature lines are common).
    """

    kind: Literal["stamp", "signature"]
    x_mm: float
    y_mm: float
    w_mm: float
    role: Literal["issuer", "party", "officer"] = "party"
    probability: float = 1.0


@dataclass(frozen=True)
class HandFill:
    """Text written by hand into a form field (a distractor: handwriting that is not a signature)."""

    text: str
    x_mm: float
    y_mm: float
    size_mm: float


@dataclass
class DocCanvas:
    """An A4 page being laid out.

    Attributes:
        dpi: Raster resolution.
        language: Main language of the document.
        rng: Layout randomness (fonts, offsets, which optional parts appear).
        img: The RGB raster (white paper, printed matter in colour).
        slots: Requested marks, in drawing order.
        fills: Requested handwritten fill-ins.
    """

    dpi: float
    language: Language
    rng: np.random.Generator
    img: Image.Image = field(init=False)
    draw: ImageDraw.ImageDraw = field(init=False)
    slots: list[MarkSlot] = field(default_factory=list)
    fills: list[HandFill] = field(default_factory=list)
    regular: FontFace = field(init=False)
    bold: FontFace = field(init=False)
    catalog: FontCatalog = field(init=False)

    def __post_init__(self) -> None:
        w, h = self.px(A4_MM[0]), self.px(A4_MM[1])
        self.img = Image.new("RGB", (w, h), (255, 255, 255))
        self.draw = ImageDraw.Draw(self.img)
        self.catalog = default_catalog()
        script: Script = "hangul" if self.language == "ko" else "latin"
        style: FontStyle = "serif" if self.rng.random() < 0.45 else "sans"
        self.regular = self.catalog.pick(script, self.rng, style=style, bold=False)
        bold = [f for f in self.catalog.faces(script, style=style, bold=True) if f.family == self.regular.family]
        self.bold = bold[0] if bold else self.catalog.pick(script, self.rng, style=style, bold=True)

    # ------------------------------------------------------------------------------ units
    def px(self, mm: float) -> int:
        return round(mm * self.dpi / 25.4)

    def font(self, size_pt: float, bold: bool = False) -> ImageFont.FreeTypeFont:
        return FontCatalog.font(self.bold if bold else self.regular, round(size_pt * self.dpi / 72.0))

    def text_width_mm(self, s: str, size_pt: float, bold: bool = False) -> float:
        return self.font(size_pt, bold).getlength(s) * 25.4 / self.dpi

    # ---------------------------------------------------------------------------- drawing
    def text(
        self,
        x: float,
        y: float,
        s: str,
        size_pt: float = 10.0,
        bold: bool = False,
        anchor: str = "la",
        colour: Colour = INK_BLACK,
        max_w: float | None = None,
    ) -> None:
        """Draw one line; ``anchor`` as in PIL (``la`` left-ascender, ``mm`` centre, ``ra`` right)."""
        if not s:
            return
        if max_w is not None:
            width = self.text_width_mm(s, size_pt, bold)
            if width > max_w:
                size_pt *= max_w / width
        self.draw.text((self.px(x), self.px(y)), s, font=self.font(size_pt, bold), fill=colour, anchor=anchor)

    def paragraph(
        self,
        x: float,
        y: float,
        width: float,
        s: str,
        size_pt: float = 10.0,
        leading: float = 1.45,
        indent: float = 0.0,
    ) -> float:
        """Word-wrapped text; returns the y (mm) below the last line."""
        line_h = size_pt * 0.3528 * leading
        words = s.split()
        line = ""
        first = True
        for word in words:
            trial = f"{line} {word}".strip()
            avail = width - (indent if first else 0.0)
            if line and self.text_width_mm(trial, size_pt) > avail:
                self.text(x + (indent if first else 0.0), y, line, size_pt)
                y += line_h
                line, first = word, False
            else:
                line = trial
        if line:
            self.text(x + (indent if first else 0.0), y, line, size_pt)
            y += line_h
        return y

    def line(
        self, x1: float, y1: float, x2: float, y2: float, width_pt: float = 0.6, colour: Colour = INK_BLACK
    ) -> None:
        w = max(1, round(width_pt * self.dpi / 72.0))
        self.draw.line((self.px(x1), self.px(y1), self.px(x2), self.px(y2)), fill=colour, width=w)

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        width_pt: float = 0.6,
        fill: Colour | None = None,
        colour: Colour = INK_BLACK,
    ) -> None:
        box = (self.px(x), self.px(y), self.px(x + w), self.px(y + h))
        if fill is not None:
            self.draw.rectangle(box, fill=fill)
        if width_pt > 0:
            self.draw.rectangle(box, outline=colour, width=max(1, round(width_pt * self.dpi / 72.0)))

    def table(
        self,
        x: float,
        y: float,
        cols: list[float],
        rows: list[list[str]],
        row_h: float = 7.0,
        size_pt: float = 8.5,
        header: bool = True,
        shade: Colour = (225, 225, 225),
    ) -> float:
        """A ruled table; ``cols`` are column widths (mm). Returns the y below the table."""
        total = sum(cols)
        for r, row in enumerate(rows):
            top = y + r * row_h
            if r == 0 and header:
                self.rect(x, top, total, row_h, width_pt=0, fill=shade)
            cx = x
            for c, cell in enumerate(row):
                bold = r == 0 and header
                numeric = cell.replace(",", "").replace(".", "").replace(" ", "").isdigit()
                if numeric and not bold:
                    self.text(cx + cols[c] - 1.2, top + row_h / 2, cell, size_pt, anchor="rm", max_w=cols[c] - 2)
                else:
                    self.text(cx + 1.2, top + row_h / 2, cell, size_pt, bold=bold, anchor="lm", max_w=cols[c] - 2.4)
                cx += cols[c]
        lw = 0.5
        for r in range(len(rows) + 1):
            self.line(x, y + r * row_h, x + total, y + r * row_h, lw)
        cx = x
        for w in [0.0, *cols]:
            cx += w
            self.line(cx, y, cx, y + len(rows) * row_h, lw)
        return y + len(rows) * row_h

    def field_box(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        label: str,
        value: str = "",
        size_pt: float = 8.0,
        hand: bool = False,
    ) -> None:
        """A form box: small label top-left, value printed (or requested by hand) below it."""
        self.rect(x, y, w, h, 0.5)
        self.text(x + 1.0, y + 0.8, label, size_pt * 0.85, bold=False)
        if not value:
            return
        if hand:
            self.fills.append(HandFill(value, x + 2.0, y + h * 0.62, min(4.0, h * 0.4)))
        else:
            self.text(x + 2.0, y + h * 0.62, value, size_pt * 1.1, anchor="lm", max_w=w - 3.0)

    def logo(self, x: float, y: float, size: float, name: str) -> None:
        """A procedural company logo: a coloured mark plus initials (a round logo is a good
        negative example for the stamp detector)."""
        rng = self.rng
        colour: Colour = tuple(int(v) for v in rng.integers(20, 200, 3))  # type: ignore[assignment]
        s = self.px(size)
        x0, y0 = self.px(x), self.px(y)
        shape = int(rng.integers(4))
        if shape == 0:
            self.draw.ellipse((x0, y0, x0 + s, y0 + s), fill=colour)
        elif shape == 1:
            self.draw.rounded_rectangle((x0, y0, x0 + s, y0 + s), radius=s // 5, fill=colour)
        elif shape == 2:
            self.draw.polygon([(x0 + s // 2, y0), (x0 + s, y0 + s), (x0, y0 + s)], fill=colour)
        else:
            self.draw.ellipse((x0, y0, x0 + s, y0 + s), outline=colour, width=max(2, s // 10))
        initials = "".join(w[0] for w in name.replace("(주)", "").split()[:2]).upper() or "X"
        f = FontCatalog.font(self.bold, max(6, int(s * 0.45)))
        fill = (255, 255, 255) if shape in (0, 1, 2) else colour
        self.draw.text(
            (x0 + s / 2, y0 + s * (0.62 if shape == 2 else 0.5)), initials[:2], font=f, fill=fill, anchor="mm"
        )

    # --------------------------------------------------------------------------- requests
    def want(self, slot: MarkSlot) -> None:
        self.slots.append(slot)

    def hand(self, text: str, x: float, y: float, size_mm: float = 3.5) -> None:
        self.fills.append(HandFill(text, x, y, size_mm))
