"""ingest/spool.py: FIFO, durable over a restart, bounded, one owner; unreadable files set aside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.spool import Spool, SpoolBusy


def test_spool_is_fifo_durable_and_counts_bytes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1024)
    assert spool.empty
    spool.append(["m f=1i 1", "m f=2i 2"])
    spool.append(["m f=3i 3"])
    assert len(spool) == 2
    assert spool.bytes == len(b"m f=1i 1\nm f=2i 2\n") + len(b"m f=3i 3\n")
    spool.close()  # as a crash would: the kernel drops the lock with the process
    again = Spool(tmp_path / "s", max_bytes=1024)
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


def test_a_spool_folder_belongs_to_one_owner(tmp_path: Path) -> None:
    first = Spool(tmp_path / "s", max_bytes=1024)
    first.append(["m f=1i 1"])
    (tmp_path / "s" / "000000000009.tmp").write_text("the first one is writing this")
    with pytest.raises(SpoolBusy) as info:
        Spool(tmp_path / "s", max_bytes=1024)
    assert str(os.getpid()) in str(info.value)  # who holds it, for the operator
    assert str(tmp_path / "s") in str(info.value)
    # The refused one touched nothing: the owner's temporary file and batch are still there.
    assert (tmp_path / "s" / "000000000009.tmp").exists()
    assert len(first) == 1
    assert first.oldest() is not None
    first.close()
    second = Spool(tmp_path / "s", max_bytes=1024)
    assert len(second) == 1
    second.close()


def test_the_spool_lock_dies_with_its_process(tmp_path: Path) -> None:
    # flock belongs to the open file; a SIGKILLed holder leaves the file but no lock.
    code = (
        "import sys, time; from pathlib import Path; from ingest.spool import Spool;"
        "Spool(Path(sys.argv[1]), 1024); print('locked', flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "locked\n"
            with pytest.raises(SpoolBusy, match=f"process {holder.pid}"):
                Spool(tmp_path, max_bytes=1024)
        finally:
            holder.kill()
            holder.wait(10)
    Spool(tmp_path, max_bytes=1024).close()  # nothing to clean up first


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


@pytest.mark.parametrize("durable", [False, True])
def test_the_newest_acked_time_outlives_the_run_and_only_grows(
    tmp_path: Path, durable: bool
) -> None:
    spool = Spool(tmp_path, max_bytes=1024)
    assert spool.newest_acked is None  # a first run: nothing taken before it
    spool.note_acked(1_700_000_100, durable=durable)
    spool.note_acked(1_700_000_050, durable=durable)  # an older uplink acked later
    spool.close()
    again = Spool(tmp_path, max_bytes=1024)
    assert again.newest_acked == 1_700_000_100
    assert (tmp_path / "newest-acked").read_text() == "1700000100\n"
    again.close()
    (tmp_path / "newest-acked").write_text("garbage")
    assert Spool(tmp_path, max_bytes=1024).newest_acked is None  # unreadable: none, logged
