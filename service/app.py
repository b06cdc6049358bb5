"""The FastAPI application: ``create_app(settings)`` builds it; models load in the lifespan.

Start-up order (the lifespan):

1. settings (``CV_*``), the database (tables created if missing) and the audit keys;
2. HTTP is served at once: ``/healthz`` answers, ``/readyz`` says "still loading", ``/v1`` routes
   that need a model answer 503 with ``Retry-After``;
3. in a worker thread the models are loaded (:func:`~service.models.load_models`) and wrapped
   (:func:`~service.models.build_runtime`); then, back on the event loop, their runners (micro-batchers)
   start and the :class:`~service.pipeline.InspectionPipeline` goes live.

Middleware, outermost first: metrics (counts every answer, refusals included), then the upload
guard (authenticates and bounds request bodies before they are read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import Scope

from service.audit import AuditKeys
from service.db import init_db, make_engine
from service.deps import authenticate_scope
from service.errors import install_error_handlers
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.models import ModelPool, build_runtime, load_models
from service.pipeline import InspectionPipeline
from service.records import RecordStore
from service.routes import compare, documents, health, metrics, reports, specimens, ui, whoami, xray
from service.settings import Settings
from service.uploads import FORM_OVERHEAD_BYTES, ImageDecoder, UploadGuardMiddleware

log = logging.getLogger(__name__)


def _backend_kwargs(settings: Settings) -> dict[str, Any]:
    if settings.backend == "onnxruntime":
        return {"threads": settings.threads}
    if settings.backend == "triton":
        return {"url": settings.triton_url, "protocol": settings.triton_protocol}
    return {}


async def _load_and_start(app: FastAPI, settings: Settings) -> None:
    """Load the models off the event loop, then start their runners and publish the pipeline."""
    state = app.state
    try:
        pool = await asyncio.to_thread(
            load_models,
            settings.models_dir,
            settings.required_models,
            backend=settings.backend,
            backend_kwargs=_backend_kwargs(settings),
        )
        runtime = await asyncio.to_thread(build_runtime, pool, engine=state.engine)
    except Exception as e:  # a loader bug must not leave /readyz "still loading" forever
        log.exception("loading the models failed")
        pool = ModelPool(loaded=True, errors={n: f"failed to load: {e!r}" for n in settings.required_models})
        runtime = await asyncio.to_thread(build_runtime, pool, engine=state.engine)
    state.pipeline = InspectionPipeline.start(runtime, settings=settings, decoder=state.decoder, metrics=state.metrics)
    state.models = pool  # last: /readyz turns 200 only once the pipeline serves


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. ``settings`` defaults to the environment (``CV_*``), read when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or Settings()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(s.sqlalchemy_url)
        await asyncio.to_thread(init_db, engine)
        state = app.state
        state.settings = s
        state.engine = engine
        state.store = RecordStore(
            engine=engine,
            keys=AuditKeys.in_dir(s.data_dir),
            image_max_side=s.report_image_max_side,
            decode_slots=s.decode_workers,
        )
        state.decoder = ImageDecoder(max_bytes=s.max_upload_bytes, max_pixels=s.max_pixels, workers=s.decode_workers)
        state.models = ModelPool()  # not loaded yet: /readyz says so while loading
        state.pipeline = None
        loader = asyncio.create_task(_load_and_start(app, s), name="load-models")
        try:
            yield
        finally:
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
            if state.pipeline is not None:
                await state.pipeline.stop()
            state.models.close()
            state.decoder.close()
            engine.dispose()

    app = FastAPI(
        title="customs-vision",
        version="0.1.0",
        description="X-ray threat detection and document stamp/signature verification for customs.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    routers = [m.router for m in (health, metrics, whoami, xray, documents, specimens, compare, reports, ui)]
    for router in routers:
        app.include_router(router)
    app.add_middleware(UploadGuardMiddleware, limit_of=_body_limit, authenticate=authenticate_scope)
    app.add_middleware(MetricsMiddleware, metrics_of=_metrics_of, routes=[r for rt in routers for r in rt.routes])
    app.state.metrics = ServiceMetrics()
    return app


def _body_limit(scope: Scope) -> int | None:
    settings = getattr(scope["app"].state, "settings", None)
    return None if settings is None else settings.max_upload_bytes + FORM_OVERHEAD_BYTES


def _metrics_of(scope: Scope) -> ServiceMetrics | None:
    return getattr(scope["app"].state, "metrics", None)
