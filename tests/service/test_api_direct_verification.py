"""Marks verified by their direct comparison through the API (:mod:`similarity.verifier`).

The similarity card of these tests carries a ``stamp_aligned`` section, and for the signature tests
a ``signature_shape`` section too, each with the identity calibration (percent = 100 x the combined
score), so the percentages below are the comparisons' own. Stamps and signatures are rendered by
the project's generators at scan resolution.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from detectors.synth.doc_specimens import render_specimen
from detectors.synth.fonts import FontNotFoundError, default_catalog
from detectors.synth.stamps import ForgeryKind, ImpressionCondition, StampDesign, forge, render_impression
from similarity.verifier import FORGED_ONLY_BELOW
from tests.service.conftest import Service, running_service
from tests.service.fixtures import (
    document_page,
    png,
    scribble,
    write_document_model,
    write_similarity_model,
    write_xray_model,
)

if not default_catalog().has("latin"):
    pytest.skip("no Latin font installed (Debian: fonts-dejavu-core fonts-liberation2)", allow_module_level=True)


def _design() -> StampDesign:
    """The first drawable English round stamp without a date line."""
    for i in range(400):
        try:
            d = StampDesign.for_authority(f"AUTH-{i:05d}")
        except FontNotFoundError:
            continue
        if d.language == "en" and d.shape == "round" and not d.has_date:
            return d
    pytest.skip("no drawable round design with the installed fonts")


def _another_design(design: StampDesign) -> StampDesign:
    """Another authority's drawable round stamp (a random impostor of ``design``)."""
    for i in range(400):
        try:
            d = StampDesign.for_authority(f"AUTH-{i:05d}")
        except FontNotFoundError:
            continue
        if d.shape == "round" and d.authority_id != design.authority_id:
            return d
    pytest.skip("no second drawable round design with the installed fonts")


