"""Training data for the YOLO detectors: synthetic sets, the real X-ray scans, and their split.

:func:`prepare_detection_data` assembles one training run's data folder (``<run>/data/``) in the
layout ultralytics reads::

    <run>/data/
      data.yaml                  path, train/val folders, our class names
      images/{train,val}/<tag>__<file>   symbolic links to the source images (nothing is copied)
      labels/{train,val}/<tag>__<stem>.txt   YOLO labels, validated; real labels remapped
      manifest.json              sources, counts per split, split rule, provenance

``<tag>`` is ``synth0``, ``synth1``, ... for the synthetic folders and ``real`` for the real scans, so
file names from different sources never collide.

**Real X-ray scans.** The folder (``images/*.jpg`` + ``labels/*.txt``, five unnamed class ids of
bladed or sharp items, one box per image; see its PROVENANCE.md) is referenced, never copied. Every
real class id is mapped to our class ``"knife"``: the source does not say which id is which, so
real-data results are reported class-agnostically. Each scan goes to one split by a hash of its
source name (:func:`real_split`): 15 % ``test`` (held out, never trained on or used to pick
checkpoints), 5 % ``val`` (checkpoint selection during training), 80 % ``train``. The split depends
only on the file name, so it is the same on every machine and in every run, and adding scans to the
folder never moves an existing scan to another split.

**Synthetic sets** (from ``customs-vision synth ...``) come with their own ``images/{train,val}`` and
``labels/{train,val}``; their ``train`` goes to training, their ``val`` to validation, and the
generator's ``val`` split doubles as the synthetic held-out set for the final evaluation (it is never
trained on; ultralytics only uses it to choose ``best.pt``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import cv2
import numpy as np
import yaml

from vision.metrics import GroundTruth

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

RealSplit = Literal["train", "val", "test"]
#: Percent of real scans in each split, by hash bucket ``0..99``: test first, then val, then train.
REAL_SPLIT_PERCENT: dict[str, int] = {"test": 15, "val": 5, "train": 80}
#: Our class the real scans' unnamed bladed-item ids all map to.
REAL_TARGET_CLASS = "knife"

T = TypeVar("T")


class DatasetError(ValueError):
    """A dataset folder is missing, laid out wrongly, or has malformed labels."""


@dataclass(frozen=True)
class LabelledImage:
    """One image with its YOLO label file (which may be absent: an image without objects)."""

    image: Path
    label: Path | None


@dataclass(frozen=True)
class SourceSummary:
    """What one source contributed to a prepared data folder (recorded in model cards).

    Attributes:
        name: ``"synthetic"`` or ``"real"``.
        tag: the file-name prefix of this source inside the data folder.
        path: absolute path of the source folder.
        counts: split name -> number of images (``test`` only for the real scans).
        provenance: path of the source's provenance note, if it has one.
        repeat: how many times each of its training images is listed per epoch.
    """

    name: str
    tag: str
    path: str
    counts: dict[str, int]
    provenance: str | None = None
    repeat: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "path": self.path,
            "counts": dict(self.counts),
            "provenance": self.provenance,
            "repeat": self.repeat,
        }


@dataclass(frozen=True)
class PreparedData:
    """A run's data folder, as written by :func:`prepare_detection_data`.

    Attributes:
        root: the data folder.
        data_yaml: its ``data.yaml`` (pass to ultralytics as ``data=``).
        class_names: class names in id order.
        sources: one summary per source, synthetic first.
    """

    root: Path
    data_yaml: Path
    class_names: tuple[str, ...]
    sources: tuple[SourceSummary, ...] = field(default_factory=tuple)

    def counts(self, split: str) -> int:
        """Total images of all sources in ``split``."""
        return sum(s.counts.get(split, 0) for s in self.sources)


def source_key(stem: str) -> str:
    """The name a scan's split is decided by: the file stem without a Roboflow ``.rf.<hash>`` suffix.

    Roboflow exports name augmented copies of one source scan ``<source>_jpg.rf.<hash>``; keying on
    ``<source>_jpg`` keeps all copies of one scan on the same side of the split.
    """
    return stem.split(".rf.", 1)[0]


def real_split(stem: str) -> RealSplit:
    """Deterministic split of one real scan by the sha256 of :func:`source_key` of its stem."""
    bucket = int.from_bytes(hashlib.sha256(source_key(stem).encode("utf-8")).digest()[:8], "big") % 100
    if bucket < REAL_SPLIT_PERCENT["test"]:
        return "test"
    if bucket < REAL_SPLIT_PERCENT["test"] + REAL_SPLIT_PERCENT["val"]:
        return "val"
    return "train"


def list_labelled_images(images_dir: Path, labels_dir: Path) -> list[LabelledImage]:
    """Images of a YOLO folder pair, sorted by name, each with its label file if there is one.

    Raises:
        DatasetError: ``images_dir`` does not exist or holds no images.
    """
    if not images_dir.is_dir():
        raise DatasetError(f"image folder {images_dir} does not exist")
    out = []
    for image in sorted(images_dir.iterdir()):
        if image.suffix.lower() not in IMAGE_SUFFIXES or not image.is_file():
            continue
        label = labels_dir / f"{image.stem}.txt"
        out.append(LabelledImage(image=image, label=label if label.is_file() else None))
    if not out:
        raise DatasetError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {images_dir}")
    return out


def read_yolo_labels(path: Path | None, num_classes: int | None = None) -> np.ndarray:
    """Read a YOLO detection label file.

    Args:
        path: the ``.txt`` file; ``None`` (no file) means an image without objects.
        num_classes: if given, class ids must lie in ``0..num_classes-1``.

    Returns:
        ``(M, 5)`` float64 rows ``class, cx, cy, w, h`` with the box normalised to ``[0, 1]``.

    Raises:
        DatasetError: a line is not five numbers, a box lies outside the image, or a class id is out
            of range (the message names the file and line).
    """
    if path is None:
        return np.zeros((0, 5), np.float64)
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: not numbers: {line.strip()!r}") from None
        if len(values) != 5:
            raise DatasetError(f"{path}:{lineno}: expected 'class cx cy w h', got {len(values)} values")
        cls, cx, cy, w, h = values
        if cls != int(cls) or cls < 0 or (num_classes is not None and cls >= num_classes):
            raise DatasetError(f"{path}:{lineno}: class id {parts[0]} is not in 0..{(num_classes or 1) - 1}")
        # A small tolerance: exporters round normalised coordinates.
        tol = 1e-3
        inside = min(cx - w / 2, cy - h / 2) >= -tol and max(cx + w / 2, cy + h / 2) <= 1 + tol
        if not (w > 0 and h > 0 and inside):
            raise DatasetError(f"{path}:{lineno}: box {values[1:]} is empty or outside the image")
        rows.append(values)
    return np.asarray(rows, np.float64).reshape(-1, 5)


def labels_to_ground_truth(labels: np.ndarray, width: int, height: int) -> GroundTruth:
    """Convert ``(M, 5)`` YOLO rows into pixel-space :class:`~vision.metrics.GroundTruth`."""
    cx, cy, w, h = (labels[:, i] for i in range(1, 5))
    xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    return GroundTruth(xyxy=xyxy.astype(np.float32), class_id=labels[:, 0].astype(np.int64))


def _format_labels(labels: np.ndarray) -> str:
    return "".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in labels)


def read_data_names(data_yaml: Path) -> tuple[str, ...] | None:
    """Class names of an ultralytics data file (``names`` as a list or ``{id: name}``).

    Returns:
        The names in id order, or ``None`` if the file does not exist or has no ``names``.

    Raises:
        DatasetError: the file is not valid YAML.
    """
    if not data_yaml.is_file():
        return None
    try:
        raw = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise DatasetError(f"{data_yaml} is not valid YAML: {e}") from e
    names = raw.get("names") if isinstance(raw, dict) else None
    if names is None:
        return None
    if isinstance(names, dict):
        return tuple(str(names[k]) for k in sorted(names, key=int))
    return tuple(str(n) for n in names)


def synthetic_split(dataset_dir: Path, split: str) -> list[LabelledImage]:
    """The images of one split (``train`` or ``val``) of a synthetic dataset folder."""
    return list_labelled_images(dataset_dir / "images" / split, dataset_dir / "labels" / split)


def iter_real(real_dir: Path, split: RealSplit | None = None) -> Iterator[LabelledImage]:
    """Real scans (sorted by name), optionally only those of one split; see :func:`real_split`."""
    for item in list_labelled_images(real_dir / "images", real_dir / "labels"):
        if split is None or real_split(item.image.stem) == split:
            yield item


def _reset_dir(path: Path) -> None:
    """Empty a folder this module created (links, grey copies and label files), or create it."""
    if path.is_dir():
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                raise DatasetError(f"{path} holds a sub-folder {entry.name}; not a prepared data folder")
            entry.unlink()
    path.mkdir(parents=True, exist_ok=True)


def _hash_fraction(name: str, salt: str) -> float:
    """A number in ``[0, 1)`` fixed by ``name`` and ``salt`` (deterministic choices of files)."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{name}".encode()).digest()[:8], "big") / 2**64


