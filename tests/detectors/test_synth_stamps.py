"""Synthetic stamps: per-authority designs, impressions, forgeries."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from detectors.synth.doc_raster import InkLayer, derive_rng
from detectors.synth.doc_stamp_draw import draw_face
from detectors.synth.fonts import FontNotFoundError, default_catalog
from detectors.synth.stamps import (
    FORGERY_KINDS,
    ForgeryKind,
    ImpressionCondition,
    StampDesign,
    forge,
    render_impression,
)

DPI = 100.0  # small rasters keep the suite fast; shapes are physical so nothing else changes

if not default_catalog().has("latin"):
    pytest.skip("no Latin font installed (Debian: fonts-dejavu-core fonts-liberation2)", allow_module_level=True)
HAS_HANGUL = default_catalog().has("hangul")


def _usable_designs(n: int, language: str | None = None) -> list[StampDesign]:
    """The first ``n`` authorities whose stamps this machine can draw (Hangul needs a Hangul font)."""
    out = []
    for i in range(400):
        try:
            d = StampDesign.for_authority(f"AUTH-{i:05d}")
        except FontNotFoundError:
            continue
        if language is None or d.language == language:
            out.append(d)
        if len(out) == n:
            return out
    pytest.skip(f"fewer than {n} drawable authorities with the installed fonts")


def test_same_authority_gives_same_design():
    for d in _usable_designs(6):
        assert StampDesign.for_authority(d.authority_id) == d


def test_design_is_stable_across_processes():
    # Python's hash() is salted per process; designs must not depend on it.
    d = _usable_designs(1)[0]
    code = f"from detectors.synth.stamps import StampDesign;print(repr(StampDesign.for_authority({d.authority_id!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == repr(d)


def test_population_has_varied_designs():
    designs = _usable_designs(40)
    assert len({d.shape for d in designs}) >= 3
    assert len({d.ink for d in designs}) >= 2
    assert len({(d.ring_text, d.shape, d.width_mm) for d in designs}) == len(designs)


def test_derive_rng_depends_on_every_key():
    a = derive_rng("stamp", "AUTH-1").integers(1 << 62)
    assert a == derive_rng("stamp", "AUTH-1").integers(1 << 62)
    assert a != derive_rng("stamp", "AUTH-2").integers(1 << 62)
    assert a != derive_rng("stamp2", "AUTH-1").integers(1 << 62)


def test_impression_is_deterministic_and_inked():
    d = _usable_designs(1)[0]
    a = render_impression(d, np.random.default_rng(5), dpi=DPI)
    b = render_impression(d, np.random.default_rng(5), dpi=DPI)
    assert np.array_equal(a.ink.absorb, b.ink.absorb)
    assert a.ink.absorb.dtype == np.float32 and a.ink.absorb.ndim == 3
    assert a.ink.box() is not None
    c = render_impression(d, np.random.default_rng(6), dpi=DPI)
    assert a.ink.shape != c.ink.shape or not np.array_equal(a.ink.absorb, c.ink.absorb)


def test_impression_keeps_physical_size():
    d = dataclasses.replace(_usable_designs(1)[0], shape="round", width_mm=40.0, height_mm=40.0)
    upright = ImpressionCondition(angle_deg=0.0, density=1.0, gaps=0.0)
    for dpi in (100.0, 200.0):
        box = render_impression(d, np.random.default_rng(0), dpi=dpi, condition=upright).ink.box()
        assert box is not None
        width_mm = (box[2] - box[0]) * 25.4 / dpi
        assert 37.0 < width_mm < 42.0


def test_partial_impression_loses_ink():
    d = _usable_designs(1)[0]
    full = ImpressionCondition(angle_deg=0.0, density=1.0, gaps=0.0)
    part = dataclasses.replace(full, partial=0.45, tilt=0.6)
    a = render_impression(d, np.random.default_rng(1), dpi=DPI, condition=full).ink
    b = render_impression(d, np.random.default_rng(1), dpi=DPI, condition=part).ink
    assert b.visible().sum() < 0.8 * a.visible().sum()
    assert part.is_partial and not full.is_partial


def test_faint_flag_follows_density():
    assert ImpressionCondition(density=0.3).faint
    assert not ImpressionCondition(density=0.8).faint


@pytest.mark.parametrize("kind", [k for k in FORGERY_KINDS if k != ForgeryKind.PHOTOCOPY])
def test_design_forgeries_change_the_face(kind):
    for d in _usable_designs(4):
        f = forge(d, kind, np.random.default_rng(3))
        assert f.forgery == kind and d.forgery is None
        assert f != dataclasses.replace(d, forgery=kind), "forgery must change the carved design"
        a, b = draw_face(d, DPI / 25.4, "2024.01.01"), draw_face(f, DPI / 25.4, "2024.01.01")
        if a.shape == b.shape:
            # One changed stroke of one character changes only a handful of pixels at 100 dpi.
            assert int((np.abs(a - b) > 0.25).sum()) >= 5
        # Same owner, same general look: a forgery is never a different stamp type.
        assert f.shape == d.shape and f.authority_id == d.authority_id


def test_photocopy_forgery_is_flat_and_differs():
    d = _usable_designs(1)[0]
    cond = ImpressionCondition(angle_deg=0.0, density=0.7, tilt=0.5, tilt_dir=0.3, gaps=0.6)
    genuine = render_impression(d, np.random.default_rng(2), dpi=200.0, condition=cond)
    copy = render_impression(
        forge(d, ForgeryKind.PHOTOCOPY, np.random.default_rng(2)), np.random.default_rng(2), dpi=200.0, condition=cond
    )
    assert copy.design.forgery == ForgeryKind.PHOTOCOPY
    assert copy.condition.density == 1.0 and copy.condition.partial == 0.0
    g, c = genuine.ink.darkening(), copy.ink.darkening()
    # Uneven pressure makes genuine ink weaker on one side; the copier's threshold evens it out
    # (measured on a blurred map, since halftone dots are uneven on purpose).
    import cv2

    def spread(x: np.ndarray) -> float:
        smooth = cv2.blur(x, (9, 9))
        vals = smooth[x > 0.1]
        return float(np.percentile(vals, 90) - np.percentile(vals, 10)) / float(np.percentile(vals, 90))

    assert spread(c) < spread(g)


def test_unknown_forgery_kind_is_rejected():
    with pytest.raises(ValueError):
        forge(_usable_designs(1)[0], "smudge", np.random.default_rng(0))


def test_bad_dpi_is_rejected():
    with pytest.raises(ValueError, match="dpi"):
        render_impression(_usable_designs(1)[0], np.random.default_rng(0), dpi=0)


@pytest.mark.skipif(not HAS_HANGUL, reason="no Hangul font installed (Debian: fonts-nanum or fonts-noto-cjk)")
def test_korean_square_seal_renders():
    seals = [d for d in _usable_designs(120, "ko") if d.shape == "square_seal"]
    assert seals, "the population should contain Korean square seals"
    d = seals[0]
    assert d.ink in ("red", "vermilion")
    imp = render_impression(d, np.random.default_rng(0), dpi=DPI)
    box = imp.ink.box()
    assert box is not None
    w, h = box[2] - box[0], box[3] - box[1]
    assert 0.6 < w / h < 1.6  # square-ish even when slightly rotated


def test_empty_ink_layer_has_no_box():
    layer = InkLayer(np.zeros((5, 7, 3), dtype=np.float32))
    assert layer.box() is None
    assert layer.crop_to_ink().shape == (5, 7)
