"""Every InfluxQL text the Grafana dashboards run, fleet-wide and per device type.

Every query is InfluxQL in raw mode, so the same dashboards read InfluxDB 1.x natively, 2.x
through the bucket's DBRP mapping and 3.x through its v1 API. Queries use only Grafana's macros
`$timeFilter`, `$__interval`, `$__interval_ms` and the dashboard variable `$device`, and stay
within InfluxQL 1.6 (subqueries, `difference`, arithmetic on selectors). The storage layout they
read is `influx/schema.py`. A `device_filter` is InfluxQL text such as `DEVICES`, put before
`$timeFilter` in a WHERE clause; empty means every device.
"""

# ruff: noqa: S608  # InfluxQL built from catalogue names checked at load (no quote can occur) and
# always double-quoted; no user input here, and Grafana's macros must stay literal.
from __future__ import annotations

from catalogue import DeviceType
from influx.schema import EVENT, REJECTED, TAG_DEVICE, TAG_KIND, TAG_REASON, TAG_TYPE, UPLINK
from sigfox.limits import SEQ_MODULO

# Uplinks lost between two consecutive arrivals of a device: the step of `seq` less one, taken
# modulo the 12-bit counter so that the wrap from 4095 to 0 counts as one step (sigfox.sequence).
LOST_EXPR = f'(difference("seq") + {SEQ_MODULO - 1}) % {SEQ_MODULO}'

# The devices chosen in a type dashboard's `$device` variable. Grafana renders a multi-value or
# "All" variable inside a regex as (A|B|...), escaped.
DEVICES = f'"{TAG_DEVICE}" =~ /^$device$/'


def _where(device_filter: str) -> str:
    return f"{device_filter} AND $timeFilter" if device_filter else "$timeFilter"


def of_type(dtype: DeviceType) -> str:
    """The chosen devices of one type, as `event` points tag them."""
    return f"\"{TAG_TYPE}\" = '{dtype.name}' AND {DEVICES}"


def device_values(dtype: DeviceType) -> str:
    """The `$device` variable's choices: every device id stored under the type's measurement."""
    return f'SHOW TAG VALUES FROM "{dtype.name}" WITH KEY = "{TAG_DEVICE}"'


def devices_seen() -> str:
    """Per type, the devices with an uplink in the time range."""
    return (
        f'SELECT count("last") FROM (SELECT last("seq") FROM "{UPLINK}" '
        f'WHERE $timeFilter GROUP BY "{TAG_DEVICE}", "{TAG_TYPE}") GROUP BY "{TAG_TYPE}"'
    )


def count_in_range(measurement: str, field: str) -> str:
    """Points of `measurement` in the time range, counted on a field every point has."""
    return f'SELECT count("{field}") FROM "{measurement}" WHERE $timeFilter'


def uplinks_per_minute() -> str:
    """Accepted uplinks per minute, averaged per interval, by device type."""
    return (
        f'SELECT count("seq") * 60000.0 / $__interval_ms FROM "{UPLINK}" '
        f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_TYPE}" fill(0)'
    )


def rejected_by_reason() -> str:
    """Rejected messages per interval, by the check they failed."""
    return (
        f'SELECT count("topic") FROM "{REJECTED}" '
        f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_REASON}" fill(none)'
    )


def mean_per_device(measurement: str, field: str, device_filter: str = "") -> str:
    """A field's mean per device and interval."""
    return (
        f'SELECT mean("{field}") FROM "{measurement}" WHERE {_where(device_filter)} '
        f'GROUP BY time($__interval), "{TAG_DEVICE}" fill(none)'
    )


def lost_query(measurement: str, device_filter: str = "") -> str:
    """Lost uplinks per device and interval, from gaps in `seq` (loss is derived, not stored)."""
    return (
        f'SELECT sum("lost") FROM (SELECT {LOST_EXPR} AS "lost" FROM "{measurement}" '
        f'WHERE {_where(device_filter)} GROUP BY "{TAG_DEVICE}") '
        f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_DEVICE}" fill(none)'
    )


def last_uplinks() -> str:
    """Each device's last uplink in the time range, with its link quality."""
    return (
        f'SELECT last("seq") AS "seq", "rssi", "stations" FROM "{UPLINK}" '
        f'WHERE $timeFilter GROUP BY "{TAG_DEVICE}", "{TAG_TYPE}"'
    )


def latest_values(measurement: str, device_filter: str) -> str:
    """Each device's last stored value of every field in the time range."""
    return (
        f'SELECT last(*) FROM "{measurement}" WHERE {_where(device_filter)} GROUP BY "{TAG_DEVICE}"'
    )


def last_states(type_filter: str = "") -> str:
    """Each device's last recorded state (the `event` points the ingester writes on changes)."""
    extra = f" AND {type_filter}" if type_filter else ""
    return (
        f'SELECT last("state") AS "state", "previous", "detail" FROM "{EVENT}" '
        f'WHERE "{TAG_KIND}" = \'state\'{extra} GROUP BY "{TAG_DEVICE}", "{TAG_TYPE}"'
    )


def active_alarms(type_filter: str = "") -> str:
    """The alarms whose last event is `raised`, per device and kind."""
    extra = f" AND {type_filter}" if type_filter else ""
    return (
        f'SELECT "state", "detail" FROM (SELECT last("state") AS "state", last("detail") AS '
        f'"detail" FROM "{EVENT}" WHERE "{TAG_KIND}" <> \'state\'{extra} '
        f'GROUP BY "{TAG_DEVICE}", "{TAG_KIND}", "{TAG_TYPE}") WHERE "state" = \'raised\' '
        f'GROUP BY "{TAG_DEVICE}", "{TAG_KIND}", "{TAG_TYPE}"'
    )


def devices_in_state(state: str) -> str:
    """Per type, the devices whose last recorded state is `state`."""
    return (
        f'SELECT count("state") FROM ({last_states()}) '
        f'WHERE "state" = \'{state}\' GROUP BY "{TAG_TYPE}"'
    )


def devices_online(dtype: DeviceType) -> str:
    """A type's devices heard within two intervals: online by DESIGN section 10's rule."""
    return (
        f'SELECT count("last") FROM (SELECT last("seq") FROM "{UPLINK}" '
        f"WHERE \"{TAG_TYPE}\" = '{dtype.name}' AND time > now() - "
        f'{round(dtype.status.late_after)}s GROUP BY "{TAG_DEVICE}")'
    )


def events(condition: str) -> str:
    """The `event` points matching `condition` in the time range, for annotations."""
    return (
        f'SELECT "state", "detail", "{TAG_KIND}", "{TAG_DEVICE}" FROM "{EVENT}" '
        f"WHERE {condition} AND $timeFilter"
    )


def alarm_events() -> str:
    """Every alarm event (kinds other than `state`) in the time range."""
    return events(f"\"{TAG_KIND}\" <> 'state'")
