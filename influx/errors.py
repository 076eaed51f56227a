"""Every error the InfluxDB boundary raises, in one tree (influx/client.py, influx/writer.py).

Errors::

    InfluxError                 talking to InfluxDB failed
    ├── ReaderError             a `/query` failed
    │   ├── InfluxUnavailable   network failure, timeout, 5xx, auth refused, database missing,
    │   │                       a statement error saying the engine stops or is over its
    │   │                       limits: the caller should retry later (API: 503 + Retry-After);
    │   │                       `status` is the HTTP status when there was an answer
    │   └── InfluxQueryError    InfluxDB refused the statement (a bug on our side: API 502)
    └── WriteError              a `/write` that may succeed later (network, 5xx, 429, auth,
                                missing database); `status` and `wait` (Retry-After) say more

Lines InfluxDB refuses for their content are not errors but values (`influx.writer.Refused`).
Outside the tree on purpose, as programming errors found before any request:
`influx.statement.QueryBuildError` and `influx.lineprotocol.LineProtocolError` (both ValueError).
What an answer means for a caller stays with the caller: ingest reads a 401/403 on a read as
"a write-only account" (ingest/lookup.py), the API as "unavailable".
"""

from __future__ import annotations


class InfluxError(Exception):
    """Talking to InfluxDB failed."""


class ReaderError(InfluxError):
    """Reading from InfluxDB failed."""


class InfluxUnavailable(ReaderError):
    """InfluxDB cannot answer now (down, slow, overloaded, misconfigured)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InfluxQueryError(ReaderError):
    """InfluxDB answered with an error for the statement itself."""


class WriteError(InfluxError):
    """A write that may succeed later (network, 5xx, 429, auth, missing database)."""

    def __init__(self, message: str, status: int | None = None, wait: float | None = None):
        super().__init__(message)
        self.status = status
        self.wait = wait
