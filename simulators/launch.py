"""What a `telemetry simulate` run starts from, decided from its flags before the first uplink.

In order: the flags checked together and the device types named (`fleet_for`, which also sizes
the fleet for `--rate` and says when a type runs faster than Sigfox allows or a speed is capped);
the sink the uplinks go to, an MQTT publisher or an HTTP callback sender (`open_sink`) with the
body shape that goes with it (`shape_for`); and, once the live run begins, the `--silent` and
`--low-battery` devices (`misbehave`). A wrong combination is a StartupError: one line, exit 2.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from catalogue import Catalogue
from sigfox.limits import DAILY_UPLINKS
from simulators.behaviour import DRAIN_UPLINKS, Draining
from simulators.callbacks import CallbackSender, advanced_bodies, uplink_bodies
from simulators.fleet import Device, bodies, build_fleet
from simulators.localtime import DAY
from simulators.publisher import Publisher, PublisherError
from simulators.report import note
from simulators.runner import Runner, Shape, capped_speeds, devices_for_rate, misbehaving
from telemetry.errors import StartupError
from telemetry.settings import MqttEndpoint


@dataclass(frozen=True)
class Flags:
    """The flags of `telemetry simulate`, as click parsed them (simulators/command.py)."""

    devices: int
    types_: str | None
    speed: float
    duration: float | None
    backfill: float | None
    backfill_only: bool
    rate: float | None
    loss: float
    seed: int
    silent: int
    silent_after: float
    low_battery: int
    mqtt_url: str | None
    broker_wait: float
    callback_url: str | None
    callback_key: str | None
    advanced: bool
    report_json: Path | None


def fleet_for(catalogue: Catalogue, flags: Flags) -> list[Device]:
    """The devices to simulate, once the flags are known to go together."""
    names = check_types(catalogue, flags)
    devices = flags.devices
    rate = flags.rate
    if rate is not None and devices * len(names) < devices_for_rate(rate):
        devices = math.ceil(devices_for_rate(rate) / len(names))
        note(
            f"--rate {rate:g} needs {devices} devices of each type (one uplink per device "
            "every 2 s at most); using that"
        )
    fleet = build_fleet(catalogue, names, devices, flags.seed, flags.loss)
    _note_fast_types(fleet)
    if rate is None:
        for type_name, cap in capped_speeds(fleet, flags.speed).items():
            note(
                f"speed {flags.speed:g} capped at {cap} for {type_name}: a device never sends "
                "twice within one second"
            )
    return fleet


def check_types(catalogue: Catalogue, flags: Flags) -> list[str]:
    """The device types to simulate, after checking that the flags go together."""
    if flags.rate is not None and flags.speed != 1.0:
        raise StartupError("--rate (load mode) and --speed cannot be used together")
    if flags.backfill_only and flags.backfill is None:
        raise StartupError("--backfill-only needs --backfill")

    known = [t.name for t in catalogue]
    types_ = flags.types_
    names = [t.strip() for t in types_.split(",") if t.strip()] if types_ else known
    unknown = [n for n in names if n not in catalogue]
    if unknown or not names:
        bad = unknown[0] if unknown else types_
        raise StartupError(f"unknown device type {bad!r}; known: {', '.join(known)}")
    names = list(dict.fromkeys(names))
    wanted = flags.silent + flags.low_battery
    if wanted > flags.devices * len(names) and flags.rate is None:
        raise StartupError(
            f"--silent and --low-battery ask for {wanted} devices; the fleet has "
            f"{flags.devices * len(names)} (raise --devices)"
        )
    return names


def _note_fast_types(fleet: list[Device]) -> None:
    """Say so when a type's catalogue interval makes its devices exceed Sigfox's allowance."""
    seen: set[str] = set()
    for d in fleet:
        period = d.schedule.mean_gap
        if d.dtype.name not in seen and period < DAY / DAILY_UPLINKS:
            seen.add(d.dtype.name)
            note(
                f"{d.dtype.name} reports every {period:g} s to match its catalogue interval: "
                f"more than Sigfox's {DAILY_UPLINKS} uplinks a day"
            )


def open_sink(mqtt: MqttEndpoint, flags: Flags) -> Publisher | CallbackSender:
    """The MQTT publisher, connected; or, with --callback-url, the HTTP callback sender."""
    url, key = flags.callback_url, flags.callback_key
    if url is None:
        if key is not None or flags.advanced:
            raise StartupError("--callback-key and --advanced go with --callback-url")
        publisher = Publisher(mqtt)
        try:
            publisher.connect(flags.broker_wait)
        except PublisherError as exc:
            raise StartupError(str(exc)) from None
        return publisher
    if not key:
        raise StartupError("--callback-url needs --callback-key (a TELEMETRY_CALLBACK_KEYS key)")
    if not url.startswith(("http://", "https://")):
        raise StartupError(f"--callback-url must be an http:// or https:// URL, got {url!r}")
    return CallbackSender(url, key)


def shape_for(flags: Flags) -> Shape:
    """The bodies a transmission becomes: MQTT messages, or DATA UPLINK/ADVANCED callbacks."""
    if flags.callback_url is None:
        return bodies
    return advanced_bodies if flags.advanced else uplink_bodies


def misbehave(runner: Runner, t0: float, flags: Flags) -> None:
    """Pick the `--silent` and `--low-battery` devices and make them misbehave from `t0` on."""
    quiet, draining = misbehaving(runner.fleet, flags.silent, flags.low_battery)
    if quiet:
        runner.silent = frozenset(d.device_id for d in quiet)
        runner.silent_at = t0 + flags.silent_after
        ids = ", ".join(f"{d.dtype.name} {d.device_id}" for d in quiet)
        note(f"going silent after {flags.silent_after:g} s: {ids}")
    if draining:
        index = {id(d): i for i, d in enumerate(runner.fleet)}
        for d in draining:
            spec = d.dtype.fields[d.dtype.status.battery_field or ""]
            model = Draining(d.model, spec, t0, DRAIN_UPLINKS * d.schedule.mean_gap)
            runner.fleet[index[id(d)]] = dataclasses.replace(d, model=model)
        note(
            "draining the battery: " + ", ".join(f"{d.dtype.name} {d.device_id}" for d in draining)
        )