def _stamp(design: StampDesign, seed: int, angle: float = 0.0) -> np.ndarray:
    """One impression on white paper with a margin, ``(H, W, 3)`` uint8 RGB at 200 dpi."""
    condition = ImpressionCondition(angle_deg=angle, density=0.9, gaps=0.15)
    imp = render_impression(design, np.random.default_rng(seed), dpi=200.0, condition=condition, date="")
    absorb = np.pad(imp.ink.absorb, ((24, 24), (24, 24), (0, 0)))
    return np.clip((1.0 - absorb) * 255.0 + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def aligned_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    models = tmp_path_factory.mktemp("models-aligned")
    write_xray_model(models)
    write_document_model(models)
    write_similarity_model(models, aligned=True)
    with running_service(tmp_path_factory.mktemp("var"), models) as svc:
        yield svc


#: A ``signature_shape`` section with the identity calibration (the default shape weights).
SHAPE_SCORING = {
    "weights": None,
    "calibration": {"method": "platt", "slope": 1.0, "intercept": 0.0, "prior": 0.5},
    "decision": {"threshold": 50.0, "band": 5.0, "basis": "test"},
    "owner_normalisation": {"alpha": 0.75, "typical": 1.5},
}


@pytest.fixture(scope="module")
def direct_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service whose similarity card verifies stamps (aligned) and signatures (shape) directly."""
    models = tmp_path_factory.mktemp("models-direct")
    write_xray_model(models)
    write_document_model(models)
    card = write_similarity_model(models, aligned=True)
    data = json.loads(card.read_text())
    data["metrics"]["scoring"]["signature_shape"] = SHAPE_SCORING
    card.write_text(json.dumps(data))
    with running_service(tmp_path_factory.mktemp("var"), models) as svc:
        yield svc


def _signature(writer: str, seed: int, forgery: str | None = None) -> np.ndarray:
    """A scanned signature crop of ``writer`` (``forgery``: None, "skilled" or "random")."""
    crop, _ = render_specimen("signature", writer, forgery, np.random.default_rng(seed))
    return crop


def _post(service: Service, route: str, role: str, pixels: np.ndarray, **data: Any) -> Any:
    files = {"image": ("upload.png", png(pixels), "image/png")}
    return service.client.post(route, files=files, data=data, headers=service.auth(role))


def test_a_recarved_stamp_scores_below_a_genuine_impression(aligned_service: Service) -> None:
    design = _design()
    specimen = _post(aligned_service, "/v1/specimens", "admin", _stamp(design, 1), kind="stamp", owner="AUTH-X")
    assert specimen.status_code == 201, specimen.text

    genuine = _post(aligned_service, "/v1/compare", "clerk", _stamp(design, 2, angle=9.0), kind="stamp", owner="AUTH-X")
    forged_design = forge(design, ForgeryKind.ALTERED_TEXT, np.random.default_rng(5))
    forged = _post(aligned_service, "/v1/compare", "clerk", _stamp(forged_design, 2), kind="stamp", owner="AUTH-X")
    assert genuine.status_code == forged.status_code == 200, (genuine.text, forged.text)
    g, f = genuine.json(), forged.json()
    assert g["method"] == f["method"] == "aligned"
    assert g["specimen_id"] == specimen.json()["id"]
    assert g["similarity"] > f["similarity"]
    assert g["threshold"] == 50.0 and g["band"] == 5.0
    assert g["findings"] == f["findings"] == []  # clean colour impressions: nothing to remark
    assert [s["specimen_id"] for s in g["per_specimen"]] == [specimen.json()["id"]]

    # By specimen id as well, and the same score (specimens are prepared once and cached).
    again = _post(
        aligned_service,
        "/v1/compare",
        "clerk",
        _stamp(design, 2, angle=9.0),
        kind="stamp",
        specimen_id=specimen.json()["id"],
    )
    assert again.status_code == 200 and again.json()["method"] == "aligned"
    assert again.json()["similarity"] == g["similarity"]


def test_a_document_scanned_at_half_the_specimens_resolution_is_still_compared(aligned_service: Service) -> None:
    """A 100 dpi questioned crop against a 200 dpi specimen: the genuine impression still matches
    and a re-carved one still scores lower (the comparison runs at the coarser resolution)."""
    design = _design()
    specimen = _post(aligned_service, "/v1/specimens", "admin", _stamp(design, 11), kind="stamp", owner="AUTH-HALF")
    assert specimen.status_code == 201, specimen.text

    def half(img: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), dtype=np.uint8)

    forged_design = forge(design, ForgeryKind.OTHER_FONT, np.random.default_rng(2))
    scores = {}
    for name, crop in (("genuine", _stamp(design, 12, angle=-7.0)), ("forged", _stamp(forged_design, 12, angle=-7.0))):
        r = _post(aligned_service, "/v1/compare", "clerk", half(crop), kind="stamp", owner="AUTH-HALF")
        assert r.status_code == 200, r.text
        assert r.json()["method"] == "aligned"
        assert [f["code"] for f in r.json()["findings"]] == ["low_resolution"]
        scores[name] = r.json()["similarity"]
    assert scores["genuine"] > 50.0 and scores["genuine"] > scores["forged"]


def test_registering_a_stamp_reports_what_makes_it_a_poor_specimen(aligned_service: Service) -> None:
    """Registered all the same (201); ``checks`` tells the clerk why the comparisons may suffer."""
    design = _design()
    clean = _stamp(design, 11)
    grey = np.repeat(clean.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    copy = _stamp(forge(design, ForgeryKind.PHOTOCOPY, np.random.default_rng(2)), 11)
    found = {}
    for name, pixels in (("clean", clean), ("grey", grey), ("copy", copy)):
        r = _post(aligned_service, "/v1/specimens", "admin", pixels, kind="stamp", owner="AUTH-CHECKS", label=name)
        assert r.status_code == 201, r.text
        found[name] = [c["code"] for c in r.json()["checks"]]
        assert all(c["detail"] for c in r.json()["checks"])
    assert found == {"clean": [], "grey": ["no_colour"], "copy": ["copy_like"]}

    # A questioned copy is remarked on at comparison too, in the compare answer and in a document's matches.
    compared = _post(aligned_service, "/v1/compare", "clerk", copy, kind="stamp", owner="AUTH-CHECKS")
    assert compared.status_code == 200, compared.text
    assert [f["code"] for f in compared.json()["findings"]] == ["copy_like"]
    assert "questioned" in compared.json()["findings"][0]["detail"]

    sig = _post(aligned_service, "/v1/specimens", "admin", scribble(seed=4), kind="signature", owner="W-CHECKS")
    assert sig.status_code == 201 and sig.json()["checks"] == []
    listed = aligned_service.client.get("/v1/specimens?owner=AUTH-CHECKS", headers=aligned_service.auth("clerk"))
    assert listed.status_code == 200 and listed.json()["count"] == 3
    assert all("checks" not in s for s in listed.json()["specimens"])  # measured at registration only


def test_a_blank_stamp_specimen_is_refused_and_a_blank_query_falls_back(aligned_service: Service) -> None:
    paper = np.full((120, 160, 3), 246, np.uint8)
    r = _post(aligned_service, "/v1/specimens", "admin", paper, kind="stamp", owner="AUTH-BLANK")
    assert r.status_code == 422 and r.json()["error"] == "blank_specimen", r.text
    assert "stamp ink" in r.json()["detail"]

    design = _design()
    assert (
        _post(aligned_service, "/v1/specimens", "admin", _stamp(design, 3), kind="stamp", owner="AUTH-Y").status_code
        == 201
    )
    # A query without stamp ink cannot be aligned: the embedding scores it, and says so.
    r = _post(aligned_service, "/v1/compare", "clerk", paper, kind="stamp", owner="AUTH-Y")
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "embedding"


def test_signatures_and_document_matches_say_how_they_were_scored(aligned_service: Service) -> None:
    ink = scribble(seed=41)
    assert _post(aligned_service, "/v1/specimens", "admin", ink, kind="signature", owner="W-S").status_code == 201
    r = _post(aligned_service, "/v1/compare", "clerk", ink, kind="signature", owner="W-S")
    assert r.status_code == 200 and r.json()["method"] == "embedding"

    body = _post(aligned_service, "/v1/documents/inspect", "scanner", document_page(seed=3)).json()
    assert body["matches"], body
    assert {m["method"] for m in body["matches"]} <= {"aligned", "embedding"}
    for m in body["matches"]:
        if m["kind"] == "signature":
            assert m["method"] == "embedding"
        # Only a directly compared stamp is looked at by itself (and its comparison by its scans).
        stamp_codes = {"no_colour", "copy_like", "low_resolution"}
        assert {f["code"] for f in m["findings"]} <= (stamp_codes if m["method"] == "aligned" else set())


def test_a_signature_is_verified_by_shape_against_the_claimed_writer(direct_service: Service) -> None:
    for seed in (1, 2):
        r = _post(direct_service, "/v1/specimens", "admin", _signature("W-00011", seed), kind="signature", owner="W-11")
        assert r.status_code == 201, r.text
    own = [_post(direct_service, "/v1/compare", "clerk", _signature("W-00011", s), kind="signature", owner="W-11")
           for s in (3, 4, 5)]  # fmt: skip
    others = [
        _post(direct_service, "/v1/compare", "clerk", _signature(w, 3), kind="signature", owner="W-11")
        for w in ("W-00012", "W-00013", "W-00014")
    ]
    for r in own + others:
        assert r.status_code == 200, r.text
        assert r.json()["method"] == "shape"
        assert len(r.json()["per_specimen"]) == 2
    assert np.mean([r.json()["similarity"] for r in own]) > np.mean([r.json()["similarity"] for r in others])


def _owner_verifier(service: Service) -> Any:
    from similarity.verifier import PairVerifier

    card = json.loads((service.settings.models_dir / "similarity.json").read_text())
    return PairVerifier.from_section("signature", card["metrics"]["scoring"]["signature_shape"])


def test_an_owner_with_several_specimens_is_scored_on_all_of_them(direct_service: Service) -> None:
    verifier = _owner_verifier(direct_service)
    assert verifier.owner_normalisation is not None
    specimens = [_signature("W-00031", seed) for seed in (1, 2)]
    for crop in specimens:
        assert _post(direct_service, "/v1/specimens", "admin", crop, kind="signature", owner="W-31").status_code == 201
    query = _signature("W-00031", 7)
    r = _post(direct_service, "/v1/compare", "clerk", query, kind="signature", owner="W-31")
    assert r.status_code == 200, r.text
    body = r.json()
    expected = verifier.score(query, specimens)
    assert (body["similarity"], body["verdict"]) == (expected.percent, expected.verdict)
    assert sorted(s["similarity"] for s in body["per_specimen"]) == sorted(expected.specimen_percents)

    # A third specimen changes the owner's consistency: the cached value is not reused.
    specimens.append(_signature("W-00031", 3))
    added = _post(direct_service, "/v1/specimens", "admin", specimens[-1], kind="signature", owner="W-31")
    assert added.status_code == 201
    r = _post(direct_service, "/v1/compare", "clerk", query, kind="signature", owner="W-31")
    assert r.status_code == 200 and len(r.json()["per_specimen"]) == 3
    assert r.json()["similarity"] == verifier.score(query, specimens).percent

    # The same owner through a document inspection gets the same owner-level score.
    body = _post(direct_service, "/v1/documents/inspect", "scanner", document_page(seed=3), owner="W-31").json()
    claimed = [m for m in body["matches"] if m["kind"] == "signature" and m["owner"] == "W-31"]
    assert claimed and {m["method"] for m in claimed} == {"shape"}


def test_a_blank_signature_specimen_is_refused_and_a_blank_query_falls_back(direct_service: Service) -> None:
    paper = np.full((90, 240, 3), 246, np.uint8)
    r = _post(direct_service, "/v1/specimens", "admin", paper, kind="signature", owner="W-BLANK")
    assert r.status_code == 422 and r.json()["error"] == "blank_specimen", r.text
    assert "signature specimen" in r.json()["detail"]

    r = _post(direct_service, "/v1/specimens", "admin", _signature("W-00021", 1), kind="signature", owner="W-21")
    assert r.status_code == 201, r.text
    r = _post(direct_service, "/v1/compare", "clerk", paper, kind="signature", owner="W-21")
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "embedding"


def test_document_signatures_are_matched_by_shape(direct_service: Service) -> None:
    ink = scribble(seed=41)
    assert _post(direct_service, "/v1/specimens", "admin", ink, kind="signature", owner="W-S").status_code == 201
    body = _post(direct_service, "/v1/documents/inspect", "scanner", document_page(seed=3), owner="W-S").json()
    signatures = [m for m in body["matches"] if m["kind"] == "signature"]
    assert signatures, body
    assert {m["method"] for m in signatures} == {"shape"}


def test_reports_stored_before_the_method_field_still_read(tmp_path: Path) -> None:
    from service.schemas import MatchOut

    old = {
        "detection": 0,
        "kind": "stamp",
        "specimen_id": "s",
        "owner": "o",
        "similarity": 61.2,
        "verdict": "genuine",
        "threshold": 50.0,
        "claimed": True,
    }
    assert MatchOut.model_validate(old).method == "embedding"


@pytest.fixture(scope="module")
def strict_stamp_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The aligned service with a stamp threshold of 98 %, so genuine impressions score in the
    low range (a stand-in for a card whose genuine greyscale scans score low)."""
    models = tmp_path_factory.mktemp("models-strict")
    write_xray_model(models)
    write_document_model(models)
    card = write_similarity_model(models, aligned=True)
    data = json.loads(card.read_text())
    data["metrics"]["scoring"]["stamp_aligned"]["decision"]["threshold"] = 98.0
    card.write_text(json.dumps(data))
    with running_service(tmp_path_factory.mktemp("var"), models) as svc:
        yield svc


def test_a_greyscale_stamp_is_called_forged_only_on_a_clearly_low_score(strict_stamp_service: Service) -> None:
    """A greyscale scan of a stamp shows ``no_colour``; its low scores are weak evidence, so
    ``forged`` needs a score below the finding's bound and the rest of the low range is
    ``inconclusive``, at the top level and per specimen alike; the same crops in colour are
    ``forged`` in that range."""
    aligned_service = strict_stamp_service
    design = _design()
    other_font = forge(design, ForgeryKind.OTHER_FONT, np.random.default_rng(3))
    for seed in (11, 12):
        r = _post(aligned_service, "/v1/specimens", "admin", _stamp(design, seed), kind="stamp", owner="AUTH-GREY")
        assert r.status_code == 201, r.text
    bound = FORGED_ONLY_BELOW["no_colour"]
    seen = set()
    for crop in (_stamp(design, 13, angle=5.0), _stamp(other_font, 14), _stamp(_another_design(design), 15)):
        grey = np.repeat(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        body = _post(aligned_service, "/v1/compare", "clerk", grey, kind="stamp", owner="AUTH-GREY").json()
        assert "no_colour" in [f["code"] for f in body["findings"]], body
        low_edge = body["threshold"] - body["band"]
        for item in [body, *body["per_specimen"]]:
            pc, verdict = item["similarity"], item["verdict"]
            expected = "forged" if pc < bound else "inconclusive" if pc < low_edge else None
            if expected is not None:
                assert verdict == expected, (pc, verdict)
                seen.add(expected)
    assert seen == {"forged", "inconclusive"}  # another authority's stamp in grey is still forged
    in_colour = _stamp(design, 13, angle=5.0)
    body = _post(aligned_service, "/v1/compare", "clerk", in_colour, kind="stamp", owner="AUTH-GREY").json()
    assert body["findings"] == [] and bound <= body["similarity"] < body["threshold"] - body["band"]
    assert body["verdict"] == "forged"
