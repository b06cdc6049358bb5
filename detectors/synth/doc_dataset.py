"""Writing synthetic document datasets to disk: YOLO detection sets and specimen folders.

Two layouts:

* :func:`write_document_dataset` -> an Ultralytics YOLO dataset::

      OUT/data.yaml                 path, train, val, names {0: stamp, 1: signature}
      OUT/images/{train,val}/NNNNNN.jpg
      OUT/labels/{train,val}/NNNNNN.txt   "class cx cy w h" per mark, normalised
      OUT/metadata.jsonl            one line per mark: ids, genuine/forgery, box, hard-case flags

* :func:`write_specimens` -> the similarity evaluation layout::

      OUT/<owner>/genuine/NNN.png
      OUT/<owner>/forged/NNN_<kind>.png
      OUT/specimens.jsonl           one line per file

Both are deterministic for a seed and independent of the worker count: every item's randomness
comes from its own ``SeedSequence`` and the parent writes the JSONL files in item order.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.synth.doc_raster import derive_rng
from detectors.synth.doc_specimens import SPECIMEN_FORGERIES, SpecimenKind, owner_id, render_specimen
from detectors.synth.documents import CLASS_NAMES, PageConfig, render_page
from detectors.synth.parallel import map_jobs

JPEG_QUALITY = 95


class DatasetExistsError(FileExistsError):
    """The output directory already holds a dataset and overwriting was not allowed."""


@dataclass(frozen=True)
class DatasetSummary:
    """What was written."""

    out: str
    pages: int
    train: int
    val: int
    marks: int
    stamps: int
    signatures: int
    forged: int


def split_of(seed: int, index: int, val_fraction: float) -> str:
    """``"val"`` or ``"train"`` for page ``index``, stable for a seed whatever the page count."""
    return "val" if derive_rng("split", seed, index).random() < val_fraction else "train"


def _page_job(args: tuple[int, int, PageConfig, float, str]) -> list[dict[str, object]]:
    seed, index, config, val_fraction, out = args
    page = render_page(seed, index, config)
    split = split_of(seed, index, val_fraction)
    name = f"{index:06d}"
    image_rel = f"images/{split}/{name}.jpg"
    h, w = page.image.shape[:2]
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(page.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise RuntimeError(f"could not encode page {index} as JPEG")
    (Path(out) / image_rel).write_bytes(buf.tobytes())
    labels = "".join(m.yolo(w, h) + "\n" for m in page.marks)
    (Path(out) / f"labels/{split}/{name}.txt").write_text(labels, encoding="utf-8")
    base = {"image": image_rel, "split": split, "page": index, "width": w, "height": h, "document": page.kind,
            "language": page.language, "dpi": page.dpi, "scan": page.scan.kind}  # fmt: skip
    return [
        {
            **base,
            "class_id": m.class_id,
            "class": CLASS_NAMES[m.class_id],
            "owner_id": m.owner_id,
            "genuine": m.genuine,
            "forgery": m.forgery,
            "box": list(m.box),
            "flags": m.flags,
            "detail": m.detail,
        }
        for m in page.marks
    ]


def _prepare(out: Path, marker: str, overwrite: bool) -> None:
    if out.exists() and (out / marker).exists() and not overwrite:
        raise DatasetExistsError(
            f"{out} already holds a dataset ({marker} exists); pass overwrite=True (--overwrite) to replace it"
        )
    out.mkdir(parents=True, exist_ok=True)


def write_document_dataset(
    out: str | os.PathLike[str],
    count: int,
    seed: int,
    *,
    config: PageConfig | None = None,
    workers: int = 1,
    val_fraction: float = 0.1,
    overwrite: bool = False,
) -> DatasetSummary:
    """Render ``count`` pages into a YOLO dataset under ``out``.

    Args:
        out: Output directory (created).
        count: Number of pages (>= 1).
        seed: Dataset seed.
        config: Page generator knobs.
        workers: Processes (1 = in this process). The output does not depend on it.
        val_fraction: Share of pages put in the validation split.
        overwrite: Replace an existing dataset in ``out``.

    Raises:
        ValueError: Bad count or fraction.
        DatasetExistsError: ``out`` holds a dataset and ``overwrite`` is false.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(out)
    _prepare(root, "data.yaml", overwrite)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    cfg = config or PageConfig()
    jobs = [(seed, i, cfg, val_fraction, str(root)) for i in range(count)]
    marks = stamps = forged = 0
    with (root / "metadata.jsonl").open("w", encoding="utf-8") as meta:
        for records in map_jobs(_page_job, jobs, workers=workers):
            for rec in records:
                meta.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
                marks += 1
                stamps += rec["class_id"] == 0
                forged += not rec["genuine"]
    n_val = sum(split_of(seed, i, val_fraction) == "val" for i in range(count))
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    (root / "data.yaml").write_text(
        f"# customs-vision synthetic documents: seed {seed}, {count} pages\n"
        f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n",
        encoding="utf-8",
    )
    summary = DatasetSummary(str(root), count, count - n_val, n_val, marks, stamps, marks - stamps, forged)
    (root / "summary.json").write_text(
        json.dumps(asdict(summary) | {"config": _config_dict(cfg), "seed": seed}, indent=2), encoding="utf-8"
    )
    return summary


