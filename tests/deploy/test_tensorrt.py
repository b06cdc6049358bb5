"""The TensorRT engine builder: everything up to the builder call on the CPU, the build on a GPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deploy.tensorrt as trt_builder
from deploy.accuracy import AccuracyGateError, accuracy_gate, enforce
from deploy.precision import (
    CalibrationReader,
    PrecisionError,
    calibration_batches,
    prepare_graph,
    quantization_summary,
)
from deploy.tensorrt import NoGPUError, build_checked_engine, gpu_unavailable_reason, profile_shapes
from detectors.base import YoloDetector
from service.cli import main
from tests.deploy.fixtures import make_tiny_detector, scenes
from vision.letterbox import letterbox, to_nchw
from vision.modelcard import ModelCard
from vision.runtime.onnxruntime import OnnxRuntimeBackend
from vision.types import ModelSpec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
NO_GPU = gpu_unavailable_reason()


@pytest.fixture(scope="module")
def detector_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_detector(tmp_path_factory.mktemp("models"))


# --- profiles and calibration data -----------------------------------------------------------------


@pytest.mark.parametrize(("max_batch", "opt"), [(32, 16), (16, 8), (1, 1), (12, 4)])
def test_profile_covers_batch_1_to_max_at_the_spec_size(max_batch: int, opt: int) -> None:
    spec = ModelSpec(name="xray", version="1", input_size=(416, 480), input_name="images", max_batch=max_batch)
    shapes = profile_shapes(spec)
    assert shapes.input_name == "images"
    assert shapes.min == (1, 3, 416, 480)
    assert shapes.opt == (opt, 3, 416, 480)
    assert shapes.max == (max_batch, 3, 416, 480)
    assert shapes.to_dict()["max"] == [max_batch, 3, 416, 480]


def test_calibration_batches_are_serving_inputs_cut_to_size() -> None:
    spec = ModelSpec(name="xray", version="1", input_size=(64, 64), mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    images = scenes(10, seed=5)
    cut = calibration_batches(images, spec, task="detect", batch_size=4)
    assert [b.shape for b in cut] == [(4, 3, 64, 64), (4, 3, 64, 64), (2, 3, 64, 64)]
    assert all(b.dtype == np.float32 for b in cut)
    expected = to_nchw([letterbox(im, (64, 64), pad_value=114)[0] for im in images], mean=spec.mean, std=spec.std)
    np.testing.assert_array_equal(np.concatenate(cut), expected)


@pytest.mark.parametrize(("images", "batch", "message"), [([], 4, "at least one image"), (scenes(1), 0, ">= 1")])
def test_calibration_batches_reject_bad_requests(images: list, batch: int, message: str) -> None:
    spec = ModelSpec(name="xray", version="1", input_size=(64, 64))
    with pytest.raises(PrecisionError, match=message):
        calibration_batches(images, spec, task="detect", batch_size=batch)


def test_calibration_reader_replays_its_batches() -> None:
    batches = [np.full((2, 3, 8, 8), i, np.float32) for i in range(3)]
    reader = CalibrationReader("images", batches)
    seen = [reader.get_next() for _ in range(4)]
    assert [None if s is None else float(s["images"][0, 0, 0, 0]) for s in seen] == [0.0, 1.0, 2.0, None]
    reader.rewind()
    assert reader.get_next() is not None and len(reader) == 3
    with pytest.raises(PrecisionError):
        CalibrationReader("images", [])


# --- precision conversion (the graph TensorRT would build) -----------------------------------------


def _agreement(card: Path, graph: Path) -> tuple[list[int], list[int]]:
    spec = ModelCard.load(card).spec
    images = scenes(4, seed=11)
    reference = YoloDetector(backend=OnnxRuntimeBackend(path=ModelCard.load(card).model_path(card)), spec=spec)
    converted = YoloDetector(backend=OnnxRuntimeBackend(path=graph), spec=spec)
    return [len(d) for d in reference.detect(images)], [len(d) for d in converted.detect(images)]


def test_int8_graph_is_symmetric_qdq_and_still_detects(detector_card: Path, tmp_path: Path) -> None:
    card = ModelCard.load(detector_card)
    calibration = calibration_batches(scenes(12, seed=21), card.spec, task="detect", batch_size=4)
    graph = prepare_graph(
        card.model_path(detector_card), tmp_path / "int8.onnx", precision="int8", calibration=calibration
    )
    summary = quantization_summary(graph)
    assert summary["quantize_nodes"] >= 3 and summary["dequantize_nodes"] >= summary["quantize_nodes"]
    assert summary["symmetric"], "TensorRT needs zero points of 0"
    reference, quantized = _agreement(detector_card, graph)
    assert sum(quantized) > 0
    assert abs(sum(quantized) - sum(reference)) <= 0.25 * sum(reference)


def test_fp16_graph_keeps_float32_io(detector_card: Path, tmp_path: Path) -> None:
    card = ModelCard.load(detector_card)
    graph = prepare_graph(card.model_path(detector_card), tmp_path / "fp16.onnx", precision="fp16")
    assert quantization_summary(graph)["initializer_float_types"] == ["FLOAT16"]
    backend = OnnxRuntimeBackend(path=graph)
    assert backend.inputs[0].dtype == "float32" and backend.outputs[0].dtype == "float32"
    reference, converted = _agreement(detector_card, graph)
    assert abs(sum(converted) - sum(reference)) <= 0.1 * sum(reference)


def test_int8_needs_calibration_data(detector_card: Path, tmp_path: Path) -> None:
    card = ModelCard.load(detector_card)
    with pytest.raises(PrecisionError, match="calibration"):
        prepare_graph(card.model_path(detector_card), tmp_path / "x.onnx", precision="int8")
    with pytest.raises(PrecisionError, match="unknown precision"):
        prepare_graph(card.model_path(detector_card), tmp_path / "x.onnx", precision="int4")  # type: ignore[arg-type]


# --- the accuracy gate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "baseline", "candidate", "margin", "passed", "loss"),
    [
        ("map50", 0.62, 0.615, 0.01, True, 0.005),
        ("map50", 0.62, 0.60, 0.01, False, 0.02),
        ("map50", 0.62, 0.63, 0.0, True, -0.01),  # better is always fine
        ("map50", 0.62, 0.61, 0.01, True, 0.01),  # exactly the margin passes
        ("eer", 0.040, 0.045, 0.01, True, 0.005),
        ("eer", 0.040, 0.060, 0.01, False, 0.02),  # EER: higher is worse
        ("eer", 0.040, 0.030, 0.0, True, -0.01),
    ],
)
def test_accuracy_gate(
    metric: Any, baseline: float, candidate: float, margin: float, passed: bool, loss: float
) -> None:
    result = accuracy_gate(metric, baseline=baseline, candidate=candidate, margin=margin)
    assert result.passed is passed
    assert result.loss == pytest.approx(loss)
    if passed:
        assert enforce(result) is result
    else:
        with pytest.raises(AccuracyGateError, match=f"refusing to write the engine: {metric}.*exceeds"):
            enforce(result)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "top1", "baseline": 0.5, "candidate": 0.5}, "unknown metric"),
        ({"metric": "map50", "baseline": 0.5, "candidate": 0.5, "margin": -0.1}, "margin"),
        ({"metric": "map50", "baseline": float("nan"), "candidate": 0.5}, "measured nothing"),
    ],
)
def test_accuracy_gate_rejects_bad_input(kwargs: dict, message: str) -> None:
    metric = kwargs.pop("metric")
    with pytest.raises(ValueError, match=message):
        accuracy_gate(metric, **kwargs)


def test_default_margins_apply() -> None:
    assert accuracy_gate("map50", baseline=0.5, candidate=0.495).margin == 0.01
    assert not accuracy_gate("eer", baseline=0.05, candidate=0.07).passed


# --- the build, orchestrated (GPU parts replaced by fakes) -----------------------------------------


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Pretend TensorRT and a GPU exist: the build returns fixed bytes, the gate reads fake numbers."""
    state: dict[str, Any] = {"measured": [], "values": {"onnxruntime": 0.60, "tensorrt": 0.595}}
    monkeypatch.setattr(trt_builder, "require_gpu", lambda: None)
    monkeypatch.setattr(
        trt_builder, "build_engine", lambda graph, spec, **kw: b"engine for " + Path(graph).name.encode()
    )

    def measure(card_path: Path, card: Any, heldout: Path, backend: str, kwargs: dict, **opts: Any) -> float:
        state["measured"].append((backend, kwargs))
        if backend == "tensorrt":
            assert Path(kwargs["engine_path"]).read_bytes().startswith(b"engine for")
        return state["values"][backend]

    monkeypatch.setattr(trt_builder, "_measure", measure)
    return state


