"""Tests of the synthetic dual-energy X-ray generator (detectors.synth.xray*)."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from detectors.synth.xray import XRAY_CLASSES, generate_scan, parse_size
from detectors.synth.xray_dataset import split_of, write_dataset
from detectors.synth.xray_display import fuse_dual_energy, render_greyscale
from detectors.synth.xray_materials import MATERIALS, Material, attenuation, material, mixture, transmission
from detectors.synth.xray_scene import (
    DENSE_ATTENUATION,
    HARD_FRACTION,
    HIDDEN_FRACTION,
    OVERLAP_ATTENUATION,
    Scene,
    SceneThreat,
    concealment_level,
    placement,
    warp,
)
from detectors.synth.xray_shapes import SpriteCanvas
from service.cli import main as cli_main

SIZE = 192  # small scans keep the suite fast; the generator is resolution-independent


@pytest.fixture(scope="module")
def scans():
    """A fixed batch of small scans shared by the read-only tests."""
    return [generate_scan(11, i, size=SIZE) for i in range(36)]


# ----------------------------------------------------------------------------------------- API
def test_class_order_is_fixed():
    assert XRAY_CLASSES == (
        "handgun",
        "knife",
        "scissors_blade",
        "ammunition",
        "drug_package",
        "gold_bar",
        "cash_bundle",
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [(640, (640, 640)), ("640x480", (640, 480)), ("256", (256, 256)), ((320, 240), (320, 240))],
)
def test_parse_size(size, expected):
    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["", "abc", "640x", "1x2x3", 16, "64x9000", (0, 100)])
def test_parse_size_rejects(size):
    with pytest.raises(ValueError):
        parse_size(size)


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"index": -2}, {"greyscale_fraction": 1.5}])
def test_generate_scan_rejects_bad_arguments(kwargs):
    args = {"seed": 0, "index": 0, "size": 64} | kwargs
    with pytest.raises(ValueError):
        generate_scan(**args)


def test_non_square_size():
    scan = generate_scan(3, 1, size=(224, 160))
    assert scan.image.shape == (160, 224, 3)
    assert scan.image.dtype == np.uint8
    assert scan.attenuation.shape == (160, 224, 2)
    for obj in scan.objects:
        assert obj.mask.shape == (160, 224)


# -------------------------------------------------------------------------------- determinism
def test_same_seed_and_index_give_identical_scans():
    a = generate_scan(5, 3, size=SIZE)
    b = generate_scan(5, 3, size=SIZE)
    assert a.image.tobytes() == b.image.tobytes()
    assert [(o.class_id, o.box, o.concealment) for o in a.objects] == [
        (o.class_id, o.box, o.concealment) for o in b.objects
    ]


def test_different_seed_or_index_differ():
    base = generate_scan(5, 3, size=SIZE).image
    assert generate_scan(6, 3, size=SIZE).image.tobytes() != base.tobytes()
    assert generate_scan(5, 4, size=SIZE).image.tobytes() != base.tobytes()


def test_rendering_mode_does_not_change_the_scene():
    colour = generate_scan(2, 9, size=SIZE, greyscale=False)
    grey = generate_scan(2, 9, size=SIZE, greyscale=True)
    assert colour.mode == "dual_energy" and grey.mode == "single_energy"
    assert np.array_equal(colour.attenuation, grey.attenuation)
    assert np.array_equal(grey.image[..., 0], grey.image[..., 1])
    assert np.array_equal(grey.image[..., 1], grey.image[..., 2])


@pytest.mark.parametrize(("fraction", "mode"), [(0.0, "dual_energy"), (1.0, "single_energy")])
def test_greyscale_fraction_bounds(fraction, mode):
    assert {generate_scan(1, i, size=64, greyscale_fraction=fraction).mode for i in range(6)} == {mode}


# --------------------------------------------------------------------------------------- labels
def test_every_box_is_the_tight_box_of_its_object_pixels(scans):
    n = 0
    for scan in scans:
        for obj in scan.objects:
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < x2 <= scan.width and 0 <= y1 < y2 <= scan.height
            inside = np.zeros_like(obj.mask)
            inside[y1:y2, x1:x2] = True
            assert obj.mask.any()
            assert not (obj.mask & ~inside).any(), "object pixels outside its label box"
            # Tight: the mask touches all four sides of the box.
            assert obj.mask[y1, x1:x2].any() and obj.mask[y2 - 1, x1:x2].any()
            assert obj.mask[y1:y2, x1].any() and obj.mask[y1:y2, x2 - 1].any()
            cid, cx, cy, w, h = obj.yolo(scan.width, scan.height)
            assert cid == obj.class_id and XRAY_CLASSES[cid] == obj.class_name
            assert 0 < w <= 1 and 0 < h <= 1 and 0 <= cx <= 1 and 0 <= cy <= 1
            n += 1
    assert n >= 20


def test_object_mask_is_where_the_object_attenuates(scans):
    """The mask is the object's own footprint: the scene attenuates at least as much there."""
    for scan in scans:
        for obj in scan.objects:
            assert (scan.attenuation[..., 0][obj.mask] > 0).all()


