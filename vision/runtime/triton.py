"""Triton backend: runs a model on a remote Triton Inference Server over HTTP or gRPC.

``tritonclient`` is imported when a backend is constructed, not when this module is imported.
Every tritonclient client lives on a thread of its own (:class:`_Connection`): the HTTP client runs
on gevent, whose sockets belong to the thread that made them, and the service calls a backend from
whichever worker thread is free.

Errors are split in two: :class:`BackendUnavailable` when the server or model cannot be reached or
is not ready (retryable; the service decides whether and when to retry), :class:`BackendError` for
everything else (bad request, model failure, unsupported model). ``run`` never retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from vision.runtime.base import BackendError, BackendUnavailable, TensorSpec, check_inputs

# Triton (KServe v2) datatype names -> numpy dtype names. BF16 and BYTES have no numeric numpy
# dtype and are not used by this project's models, so they are rejected at construction.
TRITON_TO_NUMPY_DTYPE: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
NUMPY_TO_TRITON_DTYPE: dict[str, str] = {v: k for k, v in TRITON_TO_NUMPY_DTYPE.items()}

# Status strings of tritonclient's InferenceServerException meaning "not reachable right now":
# gRPC status codes, and the HTTP status codes a proxy or a starting/stopping server answers with.
_UNAVAILABLE_STATUSES = frozenset({"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "502", "503", "504"})


def triton_to_numpy_dtype(datatype: str) -> str:
    """Numpy dtype name for a Triton datatype (``"FP32"`` -> ``"float32"``).

    Raises:
        BackendError: The datatype has no numeric numpy equivalent (``BF16``, ``BYTES``) or is unknown.
    """
    try:
        return TRITON_TO_NUMPY_DTYPE[datatype]
    except KeyError:
        raise BackendError(
            f"Triton datatype {datatype!r} is not supported; supported: {sorted(TRITON_TO_NUMPY_DTYPE)}"
        ) from None


def specs_from_metadata(metadata: Mapping[str, Any]) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input and output specs from Triton model metadata.

    Args:
        metadata: The ``GET v2/models/<name>`` JSON (HTTP), or the gRPC response rendered as JSON,
            where int64 dims arrive as strings. For a batching model Triton reports the batch
            dimension as ``-1`` in ``shape``.

    Returns:
        ``(inputs, outputs)`` in the model's order.
    """

    def parse(tensors: Iterable[Mapping[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(
            TensorSpec(
                name=t["name"],
                dtype=triton_to_numpy_dtype(t["datatype"]),
                shape=tuple(int(d) for d in t.get("shape", ())),
            )
            for t in tensors
        )

    return parse(metadata.get("inputs", ())), parse(metadata.get("outputs", ()))


# Passing channel_args replaces tritonclient's defaults, so its message-size limits are repeated.
_GRPC_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class _Connection:
    """A tritonclient client that is made, used and closed on one thread of its own.

    tritonclient's HTTP client runs on gevent: its sockets belong to the thread that made them, and a
    read that has to wait on any other thread fails with ``greenlet.error: Cannot switch to a
    different thread``. The service calls a backend from whichever worker thread is free, so each
    call is handed to this connection's thread and awaited. (gRPC clients are thread-safe and would
    not need it; one path for both protocols is simpler than two, and the hand-off costs microseconds.)

    Args:
        factory: makes the client (called on the connection's thread).
        call_kw: keyword arguments added to every call (the gRPC per-call timeout).
        name: thread name prefix, for debugging.
    """

    def __init__(self, factory: Callable[[], Any], *, call_kw: Mapping[str, Any], name: str) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._call_kw = dict(call_kw)
        try:
            self._client = self._thread.submit(factory).result()
        except BaseException:
            self._thread.shutdown(wait=False)
            raise

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<method>(*args, **kwargs, **call_kw)`` on the connection's thread; its errors propagate."""
        fn = getattr(self._client, method)
        return self._thread.submit(fn, *args, **kwargs, **self._call_kw).result()

    def close(self) -> None:
        """Close the client on its thread, then let the thread end."""
        try:
            self._thread.submit(self._client.close).result()
        finally:
            self._thread.shutdown(wait=False)


class TritonBackend:
    """A model served by a Triton Inference Server.

    Construction checks that the server and the model are ready and reads the model's metadata
    (tensor names, datatypes, dims) and config (``max_batch_size``), so a misconfigured deployment
    fails at start-up with a message naming the URL and model. Afterwards :meth:`check_ready` asks
    the server again (for readiness probes), on a connection of its own.

    Args:
        url: ``host:port`` of the server, without a scheme (HTTP default port 8000, gRPC 8001).
        model_name: Model name in the server's repository.
        model_version: Version to use; ``""`` lets the server choose (its version policy).
        protocol: ``"http"`` or ``"grpc"``.
        timeout_s: Connection and per-request timeout in seconds.
        probe_timeout_s: Timeout of :meth:`check_ready` in seconds; short, because a readiness
            probe that hangs is itself a failure (Kubernetes' default probe timeout is 1 s).
        name: Name used in logs and errors; default ``model_name``.

    Raises:
        ValueError: ``url`` contains a scheme, an unknown protocol, or a timeout ``<= 0``.
        BackendUnavailable: The server cannot be reached, or it or the model is not ready.
        BackendError: tritonclient is not installed, or the model uses an unsupported datatype.
    """

    def __init__(
        self,
        *,
        url: str,
        model_name: str,
        model_version: str = "",
        protocol: Literal["http", "grpc"] = "http",
        timeout_s: float = 10.0,
        probe_timeout_s: float = 1.0,
        name: str | None = None,
    ) -> None:
        if "://" in url:
            raise ValueError(f"Triton url must be host:port without a scheme, got {url!r}")
        if protocol not in ("http", "grpc"):
            raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if probe_timeout_s <= 0:
            raise ValueError(f"probe_timeout_s must be > 0, got {probe_timeout_s}")

        self.name = name or model_name
        self.url = url
        self.model_name = model_name
        self.model_version = model_version
        self.protocol = protocol
        self._timeout_s = float(timeout_s)
        self._probe_timeout_s = float(probe_timeout_s)
        self._where = f"{protocol}://{url} model {model_name!r}" + (
            f" version {model_version!r}" if model_version else ""
        )

        try:
            if protocol == "http":
                import tritonclient.http as client_module
            else:
                import tritonclient.grpc as client_module
        except ImportError as e:
            raise BackendError(
                f"tritonclient[{protocol}] is not installed (pip install 'customs-vision[triton]'): {e}"
            ) from e
        self._lib: Any = client_module
        # The probe's own connection, made on first use, so that a probe never waits behind a batch.
        self._probe: _Connection | None = None
        self._probe_lock = threading.Lock()
        self._client: _Connection | None = self._open(self._timeout_s, role="infer")

        try:
            self._connect(self._client)
        except BaseException:
            self.close()
            raise

    def _open(self, timeout_s: float, *, role: str) -> _Connection:
        """A connection whose every call is bounded by ``timeout_s``."""
        lib, url = self._lib, self.url
        if self.protocol == "http":
            return _Connection(
                lambda: lib.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s),
                call_kw={},
                name=f"triton-{role}-{self.name}",
            )
        # gRPC's default reconnect back-off grows to 120 s, so after a Triton restart the
        # channel would stay "unavailable" long after the server is back; cap it at 2 s.
        return _Connection(
            lambda: lib.InferenceServerClient(url, channel_args=_GRPC_CHANNEL_ARGS),
            call_kw={"client_timeout": timeout_s},
            name=f"triton-{role}-{self.name}",
        )

    def _check_ready(self, connection: _Connection) -> None:
        """Raise :class:`BackendUnavailable` unless the server and the model say they are ready."""
        if not self._call(connection, "is_server_ready"):
            raise BackendUnavailable(f"Triton server {self.protocol}://{self.url} is not ready")
        if not self._call(connection, "is_model_ready", self.model_name, self.model_version):
            raise BackendUnavailable(f"{self._where} is not ready (unknown to the server or still loading)")

    def _connect(self, connection: _Connection) -> None:
        """Readiness checks, then metadata and config; called once from the constructor."""
        self._check_ready(connection)
        json_kw = {"as_json": True} if self.protocol == "grpc" else {}
        metadata = self._call(connection, "get_model_metadata", self.model_name, self.model_version, **json_kw)
        config = self._call(connection, "get_model_config", self.model_name, self.model_version, **json_kw)
        # gRPC wraps the config in {"config": {...}}; HTTP returns it bare.
        config = config.get("config", config)
        self._inputs, self._outputs = specs_from_metadata(metadata)
        if not self._inputs or not self._outputs:
            raise BackendError(f"{self._where}: metadata lists no inputs or no outputs: {metadata}")
        self._max_batch_size = int(config.get("max_batch_size", 0))

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the inputs from the server's metadata (batch dim ``-1`` for a batching model)."""
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Specs of the outputs from the server's metadata."""
        return self._outputs

    @property
    def max_batch_size(self) -> int:
        """``max_batch_size`` from the model config; 0 means the model does not batch."""
        return self._max_batch_size

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Send one batch to the server.

        Args:
            inputs: Input name -> array matching :attr:`inputs`.

        Returns:
            Output name -> array, in :attr:`outputs` order.

        Raises:
            BackendUnavailable: The server cannot be reached, times out or is not ready.
            BackendError: Invalid inputs, a batch above ``max_batch_size``, a closed backend, or
                any other server-side failure.
        """
        client = self._client
        if client is None:
            raise BackendError(f"backend {self.name!r} is closed")
        check_inputs(self._inputs, inputs)
        if self._max_batch_size > 0:
            batch = next(iter(inputs.values())).shape[0]
            if batch > self._max_batch_size:
                raise BackendError(
                    f"{self._where}: batch of {batch} exceeds the model's max_batch_size {self._max_batch_size}"
                )

        infer_inputs = []
        for spec in self._inputs:
            arr = np.ascontiguousarray(inputs[spec.name])
            infer_input = self._lib.InferInput(spec.name, list(arr.shape), NUMPY_TO_TRITON_DTYPE[spec.dtype])
            infer_input.set_data_from_numpy(arr)
            infer_inputs.append(infer_input)
        # Binary outputs: JSON-encoded tensors would be several times larger and slower to parse.
        if self.protocol == "http":
            requested = [self._lib.InferRequestedOutput(s.name, binary_data=True) for s in self._outputs]
        else:
            requested = [self._lib.InferRequestedOutput(s.name) for s in self._outputs]

        result = self._call(
            client, "infer", self.model_name, infer_inputs, model_version=self.model_version, outputs=requested
        )
        out: dict[str, np.ndarray] = {}
        for spec in self._outputs:
            arr = result.as_numpy(spec.name)
            if arr is None:
                raise BackendError(f"{self._where}: response has no output {spec.name!r}")
            out[spec.name] = arr
        return out

    def check_ready(self) -> None:
        """Ask the server, now, whether it and this model are ready; returns if they are.

        Safe to call from any thread while :meth:`run` is in use (it has its own connection).
        Takes at most about twice the ``probe_timeout_s``.

        Raises:
            BackendUnavailable: The server cannot be reached, times out, or it or the model is not ready.
            BackendError: The backend is closed.
        """
        with self._probe_lock:
            if self._client is None:
                raise BackendError(f"backend {self.name!r} is closed")
            if self._probe is None:
                self._probe = self._open(self._probe_timeout_s, role="probe")
            self._check_ready(self._probe)

    def close(self) -> None:
        """Close the connections to the server."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        with self._probe_lock:
            probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()

    def _call(self, connection: _Connection, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a tritonclient method, translating its errors into the backend's error types."""
        from tritonclient.utils import InferenceServerException

        try:
            return connection.call(method, *args, **kwargs)
        except InferenceServerException as e:
            status = str(e.status())
            message = f"{self._where}: {e.message()} (status {status})"
            if status in _UNAVAILABLE_STATUSES:
                raise BackendUnavailable(message) from e
            raise BackendError(message) from e
        except OSError as e:
            # The HTTP client lets socket errors through (connection refused, reset, timed out).
            raise BackendUnavailable(f"{self._where}: cannot reach server: {e}") from e
