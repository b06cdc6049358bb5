"""``POST /v1/xray/inspect``: threat detection on an X-ray scan."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import ImageUpload, PipelineDep, ScannerKey, StoreDep
from service.schemas import UPLOAD_ROUTE_ERRORS, ReportOut
from service.uploads import read_upload

router = APIRouter(prefix="/v1/xray", tags=["xray"])


@router.post("/inspect", responses=UPLOAD_ROUTE_ERRORS)
async def inspect_xray(principal: ScannerKey, image: ImageUpload, pipeline: PipelineDep, store: StoreDep) -> ReportOut:
    """Detect threats, rate the scan's risk (clear, review, alarm), store and audit the report."""
    data = await read_upload(image)
    inspection = await pipeline.inspect_xray(data, filename=image.filename)
    return await store.save_inspection(inspection, actor=principal.name)
