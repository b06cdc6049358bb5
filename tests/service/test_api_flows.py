"""The routes doing their jobs: inspections, stored reports and images, specimens, comparisons,
claimed owners first, the audit trail and the metrics."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from detectors.document import MarkDetector
from service.audit import verify_chain
from service.cli import main
from service.db import AuditEntry
from service.metrics import parse_samples
from tests.service.conftest import Service
from tests.service.fixtures import document_page, png, scribble, xray_scan
from vision.types import Detections


def _post_image(service: Service, route: str, role: str, pixels: np.ndarray, **data: Any) -> Any:
    return service.client.post(
        route, files={"image": ("upload.png", png(pixels), "image/png")}, data=data, headers=service.auth(role)
    )


def _decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _register(service: Service, pixels: np.ndarray, *, kind: str, owner: str, label: str = "") -> dict[str, Any]:
    r = _post_image(service, "/v1/specimens", "admin", pixels, kind=kind, owner=owner, label=label)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/specimens/{r.json()['id']}"
    return dict(r.json())


# ------------------------------------------------------------------------------------------ X-ray


@pytest.mark.parametrize(("dark", "risk", "n"), [(True, "alarm", 1), (False, "clear", 0)])
def test_xray_inspection_report(service: Service, dark: bool, risk: str, n: int) -> None:
    scan = xray_scan(dark=dark, seed=11)
    r = _post_image(service, "/v1/xray/inspect", "scanner", scan)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["modality"] == "xray" and body["risk"] == risk and len(body["detections"]) == n
    assert body["models"] == {"xray": "test-1"}
    assert {"decode", "preprocess", "model", "postprocess", "total"} <= set(body["timings_ms"])
    assert body["image"]["width"] == scan.shape[1] and body["image"]["height"] == scan.shape[0]
    if n:
        det = body["detections"][0]
        assert det["label"] == "handgun" and det["confidence"] > 0.9
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 < x2 <= scan.shape[1] and 0 <= y1 < y2 <= scan.shape[0]


def test_reports_are_stored_and_retrievable_with_images(service: Service) -> None:
    scan = xray_scan(dark=True, seed=12)
    created = _post_image(service, "/v1/xray/inspect", "scanner", scan).json()
    r = service.client.get(f"/v1/reports/{created['id']}", headers=service.auth("clerk"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == created

    stored = _decode_png(
        service.client.get(f"/v1/reports/{created['id']}/image.png", headers=service.auth("clerk")).content
    )
    assert np.array_equal(stored, scan)  # small enough to be stored as uploaded, losslessly

    r = service.client.get(created["annotated_url"], headers=service.auth("clerk"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    annotated = _decode_png(r.content)
    assert annotated.shape == scan.shape
    x1, y1, x2, y2 = (round(v) for v in created["detections"][0]["box"])
    changed = np.any(annotated != scan, axis=2)
    assert changed[y1 - 1 : y1 + 2, x1:x2].mean() > 0.5  # the box's top edge is drawn
    assert changed[y2 - 1 : y2 + 2, x1:x2].mean() > 0.5  # and its bottom edge
    assert not changed[y2 - 16 : y2 - 6, x1 + 10 : x2 - 10].any()  # the inside below the label is not


def test_large_images_are_stored_downscaled_and_annotated_to_scale(start_service: Any) -> None:
    with start_service(report_image_max_side=64) as svc:
        scan = xray_scan(dark=True, seed=13, size=(96, 128))
        body = _post_image(svc, "/v1/xray/inspect", "scanner", scan).json()
        assert (body["image"]["stored_width"], body["image"]["stored_height"]) == (64, 48)
        assert body["detections"][0]["box"] == [32.0, 16.0, 96.0, 64.0]  # still in uploaded pixels
        stored = _decode_png(svc.client.get(f"/v1/reports/{body['id']}/image.png", headers=svc.auth("clerk")).content)
        annotated = _decode_png(svc.client.get(body["annotated_url"], headers=svc.auth("clerk")).content)
        assert stored.shape == annotated.shape == (48, 64, 3)
        changed = np.any(annotated != stored, axis=2)
        assert changed[8, 16:48].mean() > 0.5  # top edge at y = 16 / 2, from x = 32 / 2 to 96 / 2


# --------------------------------------------------------------------------------- specimens


def test_specimen_create_read_list_delete(service: Service) -> None:
    stamp = scribble(seed=21)
    created = _register(service, stamp, kind="stamp", owner="crud-co", label="2024 seal")
    assert created["kind"] == "stamp" and created["owner"] == "crud-co" and created["label"] == "2024 seal"
    assert created["model_version"] == "test-1"
    signature = _register(service, scribble(seed=22), kind="signature", owner="crud-co")
    sid = created["id"]

    r = service.client.get(f"/v1/specimens/{sid}", headers=service.auth("clerk"))
    checks = created.pop("checks")  # measured at registration, not stored: GET has the rest
    assert isinstance(checks, list) and r.status_code == 200 and r.json() == created
    image = service.client.get(created["image_url"], headers=service.auth("clerk"))
    assert np.array_equal(_decode_png(image.content), stamp)

    def listed(query: str) -> list[str]:
        r = service.client.get(f"/v1/specimens{query}", headers=service.auth("clerk"))
        assert r.status_code == 200 and r.json()["count"] == len(r.json()["specimens"])
        return [s["id"] for s in r.json()["specimens"]]

    assert listed("?owner=crud-co") == [sid, signature["id"]]
    assert listed("?owner=crud-co&kind=signature") == [signature["id"]]
    assert sid in listed("?kind=stamp") and signature["id"] not in listed("?kind=stamp")
    assert listed("?owner=nobody-at-all") == []

    r = service.client.delete(f"/v1/specimens/{sid}", headers=service.auth("admin"))
    assert r.status_code == 204 and r.content == b""
    assert service.client.get(f"/v1/specimens/{sid}", headers=service.auth("clerk")).status_code == 404
    assert listed("?owner=crud-co") == [signature["id"]]
    assert service.client.delete(f"/v1/specimens/{sid}", headers=service.auth("admin")).status_code == 404


def test_compare_by_specimen_and_by_owner(service: Service) -> None:
    genuine, other = scribble(seed=31), scribble(seed=32)
    first = _register(service, genuine, kind="signature", owner="cmp-person")
    second = _register(service, other, kind="signature", owner="cmp-person")

    r = _post_image(service, "/v1/compare", "clerk", genuine, kind="signature", specimen_id=first["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["specimen_id"] == first["id"] and body["owner"] == "cmp-person"
    assert body["similarity"] > 99 and body["verdict"] == "genuine"
    assert body["threshold"] == 50.0 and body["band"] == 5.0 and body["models"] == {"similarity": "test-1"}
    assert [s["specimen_id"] for s in body["per_specimen"]] == [first["id"]]

    r = _post_image(service, "/v1/compare", "clerk", other, kind="signature", owner="cmp-person")
    assert r.status_code == 200, r.text
    body = r.json()
    assert {s["specimen_id"] for s in body["per_specimen"]} == {first["id"], second["id"]}
    sims = [s["similarity"] for s in body["per_specimen"]]
    assert sims == sorted(sims, reverse=True)
    assert body["specimen_id"] == second["id"] and body["similarity"] == sims[0] > 99
    assert round(body["similarity"], 2) == body["similarity"]


# --------------------------------------------------------------------------------- documents


def _document_crops(service: Service, page: np.ndarray) -> list[np.ndarray]:
    """The crops the service makes of this page's marks (inspect once, cut as the pipeline does)."""
    body = _post_image(service, "/v1/documents/inspect", "scanner", page).json()
    det = Detections(
        xyxy=np.array([d["box"] for d in body["detections"]], np.float32),
        confidence=np.array([d["confidence"] for d in body["detections"]], np.float32),
        class_id=np.array([d["class_id"] for d in body["detections"]]),
        class_names=("stamp", "signature"),
    )
    return MarkDetector.crops(page, det)


