"""``GET /metrics``: Prometheus text exposition (no key needed, like the health probes)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.deps import MetricsDep
from service.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request, registry: MetricsDep) -> Response:
    """Requests, latencies per route and stage, batch sizes and model versions."""
    pipeline = getattr(request.app.state, "pipeline", None)
    text = registry.render(
        batch_sizes=pipeline.batch_sizes() if pipeline is not None else {},
        model_versions=request.app.state.models.versions(),
    )
    return Response(text, media_type=CONTENT_TYPE)
