"""``customs-vision inspect xray|document`` end to end on generated image files and a tiny ONNX model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from detectors.document import DOCUMENT_CLASSES
from detectors.xray import XRAY_CLASSES
from service import cli
from vision.imageio import encode_jpeg, encode_png
from vision.modelcard import ModelCard, sha256_file
from vision.types import ModelSpec

INPUT = 64
ANCHORS = 4


def brightness_model(path: Path, nc: int, scores: np.ndarray, boxes: np.ndarray) -> None:
    """An anchor-free head ``(B, 4+nc, ANCHORS)``: fixed ``boxes``, ``scores`` times the image's mean.

    The mean is taken over the network input in ``[0, 1]``, so a white image gets ``scores``, a
    mid-grey one about half of them and a black one none.
    """
    nodes = [
        helper.make_node("ReduceMean", ["images", "axes"], ["mean"], keepdims=0),  # (B,)
        helper.make_node("Reshape", ["mean", "shape"], ["m"]),  # (B, 1, 1)
        helper.make_node("Mul", ["m", "scores"], ["cls"]),  # (B, nc, A)
        helper.make_node("Mul", ["m", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "boxes"], ["box"]),  # (B, 4, A)
        helper.make_node("Concat", ["box", "cls"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "brightness_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, INPUT, INPUT])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + nc, ANCHORS])],
        initializer=[
            numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(scores[None].astype(np.float32), "scores"),
            numpy_helper.from_array(boxes[None].astype(np.float32), "boxes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def write_model(models_dir: Path, name: str, class_names: tuple[str, ...]) -> Path:
    """``<models_dir>/<name>.onnx`` + ``<name>.json``: anchor 0 is class 0 at (16, 24)-(48, 40), score 0.9."""
    nc = len(class_names)
    boxes = np.tile(np.array([[2.0], [2.0], [2.0], [2.0]], np.float32), (1, ANCHORS))
    boxes[:, 0] = (32, 32, 32, 16)
    scores = np.zeros((nc, ANCHORS), np.float32)
    scores[0, 0] = 0.9
    models_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = models_dir / f"{name}.onnx"
    brightness_model(onnx_path, nc, scores, boxes)
    spec = ModelSpec(name=name, version="t1", input_size=(INPUT, INPUT), class_names=class_names, max_batch=4)
    card = ModelCard(
        name=name, version="t1", task="detect", file=onnx_path.name, sha256=sha256_file(onnx_path), spec=spec
    )
    card_path = models_dir / f"{name}.json"
    card.save(card_path)
    return card_path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Models in CV_MODELS_DIR, only the inspect command registered, cwd in tmp_path (no .env)."""
    models = tmp_path / "models"
    write_model(models, "xray", XRAY_CLASSES)
    write_model(models, "document", DOCUMENT_CLASSES)
    monkeypatch.setenv("CV_MODELS_DIR", str(models))
    monkeypatch.delenv("CV_THREADS", raising=False)
    # The test model puts its box at a fixed place in the network input, so each close-up tile would
    # add one more box elsewhere; test_close_up_tiles_are_on_unless_turned_off covers the tiles.
    monkeypatch.setenv("CV_XRAY_TILES", "false")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("service.commands.inspect",))
    return tmp_path


@pytest.fixture
def scans(env):
    """A folder of scans: white (alarm), grey (review), black (clear), a broken PNG and a text file."""
    folder = env / "scans"
    (folder / "sub").mkdir(parents=True)
    white = np.full((128, 128, 3), 255, np.uint8)
    (folder / "sub" / "white.png").write_bytes(encode_png(white))
    (folder / "grey.jpg").write_bytes(encode_jpeg(np.full((128, 128, 3), 128, np.uint8)))
    (folder / "black.png").write_bytes(encode_png(np.zeros((100, 140, 3), np.uint8)))
    (folder / "broken.png").write_bytes(encode_png(white)[:60])  # truncated upload
    (folder / "readme.txt").write_text("not an image, and not picked up from a folder")
    return folder


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_xray_jsonl_over_a_folder_and_files(scans, capsys):
    notes = scans.parent / "notes.txt"
    notes.write_text("hello")

    code, lines, err = run(capsys, "inspect", "xray", str(scans), str(notes), "--threads", "1")

    assert code == 1  # two of five inputs could not be read
    rows = [json.loads(line) for line in lines]
    assert [Path(r["image"]).name for r in rows] == [
        "black.png",
        "broken.png",
        "grey.jpg",
        "white.png",
        "notes.txt",
    ]
    by_name = {Path(r["image"]).name: r for r in rows}
    assert by_name["white.png"] == {
        "image": str(scans / "sub" / "white.png"),
        # letterbox box (16, 24)-(48, 40) at scale 0.5 -> original pixels
        "detections": [{"label": "handgun", "confidence": 0.9, "box": [32.0, 48.0, 96.0, 80.0]}],
        "risk": "alarm",
    }
    grey = by_name["grey.jpg"]
    assert grey["risk"] == "review" and grey["detections"][0]["label"] == "handgun"
    assert 0.25 <= grey["detections"][0]["confidence"] < 0.5
    assert by_name["black.png"] == {"image": str(scans / "black.png"), "detections": [], "risk": "clear"}
    assert "truncated or corrupt" in by_name["broken.png"]["error"]
    assert "unsupported image format" in by_name["notes.txt"]["error"]
    assert set(by_name["notes.txt"]) == {"image", "error"}
    assert "inspected 3 of 5 images (2 failed)" in err


