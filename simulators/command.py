"""`telemetry simulate`: realistic Sigfox devices publishing uplinks to the MQTT broker.

Modes (DESIGN section 6):
- real time (default): each device sends on its own rhythm, about every 10 to 30 minutes;
- `--speed N`: rhythms and uplink rate N times faster, timestamps still the wall clock; capped
  per device type so that a device never sends twice within one second (said on stderr);
- `--backfill 7d`: first publishes 7 days of history ending now, with their own timestamps, as
  fast as the broker acknowledges; then goes on live, unless `--backfill-only` or `--duration`
  (counted from the start, backfill included; a backfill always completes) says stop;
- `--rate N`: load mode, N transmissions a second in all, round-robin over the fleet;
- `--silent N` and `--low-battery N` (DESIGN section 10, any mode): N devices stop sending
  `--silent-after` into the live run (after any backfill), N others drain their battery.
With `--callback-url` the same uplinks go as Sigfox HTTP callbacks instead of MQTT (DESIGN
section 11, simulators/callbacks.py).
At the end, one line on stderr: uplinks published, messages (station copies) acknowledged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import click

from catalogue import Catalogue
from catalogue.durations import HINT, parse_seconds
from sigfox.limits import DAILY_UPLINKS
from simulators.behaviour import DRAIN_UPLINKS, Draining
from simulators.callbacks import CallbackSender, advanced_bodies, uplink_bodies
from simulators.fleet import Device, bodies, build_fleet
from simulators.localtime import DAY
from simulators.publisher import Publisher, PublisherError
from simulators.runner import (
    Counts,
    Runner,
    WallClock,
    capped_speeds,
    devices_for_rate,
    misbehaving,
)
from telemetry.errors import StartupError
from telemetry.runtime import clean_errors, start
from telemetry.settings import MqttEndpoint

DRAIN_TIMEOUT = 15.0  # seconds to wait for the last PUBACKs before reporting


class Duration(click.ParamType[float]):
    """`90`, `30s`, `10m`, `2h`, `7d` -> seconds."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        seconds = parse_seconds(value)
        if seconds is None:
            self.fail(f"{value!r} is not {HINT}", param, ctx)
        return seconds


