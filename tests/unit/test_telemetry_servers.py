"""telemetry/servers.py: free ports for local servers (no server started)."""

from __future__ import annotations

import socket

from telemetry.servers import _ephemeral_floor, free_port


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    floor = _ephemeral_floor()
    ports = {free_port() for _ in range(50)}
    assert len(ports) > 1  # spread, not one fixed port
    for port in ports:
        assert port < floor  # never one the kernel may give an outgoing connection
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_picked() -> None:
    held = []
    try:
        for _ in range(20):
            port = free_port()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", port))
            s.listen()
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        assert all(free_port() not in taken for _ in range(200))
    finally:
        for s in held:
            s.close()
