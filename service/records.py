"""What the service writes: stored reports, specimens and their audit entries.

Writes happen only after inference succeeded, and a report is committed in the *same* transaction
as its audit entry, so a failed request leaves neither. The specimen registry commits on its own
(:mod:`similarity.registry` has no way to join a caller's transaction), so specimen changes are
ordered to keep the audit trail complete instead:

* create: the specimen is added, then audited; if the audit entry cannot be written the specimen
  is deleted again, so no specimen exists without its entry;
* delete: the audit entry is written first, then the specimen deleted, so no deletion goes
  unrecorded (if the delete then fails the entry records an attempt, which the error reply shows).

Stored images: each report keeps the uploaded file exactly as received, in ``uploaded_images``
keyed by its sha256 (the digest in the report and in the audit entry, so the stored file can be
checked against both; a file sent twice is stored once). Nothing is re-encoded on the request
path: encoding a PNG cost more than decoding and inference together. The PNG a clerk sees is made
when it is asked for (``image.png``, ``annotated.png``): the original decoded again and downscaled
(area interpolation) to the report's ``stored_width`` x ``stored_height``, whose longest side is at
most ``CV_REPORT_IMAGE_MAX_SIDE`` (2048 by default, enough to review any box an officer acts on).
Boxes stay in original pixels in the JSON; ``annotated.png`` scales them onto that image.

All methods are ``async`` and do their blocking work in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from detectors.annotate import annotate
from service import audit
from service.audit import AuditKeys
from service.db import AuditEntry, StoredImage, StoredReport, utcnow
from service.errors import NotFoundError
from service.matching import Comparison, SpecimenMatcher
from service.pipeline import EmbeddedCrop, Inspection
from service.schemas import DetectionOut, ImageOut, MatchOut, ReportOut
from similarity.registry import SpecimenInfo
from vision.imageio import decode_image, encode_png
from vision.types import Detections

log = logging.getLogger(__name__)

# Appends are serialised with the audit module's own lock: the head file must be written in
# sequence order, whoever appends.
_AUDIT_LOCK = audit._lock


def stored_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """``(width, height)`` of the image shown with a report: scaled so the longest side is at most
    ``max_side``, unchanged if it fits."""
    if max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(round(width * scale), 1), max(round(height * scale), 1)


def _resized(pixels: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """``(H, W, 3)`` uint8 resized (area) to ``size = (width, height)``; unchanged if it has that size."""
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    return np.ascontiguousarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))


class RecordStore:
    """Stores reports and audit entries; reads reports back.

    Args:
        engine: the service database.
        keys: the audit chain's secret and head file.
        image_max_side: longest side of the image shown with a report (``image.png``,
            ``annotated.png``), pixels.
        decode_slots: stored uploads decoded at once for those images; each may hold up to
            ``CV_MAX_PIXELS`` x 3 bytes, as on the upload path (``CV_DECODE_WORKERS``).
    """

    def __init__(self, *, engine: Engine, keys: AuditKeys, image_max_side: int = 2048, decode_slots: int = 2) -> None:
        self.engine = engine
        self.keys = keys
        self.image_max_side = image_max_side
        self._decode_slots = threading.BoundedSemaphore(decode_slots)

    # ---------------------------------------------------------------------------- reports

    async def save_inspection(self, inspection: Inspection, *, actor: str) -> ReportOut:
        """Store the report and its image, and audit it, in one transaction; returns the body."""
        return await asyncio.to_thread(self._save_inspection, inspection, actor)

    def _save_inspection(self, inspection: Inspection, actor: str) -> ReportOut:
        report, record = inspection.report, inspection.record
        stored_width, stored_height = stored_size(record.width, record.height, self.image_max_side)
        sha256 = str(record.source["sha256"])
        body = ReportOut(
            id=report.record_id,
            modality=report.modality,
            created_at=utcnow(),
            detections=DetectionOut.from_core(report.detections),
            risk=report.risk,
            matches=[MatchOut.from_core(m) for m in inspection.matches],
            claimed_owners=list(inspection.claimed_owners),
            models=dict(report.models),
            timings_ms=dict(report.timings_ms),
            image=ImageOut(
                width=record.width,
                height=record.height,
                sha256=sha256,
                format=str(record.source.get("format", "")),
                stored_width=stored_width,
                stored_height=stored_height,
            ),
            annotated_url=f"/v1/reports/{report.record_id}/annotated.png",
        )
        labels = [d.label for d in body.detections]
        payload: dict[str, Any] = {
            "report_id": body.id,
            "modality": body.modality,
            "image_sha256": sha256,
            "models": body.models,
            "detections": len(labels),
            "labels": {label: labels.count(label) for label in sorted(set(labels))},
            "risk": body.risk,
        }
        if body.modality == "document":
            payload["claimed_owners"] = body.claimed_owners
            payload["matches"] = [
                {"detection": m.detection, "specimen_id": m.specimen_id, "owner": m.owner,
                 "similarity": m.similarity, "verdict": m.verdict, "method": m.method,
                 "findings": [f.code for f in m.findings]}
                for m in body.matches
            ]  # fmt: skip

        report_json = body.model_dump_json()

        def rows(session: Session) -> list[object]:
            report_row = StoredReport(
                id=body.id,
                modality=body.modality,
                created_at=body.created_at,
                actor=actor,
                image_sha256=sha256,
                report_json=report_json,
            )
            # Only the key is read: an upload sent before is not loaded, nor stored again.
            if session.scalar(select(StoredImage.sha256).where(StoredImage.sha256 == sha256)) is not None:
                return [report_row]
            return [StoredImage(sha256=sha256, data=inspection.upload), report_row]

        self._commit(rows, actor=actor, action=f"{body.modality}.inspect", payload=payload)
        return body

    async def report_json(self, report_id: str) -> str:
        """The stored report body, exactly as it was returned by the inspection."""
        return await asyncio.to_thread(self._report_json, report_id)

    async def image_png(self, report_id: str) -> bytes:
        """The inspected image as PNG, at the report's stored size (possibly downscaled)."""
        return await asyncio.to_thread(lambda: encode_png(self._stored_image(report_id)[1]))

    async def annotated_png(self, report_id: str) -> bytes:
        """The stored image with boxes, labels, confidences and best similarity per mark drawn."""
        return await asyncio.to_thread(self._annotated, report_id)

    def _report_json(self, report_id: str) -> str:
        with Session(self.engine) as s:
            found = s.scalar(select(StoredReport.report_json).where(StoredReport.id == report_id))
        if found is None:
            raise NotFoundError(f"No report has id {report_id!r}.", code="unknown_report")
        return found

    def _stored_image(self, report_id: str) -> tuple[ReportOut, npt.NDArray[np.uint8]]:
        """The report and its uploaded image decoded again, at ``stored_width`` x ``stored_height``."""
        with Session(self.engine) as s:
            found = s.execute(
                select(StoredReport.report_json, StoredImage.data)
                .join(StoredImage, StoredImage.sha256 == StoredReport.image_sha256)
                .where(StoredReport.id == report_id)
            ).one_or_none()
        if found is None:
            raise NotFoundError(f"No report has id {report_id!r}.", code="unknown_report")
        body = ReportOut.model_validate_json(found.report_json)
        image = body.image
        # The file passed the upload limits when it was inspected; the limits here are its own.
        with self._decode_slots:
            pixels = decode_image(found.data, max_bytes=len(found.data), max_pixels=image.width * image.height)
            return body, _resized(pixels, (image.stored_width, image.stored_height))

    def _annotated(self, report_id: str) -> bytes:
        body, pixels = self._stored_image(report_id)
        sx = pixels.shape[1] / body.image.width
        sy = pixels.shape[0] / body.image.height
        detections = _detections_of(body, scale=(sx, sy))
        # The first listed match of a mark is the one the clerk looks at (a claimed owner's if any).
        best: dict[int, float] = {}
        for m in body.matches:
            best.setdefault(m.detection, m.similarity)
        similarities = [best.get(i) for i in range(len(detections))]
        return encode_png(annotate(pixels, detections, similarities=similarities))

    # ------------------------------------------------------------------------- comparisons

    async def record_comparison(
        self,
        comparison: Comparison,
        crop: EmbeddedCrop,
        *,
        actor: str,
        target: dict[str, str | None],
        models: dict[str, str],
    ) -> None:
        """Audit one comparison (nothing else is stored)."""
        payload = {
            "kind": comparison.kind,
            "image_sha256": str(crop.record.source["sha256"]),
            "models": models,
            "target": target,
            "specimen_id": comparison.specimen_id,
            "owner": comparison.owner,
            "similarity": comparison.similarity,
            "verdict": comparison.verdict,
            "threshold": comparison.threshold,
            "specimens_compared": len(comparison.per_specimen),
            "findings": [f.code for f in comparison.findings],
        }
        await asyncio.to_thread(self._commit, _no_rows, actor=actor, action="compare", payload=payload)

    # --------------------------------------------------------------------------- specimens

    async def create_specimen(
        self,
        matcher: SpecimenMatcher,
        crop: EmbeddedCrop,
        *,
        actor: str,
        owner: str,
        kind: str,
        label: str,
        models: dict[str, str],
    ) -> SpecimenInfo:
        """Register a specimen and audit it (the specimen is removed again if auditing fails)."""

        def work() -> SpecimenInfo:
            info = matcher.register(
                owner=owner, kind=kind, image=crop.record.pixels, embedding=crop.embedding, label=label
            )
            payload = {
                "specimen_id": info.id,
                "kind": kind,
                "owner": owner,
                "label": label,
                "image_sha256": str(crop.record.source["sha256"]),
                "models": models,
            }
            try:
                self._commit(_no_rows, actor=actor, action="specimen.create", payload=payload)
            except Exception:
                log.error("audit entry for new specimen %s failed; removing the specimen", info.id)
                matcher.delete(info.id)
                raise
            return info

        return await asyncio.to_thread(work)

    async def delete_specimen(self, matcher: SpecimenMatcher, specimen_id: str, *, actor: str) -> None:
        """Audit, then delete a specimen; 404 if it does not exist."""

        def work() -> None:
            info = matcher.get(specimen_id)
            payload = {"specimen_id": info.id, "kind": info.kind, "owner": info.owner, "label": info.label}
            self._commit(_no_rows, actor=actor, action="specimen.delete", payload=payload)
            with contextlib.suppress(NotFoundError):  # deleted concurrently: gone, as the entry says
                matcher.delete(specimen_id)

        await asyncio.to_thread(work)

    # ----------------------------------------------------------------------------- internals

    def _commit(
        self,
        rows: Callable[[Session], list[object]],
        *,
        actor: str,
        action: str,
        payload: dict[str, Any],
        retries: int = 5,
    ) -> AuditEntry:
        """Add ``rows(session)`` and one audit entry in a single transaction (retried if another
        process took the same sequence number or stored the same upload), then advance the head file."""
        with _AUDIT_LOCK:
            for _ in range(retries):
                with Session(self.engine, expire_on_commit=False) as session:
                    session.add_all(rows(session))
                    entry = audit.append(session, self.keys, actor=actor, action=action, payload=payload)
                    try:
                        session.commit()
                    except IntegrityError:
                        session.rollback()
                        continue
                self.keys.write_head(entry.seq, entry.entry_hash)
                return entry
        raise RuntimeError("could not append to the audit log: too much contention")


def _no_rows(_session: Session) -> list[object]:
    """For :meth:`RecordStore._commit` when the audit entry is all there is to write."""
    return []


def _detections_of(body: ReportOut, *, scale: tuple[float, float]) -> Detections:
    """Rebuild core detections from a stored report, scaled to the stored image."""
    n = len(body.detections)
    names = ["?"] * (max((d.class_id for d in body.detections), default=-1) + 1)
    for d in body.detections:
        names[d.class_id] = d.label
    sx, sy = scale
    xyxy = np.array([d.box for d in body.detections], dtype=np.float32).reshape(n, 4)
    xyxy *= np.array([sx, sy, sx, sy], dtype=np.float32)
    return Detections(
        xyxy=xyxy,
        confidence=np.array([d.confidence for d in body.detections], dtype=np.float32),
        class_id=np.array([d.class_id for d in body.detections], dtype=np.int64),
        class_names=tuple(names),
    )
