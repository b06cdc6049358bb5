"""``customs-vision quantize``: an INT8 card is written only behind the accuracy gate, and is verifiable."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import onnx
import pytest

import deploy.quantize as quantize_module
from deploy.quantize import INT8_SUFFIX, resolve_heldout
from deploy.samples import HELDOUT_SEED
from detectors.evaluation import evaluate_detector
from service.cli import main
from tests.deploy.fixtures import make_tiny_detector, pseudo_labelled_heldout, scenes
from vision.modelcard import ModelCard, load_verified

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny detector, a held-out set labelled with its own detections, and calibration images."""
    root = tmp_path_factory.mktemp("quantize")
    card = make_tiny_detector(root / "models")
    heldout = pseudo_labelled_heldout(card, root / "heldout")
    calibration = root / "calibration"
    calibration.mkdir()
    for i, image in enumerate(scenes(32, seed=3)):
        cv2.imwrite(str(calibration / f"{i}.png"), image[:, :, ::-1])
    return {"card": card, "heldout": heldout, "calibration": calibration}


def _quantize(setup: dict[str, Path], out: Path, *extra: str) -> int:
    args = ["quantize", str(setup["card"]), "--heldout", str(setup["heldout"])]
    args += ["--calibration", str(setup["calibration"]), "--out", str(out), *extra]
    return main(args)


