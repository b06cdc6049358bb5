"""Rendering the Triton model repository from model cards (CPU only, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from deploy.batching import BatchPlan, batch_plan
from deploy.triton_repo import (
    ServingOptions,
    TritonRepoError,
    model_cards,
    output_specs_from_onnx,
    render_config,
    render_model,
    render_repository,
)
from service.cli import main
from tests.deploy.fixtures import make_tiny_detector, make_tiny_embedder
from vision.modelcard import ModelCard, ModelCardError
from vision.runtime.base import TensorSpec
from vision.types import ModelSpec

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
REPO = Path(__file__).resolve().parents[2]


def parse(text: str) -> Any:
    """Parse with Triton's own ModelConfig protobuf: unknown fields or bad syntax raise."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    models = tmp_path_factory.mktemp("models")
    return {"detector": make_tiny_detector(models), "embedder": make_tiny_embedder(models)}


@pytest.mark.parametrize(
    ("max_batch", "dynamic", "opt", "preferred"),
    [
        (32, True, 16, (4, 8, 16, 32)),
        (64, True, 32, (8, 16, 32, 64)),
        (8, True, 4, (1, 2, 4, 8)),
        (12, True, 4, (1, 2, 4, 8, 12)),
        (1, True, 1, (1,)),
        (4, False, 4, (4,)),
    ],
)
def test_batch_plan(max_batch: int, dynamic: bool, opt: int, preferred: tuple[int, ...]) -> None:
    plan = batch_plan(ModelSpec(name="m", version="1", input_size=(64, 64), max_batch=max_batch, dynamic_batch=dynamic))
    assert plan.max_batch == max_batch
    assert plan.opt_batch == opt
    assert plan.preferred == preferred
    assert plan.min_batch == (1 if dynamic else max_batch)


@pytest.mark.parametrize(
    ("args", "message"),
    [((0, 1, 4, (4,)), "1 <= min"), ((1, 2, 4, (2, 1, 4)), "ascending"), ((1, 2, 4, (1, 2)), "end at max")],
)
def test_batch_plan_rejects_inconsistent_sizes(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchPlan(*args)


@pytest.mark.parametrize("variant", ["tensorrt", "onnxruntime", "python-onnxruntime"])
def test_rendered_config_parses_and_matches_the_spec(variant: str) -> None:
    spec = ModelSpec(
        name="xray", version="2026.11.22.1030", input_size=(416, 416), max_batch=32, class_names=("a", "b")
    )
    outputs = (TensorSpec("output0", "float32", (1, 6, 3549)),)
    options = ServingOptions(instances=2, max_queue_delay_us=1500, intra_op_threads=2)
    config = parse(render_config(spec, outputs, variant=variant, options=options))  # type: ignore[arg-type]

    assert config.name == "xray"
    assert config.max_batch_size == 32
    assert [(i.name, list(i.dims), model_config_pb2.DataType.Name(i.data_type)) for i in config.input] == [
        ("images", [3, 416, 416], "TYPE_FP32")
    ]
    assert [(o.name, list(o.dims)) for o in config.output] == [("output0", [6, 3549])]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8, 16, 32]
    assert config.dynamic_batching.max_queue_delay_microseconds == 1500
    assert config.version_policy.latest.num_versions == 1
    assert [w.batch_size for w in config.model_warmup] == [1, 32]
    assert all(w.inputs["images"].zero_data for w in config.model_warmup)
    assert config.parameters["model_version"].string_value == "2026.11.22.1030"
    (group,) = config.instance_group
    assert group.count == 2
    if variant == "tensorrt":
        assert config.platform == "tensorrt_plan"
        assert config.default_model_filename == "model.plan"
        assert model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind) == "KIND_GPU"
        assert "intra_op_threads" not in config.parameters
    else:
        assert model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind) == "KIND_CPU"
    if variant == "onnxruntime":
        assert config.platform == "onnxruntime_onnx"
        assert config.parameters["intra_op_thread_count"].string_value == "2"
    if variant == "python-onnxruntime":
        assert config.backend == "python"
        assert config.default_model_filename == "model.py"
        assert config.parameters["intra_op_threads"].string_value == "2"


def test_warmup_can_be_switched_off_and_fp16_inputs_are_typed() -> None:
    spec = ModelSpec(name="m", version="1", input_size=(32, 64), input_dtype="float16", max_batch=1)
    config = parse(
        render_config(spec, (TensorSpec("output0", "float16", (-1, 16)),), options=ServingOptions(warmup=False))
    )
    assert not config.model_warmup
    assert model_config_pb2.DataType.Name(config.input[0].data_type) == "TYPE_FP16"
    assert list(config.input[0].dims) == [3, 32, 64]


