"""`POST`/`GET /v1/sigfox/{device_type}`: Sigfox DATA callbacks (UPLINK, BIDIR, ADVANCED) in.

    request ─► api.callbacks (shape) ─► ingest.validate (the ladder) ─┬─► publish QoS 1 ─► 204
                                                                      │   (BIDIR: downlink 200)
                                                                      └─► rejected point ─► 400

An accepted callback is answered only once the broker sent PUBACK for it on
`<prefix>/<type>/<device>`; from there ingest merges, counts, decodes and stores it like any
uplink. A refused one is written to `rejected` here, the same point ingest writes, stamped by
the process's one `ingest.points.RejectStamper` (so two refused at one ns are two points),
since it never reaches the broker; this needs the API's InfluxDB account to have write access.
Every answer comes within `ANSWER_BUDGET` (Sigfox waits 10 s and retries after 1, 2 and 4
minutes on a timeout or an error code).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter

from api import callbacks
from api.broker import BrokerUnavailable
from api.deps import CallbackAuthDep
from api.downlinks import StoreError
from api.problems import ApiError, problem_doc, problem_response
from api.publisher import Publisher
from api.routes.downlinks import announce, store_of
from influx.errors import WriteError
from influx.writer import InfluxWriter
from ingest.points import RejectStamper
from ingest.validate import Accepted, Rejection, validate
from sigfox.envelope import MAX_BODY_BYTES
from sigfox.limits import DEVICE_ID_RE
from sigfox.topics import uplink_topic

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["sigfox"])

# Every answer within 5 s (DESIGN section 11); half a second is left for the downlink take
# and for uvicorn to write the answer.
ANSWER_BUDGET = 4.5
TAKE_RESERVE = 0.5
# Sigfox retries after 1, 2 and 4 minutes whatever we say; other clients get a useful hint.
RETRY_AFTER_SECONDS = 60
# A device id that stands in the topic when the body has none or a bad one: the ladder then
# fails at the envelope (step 5) and names the body's `device`, as ingest would.
PLACEHOLDER_DEVICE = "0"


class CallbackMetrics:
    """Callbacks answered, by outcome, and refused ones by reason, in the API's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.callbacks = Counter(
            "telemetry_api_callbacks",
            "Sigfox callbacks answered, by outcome",
            ("outcome",),
            registry=registry,
        )
        self.rejected = Counter(
            "telemetry_api_callbacks_rejected",
            "Sigfox callbacks refused by the validation ladder, by reason",
            ("reason",),
            registry=registry,
        )


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": 'BIDIR: the downlink, `{"<device>": {"downlinkData": "<16 hex>"}}`'},
    204: {"description": "Accepted by the broker (and, for BIDIR, no downlink queued)"},
    400: problem_doc(
        400, "The body is refused (`reason` names the ladder's step); kept in `rejected`"
    ),
    401: problem_doc(401, "Missing or wrong key (Bearer, or Basic with the key as password)"),
    403: problem_doc(403, "The key is not from TELEMETRY_CALLBACK_KEYS"),
    413: problem_doc(413, "Body or query string over 1 KiB"),
    429: problem_doc(429, "Too many wrong keys from this client; see `Retry-After`"),
    503: problem_doc(
        503, "Broker (or, for a refused body, InfluxDB) unavailable; see `Retry-After`"
    ),
}


