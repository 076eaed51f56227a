"""Device status against real servers: `telemetry ingest` notices silence and records each change
once in `event`, at the moment the rule was crossed; restarts and a second ingester add nothing.
The API's status cache sees a device return from its `up` event, and polls as before without them.

The `beacon` test type (tests/support/status_types) has a 2 s interval and goes offline after 6 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.apiprocess import AUTH, ApiProcess
from tests.support.influx import select
from tests.support.ingest import Ingester, ingest_metric
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

TYPES = Path(__file__).parent.parent / "support" / "status_types"
LATE_S, OFFLINE_S = 4, 6  # two intervals of 2 s; offline_after


class Stack(Pipeline):
    def ingester(self, **settings: Any) -> Ingester:
        return self.start(
            catalogue_dir=TYPES,
            status_poll_seconds=1,  # the beacon's 2 s interval needs a faster look
            **settings,
        )

    def uplink(self, device: str, t: int, seq: int, battery: int = 80) -> None:
        self.publisher.publish(
            f"{self.prefix}/beacon/{device}",
            {"device": device, "time": t, "seqNumber": seq, "data": f"07{battery:02x}"},
        )

    def events(self, device: str) -> list[tuple[str, str, str, int]]:
        """(kind, state, previous, time in s) of the device's `event` points, oldest first."""
        rows = self.rows(f"SELECT * FROM event WHERE device = '{device}'")  # noqa: S608  # own id
        rows.sort(key=lambda r: (_ns(r["time"]), r["kind"] != "state"))
        return [(r["kind"], r["state"], r["previous"], _ns(r["time"]) // 10**9) for r in rows]

    def wait_events(self, device: str, n: int, timeout: float = 30.0) -> list[Any]:
        def enough() -> list[Any] | None:
            events = self.events(device)
            return events if len(events) >= n else None

        return wait_for(enough, timeout, f"{n} event points of {device}")


@pytest.fixture
def stack(pipeline: Pipeline) -> Stack:
    return Stack.like(pipeline)


def _ns(rfc3339: str) -> int:
    """Nanoseconds: a return may be stored 1 ns after the crossing it ends."""
    whole, _, frac = rfc3339.removesuffix("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return seconds * 10**9 + int(frac.ljust(9, "0"))


def test_a_silent_device_goes_late_then_offline_and_its_next_uplink_clears_it(
    stack: Stack,
) -> None:
    stack.ingester()
    t0 = int(time.time())
    stack.uplink("B0001", t0, 1)
    events = stack.wait_events("B0001", 3)
    assert events == [
        ("state", "late", "online", t0 + LATE_S),
        ("state", "offline", "late", t0 + OFFLINE_S),
        ("offline", "raised", "cleared", t0 + OFFLINE_S),
    ]
    t1 = int(time.time())
    stack.uplink("B0001", t1, 2)
    events = stack.wait_events("B0001", 5)
    # (silent again, it goes late once more afterwards: those come later in time)
    assert events[3:5] == [
        ("state", "online", "offline", t1),
        ("offline", "cleared", "raised", t1),
    ]


def test_a_low_battery_raises_an_alarm_and_a_charged_one_clears_it(stack: Stack) -> None:
    ing = stack.ingester(metrics=True)
    t0 = int(time.time())
    stack.uplink("B0002", t0 - 1, 1, battery=40)
    stack.uplink("B0002", t0, 2, battery=12)
    events = stack.wait_events("B0002", 1, timeout=20)
    assert events[0] == ("battery_low", "raised", "cleared", t0)
    alarms = 'telemetry_ingest_active_alarms{kind="battery_low"}'
    wait_for(lambda: ingest_metric(ing, alarms) == 1.0, what="the battery alarm gauge at 1")
    stack.uplink("B0002", t0 + 1, 3, battery=100)
    events = stack.wait_events("B0002", 2, timeout=20)
    assert events[1] == ("battery_low", "cleared", "raised", t0 + 1)


def test_two_ingesters_record_each_change_once(stack: Stack) -> None:
    first = stack.ingester(mqtt_share_group="status")
    second = stack.ingester(mqtt_share_group="status")
    t0 = int(time.time())
    stack.uplink("B0003", t0, 1)
    stack.wait_events("B0003", 3)
    # both watchers saw it: each logged the offline crossing
    wait_for(
        lambda: all("B0003 (beacon): state offline" in i.log() for i in (first, second)),
        what="both ingesters to notice the device offline",
    )
    counts = select(
        stack.influxd,
        stack.database,
        "SELECT count(state) FROM event WHERE device = 'B0003' GROUP BY kind",
    )
    assert sorted((c["kind"], c["count"]) for c in counts) == [("offline", 1), ("state", 2)]


def test_a_restart_raises_no_false_change_and_records_what_happened_meanwhile(
    stack: Stack,
) -> None:
    ing = stack.ingester()
    t0 = int(time.time())
    stack.uplink("B0004", t0, 1)
    stack.uplink("B0005", t0, 1, battery=5)
    stack.wait_events("B0004", 3)
    stack.wait_events("B0005", 4)
    before = stack.events("B0004"), stack.events("B0005")
    ing.stop()
    ing.start()
    # the log holds both runs: the second line is the restarted watcher's first poll, logged
    # after it wrote whatever it found to record
    wait_for(
        lambda: ing.log().count("status watcher: full poll done") >= 2,
        what="the restarted watcher's first poll",
    )
    assert (stack.events("B0004"), stack.events("B0005")) == before

    # a change that happens while no ingester runs is recorded, at its true time, on start
    t1 = int(time.time())
    stack.uplink("B0004", t1, 2)
    events = stack.wait_events("B0004", 5)
    ing.stop()
    assert len(events) == 5
    wait_for(lambda: time.time() > t1 + OFFLINE_S + 1, timeout=20, what="the device to go offline")
    ing.start()
    events = stack.wait_events("B0004", 8)
    assert events[5:] == [
        ("state", "late", "online", t1 + LATE_S),
        ("state", "offline", "late", t1 + OFFLINE_S),
        ("offline", "raised", "cleared", t1 + OFFLINE_S),
    ]


def test_uplinks_kept_by_the_broker_while_ingest_was_down_raise_no_false_change(
    stack: Stack,
) -> None:
    """The device never stops talking, but for 8 s (past offline_after) its uplinks wait in the
    broker for the stopped ingester's session. On start they are stored before the watcher
    judges silence (`TELEMETRY_STATUS_SETTLE_SECONDS`, 1 s in tests): no late, no offline, no
    return. Judged at once (0 s), the first poll ran before they were stored: all three came."""
    ing = stack.ingester()
    t0 = int(time.time())
    stack.uplink("B0006", t0, 1)
    wait_for(lambda: stack.rows("SELECT * FROM uplink WHERE device = 'B0006'"), what="stored")
    ing.stop()
    seq = 1

    def talk_until(done: Callable[[], bool], timeout: float, what: str) -> None:
        nonlocal seq

        def step() -> bool:
            nonlocal seq
            if int(time.time()) > t0 + seq:
                seq += 1
                stack.uplink("B0006", t0 + seq - 1, seq)
            return done()

        wait_for(step, timeout, what)

    talk_until(lambda: time.time() > t0 + OFFLINE_S + 2, 20, "the ingester away past offline")
    polls = ing.log().count("status watcher: full poll done")
    ing.start()
    talk_until(
        lambda: ing.log().count("status watcher: full poll done") > polls,
        40,
        "the restarted watcher's first poll",
    )
    assert stack.events("B0006") == []


# api/statuscache.py's debug lines: whether it follows the up events, and each poll it makes.
FOLLOWING = "following the up events True"
INCREMENTAL = "incremental poll of InfluxDB done"


def _api_state(api: ApiProcess, device: str) -> str | None:
    got = httpx.get(f"{api.url}/v1/devices/{device}", headers=AUTH, timeout=5)
    return str(got.json()["status"]["state"]) if got.status_code == 200 else None


def test_the_api_sees_a_return_from_its_up_event_with_the_poll_slowed_to_the_backstop(
    stack: Stack,
) -> None:
    stack.ingester()
    api = stack.make_api(
        catalogue_dir=TYPES,
        status_poll_seconds=1,
        status_backstop_seconds=300,  # longer than the test: no incremental poll can help
        log_level="DEBUG",
    ).start(stream=True)
    t0 = int(time.time())
    stack.uplink("B0006", t0, 1)
    wait_for(lambda: _api_state(api, "B0006") == "offline", what="the API to show it offline")
    assert FOLLOWING in api.log()
    polls = api.log().count(INCREMENTAL)
    stack.uplink("B0006", int(time.time()), 2)
    wait_for(lambda: _api_state(api, "B0006") == "online", what="the API to show it online")
    assert api.log().count(INCREMENTAL) == polls  # seen from its event: no poll came between
    alarms = httpx.get(f"{api.url}/v1/alarms", headers=AUTH, timeout=5).json()["alarms"]
    assert [a for a in alarms if a["device"] == "B0006"] == []


def test_with_no_up_events_the_api_polls_as_before_and_sees_a_return(stack: Stack) -> None:
    stack.ingester(ingest_events=False)
    api = stack.make_api(catalogue_dir=TYPES, status_poll_seconds=1, log_level="DEBUG").start(
        stream=True
    )
    t0 = int(time.time())
    stack.uplink("B0007", t0, 1)
    wait_for(lambda: _api_state(api, "B0007") == "offline", what="the API to show it offline")
    polls = api.log().count(INCREMENTAL)
    stack.uplink("B0007", int(time.time()), 2)
    wait_for(lambda: _api_state(api, "B0007") == "online", what="the API to show it online")
    assert api.log().count(INCREMENTAL) > polls
    assert FOLLOWING not in api.log()
