"""The one interface every model runtime implements.

A backend runs a *batch* of named numpy arrays through one model and returns named numpy arrays.
Detectors and the embedder only ever talk to this protocol, so the same code runs on ONNX Runtime
(the embedded CPU default), PyTorch, TensorRT or a remote Triton server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class BackendError(RuntimeError):
    """A backend could not load or run a model (missing SDK, bad model file, server gone)."""


class BackendUnavailable(BackendError):  # noqa: N818 (reads as a state: "backend unavailable")
    """The backend's runtime or server is not reachable right now (e.g. Triton down); retryable."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of one model input or output.

    ``shape`` uses ``-1`` for dynamic dimensions (the batch dimension of a dynamic-batch model).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        np.dtype(self.dtype)  # raises TypeError for an unknown dtype name
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))


@runtime_checkable
class InferenceBackend(Protocol):
    """A loaded model that maps named input arrays to named output arrays.

    Implementations are constructed with explicit keyword arguments, load their model in the
    constructor (so a broken model fails at start-up, not on the first request) and are safe to call
    from one thread at a time; the service serialises calls through its batcher.
    """

    name: str

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the model inputs, in the model's order."""
        ...

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the model outputs, in the model's order."""
        ...

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch.

        Args:
            inputs: input name -> array whose first dimension is the batch size B.

        Returns:
            output name -> array with first dimension B.

        Raises:
            BackendError: on a missing/extra input, a wrong dtype or shape, or a runtime failure.
        """
        ...

    def close(self) -> None:
        """Release sessions, GPU memory and connections."""
        ...


def check_inputs(specs: tuple[TensorSpec, ...], inputs: Mapping[str, np.ndarray]) -> None:
    """Validate named inputs against specs; raise :class:`BackendError` with a readable message."""
    expected = {s.name for s in specs}
    got = set(inputs)
    if got != expected:
        raise BackendError(f"model expects inputs {sorted(expected)}, got {sorted(got)}")
    for spec in specs:
        arr = inputs[spec.name]
        if not isinstance(arr, np.ndarray):
            raise BackendError(f"input {spec.name!r} must be a numpy array, got {type(arr).__name__}")
        if arr.dtype != np.dtype(spec.dtype):
            raise BackendError(f"input {spec.name!r} must be {spec.dtype}, got {arr.dtype}")
        if arr.ndim != len(spec.shape):
            raise BackendError(f"input {spec.name!r} must have {len(spec.shape)} dims, got shape {arr.shape}")
        for i, (want, have) in enumerate(zip(spec.shape, arr.shape, strict=True)):
            if want >= 0 and want != have:
                raise BackendError(f"input {spec.name!r} dim {i} must be {want}, got {have} (shape {arr.shape})")
