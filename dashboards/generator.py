"""Builds the Grafana dashboards (JSON) and provisioning files (YAML) from the device catalogue.

Every query is InfluxQL in raw mode, so the same dashboards read InfluxDB 1.x natively, 2.x
through the bucket's DBRP mapping and 3.x through its v1 API. Queries use only Grafana's macros
`$timeFilter`, `$__interval`, `$__interval_ms` and the dashboard variable `$device`, and stay
within InfluxQL 1.6 (subqueries, `difference`, arithmetic on selectors). The storage layout they
read is `influx/schema.py`.

Output (paths relative to the output folder)::

    dashboards/fleet.json                     fleet overview
    dashboards/<type>.json                    one per device type, with a $device variable
    provisioning/datasources/telemetry.yml    the InfluxQL data source (token from the env)
    provisioning/dashboards/telemetry.yml     the file provider that loads dashboards/
"""

# ruff: noqa: S608  # InfluxQL built from catalogue names checked at load (no quote can occur) and
# always double-quoted; no user input here, and Grafana's macros must stay literal.
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalogue import Catalogue, DeviceType
from dashboards.units import grafana_unit
from influx.schema import EVENT, REJECTED, TAG_DEVICE, TAG_KIND, TAG_REASON, TAG_TYPE, UPLINK
from sigfox.limits import SEQ_MODULO

# A fixed uid, so dashboards and the provisioned data source find each other in any Grafana.
DATASOURCE_UID = "telemetry-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
# The dashboard JSON model version of Grafana 10/11; older Grafana migrates it on load.
SCHEMA_VERSION = 39
# Where the compose file mounts `dashboards/` inside the Grafana container.
CONTAINER_DASHBOARDS = "/var/lib/grafana/dashboards"
GRID_WIDTH = 24  # Grafana's grid is 24 columns wide
UID_PREFIX = "telemetry-"

Json = dict[str, Any]

# Uplinks lost between two consecutive arrivals of a device: the step of `seq` less one, taken
# modulo the 12-bit counter so that the wrap from 4095 to 0 counts as one step (sigfox.sequence).
LOST_EXPR = f'(difference("seq") + {SEQ_MODULO - 1}) % {SEQ_MODULO}'


def lost_query(measurement: str, device_filter: str = "") -> str:
    """Lost uplinks per device and interval, from gaps in `seq` (loss is derived, not stored)."""
    where = f"{device_filter} AND $timeFilter" if device_filter else "$timeFilter"
    return (
        f'SELECT sum("lost") FROM (SELECT {LOST_EXPR} AS "lost" FROM "{measurement}" '
        f'WHERE {where} GROUP BY "{TAG_DEVICE}") '
        f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_DEVICE}" fill(none)'
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


def _annotation(name: str, query: str, colour: str) -> Json:
    """Grafana's InfluxDB annotation: one mark per `event` point, its detail as the text."""
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": colour,
        "query": query,
        "titleColumn": "state",
        "textColumn": "detail",
        "tagsColumn": f"{TAG_KIND},{TAG_DEVICE}",
    }


