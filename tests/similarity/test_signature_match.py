"""Signature comparison by shape descriptors: writers told apart, invariances, input validation, weights."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from similarity.data import SpecimenItem, render_specimen_items
from similarity.pairwise import BlankCropError, PairMatchError
from similarity.scoring import verification_metrics
from similarity.signature_match import (
    AXIS_MIN_RATIO,
    DEFAULT_WEIGHTS,
    FEATURE_NAMES,
    BlankSignatureError,
    PreparedSignature,
    SignatureMatcher,
    SignatureMatchError,
    align_shape,
    describe,
    distances,
    fit_weights,
    principal_axis,
    rotated,
    signature_ink,
)
from similarity.stamp_match import StampMatchError

WRITERS = 10


@pytest.fixture(scope="module")
def writers() -> dict[str, list[SpecimenItem]]:
    """Ten synthetic writers (the training's renders: signature on paper, scanned, cropped with
    detector-like slack): three genuine signatures and one skilled forgery each, by owner."""
    items = render_specimen_items(
        "signature", [f"test-writer-{i}" for i in range(WRITERS)], per_owner=3, forgeries=1, seed=0
    )
    out: dict[str, list[SpecimenItem]] = {}
    for it in items:
        out.setdefault(it.owner, []).append(it)
    return out


def _genuine(writers: dict[str, list[SpecimenItem]]) -> dict[str, list[np.ndarray]]:
    return {o: [it.image() for it in its if it.genuine] for o, its in writers.items()}


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _zoom_and_pad(crop: np.ndarray) -> np.ndarray:
    """The same signature scanned at twice the resolution inside a larger, lopsided white box."""
    big = cv2.resize(crop, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, 10, 90, 150, 20, cv2.BORDER_CONSTANT, value=(255, 255, 255))


# ------------------------------------------------------------------------------ telling writers apart


def test_genuine_pairs_of_a_writer_score_above_pairs_of_two_writers(writers):
    genuine = _genuine(writers)
    assert len(genuine) == WRITERS and all(len(v) == 3 for v in genuine.values())
    matcher = SignatureMatcher()
    prepared = {o: [matcher.prepare(c) for c in crops] for o, crops in genuine.items()}
    same = [matcher.compare(a, b).similarity for p in prepared.values() for a, b in itertools.combinations(p, 2)]
    other = [
        matcher.compare(prepared[a][0], prepared[b][1]).similarity
        for a, b in itertools.permutations(sorted(prepared), 2)
    ]
    metrics = verification_metrics(np.array(same), np.array(other))
    assert metrics.auc >= 0.95 and metrics.eer < 0.15, metrics
    assert np.mean(same) - np.mean(other) > 0.5
    # 1:N over the writers: each third signature is most like its own writer's first two.
    hits = sum(
        max(prepared, key=lambda o: matcher.verify(prepared[owner][2], prepared[o][:2]).similarity) == owner
        for owner in prepared
    )
    assert hits >= WRITERS - 1


def test_a_skilled_forgery_looks_more_like_the_writer_than_another_writer_does(writers):
    matcher = SignatureMatcher()
    owners = sorted(writers)
    skilled, other = [], []
    for n, owner in enumerate(owners):
        refs = [it.image() for it in writers[owner] if it.genuine][:2]
        forged = next(it.image() for it in writers[owner] if not it.genuine)
        stranger = [it.image() for it in writers[owners[(n + 1) % len(owners)]] if it.genuine][2]
        skilled.append(matcher.verify(forged, refs).similarity)
        other.append(matcher.verify(stranger, refs).similarity)
    assert np.mean(skilled) > np.mean(other) + 0.2


def test_an_identical_crop_has_zero_distances_and_the_highest_similarity(writers):
    matcher = SignatureMatcher()
    crops = [it.image() for its in writers.values() for it in its]
    prepared = [matcher.prepare(c) for c in crops]
    same = matcher.compare(crops[0], crops[0])
    np.testing.assert_allclose(same.vector(), 0.0, atol=1e-5)
    assert same.similarity == pytest.approx(_sigmoid(DEFAULT_WEIGHTS["intercept"]))
    others = [matcher.compare(prepared[0], p).similarity for p in prepared[1:]]
    assert same.similarity >= max(others)


def test_prepared_and_raw_crops_compare_the_same(writers):
    a, b = _genuine(writers)["signature:test-writer-0"][:2]
    matcher = SignatureMatcher()
    pa, pb = matcher.prepare(a), matcher.prepare(b)
    assert isinstance(pa, PreparedSignature)
    assert matcher.compare(a, b) == matcher.compare(pa, pb) == matcher.compare(pa, b)
    feats = matcher.compare(pa, pb)
    plain, swapped = distances(pa, pb), distances(pb, pa)
    # The descriptor distances are symmetric; the aligned ones warp the query onto the specimen.
    unaligned = [FEATURE_NAMES.index(n) for n in FEATURE_NAMES if not n.startswith("aligned_")]
    assert plain.vector()[unaligned] == pytest.approx(swapped.vector()[unaligned])
    assert plain.aligned_corr_dist == pytest.approx(swapped.aligned_corr_dist, abs=0.1)
    if feats.query_rotation_deg == 0.0:
        assert feats.vector() == pytest.approx(distances(pa, pb).vector())
    else:
        assert feats.vector() == pytest.approx(distances(rotated(pa, feats.query_rotation_deg), pb).vector())
    assert np.isnan(distances(pa, pb).similarity)


# ----------------------------------------------------------------------------------------- invariances


def test_resolution_and_detector_slack_change_little(writers):
    """The descriptors work on the ink box: twice the scan resolution inside a lopsided white
    margin is nearly the same signature."""
    matcher = SignatureMatcher()
    deltas = []
    for crops in _genuine(writers).values():
        moved = matcher.compare(crops[0], _zoom_and_pad(crops[0]))
        assert moved.similarity > 0.97 and moved.aspect_diff < 0.06, moved
        for a, b in itertools.combinations(crops, 2):
            deltas.append(abs(matcher.compare(a, b).similarity - matcher.compare(_zoom_and_pad(a), b).similarity))
    # One dissimilar genuine pair of the ten writers sits on the steep part of the logistic.
    assert np.mean(deltas) < 0.04 and max(deltas) < 0.3


@pytest.mark.parametrize(
    ("warp", "refused"),
    [
        ([[1.05, 0.1, 2.0], [-0.05, 0.95, 1.0]], False),  # slant and a small shift: a real fit
        ([[16.9, -24.4, -788.0], [12.7, 52.0, -2164.0]], True),  # what ECC "converged" to on a real pair
        ([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]], True),  # shrunk to half
        ([[1.0, 0.0, 60.0], [0.0, 1.0, 0.0]], True),  # shifted by almost half the canvas
    ],
)
def test_a_degenerate_ecc_fit_is_refused(monkeypatch, warp, refused):
    """Whatever its correlation, an ECC warp far from the identity is no alignment: the query is
    compared unwarped."""
    rng = np.random.default_rng(0)
    specimen = cv2.GaussianBlur(rng.random((64, 128)).astype(np.float32), (0, 0), 3)
    query = np.ascontiguousarray(specimen[:, ::-1])
    monkeypatch.setattr(cv2, "findTransformECC", lambda *a, **k: (0.9, np.asarray(warp, np.float32)))
    # The correlation guard alone would keep a warped shape that correlates better than the query.
    monkeypatch.setattr("similarity.signature_match._ncc", lambda a, b: 1.0 if a is not query else 0.0)
    out = align_shape(query, specimen)
    assert (out is query) == refused


def _turned(crop: np.ndarray, degrees: float) -> np.ndarray:
    """``crop`` on a white margin, turned by ``degrees`` (counter-clockwise as displayed)."""
    padded = cv2.copyMakeBorder(crop, 40, 40, 60, 60, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    h, w = padded.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(padded, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))


def test_principal_axis_follows_the_ink():
    level = np.zeros((200, 300), np.float32)
    cv2.line(level, (30, 100), (270, 100), 1.0, 9)
    angle, ratio = principal_axis(level)
    assert abs(angle) < 0.5 and ratio > 20
    turned = cv2.warpAffine(level, cv2.getRotationMatrix2D((150, 100), 15.0, 1.0), (300, 200))
    # Counter-clockwise as displayed is a negative angle with y pointing down.
    assert principal_axis(turned)[0] == pytest.approx(-15.0, abs=0.5)
    disc = cv2.circle(np.zeros((100, 100), np.float32), (50, 50), 30, 1.0, -1)
    assert principal_axis(disc)[1] == pytest.approx(1.0, abs=0.05)
    assert principal_axis(np.zeros((10, 10), np.float32)) == (0.0, 1.0)


def test_rotated_turns_a_prepared_signature_and_needs_its_ink(writers):
    prepared = describe(_genuine(writers)["signature:test-writer-1"][0])
    assert prepared.ink is not None and prepared.axis_ratio > 2.0
    assert rotated(prepared, 12.0).axis_angle == pytest.approx(prepared.axis_angle - 12.0, abs=1.0)
    without_ink = PreparedSignature(**{**prepared.__dict__, "ink": None})
    with pytest.raises(SignatureMatchError, match="no ink map"):
        rotated(without_ink, 5.0)


@pytest.mark.parametrize("degrees", [18.0, -15.0])
def test_a_turned_signature_is_compared_on_the_specimens_axis(writers, degrees):
    """A page scanned askew (or a hand signing at an angle): the questioned signature is turned
    onto the specimen's principal axis, so a genuine one keeps its score and still beats the other
    writers' signatures turned the same way. (Compact signatures without a stable axis are
    compared as written: here 4 of the 10 writers are left out for that.)"""
    matcher = SignatureMatcher()
    genuine = _genuine(writers)
    owners = sorted(genuine)
    upright, turned, plain, strangers = [], [], [], []
    for n, owner in enumerate(owners):
        spec, as_written = matcher.prepare(genuine[owner][0]), matcher.prepare(genuine[owner][1])
        if min(spec.axis_ratio, as_written.axis_ratio) < AXIS_MIN_RATIO + 0.5:
            continue
        query = matcher.prepare(_turned(genuine[owner][1], degrees))
        result = matcher.compare(query, spec)
        upright.append(matcher.compare(as_written, spec).similarity)
        turned.append(result.similarity)
        z = float(distances(query, spec).vector() @ matcher._w) + matcher.weights["intercept"]
        plain.append(_sigmoid(z))
        if result.query_rotation_deg:
            assert abs(result.query_rotation_deg) <= 30.0
        stranger = matcher.prepare(_turned(genuine[owners[(n + 1) % len(owners)]][1], degrees))
        strangers.append(matcher.compare(stranger, spec).similarity)
    assert all(t >= p - 1e-9 for t, p in zip(turned, plain, strict=True))
    assert np.mean(turned) > np.mean(plain) + 0.05, (np.mean(turned), np.mean(plain))
    assert len(turned) == 6
    assert abs(np.mean(turned) - np.mean(upright)) < 0.1, (np.mean(turned), np.mean(upright))
    assert verification_metrics(np.array(turned), np.array(strangers)).eer <= 0.1


def test_a_speck_far_from_the_signature_does_not_move_the_ink_box(writers):
    crop = _genuine(writers)["signature:test-writer-1"][0]
    paper = tuple(int(v) for v in np.median(crop.reshape(-1, 3), axis=0))
    wide = cv2.copyMakeBorder(crop, 0, 0, 0, 80, cv2.BORDER_CONSTANT, value=paper)
    box = signature_ink(wide).shape
    assert abs(box[1] - signature_ink(crop).shape[1]) <= 2  # the paper added is not ink
    specked = wide.copy()
    specked[5:7, -4:-2] = 0
    assert abs(signature_ink(specked).shape[1] - box[1]) <= 8  # not stretched ~80 px out to the speck
    level = signature_ink(specked)
    assert level.dtype == np.float32 and level.min() >= 0.0 and level.max() == 1.0


# ---------------------------------------------------------------------------------------- bad crops


def _few_ink_pixels() -> np.ndarray:
    crop = np.full((40, 40, 3), 250, np.uint8)
    crop[10:15, 10:15] = 0  # contrasty, but 25 ink pixels only
    return crop


@pytest.mark.parametrize(
    ("crop", "error", "message"),
    [
        (np.zeros((0, 0, 3), np.uint8), SignatureMatchError, "smaller"),
        (np.zeros((5, 200, 3), np.uint8), SignatureMatchError, "smaller"),
        (np.zeros((64, 64), np.uint8), SignatureMatchError, "RGB"),
        (np.zeros((64, 64, 4), np.uint8), SignatureMatchError, "RGB"),
        (np.zeros((64, 64, 3), np.float32), SignatureMatchError, "uint8"),
        (np.zeros((64, 64, 3), np.int64).tolist(), SignatureMatchError, "uint8"),
        (np.full((64, 64, 3), 245, np.uint8), BlankSignatureError, "grey levels"),
        (np.random.default_rng(0).integers(235, 250, (80, 80, 3)).astype(np.uint8), BlankSignatureError, "grey"),
        (_few_ink_pixels(), BlankSignatureError, "25 ink pixels"),
    ],
    ids=["empty", "too-thin", "grey", "rgba", "float", "list", "white", "paper-noise", "few-ink-pixels"],
)
def test_bad_crops_raise_a_clear_error(crop, error, message):
    matcher = SignatureMatcher()
    with pytest.raises(error, match=message):
        describe(crop)
    with pytest.raises(error, match=message):
        matcher.prepare(crop)
    with pytest.raises(error, match=message):
        matcher.compare(crop, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(error, match=message):
        matcher.verify(crop, [np.zeros((64, 64, 3), np.uint8)])


def test_the_errors_are_pair_match_errors_of_the_signature_kind():
    assert issubclass(BlankSignatureError, SignatureMatchError) and issubclass(BlankSignatureError, BlankCropError)
    assert issubclass(BlankSignatureError, PairMatchError) and issubclass(SignatureMatchError, ValueError)
    # A stamp's handler does not swallow signature errors.
    assert not issubclass(SignatureMatchError, StampMatchError) and not issubclass(StampMatchError, SignatureMatchError)


# ------------------------------------------------------------------------------------------ weights


def test_the_combined_score_is_the_logistic_of_the_weighted_distances(writers):
    a, b = _genuine(writers)["signature:test-writer-2"][:2]
    zero = dict.fromkeys((*FEATURE_NAMES, "intercept"), 0.0)
    assert SignatureMatcher(weights=zero).compare(a, b).similarity == 0.5
    hog_only = SignatureMatcher(weights=zero | {"hog_dist": -10.0, "intercept": 2.0})
    feats = hog_only.compare(a, b)
    assert feats.hog_dist > 0.0 and feats.similarity == pytest.approx(_sigmoid(2.0 - 10.0 * feats.hog_dist))
    default = SignatureMatcher().compare(a, b)
    z = float(default.vector() @ np.array([DEFAULT_WEIGHTS[n] for n in FEATURE_NAMES])) + DEFAULT_WEIGHTS["intercept"]
    assert default.similarity == pytest.approx(_sigmoid(z))
    assert SignatureMatcher().weights == DEFAULT_WEIGHTS and SignatureMatcher().weights is not DEFAULT_WEIGHTS


def test_weights_are_checked():
    with pytest.raises(SignatureMatchError, match="lack"):
        SignatureMatcher(weights={"hog_dist": -1.0, "intercept": 0.0})
    with pytest.raises(SignatureMatchError, match="intercept"):
        SignatureMatcher(weights={k: v for k, v in DEFAULT_WEIGHTS.items() if k != "intercept"})
    for bad in (float("nan"), float("inf")):
        with pytest.raises(SignatureMatchError, match="finite"):
            SignatureMatcher(weights={**DEFAULT_WEIGHTS, "grid_dist": bad})
    with pytest.raises(ValueError):
        SignatureMatcher(weights={**DEFAULT_WEIGHTS, "grid_dist": "heavy"})


def _separable(n_genuine: int, n_impostor: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Distances where only ``hog_dist`` tells the classes apart (small for genuine pairs)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n_genuine + n_impostor, len(FEATURE_NAMES)))
    genuine = np.arange(x.shape[0]) < n_genuine
    k = FEATURE_NAMES.index("hog_dist")
    x[:, k] = np.where(genuine, rng.uniform(0.0, 0.2, x.shape[0]), rng.uniform(0.3, 0.6, x.shape[0]))
    return x, genuine


@pytest.mark.parametrize(("n_genuine", "n_impostor"), [(200, 200), (40, 400)])
def test_fit_weights_finds_the_telling_distance_and_separates_the_classes(n_genuine, n_impostor):
    x, genuine = _separable(n_genuine, n_impostor)
    weights = fit_weights(x, genuine)
    assert set(weights) == {*FEATURE_NAMES, "intercept"}
    k = FEATURE_NAMES.index("hog_dist")
    assert weights["hog_dist"] < 0.0
    spread = x.std(axis=0)
    standardised = {n: abs(weights[n]) * spread[i] for i, n in enumerate(FEATURE_NAMES)}
    assert max(standardised, key=standardised.__getitem__) == "hog_dist"
    # Classes weighted 1:1: the decision at 0.5 falls between them even when impostors outnumber 10:1.
    z = x @ np.array([weights[n] for n in FEATURE_NAMES]) + weights["intercept"]
    assert (z[genuine] > 0).mean() > 0.97 and (z[~genuine] < 0).mean() > 0.97
    assert np.all(x[genuine, k] < 0.2)  # the data are what the test says
    SignatureMatcher(weights=weights)  # usable as a matcher's weights


def test_fit_weights_refuses_one_class_and_wrong_shapes():
    x, genuine = _separable(20, 20)
    with pytest.raises(SignatureMatchError, match="both"):
        fit_weights(x, np.ones(40, dtype=bool))
    with pytest.raises(SignatureMatchError, match="both"):
        fit_weights(x, np.zeros(40, dtype=bool))
    with pytest.raises(SignatureMatchError, match="features"):
        fit_weights(x[:, :4], genuine)
    with pytest.raises(SignatureMatchError, match="features"):
        fit_weights(x, genuine[:-1])
    with pytest.raises(SignatureMatchError, match="features"):
        fit_weights(x[0], genuine[:1])


# ------------------------------------------------------------------------------------------- verify


def test_verify_keeps_the_most_similar_specimen(writers):
    genuine = _genuine(writers)
    own = genuine["signature:test-writer-3"]
    strangers = [genuine["signature:test-writer-4"][0], genuine["signature:test-writer-5"][0]]
    matcher = SignatureMatcher()
    specimens = [strangers[0], matcher.prepare(own[0]), strangers[1]]
    best = matcher.verify(own[2], specimens)
    each = [matcher.compare(own[2], s) for s in specimens]
    assert best == each[1] and best.similarity == max(r.similarity for r in each)
    assert matcher.verify(own[2], strangers).similarity < best.similarity


def test_verify_needs_a_specimen_and_an_inked_query(writers):
    crop = _genuine(writers)["signature:test-writer-0"][0]
    with pytest.raises(SignatureMatchError, match="at least one"):
        SignatureMatcher().verify(crop, [])
    with pytest.raises(BlankSignatureError):
        SignatureMatcher().verify(np.full((60, 120, 3), 250, np.uint8), [crop])
    with pytest.raises(BlankSignatureError):
        SignatureMatcher().verify(crop, [crop, np.full((60, 120, 3), 250, np.uint8)])
