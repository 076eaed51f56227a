"""What `telemetry dev` starts, decided before anything starts: ports, keys, history, settings.

Everything here is settled from the flags and the data folder, so a mistake is one line before
any server runs; `Plan` carries the outcome to telemetry/dev/command.py.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import click

from catalogue.durations import HINT, parse_seconds
from sigfox.limits import DAILY_UPLINKS
from telemetry.errors import StartupError
from telemetry.servers import free_port
from telemetry.settings import Settings

DEFAULT_DATA_DIR = Path("var/dev")
MQTT_PORT = 1883
INFLUX_PORT = 8086
METRICS_PORT = 9108
# First run in a data folder: two days of history so that charts are full from the first minute;
# later runs keep that history and go on live.
FIRST_BACKFILL = "2d"
# The per-device rate limit counts on the uplinks' own clock: a backfill at ~140 a day passes,
# but --speed runs devices up to once a second, so the dev ingester's limit is opened up to that,
# with a burst of a day's worth and more for good measure.
SPEED_CAP_PER_HOUR = 3600


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


def backfill_days(data_dir: Path, backfill: str | None, no_simulate: bool) -> float:
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
        "TELEMETRY_INGEST_RATE_BURST": str(max(20, int(DAILY_UPLINKS * (backfill_days + 1)))),
        "TELEMETRY_INGEST_RATE_PER_HOUR": str(SPEED_CAP_PER_HOUR),
        "PYTHONUNBUFFERED": "1",
        # The printed API key also manages downlinks; Sigfox callbacks take a key of their own.
        "TELEMETRY_ADMIN_KEYS": key,
        "TELEMETRY_DOWNLINK_DB": str(data_dir / "downlinks.sqlite3"),
    }
    if callback_key is not None:
        env["TELEMETRY_CALLBACK_KEYS"] = callback_key
    return env
