"""docker-compose.yml, the Dockerfile and deploy/ checked statically (no Docker engine here)."""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from telemetry.servers import MOSQUITTO_LIMITS
from telemetry.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PROJECT_SERVICES = ("ingest", "api", "simulate")
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _interpolate(value: str, env: dict[str, str]) -> str:
    """What `docker compose` substitutes, for the ${VAR}, ${VAR:-default}, ${VAR:?err} forms."""

    def sub(m: re.Match[str]) -> str:
        name, rest = m.group(1), m.group(2)
        if name in env:
            return env[name]
        return rest if m.group(0).startswith(f"${{{name}:-") and rest is not None else ""

    return _VAR.sub(sub, value)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so anchors can merge it"
    return {k: str(v) for k, v in env.items()}


def test_services_are_all_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "mosquitto",
        "influxdb",
        "grafana",
        *PROJECT_SERVICES,
    }
    assert compose["services"]["influxdb"]["image"].startswith("influxdb:2.7")
    for name in PROJECT_SERVICES:
        service = compose["services"][name]
        assert service["build"] == "."
        assert service["command"][0] == name


def test_every_variable_is_in_env_example(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    used = {m.group(1) for m in _VAR.finditer(text)}
    assert used, "the secrets come from .env"
    assert used <= set(env_example), sorted(used - set(env_example))


def test_telemetry_variables_name_known_settings(compose: dict[str, Any]) -> None:
    known = {f"TELEMETRY_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose["services"].items():
        for key in _env(service):
            if key.startswith("TELEMETRY_"):
                assert key in known, f"{name}: {key} is not a setting"


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_services_settings_are_valid(
    compose: dict[str, Any],
    env_example: dict[str, str],
    service: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    for key in list(os.environ):
        if key.startswith("TELEMETRY_"):
            monkeypatch.delenv(key)
    env = {k: _interpolate(v, env_example) for k, v in _env(compose["services"][service]).items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TELEMETRY_INGEST_SPOOL_DIR", str(tmp_path))
    settings = Settings()
    assert str(settings.influx_url).startswith("http://influxdb:8086")
    assert settings.influx_token is not None
    assert settings.influx_token.get_secret_value() == env_example["INFLUX_TOKEN"]
    if service == "ingest":
        assert settings.mqtt.host == "mosquitto"
        assert settings.mqtt.username == "ingest"
        assert settings.mqtt.password == env_example["MQTT_INGEST_PASSWORD"]
    if service == "simulate":
        assert settings.mqtt.username == "simulator"
    if service == "api":
        assert [k.get_secret_value() for k in settings.api_keys] == [env_example["API_KEYS"]]
        assert settings.api_host == "0.0.0.0"  # reachable through the published port


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"


def test_host_ports_do_not_clash(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    seen: dict[int, str] = {}
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            parts = _interpolate(mapping, env_example).split(":")
            host_port = int(parts[-2])
            assert host_port not in seen, f"{name} and {seen.get(host_port)} both use {host_port}"
            seen[host_port] = name
    assert {"grafana", "api", "mosquitto"} <= set(seen.values())


def test_dockerfile_copies_every_package() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied: set[str] = set()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(p.removeprefix("./") for p in line.split()[1:-1])
    assert {"pyproject.toml", "README.md"} <= copied  # hatch reads the readme at build time
    assert set(packages) <= copied, sorted(set(packages) - copied)
    for path in copied:
        assert (REPO / path).exists(), path
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not set(packages) & set(ignored)


def test_mosquitto_config_matches_the_dev_broker(compose: dict[str, Any]) -> None:
    conf: dict[str, str] = {}
    for line in (REPO / "deploy/mosquitto/mosquitto.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf.setdefault(key, value)
    for key, limit in MOSQUITTO_LIMITS.items():
        assert conf.get(key) == str(limit), key
    assert conf["allow_anonymous"] == "false"
    assert conf["persistence"] == "true"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["mosquitto"]["volumes"]}
    assert mounts[conf["acl_file"]] == "./deploy/mosquitto/acl"
    # The password file is written at start on the data volume, not baked into the image.
    assert conf["password_file"].startswith("/mosquitto/data/")
    assert "mosquitto-data" in mounts.values()
    entry = compose["services"]["mosquitto"]["entrypoint"][-1]
    assert mounts[entry] == "./deploy/mosquitto/entrypoint.sh"


def test_grafana_gets_what_its_provisioning_reads(compose: dict[str, Any]) -> None:
    provisioning = (REPO / "dashboards/grafana/provisioning/datasources/telemetry.yml").read_text()
    needed = {m.group(1) for m in _VAR.finditer(provisioning)}
    assert needed == {"INFLUX_URL", "INFLUX_DATABASE", "INFLUX_TOKEN"}
    assert needed <= set(_env(compose["services"]["grafana"]))


def _command(module: str, attr: str) -> click.Command | None:
    if importlib.util.find_spec(module) is None:
        return None
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    return command


@pytest.mark.parametrize(
    ("service", "target"),
    [
        ("ingest", "ingest.command:ingest"),
        ("api", "api.command:api"),
        ("simulate", "simulators.command:simulate"),
    ],
)
def test_service_commands_parse(compose: dict[str, Any], service: str, target: str) -> None:
    command = _command(*target.split(":"))
    if command is None:
        pytest.skip(f"{target} is not written yet")
    args = compose["services"][service]["command"][1:]
    command.make_context(service, list(args))  # raises on an unknown flag or a bad value
