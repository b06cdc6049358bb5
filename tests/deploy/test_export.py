"""ONNX export with parity checks: nothing is written unless the graph reproduces PyTorch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deploy.export import ExportError, compare_detections, export_detector, export_embedder, export_model
from tests.deploy.fixtures import crops, scenes
from vision.types import Detections, ModelSpec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CLASSES = ("knife", "gun", "gold")


def dets(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    arr = np.array(rows, dtype=np.float32).reshape(-1, 6)
    return Detections(xyxy=arr[:, :4], confidence=arr[:, 4], class_id=arr[:, 5].astype(np.int64), class_names=CLASSES)


# --- comparing detections (pure numpy) -----------------------------------------------------------


def test_identical_and_slightly_shifted_detections_pair_up() -> None:
    ref = [dets([(10, 10, 50, 50, 0.9, 0), (60, 60, 90, 90, 0.5, 2)]), dets([])]
    got = [dets([(60.2, 60, 90, 90, 0.5004, 2), (10, 10, 50.1, 50, 0.9, 0)]), dets([])]
    parity = compare_detections(ref, got, thresholds=0.25, box_atol_px=0.5, score_atol=1e-3)
    assert (parity.images, parity.reference, parity.exported, parity.matched, parity.borderline) == (2, 2, 2, 2, 0)
    assert parity.max_box_px == pytest.approx(0.2, abs=1e-4)
    assert parity.max_confidence == pytest.approx(4e-4, abs=1e-6)


@pytest.mark.parametrize(
    ("got", "message"),
    [
        ([(11, 10, 50, 50, 0.9, 0)], "PyTorch detection class 0"),  # box moved by 1 px
        ([(10, 10, 50, 50, 0.9, 1)], "PyTorch detection class 0"),  # other class
        ([(10, 10, 50, 50, 0.8, 0)], "PyTorch detection class 0"),  # other confidence
        ([(10, 10, 50, 50, 0.9, 0), (0, 0, 5, 5, 0.7, 1)], "ONNX detection class 1"),  # extra box
        ([], "PyTorch detection class 0"),  # missing box
    ],
)
def test_mismatched_detections_are_refused(got: list, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        compare_detections([dets([(10, 10, 50, 50, 0.9, 0)])], [dets(got)], thresholds=0.25)


def test_borderline_detections_are_tolerated() -> None:
    # A box scored exactly at the threshold on one side may fall just below it on the other.
    parity = compare_detections(
        [dets([(10, 10, 50, 50, 0.9, 0), (0, 0, 9, 9, 0.2502, 1)])],
        [dets([(10, 10, 50, 50, 0.9, 0)])],
        thresholds=np.array([0.25, 0.25, 0.25]),
    )
    assert (parity.matched, parity.borderline) == (1, 1)


def test_different_image_counts_are_refused() -> None:
    with pytest.raises(ExportError, match="1 reference images with 0"):
        compare_detections([dets([])], [], thresholds=0.25)


# --- detector export (ultralytics) -----------------------------------------------------------------


def textured(count: int, seed: int = 0) -> list[np.ndarray]:
    """Noisy images: an untrained network gives flat images near-identical scores everywhere, and
    NMS between exact ties is decided by rounding; texture spreads the scores as real scans do."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (72, 96, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def yolo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained YOLO11n checkpoint that behaves like a trained one where parity matters.

    Freshly initialised, its activations vanish layer by layer in eval mode (default BatchNorm
    statistics) and every anchor gets the same score, so NMS would choose between exact ties. A
    few forward passes in train mode set the BatchNorm statistics from textured images, and class
    biases near 0 put the scores on both sides of the threshold.
    """
    pytest.importorskip("ultralytics")
    import torch

    from detectors.training import ultralytics_yolo

    ultralytics_yolo()
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=len(CLASSES), verbose=False)
    layers: Any = model.model
    head = layers[-1]
    for branch in head.cv3:
        torch.nn.init.constant_(branch[-1].bias, -0.5)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the passes below
    batch = torch.from_numpy(np.stack([im.transpose(2, 0, 1) for im in textured(8, seed=99)]) / 255.0).float()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.nn.functional.interpolate(batch, size=(64, 64)))
    model.eval()
    model.names = dict(enumerate(CLASSES))
    path = tmp_path_factory.mktemp("weights") / "best.pt"
    torch.save({"model": model, "train_args": {"imgsz": 64}, "epoch": -1}, path)
    return path


def detector_spec() -> ModelSpec:
    return ModelSpec(name="xray", version="t", input_size=(64, 64), class_names=CLASSES, pad_value=114)


def test_detector_export_checks_outputs_and_detections(yolo_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "xray.onnx"
    report = export_model(task="detect", weights=yolo_weights, out_path=out, samples=textured(3), spec=detector_spec())
    assert out.is_file() and report.path == out
    assert report.opset == 18 and report.samples == 3
    checks = report.checks
    assert checks["graph"]["head"] == "anchor_free"
    assert checks["raw_outputs"]["max_abs_box_px"] <= 0.05
    det = checks["detections"]
    assert det["reference_detections"] > 0, "the check must compare real detections"
    assert det["matched"] + det["borderline"] == det["reference_detections"]
    json.dumps(report.to_dict())
    assert not list(out.parent.glob(".export-*")), "the temporary folder must be cleaned up"


def _perturbing(real: Any) -> Any:
    """Wrap an exporter so that the graph it writes has one bias of its last Conv changed."""

    def export(*args: Any, **kwargs: Any) -> Any:
        import onnx
        from onnx import numpy_helper

        result = real(*args, **kwargs)
        path = Path(args[1])
        model = onnx.load(str(path))
        initializers = {t.name: t for t in model.graph.initializer}
        conv = [n for n in model.graph.node if n.op_type == "Conv" and len(n.input) > 2 and n.input[2] in initializers]
        bias = initializers[conv[-1].input[2]]
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 0.5, bias.name))
        onnx.save(model, str(path))
        return result

    return export


def test_detector_export_refuses_to_write_on_mismatch(
    yolo_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import detectors.training

    monkeypatch.setattr(detectors.training, "export_onnx", _perturbing(detectors.training.export_onnx))
    out = tmp_path / "xray.onnx"
    out.write_bytes(b"previous model")
    with pytest.raises(ExportError, match="differ"):
        export_detector(yolo_weights, out, spec=detector_spec(), images=textured(2))
    assert out.read_bytes() == b"previous model", "a failed export must leave the old file alone"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xray.onnx"]


@pytest.mark.parametrize(
    ("spec", "images", "message"),
    [
        (ModelSpec(name="xray", version="t", input_size=(64, 96), class_names=CLASSES), scenes(1), "square"),
        (detector_spec(), [], "at least one image"),
    ],
)
def test_detector_export_rejects_bad_requests(spec: ModelSpec, images: list, message: str, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=message):
        export_detector(tmp_path / "missing.pt", tmp_path / "x.onnx", spec=spec, images=images)
    assert not (tmp_path / "x.onnx").exists()


# --- embedder export ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint in the layout similarity.training writes."""
    import torch

    from similarity.model import EmbeddingNet

    torch.manual_seed(0)
    model = EmbeddingNet(embedding_dim=16, width=4)
    spec = ModelSpec(
        name="similarity",
        version="t",
        input_size=(32, 64),
        output_names=("embeddings",),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        pad_value=255,
    )
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    torch.save({"model": model.state_dict(), "config": model.config(), "spec": spec.to_dict()}, path)
    return path


