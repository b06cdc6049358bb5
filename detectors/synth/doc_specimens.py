"""Specimen crops of stamps and signatures, as the similarity model sees them.

In production the document detector finds a mark and the similarity model receives the crop
around it: the mark plus a margin of paper, often with printed text or form lines underneath, after
whatever the scanner did to the page. :func:`specimen_crop` reproduces that for one rendered mark;
:func:`render_specimen` makes a genuine or forged specimen of an owner (authority or writer).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from detectors.synth.doc_raster import VISIBLE_DARKENING, InkLayer, lay_ink
from detectors.synth.fonts import FontCatalog, Script, default_catalog
from detectors.synth.scan import ScanKind, ScanProfile, simulate_scan, warp_box
from detectors.synth.signatures import Writer, random_forgery, render_signature, skilled_forgery
from detectors.synth.stamps import FORGERY_KINDS, ForgeryKind, StampDesign, forge, render_impression

SpecimenKind = Literal["stamp", "signature"]
#: Forgery kinds cycled through for each specimen kind, in this order.
SPECIMEN_FORGERIES: dict[SpecimenKind, tuple[str, ...]] = {
    "stamp": tuple(k.value for k in FORGERY_KINDS),
    "signature": ("skilled", "skilled", "random"),
}
_SCAN_WEIGHTS: dict[ScanKind, float] = {
    "clean": 0.3,
    "office": 0.35,
    "photocopy": 0.12,
    "fax": 0.05,
    "low_res": 0.1,
    "old_paper": 0.08,
}


def owner_id(kind: SpecimenKind, index: int) -> str:
    """The population id of owner ``index`` (``AUTH-00007`` or ``W-00007``), shared with the
    document generator so specimens and pages draw from the same owners."""
    return f"{'AUTH' if kind == 'stamp' else 'W'}-{index:05d}"


def render_specimen(
    kind: SpecimenKind,
    owner: str,
    forgery: str | None,
    rng: np.random.Generator,
    *,
    dpi: float = 200.0,
    population: int = 500,
) -> tuple[npt.NDArray[np.uint8], dict[str, object]]:
    """One specimen crop of ``owner``'s stamp or signature.

    Args:
        kind: ``"stamp"`` or ``"signature"``.
        owner: Authority or writer id.
        forgery: ``None`` for genuine; a :class:`~detectors.synth.stamps.ForgeryKind` value for
            stamps; ``"skilled"`` or ``"random"`` for signatures.
        rng: Random source (impression, forgery details, background and scan).
        dpi: Resolution.
        population: Writer population size random forgeries are drawn from.

    Returns:
        ``(H, W, 3)`` uint8 RGB crop, and a JSON-ready description.
    """
    if kind == "stamp":
        design = StampDesign.for_authority(owner)
        if forgery is not None:
            design = forge(design, ForgeryKind(forgery), rng)
        imp = render_impression(design, rng, dpi=dpi, hard=0.2)
        ink = imp.ink
        info: dict[str, object] = {
            "shape": design.shape,
            "faint": imp.condition.faint,
            "partial": imp.condition.is_partial,
        }
    elif kind == "signature":
        writer = Writer.for_id(owner)
        if forgery is None:
            sig = render_signature(writer, rng, dpi=dpi)
        elif forgery == "skilled":
            sig = skilled_forgery(writer, rng, dpi=dpi)
        elif forgery == "random":
            pool = [owner_id("signature", int(i)) for i in rng.integers(population, size=8)]
            sig = random_forgery(writer, rng, dpi=dpi, pool=pool)
        else:
            raise ValueError(f"unknown signature forgery {forgery!r}; expected 'skilled' or 'random'")
        ink = sig.ink
        info = {"script": writer.script, "author_id": sig.author_id}
    else:
        raise ValueError(f"kind must be 'stamp' or 'signature', got {kind!r}")
    kinds = list(_SCAN_WEIGHTS)
    p = np.array(list(_SCAN_WEIGHTS.values()))
    scan_kind: ScanKind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    crop = specimen_crop(ink, rng, dpi=dpi, scan=scan_kind)
    info.update({"owner_id": owner, "genuine": forgery is None, "forgery": forgery, "scan": scan_kind, "dpi": dpi})
    return crop, info


def specimen_crop(
    ink: InkLayer, rng: np.random.Generator, *, dpi: float, scan: ScanKind | None = None
) -> npt.NDArray[np.uint8]:
    """Lay ``ink`` on a patch of (sometimes printed-on) paper, scan it and crop around the ink.

    The crop is the ink's tight box widened by 4-12 % on each side, like a detector box with
    some slack.
    """
    h, w = ink.shape
    pad = max(12, int(0.25 * max(h, w)))
    H, W = h + 2 * pad, w + 2 * pad
    paper = Image.new("RGB", (W, H), (255, 255, 255))
    if rng.random() < 0.55:
        _background_print(paper, rng, dpi)
    page = np.asarray(paper, dtype=np.float32) / 255.0
    tone = np.array([1.0, rng.uniform(0.975, 1.0), rng.uniform(0.94, 0.995)], dtype=np.float32) * rng.uniform(
        0.93, 0.99
    )
    page = np.ascontiguousarray(page * tone)
    x, y = pad, pad
    lay_ink(page, ink, x, y)
    profile = ScanProfile.sample(rng, kind=scan, dpi=dpi)
    result = simulate_scan(page, profile, rng)
    box = warp_box(ink.darkening(), (x, y), result.matrix, (H, W), VISIBLE_DARKENING, result.binary_ink)
    if box is None:  # ink lost entirely (a faint stamp through a fax): keep the nominal place
        box = (x, y, x + w, y + h)
    x1, y1, x2, y2 = box
    mx = int((x2 - x1) * rng.uniform(0.04, 0.12)) + 2
    my = int((y2 - y1) * rng.uniform(0.04, 0.12)) + 2
    return np.ascontiguousarray(result.image[max(0, y1 - my) : min(H, y2 + my), max(0, x1 - mx) : min(W, x2 + mx)])


def _background_print(img: Image.Image, rng: np.random.Generator, dpi: float) -> None:
    """Printed matter under the mark: text lines, a form rule or a table edge."""
    draw = ImageDraw.Draw(img)
    catalog = default_catalog()
    script: Script = "hangul" if rng.random() < 0.5 and catalog.has("hangul") else "latin"
    face = catalog.pick(script, rng)
    size = max(6, round(float(rng.uniform(8.5, 11.0)) * dpi / 72.0))
    font = FontCatalog.font(face, size)
    words = ("세관", "신고인", "수입자", "확인", "대표이사", "주식회사") if script == "hangul" else (
        "Authorized", "signature", "Customs", "Seller", "Date", "Company", "Ltd.", "Manager")  # fmt: skip
    W, H = img.size
    y = int(rng.integers(0, max(1, size)))
    while y < H:
        if rng.random() < 0.6:
            x = int(rng.integers(-size, max(1, W // 3)))
            line = " ".join(words[int(i)] for i in rng.integers(len(words), size=6))
            draw.text((x, y), line, font=font, fill=(30, 30, 30))
        elif rng.random() < 0.5:
            draw.line((0, y, W, y), fill=(30, 30, 30), width=max(1, round(dpi / 150)))
        y += int(size * rng.uniform(1.6, 3.0))
