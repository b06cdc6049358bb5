"""FastAPI dependencies as ``Annotated`` aliases: app state, the caller's key and role, form fields.

Roles are checked per route with :data:`ScannerKey`, :data:`ClerkKey` and :data:`AdminKey`. Keys
are looked up in the database on every request (one indexed query), so a key created by
``customs-vision apikey create`` while the service runs works at once, and a revoked key stops
working at once; there is no cache to go stale.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, File, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import Scope

from service.errors import ForbiddenError, ModelUnavailableError, UnauthorizedError
from service.metrics import ServiceMetrics
from service.pipeline import InspectionPipeline
from service.records import RecordStore
from service.security import Principal, Role, authenticate
from service.settings import Settings
from service.uploads import PRINCIPAL_SCOPE_KEY

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `customs-vision apikey create`, sent as `Authorization: Bearer <key>`.",
)

_WHAT_ROLES_DO = {
    "scanner": "inspecting images",
    "clerk": "comparing marks and reading specimens and reports",
    "admin": "registering and deleting specimens",
}


def principal_for(engine: Engine, authorization: str | None) -> Principal:
    """The principal for an ``Authorization`` header value (blocking: one database query).

    Raises:
        UnauthorizedError: no bearer key, or an unknown or revoked one.
    """
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise UnauthorizedError("This route needs an API key: send the header 'Authorization: Bearer <key>'.")
    principal = authenticate(engine, key)
    if principal is None:
        raise UnauthorizedError("The API key is unknown or has been revoked.", invalid_token=True)
    return principal


async def authenticate_scope(scope: Scope) -> Principal:
    """Resolve the principal of a raw ASGI request (used by the upload guard before the body)."""
    engine = scope["app"].state.engine
    return await run_in_threadpool(principal_for, engine, Headers(scope=scope).get("authorization"))


def get_settings(request: Request) -> Settings:
    """The service settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    """The service database."""
    engine: Engine = request.app.state.engine
    return engine


def get_store(request: Request) -> RecordStore:
    """Where reports and audit entries are written."""
    store: RecordStore = request.app.state.store
    return store


def get_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def get_pipeline(request: Request) -> InspectionPipeline:
    """The pipeline; 503 while the models are still loading."""
    pipeline: InspectionPipeline | None = getattr(request.app.state, "pipeline", None)
    if pipeline is None:
        raise ModelUnavailableError("The models are still loading; retry shortly.")
    return pipeline


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller (401 if the key is missing, unknown or revoked)."""
    known = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(known, Principal):
        return known  # already authenticated by the upload guard
    header = f"Bearer {credentials.credentials}" if credentials else None
    return principal_for(get_engine(request), header)


def require_role(role: Role) -> object:
    """A dependency that returns the principal if its role is ``role`` or higher, else 403."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.allows(role):
            raise ForbiddenError(
                f"Key {principal.name!r} has role {principal.role!r}; "
                f"{_WHAT_ROLES_DO[role]} needs role {role!r} or higher."
            )
        return principal

    return Depends(check)


#: Any valid key, whatever its role (401 without one).
AnyKey = Annotated[Principal, Depends(get_principal)]
ScannerKey = Annotated[Principal, require_role("scanner")]
ClerkKey = Annotated[Principal, require_role("clerk")]
AdminKey = Annotated[Principal, require_role("admin")]

SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RecordStore, Depends(get_store)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
PipelineDep = Annotated[InspectionPipeline, Depends(get_pipeline)]

#: The uploaded image, multipart field ``image``.
ImageUpload = Annotated[UploadFile, File(description="the image: JPEG, PNG, TIFF, BMP or WebP")]
