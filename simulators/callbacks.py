"""The simulators over HTTP: the fleet's uplinks as Sigfox callbacks, shaped as Sigfox sends them.

Shapes (Sigfox's callback documentation; users quote every value in their templates):
- DATA UPLINK with "send duplicates": one request per station copy, `duplicate` "true" from the
  second station on;
- DATA BIDIR: the first copy of a transmission that asks for a downlink carries `ack` "true";
  the answer is 200 `{"<device>": {"downlinkData": "<16 hex>"}}` or 204;
- DATA ADVANCED (`--advanced`): one request per transmission with every station in
  `duplicates` (a JSON list, which Sigfox writes unquoted) and no `station`; a transmission
  that asks for a downlink sends its BIDIR callback first.

Delivery like Sigfox's: a 5xx or no answer is retried after 1, 2 and 4 minutes, here scaled down
by `RETRY_SCALE` so that a test or a demo sees it; then the callback is given up. Requests go
out from a few worker threads over keep-alive connections, with a bounded number in flight, so
the runner's pace is kept and memory stays bounded.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

import httpx

from simulators.fleet import Transmission

log = logging.getLogger(__name__)

# Sigfox retries after 1, 2 and 4 minutes; a simulator waits as many seconds (60 times faster).
SIGFOX_RETRIES = (60.0, 120.0, 240.0)
RETRY_SCALE = 1 / 60
# A transmission asks for a downlink once in this many sequence numbers: about 4 a day at
# Sigfox's 140 uplinks a day, the most a device may receive.
DOWNLINK_EVERY = 32
WORKERS = 16  # concurrent requests: enough for a load run of some hundred callbacks a second
IN_FLIGHT = 256  # requests queued or under way at most; the runner waits beyond that
TIMEOUT = 10.0  # s, as long as Sigfox waits for an answer


def asks_downlink(tx: Transmission) -> bool:
    return tx.seq % DOWNLINK_EVERY == 0


def _common(tx: Transmission, stamp: int) -> dict[str, object]:
    return {
        "device": tx.device.device_id,
        "time": str(stamp),
        "seqNumber": str(tx.seq),
        "data": tx.payload.hex(),
        "deviceTypeId": tx.device.type_id,
    }


def uplink_bodies(tx: Transmission, stamp: int) -> list[bytes]:
    """DATA UPLINK (and BIDIR) bodies: one per station copy, every value quoted."""
    out = []
    for n, rx in enumerate(tx.receptions):
        body = _common(tx, stamp) | {
            "station": rx.station,
            "rssi": f"{rx.rssi:.2f}",
            "snr": f"{rx.snr:.2f}",
            "duplicate": "true" if n > 0 else "false",
            "avgSnr": f"{rx.snr:.2f}",
            "ack": "true" if n == 0 and asks_downlink(tx) else "false",
        }
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def advanced_bodies(tx: Transmission, stamp: int) -> list[bytes]:
    """A BIDIR body when the device asks for a downlink, then the DATA ADVANCED body."""
    out = uplink_bodies(tx, stamp)[:1] if asks_downlink(tx) else []
    best = max(tx.receptions, key=lambda rx: rx.rssi)
    body = _common(tx, stamp) | {
        "lqi": "Good",
        "linkQuality": "GOOD",
        "operatorName": "SIGFOX_France",
        "countryCode": "250",
        "snr": f"{best.snr:.2f}",
        # unquoted in Sigfox's template: {duplicates} expands to a JSON list
        "duplicates": [{"bsId": rx.station, "rssi": rx.rssi, "nbRep": 3} for rx in tx.receptions],
    }
    out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


@dataclass(frozen=True, slots=True)
class _Request:
    url: str
    body: bytes


class CallbackSender:
    """Posts callbacks as the runner's sink; `published`/`acked` count requests like MQTT's."""

    def __init__(self, url: str, key: str, retry_scale: float = RETRY_SCALE) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.retry_scale = retry_scale
        self.published = 0
        self.acked = 0
        self.failed = 0
        self.retried = 0
        self.downlinks = 0
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(IN_FLIGHT)
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._work, name=f"callback-{i}", daemon=True)
            for i in range(WORKERS)
        ]
        for worker in self._workers:
            worker.start()

    def url_for(self, type_name: str) -> str:
        """`{type}` in the URL is replaced by the type; else the type is its last segment."""
        if "{type}" in self.url:
            return self.url.replace("{type}", type_name)
        return f"{self.url}/{type_name}"

    def publish(self, topic: str, payload: bytes, stop: threading.Event) -> bool:
        """Queue one callback for `<prefix>/<type>/<device>`; False when `stop` is set."""
        while not self._slots.acquire(timeout=0.2):
            if stop.is_set():
                return False
        type_name = topic.split("/")[-2]
        with self._lock:
            self.published += 1
        self._queue.put(_Request(self.url_for(type_name), payload))
        return True

    def _work(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        with httpx.Client(headers=headers, timeout=TIMEOUT) as client:
            while (request := self._queue.get()) is not None:
                try:
                    self._deliver(client, request)
                finally:
                    self._slots.release()

    def _deliver(self, client: httpx.Client, request: _Request) -> None:
        waits = [w * self.retry_scale for w in SIGFOX_RETRIES]
        for attempt in range(len(waits) + 1):
            try:
                answer = client.post(request.url, content=request.body)
                status, why = answer.status_code, f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                answer, status, why = None, 0, f"{type(exc).__name__}: {exc}"
            if answer is not None and status < 500:
                self._answered(answer, request)
                return
            if attempt == len(waits) or self._stop.wait(waits[attempt]):
                break
            with self._lock:
                self.retried += 1
            log.info("callback got %s; retrying in %.1f s", why, waits[attempt])
        with self._lock:
            self.failed += 1
        log.warning("callback to %s given up after %d retries", request.url, len(waits))

    def _answered(self, answer: httpx.Response, request: _Request) -> None:
        if answer.status_code >= 400:  # a refused callback: Sigfox does not retry a 4xx either
            with self._lock:
                self.failed += 1
            log.warning("callback refused: HTTP %d %s", answer.status_code, answer.text[:200])
            return
        with self._lock:
            self.acked += 1
        if answer.status_code == 200 and answer.content:
            try:
                for device, what in answer.json().items():
                    log.info("downlink for %s: %s", device, what.get("downlinkData"))
                    with self._lock:
                        self.downlinks += 1
            except (ValueError, AttributeError):
                log.warning("BIDIR answer not understood: %r", answer.text[:200])

    def drain(self, timeout: float) -> bool:
        """Wait until every queued callback is answered or given up; False if time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.acked + self.failed >= self.published:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._stop.set()
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(TIMEOUT)
