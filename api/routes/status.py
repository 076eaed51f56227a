"""`GET /v1/alarms` and `GET /v1/fleet`: the fleet's active alarms and status, from memory.

Both answer from `app.state.status` (api/statuscache.py), refreshed in the background, so they
cost no InfluxDB query however large the fleet.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import AuthDep, CatalogueDep
from api.models import Alarms, Fleet
from api.params import check_type
from api.problems import COMMON_ERRORS
from api.statuscache import StatusCache

router = APIRouter(prefix="/v1", tags=["status"], dependencies=[AuthDep])


def _cache(request: Request) -> StatusCache:
    cache: StatusCache = request.app.state.status
    cache.require()
    return cache


@router.get("/alarms", response_model=Alarms, responses=COMMON_ERRORS)
async def alarms(
    request: Request,
    catalogue: CatalogueDep,
    type: Annotated[  # the public parameter name of DESIGN section 10
        str | None, Query(description="Only alarms of devices of this type", max_length=64)
    ] = None,
) -> Response:
    """The active alarms of the fleet (`offline`, `battery_low`), oldest first."""
    type = type or None
    if type is not None:
        check_type(type, catalogue)
    return _json(_cache(request).rendered("alarms", type))


@router.get("/fleet", response_model=Fleet, responses=COMMON_ERRORS)
async def fleet(request: Request) -> Response:
    """Per device type: devices seen, devices per state, active alarms per kind."""
    return _json(_cache(request).rendered("fleet"))


def _json(body: bytes) -> Response:
    # Rendered once per change of status (the models above document the shape): building
    # thousands of pydantic objects per request was most of `/v1/alarms`' time.
    return Response(body, media_type="application/json")
