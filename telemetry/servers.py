"""Local `mosquitto` and `influxd` processes with configuration written by us.

Used by `telemetry dev` and by the test fixtures, so the servers the tests use are configured
exactly as the stack a newcomer runs. Readiness is polled, never slept for.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from influx.client import ping_now, run_now
from influx.query import create_admin_user, create_database
from telemetry.errors import ServerError
from telemetry.process import LoggedProcess

# Debian installs mosquitto under /usr/sbin, which is not on every user's PATH.
_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")
INSTALL_HINT = {
    "mosquitto": "install it with: sudo apt-get install mosquitto",
    "influxd": "install it with: sudo apt-get install influxdb (InfluxDB 1.x)",
}

# Broker limits (RELIABILITY.md, facts 2 and 3):
# - the in-flight window must be >= ingest's batch size, or a batch never fills; 10,000 with
#   batches of 5,000 points drained 9,000-10,800 uplinks/s where 1,000 and 1,000 gave ~6,800
#   (bench/ingest_bench.py), for ~100 MB peak RSS either way;
# - the queue must hold an InfluxDB outage's worth of uplinks, or the broker drops silently;
# - autosave every second bounds what a SIGKILL can lose to the last second or two;
# - the size limit is far above the 1 KiB body limit so that oversized bodies reach ingest,
#   which keeps them as rejected instead of the broker dropping them unseen.
MOSQUITTO_LIMITS = {
    "max_inflight_messages": 10_000,
    "max_queued_messages": 100_000,
    "max_queued_bytes": 100_000_000,
    "message_size_limit": 65_536,
    "autosave_interval": 1,
    "max_keepalive": 120,
    "persistent_client_expiration": "14d",
}


# Free ports are drawn below the kernel's ephemeral range: a port the kernel hands out for
# `bind(0)` is one it also hands out as the local end of outgoing connections, and a client's
# connection (the API's to InfluxDB, say) took a port `telemetry dev` had chosen for a server
# before that server could bind it (seen once in CI: "Address already in use").
_PORTS_FLOOR = 20_000
_PORT_PICKS = random.Random()  # noqa: S311  # spreading picks, not crypto


def _ephemeral_floor() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default range starts here


def free_port() -> int:
    """A loopback TCP port nobody listens on or connects from, outside the ephemeral range."""
    ceiling = _ephemeral_floor()
    if ceiling - _PORTS_FLOOR > 1000:
        for _ in range(200):
            port = _PORT_PICKS.randrange(_PORTS_FLOOR, ceiling)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a machine without such room
        s.bind(("127.0.0.1", 0))
        picked: int = s.getsockname()[1]
        return picked


def find_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for folder in _EXTRA_BIN_DIRS:
            candidate = Path(folder) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        raise ServerError(f"'{name}' was not found on the PATH; {INSTALL_HINT.get(name, '')}")
    return found


class _Process(LoggedProcess):
    """A child server process with its log file and signal helpers."""

    name = "server"

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(self.name, data_dir / f"{self.name}.log")
        self.data_dir = data_dir
        self.port = port
        self.host = "127.0.0.1"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        proc = self.spawn(self.command())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {proc.returncode}: {self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.close_log()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        assert self.proc is not None  # noqa: S101  # a programming error, not user input
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None  # noqa: S101
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


class Mosquitto(_Process):
    """Mosquitto on loopback with persistence and the limits above."""

    name = "mosquitto"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
    ) -> None:
        super().__init__(data_dir, port or free_port())
        self.binary = find_binary("mosquitto")
        self.password_file = password_file
        self.acl_file = acl_file
        self.conf_path = data_dir / "mosquitto.conf"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def write_config(self) -> None:
        persist = self.data_dir / "persistence"
        persist.mkdir(parents=True, exist_ok=True)
        lines = [
            "# written by telemetry; see telemetry/servers.py for why each limit",
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            # Mosquitto drops root privileges to this user; the persistence folder must be
            # writable by it, or persistence fails silently (RELIABILITY.md, fact 3).
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "persistence true",
            f"persistence_location {persist}/",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        lines += [f"{k} {v}" for k, v in MOSQUITTO_LIMITS.items()]
        self.conf_path.write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf_path)]

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        super().start(timeout)

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False


class Influxd(_Process):
    """InfluxDB 1.x on loopback, debug endpoints off, optionally with authentication on."""

    name = "influxd"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        auth: bool = False,
        admin_user: str = "admin",
        admin_password: str = "admin-password",  # noqa: S107  # local test/dev server only
    ) -> None:
        super().__init__(data_dir, port or free_port())
        self.binary = find_binary("influxd")
        self.rpc_port = free_port()
        self.auth = auth
        self.admin = (admin_user, admin_password)
        self.conf_path = data_dir / "influxdb.conf"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def write_config(self) -> None:
        d = self.data_dir
        self.conf_path.write_text(
            f"""# written by telemetry; loopback only, debug endpoints off (RELIABILITY.md, fact 9)
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[coordinator]
  query-timeout = "30s"
  log-queries-after = "5s"
[monitor]
  store-enabled = false
[http]
  bind-address = "{self.host}:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  pprof-enabled = false
  max-body-size = 25000000
[continuous_queries]
  enabled = false
"""
        )

    def command(self) -> list[str]:
        return [self.binary, "-config", str(self.conf_path)]

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        super().start(timeout)
        if self.auth:
            self._ensure_admin()

    def ready(self) -> bool:
        return ping_now(self.url)

    def query(self, q: str, *, database: str | None = None, method: str = "POST") -> httpx.Response:
        """Run InfluxQL as the admin (for setup and tests)."""
        return run_now(
            self.url, q, database=database, auth=self.admin if self.auth else None, method=method
        )

    def _ensure_admin(self) -> None:
        # Allowed without credentials only while no user exists; afterwards it is a no-op 401.
        run_now(self.url, create_admin_user(*self.admin).text, timeout=10)

    def create_database(self, name: str) -> None:
        r = self.query(create_database(name).text)
        if r.status_code != 200 or "error" in r.text:
            raise ServerError(f"cannot create database {name!r}: {r.text.strip()}")
