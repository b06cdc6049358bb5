"""Measure a shipped detector on labelled data, through the same code that serves it.

:func:`evaluate_detector` loads the model through its card (so the sha256-verified ONNX file is what
gets measured), runs the model's detector (:mod:`detectors.catalog`) over a labelled set with a
confidence threshold of 0.001 (needed for a meaningful AP; precision and recall are reported at 0.25), and
scores the detections with :func:`vision.metrics.evaluate_detections`.

Two kinds of data set:

* a **synthetic** folder (``images/<split>``, ``labels/<split>``, optional ``metadata.jsonl``):
  class-aware metrics, plus breakdowns by per-object attributes of the metadata
  (:data:`BREAKDOWNS`): X-ray sets by ``concealment`` (easy / hard / hidden), document sets by
  hard-case flag (``stamp_over_signature``, ``faint``, ``partial``, ``greyscale_photocopy``,
  ``fax``: whichever the data has) and by scan kind. The subset for a value V evaluates the images
  that contain at least one object with V, with the other objects in them marked *ignored* (neither
  missed nor false alarms when found), the way difficulty subsets are reported in the literature
  (PIDray's easy / hard / hidden). Metadata records are matched to label rows by class and box.
* the **real** X-ray scans' held-out ``test`` split (see :func:`detectors.datasets.real_split`):
  class-agnostic metrics, because the real labels are unnamed bladed-item ids all mapped to
  ``"knife"`` and a model boxing a real knife as ``scissors_blade`` still found it.

Either set can be shown to the model through another display (:data:`VIEWS`, ``--view``): grey
(a single-energy scanner), grey inverted (the negative operators switch to), or the colours with
their hue rotated by +/-25 degrees (a proxy for another vendor's colour map). The block records the
view's description as ``view``, and the CLI stores it under the default key plus
:func:`view_key_suffix` (``real_test_greyscale``, ``real_test_hue_plus25``, ...).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from detectors.datasets import (
    REAL_TARGET_CLASS,
    DatasetError,
    LabelledImage,
    iter_real,
    labels_to_ground_truth,
    read_yolo_labels,
    synthetic_split,
)
from vision.boxes import box_iou
from vision.metrics import DetectionMetrics, GroundTruth, evaluate_detections
from vision.modelcard import ModelCard
from vision.types import Detections

log = logging.getLogger(__name__)

#: Confidence threshold the detector runs at for AP: low enough that the PR curve is complete.
AP_CONF_THRESHOLD = 0.001
#: Confidence at which precision and recall are reported (the service's default reporting level).
REPORT_CONF_THRESHOLD = 0.25
#: A metadata object and a label row are the same object only if their boxes overlap this much
#: (the label file rounds the box to six decimals of the image size, so the same box scores ~1).
ALIGN_MIN_IOU = 0.9


@dataclass(frozen=True)
class Breakdown:
    """One way to split a synthetic set's objects into subsets, read from its ``metadata.jsonl``.

    Attributes:
        name: the metrics block records it as ``by_<name>``.
        field: the per-object metadata field it reads.
        flags: ``field`` is a ``{name: bool}`` mapping and each name is a subset holding the
            objects where it is true (an object can be in several, or in none); otherwise every
            value of ``field`` is a subset, a JSON ``null`` included (``"None"``: in TIP sets the
            real background objects, which have no concealment level).
    """

    name: str
    field: str
    flags: bool = False

    def memberships(self, obj: Mapping[str, Any]) -> dict[str, bool]:
        """The subsets ``obj`` could be in, each with whether it is; empty if it lacks the field."""
        if self.field not in obj:
            return {}
        value = obj[self.field]
        if self.flags:
            return {str(k): bool(v) for k, v in value.items()} if isinstance(value, dict) else {}
        return {str(value): True} if str(value) else {}


#: The breakdowns :func:`evaluate_detector` records when a synthetic set's metadata has their field.
BREAKDOWNS: tuple[Breakdown, ...] = (
    Breakdown("concealment", "concealment"),
    Breakdown("hard_case", "flags", flags=True),
    Breakdown("scan", "scan"),
)


@dataclass(frozen=True)
class ObjectMetadata:
    """The per-object records of one split of a ``metadata.jsonl`` (see :func:`read_object_metadata`).

    Attributes:
        objects: image file name -> the records of its objects, in file order.
        per_object: the file has one line per object, so an image without lines has no objects
            (in the one-line-per-image layout a missing image is an error).
    """

    objects: dict[str, list[Mapping[str, Any]]]
    per_object: bool


def evaluate_command(
    task: str,
    card_path: str | Path,
    dataset: str | Path,
    *,
    split: str = "val",
    real_dir: str | Path | None = None,
    extra: Sequence[str] = (),
) -> str:
    """The ``customs-vision evaluate`` command line that measures one metrics block (for the card).

    Args:
        task: ``"xray"`` or ``"document"``.
        card_path: the model card.
        dataset: ``"real"`` or a synthetic folder.
        split: the synthetic folder's split (not used for ``"real"``, which is always ``test``).
        real_dir: the real folder, for ``dataset == "real"``.
        extra: further arguments, appended as given (e.g. ``["--limit", "10"]``).
    """
    parts = ["customs-vision", "evaluate", task, "--model", str(card_path), "--data", str(dataset)]
    if str(dataset) == "real":
        parts += ["--real", str(real_dir)]
    else:
        parts += ["--split", split]
    return shlex.join([*parts, *extra])


def read_object_metadata(dataset_dir: Path, split: str) -> ObjectMetadata | None:
    """The per-object records of one split of a synthetic set's ``metadata.jsonl``.

    Two layouts are read (a file uses one):

    * **one line per image** (X-ray and TIP sets): ``{"file": ..., "split": ..., "objects":
      [{"class_id": ..., "box": [...], "concealment": ...}, ...]}``;
    * **one line per object** (document sets): ``{"image": "images/<split>/<name>", "split": ...,
      "class_id": ..., "box": [...], "flags": {...}, "scan": ..., ...}``; an image with no line has
      no objects.

    Args:
        dataset_dir: the synthetic dataset folder.
        split: only objects of this split are returned (a line without ``split`` belongs to all).

    Returns:
        The records, or ``None`` if the folder has no ``metadata.jsonl``.

    Raises:
        DatasetError: a line is not a JSON object of either layout, the file mixes the layouts, or
            one image has two lines in the per-image layout.
    """
    path = dataset_dir / "metadata.jsonl"
    if not path.is_file():
        return None
    objects: dict[str, list[Mapping[str, Any]]] = {}
    layouts: set[bool] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{lineno}: not JSON: {e}") from e
        per_object = isinstance(row, dict) and "image" in row and "objects" not in row
        if not isinstance(row, dict) or not (per_object or ("file" in row and isinstance(row.get("objects"), list))):
            raise DatasetError(
                f"{path}:{lineno}: expected a JSON object with 'file' and an 'objects' list (one line per "
                "image) or with 'image' (one line per object)"
            )
        layouts.add(per_object)
        if len(layouts) > 1:
            raise DatasetError(f"{path}:{lineno}: mixes one-line-per-image and one-line-per-object records")
        if row.get("split", split) != split:
            continue
        name = Path(str(row["image" if per_object else "file"])).name
        if per_object:
            objects.setdefault(name, []).append(row)
            continue
        if name in objects:
            raise DatasetError(f"{path}:{lineno}: {name} is listed twice")
        if not all(isinstance(o, dict) for o in row["objects"]):
            raise DatasetError(f"{path}:{lineno}: every entry of 'objects' must be a JSON object")
        objects[name] = list(row["objects"])
    return ObjectMetadata(objects=objects, per_object=layouts == {True})


def _object_box_and_class(obj: Mapping[str, Any], name: str) -> tuple[list[float], int]:
    """An object record's pixel box and class id (``-1`` when it records no class)."""
    box: Any = obj.get("box")
    class_id: Any = obj.get("class_id")
    try:
        values = [float(v) for v in box]
        cls = -1 if class_id is None else int(class_id)
    except (TypeError, ValueError):
        values, cls = [], -1
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise DatasetError(
            f"metadata.jsonl: an object of {name} needs a pixel box [x1, y1, x2, y2] and an integer class_id "
            f"(got box {box!r}, class_id {class_id!r})"
        )
    return values, cls


