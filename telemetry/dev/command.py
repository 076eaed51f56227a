"""`telemetry dev`: the command, which starts the servers, then the children, then waits.

The order and what each step writes where are in the package docstring (telemetry/dev/).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from telemetry.dev.plan import (
    DEFAULT_DATA_DIR,
    FIRST_BACKFILL,
    INFLUX_PORT,
    METRICS_PORT,
    MQTT_PORT,
    Plan,
    api_key,
    backfill_days,
    child_env,
    port_or_free,
)
from telemetry.dev.stack import Child, Stack, http_ok, log_has, telemetry_argv
from telemetry.errors import StartupError
from telemetry.options import devices_option, seed_option, speed_option
from telemetry.runtime import clean_errors, start, stop_on_signals
from telemetry.servers import Influxd, Mosquitto, find_binary
from telemetry.settings import Settings

STOP_GRACE = 5.0  # seconds beyond a child's own shutdown timeout before SIGKILL
SIMULATE_DRAIN = 15.0  # simulators wait this long for the last PUBACKs (simulators.command)


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Where the servers keep their data, the logs and the API key.",
)
@click.option("--mqtt-port", type=click.IntRange(1, 65535), default=MQTT_PORT, show_default=True)
@click.option(
    "--influx-port", type=click.IntRange(1, 65535), default=INFLUX_PORT, show_default=True
)
@click.option(
    "--api-port", type=click.IntRange(1, 65535), default=None, help="[TELEMETRY_API_PORT; 8000]"
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=METRICS_PORT,
    show_default=True,
    help="The ingester's Prometheus metrics.",
)
@click.option("--no-simulate", is_flag=True, help="Start no simulators (bring your own devices).")
@devices_option(most=1000, default=3, help="Per type.")
@speed_option(default=60.0, help="Simulated time runs this many times faster.")
@click.option(
    "--backfill",
    default=None,
    help=f"History to publish first (e.g. 2d) [{FIRST_BACKFILL} on a new data folder, else none].",
)
@seed_option(help="Simulators' seed.")
@clean_errors
def dev(
    *,
    data_dir: Path,
    mqtt_port: int,
    influx_port: int,
    api_port: int | None,
    metrics_port: int,
    no_simulate: bool,
    devices: int,
    speed: float,
    backfill: str | None,
    seed: int,
) -> None:
    """Run mosquitto, influxd, ingest, the API and simulators here; Ctrl-C stops them all."""
    settings, _ = start(api_port=api_port)
    # Found before anything starts, so a missing server is one line and nothing to clean up.
    find_binary("mosquitto")
    find_binary("influxd")
    history_days = backfill_days(data_dir, backfill, no_simulate)

    stop = threading.Event()
    previous = stop_on_signals(stop)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        plan = Plan(
            data_dir=data_dir,
            key=api_key(data_dir),
            ports={
                "mqtt": port_or_free(mqtt_port, "MQTT"),
                "influx": port_or_free(influx_port, "InfluxDB"),
                "api": port_or_free(settings.api_port, "the API"),
                "metrics": port_or_free(metrics_port, "ingest metrics"),
            },
            simulate=not no_simulate,
            devices=devices,
            speed=speed,
            seed=seed,
            backfill_days=history_days,
            callback_key=api_key(data_dir, "callback-key"),
        )
        with Stack(stop) as stack:
            failed = _run(stack, settings, plan)
        click.echo("telemetry dev: stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        sys.exit(1)


def _run(stack: Stack, settings: Settings, plan: Plan) -> bool:
    """Start everything, then watch the children until a signal; True when a child failed."""
    broker = Mosquitto(plan.data_dir / "mosquitto", plan.ports["mqtt"])
    broker.start()
    stack.on_exit(broker.stop)
    influx = Influxd(plan.data_dir / "influxd", plan.ports["influx"])
    influx.start()
    stack.on_exit(influx.stop)
    influx.create_database(settings.influx_database)

    env = child_env(
        settings,
        plan.data_dir,
        plan.key,
        plan.ports,
        plan.backfill_days,
        callback_key=plan.callback_key,
    )
    logs = plan.data_dir / "logs"
    grace = settings.ingest_shutdown_timeout + STOP_GRACE
    ingest = Child("ingest", telemetry_argv("ingest"), env, logs / "ingest.log")
    api = Child("api", telemetry_argv("api"), env, logs / "api.log")
    base = f"http://127.0.0.1:{plan.ports['api']}"
    try:
        stack.run_child(ingest, grace)
        # Simulators publish only once ingest holds its subscription, or the first uplinks
        # would reach no subscriber and be lost.
        if not stack.wait_until("ingest", lambda: log_has(ingest, "subscribed to"), [ingest]):
            return False
        stack.run_child(api, grace)
        if not stack.wait_until("the API", lambda: http_ok(f"{base}/healthz"), [ingest, api]):
            return False
        watched = [ingest, api]
        if plan.simulate:
            sim = Child("simulate", _simulate_argv(plan), env, logs / "simulate.log")
            stack.run_child(sim, SIMULATE_DRAIN + STOP_GRACE)
            watched.append(sim)
            (plan.data_dir / "backfilled").touch()
        _banner(base, plan, settings)
        while not stack.stop.is_set():
            stack.check(watched)
            stack.stop.wait(0.5)
    except StartupError as exc:
        click.echo(f"telemetry dev: {exc}", err=True)
        click.echo("telemetry dev: stopping the rest", err=True)
        return True
    click.echo("telemetry dev: stopping")
    return False


def _simulate_argv(plan: Plan) -> list[str]:
    argv = [
        *telemetry_argv("simulate"),
        *("--devices", str(plan.devices), "--speed", f"{plan.speed:g}"),
        *("--seed", str(plan.seed), "--broker-wait", "10"),
    ]
    if plan.backfill_days:
        argv += ["--backfill", f"{plan.backfill_days * 86400:.0f}s"]
    return argv


def _banner(base: str, plan: Plan, settings: Settings) -> None:
    sim = "off"
    if plan.simulate:
        sim = f"{plan.devices} of each type at {plan.speed:g}x"
        if plan.backfill_days:
            sim += f", after {plan.backfill_days:g} days of history"
    click.echo(
        "\n".join(
            [
                # The page first: the one line a newcomer needs (the key rides in the
                # fragment, which the browser never sends; the page moves it to session storage).
                f"telemetry dev: open {base}/#key={plan.key}",
                "telemetry dev: running; Ctrl-C stops everything",
                f"  page:     {base}/  (kiosk: {base}/?kiosk=1#key={plan.key})",
                f"  API:      {base}/v1/devices",
                f"  docs:     {base}/docs",
                f"  API key:  {plan.key}  (reads; also queues downlinks)",
                f"  Sigfox callbacks: {base}/v1/sigfox/<type>  "
                f"(Authorization: Bearer {plan.callback_key})",
                f"  MQTT:     mqtt://127.0.0.1:{plan.ports['mqtt']}  "
                f"(topic {settings.mqtt_topic_prefix}/<type>/<device>)",
                f"  InfluxDB: http://127.0.0.1:{plan.ports['influx']}  "
                f"(database {settings.influx_database})",
                f"  simulators: {sim}",
                f"  data and logs: {plan.data_dir}",
                f"  try: curl -H 'Authorization: Bearer {plan.key}' {base}/v1/devices",
            ]
        )
    )
