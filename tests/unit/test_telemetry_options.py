"""telemetry/options.py and the stop event of telemetry/runtime.py, seen from both commands."""

from __future__ import annotations

import signal
import threading

import click
import pytest

from simulators.command import simulate
from telemetry.dev.command import dev
from telemetry.runtime import stop_on_signals

SHARED = ("--devices", "--speed", "--seed")


def _option(command: click.Command, flag: str) -> click.Option:
    found = [p for p in command.params if isinstance(p, click.Option) and flag in p.opts]
    assert len(found) == 1, f"{command.name} has no {flag}"
    return found[0]


@pytest.mark.parametrize("flag", SHARED)
def test_a_shared_flag_has_one_type_and_floor_in_both_commands(flag: str) -> None:
    ours, theirs = _option(simulate, flag), _option(dev, flag)
    assert type(ours.type) is type(theirs.type)
    assert getattr(ours.type, "min", None) == getattr(theirs.type, "min", None)
    assert ours.show_default
    assert theirs.show_default


def test_each_command_keeps_its_own_defaults_and_ceiling() -> None:
    # DESIGN sections 5 and 6: real devices by default in simulate, a demo in dev.
    assert {f: _option(simulate, f).default for f in SHARED} == {
        "--devices": 2,
        "--speed": 1.0,
        "--seed": 1,
    }
    assert {f: _option(dev, f).default for f in SHARED} == {
        "--devices": 3,
        "--speed": 60.0,
        "--seed": 1,
    }
    simulate_devices, dev_devices = _option(simulate, "--devices"), _option(dev, "--devices")
    assert isinstance(simulate_devices.type, click.IntRange)
    assert isinstance(dev_devices.type, click.IntRange)
    assert (simulate_devices.type.max, dev_devices.type.max) == (100_000, 1000)


def test_a_signal_sets_the_stop_event_and_the_old_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    previous = stop_on_signals(stop)
    try:
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert signal.getsignal(signal.SIGTERM) is before
