"""Models of the devices people wear or step on: a wristband and a bathroom scale.

The wristband's wearer sleeps, commutes and runs on some evenings; the scale's weight drifts over
weeks. Pure of the device time `t`; per-day step counts are memoised.
"""

from __future__ import annotations

from catalogue import DeviceType
from simulators.behaviour import HOUR, Behaviour, sawtooth_battery
from simulators.localtime import DAY, local, weekday
from simulators.noise import drift, gauss, signed, smooth, unit

SLOT = 900.0  # activity is drawn per quarter hour


class Wristband(Behaviour):
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


class Scale(Behaviour):
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
