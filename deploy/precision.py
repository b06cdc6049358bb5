"""Put the precision of a TensorRT engine into its ONNX graph: fp16 conversion, INT8 Q/DQ.

TensorRT 11 (the ``[gpu]`` extra pins 11.4) builds *strongly typed* networks only: its bindings
document the ``STRONGLY_TYPED`` network flag as "Strongly typed mode is always enabled" and no
longer have the ``FP16``/``INT8`` builder flags or the ``IInt8EntropyCalibrator2`` calibrator
interface (implicit quantization). Each layer runs in the type its ONNX graph gives it, so the
precision is decided here, on the CPU, before the builder sees the graph:

* **fp16**: every float tensor and weight becomes float16 except the graph's inputs and outputs
  (``keep_io_types``), so clients keep sending float32 and the spec does not change. The
  converter is the one shipped inside ``onnxruntime`` (``onnxruntime.transformers.float16``).
* **int8**: *explicit quantization*: QuantizeLinear/DequantizeLinear pairs around the inputs
  and weights of convolutions and matrix products, with scales calibrated on real generated inputs
  (:mod:`deploy.samples`), written by ``onnxruntime.quantization.quantize_static``. TensorRT
  accepts symmetric INT8 only (zero points must be 0): activations and weights are quantized
  symmetrically, weights per output channel. The default calibration is entropy (KL divergence),
  the method of TensorRT's former entropy calibrator; ``minmax`` and ``percentile`` are available.

The TensorRT recipe is a poor fit for ONNX Runtime's *CPU* provider: with Q/DQ around convolutions
only, every SiLU (``Sigmoid`` + ``Mul``) between two convolutions runs in float32 behind a
DequantizeLinear and in front of a QuantizeLinear, and the conversions cost more than the int8
convolutions save. :data:`INT8_RECIPES` therefore also holds CPU recipes (``--int8-recipe`` of
``python -m benchmarks.throughput``). For ONNX Runtime the activations are quantized as well as the
weights, unsigned 8-bit activations with signed per-channel weights (U8S8, the combination its x86
kernels, VNNI included, are written for; signed activations in QLinearConv take a slow path), and
``reduce_range`` off (7-bit weights only help AVX2 machines without VNNI), either as Q/DQ pairs
(``cpu-qdq``) or as fused QLinear* operators (``cpu-qoperator``). OpenVINO is the other way round:
it wants Q/DQ on convolution inputs only and carries INT8 through the activations itself
(``openvino``; unsigned activations there too: symmetric signed ones ran faster on OpenVINO but
lost more held-out mAP50 than the gate's margin on the X-ray model). The CPU recipes keep the
detection head's tail in float32 (:func:`detection_tail`): the last convolutions and the box
decoding after them, where 8 bits of a 0..416 pixel coordinate would be a 1.6-pixel step. Each is
measured by the accuracy gate (:mod:`deploy.accuracy`) like any other.

Both converted graphs run on ONNX Runtime's CPU provider too, which is what makes everything up to
the builder call testable without a GPU, and gives a CPU estimate of the accuracy cost (the
``--dry-run`` of ``customs-vision build-engine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from deploy.samples import batches, preprocess_for
from vision.types import ModelSpec

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
CalibrationMethodName = Literal["entropy", "minmax", "percentile"]
#: Operators whose inputs get Q/DQ nodes: the layers TensorRT runs as INT8 kernels.
INT8_OPS: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
#: Operators the CPU recipes quantize: the convolutions and everything between them (SiLU, residual
#: adds, concatenations, pooling, upsampling), so activations stay 8-bit from one layer to the next.
CPU_INT8_OPS: tuple[str, ...] = (*INT8_OPS, "Mul", "Sigmoid", "Add", "Concat", "Split", "MaxPool", "Resize")


@dataclass(frozen=True)
class Int8Recipe:
    """How :func:`quantize_int8` quantizes a graph (ONNX Runtime's ``quantize_static`` options).

    Attributes:
        format: ``"qdq"`` (QuantizeLinear/DequantizeLinear pairs, which TensorRT and OpenVINO read
            and ONNX Runtime fuses) or ``"qoperator"`` (QLinearConv and friends, ONNX Runtime only).
        activations: ``"s8"`` (symmetric signed) or ``"u8"`` (asymmetric unsigned) activations.
        op_types: operators whose inputs are quantized.
        per_channel: one weight scale per output channel instead of one per tensor.
        reduce_range: 7-bit weights (only useful on x86 without VNNI, where 8-bit products overflow).
        keep_head_fp32: leave :func:`detection_tail` (the head's last convolutions and box decoding)
            in float32.
        purpose: what the recipe is for (written into benchmark notes).
    """

    format: Literal["qdq", "qoperator"]
    activations: Literal["s8", "u8"]
    op_types: tuple[str, ...]
    per_channel: bool = True
    reduce_range: bool = False
    keep_head_fp32: bool = False
    purpose: str = ""


#: Named recipes. ``tensorrt`` is the one :func:`prepare_graph` builds engines from.
INT8_RECIPES: dict[str, Int8Recipe] = {
    "tensorrt": Int8Recipe(
        format="qdq",
        activations="s8",
        op_types=INT8_OPS,
        purpose="TensorRT explicit quantization: symmetric S8S8 Q/DQ on convolution and matmul inputs",
    ),
    "cpu-qdq": Int8Recipe(
        format="qdq",
        activations="u8",
        op_types=CPU_INT8_OPS,
        keep_head_fp32=True,
        purpose="ONNX Runtime / OpenVINO CPU: U8S8 Q/DQ on every layer but the head's tail, per-channel weights",
    ),
    "cpu-qoperator": Int8Recipe(
        format="qoperator",
        activations="u8",
        op_types=CPU_INT8_OPS,
        keep_head_fp32=True,
        purpose="ONNX Runtime CPU: U8S8 QLinear* operators on every layer but the head's tail, per-channel weights",
    ),
    "openvino": Int8Recipe(
        format="qdq",
        activations="u8",
        op_types=INT8_OPS,
        keep_head_fp32=True,
        purpose="OpenVINO CPU: U8S8 Q/DQ on convolution inputs but the head's tail (OpenVINO's "
        "low-precision transformations carry INT8 through the activations themselves)",
    ),
}


class PrecisionError(ValueError):
    """A graph cannot be converted to the requested precision (no calibration data, bad input)."""


def calibration_batches(
    images: Sequence[npt.NDArray[np.uint8]], spec: ModelSpec, *, task: str, batch_size: int = 8
) -> list[npt.NDArray[np.float32]]:
    """Cut calibration images into network-input batches, preprocessed exactly as in serving.

    Args:
        images: ``(H, W, 3)`` uint8 RGB images (crops for the embedder).
        spec: the model's spec.
        task: ``"detect"`` or ``"embed"`` (which preprocessing).
        batch_size: images per batch (the last batch may be smaller).

    Returns:
        ``ceil(len(images) / batch_size)`` arrays ``(b, 3, H, W)`` in the spec's input dtype.

    Raises:
        PrecisionError: no images, or ``batch_size < 1``.
    """
    if not images:
        raise PrecisionError("INT8 calibration needs at least one image")
    if batch_size < 1:
        raise PrecisionError(f"batch_size must be >= 1, got {batch_size}")
    return batches(preprocess_for(task, images, spec), batch_size)


class CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's calibrators (its ``CalibrationDataReader`` API).

    Args:
        input_name: the graph's image input.
        batches: ``(b, 3, H, W)`` arrays, see :func:`calibration_batches`.
    """

    def __init__(self, input_name: str, batches: Sequence[npt.NDArray[np.float32]]) -> None:
        if not batches:
            raise PrecisionError("no calibration batches")
        self.input_name = input_name
        self._batches = list(batches)
        self._next = 0

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        """The next batch as ``{input_name: array}``, or ``None`` when all were given."""
        if self._next >= len(self._batches):
            return None
        batch = self._batches[self._next]
        self._next += 1
        return {self.input_name: batch}

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._next = 0

    def __len__(self) -> int:
        return len(self._batches)


def convert_fp16(onnx_path: str | Path, out_path: str | Path) -> Path:
    """Write a float16 copy of a float32 graph whose inputs and outputs stay float32.

    Raises:
        PrecisionError: the file is not a loadable ONNX model.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = onnx.load(str(onnx_path))
    except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, ValueError) as e:
        raise PrecisionError(f"cannot read ONNX model {onnx_path}: {e}") from e
    converted = convert_float_to_float16(model, keep_io_types=True)
    out = Path(out_path)
    onnx.save(converted, str(out))
    return out


def quantize_int8(
    onnx_path: str | Path,
    out_path: str | Path,
    reader: CalibrationReader,
    *,
    method: CalibrationMethodName = "entropy",
    recipe: str = "tensorrt",
) -> Path:
    """Write a statically quantized INT8 copy of a float32 graph.

    Args:
        onnx_path: the float32 graph.
        out_path: where the quantized graph goes.
        reader: the calibration batches.
        method: ``"entropy"`` (KL divergence, default), ``"minmax"`` or ``"percentile"`` (99.999).
        recipe: a name in :data:`INT8_RECIPES`; ``"tensorrt"`` (default) writes the symmetric Q/DQ
            graph TensorRT needs, the ``cpu-*`` recipes graphs for CPU runtimes.

    Returns:
        ``out_path``.

    Raises:
        PrecisionError: an unknown method or recipe.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods: dict[str, Any] = {
        "entropy": CalibrationMethod.Entropy,
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise PrecisionError(f"unknown calibration method {method!r}; expected one of {sorted(methods)}")
    if recipe not in INT8_RECIPES:
        raise PrecisionError(f"unknown INT8 recipe {recipe!r}; expected one of {sorted(INT8_RECIPES)}")
    how = INT8_RECIPES[recipe]
    model = constants_as_initializers(onnx.load(str(onnx_path)))
    excluded = detection_tail(model) if how.keep_head_fp32 else []
    reader.rewind()
    quantize_static(
        model,
        str(out_path),
        reader,  # duck-typed CalibrationDataReader: get_next() and rewind()
        quant_format=QuantFormat.QDQ if how.format == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=list(how.op_types),
        per_channel=how.per_channel,
        reduce_range=how.reduce_range,
        activation_type=QuantType.QInt8 if how.activations == "s8" else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        calibrate_method=methods[method],
        # Signed activations are symmetric (zero points of 0: TensorRT supports nothing else);
        # unsigned ones use their zero point to cover post-SiLU ranges like [-0.28, 12].
        extra_options={"ActivationSymmetric": how.activations == "s8", "WeightSymmetric": True},
    )
    return Path(out_path)


def constants_as_initializers(model: Any) -> Any:
    """Turn ``Constant`` nodes, and ``Identity`` nodes of initializers, into initializers, in place.

    An export that was not simplified (e.g. ``simplify=False``) feeds convolution biases from
    Constant nodes, or through Identity nodes from a shared initializer (the exporter deduplicates
    equal tensors); the quantizer looks biases up among the initializers only, and its QOperator
    path fails on them. The values and the graph's computation are unchanged.

    Args:
        model: an ``onnx.ModelProto``.

    Returns:
        ``model``.
    """
    from onnx import numpy_helper

    graph = model.graph
    values = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:  # graph order: an Identity's source is known before the Identity
        if node.op_type == "Constant":
            tensor = next((a.t for a in node.attribute if a.name == "value"), None)
        elif node.op_type == "Identity" and node.input[0] in values:
            tensor = values[node.input[0]]
        else:
            tensor = None
        if tensor is None:  # other nodes, and other Constant forms (value_float, sparse_value, ...)
            kept.append(node)
            continue
        initializer = numpy_helper.from_array(numpy_helper.to_array(tensor), node.output[0])
        graph.initializer.append(initializer)
        values[initializer.name] = initializer
    del graph.node[:]
    graph.node.extend(kept)
    return model


def detection_tail(model: Any) -> list[str]:
    """Names of the nodes between a detection head's last learned convolutions and the outputs.

    Walks back from the graph outputs and stops at each convolution it meets, which belongs to the
    tail too (the last convolution of a box or class branch). Two exceptions keep the walk exact
    for YOLO heads: a convolution fed by a Softmax is the distribution-focal-loss expectation (fixed
    weights 0..15, part of box decoding), so the walk goes on through it; and a ``Shape`` node's
    input is not followed, since only its dimensions, not its values, reach the output.

    Args:
        model: an ``onnx.ModelProto``.

    Returns:
        Node names (for ``quantize_static(nodes_to_exclude=...)``), in graph order.
    """
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    tail: set[str] = set()
    stack = [producer[o.name] for o in model.graph.output if o.name in producer]
    while stack:
        node = stack.pop()
        if node.name in tail:
            continue
        tail.add(node.name)
        if node.op_type == "Shape":
            continue
        feeders = [producer[i] for i in node.input if i in producer]
        if node.op_type == "Conv" and not any(f.op_type == "Softmax" for f in feeders):
            continue
        stack.extend(feeders)
    return [n.name for n in nodes if n.name in tail]


def quantization_summary(onnx_path: str | Path) -> dict[str, Any]:
    """Q/DQ node counts, whether every zero point is 0, and the float types present in a graph."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    initializers = {t.name: t for t in model.graph.initializer}
    nodes = model.graph.node
    zero_points_zero = True
    for node in nodes:
        if (
            node.op_type in ("QuantizeLinear", "DequantizeLinear")
            and len(node.input) > 2
            and node.input[2] in initializers
        ):
            zero_points_zero &= bool(np.all(numpy_helper.to_array(initializers[node.input[2]]) == 0))
    float_types = sorted(
        {onnx.TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer if t.data_type in (1, 10, 16)}
    )
    return {
        "quantize_nodes": sum(n.op_type == "QuantizeLinear" for n in nodes),
        "dequantize_nodes": sum(n.op_type == "DequantizeLinear" for n in nodes),
        "symmetric": zero_points_zero,
        "initializer_float_types": float_types,
    }


def prepare_graph(
    onnx_path: str | Path,
    out_path: str | Path,
    *,
    precision: Precision,
    calibration: Sequence[npt.NDArray[np.float32]] = (),
    input_name: str = "images",
    method: CalibrationMethodName = "entropy",
) -> Path:
    """The graph TensorRT builds for a precision: a copy (fp32), fp16-converted, or Q/DQ INT8.

    Raises:
        PrecisionError: an unknown precision, or INT8 without calibration batches.
    """
    if precision == "fp32":
        Path(out_path).write_bytes(Path(onnx_path).read_bytes())
        return Path(out_path)
    if precision == "fp16":
        return convert_fp16(onnx_path, out_path)
    if precision == "int8":
        if not calibration:
            raise PrecisionError("INT8 needs calibration batches (generated data or --calibration DIR)")
        return quantize_int8(onnx_path, out_path, CalibrationReader(input_name, calibration), method=method)
    raise PrecisionError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
