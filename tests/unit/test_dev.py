"""`telemetry dev` pieces that need no server: ports, the API key, the children's settings."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from telemetry.cli import main
from telemetry.dev import command, plan, stack
from telemetry.errors import ServerError
from telemetry.settings import Settings


def test_busy_port_falls_back_to_a_free_one(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        port = plan.port_or_free(busy, "MQTT")
    assert port != busy
    assert f"port {busy} is busy, MQTT uses {port}" in capsys.readouterr().out


def test_free_port_is_kept() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert plan.port_or_free(port, "the API") == port


def test_api_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = plan.api_key(tmp_path)
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / "api-key").stat().st_mode) == 0o600
    assert plan.api_key(tmp_path) == first
    assert plan.api_key(tmp_path / ".." / tmp_path.name) == first


def test_children_point_at_the_local_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEMETRY_INFLUX_TOKEN", "a-token-for-another-influx")
    monkeypatch.setenv("TELEMETRY_MQTT_URL", "mqtt://elsewhere:1883")
    ports = {"mqtt": 1, "influx": 2, "api": 3, "metrics": 4}
    env = plan.child_env(Settings(), tmp_path, "k3y", ports, backfill_days=2)
    assert env["TELEMETRY_MQTT_URL"] == "mqtt://127.0.0.1:1"
    assert env["TELEMETRY_INFLUX_URL"] == "http://127.0.0.1:2"
    assert env["TELEMETRY_API_PORT"] == "3"
    assert env["TELEMETRY_INGEST_METRICS_PORT"] == "4"
    assert env["TELEMETRY_API_KEYS"] == "k3y"
    assert env["TELEMETRY_INGEST_SPOOL_DIR"] == str(tmp_path / "spool")
    assert "TELEMETRY_INFLUX_TOKEN" not in env  # the local influxd has no authentication
    # A 2-day backfill of up to 140 uplinks a day per device must pass the rate limit.
    assert int(env["TELEMETRY_INGEST_RATE_BURST"]) >= 280
    assert env["PATH"] == os.environ["PATH"]


def test_children_settings_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ports = {"mqtt": 1883, "influx": 8086, "api": 8000, "metrics": 9108}
    for key, value in plan.child_env(Settings(), tmp_path, "k", ports, 2.0).items():
        if key.startswith("TELEMETRY_"):
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.mqtt.port == 1883
    assert [k.get_secret_value() for k in settings.api_keys] == ["k"]


def test_telemetry_argv_runs_this_installation() -> None:
    argv = stack.telemetry_argv("ingest")
    assert argv[-1] == "ingest"
    assert Path(argv[0]).is_file()


def test_missing_server_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise ServerError(f"'{name}' was not found on the PATH; install it with: apt-get ...")

    monkeypatch.setattr(command, "find_binary", missing)
    result = CliRunner().invoke(main, ["dev", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "telemetry: 'mosquitto' was not found on the PATH; install it with: apt-get ..."
    ]
    assert not (tmp_path / "d").exists()  # nothing started, nothing written


def test_bad_backfill_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["dev", "--data-dir", str(tmp_path), "--backfill", "yesterday"]
    )
    assert result.exit_code == 2
    assert "--backfill" in result.output
    assert "Traceback" not in result.output


def test_backfill_only_on_a_new_data_folder(tmp_path: Path) -> None:
    assert plan.backfill_days(tmp_path, None, no_simulate=False) == 2
    assert plan.backfill_days(tmp_path, "12h", no_simulate=False) == 0.5
    (tmp_path / "backfilled").touch()
    assert plan.backfill_days(tmp_path, None, no_simulate=False) == 0
    assert plan.backfill_days(tmp_path, "1d", no_simulate=False) == 1
    assert plan.backfill_days(tmp_path, "1d", no_simulate=True) == 0


def test_the_page_url_with_its_key_is_printed_first(capsys: pytest.CaptureFixture[str]) -> None:
    ports = {"mqtt": 1, "influx": 2, "api": 3, "metrics": 4}
    chosen = plan.Plan(Path("var/dev"), "k3y", ports, True, 3, 60.0, 1, 2.0)
    command._banner("http://127.0.0.1:3", chosen, Settings())
    first = capsys.readouterr().out.splitlines()[0]
    # the key rides in the fragment, which a browser never sends; never in a query string
    assert first == "telemetry dev: open http://127.0.0.1:3/#key=k3y"
