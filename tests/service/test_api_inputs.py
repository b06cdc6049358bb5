"""Bad input gets the right 4xx with a clear message, leaves no record and never hurts the service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest

from service.uploads import FORM_OVERHEAD_BYTES, UploadGuardMiddleware
from tests.service.conftest import Service
from tests.service.fixtures import (
    document_page,
    gif_bytes,
    jpeg,
    malformed_corpus,
    png,
    png_header_only,
    scribble,
    xray_scan,
)

OWNER = "acme"


@pytest.fixture(scope="module")
def specimen_id(service: Service) -> str:
    r = service.client.post(
        "/v1/specimens",
        files={"image": ("s.png", png(scribble(seed=1)), "image/png")},
        data={"kind": "stamp", "owner": OWNER},
        headers=service.auth("admin"),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# Upload routes with the role and the other form fields that make a request valid.
UPLOAD_ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "/v1/xray/inspect": ("scanner", {}),
    "/v1/documents/inspect": ("scanner", {"owner": OWNER}),
    "/v1/compare": ("clerk", {"kind": "stamp", "owner": OWNER}),
    "/v1/specimens": ("admin", {"kind": "signature", "owner": "new-owner"}),
}


def _bad_images(max_bytes: int) -> dict[str, tuple[Callable[[], bytes], int, str]]:
    good_jpeg = jpeg(xray_scan(dark=False, seed=3))
    good_png = png(document_page(seed=4))
    return {
        "empty": (lambda: b"", 400, "empty"),
        "random bytes": (lambda: bytes(range(256)) * 8, 415, "unsupported_format"),
        "truncated jpeg": (lambda: good_jpeg[: len(good_jpeg) // 2], 422, "corrupt"),
        "truncated png": (lambda: good_png[: len(good_png) // 3], 422, "corrupt"),
        "pdf": (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", 415, "unsupported_format"),
        "gif": (gif_bytes, 415, "unsupported_format"),
        "60000x60000 png header": (lambda: png_header_only(60_000, 60_000), 413, "too_large"),
        # Over the file limit but within the multipart allowance: the decoder refuses it by size.
        "too many bytes": (lambda: b"\xff\xd8\xff" + b"\0" * max_bytes, 413, "too_large"),
    }


BAD_NAMES = list(_bad_images(1))


@pytest.mark.parametrize("case", BAD_NAMES)
@pytest.mark.parametrize("route", sorted(UPLOAD_ROUTES))
def test_bad_images_get_the_right_4xx_and_leave_no_record(
    service: Service, specimen_id: str, route: str, case: str
) -> None:
    role, data = UPLOAD_ROUTES[route]
    make, status, code = _bad_images(service.settings.max_upload_bytes)[case]
    before = service.counts()
    r = service.client.post(
        route, files={"image": ("upload.bin", make(), "image/png")}, data=data, headers=service.auth(role)
    )
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code
    assert body["detail"][0].isupper() and body["detail"].endswith(".")
    assert service.counts() == before


FORM_CASES: dict[str, tuple[str, str, dict[str, Any], int, str, str]] = {
    # name: (route, role, request kwargs, status, error code, a word the detail must contain)
    "wrong field name": (
        "/v1/xray/inspect",
        "scanner",
        {"files": {"file": ("x.png", b"\x89PNG", "image/png")}},
        422,
        "missing_field",
        "'image' is required",
    ),
    "no fields at all": ("/v1/documents/inspect", "scanner", {}, 422, "missing_field", "'image'"),
    "json body": ("/v1/xray/inspect", "scanner", {"json": {"image": "aGVsbG8="}}, 422, "missing_field", "'image'"),
    "text instead of a file": (
        "/v1/xray/inspect",
        "scanner",
        {"data": {"image": "not a file"}},
        422,
        "invalid_request",
        "file upload",
    ),
    "missing kind": ("/v1/compare", "clerk", {"data": {"owner": OWNER}}, 422, "missing_field", "'kind'"),
    "bad kind": ("/v1/compare", "clerk", {"data": {"kind": "seal", "owner": OWNER}}, 422, "invalid_request", "'seal'"),
    "bad kind for a specimen": (
        "/v1/specimens",
        "admin",
        {"data": {"kind": "fingerprint", "owner": OWNER}},
        422,
        "invalid_request",
        "stamp",
    ),
    "missing owner for a specimen": (
        "/v1/specimens",
        "admin",
        {"data": {"kind": "stamp"}},
        422,
        "missing_field",
        "'owner'",
    ),
    "blank owner for a specimen": (
        "/v1/specimens",
        "admin",
        {"data": {"kind": "stamp", "owner": "   "}},
        422,
        "missing_field",
        "owner",
    ),
    "owner too long": (
        "/v1/specimens",
        "admin",
        {"data": {"kind": "stamp", "owner": "o" * 129}},
        422,
        "invalid_request",
        "128",
    ),
    "label too long": (
        "/v1/specimens",
        "admin",
        {"data": {"kind": "stamp", "owner": OWNER, "label": "l" * 300}},
        422,
        "invalid_request",
        "'label'",
    ),
    "compare with neither target": (
        "/v1/compare",
        "clerk",
        {"data": {"kind": "stamp"}},
        422,
        "invalid_request",
        "exactly one",
    ),
    "compare with both targets": (
        "/v1/compare",
        "clerk",
        {"data": {"kind": "stamp", "owner": OWNER, "specimen_id": "x"}},
        422,
        "invalid_request",
        "exactly one",
    ),
    "compare with an unknown specimen": (
        "/v1/compare",
        "clerk",
        {"data": {"kind": "stamp", "specimen_id": "no-such-id"}},
        404,
        "unknown_specimen",
        "no-such-id",
    ),
    "compare with an unknown owner": (
        "/v1/compare",
        "clerk",
        {"data": {"kind": "stamp", "owner": "nobody"}},
        404,
        "unknown_owner",
        "nobody",
    ),
    "compare with an owner of the other kind only": (
        "/v1/compare",
        "clerk",
        {"data": {"kind": "signature", "owner": OWNER}},
        404,
        "unknown_owner",
        "signature",
    ),
    "document with an unknown claimed owner": (
        "/v1/documents/inspect",
        "scanner",
        {"data": {"owner": [OWNER, "ghost-authority"]}},
        404,
        "unknown_owner",
        "ghost-authority",
    ),
}


@pytest.mark.parametrize("case", sorted(FORM_CASES))
def test_bad_forms_get_the_right_4xx_and_leave_no_record(service: Service, specimen_id: str, case: str) -> None:
    route, role, kwargs, status, code, word = FORM_CASES[case]
    kwargs = dict(kwargs)
    if "files" not in kwargs and "json" not in kwargs and case not in ("no fields at all", "text instead of a file"):
        kwargs["files"] = {"image": ("s.png", png(scribble(seed=5)), "image/png")}
    before = service.counts()
    r = service.client.post(route, headers=service.auth(role), **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    assert word in r.json()["detail"], r.json()
    assert service.counts() == before


def test_compare_with_a_specimen_of_the_other_kind_is_422(service: Service, specimen_id: str) -> None:
    r = service.client.post(
        "/v1/compare",
        files={"image": ("s.png", png(scribble(seed=1)), "image/png")},
        data={"kind": "signature", "specimen_id": specimen_id},
        headers=service.auth("clerk"),
    )
    assert r.status_code == 422
    assert r.json()["error"] == "kind_mismatch" and "kind=stamp" in r.json()["detail"]


@pytest.mark.parametrize(
    ("method", "url", "role", "code"),
    [
        ("GET", "/v1/specimens/no-such-id", "clerk", "unknown_specimen"),
        ("GET", "/v1/specimens/no-such-id/image.png", "clerk", "unknown_specimen"),
        ("DELETE", "/v1/specimens/no-such-id", "admin", "unknown_specimen"),
        ("GET", "/v1/reports/no-such-id", "clerk", "unknown_report"),
        ("GET", "/v1/reports/no-such-id/annotated.png", "clerk", "unknown_report"),
        ("GET", "/v1/reports/no-such-id/image.png", "clerk", "unknown_report"),
    ],
)
def test_unknown_ids_are_404(service: Service, method: str, url: str, role: str, code: str) -> None:
    before = service.counts()
    r = service.client.request(method, url, headers=service.auth(role))
    assert r.status_code == 404
    assert r.json()["error"] == code and "no-such-id" in r.json()["detail"]
    assert service.counts() == before


def test_listing_with_a_bad_kind_is_422(service: Service) -> None:
    r = service.client.get("/v1/specimens?kind=seal", headers=service.auth("clerk"))
    assert r.status_code == 422
    assert "query parameter 'kind'" in r.json()["detail"].lower()


def test_a_body_over_the_limit_is_refused_by_its_length(service: Service) -> None:
    limit = service.settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    before = service.counts()
    r = service.client.post(
        "/v1/xray/inspect",
        files={"image": ("big.jpg", b"\xff\xd8\xff" + b"\0" * limit, "image/jpeg")},
        headers=service.auth("scanner"),
    )
    assert r.status_code == 413
    assert r.json()["error"] == "too_large" and f"{limit:,}" in r.json()["detail"]
    assert service.counts() == before


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(service: Service) -> None:
    chunk = b"\0" * 65536
    sent = 0

    def body() -> Any:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n\xff\xd8\xff'
        for _ in range(200):  # 13 MB, far over the 2 MB limit
            sent += 1
            yield chunk

    r = service.client.post(
        "/v1/xray/inspect",
        content=body(),
        headers={**service.auth("scanner"), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "too_large" and "request body is larger" in r.json()["detail"]


def test_the_guard_stops_reading_a_stream_at_the_limit() -> None:
    """At the ASGI level: an endless chunked body is read only up to the limit, then answered 413."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"\0" * 1000, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    async def app(scope: Any, rcv: Any, snd: Any) -> None:
        from starlette.requests import Request

        try:
            async for _ in Request(scope, rcv).stream():
                pass
        except Exception as e:  # the route's error handler would answer; emulate it
            from starlette.responses import JSONResponse

            await JSONResponse({"error": "too_large"}, status_code=getattr(e, "status_code", 500))(scope, rcv, snd)

    async def authenticate(scope: Any) -> str:
        return "someone"

    guard = UploadGuardMiddleware(app, limit_of=lambda scope: 10_000, authenticate=authenticate)
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/xray/inspect", "headers": [], "app": None}
    asyncio.run(guard(scope, receive, send))
    assert pulled == 11  # 11,000 bytes > 10,000: stopped at the first chunk past the limit
    assert sent[0]["status"] == 413


def test_fuzzed_uploads_all_get_4xx_and_the_service_stays_healthy(service: Service) -> None:
    corpus = malformed_corpus(seed=1234, count=40)
    before = service.counts()
    statuses: dict[int, int] = {}
    for i, (name, data) in enumerate(corpus):
        route = ("/v1/xray/inspect", "/v1/documents/inspect")[i % 2]
        r = service.client.post(
            route, files={"image": ("f.bin", data, "application/octet-stream")}, headers=service.auth("scanner")
        )
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert set(r.json()) == {"error", "detail"}, name
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    assert service.counts() == before
    assert statuses.keys() <= {400, 413, 415, 422} and len(statuses) >= 2
    assert service.client.get("/healthz").status_code == 200
    r = service.client.post(
        "/v1/xray/inspect",
        files={"image": ("ok.png", png(xray_scan(dark=True)), "image/png")},
        headers=service.auth("scanner"),
    )
    assert r.status_code == 200 and r.json()["risk"] == "alarm"
