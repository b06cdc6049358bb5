"""The inspection orchestration: upload bytes -> decoded image -> model runners -> matches -> report.

Routes stay thin: they read the form, call one :class:`InspectionPipeline` method and hand the result
to :mod:`service.records` to be stored and audited. Nothing here writes to the database, so a
request that fails anywhere in this module leaves no record behind.

Everything slow happens off the event loop: decoding on the decoder's thread pool, inference in the
runners' worker threads (batched across concurrent requests), registry searches in worker threads.

Each result carries ``timings_ms``: ``decode``, ``preprocess``, ``model``, ``postprocess`` (the
detector's per-image share of its batch), ``match`` (documents and comparisons: embedding the crops
plus searching the registry) and ``total`` (wall time of the whole request so far).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.document import MarkDetector
from service.errors import InvalidRequestError, ModelUnavailableError
from service.matching import Comparison, SpecimenMatch, SpecimenMatcher
from service.metrics import ServiceMetrics
from service.models import (
    SIMILARITY_MODEL,
    DetectorResult,
    EmbedResult,
    ModelRunner,
    ModelRunners,
    ModelRuntime,
    start_runners,
)
from service.settings import Settings
from service.uploads import ImageDecoder
from vision.types import ImageRecord, InspectionReport

#: Longest accepted owner id and specimen label (the registry's column sizes).
MAX_OWNER_CHARS = 128
MAX_LABEL_CHARS = 256


@dataclass(frozen=True)
class Inspection:
    """A finished inspection, not yet stored.

    Attributes:
        report: the core report (id = the record's id).
        record: the decoded image, ``record.source`` with ``sha256`` and the original size.
        upload: the uploaded file as received (``sha256`` is its digest); stored as is.
        matches: API-level match details, in ``report.matches`` order.
        claimed_owners: owners the request named, normalised.
    """

    report: InspectionReport
    record: ImageRecord
    upload: bytes
    matches: tuple[SpecimenMatch, ...] = ()
    claimed_owners: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmbeddedCrop:
    """An uploaded crop and its embedding (for specimen registration and comparison)."""

    record: ImageRecord
    embedding: npt.NDArray[np.float32]
    timings_ms: dict[str, float]


def normalise_owners(owners: Sequence[str] | None) -> tuple[str, ...]:
    """Strip, drop empty entries (browsers send empty fields) and duplicates, keeping the order.

    Raises:
        InvalidRequestError: an owner id longer than :data:`MAX_OWNER_CHARS`.
    """
    out: list[str] = []
    for raw in owners or ():
        owner = raw.strip()
        if len(owner) > MAX_OWNER_CHARS:
            raise InvalidRequestError(f"Owner ids are at most {MAX_OWNER_CHARS} characters; got {len(owner)}.")
        if owner and owner not in out:
            out.append(owner)
    return tuple(out)


class InspectionPipeline:
    """Runs inspections, comparisons and specimen embeddings for the routes.

    Args:
        runtime: the usable models (and why others are not).
        runners: one runner per usable model.
        decoder: upload decoder.
        metrics: where stage timings are observed.
        top_k: specimens listed per detected mark.

    Build it with :meth:`start` inside the running event loop; :meth:`stop` on shutdown.
    """

    def __init__(
        self,
        *,
        runtime: ModelRuntime,
        runners: ModelRunners,
        decoder: ImageDecoder,
        metrics: ServiceMetrics,
        top_k: int = 3,
    ) -> None:
        self.runtime = runtime
        self.runners = runners
        self.decoder = decoder
        self.metrics = metrics
        self._matcher = (
            SpecimenMatcher(runtime.registry, runtime.scorers, top_k=top_k, verifiers=runtime.verifiers)
            if runtime.registry is not None
            else None
        )

    @classmethod
    def start(
        cls, runtime: ModelRuntime, *, settings: Settings, decoder: ImageDecoder, metrics: ServiceMetrics
    ) -> InspectionPipeline:
        """Create the runners (batchers start their worker tasks) and the pipeline."""
        runners = start_runners(
            runtime,
            batching=settings.batching,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
        )
        return cls(runtime=runtime, runners=runners, decoder=decoder, metrics=metrics, top_k=settings.match_top_k)

    async def stop(self) -> None:
        """Stop the runners (on shutdown)."""
        await self.runners.stop()

    # -------------------------------------------------------------------------------- access

    def batch_sizes(self) -> dict[str, dict[int, int]]:
        """Model -> {requests per call: number of calls}, for /metrics."""
        return {r.name: dict(r.stats.sizes) for r in self.runners.all()}

    @property
    def matcher(self) -> SpecimenMatcher:
        """The specimen matcher; 503 when the similarity model is not available."""
        if self._matcher is None:
            raise ModelUnavailableError(self.runtime.why_unavailable(SIMILARITY_MODEL))
        return self._matcher

    def _detector(self, name: str) -> ModelRunner[npt.NDArray[np.uint8], DetectorResult]:
        runner = self.runners.detectors.get(name)
        if runner is None:
            raise ModelUnavailableError(self.runtime.why_unavailable(name))
        return runner

    def _embedder(self) -> ModelRunner[tuple[npt.NDArray[np.uint8], ...], EmbedResult]:
        if self.runners.embedder is None:
            raise ModelUnavailableError(self.runtime.why_unavailable(SIMILARITY_MODEL))
        return self.runners.embedder

    def _versions(self, *names: str) -> dict[str, str]:
        return {n: self.runtime.versions[n] for n in names if n in self.runtime.versions}

    # ---------------------------------------------------------------------------- inspections

    async def inspect_xray(self, data: bytes, *, filename: str | None = None) -> Inspection:
        """Detect threats in an X-ray scan and rate its risk.

        Raises:
            ModelUnavailableError: the X-ray model is not available (checked before decoding).
            vision.imageio.ImageDecodeError: the upload is not an acceptable image.
        """
        start = time.perf_counter()
        runner = self._detector("xray")
        detector = self.runtime.detectors["xray"]
        record, decode_ms = await self.decoder.decode(data, modality="xray", filename=filename)
        result = await runner.submit(record.pixels)
        timings = {"decode": decode_ms, **result.timings_ms, "total": _ms_since(start)}
        self.metrics.observe_stages("xray", timings)
        report = InspectionReport(
            record_id=record.id,
            modality="xray",
            detections=result.detections,
            risk=detector.risk(result.detections),
            models=self._versions("xray"),
            timings_ms=_rounded(timings),
        )
        return Inspection(report=report, record=record, upload=data)

    async def inspect_document(
        self, data: bytes, *, owners: Sequence[str] | None = None, filename: str | None = None
    ) -> Inspection:
        """Find stamps and signatures and rank registered specimens for each (claimed owners first).

        Raises:
            ModelUnavailableError: the document or similarity model is not available.
            NotFoundError: a claimed owner has no registered specimen (checked before decoding).
            vision.imageio.ImageDecodeError: the upload is not an acceptable image.
        """
        start = time.perf_counter()
        claimed = normalise_owners(owners)
        runner, embedder, matcher = self._detector("document"), self._embedder(), self.matcher
        await asyncio.to_thread(matcher.check_owners, claimed)
        record, decode_ms = await self.decoder.decode(data, modality="document", filename=filename)
        result = await runner.submit(record.pixels)
        detections = result.detections

        match_start = time.perf_counter()
        kinds = await asyncio.to_thread(matcher.searchable_kinds)
        marks = [(i, label) for i, label in enumerate(detections.labels) if label in kinds]
        matches: list[SpecimenMatch] = []
        if marks:
            crops = MarkDetector.crops(record.pixels, detections[np.array([i for i, _ in marks])])
            embedded = await embedder.submit(tuple(crops))
            matches = await asyncio.to_thread(matcher.match_marks, marks, embedded.embeddings, claimed, crops=crops)
        timings = {
            "decode": decode_ms,
            **result.timings_ms,
            "match": _ms_since(match_start),
            "total": _ms_since(start),
        }
        self.metrics.observe_stages("document", timings)
        report = InspectionReport(
            record_id=record.id,
            modality="document",
            detections=detections,
            matches=tuple(m.match for m in matches),
            models=self._versions("document", SIMILARITY_MODEL),
            timings_ms=_rounded(timings),
        )
        return Inspection(report=report, record=record, upload=data, matches=tuple(matches), claimed_owners=claimed)

    # ------------------------------------------------------------------------ crops (similarity)

    async def embed_crop(self, data: bytes, *, filename: str | None = None) -> EmbeddedCrop:
        """Decode an uploaded stamp or signature crop and embed it.

        Raises:
            ModelUnavailableError: the similarity model is not available.
            vision.imageio.ImageDecodeError: the upload is not an acceptable image.
        """
        start = time.perf_counter()
        embedder = self._embedder()
        record, decode_ms = await self.decoder.decode(data, modality="document", filename=filename)
        embedded = await embedder.submit((record.pixels,))
        timings = {"decode": decode_ms, "model": embedded.model_ms, "total": _ms_since(start)}
        return EmbeddedCrop(record=record, embedding=embedded.embeddings[0], timings_ms=_rounded(timings))

    async def compare(
        self,
        data: bytes,
        *,
        kind: str,
        specimen_id: str | None,
        owner: str | None,
        filename: str | None = None,
    ) -> tuple[Comparison, EmbeddedCrop]:
        """Compare an uploaded crop with one specimen or with every specimen of one owner.

        Raises:
            InvalidRequestError: neither or both of ``specimen_id`` and ``owner``; a kind mismatch.
            NotFoundError: unknown specimen or owner (checked before decoding).
            ModelUnavailableError: the similarity model is not available.
        """
        start = time.perf_counter()
        specimen_id = (specimen_id or "").strip() or None
        owner = (owner or "").strip() or None
        if (specimen_id is None) == (owner is None):
            raise InvalidRequestError("Give exactly one of the form fields 'specimen_id' and 'owner'.")
        matcher = self.matcher
        await asyncio.to_thread(matcher.check_target, kind, specimen_id=specimen_id, owner=owner)
        crop = await self.embed_crop(data, filename=filename)
        match_start = time.perf_counter()
        comparison = await asyncio.to_thread(
            matcher.compare, crop.embedding, kind, specimen_id=specimen_id, owner=owner, crop=crop.record.pixels
        )
        crop.timings_ms.update(_rounded({"match": _ms_since(match_start), "total": _ms_since(start)}))
        self.metrics.observe_stages("compare", crop.timings_ms)
        return comparison, crop

    def similarity_versions(self) -> dict[str, str]:
        """``{"similarity": version}`` when the similarity model serves, else empty."""
        return self._versions(SIMILARITY_MODEL)


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}
