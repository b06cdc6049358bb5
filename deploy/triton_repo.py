"""Render the Triton model repository (``triton_models/``) from the models' cards.

Every ``config.pbtxt`` is generated from the model's :class:`~vision.types.ModelSpec` (names,
input size, dtype, largest batch) plus the output dims measured by running the card's ONNX file
once; nothing is copied by hand, so the server's view of a model cannot drift from the exporter's
and the client's. Batch sizes come from :func:`deploy.batching.batch_plan`, the same plan the
TensorRT engine's optimisation profile is built from.

Variants (one repository per variant):

* ``tensorrt``: ``platform: "tensorrt_plan"``, GPU instances. The production repository, committed
  as ``triton_models/``; ``<model>/<version>/model.plan`` is built on the target GPU by
  ``customs-vision build-engine`` (engines are tied to the GPU model and TensorRT version).
* ``onnxruntime``: ``platform: "onnxruntime_onnx"`` with the ONNX file, CPU instances; for NVIDIA's
  container on nodes without a GPU.
* ``python-onnxruntime``: Triton's Python backend running ONNX Runtime
  (:mod:`deploy.triton_python_model`); the only variant the server bundled in ``nvidia-pytriton``
  can serve (it ships no ONNX Runtime backend). Used by the integration tests and CPU benchmarks.

Where pre- and post-processing live: **in the client** (the API), not in the server. The server
serves the bare networks; letterboxing/normalising and YOLO decoding + NMS + mapping back to
original pixels run in the API pods, through the same library code as every other backend
(:class:`detectors.base.YoloDetector`, :class:`similarity.embedder.Embedder`). Why, with what was
measured, is in ``triton_models/README.md``; in short: the GPU nodes are the scarce resource and
the CPU work scales out on stateless API pods; one code path keeps Triton results identical to
the local ONNX Runtime path (tested); a Python-backend ensemble would add an extra process hop and
copies per request on the GPU node for work that costs about a millisecond.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from deploy.batching import batch_plan
from vision.modelcard import ModelCard, load_verified
from vision.runtime.base import TensorSpec
from vision.types import ModelSpec

Variant = Literal["tensorrt", "onnxruntime", "python-onnxruntime"]
VARIANTS: tuple[str, ...] = ("tensorrt", "onnxruntime", "python-onnxruntime")

#: numpy dtype name -> Triton config data type.
NUMPY_TO_CONFIG_DTYPE: dict[str, str] = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}

PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_python_model.py")
#: File each variant's backend loads from ``<model>/<version>/`` (the Python backend loads
#: ``model.py``, which opens ``model.onnx`` beside it).
MODEL_FILENAMES: dict[str, str] = {
    "tensorrt": "model.plan",
    "onnxruntime": "model.onnx",
    "python-onnxruntime": "model.py",
}


class TritonRepoError(ValueError):
    """A model cannot be rendered (unknown variant, unsupported dtype, output not batched)."""


@dataclass(frozen=True)
class ServingOptions:
    """How Triton runs one model; independent of what the model is.

    Attributes:
        instances: model instances per GPU (``KIND_GPU``) or in total (``KIND_CPU``). Two instances
            per GPU let one batch's host-device copies overlap another's compute.
        max_queue_delay_us: longest time the dynamic batcher holds a request to fill a preferred
            batch. About one batch's GPU time: waiting longer adds latency without better batches.
        warmup: run zero-filled batches of size 1 and ``max_batch`` at load, so the first real
            requests do not pay for lazy allocations and kernel selection.
        num_versions: versions kept loaded (``version_policy: latest``); 1 = only the newest; a
            roll-back is removing the newest version folder.
        intra_op_threads: ONNX Runtime threads per instance (CPU variants); 0 = its default.
    """

    instances: int = 1
    max_queue_delay_us: int = 2000
    warmup: bool = True
    num_versions: int = 1
    intra_op_threads: int = 0

    def __post_init__(self) -> None:
        if self.instances < 1 or self.max_queue_delay_us < 0 or self.num_versions < 1 or self.intra_op_threads < 0:
            raise TritonRepoError(f"invalid serving options: {self}")


def output_specs_from_onnx(onnx_path: str | Path, spec: ModelSpec) -> tuple[TensorSpec, ...]:
    """Concrete output shapes of a model, measured by running one zero image at the spec's size.

    ONNX exports with dynamic batch (and, from ultralytics, dynamic height/width) leave output dims
    symbolic; Triton configs and TensorRT engines need them concrete for the served input size.

    Returns:
        One spec per ``spec.output_names`` entry; shapes include the batch dimension (1 here).

    Raises:
        TritonRepoError: an output named by the spec is missing from the graph.
    """
    from vision.runtime.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path=onnx_path, threads=1)
    try:
        h, w = spec.input_size
        probe = np.zeros((1, 3, h, w), dtype=np.dtype(spec.input_dtype))
        outputs = backend.run({spec.input_name: probe})
    finally:
        backend.close()
    missing = [n for n in spec.output_names if n not in outputs]
    if missing:
        raise TritonRepoError(
            f"{onnx_path}: outputs {missing} named by the spec are not in the graph ({sorted(outputs)})"
        )
    return tuple(TensorSpec(n, outputs[n].dtype.name, tuple(outputs[n].shape)) for n in spec.output_names)


def _config_dtype(dtype: str, what: str) -> str:
    try:
        return NUMPY_TO_CONFIG_DTYPE[dtype]
    except KeyError:
        raise TritonRepoError(f"{what} has dtype {dtype}, which the Triton configs here do not support") from None


def _dims(shape: Sequence[int]) -> str:
    return "[ " + ", ".join(str(int(d)) for d in shape) + " ]"


def render_config(
    spec: ModelSpec,
    outputs: Sequence[TensorSpec],
    *,
    variant: Variant = "tensorrt",
    options: ServingOptions | None = None,
) -> str:
    """The ``config.pbtxt`` text of one model.

    Args:
        spec: the model's spec: name, input name/size/dtype, output names, largest batch.
        outputs: output specs with the batch dimension first (:func:`output_specs_from_onnx`).
        variant: see the module docstring.
        options: instances, queue delay, warm-up, version policy.

    Returns:
        Protobuf text format of ``inference.ModelConfig``.

    Raises:
        TritonRepoError: an unknown variant, an unsupported dtype, outputs that do not match the
            spec's names, or an output without a leading batch dimension.
    """
    if variant not in VARIANTS:
        raise TritonRepoError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    options = options or ServingOptions()
    if tuple(o.name for o in outputs) != spec.output_names:
        raise TritonRepoError(f"outputs {[o.name for o in outputs]} do not match the spec's {list(spec.output_names)}")
    plan = batch_plan(spec)
    h, w = spec.input_size
    input_dims = (3, h, w)
    input_type = _config_dtype(spec.input_dtype, f"input {spec.input_name!r}")
    gpu = variant == "tensorrt"

    lines = [
        f"# Rendered by `customs-vision triton-repo --variant {variant}` from the model card of "
        f"{spec.name} {spec.version}.",
        "# Do not edit: change the ModelSpec or deploy/triton_repo.py and render again.",
        f'name: "{spec.name}"',
    ]
    if variant == "tensorrt":
        lines.append('platform: "tensorrt_plan"')
    elif variant == "onnxruntime":
        lines.append('platform: "onnxruntime_onnx"')
    else:
        lines.append('backend: "python"')
    lines += [
        f'default_model_filename: "{MODEL_FILENAMES[variant]}"',
        f"max_batch_size: {plan.max_batch}",
        f"version_policy: {{ latest: {{ num_versions: {options.num_versions} }} }}",
        "input [",
        f'  {{ name: "{spec.input_name}" data_type: {input_type} format: FORMAT_NCHW dims: {_dims(input_dims)} }}',
        "]",
        "output [",
    ]
    rendered_outputs = []
    for out in outputs:
        if len(out.shape) < 2 or out.shape[0] not in (1, -1):
            raise TritonRepoError(f"output {out.name!r} shape {out.shape} has no leading batch dimension")
        dtype = _config_dtype(out.dtype, f"output {out.name!r}")
        rendered_outputs.append(f'  {{ name: "{out.name}" data_type: {dtype} dims: {_dims(out.shape[1:])} }}')
    lines.append(",\n".join(rendered_outputs))
    lines += [
        "]",
        "# Requests from many API pods are merged into these batch sizes (the TensorRT profile's",
        "# opt/max come from the same plan); a lone request waits at most the queue delay.",
        "dynamic_batching {",
        f"  preferred_batch_size: {_dims(plan.preferred)}",
        f"  max_queue_delay_microseconds: {options.max_queue_delay_us}",
        "}",
        # KIND_GPU without a gpus list puts `count` instances on every visible GPU.
        f"instance_group [ {{ count: {options.instances} kind: {'KIND_GPU' if gpu else 'KIND_CPU'} }} ]",
    ]
    if options.warmup:
        warm = []
        for batch in sorted({1, plan.max_batch}):
            warm.append(
                f'  {{ name: "zeros_batch_{batch}" batch_size: {batch} inputs {{ key: "{spec.input_name}" '
                f"value: {{ data_type: {input_type} dims: {_dims(input_dims)} zero_data: true }} }} }}"
            )
        lines += ["model_warmup [", ",\n".join(warm), "]"]
    parameters = [("model_version", spec.version)]
    if variant != "tensorrt" and options.intra_op_threads:
        # Triton's ONNX Runtime backend reads "intra_op_thread_count"; our model.py reads "intra_op_threads".
        key = "intra_op_thread_count" if variant == "onnxruntime" else "intra_op_threads"
        parameters.append((key, str(options.intra_op_threads)))
    lines.append("# The card's version, so an operator can tell which trained model a Triton version is.")
    for key, value in parameters:
        lines.append(f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RenderedModel:
    """One model written into a repository."""

    name: str
    config: Path
    model_file: Path | None


def render_model(
    card_path: str | Path,
    repository: str | Path,
    *,
    variant: Variant = "tensorrt",
    options: ServingOptions | None = None,
    triton_version: int = 1,
) -> RenderedModel:
    """Write ``<repository>/<name>/config.pbtxt`` for one model card, and its model file.

    The card's ONNX file is sha256-verified first. For the ONNX Runtime variants it is copied to
    ``<name>/<triton_version>/model.onnx`` (plus ``model.py`` for the Python backend); for
    ``tensorrt`` only the config is written (the engine is built on the GPU).

    Raises:
        ModelCardError: the card or its model file is missing or changed.
        TritonRepoError: see :func:`render_config`; or ``triton_version < 1``.
    """
    if triton_version < 1:
        raise TritonRepoError(f"Triton model versions are integers >= 1, got {triton_version}")
    card, onnx_path = load_verified(card_path)
    outputs = output_specs_from_onnx(onnx_path, card.spec)
    model_dir = Path(repository) / card.name
    model_dir.mkdir(parents=True, exist_ok=True)
    config = model_dir / "config.pbtxt"
    _write_atomic(config, render_config(card.spec, outputs, variant=variant, options=options))
    model_file: Path | None = None
    if variant != "tensorrt":
        version_dir = model_dir / str(triton_version)
        version_dir.mkdir(parents=True, exist_ok=True)
        model_file = version_dir / "model.onnx"
        shutil.copyfile(onnx_path, model_file)
        if variant == "python-onnxruntime":
            shutil.copyfile(PYTHON_MODEL_SOURCE, version_dir / "model.py")
    return RenderedModel(name=card.name, config=config, model_file=model_file)


def render_repository(
    card_paths: Sequence[str | Path],
    repository: str | Path,
    *,
    variant: Variant = "tensorrt",
    options: ServingOptions | None = None,
    triton_version: int = 1,
) -> list[RenderedModel]:
    """Render every card into one repository; see :func:`render_model`.

    Raises:
        TritonRepoError: two cards name the same model, or no card was given.
    """
    if not card_paths:
        raise TritonRepoError("no model cards to render")
    names = [ModelCard.load(p).name for p in card_paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TritonRepoError(f"several cards name the same model: {duplicates}")
    return [
        render_model(p, repository, variant=variant, options=options, triton_version=triton_version) for p in card_paths
    ]


def model_cards(models_dir: str | Path) -> list[Path]:
    """The model cards in a models folder (``*.json`` that parse as cards), sorted by name."""
    cards = []
    for path in sorted(Path(models_dir).glob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict) and {"name", "spec", "task", "sha256"} <= raw.keys() and not _is_int8_variant(raw):
            cards.append(path)
    return cards


def _is_int8_variant(raw: dict[str, object]) -> bool:
    """An INT8 card of ``customs-vision quantize`` (``<name>-int8.json``): a CPU graph for ONNX Runtime
    that shares its parent's name; Triton serves the parent, whose engines get their own precision."""
    training = raw.get("training")
    return isinstance(training, dict) and training.get("precision") == "int8"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
