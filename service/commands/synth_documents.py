"""``customs-vision synth documents`` and ``synth specimens``: synthetic scanned paperwork.

``documents`` writes a YOLO dataset of scanned customs documents with labelled stamps (class 0)
and signatures (class 1); ``specimens`` writes stamp or signature crops per owner in the
``<owner>/genuine`` / ``<owner>/forged`` layout the similarity evaluation reads.
"""

from __future__ import annotations

import argparse
import sys
import time

from service.cli import CommandGroups

_SCAN_KINDS = ("clean", "office", "photocopy", "fax", "low_res", "old_paper")
_DOC_KINDS = (
    "import_declaration",
    "commercial_invoice",
    "certificate_of_origin",
    "permit",
    "business_letter",
    "contract",
)


def register(groups: CommandGroups) -> None:
    d = groups.synth.add_parser(
        "documents",
        help="synthetic scanned customs documents with stamps and signatures (YOLO dataset)",
        description="Render A4 customs documents (Korean and English) with stamp impressions and signatures, "
        "scan them (skew, blur, JPEG, photocopy, fax, old paper...) and write a YOLO dataset: "
        "images/{train,val}, labels/{train,val}, data.yaml and metadata.jsonl (one line per mark).",
    )
    d.add_argument("--out", required=True, help="output directory")
    d.add_argument("--count", type=int, required=True, help="number of pages")
    d.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    d.add_argument("--workers", type=int, default=1, help="worker processes (output does not depend on it)")
    d.add_argument("--val-fraction", type=float, default=0.1, help="share of pages in the val split (default 0.1)")
    d.add_argument(
        "--dpi", type=float, nargs=2, default=(150.0, 300.0), metavar=("MIN", "MAX"), help="render resolution range"
    )
    d.add_argument("--authorities", type=int, default=500, help="issuing-authority population size (default 500)")
    d.add_argument("--writers", type=int, default=500, help="writer population size (default 500)")
    d.add_argument("--forgery-rate", type=float, default=0.2, help="probability a mark is forged (default 0.2)")
    d.add_argument(
        "--hard-rate", type=float, default=0.3, help="weight of faint/partial/smudged impressions (default 0.3)"
    )
    d.add_argument(
        "--scan-kinds", default=",".join(_SCAN_KINDS), help=f"comma-separated subset of {','.join(_SCAN_KINDS)}"
    )
    d.add_argument("--kinds", default=",".join(_DOC_KINDS), help=f"comma-separated subset of {','.join(_DOC_KINDS)}")
    d.add_argument("--languages", default="ko,en", help="comma-separated subset of ko,en (en needs no Hangul font)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    d.set_defaults(func=_documents)

    s = groups.synth.add_parser(
        "specimens",
        help="stamp or signature specimen crops per owner (genuine and forged)",
        description="Write <owner>/genuine/*.png and <owner>/forged/*.png crops with scan-condition variation, "
        "plus specimens.jsonl. Stamp forgeries cycle through altered_text, proportions, redrawn_emblem, "
        "other_font, photocopy; signature forgeries through skilled, skilled, random.",
    )
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--kind", required=True, choices=["stamp", "signature"])
    s.add_argument("--owners", type=int, required=True, help="number of owners (authorities or writers)")
    s.add_argument("--per-owner", type=int, default=5, help="genuine specimens per owner (default 5)")
    s.add_argument("--forgeries", type=int, default=5, help="forged specimens per owner (default 5)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--first-owner", type=int, default=0, help="first owner index (disjoint ranges for train/test)")
    s.add_argument("--dpi", type=float, default=200.0)
    s.add_argument("--population", type=int, default=500, help="writers random forgeries are drawn from")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=_specimens)


def _csv(value: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(f"customs-vision: {flag}: unknown {bad or 'empty list'}; choose from {', '.join(allowed)}")
    return items


def _documents(args: argparse.Namespace) -> int:
    from detectors.synth.doc_dataset import DatasetExistsError, write_document_dataset
    from detectors.synth.documents import PageConfig
    from detectors.synth.fonts import FontNotFoundError

    try:
        config = PageConfig(
            dpi_range=(float(args.dpi[0]), float(args.dpi[1])),
            authorities=args.authorities,
            writers=args.writers,
            forgery_rate=args.forgery_rate,
            hard_rate=args.hard_rate,
            scan_kinds=_csv(args.scan_kinds, _SCAN_KINDS, "--scan-kinds"),  # type: ignore[arg-type]
            kinds=_csv(args.kinds, _DOC_KINDS, "--kinds"),  # type: ignore[arg-type]
            languages=_csv(args.languages, ("ko", "en"), "--languages"),  # type: ignore[arg-type]
        )
        start = time.perf_counter()
        summary = write_document_dataset(
            args.out, args.count, args.seed, config=config, workers=args.workers,
            val_fraction=args.val_fraction, overwrite=args.overwrite,
        )  # fmt: skip
    except (ValueError, DatasetExistsError, FontNotFoundError) as exc:
        print(f"customs-vision synth documents: {exc}", file=sys.stderr)
        return 2
    took = time.perf_counter() - start
    print(
        f"wrote {summary.pages} pages ({summary.train} train, {summary.val} val) with {summary.marks} marks "
        f"({summary.stamps} stamps, {summary.signatures} signatures, {summary.forged} forged) to {summary.out} "
        f"in {took:.1f} s ({took / summary.pages:.2f} s/page with {args.workers} worker(s))"
    )
    return 0


def _specimens(args: argparse.Namespace) -> int:
    from detectors.synth.doc_dataset import DatasetExistsError, write_specimens
    from detectors.synth.fonts import FontNotFoundError

    try:
        start = time.perf_counter()
        n = write_specimens(
            args.out, args.kind, args.owners, args.per_owner, args.forgeries, args.seed,
            first_owner=args.first_owner, dpi=args.dpi, population=args.population,
            workers=args.workers, overwrite=args.overwrite,
        )  # fmt: skip
    except (ValueError, DatasetExistsError, FontNotFoundError) as exc:
        print(f"customs-vision synth specimens: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {n} {args.kind} specimens for {args.owners} owners to {args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0
