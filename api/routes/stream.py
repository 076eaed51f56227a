"""`GET /v1/stream`: server-sent events (DESIGN section 9), filtered, with tail and resume."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.deps import AuthDep, CatalogueDep, SettingsDep
from api.eventparse import KINDS
from api.hub import Filter, Hub, Subscription
from api.params import parse_device
from api.problems import COMMON_ERRORS, ApiError, bad_parameter

router = APIRouter(prefix="/v1", tags=["stream"], dependencies=[AuthDep])

TAIL_MAX = 1000  # DESIGN 9
# s an awake stream waits for more events: well inside DESIGN 9's 1 s. A write costs ~55 µs
# whatever its size (measured with py-spy under the stream bench: uvicorn's send, mostly the
# socket's), so 100 clients writing every 50 ms took more of the API's CPU than reading the
# broker did; every 100 ms halves that.
COALESCE = 0.1
OPENED = b": stream open\n\n"  # sent at once, so a client knows it is subscribed
KEEPALIVE = b": keep-alive\n\n"
OVERFLOW = b'event: overflow\ndata: {"detail":"this client fell too far behind"}\n\n'


def _comma_list(raw: str | None) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    return [part.strip() for part in raw.split(",") if part.strip()] or None


def parse_filter(
    kinds: str | None, types: str | None, devices: str | None, known_types: list[str]
) -> Filter:
    """The stream's filter from its query parameters; 400 naming the one at fault."""
    wanted = _comma_list(kinds)
    for kind in wanted or ():
        if kind not in KINDS:
            raise bad_parameter(
                "events", f"{kind[:40]!r} is not an event kind; known: {', '.join(KINDS)}"
            )
    type_list = _comma_list(types)
    for name in type_list or ():
        if name not in known_types:
            raise bad_parameter(
                "type", f"{name[:40]!r} is not a device type; known: {', '.join(known_types)}"
            )
    device_list = _comma_list(devices)
    return Filter(
        kinds=frozenset(wanted) if wanted else frozenset(KINDS),
        types=frozenset(type_list) if type_list else None,
        devices=frozenset(parse_device(d) for d in device_list) if device_list else None,
    )


def parse_last_event_id(raw: str | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not text.isdigit() or len(text) > 19:
        raise bad_parameter("Last-Event-ID", "Last-Event-ID must be the id of an event sent before")
    return int(text)


class EventStreamResponse(Response):
    """`text/event-stream` fed by one subscription; ends on disconnect, overflow or shutdown."""

    media_type = "text/event-stream"

    def __init__(self, hub: Hub, sub: Subscription, first: list[bytes], heartbeat: float) -> None:
        # Not Response's own headers: it would add `content-length: 0` to a body-less answer.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
        ]
        self.hub, self.sub, self.first, self.heartbeat = hub, sub, first, heartbeat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.sub
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            pump = asyncio.ensure_future(self._pump(send))
            listen = asyncio.ensure_future(_until_disconnect(receive))
            await asyncio.wait((pump, listen, sub.cut), return_when=asyncio.FIRST_COMPLETED)
            for task in (pump, listen):
                task.cancel()
            for task in (pump, listen):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
        finally:
            self.hub.unsubscribe(sub)

    async def _pump(self, send: Send) -> None:
        sub, hub = self.sub, self.hub
        await _body(send, b"".join([OPENED, *self.first]))
        self.first = []
        loop = asyncio.get_running_loop()
        quiet_until = loop.time() + self.heartbeat
        while True:
            frames, since = hub.take(sub)
            if frames:
                await _body(send, b"".join(frames))
                now = loop.time()  # time.monotonic(), as `since`
                hub.delay.observe(now - since)
                quiet_until = now + self.heartbeat
                continue
            if sub.overflowed:
                await _body(send, OVERFLOW, more=False)
                return
            if sub.closed:
                await _body(send, b"", more=False)
                return
            hub.sleep(sub)
            try:
                async with asyncio.timeout(max(0.0, quiet_until - loop.time())):
                    await sub.ready.wait()
            except TimeoutError:
                await _body(send, KEEPALIVE)
                quiet_until = loop.time() + self.heartbeat
                continue
            finally:
                hub.sleepers.discard(sub)
            # Let a few more events come and send them as one write: a write costs the same
            # for one event or fifty (uvicorn, the middleware), and with 100 clients at 1,000
            # events/s, one write per event per client took more than the whole CPU. Not
            # longer than half the backlog takes to fill (the hub sets `urgent` then), or a
            # burst would overflow it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COALESCE):
                    await sub.urgent.wait()


async def _body(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "Events as `event:`, `id:` and `data:` lines (JSON), comment lines "
        "every 15 s, `event: overflow` before the end for a client too far behind.",
    },
    503: {"description": "Too many stream clients on this process: retry later"},
}


@router.get(
    "/stream",
    response_class=Response,  # documented by STREAM_DOC
    responses=COMMON_ERRORS | STREAM_DOC,
)
async def stream(
    *,
    request: Request,
    catalogue: CatalogueDep,
    settings: SettingsDep,
    type: Annotated[  # the public parameter names of DESIGN section 9
        str | None, Query(description="Only these device types (comma list)", max_length=1024)
    ] = None,
    device: Annotated[
        str | None, Query(description="Only these devices (comma list)", max_length=4096)
    ] = None,
    events: Annotated[
        str | None,
        Query(description=f"Only these kinds (comma list of {', '.join(KINDS)})", max_length=256),
    ] = None,
    tail: Annotated[
        int, Query(ge=0, le=TAIL_MAX, description="Send the last N matching events first")
    ] = 0,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Resume after this event", max_length=64),
    ] = None,
) -> Response:
    """Events as they happen: `up`, `status`, `rejected`, `downlink` (DESIGN section 9)."""
    flt = parse_filter(events, type, device, catalogue.names())
    after = parse_last_event_id(last_event_id)
    hub: Hub = request.app.state.hub
    if len(hub.subscriptions) >= settings.api_stream_clients_max:
        raise ApiError(
            503,
            "too-many-streams",
            "Too many stream clients",
            f"this API process serves at most {settings.api_stream_clients_max} streams",
            headers={"Retry-After": "5"},
        )
    sub, first = hub.subscribe(flt, settings.api_stream_backlog, tail=tail, after=after)
    return EventStreamResponse(hub, sub, first, settings.api_stream_heartbeat)