def test_engine_is_written_when_the_gate_passes(detector_card: Path, tmp_path: Path, fake_gpu: dict) -> None:
    out = tmp_path / "repo" / "tiny_detector" / "1" / "model.plan"
    result = build_checked_engine(
        detector_card, out, precision="int8", heldout=tmp_path, calibration_images=scenes(6, seed=2)
    )
    assert out.read_bytes() == b"engine for tiny_detector.int8.onnx"
    assert result.gate.passed and result.gate.metric == "map50" and result.calibration_images == 6
    assert [b for b, _ in fake_gpu["measured"]] == ["onnxruntime", "tensorrt"]
    report = json.loads(out.with_name("model.plan.json").read_text())
    assert report["profile"]["max"] == [8, 3, 64, 64] and report["graph"]["symmetric"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.plan", "model.plan.json"]


def test_engine_is_not_written_when_the_gate_fails(detector_card: Path, tmp_path: Path, fake_gpu: dict) -> None:
    fake_gpu["values"]["tensorrt"] = 0.55
    out = tmp_path / "model.plan"
    with pytest.raises(AccuracyGateError, match=r"baseline 0\.6000, candidate 0\.5500"):
        build_checked_engine(detector_card, out, precision="fp16", heldout=tmp_path, margin=0.01)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "temporary files must be removed"


@pytest.mark.skipif(NO_GPU is None, reason="this machine has a GPU and TensorRT")
def test_without_gpu_the_build_stops_first_with_a_plain_message(tmp_path: Path, capsys) -> None:
    with pytest.raises(NoGPUError, match=r"NVIDIA GPU|TensorRT is not installed"):
        build_checked_engine(tmp_path / "missing.json", tmp_path / "m.plan", precision="fp16", heldout=tmp_path)
    assert main(["build-engine", "xray", "--precision", "int8", "--models", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot build a TensorRT engine here:")
    assert "GPU" in err or "TensorRT" in err
    assert not list(tmp_path.iterdir())


def test_dry_run_gates_the_converted_graph_on_the_cpu(detector_card: Path, tmp_path: Path) -> None:
    from tests.detectors.fixtures_yolo import make_synthetic

    # Held-out labels in the tiny detector's 3 classes (the fixture draws ids 0..6, so remap).
    heldout = make_synthetic(tmp_path / "heldout", train=1, val=4, size=64, seed=3)
    for label in (heldout / "labels" / "val").glob("*.txt"):
        lines = [f"{int(line.split()[0]) % 3} {line.split(' ', 1)[1]}" for line in label.read_text().splitlines()]
        label.write_text("\n".join(lines) + "\n")
    result = build_checked_engine(
        detector_card,
        tmp_path / "never.plan",
        precision="int8",
        heldout=heldout,
        calibration_images=scenes(4, seed=8),
        dry_run=True,
        margin=1.0,
    )
    assert result.dry_run and result.engine is None
    assert 0.0 <= result.gate.baseline <= 1.0 and 0.0 <= result.gate.candidate <= 1.0
    assert not (tmp_path / "never.plan").exists()


# --- on a GPU ------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(NO_GPU is not None, reason=f"needs an NVIDIA GPU with TensorRT: {NO_GPU}")
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_engine_builds_and_matches_onnxruntime(detector_card: Path, tmp_path: Path, precision: Any) -> None:
    from vision.runtime.tensorrt import TensorRTBackend

    card = ModelCard.load(detector_card)
    calibration = calibration_batches(scenes(16, seed=21), card.spec, task="detect", batch_size=4)
    graph = prepare_graph(
        card.model_path(detector_card), tmp_path / "g.onnx", precision=precision, calibration=calibration
    )
    engine = tmp_path / "model.plan"
    engine.write_bytes(trt_builder.build_engine(graph, card.spec, workspace_gib=1.0))
    backend = TensorRTBackend(engine_path=engine)
    assert backend.inputs[0].shape == (-1, 3, 64, 64)
    images = scenes(8, seed=12)
    reference = YoloDetector(backend=OnnxRuntimeBackend(path=card.model_path(detector_card)), spec=card.spec)
    candidate = YoloDetector(backend=backend, spec=card.spec)
    counts_ref = sum(len(d) for d in reference.detect(images))
    counts_trt = sum(len(d) for d in candidate.detect(images))
    assert counts_trt > 0 and abs(counts_trt - counts_ref) <= 0.25 * counts_ref
