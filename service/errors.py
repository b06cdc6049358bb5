"""Every error the API answers with, as ``{"error": code, "detail": sentence}``, and their handlers.

Client mistakes get a 4xx naming what was wrong; a model that is loading, missing or overloaded gets
503 with ``Retry-After``; anything else is a logged 500 whose body reveals nothing internal. Library
errors (:mod:`vision.imageio`, :mod:`service.batching`, :mod:`vision.runtime`) are mapped here so the
routes never translate exceptions themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.batching import OverloadedError
from vision.imageio import ImageDecodeError
from vision.runtime.base import BackendError, BackendUnavailable

log = logging.getLogger(__name__)

#: HTTP status of each :class:`~vision.imageio.ImageDecodeError` code.
DECODE_STATUS: Mapping[str, int] = {"empty": 400, "unsupported_format": 415, "too_large": 413, "corrupt": 422}

_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with its HTTP answer.

    Args:
        status: HTTP status code.
        code: short machine-readable reason, stable across releases.
        detail: one sentence a person can act on.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


class UnauthorizedError(ApiError):
    """No key, or a key that is unknown or revoked (401)."""

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
        super().__init__(401, "unauthorized", detail, {"WWW-Authenticate": challenge})


class ForbiddenError(ApiError):
    """A valid key whose role does not allow the operation (403)."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, "forbidden", detail)


class NotFoundError(ApiError):
    """An unknown report, specimen or owner (404)."""

    def __init__(self, detail: str, code: str = "not_found") -> None:
        super().__init__(404, code, detail)


class InvalidRequestError(ApiError):
    """Fields that are present but inconsistent or out of range (422)."""

    def __init__(self, detail: str, code: str = "invalid_request") -> None:
        super().__init__(422, code, detail)


class ModelUnavailableError(ApiError):
    """A model the operation needs is loading, missing or broken (503; ``Retry-After`` is added)."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, "model_unavailable", detail)


def sentence(text: str) -> str:
    """``text`` with a capital first letter and a final full stop (library messages are lowercase)."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def _body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def _retry_after(request: Request) -> dict[str, str]:
    settings = getattr(request.app.state, "settings", None)
    return {"Retry-After": str(getattr(settings, "retry_after_s", 5))}


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    """Turn FastAPI's validation errors into one sentence plus a per-field list.

    Returns:
        ``(detail, fields)`` where each field is ``{"field", "location", "problem"}``.
    """
    fields: list[dict[str, str]] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        location = {"body": "form field", "query": "query parameter", "path": "path parameter", "header": "header"}.get(
            loc[0] if loc else "", "field"
        )
        name = ".".join(loc[1:2]) or "?"
        kind = err.get("type", "")
        if kind == "missing":
            problem = "is required"
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            problem = f"must be one of {expected}; got {err.get('input')!r}"
        elif "UploadFile" in str(err.get("msg", "")) or (kind == "value_error" and name == "image"):
            problem = "must be a file upload (multipart/form-data with a filename)"
        else:
            problem = str(err.get("msg", "is invalid")).rstrip(".")
        fields.append({"field": name, "location": location, "problem": problem})
    detail = "; ".join(f"{f['location']} '{f['field']}' {f['problem']}" for f in fields) or "invalid request"
    return detail[0].upper() + detail[1:] + ".", fields


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = dict(exc.headers)
    if exc.status == 503:
        headers.update(_retry_after(request))
    return JSONResponse(_body(exc.code, exc.detail), status_code=exc.status, headers=headers)


async def _decode_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImageDecodeError)
    return JSONResponse(_body(exc.code, sentence(str(exc))), status_code=DECODE_STATUS.get(exc.code, 422))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail, fields = describe_validation_errors(exc.errors())
    code = "missing_field" if any(e.get("type") == "missing" for e in exc.errors()) else "invalid_request"
    return JSONResponse(_body(code, detail, fields=fields), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    detail = str(exc.detail)
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        detail = "The request body is not valid multipart/form-data; send the image as form field 'image'."
    elif exc.status_code == 404 and detail == "Not Found":
        detail = f"There is no route {request.url.path}."
    return JSONResponse(_body(code, detail), status_code=exc.status_code, headers=exc.headers)


async def _overloaded(request: Request, exc: Exception) -> JSONResponse:
    detail = f"{sentence(str(exc))} Retry shortly."
    return JSONResponse(_body("overloaded", detail), status_code=503, headers=_retry_after(request))


async def _backend_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("inference backend unavailable: %s", exc)
    detail = f"The inference backend is unavailable: {exc}"
    return JSONResponse(_body("model_unavailable", detail), status_code=503, headers=_retry_after(request))


async def _backend_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("inference failed on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(_body("inference_error", f"The model failed to run: {exc}"), status_code=500)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(_body("internal_error", "An unexpected error occurred; it has been logged."), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` (most specific classes win, by exception MRO)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(ImageDecodeError, _decode_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OverloadedError, _overloaded)
    app.add_exception_handler(BackendUnavailable, _backend_unavailable)
    app.add_exception_handler(BackendError, _backend_error)
    app.add_exception_handler(Exception, _unexpected)
