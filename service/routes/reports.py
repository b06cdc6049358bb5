"""``/v1/reports``: stored inspection reports and their images."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.deps import ClerkKey, StoreDep
from service.schemas import PNG_RESPONSE, READ_ROUTE_ERRORS, ReportOut

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get("/{report_id}", response_model=ReportOut, response_class=Response, responses=READ_ROUTE_ERRORS)
async def get_report(principal: ClerkKey, report_id: str, store: StoreDep) -> Response:
    """The report exactly as the inspection returned it."""
    return Response(await store.report_json(report_id), media_type="application/json")


@router.get("/{report_id}/annotated.png", response_class=Response, responses={**READ_ROUTE_ERRORS, **PNG_RESPONSE})
async def get_annotated(principal: ClerkKey, report_id: str, store: StoreDep) -> Response:
    """The inspected image with boxes, labels, confidences and similarity percentages drawn."""
    return Response(await store.annotated_png(report_id), media_type="image/png")


@router.get("/{report_id}/image.png", response_class=Response, responses={**READ_ROUTE_ERRORS, **PNG_RESPONSE})
async def get_image(principal: ClerkKey, report_id: str, store: StoreDep) -> Response:
    """The inspected image as stored with the report (longest side at most CV_REPORT_IMAGE_MAX_SIDE)."""
    return Response(await store.image_png(report_id), media_type="image/png")
