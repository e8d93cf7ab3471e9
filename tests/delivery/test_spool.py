"""The disk spool by itself: records, commits, torn tails, locks, adoption, the size bound."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from syslogkit.delivery.spool import HEADER, Spool


class Drops(Counter[str]):
    def __call__(self, reason: str, n: int) -> None:
        self[reason] += n


def records(n: int, start: int = 0, size: int = 40) -> list[bytes]:
    return [(b"rec %06d " % i).ljust(size, b".") for i in range(start, start + n)]


def drain(spool: Spool, commit: bool = True) -> list[bytes]:
    out: list[bytes] = []
    while True:
        items = spool.read(4096)
        if not items:
            return out
        out.extend(payload for payload, _, _ in items)
        if commit:
            spool.commit_many([ticket for _, ticket, _ in items])


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def in_child(work: object) -> int:
    """Run `work()` in a forked child that then dies without any cleanup; its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work()  # type: ignore[operator]
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_records_come_back_in_order_across_segments_and_are_removed_once_committed(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    data = records(500)
    for start in range(0, 500, 37):
        assert spool.append(data[start : start + 37]) == len(data[start : start + 37])
    assert len(segment_files(tmp_path)) > 3
    assert spool.pending_records() == 500
    assert drain(spool) == data
    assert not spool.pending()
    assert segment_files(tmp_path) == []
    spool.close()
    assert list(tmp_path.iterdir()) == []  # the lock file goes too when nothing is left


def test_rewind_hands_out_again_what_was_not_committed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096)
    data = records(100)
    spool.append(data)
    first = spool.read(1000)
    spool.commit_many([ticket for _, ticket, _ in first[:5]])
    spool.read(1000)
    spool.rewind()
    assert drain(spool) == data[5:]
    spool.close()


def test_an_interrupted_owner_leaves_its_records_to_the_next_process_from_its_last_commit(
    tmp_path: Path,
) -> None:
    data = records(300)

    def crash_after_commit() -> None:
        spool = Spool(tmp_path, segment_bytes=4096)
        spool.append(data)
        items = spool.read(100 * 60)
        spool.commit_many([ticket for _, ticket, _ in items[:120]])
        # dies here: no close, no cleanup

    assert in_child(crash_after_commit) == 0
    heir = Spool(tmp_path)
    assert heir.adopt() == 180
    assert drain(heir) == data[120:]
    assert segment_files(tmp_path) == []
    heir.close()
    assert list(tmp_path.iterdir()) == []


def test_a_torn_tail_is_detected_and_skipped(tmp_path: Path) -> None:
    drops = Drops()

    def write() -> None:
        spool = Spool(tmp_path, segment_bytes=1 << 20)
        spool.append(records(10))

    assert in_child(write) == 0
    [segment] = segment_files(tmp_path)
    size = segment.stat().st_size
    with open(segment, "r+b") as f:  # a crash in the middle of the last record
        f.truncate(size - 7)
    heir = Spool(tmp_path, drop=drops)
    assert heir.adopt() == 9
    assert drain(heir) == records(9)
    assert drops["torn"] == 1
    heir.close()


def test_a_corrupt_record_stops_the_segment_there(tmp_path: Path) -> None:
    drops = Drops()

    def write() -> None:
        Spool(tmp_path, segment_bytes=1 << 20).append(records(10, size=50))

    assert in_child(write) == 0
    [segment] = segment_files(tmp_path)
    raw = bytearray(segment.read_bytes())
    raw[HEADER + 5 * (9 + 50) + 20] ^= 0xFF  # a bit flip inside record 5
    segment.write_bytes(bytes(raw))
    heir = Spool(tmp_path, drop=drops)
    heir.adopt()
    assert drain(heir) == records(5, size=50)
    assert drops["torn"] == 1
    heir.close()


def test_a_live_owner_is_never_adopted_and_a_dead_one_only_once(tmp_path: Path) -> None:
    live = Spool(tmp_path)
    live.append(records(10))

    def dead_writer() -> None:
        Spool(tmp_path).append(records(20, start=100))

    assert in_child(dead_writer) == 0
    first, second = Spool(tmp_path), Spool(tmp_path)
    assert first.adopt() == 20
    assert second.adopt() == 0  # the first adopter holds the dead owner's lock
    assert drain(first) == records(20, start=100)
    assert second.adopt() == 0  # nothing left
    assert drain(second) == []
    assert drain(live) == records(10)
    for spool in (live, first, second):
        spool.close()


def test_an_adopter_that_dies_hands_the_rest_on(tmp_path: Path) -> None:
    def dead_writer() -> None:
        Spool(tmp_path).append(records(50))

    def dying_adopter() -> None:
        spool = Spool(tmp_path)
        assert spool.adopt() == 50
        items = spool.read(10 * 49)
        spool.commit_many([ticket for _, ticket, _ in items[:10]])

    assert in_child(dead_writer) == 0
    assert in_child(dying_adopter) == 0
    last = Spool(tmp_path)
    assert last.adopt() == 40
    assert drain(last) == records(40, start=10)
    last.close()


def test_when_full_the_oldest_segments_are_dropped_and_counted(tmp_path: Path) -> None:
    drops = Drops()
    spool = Spool(tmp_path, max_bytes=8192, segment_bytes=4096, drop=drops)
    total = 0
    for start in range(0, 1000, 10):
        total += spool.append(records(10, start=start))
    assert spool.size <= 8192
    kept = drain(spool)
    assert len(kept) + drops["spool_full"] == 1000
    assert kept == sorted(kept)
    assert kept[-1] == records(1, start=999)[0]  # the newest survive
    spool.close()


def test_a_forked_child_lets_go_of_the_parents_spool(tmp_path: Path) -> None:
    parent = Spool(tmp_path)
    parent.append(records(5))

    def child() -> None:
        parent.after_fork_in_child()
        assert parent.owner is None
        assert not parent.pending()
        other = Spool(tmp_path)
        assert other.adopt() == 0  # the parent is alive: its lock holds
        parent.append(records(3, start=50))  # under a new owner of its own

    assert in_child(child) == 0
    assert drain(parent) == records(5)
    heir = Spool(tmp_path)
    assert heir.adopt() == 3  # the child is gone: its records are left to adopt
    assert drain(heir) == records(3, start=50)
    parent.close()
    heir.close()


def test_records_written_before_are_flagged(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(records(3), [0, 1, 0])
    assert [before for _, _, before in spool.read(1000)] == [False, True, False]
    spool.close()


def test_owner_names_sort_by_age(tmp_path: Path) -> None:
    a = Spool(tmp_path)
    a.append(records(1))
    time.sleep(0.002)
    b = Spool(tmp_path)
    b.append(records(1))
    assert a.owner is not None and b.owner is not None
    assert a.owner < b.owner
    a.close()
    b.close()


def test_spool_rejects_a_tiny_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path, max_bytes=100)
