"""The one door to InfluxDB over HTTP: `/query`, `/ping`, `/write` and creating the database.

`InfluxClient` runs `influx.statement.Query` objects (built only in `influx.query`) on one
database through an `httpx.AsyncClient` the caller owns, and writes through
`influx.writer.InfluxWriter` (the write path and its outcome table). Its errors are the tree in
influx/errors.py. Callers decide what an error means for them (see there).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from influx import query as q
from influx.errors import InfluxQueryError, InfluxUnavailable
from influx.statement import Query
from influx.writer import InfluxWriter, Refused

log = logging.getLogger(__name__)

Epoch = Literal["ns", "s"]


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a result: its tags, column names and rows."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]


# Statement errors of InfluxDB 1.x that say it cannot answer now, not that the statement is
# wrong: the database is missing, or the query engine is stopping, was interrupted or is over
# its limits. It sends them in a 200 answer, as the result of the statement.
NO_DATABASE = "database not found"
UNAVAILABLE_STATEMENT_ERRORS = (
    NO_DATABASE,
    "query engine shutdown",
    "query interrupted",
    "query aborted",
    "query-timeout limit exceeded",
    "max-concurrent-queries limit exceeded",
)


def unavailable_statement(error: str) -> bool:
    """Whether a statement's error means "InfluxDB cannot answer now" (retry later)."""
    return error.startswith(UNAVAILABLE_STATEMENT_ERRORS)


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to one statement: its series, or the error InfluxDB gave for it."""

    series: list[Series]
    error: str | None = None


class InfluxClient:
    """Queries, pings and writes on one database through a client the caller owns."""

    def __init__(
        self, client: httpx.AsyncClient, database: str, *, bind_params: bool = True
    ) -> None:
        self.client = client
        self.database = database
        self.bind_params = bind_params
        self.writer = InfluxWriter(client, database)

    async def query(self, query: Query, *, epoch: Epoch = "ns") -> list[list[Series]]:
        """The series of each statement, in order; any statement's error raises."""
        out: list[list[Series]] = []
        for result in await self.results(query, epoch=epoch):
            if result.error is not None:
                if unavailable_statement(result.error):
                    raise InfluxUnavailable(f"InfluxDB: {result.error}")
                log.warning("query refused: %r for %r", result.error, query.text)
                raise InfluxQueryError(f"InfluxDB refused the query: {result.error!r}")
            out.append(result.series)
        return out

    async def results(
        self,
        query: Query,
        *,
        epoch: Epoch = "ns",
        request_timeout: float | None = None,
    ) -> list[Result]:
        """Each statement's result, errors included; raises only when the request failed.

        Times come as integers in `epoch` units; `request_timeout` (s) overrides the client's here;
        httpx enforces it, so a slow answer is `InfluxUnavailable` like any other failure.
        """
        if self.bind_params:
            data = {"db": self.database, "q": query.text, "epoch": epoch}
            if query.params:
                data["params"] = json.dumps(query.params)
        else:  # a server that ignores params: the same values, checked and escaped, inline
            data = {"db": self.database, "q": query.inline(), "epoch": epoch}
        try:
            # POST keeps the statement out of access logs and URL length limits.
            response = await self.client.post(
                "/query",
                data=data,
                timeout=httpx.USE_CLIENT_DEFAULT if request_timeout is None else request_timeout,
            )
        except httpx.TimeoutException as exc:
            raise InfluxUnavailable(f"InfluxDB timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"InfluxDB unreachable: {exc!r}") from exc
        status = response.status_code
        if status in (401, 403) or status >= 500:
            raise InfluxUnavailable(f"InfluxDB answered {status}: {response.text[:200]!r}", status)
        try:
            body = response.json()
        except ValueError as exc:
            raise InfluxUnavailable(f"InfluxDB sent no JSON ({status})", status) from exc
        if status != 200 or "error" in body:
            raise InfluxQueryError(f"InfluxDB refused the query: {body.get('error')!r}")
        return [
            Result(
                [
                    Series(s.get("name", ""), s.get("tags") or {}, s["columns"], s["values"])
                    for s in result.get("series", [])
                ],
                result.get("error"),
            )
            for result in body.get("results", [])
        ]

    async def ping(self) -> bool:
        """True when InfluxDB answers /ping with 204."""
        try:
            response = await self.client.get("/ping")
        except httpx.HTTPError:
            return False
        return response.status_code == 204

    async def write(self, lines: list[str]) -> list[Refused]:
        """Store `lines`; the refused ones come back, `WriteError` when worth retrying."""
        return await self.writer.write(lines)

    async def create_database(self) -> bool:
        """True when the database exists or was created; False (with one clear log line) else."""
        return await ensure_database(self.client, self.database)


async def ensure_database(client: httpx.AsyncClient, database: str) -> bool:
    """At start: create the database when the server allows, else say exactly what to create."""
    statement = q.create_database(database)
    try:
        r = await client.post("/query", params={"q": statement.text})
    except httpx.HTTPError as exc:
        log.warning(
            "InfluxDB unreachable at start (%s); spooling to disk until it answers",
            type(exc).__name__,
        )
        return False
    if r.status_code == 200 and '"error"' not in r.text:
        return True
    log.error(
        "cannot create database %r (HTTP %d: %r); create it yourself: on InfluxDB 1.x "
        "'%s', on 2.x a bucket with a DBRP mapping for it",
        database,
        r.status_code,
        r.text[:200],
        statement.text,
    )
    return False


# Blocking calls for the local servers (telemetry/servers.py) and tests: no event loop there.


def ping_now(url: str, timeout: float = 0.5) -> bool:
    """True when the InfluxDB at `url` answers /ping with 204 (blocking)."""
    try:
        return httpx.get(f"{url}/ping", timeout=timeout).status_code == 204
    except httpx.HTTPError:
        return False


def run_now(
    url: str,
    statement: str,
    *,
    database: str | None = None,
    auth: tuple[str, str] | None = None,
    method: str = "POST",
    timeout: float = 30.0,
) -> httpx.Response:
    """One statement, as given, in the query string (blocking); the raw answer."""
    params = {"q": statement} | ({"db": database} if database else {})
    return httpx.request(method, f"{url}/query", params=params, auth=auth, timeout=timeout)
