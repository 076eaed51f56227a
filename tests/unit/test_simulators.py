"""Simulators, pure parts: device models, radio, schedule, fleet and the modes on a fake clock."""

from __future__ import annotations

import itertools
import json
import re
import struct
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner

from catalogue import load_catalogue
from simulators.bounds import quantize
from simulators.command import simulate
from simulators.fleet import bodies, build_fleet, transmit
from simulators.radio import radio_for, seq_number
from simulators.runner import Runner, capped_speeds
from simulators.schedule import Schedule, speed_cap
from telemetry.options import Duration

CATALOGUE = load_catalogue()
BUILTIN = ["wristband", "scale", "weather_station", "plant_sensor"]
T0 = 1_780_000_000.0  # 2026-05-28, a fixed start so that the tests are reproducible
DAY = 86400
PARIS = ZoneInfo("Europe/Paris")

# DESIGN section 2, typed again here: struct formats and the valid ranges after scaling.
LAYOUTS = {
    "wristband": (">BIHBB", ["heart_rate", "steps", "calories", "sleep_phase", "battery"]),
    "scale": (">HHHB", ["weight", "body_fat", "bmi", "battery"]),
    "weather_station": (">hHHHB", ["temperature", "humidity", "co2", "pressure", "battery"]),
    "plant_sensor": (">BHhB", ["soil_moisture", "light", "temperature", "battery"]),
}
SCALES = {
    ("scale", "weight"): 0.01,
    ("scale", "body_fat"): 0.1,
    ("scale", "bmi"): 0.1,
    ("weather_station", "temperature"): 0.01,
    ("weather_station", "humidity"): 0.1,
    ("weather_station", "pressure"): 0.1,
    ("plant_sensor", "temperature"): 0.01,
}
RANGES = {
    "heart_rate": (25, 230),
    "steps": (0, 200000),
    "calories": (0, 20000),
    "sleep_phase": (0, 3),
    "battery": (0, 100),
    "weight": (2, 300),
    "body_fat": (2, 75),
    "bmi": (8, 80),
    "humidity": (0, 100),
    "co2": (250, 10000),
    "pressure": (800, 1100),
    "soil_moisture": (0, 100),
    "light": (0, 65535),
}
TEMPERATURE = {"weather_station": (-40, 85), "plant_sensor": (-30, 60)}


def decode(type_name: str, payload: bytes) -> dict[str, float]:
    """Independent of the project's codec: struct and the DESIGN table."""
    fmt, names = LAYOUTS[type_name]
    assert len(payload) == struct.calcsize(fmt)
    raw = struct.unpack(fmt, payload)
    return {n: r * SCALES.get((type_name, n), 1) for n, r in zip(names, raw, strict=True)}


def in_range(type_name: str, name: str, value: float) -> bool:
    lo, hi = TEMPERATURE[type_name] if name == "temperature" else RANGES[name]
    return lo - 1e-9 <= value <= hi + 1e-9


def local_time(t: float) -> datetime:
    return datetime.fromtimestamp(t, PARIS)


def epoch(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).timestamp()


class FakeClock:
    """Time moves only when the runner waits; `now` never goes backwards."""

    def __init__(self, t: float, tick: float = 0.0) -> None:
        self.t = t
        self.tick = tick  # each reading advances a little, like a real clock

    def now(self) -> float:
        self.t += self.tick
        return self.t

    def wait_until(self, t: float, stop: threading.Event) -> bool:
        self.t = max(self.t, t)
        return not stop.is_set()


