"""The service's models: loading them, wrapping them for their task, and calling them.

Three steps, each in its own function:

1. :func:`load_models` reads ``<models_dir>/<name>.json`` cards (with ``CV_PRECISION=int8``, the
   ``<name>-int8.json`` cards of ``customs-vision quantize`` where :func:`card_for` finds them),
   verifies the ONNX files' sha256 and creates one
   :class:`~vision.runtime.base.InferenceBackend` per model (a :class:`ModelPool`). A
   model whose backend is unavailable (Triton not up yet) stays *pending*: :func:`connect_pending`
   tries it again (the app does, with :func:`retry_delays` between attempts) and
   :func:`extend_runtime` adds it to the running service once it connects.
2. :func:`build_runtime` wraps each backend for what it does (:data:`DETECTORS` for detectors, the
   ``similarity`` model as an :class:`~similarity.embedder.Embedder` with a
   :class:`~similarity.scoring.Scorer` per mark kind, and the specimen registry), giving a
   :class:`ModelRuntime`. A model that loads but cannot be used (e.g. a card with no class names)
   is recorded in :attr:`ModelRuntime.problems`, and requests that need it get 503.
3. :func:`start_runners` puts each model behind a runner that the event loop awaits: a
   :class:`~service.batching.MicroBatcher` (``CV_BATCHING=on``) or a :class:`SerialRunner` (off).
   Either way a backend is only ever called from one thread at a time, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine

from detectors.base import YoloDetector
from detectors.catalog import DETECTORS as CATALOG
from service.batching import BatchStats, MicroBatcher, OverloadedError
from similarity.embedder import Embedder
from similarity.registry import KINDS, SpecimenRegistry
from similarity.scoring import Scorer, ScoringError
from similarity.verifier import PairVerifier, verifiers_from_metrics
from vision.modelcard import ModelCard, ModelCardError, load_verified
from vision.runtime.base import BackendError, BackendUnavailable, InferenceBackend
from vision.runtime.registry import create_backend
from vision.types import Detections

log = logging.getLogger(__name__)

#: Model name -> the detector class that serves it (:mod:`detectors.catalog`).
DETECTORS: Mapping[str, type[YoloDetector]] = CATALOG

#: Name of the embedding model used for stamp and signature comparison.
SIMILARITY_MODEL = "similarity"

#: A model's INT8 card is ``<name><INT8_SUFFIX>.json`` (``deploy.quantize.INT8_SUFFIX``).
INT8_SUFFIX = "-int8"
#: Backends that can serve INT8 cards: their graphs are quantized for ONNX Runtime's CPU provider.
INT8_BACKENDS = ("onnxruntime",)

T = TypeVar("T")
R = TypeVar("R")
T_contra = TypeVar("T_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


@runtime_checkable
class ReadinessProbe(Protocol):
    """A backend whose model lives elsewhere (a Triton server) and can be asked whether it is up.

    Local backends load their model once and stay ready; a remote one can go away and come back
    while the service runs, so ``/readyz`` asks it on every probe.
    """

    def check_ready(self) -> None:
        """Return if the model can serve now; raise :class:`~vision.runtime.base.BackendUnavailable` if not."""
        ...


@dataclass
class LoadedModel:
    """One loaded model: its verified card, ONNX path and backend."""

    card: ModelCard
    path: Path
    backend: InferenceBackend


@dataclass(frozen=True)
class PendingModel:
    """A model whose card is verified but whose backend is not created yet.

    Attributes:
        card: the verified card.
        path: its ONNX file.
        backend: registered backend name (``"triton"``, ...).
        kwargs: the backend's keyword arguments for this model.
        where: the backend in words, for messages (``"Triton at grpc://host:8001"``).
    """

    card: ModelCard
    path: Path
    backend: str
    kwargs: dict[str, Any]
    where: str


@dataclass
class ModelPool:
    """The models the service runs, and why any of them is not available.

    A model is in exactly one of ``models`` (serving), ``pending`` (its backend was unavailable, to be
    tried again; ``errors`` says so) or ``errors`` alone (failed for good: bad card, bad model file).
    The app replaces its pool as a whole rather than changing it, because ``/readyz`` reads it from
    worker threads.
    """

    models: dict[str, LoadedModel] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    pending: dict[str, PendingModel] = field(default_factory=dict)
    loaded: bool = False

    def versions(self) -> dict[str, str]:
        """Model name -> version of every loaded model."""
        return {name: m.card.version for name, m in self.models.items()}

    def missing(self, required: tuple[str, ...]) -> dict[str, str]:
        """Required model name -> reason it is not loaded (empty when all are)."""
        if not self.loaded:
            return {name: "still loading" for name in required}
        return {name: self.errors.get(name, "not loaded") for name in required if name not in self.models}

    def unreachable(self, names: tuple[str, ...]) -> dict[str, str]:
        """Loaded model name -> why its remote backend cannot serve right now (probed now, blocking).

        Only backends that implement :class:`ReadinessProbe` are asked; the others are always up.
        """
        out: dict[str, str] = {}
        for name in names:
            model = self.models.get(name)
            if model is None or not isinstance(model.backend, ReadinessProbe):
                continue
            try:
                model.backend.check_ready()
            except BackendError as e:
                out[name] = f"the inference backend is unavailable: {e}"
        return out

    def close(self) -> None:
        """Release every backend."""
        for m in self.models.values():
            m.backend.close()
        self.models.clear()


def card_for(models_dir: Path, name: str, *, precision: str) -> Path:
    """The card to serve for model ``name`` at ``precision`` (``"fp32"`` or ``"int8"``).

    ``"int8"`` gives ``<name>-int8.json`` when it exists and was quantized from the float32 card now
    beside it (its ``training.parent.sha256`` is that card's ``sha256``); otherwise ``<name>.json``,
    with a warning saying why: a model without an INT8 card, or with one left over from an earlier
    model, is served in float32 rather than not at all or stale.

    Raises:
        ModelCardError: the INT8 card exists but cannot be read or is not an INT8 card (a broken
            file fails like a broken float32 card does, rather than being silently skipped).
    """
    fp32 = models_dir / f"{name}.json"
    if precision != "int8":
        return fp32
    int8 = models_dir / f"{name}{INT8_SUFFIX}.json"
    if not int8.is_file():
        if fp32.is_file():  # else loading the float32 card reports what is missing
            log.warning("model %s: CV_PRECISION=int8 but there is no %s; serving the float32 model", name, int8.name)
        return fp32
    card = ModelCard.load(int8)
    if card.training.get("precision") != "int8":
        raise ModelCardError(f"{int8} is not an INT8 card (its training.precision is not 'int8')")
    parent = card.training.get("parent") or {}
    try:
        current = ModelCard.load(fp32).sha256
    except ModelCardError as e:
        raise ModelCardError(f"{int8} cannot be checked against its float32 parent: {e}") from e
    if parent.get("sha256") != current:
        log.warning(
            "model %s: %s was quantized from another %s model (version %s), not the %s now there; serving the "
            "float32 model (run customs-vision quantize %s again)",
            name,
            int8.name,
            name,
            parent.get("version"),
            fp32.name,
            fp32,
        )
        return fp32
    return int8


def load_models(
    models_dir: Path,
    names: tuple[str, ...],
    *,
    backend: str,
    backend_kwargs: dict[str, Any],
    precision: str = "fp32",
) -> ModelPool:
    """Load ``<models_dir>/<name>.json`` for each name; failures are recorded, not raised.

    A model whose backend is unavailable (:class:`~vision.runtime.base.BackendUnavailable`) is left
    in :attr:`ModelPool.pending` for :func:`connect_pending`; a bad card or model file fails for good.

    Args:
        models_dir: the cards and their ONNX files.
        names: the models to load.
        backend: registered backend name.
        backend_kwargs: its keyword arguments, for every model.
        precision: ``"int8"`` serves each model's INT8 card where :func:`card_for` finds a usable
            one (ONNX Runtime only; other backends serve the float32 cards, and say so once).
    """
    if precision == "int8" and backend not in INT8_BACKENDS:
        log.warning(
            "CV_PRECISION=int8 is ignored with CV_BACKEND=%s: INT8 cards are quantized for ONNX Runtime's CPU "
            "provider; serving the float32 cards",
            backend,
        )
        precision = "fp32"
    pool = ModelPool()
    for name in names:
        try:
            card_path = card_for(models_dir, name, precision=precision)
            card, path = load_verified(card_path)
        except ModelCardError as e:
            pool.errors[name] = str(e)
            log.warning("model %s not loaded: %s", name, e)
            continue
        except Exception as e:  # a loader bug must not leave /readyz "still loading" forever
            pool.errors[name] = f"failed to load: {e!r}"
            log.exception("model %s failed to load", name)
            continue
        kwargs = dict(backend_kwargs)
        where = f"the {backend} backend"
        if backend == "onnxruntime":
            kwargs.setdefault("path", path)
        elif backend == "triton":
            kwargs.setdefault("model_name", card.name)
            where = f"Triton at {kwargs.get('protocol', 'http')}://{kwargs.get('url')}"
        pool.pending[name] = PendingModel(card=card, path=path, backend=backend, kwargs=kwargs, where=where)
    return connect_pending(pool)


def connect_pending(pool: ModelPool, *, stop: threading.Event | None = None) -> ModelPool:
    """Create the backend of every pending model (blocking); returns a new pool, ``pool`` is unchanged.

    A model that connects moves to ``models``; one whose backend is still unavailable stays pending,
    with ``"waiting for <where> (retrying): <last error>"`` in ``errors``; any other failure is final.

    Args:
        pool: the current pool.
        stop: when set, the models not tried yet stay pending untried (shutdown is waiting).
    """
    out = ModelPool(models=dict(pool.models), errors=dict(pool.errors), loaded=True)
    for name, pending in pool.pending.items():
        if stop is not None and stop.is_set():
            out.pending[name] = pending
            continue
        try:
            backend = create_backend(pending.backend, **pending.kwargs)
        except BackendUnavailable as e:
            out.pending[name] = pending
            out.errors[name] = f"waiting for {pending.where} (retrying): {e}"
            # Logged when it starts waiting, not on every attempt: /readyz shows the reason meanwhile.
            if name not in pool.errors:
                log.warning("model %s: waiting for %s (retrying): %s", name, pending.where, e)
        except BackendError as e:
            out.errors[name] = str(e)
            log.warning("model %s not loaded: %s", name, e)
        except Exception as e:  # a loader bug must not leave /readyz "still loading" forever
            out.errors[name] = f"failed to load: {e!r}"
            log.exception("model %s failed to load", name)
        else:
            out.errors.pop(name, None)
            out.models[name] = LoadedModel(card=pending.card, path=pending.path, backend=backend)
            log.info("loaded model %s %s from %s (%s)", name, pending.card.version, pending.path.name, pending.where)
    return out


def retry_delays(max_s: float, *, first_s: float = 1.0) -> Iterator[float]:
    """Seconds to wait before each new attempt: ``first_s``, doubling, capped at ``max_s``; endless."""
    delay = min(first_s, max_s)
    while True:
        yield delay
        delay = min(2 * delay, max_s)


# --------------------------------------------------------------------------------------- runtime


@dataclass
class ModelRuntime:
    """The loaded models wrapped for their tasks.

    Attributes:
        detectors: model name (``"xray"``, ``"document"``) -> detector.
        embedder: the similarity model, or ``None``.
        scorers: mark kind -> calibration and decision policy from the similarity model's card.
        registry: the registered specimens, opened for the embedder's model version.
        verifiers: mark kind -> direct verifier of the similarity card
            (``metrics.scoring.stamp_aligned``, ``metrics.scoring.signature_shape``); a kind the
            card has none for is scored by the embedding alone.
        versions: model name -> version of every usable model.
        problems: model name -> why it cannot be used (missing, failed to load, unusable card).
    """

    detectors: dict[str, YoloDetector] = field(default_factory=dict)
    embedder: Embedder | None = None
    scorers: dict[str, Scorer] = field(default_factory=dict)
    registry: SpecimenRegistry | None = None
    verifiers: dict[str, PairVerifier] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def why_unavailable(self, name: str) -> str:
        """A sentence saying why model ``name`` cannot serve requests."""
        reason = self.problems.get(name, "it is not configured (see CV_REQUIRED_MODELS)")
        return f"The {name!r} model is not available: {reason}"


def build_runtime(
    pool: ModelPool, *, engine: Engine, detector_kwargs: Mapping[str, Mapping[str, Any]] | None = None
) -> ModelRuntime:
    """Wrap the pool's backends for their tasks; failures are recorded, never raised.

    Args:
        pool: loaded models (see :func:`load_models`).
        engine: database holding the specimen registry.
        detector_kwargs: model name -> further arguments of its detector class (e.g.
            ``{"xray": {"flip_tta": False}}``, from the settings).

    Returns:
        The runtime; specimens embedded by another model version are re-embedded first.
    """
    runtime = ModelRuntime(problems=dict(pool.errors))
    for name, model in pool.models.items():
        try:
            if name in DETECTORS:
                if model.card.task != "detect":
                    raise ModelCardError(f"it is a {model.card.task!r} model, not a detector")
                runtime.detectors[name] = DETECTORS[name](
                    backend=model.backend, spec=model.card.spec, **dict((detector_kwargs or {}).get(name, {}))
                )
            elif name == SIMILARITY_MODEL:
                _attach_similarity(runtime, model, engine)
            else:
                continue
            runtime.versions[name] = model.card.version
        except Exception as e:  # a card that cannot serve its task must not stop the others
            runtime.problems[name] = f"its card cannot serve: {e}"
            log.warning("model %s cannot be used: %s", name, e)
    return runtime


def extend_runtime(
    runtime: ModelRuntime,
    pool: ModelPool,
    added: Collection[str],
    *,
    engine: Engine,
    detector_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> ModelRuntime:
    """``runtime`` plus the models ``added`` (just connected, in ``pool``); blocking.

    The models ``runtime`` already serves keep their objects (detectors, embedder, registry), so
    requests in flight are not disturbed; models still not loaded get ``pool``'s current reasons.

    Args:
        runtime: what the service runs now.
        pool: the pool after the models connected.
        added: names of the models in ``pool.models`` that ``runtime`` has not seen loaded.
        engine: database holding the specimen registry.
        detector_kwargs: as for :func:`build_runtime`.
    """
    part = build_runtime(
        ModelPool(models={n: pool.models[n] for n in added}, loaded=True),
        engine=engine,
        detector_kwargs=detector_kwargs,
    )
    # Reasons of loaded models that cannot serve (their cards) stay; the others come from the pool.
    kept = {n: p for n, p in runtime.problems.items() if n in pool.models and n not in added}
    # ``is None``, never ``or``: an empty registry is falsy (it has a length).
    similarity = part if part.embedder is not None else runtime
    return ModelRuntime(
        detectors={**runtime.detectors, **part.detectors},
        embedder=similarity.embedder,
        scorers=similarity.scorers,
        registry=similarity.registry,
        versions={**runtime.versions, **part.versions},
        problems={**pool.errors, **kept, **part.problems},
    )


def _attach_similarity(runtime: ModelRuntime, model: LoadedModel, engine: Engine) -> None:
    if model.card.task != "embed":
        raise ModelCardError(f"it is a {model.card.task!r} model, not an embedding model")
    embedder = Embedder(backend=model.backend, spec=model.card.spec, batch_size=model.card.spec.max_batch)
    scorers: dict[str, Scorer] = {}
    for kind in KINDS:
        try:
            scorers[kind] = Scorer.from_metrics(model.card.metrics, kind)
        except ScoringError as e:
            log.warning("similarity model: %s; %s comparisons are unavailable", e, kind)
    if not scorers:
        raise ScoringError("the card's metrics hold no 'scoring' calibration for stamps or signatures")
    verifiers: dict[str, PairVerifier] = {}
    try:
        verifiers = verifiers_from_metrics(model.card.metrics)
    except ScoringError as e:
        log.warning("similarity model: %s; marks are scored by the embedding alone", e)
    for kind in KINDS:
        if kind not in verifiers:
            log.info("similarity model: no direct %s verifier in its card; %ss are scored by the embedding", kind, kind)
    registry = SpecimenRegistry(engine=engine, model_version=embedder.version)
    if registry.stale_count:
        log.info("re-embedding %d specimens for similarity model %s", registry.stale_count, embedder.version)
        registry.reembed(embedder)
    runtime.embedder, runtime.scorers, runtime.registry = embedder, scorers, registry
    runtime.verifiers = verifiers


# --------------------------------------------------------------------------------------- runners


@dataclass(frozen=True)
class DetectorResult:
    """One image's detections and its share of the batch's stage timings (milliseconds)."""

    detections: Detections
    timings_ms: dict[str, float]
    batch_size: int


@dataclass(frozen=True)
class EmbedResult:
    """Embeddings of one request's crops, ``(N, D)`` float32 unit rows, and its share of the call."""

    embeddings: npt.NDArray[np.float32]
    model_ms: float


class ModelRunner(Protocol[T_contra, R_co]):
    """What the pipeline awaits: one item in, its result out (batched or not behind the scenes)."""

    name: str
    stats: BatchStats

    async def submit(self, item: T_contra) -> R_co:
        """Queue ``item`` and wait for its result (raises :class:`~service.batching.OverloadedError`)."""
        ...

    async def stop(self) -> None:
        """Stop accepting work; waiting callers get an error."""
        ...


class SerialRunner(Generic[T, R]):
    """Runs each item alone, one at a time, in a worker thread (``CV_BATCHING=off``).

    At most ``max_queue`` requests wait; more get :class:`~service.batching.OverloadedError`, as with
    the batcher. A thread lock, not only the asyncio lock, guards the model: a request cancelled
    while its call is running releases the asyncio lock, but the call itself runs on.
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_queue: int, name: str) -> None:
        self._fn = fn
        self.max_queue = max_queue
        self.name = name
        self.stats = BatchStats()
        self._pending = 0
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    async def submit(self, item: T) -> R:
        """Run ``item`` alone once the model is free; 503-worthy error if too many are waiting."""
        if self._pending > self.max_queue:
            raise OverloadedError(f"the {self.name} model is busy ({self.max_queue} requests waiting)")
        self._pending += 1
        try:
            async with self._lock:
                self.stats.add(1)
                return await asyncio.to_thread(self._call, item)
        finally:
            self._pending -= 1

    def _call(self, item: T) -> R:
        with self._thread_lock:
            results = self._fn([item])
        if len(results) != 1:
            raise RuntimeError(f"{self.name}: model call returned {len(results)} results for 1 item")
        return results[0]

    async def stop(self) -> None:
        """Nothing to stop: there is no worker task."""
        return None


def detector_fn(detector: YoloDetector) -> Callable[[list[npt.NDArray[np.uint8]]], list[DetectorResult]]:
    """Batch function for a detector: ``(H, W, 3)`` uint8 RGB images -> one result per image."""

    def run(images: list[npt.NDArray[np.uint8]]) -> list[DetectorResult]:
        detections, timings = detector.detect_with_timings(images)
        per_image = timings.per_image()
        return [DetectorResult(d, dict(per_image), len(images)) for d in detections]

    return run


def embed_fn(embedder: Embedder) -> Callable[[list[tuple[npt.NDArray[np.uint8], ...]]], list[EmbedResult]]:
    """Batch function for the embedder: each item is one request's crops; one model call for all."""

    def run(items: list[tuple[npt.NDArray[np.uint8], ...]]) -> list[EmbedResult]:
        flat = [crop for item in items for crop in item]
        t0 = time.perf_counter()
        vectors = embedder.embed(flat)
        ms_per_crop = (time.perf_counter() - t0) * 1e3 / max(len(flat), 1)
        out, start = [], 0
        for item in items:
            out.append(EmbedResult(vectors[start : start + len(item)], ms_per_crop * len(item)))
            start += len(item)
        return out

    return run


@dataclass
class ModelRunners:
    """The runner of every usable model; create with :func:`start_runners` inside the event loop."""

    detectors: dict[str, ModelRunner[npt.NDArray[np.uint8], DetectorResult]] = field(default_factory=dict)
    embedder: ModelRunner[tuple[npt.NDArray[np.uint8], ...], EmbedResult] | None = None

    def all(self) -> list[ModelRunner[Any, Any]]:
        """Every runner, detectors first."""
        return [*self.detectors.values(), *([self.embedder] if self.embedder else [])]

    async def stop(self) -> None:
        """Stop every runner (on shutdown)."""
        for runner in self.all():
            await runner.stop()


def start_runners(
    runtime: ModelRuntime,
    *,
    batching: bool,
    max_batch: int,
    max_wait_ms: float,
    max_queue: int,
    running: ModelRunners | None = None,
) -> ModelRunners:
    """One runner per usable model; call from the running event loop (batchers start a task).

    ``running``: runners already started (the models that served before others connected); they are
    kept as they are, and only the models without one get a new runner.
    """

    def make(fn: Callable[[list[Any]], Sequence[Any]], name: str) -> ModelRunner[Any, Any]:
        if not batching:
            return SerialRunner(fn, max_queue=max_queue, name=name)
        batcher = MicroBatcher(fn, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, name=name)
        batcher.start()
        return batcher

    runners = ModelRunners() if running is None else ModelRunners(dict(running.detectors), running.embedder)
    for name, detector in runtime.detectors.items():
        if name not in runners.detectors:
            runners.detectors[name] = make(detector_fn(detector), name)
    if runtime.embedder is not None and runners.embedder is None:
        runners.embedder = make(embed_fn(runtime.embedder), SIMILARITY_MODEL)
    return runners
