"""The `telemetry` command as tests run it: its path, an environment of our settings only, and
one run to its end."""

from __future__ import annotations

import os
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
