"""Settings: env names as DESIGN section 5 gives them, flags win, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry.errors import SettingsError
from telemetry.settings import Settings, load_settings


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    s = load_settings()
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8000)
    assert s.influx_database == "telemetry"
    assert s.mqtt_topic_prefix == "uplink"
    assert s.mqtt.host == "127.0.0.1"
    assert s.mqtt.port == 1883


def test_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "TELEMETRY_MQTT_URL": "mqtts://dev:secret@broker.example:9999",
        "TELEMETRY_INFLUX_URL": "http://db.example:8087",
        "TELEMETRY_INFLUX_DATABASE": "tele",
        "TELEMETRY_INFLUX_TOKEN": "tok",
        "TELEMETRY_INFLUX_USERNAME": "u",
        "TELEMETRY_INFLUX_PASSWORD": "p",
        "TELEMETRY_API_KEYS": "k1, k2,,",
        "TELEMETRY_API_HOST": "0.0.0.0",
        "TELEMETRY_API_PORT": "9000",
        "TELEMETRY_CATALOGUE_DIR": str(tmp_path),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert s.mqtt.tls
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.username, s.mqtt.password) == (
        "broker.example",
        9999,
        "dev",
        "secret",
    )
    assert str(s.influx_url) == "http://db.example:8087/"
    assert s.influx_database == "tele"
    assert s.influx_token is not None
    assert s.influx_token.get_secret_value() == "tok"
    assert s.influx_username == "u"
    assert [k.get_secret_value() for k in s.api_keys] == ["k1", "k2"]
    assert (s.api_host, s.api_port) == ("0.0.0.0", 9000)
    assert s.catalogue_dir == tmp_path


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEMETRY_API_PORT", "9000")
    assert load_settings(api_port=9100).api_port == 9100
    assert load_settings(api_port=None).api_port == 9000


def test_dotenv_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TELEMETRY_INFLUX_DATABASE=fromdotenv\n")
    assert Settings().influx_database == "fromdotenv"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("TELEMETRY_API_PORT", "eighty", "TELEMETRY_API_PORT"),
        ("TELEMETRY_API_PORT", "70000", "TELEMETRY_API_PORT"),
        ("TELEMETRY_MQTT_URL", "http://broker:1883", "mqtt:// or mqtts://"),
        ("TELEMETRY_INFLUX_URL", "not a url", "TELEMETRY_INFLUX_URL"),
        ("TELEMETRY_CATALOGUE_DIR", "/no/such/folder", "is not a folder"),
        ("TELEMETRY_API_AUTH", "maybe", "TELEMETRY_API_AUTH"),
        ("TELEMETRY_INFLUX_DATABASE", "bad name;", "TELEMETRY_INFLUX_DATABASE"),
        # past the incremental poll's 5 min window, a lost event would wait for a full poll
        ("TELEMETRY_STATUS_BACKSTOP_SECONDS", "600", "TELEMETRY_STATUS_BACKSTOP_SECONDS"),
        ("TELEMETRY_STATUS_SETTLE_SECONDS", "-1", "TELEMETRY_STATUS_SETTLE_SECONDS"),
    ],
)
def test_a_bad_setting_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert fragment in message
    assert name in message


def test_callback_and_admin_keys_and_downlink_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEMETRY_CALLBACK_KEYS", "c1, c2")
    monkeypatch.setenv("TELEMETRY_ADMIN_KEYS", "a1")
    monkeypatch.setenv("TELEMETRY_DOWNLINK_DB", str(tmp_path / "q.sqlite3"))
    s = load_settings()
    assert [k.get_secret_value() for k in s.callback_keys] == ["c1", "c2"]
    assert [k.get_secret_value() for k in s.admin_keys] == ["a1"]
    assert s.downlink_db == tmp_path / "q.sqlite3"
    assert s.mqtt_events_prefix == "events"
    with pytest.raises(SettingsError, match="TELEMETRY_MQTT_EVENTS_PREFIX"):
        load_settings(mqtt_events_prefix="ev/#")
