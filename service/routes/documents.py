"""``POST /v1/documents/inspect``: stamps and signatures, each compared with registered specimens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form

from service.deps import ImageUpload, PipelineDep, ScannerKey, StoreDep
from service.schemas import UPLOAD_ROUTE_ERRORS, ReportOut
from service.uploads import read_upload

router = APIRouter(prefix="/v1/documents", tags=["documents"])

ClaimedOwners = Annotated[
    list[str] | None,
    Form(description="claimed authority or signatory (repeatable); their specimens are listed first"),
]


@router.post("/inspect", responses=UPLOAD_ROUTE_ERRORS)
async def inspect_document(
    principal: ScannerKey,
    image: ImageUpload,
    pipeline: PipelineDep,
    store: StoreDep,
    owner: ClaimedOwners = None,
) -> ReportOut:
    """Find stamps and signatures; for each, the best registered specimens (claimed owners first)."""
    data = await read_upload(image)
    inspection = await pipeline.inspect_document(data, owners=owner, filename=image.filename)
    return await store.save_inspection(inspection, actor=principal.name)
