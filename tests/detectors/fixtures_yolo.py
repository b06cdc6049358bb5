"""Tiny seeded YOLO-format data sets for the training and dataset tests (numpy-drawn rectangles).

``make_synthetic`` mimics the synthetic generator's layout (``images/{train,val}``,
``labels/{train,val}``, ``data.yaml``, ``metadata.jsonl`` with a concealment level per object);
``make_fake_real`` mimics the real X-ray folder (``images/*.jpg`` with Roboflow-style names,
``labels/*.txt`` with the five unnamed class ids, ``PROVENANCE.md``).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from detectors.xray import XRAY_CLASSES

LEVELS = ("easy", "hard", "hidden")


def _draw(rng: np.random.Generator, size: int, classes: list[int]) -> tuple[np.ndarray, list[tuple]]:
    """A grey canvas with one coloured rectangle per class id; returns the image and pixel boxes."""
    img = np.full((size, size, 3), 190, np.uint8)
    boxes = []
    for c in classes:
        w, h = (int(v) for v in rng.integers(size // 6, size // 3, 2))
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        img[y : y + h, x : x + w] = (20 + 30 * c, 230 - 30 * c, 90)
        boxes.append((c, x, y, x + w, y + h))
    return img, boxes


def _yolo_line(box: tuple, size: int) -> str:
    c, x1, y1, x2, y2 = box
    return f"{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} {(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}\n"


def make_synthetic(root: Path, *, train: int = 8, val: int = 4, size: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    meta = []
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(count):
            classes = [int(c) for c in rng.integers(0, len(XRAY_CLASSES), 2)]
            img, boxes = _draw(rng, size, classes)
            name = f"{split}_{i:03d}.png"
            cv2.imwrite(str(root / "images" / split / name), img[:, :, ::-1])
            (root / "labels" / split / f"{split}_{i:03d}.txt").write_text("".join(_yolo_line(b, size) for b in boxes))
            meta.append(
                {
                    "file": f"images/{split}/{name}",
                    "split": split,
                    "objects": [
                        {"class_id": c, "box": [x1, y1, x2, y2], "concealment": LEVELS[(i + k) % 3]}
                        for k, (c, x1, y1, x2, y2) in enumerate(boxes)
                    ],
                }
            )
    (root / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(XRAY_CLASSES))
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return root


def make_fake_real(root: Path, *, count: int = 40, size: int = 64, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    for i in range(count):
        stem = f"{9000 + i:06d}_jpg.rf.{rng.integers(0, 2**63):016x}"
        img, boxes = _draw(rng, size, [int(rng.integers(0, 5))])
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), img[:, :, ::-1])
        (root / "labels" / f"{stem}.txt").write_text("".join(_yolo_line(b, size) for b in boxes).rstrip("\n"))
    (root / "PROVENANCE.md").write_text("# fake real scans for tests\n")
    return root
