"""`telemetry api` as a real subprocess, for tests that restart it or run two of them."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from telemetry.servers import free_port
from tests.support.ingest import TELEMETRY, wait_for

READ_KEY = "read-key-0123456789"
CALLBACK_KEY = "callback-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
# The log line api/publisher.py writes once connected to the broker.
CONNECTED = "publishing to the MQTT broker"


class ApiProcess:
    """One API process with its settings in the environment; `url` is its base URL."""

    def __init__(self, workdir: Path, **settings: object) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")} | {
            "TELEMETRY_API_KEYS": READ_KEY,
            "TELEMETRY_CALLBACK_KEYS": CALLBACK_KEY,
            "TELEMETRY_ADMIN_KEYS": ADMIN_KEY,
            "TELEMETRY_API_PORT": str(self.port),
            "TELEMETRY_DOWNLINK_DB": str(workdir / "downlinks.sqlite3"),
        }
        self.env |= {f"TELEMETRY_{k.upper()}": str(v) for k, v in settings.items()}
        self.log_path = workdir / "api.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, broker: bool = True) -> None:
        """Start; wait until it serves and, with `broker`, until it is connected to the broker."""
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [TELEMETRY, "api"], env=self.env, stdout=log, stderr=log, cwd=self.workdir
            )
        wait_for(lambda: self._serves() or self.exited(), 60, "the API to serve")
        assert not self.exited(), self.log()
        if broker:
            self.wait_connected()

    def wait_connected(self) -> None:
        wait_for(
            lambda: self.log().count(CONNECTED) >= self.starts or self.exited(),
            30,
            "the API to connect to the broker",
        )
        assert not self.exited(), self.log()

    def _serves(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