def test_threat_classes_and_subtypes_all_occur():
    seen: dict[str, set[str]] = {}
    for i in range(70):
        for obj in generate_scan(21, i, size=128).objects:
            seen.setdefault(obj.class_name, set()).add(obj.subtype)
    assert set(seen) == set(XRAY_CLASSES)
    assert {"pistol", "revolver"} & seen["handgun"]
    assert len(seen["knife"]) >= 2


# ---------------------------------------------------------------------------------- concealment
@pytest.mark.parametrize(
    ("other", "level"),
    [
        (np.zeros(100, np.float32), "easy"),
        (np.full(100, OVERLAP_ATTENUATION + 0.1, np.float32), "hard"),
        (np.full(100, DENSE_ATTENUATION + 0.1, np.float32), "hidden"),
        (np.array([], np.float32), "easy"),
    ],
)
def test_concealment_level_thresholds(other, level):
    assert concealment_level(other)[0] == level


def test_concealment_fraction_boundaries():
    n = 100
    k_hard = int(np.ceil(HARD_FRACTION * n))
    other = np.zeros(n, np.float32)
    other[: k_hard - 1] = OVERLAP_ATTENUATION + 0.1
    assert concealment_level(other)[0] == "easy"
    other[:k_hard] = OVERLAP_ATTENUATION + 0.1
    assert concealment_level(other)[0] == "hard"
    other[: int(np.ceil(HIDDEN_FRACTION * n))] = DENSE_ATTENUATION + 0.1
    assert concealment_level(other)[0] == "hidden"


def _slab(mat: Material, w_cm: float, h_cm: float, t_cm: float, s: float = 4.0):
    c = SpriteCanvas(w_cm, h_cm, s)
    c.rect(mat, 0, 0, w_cm, h_cm, t_cm)
    return c.sprite(mat.name)


def test_concealment_is_measured_from_what_overlaps():
    """The same threat is easy in the open, hidden under a dense slab: measured, not intended."""
    knife_like = _slab(material("steel"), 10, 2, 0.3)
    laptop_like = _slab(material("battery"), 20, 12, 1.2)
    for covered, expected in ((False, "easy"), (True, "hidden")):
        scene = Scene(np.zeros((120, 160, 2), np.float32))
        if covered:
            scene.add(warp(laptop_like, placement(laptop_like, 60, 60, 0.0), 160, 120))
        patch = warp(knife_like, placement(knife_like, 60, 60, 30.0), 160, 120)
        scene.add(patch)
        scene.threats.append(SceneThreat("knife", "test", "easy", patch))
        scene.measure_concealment()
        assert scene.threats[0].concealment == expected


def test_concealment_levels_all_present_and_consistent(scans):
    levels = set()
    for scan in scans:
        for obj in scan.objects:
            levels.add(obj.concealment)
            if obj.concealment == "hidden":
                assert obj.dense_fraction >= HIDDEN_FRACTION
            elif obj.concealment == "hard":
                assert obj.dense_fraction < HIDDEN_FRACTION and obj.overlapped_fraction >= HARD_FRACTION
            else:
                assert obj.overlapped_fraction < HARD_FRACTION
    assert levels == {"easy", "hard", "hidden"}


