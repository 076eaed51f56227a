"""Builds the Grafana dashboards (JSON) and provisioning files (YAML) from the device catalogue.

The dashboards are panels (dashboards/panels.py) over queries (dashboards/queries.py), laid out
here: the fleet overview across all types, then one dashboard per device type.

Output (paths relative to the output folder)::

    dashboards/fleet.json                     fleet overview
    dashboards/<type>.json                    one per device type, with a $device variable
    provisioning/datasources/telemetry.yml    the InfluxQL data source (token from the env)
    provisioning/dashboards/telemetry.yml     the file provider that loads dashboards/
"""

from __future__ import annotations

import json
from pathlib import Path

from catalogue import Catalogue, DeviceType
from dashboards import queries
from dashboards.panels import (
    DATASOURCE_UID,
    Grid,
    Json,
    annotation,
    dashboard,
    device_variable,
    stat,
    stat_many,
    table,
    timeseries,
)
from dashboards.queries import DEVICES
from dashboards.units import grafana_unit
from influx.schema import REJECTED, TAG_DEVICE, TAG_KIND, TAG_REASON, TAG_TYPE, UPLINK

# Where the compose file mounts `dashboards/` inside the Grafana container.
CONTAINER_DASHBOARDS = "/var/lib/grafana/dashboards"
UID_PREFIX = "telemetry-"
EVENT_TAGS = f"{TAG_KIND},{TAG_DEVICE}"  # an annotation's tags: the event's kind and device

Sized = list[tuple[Json, int, int]]  # panels in grid order, each with its width and height


def _per_device(title: str, query: str, unit: str, description: str) -> Json:
    """A chart with one line per device."""
    return timeseries(title, query, unit, alias=f"$tag_{TAG_DEVICE}", description=description)


def fleet_dashboard(catalogue: Catalogue) -> Json:
    """Devices seen, uplink rate, rejects by reason, loss and RSSI per device, across all types."""
    grid = Grid()
    panels = grid.place_all(_fleet_activity(catalogue) + _fleet_radio() + _fleet_status(catalogue))
    return dashboard(
        f"{UID_PREFIX}fleet",
        "Telemetry: fleet overview",
        "Every device type: activity, rejects, loss, radio quality, status and alarms.",
        panels,
        [],
        annotations=[annotation("Alarms", queries.alarm_events(), "red", tags=EVENT_TAGS)],
    )


def _fleet_activity(catalogue: Catalogue) -> Sized:
    """What arrived: devices seen, uplinks accepted and rejected, their rates."""
    types = ", ".join(t.name for t in catalogue)
    seen = stat(
        "Devices seen",
        queries.devices_seen(),
        alias=f"$tag_{TAG_TYPE}",
        description=f"Devices with an uplink in the time range, by type ({types}).",
    )
    accepted = stat(
        "Uplinks accepted",
        queries.count_in_range(UPLINK, "seq"),
        description="Messages stored in the time range (one per transmission).",
    )
    rejected = stat(
        "Uplinks rejected",
        queries.count_in_range(REJECTED, "topic"),
        description="Messages kept as rejected in the time range; see the reasons below.",
    )
    per_minute = timeseries(
        "Uplinks per minute",
        queries.uplinks_per_minute(),
        "short",
        alias=f"$tag_{TAG_TYPE}",
        description="Accepted uplinks per minute, averaged per interval, by device type.",
    )
    by_reason = timeseries(
        "Rejected uplinks by reason",
        queries.rejected_by_reason(),
        "short",
        alias=f"$tag_{TAG_REASON}",
        description="Messages the ingester refused, per interval, by failed check.",
    )
    return [
        (seen, 12, 5),
        (accepted, 6, 5),
        (rejected, 6, 5),
        (per_minute, 12, 8),
        (by_reason, 12, 8),
    ]


