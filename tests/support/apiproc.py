"""`telemetry api` as a real subprocess, and a server-sent events reader for `/v1/stream`."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from telemetry.servers import free_port
from tests.support.ingest import wait_for

API_KEY = "stream-test-key"
API_ARGV = (sys.executable, "-c", "from telemetry.cli import main; main()", "api")
READ_FOREVER = httpx.Timeout(30.0, read=None)  # a stream may be quiet for long
AUTH = {"Authorization": f"Bearer {API_KEY}"}


class ApiProcess:
    """`telemetry api` with settings from the environment; started and subscribed on return."""

    def __init__(
        self, workdir: Path, *, mqtt_url: str, influx_url: str, database: str, **env: object
    ):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")} | {
            "TELEMETRY_MQTT_URL": mqtt_url,
            "TELEMETRY_INFLUX_URL": influx_url,
            "TELEMETRY_INFLUX_DATABASE": database,
            "TELEMETRY_API_KEYS": API_KEY,
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
        wait_for(lambda: "stream: subscribed" in self.log() or self.exited(), what="API subscribed")
        wait_for(lambda: self._ready() or self.exited(), what="API ready")
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

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.base}/metrics", headers=AUTH, timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return float("nan")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@dataclass(frozen=True)
class Sse:
    event: str
    id: int | None
    data: dict[str, Any]


class StreamReader:
    """Reads `/v1/stream` in a thread; events go to `events`, the end sets `ended`."""

    def __init__(
        self, base: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.events: queue.Queue[Sse] = queue.Queue()
        self.comments: list[str] = []
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.status = 0
        self.error: str | None = None
        self._client = httpx.Client(
            base_url=base, headers=AUTH | (headers or {}), timeout=READ_FOREVER
        )
        self._params = params or {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_for(lambda: self.opened.is_set() or self.ended.is_set(), what="stream open")

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/v1/stream", params=self._params) as r:
                self.status = r.status_code
                if r.status_code != 200:
                    self.error = r.read().decode()
                    return
                fields: dict[str, str] = {}
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                        self.opened.set()
                    elif not line:
                        if "data" in fields:
                            ident = fields.get("id")
                            self.events.put(
                                Sse(
                                    fields.get("event", "message"),
                                    int(ident) if ident else None,
                                    json.loads(fields["data"]),
                                )
                            )
                        fields = {}
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except httpx.HTTPError as exc:
            self.error = repr(exc)
        finally:
            self.ended.set()

    def next(self, timeout: float = 30.0) -> Sse:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self._client.close()
