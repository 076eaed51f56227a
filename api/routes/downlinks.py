"""`/v1/devices/{device}/downlinks`: queue (admin), list (read), cancel (admin); and their events.

Every state change (queued, sent, cancelled) is published at QoS 1 on
`<events_prefix>/<type>/<device>/downlink` as `{"id", "device", "type", "data", "status",
"time"}` (+ `"seq"` when sent), for the stream (DESIGN section 9). The change is made first: an
event the broker does not take is logged and not retried (the queue, not the event, is the
record; `GET` shows it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request, Response

from api.broker import BrokerUnavailable
from api.deps import AdminAuthDep, AuthDep, CatalogueDep, DeviceDep, ReaderDep
from api.downlinks import Downlink, DownlinkStore, StoreError
from api.models import DownlinkIn, DownlinkOut, Downlinks
from api.params import check_type
from api.problems import COMMON_ERRORS, ApiError, not_found, problem_doc
from api.publisher import Publisher
from api.typememo import device_type
from catalogue.times import NS, format_time

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["downlinks"])

T = TypeVar("T")

EVENT_TIMEOUT = 2.0  # s for the event's PUBACK; it never holds an answer longer
RETRY_AFTER_SECONDS = 5  # the downlink file was locked: another process held it for long

_ADMIN_ERRORS = COMMON_ERRORS | {
    403: problem_doc(403, "The key is not from TELEMETRY_ADMIN_KEYS"),
    404: problem_doc(404, "Unknown device or downlink"),
    409: problem_doc(409, "The downlink is no longer queued"),
}


def out(item: Downlink) -> DownlinkOut:
    return DownlinkOut(
        id=item.id,
        device=item.device,
        type=item.type,
        data=item.data,
        status=item.status,
        created=format_time(int(item.created * NS)),
        sent=format_time(int(item.sent * NS)) if item.sent is not None else None,
        seq=item.seq,
    )


def event_body(item: Downlink) -> bytes:
    body: dict[str, object] = {
        "id": item.id,
        "device": item.device,
        "type": item.type,
        "data": item.data,
        "status": item.status,
        "time": format_time(int(item.changed * NS)),
    }
    if item.status == "sent":
        body["seq"] = item.seq
    return json.dumps(body, separators=(",", ":")).encode()


async def announce(request: Request, item: Downlink) -> None:
    """Publish the state change of `item`; a failure is logged, never raised."""
    publisher: Publisher = request.app.state.publisher
    prefix = request.app.state.settings.mqtt_events_prefix
    topic = f"{prefix}/{item.type or 'unknown'}/{item.device}/downlink"
    try:
        await publisher.publish(topic, event_body(item), EVENT_TIMEOUT)
    except BrokerUnavailable as exc:
        log.warning("downlink %s %s: event not published: %s", item.id, item.status, exc)


def store_of(request: Request) -> DownlinkStore:
    store: DownlinkStore = request.app.state.downlinks
    return store


def store_unavailable(exc: StoreError) -> ApiError:
    log.error("%s", exc)
    return ApiError(
        503,
        "downlinks-unavailable",
        "Downlinks unavailable",
        "the downlink queue cannot be read or written now; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def in_store(request: Request, call: Callable[[DownlinkStore], T]) -> T:
    """`call(store)` in a thread (SQLite blocks); 503 when the store fails."""
    try:
        return await asyncio.to_thread(call, store_of(request))
    except StoreError as exc:
        raise store_unavailable(exc) from exc


# The two routes that change the queue: admin keys only, and the same errors.
_ADMIN_ROUTE: dict[str, Any] = {"dependencies": [AdminAuthDep], "responses": _ADMIN_ERRORS}


@router.post(
    "/devices/{device}/downlinks", status_code=201, response_model=DownlinkOut, **_ADMIN_ROUTE
)
async def queue_downlink(
    device: DeviceDep,
    downlink: DownlinkIn,
    request: Request,
    reader: ReaderDep,
    catalogue: CatalogueDep,
) -> DownlinkOut:
    """Queue 8 bytes for the device's next BIDIR callback (at most 4 go out a day)."""
    if downlink.type is not None:
        type_name = check_type(downlink.type, catalogue)
    else:
        type_name = await device_type(reader, request.app.state.type_memo, device)
    item = await in_store(request, lambda s: s.queue(device, downlink.data, type_name))
    log.info("downlink %s queued for %s", item.id, device)
    await announce(request, item)
    return out(item)


@router.get(
    "/devices/{device}/downlinks",
    response_model=Downlinks,
    dependencies=[AuthDep],
    responses=COMMON_ERRORS,
)
async def list_downlinks(device: DeviceDep, request: Request) -> Downlinks:
    """The device's downlinks, oldest first: queued, sent (with `sent`, `seq`) or cancelled."""
    items = await in_store(request, lambda s: s.list(device))
    return Downlinks(device=device, downlinks=[out(i) for i in items])


@router.delete(
    "/devices/{device}/downlinks/{downlink_id}",
    status_code=204,
    response_class=Response,
    **_ADMIN_ROUTE,
)
async def cancel_downlink(
    device: DeviceDep,
    downlink_id: Annotated[str, Path(max_length=64, description="The downlink's `id`")],
    request: Request,
) -> Response:
    """Cancel a queued downlink; one already sent or cancelled is a 409."""
    result = await in_store(request, lambda s: s.cancel(device, downlink_id))
    if result is None:
        raise not_found(f"no downlink {downlink_id[:64]!r} for device {device}", "downlink_id")
    if isinstance(result, str):
        raise ApiError(
            409,
            "conflict",
            "Not queued",
            f"the downlink is {result}, not queued",
            parameter="downlink_id",
        )
    log.info("downlink %s cancelled for %s", result.id, device)
    await announce(request, result)
    return Response(status_code=204)