def _fleet_radio() -> Sized:
    """How well devices are heard: loss and RSSI per device, each device's last uplink."""
    lost = _per_device(
        "Lost uplinks per device",
        queries.lost_query(UPLINK),
        "short",
        "Uplinks never heard, from gaps in each device's sequence numbers.",
    )
    rssi = _per_device(
        "RSSI per device",
        queries.mean_per_device(UPLINK, "rssi"),
        "dBm",
        "Signal strength at the best station that heard each uplink.",
    )
    devices = table(
        "Devices",
        queries.last_uplinks(),
        description="Each device's last uplink in the time range.",
    )
    return [(lost, 12, 8), (rssi, 12, 8), (devices, 24, 10)]


def _fleet_status(catalogue: Catalogue) -> Sized:
    """Devices per state (DESIGN section 10) and the alarms still raised."""
    per_state = stat_many(
        "Devices per state",
        [(queries.devices_online(t), f"{t.name} online") for t in catalogue]
        + [
            (queries.devices_in_state("late"), f"$tag_{TAG_TYPE} late"),
            (queries.devices_in_state("offline"), f"$tag_{TAG_TYPE} offline"),
        ],
        description="Online: heard within two intervals of its type. Late and "
        "offline: the state last recorded by the ingester (GET /v1/fleet has the "
        "same counts).",
    )
    alarms = table(
        "Active alarms",
        queries.active_alarms(),
        description="Alarms raised and not cleared yet (offline, battery_low); the "
        "time is when each was raised.",
    )
    return [(per_state, 12, 6), (alarms, 12, 6)]


def type_dashboard(dtype: DeviceType) -> Json:
    """One panel per catalogue field in its unit, then link quality, for the chosen devices."""
    grid = Grid()
    panels = grid.place_all(_type_status(dtype) + _type_fields(dtype) + _type_link(dtype))
    return dashboard(
        f"{UID_PREFIX}{dtype.name}",
        f"Telemetry: {dtype.name}",
        dtype.description,
        panels,
        [device_variable(queries.device_values(dtype))],
        annotations=[
            annotation(
                "Status changes",
                queries.events(queries.of_type(dtype)),
                "orange",
                tags=EVENT_TAGS,
            )
        ],
    )


def _type_status(dtype: DeviceType) -> Sized:
    """The chosen devices' state, raised alarms and latest values."""
    state = table(
        "State",
        queries.last_states(queries.of_type(dtype)),
        description=f"Each device's last recorded change of state: late past "
        f"{dtype.status.interval:g} s x 2, offline past {dtype.status.offline_after:g} s; "
        "a device never listed has been online since it was first heard.",
    )
    alarms = table(
        "Active alarms",
        queries.active_alarms(queries.of_type(dtype)),
        description="Alarms raised and not cleared yet: offline, battery_low.",
    )
    latest = table(
        "Latest values",
        queries.latest_values(dtype.name, DEVICES),
        description="Each device's last stored value of every field in the time range.",
    )
    return [(state, 12, 6), (alarms, 12, 6), (latest, 24, 6)]


def _type_fields(dtype: DeviceType) -> Sized:
    """One chart per catalogue field, in the field's unit."""
    sized: Sized = []
    for spec in dtype.fields.values():
        title = spec.description or spec.name
        unit_note = f" ({spec.unit})" if spec.unit else ""
        chart = _per_device(
            f"{title}{unit_note}",
            queries.mean_per_device(dtype.name, spec.name, DEVICES),
            grafana_unit(spec.unit),
            f"Field `{spec.name}`, mean per interval.",
        )
        sized.append((chart, 12, 8))
    return sized


def _type_link(dtype: DeviceType) -> Sized:
    """The chosen devices' link quality: RSSI, stations per uplink, lost uplinks."""
    m = dtype.name
    rssi = _per_device(
        "RSSI",
        queries.mean_per_device(m, "rssi", DEVICES),
        "dBm",
        "Signal strength at the best station.",
    )
    stations = _per_device(
        "Stations per uplink",
        queries.mean_per_device(m, "stations", DEVICES),
        "short",
        "How many base stations heard each transmission.",
    )
    lost = _per_device(
        "Lost uplinks",
        queries.lost_query(m, DEVICES),
        "short",
        "Uplinks never heard, from gaps in the sequence numbers.",
    )
    return [(rssi, 8, 8), (stations, 8, 8), (lost, 8, 8)]


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
