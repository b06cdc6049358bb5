"""``customs-vision synth samples``: the example files the README's curl commands post.

A first-time user has no X-ray scans, customs declarations or registered stamps to hand, so the
README's walk-through would otherwise start with "find some images". This command writes one of
each from the synthetic generators, deterministically from ``--seed``: an X-ray scan with a
handgun in plain sight, a declaration page carrying one authority's stamp and one writer's
signature, genuine specimens of that stamp and signature to register, and a second genuine and a
forged impression of the stamp to compare. The owners are the generators' population ids
(``AUTH-00042``, ``W-00007``), the same ids ``synth documents`` and ``synth specimens`` use.

Pages and scans are *chosen* by a deterministic search (the first index of the seed's stream that
fits), not forced, so the generators stay untouched and every sample is an ordinary member of the
training distribution.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from service.cli import CommandGroups

if TYPE_CHECKING:  # numpy and the generators load in the handler, so ``--help`` stays instant
    import numpy as np
    import numpy.typing as npt

#: What each file is, in the order the README uses them (also written to ``README.txt``).
SAMPLE_FILES: dict[str, str] = {
    "scan.jpg": "dual-energy X-ray scan with a {threat} in plain sight -> POST /v1/xray/inspect",
    "declaration.png": "import declaration (English, 200 dpi, clean scan) stamped by {authority} "
    "and signed by {writer} -> POST /v1/documents/inspect",
    "seal.png": "genuine impression of {authority}'s stamp -> register: POST /v1/specimens kind=stamp",
    "signature.png": "genuine signature of {writer} -> register: POST /v1/specimens kind=signature",
    "crop.png": "another genuine impression of {authority}'s stamp -> POST /v1/compare kind=stamp",
    "forged-crop.png": "a forgery of {authority}'s stamp ({forgery}) -> POST /v1/compare kind=stamp",
}

#: The forgery written to ``forged-crop.png``: a re-carved stamp with some of its text changed,
#: the kind a clerk can find by reading the impression closely.
FORGERY = "altered_text"
#: Rendering resolution of the page and the crops (inside the document detector's 150-300 range).
DPI = 200.0
#: How far the deterministic search looks before giving up (seed 0 finds its scan at 17, its page at 0).
MAX_SEARCH = 500

# Independent random streams per sample, so changing one sample never changes another.
_STREAM_SEAL, _STREAM_SIGNATURE, _STREAM_CROP, _STREAM_FORGED = 1, 2, 3, 4


@dataclass(frozen=True)
class Samples:
    """What :func:`write_samples` wrote.

    Attributes:
        out: The folder.
        authority: Authority id of the stamp on the declaration and in the stamp crops.
        writer: Writer id of the signature on the declaration and in ``signature.png``.
        threat: Class and subtype of the visible threat in ``scan.jpg``, e.g. ``handgun (revolver)``.
        scan_index: Index of the scan in the seed's X-ray stream (``generate_scan(seed, index)``).
        page_index: Index of the page in the seed's document stream (``render_page(seed, index)``).
        files: Written files, ``README.txt`` last.
    """

    out: Path
    authority: str
    writer: str
    threat: str
    scan_index: int
    page_index: int
    files: tuple[Path, ...]


def register(groups: CommandGroups) -> None:
    p = groups.synth.add_parser(
        "samples",
        help="example files for the README's curl commands (scan, declaration, specimens, crops)",
        description="Write scan.jpg, declaration.png, seal.png, signature.png, crop.png, forged-crop.png and "
        "README.txt into --out (files of these names are replaced; the output depends only on --seed) and "
        "print the authority and writer ids to register the specimens under.",
    )
    p.add_argument("--out", required=True, help="folder to write into (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="sample seed (default 0, the one the README uses)")
    p.set_defaults(func=_samples)


def _samples(args: argparse.Namespace) -> int:
    from detectors.synth.fonts import FontNotFoundError

    try:
        samples = write_samples(args.out, args.seed)
    except (ValueError, FontNotFoundError, OSError) as exc:
        print(f"customs-vision synth samples: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(f.name for f in samples.files)} to {samples.out}")
    print(f"authority (stamp owner): {samples.authority}")
    print(f"writer (signature owner): {samples.writer}")
    return 0


def write_samples(out: str | Path, seed: int = 0) -> Samples:
    """Write the README's example files into ``out``.

    Args:
        out: Folder; created if missing. Files of the sample names are replaced, nothing else is touched.
        seed: Sample seed (>= 0); the same seed writes byte-identical files on machines with the
            same library versions and Latin fonts.

    Returns:
        The owners and files written.

    Raises:
        ValueError: for a negative seed, or when no fitting scan or page is found.
        FontNotFoundError: when no Latin font is installed.
    """
    from vision.imageio import encode_jpeg, encode_png

    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    scan_index, scan, threat = _pick_scan(seed)
    page_index, page, authority, writer = _pick_declaration(seed)
    images: dict[str, bytes] = {
        "scan.jpg": encode_jpeg(scan, quality=92),
        "declaration.png": encode_png(page),
        "seal.png": encode_png(_stamp_crop(authority, None, _rng(seed, _STREAM_SEAL))),
        "signature.png": encode_png(_signature_crop(writer, _rng(seed, _STREAM_SIGNATURE))),
        "crop.png": encode_png(_stamp_crop(authority, None, _rng(seed, _STREAM_CROP))),
        "forged-crop.png": encode_png(_stamp_crop(authority, FORGERY, _rng(seed, _STREAM_FORGED))),
    }
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, data in images.items():
        (folder / name).write_bytes(data)
        files.append(folder / name)
    fields = {"threat": threat, "authority": authority, "writer": writer, "forgery": FORGERY}
    lines = [
        f"customs-vision example files (customs-vision synth samples --seed {seed}); all synthetic.",
        f"Stamp owner (authority): {authority}    Signature owner (writer): {writer}",
        "",
        *(f"{name:16s} {text.format(**fields)}" for name, text in SAMPLE_FILES.items()),
        "",
        'README.md, "Using the service", posts them with curl.',
    ]
    (folder / "README.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    files.append(folder / "README.txt")
    return Samples(folder, authority, writer, threat, scan_index, page_index, tuple(files))


def _rng(seed: int, stream: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def _pick_scan(seed: int) -> tuple[int, npt.NDArray[np.uint8], str]:
    """The first dual-energy scan of the seed with a handgun in plain sight.

    A handgun because it is the class an operator recognises at a glance; "in plain sight" is the
    generator's own ``easy`` concealment, at most 2 % of it overlapped and at least 80 px a side.
    """
    from detectors.synth.xray import generate_scan

    for index in range(MAX_SEARCH):
        scan = generate_scan(seed, index, size=640, greyscale=False)
        for obj in scan.objects:
            x1, y1, x2, y2 = obj.box
            plain = obj.concealment == "easy" and obj.overlapped_fraction <= 0.02 and min(x2 - x1, y2 - y1) >= 80
            if obj.class_name == "handgun" and plain:
                return index, scan.image, f"{obj.class_name} ({obj.subtype})"
    raise ValueError(f"no scan with a visible handgun among the first {MAX_SEARCH} of seed {seed}")


def _pick_declaration(seed: int) -> tuple[int, npt.NDArray[np.uint8], str, str]:
    """The first clean English import declaration of the seed with one genuine stamp and signatures
    of one writer only, none faint, partial or overlapping, so each mark has exactly one owner to
    register and inspection has nothing ambiguous to report."""
    from detectors.synth.documents import PageConfig, render_page

    config = PageConfig(
        dpi_range=(DPI, DPI),
        forgery_rate=0.0,
        hard_rate=0.0,
        scan_kinds=("clean",),
        kinds=("import_declaration",),
        languages=("en",),
    )
    for index in range(MAX_SEARCH):
        page = render_page(seed, index, config)
        stamps = {m.owner_id for m in page.marks if m.class_id == 0}
        writers = {m.owner_id for m in page.marks if m.class_id == 1}
        clean = all(m.genuine and not any(m.flags.values()) for m in page.marks)
        if clean and len(stamps) == 1 and len(writers) == 1:
            return index, page.image, stamps.pop(), writers.pop()
    raise ValueError(f"no declaration with one stamp and one signer among the first {MAX_SEARCH} of seed {seed}")


def _stamp_crop(authority: str, forgery: str | None, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """A cleanly scanned, complete impression of ``authority``'s stamp (forged when ``forgery``)."""
    from detectors.synth.doc_specimens import specimen_crop
    from detectors.synth.stamps import ForgeryKind, StampDesign, forge, render_impression

    design = StampDesign.for_authority(authority)
    if forgery is not None:
        design = forge(design, ForgeryKind(forgery), rng)
    impression = render_impression(design, rng, dpi=DPI, hard=0.0)
    return specimen_crop(impression.ink, rng, dpi=DPI, scan="clean")


def _signature_crop(writer: str, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """A cleanly scanned genuine signature of ``writer``."""
    from detectors.synth.doc_specimens import specimen_crop
    from detectors.synth.signatures import Writer, render_signature

    signature = render_signature(Writer.for_id(writer), rng, dpi=DPI)
    return specimen_crop(signature.ink, rng, dpi=DPI, scan="clean")
