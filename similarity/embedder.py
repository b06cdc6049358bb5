"""Stamp and signature crops → L2-normalised embeddings through any :class:`InferenceBackend`.

:func:`preprocess_crops` is the one preprocessing function of the similarity model: training
(:mod:`similarity.data`) calls it on augmented crops and :class:`Embedder` calls it at serving
time, so the network sees the same kind of pixels in both places. It works on numpy and OpenCV
only, so the serving path needs no torch.

Per crop, in order:

1. **Levels.** The paper level is the 90th percentile of luminance and the ink level the 1st
   percentile. A crop whose ink is less than :data:`MIN_INK_CONTRAST` grey levels darker than its
   paper is treated as blank: it is only letterboxed, never stretched (stretching would amplify
   scanner noise into fake strokes).
2. **Tight box.** Pixels darker than halfway between paper and ink are ink; the box between the
   0.2nd and 99.8th percentile of their coordinates (so an isolated speck does not stretch it),
   grown by :data:`TIGHT_MARGIN` of its size, is cut out. Detector boxes are loose by varying
   amounts; cutting to the ink makes the embedding independent of that.
3. **Contrast.** All three channels are mapped linearly so that the ink level becomes 0 and the
   paper level 255 (hue is kept, so red stamp ink stays red). This removes most of the difference
   between a dark photocopy, a pale scan and a tablet capture.
4. **Letterbox** to ``spec.input_size`` with white padding (``spec.pad_value``, 255 for this
   model: a crop lies on paper), ``INTER_AREA`` when shrinking.
5. ``(x / 255 - mean) / std`` per channel into a ``(B, 3, H, W)`` float32 array
   (:func:`vision.letterbox.to_nchw`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.letterbox import letterbox, to_nchw
from vision.runtime.base import BackendError, InferenceBackend
from vision.types import ModelSpec

if TYPE_CHECKING:
    from vision.modelcard import ModelCard

__all__ = [
    "MIN_INK_CONTRAST",
    "TIGHT_MARGIN",
    "Embedder",
    "EmbedderError",
    "l2_normalise",
    "normalise_crop",
    "preprocess_crops",
]

#: Smallest paper-minus-ink difference (grey levels, 0..255) for a crop to count as having ink.
MIN_INK_CONTRAST = 24.0

#: Margin added around the tight ink box, as a fraction of the box's height and width.
TIGHT_MARGIN = 0.04

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class EmbedderError(ValueError):
    """A crop cannot be embedded (wrong array type or shape), or the model's output is unusable."""


