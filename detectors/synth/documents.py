"""Synthetic scanned customs documents with labelled stamps and signatures.

:func:`render_page` composes one page: a document template (import declaration, commercial
invoice, certificate of origin, permit, business letter or contract; Korean or English) printed on
paper, handwritten fill-ins, signatures and stamp impressions from a population of writers and
issuing authorities (some forged), and finally a scan, photocopy or fax of the whole. Every mark
gets a YOLO-ready box that is tight around its *visible* ink in the final image (after rotation,
partial impressions, clipping at the page edge and the scan's skew).

Determinism: everything about page ``index`` of a dataset with seed ``seed`` comes from
``numpy.random.SeedSequence([seed, index])``, so pages do not depend on each other, on the number
of worker processes or on the order of generation. (Fonts are found on the machine; the same seed
gives the same pages on machines with the same fonts.)

Classes: 0 = stamp, 1 = signature (:data:`CLASS_NAMES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from detectors.synth.doc_layout import DocCanvas, MarkSlot
from detectors.synth.doc_names import Language
from detectors.synth.doc_raster import InkLayer, lay_ink, smooth_noise
from detectors.synth.doc_templates import DOCUMENT_KINDS, KOREAN_SHARE, TEMPLATES, DocumentKind
from detectors.synth.fonts import FontNotFoundError
from detectors.synth.scan import SCAN_KINDS, ScanKind, ScanProfile, simulate_scan, warp_box
from detectors.synth.signatures import Writer, random_forgery, render_handwriting, render_signature, skilled_forgery
from detectors.synth.stamps import FORGERY_KINDS, StampDesign, forge, render_impression

CLASS_NAMES: tuple[str, ...] = ("stamp", "signature")
STAMP, SIGNATURE = 0, 1
#: Boxes smaller than this (pixels, each side) are not labelled: nothing a detector could learn.
MIN_BOX_PX = 3


@dataclass(frozen=True)
class PageConfig:
    """Knobs of the page generator (explicit keyword arguments; the CLI maps flags onto them).

    Attributes:
        dpi_range: Rendering resolution is drawn uniformly from this range (A4 at 150 dpi is
            1240 x 1754 px; at 300 dpi 2480 x 3508 px).
        authorities: Size of the issuing-authority population (ids ``AUTH-00000`` ...).
        writers: Size of the writer population (ids ``W-00000`` ...).
        forgery_rate: Probability that a mark is forged.
        hard_rate: Weight of hard cases (faint, partial, smudged impressions).
        scan_kinds: Scan scenarios to draw from (default: all).
        kinds: Document kinds to draw from (default: all).
        languages: Document languages to draw from; ``("en",)`` needs no Hangul font.
    """

    dpi_range: tuple[float, float] = (150.0, 300.0)
    authorities: int = 500
    writers: int = 500
    forgery_rate: float = 0.2
    hard_rate: float = 0.3
    scan_kinds: tuple[ScanKind, ...] = SCAN_KINDS
    kinds: tuple[DocumentKind, ...] = DOCUMENT_KINDS
    languages: tuple[Language, ...] = ("ko", "en")

    def __post_init__(self) -> None:
        lo, hi = self.dpi_range
        if not 50 <= lo <= hi <= 600:
            raise ValueError(f"dpi_range must satisfy 50 <= low <= high <= 600, got {self.dpi_range}")
        if self.authorities < 1 or self.writers < 2:
            raise ValueError("need at least 1 authority and 2 writers (random forgeries use another writer)")
        if not 0.0 <= self.forgery_rate <= 1.0 or not 0.0 <= self.hard_rate <= 1.0:
            raise ValueError("forgery_rate and hard_rate must be in [0, 1]")
        unknown = set(self.scan_kinds) - set(SCAN_KINDS) or set(self.kinds) - set(DOCUMENT_KINDS)
        if unknown or not self.scan_kinds or not self.kinds:
            raise ValueError(f"unknown or empty scan/document kinds: {sorted(unknown)}")
        if not self.languages or set(self.languages) - {"ko", "en"}:
            raise ValueError(f"languages must be a non-empty subset of ('ko', 'en'), got {self.languages}")


@dataclass(frozen=True)
class Mark:
    """One labelled stamp or signature on a page.

    Attributes:
        class_id: 0 stamp, 1 signature.
        box: ``x1, y1, x2, y2`` in scan pixels, tight around visible ink (exclusive ends).
        owner_id: Authority id (stamps) or writer id (signatures) the mark purports to be from.
        genuine: Whether it really is.
        forgery: ``None`` or the forgery kind (stamps: :class:`~detectors.synth.stamps.ForgeryKind`
            values; signatures: ``"skilled"`` or ``"random"``).
        flags: Hard-case flags: ``stamp_over_signature``, ``faint``, ``partial``,
            ``greyscale_photocopy``, ``fax``.
        detail: Free-form description (stamp shape, writer script, role on the page).
    """

    class_id: int
    box: tuple[int, int, int, int]
    owner_id: str
    genuine: bool
    forgery: str | None
    flags: dict[str, bool]
    detail: dict[str, object] = field(default_factory=dict)

    def yolo(self, width: int, height: int) -> str:
        """The YOLO label line: ``class cx cy w h``, normalised to ``[0, 1]``."""
        x1, y1, x2, y2 = self.box
        return (
            f"{self.class_id} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
        )


@dataclass(frozen=True)
class Page:
    """A rendered, scanned page and its labels.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB scan.
        marks: Labelled marks, in the order they were laid.
        kind: Document kind.
        language: ``"ko"`` or ``"en"``.
        dpi: Rendering resolution.
        scan: The scan profile used.
    """

    image: npt.NDArray[np.uint8]
    marks: list[Mark]
    kind: DocumentKind
    language: Language
    dpi: float
    scan: ScanProfile


@dataclass
class _Laid:
    """A mark laid on the page, before the scan."""

    class_id: int
    ink: InkLayer
    x: int
    y: int
    owner_id: str
    forgery: str | None
    flags: dict[str, bool]
    detail: dict[str, object]

    def page_box(self) -> tuple[int, int, int, int] | None:
        box = self.ink.box()
        if box is None:
            return None
        return box[0] + self.x, box[1] + self.y, box[2] + self.x, box[3] + self.y


def page_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the layout, the marks and the scan of page ``index``.

    Separate streams keep, for example, the scan identical when marks are filtered out (tests
    compare a page with and without a mark).
    """
    layout, marks, scan = np.random.SeedSequence([int(seed), int(index)]).spawn(3)
    return np.random.default_rng(layout), np.random.default_rng(marks), np.random.default_rng(scan)


