"""Loading the shipped models for the service: cards verified by sha256, one backend per model."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vision.modelcard import ModelCard, ModelCardError, load_verified
from vision.runtime.base import BackendError, InferenceBackend
from vision.runtime.registry import create_backend

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    card: ModelCard
    path: Path
    backend: InferenceBackend


@dataclass
class ModelPool:
    """The models the service runs, and why any of them is not available."""

    models: dict[str, LoadedModel] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    loaded: bool = False

    def versions(self) -> dict[str, str]:
        return {name: m.card.version for name, m in self.models.items()}

    def missing(self, required: tuple[str, ...]) -> dict[str, str]:
        """Required model name -> reason it is not loaded (empty when all are)."""
        if not self.loaded:
            return {name: "still loading" for name in required}
        return {name: self.errors.get(name, "not loaded") for name in required if name not in self.models}

    def close(self) -> None:
        for m in self.models.values():
            m.backend.close()
        self.models.clear()


def load_models(models_dir: Path, names: tuple[str, ...], *, backend: str, backend_kwargs: dict[str, Any]) -> ModelPool:
    """Load ``<models_dir>/<name>.json`` for each name; failures are recorded, not raised."""
    pool = ModelPool()
    for name in names:
        card_path = models_dir / f"{name}.json"
        try:
            card, path = load_verified(card_path)
            kwargs = dict(backend_kwargs)
            if backend == "onnxruntime":
                kwargs.setdefault("path", path)
            elif backend == "triton":
                kwargs.setdefault("model_name", card.name)
            pool.models[name] = LoadedModel(card=card, path=path, backend=create_backend(backend, **kwargs))
            log.info("loaded model %s %s (%s)", name, card.version, backend)
        except (ModelCardError, BackendError) as e:
            pool.errors[name] = str(e)
            log.warning("model %s not loaded: %s", name, e)
        except Exception as e:  # a loader bug must not leave /readyz "still loading" forever
            pool.errors[name] = f"failed to load: {e!r}"
            log.exception("model %s failed to load", name)
    pool.loaded = True
    return pool
