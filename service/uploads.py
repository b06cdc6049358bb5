"""Getting uploaded images in: refuse early, bound what is read, decode off the event loop.

:class:`UploadGuardMiddleware` sits in front of every ``/v1`` request that carries a body and, before
the body is read:

1. authenticates the key (an unknown caller cannot make the service read 50 MB);
2. refuses a ``Content-Length`` above the limit with 413 at once;
3. counts the bytes as they stream in and stops at the limit (chunked uploads have no length), so
   a 1 GB upload never reaches the multipart parser, let alone memory. The parser itself spools
   file parts to disk beyond 1 MB, so memory stays small below the limit too.

The body limit is ``CV_MAX_UPLOAD_BYTES`` plus :data:`FORM_OVERHEAD_BYTES` for the multipart
framing and text fields; the image file itself is held to ``CV_MAX_UPLOAD_BYTES`` exactly by
:func:`vision.imageio.decode_image`, which also refuses decompression bombs by their header's pixel
count before decoding.

:class:`ImageDecoder` decodes on a small dedicated thread pool, which also bounds how many decoded
images (up to ``CV_MAX_PIXELS`` x 3 bytes each) exist at once.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import UploadFile
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ApiError
from vision.imageio import load_record
from vision.types import ImageRecord, Modality

#: Allowance for multipart boundaries, part headers and text fields on top of the image's bytes.
FORM_OVERHEAD_BYTES = 64 * 1024

#: Where the guard leaves the authenticated principal for the route's dependencies.
PRINCIPAL_SCOPE_KEY = "customs_vision.principal"

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLargeError(StarletteHTTPException):
    """The streamed body passed the limit (raised from ``receive``; answered as 413)."""

    def __init__(self, limit: int) -> None:
        image_limit = limit - FORM_OVERHEAD_BYTES
        super().__init__(
            413, f"The request body is larger than {limit:,} bytes; the image may be at most {image_limit:,} bytes."
        )


class UploadGuardMiddleware:
    """ASGI middleware: authenticate, then bound the body of ``/v1`` requests (see module docstring).

    Args:
        app: the wrapped ASGI app.
        limit_of: the body limit in bytes for a request, or ``None`` to let it through unguarded
            (before the app has started).
        authenticate: resolves the request's principal or raises :class:`~service.errors.ApiError`
            (401); the result is stored under :data:`PRINCIPAL_SCOPE_KEY`.
        prefix: path prefix of the guarded routes.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit_of: Callable[[Scope], int | None],
        authenticate: Callable[[Scope], Awaitable[object]],
        prefix: str = "/v1/",
    ) -> None:
        self.app = app
        self.limit_of = limit_of
        self.authenticate = authenticate
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in _BODY_METHODS
            or not str(scope.get("path", "")).startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope)
        if limit is None:
            await self.app(scope, receive, send)
            return
        try:
            scope[PRINCIPAL_SCOPE_KEY] = await self.authenticate(scope)
        except ApiError as e:
            await _error(scope, receive, send, e.status, e.code, e.detail, e.headers)
            return
        length = _content_length(scope)
        if length is not None and length > limit:
            detail = str(BodyTooLargeError(limit).detail)
            await _error(scope, receive, send, 413, "too_large", detail)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _error(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    await JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)(scope, receive, send)


async def read_upload(upload: UploadFile) -> bytes:
    """The uploaded file's bytes (already bounded by the guard; the decoder applies the exact limit)."""
    return await upload.read()


class ImageDecoder:
    """Decodes uploads into :class:`~vision.types.ImageRecord` on a dedicated thread pool.

    Args:
        max_bytes: largest accepted file (``CV_MAX_UPLOAD_BYTES``).
        max_pixels: largest accepted ``width * height`` (``CV_MAX_PIXELS``).
        workers: decoding threads.
    """

    def __init__(self, *, max_bytes: int, max_pixels: int, workers: int) -> None:
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cv-decode")

    async def decode(
        self, data: bytes, *, modality: Modality, filename: str | None = None
    ) -> tuple[ImageRecord, float]:
        """Decode one upload.

        Returns:
            ``(record, milliseconds)``; the record's id is a new UUID (it becomes the report id) and
            its ``source`` holds ``sha256``, ``format``, the original size and ``filename``.

        Raises:
            vision.imageio.ImageDecodeError: empty, unsupported, too large or corrupt (mapped to 4xx).
        """
        source: dict[str, Any] = {"filename": filename} if filename else {}
        call = functools.partial(
            load_record,
            data,
            record_id=str(uuid.uuid4()),
            modality=modality,
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
            source=source,
        )
        t0 = time.perf_counter()
        record = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        return record, (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        """Stop the decoding threads (queued decodes are cancelled)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
