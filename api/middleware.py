"""Pure ASGI middleware: Prometheus request metrics, and the request body limit."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE

# A GET-only API needs no body; 16 KiB leaves room for clients that send small ones anyway
# (RELIABILITY.md, "Facts the code relies on", API baseline).
MAX_BODY_BYTES = 16_384
# Request latency buckets, seconds: the API answers in milliseconds unless InfluxDB is slow.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The API's metrics, in a registry of their own (one per app, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "telemetry_api_requests",
            "HTTP requests answered, by route template, method and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "telemetry_api_request_duration_seconds",
            "Time to answer a request, by route template",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "telemetry_api_errors",
            "Answers with status 4xx or 5xx, by route template and status",
            ("route", "status"),
            registry=self.registry,
        )
        self.status_devices = Gauge(
            "telemetry_api_status_devices",
            "Devices per type and state (online, late, offline), as the API last polled them",
            ("type", "state"),
            registry=self.registry,
        )
        self.active_alarms = Gauge(
            "telemetry_api_active_alarms",
            "Active alarms per type and kind (offline, battery_low)",
            ("type", "kind"),
            registry=self.registry,
        )

    def set_fleet(self, fleet: list[dict[str, Any]]) -> None:
        """The status cache's per-type counts after each poll (see `StatusCache.fleet`)."""
        for entry in fleet:
            for state, n in entry["states"].items():
                self.status_devices.labels(entry["type"], state).set(n)
            for kind, n in entry["alarms"].items():
                self.active_alarms.labels(entry["type"], kind).set(n)


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by route template, never the raw path."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            if status >= 400:
                self.metrics.errors.labels(route, str(status)).inc()


class BodyLimitMiddleware:
    """Answers 413 to a body over the limit, by Content-Length or while it streams in."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True  # an unparseable length is refused, not guessed at
                if too_big:
                    await _too_large(send, self.limit)
                    return
        if any(name == b"transfer-encoding" for name, _ in scope["headers"]):
            # A streamed body of unknown length: read it here, since GET routes never do,
            # and refuse it as soon as it passes the limit.
            buffered = await _read_limited(receive, self.limit)
            if buffered is None:
                await _too_large(send, self.limit)
                return
            receive = _replay(buffered, receive)
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _read_limited(receive: Receive, limit: int) -> list[Message] | None:
    """The request's body messages, or None once they pass `limit` bytes."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives back the buffered messages first, then the live channel."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": PROBLEM_BASE + "too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"this API takes no request body over {limit} bytes",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
