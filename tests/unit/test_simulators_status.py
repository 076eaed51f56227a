"""Simulated devices against the status rules: cadence consistent with the catalogue's
`interval`, `--silent` devices that stop, `--low-battery` devices that drain to empty."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalogue import load_catalogue
from simulators.behaviour import DRAIN_UPLINKS, Draining
from simulators.command import simulate
from simulators.fleet import build_fleet, transmit
from simulators.runner import Runner, misbehaving
from tests.unit.test_simulators import BUILTIN, T0, FakeClock, Recorder, slot_times

CATALOGUE = load_catalogue()
DAY = 86400


@pytest.mark.parametrize("type_name", BUILTIN)
def test_a_device_that_loses_one_uplink_is_still_online(type_name: str) -> None:
    """Over ten days, any two slots with one between them are at most two intervals apart."""
    late_after = CATALOGUE[type_name].status.late_after
    for device in build_fleet(CATALOGUE, [type_name], 5, seed=1, loss=0.0):
        times = slot_times(device.schedule, T0, T0 + 10 * DAY)
        worst = max(b - a for a, _, b in zip(times, times[1:], times[2:], strict=False))
        assert worst <= late_after, (device.device_id, worst, late_after)


def test_a_type_added_as_a_file_reports_at_its_catalogue_interval(tmp_path: Path) -> None:
    (tmp_path / "beacon.toml").write_text(
        'name = "beacon"\nlayout = "battery::uint:8"\n[fields.battery]\nunit = "%"\n'
        'max = 100\n[status]\ninterval = "2s"\n'
    )
    catalogue = load_catalogue(tmp_path)
    (device,) = build_fleet(catalogue, ["beacon"], 1, seed=1, loss=0.0)
    gaps = [device.schedule.slot_time(k + 2) - device.schedule.slot_time(k) for k in range(1000)]
    assert max(gaps) <= catalogue["beacon"].status.late_after


def test_silent_devices_stop_after_the_given_time_and_the_others_go_on() -> None:
    clock = FakeClock(T0, tick=0.001)
    fleet = build_fleet(CATALOGUE, ["wristband"], 4, seed=2, loss=0.0)
    sink = Recorder(clock)
    runner = Runner(fleet, "uplink", sink, clock, threading.Event())
    quiet, _ = misbehaving(fleet, 2, 0)
    runner.silent = frozenset(d.device_id for d in quiet)
    runner.silent_at = T0 + 3600
    runner.live(T0, 1.0, T0 + 4 * 3600)
    by_device: dict[str, list[float]] = {}
    for _, body, at in sink.sent:
        by_device.setdefault(str(body["device"]), []).append(at)
    for d in fleet:
        sent = by_device[d.device_id]
        if d in quiet:
            assert sent
            assert max(sent) < T0 + 3600
        else:
            assert max(sent) > T0 + 3 * 3600


def test_a_draining_battery_is_empty_within_its_uplinks() -> None:
    (device,) = build_fleet(CATALOGUE, ["weather_station"], 1, seed=3, loss=0.0)
    spec = device.dtype.fields["battery"]
    gap = device.schedule.mean_gap
    model = Draining(device.model, spec, T0, DRAIN_UPLINKS * gap)
    levels = [float(model.values(T0 + i * gap)["battery"]) for i in range(DRAIN_UPLINKS + 2)]
    assert levels[0] == device.model.values(T0)["battery"]
    assert all(b <= a for a, b in itertools.pairwise(levels))
    assert levels[-1] == 0
    low = CATALOGUE["weather_station"].status.battery_low
    assert any(0 < x <= low for x in levels)
    # the other fields are the model's own
    assert model.values(T0 + gap)["co2"] == transmit(device, 0, T0 + gap).values["co2"]


def test_misbehaving_devices_are_distinct_and_need_a_battery_to_drain() -> None:
    fleet = build_fleet(CATALOGUE, BUILTIN, 2, seed=1, loss=0.0)
    quiet, draining = misbehaving(fleet, 2, 3)
    assert len(quiet) == 2
    assert len(draining) == 3
    assert not set(map(id, quiet)) & set(map(id, draining))


def test_more_silent_devices_than_the_fleet_silences_all_of_it() -> None:
    """With --rate the fleet is sized after the check: a larger --silent silences every device."""
    fleet = build_fleet(CATALOGUE, BUILTIN, 1, seed=1, loss=0.0)
    quiet, draining = misbehaving(fleet, len(fleet) + 3, 2)
    assert [d.device_id for d in quiet] == [d.device_id for d in fleet]
    assert draining == []


def test_more_misbehaving_devices_than_the_fleet_is_refused() -> None:
    result = CliRunner().invoke(simulate, ["--devices", "1", "--silent", "3", "--low-battery", "2"])
    assert result.exit_code == 2
    assert "ask for 5 devices; the fleet has 4" in result.output


@pytest.mark.parametrize("type_name", BUILTIN)
def test_without_low_battery_no_simulated_battery_reaches_the_alarm(type_name: str) -> None:
    low = CATALOGUE[type_name].status.battery_low
    for device in build_fleet(CATALOGUE, [type_name], 5, seed=4, loss=0.0):
        levels = [float(device.model.values(T0 + d * DAY)["battery"]) for d in range(0, 730, 3)]
        assert min(levels) > low
