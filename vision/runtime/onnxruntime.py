"""ONNX Runtime backend: the embedded default, running ``.onnx`` models in-process on the CPU.

``onnxruntime`` is imported when a backend is constructed, not when this module is imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vision.runtime.base import BackendError, TensorSpec, check_inputs

if TYPE_CHECKING:
    import onnxruntime

# ONNX Runtime reports tensor types as strings; these are the ones a numpy array can carry.
# bfloat16 and string tensors have no plain numpy dtype and are rejected at load time.
ORT_TO_NUMPY_DTYPE: dict[str, str] = {
    "tensor(bool)": "bool",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(float16)": "float16",
    "tensor(float)": "float32",
    "tensor(double)": "float64",
}


class OnnxRuntimeBackend:
    """Runs one ONNX model with an ``onnxruntime.InferenceSession``.

    The session uses full graph optimisation, one inter-op thread (the service runs one batch at a
    time, so parallelism comes from intra-op threads) and the CPU provider unless told otherwise.

    Args:
        path: ``.onnx`` file to load. Exactly one of ``path`` and ``model_bytes`` must be given.
        model_bytes: Serialized ONNX model, as an alternative to ``path``.
        threads: Intra-op threads (>= 1); ``None`` leaves ONNX Runtime's default (one per core).
        providers: Execution providers in priority order, e.g.
            ``("CUDAExecutionProvider", "CPUExecutionProvider")``; default CPU only. Every one must
            be available in the installed onnxruntime build.
        name: Name used in logs and errors; default the file stem (``"onnxruntime"`` for bytes).

    Raises:
        ValueError: Both or neither of ``path``/``model_bytes``, or ``threads < 1``.
        BackendError: The file is missing or not a loadable model, a provider is unavailable, or
            the model has an input/output type numpy cannot represent.
    """

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        model_bytes: bytes | None = None,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        if (path is None) == (model_bytes is None):
            raise ValueError("give exactly one of path= or model_bytes=")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")

        import onnxruntime as ort

        model: str | bytes
        if path is not None:
            model = source = str(path)
            self.name = name or Path(path).stem
            if not Path(path).is_file():
                raise BackendError(f"ONNX model file not found: {source}")
        else:
            model, source = model_bytes or b"", "<model bytes>"
            self.name = name or "onnxruntime"

        wanted = tuple(providers) if providers is not None else ("CPUExecutionProvider",)
        missing = [p for p in wanted if p not in ort.get_available_providers()]
        if missing:
            raise BackendError(
                f"ONNX Runtime providers {missing} are not available in this onnxruntime build "
                f"(available: {ort.get_available_providers()})"
            )

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads

        try:
            session = ort.InferenceSession(model, sess_options=options, providers=list(wanted))
        except Exception as e:  # ORT raises several pybind exception types for one cause
            raise BackendError(f"could not load ONNX model {source}: {e}") from e

        self._session: onnxruntime.InferenceSession | None = session
        self._inputs = tuple(_spec(arg, source) for arg in session.get_inputs())
        self._outputs = tuple(_spec(arg, source) for arg in session.get_outputs())
        self._output_names = [s.name for s in self._outputs]

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the model inputs in graph order; dynamic dimensions are ``-1``."""
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the model outputs in graph order; dynamic dimensions are ``-1``."""
        return self._outputs

    @property
    def providers(self) -> tuple[str, ...]:
        """Execution providers the session actually uses, in priority order."""
        return tuple(self._live_session().get_providers())

    @property
    def threads(self) -> int | None:
        """Intra-op thread count the session was created with; ``None`` for ONNX Runtime's default."""
        n = int(self._live_session().get_session_options().intra_op_num_threads)
        return n if n > 0 else None

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch.

        Args:
            inputs: Input name -> array matching :attr:`inputs` (dtype exact, static dims exact).

        Returns:
            Output name -> array, in :attr:`outputs` order.

        Raises:
            BackendError: Invalid inputs, a closed backend, or an ONNX Runtime failure.
        """
        session = self._live_session()
        check_inputs(self._inputs, inputs)
        feed = {name: np.ascontiguousarray(arr) for name, arr in inputs.items()}
        try:
            results = session.run(self._output_names, feed)
        except Exception as e:
            raise BackendError(f"ONNX Runtime failed on model {self.name!r}: {e}") from e
        return dict(zip(self._output_names, results, strict=True))

    def close(self) -> None:
        """Drop the session (its memory is freed once no batch holds a reference)."""
        self._session = None

    def _live_session(self) -> onnxruntime.InferenceSession:
        if self._session is None:
            raise BackendError(f"backend {self.name!r} is closed")
        return self._session


def _spec(arg: Any, source: str) -> TensorSpec:
    """TensorSpec from an ``onnxruntime.NodeArg``; symbolic or unknown dims become ``-1``."""
    dtype = ORT_TO_NUMPY_DTYPE.get(arg.type)
    if dtype is None:
        raise BackendError(f"ONNX model {source}: tensor {arg.name!r} has unsupported type {arg.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(name=arg.name, dtype=dtype, shape=shape)
