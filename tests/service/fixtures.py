"""Tiny ONNX models with model cards, and seeded test images, for the API tests (no shipped models).

Models (built with ``onnx.helper``, a few hundred bytes each):

* ``xray``: an end-to-end head ``(B, K, 6)`` over :data:`detectors.xray.XRAY_CLASSES` whose
  ``handgun`` confidence rises as the image gets darker (``sigmoid(-20 * (mean - 0.5))`` of the
  letterboxed input in ``[0, 1]``): a dark scan is an *alarm*, a bright one *clear*. Because the
  output depends on each image, a batch that routed results to the wrong request would be caught.
* ``document``: an end-to-end head with one ``stamp`` and one ``signature`` box at fixed places of
  the 64 x 64 network input (confidence 0.9 and 0.8).
* ``similarity``: a 4 x 4 average pool of the ``(B, 3, 32, 64)`` input, flattened and projected by a
  fixed seeded ``48 x 16`` matrix: crops that look alike embed alike. Its card carries a Platt
  calibration ``percent = 100 * sigmoid(12 * cos - 6)`` and a 50 % threshold with a 5-point band.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from detectors.document import DOCUMENT_CLASSES
from detectors.xray import XRAY_CLASSES
from vision.imageio import encode_jpeg, encode_png
from vision.modelcard import ModelCard, sha256_file
from vision.types import ModelSpec

DETECTOR_INPUT = (64, 64)
EMBED_INPUT = (32, 64)
VERSION = "test-1"

# Stamp and signature boxes in network-input pixels (x1, y1, x2, y2), class id.
DOCUMENT_BOXES = ((6.0, 20.0, 26.0, 40.0, 0), (34.0, 30.0, 60.0, 42.0, 1))

SCORING = {
    kind: {
        "calibration": {"method": "platt", "slope": 12.0, "intercept": -6.0, "prior": 0.5},
        "decision": {"threshold": 50.0, "band": 5.0, "basis": "test"},
    }
    for kind in ("stamp", "signature")
}


def _save(model: onnx.ModelProto, models_dir: Path, spec: ModelSpec, task: str, metrics: dict | None = None) -> Path:
    model.ir_version = 9
    onnx.checker.check_model(model)
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{spec.name}.onnx"
    onnx.save(model, path)
    card = ModelCard(
        name=spec.name,
        version=spec.version,
        task=task,
        file=path.name,
        sha256=sha256_file(path),
        spec=spec,
        metrics=metrics or {},
    )
    card_path = models_dir / f"{spec.name}.json"
    card.save(card_path)
    return card_path


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name=f"{name}_value"))


def write_detector(
    models_dir: Path,
    name: str,
    class_names: Sequence[str],
    rows: Sequence[tuple[float, float, float, float, float, float, int]],
) -> Path:
    """An end-to-end detector whose row ``k`` is ``box_k, sigmoid(a_k * mean + b_k), class_k``.

    Args:
        rows: ``(x1, y1, x2, y2, a, b, class_id)`` per output row, box in network-input pixels.
    """
    k = len(rows)
    r = np.asarray([row[:6] for row in rows], dtype=np.float32)
    boxes = r[None, :, :4]
    slope = r[None, :, 4:5]
    bias = r[None, :, 5:6]
    cls = np.asarray([[row[6]] for row in rows], dtype=np.float32)[None]
    h, w = DETECTOR_INPUT
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, h, w])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", k, 6])
    nodes = [
        _const("axes", np.array([1, 2, 3], dtype=np.int64)),
        helper.make_node("ReduceMean", ["images", "axes"], ["mean"], keepdims=1),  # (B,1,1,1)
        _const("squeeze_axes", np.array([3], dtype=np.int64)),
        helper.make_node("Squeeze", ["mean", "squeeze_axes"], ["m"]),  # (B,1,1)
        _const("slope", slope),
        _const("bias", bias),
        helper.make_node("Mul", ["m", "slope"], ["z0"]),
        helper.make_node("Add", ["z0", "bias"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["score"]),  # (B,K,1)
        _const("zero", np.zeros((1, 1, 1), np.float32)),
        helper.make_node("Mul", ["m", "zero"], ["m0"]),  # (B,1,1) zeros: broadcasts constants over B
        _const("boxes", boxes),
        _const("cls", cls),
        helper.make_node("Add", ["boxes", "m0"], ["boxes_b"]),
        helper.make_node("Add", ["cls", "m0"], ["cls_b"]),
        helper.make_node("Concat", ["boxes_b", "score", "cls_b"], ["output0"], axis=2),
    ]
    graph = helper.make_graph(nodes, name, [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    spec = ModelSpec(name=name, version=VERSION, input_size=DETECTOR_INPUT, class_names=tuple(class_names), max_batch=8)
    return _save(model, models_dir, spec, "detect")


def write_xray_model(models_dir: Path) -> Path:
    logit_at_half = 10.0  # sigmoid(-20 * (mean - 0.5)) = sigmoid(-20 * mean + 10)
    return write_detector(
        models_dir,
        "xray",
        XRAY_CLASSES,
        [(16.0, 16.0, 48.0, 40.0, -20.0, logit_at_half, XRAY_CLASSES.index("handgun"))],
    )


def write_document_model(models_dir: Path) -> Path:
    rows = []
    for (x1, y1, x2, y2, c), conf in zip(DOCUMENT_BOXES, (0.9, 0.8), strict=True):
        rows.append((x1, y1, x2, y2, 0.0, math.log(conf / (1 - conf)), c))
    return write_detector(models_dir, "document", DOCUMENT_CLASSES, rows)


#: An aligned stamp section (``similarity.verifier``) with the identity calibration: percent = 100 * s.
ALIGNED_SCORING = {
    "weights": None,
    "use_scale": False,
    "calibration": {"method": "platt", "slope": 1.0, "intercept": 0.0, "prior": 0.5},
    "decision": {"threshold": 50.0, "band": 5.0, "basis": "test"},
}


def write_similarity_model(models_dir: Path, *, seed: int = 7, dim: int = 16, aligned: bool = False) -> Path:
    h, w = EMBED_INPUT
    projection = np.random.default_rng(seed).normal(size=(48, dim)).astype(np.float32)
    bias = np.full((dim,), 0.05, np.float32)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, h, w])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])
    nodes = [
        helper.make_node(
            "AveragePool", ["images"], ["pooled"], kernel_shape=[h // 4, w // 4], strides=[h // 4, w // 4]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),  # (B, 48)
        _const("centre", np.full((1, 48), 0.5, np.float32)),
        helper.make_node("Sub", ["flat", "centre"], ["centred"]),
        _const("projection", projection),
        _const("bias", bias),
        helper.make_node("MatMul", ["centred", "projection"], ["projected"]),
        helper.make_node("Add", ["projected", "bias"], ["embedding"]),
    ]
    graph = helper.make_graph(nodes, "similarity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    spec = ModelSpec(
        name="similarity",
        version=VERSION,
        input_size=EMBED_INPUT,
        output_names=("embedding",),
        pad_value=255,
        max_batch=16,
    )
    scoring = {**SCORING, "stamp_aligned": ALIGNED_SCORING} if aligned else SCORING
    return _save(model, models_dir, spec, "embed", metrics={"scoring": scoring})


def write_all_models(models_dir: Path) -> Path:
    write_xray_model(models_dir)
    write_document_model(models_dir)
    write_similarity_model(models_dir)
    return models_dir


# ---------------------------------------------------------------------------------------- images


def xray_scan(*, dark: bool, seed: int = 0, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A noisy grey ``(H, W, 3)`` uint8 scan; ``dark`` ones make the test X-ray model alarm."""
    rng = np.random.default_rng(seed)
    level = 30 if dark else 225
    grey = np.clip(rng.normal(level, 12, size), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def document_page(*, seed: int = 0, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A white page with a red seal and a dark signature where the test document model finds them."""
    rng = np.random.default_rng(seed)
    h, w = size
    page = np.full((h, w, 3), 246, np.uint8)
    # Network input is 64 x 64; a 240 x 320 page is scaled by 0.2 and padded 8 px top and bottom.
    scale, pad_top = 64 / max(h, w), (64 - round(h * 64 / max(h, w))) / 2
    (sx1, sy1, sx2, sy2, _), (gx1, gy1, gx2, gy2, _) = DOCUMENT_BOXES
    centre = (round((sx1 + sx2) / 2 / scale), round(((sy1 + sy2) / 2 - pad_top) / scale))
    radius = round((sx2 - sx1) / 2 / scale) - 6
    cv2.circle(page, centre, radius, (200, 30, 40), 4, cv2.LINE_AA)
    cv2.putText(page, "SEAL", (centre[0] - 24, centre[1] + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (200, 30, 40), 2)
    x0, x1 = round(gx1 / scale) + 8, round(gx2 / scale) - 8
    y0, y1 = round((gy1 - pad_top) / scale) + 6, round((gy2 - pad_top) / scale) - 6
    pts = np.stack([np.linspace(x0, x1, 12), rng.uniform(y0, y1, 12)], axis=1).round().astype(np.int32)
    cv2.polylines(page, [pts], False, (20, 20, 60), 2, cv2.LINE_AA)
    return page


def scribble(*, seed: int, size: tuple[int, int] = (60, 120)) -> np.ndarray:
    """A random dark scribble on white: a stand-in specimen unlike the page's marks."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    for _ in range(3):
        pts = np.stack([rng.uniform(5, w - 5, 6), rng.uniform(5, h - 5, 6)], axis=1).round().astype(np.int32)
        cv2.polylines(img, [pts], False, (10, 10, 10), 3, cv2.LINE_AA)
    return img


def png(pixels: np.ndarray) -> bytes:
    return encode_png(pixels)


def jpeg(pixels: np.ndarray) -> bytes:
    return encode_jpeg(pixels, quality=90)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` pixels, with almost no data (a bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, format="GIF")
    return buf.getvalue()


def malformed_corpus(seed: int = 0, count: int = 40) -> list[tuple[str, bytes]]:
    """Seeded malformed uploads: truncations, byte flips, spliced headers of real encodings.

    Every entry must be refused with a 4xx; none may crash the service. Entries are
    ``(description, bytes)``.
    """
    rng = np.random.default_rng(seed)
    sources = {
        "png": png(document_page(seed=1)),
        "jpeg": jpeg(xray_scan(dark=False, seed=2)),
        "gif": gif_bytes(),
    }
    corpus: list[tuple[str, bytes]] = []
    for i in range(count):
        name = ("png", "jpeg")[i % 2]
        data = bytearray(sources[name])
        op = i % 4
        if op == 0:  # cut somewhere after the signature
            cut = int(rng.integers(9, len(data) // 2))
            corpus.append((f"{name} truncated at {cut}", bytes(data[:cut])))
        elif op == 1:  # truncate and flip bytes in the header region
            cut = int(rng.integers(len(data) // 4, len(data) - 1))
            for pos in rng.integers(8, min(64, cut), 4):
                data[int(pos)] ^= 0xFF
            corpus.append((f"{name} cut at {cut} with header flips", bytes(data[:cut])))
        elif op == 2:  # a valid signature followed by noise
            noise = rng.integers(0, 256, int(rng.integers(1, 512)), dtype=np.uint8).tobytes()
            corpus.append((f"{name} signature + noise", bytes(data[:8]) + noise))
        else:  # random bytes, sometimes with a foreign magic number
            noise = rng.integers(0, 256, int(rng.integers(1, 2048)), dtype=np.uint8).tobytes()
            magic = (b"", b"%PDF-1.7\n", b"GIF89a", b"PK\x03\x04")[int(rng.integers(0, 4))]
            corpus.append((f"random {len(noise)} bytes after {magic!r}", magic + noise))
    corpus.append(("gif", sources["gif"]))
    return corpus
