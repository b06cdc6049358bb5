"""The clerk web page: ``GET /`` and its three static assets under ``/static/``.

The page is plain HTML, CSS and JavaScript in :data:`STATIC_DIR`, with no build step and nothing
fetched from elsewhere. It talks to the ``/v1`` API with the key the clerk types in, sent as
``Authorization: Bearer <key>`` and kept in the tab's ``sessionStorage`` (never in a cookie or a
URL), so these routes need no key themselves: they serve only the page's code.

Assets are served from an explicit allow-list rather than a directory mount, so nothing else that
lands in the folder is ever exposed, and every answer carries the same strict security headers: the
Content-Security-Policy forbids inline scripts and any origin but this one, which is what keeps a
typed-in key from leaking to another site even if a report field carried markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.errors import NotFoundError

router = APIRouter(tags=["ui"], include_in_schema=False)

#: Where the page's files live (shipped with the package: ``[tool.setuptools.package-data]``).
STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"

#: The files served under ``/static/``, with their media types.
ASSETS: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

#: Same-origin only; images also from ``blob:`` (fetched with the key, then shown) and ``data:``.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate every time, so a service upgrade never runs a stale script against a new API.
    "Cache-Control": "no-cache",
}


def _file(name: str, media_type: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
def index() -> FileResponse:
    """The clerk page."""
    return _file("index.html", "text/html; charset=utf-8")


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    """One of the page's scripts or style sheets (404 for anything not in :data:`ASSETS`)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFoundError(f"There is no static file {name!r}.")
    return _file(name, media_type)
