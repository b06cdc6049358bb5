"""TensorRT backend: runs a serialized TensorRT engine (``.engine``/``.plan``) on an NVIDIA GPU.

Uses the TensorRT 10+ name-based I/O API (``num_io_tensors``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) with torch CUDA tensors as device buffers, so no
pycuda/cuda-python is needed. ``tensorrt`` and ``torch`` are imported when a backend is
constructed, not when this module is imported. An engine only runs on the GPU model and TensorRT
version it was built with; build it on the target machine (``deploy``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vision.runtime.base import BackendError, TensorSpec, check_inputs


class TensorRTBackend:
    """Runs one TensorRT engine with a single execution context and a dedicated CUDA stream.

    Inputs are copied host -> device, the engine runs on the backend's stream, outputs are copied
    back; shapes of dynamic inputs are set per batch and must lie within the engine's
    optimisation profile 0.

    Args:
        engine_path: Serialized engine file.
        device: CUDA device index.
        name: Name used in logs and errors; default the file stem.

    Raises:
        BackendError: TensorRT or torch is not installed, no CUDA GPU is present, the device index
            does not exist, or the engine file is missing or cannot be deserialized here.
    """

    def __init__(self, *, engine_path: str | os.PathLike[str], device: int = 0, name: str | None = None) -> None:
        self.name = name or Path(engine_path).stem
        try:
            import tensorrt as trt
        except ImportError as e:
            raise BackendError(
                "TensorRT is not installed (pip install 'customs-vision[gpu]' on a machine with an "
                f"NVIDIA GPU); the tensorrt backend cannot run here: {e}"
            ) from e
        try:
            import torch
        except ImportError as e:
            raise BackendError(f"the tensorrt backend needs torch for GPU buffers, and it is not installed: {e}") from e
        if not torch.cuda.is_available():
            raise BackendError("no CUDA GPU found: the tensorrt backend runs TensorRT engines on an NVIDIA GPU only")
        if not 0 <= device < torch.cuda.device_count():
            raise BackendError(f"CUDA device {device} does not exist ({torch.cuda.device_count()} GPU(s) found)")
        if not Path(engine_path).is_file():
            raise BackendError(f"TensorRT engine file not found: {engine_path}")

        self._trt: Any = trt
        self._torch: Any = torch
        self._device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self._device):
            self._runtime = trt.Runtime(self._logger)
            engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
            if engine is None:
                raise BackendError(
                    f"could not deserialize TensorRT engine {engine_path}: it was built for another "
                    f"TensorRT version or GPU, or is not an engine (TensorRT {trt.__version__})"
                )
            self._engine: Any = engine
            self._context: Any = engine.create_execution_context()
            if self._context is None:
                raise BackendError(f"could not create an execution context for {engine_path} (GPU memory?)")
            self._stream = torch.cuda.Stream(device=self._device)

        inputs: list[TensorSpec] = []
        outputs: list[TensorSpec] = []
        for i in range(engine.num_io_tensors):
            tensor_name = engine.get_tensor_name(i)
            spec = TensorSpec(
                name=tensor_name,
                dtype=self._numpy_dtype(tensor_name),
                shape=tuple(engine.get_tensor_shape(tensor_name)),
            )
            is_input = engine.get_tensor_mode(tensor_name) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(spec)
        self._inputs = tuple(inputs)
        self._outputs = tuple(outputs)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the engine inputs; dynamic dimensions are ``-1``."""
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the engine outputs; dynamic dimensions are ``-1``."""
        return self._outputs

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch on the GPU.

        Args:
            inputs: Input name -> host array matching :attr:`inputs`.

        Returns:
            Output name -> host array, in :attr:`outputs` order.

        Raises:
            BackendError: Invalid inputs, shapes outside the engine's optimisation profile, a
                closed backend, or a TensorRT execution failure.
        """
        if self._context is None:
            raise BackendError(f"backend {self.name!r} is closed")
        check_inputs(self._inputs, inputs)
        torch = self._torch
        context = self._context
        # Device tensors must stay referenced until the stream has finished with them.
        buffers: dict[str, Any] = {}
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            for spec in self._inputs:
                arr = np.require(inputs[spec.name], requirements=["C", "W"])
                if not context.set_input_shape(spec.name, arr.shape):
                    raise BackendError(self._profile_message(spec.name, arr.shape))
                buffers[spec.name] = torch.from_numpy(arr).to(self._device, non_blocking=False)
            for spec in self._outputs:
                shape = tuple(context.get_tensor_shape(spec.name))
                if any(d < 0 for d in shape):
                    raise BackendError(
                        f"engine {self.name!r} output {spec.name!r} has a data-dependent shape {shape}; "
                        "this backend needs output shapes known from the input shapes"
                    )
                torch_dtype = torch.from_numpy(np.empty(0, dtype=spec.dtype)).dtype
                buffers[spec.name] = torch.empty(shape, dtype=torch_dtype, device=self._device)
            for tensor_name, buffer in buffers.items():
                if not context.set_tensor_address(tensor_name, buffer.data_ptr()):
                    raise BackendError(f"engine {self.name!r}: could not bind tensor {tensor_name!r}")
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise BackendError(f"TensorRT execution of engine {self.name!r} failed (see the TensorRT log)")
            results = {spec.name: buffers[spec.name].cpu() for spec in self._outputs}
            self._stream.synchronize()
        return {out_name: t.numpy() for out_name, t in results.items()}

    def close(self) -> None:
        """Free the execution context and engine (context first: it refers to the engine)."""
        self._context = None
        self._engine = None
        self._runtime = None

    def _numpy_dtype(self, tensor_name: str) -> str:
        trt_dtype = self._engine.get_tensor_dtype(tensor_name)
        try:
            return np.dtype(self._trt.nptype(trt_dtype)).name
        except (TypeError, KeyError) as e:  # e.g. bfloat16 or FP8 engine I/O
            raise BackendError(
                f"engine {self.name!r} tensor {tensor_name!r} has type {trt_dtype}, which numpy cannot hold"
            ) from e

    def _profile_message(self, tensor_name: str, shape: tuple[int, ...]) -> str:
        lo, _, hi = self._engine.get_tensor_profile_shape(tensor_name, 0)
        return (
            f"engine {self.name!r}: input {tensor_name!r} shape {shape} is outside the optimisation "
            f"profile (min {tuple(lo)}, max {tuple(hi)}); rebuild the engine for larger batches"
        )
