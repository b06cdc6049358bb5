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

Both converted graphs run on ONNX Runtime's CPU provider too, which is what makes everything up to
the builder call testable without a GPU, and gives a CPU estimate of the accuracy cost (the
``--dry-run`` of ``customs-vision build-engine``).
"""

from __future__ import annotations

from collections.abc import Sequence
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
) -> Path:
    """Write an explicitly quantized (Q/DQ) INT8 copy of a float32 graph for TensorRT.

    Args:
        onnx_path: the float32 graph.
        out_path: where the Q/DQ graph goes.
        reader: the calibration batches.
        method: ``"entropy"`` (KL divergence, default), ``"minmax"`` or ``"percentile"`` (99.999).

    Returns:
        ``out_path``.

    Raises:
        PrecisionError: an unknown method.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods: dict[str, Any] = {
        "entropy": CalibrationMethod.Entropy,
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise PrecisionError(f"unknown calibration method {method!r}; expected one of {sorted(methods)}")
    reader.rewind()
    quantize_static(
        str(onnx_path),
        str(out_path),
        reader,  # duck-typed CalibrationDataReader: get_next() and rewind()
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(INT8_OPS),
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=methods[method],
        # Zero points of 0: TensorRT supports symmetric INT8 only.
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    return Path(out_path)


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
