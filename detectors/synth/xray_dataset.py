"""Writing a synthetic X-ray dataset in the YOLO layout that ``ultralytics`` trains on.

Layout under the output folder::

    data.yaml                 path, train, val, names (class id -> name)
    images/{train,val}/xray_0000000.jpg
    labels/{train,val}/xray_0000000.txt   one "class cx cy w h" line per threat (normalised)
    metadata.jsonl            one JSON object per image, in index order: file, split, scanner mode,
                              containers, and per object class, subtype, concealment, box (pixels)

Every image is a pure function of ``(seed, index)`` and the split a pure function of the index, so
the output is byte-identical whatever the number of worker processes.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import yaml

from detectors.synth.parallel import map_jobs, write_jsonl
from detectors.synth.xray import DEFAULT_GREYSCALE_FRACTION, XRAY_CLASSES, Scan, generate_scan, parse_size

ImageFormat = Literal["jpg", "png"]
Split = Literal["train", "val"]
_CHUNK = 8  # scans per task handed to a worker


@dataclass(frozen=True)
class DatasetSummary:
    """What :func:`write_dataset` wrote.

    Attributes:
        root: the dataset folder.
        images: number of images written.
        train: images in the train split.
        val: images in the val split.
        objects_per_class: labelled objects per class name.
        concealment: labelled objects per concealment level.
        greyscale: single-energy images.
        seconds: wall-clock time of the generation.
    """

    root: Path
    images: int
    train: int
    val: int
    objects_per_class: dict[str, int] = field(default_factory=dict)
    concealment: dict[str, int] = field(default_factory=dict)
    greyscale: int = 0
    seconds: float = 0.0


def split_of(index: int, val_fraction: float) -> Split:
    """Deterministic split of scan ``index``: ``val`` for an evenly spread ``val_fraction`` of indices.

    Index ``i`` is in val when ``floor((i + 1) * f) > floor(i * f)``, so every block of
    ``1 / f`` consecutive indices holds one val image and any prefix of the dataset is split
    in the requested proportion.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be within [0, 1], got {val_fraction}")
    return "val" if int((index + 1) * val_fraction) > int(index * val_fraction) else "train"


def yolo_lines(scan: Scan) -> list[str]:
    """The YOLO label lines of a scan: ``class cx cy w h`` normalised, six decimals."""
    return [
        f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"
        for c, cx, cy, w, h in (o.yolo(scan.width, scan.height) for o in scan.objects)
    ]


def scan_record(scan: Scan, index: int, split: Split, image_file: str, label_file: str) -> dict[str, Any]:
    """The metadata line of one scan (JSON-serialisable)."""
    return {
        "file": image_file,
        "label": label_file,
        "index": index,
        "split": split,
        "mode": scan.mode,
        "width": scan.width,
        "height": scan.height,
        "containers": list(scan.containers),
        "objects": [
            {
                "class_id": o.class_id,
                "class": o.class_name,
                "subtype": o.subtype,
                "concealment": o.concealment,
                "intent": o.intent,
                "box": list(o.box),
                "overlapped_fraction": o.overlapped_fraction,
                "dense_fraction": o.dense_fraction,
            }
            for o in scan.objects
        ],
    }


@dataclass(frozen=True)
class _Job:
    root: str
    seed: int
    indices: tuple[int, ...]
    size: tuple[int, int]
    val_fraction: float
    greyscale_fraction: float
    image_format: ImageFormat
    jpeg_quality: int


def _write_one(job: _Job, index: int) -> dict[str, Any]:
    scan = generate_scan(job.seed, index, size=job.size, greyscale_fraction=job.greyscale_fraction)
    split = split_of(index, job.val_fraction)
    stem = f"xray_{index:07d}"
    image_file = f"images/{split}/{stem}.{job.image_format}"
    label_file = f"labels/{split}/{stem}.txt"
    bgr = scan.image[:, :, ::-1]
    if job.image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, job.jpeg_quality])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"could not encode {image_file}")
    root = Path(job.root)
    (root / image_file).write_bytes(buf.tobytes())
    lines = yolo_lines(scan)
    (root / label_file).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return scan_record(scan, index, split, image_file, label_file)


