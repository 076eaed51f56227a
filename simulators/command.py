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

import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from simulators.behaviour import DRAIN_UPLINKS
from simulators.callbacks import CallbackSender
from simulators.launch import Flags, fleet_for, misbehave, open_sink, shape_for
from simulators.publisher import PublisherError
from simulators.report import note, progress_bar, report
from simulators.runner import Runner, WallClock
from telemetry.options import Duration, devices_option, seed_option, speed_option
from telemetry.runtime import clean_errors, start, stop_on_signals

DRAIN_TIMEOUT = 15.0  # seconds to wait for the last PUBACKs before reporting


@click.command("simulate")
@devices_option(most=100_000, default=2, help="Devices of each type.")
@click.option(
    "--types",
    "types_",
    default=None,
    help="Comma list of device types (default: every type in the catalogue).",
)
@speed_option(
    default=1.0,
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
@seed_option(help="Same seed, same devices and values.")
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
def simulate(**flags: Any) -> None:
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
    parsed = Flags(**flags)
    settings, catalogue = start(mqtt_url=parsed.mqtt_url)
    fleet = fleet_for(catalogue, parsed)
    publisher = open_sink(settings.mqtt, parsed)
    stop = threading.Event()
    stop_on_signals(stop)
    runner = Runner(
        fleet, settings.mqtt_topic_prefix, publisher, WallClock(), stop, shape_for(parsed)
    )
    try:
        _publish(runner, parsed, began)
    except PublisherError as exc:
        note(str(exc))
        stop.set()
    complete = publisher.drain(DRAIN_TIMEOUT)
    publisher.close()
    report(runner.counts, publisher, parsed.report_json)
    if not complete or (isinstance(publisher, CallbackSender) and publisher.failed):
        sys.exit(1)


def _publish(runner: Runner, flags: Flags, began: float) -> None:
    """The backfill if asked, then live or load mode until `--duration`, a signal or the end."""
    until = began + flags.duration if flags.duration is not None else None
    t0 = time.time()
    if flags.backfill is not None:
        progress = progress_bar if sys.stderr.isatty() else None
        t0 = runner.backfill(t0 - flags.backfill, progress)
        if progress is not None:
            sys.stderr.write("\n")  # end the progress line, finished or interrupted
    misbehave(runner, t0, flags)
    if flags.backfill_only or runner.stop.is_set() or (until is not None and time.time() >= until):
        return
    if flags.rate is not None:
        runner.load(t0, flags.rate, until)
    else:
        runner.live(t0, flags.speed, until)
