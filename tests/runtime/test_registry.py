"""The explicit backend registry: creation by name, clear errors, no duplicate names, lazy SDKs."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vision.runtime import (
    BackendError,
    InferenceBackend,
    TensorSpec,
    available_backends,
    create_backend,
    register_backend,
    registry,
)
from vision.runtime.onnxruntime import OnnxRuntimeBackend

BUILTINS = ("onnxruntime", "tensorrt", "torch", "triton")


class EchoBackend:
    """A minimal backend returning its input, to register under a test name."""

    name = "echo"
    inputs = (TensorSpec("x", "float32", (-1,)),)
    outputs = (TensorSpec("y", "float32", (-1,)),)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"]}

    def close(self) -> None:
        pass


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register names without leaking them into other tests."""
    available_backends()  # load the built-ins into the real registry first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_builtins_are_available() -> None:
    assert available_backends() == BUILTINS


def test_create_onnxruntime_by_name(tmp_path: Path) -> None:
    path = tmp_path / "scale.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            nn.Flatten(), (torch.zeros(1, 2, 3),), str(path),
            input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    backend = create_backend("onnxruntime", path=path, threads=1)
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.threads == 1
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    np.testing.assert_array_equal(backend.run({"x": x})["y"], x.reshape(2, 6))
    backend.close()


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(
        BackendError, match="unknown backend 'openvino'; available: onnxruntime, tensorrt, torch, triton"
    ):
        create_backend("openvino")


def test_backend_errors_propagate_from_factories(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not found"):
        create_backend("onnxruntime", path=tmp_path / "absent.onnx")


@pytest.mark.usefixtures("isolated_registry")
def test_register_and_create_a_custom_backend() -> None:
    register_backend("echo", EchoBackend)
    assert "echo" in available_backends()
    backend = create_backend("echo")
    assert isinstance(backend, InferenceBackend)
    x = np.ones(3, np.float32)
    np.testing.assert_array_equal(backend.run({"x": x})["y"], x)


@pytest.mark.usefixtures("isolated_registry")
@pytest.mark.parametrize("name", ["echo", *BUILTINS])
def test_duplicate_registration_raises(name: str) -> None:
    if name not in available_backends():
        register_backend(name, EchoBackend)
    with pytest.raises(ValueError, match=f"backend '{name}' is already registered"):
        register_backend(name, EchoBackend)


def test_importing_the_package_imports_no_sdk() -> None:
    # A fresh interpreter: this test process has already imported torch and onnxruntime.
    code = (
        "import sys, vision.runtime, vision.runtime.tensorrt, vision.runtime.triton, vision.runtime.torch, "
        "vision.runtime.onnxruntime; vision.runtime.available_backends(); "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'tensorrt', 'tritonclient') if m in sys.modules))"
    )
    repo_root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo_root)
    assert out.stdout.strip() == "[]"
