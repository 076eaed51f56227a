"""A loopback TCP proxy that injects network faults: delay, stall, reset, refuse.

The proxy runs its own asyncio loop in a daemon thread, so sync tests, async tests and
subprocess-based tests can all put it between a client and a server and switch faults while
traffic flows. `tc netem` and toxiproxy are unavailable here (RELIABILITY.md, fact 11).

    mode      new connections                     existing connections
    ------    ---------------------------------   -----------------------------------------
    pass      forwarded                           forwarded
    delay     forwarded, each chunk held N s      each chunk held N s (pipelined: latency,
                                                  not a throughput cap)
    stall     accepted, never answered            nothing forwarded, not even EOF: a
                                                  half-open link; held bytes flow on heal()
    refuse    reset (RST) at accept, or the       untouched (use reset() for those)
              listener closed (connect refused)

`reset()` is an action, not a mode: it RSTs every open connection (SO_LINGER 0) and leaves
the mode as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Direction = Literal["both", "upstream", "downstream"]
Mode = Literal["pass", "delay", "stall", "refuse"]
T = TypeVar("T")

_CHUNK = 65536  # read size per hop; small enough to keep latency per chunk meaningful
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset instead of an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


@dataclass
class ProxyStats:
    """Counters, read from the test thread (plain ints: reads are atomic enough)."""

    accepted: int = 0
    refused: int = 0
    resets: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client
    open_connections: int = 0


@dataclass(eq=False)  # identity hashing: links live in a set
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """`127.0.0.1:<port>` forwarding to `upstream`; switch faults with the methods below."""

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.port = listen_port
        self.stats = ProxyStats()
        self._mode: Mode = "pass"
        self._delay = 0.0
        self._delay_dir: Direction = "both"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing: asyncio.Event | None = None  # set unless stalled

    # --- lifecycle (test thread) ---

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def url_netloc(self) -> str:
        return f"{self.host}:{self.port}"

    # --- faults (test thread) ---

    def heal(self) -> None:
        """Back to plain forwarding; bytes held by a stall flow on; a closed listener reopens."""
        self._call(self._set("pass", 0.0, "both"))

    def delay(self, seconds: float, direction: Direction = "both") -> None:
        """Hold every chunk `seconds` before forwarding it, in `direction`."""
        self._call(self._set("delay", seconds, direction))

    def stall(self) -> None:
        """Stop forwarding anything, both ways; new connections are accepted and left silent."""
        self._call(self._set("stall", 0.0, "both"))

    def refuse(self, *, close_listener: bool = False) -> None:
        """Reset new connections at accept; with `close_listener`, connects are refused."""
        self._call(self._set("refuse", 0.0, "both"))
        if close_listener:
            self._call(self._close_listener())

    def reset(self) -> int:
        """RST every open connection, both sides; returns how many were reset."""
        return self._call(self._reset_all())

    # --- loop side ---

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _set(self, mode: Mode, delay: float, direction: Direction) -> None:
        assert self._flowing is not None
        self._mode, self._delay, self._delay_dir = mode, delay, direction
        if mode == "stall":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode != "refuse" and self._server is None:
            await self._listen()

    async def _reset_all(self) -> int:
        links = list(self._links)
        for link in links:
            self._drop(link, rst=True)
        self.stats.resets += len(links)
        return len(links)

    async def _shutdown(self) -> None:
        await self._close_listener()
        for link in list(self._links):
            self._drop(link, rst=True)

    def _drop(self, link: _Link, *, rst: bool) -> None:
        if link not in self._links:
            return
        self._links.discard(link)
        self.stats.open_connections = len(self._links)
        for w in (link.client, link.server):
            if w is not None:
                if rst:
                    _rst(w)
                else:
                    w.close()
        for task in link.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        if self._mode == "refuse":
            self.stats.refused += 1
            _rst(writer)
            return
        self.stats.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        self.stats.open_connections = len(self._links)
        try:
            await self._flowing.wait()  # a stalled proxy accepts but never dials upstream
            if link not in self._links:
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):
            self._drop(link, rst=True)  # upstream down: the client sees a reset, as with a NAT
            return
        if link not in self._links:  # reset while dialling
            _rst(up_writer)
            return
        link.server = up_writer
        up = asyncio.ensure_future(self._pump(reader, up_writer, "upstream", link))
        down = asyncio.ensure_future(self._pump(up_reader, writer, "downstream", link))
        link.tasks = [up, down]
        await asyncio.gather(up, down, return_exceptions=True)
        self._drop(link, rst=False)

    def _delay_for(self, direction: Direction) -> float:
        if self._mode != "delay" or self._delay_dir not in ("both", direction):
            return 0.0
        return self._delay

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        direction: Direction,
        link: _Link,
    ) -> None:
        """Read chunks as they come, release each at its due time: latency without a cap."""
        assert self._flowing is not None
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def release() -> None:
            assert self._flowing is not None
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                # Counted before the write, so a test that saw the bytes also sees the count.
                if direction == "upstream":
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                dst.write(data)
                await dst.drain()

        writer_task = asyncio.ensure_future(release())
        try:
            while True:
                try:
                    data = await src.read(_CHUNK)
                except OSError:
                    self._drop(link, rst=True)  # a reset on one side is passed to the other
                    return
                await queue.put((time.monotonic() + self._delay_for(direction), data))
                if not data:
                    break
            await writer_task
        except OSError:
            self._drop(link, rst=True)  # the other side went away hard: reset this one too
        finally:
            if not writer_task.done():
                writer_task.cancel()