# ------------------------------------------------------------------------------------- physics
def test_beer_lambert_overlap_adds_in_log_domain():
    water, steel = material("water"), material("steel")
    a = _slab(water, 10, 10, 4.0)
    b = _slab(steel, 10, 10, 0.2)
    scene = Scene(np.zeros((100, 100, 2), np.float32))
    scene.add(warp(a, placement(a, 40, 50, 0.0), 100, 100))
    scene.add(warp(b, placement(b, 60, 50, 0.0), 100, 100))
    expected_a = attenuation(water, 4.0)
    expected_b = attenuation(steel, 0.2)
    np.testing.assert_allclose(scene.att[50, 30], expected_a, rtol=1e-5)
    np.testing.assert_allclose(scene.att[50, 70], expected_b, rtol=1e-5)
    np.testing.assert_allclose(scene.att[50, 50], expected_a + expected_b, rtol=1e-5)
    # Overlap multiplies transmissions: I/I0 = exp(-(A1 + A2)) = T1 * T2.
    np.testing.assert_allclose(
        transmission(scene.att[50, 50]), transmission(expected_a) * transmission(expected_b), rtol=1e-5
    )


def test_material_table_orders_effective_atomic_number():
    ratio = {name: m.ratio for name, m in MATERIALS.items()}
    organics = ("fabric", "paper", "plastic", "water", "drug", "organic_dense")
    assert max(ratio[n] for n in organics) < ratio["aluminium"] < ratio["steel"] < ratio["copper"]
    assert material("gold").linear[0] > 20 * material("water").linear[0]


def test_mixture_and_lookup_errors():
    steel, water = material("steel"), material("water")
    mix = mixture("half", 4.0, {steel: 0.5, water: 0.5})
    assert mix.mu_low == pytest.approx((steel.mu_low + water.mu_low) / 2)
    with pytest.raises(ValueError, match="sum to 1"):
        mixture("bad", 1.0, {steel: 0.7, water: 0.7})
    with pytest.raises(KeyError, match="unknown X-ray material"):
        material("unobtainium")


def _render_slab(mat: Material, t_cm: float) -> np.ndarray:
    att = np.zeros((48, 48, 2), np.float32)
    att[12:36, 12:36] = attenuation(mat, t_cm)
    return fuse_dual_energy(att, edge_amount=0.0)


def _hue_deg(rgb: np.ndarray) -> float:
    r, g, b = (float(v) / 255 for v in rgb)
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def test_colour_convention():
    organic = _render_slab(material("organic_dense"), 4.0)[24, 24]
    steel = _render_slab(material("steel"), 0.2)[24, 24]
    alu = _render_slab(material("aluminium"), 1.5)[24, 24]
    gold = _render_slab(material("gold"), 0.3)[24, 24]
    empty = _render_slab(material("water"), 1.0)[2, 2]
    assert 15 <= _hue_deg(organic) <= 45 and organic[0] > organic[1] > organic[2]  # orange
    assert 190 <= _hue_deg(steel) <= 240 and steel[2] > steel[0]  # blue
    assert 80 <= _hue_deg(alu) <= 160 and alu[1] > alu[0] and alu[1] > alu[2]  # green
    assert int(gold.max()) < 40  # near black even when thin
    assert empty.tolist() == [255, 255, 255]


def test_brightness_falls_with_thickness_and_greyscale_is_grey():
    water = material("water")
    lum = [int(_render_slab(water, t)[24, 24].astype(int).sum()) for t in (1.0, 5.0, 20.0)]
    assert lum[0] > lum[1] > lum[2]
    att = np.zeros((16, 16, 2), np.float32)
    att[4:12, 4:12] = attenuation(water, 5.0)
    grey = render_greyscale(att, edge_amount=0.0)
    assert grey[0, 0].tolist() == [255, 255, 255]
    assert grey[8, 8, 0] == grey[8, 8, 1] == grey[8, 8, 2] < 255


