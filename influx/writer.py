"""Line-protocol writes to `/write`, every outcome classified (the one write path to InfluxDB;
influx/client.py writes through it).

| answer                                  | outcome     | what the caller does                |
| --------------------------------------- | ----------- | ----------------------------------- |
| 204 (or 200)                            | `STORED`    | ack                                 |
| 400, 422 (1.6.7 stores the good lines!) | `REFUSED`   | halve to single lines; keep aside   |
| 413                                     | `TOO_LARGE` | halve and retry                     |
| 408, 429, 5xx, 401/403/404, network     | `RETRY`     | back off (Retry-After), spool       |

Auth and "database not found" are retried, not refused: they are configuration, not content, and
retrying (while spooling to disk) loses nothing once the operator fixes it.
"""

from __future__ import annotations

import email.utils
import enum
import time
from dataclasses import dataclass

import httpx

from influx.errors import WriteError


class Outcome(enum.Enum):
    STORED = "stored"
    REFUSED = "refused"
    TOO_LARGE = "too_large"
    RETRY = "retry"


def classify(status: int) -> Outcome:
    """The outcome of one `/write` answer."""
    if 200 <= status < 300:
        return Outcome.STORED
    if status in (400, 422):
        return Outcome.REFUSED
    if status == 413:
        return Outcome.TOO_LARGE
    return Outcome.RETRY


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


# The longest pause between two failing writes, the cap its callers give telemetry/backoff.py
# (a Retry-After may ask for up to 4 times it): an InfluxDB that answers with errors is asked
# at least twice a minute. One that does not answer at all is also probed more often
# (ingest/sink.py), so recovery never waits for this.
BACKOFF_CAP = 30.0  # s


@dataclass(frozen=True, slots=True)
class Refused:
    """A line InfluxDB refused for its content, with InfluxDB's message."""

    line: str
    message: str


class InfluxWriter:
    """Writes batches of lines over one keep-alive client."""

    def __init__(self, client: httpx.AsyncClient, database: str) -> None:
        self.client = client
        self.params = {"db": database, "precision": "ns"}

    async def _post(self, lines: list[str]) -> tuple[Outcome, str, float | None, int | None]:
        body = ("\n".join(lines)).encode()
        try:
            r = await self.client.post("/write", params=self.params, content=body)
        except httpx.HTTPError as exc:
            return Outcome.RETRY, f"{type(exc).__name__}: {exc}", None, None
        outcome = classify(r.status_code)
        message = "" if outcome is Outcome.STORED else _error_text(r)
        return outcome, message, retry_after(r.headers.get("Retry-After")), r.status_code

    async def answers(self, within: float) -> bool:
        """Whether InfluxDB answers a `GET /ping` within `within` seconds.

        Any answer below 500 counts (1.x and 2.x say 204, 3.x 200, or 401 without a token):
        the question is whether the server is there, not whether writes will be taken. A 5xx
        is a proxy in front of it saying that it is not.
        """
        try:
            r = await self.client.get("/ping", timeout=within)
        except httpx.HTTPError:
            return False
        return r.status_code < 500

    async def write(self, lines: list[str]) -> list[Refused]:
        """Store `lines`; returns the refused ones. Raises `WriteError` when worth retrying."""
        if not lines:
            return []
        outcome, message, wait, status = await self._post(lines)
        if outcome is Outcome.STORED:
            return []
        if outcome is Outcome.RETRY:
            raise WriteError(message, status, wait)
        if len(lines) == 1:  # refused, or one line over the server's size limit: content
            return [Refused(lines[0], message)]
        # Halve: good lines are rewritten (idempotent), bad ones end up alone.
        mid = len(lines) // 2
        return await self.write(lines[:mid]) + await self.write(lines[mid:])


def _error_text(r: httpx.Response) -> str:
    try:
        doc = r.json()
    except ValueError:
        return f"HTTP {r.status_code}: {r.text[:300]}"
    if isinstance(doc, dict) and "error" in doc:
        return f"HTTP {r.status_code}: {doc['error']}"[:500]
    return f"HTTP {r.status_code}: {r.text[:300]}"