def _unavailable(detail: str) -> ApiError:
    return ApiError(
        503,
        "broker-unavailable",
        "Service unavailable",
        detail,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


TypePath = Annotated[
    str, Path(max_length=64, description="A catalogue type name", examples=["wristband"])
]
_ROUTE = {
    "status_code": 204,
    "response_class": Response,
    "dependencies": [CallbackAuthDep],
    "responses": _RESPONSES,
}


@router.post("/sigfox/{device_type}", **_ROUTE)  # type: ignore[arg-type]  # the shared options
async def sigfox_callback_post(device_type: TypePath, request: Request) -> Response:
    """A Sigfox DATA callback (UPLINK, BIDIR, ADVANCED) as JSON or form body."""
    return await sigfox_callback(device_type, request)


@router.get("/sigfox/{device_type}", **_ROUTE)  # type: ignore[arg-type]  # the shared options
async def sigfox_callback_get(device_type: TypePath, request: Request) -> Response:
    """A Sigfox DATA callback with its values in the query string."""
    return await sigfox_callback(device_type, request)


async def sigfox_callback(device_type: str, request: Request) -> Response:
    """Shape, validate, then publish or keep; see the module docstring."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANSWER_BUDGET
    app = request.app
    metrics: CallbackMetrics = app.state.callback_metrics
    settings = app.state.settings
    raw, cb = await _read(request)
    # DEVICE_ID_RE ends in \Z: no empty id, no trailing newline
    device = cb.device.upper() if cb and cb.device and DEVICE_ID_RE.match(cb.device) else None
    topic = uplink_topic(settings.mqtt_topic_prefix, device_type, device or PLACEHOLDER_DEVICE)
    # What `rejected` shows as the topic: the one it would have gone to, the device level left
    # empty when the body names no usable device (not the placeholder).
    kept_topic = topic if device else f"{settings.mqtt_topic_prefix}/{device_type}/"
    if cb is None:
        detail = f"{len(raw)} bytes, limit {MAX_BODY_BYTES}"
        await _keep(request, "too_large", None, kept_topic, raw, detail, deadline)
        metrics.callbacks.labels("too_large").inc()
        return problem_response(
            413,
            "too-large",
            "Callback too large",
            f"a callback may be at most {MAX_BODY_BYTES} bytes; this one has {len(raw)}",
        )
    result = validate(
        topic,
        cb.body,
        catalogue=app.state.catalogue,
        prefix=settings.mqtt_topic_prefix,
        now=time.time(),
        future_tolerance=settings.ingest_future_tolerance,
    )
    if not isinstance(result, Accepted):
        await _keep(request, result.reason, device, kept_topic, cb.body, result.detail, deadline)
        return _refused(metrics, device_type, result)
    publisher: Publisher = app.state.publisher
    try:
        await publisher.publish(topic, cb.body, deadline - TAKE_RESERVE - loop.time())
    except BrokerUnavailable as exc:
        metrics.callbacks.labels("unavailable").inc()
        log.warning("callback for %s not accepted: %s", result.device, exc)
        raise _unavailable(
            f"the message broker did not take the uplink ({exc}); retry later"
        ) from exc
    if not cb.ack:
        metrics.callbacks.labels("accepted").inc()
        return Response(status_code=204)
    return await _bidir(request, result, metrics, deadline - loop.time())


def _refused(metrics: CallbackMetrics, device_type: str, result: Rejection) -> Response:
    """The answer to a callback the ladder refused (and that is now kept in `rejected`)."""
    metrics.callbacks.labels("rejected").inc()
    metrics.rejected.labels(result.reason).inc()
    log.info("callback for %r refused: %s: %s", device_type[:64], result.reason, result.detail)
    return problem_response(
        413 if result.reason == "too_large" else 400,
        "rejected-uplink",
        "Uplink refused",
        f"{result.reason}: {result.detail}",
        extra={"reason": result.reason},
    )


async def _bidir(
    request: Request, acc: Accepted, metrics: CallbackMetrics, budget: float
) -> Response:
    """The answer to a BIDIR callback whose uplink the broker took: the downlink, or 204."""
    store = store_of(request)
    try:
        item = await asyncio.to_thread(
            store.take, acc.device, acc.uplink.seqNumber, acc.dtype.name, None, max(0.05, budget)
        )
    except StoreError as exc:
        # The uplink is in: a 5xx would only make Sigfox send it again, too late for a downlink.
        log.error("no downlink for %s: %s", acc.device, exc)  # noqa: TRY400  # one line
        item = None
    if item is None:
        metrics.callbacks.labels("accepted").inc()
        return Response(status_code=204)
    metrics.callbacks.labels("downlink").inc()
    log.info("downlink %s sent to %s with uplink %d", item.id, acc.device, acc.uplink.seqNumber)
    # The event must not hold up the answer: Sigfox relays the downlink only within its wait.
    task = asyncio.create_task(announce(request, item))
    pending: set[asyncio.Task[None]] = request.app.state.background
    pending.add(task)
    task.add_done_callback(pending.discard)
    return JSONResponse({acc.device: {"downlinkData": item.data}})


async def _read(request: Request) -> tuple[bytes, callbacks.Callback | None]:
    """The request's bytes (query string or body) and its callback; None when over 1 KiB."""
    if request.method == "GET":
        raw = request.url.query.encode()
        return raw, None if len(raw) > MAX_BODY_BYTES else callbacks.from_query(request.url.query)
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return raw, None
    return raw, callbacks.from_request(request.headers.get("content-type", ""), raw)


async def _keep(  # noqa: PLR0917  # one record's fields
    request: Request,
    reason: str,
    device: str | None,
    topic: str,
    body: bytes,
    detail: str,
    deadline: float,
) -> None:
    """Write the refused callback to `rejected`; 503 when InfluxDB does not take it in time."""
    writer: InfluxWriter = request.app.state.influx_writer
    stamper: RejectStamper = request.app.state.reject_stamper
    _, (_, line) = stamper.record(reason, device, topic, body, detail, time.time_ns())
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        async with asyncio.timeout(remaining):
            refused = await writer.write([line])
    except (WriteError, TimeoutError) as exc:
        log.warning("refused callback (%s) not kept, InfluxDB: %s", reason, exc or "timeout")
        raise ApiError(
            503,
            "storage-unavailable",
            "Storage unavailable",
            f"the callback is refused ({reason}: {detail}) and InfluxDB did not keep it; "
            "retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from exc
    if refused:
        log.error("InfluxDB refused a rejected point: %s", refused[0].message)
