"""influx/client.py and the statements moved into influx/query.py, over `httpx.MockTransport`.

The real server is in tests/integration (test_ingest_lookup.py, test_ingest_redecode.py, the API
tests); here each answer InfluxDB can give is made on purpose, and so is ingest's policy on them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from influx import query as q
from influx.client import InfluxClient
from influx.errors import (
    InfluxError,
    InfluxQueryError,
    InfluxUnavailable,
    ReaderError,
    WriteError,
)
from influx.statement import Query, QueryBuildError
from ingest.lookup import StoredLookup, newest_stored_time

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://influx")


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def test_one_error_tree() -> None:
    assert issubclass(ReaderError, InfluxError)
    assert issubclass(WriteError, InfluxError)
    assert issubclass(InfluxUnavailable, ReaderError)
    assert issubclass(InfluxQueryError, ReaderError)


def test_the_moved_statements_keep_their_text() -> None:
    assert q.stored_copies({"A1": (10, 12), "B2": (5, 5)}).text == (
        "SELECT station_ids, station, rssi, snr FROM uplink WHERE device = 'A1' "
        "AND time >= 10s AND time <= 12s;"
        "SELECT station_ids, station, rssi, snr FROM uplink WHERE device = 'B2' "
        "AND time >= 5s AND time <= 5s"
    )
    assert q.newest_uplink_time().text == "SELECT last(seq) FROM uplink"
    assert q.device_ids().text == 'SHOW TAG VALUES FROM "uplink" WITH KEY = "device"'
    page = q.raw_uplinks("A1", 100, 200, 5000, inclusive=True)
    assert page.text == (
        'SELECT * FROM "uplink" WHERE "device" = $device '
        "AND time >= 100s AND time < 200s ORDER BY time ASC LIMIT 5000"
    )
    assert page.params == {"device": "A1"}
    assert ">" in q.raw_uplinks("A1", 100, 200, 10, inclusive=False).text.split("AND time ")[1]
    assert q.create_database("tele-metry_1").text == 'CREATE DATABASE "tele-metry_1"'
    assert q.create_admin_user("admin", "it's").text == (
        "CREATE USER \"admin\" WITH PASSWORD 'it\\'s' WITH ALL PRIVILEGES"
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: q.stored_copies({"A1' OR 1=1": (1, 2)}),
        lambda: q.stored_copies({"A1": (1, True)}),
        lambda: q.raw_uplinks("a1", 1, 2, 10, inclusive=True),
        lambda: q.create_database('x"; DROP DATABASE "y'),
    ],
)
def test_the_moved_statements_refuse_what_must_not_reach_influxql(
    build: Callable[[], Query],
) -> None:
    with pytest.raises(QueryBuildError):
        build()


@pytest.mark.asyncio
async def test_results_keep_each_statements_error_and_query_raises_it() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        series = {"name": "uplink", "columns": ["time", "seq"], "values": [[7, 1]]}
        return httpx.Response(
            200, json={"results": [{"series": [series]}, {"error": "bad statement"}]}
        )

    async with _client(answer) as http:
        influx = InfluxClient(http, "db")
        first, second = await influx.results(q.newest_uplink_time(), epoch="s")
        assert first.series[0].rows() == [{"time": 7, "seq": 1}]
        assert second.error == "bad statement"
        with pytest.raises(InfluxQueryError):
            await influx.query(q.newest_uplink_time())


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "error",
    [
        "database not found: db",
        "query engine shutdown",  # what InfluxDB 1.6.7 answered in CI, as it stopped
        "query interrupted",
        "query-timeout limit exceeded",
        "max-concurrent-queries limit exceeded(5, 4)",
    ],
)
async def test_a_statement_error_saying_influxdb_cannot_answer_now_is_unavailable(
    error: str,
) -> None:
    answer = {"results": [{"statement_id": 0, "error": error}]}
    async with _client(lambda r: httpx.Response(200, json=answer)) as http:
        with pytest.raises(InfluxUnavailable):  # the API: 503 + Retry-After, not 502
            await InfluxClient(http, "db").query(q.newest_uplink_time())
        lookup = StoredLookup(InfluxClient(http, "db"))
        found = await lookup([("A1", 1, 1)])
    if error.startswith("database not found"):
        assert (found, lookup.failures) == ({}, 0)  # no database: nothing stored in it
    else:
        assert (found, lookup.failures) == (None, 1)  # unknown, not "nothing stored"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [401, 403, 503])
async def test_an_answer_that_is_not_about_the_statement_is_unavailable(status: int) -> None:
    async with _client(lambda r: httpx.Response(status, text="no")) as http:
        with pytest.raises(InfluxUnavailable) as info:
            await InfluxClient(http, "db").results(q.newest_uplink_time())
    assert info.value.status == status


@pytest.mark.asyncio
async def test_epoch_params_and_inline_fallback_go_in_the_form() -> None:
    asked: list[dict[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(_form(request))
        return httpx.Response(200, json={"results": [{}]})

    page = q.raw_uplinks("A1", 1, 2, 10, inclusive=True)
    async with _client(answer) as http:
        await InfluxClient(http, "db").results(page, epoch="s")
        await InfluxClient(http, "db", bind_params=False).results(page)
    assert asked[0]["epoch"] == "s"
    assert json.loads(asked[0]["params"]) == {"device": "A1"}
    assert "'A1'" in asked[1]["q"]
    assert "params" not in asked[1]


@pytest.mark.asyncio
async def test_create_database_and_write_go_through_the_client() -> None:
    seen: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.url.params.get("q") or request.content.decode()))
        if request.url.path == "/write":
            return httpx.Response(204)
        return httpx.Response(200, json={"results": [{}]})

    async with _client(answer) as http:
        influx = InfluxClient(http, "db")
        assert await influx.create_database()
        assert await influx.write(["m f=1i 1"]) == []
    assert seen == [("/query", 'CREATE DATABASE "db"'), ("/write", "m f=1i 1")]


# ingest's policy on a read that fails: write-only account vs. a pause


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [401, 403])
async def test_a_write_only_account_merges_with_the_cache_and_never_asks_again(
    status: int,
) -> None:
    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, text="forbidden")

    async with _client(answer) as http:
        lookup = StoredLookup(InfluxClient(http, "db"))
        assert await lookup([("A1", 1, 1)]) == {}  # nothing known stored: merge with the cache
        assert await lookup([("A1", 2, 2)]) == {}
    assert (lookup.forbidden, lookup.failures, len(calls)) == (True, 0, 1)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 500, 503])
async def test_any_other_failed_read_pauses_lookups(status: int) -> None:
    async with _client(lambda r: httpx.Response(status, json={"error": "x"})) as http:
        lookup = StoredLookup(InfluxClient(http, "db"))
        assert await lookup([("A1", 1, 1)]) is None
        assert await lookup([("A1", 1, 1)]) is None
    assert (lookup.forbidden, lookup.failures) == (False, 1)


@pytest.mark.asyncio
async def test_newest_stored_time_cannot_say_on_a_refused_read() -> None:
    async with _client(lambda r: httpx.Response(403, text="no")) as http:
        assert await newest_stored_time(InfluxClient(http, "db")) is None
    empty = {"results": [{"statement_id": 0}]}
    async with _client(lambda r: httpx.Response(200, json=empty)) as http:
        assert await newest_stored_time(InfluxClient(http, "db")) == -1
