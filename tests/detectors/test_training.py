"""End-to-end test of detector training: tiny data -> ultralytics -> ONNX -> card -> evaluation.

One tiny run (64 px images, yolo11n, batch 4) is paused by its time limit after the first batch,
resumed to the end, exported and measured; the tests check the structure of what it produced, not
accuracy. Everything is offline and seeded.
"""

from __future__ import annotations

import json

import pytest

from detectors.datasets import iter_real
from detectors.evaluation import evaluate_detector, record_metrics
from detectors.training import (
    TrainingError,
    check_onnx_graph,
    resumable_checkpoint,
    train_and_package,
    train_detector,
)
from detectors.xray import XRAY_CLASSES
from service.cli import main
from tests.detectors.fixtures_yolo import make_fake_real, make_synthetic
from vision.modelcard import ModelCard, ModelCardError, sha256_file

# Our modules import ultralytics and torch lazily, so skipping after the imports is enough.
pytest.importorskip("ultralytics")
pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.onnx.*")

TINY = {"model_yaml": "yolo11n.yaml", "imgsz": 64, "batch": 4, "workers": 0, "seed": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run paused after its first batch, then resumed to its 2 planned epochs and packaged."""
    base = tmp_path_factory.mktemp("training")
    synth = make_synthetic(base / "synth", train=8, val=4)
    real = make_fake_real(base / "real", count=24)
    common = {"task": "xray", "run_dir": base / "run", "out_dir": base / "models", **TINY, "epochs": 2}
    paused = train_and_package(
        synthetic_dirs=[synth], real_dir=real, time_limit_h=1e-9, evaluate=False, command="first", **common
    )
    paused_card = json.loads(paused.card_path.read_text())
    resumed = train_and_package(resume=True, command="second", **common)
    return {"base": base, "synth": synth, "real": real, "paused": paused, "paused_card": paused_card, "result": resumed}


def test_time_limit_pauses_and_resume_finishes(trained):
    paused, result = trained["paused"], trained["result"]
    assert paused.train.stopped_by_time and not paused.train.finished
    assert paused.train.epochs_completed == 1 and paused.train.epochs_planned == 2
    assert trained["paused_card"]["training"]["status"].startswith("paused")
    assert result.train.finished and result.train.epochs_completed == 2
    assert result.train.sessions == 2
    sessions = [json.loads(line) for line in (result.train.run_dir / "sessions.jsonl").read_text().splitlines()]
    assert [s["outcome"] for s in sessions] == ["time_limit", "finished"]
    assert sessions[1]["start_epoch"] == 1
    # A finished run cannot be resumed; the error says how to train further.
    with pytest.raises(TrainingError, match="--init"):
        resumable_checkpoint(result.train.run_dir)


def test_card_matches_exported_model(trained):
    result = trained["result"]
    card = ModelCard.load(result.card_path)
    assert card.sha256 == sha256_file(result.onnx_path)
    card.verify(result.card_path)
    assert card.name == "xray" and card.task == "detect"
    assert card.spec.input_size == (64, 64)
    assert card.spec.class_names == XRAY_CLASSES
    assert card.spec.input_name == "images"
    info = check_onnx_graph(result.onnx_path, imgsz=64, num_classes=len(XRAY_CLASSES))
    assert info.output_shape[:2] == (2, 4 + len(XRAY_CLASSES))
    assert card.training["export"]["parity"]["max_abs_score"] < 1e-3
    assert card.training["epochs_completed"] == 2 and card.training["architecture"] == "yolo11n.yaml"
    assert card.training["command"] == "second"
    assert card.training["machine"]["cpu_cores"] >= 1
    names = [d["name"] for d in card.data["train"]]
    assert names == ["synthetic", "real"]
    real_test = sum(1 for _ in iter_real(trained["real"], "test"))
    assert {d["name"]: d["images"] for d in card.data["heldout"]} == {"synthetic": 4, "real": real_test}


def test_card_metrics_blocks(trained):
    card = ModelCard.load(trained["result"].card_path)
    assert set(card.metrics) == {"synthetic_val", "real_test"}
    synth, real = card.metrics["synthetic_val"], card.metrics["real_test"]
    assert synth["num_images"] == 4 and synth["num_gt"] == 8 and not synth["class_agnostic"]
    assert set(synth["per_class"]) == set(XRAY_CLASSES)
    assert set(synth["by_concealment"]) == {"easy", "hard", "hidden"}
    assert sum(level["num_gt"] for level in synth["by_concealment"].values()) == 8
    assert real["class_agnostic"] and list(real["per_class"]) == ["object"]
    assert real["num_images"] == sum(1 for _ in iter_real(trained["real"], "test"))
    for block in (synth, real):
        assert block["command"].startswith("customs-vision evaluate xray --model ")
        assert block["model_sha256"] == card.sha256
        assert block["detector"]["conf_threshold"] == 0.001
        assert block["map50"] is None or 0.0 <= block["map50"] <= 1.0


def test_evaluate_cli_rewrites_card(trained, capsys):
    card_path = trained["result"].card_path
    code = main(
        [
            "evaluate",
            "xray",
            "--model",
            str(card_path),
            "--data",
            "real",
            "--real",
            str(trained["real"]),
            "--write-card",
            "--key",
            "real_again",
            "--limit",
            "3",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "class-agnostic" in out and "recorded as metrics['real_again']" in out
    block = ModelCard.load(card_path).metrics["real_again"]
    assert block["num_images"] == 3 and "--limit 3" in block["command"]


def test_evaluate_cli_greyscale_view(trained, capsys):
    card_path = trained["result"].card_path
    args = ["evaluate", "xray", "--model", str(card_path), "--data", "real", "--real", str(trained["real"])]
    assert main([*args, "--greyscale", "--write-card", "--limit", "3"]) == 0
    assert "greyscale (luma)" in capsys.readouterr().out
    block = ModelCard.load(card_path).metrics["real_test_greyscale"]
    assert block["view"] == "greyscale (luma)" and "--greyscale" in block["command"]
    assert ModelCard.load(card_path).metrics["real_test"]["view"] == "as scanned"


def test_as_greyscale_is_the_luma_in_three_channels():
    import numpy as np

    from detectors.evaluation import as_greyscale

    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200  # pure red: luma 0.299 * 200 = 60
    grey = as_greyscale(rgb)
    assert grey.shape == rgb.shape and grey.dtype == np.uint8
    assert (grey == 60).all()


def test_breakdown_needs_metadata_that_matches_the_labels(trained, tmp_path):
    import shutil

    synth = tmp_path / "synth"
    shutil.copytree(trained["synth"], synth)
    lines = (synth / "metadata.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    victim = next(r for r in rows if r["split"] == "val")
    victim["objects"] = victim["objects"][:1]
    (synth / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    block = evaluate_detector(trained["result"].card_path, synth, limit=2)
    # The headline numbers stay; the breakdown says why it is missing instead of being wrong.
    assert block["num_images"] == 2 and block["map50"] is not None
    assert "do not match" in block["by_concealment"]["error"]


def test_evaluation_refuses_a_changed_model(trained, tmp_path):
    src = trained["result"]
    card_path = tmp_path / "xray.json"
    card_path.write_text(src.card_path.read_text())
    onnx_bytes = bytearray(src.onnx_path.read_bytes())
    onnx_bytes[-1] ^= 0xFF
    (tmp_path / "xray.onnx").write_bytes(bytes(onnx_bytes))
    with pytest.raises(ModelCardError, match="changed after it was measured"):
        evaluate_detector(card_path, trained["synth"])
    with pytest.raises(ModelCardError, match="measured on a model"):
        record_metrics(src.card_path, "x", {"model_sha256": "0" * 64})


def test_init_weights_start_a_new_run(trained, tmp_path):
    data_yaml = trained["result"].train.run_dir / "data" / "data.yaml"
    best = trained["result"].train.best
    result = train_detector(
        task="xray", data_yaml=data_yaml, run_dir=tmp_path / "ft", epochs=1, init_weights=best, **TINY
    )
    assert result.finished and result.best.is_file()
    args = json.loads(json.dumps(__import__("torch").load(result.best, weights_only=False)["train_args"], default=str))
    assert args["pretrained"] == str(best)


def test_train_detector_refuses_bad_runs(trained, tmp_path):
    run_dir = trained["result"].train.run_dir
    data_yaml = run_dir / "data" / "data.yaml"
    with pytest.raises(TrainingError, match="already holds a training run"):
        train_detector(task="xray", data_yaml=data_yaml, run_dir=run_dir, **TINY)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train_detector(task="xray", data_yaml=data_yaml, run_dir=tmp_path / "empty", resume=True)
    with pytest.raises(TrainingError, match="multiple of 32"):
        train_detector(task="xray", data_yaml=data_yaml, run_dir=tmp_path / "x", imgsz=100)
    doc_yaml = tmp_path / "doc.yaml"
    doc_yaml.write_text("path: .\ntrain: images\nval: images\nnames: [stamp, signature]\n")
    with pytest.raises(TrainingError, match="names classes"):
        train_detector(task="xray", data_yaml=doc_yaml, run_dir=tmp_path / "z")
    with pytest.raises(TrainingError, match="init weights"):
        train_detector(task="xray", data_yaml=data_yaml, run_dir=tmp_path / "y", init_weights=tmp_path / "no.pt")


def test_train_cli_needs_a_data_source(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("CV_XRAY_REAL_DIR", raising=False)
    synth = make_synthetic(tmp_path / "synth", train=1, val=1)
    assert main(["train", "xray", "--synthetic", str(synth), "--run-dir", str(tmp_path / "r")]) == 2
    assert "--no-real" in capsys.readouterr().out
    assert main(["train", "document", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--synthetic" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("input_name", "message"),
    [("input", "expected one input 'images'"), ("images", r"expected \(2, 11, anchors\)")],
)
def test_onnx_check_rejects_wrong_layout(tmp_path, input_name, message):
    from onnx import TensorProto, helper, save

    from detectors.training import ExportError

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["b", 3, 64, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", [input_name], ["y"])], "g", [x], [y])
    path = tmp_path / "bad.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    with pytest.raises(ExportError, match=message):
        check_onnx_graph(path, imgsz=64, num_classes=7)


def test_hue_jitter_is_ultralytics_hsv_h_and_recorded(monkeypatch, tmp_path, capsys):
    """``--hue-jitter 25`` reaches ultralytics as hsv_h = 25/360 (its hue shift is hsv_h * 360
    degrees) and is part of the command recorded in the card; a nonsense angle stops before any run."""
    import detectors.training
    from service.commands.train import hue_gain

    assert hue_gain(25.0) == pytest.approx(25.0 / 360.0) and hue_gain(0.0) == 0.0
    for bad in (-1.0, 181.0):
        with pytest.raises(ValueError, match="between 0 and 180"):
            hue_gain(bad)

    synth = make_synthetic(tmp_path / "synth", train=1, val=1)
    argv = ["train", "xray", "--no-real", "--synthetic", str(synth), "--run-dir", str(tmp_path / "r")]
    assert main([*argv, "--hue-jitter", "200"]) == 2
    assert "--hue-jitter" in capsys.readouterr().out and not (tmp_path / "r").exists()

    seen = {}

    class StopError(Exception):
        pass

    def capture(**kwargs):
        seen.update(kwargs)
        raise StopError

    monkeypatch.setattr(detectors.training, "train_and_package", capture)
    with pytest.raises(StopError):
        main([*argv, "--hue-jitter", "25"])
    assert seen["extra"] == {"hsv_h": pytest.approx(25.0 / 360.0)}
    assert "--hue-jitter 25.0" in seen["command"]
    seen.clear()
    with pytest.raises(StopError):
        main(argv)
    assert seen["extra"] is None and "--hue-jitter" not in seen["command"]
