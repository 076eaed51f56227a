"""Device models: physical values of a device at device time `t` (epoch seconds), pure of `t`.

Each built-in type has a model of what such a device measures at home (sleep, meals, heating,
watering, the sun); a type added as a catalogue file gets `Generic`, a smooth random walk inside
each field's valid range. A model holds no clock and does no I/O; per-day sums are memoised.
Values go through `quantize`, so every value is on the field's raw grid and inside its range.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Protocol

from catalogue import DeviceType, FieldSpec
from catalogue.codec import Value
from simulators.localtime import DAY, local, weekday
from simulators.noise import drift, gauss, key_of, signed, smooth, unit

HOUR = 3600.0
SLOT = 900.0  # activity is drawn per quarter hour
TOULOUSE = (43.6, 1.44)  # latitude, longitude: where the sun of the plant sensors is


class Model(Protocol):
    def values(self, t: float) -> dict[str, Value]:
        """Physical values of every field at device time `t`, each in its valid range."""
        ...


def model_for(dtype: DeviceType, seed: int, device_id: str) -> Model:
    """The dedicated model for a built-in type, else the generic one."""
    key = key_of(seed, "model", dtype.name, device_id)
    dedicated = _DEDICATED.get(dtype.name)
    if dedicated is not None and set(dtype.fields) == set(dedicated[0]):
        return dedicated[1](dtype, key)
    return Generic(dtype, key)


# Simulated people recharge or replace a battery at this level, above the catalogue's
# `battery_low` (15 %): a battery alarm is then what `--low-battery` asks for, not chance.
REPLACED_AT = 20.0


def sawtooth_battery(key: int, t: float, life_days: float, low: float = REPLACED_AT) -> float:
    """A battery drained linearly over `life_days`, then recharged or replaced (100 % again)."""
    period = life_days * DAY
    frac = ((t + unit(key, -77) * period) % period) / period
    return 100.0 - frac * (100.0 - low)


class _Base:
    def __init__(self, dtype: DeviceType, key: int) -> None:
        self.dtype = dtype
        self.key = key

    def values(self, t: float) -> dict[str, Value]:
        targets = self.targets(t)
        return {name: quantize(spec, targets[name]) for name, spec in self.dtype.fields.items()}

    def targets(self, t: float) -> dict[str, float | bool | str]:
        raise NotImplementedError

    def k(self, name: str) -> int:
        return self.key ^ key_of(name)


class Wristband(_Base):
    """Heart rate from sleep and activity; steps and calories since local midnight; sleep phase."""

    def __init__(self, dtype: DeviceType, key: int) -> None:
        super().__init__(dtype, key)
        self.resting = 55.0 + 20.0 * unit(key, 1)  # bpm
        self.bmr = 1500.0 + 600.0 * unit(key, 2)  # kcal a day at rest
        self.charge_days = 5.0 + 2.0 * unit(key, 3)  # recharged about weekly
        self._steps_cache: dict[int, list[int]] = {}

    def bedtime(self, day: int) -> float:
        """Seconds after local midnight of `day` when the wearer falls asleep (may pass 24 h)."""
        late = HOUR if weekday(day) in (4, 5) else 0.0  # Friday and Saturday nights
        return 22.75 * HOUR + late + 0.6 * HOUR * signed(self.k("bed"), day)

    def waketime(self, day: int) -> float:
        late = 1.25 * HOUR if weekday(day) >= 5 else 0.0
        return 6.75 * HOUR + late + 0.4 * HOUR * signed(self.k("wake"), day)

    def asleep_since(self, day: int, sec: float) -> float | None:
        """Seconds since falling asleep, or None when awake."""
        if sec >= self.bedtime(day):
            return sec - self.bedtime(day)
        if sec < self.waketime(day):
            return sec + DAY - self.bedtime(day - 1)
        return None

    def activity(self, day: int, slot: int) -> float:
        """0..1: how active the wearer is in quarter hour `slot` of local `day`."""
        mid = (slot + 0.5) * SLOT
        if self.asleep_since(day, mid) is not None:
            return 0.0
        n = day * 96 + slot
        level = 0.05 + 0.12 * unit(self.k("act"), n)
        hour = mid / HOUR
        if weekday(day) < 5 and (8.0 <= hour < 9.0 or 12.0 <= hour < 13.5 or 17.5 <= hour < 19.0):
            level += 0.35 * unit(self.k("commute"), n)  # walking to work, lunch, home
        if unit(self.k("sport"), day) < 0.4:  # a run on 40 % of days
            start = 18.0 + 2.0 * unit(self.k("sport-at"), day)
            if start <= hour < start + 0.75:
                level = 0.85 + 0.15 * unit(self.k("pace"), n)
        return min(1.0, level)

    def steps_by_slot(self, day: int) -> list[int]:
        cached = self._steps_cache.get(day)
        if cached is None:
            if len(self._steps_cache) > 16:
                self._steps_cache.clear()
            cached = [
                int(
                    self.activity(day, s)
                    * 1650
                    * (0.85 + 0.3 * unit(self.k("stride"), day * 96 + s))
                )
                for s in range(96)
            ]
            self._steps_cache[day] = cached
        return cached

    def targets(self, t: float) -> dict[str, float | bool | str]:
        day, sec = local(t)
        slot = min(95, int(sec // SLOT))
        by_slot = self.steps_by_slot(day)
        steps = sum(by_slot[:slot]) + by_slot[slot] * (sec - slot * SLOT) / SLOT
        minute = int(t // 60)
        slept = self.asleep_since(day, sec)
        if slept is None:
            phase = 0
            hr = self.resting + 85.0 * self.activity(day, slot) + 4.0 * smooth(self.k("hr"), t, 600)
        else:
            phase = sleep_phase(slept)
            hr = self.resting - 7.0 - (4.0 if phase == 2 else 0.0) + (3.0 if phase == 3 else 0.0)
        hr += 1.5 * gauss(self.k("hr-noise"), minute)
        calories = self.bmr * sec / DAY + steps * 0.045
        return {
            "heart_rate": hr,
            "steps": steps,
            "calories": calories,
            "sleep_phase": phase,
            "battery": sawtooth_battery(self.key, t, self.charge_days),
        }


def sleep_phase(slept: float) -> int:
    """1 light, 2 deep, 3 REM through 90-minute cycles; deep sleep shortens as the night goes on."""
    cycle, pos = divmod(slept, 5400.0)
    deep = max(0.05, 0.35 - 0.08 * cycle)
    frac = pos / 5400.0
    if frac < 0.2:
        return 1
    if frac < 0.2 + deep:
        return 2
    if frac < 0.75:
        return 1
    return 3


class Scale(_Base):
    """A weight that drifts over weeks, a little heavier in the evening; body fat and BMI follow."""

    def __init__(self, dtype: DeviceType, key: int) -> None:
        super().__init__(dtype, key)
        self.height = 1.55 + 0.4 * unit(key, 1)  # m
        self.base = (21.0 + 8.0 * unit(key, 2)) * self.height**2  # kg, from a BMI of 21..29
        self.fat = 14.0 + 20.0 * unit(key, 3)  # %

    def targets(self, t: float) -> dict[str, float | bool | str]:
        _, sec = local(t)
        evening = 0.5 if sec > 17 * HOUR else 0.0  # meals and drinks of the day
        weight = (
            self.base
            + 2.5 * drift(self.k("weight"), t, 30 * DAY)
            + 0.6 * smooth(self.k("week"), t, 5 * DAY)
            + evening
            + 0.15 * gauss(self.k("noise"), int(t // 60))
        )
        return {
            "weight": weight,
            "body_fat": self.fat
            + 0.6 * (weight - self.base)
            + 0.3 * gauss(self.k("fat"), int(t // 60)),
            "bmi": weight / self.height**2,
            "battery": sawtooth_battery(self.key, t, 365.0),
        }


class WeatherStation(_Base):
    """Indoor air: heating and CO2 follow the day and who is home; pressure follows the weather."""

    def __init__(self, dtype: DeviceType, key: int) -> None:
        super().__init__(dtype, key)
        self.people = 1 + int(unit(key, 1) * 4)
        self.altitude = 5.0 * unit(key, 2)  # hPa below sea-level pressure

    def occupancy(self, t: float) -> float:
        """People at home at time `t`."""
        day, sec = local(t)
        if weekday(day) < 5:
            leave = 8.25 * HOUR + 0.5 * HOUR * signed(self.k("leave"), day)
            back = 17.5 * HOUR + HOUR * signed(self.k("back"), day)
            if leave <= sec < back:
                return 1.0 if unit(self.k("stay"), day) < 0.2 else 0.0  # someone works from home
        elif 14 * HOUR <= sec < 18 * HOUR and unit(self.k("outing"), day) < 0.5:
            return 0.0  # weekend afternoon out
        return float(self.people)

    def lagged(self, t: float, f: Callable[[float], float], hours: float) -> float:
        """An exponentially weighted mean of f over the last `hours`: rooms fill and cool slowly."""
        n = int(hours * 2)  # half-hour samples: smooth enough, and half the work of quarters
        weights = [math.exp(-i / (n / 3.0)) for i in range(n)]
        return sum(w * f(t - i * 2 * SLOT) for i, w in enumerate(weights)) / sum(weights)

    def setpoint(self, t: float) -> float:
        _, sec = local(t)
        awake = 6.5 * HOUR <= sec < 23 * HOUR
        return 20.5 if awake and self.occupancy(t) > 0 else 18.0

    def targets(self, t: float) -> dict[str, float | bool | str]:
        _, sec = local(t)
        occ = self.lagged(t, self.occupancy, 3.0)
        sun = math.sin(2 * math.pi * (sec / HOUR - 9.0) / 24.0)  # warmest mid-afternoon
        temperature = (
            self.lagged(t, self.setpoint, 2.0)
            + 0.8 * sun
            + 0.25 * occ
            + 0.5 * drift(self.k("temp"), t, 3 * DAY)
            + 0.05 * gauss(self.k("t-noise"), int(t // 60))
        )
        weather = key_of("weather")  # the same sky for every device of the town
        return {
            "temperature": temperature,
            "humidity": 45.0 + 8.0 * drift(self.k("hum"), t, 2 * DAY) + 2.0 * occ,
            "co2": 420.0 + 330.0 * occ + 25.0 * gauss(self.k("co2"), int(t // 60)),
            "pressure": 1013.0
            + 14.0 * drift(weather, t, 4 * DAY)
            + 2.0 * smooth(weather ^ 1, t, 12 * HOUR)
            - self.altitude,
            "battery": sawtooth_battery(self.key, t, 730.0),
        }


class PlantSensor(_Base):
    """Soil that dries out between waterings; light that follows the sun through a window."""

    def __init__(self, dtype: DeviceType, key: int) -> None:
        super().__init__(dtype, key)
        self.every = (3.0 + 5.0 * unit(key, 1)) * DAY  # watered every 3..8 days
        self.wet = 75.0 + 15.0 * unit(key, 2)  # % just after watering
        self.dry = 8.0 + 7.0 * unit(key, 3)  # % it would dry to
        self.window = 2000.0 + 23000.0 * unit(key, 4)  # lux at noon in full sun

    def watered_at(self, n: int) -> float:
        return n * self.every + 0.3 * self.every * unit(self.k("water"), n)

    def targets(self, t: float) -> dict[str, float | bool | str]:
        n = math.floor(t / self.every)
        while self.watered_at(n) > t:
            n -= 1
        since = t - self.watered_at(n)
        moisture = self.dry + (self.wet - self.dry) * math.exp(-since / (self.every / 1.8))
        elevation = sun_elevation(t)
        cloud = 0.35 + 0.65 * (0.5 + 0.5 * drift(key_of("clouds"), t, 1.5 * DAY))
        light = self.window * max(0.0, math.sin(elevation)) ** 1.2 * cloud
        _, sec = local(t)
        if elevation <= 0 and 18 * HOUR <= sec < 23 * HOUR:
            light = 80.0 + 40.0 * unit(self.k("lamp"), int(t // 3600))  # a lamp in the evening
        return {
            "soil_moisture": moisture + 0.8 * gauss(self.k("m-noise"), int(t // 60)),
            "light": light,
            "temperature": 20.0
            + 2.5 * math.sin(2 * math.pi * (sec / HOUR - 9.0) / 24.0)
            + light / 10000.0
            + 0.8 * drift(self.k("temp"), t, 3 * DAY),
            "battery": sawtooth_battery(self.key, t, 540.0),
        }


def sun_elevation(t: float) -> float:
    """The sun's elevation (radians) over Toulouse at epoch `t`; good to a degree or so."""
    lat, lon = (math.radians(x) for x in TOULOUSE)
    days = t / DAY
    declination = math.radians(-23.44) * math.cos(2 * math.pi * ((days + 10.0) % 365.25) / 365.25)
    solar_hours = (t % DAY) / HOUR + math.degrees(lon) / 15.0
    hour_angle = math.radians(15.0 * (solar_hours - 12.0))
    return math.asin(
        math.sin(lat) * math.sin(declination)
        + math.cos(lat) * math.cos(declination) * math.cos(hour_angle)
    )


