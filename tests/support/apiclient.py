"""The API app in-process (lifespan run, real InfluxDB behind it) for API tests and the bench."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from api.app import create_app
from catalogue import load_catalogue
from telemetry.settings import Settings

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def api_settings(influx_url: str, database: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "influx_url": influx_url,
        "influx_database": database,
        "api_keys": [API_KEY],
        "influx_timeout": 10.0,
        # one queue for the test run, outside the repository
        "downlink_db": Path(tempfile.gettempdir()) / f"telemetry-tests-{os.getpid()}.sqlite3",
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


@asynccontextmanager
async def api_client(
    influx_url: str, database: str, *, auth: bool = True, **overrides: object
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired to the app through ASGI, with the app's lifespan running."""
    settings = api_settings(influx_url, database, **overrides)
    app = create_app(settings, load_catalogue(settings.catalogue_dir))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://api.test",
            headers=AUTH if auth else {},
            timeout=60,
        ) as client:
            yield client
