"""Core data types that flow between the stages of an inspection.

Everything here depends on numpy only. Coordinates are always pixels of the *original* image
(before any letterboxing), boxes are ``x1, y1, x2, y2`` with ``x2 > x1`` and ``y2 > y1`` for a
non-degenerate box, origin top-left, x to the right, y down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Modality = Literal["xray", "document"]
RiskLevel = Literal["clear", "review", "alarm"]
Verdict = Literal["genuine", "forged", "inconclusive"]

MODALITIES: tuple[Modality, ...] = ("xray", "document")


@dataclass(frozen=True)
class ImageRecord:
    """One decoded image as it enters the pipeline.

    Attributes:
        id: Caller-chosen identifier (the service uses a UUID; the CLI the file path).
        pixels: ``(H, W, 3)`` uint8 array, RGB channel order, C-contiguous.
        modality: ``"xray"`` or ``"document"``.
        source: Free-form provenance (file name, scanner id, sha256 of the upload, ...).
    """

    id: str
    pixels: npt.NDArray[np.uint8]
    modality: Modality
    source: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
            raise ValueError(
                f"ImageRecord.pixels must be an (H, W, 3) uint8 array, got "
                f"{getattr(p, 'shape', None)} {getattr(p, 'dtype', type(p).__name__)}"
            )
        if p.shape[0] == 0 or p.shape[1] == 0:
            raise ValueError("ImageRecord.pixels must not be empty")
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


@dataclass(frozen=True)
class Detections:
    """A set of N detections in original-image pixels.

    Attributes:
        xyxy: ``(N, 4)`` float32, ``x1, y1, x2, y2`` in original-image pixels.
        confidence: ``(N,)`` float32 in ``[0, 1]``.
        class_id: ``(N,)`` int64 indices into ``class_names``.
        class_names: names of every class the producing model knows (index = class id).
        data: optional per-detection arrays of length N (e.g. ``"concealment"``), filtered with
            the detections.
    """

    xyxy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int64]
    class_names: tuple[str, ...] = ()
    data: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = (
            np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
            if np.size(self.xyxy) == 0
            else (np.asarray(self.xyxy, dtype=np.float32))
        )
        conf = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        if conf.shape != (n,) or cls.shape != (n,):
            raise ValueError(f"confidence {conf.shape} and class_id {cls.shape} must both have shape ({n},)")
        if not np.all(np.isfinite(xyxy)):
            raise ValueError("xyxy contains NaN or infinite coordinates")
        if self.class_names and n and (cls.min() < 0 or cls.max() >= len(self.class_names)):
            raise ValueError(f"class_id out of range for {len(self.class_names)} class names: {cls.min()}..{cls.max()}")
        data = {}
        for key, value in self.data.items():
            arr = np.asarray(value)
            if arr.shape[:1] != (n,):
                raise ValueError(f"data[{key!r}] must have length {n}, got shape {arr.shape}")
            data[key] = arr
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "data", data)

    @classmethod
    def empty(cls, class_names: Sequence[str] = ()) -> Detections:
        """No detections, with the producing model's class names kept."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int64),
            class_names=tuple(class_names),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer] | slice) -> Detections:
        """Select detections with a boolean mask, an index array or a slice."""
        if isinstance(index, np.ndarray) and index.dtype == np.bool_ and index.shape != (len(self),):
            raise IndexError(f"boolean mask must have shape ({len(self)},), got {index.shape}")
        return Detections(
            xyxy=self.xyxy[index].reshape(-1, 4),
            confidence=self.confidence[index].reshape(-1),
            class_id=self.class_id[index].reshape(-1),
            class_names=self.class_names,
            data={k: v[index] for k, v in self.data.items()},
        )

    @property
    def labels(self) -> list[str]:
        """Class name of each detection (``str(class_id)`` if the model has no names)."""
        names = self.class_names
        return [names[c] if names else str(c) for c in self.class_id.tolist()]

    @property
    def area(self) -> npt.NDArray[np.float32]:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return (wh[:, 0] * wh[:, 1]).astype(np.float32)

    @classmethod
    def concatenate(cls, parts: Sequence[Detections]) -> Detections:
        """Join detections of the same model (class names must agree)."""
        if not parts:
            return cls.empty()
        names = parts[0].class_names
        if any(p.class_names != names for p in parts):
            raise ValueError("cannot concatenate detections with different class names")
        keys = set(parts[0].data)
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            class_names=names,
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys if all(k in p.data for p in parts)},
        )


