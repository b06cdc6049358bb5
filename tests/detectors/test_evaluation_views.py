"""The displays an evaluation can show the model (``evaluate --view``): transforms, card keys, CLI.

The transforms are checked on seeded random and hand-made pixels; the CLI end to end on a tiny
fake real set whose every scan is white with one dark object where the tiny constant ONNX model of
``test_inspect_cli`` boxes it (its scores scale with the image's brightness): shown as scanned the
object is found; shown inverted (a black scan) it is found only by the X-ray detector, which turns
negative displays back (:func:`detectors.xray.as_positive`), not by a plain detector. No training.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest

from detectors.datasets import iter_real
from detectors.evaluation import (
    DEFAULT_VIEW,
    VIEWS,
    as_greyscale,
    evaluate_detector,
    rotate_hue,
    view_key_suffix,
)
from detectors.xray import XRAY_CLASSES
from service.cli import build_parser, main
from service.commands.evaluate_detector import view_arguments
from tests.detectors.fixtures_yolo import make_fake_real
from tests.detectors.test_inspect_cli import write_model
from vision.imageio import encode_jpeg
from vision.modelcard import ModelCard

RNG_SEED = 7


@pytest.fixture
def noise() -> np.ndarray:
    return np.random.default_rng(RNG_SEED).integers(0, 256, (32, 48, 3), dtype=np.uint8)


def hsv(image: np.ndarray) -> np.ndarray:
    """Floating-point HSV: hue in degrees, saturation and value in [0, 1]."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)


def pixel(r: int, g: int, b: int) -> np.ndarray:
    return np.array([[[r, g, b]]], np.uint8)


# --- the transforms ---


def test_every_view_keeps_shape_and_type(noise):
    for name, view in VIEWS.items():
        out = view.transform(noise)
        assert out.shape == noise.shape and out.dtype == np.uint8, name
        assert view.description and "\n" not in view.description


def test_scanned_is_the_default_and_the_identity(noise):
    assert DEFAULT_VIEW == "scanned"
    assert VIEWS["scanned"].description == "as scanned"
    np.testing.assert_array_equal(VIEWS["scanned"].transform(noise), noise)


def test_grey_is_the_luma_with_its_recorded_description(noise):
    assert VIEWS["grey"].description == "greyscale (luma)"  # what existing cards record
    expected = cv2.cvtColor(noise, cv2.COLOR_RGB2GRAY)
    grey = VIEWS["grey"].transform(noise)
    np.testing.assert_array_equal(grey, as_greyscale(noise))
    for c in range(3):
        np.testing.assert_array_equal(grey[..., c], expected)


def test_grey_inverted_is_255_minus_the_luma(noise):
    expected = 255 - cv2.cvtColor(noise, cv2.COLOR_RGB2GRAY).astype(np.int16)
    inverted = VIEWS["grey-inverted"].transform(noise)
    for c in range(3):
        np.testing.assert_array_equal(inverted[..., c], expected)
    # Pure red 200 has luma 0.299 * 200 = 60; black becomes white and white black.
    assert (VIEWS["grey-inverted"].transform(pixel(200, 0, 0)) == 195).all()
    assert (VIEWS["grey-inverted"].transform(pixel(0, 0, 0)) == 255).all()
    assert (VIEWS["grey-inverted"].transform(pixel(255, 255, 255)) == 0).all()


@pytest.mark.parametrize(("name", "degrees"), [("hue+25", 25.0), ("hue-25", -25.0)])
def test_hue_views_rotate_the_hue_and_keep_saturation_and_value(noise, name, degrees):
    out = VIEWS[name].transform(noise)
    # Value is the largest channel, value * (1 - saturation) the smallest: both unchanged.
    np.testing.assert_array_equal(out.max(axis=2), noise.max(axis=2))
    np.testing.assert_array_equal(out.min(axis=2), noise.min(axis=2))
    before, after = hsv(noise), hsv(out)
    # Where the colour is strong the 8-bit rounding of the middle channel moves the hue < 0.25 degree.
    strong = (noise.max(axis=2).astype(int) - noise.min(axis=2)) >= 128
    assert strong.sum() > 100
    shift = np.mod(after[..., 0] - before[..., 0] + 180.0, 360.0) - 180.0
    np.testing.assert_allclose(shift[strong], degrees, atol=0.25)
    assert not np.allclose(out, noise)


