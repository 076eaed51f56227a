"""A disk queue of batches written while InfluxDB is unreachable, replayed in order.

One file per batch, `<12-digit number>.lp`, the lines as written to `/write`. A batch is
written to a temporary name, fsynced, renamed and the folder fsynced before the caller acks the
broker, so an acked message survives a crash of the ingester or of the machine.

A spool folder belongs to one process: `Spool` takes an exclusive `flock` on `.lock` in it
before it looks at any file, and holds it while the process lives. Two ingesters sharing a folder
took each other's batches (one replayed and deleted what the other had acked, into the wrong
InfluxDB); with the lock the second one stops at start (`SpoolBusy`). The kernel drops the lock
when the process dies, even by SIGKILL, so there is never a stale lock to clean up; the file
itself stays and only says which process held it last.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

SUFFIX = ".lp"
LOCK_NAME = ".lock"
# The newest uplink time (s) acked by any run on this folder, stored or spooled: the next run's
# hold horizon when InfluxDB cannot say what is stored (ingest/merge.py `must_hold`).
ACKED_NAME = "newest-acked"

log = logging.getLogger(__name__)


def _write_whole(path: Path, data: bytes, *, durable: bool) -> None:
    """`path` holds `data` whole or is as it was: written to `<path>.tmp` (removed again on
    failure, e.g. disk full; at start if a crash left it), then renamed over it. `durable`:
    fsynced, file and folder, so that it outlives a machine crash too."""
    tmp = path.with_suffix(".tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_acked(path: Path) -> int | None:
    """What `Spool.note_acked` kept; None when there is none or it cannot be read (logged)."""
    try:
        return int(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %r (%s); late copies merge with the cache alone", str(path), exc)
        return None


class SpoolBusy(Exception):
    """Another process holds the spool folder's lock."""

    def __init__(self, directory: Path, holder: str) -> None:
        where = repr(str(directory))
        if not directory.is_absolute():  # relative to the working folder: say which
            where += f" ({directory.resolve()})"
        super().__init__(f"spool folder {where} is in use by {holder}")
        self.directory = directory
        self.holder = holder


def _lock(directory: Path) -> int:
    """An open descriptor holding the folder's exclusive lock; `SpoolBusy` if another has it."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip()
        os.close(fd)
        raise SpoolBusy(
            directory, f"process {holder}" if holder.isdigit() else "another process"
        ) from None
    except OSError:
        os.close(fd)
        raise
    # Only for the message a second process prints; the lock itself is the flock.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Spool:
    """FIFO of batches on disk; `full` is the back-pressure signal (never drop, stop taking).

    Raises `SpoolBusy` when another process (or another `Spool` in this one) has the folder;
    `close()` lets it go.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = _lock(directory)  # before touching any file in it
        try:
            for leftover in self.directory.glob("*.tmp"):  # a crash between write and rename
                leftover.unlink()
            self._files = sorted(self.directory.glob(f"*{SUFFIX}"))
            self.bytes = sum(p.stat().st_size for p in self._files)
        except OSError:
            self.close()
            raise
        self._next = int(self._files[-1].stem) + 1 if self._files else 1
        self.newest_acked = _read_acked(directory / ACKED_NAME)

    def note_acked(self, newest: int, *, durable: bool) -> None:
        """Keep `newest` (an uplink time about to be acked) if it is the newest yet, before the
        ack goes out. `durable` (the batch went to the spool, which survives a machine crash)
        fsyncs it too; otherwise a process crash is what it must survive."""
        if self.newest_acked is not None and newest <= self.newest_acked:
            return
        _write_whole(self.directory / ACKED_NAME, f"{newest}\n".encode(), durable=durable)
        self.newest_acked = newest

    def close(self) -> None:
        """Release the folder (also released by the kernel when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def aclose(self) -> None:
        """`close()`, for `contextlib.aclosing` beside the service's other async resources."""
        self.close()

    def __len__(self) -> int:
        return len(self._files)

    @property
    def empty(self) -> bool:
        return not self._files

    @property
    def full(self) -> bool:
        return self.bytes >= self.max_bytes

    def append(self, lines: list[str]) -> None:
        """Durably keep one batch (blocking I/O: run it in a thread)."""
        data = ("\n".join(lines) + "\n").encode()
        final = self.directory / f"{self._next:012d}{SUFFIX}"
        self._next += 1
        _write_whole(final, data, durable=True)
        self._files.append(final)
        self.bytes += len(data)

    def oldest(self) -> tuple[Path, list[str]] | None:
        """The first batch; an unreadable file is set aside as `.bad` (logged), never retried."""
        while self._files:
            path = self._files[0]
            try:
                return path, [line for line in path.read_text().split("\n") if line]
            except (OSError, UnicodeDecodeError) as exc:
                log.error("spool file %r unreadable (%s); set aside", str(path), exc)  # noqa: TRY400
                self._forget(path)
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
        return None

    def _forget(self, path: Path) -> None:
        self._files.remove(path)
        self.bytes = sum(p.stat().st_size for p in self._files if p.exists())

    def remove(self, path: Path) -> None:
        """Drop a batch once it is stored."""
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            size = 0
        self._files.remove(path)
        self.bytes = max(0, self.bytes - size)
