"""Models loading, missing, unusable, down or overloaded -> 503 with Retry-After (never a crash);
a backend down at start-up is retried until it comes up; concurrent requests are micro-batched,
results go back to the right caller, the event loop stays free."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import service.app as app_module
import service.models as models_module
from service.app import create_app
from service.batching import MicroBatcher
from service.models import SerialRunner, retry_delays
from service.settings import Settings
from tests.service.conftest import AsyncService, Service, async_service, wait_until_loaded
from tests.service.fixtures import document_page, png, scribble, xray_scan
from vision.runtime.base import BackendError, BackendUnavailable


def _xray(client: Any, headers: dict[str, str], *, dark: bool = True, seed: int = 0) -> Any:
    return client.post(
        "/v1/xray/inspect",
        files={"image": ("x.png", png(xray_scan(dark=dark, seed=seed)), "image/png")},
        headers=headers,
    )


def _assert_503(r: Any, *words: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    assert r.json()["error"] in ("model_unavailable", "overloaded")
    for word in words:
        assert word in r.json()["detail"], r.json()


def test_a_missing_model_is_503_and_the_others_still_serve(
    tmp_path: Path, models_dir: Path, start_service: Any
) -> None:
    partial = tmp_path / "partial-models"
    partial.mkdir()
    for name in ("document", "similarity"):
        for suffix in (".json", ".onnx"):
            shutil.copy(models_dir / f"{name}{suffix}", partial / f"{name}{suffix}")
    with start_service(models=partial) as svc:
        before = svc.counts()
        _assert_503(_xray(svc.client, svc.auth("scanner")), "'xray'", "model card not found")
        assert svc.counts() == before
        assert svc.client.get("/readyz").status_code == 503
        r = svc.client.post(
            "/v1/documents/inspect",
            files={"image": ("d.png", png(document_page()), "image/png")},
            headers=svc.auth("scanner"),
        )
        assert r.status_code == 200, r.text


def test_a_similarity_card_without_calibration_disables_matching_only(
    tmp_path: Path, models_dir: Path, start_service: Any
) -> None:
    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    card = json.loads((models / "similarity.json").read_text())
    card["metrics"] = {}
    (models / "similarity.json").write_text(json.dumps(card))
    with start_service(models=models) as svc:
        upload = {"image": ("s.png", png(scribble(seed=1)), "image/png")}
        _assert_503(
            svc.client.post(
                "/v1/specimens", files=upload, data={"kind": "stamp", "owner": "o"}, headers=svc.auth("admin")
            ),
            "'similarity'",
            "calibration",
        )
        _assert_503(svc.client.get("/v1/specimens", headers=svc.auth("clerk")), "'similarity'")
        _assert_503(svc.client.post("/v1/documents/inspect", files=upload, headers=svc.auth("scanner")), "'similarity'")
        assert _xray(svc.client, svc.auth("scanner")).status_code == 200


def test_requests_while_models_load_get_503_then_succeed(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real_load = app_module.load_models

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        gate.wait(10)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(app_module, "load_models", slow_load)
    settings = Settings(data_dir=tmp_path / "var", models_dir=models_dir, threads=1)
    try:
        with TestClient(create_app(settings)) as client:
            from service.security import create_api_key

            key, _ = create_api_key(client.app.state.engine, role="scanner")  # type: ignore[attr-defined]
            headers = {"Authorization": f"Bearer {key}"}
            _assert_503(_xray(client, headers), "still loading")
            assert client.get("/readyz").json()["missing"]["xray"] == "still loading"
            # Who the key is needs no model: the clerk page can log in while the models load.
            assert client.get("/v1/whoami", headers=headers).json()["role"] == "scanner"
            assert client.get("/healthz").status_code == 200
            gate.set()
            wait_until_loaded(client)
            assert _xray(client, headers).status_code == 200
            assert client.get("/readyz").status_code == 200
    finally:
        gate.set()


def _eventually(ok: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_retry_delays_double_up_to_the_cap() -> None:
    delays = retry_delays(30.0)
    assert [next(delays) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    short = retry_delays(0.05)
    assert [next(short) for _ in range(3)] == [0.05, 0.05, 0.05]


def test_a_backend_down_at_start_up_is_retried_and_its_models_join_the_running_service(
    tmp_path: Path, models_dir: Path, start_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No document card: that failure is final and never retried, whatever the backend does.
    models = tmp_path / "models"
    models.mkdir()
    for name in ("xray", "similarity"):
        for suffix in (".json", ".onnx"):
            shutil.copy(models_dir / f"{name}{suffix}", models / f"{name}{suffix}")
    real_create = models_module.create_backend
    up = threading.Event()
    tried: list[str] = []

    def flaky(backend: str, **kwargs: Any) -> Any:
        tried.append(Path(kwargs["path"]).stem)
        if not up.is_set():
            raise BackendUnavailable("the server at 10.0.0.5:8001 is not answering")
        return real_create(backend, **kwargs)

    monkeypatch.setattr(models_module, "create_backend", flaky)
    with start_service(models=models, model_retry_max_s=0.05) as svc:
        ready = svc.client.get("/readyz")
        assert ready.status_code == 503
        missing = ready.json()["missing"]
        waiting = "waiting for the onnxruntime backend (retrying): the server at 10.0.0.5:8001 is not answering"
        assert missing["xray"] == missing["similarity"] == waiting
        assert "model card not found" in missing["document"]
        before = svc.counts()
        _assert_503(_xray(svc.client, svc.auth("scanner")), "'xray'", "waiting for", "(retrying)")
        _assert_503(svc.client.get("/v1/specimens", headers=svc.auth("clerk")), "'similarity'", "(retrying)")
        assert svc.counts() == before
        assert svc.client.get("/healthz").status_code == 200
        assert _eventually(lambda: tried.count("xray") >= 3), "the unavailable models are not retried"

        up.set()  # the same app, not restarted
        assert _eventually(lambda: svc.client.get("/readyz").json()["missing"].keys() == {"document"})
        assert _xray(svc.client, svc.auth("scanner")).status_code == 200
        r = svc.client.get("/v1/specimens", headers=svc.auth("clerk"))
        assert r.status_code == 200, r.text
        r = svc.client.post(
            "/v1/documents/inspect",
            files={"image": ("d.png", png(document_page()), "image/png")},
            headers=svc.auth("scanner"),
        )
        _assert_503(r, "'document'", "model card not found")
        assert svc.client.get("/readyz").json()["models"].keys() == {"xray", "similarity"}
        attempts = len(tried)
        time.sleep(0.3)  # six retry periods: nothing is pending any more, so nothing is tried
        assert len(tried) == attempts and "document" not in tried


def test_shutdown_cancels_the_retrying_and_closes_what_an_attempt_connected(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = models_module.create_backend
    in_attempt, release = threading.Event(), threading.Event()
    tried: list[str] = []
    closed: list[str] = []

    def flaky(backend: str, **kwargs: Any) -> Any:
        name = Path(kwargs["path"]).stem
        tried.append(name)
        if len(tried) <= 2:  # both models at start-up
            raise BackendUnavailable("not up yet")
        in_attempt.set()  # the first retry hangs in its first model until shutdown has begun
        release.wait(10)
        made = real_create(backend, **kwargs)
        real_close = made.close

        def close() -> None:
            closed.append(name)
            real_close()

        made.close = close  # type: ignore[method-assign]
        return made

    real_close_connected = app_module._close_connected

    async def after_stop(*args: Any) -> None:
        release.set()  # called once the attempt has been told to stop
        await real_close_connected(*args)

    monkeypatch.setattr(models_module, "create_backend", flaky)
    monkeypatch.setattr(app_module, "_close_connected", after_stop)
    settings = Settings(
        data_dir=tmp_path / "var",
        models_dir=models_dir,
        threads=1,
        required_models=("xray", "similarity"),
        model_retry_max_s=0.05,
    )
    try:
        with TestClient(create_app(settings)) as client:
            assert in_attempt.wait(10)
            assert client.get("/readyz").status_code == 503
        # The model being connected finished and was closed; the other one was not tried.
        assert tried == ["xray", "similarity", "xray"] and closed == ["xray"]
        time.sleep(0.2)
        assert len(tried) == 3, "the retrying outlived the app"
    finally:
        release.set()


def test_an_unreachable_backend_is_503_and_a_failing_one_500_without_records(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = service.client.app.state.pipeline.runtime.detectors["xray"].backend  # type: ignore[attr-defined]
    before = service.counts()

    def down(inputs: Any) -> Any:
        raise BackendUnavailable("triton at 10.0.0.5:8001 is not answering")

    monkeypatch.setattr(backend, "run", down)
    _assert_503(_xray(service.client, service.auth("scanner")), "not answering")

    def broken(inputs: Any) -> Any:
        raise BackendError("output 'output0' has NaNs")

    monkeypatch.setattr(backend, "run", broken)
    r = _xray(service.client, service.auth("scanner"))
    assert r.status_code == 500 and r.json()["error"] == "inference_error"
    assert service.counts() == before
    monkeypatch.undo()
    assert _xray(service.client, service.auth("scanner")).status_code == 200


def test_a_full_queue_is_503_and_the_event_loop_stays_responsive(tmp_path: Path, models_dir: Path) -> None:
    async def scenario() -> list[int]:
        async with async_service(tmp_path / "var", models_dir, max_batch=1, max_queue=1, max_wait_ms=0) as svc:
            gate = threading.Event()
            backend = svc.app.state.pipeline.runtime.detectors["xray"].backend
            real_run = backend.run

            def blocked(inputs: Any) -> Any:
                gate.wait(10)
                return real_run(inputs)

            backend.run = blocked
            try:
                tasks = [asyncio.create_task(_async_xray(svc, dark=True, seed=i)) for i in range(4)]
                done, _ = await asyncio.wait(tasks, timeout=10, return_when=asyncio.FIRST_COMPLETED)
                assert done, "no request was refused while the model was busy"
                for task in done:
                    _assert_503(task.result(), "busy")
                # Inference is blocked in a worker thread; the loop still answers at once.
                t0 = time.perf_counter()
                assert (await svc.client.get("/healthz")).status_code == 200
                assert time.perf_counter() - t0 < 1.0
                gate.set()
                return [r.status_code for r in await asyncio.gather(*tasks)]
            finally:
                gate.set()
                backend.run = real_run

    statuses = asyncio.run(scenario())
    assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}


async def _async_xray(svc: AsyncService, *, dark: bool, seed: int) -> Any:
    return await svc.client.post(
        "/v1/xray/inspect",
        files={"image": ("x.png", png(xray_scan(dark=dark, seed=seed)), "image/png")},
        headers=svc.auth("scanner"),
    )


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_requests_are_batched_and_answered_correctly(
    tmp_path: Path, models_dir: Path, batching: bool
) -> None:
    async def scenario() -> tuple[list[Any], dict[int, int], type]:
        async with async_service(
            tmp_path / "var", models_dir, batching=batching, max_batch=8, max_wait_ms=150, max_queue=32
        ) as svc:
            darks = [i % 2 == 0 for i in range(8)]
            responses = await asyncio.gather(*(_async_xray(svc, dark=d, seed=i) for i, d in enumerate(darks)))
            runner = svc.app.state.pipeline.runners.detectors["xray"]
            return (
                [(d, r.status_code, r.json()) for d, r in zip(darks, responses, strict=True)],
                runner.stats.sizes,
                type(runner),
            )

    results, sizes, runner_type = asyncio.run(scenario())
    for dark, status, body in results:
        assert status == 200, body
        assert body["risk"] == ("alarm" if dark else "clear")  # each caller got its own image's result
    assert sum(size * n for size, n in sizes.items()) == 8
    if batching:
        assert runner_type is MicroBatcher and max(sizes) > 1
    else:
        assert runner_type is SerialRunner and set(sizes) == {1}


def test_the_mirrored_xray_view_is_on_by_default_and_an_operator_setting(
    service: Service, start_service: Callable[..., Any]
) -> None:
    detector = service.client.app.state.pipeline.runtime.detectors["xray"]  # type: ignore[attr-defined]
    assert detector.flip_tta is True
    with start_service(xray_flip_tta=False) as svc:
        detector = svc.client.app.state.pipeline.runtime.detectors["xray"]
        assert detector.flip_tta is False
        assert _xray(svc.client, svc.auth("scanner")).status_code == 200


def test_the_close_up_tiles_are_on_by_default_and_an_operator_setting(
    service: Service, start_service: Callable[..., Any]
) -> None:
    assert Settings().xray_tiles is True
    # These tests' services run without them (see conftest.running_service) ...
    assert service.client.app.state.pipeline.runtime.detectors["xray"].tile_tta is False  # type: ignore[attr-defined]
    # ... and the setting turns them on.
    with start_service(xray_tiles=True) as svc:
        detector = svc.client.app.state.pipeline.runtime.detectors["xray"]
        assert detector.tile_tta is True
        assert _xray(svc.client, svc.auth("scanner")).status_code == 200
