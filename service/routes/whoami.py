"""``GET /v1/whoami``: which key the caller is using and what its role allows.

Any valid key may ask; nothing else is needed (no model, no role), so the answer is available while
the models load. A client such as the clerk page can learn the role at log-in from this instead of
probing a route that its role may not open.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.deps import AnyKey
from service.schemas import KEY_ROUTE_ERRORS, WhoAmIOut

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get("/whoami", responses=KEY_ROUTE_ERRORS)
async def whoami(principal: AnyKey, response: Response) -> WhoAmIOut:
    """The calling key's name and role (401 without a valid key)."""
    # Who a key belongs to may change (revocation), so no cache may answer for the service.
    response.headers["Cache-Control"] = "no-store"
    return WhoAmIOut(name=principal.name, role=principal.role)
