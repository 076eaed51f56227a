"""`telemetry api`: the API under uvicorn."""

from __future__ import annotations

import click
import uvicorn

from api.app import create_app
from telemetry.runtime import clean_errors, start


@click.command()
@click.option("--host", default=None, help="Listen address [env TELEMETRY_API_HOST; 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Listen port [env TELEMETRY_API_PORT; 8000]")
@clean_errors
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API (DESIGN section 4)."""
    settings, catalogue = start(api_host=host, api_port=port)
    app = create_app(settings, catalogue)
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our one-line log format (telemetry.runtime.setup_logging)
        # Bounded work per process, short idle keep-alive (RELIABILITY.md, API baseline).
        limit_concurrency=100,
        timeout_keep_alive=5,
        server_header=False,
    )