class Generic(_Base):
    """Any type: numbers wander smoothly inside their range, booleans flip now and then, text
    changes daily; a field named like `battery` drains."""

    def targets(self, t: float) -> dict[str, float | bool | str]:
        out: dict[str, float | bool | str] = {}
        for name, spec in self.dtype.fields.items():
            k = self.k(name)
            kind = spec.slot.kind
            if kind == "bool":
                out[name] = smooth(k, t, 6 * HOUR) > 0.4
            elif kind == "char":
                n = spec.slot.size // 8
                day = int(t // DAY)
                out[name] = "".join(chr(65 + int(unit(k, day * 16 + i) * 26)) for i in range(n))
            else:
                lo, hi = physical_bounds(spec)
                if "battery" in name.lower():
                    out[name] = lo + (hi - lo) * sawtooth_battery(k, t, 365.0) / 100.0
                else:
                    wander = 0.65 * drift(k, t, DAY) + 0.35 * smooth(k ^ 9, t, 2 * HOUR)
                    out[name] = (lo + hi) / 2.0 + (hi - lo) / 2.0 * 0.9 * wander
        return out


def raw_bounds(spec: FieldSpec) -> tuple[float, float]:
    """What the slot can hold, as raw numbers."""
    slot = spec.slot
    if slot.kind == "uint":
        return 0, (1 << slot.size) - 1
    if slot.kind == "int":
        return -(1 << (slot.size - 1)), (1 << (slot.size - 1)) - 1
    limit = 3.0e38 if slot.size == 32 else 1.0e300
    return -limit, limit


def physical_bounds(spec: FieldSpec) -> tuple[float, float]:
    """The valid range, narrowed to what the slot can carry after scaling."""
    rlo, rhi = raw_bounds(spec)
    lo = rlo * spec.scale if spec.minimum is None else max(spec.minimum, rlo * spec.scale)
    hi = rhi * spec.scale if spec.maximum is None else min(spec.maximum, rhi * spec.scale)
    if spec.slot.kind == "float" and spec.minimum is None and spec.maximum is None:
        lo, hi = -1000.0, 1000.0  # an unbounded float: a plausible sensor span
    return lo, hi


def quantize(spec: FieldSpec, target: float | bool | str) -> Value:
    """The physical value the codec will carry for `target`: on the raw grid, inside the range."""
    kind = spec.slot.kind
    if kind in ("bool", "char"):
        return target
    assert not isinstance(target, str)  # noqa: S101  # numeric fields get numeric targets
    lo, hi = physical_bounds(spec)
    if kind == "float":
        margin = (hi - lo) * 1e-4  # float32 rounding must not carry a value past a bound
        x = min(hi - margin, max(lo + margin, float(target)))
        if spec.slot.size == 32:
            x = struct.unpack("f", struct.pack("f", x))[0]
        return x
    raw_lo = math.ceil(lo / spec.scale - 1e-9)
    raw_hi = math.floor(hi / spec.scale + 1e-9)
    raw = min(raw_hi, max(raw_lo, round(float(target) / spec.scale)))
    return spec.to_physical(raw)


_DEDICATED: dict[str, tuple[tuple[str, ...], Callable[[DeviceType, int], Model]]] = {
    "wristband": (("heart_rate", "steps", "calories", "sleep_phase", "battery"), Wristband),
    "scale": (("weight", "body_fat", "bmi", "battery"), Scale),
    "weather_station": (("temperature", "humidity", "co2", "pressure", "battery"), WeatherStation),
    "plant_sensor": (("soil_moisture", "light", "temperature", "battery"), PlantSensor),
}


# `--low-battery`: a draining battery is empty after this many of the device's uplinks, so the
# alarm (at 15 % by default) comes within about nine, minutes into a demo at --speed.
DRAIN_UPLINKS = 10


class Draining:
    """Another model, except that its battery drains from its level at `start` to empty."""

    def __init__(self, inner: Model, spec: FieldSpec, start: float, span: float) -> None:
        self.inner = inner
        self.spec = spec
        self.start = start
        self.span = span

    def values(self, t: float) -> dict[str, Value]:
        values = self.inner.values(t)
        level = values.get(self.spec.name)
        if t <= self.start or isinstance(level, bool) or not isinstance(level, int | float):
            return values
        lo, _ = physical_bounds(self.spec)
        left = max(0.0, 1.0 - (t - self.start) / self.span)
        values[self.spec.name] = quantize(self.spec, lo + (level - lo) * left)
        return values