@click.command("simulate")
@click.option(
    "--devices",
    type=click.IntRange(1, 100_000),
    default=2,
    show_default=True,
    help="Devices of each type.",
)
@click.option(
    "--types",
    "types_",
    default=None,
    help="Comma list of device types (default: every type in the catalogue).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1.0),
    default=1.0,
    show_default=True,
    help="Run rhythms and uplinks N times faster (capped so a device sends at most once a second).",
)
@click.option(
    "--duration",
    type=Duration(),
    default=None,
    help="Stop after this much wall-clock time (30s, 10m, 2h), backfill included.",
)
@click.option(
    "--backfill",
    type=Duration(),
    default=None,
    help="First publish this much history ending now (e.g. 7d), with its timestamps.",
)
@click.option("--backfill-only", is_flag=True, help="Stop once the backfill is published.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Load mode: transmissions per second in all, spread over the fleet.",
)
@click.option(
    "--loss",
    type=click.FloatRange(0.0, 1.0),
    default=0.02,
    show_default=True,
    help="Share of transmissions no base station hears.",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Same seed, same devices and values."
)
@click.option(
    "--silent",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="This many devices stop sending after --silent-after (they go late, then offline).",
)
@click.option(
    "--silent-after",
    type=Duration(),
    default=60.0,
    show_default=True,
    help="Wall-clock time from the start (after any backfill) when the --silent devices stop.",
)
@click.option(
    "--low-battery",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help=f"This many devices drain their battery to empty within {DRAIN_UPLINKS} uplinks.",
)
@click.option("--mqtt-url", default=None, help="mqtt://user:pass@host:port [TELEMETRY_MQTT_URL]")
@click.option(
    "--broker-wait",
    type=click.FloatRange(min=0.0),
    default=5.0,
    show_default=True,
    help="Seconds to keep trying to reach the broker at start.",
)
@click.option(
    "--callback-url",
    default=None,
    help="Send Sigfox HTTP callbacks here instead of MQTT: the URL of /v1/sigfox (the type is "
    "appended) or one with {type} in it.",
)
@click.option("--callback-key", default=None, help="The callback key (TELEMETRY_CALLBACK_KEYS).")
@click.option(
    "--advanced",
    is_flag=True,
    help="With --callback-url: one DATA ADVANCED callback per transmission (stations in "
    "`duplicates`) instead of one DATA UPLINK callback per station.",
)
@click.option(
    "--report-json",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the final counts to this file as JSON.",
)
@clean_errors
def simulate(
    *,
    devices: int,
    types_: str | None,
    speed: float,
    duration: float | None,
    backfill: float | None,
    backfill_only: bool,
    rate: float | None,
    loss: float,
    seed: int,
    silent: int,
    silent_after: float,
    low_battery: int,
    mqtt_url: str | None,
    broker_wait: float,
    callback_url: str | None,
    callback_key: str | None,
    advanced: bool,
    report_json: Path | None,
) -> None:
    """Simulate Sigfox devices publishing uplinks over MQTT at QoS 1.

    Every type of the catalogue is simulated (types added as files too), each device with
    its own rhythm, at most 140 uplinks a day, heard by one to three base stations (one
    message per station), some transmissions lost.

    \b
    Modes:
      (default)      real time, until --duration or Ctrl-C
      --speed N      rhythms N times faster, timestamps still the wall clock
      --backfill 7d  first the last 7 days with their own timestamps, as fast as
                     the broker acknowledges; then live, unless --backfill-only.
                     --duration counts from the start; a backfill always completes
      --rate N       load: N transmissions a second spread over the fleet
      --silent N     N devices stop sending after --silent-after (default 60 s)
      --low-battery N  N devices drain their battery to empty

    Ends with one line on stderr: uplinks published, messages acknowledged; exit 1 if
    some were never acknowledged.
    """
    began = time.time()
    settings, catalogue = start(mqtt_url=mqtt_url)
    names = _check(
        catalogue,
        types_,
        speed=speed,
        rate=rate,
        backfill=backfill,
        backfill_only=backfill_only,
        devices=devices,
        misbehaving=silent + low_battery,
    )
    if rate is not None and devices * len(names) < devices_for_rate(rate):
        devices = math.ceil(devices_for_rate(rate) / len(names))
        note(
            f"--rate {rate:g} needs {devices} devices of each type (one uplink per device "
            "every 2 s at most); using that"
        )
    fleet = build_fleet(catalogue, names, devices, seed, loss)
    _note_fast_types(fleet)
    if rate is None:
        for type_name, cap in capped_speeds(fleet, speed).items():
            note(
                f"speed {speed:g} capped at {cap} for {type_name}: a device never sends twice "
                "within one second"
            )

    publisher = _sink(settings.mqtt, broker_wait, callback_url, callback_key, advanced=advanced)
    stop = threading.Event()
    _stop_on_signals(stop)
    shape = bodies
    if callback_url is not None:
        shape = advanced_bodies if advanced else uplink_bodies
    runner = Runner(fleet, settings.mqtt_topic_prefix, publisher, WallClock(), stop, shape)
    until = began + duration if duration is not None else None
    try:
        t0 = time.time()
        if backfill is not None:
            progress = _progress_bar if sys.stderr.isatty() else None
            t0 = runner.backfill(t0 - backfill, progress)
            if progress is not None:
                sys.stderr.write("\n")  # end the progress line, finished or interrupted
        _misbehave(runner, t0, silent=silent, silent_after=silent_after, low_battery=low_battery)
        if not (backfill_only or stop.is_set() or (until is not None and time.time() >= until)):
            if rate is not None:
                runner.load(t0, rate, until)
            else:
                runner.live(t0, speed, until)
    except PublisherError as exc:
        note(str(exc))
        stop.set()
    complete = publisher.drain(DRAIN_TIMEOUT)
    publisher.close()
    report(runner.counts, publisher, report_json)
    if not complete or (isinstance(publisher, CallbackSender) and publisher.failed):
        sys.exit(1)


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


