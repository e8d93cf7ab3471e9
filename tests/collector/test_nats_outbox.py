"""The NATS edge's outbox on its own (no server): spool order, durability, waiting at a stop.

Issue 23 items 2 and 10.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from syslogkit.collector.nats.outbox import Entry, Outbox


def entry(n: int, size: int = 100) -> tuple[Entry, bytes]:
    return Entry(f"e-run-{n}", "syslog.user.info", 1, size), b"x" * size


def queued_ids(outbox: Outbox) -> list[str]:
    return [e.msg_id for e in outbox.take(1000)]


def test_memory_entries_spooled_at_close_are_read_back_before_later_spooled_ones(
    tmp_path: Path,
) -> None:
    first = Outbox(max_memory=250, spool_dir=tmp_path)
    for n in range(1, 7):  # 1, 2 in memory; 3 to 6 in the spool (memory full)
        first.add(*entry(n))
    assert first.memory_records == 2 and first.spool_records == 4
    first.close()  # 1 and 2 are written now: after 3 to 6 were
    again = Outbox(max_memory=250, spool_dir=tmp_path)
    assert queued_ids(again) == [f"e-run-{n}" for n in range(1, 7)]
    again.close()


def test_the_spool_folder_is_fsynced_after_a_rename_and_after_an_unlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def watching(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watching)
    outbox = Outbox(max_memory=0, spool_dir=tmp_path)
    outbox.add(*entry(1))  # the first entry always fits in memory
    outbox.add(*entry(2))  # spooled
    assert synced == ["file", "folder"]
    (spooled,) = [e for e in outbox.take(10) if e.path is not None]
    outbox.acked(spooled)  # its file is unlinked
    assert synced == ["file", "folder", "folder"]
    outbox.close()


def test_keep_writes_memory_entries_to_the_spool_and_they_stay_in_order(tmp_path: Path) -> None:
    outbox = Outbox(max_memory=10_000, spool_dir=tmp_path)
    pairs = [entry(n) for n in range(1, 4)]
    for e, payload in pairs:
        outbox.add(e, payload)
    left = outbox.keep([pairs[0][0], pairs[2][0]])
    assert left == []
    assert outbox.memory_records == 1 and outbox.spool_records == 2 and outbox.kept == 2
    assert Outbox.read(pairs[0][0]) == pairs[0][1]  # read back from its file
    outbox.close()
    again = Outbox(max_memory=0, spool_dir=tmp_path)
    assert queued_ids(again) == ["e-run-1", "e-run-2", "e-run-3"]
    again.close()


@pytest.mark.timeout(10)
def test_a_full_outbox_stops_waiting_when_told_and_counts_what_it_cannot_keep() -> None:
    outbox = Outbox(max_memory=150)  # no spool
    outbox.add(*entry(1))
    late, payload = entry(2)
    waiter = threading.Thread(target=outbox.add, args=(late, payload), daemon=True)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # back-pressure while running
    outbox.stop_waiting()
    waiter.join(2)
    assert not waiter.is_alive()
    assert outbox.lost == 1 and late.lost
    outbox.close()  # entry 1, still in memory, is lost too: counted
    assert outbox.lost == 2


@pytest.mark.timeout(10)
def test_a_full_outbox_with_a_spool_keeps_everything_once_stopping(tmp_path: Path) -> None:
    outbox = Outbox(max_memory=150, spool_dir=tmp_path, max_spool=150)
    outbox.add(*entry(1))  # memory
    outbox.add(*entry(2))  # spool
    outbox.stop_waiting()
    outbox.add(*entry(3))  # over both bounds: spooled all the same
    outbox.close()
    assert outbox.lost == 0
    again = Outbox(max_memory=0, spool_dir=tmp_path)
    assert queued_ids(again) == ["e-run-1", "e-run-2", "e-run-3"]
    again.close()
