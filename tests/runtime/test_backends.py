"""Runtime backends: ONNX Runtime vs PyTorch parity on a tiny exported model, input validation,
load errors, Triton error mapping against an in-process fake KServe-v2 server, and TensorRT
(GPU only; on a CPU machine only its plain "not available here" error is checked)."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from vision.runtime import BackendError, BackendUnavailable, InferenceBackend, TensorSpec
from vision.runtime.onnxruntime import OnnxRuntimeBackend
from vision.runtime.tensorrt import TensorRTBackend
from vision.runtime.torch import TorchBackend
from vision.runtime.triton import (
    NUMPY_TO_TRITON_DTYPE,
    TRITON_TO_NUMPY_DTYPE,
    TritonBackend,
    specs_from_metadata,
    triton_to_numpy_dtype,
)

CHANNELS, SIZE, CLASSES, FEATURES = 3, 16, 5, 8
INPUT_SPECS = (TensorSpec("images", "float32", (-1, CHANNELS, SIZE, SIZE)),)
OUTPUT_NAMES = ("logits", "embedding")


class TinyNet(nn.Module):
    """conv -> relu -> max-pool -> global average pool -> linear; returns (logits, embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(CHANNELS, FEATURES, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(FEATURES, CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.pool(torch.relu(self.conv(x))).mean(dim=(2, 3))
        return self.head(embedding), embedding


class DictNet(TinyNet):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        logits, embedding = super().forward(x)
        return {"embedding": embedding, "logits": logits}


def make_net(cls: type[TinyNet] = TinyNet) -> TinyNet:
    torch.manual_seed(0)
    return cls().eval()


def batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, CHANNELS, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript; for this tiny graph the legacy exporter is the dependable choice.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            make_net(),
            (torch.from_numpy(batch(2)),),
            str(path),
            input_names=["images"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch"} for name in ("images", *OUTPUT_NAMES)},
            opset_version=17,
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def ort_backend(onnx_path: Path) -> Iterator[OnnxRuntimeBackend]:
    backend = OnnxRuntimeBackend(path=onnx_path, threads=1)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def torch_backend() -> Iterator[TorchBackend]:
    backend = TorchBackend(module=make_net(), inputs=INPUT_SPECS, output_names=OUTPUT_NAMES)
    yield backend
    backend.close()


@pytest.fixture(params=["ort", "torch"])
def any_backend(request: pytest.FixtureRequest) -> InferenceBackend:
    return request.getfixturevalue(f"{request.param}_backend")


# --- specs and parity -------------------------------------------------------------------------


def test_onnxruntime_specs_have_names_dtypes_and_dynamic_batch(ort_backend: OnnxRuntimeBackend) -> None:
    assert ort_backend.name == "tiny"
    assert ort_backend.inputs == INPUT_SPECS
    assert ort_backend.outputs == (
        TensorSpec("logits", "float32", (-1, CLASSES)),
        TensorSpec("embedding", "float32", (-1, FEATURES)),
    )
    assert ort_backend.providers == ("CPUExecutionProvider",)


def test_torch_specs_match_the_exported_model(torch_backend: TorchBackend, ort_backend: OnnxRuntimeBackend) -> None:
    assert torch_backend.inputs == ort_backend.inputs
    assert torch_backend.outputs == ort_backend.outputs


def test_backends_satisfy_the_protocol(any_backend: InferenceBackend) -> None:
    assert isinstance(any_backend, InferenceBackend)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_onnxruntime_and_torch_agree(n: int, ort_backend: OnnxRuntimeBackend, torch_backend: TorchBackend) -> None:
    x = batch(n, seed=n)
    got_ort = ort_backend.run({"images": x})
    got_torch = torch_backend.run({"images": x})
    assert list(got_ort) == list(got_torch) == list(OUTPUT_NAMES)
    for name, width in zip(OUTPUT_NAMES, (CLASSES, FEATURES), strict=True):
        assert got_ort[name].shape == got_torch[name].shape == (n, width)
        assert got_ort[name].dtype == got_torch[name].dtype == np.float32
        np.testing.assert_allclose(got_ort[name], got_torch[name], rtol=1e-4, atol=1e-5)
    # Rows are independent: a sample's output does not depend on what else is in the batch.
    alone = ort_backend.run({"images": x[-1:]})
    np.testing.assert_allclose(alone["logits"][0], got_ort["logits"][-1], rtol=1e-5, atol=1e-6)


def test_empty_batch_gives_empty_outputs(any_backend: InferenceBackend) -> None:
    out = any_backend.run({"images": batch(0)})
    assert out["logits"].shape == (0, CLASSES)
    assert out["embedding"].shape == (0, FEATURES)


def test_non_contiguous_and_read_only_inputs_are_accepted(any_backend: InferenceBackend) -> None:
    x = batch(4)
    expected = any_backend.run({"images": x})["logits"]
    strided = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    read_only = x.copy()
    read_only.setflags(write=False)
    for arr in (strided, read_only):
        np.testing.assert_allclose(any_backend.run({"images": arr})["logits"], expected, rtol=1e-6)


# --- input validation -------------------------------------------------------------------------

BAD_INPUTS = [
    pytest.param({"pixels": batch(1)}, r"expects inputs \['images'\], got \['pixels'\]", id="wrong-name"),
    pytest.param({}, r"expects inputs \['images'\], got \[\]", id="missing"),
    pytest.param({"images": batch(1), "extra": batch(1)}, r"got \['extra', 'images'\]", id="extra"),
    pytest.param({"images": batch(1).astype(np.float64)}, r"must be float32, got float64", id="dtype"),
    pytest.param({"images": batch(1)[:, :2]}, r"dim 1 must be 3, got 2", id="channels"),
    pytest.param({"images": batch(1)[0]}, r"must have 4 dims", id="rank"),
    pytest.param({"images": batch(1).tolist()}, r"must be a numpy array, got list", id="not-array"),
]


@pytest.mark.parametrize(("inputs", "message"), BAD_INPUTS)
def test_invalid_inputs_raise_backend_error(
    any_backend: InferenceBackend, inputs: dict[str, Any], message: str
) -> None:
    with pytest.raises(BackendError, match=message):
        any_backend.run(inputs)


# --- ONNX Runtime loading and options ---------------------------------------------------------


def test_onnxruntime_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    with pytest.raises(BackendError, match=f"not found: {path}"):
        OnnxRuntimeBackend(path=path)


def test_onnxruntime_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(BackendError, match=f"could not load ONNX model {path}"):
        OnnxRuntimeBackend(path=path)


def test_onnxruntime_from_bytes_matches_file(onnx_path: Path, ort_backend: OnnxRuntimeBackend) -> None:
    backend = OnnxRuntimeBackend(model_bytes=onnx_path.read_bytes(), name="tiny-bytes")
    x = batch(3, seed=7)
    assert backend.name == "tiny-bytes"
    np.testing.assert_array_equal(backend.run({"images": x})["logits"], ort_backend.run({"images": x})["logits"])
    with pytest.raises(BackendError, match="could not load ONNX model <model bytes>"):
        OnnxRuntimeBackend(model_bytes=b"not an onnx model")


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="neither"),
        pytest.param({"path": "a.onnx", "model_bytes": b"x"}, id="both"),
        pytest.param({"path": "a.onnx", "threads": 0}, id="zero-threads"),
    ],
)
def test_onnxruntime_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OnnxRuntimeBackend(**kwargs)


@pytest.mark.parametrize("threads", [None, 1, 2])
def test_onnxruntime_threads_reach_the_session(onnx_path: Path, threads: int | None) -> None:
    backend = OnnxRuntimeBackend(path=onnx_path, threads=threads)
    assert backend.threads == threads
    options = backend._live_session().get_session_options()
    assert options.inter_op_num_threads == 1


def test_onnxruntime_unavailable_provider(onnx_path: Path) -> None:
    with pytest.raises(BackendError, match=r"NoSuchExecutionProvider.*not available.*CPUExecutionProvider"):
        OnnxRuntimeBackend(path=onnx_path, providers=["NoSuchExecutionProvider"])


def test_closed_backend_refuses_to_run(onnx_path: Path) -> None:
    backends: list[InferenceBackend] = [
        OnnxRuntimeBackend(path=onnx_path),
        TorchBackend(module=make_net(), inputs=INPUT_SPECS, output_names=OUTPUT_NAMES),
    ]
    for backend in backends:
        backend.close()
        with pytest.raises(BackendError, match="is closed"):
            backend.run({"images": batch(1)})


# --- PyTorch specifics -------------------------------------------------------------------------


def test_torch_maps_dict_outputs_by_name(torch_backend: TorchBackend) -> None:
    dict_backend = TorchBackend(module=make_net(DictNet), inputs=INPUT_SPECS, output_names=OUTPUT_NAMES)
    x = batch(2, seed=3)
    got, want = dict_backend.run({"images": x}), torch_backend.run({"images": x})
    assert list(got) == list(OUTPUT_NAMES)
    for name in OUTPUT_NAMES:
        np.testing.assert_array_equal(got[name], want[name])


def test_torch_single_tensor_output() -> None:
    backend = TorchBackend(module=nn.Flatten(), inputs=INPUT_SPECS, output_names=["flat"])
    assert backend.outputs == (TensorSpec("flat", "float32", (-1, CHANNELS * SIZE * SIZE)),)
    x = batch(2)
    np.testing.assert_array_equal(backend.run({"images": x})["flat"], x.reshape(2, -1))


@pytest.mark.parametrize(
    ("module", "output_names", "message"),
    [
        pytest.param(make_net(), ["logits"], "returned 2 outputs, expected 1", id="too-many"),
        pytest.param(make_net(), ["a", "b", "c"], "returned 2 outputs, expected 3", id="too-few"),
        pytest.param(make_net(DictNet), ["logits", "features"], "returned outputs", id="dict-keys"),
    ],
)
def test_torch_output_mismatch_fails_at_construction(module: nn.Module, output_names: list[str], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        TorchBackend(module=module, inputs=INPUT_SPECS, output_names=output_names)


def test_torch_rejects_dynamic_non_batch_dims_and_duplicate_names() -> None:
    spatial = (TensorSpec("images", "float32", (-1, 3, -1, -1)),)
    with pytest.raises(ValueError, match="dynamic non-batch"):
        TorchBackend(module=make_net(), inputs=spatial, output_names=OUTPUT_NAMES)
    with pytest.raises(ValueError, match="duplicate"):
        TorchBackend(module=make_net(), inputs=INPUT_SPECS, output_names=["a", "a"])


def test_torch_module_exception_becomes_backend_error() -> None:
    class Picky(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 1:
                raise RuntimeError("batches above 1 are not supported")
            return x

    # The construction probe uses a batch of 1, so this one loads and fails only on the bigger batch.
    backend = TorchBackend(module=Picky(), inputs=INPUT_SPECS, output_names=["y"], name="picky")
    assert backend.run({"images": batch(1)})["y"].shape == (1, CHANNELS, SIZE, SIZE)
    with pytest.raises(BackendError, match="'picky' failed: batches above 1"):
        backend.run({"images": batch(2)})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_torch_cuda_device_without_gpu() -> None:
    with pytest.raises(BackendError, match="no CUDA GPU"):
        TorchBackend(module=make_net(), inputs=INPUT_SPECS, output_names=OUTPUT_NAMES, device="cuda")


def test_torch_half_returns_float32_close_to_full_precision(torch_backend: TorchBackend) -> None:
    half = TorchBackend(module=make_net(), inputs=INPUT_SPECS, output_names=OUTPUT_NAMES, half=True)
    assert [s.dtype for s in half.outputs] == ["float32", "float32"]
    x = batch(3, seed=11)
    got, want = half.run({"images": x}), torch_backend.run({"images": x})
    for name in OUTPUT_NAMES:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], rtol=1e-2, atol=1e-2)


def test_torchscript_round_trip(tmp_path: Path, torch_backend: TorchBackend) -> None:
    path = tmp_path / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in torch 2.14
        torch.jit.save(torch.jit.trace(make_net(), torch.from_numpy(batch(2))), str(path))
        backend = TorchBackend.from_torchscript(path, INPUT_SPECS, OUTPUT_NAMES)
    assert backend.name == "tiny"
    x = batch(5, seed=5)
    got, want = backend.run({"images": x}), torch_backend.run({"images": x})
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_torchscript_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="TorchScript file not found"):
        TorchBackend.from_torchscript(tmp_path / "absent.pt", INPUT_SPECS, OUTPUT_NAMES)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"definitely not a zip archive")
    with (
        warnings.catch_warnings(action="ignore", category=FutureWarning),
        pytest.raises(BackendError, match=f"could not load TorchScript model {corrupt}"),
    ):
        TorchBackend.from_torchscript(corrupt, INPUT_SPECS, OUTPUT_NAMES)