class Recorder:
    """A sink that keeps every publish with the clock's time at that moment."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, dict[str, object], float]] = []

    def publish(self, topic: str, payload: bytes, stop: threading.Event) -> bool:
        self.sent.append((topic, json.loads(payload), self.clock.t))
        return True


def run(fleet_args: dict[str, object], clock: FakeClock) -> tuple[Runner, Recorder]:
    fleet = build_fleet(CATALOGUE, **fleet_args)  # type: ignore[arg-type]
    sink = Recorder(clock)
    return Runner(fleet, "uplink", sink, clock, threading.Event()), sink


# --- determinism and ids ----------------------------------------------------------------------


def test_same_seed_same_fleet_and_uplinks() -> None:
    a = build_fleet(CATALOGUE, BUILTIN, 3, seed=7, loss=0.05)
    b = build_fleet(CATALOGUE, BUILTIN, 3, seed=7, loss=0.05)
    c = build_fleet(CATALOGUE, BUILTIN, 3, seed=8, loss=0.05)
    assert [d.device_id for d in a] == [d.device_id for d in b]
    assert [d.device_id for d in a] != [d.device_id for d in c]
    for da, db in zip(a, b, strict=True):
        k = da.schedule.first_after(T0)
        assert bodies(transmit(da, k), 100) == bodies(transmit(db, k), 100)
    # a value at time t does not depend on what was computed before (pure models)
    fresh = build_fleet(CATALOGUE, BUILTIN, 3, seed=7, loss=0.05)
    late = T0 + 3 * DAY
    assert fresh[0].model.values(late) == a[0].model.values(late)


def test_device_ids_are_hex_upper_and_distinct_across_types() -> None:
    fleet = build_fleet(CATALOGUE, BUILTIN, 300, seed=3, loss=0.0)
    ids = [d.device_id for d in fleet]
    assert all(re.fullmatch(r"[0-9A-F]{1,8}", i) for i in ids)
    assert len(set(ids)) == len(ids) == 1200


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", BUILTIN)
def test_values_stay_in_range_and_round_trip(type_name: str) -> None:
    fleet = build_fleet(CATALOGUE, [type_name], 6, seed=11, loss=0.0)
    for device in fleet:
        for step in range(0, 20 * DAY, 2221):  # 20 days, at odd minutes
            t = T0 + step
            values = device.model.values(t)
            payload = device.dtype.encode(values)
            decoded = decode(type_name, payload)
            for name, value in decoded.items():
                assert in_range(type_name, name, value), (device.device_id, t, name, value)
                assert value == pytest.approx(values[name], abs=1e-9)


def test_wristband_steps_accumulate_and_reset_at_midnight() -> None:
    device = build_fleet(CATALOGUE, ["wristband"], 1, seed=5, loss=0.0)[0]
    for day in range(1, 8):
        times = [epoch(2026, 6, day, 0, 1) + m * 600 for m in range(143)]  # 00:01 .. 23:41
        steps = [int(device.model.values(t)["steps"]) for t in times]
        calories = [int(device.model.values(t)["calories"]) for t in times]
        assert steps == sorted(steps)
        assert calories == sorted(calories)
        assert steps[-1] > 3000  # a day's walking
        assert steps[0] < 200  # just after midnight, nearly nothing yet
        next_morning = device.model.values(epoch(2026, 6, day + 1, 0, 2))
        assert int(next_morning["steps"]) < steps[-1]


def test_wristband_sleeps_at_night_with_a_lower_heart_rate() -> None:
    device = build_fleet(CATALOGUE, ["wristband"], 1, seed=5, loss=0.0)[0]
    night = [device.model.values(epoch(2026, 6, d, 3, 30)) for d in range(1, 15)]
    afternoon = [device.model.values(epoch(2026, 6, d, 15, 30)) for d in range(1, 15)]
    assert all(v["sleep_phase"] in (1, 2, 3) for v in night)
    assert all(v["sleep_phase"] == 0 for v in afternoon)
    phases = {
        device.model.values(epoch(2026, 6, 1, 21) + m * 300)["sleep_phase"] for m in range(144)
    }
    assert phases == {0, 1, 2, 3}  # awake in the evening, then light, deep and REM
    night_hr = sum(int(v["heart_rate"]) for v in night) / len(night)
    day_hr = sum(int(v["heart_rate"]) for v in afternoon) / len(afternoon)
    assert night_hr < day_hr - 5


def test_scale_weight_drifts_slowly() -> None:
    device = build_fleet(CATALOGUE, ["scale"], 1, seed=9, loss=0.0)[0]
    mornings = [
        float(device.model.values(epoch(2026, 6, 1, 7) + d * DAY)["weight"]) for d in range(60)
    ]
    assert all(abs(b - a) < 1.5 for a, b in itertools.pairwise(mornings))
    assert max(mornings) - min(mornings) > 0.5  # it does move over two months


def test_weather_station_co2_follows_occupancy() -> None:
    fleet = build_fleet(CATALOGUE, ["weather_station"], 4, seed=2, loss=0.0)
    workdays = [d for d in range(1, 30) if datetime(2026, 6, d, tzinfo=PARIS).weekday() < 5]
    for device in fleet:
        evening = [float(device.model.values(epoch(2026, 6, d, 21))["co2"]) for d in workdays]
        office = [float(device.model.values(epoch(2026, 6, d, 15))["co2"]) for d in workdays]
        assert sum(evening) / len(evening) > sum(office) / len(office) + 50


def test_plant_sensor_light_follows_the_sun_and_soil_gets_watered() -> None:
    device = build_fleet(CATALOGUE, ["plant_sensor"], 1, seed=4, loss=0.0)[0]
    assert all(device.model.values(epoch(2026, 6, d, 3))["light"] == 0 for d in range(1, 10))
    assert all(int(device.model.values(epoch(2026, 6, d, 13))["light"]) > 300 for d in range(1, 10))
    moisture = [int(device.model.values(T0 + h * 3600)["soil_moisture"]) for h in range(24 * 20)]
    rises = [b - a for a, b in itertools.pairwise(moisture) if b - a > 20]
    assert len(rises) >= 2  # watered at least twice in 20 days
    assert min(moisture) < 40 < max(moisture)


@pytest.mark.parametrize("type_name", BUILTIN)
def test_batteries_drain(type_name: str) -> None:
    device = build_fleet(CATALOGUE, [type_name], 1, seed=6, loss=0.0)[0]
    levels = [int(device.model.values(T0 + h * 3600)["battery"]) for h in range(24 * 30)]
    drops = sum(1 for a, b in itertools.pairwise(levels) if b < a)
    rises = [b - a for a, b in itertools.pairwise(levels) if b > a]
    assert drops > 0
    assert all(r > 50 for r in rises)  # only ever up by a recharge or a new battery


# --- schedule -------------------------------------------------------------------------------


def slot_times(schedule: Schedule, start: float, end: float) -> list[float]:
    """Every slot time of `schedule` from the first after `start` up to, not including, `end`."""
    k = schedule.first_after(start)
    times = []
    while (t := schedule.slot_time(k)) < end:
        times.append(t)
        k += 1
    return times


@pytest.mark.parametrize("type_name", BUILTIN)
def test_at_most_140_uplinks_a_day(type_name: str) -> None:
    for device in build_fleet(CATALOGUE, [type_name], 5, seed=1, loss=0.0):
        times = slot_times(device.schedule, T0, T0 + 10 * DAY)
        assert times == sorted(times)
        for i, t in enumerate(times):  # every 24 h window starting at an uplink
            assert sum(1 for u in times[i : i + 200] if u < t + DAY) <= 140
        per_day = len(times) / 10
        assert per_day >= (1.5 if type_name == "scale" else 20)


def test_speed_cap_per_type() -> None:
    fleet = build_fleet(CATALOGUE, BUILTIN, 2, seed=1, loss=0.0)
    caps = capped_speeds(fleet, 1000)
    assert caps == {"wristband": 465, "weather_station": 675}
    assert capped_speeds(fleet, 465) == {}
    for d in fleet:
        assert speed_cap(d.schedule) <= d.schedule.min_gap


def test_speed_cap_is_announced(tmp_path: Path) -> None:
    # the cap is said before connecting; the unreachable broker then ends the run
    result = CliRunner().invoke(
        simulate,
        [
            "--speed",
            "10000",
            "--mqtt-url",
            "mqtt://127.0.0.1:9",
            "--broker-wait",
            "0",
            "--types",
            "wristband",
        ],
    )
    assert "speed 10000 capped at 465 for wristband" in result.output
    assert result.exit_code == 2


# --- radio ----------------------------------------------------------------------------------


def test_sequence_numbers_wrap_at_4096() -> None:
    assert seq_number(4095, 0) == 4095
    assert seq_number(4095, 1) == 0
    device = build_fleet(CATALOGUE, ["wristband"], 1, seed=1, loss=0.0)[0]
    k0 = device.schedule.first_after(T0)
    seqs = [transmit(device, k).seq for k in range(k0, k0 + 5000)]
    assert all(0 <= s < 4096 for s in seqs)
    assert all((b - a) % 4096 == 1 for a, b in itertools.pairwise(seqs))
    assert seqs.count(0) >= 1  # it did wrap


def test_one_to_three_distinct_stations_per_transmission() -> None:
    counts = {1: 0, 2: 0, 3: 0}
    for n in range(40):
        radio = radio_for(1, f"{n:X}", loss=0.0)
        for k in range(200):
            rx = radio.receive(k)
            counts[len(rx)] += 1
            assert len({r.station for r in rx}) == len(rx)
            assert len({r.rssi for r in rx}) == len(rx)
            assert all(-150 <= r.rssi <= -60 and 0 < r.snr <= 40 for r in rx)
            assert all(re.fullmatch(r"[0-9A-F]{4}", r.station) for r in rx)
    assert all(c > 1000 for c in counts.values())


@pytest.mark.parametrize("loss", [0.0, 0.02, 0.2, 1.0])
def test_loss_share_is_honoured(loss: float) -> None:
    heard = lost = 0
    for n in range(20):
        radio = radio_for(5, f"D{n:X}", loss=loss)
        for k in range(1000):
            if radio.receive(k):
                heard += 1
            else:
                lost += 1
    assert lost / (heard + lost) == pytest.approx(loss, abs=0.01)


def test_bodies_one_per_station_marked_as_copies() -> None:
    device = build_fleet(CATALOGUE, ["scale"], 1, seed=1, loss=0.0)[0]
    tx = next(tx for k in range(100) if len((tx := transmit(device, k)).receptions) == 3)
    sent = [json.loads(b) for b in bodies(tx, 1_700_000_000)]
    assert [b["duplicate"] for b in sent] == [False, True, True]
    for b in sent:
        assert set(b) == {
            "device", "time", "seqNumber", "data", "station", "rssi", "snr", "duplicate",
            "deviceTypeId",
        }  # fmt: skip
        assert (b["device"], b["time"], b["seqNumber"], b["data"]) == (
            device.device_id, 1_700_000_000, tx.seq, tx.payload.hex(),
        )  # fmt: skip
        assert re.fullmatch(r"[0-9a-f]{24}", b["deviceTypeId"])


# --- modes on a fake clock ------------------------------------------------------------------


def test_backfill_is_historical_ordered_and_never_in_the_future() -> None:
    clock = FakeClock(T0, tick=0.01)
    runner, sink = run({"type_names": BUILTIN, "per_type": 2, "seed": 3, "loss": 0.05}, clock)
    end = runner.backfill(T0 - DAY)
    times = [int(str(b["time"])) for _, b, _ in sink.sent]
    assert times == sorted(times)
    assert all(T0 - DAY < t <= at for _, b, at in sink.sent if isinstance(t := b["time"], int))
    assert end <= clock.t
    assert runner.counts.messages == len(sink.sent)
    assert 0 < runner.counts.lost < runner.counts.transmissions * 0.15


@pytest.mark.parametrize("speed", [1.0, 60.0, 100_000.0])
def test_live_stamps_the_wall_clock_once_a_second_at_most(speed: float) -> None:
    clock = FakeClock(T0, tick=0.001)
    runner, sink = run({"type_names": BUILTIN, "per_type": 3, "seed": 2, "loss": 0.0}, clock)
    runner.live(T0, speed, until=T0 + 600)
    assert sink.sent
    last: dict[str, tuple[int, int]] = {}
    for topic, body, at in sink.sent:
        t, seq = body["time"], body["seqNumber"]
        assert isinstance(t, int)
        assert isinstance(seq, int)
        assert t <= at  # never ahead of the clock
        device = str(body["device"])
        if device in last and last[device][1] != seq:
            assert t > last[device][0]  # a new uplink of a device: a new second
            assert (seq - last[device][1]) % 4096 == 1
        last[device] = (t, seq)
        assert topic.endswith(device)
    if speed == 1.0:  # real time: ten minutes make about one uplink per wristband
        assert runner.counts.transmissions <= 3 * 4 * 2
    else:
        assert runner.counts.transmissions > 100


def test_load_mode_holds_the_rate() -> None:
    clock = FakeClock(T0)
    runner, sink = run({"type_names": BUILTIN, "per_type": 10, "seed": 2, "loss": 0.0}, clock)
    runner.load(T0, rate=20.0, until=T0 + 10)
    assert runner.counts.transmissions == 200
    stamps: dict[str, set[int]] = {}
    for _, body, _ in sink.sent:
        if not body["duplicate"]:
            seconds = stamps.setdefault(str(body["device"]), set())
            assert body["time"] not in seconds
            seconds.add(int(str(body["time"])))


def test_stop_event_ends_a_run() -> None:
    clock = FakeClock(T0)
    runner, sink = run({"type_names": BUILTIN, "per_type": 1, "seed": 2, "loss": 0.0}, clock)
    runner.stop.set()
    runner.live(T0, 1000.0, until=None)
    assert sink.sent == []


# --- a type added as a file -----------------------------------------------------------------

EXTRA_TYPE = """
name = "boiler"
description = "A boiler controller, added as a file"
layout = '''flame::bool:7 fault::bool:0 water::int:16 gas::uint:16 code::char:2
  pump::float:32 level::uint:4'''

