"""The benchmark scripts, run end to end on tiny models with tiny counts; the result files are checked.

Numbers measured here mean nothing (tiny models, two cores shared with other tests); what is checked
is that every script runs each path it claims (backends, peers, skips, spawned services, databases)
and writes JSON/CSV/PNG files whose structure and internal arithmetic are right.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import common, registry_search, service_load, throughput

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_CLASSES = ("knife", "gun", "gold")


# ------------------------------------------------------------------------------------- tiny models


def write_tiny_yolo(out_dir: Path) -> tuple[Path, Path]:
    """A YOLO11n-layout ultralytics model with 3 classes: ``(card, .pt)``; the card's ONNX is its export."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from detectors.training import ultralytics_yolo
    from vision.modelcard import ModelCard, sha256_file
    from vision.types import ModelSpec

    torch.manual_seed(0)
    yolo: Any = ultralytics_yolo()("yolo11n.yaml", task="detect")
    yolo.model = DetectionModel("yolo11n.yaml", nc=len(TINY_CLASSES), verbose=False)
    yolo.model.names = dict(enumerate(TINY_CLASSES))
    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / "tiny_yolo.pt"
    yolo.save(pt)
    onnx_path = Path(
        ultralytics_yolo()(str(pt), task="detect").export(
            format="onnx", imgsz=64, dynamic=True, simplify=False, opset=18, verbose=False
        )
    )
    spec = ModelSpec(
        name="tiny_yolo", version="test-1", input_size=(64, 64), class_names=TINY_CLASSES, max_batch=8, pad_value=114
    )
    card = ModelCard(
        name=spec.name,
        version=spec.version,
        task="detect",
        file=onnx_path.name,
        sha256=sha256_file(onnx_path),
        spec=spec,
    )
    card_path = out_dir / "tiny_yolo.json"
    card.save(card_path)
    return card_path, pt


