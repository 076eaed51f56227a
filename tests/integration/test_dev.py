"""`telemetry dev` as a user runs it: a subprocess, its key, the API, Ctrl-C, no process left."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from catalogue import load_catalogue
from telemetry.dev.stack import telemetry_argv
from telemetry.errors import ServerError
from telemetry.servers import find_binary, free_port
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

STARTUP = 90.0  # seconds: two servers and three Python children on a shared 2-core machine
STOP = 60.0  # ingest's shutdown timeout plus grace for each child, with room to spare


class Dev:
    """A running `telemetry dev` whose output lines arrive on a queue."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in ("mqtt", "influx", "api", "metrics")}
        argv = [
            *telemetry_argv("dev"),
            *("--data-dir", str(data_dir)),
            *("--mqtt-port", str(self.ports["mqtt"])),
            *("--influx-port", str(self.ports["influx"])),
            *("--api-port", str(self.ports["api"])),
            *("--metrics-port", str(self.ports["metrics"])),
            *args,
        ]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # so the test's own Ctrl-C handling stays out of it
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = STARTUP) -> re.Match[str]:
        for seen in self.output:
            match = re.search(pattern, seen)
            if match:
                return match
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, "\n".join(self.output)
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.output))

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(STOP)
        while not self.lines.empty():
            self.output.append(self.lines.get_nowait())
        return code

    def kill(self) -> None:
        """After the test, whatever happened: no process, no open pipe."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def processes_using(data_dir: Path) -> list[int]:
    """Pids whose command line or environment names the data folder (the servers' configs and
    the children's TELEMETRY_INGEST_SPOOL_DIR do), found by scanning /proc."""
    needle = str(data_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if needle in blob and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    for binary in ("mosquitto", "influxd"):
        try:
            find_binary(binary)
        except ServerError as exc:
            if os.environ.get("CI"):
                pytest.fail(str(exc), pytrace=False)
            pytest.skip(str(exc))
    folder = tmp_path / "dev"
    yield folder
    for pid in processes_using(folder):  # only after a failure: never leave servers behind
        os.kill(pid, signal.SIGKILL)


def _get(url: str, key: str, **params: Any) -> httpx.Response:
    return httpx.get(url, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def test_whole_stack_serves_every_type_then_stops_clean(data_dir: Path) -> None:
    dev = Dev(data_dir, "--devices", "1", "--backfill", "2d", "--speed", "60")
    try:
        url = dev.wait_for(r"API:\s+(http://\S+)/v1/devices").group(1)
        key = dev.wait_for(r"API key:\s+(\S+)").group(1)
        assert (data_dir / "api-key").read_text().strip() == key
        assert url == f"http://127.0.0.1:{dev.ports['api']}"
        assert _get(f"{url}/v1/devices", "wrong-key").status_code == 401
        # The printed callback URL and key take a Sigfox callback.
        printed = dev.wait_for(
            r"Sigfox callbacks:\s+(\S+)/<type>\s+\(Authorization: Bearer (\S+)\)"
        )
        callback_url, callback_key = printed.group(1), printed.group(2)
        assert (data_dir / "callback-key").read_text().strip() == callback_key
        now = int(time.time())
        uplink = {"device": "C0FFEE", "time": str(now), "seqNumber": "1", "data": "3c" + "00" * 8}
        deadline = time.monotonic() + STARTUP
        while True:  # 503 until the API's publisher has connected to the broker
            answer = httpx.post(
                f"{callback_url}/wristband",
                json=uplink,
                headers={"Authorization": f"Bearer {callback_key}"},
                timeout=10,
            )
            if answer.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 204, answer.text

        wanted = set(load_catalogue().names())
        deadline = time.monotonic() + STARTUP
        by_type: dict[str, str] = {}
        while set(by_type) != wanted:
            assert time.monotonic() < deadline, f"devices seen: {by_type}"
            assert dev.proc.poll() is None, "\n".join(dev.output)
            r = _get(f"{url}/v1/devices", key)
            if r.status_code == 200:
                by_type = {d["type"]: d["device"] for d in r.json()["devices"]}
            time.sleep(0.5)
        # The 2-day backfill gave every type history, not just a live point.
        start = int(time.time()) - 3 * 86400
        for dtype, device in by_type.items():
            r = _get(f"{url}/v1/devices/{device}/history", key, start=start, limit=10000)
            assert r.status_code == 200, r.text
            # A scale is used about twice a day; the other types send every few minutes.
            assert len(r.json()["points"]) >= 2, (dtype, r.json())

        running = processes_using(data_dir)
        assert len(running) >= 5, running  # mosquitto, influxd, ingest, api, simulate

        assert dev.interrupt() == 0, "\n".join(dev.output)
        assert dev.output[-1] == "telemetry dev: stopped"
        leftovers = [pid for pid in running if Path(f"/proc/{pid}").exists()]
        assert leftovers == [], leftovers
        assert processes_using(data_dir) == []
    finally:
        dev.kill()


def test_second_run_reuses_key_and_data(data_dir: Path) -> None:
    first = Dev(data_dir, "--no-simulate")
    try:
        key = first.wait_for(r"API key:\s+(\S+)").group(1)
        url = first.wait_for(r"docs:\s+(http://\S+)/docs").group(1)
        assert _get(f"{url}/openapi.json", key).status_code == 200
        assert first.interrupt() == 0
    finally:
        first.kill()
    second = Dev(data_dir, "--no-simulate")
    try:
        assert second.wait_for(r"API key:\s+(\S+)").group(1) == key
        assert second.interrupt() == 0
    finally:
        second.kill()
    assert processes_using(data_dir) == []


def test_a_dying_child_stops_the_rest(data_dir: Path) -> None:
    # The API killed from outside: dev must say so, stop the rest and exit non-zero.
    dev = Dev(data_dir, "--no-simulate")
    try:
        dev.wait_for(r"API key:")
        running = processes_using(data_dir)
        api_pids = [
            pid
            for pid in running
            if b" api" in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        ]
        assert len(api_pids) == 1, running
        os.kill(api_pids[0], signal.SIGKILL)
        dev.wait_for(r"api exited with status -9", timeout=30)
        assert dev.proc.wait(STOP) == 1
        assert processes_using(data_dir) == []
    finally:
        dev.kill()


def test_sigterm_stops_it_like_ctrl_c(data_dir: Path) -> None:
    dev = Dev(data_dir, "--no-simulate")
    try:
        dev.wait_for(r"API key:")
        assert len(processes_using(data_dir)) >= 5  # dev, mosquitto, influxd, ingest, api
        dev.proc.send_signal(signal.SIGTERM)
        assert dev.proc.wait(STOP) == 0
        assert processes_using(data_dir) == []
    finally:
        dev.kill()


def test_children_stop_even_if_dev_is_killed(data_dir: Path) -> None:
    dev = Dev(data_dir, "--no-simulate")
    try:
        dev.wait_for(r"API key:")
        children = [
            pid
            for pid in processes_using(data_dir)
            if pid != dev.proc.pid and b"telemetry" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(children) == 2, children  # ingest and api
        os.kill(dev.proc.pid, signal.SIGKILL)  # no chance to clean up
        dev.proc.wait(STOP)
        wait_for(
            lambda: not any(pid in processes_using(data_dir) for pid in children),
            timeout=STOP,
            what="ingest and api to stop after their parent died",
        )
        # The servers are not our children's business; the fixture removes them.
    finally:
        dev.kill()