# --- Triton --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_unreachable_server_is_unavailable_quickly(protocol: str) -> None:
    url = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        TritonBackend(url=url, model_name="xray", protocol=protocol, timeout_s=2.0)  # type: ignore[arg-type]
    assert time.monotonic() - start < 2.0
    assert url in str(info.value) and "'xray'" in str(info.value)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_silent_server_times_out_as_unavailable(protocol: str) -> None:
    # A socket that accepts connections (the kernel's backlog) but never answers: a hung server.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(BackendUnavailable, match=url):
            TritonBackend(url=url, model_name="xray", protocol=protocol, timeout_s=0.3)  # type: ignore[arg-type]
        assert time.monotonic() - start < 3.0


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP32", "float32"), ("FP16", "float16"), ("FP64", "float64"), ("INT64", "int64"),
     ("INT32", "int32"), ("UINT8", "uint8"), ("BOOL", "bool")],
)  # fmt: skip
def test_triton_dtype_mapping(datatype: str, dtype: str) -> None:
    assert triton_to_numpy_dtype(datatype) == dtype
    assert NUMPY_TO_TRITON_DTYPE[dtype] == datatype


def test_triton_dtype_tables_are_inverse_and_numpy_valid() -> None:
    assert len(NUMPY_TO_TRITON_DTYPE) == len(TRITON_TO_NUMPY_DTYPE)
    for datatype, dtype in TRITON_TO_NUMPY_DTYPE.items():
        assert np.dtype(dtype).name == dtype
        assert NUMPY_TO_TRITON_DTYPE[dtype] == datatype


