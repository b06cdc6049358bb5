"""``/v1/specimens``: the registered stamps and signatures that marks are compared with.

Reading needs a clerk key; registering and deleting an admin key. Every change is audited.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Form, Query, Response, status

from service.deps import AdminKey, ClerkKey, ImageUpload, PipelineDep, StoreDep
from service.errors import InvalidRequestError
from service.pipeline import MAX_LABEL_CHARS, normalise_owners
from service.schemas import (
    PNG_RESPONSE,
    READ_ROUTE_ERRORS,
    UPLOAD_ROUTE_ERRORS,
    Kind,
    SpecimenCheckOut,
    SpecimenCreatedOut,
    SpecimenListOut,
    SpecimenOut,
)
from service.uploads import read_upload
from similarity.pairwise import BlankCropError
from similarity.stamp_match import StampMatchError, specimen_checks
from vision.imageio import encode_png

router = APIRouter(prefix="/v1/specimens", tags=["specimens"])

KindField = Annotated[Kind, Form(description="stamp or signature")]
OwnerField = Annotated[str, Form(description="the authority or signatory the specimen belongs to")]
LabelField = Annotated[str, Form(max_length=MAX_LABEL_CHARS, description="free text shown to clerks")]


@router.post("", status_code=status.HTTP_201_CREATED, responses=UPLOAD_ROUTE_ERRORS)
async def create_specimen(
    principal: AdminKey,
    image: ImageUpload,
    kind: KindField,
    owner: OwnerField,
    pipeline: PipelineDep,
    store: StoreDep,
    response: Response,
    label: LabelField = "",
) -> SpecimenCreatedOut:
    """Register the uploaded crop as a specimen of ``owner``.

    A stamp is also checked for what would make it a poor reference (``checks``): no colour, a
    colour that wanders like a photocopy's, no ink found. It is registered all the same; the clerk
    decides whether the archive has a better impression.
    """
    owners = normalise_owners([owner])
    if not owners:
        raise InvalidRequestError("Form field 'owner' must not be empty.", code="missing_field")
    matcher = pipeline.matcher
    crop = await pipeline.embed_crop(await read_upload(image), filename=image.filename)
    info = await store.create_specimen(
        matcher,
        crop,
        actor=principal.name,
        owner=owners[0],
        kind=kind,
        label=label.strip(),
        models=pipeline.similarity_versions(),
    )
    checks = await asyncio.to_thread(_stamp_checks, crop.record.pixels) if kind == "stamp" else []
    response.headers["Location"] = f"/v1/specimens/{info.id}"
    return SpecimenCreatedOut(**SpecimenOut.from_core(info).model_dump(), checks=checks)


def _stamp_checks(pixels: np.ndarray) -> list[SpecimenCheckOut]:
    try:
        return SpecimenCheckOut.from_core(specimen_checks(pixels))
    except BlankCropError:
        return [
            SpecimenCheckOut(
                code="no_ink",
                detail="No stamp ink was found in the crop: stamps compared with it fall back to the embedding's "
                "score. Register a crop that holds the impression.",
            )
        ]
    except StampMatchError:  # too small to compare: the comparisons say so when they happen
        return []


@router.get("", responses=READ_ROUTE_ERRORS)
async def list_specimens(
    principal: ClerkKey,
    pipeline: PipelineDep,
    owner: Annotated[str | None, Query(description="only this owner's specimens")] = None,
    kind: Annotated[Kind | None, Query(description="only stamps or only signatures")] = None,
) -> SpecimenListOut:
    """Registered specimens, oldest first."""
    infos = await asyncio.to_thread(pipeline.matcher.specimens, owner=owner, kind=kind)
    return SpecimenListOut(specimens=[SpecimenOut.from_core(i) for i in infos], count=len(infos))


@router.get("/{specimen_id}", responses=READ_ROUTE_ERRORS)
async def get_specimen(principal: ClerkKey, specimen_id: str, pipeline: PipelineDep) -> SpecimenOut:
    """One specimen's metadata."""
    return SpecimenOut.from_core(await asyncio.to_thread(pipeline.matcher.get, specimen_id))


@router.get("/{specimen_id}/image.png", response_class=Response, responses={**READ_ROUTE_ERRORS, **PNG_RESPONSE})
async def get_specimen_image(principal: ClerkKey, specimen_id: str, pipeline: PipelineDep) -> Response:
    """The registered specimen image, as PNG."""
    pixels = await asyncio.to_thread(pipeline.matcher.image, specimen_id)
    return Response(await asyncio.to_thread(encode_png, pixels), media_type="image/png")


@router.delete("/{specimen_id}", status_code=status.HTTP_204_NO_CONTENT, responses=READ_ROUTE_ERRORS)
async def delete_specimen(principal: AdminKey, specimen_id: str, pipeline: PipelineDep, store: StoreDep) -> None:
    """Remove a specimen; marks are no longer compared with it."""
    await store.delete_specimen(pipeline.matcher, specimen_id, actor=principal.name)
