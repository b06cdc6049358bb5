"""Tests of Threat Image Projection (detectors.synth.tip*, ``customs-vision synth tip``).

The "real" backgrounds are drawn here with numpy: white belt, a tray of pale organic fabric, an orange
garment, a dense blue block (laptop-like clutter) and a labelled blue blade, all in the display
palette's own colours, saved as JPEG under Roboflow-style names like the real folder's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from detectors.datasets import real_split
from detectors.synth.tip import (
    VISIBLE_CHANGE,
    BackgroundObject,
    Palette,
    TipError,
    TipImage,
    TipSettings,
    composite,
    measure_threat,
    project_threats,
    threat_matrix,
)
from detectors.synth.tip_dataset import background_order, train_backgrounds, write_tip_dataset
from detectors.synth.tip_palette import LUMA, calibrate_palette, render_palette
from detectors.synth.xray_materials import MATERIALS
from detectors.synth.xray_shapes import Sprite, SpriteCanvas
from detectors.xray import XRAY_CLASSES
from service.cli import main as cli_main

SIZE = 224  # small scans keep the suite fast; 416 in the real folder
KNIFE = XRAY_CLASSES.index("knife")


@pytest.fixture(scope="module")
def palette() -> Palette:
    return Palette()


def _colour(palette: Palette, class_bin: int, level: int) -> np.ndarray:
    return palette.lut[class_bin, level].astype(np.uint8)


def draw_background(seed: int, palette: Palette, size: int = SIZE) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A fake pseudo-colour bag scan and the pixel box of its labelled blade."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 255, np.uint8)
    x0, y0 = int(rng.integers(12, 30)), int(rng.integers(12, 30))
    x1, y1 = size - int(rng.integers(12, 30)), size - int(rng.integers(12, 30))
    img[y0:y1, x0:x1] = _colour(palette, 0, 25)  # tray / bag fabric: pale organic
    gx, gy = int(rng.integers(x0, x0 + 40)), int(rng.integers(y0, y0 + 40))
    img[gy : gy + 70, gx : gx + 90] = _colour(palette, 0, 80)  # folded garment: orange
    dx, dy = int(rng.integers(x0 + 60, x1 - 80)), int(rng.integers(y0 + 60, y1 - 60))
    img[dy : dy + 50, dx : dx + 70] = _colour(palette, 32, 200)  # dense metal-rich clutter
    bx, by = int(rng.integers(x0 + 5, x1 - 60)), int(rng.integers(y1 - 30, y1 - 12))
    blade = (bx, by, bx + 50, by + 8)
    img[by : by + 8, bx : bx + 50] = _colour(palette, 32, 110)  # the labelled "real" blade
    noise = rng.normal(0, 1.5, img.shape)
    return np.clip(img + noise * (img < 250), 0, 255).astype(np.uint8), blade


def _stem(n: int) -> str:
    return f"{n:06d}_jpg.rf.{hashlib.md5(str(n).encode()).hexdigest()}"


def make_real_folder(root: Path, palette: Palette, per_split: dict[str, int]) -> dict[str, list[str]]:
    """A folder laid out like the real one with ``per_split[s]`` scans whose names fall in split ``s``."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    chosen: dict[str, list[str]] = {s: [] for s in per_split}
    n = 0
    while any(len(chosen[s]) < k for s, k in per_split.items()):
        stem = _stem(n)
        split = real_split(stem)
        if len(chosen.get(split, [])) < per_split.get(split, 0):
            img, (bx0, by0, bx1, by1) = draw_background(n, palette)
            cv2.imwrite(str(root / "images" / f"{stem}.jpg"), img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            cx, cy, w, h = (bx0 + bx1) / 2 / SIZE, (by0 + by1) / 2 / SIZE, (bx1 - bx0) / SIZE, (by1 - by0) / SIZE
            (root / "labels" / f"{stem}.txt").write_text(f"{n % 5} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
            chosen[split].append(stem)
        n += 1
    return chosen


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory: pytest.TempPathFactory, palette: Palette) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("real")
    return root, make_real_folder(root, palette, {"train": 5, "val": 2, "test": 3})


# ----------------------------------------------------------------------------------- the palette
def test_palette_inverts_its_own_rendering(palette: Palette) -> None:
    rng = np.random.default_rng(0)
    raw = np.exp(rng.uniform(np.log(0.1), np.log(12.0), (40, 40))).astype(np.float32)
    low = np.asarray(
        cv2.GaussianBlur(raw, (0, 0), 3.0), dtype=np.float32
    )  # smooth, so the display's 1-px class smoothing is moot
    ratio = np.where(np.arange(40)[None, :] < 20, 1.42, 6.0).astype(np.float32)  # organic | steel
    att = np.stack([low, low / ratio], axis=-1)
    shown = np.clip(np.rint(render_palette(att, palette.lut)), 0, 255).astype(np.uint8)
    again = render_palette(palette.attenuation(shown), palette.lut)
    inner = np.s_[2:-2, np.r_[2:17, 23:38]]  # away from the organic/steel seam and the border
    assert np.abs(again[inner] - shown[inner].astype(np.float32)).max() <= 12.0


def test_palette_rejects_malformed_tables() -> None:
    with pytest.raises(ValueError, match="uint8 table"):
        Palette(np.zeros((33, 256), np.uint8))


def test_calibration_moves_the_palette_toward_the_scanner(palette: Palette) -> None:
    # A scanner that renders metal more saturated than the generator's palette (as the real one
    # does): colours off the palette's ramps, which calibration can learn.
    scanner = palette.lut.astype(np.int16)
    scanner[26:, 1:, 0] -= 20
    scanner[26:, 1:, 2] += 20
    scanner_lut = np.clip(scanner, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(1)
    scans = [scanner_lut[rng.integers(26, 33, (128, 128)), rng.integers(1, 200, (128, 128))] for _ in range(6)]
    calibrated = calibrate_palette(scans, palette, iterations=3)
    region = np.s_[26:, 20:180]
    before = np.abs(palette.lut[region].astype(int) - scanner_lut[region]).mean()
    after = np.abs(calibrated.lut[region].astype(int) - scanner_lut[region]).mean()
    assert after < 0.6 * before
    assert (calibrated.lut[:, 0] == 255).all()  # the empty belt stays white
    assert calibrate_palette(scans, palette, iterations=0) is palette
    with pytest.raises(ValueError, match="iterations"):
        calibrate_palette(scans, iterations=-1)


# --------------------------------------------------------------------------------- compositing
def _slab(material: str, thickness_cm: float, s: float = 8.0) -> Sprite:
    c = SpriteCanvas(6.0, 3.0, s)
    c.rect(MATERIALS[material], 0.0, 0.0, 6.0, 3.0, thickness_cm)
    return c.sprite(material)


def test_composite_multiplies_transmissions(palette: Palette) -> None:
    """A slab darkens white belt and clutter alike; over clutter the result is darker still."""
    rng = np.random.default_rng(2)
    white = np.full((64, 96, 3), 255, np.uint8)
    white[:, 48:] = _colour(palette, 0, 90)  # right half: orange clutter
    sprite = _slab("steel", 0.15)
    results = []
    for cx in (24.0, 72.0):
        image, att = white.copy(), palette.attenuation(white)
        m = measure_threat(
            sprite, threat_matrix(sprite, cx, 32.0, 0.0, False, 1.0), blur_sigma_px=0.3, photons=1e4, rng=rng
        )
        assert m is not None
        composite(image, att, m, palette, edge_amount=1.0)
        assert (image.astype(float) @ LUMA <= white.astype(float) @ LUMA + 0.5).all()
        results.append(image[32, int(cx)].astype(float) @ LUMA)
    belt_luma, clutter_luma = results
    assert belt_luma < 200  # visible on the empty belt
    assert clutter_luma < belt_luma  # two objects on one ray: transmissions multiply


def test_gold_is_black_and_thin_organics_stay_pale(palette: Palette) -> None:
    rng = np.random.default_rng(3)
    lumas = {}
    for material, t in (("gold", 0.5), ("paper", 0.3)):
        image = np.full((48, 80, 3), 255, np.uint8)
        att = palette.attenuation(image)
        sprite = _slab(material, t)
        m = measure_threat(
            sprite, threat_matrix(sprite, 40.0, 24.0, 0.0, False, 1.0), blur_sigma_px=0.3, photons=1e4, rng=rng
        )
        assert m is not None
        composite(image, att, m, palette, edge_amount=1.0)
        lumas[material] = float(image[24, 40].astype(float) @ LUMA)
    assert lumas["gold"] < 15
    assert 150 < lumas["paper"] < 250


# ---------------------------------------------------------------------------------- projection
def _project(palette: Palette, seed: int, count: int = 2, **kw: Any) -> tuple[np.ndarray, TipImage]:
    bg, blade = draw_background(seed, palette)
    x1, y1, x2, y2 = (float(v) for v in blade)
    objs = [BackgroundObject(KNIFE, (x1, y1, x2, y2))]
    tip = project_threats(bg, np.random.default_rng(seed), count=count, palette=palette, background_objects=objs, **kw)
    return bg, tip


def test_projection_is_deterministic(palette: Palette) -> None:
    _, a = _project(palette, 4)
    _, b = _project(palette, 4)
    _, c = _project(palette, 5)
    assert np.array_equal(a.image, b.image)
    assert [(t.class_name, t.box, t.concealment) for t in a.threats] == [
        (t.class_name, t.box, t.concealment) for t in b.threats
    ]
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_projection_darkens_and_boxes_cover_what_changed(palette: Palette, seed: int) -> None:
    bg, tip = _project(palette, seed, count=3)
    assert tip.threats, "the fake bag has room for at least one threat"
    out = tip.image.astype(np.float32)
    # Never brighter: luma everywhere, every channel on the empty belt (white stays or darkens).
    assert (out @ LUMA <= bg.astype(np.float32) @ LUMA + 0.5).all()
    belt = (bg >= 250).all(axis=2)
    assert (tip.image[belt] <= bg[belt]).all()
    # Every visibly changed pixel lies in some threat's box; each box is tight on its mask.
    changed = np.abs(out - bg).max(axis=2) > VISIBLE_CHANGE
    inside = np.zeros_like(changed)
    for t in tip.threats:
        x1, y1, x2, y2 = t.box
        assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
        inside[y1:y2, x1:x2] = True
        ys, xs = np.nonzero(t.mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == t.box
        assert t.concealment in ("easy", "hard", "hidden")
    assert not (changed & ~inside).any()


def test_threats_avoid_the_background_label_and_each_other(palette: Palette) -> None:
    for seed in range(9, 13):
        _, tip = _project(palette, seed, count=3)
        boxes = [o.box for o in tip.background_objects] + [tuple(map(float, t.box)) for t in tip.threats]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                w = min(a[2], b[2]) - max(a[0], b[0])
                h = min(a[3], b[3]) - max(a[1], b[1])
                smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                assert max(w, 0) * max(h, 0) <= 0.1 * smaller + 1e-6


def test_hidden_intent_lands_under_dense_clutter(palette: Palette) -> None:
    settings = TipSettings(intents=(0.0, 0.0, 1.0), candidates=48)
    dense = [
        t.dense_fraction
        for seed in range(14, 18)
        for t in _project(palette, seed, count=1, settings=settings, classes=["gold_bar"])[1].threats
    ]
    assert dense and max(dense) > 0.4


def test_empty_count_returns_the_background_untouched(palette: Palette) -> None:
    bg, tip = _project(palette, 19, count=0)
    assert tip.threats == () and np.array_equal(tip.image, bg)
    assert len(tip.background_objects) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": -1}, "count"),
        ({"count": 1, "classes": ["bazooka"]}, "unknown classes"),
    ],
)
def test_projection_errors(palette: Palette, kwargs: dict, message: str) -> None:
    bg, _ = draw_background(0, palette)
    with pytest.raises(TipError, match=message):
        project_threats(bg, np.random.default_rng(0), palette=palette, **kwargs)
    with pytest.raises(TipError, match="uint8 RGB"):
        project_threats(bg[..., 0], np.random.default_rng(0), count=1, palette=palette)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"px_per_cm": (4.0, 3.0)}, "range"),
        ({"class_weights": {"bazooka": 1.0}}, "unknown classes"),
        ({"class_weights": {"handgun": 0.0}}, "at least one"),
        ({"intents": (0.0, 0.0, 0.0)}, "intents"),
        ({"candidates": 0}, "candidates"),
    ],
)
def test_settings_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(TipError, match=message):
        TipSettings(**kwargs)