def write_tiny_embedder(out_dir: Path) -> tuple[Path, Path]:
    """A smallest-width :class:`similarity.model.EmbeddingNet`: ``(card, training-style checkpoint)``."""
    import torch

    from similarity.model import EmbeddingNet, export_onnx
    from vision.modelcard import ModelCard, sha256_file
    from vision.types import ModelSpec

    torch.manual_seed(0)
    config = {"embedding_dim": 16, "width": 4}
    model = EmbeddingNet(**config).eval()
    spec = ModelSpec(
        name="tiny_embedder",
        version="test-1",
        input_size=(32, 64),
        output_names=("embeddings",),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        max_batch=16,
        pad_value=255,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "tiny_embedder.onnx"
    export_onnx(model, onnx_path, spec)
    checkpoint = out_dir / "tiny_embedder.ckpt"
    torch.save({"model": model.state_dict(), "config": config, "spec": spec.to_dict()}, checkpoint)
    card = ModelCard(
        name=spec.name,
        version=spec.version,
        task="embed",
        file=onnx_path.name,
        sha256=sha256_file(onnx_path),
        spec=spec,
    )
    card_path = out_dir / "tiny_embedder.json"
    card.save(card_path)
    return card_path, checkpoint


@pytest.fixture(scope="module")
def tiny_yolo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_yolo(tmp_path_factory.mktemp("tiny_yolo"))


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_embedder(tmp_path_factory.mktemp("tiny_embedder"))


# ------------------------------------------------------------------------------------------ checks


def read_outputs(out_dir: Path, stem: str, *, plot: bool = True) -> tuple[dict, list[dict[str, str]]]:
    """The JSON document and CSV rows of a run, after checking the files' shared structure."""
    doc = json.loads((out_dir / f"{stem}.json").read_text(encoding="utf-8"))
    with (out_dir / f"{stem}.csv").open(encoding="utf-8", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == len(doc["results"]) > 0
    assert doc["command"].startswith("python -m benchmarks.")
    machine = doc["machine"]
    for key in ("cpu", "cpu_cores", "ram_gib", "os", "python", "packages", "date", "git", "load_average"):
        assert key in machine, key
    assert machine["packages"]["numpy"] == np.__version__
    if plot:
        assert (out_dir / f"{stem}.png").read_bytes().startswith(PNG_MAGIC)
    else:
        assert not (out_dir / f"{stem}.png").exists()
    return doc, csv_rows


def check_latencies(row: dict) -> None:
    assert 0 < row["latency_ms_p50"] <= row["latency_ms_p95"] <= row["latency_ms_p99"] <= row["latency_ms_max"]


# --------------------------------------------------------------------------------------- throughput


def run_throughput(tmp_path: Path, card: Path, *extra: str) -> dict:
    argv = [
        "--card",
        str(card),
        "--batches",
        "1,2",
        "--images",
        "3",
        "--image-size",
        "96",
        "--warmup",
        "1",
        "--iterations",
        "2",
        "--time-cap",
        "30",
        "--threads",
        "1",
        "--calibration-images",
        "2",
        "--out-dir",
        str(tmp_path),
        *extra,
    ]
    return throughput.main(throughput.get_args_parser().parse_args(argv))


def test_throughput_detector_backends_peers_and_ratios(tmp_path: Path, tiny_yolo: tuple[Path, Path]) -> None:
    from deploy.tensorrt import gpu_unavailable_reason

    card, pt = tiny_yolo
    no_gpu = gpu_unavailable_reason()
    run_throughput(
        tmp_path,
        card,
        "--backends",
        "torch,onnxruntime-fp32,onnxruntime-int8,tensorrt-fp16,triton,ultralytics-onnx,ultralytics-torch",
        "--torch-weights",
        str(pt),
        "--int8",
        "auto",
    )
    doc, csv_rows = read_outputs(tmp_path, "throughput-tiny_yolo")
    assert doc["failed"] is False
    assert doc["model"]["name"] == "tiny_yolo" and doc["model"]["task"] == "detect"

    ours = ("torch", "onnxruntime-fp32", "onnxruntime-int8") + (() if no_gpu else ("tensorrt-fp16",))
    expected = {(b, m, n) for b in ours for m in ("e2e", "model") for n in (1, 2)}
    expected |= {(p, "e2e", n) for p in ("ultralytics-onnx", "ultralytics-torch") for n in (1, 2)}
    assert {(r["backend"], r["mode"], r["batch"]) for r in doc["results"]} == expected
    for row in doc["results"]:
        assert row["calls"] == 2 and row["images"] == 2 * row["batch"] and row["capped"] is False
        check_latencies(row)
        # images/s is images over the summed call times, i.e. batch / mean call latency.
        assert row["images_per_s"] == pytest.approx(row["batch"] * 1e3 / row["latency_ms_mean"], rel=0.01)
        if row["mode"] == "e2e":
            stages = ("decode", "preprocess", "model", "postprocess")
            assert all(row[f"{s}_ms_per_image"] >= 0 for s in stages)
            assert sum(row[f"{s}_ms_per_image"] for s in stages) <= row["ms_per_image"] * 1.05 + 0.05

    skipped = {s["backend"]: s["reason"] for s in doc["skipped"]}
    assert skipped.pop("triton").startswith("no Triton server")
    assert skipped == ({"tensorrt-fp16": no_gpu} if no_gpu else {})

    ips = {(r["backend"], r["mode"], r["batch"]): r["images_per_s"] for r in doc["results"]}
    assert {(r["ours"], r["peer"], r["batch"]) for r in doc["ratios"]} == {
        (o, p, n) for o, p in throughput.RATIO_PAIRS for n in (1, 2)
    }
    for r in doc["ratios"]:
        ours_e2e = ips[(r["ours"], "e2e", r["batch"])]
        assert r["e2e_over_peer_e2e"] == pytest.approx(ours_e2e / ips[(r["peer"], "e2e", r["batch"])], abs=1e-3)
        assert r["e2e_over_model_only"] == pytest.approx(ours_e2e / ips[(r["ours"], "model", r["batch"])], abs=1e-3)
        assert r["meets_peer_target"] == (r["e2e_over_peer_e2e"] >= throughput.TARGET_VS_PEER)
    assert {c["backend"] for c in doc["subjects"]} == {b for b, _, _ in expected}
    assert csv_rows[0]["backend"] == doc["results"][0]["backend"] and "images_per_s" in csv_rows[0]


def test_throughput_openvino_pipelined_mode_and_reduced_decode(tmp_path: Path, tiny_yolo: tuple[Path, Path]) -> None:
    import importlib.util

    card, _ = tiny_yolo
    run_throughput(
        tmp_path,
        card,
        "--backends",
        "onnxruntime-fp32,onnxruntime-int8,openvino-fp32,openvino-int8",
        "--int8",
        "auto",
        "--modes",
        "e2e,pipelined",
        "--reduced-decode",
        "2",
        "--image-size",
        "160",  # twice the tiny model's 64 px input at least: decoded at half size
        "--no-plot",
    )
    doc, _ = read_outputs(tmp_path, "throughput-tiny_yolo", plot=False)
    assert doc["failed"] is False and doc["args"]["reduced_decode"] == 2
    have_openvino = importlib.util.find_spec("openvino") is not None
    ours = ["onnxruntime-fp32", "onnxruntime-int8"] + (["openvino-fp32", "openvino-int8"] if have_openvino else [])
    expected = {(b, m, n) for b in ours for m in ("e2e", "pipelined") for n in (1, 2)}
    assert {(r["backend"], r["mode"], r["batch"]) for r in doc["results"]} == expected
    stages = ("preprocess", "model", "postprocess")
    for row in doc["results"]:
        check_latencies(row)
        first = "decode_wait" if row["mode"] == "pipelined" else "decode"
        assert all(row[f"{s}_ms_per_image"] >= 0 for s in (first, *stages))
        assert sum(row[f"{s}_ms_per_image"] for s in (first, *stages)) <= row["ms_per_image"] * 1.05 + 0.05
    notes = {s["backend"]: s["notes"] for s in doc["subjects"]}
    assert "recipe cpu-qoperator" in notes["onnxruntime-int8"]
    if have_openvino:
        assert "recipe openvino" in notes["openvino-int8"] and "OpenVINO" in notes["openvino-fp32"]
        assert doc["machine"]["packages"]["openvino"]
    else:
        skipped = {s["backend"]: s["reason"] for s in doc["skipped"]}
        assert skipped == {b: skipped[b] for b in ("openvino-fp32", "openvino-int8")}
        assert all("OpenVINO is not installed" in r for r in skipped.values())


def test_prefetcher_hands_over_the_batch_it_started_for_exactly_those_bytes() -> None:
    calls: list[tuple[bytes, ...]] = []

    def decode(encoded):
        calls.append(tuple(encoded))
        return [np.zeros((1, 1, 3), np.uint8)] * len(encoded), None

    prefetcher = throughput.Prefetcher(decode)
    try:
        first, second = [b"a"], [b"b", b"c"]
        images, original_hw = prefetcher.take(first)  # nothing started: decoded now
        assert len(images) == 1 and original_hw is None
        prefetcher.start(second)
        images, _ = prefetcher.take(second)  # started before: not decoded again
        assert len(images) == 2 and calls == [(b"a",), (b"b", b"c")]
        prefetcher.start(first)
        prefetcher.take([b"a"])  # equal bytes but another list: decoded again, after the started one
        assert calls == [(b"a",), (b"b", b"c"), (b"a",), (b"a",)]
        prefetcher.start(second)
        prefetcher.settle()
        assert calls[-1] == (b"b", b"c")
        prefetcher.take(second)  # settled: dropped, decoded now
        assert len(calls) == 6
    finally:
        prefetcher.close()


def test_throughput_int8_recipe_names_are_the_deploy_recipes() -> None:
    from deploy.precision import INT8_RECIPES

    assert tuple(sorted(INT8_RECIPES)) == throughput.INT8_RECIPE_NAMES


def test_throughput_embedder_from_folder(tmp_path: Path, tiny_embedder: tuple[Path, Path]) -> None:
    from tests.deploy.fixtures import crops
    from vision.imageio import encode_png

    card, checkpoint = tiny_embedder
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, crop in enumerate(crops(3, seed=1)):
        (folder / f"crop{i}.png").write_bytes(encode_png(crop))
    run_throughput(
        tmp_path,
        card,
        "--backends",
        "torch,onnxruntime-fp32,ultralytics-onnx",
        "--torch-weights",
        str(checkpoint),
        "--image-dir",
        str(folder),
        "--modes",
        "e2e",
        "--no-plot",
    )
    doc, _ = read_outputs(tmp_path, "throughput-tiny_embedder", plot=False)
    assert doc["images"]["source"] == f"folder {folder}" and doc["images"]["count"] == 3
    assert {(r["backend"], r["mode"]) for r in doc["results"]} == {("torch", "e2e"), ("onnxruntime-fp32", "e2e")}
    assert all(r["decode_ms_per_image"] >= 0 and r["embed_ms_per_image"] > 0 for r in doc["results"])
    assert doc["ratios"] == []
    assert [s["backend"] for s in doc["skipped"]] == ["ultralytics-onnx"]
    assert "detectors only" in doc["skipped"][0]["reason"]


@pytest.mark.triton
def test_throughput_starts_bundled_triton(tmp_path: Path, tiny_yolo: tuple[Path, Path]) -> None:
    from deploy.triton_server import find_tritonserver

    if find_tritonserver() is None:
        pytest.skip("no bundled tritonserver (bash scripts/setup-triton.sh)")
    card, _ = tiny_yolo
    run_throughput(tmp_path, card, "--backends", "triton", "--start-triton", "--batches", "2", "--no-plot")
    doc, _ = read_outputs(tmp_path, "throughput-tiny_yolo", plot=False)
    assert doc["failed"] is False
    assert {(r["backend"], r["mode"]) for r in doc["results"]} == {("triton", "e2e"), ("triton", "model")}
    assert "bundled tritonserver" in doc["subjects"][0]["notes"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backends", "onnxruntime,cuda"], "unknown backend 'onnxruntime'"),
        (["--modes", "e2e,fast"], "unknown mode 'fast'"),
        (["--iterations", "0"], "--iterations must be >= 1"),
    ],
)
def test_throughput_rejects_bad_options(argv: list[str], message: str) -> None:
    args = throughput.get_args_parser().parse_args(["--card", "models/none.json", *argv])
    with pytest.raises(SystemExit, match=message):
        throughput.main(args)


# -------------------------------------------------------------------------------------- service load


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8000", "http://example.com", "http://0.0.0.0:8000", "https://192.168.1.2", "ftp://127.0.0.1"],
)
def test_service_load_refuses_non_loopback(url: str) -> None:
    with pytest.raises(service_load.NotLoopbackError):
        service_load.check_loopback(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:9", "http://[::1]:8000", "http://127.8.0.1"]
)
def test_service_load_accepts_loopback(url: str) -> None:
    service_load.check_loopback(url)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--spawn", "--batching", "on,maybe"], "--batching takes 'on' and 'off', got 'maybe'"),
        (["--spawn", "--concurrency", "1,512"], "--concurrency is limited to 256"),
        (["--spawn", "--requests", "0"], "--requests must be within"),
        (["--url", "http://10.1.1.1:8000", "--api-key", "k"], "only targets services on this machine"),
        (["--url", "http://127.0.0.1:9"], "needs a scanner API key"),
    ],
)
def test_service_load_rejects_bad_options(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(service_load.API_KEY_ENV, raising=False)
    with pytest.raises(SystemExit, match=message):
        service_load.main(service_load.get_args_parser().parse_args(argv))


def test_service_load_spawned_with_and_without_batching(tmp_path: Path) -> None:
    from tests.service.fixtures import write_all_models

    models = write_all_models(tmp_path / "models")
    argv = [
        "--spawn",
        "--models-dir",
        str(models),
        "--batching",
        "on,off",
        "--concurrency",
        "1,4",
        "--requests",
        "8",
        "--duration",
        "30",
        "--images",
        "2",
        "--image-size",
        "96",
        "--threads",
        "1",
        "--out-dir",
        str(tmp_path / "out"),
    ]
    service_load.main(service_load.get_args_parser().parse_args(argv))
    doc, _ = read_outputs(tmp_path / "out", "service_load")
    assert {(r["batching"], r["concurrency"]) for r in doc["results"]} == {
        (b, c) for b in ("on", "off") for c in (1, 4)
    }
    for row in doc["results"]:
        assert row["requests"] == row["ok"] == 8, row
        assert row["errors"] == {} and row["exceptions"] == {}
        assert row["requests_per_s"] > 0
        check_latencies(row)
        # Every request made one model call's worth of images: the mean batch is within [1, concurrency].
        assert 1 <= row["model_batch_mean"] <= row["concurrency"]
        if row["batching"] == "off":
            assert row["model_batch_mean"] == 1
    assert [s["batching"] for s in doc["services"]] == ["on", "off"]
    assert all(s["settings"]["CV_REQUIRED_MODELS"] == "xray" for s in doc["services"])
    assert [s["effective"]["batching"] for s in doc["services"]] == [True, False]
    assert all(s["effective"]["threads"] == 1 and s["effective"]["max_batch"] >= 1 for s in doc["services"])


def test_service_load_against_running_service_counts_errors_by_status(tmp_path: Path) -> None:
    from tests.service.fixtures import write_all_models

    models = write_all_models(tmp_path / "models")
    parse = service_load.get_args_parser().parse_args
    # A service that refuses every upload (64-byte limit), started the way --spawn starts one.
    spawn_args = parse(["--spawn", "--models-dir", str(models), "--service-env", "CV_MAX_UPLOAD_BYTES=64"])
    with service_load.spawned_service(spawn_args, "on", tmp_path) as target:
        argv = ["--url", target.url, "--api-key", target.api_key, "--label", "tiny-limit", "--concurrency", "2"]
        argv += ["--requests", "6", "--images", "1", "--image-size", "96", "--out-dir", str(tmp_path / "out")]
        service_load.main(parse([*argv, "--no-plot"]))
    doc, _ = read_outputs(tmp_path / "out", "service_load", plot=False)
    assert doc["args"]["api_key"] == "(hidden)" and target.api_key not in json.dumps(doc)
    assert doc["services"][0]["warmup"] == {"413": 4}
    (row,) = doc["results"]
    assert row["batching"] == "tiny-limit" and row["requests"] == 6
    assert row["ok"] == 0 and row["errors"] == {"413": 6}
    assert row["latency_ms_p50"] is None and row["requests_per_s"] == 0
    assert row["model_calls"] == 0  # refused before any model ran


# ---------------------------------------------------------------------------------- registry search


def registry_argv(tmp_path: Path, *extra: str) -> list[str]:
    return ["--sizes", "40,200", "--queries", "25", "--dim", "32", "--chunk", "64", "--out-dir", str(tmp_path), *extra]


def test_registry_search_grows_and_measures(tmp_path: Path) -> None:
    registry_search.main(registry_search.get_args_parser().parse_args(registry_argv(tmp_path)))
    doc, csv_rows = read_outputs(tmp_path, "registry_search")
    assert doc["database"] == "SQLite, temporary file"
    ops = [(r["specimens"], r["operation"]) for r in doc["results"]]
    assert ops == [(n, op) for n in (40, 200) for op in ("enrol", "open", "identify", "verify")]
    enrol = [r for r in doc["results"] if r["operation"] == "enrol"]
    assert [r["added"] for r in enrol] == [40, 160]
    for row in doc["results"]:
        assert row["owners"] == math.ceil(row["specimens"] / 4)
        if row["operation"] in ("identify", "verify"):
            check_latencies(row)
            assert row["samples"] == 25
        if row["operation"] == "identify":
            # Well-separated random owners: the true owner must come first.
            assert row["recall_at_1"] == row["recall_at_k"] == 1.0
    assert csv_rows[2]["operation"] == "identify" and csv_rows[2]["recall_at_1"] == "1.0"


def test_registry_search_external_database_is_refused_when_not_empty_and_cleaned_up(tmp_path: Path) -> None:
    from similarity.registry import SpecimenRegistry

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    parse = registry_search.get_args_parser().parse_args

    def stored() -> int:
        registry = SpecimenRegistry.from_url(url, model_version="any")
        try:
            return len(registry)
        finally:
            registry.close()

    registry_search.main(parse(registry_argv(tmp_path, "--database-url", url, "--no-plot")))
    assert stored() == 0  # the run deleted its rows

    registry_search.main(parse(registry_argv(tmp_path, "--database-url", url, "--keep", "--no-plot")))
    assert stored() == 200
    with pytest.raises(SystemExit, match="already holds 200 specimens"):
        registry_search.main(parse(registry_argv(tmp_path, "--database-url", url)))


# ------------------------------------------------------------------------------------------- common


def test_latency_summary_percentiles() -> None:
    summary = common.latency_summary([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert summary == {
        "latency_ms_p50": 50.5,
        "latency_ms_p95": 95.05,
        "latency_ms_p99": 99.01,
        "latency_ms_mean": 50.5,
        "latency_ms_max": 100.0,
        "samples": 100,
    }
    assert common.latency_summary([])["latency_ms_p50"] is None


def test_time_calls_warmup_indices_and_cap() -> None:
    seen: list[int] = []
    timed = common.time_calls(seen.append, warmup=2, iterations=3, time_cap_s=60)
    assert seen == [0, 1, 2, 3, 4] and len(timed.seconds) == 3 and not timed.capped

    timed = common.time_calls(lambda _i: time.sleep(0.02), warmup=0, iterations=50, time_cap_s=0.01)
    assert len(timed.seconds) == 1 and timed.capped


@pytest.mark.parametrize("text", ["", "1,x", "0,2", "-1"])
def test_csv_ints_rejects(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        common.csv_ints(text)


def test_write_csv_union_of_columns_and_nested_values(tmp_path: Path) -> None:
    path = common.write_csv(tmp_path / "x.csv", [{"a": 1, "errors": {"503": 2}}, {"a": 2, "b": None}])
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"a": "1", "errors": '{"503": 2}', "b": ""}, {"a": "2", "errors": "", "b": ""}]
