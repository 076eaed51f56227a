"""Readings from `up` events: `Tracker.observe` (status/tracker.py) and the API status cache's
rule for when the events let its incremental poll slow to a backstop (api/statuscache.py).

Pure: nothing here reaches InfluxDB (the tracker's reader is only asked about devices returning
from a silence, and no device here does); the integration tests cover the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from api.statuscache import EVENTS_QUIET_SECONDS, StatusCache
from catalogue import Catalogue, load_catalogue
from catalogue.times import NS
from influx.client import InfluxClient
from status.rules import Reading
from status.tracker import Tracker

# A reader that is never asked: a query would fail to connect, and the test with it.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def reader() -> Iterator[InfluxClient]:
    client = httpx.AsyncClient(base_url=NOWHERE)
    yield InfluxClient(client, "never")
    asyncio.run(client.aclose())


T = 1_716_000_000 * NS  # an uplink's time: whole seconds, as stored


@pytest.fixture
def tracker(catalogue: Catalogue, reader: InfluxClient) -> Tracker:
    return Tracker(catalogue, reader)


def test_an_observed_uplink_counts_only_when_newer(tracker: Tracker) -> None:
    tracker.observe("1A2B3C", "wristband", T, 80.0)
    assert tracker.readings["1A2B3C"] == Reading(T, 80.0, T)
    assert tracker.types["1A2B3C"] == "wristband"
    tracker.observe("1A2B3C", "wristband", T - NS, 10.0)  # older: neither time nor battery
    tracker.observe("1A2B3C", "wristband", T, 10.0)  # the same uplink again (a later copy)
    assert tracker.readings["1A2B3C"] == Reading(T, 80.0, T)
    tracker.observe("1A2B3C", "wristband", T + NS)  # no battery value: the last one stays
    assert tracker.readings["1A2B3C"] == Reading(T + NS, 80.0, T)
    tracker.observe("1A2B3C", "toaster", T + 2 * NS, 5.0)  # not a type of the catalogue
    assert tracker.readings["1A2B3C"] == Reading(T + NS, 80.0, T)


def test_an_older_uplink_with_a_battery_newer_than_the_known_one_updates_it(
    tracker: Tracker,
) -> None:
    # As a poll does: the newest uplink and the latest battery value are read apart.
    tracker.observe("1A2B3C", "wristband", T)
    tracker.observe("1A2B3C", "wristband", T - NS, 12.0)
    assert tracker.readings["1A2B3C"] == Reading(T, 12.0, T - NS)


def test_an_observed_uplink_runs_the_rules_once(tracker: Tracker) -> None:
    tracker.observe("1A2B3C", "wristband", T, 9.0)
    (update,) = asyncio.run(tracker.updates(T + NS))
    assert update.status.state == "online"
    assert update.status.alarms == {"battery_low": T}
    tracker.commit(update)
    assert asyncio.run(tracker.updates(T + NS)) == []
    tracker.observe("1A2B3C", "wristband", T - NS, 50.0)  # older: nothing to run again
    assert asyncio.run(tracker.updates(T + NS)) == []
    tracker.observe("1A2B3C", "wristband", T + NS, 50.0)
    (update,) = asyncio.run(tracker.updates(T + 2 * NS))
    assert update.status.alarms == {}


def test_a_reading_taken_while_the_rules_ran_is_run_again_after_the_commit(
    tracker: Tracker,
) -> None:
    # In the API, events come in while `updates` awaits a query: the commit of an update made
    # from the older reading must not mark the newer one done.
    tracker.observe("1A2B3C", "wristband", T, 50.0)
    (update,) = asyncio.run(tracker.updates(T + NS))
    tracker.observe("1A2B3C", "wristband", T + NS, 9.0)
    tracker.commit(update)
    (again,) = asyncio.run(tracker.updates(T + 2 * NS))
    assert again.status.last_ns == T + NS
    assert again.status.alarms == {"battery_low": T + NS}


def _up(when: int, **values: object) -> dict[str, object]:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when // NS))
    return {"device": "1A2B3C", "type": "wristband", "time": seconds, "values": values}


def test_the_cache_reads_an_up_body_and_ignores_what_it_cannot_read(
    catalogue: Catalogue, reader: InfluxClient
) -> None:
    cache = StatusCache(catalogue, reader)
    for doc in (
        {"device": "1A2B3C"},  # no time
        {"time": 1716000000},  # not RFC 3339 text
        {"time": "yesterday"},
    ):
        cache.observe("wristband", "1A2B3C", doc)
    cache.observe("toaster", "1A2B3C", _up(T))  # the topic's type is not in the catalogue
    assert cache.tracker.readings == {}
    cache._polled_at, cache._polled_under = time.monotonic(), 1
    assert cache.poll_due(time.monotonic(), 1)  # none of them counts as an event flowing
    cache.observe("wristband", "1A2B3C", _up(T, heart_rate=70, battery=12))
    assert cache.tracker.readings["1A2B3C"] == Reading(T, 12.0, T)
    cache.observe("wristband", "1A2B3C", _up(T + NS, battery=True))  # not a number
    cache.observe("wristband", "1A2B3C", _up(T + 2 * NS, battery=None))
    assert cache.tracker.readings["1A2B3C"] == Reading(T + 2 * NS, 12.0, T)
    cache.observe("scale", "5CA1E", _up(T, weight=705))  # no battery value in this uplink
    assert cache.tracker.readings["5CA1E"] == Reading(T, None, 0)


def test_the_cache_polls_every_time_unless_it_follows_flowing_events(
    catalogue: Catalogue, reader: InfluxClient
) -> None:
    cache = StatusCache(catalogue, reader, poll_seconds=5, backstop_seconds=60)
    now = time.monotonic()  # the clock `observe` stamps events with
    assert cache.poll_due(now, 0)  # no subscription
    assert cache.poll_due(now, 1)  # subscribed, but nothing polled since: events were missed
    cache._polled_at, cache._polled_under = now, 1  # that poll ran
    assert cache.poll_due(now + 5, 1)  # and no `up` event ever came (events off)
    assert not cache.following
    cache.observe("wristband", "1A2B3C", _up(T))
    assert not cache.poll_due(now + 5, 1)
    assert cache.following
    assert not cache.poll_due(now + 30, 1)
    assert cache.poll_due(now + 60, 1)  # the backstop, counted from the last poll
    cache._polled_at = now + 50
    assert not cache.poll_due(now + 55, 1)
    assert cache.poll_due(now + EVENTS_QUIET_SECONDS + 1, 1)  # quiet for long: as without
    assert not cache.following
    assert cache.poll_due(now + 5, 2)  # a new subscription: what came in between was missed
    assert cache.poll_due(now + 5, 0)  # the broker away
