"""`telemetry api` as a real subprocess (restartable, two at once), and a reader for `/v1/stream`.

The process gets one key per role (`READ_KEY`, `CALLBACK_KEY`, `ADMIN_KEY`; `AUTH` is the read
key's header), a downlink database in its folder, and whatever settings the test adds.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from telemetry.servers import free_port
from tests.support.cli import TelemetryProcess, telemetry_env
from tests.support.poll import wait_for

READ_KEY = "read-key-0123456789"
CALLBACK_KEY = "callback-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {READ_KEY}"}
READ_FOREVER = httpx.Timeout(30.0, read=None)  # a stream may be quiet for long
# The log lines api/broker.py writes once the publisher and the stream's link are connected.
CONNECTED = "publishing to the MQTT broker"
SUBSCRIBED = "stream: subscribed"


class ApiProcess(TelemetryProcess):
    """One API process with its settings in the environment; `url` is its base URL."""

    def __init__(self, workdir: Path, **settings: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        own = {
            "api_keys": READ_KEY,
            "callback_keys": CALLBACK_KEY,
            "admin_keys": ADMIN_KEY,
            "api_port": self.port,
            "downlink_db": workdir / "downlinks.sqlite3",
        }
        super().__init__("api", workdir, telemetry_env(**(own | settings)))

    def start(self, *, broker: bool = True, stream: bool = False) -> ApiProcess:
        """Start; wait until it serves and, with `broker`, until it is connected to the broker;
        with `stream`, until `/v1/stream` is subscribed to the events and the API is ready."""
        self._spawn()
        wait_for(lambda: self._answers("/healthz") or self.exited(), 60, "the API to serve")
        assert not self.exited(), self.log()
        if broker:
            self.wait_connected()
        if stream:
            self._wait_logged(SUBSCRIBED, "the API's stream to subscribe")
            wait_for(lambda: self._answers("/readyz") or self.exited(), 60, "the API ready")
            assert not self.exited(), self.log()
        return self

    def wait_connected(self) -> None:
        self._wait_logged(CONNECTED, "the API to connect to the broker")

    def _wait_logged(self, line: str, what: str) -> None:
        """Wait until this start (not an earlier one) has logged `line`."""
        wait_for(lambda: self.log().count(line) >= self.starts or self.exited(), 30, what)
        assert not self.exited(), self.log()

    def _answers(self, path: str) -> bool:
        try:
            return httpx.get(f"{self.url}{path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str) -> float:
        """One unlabelled sample of `/metrics`; NaN when absent."""
        text = httpx.get(f"{self.url}/metrics", headers=AUTH, timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return float("nan")


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
