"""Font discovery for the synthetic document, stamp and signature generators.

The generators need real typefaces: Latin for English documents, Hangul for Korean ones and Hanja
(CJK ideographs) for traditional square seals. Nothing is shipped with the project; fonts are found
on the machine by scanning well-known font directories, plus any directories listed in the
``CV_FONT_DIRS`` environment variable (``os.pathsep``-separated, searched first).

Each face is classified by what it can actually draw (a glyph-coverage probe, not its file name),
so an unexpected font that happens to cover Hangul is used too. On Debian/Ubuntu the packages
``fonts-nanum`` and ``fonts-noto-cjk`` (Hangul, Hanja), ``fonts-dejavu-core`` and
``fonts-liberation2`` (Latin) provide everything.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Script = Literal["latin", "hangul", "hanja"]
FontStyle = Literal["serif", "sans", "mono"]

SCRIPTS: tuple[Script, ...] = ("latin", "hangul", "hanja")

#: Debian packages that provide fonts for each script; named in errors so an operator knows the fix.
DEBIAN_PACKAGES: dict[Script, str] = {
    "latin": "fonts-dejavu-core fonts-liberation2",
    "hangul": "fonts-nanum (or fonts-noto-cjk)",
    "hanja": "fonts-noto-cjk",
}

ENV_VAR = "CV_FONT_DIRS"

DEFAULT_FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:/Windows/Fonts",
)

_FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
# Characters a face must draw to count as covering a script. Several per script because some
# fonts carry a handful of stray glyphs from a block without covering it.
_PROBES: dict[Script, str] = {"latin": "AgQ&", "hangul": "가국세관한", "hanja": "關稅印廳"}
# Faces that exist for other purposes and look wrong in running text.
_EXCLUDED_NAME_PARTS = ("math", "extralight", "symbol", "emoji", "dingbat")
# CJK collections repeat the same design per region; keep the Korean cut, drop the others.
_CJK_REGION_SUFFIXES = (" JP", " SC", " TC", " HK")


class FontNotFoundError(RuntimeError):
    """No installed font can draw the requested script (and style)."""


@dataclass(frozen=True, order=True)
class FontFace:
    """One face of one font file.

    Ordered by family and style first, so that seeded choices are the same on machines where the
    same fonts live in other directories.

    Attributes:
        family: Family name as the font reports it, e.g. ``"NanumMyeongjo"``.
        style_name: Sub-family as the font reports it, e.g. ``"Bold"``.
        path: Font file.
        index: Face index inside a collection (``.ttc``); 0 for single-face files.
        scripts: Scripts the face covers (by glyph probe).
        style: ``"serif"``, ``"sans"`` or ``"mono"`` (from the family name).
        bold: Whether the face is a bold weight.
    """

    family: str
    style_name: str
    path: Path
    index: int
    scripts: frozenset[str]
    style: FontStyle
    bold: bool

    @property
    def italic(self) -> bool:
        """Whether the face is italic or oblique (never wanted for forms or stamps)."""
        name = self.style_name.lower()
        return "italic" in name or "oblique" in name

    @property
    def key(self) -> str:
        """Stable short identifier (``family/style``) for metadata and design hashing."""
        return f"{self.family}/{self.style_name}"


class FontCatalog:
    """The set of usable font faces found on this machine.

    Build it with :meth:`discover` (or the process-wide :func:`default_catalog`); query it with
    :meth:`faces` / :meth:`pick`; load a sized font with :meth:`font`.
    """

    def __init__(self, faces: Sequence[FontFace]) -> None:
        # Sorted so that choices made with a seeded rng do not depend on directory listing order.
        self._faces: tuple[FontFace, ...] = tuple(sorted(set(faces)))

    @classmethod
    def discover(cls, dirs: Iterable[str | os.PathLike[str]] | None = None) -> FontCatalog:
        """Scan font directories and classify every face found.

        Args:
            dirs: Directories to scan recursively. ``None`` means ``CV_FONT_DIRS`` (if set)
                followed by :data:`DEFAULT_FONT_DIRS`.

        Returns:
            The catalog; it may be empty (queries then raise :class:`FontNotFoundError`).
        """
        if dirs is None:
            env = [d for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d.strip()]
            dirs = [*env, *DEFAULT_FONT_DIRS]
        faces: list[FontFace] = []
        seen: set[Path] = set()
        for d in dirs:
            root = Path(d).expanduser()
            if not root.is_dir():
                continue
            for path in sorted(root.rglob("*")):
                if path.suffix.lower() not in _FONT_SUFFIXES or not path.is_file():
                    continue
                resolved = path.resolve()
                if resolved in seen:
                    continue
                seen.add(resolved)
                faces.extend(_probe_file(resolved))
        return cls(faces)

    @property
    def all_faces(self) -> tuple[FontFace, ...]:
        return self._faces

    def has(self, script: Script) -> bool:
        """Whether any face covers ``script``."""
        return any(script in f.scripts for f in self._faces)

    def faces(
        self,
        script: Script,
        style: FontStyle | None = None,
        bold: bool | None = None,
        italic: bool | None = False,
    ) -> list[FontFace]:
        """Faces covering ``script``, preferring the requested style, weight and slope.

        Style, weight and slope are preferences: when no face matches them, any face covering the
        script is returned, because a document in the "wrong" typeface is better than no document.
        ``italic=None`` accepts both upright and italic faces.

        Raises:
            FontNotFoundError: No face covers ``script`` at all.
        """
        covering = [f for f in self._faces if script in f.scripts]
        if italic is not None and any(f.italic == italic for f in covering):
            covering = [f for f in covering if f.italic == italic]
        if not covering:
            raise FontNotFoundError(
                f"no installed font can draw {script} text; searched {ENV_VAR} and "
                f"{', '.join(DEFAULT_FONT_DIRS)}. Install the Debian package(s) "
                f"{DEBIAN_PACKAGES[script]} (apt-get install -y ...), or point {ENV_VAR} at a "
                f"directory with such fonts."
            )
        for want_style, want_bold in ((style, bold), (style, None), (None, bold)):
            match = [
                f
                for f in covering
                if (want_style is None or f.style == want_style) and (want_bold is None or f.bold == want_bold)
            ]
            if match:
                return match
        return covering

    def pick(
        self,
        script: Script,
        rng: np.random.Generator,
        style: FontStyle | None = None,
        bold: bool | None = None,
        italic: bool | None = False,
    ) -> FontFace:
        """A face chosen with ``rng`` among :meth:`faces` (deterministic for a seeded rng)."""
        options = self.faces(script, style, bold, italic)
        return options[int(rng.integers(len(options)))]

    def by_key(self, key: str) -> FontFace | None:
        """The face whose :attr:`FontFace.key` is ``key``, if installed."""
        for f in self._faces:
            if f.key == key:
                return f
        return None

    @staticmethod
    def font(face: FontFace, size_px: int) -> ImageFont.FreeTypeFont:
        """Load ``face`` at ``size_px`` pixels (em size). Cached per process."""
        return _load(face.path, face.index, max(1, int(size_px)))


@functools.lru_cache(maxsize=512)
def _load(path: Path, index: int, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size_px, index=index)


@functools.lru_cache(maxsize=1)
def default_catalog() -> FontCatalog:
    """The process-wide catalog from the default search path (discovered once, then cached)."""
    return FontCatalog.discover()


def _probe_file(path: Path) -> list[FontFace]:
    faces: list[FontFace] = []
    for index in range(64):
        try:
            font = ImageFont.truetype(str(path), 32, index=index)
        except (OSError, ValueError):
            break  # past the last face of a collection, or an unreadable file
        family, style_name = (str(s) for s in font.getname())
        lowered = f"{family} {style_name}".lower()
        single_file = path.suffix.lower() in (".ttf", ".otf")
        if any(part in lowered for part in _EXCLUDED_NAME_PARTS) or family.endswith(_CJK_REGION_SUFFIXES):
            if single_file:
                break
            continue
        scripts = frozenset(s for s in SCRIPTS if _covers(font, _PROBES[s]))
        if scripts:
            faces.append(
                FontFace(
                    path=path,
                    index=index,
                    family=family,
                    style_name=style_name,
                    scripts=scripts,
                    style=_style_of(family),
                    bold="bold" in lowered or "black" in lowered or "heavy" in lowered,
                )
            )
        if single_file:
            break
    return faces


def _style_of(family: str) -> FontStyle:
    name = family.lower()
    if "mono" in name or "coding" in name or "courier" in name:
        return "mono"
    if any(w in name for w in ("serif", "myeongjo", "batang", "times", "mincho", "song")) and "sans" not in name:
        return "serif"
    return "sans"


def _render(font: ImageFont.FreeTypeFont, ch: str) -> bytes:
    canvas = Image.new("L", (48, 48))
    ImageDraw.Draw(canvas).text((4, 4), ch, font=font, fill=255)
    return canvas.tobytes()


def _covers(font: ImageFont.FreeTypeFont, probe: str) -> bool:
    # A missing glyph renders as the font's .notdef (a box, or nothing): compare against a
    # private-use code point no text font defines.
    missing = _render(font, chr(0x10FFFD))
    return all((r := _render(font, ch)) != missing and any(r) for ch in probe)