# ------------------------------------------------------------------------------------- dataset
def test_only_train_split_backgrounds_are_listed(real_folder: tuple[Path, dict[str, list[str]]]) -> None:
    root, chosen = real_folder
    assert sorted(i.image.stem for i in train_backgrounds(root)) == sorted(chosen["train"])


def test_background_order_uses_every_background_before_repeating() -> None:
    order = background_order(12, 5, seed=3)
    assert sorted(order[:5]) == list(range(5)) and sorted(order[5:10]) == list(range(5))
    assert order == background_order(12, 5, seed=3) and order[:7] == background_order(7, 5, seed=3)


def test_dataset_keeps_remapped_background_labels_and_never_leaks(
    tmp_path: Path, real_folder: tuple[Path, dict[str, list[str]]]
) -> None:
    root, chosen = real_folder
    out = tmp_path / "tip"
    summary = write_tip_dataset(root, out, 8, seed=1, threats_per_image=(1, 2), calibration_images=2)
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert summary.images == len(records) == 8 and summary.backgrounds == 5
    used = {r["background"] for r in records}
    assert used == set(chosen["train"])  # every train scan, and nothing from val or test
    assert all(real_split(stem) == "train" for stem in used)
    for r in records:
        assert r["source"] == "tip"
        rows = [line.split() for line in (out / r["label"]).read_text().splitlines()]
        assert len(rows) == len(r["objects"])
        # The real label comes first, remapped to "knife", with its coordinates unchanged.
        original = (root / "labels" / f"{r['background']}.txt").read_text().split()
        assert rows[0][0] == str(KNIFE) and rows[0][1:] == [f"{float(v):.6f}" for v in original[1:]]
        assert r["objects"][0]["origin"] == "background" and r["objects"][0]["class_id"] == KNIFE
        for row, obj in zip(rows[1:], r["objects"][1:], strict=True):
            assert obj["origin"] == "projected" and int(row[0]) == obj["class_id"]
    assert (out / "palette.png").is_file()
    names = yaml.safe_load((out / "data.yaml").read_text())["names"]
    assert [names[i] for i in range(len(names))] == list(XRAY_CLASSES)


