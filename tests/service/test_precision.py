"""``CV_PRECISION=int8``: the service serves each model's INT8 card where it has a current one, and says so."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.quantize import HeldoutSet, quantize_card
from detectors.xray import XRAY_CLASSES
from service.models import card_for, load_models
from tests.deploy.fixtures import make_tiny_detector, pseudo_labelled_heldout, scenes
from tests.service.fixtures import png, write_all_models, xray_scan
from vision.modelcard import ModelCard, ModelCardError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ALL = ("xray", "document", "similarity")


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API test models, with a convolutional ``xray`` detector and its INT8 card beside it."""
    root = tmp_path_factory.mktemp("int8")
    models = write_all_models(root / "models")
    card = make_tiny_detector(models, name="xray", class_names=XRAY_CLASSES)
    heldout = pseudo_labelled_heldout(card, root / "heldout")
    quantize_card(
        card,
        models,
        calibration_images=scenes(32, seed=3),
        calibration_source={"source": "test scenes"},
        heldout=HeldoutSet(heldout, "val", {"source": "given", "path": str(heldout)}),
        margin=1.0,  # this test is about serving the card, not about the gate
    )
    return models


def _versions(models: Path) -> dict[str, str]:
    return {name: ModelCard.load(models / f"{name}.json").version for name in ALL}


def test_int8_serves_the_int8_card_where_there_is_one(
    int8_models: Path, start_service: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.models")
    fp32 = _versions(int8_models)
    int8_version = ModelCard.load(int8_models / "xray-int8.json").version
    assert int8_version == fp32["xray"] + "-int8"

    with start_service(models=int8_models, precision="int8", required_models=ALL) as svc:
        ready = svc.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["models"] == {**fp32, "xray": int8_version}
        scan = xray_scan(dark=True, seed=3)
        r = svc.client.post(
            "/v1/xray/inspect", files={"image": ("s.png", png(scan), "image/png")}, headers=svc.auth("scanner")
        )
        assert r.status_code == 200, r.text
        assert r.json()["models"] == {"xray": int8_version}
        served = {n: m.path.name for n, m in svc.client.app.state.models.models.items()}
        assert served == {"xray": "xray-int8.onnx", "document": "document.onnx", "similarity": "similarity.onnx"}
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"loaded model xray {int8_version} from xray-int8.onnx") for m in messages)
    for name in ("document", "similarity"):
        warning = f"model {name}: CV_PRECISION=int8 but there is no {name}-int8.json; serving the float32 model"
        assert warning in messages


def test_fp32_is_the_default_even_beside_an_int8_card(int8_models: Path, start_service: Callable[..., Any]) -> None:
    with start_service(models=int8_models, required_models=ALL) as svc:
        assert svc.client.get("/readyz").json()["models"] == _versions(int8_models)


def test_an_int8_card_of_an_earlier_model_is_not_served(
    int8_models: Path, tmp_path: Path, start_service: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    shutil.copytree(int8_models, models)
    make_tiny_detector(models, name="xray", class_names=XRAY_CLASSES, seed=1)  # retrained, not re-quantized
    with start_service(models=models, precision="int8", required_models=ALL) as svc:
        assert svc.client.get("/readyz").json()["models"] == _versions(models)
    assert any("xray-int8.json was quantized from another xray model" in r.getMessage() for r in caplog.records)


def test_other_backends_serve_the_float32_cards_and_say_so(
    int8_models: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    created: list[dict[str, Any]] = []

    class Remote:
        def close(self) -> None:
            pass

    def create_backend(name: str, **kwargs: Any) -> Remote:
        created.append({"backend": name, **kwargs})
        return Remote()

    monkeypatch.setattr("service.models.create_backend", create_backend)
    pool = load_models(int8_models, ("xray",), backend="triton", backend_kwargs={"url": "h:1"}, precision="int8")
    assert pool.versions() == {"xray": _versions(int8_models)["xray"]}
    assert created == [{"backend": "triton", "url": "h:1", "model_name": "xray"}]
    assert any("CV_PRECISION=int8 is ignored with CV_BACKEND=triton" in r.getMessage() for r in caplog.records)


def test_a_broken_int8_card_is_an_error_not_a_silent_fallback(int8_models: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(int8_models, models)
    assert card_for(models, "xray", precision="int8") == models / "xray-int8.json"
    assert card_for(models, "xray", precision="fp32") == models / "xray.json"
    shutil.copyfile(models / "xray.json", models / "xray-int8.json")  # a float32 card under the INT8 name
    with pytest.raises(ModelCardError, match=r"xray-int8\.json is not an INT8 card"):
        card_for(models, "xray", precision="int8")
    pool = load_models(models, ("xray",), backend="onnxruntime", backend_kwargs={}, precision="int8")
    assert "is not an INT8 card" in pool.errors["xray"] and not pool.models
