"""The API's reader of InfluxDB over HTTP (`/query`, `/ping`), translating its errors.

Errors::

    ReaderError
    ├── InfluxUnavailable   network failure, timeout, 5xx, auth refused, database missing:
    │                       the caller should retry later (API: 503 + Retry-After)
    └── InfluxQueryError    InfluxDB refused the statement (a bug on our side: API 502)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from influx.query import Query

log = logging.getLogger(__name__)


class ReaderError(Exception):
    """Reading from InfluxDB failed."""


class InfluxUnavailable(ReaderError):
    """InfluxDB cannot answer now (down, slow, overloaded, misconfigured)."""


class InfluxQueryError(ReaderError):
    """InfluxDB answered with an error for the statement itself."""


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a result: its tags, column names and rows."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]


class Reader:
    """Runs our `Query` objects on one database through a client the caller owns."""

    def __init__(
        self, client: httpx.AsyncClient, database: str, *, bind_params: bool = True
    ) -> None:
        self.client = client
        self.database = database
        self.bind_params = bind_params

    async def query(self, query: Query) -> list[list[Series]]:
        """The series of each statement, in order; times as integer nanoseconds."""
        if self.bind_params:
            data = {"db": self.database, "q": query.text, "epoch": "ns"}
            if query.params:
                data["params"] = json.dumps(query.params)
        else:  # a server that ignores params: the same values, checked and escaped, inline
            data = {"db": self.database, "q": query.inline(), "epoch": "ns"}
        try:
            # POST keeps the statement out of access logs and URL length limits.
            response = await self.client.post("/query", data=data)
        except httpx.TimeoutException as exc:
            raise InfluxUnavailable(f"InfluxDB timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"InfluxDB unreachable: {exc!r}") from exc
        if response.status_code in (401, 403) or response.status_code >= 500:
            raise InfluxUnavailable(
                f"InfluxDB answered {response.status_code}: {response.text[:200]!r}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise InfluxUnavailable(f"InfluxDB sent no JSON ({response.status_code})") from exc
        if response.status_code != 200 or "error" in body:
            raise InfluxQueryError(f"InfluxDB refused the query: {body.get('error')!r}")
        out: list[list[Series]] = []
        for result in body.get("results", []):
            error = result.get("error")
            if error is not None:
                if "database not found" in error:
                    raise InfluxUnavailable(f"InfluxDB: {error}")
                log.warning("query refused: %r for %r", error, query.text)
                raise InfluxQueryError(f"InfluxDB refused the query: {error!r}")
            out.append(
                [
                    Series(s.get("name", ""), s.get("tags") or {}, s["columns"], s["values"])
                    for s in result.get("series", [])
                ]
            )
        return out

    async def ping(self) -> bool:
        """True when InfluxDB answers /ping with 204."""
        try:
            response = await self.client.get("/ping")
        except httpx.HTTPError:
            return False
        return response.status_code == 204
