"""Grafana's dashboard JSON model: the data source, panels, their grid, variables, annotations.

Pure builders of plain dicts, with no query of their own (dashboards/queries.py has those); the
key order of each dict is the order in the committed JSON, so keep it when editing.
"""

from __future__ import annotations

from typing import Any

# A fixed uid, so dashboards and the provisioned data source find each other in any Grafana.
DATASOURCE_UID = "telemetry-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
# The dashboard JSON model version of Grafana 10/11; older Grafana migrates it on load.
SCHEMA_VERSION = 39
GRID_WIDTH = 24  # Grafana's grid is 24 columns wide

Json = dict[str, Any]


class Grid:
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

    def place_all(self, sized: list[tuple[Json, int, int]]) -> list[Json]:
        """Place (panel, width, height) in order."""
        return [self.place(panel, width, height) for panel, width, height in sized]


def target(query: str, *, alias: str = "", fmt: str = "time_series") -> Json:
    out: Json = {
        "refId": "A",
        "datasource": DATASOURCE,
        "rawQuery": True,
        "query": query,
        "resultFormat": fmt,
    }
    if alias:
        out["alias"] = alias
    return out


def timeseries(title: str, query: str, unit: str, *, alias: str, description: str = "") -> Json:
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
        "targets": [target(query, alias=alias)],
    }


def stat(title: str, query: str, *, alias: str = "", description: str = "") -> Json:
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
        "targets": [target(query, alias=alias)],
    }


def stat_many(title: str, targets: list[tuple[str, str]], *, description: str = "") -> Json:
    """A stat panel with several queries (query, alias), each its own refId."""
    panel = stat(title, targets[0][0], alias=targets[0][1], description=description)
    panel["targets"] = [
        target(q, alias=alias) | {"refId": chr(ord("A") + i)}
        for i, (q, alias) in enumerate(targets)
    ]
    return panel


def table(title: str, query: str, *, description: str = "") -> Json:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True},
        "targets": [target(query, fmt="table")],
    }


def annotation(name: str, query: str, colour: str, *, tags: str) -> Json:
    """Grafana's InfluxDB annotation: one mark per point, its state as title, detail as text."""
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": colour,
        "query": query,
        "titleColumn": "state",
        "textColumn": "detail",
        "tagsColumn": tags,
    }


def device_variable(query: str) -> Json:
    """The `$device` variable: several or all devices of the dashboard's type."""
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


def dashboard(
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