def test_document_matches_list_claimed_owners_first(start_service: Any) -> None:
    with start_service() as svc:
        page = document_page(seed=41)
        empty = _post_image(svc, "/v1/documents/inspect", "scanner", page).json()
        assert [d["label"] for d in empty["detections"]] == ["stamp", "signature"]
        assert empty["matches"] == [] and empty["risk"] is None  # nothing registered yet

        stamp_crop, signature_crop = _document_crops(svc, page)
        _register(svc, stamp_crop, kind="stamp", owner="real-authority")
        decoy = _register(svc, scribble(seed=42), kind="stamp", owner="claimed-authority")
        _register(svc, signature_crop, kind="signature", owner="real-person")

        unclaimed = _post_image(svc, "/v1/documents/inspect", "scanner", page).json()
        stamp_matches = [m for m in unclaimed["matches"] if m["detection"] == 0]
        assert [m["owner"] for m in stamp_matches] == ["real-authority", "claimed-authority"]
        assert stamp_matches[0]["similarity"] > 95 and stamp_matches[0]["verdict"] == "genuine"
        assert not any(m["claimed"] for m in unclaimed["matches"])
        signature_matches = [m for m in unclaimed["matches"] if m["detection"] == 1]
        assert [(m["owner"], m["kind"]) for m in signature_matches] == [("real-person", "signature")]

        r = svc.client.post(
            "/v1/documents/inspect",
            files={"image": ("d.png", png(page), "image/png")},
            data={"owner": ["claimed-authority", " ", "claimed-authority"]},
            headers=svc.auth("scanner"),
        )
        claimed = r.json()
        assert claimed["claimed_owners"] == ["claimed-authority"]
        stamp_matches = [m for m in claimed["matches"] if m["detection"] == 0]
        assert [(m["owner"], m["claimed"]) for m in stamp_matches] == [
            ("claimed-authority", True),
            ("real-authority", False),
        ]
        assert stamp_matches[0]["specimen_id"] == decoy["id"]
        assert stamp_matches[0]["similarity"] < stamp_matches[1]["similarity"]
        for m in claimed["matches"]:
            assert 0 <= m["similarity"] <= 100 and round(m["similarity"], 2) == m["similarity"]

        # The annotated image shows the first listed (claimed) similarity on the stamp.
        annotated = svc.client.get(claimed["annotated_url"], headers=svc.auth("clerk"))
        assert annotated.status_code == 200 and _decode_png(annotated.content).shape == page.shape


