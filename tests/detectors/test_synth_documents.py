"""Synthetic scanned documents: determinism, tight labels, scan artefacts, dataset CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from detectors.synth.doc_names import Language
from detectors.synth.doc_raster import VISIBLE_DARKENING, mask_box
from detectors.synth.documents import CLASS_NAMES, PageConfig, render_page
from detectors.synth.fonts import ENV_VAR, FontCatalog, FontNotFoundError, default_catalog
from detectors.synth.scan import ScanProfile, simulate_scan

if not default_catalog().has("latin"):
    pytest.skip("no Latin font installed (Debian: fonts-dejavu-core fonts-liberation2)", allow_module_level=True)
HAS_HANGUL = default_catalog().has("hangul")
LANGUAGES: tuple[Language, ...] = ("ko", "en") if HAS_HANGUL else ("en",)
# 75 dpi keeps pages at 620 x 877 px: fast, and every mark is still dozens of pixels wide.
LOW = PageConfig(dpi_range=(75.0, 75.0), languages=LANGUAGES)
needs_hangul = pytest.mark.skipif(not HAS_HANGUL, reason="no Hangul font installed (Debian: fonts-nanum)")


def test_page_is_deterministic():
    a = render_page(11, 3, LOW)
    b = render_page(11, 3, LOW)
    assert np.array_equal(a.image, b.image)
    assert a.marks == b.marks
    c = render_page(11, 4, LOW)
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_page_image_and_labels_are_well_formed():
    for index in range(6):
        page = render_page(5, index, LOW)
        h, w = page.image.shape[:2]
        assert page.image.dtype == np.uint8 and page.image.shape[2] == 3
        assert (w, h) == (round(210 * 75 / 25.4), round(297 * 75 / 25.4))  # A4
        for m in page.marks:
            x1, y1, x2, y2 = m.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert m.class_id in (0, 1)
            assert m.genuine == (m.forgery is None)
            fields = [float(v) for v in m.yolo(w, h).split()]
            assert fields[0] == m.class_id and all(0.0 <= v <= 1.0 for v in fields[1:])


def _diff_boxes(with_mark: np.ndarray, without: np.ndarray, lo: float, hi: float, label: tuple[int, int, int, int]):
    """Boxes around pixels the mark darkened by at least ``hi`` / ``lo`` (fraction of the light
    that was there: ink multiplies, so this also measures ink crossing a grey form line).

    Under dark print a mark's ink cannot be seen in pixels at all; inside the label such pixels
    count as "maybe ink" for the loose box, so ink running under a table rule is not an error.
    """
    luma = np.array([0.299, 0.587, 0.114])
    y_with, y_without = with_mark.astype(float) @ luma, without.astype(float) @ luma
    d = 1.0 - (y_with + 1.0) / (y_without + 1.0)
    x1, y1, x2, y2 = label
    hidden = np.zeros_like(d, dtype=bool)
    hidden[y1:y2, x1:x2] = y_without[y1:y2, x1:x2] < 110
    return mask_box(d >= hi), mask_box((d >= lo) | hidden)


SKEWED = ScanProfile(kind="office", skew_deg=2.5, shift_px=(4.0, -3.0), lid=0.97)
FAX = ScanProfile(kind="fax", skew_deg=-1.2, greyscale=True, binarize=True)


@pytest.mark.parametrize("profile", [ScanProfile.identity(), SKEWED, FAX], ids=["flat", "skewed", "fax"])
def test_each_label_is_tight_around_the_marks_visible_ink(profile):
    """Render every page once per mark with only that mark laid, and once with none: the pixels
    that change are the mark's visible ink, and its label must hug them."""
    checked = 0
    for index in range(6):
        base = render_page(21, index, LOW, scan_profile=profile, keep_mark=lambda i: False)
        assert base.marks == []
        n_slots = len(render_page(21, index, LOW, scan_profile=profile).marks)
        for k in range(n_slots + 2):
            only = render_page(21, index, LOW, scan_profile=profile, keep_mark=lambda i, k=k: i == k)
            if not only.marks:
                continue
            (label,) = only.marks
            if profile.binarize:
                strict, loose = _diff_boxes(only.image, base.image, 0.5, 0.5, label.box)  # white -> black
                tol = 3
            else:
                lo, hi = 0.5 * VISIBLE_DARKENING, 1.5 * VISIBLE_DARKENING
                strict, loose = _diff_boxes(only.image, base.image, lo, hi, label.box)
                tol = 2
            assert loose is not None
            x1, y1, x2, y2 = label.box
            lx1, ly1, lx2, ly2 = loose
            # The label never reaches beyond what visibly changed ...
            assert x1 >= lx1 - tol and y1 >= ly1 - tol and x2 <= lx2 + tol and y2 <= ly2 + tol, (label.box, loose)
            if strict is not None:
                sx1, sy1, sx2, sy2 = strict
                # ... and covers everything that clearly changed.
                assert x1 <= sx1 + tol and y1 <= sy1 + tol and x2 >= sx2 - tol and y2 >= sy2 - tol, (label.box, strict)
            checked += 1
    assert checked >= 8, "the test pages should carry marks"


