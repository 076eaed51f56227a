"""`telemetry api` refuses to start without keys: one line, exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from api.app import create_app
from catalogue import load_catalogue
from telemetry.errors import StartupError
from telemetry.settings import Settings
from tests.support.cli import telemetry_env


def test_cli_without_keys_prints_one_line_and_exits_2(tmp_path: object) -> None:
    env = telemetry_env()
    result = subprocess.run(
        [sys.executable, "-c", "from telemetry.cli import main; main()", "api"],
        env=env,
        cwd=str(tmp_path),  # no .env there
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TELEMETRY_API_KEYS" in lines[0]
    assert "Traceback" not in result.stderr


def test_factory_without_keys_raises_startup_error() -> None:
    with pytest.raises(StartupError, match="TELEMETRY_API_KEYS"):
        create_app(Settings(api_keys=[], api_auth="enabled"), load_catalogue())


def test_factory_with_auth_disabled_starts_without_keys() -> None:
    app = create_app(Settings(api_keys=[], api_auth="disabled"), load_catalogue())
    assert app.state.keys is None
