"""The FastAPI app from a factory: settings and catalogue in, InfluxDB client in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api import problems
from api.authlimit import FailedAuthLimiter
from api.eventbus import EventBus, Hub, stop_task, watch_exit
from api.lookup import TypeMemo
from api.losscache import LossCache
from api.middleware import ApiMetrics, BodyLimitMiddleware, MetricsMiddleware
from api.routes import device_types, devices, health, history, stream
from catalogue import Catalogue
from influx.connection import async_client
from influx.reader import Reader
from telemetry.runtime import StartupError
from telemetry.settings import Settings

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("sigfox-telemetry")
    except PackageNotFoundError:
        return "0"


def api_keys(settings: Settings) -> list[bytes] | None:
    """The keys to accept; None when auth is disabled. No keys and auth on: refuse to start."""
    if settings.api_auth == "disabled":
        log.warning("API authentication is disabled (TELEMETRY_API_AUTH=disabled)")
        return None
    keys = [k.get_secret_value().encode() for k in settings.api_keys]
    if not keys:
        raise StartupError(
            "no API keys: set TELEMETRY_API_KEYS=<key>[,<key>...] "
            "(or TELEMETRY_API_AUTH=disabled for a closed network)"
        )
    return keys


def create_app(settings: Settings, catalogue: Catalogue) -> FastAPI:
    """The API app. The InfluxDB client lives as long as the app's lifespan."""
    keys = api_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with async_client(settings) as client:
            app.state.reader = Reader(
                client, settings.influx_database, bind_params=settings.influx_bind_params
            )
            # DESIGN 9: one subscription to the events for the process, whatever the clients.
            hub = app.state.hub = Hub(app.state.metrics.registry)
            bus = app.state.eventbus = EventBus(settings, hub)
            tasks = [asyncio.create_task(bus.run())]
            should_exit = getattr(app.state, "should_exit", None)  # set by `telemetry api`
            if should_exit is not None:
                tasks.append(asyncio.create_task(watch_exit(should_exit, hub)))
            try:
                yield
            finally:
                hub.close_all()
                for task in reversed(tasks):
                    await stop_task(task)

    app = FastAPI(
        title="Sigfox telemetry API",
        version=_version(),
        description="Devices, decoded history and raw uplinks stored in InfluxDB. "
        "Errors are RFC 9457 problem details (`application/problem+json`) naming the parameter "
        "at fault. Send `Authorization: Bearer <key>` (keys from TELEMETRY_API_KEYS) to `/v1` "
        "and `/metrics`; `/healthz` and `/readyz` are open. Pages: pass the `next` of a page as "
        "`cursor`, with the same other parameters.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.catalogue = catalogue
    app.state.api_keys = keys
    app.state.auth_limiter = FailedAuthLimiter(settings.api_auth_failures_per_minute)
    app.state.type_memo = TypeMemo()
    app.state.loss_cache = LossCache()
    app.state.metrics = ApiMetrics()
    problems.install(app)
    app.add_exception_handler(Exception, _unexpected)
    for module in (device_types, devices, history, health, stream):
        app.include_router(module.router)
    # Added last = outermost: metrics see every answer, 413s included.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %r", request.method, request.url.path)
    return problems.problem_response(
        500, "internal", "Internal error", "the server failed; this is a bug and was logged"
    )
