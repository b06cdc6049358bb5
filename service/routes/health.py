"""Liveness and readiness probes (Kubernetes-style)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """200 once every required model is loaded and its backend answers; 503 with the reasons otherwise.

    A remote backend (Triton) is asked on every call, so the probe follows an outage both ways:
    503 while the server is away, 200 again once it is back. A model whose server was not up when
    the service started is listed as ``"waiting for Triton at <url> (retrying): ..."`` until the
    app's retries connect it. A plain ``def``: FastAPI runs it in its thread pool, so the network
    round trip never blocks the event loop.
    """
    state = request.app.state
    required = state.settings.required_models
    missing = state.models.missing(required) or state.models.unreachable(required)
    body = {"ready": not missing, "models": state.models.versions(), "missing": missing}
    return JSONResponse(body, status_code=200 if not missing else 503)
