"""The `telemetry` command as tests run it: its path, an environment of our settings only, one
run to its end, and a long-running command as a restartable process (`TelemetryProcess`, under
`tests.support.ingest.Ingester` and `tests.support.apiprocess.ApiProcess`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

TELEMETRY = str(Path(sys.executable).with_name("telemetry"))


def telemetry_env(**settings: object) -> dict[str, str]:
    """The caller's environment without its `TELEMETRY_*` (a variable of the shell must not leak
    into a test), and `settings` as `TELEMETRY_<NAME>`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    return env | {f"TELEMETRY_{k.upper()}": str(v) for k, v in settings.items()}


def run_telemetry(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`telemetry <args>` to its end (`telemetry_env()` unless given another environment), its
    output captured as text; the caller checks the exit code."""
    return subprocess.run(
        [TELEMETRY, *args],
        env=telemetry_env() if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class TelemetryProcess:
    """`telemetry <command>` as a subprocess in `workdir` (no stray `.env`), with only `env`,
    restartable; each start appends its output to `<command>.log` there."""

    def __init__(self, command: str, workdir: Path, env: dict[str, str]) -> None:
        self.command = command
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.log_path = workdir / f"{command}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _spawn(self) -> None:
        """One more start; the caller waits for whatever "ready" means for its command."""
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [TELEMETRY, self.command], env=self.env, stdout=log, stderr=log, cwd=self.workdir
            )

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal and wait for the exit code; a process still running past `timeout` fails."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL if it still runs (a test's clean-up, whatever state the test left it in)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
