"""The Triton path against a real ``tritonserver`` on loopback.

A tiny detector and a tiny embedder are made here, rendered into a ``python-onnxruntime``
repository by :mod:`deploy.triton_repo` and served by the server from ``nvidia-pytriton``
(``bash scripts/setup-triton.sh``). The tests check that Triton returns what the local ONNX Runtime
path returns, over HTTP and gRPC, and that calls fail with :class:`BackendUnavailable` while the
server is down and work again, without new clients, once it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from deploy.triton_repo import render_repository
from deploy.triton_server import SETUP_HINT, TritonServer, find_tritonserver
from detectors.base import YoloDetector
from tests.deploy.fixtures import crops, make_tiny_detector, make_tiny_embedder, scenes
from vision.runtime.base import BackendUnavailable
from vision.types import Detections

INSTALLATION = find_tritonserver()
pytestmark = [
    pytest.mark.triton,
    pytest.mark.skipif(INSTALLATION is None, reason=f"no tritonserver installed (install it with: {SETUP_HINT})"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
PROTOCOLS: tuple[Literal["http", "grpc"], ...] = ("http", "grpc")


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    models = tmp_path_factory.mktemp("models")
    return {"detector": make_tiny_detector(models), "embedder": make_tiny_embedder(models)}


@pytest.fixture(scope="module")
def server(cards: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repository = tmp_path_factory.mktemp("triton_repo")
    render_repository([cards["detector"], cards["embedder"]], repository, variant="python-onnxruntime")
    with TritonServer(model_repository=repository, installation=INSTALLATION) as running:
        yield running


def url_of(server: TritonServer, protocol: str) -> str:
    return server.http_url if protocol == "http" else server.grpc_url


def assert_same_detections(expected: list[Detections], got: list[Detections]) -> None:
    assert [len(d) for d in got] == [len(d) for d in expected]
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(g.class_id, e.class_id)
        np.testing.assert_allclose(g.xyxy, e.xyxy, atol=1e-3)
        np.testing.assert_allclose(g.confidence, e.confidence, atol=1e-5)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_detections_match_onnxruntime(server: TritonServer, cards: dict[str, Path], protocol: str) -> None:
    images = scenes(6, seed=1)
    local = YoloDetector.from_card(cards["detector"])
    remote = YoloDetector.from_card(
        cards["detector"], backend_name="triton", url=url_of(server, protocol), protocol=protocol
    )
    try:
        expected = local.detect(images)
        assert sum(len(d) for d in expected) > 0, "the tiny detector must find something for this test to mean anything"
        assert_same_detections(expected, remote.detect(images))
        # A batch larger than the model's max_batch_size (8) is split by the detector, not refused.
        many = scenes(11, seed=2)
        assert_same_detections(local.detect(many), remote.detect(many))
    finally:
        local.backend.close()
        remote.backend.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_triton_embeddings_and_similarities_match_onnxruntime(
    server: TritonServer, cards: dict[str, Path], protocol: Literal["http", "grpc"]
) -> None:
    from similarity.embedder import Embedder
    from vision.runtime.triton import TritonBackend

    local, card = Embedder.from_card(cards["embedder"])
    remote = Embedder(
        backend=TritonBackend(url=url_of(server, protocol), model_name=card.name, protocol=protocol), spec=card.spec
    )
    try:
        inputs = crops(7, seed=3)
        expected, got = local.embed(inputs), remote.embed(inputs)
        assert got.shape == expected.shape == (7, 16)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(got @ got.T, expected @ expected.T, atol=1e-5)
    finally:
        local.backend.close()
        remote.backend.close()


def eventually(call: Callable[[], Any], timeout_s: float) -> Any:
    """Call until it stops raising BackendUnavailable (gRPC reconnects with a back-off), or time out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_outage_raises_unavailable_and_recovers(server: TritonServer, cards: dict[str, Path]) -> None:
    images = scenes(2, seed=4)
    local = YoloDetector.from_card(cards["detector"])
    detectors = {
        p: YoloDetector.from_card(cards["detector"], backend_name="triton", url=url_of(server, p), protocol=p)
        for p in PROTOCOLS
    }
    try:
        expected = local.detect(images)
        for detector in detectors.values():
            assert_same_detections(expected, detector.detect(images))

        server.stop()
        for protocol, detector in detectors.items():
            with pytest.raises(BackendUnavailable, match=protocol + r"://127\.0\.0\.1"):
                detector.detect(images)

        server.start()
        # The same detector objects, no reconnect by the caller: the backends recover by themselves.
        for detector in detectors.values():
            assert_same_detections(expected, eventually(partial(detector.detect, images), timeout_s=30))
    finally:
        local.backend.close()
        for detector in detectors.values():
            detector.backend.close()
        if not server.running:
            server.start()
