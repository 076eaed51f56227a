"""The status rules without servers: states, alarms, crossing times, restarts from records."""

from __future__ import annotations

from catalogue.devicetype import StatusSpec
from catalogue.times import NS
from status.rules import (
    Change,
    Reading,
    Status,
    moments,
    recorded,
    seed,
    state_at,
    step,
)

SPEC = StatusSpec(interval=10.0, offline_after=60.0, battery_field="battery", battery_low=15.0)
T0 = 1_716_000_000 * NS


def at(seconds: float) -> int:
    return T0 + round(seconds * NS)


def test_states_follow_the_newest_uplink_and_the_clock() -> None:
    assert state_at(SPEC, T0, at(20)) == ("online", T0)  # exactly two intervals: still online
    assert state_at(SPEC, T0, at(20.001)) == ("late", at(20))
    assert state_at(SPEC, T0, at(60)) == ("late", at(20))
    assert state_at(SPEC, T0, at(61)) == ("offline", at(60))


def test_a_silent_device_goes_late_then_offline_and_its_next_uplink_clears_it() -> None:
    s, changes = step(SPEC, None, Reading(T0, 80, T0), at(5))
    assert (s.state, changes) == ("online", [])
    s, changes = step(SPEC, s, Reading(T0, 80, T0), at(25))
    assert [(c.kind, c.state, c.previous, c.time_ns) for c in changes] == [
        ("state", "late", "online", at(20))
    ]
    assert (s.state, s.since_ns) == ("late", at(20))
    s, changes = step(SPEC, s, Reading(T0, 80, T0), at(70))
    assert [(c.kind, c.state, c.previous, c.time_ns) for c in changes] == [
        ("state", "offline", "late", at(60)),
        ("offline", "raised", "cleared", at(60)),
    ]
    assert s.alarms == {"offline": at(60)}
    s, changes = step(SPEC, s, Reading(at(90), 80, at(90)), at(91))
    assert [(c.kind, c.state, c.previous, c.time_ns) for c in changes] == [
        ("state", "online", "offline", at(90)),
        ("offline", "cleared", "raised", at(90)),
    ]
    assert (s.state, s.since_ns, s.alarms) == ("online", at(90), {})
    # the same readings again: nothing more to record
    assert step(SPEC, s, Reading(at(90), 80, at(90)), at(92))[1] == []


def test_the_return_is_the_first_uplink_after_the_silence_when_known() -> None:
    late = Status("late", at(20), T0)
    s, changes = step(SPEC, late, Reading(at(40), None, 0, returned_ns=at(30)), at(41))
    assert changes[0].time_ns == at(30)
    assert (s.since_ns, s.last_ns) == (at(30), at(40))


def test_two_observers_compute_the_same_changes_whenever_they_look() -> None:
    early = step(SPEC, Status("online", T0, T0), Reading(T0), at(21))[1]
    later = step(SPEC, Status("online", T0, T0), Reading(T0), at(59))[1]
    assert early == later


def test_an_offline_device_seen_for_the_first_time_records_late_then_offline() -> None:
    s, changes = step(SPEC, None, Reading(T0), at(3600))
    assert [(c.state, c.time_ns) for c in changes] == [
        ("late", at(20)),
        ("offline", at(60)),
        ("raised", at(60)),
    ]
    assert s.state == "offline"


def test_battery_low_is_raised_at_or_below_the_threshold_and_cleared_above() -> None:
    s, changes = step(SPEC, None, Reading(T0, 16, T0), at(1))
    assert changes == []
    s, changes = step(SPEC, s, Reading(at(10), 15, at(10)), at(11))
    assert [(c.kind, c.state, c.time_ns) for c in changes] == [("battery_low", "raised", at(10))]
    assert s.alarms == {"battery_low": at(10)}
    assert step(SPEC, s, Reading(at(20), 3, at(20)), at(21))[1] == []
    s, changes = step(SPEC, s, Reading(at(30), 100, at(30)), at(31))
    assert [(c.kind, c.state, c.time_ns) for c in changes] == [("battery_low", "cleared", at(30))]


def test_no_battery_field_means_no_battery_alarm() -> None:
    spec = StatusSpec(interval=10.0, offline_after=60.0, battery_field=None)
    assert step(spec, None, Reading(T0, 0, T0), at(1))[1] == []


def test_a_restart_rebuilds_the_recorded_status_and_records_nothing_twice() -> None:
    # recorded before the restart: late at +20 s, from an uplink at T0
    last = {"state": ("late", at(20))}
    prev = recorded(SPEC, last)
    assert prev == Status("late", at(20), T0)
    # still late: nothing to record
    assert step(SPEC, prev, Reading(T0), at(30))[1] == []
    # it went offline while we were down: recorded with its true crossing time
    assert [(c.state, c.time_ns) for c in step(SPEC, prev, Reading(T0), at(100))[1]] == [
        ("offline", at(60)),
        ("raised", at(60)),
    ]


def test_a_restart_keeps_recorded_alarms() -> None:
    last = {
        "state": ("offline", at(60)),
        "offline": ("raised", at(60)),
        "battery_low": ("raised", at(0)),
    }
    prev = recorded(SPEC, last)
    assert prev is not None
    assert prev.alarms == {"offline": at(60), "battery_low": at(0)}
    assert step(SPEC, prev, Reading(T0, 5, T0), at(100))[1] == []


def test_only_alarms_recorded_seeds_the_baseline_with_them() -> None:
    s = seed(SPEC, {"battery_low": ("raised", T0)}, Reading(T0, 5, T0))
    assert (s.state, s.alarms) == ("online", {"battery_low": T0})
    assert step(SPEC, s, Reading(T0, 5, T0), at(1))[1] == []


def test_moments_group_the_changes_of_one_instant_into_one_status_event() -> None:
    prev = Status("late", at(20), T0)
    changes = [
        Change("state", "offline", "late", at(60), ""),
        Change("offline", "raised", "cleared", at(60), ""),
    ]
    (m,) = moments(prev, changes)
    assert (m.time_ns, m.state, m.previous, m.alarms) == (
        at(60),
        "offline",
        "late",
        {"offline": at(60)},
    )


def test_an_uplink_stamped_the_second_the_silence_was_declared_keeps_both_points() -> None:
    offline = Status("offline", at(60), T0, {"offline": at(60)})
    _, changes = step(SPEC, offline, Reading(at(60)), at(61))
    assert [c.time_ns for c in changes] == [at(60) + 1, at(60) + 1]
