"""The service with ``CV_BACKEND=triton`` against a real ``tritonserver`` on loopback.

The tiny detector and embedder of :mod:`tests.deploy.fixtures`, named as the service loads them
(``xray``, ``similarity``), are served by the server from ``nvidia-pytriton`` (``bash
scripts/setup-triton.sh``, run by ``make test``). One app runs them on local ONNX Runtime, one app per
protocol through Triton; the tests check, through the HTTP API, that

* ``POST /v1/xray/inspect`` returns the same detections and risk through Triton as locally;
* ``POST /v1/compare`` returns the same similarities (specimens registered through each app);
* with the server stopped, the routes answer 503 with a message naming the Triton endpoint, write
  nothing, and ``/readyz`` says why; once the server is back on the same ports the same app serves
  again, without a restart;
* an app started while its Triton server is not up yet answers 503 and ``/readyz`` says it is
  waiting for the server; once the server starts, the same app connects by itself and serves.

One test checks the backend itself the way the service uses it: made on one thread, called from
others (the loader makes it; batchers and readiness probes call it from whichever worker is free).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from deploy.triton_repo import render_repository
from deploy.triton_server import SETUP_HINT, TritonServer, find_tritonserver
from tests.deploy.fixtures import crops, make_service_models, scenes
from tests.service.conftest import Service, running_service
from tests.service.fixtures import png
from vision.runtime.triton import TritonBackend

INSTALLATION = find_tritonserver()
pytestmark = [
    pytest.mark.triton,
    pytest.mark.skipif(INSTALLATION is None, reason=f"no tritonserver installed (install it with: {SETUP_HINT})"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
PROTOCOLS: tuple[Literal["http", "grpc"], ...] = ("http", "grpc")
REQUIRED = ("xray", "similarity")


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_service_models(tmp_path_factory.mktemp("service-models"))


@pytest.fixture(scope="module")
def repository(cards: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Triton model repository of the tiny models."""
    folder = tmp_path_factory.mktemp("triton_repo")
    render_repository(list(cards.values()), folder, variant="python-onnxruntime")
    return folder


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[TritonServer]:
    with TritonServer(model_repository=repository, installation=INSTALLATION) as running:
        yield running


def url_of(server: TritonServer, protocol: str) -> str:
    return server.http_url if protocol == "http" else server.grpc_url