# -------------------------------------------------------------------------------------- dataset
def test_split_is_deterministic_and_proportional():
    splits = [split_of(i, 0.1) for i in range(1000)]
    assert splits.count("val") == 100
    assert [split_of(i, 0.1) for i in range(1000)] == splits
    assert {split_of(i, 0.0) for i in range(50)} == {"train"}
    with pytest.raises(ValueError):
        split_of(0, 1.5)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_layout_and_label_format(tmp_path):
    out = tmp_path / "ds"
    summary = write_dataset(out, 10, 4, size=(160, 128), val_fraction=0.2)
    assert (summary.images, summary.train, summary.val) == (10, 8, 2)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["path"] == str(out.resolve())
    assert (data["train"], data["val"]) == ("images/train", "images/val")
    assert data["names"] == dict(enumerate(XRAY_CLASSES))
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(10))
    n_objects = 0
    for rec in records:
        assert rec["split"] == split_of(rec["index"], 0.2)
        assert (out / rec["file"]).is_file() and (out / rec["label"]).is_file()
        assert rec["mode"] in ("dual_energy", "single_energy")
        lines = (out / rec["label"]).read_text().splitlines()
        assert len(lines) == len(rec["objects"])
        for line, obj in zip(lines, rec["objects"], strict=True):
            fields = line.split()
            assert len(fields) == 5
            cid = int(fields[0])
            cx, cy, w, h = map(float, fields[1:])
            assert cid == obj["class_id"] and XRAY_CLASSES[cid] == obj["class"]
            assert obj["concealment"] in ("easy", "hard", "hidden")
            x1, y1, x2, y2 = obj["box"]
            assert cx == pytest.approx((x1 + x2) / 2 / 160, abs=1e-6)
            assert cy == pytest.approx((y1 + y2) / 2 / 128, abs=1e-6)
            assert w == pytest.approx((x2 - x1) / 160, abs=1e-6)
            assert h == pytest.approx((y2 - y1) / 128, abs=1e-6)
            n_objects += 1
    assert n_objects == sum(summary.objects_per_class.values()) == sum(summary.concealment.values())
    assert len(list((out / "images" / "val").iterdir())) == 2


def test_dataset_is_identical_for_any_worker_count(tmp_path):
    one = write_dataset(tmp_path / "one", 12, 8, size=96, workers=1)
    two = write_dataset(tmp_path / "two", 12, 8, size=96, workers=2)
    assert one.images == two.images == 12
    a, b = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    a.pop("data.yaml")  # holds the absolute path of its own folder
    b.pop("data.yaml")
    assert a == b


def test_empty_dataset_and_refusing_to_overwrite(tmp_path):
    summary = write_dataset(tmp_path / "empty", 0, 0, size=64)
    assert summary.images == 0
    assert (tmp_path / "empty" / "data.yaml").is_file()
    assert (tmp_path / "empty" / "metadata.jsonl").read_text() == ""
    with pytest.raises(FileExistsError):
        write_dataset(tmp_path / "empty", 1, 0, size=64)
    assert write_dataset(tmp_path / "empty", 1, 0, size=64, overwrite=True).images == 1


@pytest.mark.parametrize(
    "kwargs", [{"count": -1}, {"workers": 0}, {"image_format": "gif"}, {"val_fraction": -0.1}, {"jpeg_quality": 0}]
)
def test_write_dataset_rejects_bad_arguments(tmp_path, kwargs):
    args = {"count": 1, "seed": 0, "size": 64} | kwargs
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "x", **args)


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "synth",
        "xray",
        "--out",
        str(out),
        "--count",
        "4",
        "--seed",
        "1",
        "--size",
        "128x96",
        "--val-fraction",
        "0.25",
        "--greyscale-fraction",
        "0.5",
    ]
    assert cli_main(argv) == 0
    assert "wrote 4 images (3 train, 1 val" in capsys.readouterr().out
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 3
    assert len(list((out / "labels" / "val").glob("*.txt"))) == 1
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 4
    assert cli_main(argv) == 2  # refuses to overwrite without --overwrite
    assert "already holds a dataset" in capsys.readouterr().err
    assert cli_main([*argv, "--overwrite", "--format", "png"]) == 0
    assert len(list((out / "images" / "train").glob("*.png"))) == 3
    assert not list(out.rglob("*.jpg"))  # the earlier run was replaced, not merged
