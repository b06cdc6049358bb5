"""deploy.precision INT8 recipes for CPU runtimes and the detection-head tail they keep in float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.precision import (
    INT8_RECIPES,
    CalibrationReader,
    PrecisionError,
    calibration_batches,
    constants_as_initializers,
    detection_tail,
    quantization_summary,
    quantize_int8,
)
from detectors.base import YoloDetector
from tests.deploy.fixtures import make_tiny_detector, scenes
from vision.modelcard import ModelCard
from vision.runtime.onnxruntime import OnnxRuntimeBackend

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def detector_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_detector(tmp_path_factory.mktemp("models"))


def _conv(name: str, x: str, out: str, channels_in: int, channels_out: int) -> tuple[onnx.NodeProto, onnx.TensorProto]:
    weight = numpy_helper.from_array(np.ones((channels_out, channels_in, 1, 1), np.float32), f"{name}.w")
    return helper.make_node("Conv", [x, weight.name], [out], name=name), weight


def yolo_like_head() -> onnx.ModelProto:
    """backbone conv + SiLU -> box branch (conv, reshape, softmax, DFL conv, sub) and class branch
    (conv, sigmoid) -> concat; an anchor grid derived from the backbone feature's Shape."""
    nodes, weights = [], []
    for conv in (
        _conv("backbone", "images", "f", 3, 4),
        _conv("box_last", "f_act", "box", 4, 4),
        _conv("cls_last", "f_act", "cls", 4, 2),
        _conv("dfl", "box_soft", "dist", 4, 1),
    ):
        nodes.append(conv[0])
        weights.append(conv[1])
    nodes += [
        helper.make_node("Sigmoid", ["f"], ["f_sig"], name="silu_sigmoid"),
        helper.make_node("Mul", ["f", "f_sig"], ["f_act"], name="silu_mul"),
        helper.make_node("Softmax", ["box"], ["box_soft"], name="box_softmax", axis=1),
        helper.make_node("Shape", ["f"], ["f_shape"], name="grid_shape"),
        helper.make_node("Cast", ["f_shape"], ["grid"], name="grid_cast", to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["grid"], ["grid_sum"], name="grid_sum", keepdims=1),
        helper.make_node("Sub", ["dist", "grid_sum"], ["xy"], name="decode_sub"),
        helper.make_node("Sigmoid", ["cls"], ["scores"], name="cls_sigmoid"),
        helper.make_node("Concat", ["xy", "scores"], ["output0"], name="out_concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        initializer=weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def test_detection_tail_is_the_last_convolutions_and_what_follows_them():
    tail = detection_tail(yolo_like_head())
    # Not the backbone conv or its SiLU (reached only through the last convs and a Shape node).
    assert tail == [
        "box_last",
        "cls_last",
        "dfl",
        "box_softmax",
        "grid_shape",
        "grid_cast",
        "grid_sum",
        "decode_sub",
        "cls_sigmoid",
        "out_concat",
    ]


def test_detection_tail_of_a_graph_without_nodes_is_empty():
    graph = helper.make_graph(
        [],
        "empty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
    )
    assert detection_tail(helper.make_model(graph)) == []


def _ops(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.mark.parametrize("recipe", ["cpu-qoperator", "cpu-qdq", "openvino"])
def test_cpu_recipes_quantize_the_body_keep_the_tail_and_still_detect(detector_card: Path, tmp_path: Path, recipe):
    card = ModelCard.load(detector_card)
    source = card.model_path(detector_card)
    calibration = calibration_batches(scenes(8, seed=31), card.spec, task="detect", batch_size=4)
    out = quantize_int8(source, tmp_path / f"{recipe}.onnx", CalibrationReader("images", calibration), recipe=recipe)

    ops = _ops(out)
    summary = quantization_summary(out)
    if INT8_RECIPES[recipe].format == "qoperator":
        assert ops.get("QLinearConv") == 2  # the tiny detector's two body convolutions
    else:
        assert summary["dequantize_nodes"] >= summary["quantize_nodes"] >= 2
    assert summary["symmetric"] == (INT8_RECIPES[recipe].activations == "s8")
    # The head's last convolution is still a float Conv reading float weights.
    tail = detection_tail(onnx.load(str(source)))
    kept = {n.name: n for n in onnx.load(str(out)).graph.node if n.name in tail}
    last_conv = next(n for n in kept.values() if n.op_type == "Conv")
    initializers = {t.name: t for t in onnx.load(str(out)).graph.initializer}
    assert initializers[last_conv.input[1]].data_type == TensorProto.FLOAT

    images = scenes(4, seed=11)
    reference = YoloDetector(backend=OnnxRuntimeBackend(path=source), spec=card.spec).detect(images)
    quantized = YoloDetector(backend=OnnxRuntimeBackend(path=out), spec=card.spec).detect(images)
    found, expected = sum(len(d) for d in quantized), sum(len(d) for d in reference)
    assert found > 0 and abs(found - expected) <= 0.25 * expected


def test_unknown_recipe_is_refused(detector_card: Path, tmp_path: Path):
    card = ModelCard.load(detector_card)
    reader = CalibrationReader("images", calibration_batches(scenes(2, seed=1), card.spec, task="detect"))
    with pytest.raises(PrecisionError, match="unknown INT8 recipe 'int4'"):
        quantize_int8(card.model_path(detector_card), tmp_path / "x.onnx", reader, recipe="int4")


def test_constant_and_identity_biases_become_initializers_and_quantize(tmp_path: Path):
    # An unsimplified export: one conv's bias from a Constant node, another's through an Identity
    # of a shared initializer. QOperator quantization needs both as initializers.
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w2")
    shared = numpy_helper.from_array(np.full(4, 0.1, np.float32), "shared_bias")
    nodes = [
        helper.make_node("Constant", [], ["b1"], value=numpy_helper.from_array(np.full(4, -0.2, np.float32))),
        helper.make_node("Identity", ["shared_bias"], ["b2"]),
        helper.make_node("Conv", ["images", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["output0"], name="relu2"),
    ]
    graph = helper.make_graph(
        nodes,
        "unsimplified",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        initializer=[w1, w2, shared],
    )
    source = tmp_path / "unsimplified.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), source)

    folded = constants_as_initializers(onnx.load(str(source)))
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Relu", "Conv", "Relu"]
    assert {"b1", "b2"} <= {t.name for t in folded.graph.initializer}
    x = rng.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)
    before = ort.InferenceSession(str(source)).run(None, {"images": x})[0]
    after = ort.InferenceSession(folded.SerializeToString()).run(None, {"images": x})[0]
    np.testing.assert_array_equal(before, after)

    calibration = [rng.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32) for _ in range(2)]
    out = quantize_int8(source, tmp_path / "q.onnx", CalibrationReader("images", calibration), recipe="cpu-qoperator")
    assert _ops(out).get("QLinearConv") == 1  # conv2 is the tail's last convolution and stays float
    quantized = ort.InferenceSession(str(out)).run(None, {"images": x})[0]
    assert np.abs(quantized - before).max() < 0.1 * np.abs(before).max()
