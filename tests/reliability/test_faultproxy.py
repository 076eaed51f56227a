"""The fault proxy itself, over real sockets to a real echo server."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        while data := sock.recv(65536):
            sock.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield str(host), int(port)
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(*echo) as p:
        yield p


def _connect(proxy: FaultProxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=timeout)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _send_and_read(sock: socket.socket) -> None:
    sock.sendall(b"x")
    if not sock.recv(1):
        raise ConnectionError("EOF")


def _connect_send_and_read(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        _send_and_read(sock)


def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        s.sendall(b"hello")
        assert _recv_exactly(s, 5) == b"hello"
    assert proxy.stats.accepted == 1
    assert proxy.stats.bytes_up >= 5
    assert proxy.stats.bytes_down >= 5


def test_delay_holds_each_chunk_at_least_the_delay(proxy: FaultProxy) -> None:
    proxy.delay(0.4, "downstream")
    with _connect(proxy) as s:
        started = time.monotonic()
        s.sendall(b"ping")
        assert _recv_exactly(s, 4) == b"ping"
        # A lower bound only: the proxy can never be faster than the delay it was given.
        assert time.monotonic() - started >= 0.4


def test_delay_is_latency_not_a_throughput_cap(proxy: FaultProxy) -> None:
    proxy.delay(0.3)
    with _connect(proxy) as s:
        for i in range(20):
            s.sendall(b"%03d" % i)
        got = _recv_exactly(s, 60)
    assert got == b"".join(b"%03d" % i for i in range(20))  # order kept


def test_stall_forwards_nothing_until_healed(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        s.sendall(b"a")
        assert _recv_exactly(s, 1) == b"a"
        proxy.stall()
        s.sendall(b"held")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(10)
        proxy.heal()
        s.settimeout(5)
        assert _recv_exactly(s, 4) == b"held"  # nothing lost: the link healed


def test_stall_accepts_new_connections_but_never_answers(proxy: FaultProxy) -> None:
    proxy.stall()
    with _connect(proxy) as s:  # the TCP handshake succeeds...
        s.sendall(b"x")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):  # ...and then silence
            s.recv(1)
        proxy.heal()
        s.settimeout(5)
        assert _recv_exactly(s, 1) == b"x"


def test_switching_faults_while_traffic_flows_loses_nothing(proxy: FaultProxy) -> None:
    total = 2000
    with _connect(proxy) as s:
        received = bytearray()

        def reader() -> None:
            while len(received) < total * 4:
                chunk = s.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        for i in range(total):
            s.sendall(b"%04d" % i)
            if i == 500:
                proxy.delay(0.05)
            elif i == 1000:
                proxy.stall()
            elif i == 1500:
                proxy.heal()
        t.join(15)
    assert bytes(received) == b"".join(b"%04d" % i for i in range(total))


def test_reset_sends_rst_to_existing_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        s.sendall(b"a")
        assert _recv_exactly(s, 1) == b"a"
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            s.recv(10)
    # The proxy still serves new connections after a reset.
    with _connect(proxy) as s2:
        s2.sendall(b"b")
        assert _recv_exactly(s2, 1) == b"b"


def test_refuse_resets_new_connections_and_keeps_old_ones(proxy: FaultProxy) -> None:
    with _connect(proxy) as old:
        old.sendall(b"1")
        assert _recv_exactly(old, 1) == b"1"  # accepted by the proxy before the switch
        proxy.refuse()
        # The RST can land before connect() returns, during the send, or as an EOF.
        with pytest.raises(ConnectionError):
            _connect_send_and_read(proxy)
        old.sendall(b"still")
        assert _recv_exactly(old, 5) == b"still"
    assert proxy.stats.refused >= 1
    proxy.heal()
    with _connect(proxy) as s:
        s.sendall(b"ok")
        assert _recv_exactly(s, 2) == b"ok"


def test_refuse_with_closed_listener_refuses_then_reopens_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.refuse(close_listener=True)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy.host, port), timeout=2).close()
    proxy.heal()
    assert proxy.port == port
    with _connect(proxy) as s:
        s.sendall(b"back")
        assert _recv_exactly(s, 4) == b"back"


def test_upstream_down_resets_the_client() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_port = placeholder.getsockname()[1]  # bound, never listening: connects refused
        with (
            FaultProxy("127.0.0.1", dead_port) as p,
            pytest.raises(ConnectionError),  # a reset (ConnectionResetError) or an EOF
        ):
            _connect_send_and_read(p)
