"""ingest/spool.py: FIFO, durable over a restart, bounded; unreadable files are set aside."""

from __future__ import annotations

from pathlib import Path

from ingest.spool import Spool


def test_spool_is_fifo_durable_and_counts_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1024)
    assert spool.empty
    spool.append(["m f=1i 1", "m f=2i 2"])
    spool.append(["m f=3i 3"])
    assert len(spool) == 2
    assert spool.bytes == len(b"m f=1i 1\nm f=2i 2\n") + len(b"m f=3i 3\n")
    again = Spool(tmp_path / "s", max_bytes=1024)  # as after a crash
    oldest = again.oldest()
    assert oldest is not None
    assert oldest[1] == ["m f=1i 1", "m f=2i 2"]
    again.remove(oldest[0])
    again.append(["m f=4i 4"])  # numbering continues after the existing files
    batches = []
    while (item := again.oldest()) is not None:
        batches.append(item[1])
        again.remove(item[0])
    assert batches == [["m f=3i 3"], ["m f=4i 4"]]
    assert again.bytes == 0


def test_spool_full_and_leftover_temp_files(tmp_path: Path) -> None:
    (tmp_path / "000000000009.tmp").write_text("half written")
    spool = Spool(tmp_path, max_bytes=1024)
    assert not list(tmp_path.glob("*.tmp"))
    assert not spool.full
    spool.append(["x" * 1100])
    assert spool.full


def test_unreadable_spool_file_is_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(["m f=1i 1"])
    spool.append(["m f=2i 2"])
    first = sorted(tmp_path.glob("*.lp"))[0]
    first.write_bytes(b"\xff\xfe broken")
    oldest = spool.oldest()
    assert oldest is not None
    assert oldest[1] == ["m f=2i 2"]
    assert first.with_suffix(".bad").exists()
    assert len(spool) == 1
