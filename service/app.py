"""The FastAPI application: ``create_app(settings)`` builds it; models load in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from service.models import ModelPool, load_models
from service.routes import health
from service.settings import Settings

log = logging.getLogger(__name__)


def _backend_kwargs(settings: Settings) -> dict[str, Any]:
    if settings.backend == "onnxruntime":
        return {"threads": settings.threads}
    if settings.backend == "triton":
        return {"url": settings.triton_url, "protocol": settings.triton_protocol}
    return {}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. ``settings`` defaults to the environment (``CV_*``), read when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or Settings()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.settings = s
        app.state.models = ModelPool()  # not loaded yet: /readyz says so while loading
        # Load in a worker thread so /healthz answers while ONNX sessions are being built.
        task = asyncio.create_task(
            asyncio.to_thread(
                load_models,
                s.models_dir,
                s.required_models,
                backend=s.backend,
                backend_kwargs=_backend_kwargs(s),
            )
        )

        def _done(t: asyncio.Task[ModelPool]) -> None:
            if t.cancelled():
                return
            if (exc := t.exception()) is not None:
                failed = ModelPool(loaded=True, errors={n: repr(exc) for n in s.required_models})
                app.state.models = failed
            else:
                app.state.models = t.result()

        task.add_done_callback(_done)
        try:
            yield
        finally:
            if not task.done():
                task.cancel()
            app.state.models.close()

    app = FastAPI(
        title="customs-vision",
        version="0.1.0",
        description="X-ray threat detection and document stamp/signature verification for customs.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    return app
