"""The committed Grafana files are what the catalogue generates, and they hang together."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from catalogue import load_catalogue
from dashboards.generator import render
from telemetry.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "dashboards" / "grafana"

# Written here apart from dashboards/units.py: the Grafana unit id each built-in field must show.
EXPECTED_UNITS = {
    ("weather_station", "temperature"): "celsius",
    ("weather_station", "humidity"): "humidity",
    ("weather_station", "co2"): "ppm",
    ("weather_station", "pressure"): "pressurehpa",
    ("weather_station", "battery"): "percent",
    ("plant_sensor", "soil_moisture"): "percent",
    ("plant_sensor", "light"): "lux",
    ("plant_sensor", "temperature"): "celsius",
    ("scale", "weight"): "masskg",
    ("scale", "body_fat"): "percent",
    ("scale", "bmi"): "none",
    ("wristband", "heart_rate"): "suffix: bpm",
    ("wristband", "steps"): "suffix: steps",
    ("wristband", "calories"): "suffix: kcal",
    ("wristband", "sleep_phase"): "none",
}


# Status panels show the state now, whatever the time range: the last recorded change may be
# older than the range, and "online" is counted from the clock.
NOW_PANELS = {"State", "Active alarms", "Devices per state"}


def _dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((COMMITTED / "dashboards").glob("*.json"))
    }


def test_committed_files_match_the_catalogue() -> None:
    expected = render(load_catalogue())
    on_disk = {
        str(p.relative_to(COMMITTED)): p.read_text(encoding="utf-8")
        for p in COMMITTED.rglob("*")
        if p.is_file()
    }
    assert sorted(on_disk) == sorted(expected), "run `telemetry dashboards` and commit the result"
    for rel, text in expected.items():
        assert on_disk[rel] == text, f"{rel} is stale: run `telemetry dashboards` and commit it"


def test_command_writes_the_same_files_and_removes_stale_ones(tmp_path: Path) -> None:
    stale = tmp_path / "dashboards" / "toaster.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    result = CliRunner().invoke(main, ["dashboards", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "4 device types" in result.output
    assert not stale.exists()
    for rel, text in render(load_catalogue()).items():
        assert (tmp_path / rel).read_text(encoding="utf-8") == text


def test_extra_device_type_gets_its_dashboard(tmp_path: Path) -> None:
    extra = tmp_path / "types"
    extra.mkdir()
    (extra / "door.toml").write_text(
        'name = "door"\nlayout = "open::uint:8 volts::uint:16"\n'
        '[fields.open]\nunit = ""\n[fields.volts]\nunit = "mV"\n'
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["dashboards", "--out", str(out), "--catalogue-dir", str(extra)]
    )
    assert result.exit_code == 0, result.output
    door = json.loads((out / "dashboards" / "door.json").read_text())
    units = {p["title"]: p["fieldConfig"]["defaults"].get("unit") for p in door["panels"]}
    assert units["volts (mV)"] == "mvolt"
    assert units["open"] == "none"


def test_bad_catalogue_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('name = "Bad Name"\nlayout = "x::uint:8"\n')
    result = CliRunner().invoke(
        main, ["dashboards", "--out", str(tmp_path / "o"), "--catalogue-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "bad.toml" in result.output
    assert "Traceback" not in result.output


def test_one_dashboard_per_type_plus_fleet() -> None:
    names = set(_dashboards())
    assert names == {"fleet", *load_catalogue().names()}
    uids = [d["uid"] for d in _dashboards().values()]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("dtype", ["wristband", "scale", "weather_station", "plant_sensor"])
def test_type_dashboard_has_a_panel_per_field_in_its_unit(dtype: str) -> None:
    board = _dashboards()[dtype]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["device"]["query"] == f'SHOW TAG VALUES FROM "{dtype}" WITH KEY = "device"'
    by_field: dict[str, str] = {}
    for panel in board["panels"]:
        query = panel["targets"][0]["query"]
        match = re.match(r'SELECT mean\("(\w+)"\) FROM "(\w+)"', query)
        if match and match.group(1) not in ("rssi", "stations"):
            assert match.group(2) == dtype
            assert "$device" in query
            by_field[match.group(1)] = panel["fieldConfig"]["defaults"]["unit"]
    fields = list(load_catalogue()[dtype].fields)
    assert sorted(by_field) == sorted(fields)
    for (t, f), unit in EXPECTED_UNITS.items():
        if t == dtype:
            assert by_field[f] == unit, f


def test_every_panel_uses_the_provisioned_data_source_and_macros() -> None:
    provisioning = yaml.safe_load(
        (COMMITTED / "provisioning" / "datasources" / "telemetry.yml").read_text()
    )
    source = provisioning["datasources"][0]
    assert source["type"] == "influxdb"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"].startswith("Token ")
    for name, board in _dashboards().items():
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == source["uid"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]
                assert target["rawQuery"] is True
                if panel["title"] not in NOW_PANELS:
                    assert "$timeFilter" in target["query"], (name, panel["title"])
                if panel["type"] == "timeseries":
                    assert "GROUP BY time($__interval)" in target["query"]
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24
        for note in board["annotations"]["list"]:
            assert "$timeFilter" in note["query"], (name, note["name"])


def test_dashboard_provider_points_where_compose_mounts_dashboards() -> None:
    provider = yaml.safe_load(
        (COMMITTED / "provisioning" / "dashboards" / "telemetry.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert any(v.endswith(f":{path}:ro") or v.endswith(f":{path}") for v in volumes), volumes
