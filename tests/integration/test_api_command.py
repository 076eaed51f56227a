"""`telemetry api` under uvicorn: serves with a key, stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from telemetry.servers import Influxd, free_port
from tests.support.cli import telemetry_env

pytestmark = pytest.mark.integration


def test_api_command_serves_and_stops(influxd: Influxd, database: str, tmp_path: Path) -> None:
    port = free_port()
    env = telemetry_env(influx_url=influxd.url, influx_database=database, api_keys="k-one,k-two")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from telemetry.cli import main; main()",
            "api",
            "--port",
            str(port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.05)
        assert ready, "the API did not become ready"
        ok = httpx.get(f"{base}/v1/devices", headers={"Authorization": "Bearer k-two"})
        assert ok.status_code == 200
        assert ok.json() == {"devices": []}
        assert httpx.get(f"{base}/v1/devices").status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells the truth
    assert proc.returncode in (0, -signal.SIGTERM), output.decode(errors="replace")
    assert b"Application shutdown complete" in output
    assert b"Traceback" not in output
