"""Explicit registry of runtime backends, chosen by name (never by sniffing a file suffix).

Backends register a *factory* (a callable taking keyword arguments and returning an
:class:`InferenceBackend`). Built-in backends are registered by :func:`_register_builtins` the
first time the registry is used; their SDKs (onnxruntime, torch, tensorrt, tritonclient) are only
imported when a backend of that kind is created.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vision.runtime.base import BackendError, InferenceBackend

BackendFactory = Callable[..., InferenceBackend]

_REGISTRY: dict[str, BackendFactory] = {}
_BUILTINS_LOADED = False


def register_backend(name: str, factory: BackendFactory) -> None:
    """Register ``factory`` under ``name``; raises ValueError if the name is taken.

    The built-in names are reserved before anything else is registered, so registering e.g.
    ``"onnxruntime"`` fails here rather than breaking the first :func:`create_backend` later.
    """
    _register_builtins()
    if name in _REGISTRY:
        raise ValueError(f"backend {name!r} is already registered")
    _REGISTRY[name] = factory


def available_backends() -> tuple[str, ...]:
    """Registered backend names, sorted (whether their SDKs are installed is checked on creation)."""
    _register_builtins()
    return tuple(sorted(_REGISTRY))


def create_backend(name: str, **kwargs: Any) -> InferenceBackend:
    """Create a backend by registered name, e.g. ``create_backend("onnxruntime", path=..., threads=2)``."""
    _register_builtins()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**kwargs)


def _register_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True

    # Each factory imports its module lazily so that a missing optional SDK only matters when used.
    def onnxruntime(**kw: Any) -> InferenceBackend:
        from vision.runtime.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(**kw)

    def torch(**kw: Any) -> InferenceBackend:
        from vision.runtime.torch import TorchBackend

        return TorchBackend(**kw)

    def tensorrt(**kw: Any) -> InferenceBackend:
        from vision.runtime.tensorrt import TensorRTBackend

        return TensorRTBackend(**kw)

    def triton(**kw: Any) -> InferenceBackend:
        from vision.runtime.triton import TritonBackend

        return TritonBackend(**kw)

    for name, factory in (
        ("onnxruntime", onnxruntime),
        ("torch", torch),
        ("tensorrt", tensorrt),
        ("triton", triton),
    ):
        register_backend(name, factory)
