"""`telemetry api` as a real subprocess on a port of its own, which a test may stop and restart."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from telemetry.servers import free_port
from tests.support.ingest import TELEMETRY, wait_for


class ApiProcess:
    """The API with settings from the environment; `restart()` keeps its port."""

    def __init__(self, workdir: Path, **settings: object) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Only our settings: a TELEMETRY_ variable of the developer's shell must not leak in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
        self.env |= {f"TELEMETRY_{k.upper()}": str(v) for k, v in settings.items()}
        self.env["TELEMETRY_API_PORT"] = str(self.port)
        self.log_path = workdir / "api.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until `/healthz` answers."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [TELEMETRY, "api"], env=self.env, stdout=log, stderr=log, cwd=self.workdir
            )
        wait_for(self._up, 60, "the API to answer /healthz")

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the API exited:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
