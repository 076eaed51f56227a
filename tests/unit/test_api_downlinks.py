"""The SQLite downlink queue (api/downlinks.py) on a file of the test's own; no servers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from api.downlinks import DAY, PER_DAY, DownlinkStore, StoreError

T0 = 1_716_000_000.0


def test_oldest_first_then_none(tmp_path: Path) -> None:
    store = DownlinkStore(tmp_path / "d.sqlite3")
    a = store.queue("1A2B", "0102030405060708", "wristband", now=T0)
    b = store.queue("1A2B", "A1A2A3A4A5A6A7A8", None, now=T0 + 1)
    store.queue("FFFF", "0000000000000000", "scale", now=T0)
    first = store.take("1A2B", 5, "wristband", now=T0 + 10)
    assert first is not None
    assert (first.id, first.status, first.seq, first.sent) == (a.id, "sent", 5, T0 + 10)
    second = store.take("1A2B", 6, "wristband", now=T0 + 11)
    assert second is not None
    assert (second.id, second.data, second.type) == (b.id, "a1a2a3a4a5a6a7a8", "wristband")
    assert store.take("1A2B", 7, "wristband", now=T0 + 12) is None
    assert [d.status for d in store.list("1A2B")] == ["sent", "sent"]


def test_cancel_only_a_queued_one(tmp_path: Path) -> None:
    store = DownlinkStore(tmp_path / "d.sqlite3")
    a = store.queue("1A2B", "0102030405060708", "wristband", now=T0)
    cancelled = store.cancel("1A2B", a.id, now=T0 + 1)
    assert not isinstance(cancelled, str)
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    assert store.cancel("1A2B", a.id) == "cancelled"
    assert store.cancel("1A2B", "nope") is None
    assert store.cancel("FFFF", a.id) is None  # another device's id is not found
    assert store.take("1A2B", 1, "wristband") is None


def test_at_most_four_a_day(tmp_path: Path) -> None:
    store = DownlinkStore(tmp_path / "d.sqlite3")
    for i in range(PER_DAY + 1):
        store.queue("1A2B", f"{i:016x}", "wristband", now=T0)
    taken = [store.take("1A2B", s, "wristband", now=T0 + s) for s in range(PER_DAY + 1)]
    assert [t is not None for t in taken] == [True] * PER_DAY + [False]
    # A day after the first one went out, the fifth may go.
    late = store.take("1A2B", 99, "wristband", now=T0 + DAY + 0.5)
    assert late is not None
    assert late.data == f"{PER_DAY:016x}"


def test_a_second_store_on_the_file_sees_the_queue_and_takes_once(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    one, two = DownlinkStore(path), DownlinkStore(path)
    one.queue("1A2B", "0102030405060708", "wristband")
    got: list[object] = []
    barrier = threading.Barrier(8)

    def take(store: DownlinkStore, seq: int) -> None:
        barrier.wait()
        got.append(store.take("1A2B", seq, "wristband"))

    threads = [threading.Thread(target=take, args=((one, two)[i % 2], i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(g is not None for g in got) == 1
    assert [d.status for d in two.list("1A2B")] == ["sent"]


def test_an_unusable_path_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot use the downlink file"):
        DownlinkStore(blocker / "d.sqlite3")
