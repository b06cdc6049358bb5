"""Liveness/readiness of the service and the CLI's serve wiring."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper

from service.app import create_app
from service.cli import build_parser
from service.settings import Settings
from vision.modelcard import ModelCard, sha256_file
from vision.types import ModelSpec


def _wait_ready(client: TestClient, timeout_s: float = 10.0) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = client.get("/readyz")
        if r.status_code == 200 or (r.json()["missing"] and "still loading" not in r.json()["missing"].values()):
            return r.status_code, r.json()
        if time.monotonic() > deadline:
            return r.status_code, r.json()
        time.sleep(0.05)


def _write_identity_model(models_dir: Path, name: str) -> None:
    """A tiny valid ONNX model (Identity on images) with a matching card."""
    models_dir.mkdir(parents=True, exist_ok=True)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], name, [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, models_dir / f"{name}.onnx")
    spec = ModelSpec(name=name, version="test-1", input_size=(8, 8))
    ModelCard(
        name=name,
        version="test-1",
        task="detect",
        file=f"{name}.onnx",
        sha256=sha256_file(models_dir / f"{name}.onnx"),
        spec=spec,
    ).save(models_dir / f"{name}.json")


def test_healthz_answers_without_models(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", models_dir=tmp_path / "models")
    with TestClient(create_app(settings)) as client:
        r = client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok"}


def test_readyz_503_names_missing_models(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", models_dir=tmp_path / "models", required_models=("xray",))
    with TestClient(create_app(settings)) as client:
        status, body = _wait_ready(client)
    assert status == 503
    assert body["ready"] is False
    assert "model card not found" in body["missing"]["xray"]


def test_readyz_200_once_models_load(tmp_path: Path) -> None:
    _write_identity_model(tmp_path / "models", "xray")
    settings = Settings(data_dir=tmp_path / "var", models_dir=tmp_path / "models", required_models=("xray",))
    with TestClient(create_app(settings)) as client:
        status, body = _wait_ready(client)
    assert status == 200, body
    assert body == {"ready": True, "models": {"xray": "test-1"}, "missing": {}}


def test_readyz_refuses_a_tampered_model(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _write_identity_model(models, "xray")
    with open(models / "xray.onnx", "ab") as f:
        f.write(b"\0")
    settings = Settings(data_dir=tmp_path / "var", models_dir=models, required_models=("xray",))
    with TestClient(create_app(settings)) as client:
        status, body = _wait_ready(client)
    assert status == 503
    assert "sha256" in body["missing"]["xray"]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CV_REQUIRED_MODELS", "xray, document")
    monkeypatch.setenv("CV_PORT", "9001")
    s = Settings()
    assert s.data_dir == tmp_path
    assert s.required_models == ("xray", "document")
    assert s.port == 9001
    assert s.sqlalchemy_url.startswith("sqlite:///") and s.sqlalchemy_url.endswith("customs-vision.db")


def test_cli_lists_serve_and_groups(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "synth", "train", "inspect", "evaluate"):
        assert command in out
    args = parser.parse_args(["serve", "--port", "8123"])
    assert args.port == 8123 and callable(args.func)


def test_model_card_roundtrip(tmp_path: Path) -> None:
    _write_identity_model(tmp_path, "m")
    card = ModelCard.load(tmp_path / "m.json")
    assert card.verify(tmp_path / "m.json") == tmp_path / "m.onnx"
    assert json.loads((tmp_path / "m.json").read_text())["spec"]["input_size"] == [8, 8]
    assert np.array_equal(card.spec.input_size, (8, 8))
