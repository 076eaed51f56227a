"""`telemetry api`: the API under uvicorn."""

from __future__ import annotations

import click
import uvicorn

from api.app import create_app
from telemetry.runtime import clean_errors, start

REQUESTS_MAX = 100  # concurrent requests other than streams (RELIABILITY.md, API baseline)
GRACEFUL_SHUTDOWN = 5  # s for requests still running after SIGTERM


@click.command()
@click.option("--host", default=None, help="Listen address [env TELEMETRY_API_HOST; 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Listen port [env TELEMETRY_API_PORT; 8000]")
@clean_errors
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API (DESIGN section 4)."""
    settings, catalogue = start(api_host=host, api_port=port)
    app = create_app(settings, catalogue)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep our one-line log format (telemetry.runtime.setup_logging)
        # Bounded work per process, short idle keep-alive (RELIABILITY.md, API baseline);
        # open streams hold a connection each, on top of that (their own limit, api/eventbus).
        limit_concurrency=REQUESTS_MAX + settings.api_stream_clients_max,
        timeout_keep_alive=5,
        server_header=False,
        # A backstop: streams end on `should_exit` (api/eventbus.py `watch_exit`) at once.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = uvicorn.Server(config)
    # uvicorn waits for open connections before the lifespan's shutdown: the app ends its
    # streams when it sees this flag.
    app.state.should_exit = lambda: server.should_exit
    server.run()
