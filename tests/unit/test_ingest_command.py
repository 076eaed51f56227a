"""`telemetry ingest` refuses bad start-up conditions with one line and exit status 2."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.support.cli import TELEMETRY


def run(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TELEMETRY, "ingest"],
        env=os.environ | {"TELEMETRY_INGEST_METRICS_PORT": "0"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("telemetry: ")
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in last


def test_bad_setting() -> None:
    _one_line_error(run(TELEMETRY_INGEST_BATCH_SIZE="0"), "TELEMETRY_INGEST_BATCH_SIZE")


def test_metrics_port_taken() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        _one_line_error(run(TELEMETRY_INGEST_METRICS_PORT=port), port, "METRICS_PORT")


def test_unusable_spool_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _one_line_error(run(TELEMETRY_INGEST_SPOOL_DIR=str(blocker / "spool")), "SPOOL_DIR")
