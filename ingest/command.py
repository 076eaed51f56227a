"""`telemetry ingest`: the ingester as a command, with signal handling."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import click

from ingest.metrics import Metrics
from ingest.service import run
from telemetry.errors import StartupError
from telemetry.runtime import clean_errors, start

log = logging.getLogger(__name__)


@click.command()
@click.option("--mqtt-url", help="Broker URL, mqtt://user:pass@host:1883 (TELEMETRY_MQTT_URL).")
@click.option("--influx-url", help="InfluxDB URL (TELEMETRY_INFLUX_URL).")
@click.option("--database", "influx_database", help="Database (TELEMETRY_INFLUX_DATABASE).")
@click.option("--metrics-port", "ingest_metrics_port", type=int, help="0 turns metrics off.")
@click.option(
    "--share-group",
    "mqtt_share_group",
    metavar="NAME",
    help="Share the stream with other ingesters: subscribe to $share/NAME/<prefix>/+/+ "
    "(TELEMETRY_MQTT_SHARE_GROUP).",
)
@clean_errors
def ingest(**flags: object) -> None:
    """Read uplinks from MQTT and store them in InfluxDB, at least once."""
    settings, catalogue = start(**flags)
    metrics = Metrics()
    try:
        metrics.serve(settings.ingest_metrics_host, settings.ingest_metrics_port)
    except OSError as exc:
        raise StartupError(
            f"cannot serve metrics on {settings.ingest_metrics_host}:"
            f"{settings.ingest_metrics_port}: {exc.strerror or exc} (another `telemetry ingest`?);"
            " set TELEMETRY_INGEST_METRICS_PORT to a free port, or 0 to turn metrics off"
        ) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            if stop.is_set():  # the second signal: leave now, the broker keeps the unacked
                log.warning("second signal, exiting at once")
                os._exit(128 + signum)
            log.info("signal %d received", signum)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        log.info(
            "ingest starting: MQTT %s:%d, InfluxDB %s database %r, metrics %s",
            settings.mqtt.host,
            settings.mqtt.port,
            settings.influx_url,
            settings.influx_database,
            f"{settings.ingest_metrics_host}:{settings.ingest_metrics_port}"
            if settings.ingest_metrics_port
            else "off",
        )
        await run(settings, catalogue, stop, metrics, tune_gc=True)

    asyncio.run(main())
