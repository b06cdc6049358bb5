"""Aligned stamp comparison: ink maps, alignment, genuine vs re-carved, input validation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from detectors.synth.fonts import FontNotFoundError, default_catalog
from detectors.synth.stamps import ForgeryKind, ImpressionCondition, StampDesign, forge, render_impression
from similarity import stamp_match
from similarity.pairwise import BlankCropError, PairMatchError
from similarity.stamp_match import (
    DEFAULT_WEIGHTS,
    FEATURE_NAMES,
    LATER_FEATURES,
    BlankStampError,
    StampMatcher,
    StampMatchError,
    align,
    hue_noise,
    ink_map,
)

DPI = 200.0  # the comparison is about 1-3 px details: render at the resolution it is meant for

if not default_catalog().has("latin"):
    pytest.skip("no Latin font installed (Debian: fonts-dejavu-core fonts-liberation2)", allow_module_level=True)


def _design(shape: str, ink: str | None = None) -> StampDesign:
    """The first drawable Latin-script authority with a stamp of ``shape`` (and ``ink``)."""
    for i in range(400):
        try:
            d = StampDesign.for_authority(f"AUTH-{i:05d}")
        except FontNotFoundError:
            continue
        if d.language == "en" and d.shape == shape and (ink is None or d.ink == ink) and not d.has_date:
            return d
    pytest.skip(f"no drawable {shape} design with the installed fonts")


def _crop(design: StampDesign, seed: int, *, angle: float = 0.0, pad: int = 24) -> np.ndarray:
    """A clean impression laid on white paper with a margin: ``(H, W, 3)`` uint8 RGB."""
    cond = ImpressionCondition(angle_deg=angle, density=0.9, gaps=0.15)
    imp = render_impression(design, np.random.default_rng(seed), dpi=DPI, condition=cond, date="")
    absorb = np.pad(imp.ink.absorb, ((pad, pad), (pad, pad), (0, 0)))
    return np.clip((1.0 - absorb) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def test_ink_map_keeps_coloured_ink_and_drops_black_text():
    crop = _crop(_design("round", "blue"), 0)
    text_row = crop.shape[0] // 2
    crop[text_row : text_row + 3, :] = 20  # a black form line across the stamp
    m = ink_map(crop)
    assert m.chromatic and m.hue is not None
    assert m.ink.shape == crop.shape[:2] and m.ink.dtype == np.float32
    # The black line's pixels off the stamp's strokes carry no ink along the stamp's hue.
    line = m.ink[text_row + 1]
    assert float(np.median(line)) < 0.1
    assert float(m.ink.max()) == pytest.approx(1.0)


def test_faint_coloured_impression_under_heavy_print_is_still_read_by_its_hue():
    """Black print over a faint impression makes most dark pixels achromatic; the stamp's own
    coloured pixels must still decide, or the print would be compared as if it were stamp ink."""
    design = _design("round", "blue")
    cond = ImpressionCondition(angle_deg=0.0, density=0.9, gaps=0.15)
    imp = render_impression(design, np.random.default_rng(0), dpi=DPI, condition=cond, date="")
    absorb = np.pad(imp.ink.absorb, ((24, 24), (24, 24), (0, 0))) * 0.35  # a faint impression
    crop = np.clip((1.0 - absorb) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    print_mask = np.zeros(crop.shape[:2], dtype=bool)
    for top in range(10, crop.shape[0] - 10, 14):  # lines of "printed text": dashes 6 px high
        for left in range(4, crop.shape[1] - 12, 12):
            print_mask[top : top + 6, left : left + 8] = True
    crop[print_mask] = 15
    stamp_mask = absorb.max(axis=2) > 0.05
    assert print_mask.sum() > 2 * (stamp_mask & ~print_mask).sum()  # the print outweighs the stamp

    m = ink_map(crop)
    assert m.chromatic and m.hue is not None
    clean = ink_map(np.clip((1.0 - absorb) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    assert clean.hue is not None and float(np.dot(m.hue, clean.hue)) > 0.95  # the stamp's ink, not the print
    print_only = print_mask & ~cv2.dilate(stamp_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert float(np.median(m.ink[print_only])) < 0.1


@pytest.mark.parametrize(("angle", "scale", "shift"), [(17.0, 1.1, (9.0, -6.0)), (-32.0, 0.9, (-4.0, 11.0))])
def test_align_recovers_a_known_rotation_scale_and_shift(angle: float, scale: float, shift: tuple[float, float]):
    spec = _crop(_design("oval"), 1)
    h, w = spec.shape[:2]
    # Query = the specimen rotated, scaled and shifted on a larger sheet of paper.
    big = (int(w * 1.6), int(h * 1.6))
    true = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    true[:, 2] += ((big[0] - w) / 2 + shift[0], (big[1] - h) / 2 + shift[1])
    query = np.asarray(cv2.warpAffine(spec, true, big, flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255)), np.uint8)
    found = align(ink_map(query).ink, ink_map(spec).ink)
    # found maps query -> specimen; composed with the true specimen -> query map it is ~identity.
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1], [w / 2, h / 2, 1]], dtype=np.float64)
    in_query = corners @ true.T
    back = np.hstack([in_query, np.ones((len(corners), 1))]) @ found.matrix.T
    assert float(np.abs(back - corners[:, :2]).max()) < 3.0
    assert found.scale == pytest.approx(1 / scale, rel=0.03)
    assert math.isclose(found.angle_deg, -angle, abs_tol=1.5)


def test_genuine_reimpression_is_more_similar_than_altered_text():
    design = _design("round")
    spec = _crop(design, 10)
    genuine = _crop(design, 11, angle=12.0)
    forged = _crop(forge(design, ForgeryKind.ALTERED_TEXT, np.random.default_rng(3)), 11, angle=12.0)
    matcher = StampMatcher()
    g = matcher.compare(genuine, spec)
    f = matcher.compare(forged, spec)
    # The re-carved characters are ink where the genuine die has none.
    assert f.extra_ink > g.extra_ink
    assert f.window_max > g.window_max
    assert f.similarity < g.similarity
    # verify() keeps the best specimen: adding the forged one as a "specimen" cannot lower g.
    assert matcher.verify(genuine, [spec, spec]).similarity == pytest.approx(g.similarity)


@pytest.mark.parametrize("factor", [0.5, 1 / 3, 2.0])
def test_a_query_scanned_at_another_resolution_is_aligned_and_still_matches(factor: float):
    """Half, a third or twice the specimen's resolution is outside the ordinary scale search
    (0.8-1.34): the alignment must find the resolution ratio, and the genuine impression must still
    beat other authorities' stamps rescaled alike. Which designs those are depends on the fonts
    installed; the nearest of eight (another weight of the same face, with these fonts) can score
    above 0.5 at a third of the resolution (random stamps at low resolution are the benchmark's
    weak case), so the test asks for the ranking and for most of them to be refused."""
    design = _design("round")
    spec = _crop(design, 10)
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC

    def rescaled(img: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.resize(img, None, fx=factor, fy=factor, interpolation=interp), dtype=np.uint8)

    others = [
        d
        for i in range(400)
        if (d := _maybe_design(f"AUTH-{i:05d}")) is not None and d.shape == "round" and d != design
    ][:8]
    matcher = StampMatcher()
    g = matcher.compare(rescaled(_crop(design, 11, angle=8.0)), spec)
    r = [matcher.compare(rescaled(_crop(other, 11, angle=8.0)), spec).similarity for other in others]
    assert g.scale == pytest.approx(1 / factor, rel=0.05)
    assert len(r) == 8 and g.similarity > 0.5 and g.similarity > max(r)
    assert np.median(r) < 0.5
    # The clerk is told that the comparison ran at the coarser scan, and which side that was.
    (finding,) = matcher.comparison_findings(g)
    assert finding.code == "low_resolution"
    assert ("questioned stamp" if factor < 1 else "registered specimen") in finding.detail
    assert matcher.comparison_findings(matcher.compare(_crop(design, 11, angle=8.0), spec)) == []


def _maybe_design(authority: str) -> StampDesign | None:
    try:
        d = StampDesign.for_authority(authority)
    except FontNotFoundError:
        return None
    return d if d.language == "en" and not d.has_date else None


def test_scanner_noise_is_measured_and_smoothed_before_the_comparison():
    design = _design("round")
    spec = _crop(design, 10)
    genuine = _crop(design, 11, angle=5.0)
    noisy = np.clip(genuine + np.random.default_rng(0).normal(0.0, 14.0, genuine.shape), 0, 255).astype(np.uint8)
    assert stamp_match.scan_noise(genuine) < stamp_match.NOISE_SIGMA < stamp_match.scan_noise(noisy)
    matcher = StampMatcher()
    clean_score = matcher.compare(genuine, spec)
    noisy_score = matcher.compare(noisy, spec)
    # Unsmoothed, the noise makes the ink's hue wander like a colour copy's (similarity ~0.02).
    assert "copy_like" not in [f.code for f in matcher.findings(noisy)]
    assert noisy_score.similarity > 0.5
    assert abs(noisy_score.extra_ink - clean_score.extra_ink) < 0.2


@pytest.mark.parametrize("ink", ["blue", "red"])
def test_a_colour_copy_has_a_wandering_hue_and_an_impression_does_not(ink: str):
    """A pad holds one dye; a copier lays the colour as misregistered cyan/magenta/yellow dots."""
    design = _design("round", ink)
    spec, genuine = _crop(design, 30), _crop(design, 31)
    copy = _crop(forge(design, ForgeryKind.PHOTOCOPY, np.random.default_rng(4)), 31)
    assert hue_noise(genuine) < 0.5 < 2.0 < hue_noise(copy)
    # Scanner noise alone is not a wandering hue: the same impression with colour noise stays low.
    noisy = np.clip(genuine + np.random.default_rng(5).normal(0.0, 4.0, genuine.shape), 0, 255).astype(np.uint8)
    assert hue_noise(noisy) < 1.0
    grey = cv2.cvtColor(cv2.cvtColor(copy, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert hue_noise(grey) == 0.0  # no colour, nothing to measure: neutral, not suspicious

    matcher = StampMatcher()
    g, c = matcher.compare(genuine, spec), matcher.compare(copy, spec)
    assert g.hue_noise == pytest.approx(hue_noise(genuine)) and c.hue_noise == pytest.approx(hue_noise(copy))
    assert c.similarity < g.similarity
    # The cue is the query's own: a greyscale specimen does not switch it off.
    grey_spec = cv2.cvtColor(cv2.cvtColor(spec, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert matcher.compare(copy, grey_spec).hue_noise == pytest.approx(c.hue_noise)
    # The examiner is told why, in the questioned mark's own words (not the specimen checks').
    found = {name: matcher.findings(crop) for name, crop in (("genuine", genuine), ("copy", copy), ("grey", grey))}
    assert {k: [f.code for f in v] for k, v in found.items()} == {
        "genuine": [],
        "copy": ["copy_like"],
        "grey": ["no_colour"],
    }
    assert "questioned" in found["copy"][0].detail and f"{hue_noise(copy):.2f}" in found["copy"][0].detail
    assert [f.code for f in matcher.findings(matcher.prepare(copy))] == ["copy_like"]


def test_weights_written_before_the_later_features_weigh_them_zero():
    design = _design("rect")
    old = {k: v for k, v in DEFAULT_WEIGHTS.items() if k not in LATER_FEATURES}
    explicit = {**old, **dict.fromkeys(LATER_FEATURES, 0.0)}
    a = StampMatcher(weights=old).compare(_crop(design, 20), _crop(design, 21))
    b = StampMatcher(weights=explicit).compare(_crop(design, 20), _crop(design, 21))
    assert a.similarity == pytest.approx(b.similarity, abs=1e-12)


def test_features_vector_follows_feature_names():
    design = _design("rect")
    feats = StampMatcher().compare(_crop(design, 20), _crop(design, 21))
    v = feats.vector()
    assert v.shape == (len(FEATURE_NAMES),) and np.all(np.isfinite(v))
    assert v[FEATURE_NAMES.index("ncc")] == pytest.approx(feats.ncc)
    assert 0.0 <= feats.similarity <= 1.0


@pytest.mark.parametrize(
    ("crop", "error"),
    [
        (np.zeros((0, 0, 3), np.uint8), StampMatchError),
        (np.zeros((8, 200, 3), np.uint8), StampMatchError),
        (np.zeros((64, 64), np.uint8), StampMatchError),
        (np.zeros((64, 64, 3), np.float32), StampMatchError),
        (np.full((64, 64, 3), 245, np.uint8), BlankStampError),
        (np.random.default_rng(0).integers(240, 250, (80, 80, 3)).astype(np.uint8), BlankStampError),
    ],
)
def test_bad_crops_raise_a_clear_error(crop: np.ndarray, error: type[Exception]):
    with pytest.raises(error):
        ink_map(crop)
    with pytest.raises(error) as raised:
        StampMatcher().prepare(crop)
    # Callers skip blank crops of any kind (BlankCropError) but must not skip a malformed array.
    assert isinstance(raised.value, BlankCropError) == (error is BlankStampError)


def test_blank_is_a_stamp_match_error_and_a_blank_crop_of_any_kind():
    assert issubclass(BlankStampError, StampMatchError) and issubclass(BlankStampError, BlankCropError)
    assert issubclass(StampMatchError, PairMatchError) and issubclass(StampMatchError, ValueError)
    assert not issubclass(StampMatchError, BlankCropError)  # a malformed crop is not a blank one
    assert stamp_match.BlankCropError is BlankCropError  # the old name still importable from here


def test_verify_needs_specimens_and_weights_are_checked():
    crop = _crop(_design("round"), 30)
    with pytest.raises(StampMatchError, match="at least one"):
        StampMatcher().verify(crop, [])
    with pytest.raises(StampMatchError, match="lack"):
        StampMatcher(weights={"ncc": 1.0})
    with pytest.raises(StampMatchError, match="finite"):
        StampMatcher(weights={**DEFAULT_WEIGHTS, "ncc": float("nan")})
