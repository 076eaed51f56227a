"""api/typememo.py: the device -> type memo, and `device_type` over a transport stub (no server)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from api import typememo
from api.problems import ApiError
from api.typememo import TypeMemo, device_type
from influx.client import InfluxClient


def test_memo_remembers_and_forgets_nothing_it_was_not_told() -> None:
    memo = TypeMemo()
    assert memo.get("1A") is None
    memo.remember("1A", "wristband")
    memo.remember("2B", "scale")
    assert memo.get("1A") == "wristband"
    assert memo.get("2B") == "scale"
    assert memo.get("3C") is None


def test_memo_starts_over_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typememo, "MAX_REMEMBERED", 2)
    memo = TypeMemo()
    memo.remember("1", "a")
    memo.remember("2", "b")
    memo.remember("3", "c")  # full: forgets everything, then remembers this one
    assert (memo.get("1"), memo.get("2"), memo.get("3")) == (None, None, "c")


def _influx(
    series: list[dict[str, object]], asked: list[dict[str, list[str]]]
) -> httpx.MockTransport:
    """InfluxDB's /query answer with `series`, recording each request's form fields."""

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(parse_qs(request.content.decode()))
        return httpx.Response(200, json={"results": [{"statement_id": 0, "series": series}]})

    return httpx.MockTransport(answer)


def _series(type_name: str, newest_ns: int) -> dict[str, object]:
    return {
        "name": "uplink",
        "tags": {"type": type_name},
        "columns": ["time", "last_seq"],
        "values": [[newest_ns, 7]],
    }


@pytest.mark.asyncio
async def test_device_type_asks_once_then_answers_from_the_memo() -> None:
    asked: list[dict[str, list[str]]] = []
    transport = _influx([_series("wristband", 1_000)], asked)
    memo = TypeMemo()
    async with httpx.AsyncClient(transport=transport, base_url="http://influx") as client:
        reader = InfluxClient(client, "db")
        assert await device_type(reader, memo, "1A") == "wristband"
        assert await device_type(reader, memo, "1A") == "wristband"
    assert len(asked) == 1
    assert json.loads(asked[0]["params"][0]) == {"device": "1A"}  # bound, not spliced in
    assert memo.get("1A") == "wristband"


@pytest.mark.asyncio
async def test_a_device_id_reused_under_another_type_gives_the_newest() -> None:
    transport = _influx([_series("scale", 5_000), _series("wristband", 9_000)], [])
    async with httpx.AsyncClient(transport=transport, base_url="http://influx") as client:
        assert await device_type(InfluxClient(client, "db"), TypeMemo(), "1A") == "wristband"


@pytest.mark.asyncio
async def test_an_unknown_device_is_a_404_and_not_remembered() -> None:
    memo = TypeMemo()
    async with httpx.AsyncClient(transport=_influx([], []), base_url="http://influx") as client:
        with pytest.raises(ApiError) as info:
            await device_type(InfluxClient(client, "db"), memo, "FF")
    assert (info.value.status, info.value.parameter) == (404, "device")
    assert memo.get("FF") is None
