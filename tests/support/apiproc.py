"""`telemetry api` as a real subprocess on a port of its own, which a test may stop and restart.

The same interface as the events branch's helper of this name (which adds a stream reader and
waits for the API's stream subscription), so that either serves the browser tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from telemetry.servers import free_port
from tests.support.ingest import wait_for

API_ARGV = (sys.executable, "-c", "from telemetry.cli import main; main()", "api")


class ApiProcess:
    """`telemetry api` with settings from the environment; ready on return from `start()`."""

    def __init__(
        self, workdir: Path, *, mqtt_url: str, influx_url: str, database: str, **env: object
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # Only our settings: a TELEMETRY_ variable of the developer's shell must not leak in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")} | {
            "TELEMETRY_MQTT_URL": mqtt_url,
            "TELEMETRY_INFLUX_URL": influx_url,
            "TELEMETRY_INFLUX_DATABASE": database,
        }
        self.env |= {f"TELEMETRY_{k.upper()}": str(v) for k, v in env.items()}
        self.log_path = workdir / "api.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ApiProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*API_ARGV, "--port", str(self.port)],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self._ready() or self.exited(), 60, what="API ready")
        assert not self.exited(), self.log()
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)
