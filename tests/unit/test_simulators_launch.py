"""simulators/launch.py: the flags of `telemetry simulate` checked together, the fleet, the sink."""

from __future__ import annotations

import pytest

from catalogue import load_catalogue
from simulators.callbacks import advanced_bodies, uplink_bodies
from simulators.command import simulate
from simulators.fleet import bodies
from simulators.launch import Flags, check_types, fleet_for, open_sink, shape_for
from simulators.runner import devices_for_rate
from telemetry.errors import StartupError
from telemetry.settings import Settings

CATALOGUE = load_catalogue()


def _flags(*args: str) -> Flags:
    """The flags as click parses them, so that `Flags` is checked against the real options."""
    ctx = simulate.make_context("simulate", list(args))
    return Flags(**ctx.params)


def test_the_defaults_simulate_every_type() -> None:
    assert check_types(CATALOGUE, _flags()) == [t.name for t in CATALOGUE]


def test_types_are_deduplicated_in_the_order_given() -> None:
    names = check_types(CATALOGUE, _flags("--types", "scale, wristband,scale"))
    assert names == ["scale", "wristband"]


def test_more_misbehaving_devices_than_the_fleet_has_is_refused() -> None:
    flags = _flags("--types", "scale", "--devices", "2", "--silent", "2", "--low-battery", "1")
    with pytest.raises(StartupError, match=r"ask for 3 devices; the fleet has 2 \(raise"):
        check_types(CATALOGUE, flags)


def test_rate_mode_grows_the_fleet_to_carry_the_rate(capsys: pytest.CaptureFixture[str]) -> None:
    fleet = fleet_for(CATALOGUE, _flags("--types", "scale", "--devices", "1", "--rate", "50"))
    assert len(fleet) == devices_for_rate(50.0) > 1
    assert f"needs {len(fleet)} devices of each type" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--callback-key", "k"], "--callback-key and --advanced go with --callback-url"),
        (["--advanced"], "--callback-key and --advanced go with --callback-url"),
        (["--callback-url", "http://127.0.0.1:9/v1/sigfox"], "needs --callback-key"),
        (
            ["--callback-url", "ftp://example.org", "--callback-key", "k"],
            "must be an http:// or https:// URL, got 'ftp://example.org'",
        ),
    ],
)
def test_callback_flags_that_do_not_go_together(args: list[str], message: str) -> None:
    with pytest.raises(StartupError, match=message):
        open_sink(Settings().mqtt, _flags(*args))


def test_the_body_shape_follows_the_sink() -> None:
    url = ("--callback-url", "http://127.0.0.1:9/v1/sigfox", "--callback-key", "k")
    assert shape_for(_flags()) is bodies
    assert shape_for(_flags(*url)) is uplink_bodies
    assert shape_for(_flags(*url, "--advanced")) is advanced_bodies