def test_hue_rotation_wraps_around_360():
    red = pixel(255, 0, 0)  # hue 0
    np.testing.assert_array_equal(VIEWS["hue-25"].transform(red), pixel(255, 0, 106))  # hue 335
    np.testing.assert_array_equal(VIEWS["hue+25"].transform(red), pixel(255, 106, 0))  # hue 25
    rose = pixel(255, 0, 43)  # hue 350
    assert hsv(VIEWS["hue+25"].transform(rose))[0, 0, 0] == pytest.approx(15.0, abs=0.3)
    np.testing.assert_array_equal(rotate_hue(red, 3 * 360.0 + 25.0), VIEWS["hue+25"].transform(red))


def test_hue_rotation_leaves_grey_alone_and_is_undone_by_the_opposite_one(noise):
    greys = np.repeat(np.arange(0, 256, 15, dtype=np.uint8)[None, :, None], 3, axis=2)
    for name in ("hue+25", "hue-25"):
        np.testing.assert_array_equal(VIEWS[name].transform(greys), greys)
    back = VIEWS["hue-25"].transform(VIEWS["hue+25"].transform(noise))
    assert np.abs(back.astype(int) - noise).max() <= 1


# --- card keys ---


@pytest.mark.parametrize(
    ("view", "suffix"),
    [
        ("scanned", ""),
        ("grey", "_greyscale"),
        ("grey-inverted", "_grey_inverted"),
        ("hue+25", "_hue_plus25"),
        ("hue-25", "_hue_minus25"),
    ],
)
def test_key_suffix(view, suffix):
    assert view_key_suffix(view) == suffix
    assert re.fullmatch(r"(_[a-z0-9_]+)?", suffix)


def test_key_suffixes_are_distinct_and_unknown_views_are_refused(tmp_path):
    assert len({view_key_suffix(v) for v in VIEWS}) == len(VIEWS)
    with pytest.raises(ValueError, match="hue\\+25"):
        view_key_suffix("sepia")
    # evaluate_detector refuses an unknown view before it looks at the card or the data.
    with pytest.raises(ValueError, match=r"unknown view 'sepia'.*grey-inverted"):
        evaluate_detector(tmp_path / "missing.json", "real", real_dir=tmp_path, view="sepia")


# --- the command line ---

BASE = ["evaluate", "xray", "--data", "real"]


def test_cli_parses_view_and_its_greyscale_alias():
    parser = build_parser()
    assert parser.parse_args(BASE).view is None  # the handler reads that as the default view
    assert parser.parse_args([*BASE, "--greyscale"]).view == "grey"
    for name in VIEWS:
        assert parser.parse_args([*BASE, "--view", name]).view == name
    assert parser.parse_args(["evaluate", "document", "--data", "x", "--view", "hue-25"]).view == "hue-25"


@pytest.mark.parametrize(
    "argv",
    [["--view", "grey", "--greyscale"], ["--greyscale", "--view", "scanned"], ["--view", "scanned", "--greyscale"]],
)
def test_cli_view_and_greyscale_are_exclusive(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*BASE, *argv])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_unknown_view_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*BASE, "--view", "sepia"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'sepia'" in err
    assert all(repr(name) in err for name in VIEWS)


def test_recorded_view_arguments_reproduce_the_view():
    assert view_arguments("scanned") == []
    assert view_arguments("grey") == ["--greyscale"]  # as the cards measured before --view record it
    assert view_arguments("hue+25") == ["--view", "hue+25"]
    parser = build_parser()
    for name in VIEWS:
        assert (parser.parse_args([*BASE, *view_arguments(name)]).view or DEFAULT_VIEW) == name


# --- end to end ---


@pytest.fixture
def white_real(tmp_path) -> Path:
    """A fake real folder whose scans are white with one dark object where the constant model boxes it."""
    real = make_fake_real(tmp_path / "real", count=40)
    scan = np.full((64, 64, 3), 255, np.uint8)
    scan[26:38, 18:46] = 40
    white = encode_jpeg(scan)
    for image in (real / "images").iterdir():
        image.write_bytes(white)
        (real / "labels" / f"{image.stem}.txt").write_text("0 0.500000 0.500000 0.500000 0.250000")
    return real


