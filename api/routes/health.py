"""`/healthz` (the process answers), `/readyz` (InfluxDB answers /ping) and `/metrics`.

`/healthz` and `/readyz` are open, for orchestrators. `/metrics` needs an API key like `/v1`:
its route and status counts describe usage, and Prometheus sends a bearer token with
`authorization: {credentials: <key>}` in its scrape config.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import AuthDep, ReaderDep
from api.models import Health
from api.problems import COMMON_ERRORS, RETRY_AFTER_SECONDS, problem_doc, problem_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process serves requests."""
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, responses={503: problem_doc(503, "InfluxDB unreachable")}
)
async def readyz(reader: ReaderDep) -> Response | Health:
    """Readiness: InfluxDB answers `/ping`."""
    if await reader.ping():
        return Health(status="ready")
    return problem_response(
        503,
        "storage-unavailable",
        "Storage unavailable",
        "InfluxDB does not answer /ping",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@router.get(
    "/metrics",
    dependencies=[AuthDep],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        401: COMMON_ERRORS[401],
        429: COMMON_ERRORS[429],
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latencies and errors by route (needs an API key)."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
