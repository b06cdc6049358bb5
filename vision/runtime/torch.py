"""PyTorch backend: runs an ``nn.Module`` (or a TorchScript file) behind the numpy protocol.

Used for parity checks against exported models and for quick experiments before export. ``torch``
is imported when a backend is constructed, not when this module is imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vision.runtime.base import BackendError, TensorSpec, check_inputs

if TYPE_CHECKING:
    import torch


class TorchBackend:
    """Runs a PyTorch module in eval mode under ``torch.inference_mode``.

    Inputs arrive as numpy arrays, are moved to ``device`` (cast to float16 when ``half``), and the
    module's outputs come back as numpy arrays on the CPU. With ``half=True`` the interface stays in
    the dtypes of ``inputs``: float16 is internal, floating outputs are returned as float32, so
    callers see the same dtypes as from an fp32 ONNX model.

    The module may return a tensor, a tuple/list of tensors or a dict of tensors; they are matched to
    ``output_names`` by position (tuple/list) or by key (dict). A forward pass on a zero batch at
    construction checks that mapping and records the output specs, so a mismatch fails at start-up.

    Args:
        module: The model. It is switched to eval mode and moved to ``device`` (in place).
        inputs: Specs of the inputs, in the order ``forward`` takes them positionally. Only the
            batch dimension (dim 0) may be dynamic (``-1``); the others are needed for the probe.
        output_names: One name per module output.
        device: Torch device string: ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        half: Run the module in float16 (for CUDA; on the CPU it is slow and usually pointless).
        name: Name used in logs and errors.

    Raises:
        ValueError: Empty or duplicate names, or a dynamic non-batch input dimension.
        BackendError: The device is not available, or the module's outputs do not match
            ``output_names``.
    """

    def __init__(
        self,
        *,
        module: torch.nn.Module,
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str],
        device: str = "cpu",
        half: bool = False,
        name: str = "torch",
    ) -> None:
        self.name = name
        self._inputs = tuple(inputs)
        self._output_names = tuple(output_names)
        _check_names("inputs", [s.name for s in self._inputs])
        _check_names("output_names", list(self._output_names))
        for spec in self._inputs:
            if any(d < 0 for d in spec.shape[1:]):
                raise ValueError(
                    f"input {spec.name!r} has a dynamic non-batch dimension {spec.shape}; "
                    "TorchBackend supports a dynamic batch dimension only"
                )

        self._device = _resolve_device(device)
        self._half = half
        self._module: torch.nn.Module | None = module.eval().to(self._device)
        if half:
            self._module = self._module.half()
        self._outputs = self._probe_outputs()

    @classmethod
    def from_torchscript(
        cls,
        path: str | os.PathLike[str],
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str],
        device: str = "cpu",
        *,
        half: bool = False,
        name: str | None = None,
    ) -> TorchBackend:
        """Load a TorchScript file (``torch.jit.save``) onto ``device``.

        Raises:
            BackendError: The file is missing or not a TorchScript archive, or as the constructor.
        """
        import torch

        if not Path(path).is_file():
            raise BackendError(f"TorchScript file not found: {path}")
        resolved = _resolve_device(device)
        try:
            module = torch.jit.load(str(path), map_location=resolved)
        except Exception as e:  # torch raises RuntimeError/ValueError variants for bad archives
            raise BackendError(f"could not load TorchScript model {path}: {e}") from e
        return cls(
            module=module,
            inputs=inputs,
            output_names=output_names,
            device=device,
            half=half,
            name=name or Path(path).stem,
        )

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the inputs, in ``forward`` argument order."""
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the outputs, as observed by the construction probe (batch dim ``-1`` if dynamic)."""
        return self._outputs

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch.

        Args:
            inputs: Input name -> array matching :attr:`inputs`.

        Returns:
            Output name -> CPU numpy array, in ``output_names`` order.

        Raises:
            BackendError: Invalid inputs, a closed backend, or an exception inside the module.
        """
        check_inputs(self._inputs, inputs)
        return self._forward([inputs[s.name] for s in self._inputs])

    def close(self) -> None:
        """Drop the module and, on CUDA, return cached GPU memory to the driver."""
        import torch

        self._module = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def _forward(self, arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        if self._module is None:
            raise BackendError(f"backend {self.name!r} is closed")
        tensors = []
        for arr in arrays:
            # from_numpy shares memory and warns on read-only arrays; np.require copies only then.
            t = torch.from_numpy(np.require(arr, requirements=["C", "W"])).to(self._device)
            tensors.append(t.half() if self._half and t.is_floating_point() else t)
        try:
            with torch.inference_mode():
                raw = self._module(*tensors)
        except Exception as e:
            raise BackendError(f"PyTorch model {self.name!r} failed: {e}") from e
        return {name: self._to_numpy(t) for name, t in zip(self._output_names, self._match(raw), strict=True)}

    def _match(self, raw: Any) -> list[torch.Tensor]:
        """Module output -> tensors in ``output_names`` order."""
        import torch

        n = len(self._output_names)
        if isinstance(raw, torch.Tensor):
            found: list[Any] = [raw]
        elif isinstance(raw, (tuple, list)):
            found = list(raw)
        elif isinstance(raw, Mapping):
            if set(raw) != set(self._output_names):
                raise BackendError(
                    f"model {self.name!r} returned outputs {sorted(raw)}, expected {sorted(self._output_names)}"
                )
            found = [raw[k] for k in self._output_names]
        else:
            raise BackendError(f"model {self.name!r} returned {type(raw).__name__}, expected tensor(s)")
        if len(found) != n:
            raise BackendError(f"model {self.name!r} returned {len(found)} outputs, expected {n}")
        for out_name, t in zip(self._output_names, found, strict=True):
            if not isinstance(t, torch.Tensor):
                raise BackendError(f"model {self.name!r} output {out_name!r} is {type(t).__name__}, not a tensor")
        return found

    def _to_numpy(self, t: torch.Tensor) -> np.ndarray:
        import torch

        # numpy has no bfloat16, and half mode promises float32 outputs.
        if t.dtype == torch.bfloat16 or (self._half and t.is_floating_point()):
            t = t.float()
        return t.detach().cpu().numpy()

    def _probe_outputs(self) -> tuple[TensorSpec, ...]:
        """Run a zero batch (batch 1 for a dynamic batch) and record output dtypes and shapes."""
        batch_dynamic = any(s.shape and s.shape[0] < 0 for s in self._inputs)
        probe = [np.zeros(tuple(max(d, 1) for d in s.shape), dtype=s.dtype) for s in self._inputs]
        results = self._forward(probe)
        specs = []
        for out_name, arr in results.items():
            shape = tuple(arr.shape)
            if batch_dynamic and shape:
                shape = (-1, *shape[1:])
            specs.append(TensorSpec(name=out_name, dtype=str(arr.dtype), shape=shape))
        return tuple(specs)


def _resolve_device(device: str) -> torch.device:
    import torch

    try:
        resolved = torch.device(device)
    except RuntimeError as e:
        raise BackendError(f"invalid torch device {device!r}: {e}") from e
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(f"device {device!r} requested but no CUDA GPU is available to PyTorch")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise BackendError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    return resolved


def _check_names(what: str, names: Sequence[str]) -> None:
    if not names:
        raise ValueError(f"{what} must not be empty")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} has duplicate names: {list(names)}")