[fields.flame]
unit = ""
[fields.fault]
unit = ""
[fields.water]
unit = "°C"
scale = 0.1
min = 10
max = 95
[fields.gas]
unit = "m3"
scale = 0.001
min = 0
[fields.code]
unit = ""
[fields.pump]
unit = "bar"
min = 0.5
max = 3.5
[fields.level]
unit = ""
min = 1
max = 12
"""


def test_generic_model_for_a_type_added_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "boiler.toml").write_text(EXTRA_TYPE)
    catalogue = load_catalogue(tmp_path)
    fleet = build_fleet(catalogue, ["boiler", "wristband"], 3, seed=1, loss=0.0)
    boilers = [d for d in fleet if d.dtype.name == "boiler"]
    seen: dict[str, set[object]] = {}
    for device in boilers:
        for step in range(0, 5 * DAY, 1800):
            payload = device.dtype.encode(device.model.values(T0 + step))
            assert len(payload) == 12  # 1 + 2 + 2 + 2 + 4 + a bit field in the last byte
            flags, water, gas, code, pump, last = struct.unpack(">BhH2sfB", payload)
            values = {
                "flame": bool(flags & 0x80),
                "fault": bool(flags & 0x01),
                "water": water * 0.1,
                "gas": gas * 0.001,
                "code": code.decode("ascii"),
                "pump": pump,
                "level": last >> 4,
            }
            assert 10 <= values["water"] <= 95
            assert 0.5 <= values["pump"] <= 3.5
            assert 1 <= values["level"] <= 12
            assert 0 <= values["gas"] <= 65.535
            assert re.fullmatch(r"[A-Z]{2}", str(values["code"]))
            for name, value in values.items():
                seen.setdefault(name, set()).add(
                    round(value, 3) if isinstance(value, float) else value
                )
    assert seen["flame"] == {True, False}
    assert seen["fault"] == {True, False}
    assert len(seen["water"]) > 50
    assert len(seen["level"]) > 3


# --- flags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("10m", 600), ("1.5h", 5400), ("7d", 604800), (" 2d ", 172800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["", "10x", "0s", "-1m", "m", "1d2h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a duration"):
        Duration().convert(text, None, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--rate", "10", "--speed", "5"],
            "--rate (load mode) and --speed cannot be used together",
        ),
        (["--backfill-only"], "--backfill-only needs --backfill"),
        (["--types", "wristband,toaster"], "unknown device type 'toaster'; known: plant_sensor"),
    ],
)
def test_flags_that_do_not_go_together(args: list[str], message: str) -> None:
    result = CliRunner().invoke(simulate, [*args, "--mqtt-url", "mqtt://127.0.0.1:9"])
    assert result.exit_code == 2
    assert message in result.output


def test_values_snap_inside_ranges_that_are_off_the_raw_grid(tmp_path: Path) -> None:
    (tmp_path / "odd.toml").write_text(
        'name = "odd"\nlayout = "a::uint:8 b::int:16"\n'
        '[fields.a]\nunit = ""\nscale = 0.5\nmin = 0.7\nmax = 99.9\n'
        '[fields.b]\nunit = ""\nscale = 0.01\nmin = -1.005\nmax = 1.005\n'
    )
    dtype = load_catalogue(tmp_path)["odd"]
    for target in (-1000.0, -1.0, 0.0, 0.7, 50.3, 99.9, 1000.0):
        values = {n: quantize(spec, target) for n, spec in dtype.fields.items()}
        a, b = struct.unpack(">Bh", dtype.encode(values))
        assert 0.7 <= a * 0.5 <= 99.9
        assert -1.005 <= b * 0.01 <= 1.005
        assert dtype.decode(dtype.encode(values)).out_of_range == ()