@dataclass(frozen=True)
class Match:
    """The comparison of one detected (or uploaded) mark with one registered specimen.

    Attributes:
        detection: index into the report's detections, or -1 when the whole image was the crop.
        specimen_id: id of the registered specimen compared against.
        owner: authority or signatory the specimen belongs to.
        similarity: calibrated similarity in percent, ``0 <= similarity <= 100``.
        threshold: the decision threshold (percent) the verdict was taken at.
        verdict: ``"genuine"``, ``"forged"`` or ``"inconclusive"``.
    """

    detection: int
    specimen_id: str
    owner: str
    similarity: float
    threshold: float
    verdict: Verdict

    def __post_init__(self) -> None:
        if not 0.0 <= self.similarity <= 100.0:
            raise ValueError(f"similarity must be a percentage in [0, 100], got {self.similarity}")
        if self.verdict not in ("genuine", "forged", "inconclusive"):
            raise ValueError(f"unknown verdict {self.verdict!r}")


@dataclass(frozen=True)
class InspectionReport:
    """Everything one inspection found, ready to be serialised, stored and audited.

    Attributes:
        record_id: id of the inspected :class:`ImageRecord`.
        modality: ``"xray"`` or ``"document"``.
        detections: what the detector found, in original-image pixels.
        matches: specimen comparisons (documents only).
        risk: ``"clear"``, ``"review"`` or ``"alarm"`` for X-ray; ``None`` if not applicable.
        models: model name -> version of every model that contributed.
        timings_ms: stage name -> wall time in milliseconds.
    """

    record_id: str
    modality: Modality
    detections: Detections
    matches: tuple[Match, ...] = ()
    risk: RiskLevel | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    timings_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """What a served model expects and returns; the single source for export, Triton configs and
    preprocessing.

    Attributes:
        name: model name (also the Triton model name), e.g. ``"xray"``.
        version: model version string, e.g. ``"2026.11.22-1"``; recorded in every report.
        input_size: ``(height, width)`` of the network input.
        input_name: name of the image input tensor; shape ``(B, 3, H, W)``.
        input_dtype: numpy dtype name of the input, ``"float32"`` or ``"float16"``.
        output_names: names of the output tensors, in order.
        mean: per-channel mean subtracted after scaling to ``[0, 1]`` (RGB order).
        std: per-channel std divided by after subtracting the mean.
        max_batch: largest batch the exported graph / engine profile accepts.
        dynamic_batch: whether the batch dimension is dynamic.
        class_names: output classes (detectors); empty for embedders.
        pad_value: letterbox padding value in ``[0, 255]``.
    """

    name: str
    version: str
    input_size: tuple[int, int]
    input_name: str = "images"
    input_dtype: str = "float32"
    output_names: tuple[str, ...] = ("output0",)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    max_batch: int = 32
    dynamic_batch: bool = True
    class_names: tuple[str, ...] = ()
    pad_value: int = 114

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"model name must be alphanumeric (with - or _), got {self.name!r}")
        h, w = self.input_size
        if h <= 0 or w <= 0:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if self.input_dtype not in ("float32", "float16"):
            raise ValueError(f"input_dtype must be float32 or float16, got {self.input_dtype!r}")
        if self.max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        object.__setattr__(self, "input_size", (int(h), int(w)))
        object.__setattr__(self, "output_names", tuple(self.output_names))
        object.__setattr__(self, "class_names", tuple(self.class_names))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "input_size": list(self.input_size),
            "input_name": self.input_name,
            "input_dtype": self.input_dtype,
            "output_names": list(self.output_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "max_batch": self.max_batch,
            "dynamic_batch": self.dynamic_batch,
            "class_names": list(self.class_names),
            "pad_value": self.pad_value,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        """Build from a model card's ``"spec"`` section (plain JSON values, never evaluated)."""
        return cls(
            name=str(d["name"]),
            version=str(d["version"]),
            input_size=(int(d["input_size"][0]), int(d["input_size"][1])),
            input_name=str(d.get("input_name", "images")),
            input_dtype=str(d.get("input_dtype", "float32")),
            output_names=tuple(str(x) for x in d.get("output_names", ("output0",))),
            mean=tuple(float(x) for x in d.get("mean", (0.0, 0.0, 0.0))),  # type: ignore[arg-type]
            std=tuple(float(x) for x in d.get("std", (1.0, 1.0, 1.0))),  # type: ignore[arg-type]
            max_batch=int(d.get("max_batch", 32)),
            dynamic_batch=bool(d.get("dynamic_batch", True)),
            class_names=tuple(str(x) for x in d.get("class_names", ())),
            pad_value=int(d.get("pad_value", 114)),
        )