@pytest.fixture(scope="module")
def local(cards: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The app on local ONNX Runtime: the reference."""
    models_dir = cards["xray"].parent
    with running_service(tmp_path_factory.mktemp("var-local"), models_dir, required_models=REQUIRED) as svc:
        yield svc


@pytest.fixture(scope="module")
def remote(
    server: TritonServer, cards: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Service]]:
    """One app per protocol with ``backend=triton`` on the running server, each with its own data."""
    models_dir = cards["xray"].parent
    with ExitStack() as stack:
        services: dict[str, Service] = {
            protocol: stack.enter_context(
                running_service(
                    tmp_path_factory.mktemp(f"var-{protocol}"),
                    models_dir,
                    required_models=REQUIRED,
                    backend="triton",
                    triton_url=url_of(server, protocol),
                    triton_protocol=protocol,
                )
            )
            for protocol in PROTOCOLS
        }
        for protocol, svc in services.items():
            r = svc.client.get("/readyz")
            assert r.status_code == 200, f"{protocol}: {r.json()}"
        yield services


def inspect(svc: Service, data: bytes) -> Any:
    return svc.client.post(
        "/v1/xray/inspect", files={"image": ("scan.png", data, "image/png")}, headers=svc.auth("scanner")
    )


def register(svc: Service, crop: np.ndarray, owner: str) -> str:
    r = svc.client.post(
        "/v1/specimens",
        files={"image": ("specimen.png", png(crop), "image/png")},
        data={"kind": "stamp", "owner": owner},
        headers=svc.auth("admin"),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def compare(svc: Service, crop: np.ndarray, **target: str) -> Any:
    return svc.client.post(
        "/v1/compare",
        files={"image": ("crop.png", png(crop), "image/png")},
        data={"kind": "stamp", **target},
        headers=svc.auth("clerk"),
    )


def assert_same_report(expected: dict[str, Any], got: dict[str, Any]) -> None:
    """Same risk and detections; the API rounds confidences to 4 and boxes to 1 decimal."""
    assert got["risk"] == expected["risk"]
    assert got["models"] == expected["models"]
    assert got["image"]["sha256"] == expected["image"]["sha256"]
    assert len(got["detections"]) == len(expected["detections"])
    for e, g in zip(expected["detections"], got["detections"], strict=True):
        assert (g["label"], g["class_id"]) == (e["label"], e["class_id"])
        assert g["confidence"] == pytest.approx(e["confidence"], abs=2e-4)
        assert g["box"] == pytest.approx(e["box"], abs=0.2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_inspect_through_triton_matches_onnxruntime(local: Service, remote: dict[str, Service], protocol: str) -> None:
    svc = remote[protocol]
    risks, counts = set(), []
    for image in scenes(4, seed=5):
        data = png(image)
        expected, got = inspect(local, data), inspect(svc, data)
        assert expected.status_code == 200, expected.text
        assert got.status_code == 200, got.text
        assert_same_report(expected.json(), got.json())
        risks.add(expected.json()["risk"])
        counts.append(len(expected.json()["detections"]))
    # The comparison means something only if the tiny detector finds things and tells scans apart
    # (with the mirrored view fused in, its scores are steadier and every scan here is "review").
    assert min(counts) > 0 and len(set(counts)) > 1 and risks <= {"clear", "review", "alarm"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_compare_through_triton_matches_onnxruntime(local: Service, remote: dict[str, Service], protocol: str) -> None:
    owner = f"owner-{protocol}"
    specimens, query = crops(3, seed=6), crops(1, seed=7)[0]
    answers = []
    for svc in (local, remote[protocol]):
        ids = [register(svc, crop, owner) for crop in specimens]
        by_owner, by_id = compare(svc, query, owner=owner), compare(svc, query, specimen_id=ids[1])
        assert by_owner.status_code == 200, by_owner.text
        assert by_id.status_code == 200, by_id.text
        # Specimen ids differ between the apps; index them by registration order instead.
        position = {sid: i for i, sid in enumerate(ids)}
        per_specimen = {
            position[s["specimen_id"]]: (s["similarity"], s["verdict"]) for s in by_owner.json()["per_specimen"]
        }
        best = (position[by_owner.json()["specimen_id"]], by_owner.json()["similarity"])
        answers.append((per_specimen, best, by_id.json()["similarity"]))

    (expected, expected_best, expected_one), (got, got_best, got_one) = answers
    assert sorted(got) == sorted(expected) == [0, 1, 2]
    for i, (similarity, verdict) in expected.items():
        assert got[i][0] == pytest.approx(similarity, abs=0.011)
        assert got[i][1] == verdict
    assert got_best[0] == expected_best[0] and got_best[1] == pytest.approx(expected_best[1], abs=0.011)
    assert got_one == pytest.approx(expected_one, abs=0.011)
    # Distinct, unsaturated scores: a backend answering zeros or constants could not pass.
    scores = [s for s, _ in expected.values()]
    assert all(0 < s < 100 for s in scores) and len(set(scores)) == len(scores)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_backend_serves_calls_from_any_thread(server: TritonServer, protocol: Literal["http", "grpc"]) -> None:
    """tritonclient's HTTP client runs on gevent, whose sockets belong to the thread that made them.

    Called on a fresh thread, a read that has to wait used to fail with ``greenlet.error: Cannot
    switch to a different thread`` (a 500 on some requests); each call is now handed to the
    backend's own thread. Fresh threads make the old failure show within a few calls.
    """
    backend = TritonBackend(url=url_of(server, protocol), model_name="xray", protocol=protocol)
    batch = {"images": np.random.default_rng(0).random((8, 3, 64, 64), dtype=np.float32)}
    expected = backend.run(batch)["output0"]
    failures: list[BaseException] = []

    def call() -> None:
        try:
            np.testing.assert_array_equal(backend.run(batch)["output0"], expected)
            backend.check_ready()
        except BaseException as e:  # collected: an exception on another thread would not fail the test
            failures.append(e)

    try:
        for _ in range(20):
            thread = threading.Thread(target=call)
            thread.start()
            thread.join()
    finally:
        backend.close()
    assert not failures, failures[:3]


def succeeded(response: Any) -> bool:
    return bool(response.status_code == 200)


def eventually(call: Callable[[], Any], ok: Callable[[Any], bool], timeout_s: float) -> Any:
    """Call until ``ok(result)`` (gRPC reconnects with a back-off of up to 2 s), or time out."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = call()
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_triton_outage_is_503_without_records_and_recovers(
    server: TritonServer, local: Service, remote: dict[str, Service]
) -> None:
    data = png(scenes(1, seed=8)[0])
    expected = inspect(local, data).json()
    query = crops(1, seed=9)[0]
    for svc in remote.values():
        assert_same_report(expected, inspect(svc, data).json())
        register(svc, crops(1, seed=10)[0], "outage-owner")

    server.stop()
    try:
        for protocol, svc in remote.items():
            endpoint = f"{protocol}://{url_of(server, protocol)}"
            before = svc.counts()
            for r in (inspect(svc, data), compare(svc, query, owner="outage-owner")):
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == str(svc.settings.retry_after_s)
                body = r.json()
                assert body["error"] == "model_unavailable"
                assert body["detail"].startswith("The inference backend is unavailable:"), body
                assert endpoint in body["detail"], body
            assert svc.counts() == before, "a failed request must leave no report, audit entry or specimen"

            ready = svc.client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["ready"] is False
            for name in REQUIRED:
                assert endpoint in ready.json()["missing"][name], ready.json()
            assert svc.client.get("/healthz").status_code == 200

        server.start()
        # The same apps, not restarted: their Triton clients reconnect by themselves.
        for svc in remote.values():
            before = svc.counts()
            r = eventually(partial(inspect, svc, data), succeeded, timeout_s=30)
            assert r.status_code == 200, r.text
            assert_same_report(expected, r.json())
            assert svc.counts()["reports"] == before["reports"] + 1
            assert compare(svc, query, owner="outage-owner").status_code == 200
            ready = eventually(partial(svc.client.get, "/readyz"), succeeded, timeout_s=30)
            assert ready.status_code == 200 and ready.json()["missing"] == {}, ready.text
    finally:
        if not server.running:
            server.start()


def test_a_service_started_before_triton_connects_once_triton_is_up(
    repository: Path, cards: dict[str, Path], local: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One server, not started yet (its ports are chosen), and one app per protocol pointed at it."""
    late = TritonServer(model_repository=repository, installation=INSTALLATION)
    data, query = png(scenes(1, seed=11)[0]), crops(1, seed=12)[0]
    expected = inspect(local, data).json()
    with ExitStack() as stack:
        stack.callback(late.close)  # registered first, so it runs after the apps have stopped
        services = {
            protocol: stack.enter_context(
                running_service(
                    tmp_path_factory.mktemp(f"var-late-{protocol}"),
                    cards["xray"].parent,
                    required_models=REQUIRED,
                    backend="triton",
                    triton_url=url_of(late, protocol),
                    triton_protocol=protocol,
                    model_retry_max_s=0.5,
                )
            )
            for protocol in PROTOCOLS
        }
        for protocol, svc in services.items():
            waiting = f"waiting for Triton at {protocol}://{url_of(late, protocol)} (retrying)"
            ready = svc.client.get("/readyz")
            assert ready.status_code == 503, ready.text
            for name in REQUIRED:
                assert ready.json()["missing"][name].startswith(waiting), ready.json()
            for r in (inspect(svc, data), compare(svc, query, owner="nobody")):
                assert r.status_code == 503, r.text
                assert r.json()["error"] == "model_unavailable" and waiting in r.json()["detail"], r.json()
            assert svc.client.get("/healthz").status_code == 200

        late.start()
        # The same apps, not restarted: they retry at most 0.5 s apart and connect by themselves.
        for svc in services.values():
            ready = eventually(partial(svc.client.get, "/readyz"), succeeded, timeout_s=10)
            assert ready.status_code == 200 and ready.json()["missing"] == {}, ready.text
            r = inspect(svc, data)
            assert r.status_code == 200, r.text
            assert_same_report(expected, r.json())
            register(svc, crops(1, seed=13)[0], "late-owner")
            assert compare(svc, query, owner="late-owner").status_code == 200
