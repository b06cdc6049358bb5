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
    """200 once every required model is loaded; 503 with the reasons otherwise."""
    state = request.app.state
    missing = state.models.missing(state.settings.required_models)
    body = {"ready": not missing, "models": state.models.versions(), "missing": missing}
    return JSONResponse(body, status_code=200 if not missing else 503)
