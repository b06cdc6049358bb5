"""The FastAPI application: ``create_app(settings)`` builds it; models load in the lifespan.

Start-up order (the lifespan):

1. settings (``CV_*``), the database (tables created if missing) and the audit keys;
2. HTTP is served at once: ``/healthz`` answers, ``/readyz`` says "still loading", ``/v1`` routes
   that need a model answer 503 with ``Retry-After``;
3. in a worker thread the models are loaded (:func:`~service.models.load_models`) and wrapped
   (:func:`~service.models.build_runtime`); then, back on the event loop, their runners (micro-batchers)
   start and the :class:`~service.pipeline.InspectionPipeline` goes live;
4. models whose backend was unavailable (Triton not up yet) are tried again, with capped exponential
   back-off (``CV_MODEL_RETRY_MAX_S``), until they connect; each joins the running pipeline as it
   does. Meanwhile ``/readyz`` says "waiting for Triton at <url> (retrying)" and their routes answer
   503. Shutdown cancels the retrying.

Middleware, outermost first: metrics (counts every answer, refusals included), then the upload
guard (authenticates and bounds request bodies before they are read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import Scope

from service.audit import AuditKeys
from service.db import init_db, make_engine
from service.deps import authenticate_scope
from service.errors import install_error_handlers
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.models import (
    ModelPool,
    ModelRuntime,
    build_runtime,
    connect_pending,
    extend_runtime,
    load_models,
    retry_delays,
    start_runners,
)
from service.pipeline import InspectionPipeline
from service.records import RecordStore
from service.routes import compare, documents, health, metrics, reports, specimens, ui, whoami, xray
from service.settings import Settings
from service.uploads import FORM_OVERHEAD_BYTES, ImageDecoder, UploadGuardMiddleware

log = logging.getLogger(__name__)


def _detector_kwargs(settings: Settings) -> dict[str, dict[str, Any]]:
    """Model name -> the detector arguments the settings choose."""
    return {"xray": {"flip_tta": settings.xray_flip_tta, "tile_tta": settings.xray_tiles}}


def _backend_kwargs(settings: Settings) -> dict[str, Any]:
    if settings.backend == "onnxruntime":
        return {"threads": settings.threads}
    if settings.backend == "triton":
        return {"url": settings.triton_url, "protocol": settings.triton_protocol}
    return {}


async def _load_and_start(app: FastAPI, settings: Settings) -> None:
    """Load the models off the event loop, start their runners and publish the pipeline; then retry
    the models whose backend was unavailable (:func:`_retry_unavailable`)."""
    state = app.state
    try:
        pool = await asyncio.to_thread(
            load_models,
            settings.models_dir,
            settings.required_models,
            backend=settings.backend,
            backend_kwargs=_backend_kwargs(settings),
            precision=settings.precision,
        )
        runtime = await asyncio.to_thread(
            build_runtime, pool, engine=state.engine, detector_kwargs=_detector_kwargs(settings)
        )
    except Exception as e:  # a loader bug must not leave /readyz "still loading" forever
        log.exception("loading the models failed")
        pool = ModelPool(loaded=True, errors={n: f"failed to load: {e!r}" for n in settings.required_models})
        runtime = await asyncio.to_thread(
            build_runtime, pool, engine=state.engine, detector_kwargs=_detector_kwargs(settings)
        )
    state.pipeline = InspectionPipeline.start(runtime, settings=settings, decoder=state.decoder, metrics=state.metrics)
    state.models = pool  # last: /readyz turns 200 only once the pipeline serves
    if pool.pending:
        await _retry_unavailable(app, settings)


async def _retry_unavailable(app: FastAPI, settings: Settings) -> None:
    """Try the pending models again, with capped exponential back-off, until none is left.

    Without this a service started before Triton would stay unready for good while ``/healthz``
    kept it from being restarted. A model that connects joins the running pipeline: a new
    :class:`InspectionPipeline` keeps the runners of the models already serving (requests in flight
    finish on them) and starts runners for the new ones. It is published before the pool, so
    ``/readyz`` never reports a model that requests cannot reach yet.

    On cancellation (shutdown) an attempt in progress is told to stop after the model it is
    connecting, is waited for (the backend's connection timeout at most), and whatever it connected
    is closed, so no connection outlives the app.
    """
    state = app.state
    stop = threading.Event()
    for delay in retry_delays(settings.model_retry_max_s):
        if not state.models.pending:
            return
        await asyncio.sleep(delay)
        before, pipeline = state.models, state.pipeline
        attempt = asyncio.ensure_future(
            asyncio.to_thread(_reconnect, before, pipeline.runtime, state.engine, stop, _detector_kwargs(settings))
        )
        try:
            pool, runtime = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            stop.set()
            await _close_connected(attempt, before)
            raise
        except Exception:  # a bug in one attempt must not end the retrying
            log.exception("retrying the unavailable models failed; trying again")
            continue
        if runtime is not pipeline.runtime:
            runners = start_runners(
                runtime,
                batching=settings.batching,
                max_batch=settings.max_batch,
                max_wait_ms=settings.max_wait_ms,
                max_queue=settings.max_queue,
                running=pipeline.runners,
            )
            state.pipeline = InspectionPipeline(
                runtime=runtime,
                runners=runners,
                decoder=pipeline.decoder,
                metrics=pipeline.metrics,
                top_k=settings.match_top_k,
            )
        state.models = pool


async def _close_connected(attempt: asyncio.Future[tuple[ModelPool, ModelRuntime]], before: ModelPool) -> None:
    """Wait for an abandoned attempt and close the backends it connected."""
    try:
        pool, _ = await attempt
    except Exception:
        log.exception("retrying the unavailable models failed during shutdown")
        return
    for name in pool.models.keys() - before.models.keys():
        pool.models[name].backend.close()


def _reconnect(
    pool: ModelPool,
    runtime: ModelRuntime,
    engine: Engine,
    stop: threading.Event,
    detector_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[ModelPool, ModelRuntime]:
    """One retry (blocking): the new pool, and ``runtime`` extended when anything changed."""
    after = connect_pending(pool, stop=stop)
    added = after.models.keys() - pool.models.keys()
    if stop.is_set() or (not added and after.errors == pool.errors):
        return after, runtime
    return after, extend_runtime(runtime, after, added, engine=engine, detector_kwargs=detector_kwargs)


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
