"""The children of `telemetry dev` and the stack that starts, watches and stops them.

A `Child` is one `telemetry <command>` in a process group of its own; the `Stack` starts each,
polls until it is ready (a dead child is an error with its last log lines) and, whatever
happens, stops everything in the reverse order of starting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
import httpx

from telemetry.errors import StartupError
from telemetry.process import LoggedProcess

READY_TIMEOUT = 60.0  # seconds for a child to become ready (a cold start imports FastAPI)
LOG_TAIL_LINES = 15


class Child(LoggedProcess):
    """A `telemetry <command>` child in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(name, log_path)
        self.argv = argv
        self.env = env

    def start(self) -> None:
        self.spawn(self.argv, self.env, stdin=subprocess.DEVNULL)

    def stop(self, timeout: float) -> None:
        """SIGTERM to the whole group, wait up to `timeout`, then SIGKILL the group."""
        if self.proc is not None:
            if self.proc.poll() is None:
                _signal_group(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    click.echo(f"telemetry dev: {self.name} did not stop in {timeout:.0f}s, killed")
                    _signal_group(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            # Anything the child left in its group goes with it.
            _signal_group(self.proc.pid, signal.SIGKILL)
        self.close_log()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return super().log_tail(lines)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def telemetry_argv(command: str) -> list[str]:
    """How to run `telemetry <command>` with this very installation."""
    script = Path(sys.executable).with_name("telemetry")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), command]
    found = shutil.which("telemetry")
    if found:
        return [found, command]
    return [sys.executable, "-c", "from telemetry.cli import main; main()", command]


class Stack:
    """What `telemetry dev` started, stopped in reverse order whatever happens."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.children: list[Child] = []
        self._undo = contextlib.ExitStack()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self._undo.close()

    def on_exit(self, callback: Callable[[], None]) -> None:
        self._undo.callback(callback)

    def run_child(self, child: Child, timeout: float) -> None:
        child.start()
        self.children.append(child)
        self.on_exit(lambda: child.stop(timeout))

    def wait_until(self, what: str, ready: Callable[[], bool], children: list[Child]) -> bool:
        """Poll `ready` until true; False if stopped meanwhile. A dead child is an error."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.stop.is_set():
            self.check(children)
            if ready():
                return True
            if time.monotonic() > deadline:
                raise StartupError(f"{what} not ready within {READY_TIMEOUT:.0f}s")
            self.stop.wait(0.2)
        return False

    def check(self, children: list[Child]) -> None:
        for child in children:
            code = child.exit_code
            if code is not None:
                raise StartupError(
                    f"{child.name} exited with status {code}; last lines of "
                    f"{child.log_path}:\n{child.log_tail()}"
                )


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def log_has(child: Child, text: str) -> bool:
    try:
        return text in child.log_path.read_text(errors="replace")
    except OSError:
        return False