def align_objects(
    items: Sequence[LabelledImage], ground_truths: Sequence[GroundTruth], metadata: ObjectMetadata
) -> list[list[Mapping[str, Any]]]:
    """Each image's metadata records in the order of its label-file rows, matched by class and box.

    Matching does not assume the two files list objects in the same order: the pairs of a label
    row and a record of the same class (or a record without ``class_id``) are taken greedily by
    decreasing IoU, which is about 1 for the same object (the label file only rounds the box) and
    ties keep the file order (two identical objects are interchangeable). Every row must find a
    record with IoU >= :data:`ALIGN_MIN_IOU`.

    Raises:
        DatasetError: an image is missing from the metadata, its objects' count differs from its
            label file's rows, an object has no box, or a row has no matching object (the
            breakdown would otherwise be silently wrong).
    """
    aligned: list[list[Mapping[str, Any]]] = []
    for item, gt in zip(items, ground_truths, strict=True):
        name = item.image.name
        objs = metadata.objects.get(name, [] if metadata.per_object else None)
        if objs is None:
            raise DatasetError(f"{name} is not in metadata.jsonl")
        if len(objs) != len(gt):
            raise DatasetError(
                f"metadata.jsonl lists {len(objs)} objects of {name} but its label file has {len(gt)} rows: "
                "they do not match"
            )
        if not objs:
            aligned.append([])
            continue
        parsed = [_object_box_and_class(o, name) for o in objs]
        boxes = np.array([b for b, _ in parsed], np.float64)
        classes = np.array([c for _, c in parsed], np.int64)
        same_class = (classes[None, :] == -1) | (classes[None, :] == gt.class_id[:, None])
        score = np.where(same_class, box_iou(gt.xyxy.astype(np.float64), boxes), -1.0)
        partner = np.full(len(gt), -1)
        taken = np.zeros(len(objs), bool)
        for flat in np.argsort(-score, axis=None, kind="stable"):
            row, col = divmod(int(flat), len(objs))
            if score[row, col] < ALIGN_MIN_IOU:
                break
            if partner[row] < 0 and not taken[col]:
                partner[row], taken[col] = col, True
        missing = np.flatnonzero(partner < 0)
        if missing.size:
            row = int(missing[0])
            raise DatasetError(
                f"label row {row + 1} of {name} (class {int(gt.class_id[row])}, box "
                f"{np.round(gt.xyxy[row], 1).tolist()}) has no metadata.jsonl object of its class with IoU >= "
                f"{ALIGN_MIN_IOU}: the metadata and labels do not match"
            )
        aligned.append([objs[int(col)] for col in partner])
    return aligned