class _Grid:
    """Places panels left to right, wrapping onto new rows, and numbers them."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def place(self, panel: Json, width: int, height: int) -> Json:
        if self.x + width > GRID_WIDTH:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel["id"] = self.next_id
        panel["gridPos"] = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.next_id += 1
        self.x += width
        self.row_height = max(self.row_height, height)
        return panel


def _target(query: str, *, alias: str = "", fmt: str = "time_series") -> Json:
    target: Json = {
        "refId": "A",
        "datasource": DATASOURCE,
        "rawQuery": True,
        "query": query,
        "resultFormat": fmt,
    }
    if alias:
        target["alias"] = alias
    return target


def _timeseries(title: str, query: str, unit: str, *, alias: str, description: str = "") -> Json:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"drawStyle": "line", "lineWidth": 1, "spanNulls": True},
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": [_target(query, alias=alias)],
    }


def _stat(title: str, query: str, *, alias: str = "", description: str = "") -> Json:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": "none"}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "auto",
        },
        "targets": [_target(query, alias=alias)],
    }


def _stat_many(title: str, targets: list[tuple[str, str]], *, description: str = "") -> Json:
    """A stat panel with several queries (query, alias), each its own refId."""
    panel = _stat(title, targets[0][0], alias=targets[0][1], description=description)
    panel["targets"] = [
        _target(q, alias=alias) | {"refId": chr(ord("A") + i)}
        for i, (q, alias) in enumerate(targets)
    ]
    return panel


def _table(title: str, query: str, *, description: str = "") -> Json:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True},
        "targets": [_target(query, fmt="table")],
    }


def _dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Json],
    variables: list[Json],
    *,
    annotations: list[Json] | None = None,
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["telemetry", "sigfox"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-2d", "to": "now"},
        "annotations": {"list": annotations or []},
        "templating": {"list": variables},
        "panels": panels,
    }


def fleet_dashboard(catalogue: Catalogue) -> Json:
    """Devices seen, uplink rate, rejects by reason, loss and RSSI per device, across all types."""
    grid = _Grid()
    types = ", ".join(t.name for t in catalogue)
    panels = [
        grid.place(
            _stat(
                "Devices seen",
                f'SELECT count("last") FROM (SELECT last("seq") FROM "{UPLINK}" '
                f'WHERE $timeFilter GROUP BY "{TAG_DEVICE}", "{TAG_TYPE}") GROUP BY "{TAG_TYPE}"',
                alias=f"$tag_{TAG_TYPE}",
                description=f"Devices with an uplink in the time range, by type ({types}).",
            ),
            12,
            5,
        ),
        grid.place(
            _stat(
                "Uplinks accepted",
                f'SELECT count("seq") FROM "{UPLINK}" WHERE $timeFilter',
                description="Messages stored in the time range (one per transmission).",
            ),
            6,
            5,
        ),
        grid.place(
            _stat(
                "Uplinks rejected",
                f'SELECT count("topic") FROM "{REJECTED}" WHERE $timeFilter',
                description="Messages kept as rejected in the time range; see the reasons below.",
            ),
            6,
            5,
        ),
        grid.place(
            _timeseries(
                "Uplinks per minute",
                f'SELECT count("seq") * 60000.0 / $__interval_ms FROM "{UPLINK}" '
                f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_TYPE}" fill(0)',
                "short",
                alias=f"$tag_{TAG_TYPE}",
                description="Accepted uplinks per minute, averaged per interval, by device type.",
            ),
            12,
            8,
        ),
        grid.place(
            _timeseries(
                "Rejected uplinks by reason",
                f'SELECT count("topic") FROM "{REJECTED}" '
                f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_REASON}" fill(none)',
                "short",
                alias=f"$tag_{TAG_REASON}",
                description="Messages the ingester refused, per interval, by failed check.",
            ),
            12,
            8,
        ),
        grid.place(
            _timeseries(
                "Lost uplinks per device",
                lost_query(UPLINK),
                "short",
                alias=f"$tag_{TAG_DEVICE}",
                description="Uplinks never heard, from gaps in each device's sequence numbers.",
            ),
            12,
            8,
        ),
        grid.place(
            _timeseries(
                "RSSI per device",
                f'SELECT mean("rssi") FROM "{UPLINK}" '
                f'WHERE $timeFilter GROUP BY time($__interval), "{TAG_DEVICE}" fill(none)',
                "dBm",
                alias=f"$tag_{TAG_DEVICE}",
                description="Signal strength at the best station that heard each uplink.",
            ),
            12,
            8,
        ),
        grid.place(
            _table(
                "Devices",
                f'SELECT last("seq") AS "seq", "rssi", "stations" FROM "{UPLINK}" '
                f'WHERE $timeFilter GROUP BY "{TAG_DEVICE}", "{TAG_TYPE}"',
                description="Each device's last uplink in the time range.",
            ),
            24,
            10,
        ),
        grid.place(
            _stat_many(
                "Devices per state",
                [(devices_online(t), f"{t.name} online") for t in catalogue]
                + [
                    (devices_in_state("late"), f"$tag_{TAG_TYPE} late"),
                    (devices_in_state("offline"), f"$tag_{TAG_TYPE} offline"),
                ],
                description="Online: heard within two intervals of its type. Late and "
                "offline: the state last recorded by the ingester (GET /v1/fleet has the "
                "same counts).",
            ),
            12,
            6,
        ),
        grid.place(
            _table(
                "Active alarms",
                active_alarms(),
                description="Alarms raised and not cleared yet (offline, battery_low); the "
                "time is when each was raised.",
            ),
            12,
            6,
        ),
    ]
    return _dashboard(
        f"{UID_PREFIX}fleet",
        "Telemetry: fleet overview",
        "Every device type: activity, rejects, loss, radio quality, status and alarms.",
        panels,
        [],
        annotations=[
            _annotation(
                "Alarms",
                f'SELECT "state", "detail", "{TAG_KIND}", "{TAG_DEVICE}" FROM "{EVENT}" '
                f"WHERE \"{TAG_KIND}\" <> 'state' AND $timeFilter",
                "red",
            )
        ],
    )


def _device_variable(dtype: DeviceType) -> Json:
    query = f'SHOW TAG VALUES FROM "{dtype.name}" WITH KEY = "{TAG_DEVICE}"'
    return {
        "name": "device",
        "label": "Device",
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change: devices that appear later are listed
        "includeAll": True,
        "multi": True,
        "sort": 1,
        "current": {},
        "options": [],
        "hide": 0,
    }


def type_dashboard(dtype: DeviceType) -> Json:
    """One panel per catalogue field in its unit, then link quality, for the chosen devices."""
    grid = _Grid()
    # Grafana renders a multi-value or "All" variable inside a regex as (A|B|...), escaped.
    devices = f'"{TAG_DEVICE}" =~ /^$device$/'
    m = dtype.name
    of_type = f"\"{TAG_TYPE}\" = '{m}' AND {devices}"
    panels = [
        grid.place(
            _table(
                "State",
                last_states(of_type),
                description=f"Each device's last recorded change of state: late past "
                f"{dtype.status.interval:g} s x 2, offline past {dtype.status.offline_after:g} s; "
                "a device never listed has been online since it was first heard.",
            ),
            12,
            6,
        ),
        grid.place(
            _table(
                "Active alarms",
                active_alarms(of_type),
                description="Alarms raised and not cleared yet: offline, battery_low.",
            ),
            12,
            6,
        ),
        grid.place(
            _table(
                "Latest values",
                f'SELECT last(*) FROM "{m}" WHERE {devices} AND $timeFilter '
                f'GROUP BY "{TAG_DEVICE}"',
                description="Each device's last stored value of every field in the time range.",
            ),
            24,
            6,
        ),
    ]
    for spec in dtype.fields.values():
        title = spec.description or spec.name
        unit_note = f" ({spec.unit})" if spec.unit else ""
        panels.append(
            grid.place(
                _timeseries(
                    f"{title}{unit_note}",
                    f'SELECT mean("{spec.name}") FROM "{m}" WHERE {devices} AND $timeFilter '
                    f'GROUP BY time($__interval), "{TAG_DEVICE}" fill(none)',
                    grafana_unit(spec.unit),
                    alias=f"$tag_{TAG_DEVICE}",
                    description=f"Field `{spec.name}`, mean per interval.",
                ),
                12,
                8,
            )
        )
    panels += [
        grid.place(
            _timeseries(
                "RSSI",
                f'SELECT mean("rssi") FROM "{m}" WHERE {devices} AND $timeFilter '
                f'GROUP BY time($__interval), "{TAG_DEVICE}" fill(none)',
                "dBm",
                alias=f"$tag_{TAG_DEVICE}",
                description="Signal strength at the best station.",
            ),
            8,
            8,
        ),
        grid.place(
            _timeseries(
                "Stations per uplink",
                f'SELECT mean("stations") FROM "{m}" WHERE {devices} AND $timeFilter '
                f'GROUP BY time($__interval), "{TAG_DEVICE}" fill(none)',
                "short",
                alias=f"$tag_{TAG_DEVICE}",
                description="How many base stations heard each transmission.",
            ),
            8,
            8,
        ),
        grid.place(
            _timeseries(
                "Lost uplinks",
                lost_query(m, devices),
                "short",
                alias=f"$tag_{TAG_DEVICE}",
                description="Uplinks never heard, from gaps in the sequence numbers.",
            ),
            8,
            8,
        ),
    ]
    return _dashboard(
        f"{UID_PREFIX}{m}",
        f"Telemetry: {m}",
        dtype.description,
        panels,
        [_device_variable(dtype)],
        annotations=[
            _annotation(
                "Status changes",
                f'SELECT "state", "detail", "{TAG_KIND}", "{TAG_DEVICE}" FROM "{EVENT}" '
                f"WHERE {of_type} AND $timeFilter",
                "orange",
            )
        ],
    )


DATASOURCE_YAML = f"""\
# Generated by `telemetry dashboards`; do not edit by hand.
# InfluxQL data source: InfluxDB 1.x natively, 2.x through the bucket's DBRP mapping, 3.x
# through its v1 API. Grafana fills the INFLUX_* values from its environment (docker-compose.yml).
apiVersion: 1
datasources:
  - name: Telemetry InfluxDB
    uid: {DATASOURCE_UID}
    type: influxdb
    access: proxy
    url: ${{INFLUX_URL}}
    database: ${{INFLUX_DATABASE}}
    isDefault: true
    editable: false
    jsonData:
      dbName: ${{INFLUX_DATABASE}}
      httpMode: GET
      httpHeaderName1: Authorization
    secureJsonData:
      httpHeaderValue1: Token ${{INFLUX_TOKEN}}
"""

PROVIDER_YAML = f"""\
# Generated by `telemetry dashboards`; do not edit by hand.
apiVersion: 1
providers:
  - name: telemetry
    folder: Telemetry
    type: file
    disableDeletion: true
    allowUiUpdates: false
    updateIntervalSeconds: 30
    options:
      path: {CONTAINER_DASHBOARDS}
"""


def render(catalogue: Catalogue) -> dict[str, str]:
    """Every generated file: relative path -> text, deterministic for a given catalogue."""
    files = {
        "provisioning/datasources/telemetry.yml": DATASOURCE_YAML,
        "provisioning/dashboards/telemetry.yml": PROVIDER_YAML,
        "dashboards/fleet.json": _json(fleet_dashboard(catalogue)),
    }
    for dtype in catalogue:
        files[f"dashboards/{dtype.name}.json"] = _json(type_dashboard(dtype))
    return files


def write(out: Path, catalogue: Catalogue) -> list[Path]:
    """Write the files under `out`; dashboards of types no longer in the catalogue are removed."""
    files = render(catalogue)
    written: list[Path] = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for stale in sorted((out / "dashboards").glob("*.json")):
        if f"dashboards/{stale.name}" not in files:
            stale.unlink()
    return written


def _json(doc: Json) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