def test_embedder_export_checks_real_crops(embedder_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "similarity.onnx"
    report = export_model(task="embed", weights=embedder_checkpoint, out_path=out, samples=crops(5))
    assert out.is_file() and report.model == "similarity" and report.opset == 17
    assert report.checks["real_crops"]["max_abs_diff"] <= 1e-4
    assert report.checks["random_inputs"]["batch_sizes"] == [1, 3]


def test_embedder_export_refuses_to_write_on_mismatch(
    embedder_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import similarity.model

    monkeypatch.setattr(similarity.model, "export_onnx", _perturbing(similarity.model.export_onnx))
    out = tmp_path / "similarity.onnx"
    with pytest.raises(ExportError, match="real crops differ"):
        export_embedder(embedder_checkpoint, out, crops=crops(3))
    assert not out.exists()


def test_export_model_rejects_unknown_tasks_and_missing_specs(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown task"):
        export_model(task="segment", weights=tmp_path / "w", out_path=tmp_path / "o", samples=[])  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="needs its ModelSpec"):
        export_model(task="detect", weights=tmp_path / "w", out_path=tmp_path / "o", samples=[])
    with pytest.raises(ExportError, match="does not exist"):
        export_embedder(tmp_path / "missing.pt", tmp_path / "o.onnx", crops=crops(1))


def test_export_cli_writes_model_and_report(embedder_checkpoint: Path, tmp_path: Path, capsys) -> None:
    from service.cli import main
    from vision.imageio import encode_png

    samples = tmp_path / "samples"
    samples.mkdir()
    for i, crop in enumerate(crops(3)):
        (samples / f"{i}.png").write_bytes(encode_png(crop))
    out = tmp_path / "out"
    args = ["export", "similarity", "--weights", str(embedder_checkpoint), "--samples", str(samples), "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "similarity.export.json").read_text())
    assert report["samples"] == 3 and (out / "similarity.onnx").is_file()
    assert json.loads(capsys.readouterr().out)["sha256"] == report["sha256"]
    assert main(["export", "xray", "--weights", "w.pt", "--card", str(tmp_path / "none.json")]) == 2
