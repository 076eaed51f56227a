"""telemetry/process.py: the child process class shared by `telemetry dev` and the servers."""

from __future__ import annotations

import sys
from pathlib import Path

from telemetry.dev.stack import Child
from telemetry.process import LoggedProcess
from telemetry.servers import Influxd, Mosquitto


def test_output_goes_to_the_log_and_tail_reads_it(tmp_path: Path) -> None:
    child = LoggedProcess("echo", tmp_path / "logs" / "echo.log")
    proc = child.spawn([sys.executable, "-c", "print('\\n'.join(str(i) for i in range(50)))"])
    assert proc.wait(30) == 0
    child.close_log()
    assert child.exit_code == 0
    assert not child.running
    assert child.log_tail(3) == "47\n48\n49"


def test_dev_children_and_servers_share_it() -> None:
    assert issubclass(Child, LoggedProcess)
    assert issubclass(Mosquitto, LoggedProcess)
    assert issubclass(Influxd, LoggedProcess)


def test_dev_child_stops_its_group(tmp_path: Path) -> None:
    code = "import time; print('up', flush=True); time.sleep(60)"
    child = Child("sleeper", [sys.executable, "-c", code], {}, tmp_path / "sleeper.log")
    child.start()
    assert child.running
    child.stop(timeout=10)
    assert child.exit_code is not None
    assert not child.running