def _run_job(job: _Job) -> list[dict[str, Any]]:
    return [_write_one(job, i) for i in job.indices]


def _chunks(count: int, size: int) -> Iterator[tuple[int, ...]]:
    for start in range(0, count, size):
        yield tuple(range(start, min(count, start + size)))


def write_data_yaml(root: Path, names: Sequence[str] = XRAY_CLASSES) -> Path:
    """Write ``data.yaml`` for ultralytics (absolute ``path``, relative image folders, names)."""
    data = {
        "path": str(root.resolve()),
        "train": "images/train",
        "val": "images/val",
        "nc": len(names),
        "names": dict(enumerate(names)),
    }
    target = root / "data.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def write_dataset(
    out: str | Path,
    count: int,
    seed: int,
    *,
    size: int | tuple[int, int] | str = 640,
    val_fraction: float = 0.1,
    greyscale_fraction: float = DEFAULT_GREYSCALE_FRACTION,
    workers: int = 1,
    image_format: ImageFormat = "jpg",
    jpeg_quality: int = 95,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetSummary:
    """Generate ``count`` scans and write them as a YOLO dataset under ``out``.

    Args:
        out: dataset folder (created).
        count: number of images (>= 0).
        seed: dataset seed (>= 0); image ``i`` is ``generate_scan(seed, i)``.
        size: image ``(width, height)``, a side, or ``"WxH"``.
        val_fraction: share of images in the val split, spread evenly over the indices.
        greyscale_fraction: share of single-energy greyscale scans.
        workers: processes; the output does not depend on it.
        image_format: ``"jpg"`` (like the scanners' exports) or ``"png"`` (lossless).
        jpeg_quality: JPEG quality 1-100.
        overwrite: replace a dataset already in ``out`` (its ``images/``, ``labels/``,
            ``data.yaml`` and ``metadata.jsonl`` are deleted first).
        progress: called as ``progress(done, count)`` after every chunk of images.

    Returns:
        Counts of what was written.

    Raises:
        FileExistsError: when ``out`` already holds ``data.yaml`` and ``overwrite`` is False.
        ValueError: for a negative count or seed, bad fractions, size, format or worker count.
    """
    if count < 0 or seed < 0:
        raise ValueError(f"count and seed must be >= 0, got count={count}, seed={seed}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be within 1..100, got {jpeg_quality}")
    if not 0.0 <= greyscale_fraction <= 1.0:
        raise ValueError(f"greyscale_fraction must be within [0, 1], got {greyscale_fraction}")
    split_of(0, val_fraction)  # validates the fraction
    width, height = parse_size(size)
    root = Path(out)
    if (root / "data.yaml").exists():
        if not overwrite:
            raise FileExistsError(f"{root} already holds a dataset (data.yaml); pass overwrite to replace it")
        # Replace, never merge: stale images of a larger earlier run would silently join the data.
        for sub in ("images", "labels"):
            shutil.rmtree(root / sub, ignore_errors=True)
        for name in ("metadata.jsonl", "data.yaml"):
            (root / name).unlink(missing_ok=True)
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    jobs = [
        _Job(str(root), seed, idx, (width, height), val_fraction, greyscale_fraction, image_format, jpeg_quality)
        for idx in _chunks(count, _CHUNK)
    ]
    records: list[dict[str, Any]] = []
    for chunk in map_jobs(_run_job, jobs, workers=workers):
        records.extend(chunk)
        if progress is not None:
            progress(len(records), count)
    write_jsonl(root / "metadata.jsonl", records)
    write_data_yaml(root)

    per_class: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    for rec in records:
        for o in rec["objects"]:
            per_class[o["class"]] += 1
            levels[o["concealment"]] += 1
    n_val = sum(1 for r in records if r["split"] == "val")
    return DatasetSummary(
        root=root,
        images=len(records),
        train=len(records) - n_val,
        val=n_val,
        objects_per_class={name: per_class.get(name, 0) for name in XRAY_CLASSES},
        concealment={lvl: levels.get(lvl, 0) for lvl in ("easy", "hard", "hidden")},
        greyscale=sum(1 for r in records if r["mode"] == "single_energy"),
        seconds=time.perf_counter() - t0,
    )
