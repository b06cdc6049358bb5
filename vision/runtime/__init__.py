"""Model runtimes behind one protocol: ONNX Runtime, PyTorch, TensorRT and Triton.

Importing this package imports no runtime SDK. Create a backend by name through the registry, or
import its class from its module (``vision.runtime.onnxruntime.OnnxRuntimeBackend`` and so on);
either way the SDK is imported only when the backend is constructed.
"""

from vision.runtime.base import BackendError, BackendUnavailable, InferenceBackend, TensorSpec, check_inputs
from vision.runtime.registry import BackendFactory, available_backends, create_backend, register_backend

__all__ = [
    "BackendError",
    "BackendFactory",
    "BackendUnavailable",
    "InferenceBackend",
    "TensorSpec",
    "available_backends",
    "check_inputs",
    "create_backend",
    "register_backend",
]
