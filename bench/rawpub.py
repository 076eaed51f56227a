"""A QoS 1 publisher that cannot be the bottleneck: pre-encoded MQTT 3.1.1 packets on a socket.

A paho publisher reaches about 4,000-10,000 messages a second on this 2-core machine, below
what an ingester takes, so it cannot measure a sustained rate. This one encodes every PUBLISH
packet before it starts, then writes them in blocks of `BLOCK` with one `sendall` each, keeping
at most `WINDOW` unacknowledged (packet ids stay unique: `WINDOW` < 65,535), while a thread
counts the broker's PUBACKs. Its cost per message is a slice of one `sendall`, so the broker
(about 39,000 msg/s here) is the limit. It speaks only what it needs: CONNECT (clean session,
no keepalive; MQTT 3.1.1, or 5 as the ingester's events), PUBLISH at QoS 1, PUBACK, DISCONNECT.

Used by `ingest_bench.py`; a message counts as published once the broker has acked it.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from ingest.eventpackets import connect_packet as v5_connect
from ingest.eventpackets import publish_packet as v5_publish

BLOCK = 2_000
WINDOW = 20_000
PUBACK = 0x40


def _remaining(n: int) -> bytes:
    """MQTT's variable-length 'remaining length'."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: bytes) -> bytes:
    return struct.pack(">H", len(s)) + s


def connect_packet(client_id: str) -> bytes:
    # protocol name, level 4 (3.1.1), flags: clean session, keepalive 0 (none)
    body = _string(b"MQTT") + bytes([4, 0x02]) + struct.pack(">H", 0) + _string(client_id.encode())
    return b"\x10" + _remaining(len(body)) + body


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    """PUBLISH, QoS 1, no retain, no dup."""
    head = _string(topic.encode()) + struct.pack(">H", mid)
    return b"\x32" + _remaining(len(head) + len(payload)) + head + payload


class RawPublisher:
    """Publishes a list of (topic, payload) as fast as the broker acks them."""

    def __init__(self, host: str, port: int, client_id: str, *, v5: bool = False) -> None:
        """`v5`: speak MQTT 5 as the ingester's event connection does (`ingest.eventpackets`),
        to topics no one subscribes to: every PUBACK then is `40 03 <id> 10`."""
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.v5 = v5
        self.ack_size = 5 if v5 else 4
        # With `v5` (a stand-in for the ingester's events), PUBACKs are read in bulk every
        # 5 ms, as the ingester reads its own: read as they come they cost this process about
        # 2 us of CPU a message, on the cores the broker and the ingester share.
        self.read_pause = 0.005 if v5 else 0.0
        self.sock.sendall(v5_connect(client_id, 0, None, None) if v5 else connect_packet(client_id))
        connack = self._recv_exactly(2)
        connack += self._recv_exactly(connack[1])  # a CONNACK's remaining length is one byte
        if connack[0] != 0x20 or connack[3] != 0:  # CONNACK, accepted
            msg = f"broker refused the connection: {connack.hex()}"
            raise ConnectionError(msg)
        self.acked = 0
        self.started_cpu = 0.0
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._count_acks, daemon=True)
        self._reader.start()

    def _recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            more = self.sock.recv(n - len(data))
            if not more:
                msg = "broker closed the connection"
                raise ConnectionError(msg)
            data += more
        return data

    def _count_acks(self) -> None:
        """Every packet the broker sends us is a PUBACK of `ack_size` (no subscriptions, no
        pings)."""
        total = 0  # bytes received; a PUBACK may be split across reads
        while True:
            try:
                data = self.sock.recv(65_536)
            except OSError:
                return
            if not data:
                return
            if total % self.ack_size == 0 and data[0] != PUBACK:
                msg = f"unexpected packet type 0x{data[0]:02x}"
                raise ConnectionError(msg)
            total += len(data)
            with self._cond:
                self.acked = total // self.ack_size
                self._cond.notify_all()
            if self.read_pause:
                time.sleep(self.read_pause)

    def publish_all(
        self,
        messages: list[tuple[str, bytes]],
        rate: float = 0.0,
        stamps: list[float] | None = None,
        start_at: float = 0.0,
    ) -> float:
        """Publish every message (at `rate`/s if given, from the wall-clock time `start_at` if
        given, the packets made before); returns the wall-clock start.

        With `stamps`, the wall-clock time each message was written is appended (for latency;
        paced blocks are 10 ms of messages).
        """
        encode = (lambda t, p, mid: v5_publish(t.encode(), p, mid)) if self.v5 else publish_packet
        packets = [encode(t, p, i % 65_535 + 1) for i, (t, p) in enumerate(messages)]
        block = max(1, min(BLOCK, int(rate / 100))) if rate else BLOCK
        time.sleep(max(0.0, start_at - time.time()))
        self.started_cpu = time.process_time()  # this process's, the ack thread's included
        started_wall = time.time()
        started = time.perf_counter()
        for i in range(0, len(packets), block):
            if rate:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            limit = i - (WINDOW - block)  # acks needed before this block may go
            with self._cond:
                self._cond.wait_for(lambda: self.acked >= limit, timeout=120)  # noqa: B023
            part = packets[i : i + block]
            if stamps is not None:
                stamps.extend([time.time()] * len(part))
            self.sock.sendall(b"".join(part))
        with self._cond:
            if not self._cond.wait_for(lambda: self.acked >= len(packets), timeout=300):
                msg = f"only {self.acked} of {len(packets)} acked"
                raise TimeoutError(msg)
        return started_wall

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()
