"""The size cap is a promise about the disk, at the collector's full ingest rate: loggen
(syslog-ng's load generator) as fast as it goes into a small cap; the store's folder (`du`: every
file, WAL and side files included) never exceeds the cap by more than one partition, and what
retention deleted plus what is stored is what arrived.

Issue 27 asks for 60 s into a 100 MB cap; to keep CI's wall time, 20 s into a cap of a third
(32 MiB, partitions of 3.2 MiB): the cap is still passed many times over in that time."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from support.collector import loggen, loggen_path, wait_for
from support.peers import Need
from syslogkit.collector import CollectorThread, SQLiteSink, Store
from syslogkit.collector.store.partitions import partition_bound

SECONDS = 20
CAP = 32 << 20


def du(folder: Path) -> int:
    """What `du` says of the folder: every file's blocks (one that vanishes meanwhile: 0)."""
    total = 0
    for entry in os.scandir(folder):
        try:
            total += entry.stat(follow_symlinks=False).st_blocks * 512
        except FileNotFoundError:
            continue
    return total


@pytest.mark.timeout(90)
def test_size_cap_holds_at_full_ingest_rate_and_deleted_plus_stored_is_what_arrived(
    tmp_path: Path, need: Need
) -> None:
    need(loggen_path() is not None, "loggen (syslog-ng's load generator) is not unpacked")
    db = tmp_path / "capped.db"
    sink = SQLiteSink(db, max_bytes=CAP, max_age=7 * 86400, process=True, retain_interval=1.0)
    largest = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal largest
        deadline = time.monotonic() + SECONDS + 60
        while not stop.is_set() and time.monotonic() < deadline:
            if db.is_dir():
                now = du(db)
                if now > largest and os.environ.get("DEBUG_DU"):
                    print(now, sorted((e.name, e.stat().st_blocks * 512) for e in os.scandir(db)))
                largest = max(largest, now)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as c:
            loggen("tcp", c.port("tcp"), 0, rfc5424=True, seconds=SECONDS, size=300)
            wait_for(lambda: c.stats()["pipeline"]["pending"] == 0, 60, "everything committed")
            arrived = c.stats()["listeners"][0]["received"]
    finally:
        stop.set()
        watcher.join()
    deleted = sink.stats()["retention_deleted"]
    with Store(db, readonly=True) as store:
        stored = store.count()
    assert arrived > 0 and deleted > 0, (arrived, deleted)
    assert largest <= CAP + partition_bound(CAP), (largest, CAP)
    assert deleted + stored == arrived
    assert sink.stats()["retention_deleted_young"] == deleted  # all younger than the age limit
    print(f"arrived={arrived} deleted={deleted} stored={stored} largest={largest} cap={CAP}")
