"""`telemetry dev`: the whole stack on one machine, without Docker, stopped cleanly by Ctrl-C.

Starts, in this order, and stops in the reverse order:

| step      | what                                   | where                          |
| --------- | -------------------------------------- | ------------------------------ |
| mosquitto | broker, config written by us           | <data-dir>/mosquitto/          |
| influxd   | InfluxDB 1.x on loopback, the database | <data-dir>/influxd/            |
| ingest    | `telemetry ingest`                     | <data-dir>/logs/ingest.log     |
| api       | `telemetry api`                        | <data-dir>/logs/api.log        |
| simulate  | `telemetry simulate`, backfill first   | <data-dir>/logs/simulate.log   |

Each child runs in a session of its own, so Ctrl-C reaches only this process, which then stops
the children one by one (SIGTERM to the child's process group, a deadline, then SIGKILL). A child
that dies on its own is reported with its last log lines, and the rest is stopped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click
import httpx

from catalogue.durations import HINT, parse_seconds
from sigfox.limits import DAILY_UPLINKS
from telemetry.errors import StartupError
from telemetry.process import LoggedProcess
from telemetry.runtime import clean_errors, start
from telemetry.servers import Influxd, Mosquitto, find_binary, free_port
from telemetry.settings import Settings

DEFAULT_DATA_DIR = Path("var/dev")
MQTT_PORT = 1883
INFLUX_PORT = 8086
METRICS_PORT = 9108
# First run in a data folder: two days of history so that charts are full from the first minute;
# later runs keep that history and go on live.
FIRST_BACKFILL = "2d"
READY_TIMEOUT = 60.0  # seconds for a child to become ready (a cold start imports FastAPI)
STOP_GRACE = 5.0  # seconds beyond a child's own shutdown timeout before SIGKILL
LOG_TAIL_LINES = 15
SIMULATE_DRAIN = 15.0  # simulators wait this long for the last PUBACKs (simulators.command)
# The per-device rate limit counts on the uplinks' own clock: a backfill at ~140 a day passes,
# but --speed runs devices up to once a second, so the dev ingester's limit is opened up to that,
# with a burst of a day's worth and more for good measure.
UPLINKS_PER_DAY = DAILY_UPLINKS
SPEED_CAP_PER_HOUR = 3600


class Child(LoggedProcess):
    """A `telemetry <command>` child in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, log_path)
        self.argv = argv
        self.env = env

    def start(self) -> None:
        self.spawn(self.argv, self.env, stdin=subprocess.DEVNULL)

    def stop(self, timeout: float) -> None:
        """SIGTERM to the whole group, wait up to `timeout`, then SIGKILL the group."""
        if self.proc is not None:
            if self.proc.poll() is None:
                _signal_group(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    click.echo(f"telemetry dev: {self.name} did not stop in {timeout:.0f}s, killed")
                    _signal_group(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            # Anything the child left in its group goes with it.
            _signal_group(self.proc.pid, signal.SIGKILL)
        self.close_log()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return super().log_tail(lines)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def port_or_free(preferred: int, what: str) -> int:
    """`preferred` when it is free on loopback, else any free port (and say so)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            port = free_port()
            click.echo(f"telemetry dev: port {preferred} is busy, {what} uses {port}")
            return port
    return preferred


def api_key(data_dir: Path, name: str = "api-key") -> str:
    """The key kept in the data folder, made on the first run, so a second run reuses it."""
    path = data_dir / name
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    key = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def telemetry_argv(command: str) -> list[str]:
    """How to run `telemetry <command>` with this very installation."""
    script = Path(sys.executable).with_name("telemetry")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), command]
    found = shutil.which("telemetry")
    if found:
        return [found, command]
    return [sys.executable, "-c", "from telemetry.cli import main; main()", command]


def child_env(
    settings: Settings,
    data_dir: Path,
    key: str,
    ports: dict[str, int],
    backfill_days: float,
    *,
    callback_key: str | None = None,
) -> dict[str, str]:
    """The children's environment: ours, with every endpoint pointing at the local servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_INFLUX_")}
    env |= {
        "TELEMETRY_MQTT_URL": f"mqtt://127.0.0.1:{ports['mqtt']}",
        "TELEMETRY_INFLUX_URL": f"http://127.0.0.1:{ports['influx']}",
        "TELEMETRY_INFLUX_DATABASE": settings.influx_database,
        "TELEMETRY_API_KEYS": key,
        "TELEMETRY_API_AUTH": "enabled",
        "TELEMETRY_API_HOST": "127.0.0.1",
        "TELEMETRY_API_PORT": str(ports["api"]),
        "TELEMETRY_INGEST_SPOOL_DIR": str(data_dir / "spool"),
        "TELEMETRY_INGEST_METRICS_HOST": "127.0.0.1",
        "TELEMETRY_INGEST_METRICS_PORT": str(ports["metrics"]),
        "TELEMETRY_INGEST_RATE_BURST": str(max(20, int(UPLINKS_PER_DAY * (backfill_days + 1)))),
        "TELEMETRY_INGEST_RATE_PER_HOUR": str(SPEED_CAP_PER_HOUR),
        "PYTHONUNBUFFERED": "1",
        # The printed API key also manages downlinks; Sigfox callbacks take a key of their own.
        "TELEMETRY_ADMIN_KEYS": key,
        "TELEMETRY_DOWNLINK_DB": str(data_dir / "downlinks.sqlite3"),
    }
    if callback_key is not None:
        env["TELEMETRY_CALLBACK_KEYS"] = callback_key
    return env


class Stack:
    """What `telemetry dev` started, stopped in reverse order whatever happens."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.children: list[Child] = []
        self._undo = contextlib.ExitStack()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self._undo.close()

    def on_exit(self, callback: Callable[[], None]) -> None:
        self._undo.callback(callback)

    def run_child(self, child: Child, timeout: float) -> None:
        child.start()
        self.children.append(child)
        self.on_exit(lambda: child.stop(timeout))

    def wait_until(self, what: str, ready: Callable[[], bool], children: list[Child]) -> bool:
        """Poll `ready` until true; False if stopped meanwhile. A dead child is an error."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.stop.is_set():
            self.check(children)
            if ready():
                return True
            if time.monotonic() > deadline:
                raise StartupError(f"{what} not ready within {READY_TIMEOUT:.0f}s")
            self.stop.wait(0.2)
        return False

    def check(self, children: list[Child]) -> None:
        for child in children:
            code = child.exit_code
            if code is not None:
                raise StartupError(
                    f"{child.name} exited with status {code}; last lines of "
                    f"{child.log_path}:\n{child.log_tail()}"
                )


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _log_has(child: Child, text: str) -> bool:
    try:
        return text in child.log_path.read_text(errors="replace")
    except OSError:
        return False


@dataclass(frozen=True)
class Plan:
    """What to start, decided before anything starts."""

    data_dir: Path
    key: str
    ports: dict[str, int]
    simulate: bool
    devices: int
    speed: float
    seed: int
    backfill_days: float
    callback_key: str = ""


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
@click.option(
    "--devices", type=click.IntRange(1, 1000), default=3, show_default=True, help="Per type."
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    help="Simulated time runs this many times faster.",
)
@click.option(
    "--backfill",
    default=None,
    help=f"History to publish first (e.g. 2d) [{FIRST_BACKFILL} on a new data folder, else none].",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Simulators' seed.")
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
    backfill_days = _backfill_days(data_dir, backfill, no_simulate)

    stop = threading.Event()
    previous = _stop_on_signals(stop)
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
            backfill_days=backfill_days,
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
        if not stack.wait_until("ingest", lambda: _log_has(ingest, "subscribed to"), [ingest]):
            return False
        stack.run_child(api, grace)
        if not stack.wait_until("the API", lambda: _http_ok(f"{base}/healthz"), [ingest, api]):
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


def _backfill_days(data_dir: Path, backfill: str | None, no_simulate: bool) -> float:
    if no_simulate:
        return 0.0
    if backfill is None:
        if (data_dir / "backfilled").exists():
            return 0.0
        backfill = FIRST_BACKFILL
    # the same parser as `telemetry simulate --backfill`, which receives this value
    seconds = parse_seconds(backfill)
    if seconds is None:
        raise StartupError(f"--backfill: {backfill!r} is not {HINT}")
    return seconds / 86400


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


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _stop_on_signals(stop: threading.Event) -> dict[int, _Handler]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, _Handler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    return previous
