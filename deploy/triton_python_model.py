"""Triton Python-backend model that runs an ONNX file with ONNX Runtime on the CPU.

Copied verbatim to ``<repository>/<model>/<version>/model.py`` by :mod:`deploy.triton_repo` for the
``python-onnxruntime`` variant: the variant the Triton server bundled in ``nvidia-pytriton`` can
serve (it ships only the Python backend), used by the integration tests and CPU benchmarks. On GPU
machines NVIDIA's container serves the ``tensorrt`` variant and this file is not involved.

It runs inside the server's own Python environment (``.triton-venv``: numpy<2, onnxruntime), never
the project's, so it imports nothing from the project. The session is built once in
``initialize``; ``execute`` only moves tensors. Every request of a batch the dynamic batcher formed
arrives together and is run as one ONNX Runtime call, then split back per request.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """One ONNX Runtime session per model instance (Triton starts one stub process per instance)."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        parameters = config.get("parameters", {})
        threads = int(parameters.get("intra_op_threads", {}).get("string_value", "0") or 0)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads > 0:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names}
            for request in requests
        ]
        sizes = [int(next(iter(feed.values())).shape[0]) for feed in feeds]
        merged = {name: np.concatenate([feed[name] for feed in feeds]) for name in self.input_names}
        try:
            results = self.session.run(self.output_names, merged)
        except Exception as e:  # report the failure to every waiting client instead of killing the stub
            error = pb_utils.TritonError(f"ONNX Runtime failed: {e}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        start = 0
        for size in sizes:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(out[start : start + size]))
                for name, out in zip(self.output_names, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