def test_batch_size_does_not_change_the_results(scans, capsys):
    code, batched, _ = run(capsys, "inspect", "xray", str(scans), "--batch", "8")
    _, single, _ = run(capsys, "inspect", "xray", str(scans), "--batch", "1")
    assert batched == single and len(batched) == 4
    # Without the mirrored view (the detector's default adds it) every image still gets its line.
    plain_code, plain, _ = run(capsys, "inspect", "xray", str(scans), "--no-flip-tta")
    assert plain_code == code and [json.loads(r)["image"] for r in plain] == [json.loads(r)["image"] for r in batched]


def test_all_images_ok_exits_zero_and_conf_overrides_every_class(env, capsys):
    path = env / "grey.png"
    path.write_bytes(encode_png(np.full((64, 64, 3), 128, np.uint8)))

    code, lines, _ = run(capsys, "inspect", "xray", str(path), "--conf", "0.5")

    assert code == 0
    assert json.loads(lines[0]) == {"image": str(path), "detections": [], "risk": "clear"}


def test_document_lines_have_no_risk(env, capsys):
    path = env / "page.png"
    path.write_bytes(encode_png(np.full((128, 128, 3), 255, np.uint8)))

    code, lines, _ = run(capsys, "inspect", "document", str(path))

    assert code == 0
    (row,) = (json.loads(line) for line in lines)
    assert row == {
        "image": str(path),
        "detections": [{"label": "stamp", "confidence": 0.9, "box": [32.0, 48.0, 96.0, 80.0]}],
    }


def test_annotate_writes_one_jpeg_per_image(scans, capsys):
    out = scans.parent / "annotated"
    (scans / "other").mkdir()
    (scans / "other" / "white.png").write_bytes((scans / "sub" / "white.png").read_bytes())

    code, lines, _ = run(capsys, "inspect", "xray", str(scans), "--annotate", str(out))

    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["black.jpg", "grey.jpg", "white-2.jpg", "white.jpg"]
    rows = {json.loads(line)["image"]: json.loads(line) for line in lines}
    assert rows[str(scans / "sub" / "white.png")]["annotated"] == str(out / "white-2.jpg")
    drawn = np.asarray(Image.open(out / "white.jpg").convert("RGB"))
    assert drawn.shape == (128, 128, 3)
    # the box outline changes pixels along the box edge of a plain white image; the centre stays white
    assert drawn[64, 30:35].min() < 200
    assert drawn[64, 64].min() > 240
    plain = np.asarray(Image.open(out / "black.jpg").convert("RGB"))
    assert plain.max() < 20  # no detections: nothing drawn


def test_table_format(scans, capsys):
    code, lines, _ = run(capsys, "inspect", "xray", str(scans), "--format", "table")
    assert code == 1
    assert lines[0].split() == ["IMAGE", "STATUS", "DETECTIONS"]
    body = {Path(line.split()[0]).name: line for line in lines[1:]}
    assert "alarm" in body["white.png"] and "handgun 0.90 [32, 48, 96, 80]" in body["white.png"]
    assert body["black.png"].split()[1:] == ["clear", "-"]
    assert body["broken.png"].split()[1] == "ERROR"


def test_close_up_tiles_are_on_unless_turned_off(env, capsys, monkeypatch):
    scan = env / "white.png"
    scan.write_bytes(encode_png(np.full((128, 128, 3), 255, np.uint8)))

    def boxes(*extra: str) -> int:
        code, lines, _ = run(capsys, "inspect", "xray", str(scan), "--threads", "1", *extra)
        assert code == 0
        return len(json.loads(lines[0])["detections"])

    # The fixed-place box lands elsewhere in the scan in each tile: more boxes with the tiles.
    monkeypatch.delenv("CV_XRAY_TILES")
    assert boxes() > 1
    assert boxes("--no-tiles") == 1
    monkeypatch.setenv("CV_XRAY_TILES", "false")
    assert boxes() == 1


def test_missing_model_exits_two_with_a_clear_message(env, capsys, monkeypatch):
    monkeypatch.setenv("CV_MODELS_DIR", str(env / "empty"))
    path = env / "x.png"
    path.write_bytes(encode_png(np.zeros((8, 8, 3), np.uint8)))

    code, lines, err = run(capsys, "inspect", "xray", str(path))

    assert code == 2 and lines == []
    assert "model card not found" in err and str(env / "empty" / "xray.json") in err


def test_changed_model_file_exits_two(env, capsys):
    with open(env / "models" / "document.onnx", "ab") as f:
        f.write(b"\0")
    code, _, err = run(capsys, "inspect", "document", str(env), "--model", str(env / "models" / "document.json"))
    assert code == 2 and "changed after it was measured" in err


def test_no_images_exits_two(env, capsys):
    empty = env / "nothing"
    empty.mkdir()
    code, lines, err = run(capsys, "inspect", "xray", str(empty))
    assert code == 2 and lines == [] and "no images found" in err


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--conf", "1.5"], ["--format", "xml"]])
def test_bad_arguments_are_usage_errors(env, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(["inspect", "xray", str(env), *argv])
    assert exc.value.code == 2
