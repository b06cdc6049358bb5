"""Synthetic signatures: writers, genuine variation, skilled and random forgeries, pen physics."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.synth import doc_glyphs as glyphs
from detectors.synth.doc_pen import Pen, add_tremor, kinematics, render, spline
from detectors.synth.signatures import (
    Writer,
    random_forgery,
    render_handwriting,
    render_signature,
    skilled_forgery,
)

DPI = 100.0


def _box_size(sig) -> tuple[int, int]:
    box = sig.ink.box()
    assert box is not None, "a signature must leave visible ink"
    return box[2] - box[0], box[3] - box[1]


def test_writer_is_deterministic_per_id():
    assert Writer.for_id("W-00001") == Writer.for_id("W-00001")
    assert Writer.for_id("W-00001") != Writer.for_id("W-00002")


def test_population_covers_all_scripts():
    scripts = {Writer.for_id(f"W-{i:05d}").script for i in range(60)}
    assert scripts == {"latin", "hangul", "hanzi"}


@pytest.mark.parametrize("script", ["latin", "hangul", "hanzi"])
def test_signature_is_deterministic_for_a_seed(script):
    w = Writer.for_id("W-00042", script=script)
    a = render_signature(w, np.random.default_rng(3), dpi=DPI)
    b = render_signature(w, np.random.default_rng(3), dpi=DPI)
    assert np.array_equal(a.ink.absorb, b.ink.absorb)
    assert a.kind == "genuine" and a.author_id == a.writer_id == w.writer_id


@pytest.mark.parametrize("script", ["latin", "hangul", "hanzi"])
def test_genuine_samples_vary_but_keep_their_proportions(script):
    w = Writer.for_id("W-00007", script=script)
    sizes = [_box_size(render_signature(w, np.random.default_rng(s), dpi=DPI)) for s in range(4)]
    inks = [render_signature(w, np.random.default_rng(s), dpi=DPI).ink for s in range(2)]
    assert inks[0].shape != inks[1].shape or not np.array_equal(inks[0].absorb, inks[1].absorb)
    widths = np.array([s[0] for s in sizes], dtype=float)
    assert widths.max() / widths.min() < 1.35, f"natural variation, not a different signature: {sizes}"


def test_skilled_forgery_imitates_but_differs():
    w = Writer.for_id("W-00011", script="latin")
    genuine = render_signature(w, np.random.default_rng(0), dpi=DPI)
    forged = skilled_forgery(w, np.random.default_rng(1), dpi=DPI)
    assert forged.kind == "skilled" and forged.writer_id == w.writer_id and forged.author_id != w.writer_id
    gw, gh = _box_size(genuine)
    fw, fh = _box_size(forged)
    assert 0.6 < fw / gw < 1.6 and 0.5 < fh / gh < 2.0  # an imitation has the same overall shape
    assert genuine.ink.shape != forged.ink.shape or not np.array_equal(genuine.ink.absorb, forged.ink.absorb)


def test_random_forgery_is_someone_elses_signature():
    w = Writer.for_id("W-00003")
    pool = ["W-00003", "W-00100", "W-00200"]
    sig = random_forgery(w, np.random.default_rng(0), dpi=DPI, pool=pool)
    assert sig.kind == "random" and sig.writer_id == "W-00003"
    assert sig.author_id in ("W-00100", "W-00200")


def test_handwriting_renders_digits_and_hangul():
    w = Writer.for_id("W-00005", script="hangul")
    for text in ("2024.03.15", "김민서", "1,250 KG"):
        ink = render_handwriting(w, text, np.random.default_rng(0), dpi=DPI, size_mm=4.0)
        assert ink.box() is not None, text


def test_hangul_composition_stays_in_its_block():
    for ch in "한국세관뷁괜찮":
        g = glyphs.hangul(ch)
        assert g, ch
        pts = np.vstack(g)
        assert pts.min() > -0.1 and pts.max() < 1.1
    assert glyphs.hangul("A") is None
    assert glyphs.latin("가") is None


def test_slow_hesitant_strokes_end_blunt_and_fluent_ones_taper():
    xy = spline(np.array([[0.0, 0.0], [10.0, 2.0], [20.0, 0.0]]))
    fluent = kinematics(xy, 150.0, 0.8, np.random.default_rng(0), fluent=True)
    hesitant = kinematics(xy, 40.0, 0.8, np.random.default_rng(0), fluent=False)
    assert fluent.pressure[-1] < 0.5 * fluent.pressure[len(xy) // 2]
    assert hesitant.pressure[-1] > 0.7 * hesitant.pressure[len(xy) // 2]
    assert hesitant.speed.mean() < fluent.speed.mean()


def test_tremor_wobbles_within_its_amplitude():
    xy = spline(np.array([[0.0, 0.0], [30.0, 0.0]]))
    path = kinematics(xy, 60.0, 0.8, np.random.default_rng(0), fluent=False)
    shaky = add_tremor(path, 0.1, 8.0, np.random.default_rng(1))
    dy = np.abs(shaky.xy[:, 1] - path.xy[:, 1])
    assert 0.02 < dy.max() <= 0.1 * 1.31  # amplitude times the slow drift factor


def test_gel_pen_is_thinner_where_fast():
    pen = Pen("gel", 0.6, (0.1, 0.1, 0.5))
    xy = spline(np.array([[0.0, 0.0], [40.0, 0.0]]))
    path = kinematics(xy, 100.0, 0.8, np.random.default_rng(0), fluent=False)
    path.speed[: len(xy) // 2] *= 4.0  # first half written much faster
    ink = render([path], pen, 300 / 25.4, np.random.default_rng(0))
    vis = ink.visible()
    cols = np.flatnonzero(vis.any(axis=0))
    mid = (cols[0] + cols[-1]) // 2
    fast_w = vis[:, cols[0] + 20 : mid - 20].sum(axis=0).mean()
    slow_w = vis[:, mid + 20 : cols[-1] - 20].sum(axis=0).mean()
    assert fast_w < slow_w


def test_render_of_nothing_is_empty():
    ink = render([], Pen("ballpoint", 0.4, (0.1, 0.1, 0.5)), 4.0, np.random.default_rng(0))
    assert ink.box() is None