def test_filtering_marks_leaves_the_rest_of_the_page_unchanged():
    full = render_page(2, 1, LOW, scan_profile=ScanProfile.identity())
    none = render_page(2, 1, LOW, scan_profile=ScanProfile.identity(), keep_mark=lambda i: False)
    assert none.marks == []
    assert np.array_equal(full.image.shape, none.image.shape)
    # Anything visibly darker (the label's own criterion, on luma, with some slack) must be
    # inside a label: faint ink fringes below the visibility limit are allowed outside.
    luma = np.array([0.299, 0.587, 0.114])
    drop = (none.image.astype(float) - full.image.astype(float)) @ luma
    changed = drop > 0.75 * VISIBLE_DARKENING * 255
    for m in full.marks:
        x1, y1, x2, y2 = m.box
        changed[max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2] = False
    assert not changed.any(), "marks must be the only difference"


def test_hard_case_flags_are_reported():
    cfg = PageConfig(dpi_range=(75.0, 75.0), languages=LANGUAGES, hard_rate=1.0, forgery_rate=0.5)
    flags: dict[str, int] = {}
    forged = 0
    for index in range(24):
        page = render_page(8, index, cfg)
        for m in page.marks:
            forged += not m.genuine
            for k, v in m.flags.items():
                flags[k] = flags.get(k, 0) + int(v)
            assert m.flags["fax"] == (page.scan.kind == "fax")
            assert m.flags["greyscale_photocopy"] == (page.scan.kind == "photocopy")
    assert set(flags) == {"stamp_over_signature", "faint", "partial", "greyscale_photocopy", "fax"}
    assert flags["faint"] > 0 and flags["partial"] > 0 and flags["stamp_over_signature"] > 0
    assert forged > 0


@pytest.mark.parametrize("kind", ["clean", "office", "photocopy", "fax", "low_res", "old_paper"])
def test_scan_kinds_keep_size_and_degrade_the_page(kind):
    rng = np.random.default_rng(0)
    page = np.full((200, 150, 3), 0.95, dtype=np.float32)
    page[80:120, 30:120] = 0.1
    profile = ScanProfile.sample(rng, kind=kind, dpi=75)
    scan = simulate_scan(page, profile, rng)
    assert scan.image.shape == (200, 150, 3) and scan.image.dtype == np.uint8
    assert scan.matrix.shape == (2, 3)
    if kind in ("photocopy", "fax"):
        assert np.array_equal(scan.image[..., 0], scan.image[..., 2]), "copies and faxes are grey"
    if kind == "fax":
        assert scan.binary_ink is not None and scan.binary_ink.any()
        v = scan.image[..., 0].astype(int)
        two_level = (np.abs(v - 15) < 40) | (np.abs(v - 247) < 40)  # black/white, after JPEG
        assert two_level.mean() > 0.97
    if kind == "old_paper":
        r, _, b = scan.image[5:60, 5:140].reshape(-1, 3).mean(axis=0)
        assert b < r - 5, "old paper is yellowed"


def test_identity_scan_changes_nothing():
    page = np.random.default_rng(0).uniform(0, 1, (30, 40, 3)).astype(np.float32)
    scan = simulate_scan(page, ScanProfile.identity(), np.random.default_rng(0))
    assert np.abs(scan.image.astype(int) - np.round(page * 255).astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dpi_range": (300.0, 150.0)}, "dpi_range"),
        ({"writers": 1}, "writers"),
        ({"forgery_rate": 1.5}, "forgery_rate"),
        ({"scan_kinds": ("scanner",)}, "unknown"),
        ({"kinds": ()}, "empty"),
        ({"languages": ("fr",)}, "languages"),
    ],
)
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PageConfig(**kwargs)


@needs_hangul
def test_korean_documents_are_generated():
    cfg = PageConfig(dpi_range=(75.0, 75.0), kinds=("import_declaration",), languages=("ko",))
    page = render_page(1, 0, cfg)
    assert page.language == "ko" and page.kind == "import_declaration"


