"""Models of the devices at home: an indoor weather station and a plant sensor by a window.

Heating and CO2 follow the day and who is home; soil dries out between waterings and light
follows the sun over Toulouse. Pure of the device time `t`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from catalogue import DeviceType
from simulators.behaviour import HOUR, Behaviour, sawtooth_battery
from simulators.localtime import DAY, local, weekday
from simulators.noise import drift, gauss, key_of, signed, smooth, unit

HALF_HOUR = HOUR / 2
TOULOUSE = (43.6, 1.44)  # latitude, longitude: where the sun of the plant sensors is


class WeatherStation(Behaviour):
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
        return sum(w * f(t - i * HALF_HOUR) for i, w in enumerate(weights)) / sum(weights)

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


class PlantSensor(Behaviour):
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