def render_page(
    seed: int,
    index: int,
    config: PageConfig | None = None,
    *,
    scan_profile: ScanProfile | None = None,
    keep_mark: Callable[[int], bool] | None = None,
) -> Page:
    """Render page ``index`` of the dataset with ``seed``.

    Args:
        seed: Dataset seed.
        index: Page number.
        config: Generator knobs (defaults when ``None``).
        scan_profile: Force a scan profile (e.g. :meth:`ScanProfile.identity`); drawn otherwise.
        keep_mark: Debug/test hook: called with each mark's position in laying order; marks for
            which it returns ``False`` are rendered but not laid on the page (and not labelled).
            All random draws are unchanged, so the rest of the page is identical.

    Returns:
        The scanned page and its labelled marks.
    """
    cfg = config or PageConfig()
    lrng, mrng, srng = page_rngs(seed, index)
    kind: DocumentKind = cfg.kinds[int(lrng.integers(len(cfg.kinds)))]
    language: Language = "ko" if lrng.random() < KOREAN_SHARE[kind] else "en"
    if language not in cfg.languages:
        language = cfg.languages[0]
    dpi = float(round(lrng.uniform(*cfg.dpi_range)))
    canvas = DocCanvas(dpi=dpi, language=language, rng=lrng)
    TEMPLATES[kind](canvas)
    page = _paper(canvas, lrng)

    # Handwriting that is not a signature: form fill-ins by the declarant.
    filler = Writer.for_id(f"W-{int(mrng.integers(cfg.writers)):05d}", script="hangul" if language == "ko" else "latin")
    for fill in canvas.fills:
        ink = render_handwriting(filler, fill.text, mrng, dpi=dpi, size_mm=fill.size_mm)
        h = ink.shape[0]
        lay_ink(page, ink, canvas.px(fill.x_mm), canvas.px(fill.y_mm) - h // 2)

    laid = _lay_marks(canvas, cfg, mrng, dpi, kind)
    profile = scan_profile or ScanProfile.sample(
        srng, kind=cfg.scan_kinds[int(srng.integers(len(cfg.scan_kinds)))], dpi=dpi
    )
    _flag_overlaps(laid)
    kept = [m for i, m in enumerate(laid) if keep_mark is None or keep_mark(i)]
    for m in kept:
        lay_ink(page, m.ink, m.x, m.y)
    scan = simulate_scan(page, profile, srng)
    H, W = scan.image.shape[:2]
    marks: list[Mark] = []
    for m in kept:
        box = warp_box(m.ink.darkening(), (m.x, m.y), scan.matrix, (H, W), scan.visible_darkening(), scan.binary_ink)
        if box is None or box[2] - box[0] < MIN_BOX_PX or box[3] - box[1] < MIN_BOX_PX:
            continue
        flags = dict(m.flags, greyscale_photocopy=profile.is_photocopy, fax=profile.binarize)
        marks.append(Mark(m.class_id, box, m.owner_id, m.forgery is None, m.forgery, flags, m.detail))
    return Page(image=scan.image, marks=marks, kind=kind, language=language, dpi=dpi, scan=profile)


def _paper(canvas: DocCanvas, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Printed page as reflectance on slightly tinted, faintly clouded office paper."""
    printed = np.asarray(canvas.img).astype(np.float32)
    h, w = printed.shape[:2]
    tint = np.array([1.0, float(rng.uniform(0.975, 1.0)), float(rng.uniform(0.94, 0.995))], dtype=np.float32)
    tint *= float(rng.uniform(0.93, 0.99)) / 255.0
    # Fibre cloudiness, synthesised small and stretched; the fine grain is the scanner's noise.
    sh, sw = max(4, h // 16), max(4, w // 16)
    cloud = 1.0 + 0.003 * smooth_noise((sh, sw), 4.0, rng)
    paper = cv2.resize(cloud[..., None] * tint[None, None, :], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        # Toner or ink-jet black is not perfectly black.
        printed = printed * np.float32(0.93) + np.float32(0.07 * 255.0)
    return np.asarray(cv2.multiply(printed, paper), dtype=np.float32)


def _pick_owner(
    prefix: str,
    population: int,
    rng: np.random.Generator,
    accept: Callable[[str], bool],
    usable_owner: Callable[[str], bool],
) -> str:
    """An owner id from the population, preferring ones ``accept`` likes (a Korean form is mostly
    stamped by Korean offices and signed by Korean writers, but not always). Owners whose stamp
    cannot be drawn with the installed fonts are never returned."""
    first = None
    for _ in range(64):
        candidate = f"{prefix}{int(rng.integers(population)):05d}"
        try:
            if not usable_owner(candidate):
                continue
            first = first or candidate
            if accept(candidate):
                return candidate
        except FontNotFoundError:
            continue  # e.g. a Korean authority on a machine without Hangul fonts
    if first is None:
        raise FontNotFoundError(
            f"no owner among {population} ids with prefix {prefix!r} can be rendered with the installed fonts"
        )
    return first


# Who stamps a document as its issuer (falls back to anyone when the population has none).
_ISSUER_KINDS: dict[DocumentKind, tuple[str, ...]] = {
    "import_declaration": ("customs",),
    "permit": ("customs", "ministry"),
    "certificate_of_origin": ("chamber",),
    "commercial_invoice": ("company_ko", "company_en"),
    "business_letter": ("company_ko", "company_en"),
    "contract": ("company_ko", "company_en"),
}


def _lay_marks(
    canvas: DocCanvas, cfg: PageConfig, rng: np.random.Generator, dpi: float, kind: DocumentKind
) -> list[_Laid]:
    laid: list[_Laid] = []
    page_w, page_h = canvas.img.size
    lang = canvas.language if rng.random() < 0.85 else ("en" if canvas.language == "ko" else "ko")
    if lang not in cfg.languages:
        lang = canvas.language
    scripts: tuple[str, ...] = ("hangul", "hanzi") if lang == "ko" else ("latin",)
    if rng.random() < 0.2:
        scripts = ("latin", "hangul", "hanzi")

    issuer_kinds = _ISSUER_KINDS[kind]

    def issuer_ok(aid: str) -> bool:
        d = StampDesign.for_authority(aid)
        return d.language == lang and d.authority_kind in issuer_kinds

    def party_ok(aid: str) -> bool:
        d = StampDesign.for_authority(aid)
        return d.language == lang and d.authority_kind.startswith("company")

    def writer_ok(wid: str) -> bool:
        return Writer.for_id(wid).script in scripts

    def stamp_usable(aid: str) -> bool:
        return StampDesign.for_authority(aid).language in cfg.languages

    def any_writer(wid: str) -> bool:
        return True

    issuer = _pick_owner("AUTH-", cfg.authorities, rng, issuer_ok, stamp_usable)
    party_authority = _pick_owner("AUTH-", cfg.authorities, rng, party_ok, stamp_usable)
    officer = _pick_owner("W-", cfg.writers, rng, writer_ok, any_writer)
    party_writer = _pick_owner("W-", cfg.writers, rng, writer_ok, any_writer)
    for slot in canvas.slots:
        present = rng.random() < slot.probability
        forged = rng.random() < cfg.forgery_rate
        jitter = rng.normal(0.0, 2.5, 2)  # mm: nobody stamps or signs exactly on the line
        if not present:
            continue
        cx, cy = canvas.px(slot.x_mm + jitter[0]), canvas.px(slot.y_mm + jitter[1])
        if slot.kind == "stamp":
            owner = issuer if slot.role == "issuer" else party_authority
            design = StampDesign.for_authority(owner)
            forgery: str | None = None
            if forged:
                fk = FORGERY_KINDS[int(rng.integers(len(FORGERY_KINDS)))]
                design, forgery = forge(design, fk, rng), fk.value
            imp = render_impression(design, rng, dpi=dpi, hard=cfg.hard_rate)
            ink = imp.ink
            flags = {"faint": imp.condition.faint, "partial": imp.condition.is_partial}
            detail: dict[str, object] = {"shape": design.shape, "ink": design.ink, "role": slot.role}
            class_id = STAMP
        else:
            owner = officer if slot.role == "officer" else party_writer
            writer = Writer.for_id(owner)
            forgery = None
            if forged:
                if rng.random() < 0.6:
                    sig = skilled_forgery(writer, rng, dpi=dpi)
                else:
                    pool = [f"W-{int(v):05d}" for v in rng.integers(cfg.writers, size=4)]
                    sig = random_forgery(writer, rng, dpi=dpi, pool=pool)
                forgery = sig.kind
            else:
                sig = render_signature(writer, rng, dpi=dpi)
            ink = _fit_width(sig.ink, canvas.px(slot.w_mm) * 1.3)
            flags = {"faint": False, "partial": False}
            detail = {"script": writer.script, "role": slot.role}
            class_id = SIGNATURE
        h, w = ink.shape
        x, y = cx - w // 2, cy - h // 2
        if x < 0 or y < 0 or x + w > page_w or y + h > page_h:
            flags["partial"] = True  # overhangs the paper edge: clipped
        laid.append(_Laid(class_id, ink, x, y, owner, forgery, flags, detail))
    return laid


def _fit_width(ink: InkLayer, max_w: float) -> InkLayer:
    """Shrink a signature wider than the space available (people write smaller on a short line)."""
    h, w = ink.shape
    if w <= max_w or w < 8:
        return ink
    s = max_w / w
    absorb = cv2.resize(ink.absorb, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    return InkLayer(np.asarray(absorb, dtype=np.float32))


def _flag_overlaps(laid: list[_Laid]) -> None:
    """Set ``stamp_over_signature`` on stamps and signatures whose ink boxes intersect."""
    boxes = [m.page_box() for m in laid]
    for i, a in enumerate(laid):
        a.flags.setdefault("stamp_over_signature", False)
        for j, b in enumerate(laid):
            if a.class_id == b.class_id or boxes[i] is None or boxes[j] is None:
                continue
            ax1, ay1, ax2, ay2 = boxes[i]  # type: ignore[misc]
            bx1, by1, bx2, by2 = boxes[j]  # type: ignore[misc]
            if min(ax2, bx2) > max(ax1, bx1) and min(ay2, by2) > max(ay1, by1):
                a.flags["stamp_over_signature"] = True


__all__ = [
    "CLASS_NAMES",
    "DOCUMENT_KINDS",
    "SCAN_KINDS",
    "Mark",
    "MarkSlot",
    "Page",
    "PageConfig",
    "page_rngs",
    "render_page",
]
