"""Writing a Threat Image Projection (TIP) dataset: synthetic threats in real bag scans, YOLO layout.

The backgrounds are the *train* split of a real X-ray folder (``images/``, ``labels/``, see
:func:`detectors.datasets.real_split`), and nothing else: the real ``val`` and ``test`` scans measure
the shipped model and must never be seen in training, not even as a background. The folder is only
read; images are written to the output folder::

    data.yaml                 path, train, val, names (the X-ray classes)
    palette.png               the display palette calibrated on the backgrounds (33 x 256 RGB)
    images/{train,val}/tip_0000000.jpg
    labels/{train,val}/tip_0000000.txt   the background's own objects (remapped to "knife") and the
                                         projected threats, "class cx cy w h" normalised
    metadata.jsonl            one JSON object per image, in index order: source "tip", background
                              stem, scale, and per object class, box (pixels), concealment, origin

Image ``i`` is a pure function of ``(seed, i)``, the background list and the palette, and its split a
pure function of ``i`` (:func:`~detectors.synth.xray_dataset.split_of`), so the output is
byte-identical whatever the number of worker processes.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.datasets import (
    REAL_TARGET_CLASS,
    LabelledImage,
    iter_real,
    labels_to_ground_truth,
    read_yolo_labels,
)
from detectors.synth.parallel import map_jobs, write_jsonl
from detectors.synth.tip import BackgroundObject, Palette, TipError, TipImage, TipSettings, project_threats
from detectors.synth.tip_palette import calibrate_palette
from detectors.synth.xray import scan_rng
from detectors.synth.xray_dataset import Split, split_of, write_data_yaml
from detectors.xray import XRAY_CLASSES

__all__ = [
    "TipDatasetSummary",
    "background_order",
    "load_palette",
    "palette_from_backgrounds",
    "train_backgrounds",
    "write_tip_dataset",
]

_CHUNK = 8  # images per task handed to a worker
_STREAM_TIP = 7  # random stream of a TIP image, apart from the generator's streams (xray.scan_rng)
_FILE_PREFIX = "tip_"


@dataclass(frozen=True)
class TipDatasetSummary:
    """What :func:`write_tip_dataset` wrote.

    Attributes:
        root: the dataset folder.
        images: images written.
        train: images in the train split.
        val: images in the val split.
        backgrounds: distinct real scans used as backgrounds.
        objects_per_class: labelled objects per class name (background objects included).
        projected: projected threats.
        concealment: projected threats per concealment level.
        seconds: wall-clock time of the generation.
    """

    root: Path
    images: int
    train: int
    val: int
    backgrounds: int
    objects_per_class: dict[str, int] = field(default_factory=dict)
    projected: int = 0
    concealment: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def train_backgrounds(real_dir: str | Path) -> list[LabelledImage]:
    """The real scans a TIP dataset may use: the ``train`` split of a real X-ray folder, by name.

    Raises:
        TipError: the folder is missing or malformed, or none of its scans is in the train split.
    """
    real = Path(real_dir)
    try:
        items = list(iter_real(real, "train"))
    except ValueError as exc:  # DatasetError: missing folder, no images
        raise TipError(f"cannot read backgrounds from {real}: {exc}") from exc
    if not items:
        raise TipError(f"none of the scans in {real}/images falls in the real train split; no backgrounds to use")
    return items


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise TipError(f"cannot decode background image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def palette_from_backgrounds(backgrounds: Sequence[LabelledImage], samples: int = 120) -> Palette:
    """A palette calibrated on up to ``samples`` backgrounds spread evenly over the (sorted) list.

    ``samples=0`` returns the generator's palette unchanged.
    """
    if samples <= 0 or not backgrounds:
        return Palette()
    picks = np.unique(np.linspace(0, len(backgrounds) - 1, min(samples, len(backgrounds))).round().astype(int))
    return calibrate_palette(_read_rgb(backgrounds[i].image) for i in picks)


def load_palette(path: str | Path) -> Palette:
    """Read a palette written as ``palette.png`` by :func:`write_tip_dataset`.

    Raises:
        TipError: the file is missing or is not a palette image.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise TipError(f"cannot read palette image {path}")
    return Palette(np.ascontiguousarray(bgr[:, :, ::-1]))