def _config_dict(cfg: PageConfig) -> dict[str, object]:
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _specimen_job(args: tuple[int, SpecimenKind, int, int, str | None, float, int, str]) -> dict[str, object]:
    seed, kind, owner_index, j, forgery, dpi, population, out = args
    owner = owner_id(kind, owner_index)
    rng = np.random.default_rng(np.random.SeedSequence([seed, owner_index, j, 0 if forgery is None else 1]))
    crop, info = render_specimen(kind, owner, forgery, rng, dpi=dpi, population=population)
    rel = f"{owner}/genuine/{j:03d}.png" if forgery is None else f"{owner}/forged/{j:03d}_{forgery}.png"
    path = Path(out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)):
        raise RuntimeError(f"could not write {path}")
    return {"file": rel, "kind": kind, **info}


def write_specimens(
    out: str | os.PathLike[str],
    kind: SpecimenKind,
    owners: int,
    per_owner: int,
    forgeries: int,
    seed: int,
    *,
    first_owner: int = 0,
    dpi: float = 200.0,
    population: int = 500,
    workers: int = 1,
    overwrite: bool = False,
) -> int:
    """Write specimen crops ``OUT/<owner>/{genuine,forged}/*.png`` and ``OUT/specimens.jsonl``.

    Args:
        out: Output directory.
        kind: ``"stamp"`` or ``"signature"``.
        owners: Number of owners (authorities or writers).
        per_owner: Genuine specimens per owner.
        forgeries: Forged specimens per owner, cycling through the forgery kinds.
        seed: Seed.
        first_owner: Index of the first owner id (use disjoint ranges for train and test sets).
        dpi: Resolution.
        population: Writer population random forgeries come from.
        workers: Processes; the output does not depend on it.
        overwrite: Replace an existing specimen set.

    Returns:
        Number of files written.
    """
    if kind not in SPECIMEN_FORGERIES:
        raise ValueError(f"kind must be 'stamp' or 'signature', got {kind!r}")
    if owners < 1 or per_owner < 0 or forgeries < 0 or per_owner + forgeries == 0:
        raise ValueError("need owners >= 1 and at least one specimen per owner")
    root = Path(out)
    _prepare(root, "specimens.jsonl", overwrite)
    cycle = SPECIMEN_FORGERIES[kind]
    jobs: list[tuple[int, SpecimenKind, int, int, str | None, float, int, str]] = []
    for o in range(first_owner, first_owner + owners):
        jobs += [(seed, kind, o, j, None, dpi, population, str(root)) for j in range(per_owner)]
        jobs += [(seed, kind, o, j, cycle[j % len(cycle)], dpi, population, str(root)) for j in range(forgeries)]
    n = 0
    with (root / "specimens.jsonl").open("w", encoding="utf-8") as meta:
        for rec in map_jobs(_specimen_job, jobs, workers=workers):
            meta.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n
