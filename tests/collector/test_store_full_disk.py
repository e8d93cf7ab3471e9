"""The partitioned store on a real full disk (a tmpfs the test mounts, issue 22): rolling to a
new partition that cannot be made leaves the hot one as it was, the batch fails whole and is
retried, and once space is freed every record is stored once, in the order of the batches."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from support.disk import small_disk
from support.peers import Need
from syslogkit.collector import Record, Store, StoreError
from syslogkit.collector.store import partition_files
from syslogkit.collector.store.schema import make_row
from syslogkit.collector.store.writer import store_batch

AT = 1_700_000_000.0
#: room enough to open a WAL file (its shared-memory index, 32 KiB, the pages a checkpoint adds:
#: with none, SQLite cannot even read it)
REOPEN_ROOM = 128 << 10


def batch(start: int, count: int = 200) -> list[tuple[object, ...]]:
    return [
        make_row(
            Record(
                raw=f"<14>1 - h app - - - seq={i:07d} {'x' * 60}".encode(),
                received_at=AT + i,
                transport="tcp",
                peer="127.0.0.1",
                listener="tcp://127.0.0.1:5514",
                message=None,
            )
        )
        for i in range(start, start + count)
    ]


def fill(path: Path) -> None:
    """Write `path` until the filesystem is full (ENOSPC)."""
    block = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (4096, 512, 1):
            with pytest.raises(OSError):  # the rest, to the last byte
                while True:
                    f.write(block[:size])


def roll_on_a_full_disk(folder: Path, free: int) -> None:
    """Two batches stored, the disk filled but `free` bytes, the next transaction rolls to a
    new partition: it fails (the hot one left as it was) until the ballast is deleted."""
    db = folder / "s.db"
    ballast = folder / "ballast"
    store = Store(db, partition_bytes=64 << 20)
    try:
        store_batch(store, batch(0), min_free=0, retain_interval=5)
        store_batch(store, batch(200), min_free=0, retain_interval=5)
        store.files()[-1].checkpoint()  # the hot partition's WAL folded in: a seal would succeed
        hot = partition_files(db)
        fill(ballast)
        os.truncate(ballast, max(0, ballast.stat().st_size - free))
        store.partition_bytes = 1  # the next transaction rolls to a new partition
        failed = False
        for _ in range(3):  # the batch waits, and so does the one after it: never stored first
            try:
                store_batch(store, batch(400), min_free=0, retain_interval=5)
            except (StoreError, sqlite3.Error):
                failed = True
                assert store.last_id() == 400, free
                if partition_files(db) == hot:  # the roll could not be made
                    assert wal_mode(hot[0]), free  # the hot one as it was: open, not sealed
                    if free >= REOPEN_ROOM:  # as a restarted writer: it opens on the full disk
                        store.close()
                        store = Store(db, partition_bytes=1)
                        assert store.last_id() == 400, free
                with pytest.raises((StoreError, sqlite3.Error)):
                    store_batch(store, batch(600), min_free=0, retain_interval=5)
                continue
            break
        ballast.unlink()  # space freed: the batches go in, in their order
        if failed:
            store_batch(store, batch(400), min_free=0, retain_interval=5)
        store_batch(store, batch(600), min_free=0, retain_interval=5)
        assert len(partition_files(db)) > 1
    finally:
        store.close()
    with Store(db, readonly=True) as reader:
        raws = [r.raw for r in reader.query()]
    assert raws == [row[14] for start in (0, 200, 400, 600) for row in batch(start)], free
    shutil.rmtree(db)


def wal_mode(path: Path) -> bool:
    """Whether the SQLite file's header says WAL (bytes 18-19 are 2): not sealed."""
    with path.open("rb") as f:
        return f.read(20)[18:20] == b"\x02\x02"


def test_rolling_to_a_new_partition_on_a_full_disk_keeps_the_hot_one_and_stores_each_batch_once(
    tmp_path: Path, need: Need
) -> None:
    with small_disk(tmp_path / "disk", "4m", need) as disk:
        for free in range(0, 320 << 10, 16 << 10):  # from none to more than a new file needs
            roll_on_a_full_disk(disk.path, free)