def background_order(count: int, n_backgrounds: int, seed: int) -> list[int]:
    """Background index of each image: a seeded shuffle of all backgrounds, repeated as needed.

    Every background is used once before any is used twice, and image ``i``'s background depends
    only on ``(seed, i // n_backgrounds)``.
    """
    order: list[int] = []
    epoch = 0
    while len(order) < count:
        perm = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_TIP, epoch])).permutation(n_backgrounds)
        order.extend(int(p) for p in perm)
        epoch += 1
    return order[:count]


def _background_objects(item: LabelledImage, width: int, height: int) -> tuple[np.ndarray, list[BackgroundObject]]:
    """The real scan's own labels, remapped to our class, as YOLO rows and as pixel boxes."""
    labels = read_yolo_labels(item.label)
    labels[:, 0] = XRAY_CLASSES.index(REAL_TARGET_CLASS)
    gt = labels_to_ground_truth(labels, width, height)
    objects = [
        BackgroundObject(class_id=int(c), box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for c, b in zip(gt.class_id, gt.xyxy, strict=True)
    ]
    return labels, objects


def _record(
    tip: TipImage, item: LabelledImage, index: int, split: Split, image_file: str, label_file: str
) -> dict[str, Any]:
    h, w = tip.image.shape[:2]
    objects: list[dict[str, Any]] = [
        {
            "class_id": o.class_id,
            "class": XRAY_CLASSES[o.class_id],
            "origin": "background",
            "box": [round(v, 2) for v in o.box],
            "concealment": None,
        }
        for o in tip.background_objects
    ]
    objects += [
        {
            "class_id": t.class_id,
            "class": t.class_name,
            "origin": "projected",
            "subtype": t.subtype,
            "box": list(t.box),
            "concealment": t.concealment,
            "intent": t.intent,
            "overlapped_fraction": t.overlapped_fraction,
            "dense_fraction": t.dense_fraction,
        }
        for t in tip.threats
    ]
    return {
        "file": image_file,
        "label": label_file,
        "index": index,
        "split": split,
        "source": "tip",
        "background": item.image.stem,
        "width": w,
        "height": h,
        "px_per_cm": round(tip.px_per_cm, 4),
        "objects": objects,
    }


@dataclass(frozen=True)
class _Job:
    root: str
    seed: int
    indices: tuple[int, ...]
    backgrounds: tuple[LabelledImage, ...]  # the background of each index, in order
    lut: np.ndarray
    threats_per_image: tuple[int, int]
    val_fraction: float
    jpeg_quality: int
    settings: TipSettings


def _write_one(job: _Job, index: int, item: LabelledImage, palette: Palette) -> dict[str, Any]:
    rng = scan_rng(job.seed, index, _STREAM_TIP)
    background = _read_rgb(item.image)
    h, w = background.shape[:2]
    labels, objects = _background_objects(item, w, h)
    lo, hi = job.threats_per_image
    count = int(rng.integers(lo, hi + 1))
    tip = project_threats(
        background, rng, count=count, palette=palette, background_objects=objects, settings=job.settings
    )
    split = split_of(index, job.val_fraction)
    stem = f"{_FILE_PREFIX}{index:07d}"
    image_file, label_file = f"images/{split}/{stem}.jpg", f"labels/{split}/{stem}.txt"
    ok, buf = cv2.imencode(".jpg", tip.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, job.jpeg_quality])
    if not ok:
        raise TipError(f"could not encode {image_file}")
    root = Path(job.root)
    (root / image_file).write_bytes(buf.tobytes())
    lines = [f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}" for r in labels]
    lines += ["{} {:.6f} {:.6f} {:.6f} {:.6f}".format(*t.yolo(w, h)) for t in tip.threats]
    (root / label_file).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return _record(tip, item, index, split, image_file, label_file)


def _run_job(job: _Job) -> list[dict[str, Any]]:
    palette = Palette(job.lut)
    return [_write_one(job, i, item, palette) for i, item in zip(job.indices, job.backgrounds, strict=True)]


