"""The clerk page without a browser: what ``/`` and ``/static/`` serve, and what the files contain.

The browser test (``test_ui_browser.py``) drives the page; these checks guard the properties a
browser run would not notice: nothing is loaded from another origin, the key is never written to
a cookie or persistent storage, every form control has a label, and the script only looks up
elements that exist.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from service.routes.ui import ASSETS, CONTENT_SECURITY_POLICY, STATIC_DIR
from tests.service.conftest import Service

INDEX = STATIC_DIR / "index.html"
SCRIPT = STATIC_DIR / "app.js"


class _Page(HTMLParser):
    """Collects the ids, labels, form controls and asset references of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.controls: list[tuple[str, dict[str, str], int]] = []  # (tag, attrs, enclosing label depth)
        self.assets: list[str] = []
        self._label_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "label":
            self._label_depth += 1
            if "for" in a:
                self.label_for.add(a["for"])
        if tag in ("input", "select", "textarea"):
            self.controls.append((tag, a, self._label_depth))
        if tag == "script" and "src" in a:
            self.assets.append(a["src"])
        if tag == "link" and a.get("rel") == "stylesheet":
            self.assets.append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth -= 1


def _parsed_index() -> _Page:
    page = _Page()
    page.feed(INDEX.read_text(encoding="utf-8"))
    return page


# ----------------------------------------------------------------------------------- serving


def test_root_serves_the_page_without_a_key_with_strict_headers(service: Service) -> None:
    r = service.client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.content == INDEX.read_bytes()
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in r.headers


def test_every_asset_the_page_references_is_served_with_its_type(service: Service) -> None:
    referenced = _parsed_index().assets
    assert sorted(referenced) == sorted(f"/static/{name}" for name in ASSETS)
    for name, media_type in ASSETS.items():
        r = service.client.get(f"/static/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"] == media_type
        assert r.content == (STATIC_DIR / name).read_bytes()
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_every_shipped_file_is_served_and_nothing_else(service: Service) -> None:
    shipped = {p.name for p in STATIC_DIR.iterdir() if p.is_file()}
    assert shipped == {"index.html", *ASSETS}


@pytest.mark.parametrize("name", ["index.html", "missing.js", "..%2Fapp.py", "app.js.map", ".htaccess"])
def test_unknown_static_names_are_404_with_the_api_error_body(service: Service, name: str) -> None:
    r = service.client.get(f"/static/{name}")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found" and r.json()["detail"]


def test_the_page_routes_stay_out_of_the_api_schema(service: Service) -> None:
    paths = service.client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)


# ----------------------------------------------------------------------------- file contents

# A scheme-relative or absolute URL anywhere: in src/href, CSS url(), fetch(), import.
_EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}|url\(\s*['"]?(?:https?:|//)""", re.IGNORECASE)


@pytest.mark.parametrize("name", ["index.html", *ASSETS])
def test_no_file_refers_to_another_origin(name: str) -> None:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    assert _EXTERNAL.findall(text) == []


def test_the_external_url_check_can_fail() -> None:
    for text in ('<script src="https://cdn.example.com/x.js">', "url(//fonts.example.org/a.woff)", "url('http://x')"):
        assert _EXTERNAL.search(text), text


def test_the_key_is_only_kept_in_session_storage() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    assert "sessionStorage.setItem(KEY_STORAGE" in script
    for forbidden in ("document.cookie", "localStorage", "indexedDB", "location.search", "history.pushState"):
        assert forbidden not in script, forbidden
    # The login form posts (never GET): without the script a submit cannot put the key in a URL.
    assert re.search(r'<form id="login-form" method="post"', INDEX.read_text(encoding="utf-8"))


def test_api_data_is_never_inserted_as_html() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_every_form_control_has_a_label() -> None:
    page = _parsed_index()
    unlabelled = [
        attrs.get("id") or attrs.get("name")
        for tag, attrs, label_depth in page.controls
        if attrs.get("type") != "hidden" and label_depth == 0 and attrs.get("id") not in page.label_for
    ]
    assert page.controls and unlabelled == []


# busy(button, "status-id", "text" or `text`, "error-id", ...)
_BUSY_IDS = re.compile(r"""busy\(\s*[^,]+,\s*"([\w-]+)",\s*(?:"[^"]*"|`[^`]*`),\s*"([\w-]+)\"""")


def test_the_script_only_looks_up_elements_that_exist() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    looked_up = set(re.findall(r"""byId\(\s*"([\w-]+)"\s*\)""", script))
    # Ids handed to byId through a list (logOut clears forms and messages in a loop).
    for listed in re.findall(r"for \(const \w+ of \[([^\]]*)\]\)", script):
        looked_up |= set(re.findall(r'"([\w-]+)"', listed))
    # showMessage and setStatus take an id first; busy(button, statusId, text, errorId, ...).
    looked_up |= set(re.findall(r"""(?:showMessage|setStatus)\(\s*"([\w-]+)\"""", script))
    for status_id, error_id in _BUSY_IDS.findall(script):
        looked_up |= {status_id, error_id}
    assert len(looked_up) > 30
    assert looked_up - _parsed_index().ids == set()


def test_korean_text_has_a_font_to_fall_back_on() -> None:
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    assert "NanumGothic" in css and "Noto Sans CJK KR" in css
    assert '<html lang="en">' in INDEX.read_text(encoding="utf-8")
