"""The status watcher's pure parts: the `event` lines and the `status` MQTT events it builds."""

from __future__ import annotations

import json

from catalogue.times import NS
from ingest.watcher import counts, event_lines, status_events
from status.rules import Change, Status
from status.tracker import Update

T = 1_716_000_000 * NS


def offline_update() -> Update:
    previous = Status("late", T + 20 * NS, T)
    now = Status("offline", T + 60 * NS, T, {"offline": T + 60 * NS})
    changes = [
        Change("state", "offline", "late", T + 60 * NS, "no uplink since 2024-05-18T02:40:00Z"),
        Change("offline", "raised", "cleared", T + 60 * NS, "no uplink"),
    ]
    return Update("1A2B3C", "wristband", previous, now, changes)


def test_one_event_point_per_change_at_its_crossing_time() -> None:
    assert event_lines(offline_update()) == [
        'event,device=1A2B3C,kind=state,type=wristband state="offline",previous="late",'
        f'detail="no uplink since 2024-05-18T02:40:00Z" {T + 60 * NS}',
        'event,device=1A2B3C,kind=offline,type=wristband state="raised",previous="cleared",'
        f'detail="no uplink" {T + 60 * NS}',
    ]


def test_one_status_event_per_instant_as_design_section_9() -> None:
    ((topic, payload),) = status_events("events", offline_update())
    assert topic == "events/wristband/1A2B3C/status"
    assert json.loads(payload) == {
        "device": "1A2B3C",
        "type": "wristband",
        "time": "2024-05-18T02:41:00Z",
        "state": "offline",
        "previous": "late",
        "alarms": [{"kind": "offline", "since": "2024-05-18T02:41:00Z"}],
    }


def test_counts_name_every_state_and_kind() -> None:
    states, alarms = counts([Status("online", T, T), offline_update().status])
    assert states == {"online": 1, "late": 0, "offline": 1}
    assert alarms == {"offline": 1, "battery_low": 0}