def _misbehave(
    runner: Runner, t0: float, *, silent: int, silent_after: float, low_battery: int
) -> None:
    """Pick the `--silent` and `--low-battery` devices and make them misbehave from `t0` on."""
    quiet, draining = misbehaving(runner.fleet, silent, low_battery)
    if quiet:
        runner.silent = frozenset(d.device_id for d in quiet)
        runner.silent_at = t0 + silent_after
        ids = ", ".join(f"{d.dtype.name} {d.device_id}" for d in quiet)
        note(f"going silent after {silent_after:g} s: {ids}")
    if draining:
        index = {id(d): i for i, d in enumerate(runner.fleet)}
        for d in draining:
            spec = d.dtype.fields[d.dtype.status.battery_field or ""]
            model = Draining(d.model, spec, t0, DRAIN_UPLINKS * d.schedule.mean_gap)
            runner.fleet[index[id(d)]] = dataclasses.replace(d, model=model)
        note(
            "draining the battery: " + ", ".join(f"{d.dtype.name} {d.device_id}" for d in draining)
        )


def _sink(
    mqtt: MqttEndpoint,
    broker_wait: float,
    callback_url: str | None,
    callback_key: str | None,
    *,
    advanced: bool,
) -> Publisher | CallbackSender:
    """The MQTT publisher, connected; or, with --callback-url, the HTTP callback sender."""
    if callback_url is None:
        if callback_key is not None or advanced:
            raise StartupError("--callback-key and --advanced go with --callback-url")
        publisher = Publisher(mqtt)
        try:
            publisher.connect(broker_wait)
        except PublisherError as exc:
            raise StartupError(str(exc)) from None
        return publisher
    if not callback_key:
        raise StartupError("--callback-url needs --callback-key (a TELEMETRY_CALLBACK_KEYS key)")
    if not callback_url.startswith(("http://", "https://")):
        raise StartupError(
            f"--callback-url must be an http:// or https:// URL, got {callback_url!r}"
        )
    return CallbackSender(callback_url, callback_key)


def _check(
    catalogue: Catalogue,
    types_: str | None,
    *,
    speed: float,
    rate: float | None,
    backfill: float | None,
    backfill_only: bool,
    devices: int = 1,
    misbehaving: int = 0,
) -> list[str]:
    """The device types to simulate, after checking that the flags go together."""
    if rate is not None and speed != 1.0:
        raise StartupError("--rate (load mode) and --speed cannot be used together")
    if backfill_only and backfill is None:
        raise StartupError("--backfill-only needs --backfill")

    known = [t.name for t in catalogue]
    names = [t.strip() for t in types_.split(",") if t.strip()] if types_ else known
    unknown = [n for n in names if n not in catalogue]
    if unknown or not names:
        bad = unknown[0] if unknown else types_
        raise StartupError(f"unknown device type {bad!r}; known: {', '.join(known)}")
    names = list(dict.fromkeys(names))
    if misbehaving > devices * len(names) and rate is None:
        raise StartupError(
            f"--silent and --low-battery ask for {misbehaving} devices; the fleet has "
            f"{devices * len(names)} (raise --devices)"
        )
    return names


def note(message: str) -> None:
    click.echo(f"telemetry simulate: {message}", err=True)


def report(counts: Counts, publisher: Publisher | CallbackSender, path: Path | None) -> None:
    """One line for people, and optionally a JSON file for scripts."""
    if isinstance(publisher, CallbackSender):
        note(
            f"sent {counts.uplinks} uplinks as {publisher.published} callbacks; "
            f"{publisher.acked} answered 2xx, {publisher.failed} refused or given up, "
            f"{publisher.retried} retries, {publisher.downlinks} downlinks received; "
            f"{counts.lost} of {counts.transmissions} transmissions lost on the radio"
        )
    else:
        note(
            f"published {counts.uplinks} uplinks as {publisher.published} messages (one per "
            f"station); the broker acknowledged {publisher.acked}; {counts.lost} of "
            f"{counts.transmissions} transmissions lost on the radio"
        )
    if path is not None:
        data = {
            "uplinks": counts.uplinks,
            "messages": publisher.published,
            "acknowledged": publisher.acked,
            "transmissions": counts.transmissions,
            "lost": counts.lost,
            "per_type": counts.per_type,
        }
        if isinstance(publisher, CallbackSender):
            data |= {"failed": publisher.failed, "downlinks": publisher.downlinks}
        path.write_text(json.dumps(data, indent=2) + "\n")


def _progress_bar(done: int, total: int) -> None:
    width = 30
    frac = min(1.0, done / total) if total else 1.0
    bar = "#" * int(frac * width)
    sys.stderr.write(f"\rbackfill [{bar:<{width}}] {frac:4.0%} {done}/{total} uplinks")
    sys.stderr.flush()


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
