"""One child process with its own log file: what `telemetry dev` and the local servers share.

`LoggedProcess` starts an argv in its own session (so Ctrl-C in a terminal reaches only the
parent, which stops its children in order), appends its stdout and stderr to a log file, and on
Linux asks the kernel to SIGTERM it when the parent dies, even by SIGKILL, so that nothing
outlives a killed `telemetry dev` or test run. How to stop it is the subclass's choice:
telemetry/servers.py signals the server itself (tests also pause and resume it),
telemetry/dev/stack.py signals the whole process group of a `telemetry <command>` child.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1  # prctl option, <linux/prctl.h>


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux).

    Linux ties the signal to the starting thread: start children from a thread that outlives them.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LoggedProcess:
    """A child process in its own session, logging to `log_path`."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def spawn(
        self, argv: list[str], env: dict[str, str] | None = None, *, stdin: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `argv` with output appended to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603  # our own argv, no shell
            argv,
            env=env,
            stdin=stdin,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Runs before exec and only calls prctl, which is async-signal-safe (PLW1509's concern).
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        return self.proc

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