def test_english_only_needs_no_hangul_owner():
    cfg = PageConfig(dpi_range=(75.0, 75.0), languages=("en",))
    for index in range(4):
        page = render_page(4, index, cfg)
        assert page.language == "en"


def test_font_discovery_reports_the_debian_package(tmp_path, monkeypatch):
    empty = FontCatalog.discover([tmp_path])
    assert not empty.has("latin")
    with pytest.raises(FontNotFoundError, match="fonts-nanum"):
        empty.faces("hangul")
    with pytest.raises(FontNotFoundError, match=ENV_VAR):
        empty.faces("latin")


def test_font_dirs_env_var_is_searched_first(tmp_path, monkeypatch):
    face = default_catalog().faces("latin")[0]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / face.path.name).write_bytes(face.path.read_bytes())
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    found = FontCatalog.discover()
    assert any(f.path.parent == (tmp_path / "mine").resolve() for f in found.all_faces)


# ------------------------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> int:
    from service.cli import main

    return main(argv)


def _read_dataset(root: Path) -> tuple[dict[str, str], list[dict]]:
    labels = {p.relative_to(root).as_posix(): p.read_text() for p in sorted((root / "labels").rglob("*.txt"))}
    meta = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    return labels, meta


def test_documents_cli_writes_a_yolo_dataset(tmp_path):
    out = tmp_path / "docs"
    args = ["synth", "documents", "--out", str(out), "--count", "5", "--seed", "3", "--dpi", "60", "60",
            "--val-fraction", "0.4", "--languages", ",".join(LANGUAGES)]  # fmt: skip
    assert _cli(args) == 0
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASS_NAMES)) and data["train"] == "images/train"
    images = sorted(p.name for p in (out / "images").rglob("*.jpg"))
    assert len(images) == 5
    labels, meta = _read_dataset(out)
    assert len(labels) == 5
    n_lines = sum(len(t.splitlines()) for t in labels.values())
    assert n_lines == len(meta) > 0
    for rec in meta:
        assert (out / rec["image"]).exists()
        assert rec["class"] == CLASS_NAMES[rec["class_id"]]
        assert set(rec["flags"]) == {"stamp_over_signature", "faint", "partial", "greyscale_photocopy", "fax"}
        assert rec["owner_id"].startswith("AUTH-" if rec["class_id"] == 0 else "W-")
    # Refuses to overwrite, then overwrites when asked.
    assert _cli(args) == 2
    assert _cli([*args, "--overwrite"]) == 0


def test_documents_cli_is_worker_count_invariant(tmp_path):
    common = ["--count", "4", "--seed", "9", "--dpi", "60", "60", "--languages", ",".join(LANGUAGES)]
    assert _cli(["synth", "documents", "--out", str(tmp_path / "a"), "--workers", "1", *common]) == 0
    assert _cli(["synth", "documents", "--out", str(tmp_path / "b"), "--workers", "2", *common]) == 0
    assert _read_dataset(tmp_path / "a") == _read_dataset(tmp_path / "b")
    for p in sorted((tmp_path / "a" / "images").rglob("*.jpg")):
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()


def test_documents_cli_rejects_bad_arguments(tmp_path, capsys):
    assert _cli(["synth", "documents", "--out", str(tmp_path), "--count", "0"]) == 2
    assert "count" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli(["synth", "documents", "--out", str(tmp_path), "--count", "1", "--scan-kinds", "xerox"])


@pytest.mark.parametrize("kind", ["stamp", "signature"])
def test_specimens_cli_layout(tmp_path, kind):
    out = tmp_path / kind
    args = ["synth", "specimens", "--out", str(out), "--kind", kind, "--owners", "2", "--per-owner", "2",
            "--forgeries", "3", "--seed", "1", "--dpi", "100"]  # fmt: skip
    if not HAS_HANGUL and kind == "stamp":
        pytest.skip("stamp owners include Korean authorities; needs a Hangul font (fonts-nanum)")
    assert _cli(args) == 0
    owners = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(owners) == 2
    for owner in owners:
        genuine = sorted((out / owner / "genuine").glob("*.png"))
        forged = sorted((out / owner / "forged").glob("*.png"))
        assert len(genuine) == 2 and len(forged) == 3
    records = [json.loads(x) for x in (out / "specimens.jsonl").read_text().splitlines()]
    assert len(records) == 10
    assert sum(not r["genuine"] for r in records) == 6
    # Deterministic: a second run writes the same crops.
    assert _cli([*args[:3], str(tmp_path / "again"), *args[4:]]) == 0
    for rec in records:
        assert (out / rec["file"]).read_bytes() == (tmp_path / "again" / rec["file"]).read_bytes()
