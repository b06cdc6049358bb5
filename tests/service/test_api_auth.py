"""Every /v1 route x every caller: no key or a bad key -> 401, too low a role -> 403, else success."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from service.cli import main
from service.db import ApiKey
from service.security import create_api_key
from tests.service.conftest import Service
from tests.service.fixtures import document_page, png, scribble, xray_scan

RANK = {"scanner": 0, "clerk": 1, "admin": 2}
Request = tuple[str, str, dict[str, Any]]


def _specimen(service: Service, owner: str = "acme", seed: int = 1) -> str:
    r = service.client.post(
        "/v1/specimens",
        files={"image": ("s.png", png(scribble(seed=seed)), "image/png")},
        data={"kind": "stamp", "owner": owner},
        headers=service.auth("admin"),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture(scope="module")
def ids(service: Service) -> dict[str, str]:
    """A specimen and a report to address by id."""
    r = service.client.post(
        "/v1/xray/inspect",
        files={"image": ("x.png", png(xray_scan(dark=True)), "image/png")},
        headers=service.auth("scanner"),
    )
    assert r.status_code == 200, r.text
    return {"specimen": _specimen(service), "report": r.json()["id"]}


def _upload(name: str, pixels: Any, **data: Any) -> dict[str, Any]:
    return {"files": {"image": (name, png(pixels), "image/png")}, "data": data}


# route -> (role needed, success status, request builder)
ROUTES: dict[str, tuple[str, int, Callable[[Service, dict[str, str]], Request]]] = {
    "POST /v1/xray/inspect": (
        "scanner",
        200,
        lambda s, ids: ("POST", "/v1/xray/inspect", _upload("x.png", xray_scan(dark=False))),
    ),
    "POST /v1/documents/inspect": (
        "scanner",
        200,
        lambda s, ids: ("POST", "/v1/documents/inspect", _upload("d.png", document_page(), owner="acme")),
    ),
    "POST /v1/specimens": (
        "admin",
        201,
        lambda s, ids: ("POST", "/v1/specimens", _upload("s.png", scribble(seed=3), kind="stamp", owner="beta")),
    ),
    "GET /v1/specimens": ("clerk", 200, lambda s, ids: ("GET", "/v1/specimens?kind=stamp", {})),
    "GET /v1/specimens/{id}": ("clerk", 200, lambda s, ids: ("GET", f"/v1/specimens/{ids['specimen']}", {})),
    "GET /v1/specimens/{id}/image.png": (
        "clerk",
        200,
        lambda s, ids: ("GET", f"/v1/specimens/{ids['specimen']}/image.png", {}),
    ),
    "DELETE /v1/specimens/{id}": (
        "admin",
        204,
        lambda s, ids: ("DELETE", f"/v1/specimens/{_specimen(s, 'doomed', seed=9)}", {}),
    ),
    "POST /v1/compare": (
        "clerk",
        200,
        lambda s, ids: (
            "POST",
            "/v1/compare",
            _upload("c.png", scribble(seed=1), kind="stamp", specimen_id=ids["specimen"]),
        ),
    ),
    "GET /v1/reports/{id}": ("clerk", 200, lambda s, ids: ("GET", f"/v1/reports/{ids['report']}", {})),
    "GET /v1/reports/{id}/annotated.png": (
        "clerk",
        200,
        lambda s, ids: ("GET", f"/v1/reports/{ids['report']}/annotated.png", {}),
    ),
    "GET /v1/reports/{id}/image.png": (
        "clerk",
        200,
        lambda s, ids: ("GET", f"/v1/reports/{ids['report']}/image.png", {}),
    ),
    "GET /v1/whoami": ("scanner", 200, lambda s, ids: ("GET", "/v1/whoami", {})),
}

CALLERS = ("none", "unknown-key", "scanner", "clerk", "admin")


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_checks_key_and_role(service: Service, ids: dict[str, str], route: str, caller: str) -> None:
    needed, success, build = ROUTES[route]
    method, url, kwargs = build(service, ids)
    headers = {}
    if caller == "unknown-key":
        headers = {"Authorization": "Bearer cv_00000000_not-a-real-key"}
    elif caller != "none":
        headers = service.auth(caller)
    r = service.client.request(method, url, headers=headers, **kwargs)
    if caller in ("none", "unknown-key"):
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthorized"
    elif RANK[caller] < RANK[needed]:
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "forbidden" and needed in r.json()["detail"]
    else:
        assert r.status_code == success, r.text


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "cv_abc_def", "Token cv_abc_def"], ids=repr
)
def test_malformed_authorization_headers_are_401(service: Service, header: str) -> None:
    for method, url in (("GET", "/v1/specimens"), ("POST", "/v1/xray/inspect")):
        r = service.client.request(method, url, headers={"Authorization": header})
        assert r.status_code == 401, (method, r.text)
        assert "Authorization: Bearer" in r.json()["detail"]


def test_an_unknown_caller_is_refused_before_the_body_is_read(service: Service) -> None:
    # Far over the body limit: an unauthenticated caller gets 401, not 413 (the guard authenticates first).
    body = b"x" * (service.settings.max_upload_bytes + 200_000)
    r = service.client.post(
        "/v1/xray/inspect",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b", "Authorization": "Bearer nope"},
    )
    assert r.status_code == 401


def test_a_key_created_by_the_cli_works_at_once_and_a_revoked_key_stops(
    service: Service, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CV_DATA_DIR", str(service.settings.data_dir))
    monkeypatch.delenv("CV_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    assert main(["apikey", "create", "--role", "clerk", "--name", "desk-42"]) == 0
    key = capsys.readouterr().out.strip()
    headers = {"Authorization": f"Bearer {key}"}
    assert service.client.get("/v1/specimens", headers=headers).status_code == 200

    with Session(service.engine) as s:
        s.execute(update(ApiKey).where(ApiKey.name == "desk-42").values(revoked_at=datetime.now(UTC)))
        s.commit()
    r = service.client.get("/v1/specimens", headers=headers)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.parametrize("role", sorted(RANK))
def test_whoami_names_the_key_and_its_role(service: Service, role: str) -> None:
    r = service.client.get("/v1/whoami", headers=service.auth(role))
    assert r.status_code == 200, r.text
    assert r.json() == {"name": f"{role}-key", "role": role}
    assert r.headers["cache-control"] == "no-store"


def test_whoami_without_a_valid_key_is_401_and_a_revoked_key_stops_at_once(service: Service) -> None:
    assert service.client.get("/v1/whoami").status_code == 401
    key, _ = create_api_key(service.engine, role="clerk", name="desk-whoami")
    headers = {"Authorization": f"Bearer {key}"}
    assert service.client.get("/v1/whoami", headers=headers).json() == {"name": "desk-whoami", "role": "clerk"}
    with Session(service.engine) as s:
        s.execute(update(ApiKey).where(ApiKey.name == "desk-whoami").values(revoked_at=datetime.now(UTC)))
        s.commit()
    r = service.client.get("/v1/whoami", headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


def test_health_and_metrics_need_no_key(service: Service) -> None:
    for url in ("/healthz", "/readyz", "/metrics"):
        assert service.client.get(url).status_code == 200, url
