"""A disk queue of batches written while InfluxDB is unreachable, replayed in order.

One file per batch, `<12-digit number>.lp`, the lines as written to `/write`. A batch is
written to a temporary name, fsynced, renamed and the folder fsynced before the caller acks the
broker, so an acked message survives a crash of the ingester or of the machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

SUFFIX = ".lp"

log = logging.getLogger(__name__)


class Spool:
    """FIFO of batches on disk; `full` is the back-pressure signal (never drop, stop taking)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob("*.tmp"):  # a crash between write and rename
            leftover.unlink()
        self._files = sorted(self.directory.glob(f"*{SUFFIX}"))
        self.bytes = sum(p.stat().st_size for p in self._files)
        self._next = int(self._files[-1].stem) + 1 if self._files else 1

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
        tmp = final.with_suffix(".tmp")
        self._next += 1
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.rename(final)
        except OSError:
            tmp.unlink(missing_ok=True)  # e.g. disk full: leave nothing half written behind
            raise
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
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