def test_writes_a_verified_int8_card_with_its_gate_and_parent(setup: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert _quantize(setup, out, "--margin", "0.2", "--threads", "1") == 0
    assert sorted(p.name for p in out.iterdir()) == ["tiny_detector-int8.json", "tiny_detector-int8.onnx"]
    card, model = load_verified(out / "tiny_detector-int8.json")  # sha256 of the written file
    parent = ModelCard.load(setup["card"])

    assert card.name == parent.name and card.version == parent.version + INT8_SUFFIX
    assert card.spec.class_names == parent.spec.class_names and card.spec.input_size == parent.spec.input_size
    assert card.spec.version == card.version and card.task == "detect"
    assert any(n.op_type == "QLinearConv" for n in onnx.load(str(model)).graph.node)
    assert card.training["precision"] == "int8"
    assert card.training["parent"] | {"card": None} == {
        "name": parent.name,
        "version": parent.version,
        "card": None,
        "file": parent.file,
        "sha256": parent.sha256,
    }
    quantization = card.training["quantization"]
    assert quantization["recipe"] == "cpu-qoperator" and quantization["method"] == "minmax"
    assert quantization["calibration"] == {
        "source": "folder",
        "path": str(setup["calibration"].resolve()),
        "images": 32,
        "batch": 8,
    }

    gate = card.metrics["int8_gate"]
    assert gate["heldout"] == {"source": "given", "path": str(setup["heldout"].resolve()), "split": "val"}
    assert gate["command"].startswith(f"customs-vision quantize {setup['card']} --recipe cpu-qoperator")
    assert gate["margin"] == 0.2 and gate["passed"] and gate["loss"] == pytest.approx(gate["fp32"] - gate["int8"])
    # Both numbers are the shipped files' own: measured again now, through their own cards.
    assert gate["fp32"] == evaluate_detector(setup["card"], setup["heldout"])["map50"] == 1.0
    assert gate["int8"] == evaluate_detector(out / "tiny_detector-int8.json", setup["heldout"])["map50"]
    assert card.metrics["heldout_int8"]["model_sha256"] == card.sha256
    assert card.metrics["heldout_fp32"]["model_sha256"] == parent.sha256
    assert json.loads(capsys.readouterr().out)["gate"]["candidate"] == gate["int8"]


def test_refuses_a_model_that_loses_more_than_the_margin(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    other = make_tiny_detector(tmp_path / "other", seed=5)

    def broken_recipe(onnx_path: Any, out_path: Any, reader: Any, **kwargs: Any) -> Path:
        """A 'quantizer' that writes a different network: it detects other things."""
        shutil.copyfile(ModelCard.load(other).model_path(other), out_path)
        return Path(out_path)

    monkeypatch.setattr(quantize_module, "quantize_int8", broken_recipe)
    out = tmp_path / "out"
    assert _quantize(setup, out) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to write tiny_detector-int8: map50: baseline 1.0000")
    assert "exceeds the margin 0.0100" in err and err.rstrip().endswith("nothing was written")
    assert not out.exists()


def _int8_card(tmp_path: Path, setup: dict[str, Path]) -> Path:
    out = tmp_path / "int8"
    assert _quantize(setup, out, "--margin", "1") == 0
    return out / "tiny_detector-int8.json"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--margin", "-0.01"], "--margin must be >= 0, got -0.01"),
        (["--calibration-count", "0"], "--calibration-count must be >= 1"),
        (["--heldout", "{tmp}/missing"], "held-out data {tmp}/missing is not a folder"),
        (["--calibration", "{tmp}"], "no images"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(
    setup: dict[str, Path], tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    args = [a.format(tmp=tmp_path) for a in args]
    assert _quantize(setup, tmp_path / "out", *args) == 2  # the later option of a repeated one wins
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cards_that_cannot_be_quantized_exit_2(setup: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert main(["quantize", str(tmp_path / "none.json"), "--out", str(tmp_path / "o")]) == 2
    assert "model card not found" in capsys.readouterr().err
    # No generator for a model named tiny_detector: calibration images must be given.
    assert main(["quantize", str(setup["card"]), "--out", str(tmp_path / "o")]) == 2
    assert "no generator for model 'tiny_detector': give --calibration DIR" in capsys.readouterr().err
    int8 = _int8_card(tmp_path, setup)
    assert main(["quantize", str(int8), "--calibration", str(setup["calibration"]), "--out", str(tmp_path / "o")]) == 2
    assert "already an INT8 card" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_heldout_is_given_else_the_cards_own_split_else_generated(setup: dict[str, Path], tmp_path: Path) -> None:
    card = ModelCard.load(setup["card"])
    with resolve_heldout(card, setup["heldout"]) as given:
        assert given.source["source"] == "given" and given.path == setup["heldout"]

    card.metrics["synthetic_val"] = {"path": str(setup["heldout"]), "split": "val", "map50": 0.5}
    with resolve_heldout(card, None) as own:
        assert own.source == {
            "source": "card",
            "path": str(setup["heldout"].resolve()),
            "split": "val",
            "card_block": "synthetic_val",
        }

    card.metrics["synthetic_val"]["path"] = str(tmp_path / "gone")  # the card's set is not on this machine
    xray = replace(card, name="xray", spec=replace(card.spec, name="xray"))  # generators are per served model
    with resolve_heldout(xray, None, count=2) as generated:
        assert generated.source["source"] == "generated" and generated.source["seed"] == HELDOUT_SEED
        assert generated.split == "val" and len(list((generated.path / "labels" / "val").glob("*.txt"))) == 2
        assert "customs-vision synth xray --out DIR --count 2 --seed 7300003" in generated.source["command"]
        folder = generated.path
    assert not folder.exists()


def test_by_default_calibration_and_heldout_data_are_generated_and_recorded(tmp_path: Path) -> None:
    from deploy.samples import CALIBRATION_SEED
    from detectors.xray import XRAY_CLASSES

    card = make_tiny_detector(tmp_path / "models", name="xray", class_names=XRAY_CLASSES)
    argv = ["quantize", str(card), "--calibration-count", "2", "--heldout-count", "2", "--margin", "1"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    written = ModelCard.load(tmp_path / "out" / "xray-int8.json")
    calibration = written.training["quantization"]["calibration"]
    assert calibration["source"] == "generated" and calibration["seed"] == CALIBRATION_SEED
    assert calibration["images"] == 2
    heldout = written.metrics["int8_gate"]["heldout"]
    assert heldout["source"] == "generated" and heldout["seed"] == HELDOUT_SEED and heldout["count"] == 2
    assert heldout["command"].startswith("customs-vision synth xray --out DIR --count 2 --seed 7300003")
    assert "--heldout-count 2" in written.metrics["int8_gate"]["command"]
