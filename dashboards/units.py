"""Catalogue units mapped to Grafana's unit ids, so panels show values as the catalogue means."""

from __future__ import annotations

# Grafana's built-in unit ids where one matches; Grafana formats anything else through a custom
# "suffix:<text>" unit, so a new device type with an unknown unit still shows it.
GRAFANA_UNITS = {
    "°C": "celsius",
    "°F": "fahrenheit",
    "%": "percent",
    "%RH": "humidity",
    "ppm": "ppm",
    "ppb": "ppb",
    "hPa": "pressurehpa",
    "Pa": "pressurepa",
    "lux": "lux",
    "kg": "masskg",
    "g": "massg",
    "dBm": "dBm",
    "dB": "dB",
    "V": "volt",
    "mV": "mvolt",
    "A": "amp",
    "W": "watt",
    "m": "lengthm",
    "s": "s",
}


def grafana_unit(unit: str) -> str:
    """The Grafana unit id for a catalogue unit; `none` for a bare number."""
    if not unit:
        return "none"
    return GRAFANA_UNITS.get(unit, f"suffix: {unit}")