def _chunks(items: Sequence[LabelledImage], size: int) -> Iterator[Sequence[LabelledImage]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _summary(m: DetectionMetrics) -> dict[str, Any]:
    full = m.to_dict()
    return {k: full[k] for k in ("map50", "map50_95", "precision", "recall", "num_gt", "num_images")}


def breakdown_metrics(
    predictions: Sequence[Detections],
    ground_truths: Sequence[GroundTruth],
    objects: Sequence[Sequence[Mapping[str, Any]]],
    breakdown: Breakdown,
    *,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Metrics per subset of one breakdown; see the module docstring for the rule.

    Args:
        predictions: per image, the detections (at the AP confidence threshold).
        ground_truths: per image, the labelled objects.
        objects: per image, the metadata record of each label row (from :func:`align_objects`).
        breakdown: how records map to subsets.
        class_names: the model's classes.

    Returns:
        Subset name -> ``map50``, ``map50_95``, ``precision``, ``recall`` (at 0.25), ``num_gt``,
        ``num_images``, sorted by name. A subset the data names but no evaluated object belongs
        to (a flag that is never true) has ``num_gt`` 0 and ``None`` metrics.
    """
    member = [[breakdown.memberships(o) for o in per_image] for per_image in objects]
    subsets = sorted({s for per_image in member for m in per_image for s in m})
    out: dict[str, Any] = {}
    for subset in subsets:
        preds, gts = [], []
        for pred, gt, per_image in zip(predictions, ground_truths, member, strict=True):
            mask = np.array([m.get(subset, False) for m in per_image], bool)
            if mask.any():
                preds.append(pred)
                gts.append(gt.only(mask))
        out[subset] = _summary(
            evaluate_detections(preds, gts, class_names=class_names, conf_threshold=REPORT_CONF_THRESHOLD)
        )
    return out


def synthetic_breakdowns(
    dataset_dir: Path,
    split: str,
    items: Sequence[LabelledImage],
    predictions: Sequence[Detections],
    ground_truths: Sequence[GroundTruth],
    *,
    class_names: Sequence[str],
    breakdowns: Sequence[Breakdown] = BREAKDOWNS,
) -> dict[str, Any]:
    """The breakdown blocks a synthetic set's ``metadata.jsonl`` supports, keyed ``by_<name>``.

    A breakdown applies when some object of the split carries its field. The headline numbers are
    valid without the breakdowns, so metadata that cannot be used never raises: an unreadable file
    gives ``{"breakdown_error": message}``, and metadata that does not match the labels gives
    ``{"error": message}`` in place of each applicable breakdown.

    Args:
        dataset_dir: the synthetic dataset folder.
        split: the evaluated split.
        items: the evaluated images.
        predictions: per image, the detections.
        ground_truths: per image, the labelled objects (in label-file order).
        class_names: the model's classes.
        breakdowns: the breakdowns to look for.

    Returns:
        ``{"by_<name>": {subset: metrics}}`` per applicable breakdown (see
        :func:`breakdown_metrics`); empty without ``metadata.jsonl``.
    """
    try:
        metadata = read_object_metadata(dataset_dir, split)
    except DatasetError as e:
        log.warning("no breakdowns: %s", e)
        return {"breakdown_error": str(e)}
    if metadata is None:
        return {}
    records = [o for objs in metadata.objects.values() for o in objs]
    applicable = [b for b in breakdowns if any(b.memberships(o) for o in records)]
    if not applicable:
        return {}
    try:
        objects = align_objects(items, ground_truths, metadata)
    except DatasetError as e:
        log.warning("no %s breakdown: %s", ", ".join(b.name for b in applicable), e)
        return {f"by_{b.name}": {"error": str(e)} for b in applicable}
    return {
        f"by_{b.name}": breakdown_metrics(predictions, ground_truths, objects, b, class_names=class_names)
        for b in applicable
    }


def as_scanned(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The image unchanged (the display the scans were exported from)."""
    return image


def as_greyscale(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """An RGB image as its ITU-R 601 luma in three identical channels (what a grey display shows)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[:, :, None], 3, axis=2)


def as_inverted_greyscale(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``255 - luma`` in three identical channels: the negative grey display (dense objects bright)."""
    return 255 - as_greyscale(image)


def rotate_hue(image: npt.NDArray[np.uint8], degrees: float) -> npt.NDArray[np.uint8]:
    """An RGB image with its HSV hue rotated by ``degrees`` (wrapping around 360), saturation and value kept.

    The rotation is done in OpenCV's floating-point HSV, whose hue is in degrees: the 8-bit one
    counts hue in units of 2 degrees and would round 25 degrees to 24 or 26. Per pixel the largest
    and smallest channels (value and ``value * (1 - saturation)``) come back unchanged up to
    rounding to 8 bits; only the middle channel and the order of the channels change.
    """
    hsv = cv2.cvtColor(image.astype(np.float32) / np.float32(255.0), cv2.COLOR_RGB2HSV)
    hue = np.mod(hsv[..., 0] + np.float32(degrees), np.float32(360.0))
    hsv[..., 0] = np.where(hue >= 360.0, hue - 360.0, hue)  # float32 mod can round up to 360
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class View:
    """A display the model is shown each image through (see :data:`VIEWS`).

    Attributes:
        description: one line, recorded as the metrics block's ``view``.
        transform: ``(H, W, 3)`` uint8 RGB -> ``(H, W, 3)`` uint8 RGB, applied before the detector.
    """

    description: str
    transform: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]


#: The displays :func:`evaluate_detector` can show the model (``customs-vision evaluate --view``).
#: The X-ray model meets scans of other vendors (other colour palettes) and of single-energy
#: scanners (grey, often inverted); these views measure its robustness to that. The descriptions
#: of ``scanned`` and ``grey`` are those of cards measured before the registry existed.
VIEWS: dict[str, View] = {
    "scanned": View("as scanned", as_scanned),
    "grey": View("greyscale (luma)", as_greyscale),
    "grey-inverted": View("greyscale inverted (255 - luma)", as_inverted_greyscale),
    "hue+25": View("hue rotated by +25 degrees (HSV)", partial(rotate_hue, degrees=25.0)),
    "hue-25": View("hue rotated by -25 degrees (HSV)", partial(rotate_hue, degrees=-25.0)),
}
#: The view of an evaluation that names none.
DEFAULT_VIEW = "scanned"
#: Card key suffixes that predate :func:`view_key_suffix`'s rule, kept so that older keys keep their names.
_LEGACY_KEY_SUFFIXES = {"scanned": "", "grey": "_greyscale"}


def check_view(view: str) -> View:
    """The :data:`VIEWS` entry called ``view``.

    Raises:
        ValueError: there is no such view (the message lists them).
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; choose from {', '.join(VIEWS)}")
    return VIEWS[view]


def view_key_suffix(view: str) -> str:
    """What a view appends to a metrics key in the card (``real_test`` + suffix).

    ``scanned`` appends nothing and ``grey`` ``_greyscale`` (the keys cards already use); any other
    view appends ``_`` and its name with a sign before a digit spelled out (``+`` -> ``_plus``,
    ``-`` -> ``_minus``) and every other character outside ``[a-z0-9_]`` replaced by ``_``:
    ``hue+25`` -> ``_hue_plus25``, ``hue-25`` -> ``_hue_minus25``, ``grey-inverted`` ->
    ``_grey_inverted``.

    Raises:
        ValueError: there is no such view.
    """
    check_view(view)
    if view in _LEGACY_KEY_SUFFIXES:
        return _LEGACY_KEY_SUFFIXES[view]
    signs = re.sub(r"[+-](?=[0-9])", lambda m: "_plus" if m.group() == "+" else "_minus", view.lower())
    return "_" + re.sub(r"[^a-z0-9_]", "_", signs)


def evaluate_detector(
    card_path: str | Path,
    dataset: str | Path,
    *,
    split: str | None = None,
    real_dir: str | Path | None = None,
    backend_name: str = "onnxruntime",
    backend_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    breakdowns: Sequence[Breakdown] = BREAKDOWNS,
    view: str = DEFAULT_VIEW,
    command: str = "",
    detector_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure the model of a card on a labelled set and return a metrics block for the card.

    Args:
        card_path: the model card (``models/xray.json``); its ONNX file is sha256-verified.
        dataset: ``"real"`` for the real scans' held-out test split, or a synthetic folder.
        split: the split of a synthetic folder (default ``"val"``); the real set is always ``"test"``.
        real_dir: the real folder (required when ``dataset == "real"``).
        backend_name: inference backend (``"onnxruntime"`` measures the shipped file).
        backend_kwargs: backend arguments (e.g. ``{"threads": 2}``).
        batch_size: images per detector call.
        limit: evaluate only the first ``limit`` images (by file name), for quick checks.
        breakdowns: per-object attributes of a synthetic set's ``metadata.jsonl`` to break the
            metrics down by; those the metadata lacks are left out.
        view: the :data:`VIEWS` entry each image is shown through before the detector; its
            description is recorded in the block as ``view``. The views are proxies: a real
            single-energy image is the attenuation itself, not the luma of a colour palette, and
            another vendor's palette is not a hue rotation of ours, but they remove or change the
            material colour the model may lean on.
        command: the command line that reproduces this block, recorded in it.
        detector_kwargs: further arguments of the model's detector class (e.g. ``{"flip_tta":
            False}`` for the X-ray detector); the AP thresholds always apply.

    Returns:
        A JSON-ready block: ``map50``, ``map50_95``, ``precision``, ``recall`` (micro, at 0.25),
        ``per_class``, counts, the data set, the detector settings, ``command``, ``model_sha256``,
        and for synthetic sets the applicable breakdowns (:func:`synthetic_breakdowns`), e.g.
        ``by_concealment`` for X-ray sets, ``by_hard_case`` and ``by_scan`` for document sets.

    Raises:
        ModelCardError: the card or its model file is missing, malformed or changed.
        DatasetError: the data set is missing or malformed.
        ValueError: ``view`` is not in :data:`VIEWS`.
    """
    from detectors.catalog import detector_class
    from vision.imageio import read_image_file

    shown = check_view(view)
    card = ModelCard.load(card_path)
    class_names = card.spec.class_names
    real = str(dataset) == "real"
    if real:
        if real_dir is None:
            raise DatasetError("evaluating on 'real' needs the real folder (real_dir / --real)")
        if REAL_TARGET_CLASS not in class_names:
            raise DatasetError(f"the model has no {REAL_TARGET_CLASS!r} class to map the real labels to")
        split = "test"
        items = list(iter_real(Path(real_dir), "test"))
        source = str(Path(real_dir).resolve())
    else:
        split = split or "val"
        source = str(Path(dataset).resolve())
        items = synthetic_split(Path(dataset), split)
    if limit is not None:
        items = items[:limit]
    if not items:
        raise DatasetError(f"no images to evaluate in {source} ({split})")

    # The detector the service runs for this model (an X-ray model's turns negatives around), at the
    # AP threshold for every class.
    detector = detector_class(card.name).from_card(
        card_path,
        backend_name=backend_name,
        detector_kwargs={
            **dict(detector_kwargs or {}),
            "conf_threshold": AP_CONF_THRESHOLD,
            "class_thresholds": {},
            "max_det": 300,
        },
        **dict(backend_kwargs or {}),
    )
    started = time.perf_counter()
    predictions: list[Detections] = []
    ground_truths: list[GroundTruth] = []
    try:
        for chunk in _chunks(items, batch_size):
            pixels = [read_image_file(item.image) for item in chunk]
            pixels = [shown.transform(image) for image in pixels]
            predictions.extend(detector.detect(pixels))
            for item, image in zip(chunk, pixels, strict=True):
                labels = read_yolo_labels(item.label, None if real else len(class_names))
                if real:
                    labels[:, 0] = class_names.index(REAL_TARGET_CLASS)
                ground_truths.append(labels_to_ground_truth(labels, image.shape[1], image.shape[0]))
    finally:
        detector.backend.close()
    seconds = time.perf_counter() - started

    metrics = evaluate_detections(
        predictions,
        ground_truths,
        class_names=class_names,
        class_agnostic=real,
        conf_threshold=REPORT_CONF_THRESHOLD,
    )
    block: dict[str, Any] = {
        "dataset": "real" if real else "synthetic",
        "path": source,
        "split": split,
        "class_agnostic": real,
        "view": shown.description,
        **metrics.to_dict(),
        "detector": {
            "backend": backend_name,
            "conf_threshold": AP_CONF_THRESHOLD,
            "nms_iou": detector.options.iou_threshold,
            "max_det": detector.options.max_det,
            "input_size": list(card.spec.input_size),
            # Test-time augmentation: the mirrored view fused in (the X-ray detector's default).
            "flip_tta": bool(getattr(detector, "flip_tta", False)),
            # The close-up tiles fused in (the X-ray detector's default).
            "tile_tta": bool(getattr(detector, "tile_tta", False)),
        },
        "seconds": round(seconds, 2),
        "model_sha256": card.sha256,
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
    }
    if not real:
        block.update(
            synthetic_breakdowns(
                Path(dataset),
                split,
                items,
                predictions,
                ground_truths,
                class_names=class_names,
                breakdowns=breakdowns,
            )
        )
    return block


def record_metrics(card_path: str | Path, key: str, block: Mapping[str, Any]) -> ModelCard:
    """Store a metrics block in a card under ``key`` (replacing an older one) and save it.

    Raises:
        ModelCardError: the card is missing or malformed, or the block was measured on another
            model file (its ``model_sha256`` differs from the card's).
    """
    from vision.modelcard import ModelCardError

    card = ModelCard.load(card_path)
    measured = block.get("model_sha256")
    if measured is not None and measured != card.sha256:
        raise ModelCardError(
            f"metrics were measured on a model with sha256 {str(measured)[:12]}..., but {card_path} "
            f"describes {card.sha256[:12]}..."
        )
    card.metrics[key] = dict(block)
    card.save(card_path)
    return card