# ------------------------------------------------------------------------------ audit, metrics


def test_the_audit_chain_records_every_change_and_verifies(
    start_service: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with start_service() as svc:
        x = _post_image(svc, "/v1/xray/inspect", "scanner", xray_scan(dark=True)).json()
        spec = _register(svc, scribble(seed=51), kind="stamp", owner="audited")
        d = _post_image(svc, "/v1/documents/inspect", "scanner", document_page(), owner="audited").json()
        _post_image(svc, "/v1/compare", "clerk", scribble(seed=51), kind="stamp", owner="audited")
        # Failed requests in between add nothing.
        assert (
            svc.client.post(
                "/v1/xray/inspect", files={"image": ("e", b"", "image/png")}, headers=svc.auth("scanner")
            ).status_code
            == 400
        )
        assert (
            _post_image(svc, "/v1/compare", "clerk", scribble(seed=1), kind="stamp", owner="ghost").status_code == 404
        )
        assert svc.client.delete(f"/v1/specimens/{spec['id']}", headers=svc.auth("admin")).status_code == 204

        with Session(svc.engine) as s:
            entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        assert [(e.actor, e.action) for e in entries] == [
            ("scanner-key", "xray.inspect"),
            ("admin-key", "specimen.create"),
            ("scanner-key", "document.inspect"),
            ("clerk-key", "compare"),
            ("admin-key", "specimen.delete"),
        ]
        import json

        payloads = [json.loads(e.payload) for e in entries]
        assert payloads[0]["report_id"] == x["id"] and payloads[0]["risk"] == "alarm"
        assert payloads[0]["image_sha256"] == x["image"]["sha256"] and payloads[0]["models"] == {"xray": "test-1"}
        assert payloads[2]["claimed_owners"] == ["audited"] and payloads[2]["report_id"] == d["id"]
        assert payloads[3]["owner"] == "audited" and payloads[3]["verdict"] in ("genuine", "forged", "inconclusive")
        assert payloads[4]["specimen_id"] == spec["id"]
        report = verify_chain(svc.engine, svc.audit_keys)
        assert report.ok and report.entries == 5

        monkeypatch.setenv("CV_DATA_DIR", str(svc.settings.data_dir))
        monkeypatch.chdir(tmp_path)
        assert main(["audit", "verify"]) == 0
        assert '"ok": true' in capsys.readouterr().out


def test_metrics_expose_requests_latencies_stages_batches_and_versions(start_service: Any) -> None:
    with start_service() as svc:
        for dark in (True, False):
            _post_image(svc, "/v1/xray/inspect", "scanner", xray_scan(dark=dark))
        _register(svc, scribble(seed=61), kind="stamp", owner="m-co")
        _post_image(svc, "/v1/documents/inspect", "scanner", document_page())
        svc.client.post("/v1/xray/inspect", files={"image": ("e", b"", "image/png")}, headers=svc.auth("scanner"))
        svc.client.get("/v1/reports/nope", headers=svc.auth("clerk"))
        r = svc.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    samples = list(parse_samples(text))

    def value(name: str, **labels: str) -> float:
        found = [v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    for name, kind in [
        ("cv_http_requests_total", "counter"),
        ("cv_http_request_duration_seconds", "histogram"),
        ("cv_stage_duration_seconds", "histogram"),
        ("cv_batch_size", "histogram"),
        ("cv_model_info", "gauge"),
    ]:
        assert f"# TYPE {name} {kind}" in text and f"# HELP {name} " in text
    inspect = {"method": "POST", "route": "/v1/xray/inspect"}
    assert value("cv_http_requests_total", **inspect, status="200") == 2
    assert value("cv_http_requests_total", **inspect, status="400") == 1
    assert value("cv_http_requests_total", method="GET", route="/v1/reports/{report_id}", status="404") == 1
    assert value("cv_http_request_duration_seconds_count", **inspect) == 3
    assert value("cv_http_request_duration_seconds_bucket", **inspect, le="+Inf") == 3
    for stage in ("decode", "preprocess", "model", "postprocess"):
        assert value("cv_stage_duration_seconds_count", pipeline="xray", stage=stage) == 2
    assert value("cv_stage_duration_seconds_count", pipeline="document", stage="match") == 1
    assert value("cv_batch_size_count", model="xray") == 2 and value("cv_batch_size_sum", model="xray") == 2
    assert value("cv_batch_size_bucket", model="xray", le="1") == 2
    # a specimen registration and a document: two embedder calls
    assert value("cv_batch_size_count", model="similarity") == 2
    for model in ("xray", "document", "similarity"):
        assert value("cv_model_info", model=model, version="test-1") == 1
    # Histogram buckets are cumulative.
    buckets = [
        v
        for n, lab, v in samples
        if n == "cv_http_request_duration_seconds_bucket" and lab["route"] == inspect["route"]
    ]
    assert buckets == sorted(buckets)