@pytest.mark.parametrize(
    ("kwargs", "outputs", "message"),
    [
        ({"variant": "tflite"}, (TensorSpec("output0", "float32", (1, 5)),), "unknown variant"),
        ({}, (TensorSpec("boxes", "float32", (1, 5)),), "do not match the spec"),
        ({}, (TensorSpec("output0", "float32", (5,)),), "no leading batch dimension"),
        ({}, (TensorSpec("output0", "float64", (1, 5)),), "dtype float64"),
    ],
)
def test_render_config_rejects(kwargs: dict, outputs: tuple[TensorSpec, ...], message: str) -> None:
    spec = ModelSpec(name="m", version="1", input_size=(64, 64))
    with pytest.raises(TritonRepoError, match=message):
        render_config(spec, outputs, **kwargs)


def test_serving_options_are_validated() -> None:
    with pytest.raises(TritonRepoError):
        ServingOptions(instances=0)


def test_output_dims_are_measured_from_the_onnx_file(cards: dict[str, Path]) -> None:
    card = ModelCard.load(cards["detector"])
    (out,) = output_specs_from_onnx(card.model_path(cards["detector"]), card.spec)
    assert out == TensorSpec("output0", "float32", (1, 4 + 3, (64 // 8) ** 2))
    card = ModelCard.load(cards["embedder"])
    (out,) = output_specs_from_onnx(card.model_path(cards["embedder"]), card.spec)
    assert out.shape == (1, 16)


def test_render_repository_python_variant_writes_model_files(cards: dict[str, Path], tmp_path: Path) -> None:
    rendered = render_repository(list(cards.values()), tmp_path, variant="python-onnxruntime", triton_version=3)
    assert [m.name for m in rendered] == ["tiny_detector", "tiny_embedder"]
    for model in rendered:
        version_dir = tmp_path / model.name / "3"
        assert (version_dir / "model.py").read_text() == (REPO / "deploy" / "triton_python_model.py").read_text()
        card = ModelCard.load(cards["detector" if model.name == "tiny_detector" else "embedder"])
        assert (version_dir / "model.onnx").read_bytes() == card.model_path(
            cards["detector" if model.name == "tiny_detector" else "embedder"]
        ).read_bytes()
        config = parse(model.config.read_text())
        assert config.name == model.name and config.backend == "python"


def test_render_repository_tensorrt_writes_configs_only(cards: dict[str, Path], tmp_path: Path) -> None:
    rendered = render_repository(list(cards.values()), tmp_path)
    assert all(m.model_file is None for m in rendered)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "tiny_detector/config.pbtxt",
        "tiny_embedder/config.pbtxt",
    ]
    assert parse((tmp_path / "tiny_embedder" / "config.pbtxt").read_text()).max_batch_size == 16


def test_render_refuses_duplicates_bad_versions_and_changed_models(cards: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TritonRepoError, match="same model"):
        render_repository([cards["detector"], cards["detector"]], tmp_path)
    with pytest.raises(TritonRepoError, match="no model cards"):
        render_repository([], tmp_path)
    with pytest.raises(TritonRepoError, match="integers >= 1"):
        render_model(cards["detector"], tmp_path, triton_version=0)
    changed = tmp_path / "changed"
    card_path = make_tiny_detector(changed)
    onnx_path = ModelCard.load(card_path).model_path(card_path)
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    with pytest.raises(ModelCardError, match="changed after it was measured"):
        render_model(card_path, tmp_path / "repo")


def test_triton_repo_cli_renders_and_checks(cards: dict[str, Path], tmp_path: Path, capsys) -> None:
    models = cards["detector"].parent
    out = tmp_path / "repo"
    assert model_cards(models) == sorted(cards.values())
    assert main(["triton-repo", "--models", str(models), "--out", str(out), "--instances", "2"]) == 0
    assert parse((out / "tiny_detector" / "config.pbtxt").read_text()).instance_group[0].count == 2
    assert main(["triton-repo", "--models", str(models), "--out", str(out), "--instances", "2", "--check"]) == 0
    (out / "tiny_detector" / "config.pbtxt").write_text("max_batch_size: 1\n")
    assert main(["triton-repo", "--models", str(models), "--out", str(out), "--instances", "2", "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["triton-repo", "--models", str(tmp_path / "none"), "--out", str(out)]) == 2


def test_committed_repository_matches_the_shipped_cards() -> None:
    """triton_models/ is rendered from models/, never edited by hand."""
    if not model_cards(REPO / "models"):
        pytest.skip("models/ holds no model cards yet, so triton_models/ has nothing to match")
    assert main(["triton-repo", "--models", str(REPO / "models"), "--out", str(REPO / "triton_models"), "--check"]) == 0
