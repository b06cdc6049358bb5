"""``POST /v1/compare``: an uploaded stamp or signature crop against registered specimens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form

from service.deps import ClerkKey, ImageUpload, PipelineDep, StoreDep
from service.schemas import UPLOAD_ROUTE_ERRORS, CompareOut, Kind
from service.uploads import read_upload

router = APIRouter(prefix="/v1", tags=["compare"])


@router.post("/compare", responses=UPLOAD_ROUTE_ERRORS)
async def compare(
    principal: ClerkKey,
    image: ImageUpload,
    kind: Annotated[Kind, Form(description="stamp or signature")],
    pipeline: PipelineDep,
    store: StoreDep,
    specimen_id: Annotated[str | None, Form(description="compare with this specimen ...")] = None,
    owner: Annotated[str | None, Form(description="... or with every specimen of this owner")] = None,
) -> CompareOut:
    """The uploaded image is the crop. Give exactly one of ``specimen_id`` and ``owner``."""
    data = await read_upload(image)
    comparison, crop = await pipeline.compare(
        data, kind=kind, specimen_id=specimen_id, owner=owner, filename=image.filename
    )
    models = pipeline.similarity_versions()
    await store.record_comparison(
        comparison, crop, actor=principal.name, target={"specimen_id": specimen_id, "owner": owner}, models=models
    )
    return CompareOut.from_core(
        comparison, image_sha256=str(crop.record.source["sha256"]), models=models, timings_ms=crop.timings_ms
    )