def _write_greyscale(source: Path, target: Path) -> None:
    """Write ``source`` as its luminance in three channels to ``target`` (same format)."""
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot decode {source}")
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if target.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(target), grey, params):
        raise DatasetError(f"cannot write {target}")


def evenly_spaced(items: Sequence[T], limit: int) -> list[T]:
    """At most ``limit`` of ``items``, evenly spaced from the first (all of them if fewer)."""
    if len(items) <= limit:
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


def prepare_detection_data(
    *,
    out_dir: str | Path,
    class_names: Sequence[str],
    synthetic_dirs: Sequence[str | Path] = (),
    real_dir: str | Path | None = None,
    real_class: str = REAL_TARGET_CLASS,
    real_repeat: int = 1,
    synthetic_train_limit: int | None = None,
    greyscale_fraction: float = 0.0,
) -> PreparedData:
    """Write a run's training data folder from synthetic sets and (optionally) the real scans.

    Args:
        out_dir: the data folder to (re)write, e.g. ``runs/xray/data``; its ``images/`` and
            ``labels/`` are emptied first, so preparing twice gives the same folder.
        class_names: our classes in id order (e.g. :data:`detectors.xray.XRAY_CLASSES`).
        synthetic_dirs: synthetic dataset folders (``images/{train,val}``, ``labels/{train,val}``).
            A folder's ``data.yaml`` names, if present, must equal ``class_names``.
        real_dir: the real X-ray folder (``images/``, ``labels/``); its ``train`` split is trained
            on, its ``val`` split validates, its ``test`` split is left out (see :func:`real_split`).
        real_class: our class every real label is mapped to.
        real_repeat: list each real training scan this many times, so an epoch sees the real
            scans more often than the synthetic ones (fine-tuning towards real scanners without
            dropping the classes only the synthetic data teaches). Validation is never repeated.
        synthetic_train_limit: train on at most this many images of each synthetic folder's
            ``train`` split, evenly spaced over its sorted list (deterministic); ``None``: all.
            Its ``val`` split is always kept whole.
        greyscale_fraction: this share of the images (every source and split, chosen by a hash of
            the file name) is written as its luminance in three channels instead of linked, so the
            detector also learns bags as a single-energy scanner's grey display shows them; the
            shipped model was blind to grey views of the real scans without it (see the card).

    Returns:
        The prepared folder with per-source counts.

    Raises:
        DatasetError: no source given, a folder is missing or malformed, class names disagree, or a
            label is malformed or out of range.
    """
    names = tuple(class_names)
    if not synthetic_dirs and real_dir is None:
        raise DatasetError("no training data: give at least one synthetic folder or the real folder")
    if real_dir is not None and real_class not in names:
        raise DatasetError(f"real_class {real_class!r} is not one of the classes {names}")
    if real_repeat < 1:
        raise DatasetError(f"real_repeat must be at least 1, got {real_repeat}")
    if synthetic_train_limit is not None and synthetic_train_limit < 1:
        raise DatasetError(f"synthetic_train_limit must be at least 1, got {synthetic_train_limit}")
    if not 0.0 <= greyscale_fraction <= 1.0:
        raise DatasetError(f"greyscale_fraction must be within [0, 1], got {greyscale_fraction}")
    root = Path(out_dir).resolve()
    if root.is_dir() and any(root.iterdir()) and not (root / "manifest.json").is_file():
        raise DatasetError(
            f"{root} exists and is not a data folder this tool prepared (no manifest.json); "
            "refusing to empty it: choose another run folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    # Mark the folder as ours before touching it, so an interrupted preparation can be redone.
    (root / "manifest.json").write_text('{"status": "preparing"}\n', encoding="utf-8")
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        _reset_dir(root / sub)

    def add(item: LabelledImage, tag: str, split: str, labels: np.ndarray) -> None:
        name = f"{tag}__{item.image.name}"
        target = root / "images" / split / name
        if greyscale_fraction > 0 and _hash_fraction(name, "greyscale") < greyscale_fraction:
            _write_greyscale(item.image, target)
        else:
            target.symlink_to(item.image.resolve())
        (root / "labels" / split / f"{tag}__{item.image.stem}.txt").write_text(_format_labels(labels), encoding="utf-8")

    sources: list[SourceSummary] = []
    for index, synth in enumerate(synthetic_dirs):
        synth = Path(synth).resolve()
        found = read_data_names(synth / "data.yaml")
        if found is not None and found != names:
            raise DatasetError(f"{synth}/data.yaml names classes {found}, but this model's classes are {names}")
        tag = f"synth{index}"
        counts: dict[str, int] = {}
        for split in ("train", "val"):
            items = synthetic_split(synth, split)
            if split == "train" and synthetic_train_limit is not None:
                items = evenly_spaced(items, synthetic_train_limit)
            for item in items:
                add(item, tag, split, read_yolo_labels(item.label, len(names)))
            counts[split] = len(items)
        sources.append(SourceSummary(name="synthetic", tag=tag, path=str(synth), counts=counts))

    if real_dir is not None:
        real = Path(real_dir).resolve()
        target = names.index(real_class)
        counts = {"train": 0, "val": 0, "test": 0}
        for item in iter_real(real):
            split = real_split(item.image.stem)
            counts[split] += 1
            if split == "test":
                continue
            labels = read_yolo_labels(item.label)
            labels[:, 0] = target
            add(item, "real", split, labels)
            for copy in range(1, real_repeat if split == "train" else 1):
                add(item, f"real{copy}", split, labels)
        provenance = real / "PROVENANCE.md"
        sources.append(
            SourceSummary(
                name="real",
                tag="real",
                path=str(real),
                counts=counts,
                provenance=str(provenance) if provenance.is_file() else None,
                repeat=real_repeat,
            )
        )

    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump(
            {
                "path": str(root),
                "train": "images/train",
                "val": "images/val",
                "names": dict(enumerate(names)),
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    prepared = PreparedData(root=root, data_yaml=data_yaml, class_names=names, sources=tuple(sources))
    manifest = {
        "class_names": list(names),
        "sources": [s.to_dict() for s in sources],
        "real_split_rule": (
            f"sha256(file stem without '.rf.<hash>') first 8 bytes mod 100: < {REAL_SPLIT_PERCENT['test']} "
            f"test, < {REAL_SPLIT_PERCENT['test'] + REAL_SPLIT_PERCENT['val']} val, else train; "
            f"every real class id mapped to {real_class!r}"
        ),
        "greyscale_fraction": greyscale_fraction,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return prepared


def load_prepared(root: str | Path) -> PreparedData:
    """Read back a data folder written by :func:`prepare_detection_data` (used on resume).

    Raises:
        DatasetError: the folder has no ``manifest.json`` / ``data.yaml``.
    """
    root = Path(root).resolve()
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file() or not (root / "data.yaml").is_file():
        raise DatasetError(f"{root} is not a prepared data folder (no manifest.json or data.yaml)")
    raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    return PreparedData(
        root=root,
        data_yaml=root / "data.yaml",
        class_names=tuple(raw["class_names"]),
        sources=tuple(
            SourceSummary(
                name=s["name"],
                tag=s["tag"],
                path=s["path"],
                counts=dict(s["counts"]),
                provenance=s.get("provenance"),
                repeat=int(s.get("repeat", 1)),
            )
            for s in raw["sources"]
        ),
    )
