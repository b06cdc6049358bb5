"""Tests of detectors.datasets: the deterministic real split, label remapping, the prepared folder."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from detectors.datasets import (
    DatasetError,
    iter_real,
    labels_to_ground_truth,
    load_prepared,
    prepare_detection_data,
    read_yolo_labels,
    real_split,
    source_key,
)
from detectors.xray import XRAY_CLASSES
from tests.detectors.fixtures_yolo import make_fake_real, make_synthetic


def test_source_key_strips_roboflow_suffix():
    assert source_key("009000_jpg.rf.8c46e1aa5b46a0ad24ee4bcb2945d22a") == "009000_jpg"
    assert source_key("plain_name") == "plain_name"


def test_real_split_is_deterministic_and_proportional():
    stems = [f"{i:06d}_jpg.rf.{i * 7919:x}" for i in range(4000)]
    splits = [real_split(s) for s in stems]
    assert splits == [real_split(s) for s in stems]
    counts = Counter(splits)
    assert abs(counts["test"] / 4000 - 0.15) < 0.02
    assert abs(counts["val"] / 4000 - 0.05) < 0.015
    # Augmented copies of one source scan (same name before .rf.) always land together.
    assert real_split("000123_jpg.rf.aaaa") == real_split("000123_jpg.rf.bbbb")


def test_read_yolo_labels(tmp_path):
    assert read_yolo_labels(None).shape == (0, 5)
    f = tmp_path / "a.txt"
    f.write_text("1 0.5 0.5 0.2 0.4\n\n3 0.1 0.1 0.2 0.2")
    np.testing.assert_allclose(read_yolo_labels(f, 7), [[1, 0.5, 0.5, 0.2, 0.4], [3, 0.1, 0.1, 0.2, 0.2]])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1 0.5 0.5 0.2", "expected 'class cx cy w h'"),
        ("x 0.5 0.5 0.2 0.2", "not numbers"),
        ("9 0.5 0.5 0.2 0.2", "class id 9"),
        ("1.5 0.5 0.5 0.2 0.2", "class id"),
        ("1 0.95 0.5 0.2 0.2", "outside the image"),
        ("1 0.5 0.5 0 0.2", "empty"),
    ],
)
def test_read_yolo_labels_rejects_bad_lines(tmp_path, line, message):
    f = tmp_path / "bad.txt"
    f.write_text(line + "\n")
    with pytest.raises(DatasetError, match=message) as err:
        read_yolo_labels(f, 7)
    assert "bad.txt:1" in str(err.value)


def test_labels_to_ground_truth():
    g = labels_to_ground_truth(np.array([[2, 0.5, 0.25, 0.2, 0.1]]), width=200, height=100)
    np.testing.assert_allclose(g.xyxy, [[80, 20, 120, 30]])
    assert g.class_id.tolist() == [2]


def test_prepare_mixes_sources_remaps_real_and_holds_out_test(tmp_path):
    synth = make_synthetic(tmp_path / "synth", train=5, val=3)
    real = make_fake_real(tmp_path / "real", count=40)
    prepared = prepare_detection_data(
        out_dir=tmp_path / "run" / "data", class_names=XRAY_CLASSES, synthetic_dirs=[synth], real_dir=real
    )
    expected = Counter(real_split(item.image.stem) for item in iter_real(real))
    real_summary = next(s for s in prepared.sources if s.name == "real")
    assert real_summary.counts == {"train": expected["train"], "val": expected["val"], "test": expected["test"]}
    assert expected["test"] > 0  # the fixture is large enough to exercise the held-out split
    assert real_summary.provenance == str((real / "PROVENANCE.md").resolve())
    assert prepared.counts("train") == 5 + expected["train"]
    assert prepared.counts("val") == 3 + expected["val"]

    root = prepared.root
    images = sorted((root / "images").rglob("*.*"))
    # Nothing is copied: every image in the run's data folder is a link to its source.
    assert images and all(p.is_symlink() for p in images)
    linked_real = {p.resolve() for p in images if p.name.startswith("real__")}
    test_images = {item.image.resolve() for item in iter_real(real, "test")}
    assert not linked_real & test_images
    assert len(linked_real) == expected["train"] + expected["val"]
    # Every real label is remapped to "knife"; the source labels are untouched.
    for label in (root / "labels").rglob("real__*.txt"):
        assert {line.split()[0] for line in label.read_text().splitlines()} == {str(XRAY_CLASSES.index("knife"))}
    assert any(line.split()[0] != "1" for f in (real / "labels").glob("*.txt") for line in f.read_text().splitlines())
    # Synthetic labels are kept with their classes.
    src = (synth / "labels" / "train" / "train_000.txt").read_text().split()
    dst = (root / "labels" / "train" / "synth0__train_000.txt").read_text().split()
    assert src[0::5] == dst[0::5]

    data = yaml.safe_load(prepared.data_yaml.read_text())
    assert data["names"] == dict(enumerate(XRAY_CLASSES))
    assert (Path(data["path"]) / data["train"]).is_dir()
    manifest = json.loads((root / "manifest.json").read_text())
    assert "sha256" in manifest["real_split_rule"]
    assert load_prepared(root) == prepared


def test_prepare_weights_real_up_and_limits_synthetic(tmp_path):
    synth = make_synthetic(tmp_path / "synth", train=7, val=3)
    real = make_fake_real(tmp_path / "real", count=40)
    prepared = prepare_detection_data(
        out_dir=tmp_path / "data",
        class_names=XRAY_CLASSES,
        synthetic_dirs=[synth],
        real_dir=real,
        real_repeat=3,
        synthetic_train_limit=3,
    )
    expected = Counter(real_split(item.image.stem) for item in iter_real(real))
    root = prepared.root
    train = sorted(p.name for p in (root / "images" / "train").iterdir())
    # Evenly spaced synthetic subset (first image kept), every synthetic val image kept.
    assert [n for n in train if n.startswith("synth0__")] == [
        "synth0__train_000.png",
        "synth0__train_002.png",
        "synth0__train_004.png",
    ]
    assert len(list((root / "images" / "val").glob("synth0__*"))) == 3
    # Each real train scan is listed three times (same file, own label), real val scans once.
    real_train = [n for n in train if n.startswith("real")]
    assert len(real_train) == 3 * expected["train"]
    assert len({(root / "images" / "train" / n).resolve() for n in real_train}) == expected["train"]
    assert all((root / "labels" / "train" / (Path(n).stem + ".txt")).is_file() for n in real_train)
    assert len(list((root / "images" / "val").glob("real*"))) == expected["val"]
    real_summary = next(s for s in prepared.sources if s.name == "real")
    assert real_summary.repeat == 3 and real_summary.counts["train"] == expected["train"]
    assert next(s for s in prepared.sources if s.name == "synthetic").counts == {"train": 3, "val": 3}
    assert load_prepared(root) == prepared
    with pytest.raises(DatasetError, match="real_repeat"):
        prepare_detection_data(out_dir=tmp_path / "x", class_names=XRAY_CLASSES, real_dir=real, real_repeat=0)
    with pytest.raises(DatasetError, match="synthetic_train_limit"):
        prepare_detection_data(
            out_dir=tmp_path / "y", class_names=XRAY_CLASSES, synthetic_dirs=[synth], synthetic_train_limit=0
        )


def test_prepare_writes_a_share_of_images_in_grey(tmp_path):
    import cv2

    synth = make_synthetic(tmp_path / "synth", train=20, val=10)
    real = make_fake_real(tmp_path / "real", count=40)
    prepared = prepare_detection_data(
        out_dir=tmp_path / "data",
        class_names=XRAY_CLASSES,
        synthetic_dirs=[synth],
        real_dir=real,
        greyscale_fraction=0.5,
    )
    images = sorted((prepared.root / "images").rglob("*.*"))
    grey = [p for p in images if not p.is_symlink()]
    assert 0.25 * len(images) < len(grey) < 0.75 * len(images)
    for path in grey:
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert pixels is not None and pixels.shape[2] == 3
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    # The colour sources are untouched, and the choice is the same on every preparation.
    assert all(p.resolve().is_relative_to(tmp_path / "synth") or "real" in p.name for p in images if p.is_symlink())
    again = prepare_detection_data(
        out_dir=tmp_path / "data",
        class_names=XRAY_CLASSES,
        synthetic_dirs=[synth],
        real_dir=real,
        greyscale_fraction=0.5,
    )
    assert {p for p in (again.root / "images").rglob("*.*") if not p.is_symlink()} == set(grey)
    assert json.loads((again.root / "manifest.json").read_text())["greyscale_fraction"] == 0.5
    with pytest.raises(DatasetError, match="greyscale_fraction"):
        prepare_detection_data(out_dir=tmp_path / "z", class_names=XRAY_CLASSES, real_dir=real, greyscale_fraction=1.5)


def test_prepare_is_repeatable(tmp_path):
    synth = make_synthetic(tmp_path / "synth", train=3, val=2)
    out = tmp_path / "data"
    prepare_detection_data(out_dir=out, class_names=XRAY_CLASSES, synthetic_dirs=[synth])
    first = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    prepare_detection_data(out_dir=out, class_names=XRAY_CLASSES, synthetic_dirs=[synth])
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == first


def test_prepare_errors(tmp_path):
    synth = make_synthetic(tmp_path / "synth", train=2, val=1)
    with pytest.raises(DatasetError, match="no training data"):
        prepare_detection_data(out_dir=tmp_path / "a", class_names=XRAY_CLASSES)
    with pytest.raises(DatasetError, match="names classes"):
        prepare_detection_data(out_dir=tmp_path / "b", class_names=("stamp", "signature"), synthetic_dirs=[synth])
    with pytest.raises(DatasetError, match="does not exist"):
        prepare_detection_data(out_dir=tmp_path / "c", class_names=XRAY_CLASSES, synthetic_dirs=[tmp_path / "nope"])
    # A folder that is not a prepared data folder is never emptied.
    foreign = tmp_path / "foreign"
    (foreign / "images" / "train").mkdir(parents=True)
    (foreign / "images" / "train" / "precious.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="refusing"):
        prepare_detection_data(out_dir=foreign, class_names=XRAY_CLASSES, synthetic_dirs=[synth])
    assert (foreign / "images" / "train" / "precious.jpg").exists()
    with pytest.raises(DatasetError, match="not a prepared data folder"):
        load_prepared(tmp_path / "a")