def test_dataset_is_worker_count_invariant(tmp_path: Path, real_folder: tuple[Path, dict[str, list[str]]]) -> None:
    root, _ = real_folder
    a = write_tip_dataset(root, tmp_path / "a", 10, seed=2, calibration_images=0, workers=1)
    b = write_tip_dataset(root, tmp_path / "b", 10, seed=2, calibration_images=0, workers=2)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file() and p.name != "data.yaml")
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file() and p.name != "data.yaml")
    for f in files:
        assert (a.root / f).read_bytes() == (b.root / f).read_bytes(), f


def test_dataset_errors(tmp_path: Path, real_folder: tuple[Path, dict[str, list[str]]], palette: Palette) -> None:
    root, _ = real_folder
    only_test = tmp_path / "only_test"
    make_real_folder(only_test, palette, {"test": 2})
    with pytest.raises(TipError, match="train split"):
        write_tip_dataset(only_test, tmp_path / "x", 2, seed=0)
    with pytest.raises(TipError, match="inside the real data folder"):
        write_tip_dataset(root, root / "tip", 2, seed=0)
    with pytest.raises(TipError, match="does not exist"):
        write_tip_dataset(tmp_path / "missing", tmp_path / "y", 2, seed=0)
    with pytest.raises(TipError, match="threats_per_image"):
        write_tip_dataset(root, tmp_path / "z", 2, seed=0, threats_per_image=(3, 1))
    write_tip_dataset(root, tmp_path / "done", 1, seed=0, calibration_images=0)
    with pytest.raises(FileExistsError):
        write_tip_dataset(root, tmp_path / "done", 1, seed=0, calibration_images=0)


# ----------------------------------------------------------------------------------------- CLI
def test_cli_end_to_end(tmp_path: Path, real_folder: tuple[Path, dict[str, list[str]]], capsys) -> None:
    root, _ = real_folder
    out = tmp_path / "cli"
    argv = ["synth", "tip", "--backgrounds", str(root), "--out", str(out), "--count", "4", "--seed", "5"]
    code = cli_main([*argv, "--threats-per-image", "1-2", "--calibration-images", "2"])
    assert code == 0
    assert "wrote 4 images" in capsys.readouterr().out
    images = sorted((out / "images").rglob("*.jpg"))
    assert len(images) == 4 and len(list((out / "labels").rglob("*.txt"))) == 4
    decoded = cv2.imread(str(images[0]))
    assert decoded is not None and decoded.shape == (SIZE, SIZE, 3)
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 4
    assert cli_main(argv) == 2  # the dataset exists and --overwrite was not given
    assert "already holds a dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main([*argv, "--threats-per-image", "3-1"])