def test_evaluate_cli_records_each_view_under_its_key(white_real, tmp_path, capsys):
    card_path = write_model(tmp_path / "models", "xray", XRAY_CLASSES)
    test_images = sum(1 for _ in iter_real(white_real, "test"))
    assert test_images > 0
    args = ["evaluate", "xray", "--model", str(card_path), "--data", "real", "--real", str(white_real)]
    args += ["--threads", "1", "--write-card"]
    runs = {
        "real_test": ([], "as scanned", "scanned"),
        "real_test_greyscale": (["--greyscale"], "greyscale (luma)", "grey"),
        "real_test_grey_inverted": (["--view", "grey-inverted"], "greyscale inverted (255 - luma)", "grey-inverted"),
        "real_test_hue_plus25": (["--view", "hue+25"], "hue rotated by +25 degrees (HSV)", "hue+25"),
    }
    for key, (flags, description, _) in runs.items():
        assert main([*args, *flags]) == 0
        out = capsys.readouterr().out
        assert description in out and f"recorded as metrics[{key!r}]" in out
    metrics = ModelCard.load(card_path).metrics
    assert set(metrics) == set(runs)
    parser = build_parser()
    for key, (flags, description, name) in runs.items():
        block = metrics[key]
        assert block["view"] == description and block["num_images"] == test_images
        recorded = shlex.split(block["command"])
        assert recorded[:2] == ["customs-vision", "evaluate"]
        assert (parser.parse_args(recorded[1:]).view or DEFAULT_VIEW) == name
        view_flags = [a for a in recorded if a.startswith("--view") or a == "--greyscale"]
        assert view_flags == flags[:1] and recorded[len(recorded) - len(flags) :] == flags
    # White scans: the brightness model finds every object. Inverted they are black, and the X-ray
    # detector turns them back before the model: found as well.
    for key in runs:
        assert metrics[key]["recall"] == 1.0 and metrics[key]["map50"] == pytest.approx(1.0)


def test_a_model_outside_the_catalog_is_shown_the_negative_as_is(white_real, tmp_path):
    card_path = write_model(tmp_path / "models", "tiny", XRAY_CLASSES)
    scanned = evaluate_detector(card_path, "real", real_dir=white_real, backend_kwargs={"threads": 1})
    inverted = evaluate_detector(
        card_path, "real", real_dir=white_real, backend_kwargs={"threads": 1}, view="grey-inverted"
    )
    # Its scores scale with brightness: the dark negative never reaches the 0.25 reporting threshold.
    assert scanned["recall"] == 1.0 and inverted["recall"] == 0.0


def test_explicit_key_overrides_the_view_suffix(white_real, tmp_path, capsys):
    card_path = write_model(tmp_path / "models", "xray", XRAY_CLASSES)
    argv = ["evaluate", "xray", "--model", str(card_path), "--data", "real", "--real", str(white_real)]
    assert main([*argv, "--threads", "1", "--view", "hue-25", "--write-card", "--key", "vendor_b", "--limit", "2"]) == 0
    block = ModelCard.load(card_path).metrics["vendor_b"]
    assert block["view"] == "hue rotated by -25 degrees (HSV)" and block["num_images"] == 2
    assert block["command"].endswith("--limit 2 --view hue-25")
    assert "recorded as metrics['vendor_b']" in capsys.readouterr().out


def test_the_mirrored_view_is_measured_by_default_and_can_be_left_out(white_real, tmp_path, capsys):
    card_path = write_model(tmp_path / "models", "xray", XRAY_CLASSES)
    argv = ["evaluate", "xray", "--model", str(card_path), "--data", "real", "--real", str(white_real)]
    argv += ["--threads", "1", "--limit", "2", "--write-card"]
    assert main([*argv, "--key", "with"]) == 0
    assert main([*argv, "--key", "without", "--no-flip-tta"]) == 0
    metrics = ModelCard.load(card_path).metrics
    assert metrics["with"]["detector"]["flip_tta"] is True
    assert metrics["without"]["detector"]["flip_tta"] is False
    recorded = shlex.split(metrics["without"]["command"])
    assert recorded[-1] == "--no-flip-tta" and build_parser().parse_args(recorded[1:]).flip_tta is False
    capsys.readouterr()