def normalise_crop(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Steps 1-3 of the module docstring: cut to the ink and stretch ink→0, paper→255.

    Args:
        crop: ``(H, W, 3)`` uint8 RGB crop, H and W >= 1.

    Returns:
        ``(h, w, 3)`` uint8 RGB, ``h <= H`` and ``w <= W``; the crop unchanged (a copy) when it has no
        ink by the :data:`MIN_INK_CONTRAST` rule.

    Raises:
        EmbedderError: ``crop`` is not an ``(H, W, 3)`` uint8 array with H, W >= 1.
    """
    _check_crop(crop)
    luma = crop.astype(np.float32) @ _LUMA
    paper = float(np.percentile(luma, 90))
    ink = float(np.percentile(luma, 1))
    if paper - ink < MIN_INK_CONTRAST:
        return crop.copy()

    ys, xs = np.nonzero(luma < (paper + ink) / 2.0)
    y0, y1 = np.percentile(ys, [0.2, 99.8])
    x0, x1 = np.percentile(xs, [0.2, 99.8])
    my = TIGHT_MARGIN * (y1 - y0 + 1)
    mx = TIGHT_MARGIN * (x1 - x0 + 1)
    h, w = luma.shape
    top, bottom = max(int(y0 - my), 0), min(int(np.ceil(y1 + my)) + 1, h)
    left, right = max(int(x0 - mx), 0), min(int(np.ceil(x1 + mx)) + 1, w)
    cut = crop[top:bottom, left:right].astype(np.float32)

    stretched = (cut - ink) * (255.0 / (paper - ink))
    return np.clip(stretched, 0.0, 255.0).round().astype(np.uint8)


def preprocess_crops(crops: Sequence[npt.NDArray[np.uint8]], spec: ModelSpec) -> npt.NDArray[np.float32]:
    """Turn crops into the network input; the single preprocessing used in training and serving.

    Args:
        crops: N >= 1 arrays ``(H_i, W_i, 3)`` uint8 RGB, any sizes.
        spec: the embedding model's spec (input size, mean, std, pad value).

    Returns:
        ``(N, 3, H, W)`` float32, ``(H, W) = spec.input_size``.

    Raises:
        EmbedderError: no crops, or a crop that is not ``(H, W, 3)`` uint8.
    """
    if len(crops) == 0:
        raise EmbedderError("preprocess_crops needs at least one crop")
    boxed = []
    for crop in crops:
        tight = normalise_crop(crop)
        shrinking = tight.shape[0] > spec.input_size[0] or tight.shape[1] > spec.input_size[1]
        out, _ = letterbox(
            tight,
            spec.input_size,
            pad_value=spec.pad_value,
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        )
        boxed.append(out)
    return to_nchw(boxed, mean=spec.mean, std=spec.std, dtype=np.float32).astype(np.float32, copy=False)


class Embedder:
    """Embeds crops with an exported embedding network.

    Args:
        backend: a loaded backend whose model takes ``spec.input_name`` ``(B, 3, H, W)`` float32 and
            returns ``spec.output_names[0]`` ``(B, D)``.
        spec: the model's spec (from its model card).
        batch_size: crops per backend call; capped at ``spec.max_batch``.

    Raises:
        ValueError: ``batch_size < 1``.
    """

    def __init__(self, *, backend: InferenceBackend, spec: ModelSpec, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.backend = backend
        self.spec = spec
        self.batch_size = min(batch_size, spec.max_batch)

    @classmethod
    def from_card(
        cls, card_path: str | Path, *, backend: str = "onnxruntime", threads: int | None = None, batch_size: int = 32
    ) -> tuple[Embedder, ModelCard]:
        """Load a shipped embedding model: verify its card's sha256, create the backend.

        Args:
            card_path: the model card (``models/similarity.json``).
            backend: registered backend name (the ONNX file is passed as ``path=``).
            threads: intra-op threads for the backend.
            batch_size: crops per backend call.

        Returns:
            ``(embedder, card)``.

        Raises:
            ModelCardError: missing or malformed card, or the model file does not match it.
            EmbedderError: the card is not an embedding model's.
        """
        from vision.modelcard import load_verified
        from vision.runtime.registry import create_backend

        card, model_path = load_verified(card_path)
        if card.task != "embed":
            raise EmbedderError(f"{card_path} describes a {card.task!r} model, not an embedding model")
        kwargs: dict[str, Any] = {"path": model_path}
        if threads is not None:
            kwargs["threads"] = threads
        return cls(backend=create_backend(backend, **kwargs), spec=card.spec, batch_size=batch_size), card

    @property
    def version(self) -> str:
        """Model version; stored with every registered embedding."""
        return self.spec.version

    def embed(self, crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """Embed crops.

        Args:
            crops: N arrays ``(H_i, W_i, 3)`` uint8 RGB (N may be 0).

        Returns:
            ``(N, D)`` float32, each row of unit L2 norm (``(0, D)`` when N is 0 and the output
            width is known from the backend, ``(0, 0)`` otherwise).

        Raises:
            EmbedderError: a bad crop, or the model returned a wrongly shaped or non-finite output.
            BackendError: the backend failed.
        """
        if len(crops) == 0:
            dims = self.backend.outputs[0].shape if self.backend.outputs else ()
            width = dims[-1] if len(dims) == 2 and dims[-1] > 0 else 0
            return np.zeros((0, width), np.float32)
        parts = []
        out_name = self.spec.output_names[0]
        for start in range(0, len(crops), self.batch_size):
            batch = preprocess_crops(crops[start : start + self.batch_size], self.spec)
            result = self.backend.run({self.spec.input_name: batch})
            if out_name not in result:
                raise BackendError(f"model output {out_name!r} missing; got {sorted(result)}")
            emb = np.asarray(result[out_name], dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != batch.shape[0]:
                raise EmbedderError(f"expected embeddings ({batch.shape[0]}, D), got {emb.shape}")
            parts.append(emb)
        return l2_normalise(np.concatenate(parts))

    def embed_one(self, crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Embed one crop; returns ``(D,)`` float32 of unit norm."""
        return self.embed([crop])[0]


def l2_normalise(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 norm (the exported model already does this; re-doing it is cheap and
    protects the registry from a backend that returns float16 or a slightly off norm).

    Raises:
        EmbedderError: a row is all zeros or not finite.
    """
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms <= 1e-12):
        raise EmbedderError("model returned a zero or non-finite embedding")
    return (x / norms).astype(np.float32)


def _check_crop(crop: npt.NDArray[np.uint8]) -> None:
    if not (isinstance(crop, np.ndarray) and crop.dtype == np.uint8 and crop.ndim == 3 and crop.shape[2] == 3):
        raise EmbedderError(
            f"a crop must be an (H, W, 3) uint8 RGB array, got {getattr(crop, 'shape', None)} "
            f"{getattr(crop, 'dtype', type(crop).__name__)}"
        )
    if crop.shape[0] == 0 or crop.shape[1] == 0:
        raise EmbedderError(f"a crop must not be empty, got shape {crop.shape}")