@pytest.mark.parametrize("datatype", ["BF16", "BYTES", "FP8"])
def test_triton_unsupported_dtypes(datatype: str) -> None:
    with pytest.raises(BackendError, match=f"{datatype!r} is not supported"):
        triton_to_numpy_dtype(datatype)


def test_triton_specs_from_http_and_grpc_metadata() -> None:
    http = {
        "name": "xray",
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 3, 640, 640]}],
        "outputs": [{"name": "output0", "datatype": "FP32", "shape": [-1, 84, 8400]}],
    }
    # gRPC metadata rendered as JSON carries int64 dims as strings.
    grpc = json.loads(json.dumps(http).replace("-1, 3, 640, 640", '"-1", "3", "640", "640"'))
    for metadata in (http, grpc):
        inputs, outputs = specs_from_metadata(metadata)
        assert inputs == (TensorSpec("images", "float32", (-1, 3, 640, 640)),)
        assert outputs == (TensorSpec("output0", "float32", (-1, 84, 8400)),)


def test_triton_rejects_url_with_scheme() -> None:
    with pytest.raises(ValueError, match="without a scheme"):
        TritonBackend(url="http://127.0.0.1:8000", model_name="xray")


class FakeTriton(ThreadingHTTPServer):
    """Just enough of the KServe v2 HTTP protocol for model "double": y = 2 * x (FP32 [-1, 4]).

    ``model_ready`` and ``infer_status`` switch the failure modes the backend must classify.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeTritonHandler)
        self.model_ready = True
        self.infer_status = 200

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _FakeTritonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeTriton
    METADATA: ClassVar[dict[str, Any]] = {
        "name": "double",
        "versions": ["1"],
        "platform": "fake",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
    }

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        # One request per connection, so a stopped server is really gone for the client.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/v2/health/ready":
            self._reply(200)
        elif path == "/v2/models/double/ready":
            self._reply(200 if self.server.model_ready else 400)
        elif path == "/v2/models/double":
            self._reply(200, json.dumps(self.METADATA).encode())
        elif path == "/v2/models/double/config":
            self._reply(200, json.dumps({"name": "double", "max_batch_size": 8}).encode())
        else:
            self._reply(400, json.dumps({"error": f"unknown model in {path}"}).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.infer_status != 200:
            error = {"error": f"fake failure {self.server.infer_status}"}
            self._reply(self.server.infer_status, json.dumps(error).encode())
            return
        header_len = int(self.headers.get("Inference-Header-Content-Length", len(body)))
        request = json.loads(body[:header_len])
        (tensor,) = request["inputs"]
        x = np.frombuffer(body[header_len:], dtype=np.float32).reshape(tensor["shape"])
        y = (2 * x).astype(np.float32).tobytes()
        header = json.dumps(
            {
                "model_name": "double",
                "outputs": [
                    {
                        "name": "y",
                        "datatype": "FP32",
                        "shape": list(x.shape),
                        "parameters": {"binary_data_size": len(y)},
                    }
                ],
            }
        ).encode()
        self._reply(200, header + y, {"Inference-Header-Content-Length": str(len(header))})


@pytest.fixture
def fake_triton() -> Iterator[FakeTriton]:
    server = FakeTriton()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_triton_http_round_trip(fake_triton: FakeTriton) -> None:
    backend = TritonBackend(url=fake_triton.url, model_name="double", timeout_s=5.0)
    assert backend.inputs == (TensorSpec("x", "float32", (-1, 4)),)
    assert backend.outputs == (TensorSpec("y", "float32", (-1, 4)),)
    assert backend.max_batch_size == 8
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    out = backend.run({"x": x})
    assert list(out) == ["y"]
    np.testing.assert_array_equal(out["y"], 2 * x)
    with pytest.raises(BackendError, match="batch of 9 exceeds the model's max_batch_size 8"):
        backend.run({"x": np.zeros((9, 4), np.float32)})
    with pytest.raises(BackendError, match="must be float32"):
        backend.run({"x": np.zeros((1, 4), np.float64)})
    backend.close()
    with pytest.raises(BackendError, match="is closed"):
        backend.run({"x": x})


def test_triton_model_not_ready_is_unavailable(fake_triton: FakeTriton) -> None:
    fake_triton.model_ready = False
    with pytest.raises(BackendUnavailable, match=rf"http://{fake_triton.url} model 'double' is not ready"):
        TritonBackend(url=fake_triton.url, model_name="double")


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (500, False), (400, False)])
def test_triton_infer_errors_are_classified(fake_triton: FakeTriton, status: int, retryable: bool) -> None:
    backend = TritonBackend(url=fake_triton.url, model_name="double")
    fake_triton.infer_status = status
    with pytest.raises(BackendError, match=f"fake failure {status}") as info:
        backend.run({"x": np.zeros((1, 4), np.float32)})
    assert isinstance(info.value, BackendUnavailable) is retryable
    backend.close()


def test_triton_server_gone_after_start_is_unavailable(fake_triton: FakeTriton) -> None:
    backend = TritonBackend(url=fake_triton.url, model_name="double", timeout_s=2.0)
    fake_triton.shutdown()
    fake_triton.server_close()
    with pytest.raises(BackendUnavailable, match="double"):
        backend.run({"x": np.zeros((1, 4), np.float32)})
    backend.close()


# --- TensorRT ------------------------------------------------------------------------------------

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(
    HAVE_TENSORRT and torch.cuda.is_available(), reason="checks the error raised without TensorRT or a GPU"
)
def test_tensorrt_without_sdk_or_gpu_says_so(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"TensorRT is not installed|no CUDA GPU found"):
        TensorRTBackend(engine_path=tmp_path / "model.engine")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.skipif(not HAVE_TENSORRT, reason="needs tensorrt (pip install 'customs-vision[gpu]')")
def test_tensorrt_matches_onnxruntime(tmp_path: Path, onnx_path: Path, ort_backend: OnnxRuntimeBackend) -> None:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, CHANNELS, SIZE, SIZE), (4, CHANNELS, SIZE, SIZE), (8, CHANNELS, SIZE, SIZE))
    config = builder.create_builder_config()
    config.add_optimization_profile(profile)
    engine_path = tmp_path / "tiny.engine"
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))

    backend = TensorRTBackend(engine_path=engine_path)
    assert backend.inputs == ort_backend.inputs
    assert backend.outputs == ort_backend.outputs
    for n in (1, 3, 8):
        x = batch(n, seed=n)
        got, want = backend.run({"images": x}), ort_backend.run({"images": x})
        for name in OUTPUT_NAMES:
            # TF32 convolutions on Ampere+ GPUs are slightly less precise than fp32 on the CPU.
            np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-3)
    with pytest.raises(BackendError, match="outside the optimisation profile"):
        backend.run({"images": batch(9)})
    backend.close()
