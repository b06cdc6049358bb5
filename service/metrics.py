"""Prometheus metrics, written in the text exposition format (version 0.0.4) without a client library.

What ``GET /metrics`` exposes:

* ``cv_http_requests_total{method, route, status}`` (counter): every HTTP request, by route
  template (``/v1/reports/{report_id}``, never the concrete path, so the label set stays small).
* ``cv_http_request_duration_seconds{method, route}`` (histogram): request latency.
* ``cv_stage_duration_seconds{pipeline, stage}`` (histogram): per-request time in ``decode``,
  ``preprocess``, ``model``, ``postprocess`` and ``match`` (a batched model call's time is shared
  evenly among the requests in the batch).
* ``cv_batch_size{model}`` (histogram): requests per model call, read from the runners' counters.
* ``cv_model_info{model, version}`` (gauge, always 1): the served model versions.

Metric objects are thread-safe: stage timings are observed from worker threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Content type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128)

LabelValues = tuple[str, ...]


def escape_label(value: str) -> str:
    """Escape a label value: backslash, double quote and line feed (the format's only escapes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (``+Inf``, ``NaN``, integers without ``.0``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _header(name: str, help_text: str, kind: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


class Counter:
    """A monotonically increasing count per label combination."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._values: dict[LabelValues, float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0) to the series with these label values (in ``labels`` order)."""
        if amount < 0:
            raise ValueError("a counter can only increase")
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        """Current value of one series (0 if never incremented)."""
        with self._lock:
            return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        """Exposition lines: HELP, TYPE, one sample per series."""
        with self._lock:
            items = sorted(self._values.items())
        lines = _header(self.name, self.help, "counter")
        lines += [f"{self.name}{_labels(self.label_names, k)} {format_value(v)}" for k, v in items]
        return lines


@dataclass
class _HistogramState:
    counts: list[int]  # per bucket, not cumulative; the last is +Inf
    total: float = 0.0
    n: int = 0


class Histogram:
    """Observations sorted into cumulative ``le`` buckets, with ``_sum`` and ``_count``."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("histogram buckets must be strictly increasing")
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.buckets = tuple(float(b) for b in buckets)
        self._states: dict[LabelValues, _HistogramState] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        """Record one observation in the series with these label values."""
        index = next((i for i, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        with self._lock:
            state = self._states.get(labels)
            if state is None:
                state = self._states[labels] = _HistogramState([0] * (len(self.buckets) + 1))
            state.counts[index] += 1
            state.total += value
            state.n += 1

    def count(self, *labels: str) -> int:
        """Observations recorded in one series."""
        with self._lock:
            state = self._states.get(labels)
            return state.n if state else 0

    def render(self) -> list[str]:
        """Exposition lines: HELP, TYPE, then buckets, sum and count of each series."""
        with self._lock:
            items = sorted((k, _HistogramState(list(s.counts), s.total, s.n)) for k, s in self._states.items())
        lines = _header(self.name, self.help, "histogram")
        for key, state in items:
            lines += render_histogram_samples(self.name, self.label_names, key, self.buckets, state.counts, state.total)
        return lines


def render_histogram_samples(
    name: str,
    label_names: Sequence[str],
    label_values: Sequence[str],
    buckets: Sequence[float],
    counts: Sequence[int],
    total: float,
) -> list[str]:
    """``_bucket`` (cumulative, ending with ``+Inf``), ``_sum`` and ``_count`` lines of one series.

    Args:
        counts: observations per bucket, not cumulative, ``len(buckets) + 1`` long (last: above all).
    """
    lines, running = [], 0
    for bound, c in zip([*buckets, math.inf], counts, strict=True):
        running += c
        le = f'le="{format_value(bound)}"'
        lines.append(f"{name}_bucket{_labels(label_names, label_values, le)} {running}")
    lines.append(f"{name}_sum{_labels(label_names, label_values)} {format_value(total)}")
    lines.append(f"{name}_count{_labels(label_names, label_values)} {running}")
    return lines


class ServiceMetrics:
    """All metrics of one app instance (kept on ``app.state``, so tests get a fresh set)."""

    def __init__(self) -> None:
        self.requests = Counter(
            "cv_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
        )
        self.latency = Histogram(
            "cv_http_request_duration_seconds",
            "HTTP request latency by method and route template, seconds.",
            ("method", "route"),
            LATENCY_BUCKETS,
        )
        self.stages = Histogram(
            "cv_stage_duration_seconds",
            "Time per request in each inspection stage (decode, preprocess, model, postprocess, match), seconds.",
            ("pipeline", "stage"),
            LATENCY_BUCKETS,
        )

    def observe_stages(self, pipeline: str, timings_ms: Mapping[str, float]) -> None:
        """Record one request's stage timings (milliseconds, as in a report's ``timings_ms``)."""
        for stage, ms in timings_ms.items():
            if stage != "total":
                self.stages.observe(ms / 1e3, pipeline, stage)

    def render(self, *, batch_sizes: Mapping[str, Mapping[int, int]], model_versions: Mapping[str, str]) -> str:
        """The whole exposition.

        Args:
            batch_sizes: model -> {batch size: number of model calls of that size}.
            model_versions: model -> served version.
        """
        lines = [*self.requests.render(), *self.latency.render(), *self.stages.render()]
        lines += _header("cv_batch_size", "Requests per model call.", "histogram")
        for model in sorted(batch_sizes):
            counts = [0] * (len(BATCH_BUCKETS) + 1)
            total = 0
            for size, calls in batch_sizes[model].items():
                index = next((i for i, b in enumerate(BATCH_BUCKETS) if size <= b), len(BATCH_BUCKETS))
                counts[index] += calls
                total += size * calls
            lines += render_histogram_samples("cv_batch_size", ("model",), (model,), BATCH_BUCKETS, counts, total)
        lines += _header("cv_model_info", "Served model versions (value is always 1).", "gauge")
        lines += [f"cv_model_info{_labels(('model', 'version'), (m, v))} 1" for m, v in sorted(model_versions.items())]
        return "\n".join(lines) + "\n"


def route_template(scope: Scope, routes: Sequence[BaseRoute] = ()) -> str:
    """The matched route's path template, or ``"<unmatched>"`` (never the raw path: unbounded labels).

    Args:
        scope: the request's scope, after the app handled it.
        routes: candidates for requests answered before routing (e.g. refused by the upload guard).
    """
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match == Match.FULL and hasattr(candidate, "path"):
            return str(candidate.path)
    return "<unmatched>"


class MetricsMiddleware:
    """ASGI middleware counting requests and timing them by route template and status."""

    def __init__(
        self, app: ASGIApp, metrics_of: Callable[[Scope], ServiceMetrics | None], routes: Sequence[BaseRoute] = ()
    ) -> None:
        self.app = app
        self.metrics_of = metrics_of
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics = self.metrics_of(scope)
            if metrics is not None:
                route, method = route_template(scope, self.routes), str(scope.get("method", ""))
                metrics.requests.inc(method, route, str(status))
                metrics.latency.observe(time.perf_counter() - start, method, route)


def parse_samples(text: str) -> Iterable[tuple[str, dict[str, str], float]]:
    """Parse exposition lines back into ``(name, labels, value)`` (for tests and smoke checks).

    Handles the subset this module writes: no timestamps, label values with the three escapes.
    """
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, labels = head, {}
        if "{" in head:
            name, _, rest = head.partition("{")
            body = rest[: rest.rindex("}")]
            i = 0
            while i < len(body):
                eq = body.index("=", i)
                key = body[i:eq]
                j, chars = eq + 2, []
                while body[j] != '"':
                    if body[j] == "\\":
                        j += 1
                        chars.append({"n": "\n"}.get(body[j], body[j]))
                    else:
                        chars.append(body[j])
                    j += 1
                labels[key] = "".join(chars)
                i = j + 2 if j + 1 < len(body) and body[j + 1] == "," else j + 1
        yield name, labels, float(value.replace("+Inf", "inf"))