def write_tip_dataset(
    backgrounds_dir: str | Path,
    out: str | Path,
    count: int,
    seed: int,
    *,
    threats_per_image: tuple[int, int] = (1, 3),
    val_fraction: float = 0.1,
    calibration_images: int = 120,
    settings: TipSettings | None = None,
    workers: int = 1,
    jpeg_quality: int = 95,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TipDatasetSummary:
    """Project synthetic threats into the real train-split scans and write a YOLO dataset.

    Args:
        backgrounds_dir: real X-ray folder (``images/``, ``labels/``); only its train split is used.
        out: dataset folder to create; must not be inside ``backgrounds_dir``.
        count: images to write (>= 0).
        seed: dataset seed (>= 0).
        threats_per_image: ``(lo, hi)`` threats tried per image, drawn uniformly (fewer are placed
            where a bag has no room).
        val_fraction: share of images in the val split, spread evenly over the indices.
        calibration_images: backgrounds the display palette is calibrated on (0: the generator's).
        settings: drawing and placement settings (defaults if ``None``).
        workers: processes; the output does not depend on it.
        jpeg_quality: JPEG quality 1-100.
        overwrite: replace a dataset already in ``out``.
        progress: called as ``progress(done, count)`` after every chunk of images.

    Returns:
        Counts of what was written.

    Raises:
        TipError: no usable backgrounds, bad arguments, or ``out`` inside the backgrounds folder.
        FileExistsError: ``out`` already holds ``data.yaml`` and ``overwrite`` is False.
    """
    if count < 0 or seed < 0:
        raise TipError(f"count and seed must be >= 0, got count={count}, seed={seed}")
    if workers < 1:
        raise TipError(f"workers must be >= 1, got {workers}")
    lo, hi = threats_per_image
    if not 0 <= lo <= hi:
        raise TipError(f"threats_per_image must be (lo, hi) with 0 <= lo <= hi, got {threats_per_image}")
    if not 1 <= jpeg_quality <= 100:
        raise TipError(f"jpeg_quality must be within 1..100, got {jpeg_quality}")
    try:
        split_of(0, val_fraction)
    except ValueError as exc:
        raise TipError(str(exc)) from exc
    source, root = Path(backgrounds_dir).resolve(), Path(out)
    if root.resolve() == source or source in root.resolve().parents:
        raise TipError(f"output folder {root} lies inside the real data folder {source}; write it elsewhere")
    items = train_backgrounds(source)
    if (root / "data.yaml").exists():
        if not overwrite:
            raise FileExistsError(f"{root} already holds a dataset (data.yaml); pass overwrite to replace it")
        # Replace, never merge: stale images of a larger earlier run would silently join the data.
        for sub in ("images", "labels"):
            shutil.rmtree(root / sub, ignore_errors=True)
        for name in ("metadata.jsonl", "data.yaml", "palette.png"):
            (root / name).unlink(missing_ok=True)
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    palette = palette_from_backgrounds(items, calibration_images)
    cv2.imwrite(str(root / "palette.png"), palette.lut[:, :, ::-1])
    order = background_order(count, len(items), seed)
    jobs = [
        _Job(
            root=str(root),
            seed=seed,
            indices=tuple(range(start, min(count, start + _CHUNK))),
            backgrounds=tuple(items[order[i]] for i in range(start, min(count, start + _CHUNK))),
            lut=palette.lut,
            threats_per_image=(lo, hi),
            val_fraction=val_fraction,
            jpeg_quality=jpeg_quality,
            settings=settings or TipSettings(),
        )
        for start in range(0, count, _CHUNK)
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
            if o["origin"] == "projected":
                levels[o["concealment"]] += 1
    n_val = sum(1 for r in records if r["split"] == "val")
    return TipDatasetSummary(
        root=root,
        images=len(records),
        train=len(records) - n_val,
        val=n_val,
        backgrounds=len({r["background"] for r in records}),
        objects_per_class={name: per_class.get(name, 0) for name in XRAY_CLASSES},
        projected=sum(levels.values()),
        concealment={lvl: levels.get(lvl, 0) for lvl in ("easy", "hard", "hidden")},
        seconds=time.perf_counter() - t0,
    )
