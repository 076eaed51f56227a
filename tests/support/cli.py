"""The `telemetry` command as tests run it: its path, and an environment of our settings only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TELEMETRY = str(Path(sys.executable).with_name("telemetry"))


def telemetry_env(**settings: object) -> dict[str, str]:
    """The caller's environment without its `TELEMETRY_*` (a variable of the shell must not leak
    into a test), and `settings` as `TELEMETRY_<NAME>`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    return env | {f"TELEMETRY_{k.upper()}": str(v) for k, v in settings.items()}
