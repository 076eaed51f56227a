"""The FastAPI app from a factory: settings and catalogue in, InfluxDB client in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api import problems
from api.auth import keys_from
from api.authlimit import FailedAuthLimiter
from api.downlinks import DownlinkStore, StoreError
from api.eventbus import EventBus, watch_exit, watch_loop
from api.hub import Hub
from api.losscache import LossCache
from api.middleware import ApiMetrics, BodyLimitMiddleware, MetricsMiddleware
from api.publisher import Publisher, publishing
from api.routes import (
    device_types,
    devices,
    health,
    history,
    page,
    sigfox,
    snapshot,
    status,
    stream,
)
from api.routes import downlinks as downlink_routes
from api.routes.sigfox import CallbackMetrics
from api.statuscache import StatusCache, running
from api.tasks import stop_task
from api.typememo import TypeMemo
from catalogue import Catalogue
from influx.client import InfluxClient
from influx.connection import async_client
from influx.writer import InfluxWriter
from ingest.points import RejectStamper
from telemetry.errors import StartupError
from telemetry.settings import Settings

log = logging.getLogger(__name__)


ROUTERS = (
    device_types,
    devices,
    snapshot,
    history,
    status,
    health,
    stream,
    sigfox,
    downlink_routes,
)


def _version() -> str:
    try:
        return version("sigfox-telemetry")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings, catalogue: Catalogue) -> FastAPI:
    """The API app. The InfluxDB client lives as long as the app's lifespan."""
    keys = keys_from(settings)
    try:
        downlinks = DownlinkStore(settings.downlink_db)
    except StoreError as exc:
        raise StartupError(f"{exc} (set TELEMETRY_DOWNLINK_DB)") from None
    app = FastAPI(
        title="Sigfox telemetry API",
        version=_version(),
        description="Devices, decoded history and raw uplinks stored in InfluxDB. "
        "Errors are RFC 9457 problem details (`application/problem+json`) naming the parameter "
        "at fault. Send `Authorization: Bearer <key>` (keys from TELEMETRY_API_KEYS) to `/v1` "
        "and `/metrics`; `/healthz` and `/readyz` are open. Pages: pass the `next` of a page as "
        "`cursor`, with the same other parameters.",
        lifespan=_lifespan(settings, catalogue),
        # Served by api.routes.page from the package's own files, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    state = app.state
    state.settings = settings
    state.catalogue = catalogue
    state.keys = keys
    state.publisher = Publisher(settings)
    state.downlinks = downlinks
    state.background = set()  # tasks that must not be garbage-collected while running
    state.auth_limiter = FailedAuthLimiter(settings.api_auth_failures_per_minute)
    state.type_memo = TypeMemo()
    state.loss_cache = LossCache()
    state.metrics = ApiMetrics()
    state.callback_metrics = CallbackMetrics(state.metrics.registry)
    # One per process, as ingest has one per ingester: no two refused callbacks share a point.
    state.reject_stamper = RejectStamper()
    _install(app)
    return app


def _install(app: FastAPI) -> None:
    """Error handlers, routers, the page, then the middleware (the last added is outermost)."""
    problems.install(app)
    app.add_exception_handler(Exception, _unexpected)
    for module in ROUTERS:
        app.include_router(module.router)
    page.install(app)
    # Added last = outermost: metrics see every answer, 413s included.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)


def _lifespan(
    settings: Settings, catalogue: Catalogue
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """What runs while the app serves: InfluxDB client, status poller, publisher, event bus."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with async_client(settings) as client:
            app.state.reader = InfluxClient(
                client, settings.influx_database, bind_params=settings.influx_bind_params
            )
            app.state.influx_writer = InfluxWriter(client, settings.influx_database)
            # every device's status, polled in the background (api/statuscache.py)
            status_cache = StatusCache(
                catalogue,
                app.state.reader,
                app.state.metrics.set_fleet,
                poll_seconds=settings.status_poll_seconds,
                backstop_seconds=settings.status_backstop_seconds,
            )
            # DESIGN 9: one subscription to the events for the process, whatever the clients;
            # its `up` events are also the status cache's readings.
            hub = app.state.hub = Hub(
                app.state.metrics.registry,
                uplink_prefix=settings.mqtt_topic_prefix,
                on_up=status_cache.observe,
            )
            bus = app.state.eventbus = EventBus(settings, hub)
            status_cache.follow(lambda: bus.link.subscription)
            async with running(status_cache) as cache, publishing(app.state.publisher):
                app.state.status = cache
                tasks = [asyncio.create_task(bus.run()), asyncio.create_task(watch_loop(hub))]
                should_exit = getattr(app.state, "should_exit", None)  # set by `telemetry api`
                if should_exit is not None:
                    tasks.append(asyncio.create_task(watch_exit(should_exit, hub)))
                try:
                    yield
                finally:
                    hub.close_all()
                    for task in reversed(tasks):
                        await stop_task(task)

    return lifespan


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %r", request.method, request.url.path)
    return problems.problem_response(
        500, "internal", "Internal error", "the server failed; this is a bug and was logged"
    )
