"""The downlink queue: one SQLite file that every API process on the host shares.

Why SQLite (stdlib `sqlite3`): a downlink must be sent at most once even when two API processes
answer BIDIR callbacks of one device at the same moment, and must survive a restart of any
process. A `BEGIN IMMEDIATE` transaction takes the database's write lock before it reads, so
"find the oldest queued downlink, mark it sent" is one step for every process on the host; WAL
mode lets readers (listing) go on meanwhile. The broker's retained messages cannot do a
take-once, and InfluxDB has no transactions. The limit: one host (SQLite's locks do not work
over network file systems); API processes on several hosts need a shared database server.

Table `downlink`:

| column    | type    | meaning                                              |
| --------- | ------- | ---------------------------------------------------- |
| `n`       | integer | order of queuing (the oldest queued goes first)      |
| `id`      | text    | public id                                            |
| `device`  | text    | Sigfox device id, upper case                         |
| `type`    | text    | device type, when known (for the event topic)        |
| `data`    | text    | 16 hex digits, lower case                            |
| `status`  | text    | `queued`, `sent` or `cancelled`                      |
| `created` | real    | epoch seconds                                        |
| `changed` | real    | epoch seconds of the last status change              |
| `sent`    | real    | epoch seconds it went out, when sent                 |
| `seq`     | integer | the uplink's seqNumber that took it, when sent       |

Calls block on the file; the API runs them in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Sigfox sends a device at most 4 downlinks a day: more wait for the next day's allowance.
PER_DAY = 4
DAY = 86_400.0
# Seconds a call waits for another process's write lock: far above the microseconds a take
# holds it, and under the callback's 5 s answer budget.
BUSY_TIMEOUT = 2.0
# Downlinks listed at most per device: the newest.
LIST_LIMIT = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS downlink (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    device TEXT NOT NULL,
    type TEXT,
    data TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    changed REAL NOT NULL,
    sent REAL,
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS downlink_device ON downlink (device, status, n);
"""
_COLUMNS = "id, device, type, data, status, created, changed, sent, seq"


class StoreError(Exception):
    """The downlink file cannot be used (missing folder, permissions, locked for too long)."""


@dataclass(frozen=True, slots=True)
class Downlink:
    id: str
    device: str
    type: str | None
    data: str
    status: str
    created: float
    changed: float
    sent: float | None = None
    seq: int | None = None


class DownlinkStore:
    """Queue, list, cancel and take downlinks in the SQLite file at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot use the downlink file {str(path)!r}: {exc}") from None

    @contextlib.contextmanager
    def _connect(self, busy_timeout: float = BUSY_TIMEOUT) -> Iterator[sqlite3.Connection]:
        # One connection per call: calls come from worker threads, and opening is cheap next
        # to the fsync of a commit. isolation_level=None: we say BEGIN ourselves.
        db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")  # a committed take survives a power cut
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self, busy_timeout: float = BUSY_TIMEOUT) -> Iterator[sqlite3.Connection]:
        try:
            with self._connect(busy_timeout) as db:
                db.execute("BEGIN IMMEDIATE")  # the write lock now, before we read
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"downlink file {str(self.path)!r}: {exc}") from exc

    def queue(
        self, device: str, data: str, type_name: str | None, now: float | None = None
    ) -> Downlink:
        now = time.time() if now is None else now
        item = Downlink(uuid.uuid4().hex, device, type_name, data.lower(), "queued", now, now)
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO downlink ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608  # constant columns
                (item.id, item.device, item.type, item.data, item.status, now, now, None, None),
            )
        return item

    def list(self, device: str) -> list[Downlink]:
        try:
            with self._connect() as db:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM downlink WHERE device = ? ORDER BY n DESC LIMIT ?",  # noqa: S608
                    (device, LIST_LIMIT),
                ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"downlink file {str(self.path)!r}: {exc}") from exc
        return [Downlink(*row) for row in reversed(rows)]

    def cancel(self, device: str, ident: str, now: float | None = None) -> Downlink | str | None:
        """The cancelled downlink; None when there is none; its status when it is not queued."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM downlink WHERE device = ? AND id = ?",  # noqa: S608
                (device, ident),
            ).fetchone()
            if row is None:
                return None
            item = Downlink(*row)
            if item.status != "queued":
                return item.status
            db.execute(
                "UPDATE downlink SET status = 'cancelled', changed = ? WHERE id = ?", (now, ident)
            )
        return dataclasses.replace(item, status="cancelled", changed=now)

    def take(
        self,
        device: str,
        seq: int,
        type_name: str,
        now: float | None = None,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> Downlink | None:
        """The oldest queued downlink of `device`, now marked sent; None when none may go.

        At most once across processes: the write lock is held from the read to the commit.
        None too when the device had `PER_DAY` downlinks in the last 24 hours. `busy_timeout`
        bounds the wait for another process's lock (StoreError past it), so that the caller's
        answer stays in its time budget and nothing is taken after it gave up.
        """
        now = time.time() if now is None else now
        with self._transaction(busy_timeout) as db:
            (recent,) = db.execute(
                "SELECT count(*) FROM downlink WHERE device = ? AND status = 'sent' AND sent > ?",
                (device, now - DAY),
            ).fetchone()
            if recent >= PER_DAY:
                return None
            row = db.execute(
                f"SELECT {_COLUMNS} FROM downlink WHERE device = ? AND status = 'queued' "  # noqa: S608
                "ORDER BY n LIMIT 1",
                (device,),
            ).fetchone()
            if row is None:
                return None
            item = Downlink(*row)
            db.execute(
                "UPDATE downlink SET status = 'sent', changed = ?, sent = ?, seq = ?, "
                "type = coalesce(type, ?) WHERE id = ?",
                (now, now, seq, type_name, item.id),
            )
        return dataclasses.replace(
            item, status="sent", changed=now, sent=now, seq=seq, type=item.type or type_name
        )
