"""Real inputs for export parity checks and INT8 calibration: generated scans, pages and crops.

Random tensors exercise a network in regions real images never reach (and miss the ones they
do), so parity and calibration use images from this project's own generators:
:func:`detectors.synth.xray.generate_scan` for the X-ray detector,
:func:`detectors.synth.documents.render_page` for the document detector, and the stamp and
signature marks cut out of rendered pages (with a detector-like margin) for the similarity
embedder. A folder of images can be used instead.

When a model card names no held-out set, :func:`write_heldout` generates a labelled one for the
accuracy gate (:mod:`deploy.quantize`).

Seeds: the defaults here (:data:`PARITY_SEED`, :data:`CALIBRATION_SEED`, :data:`HELDOUT_SEED`) differ
from each other and from the seeds the training sets are generated with (0 and small integers), so
calibration never sees training images, and a held-out accuracy check never sees calibration or
training images.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from vision.types import ModelSpec

#: Seed of the generated parity-check inputs.
PARITY_SEED = 7_300_001
#: Seed of the generated INT8 calibration inputs.
CALIBRATION_SEED = 7_300_002
#: Seed of generated held-out sets (:func:`write_heldout`).
HELDOUT_SEED = 7_300_003
#: Owner index of the first generated held-out specimen owner: far above the training owners
#: (``0..299`` in the shipped similarity card), so no held-out owner was ever trained on.
HELDOUT_FIRST_OWNER = 1_000_000
#: Image file suffixes read from folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: What each served model's generated inputs are.
GENERATORS: dict[str, str] = {
    "xray": "synthetic dual-energy X-ray scans (detectors.synth.xray)",
    "document": "synthetic scanned document pages (detectors.synth.documents)",
    "similarity": "stamp and signature crops cut from synthetic pages (detectors.synth.documents)",
}


class SampleError(ValueError):
    """No inputs could be produced (unknown model, empty folder, bad count)."""


def generated_images(
    model: str, count: int, *, seed: int = PARITY_SEED, size: int = 640
) -> list[npt.NDArray[np.uint8]]:
    """Generate ``count`` inputs for a served model.

    Args:
        model: ``"xray"``, ``"document"`` or ``"similarity"`` (see :data:`GENERATORS`).
        count: number of images, >= 1.
        seed: generator seed; the same seed gives the same images.
        size: side of X-ray scans in pixels (pages and crops have their natural sizes).

    Returns:
        ``(H, W, 3)`` uint8 RGB arrays.

    Raises:
        SampleError: an unknown model or ``count < 1``.
    """
    if count < 1:
        raise SampleError(f"count must be >= 1, got {count}")
    if model == "xray":
        from detectors.synth.xray import generate_scan

        return [generate_scan(seed, i, size=size).image for i in range(count)]
    if model == "document":
        from detectors.synth.documents import render_page

        return [render_page(seed, i).image for i in range(count)]
    if model == "similarity":
        return _mark_crops(count, seed)
    raise SampleError(f"no generator for model {model!r}; known: {sorted(GENERATORS)}")


def _mark_crops(count: int, seed: int) -> list[npt.NDArray[np.uint8]]:
    """Stamp and signature crops from rendered pages, each grown by 8 % like a detector box."""
    from detectors.synth.documents import render_page

    crops: list[npt.NDArray[np.uint8]] = []
    index = 0
    while len(crops) < count:
        page = render_page(seed, index)
        index += 1
        h, w = page.image.shape[:2]
        for mark in page.marks:
            x1, y1, x2, y2 = mark.box
            mx, my = int(0.08 * (x2 - x1)) + 1, int(0.08 * (y2 - y1)) + 1
            crop = page.image[max(0, y1 - my) : min(h, y2 + my), max(0, x1 - mx) : min(w, x2 + mx)]
            if crop.shape[0] >= 8 and crop.shape[1] >= 8:
                crops.append(np.ascontiguousarray(crop))
            if len(crops) == count:
                break
        if index > 50 * count:
            raise SampleError(f"rendered {index} pages without finding {count} usable marks")
    return crops


def write_heldout(
    model: str, out: str | Path, count: int, *, seed: int = HELDOUT_SEED, kind: str = "stamp"
) -> dict[str, Any]:
    """Generate a labelled held-out set for a served model's accuracy gate into ``out``.

    Every generated image is held out (the seed is none of the training seeds), so the detector
    sets put all of them in the split the gate measures: ``val`` for X-ray scans; ``train`` for
    document pages, whose generator cannot put every page in ``val``.

    Args:
        model: ``"xray"``, ``"document"`` or ``"similarity"``.
        out: an empty or missing folder.
        count: X-ray scans or document pages; for the similarity model, owners (4 genuine
            specimens and 3 skilled forgeries each, owners from :data:`HELDOUT_FIRST_OWNER` on).
        seed: generator seed.
        kind: similarity only: ``"stamp"`` or ``"signature"``.

    Returns:
        What was generated, for a model card: ``generator``, ``seed``, ``count``, ``split``
        (detectors), ``kind`` (similarity) and the ``command`` that writes the same set again.

    Raises:
        SampleError: an unknown model or ``count < 1``.
    """
    if count < 1:
        raise SampleError(f"count must be >= 1, got {count}")
    root = str(out)
    described: dict[str, Any] = {"generator": GENERATORS.get(model), "seed": seed, "count": count}
    if model == "xray":
        from detectors.synth.xray_dataset import write_dataset

        write_dataset(root, count, seed, val_fraction=1.0, image_format="png")
        args = ["synth", "xray", "--count", str(count), "--seed", str(seed), "--val-fraction", "1", "--format", "png"]
        described["split"] = "val"
    elif model == "document":
        from detectors.synth.doc_dataset import write_document_dataset

        write_document_dataset(root, count, seed, val_fraction=0.0)
        args = ["synth", "documents", "--count", str(count), "--seed", str(seed), "--val-fraction", "0"]
        described["split"] = "train"
    elif model == "similarity":
        from detectors.synth.doc_dataset import write_specimens
        from detectors.synth.doc_specimens import SpecimenKind

        if kind not in ("stamp", "signature"):
            raise SampleError(f"specimen kind must be 'stamp' or 'signature', got {kind!r}")
        write_specimens(root, cast(SpecimenKind, kind), count, 4, 3, seed, first_owner=HELDOUT_FIRST_OWNER)
        args = ["synth", "specimens", "--kind", kind, "--owners", str(count), "--per-owner", "4", "--forgeries", "3"]
        args += ["--seed", str(seed), "--first-owner", str(HELDOUT_FIRST_OWNER)]
        described["kind"] = kind
    else:
        raise SampleError(f"no generator for model {model!r}; known: {sorted(GENERATORS)}")
    described["command"] = shlex.join(["customs-vision", *args[:2], "--out", "DIR", *args[2:]])
    return described


def folder_images(folder: str | Path, limit: int | None = None) -> list[npt.NDArray[np.uint8]]:
    """Read the images of a folder (recursively, sorted by path).

    Raises:
        SampleError: the folder does not exist or holds no image.
    """
    from vision.imageio import read_image_file

    root = Path(folder)
    if not root.is_dir():
        raise SampleError(f"image folder {root} does not exist")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if limit is not None:
        paths = paths[:limit]
    if not paths:
        raise SampleError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return [read_image_file(p) for p in paths]


def batches(tensor: npt.NDArray[np.float32], batch_size: int) -> list[npt.NDArray[np.float32]]:
    """Cut a ``(N, ...)`` array into ``ceil(N / batch_size)`` consecutive batches (the last may be smaller)."""
    if batch_size < 1:
        raise SampleError(f"batch_size must be >= 1, got {batch_size}")
    return [tensor[i : i + batch_size] for i in range(0, len(tensor), batch_size)]


def preprocess_for(
    model_task: str, images: Sequence[npt.NDArray[np.uint8]], spec: ModelSpec
) -> npt.NDArray[np.float32]:
    """The network input for ``images`` exactly as serving builds it.

    Args:
        model_task: ``"detect"`` (letterbox + normalise, :class:`detectors.base.YoloDetector`) or
            ``"embed"`` (:func:`similarity.embedder.preprocess_crops`).
        images: ``(H, W, 3)`` uint8 RGB arrays.
        spec: the model's spec.

    Returns:
        ``(N, 3, H, W)`` array in the spec's input dtype.

    Raises:
        SampleError: no images, or an unknown task.
    """
    if not images:
        raise SampleError("no images to preprocess")
    if model_task == "embed":
        from similarity.embedder import preprocess_crops

        return preprocess_crops(list(images), spec)
    if model_task == "detect":
        from vision.letterbox import letterbox, to_nchw

        boxed = [letterbox(im, spec.input_size, pad_value=spec.pad_value)[0] for im in images]
        return to_nchw(boxed, mean=spec.mean, std=spec.std, dtype=np.dtype(spec.input_dtype))
    raise SampleError(f"unknown task {model_task!r}; expected 'detect' or 'embed'")
