"""Model cards: the JSON file shipped beside every ONNX model in ``models/``.

A card says what the model is (its :class:`~vision.types.ModelSpec`), what data it saw, how well
it did on held-out data and with which command that was measured, and the sha256 of the ONNX file
so that a served model is provably the one that was measured. Cards are plain JSON, read with
``json.loads`` and never evaluated.

Layout::

    {
      "name": "xray", "version": "2026.11.22", "task": "detect" | "embed",
      "file": "xray.onnx", "sha256": "<hex>",
      "spec": {... ModelSpec.to_dict() ...},
      "data": {"train": [...], "heldout": [...]},
      "metrics": {...},            # each block names the "command" that measured it
      "training": {...},           # architecture, epochs, image size, wall time, machine
      "created": "ISO-8601 UTC", "notes": "..."
    }
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vision.types import ModelSpec

TASKS = ("detect", "embed")


class ModelCardError(ValueError):
    """A model card is missing, malformed, or does not match its model file."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelCard:
    """One shipped model's card. ``file`` is relative to the card's directory."""

    name: str
    version: str
    task: str
    file: str
    sha256: str
    spec: ModelSpec
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    notes: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelCardError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.spec.name != self.name or self.spec.version != self.version:
            raise ModelCardError(
                f"card {self.name}@{self.version} disagrees with its spec {self.spec.name}@{self.spec.version}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "file": self.file,
            "sha256": self.sha256,
            "spec": self.spec.to_dict(),
            "data": self.data,
            "metrics": self.metrics,
            "training": self.training,
            "created": self.created,
            "notes": self.notes,
        }

    def save(self, path: str | Path) -> None:
        """Write the card as JSON, atomically: a service or command reading the card while
        ``evaluate --write-card`` records a result sees the old card or the new one, never half of one."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, mode)  # mkstemp makes it 0600; keep the card readable as it was
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read and validate a card; raises :class:`ModelCardError` with the file name on any problem."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                name=str(raw["name"]),
                version=str(raw["version"]),
                task=str(raw["task"]),
                file=str(raw["file"]),
                sha256=str(raw["sha256"]),
                spec=ModelSpec.from_dict(raw["spec"]),
                data=dict(raw.get("data", {})),
                metrics=dict(raw.get("metrics", {})),
                training=dict(raw.get("training", {})),
                created=str(raw.get("created", "")),
                notes=str(raw.get("notes", "")),
            )
        except FileNotFoundError:
            raise ModelCardError(f"model card not found: {path}") from None
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ModelCardError):
                raise
            raise ModelCardError(f"malformed model card {path}: {e!r}") from e

    def model_path(self, card_path: str | Path) -> Path:
        return Path(card_path).parent / self.file

    def verify(self, card_path: str | Path) -> Path:
        """Check that the model file exists and matches the recorded sha256; return its path."""
        model = self.model_path(card_path)
        if not model.is_file():
            raise ModelCardError(f"model file {model} named by card {card_path} does not exist")
        digest = sha256_file(model)
        if digest != self.sha256:
            raise ModelCardError(
                f"{model} has sha256 {digest[:12]}..., but its card records {self.sha256[:12]}...: "
                "the file was changed after it was measured"
            )
        return model


def load_verified(card_path: str | Path) -> tuple[ModelCard, Path]:
    """Load a card and verify its model file; return both."""
    card = ModelCard.load(card_path)
    return card, card.verify(card_path)
