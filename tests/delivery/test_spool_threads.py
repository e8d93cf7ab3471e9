"""The spool's one-lock rule (`Spool.lock`): an application thread appends while the writer
reads, commits and rewinds, and nothing is lost, repeated or reordered; and background delivery
with several logging threads spilling to disk while the writer is stuck keeps each thread's
records in order and the counts exact."""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.delivery import GatedTCP, Sink, first_arrivals, numbered, wait_for
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.delivery.spool import Spool, Ticket

N = 20_000


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as CPython allows: interleavings come quickly."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _record(i: int) -> bytes:
    return b"%d:" % i + b"x" * (i * 7 % 200)


def test_appends_from_one_thread_while_the_writer_reads_commits_and_rewinds_lose_nothing(
    tmp_path: Path, busy_switching: None
) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 26, segment_bytes=4096)
    appended: list[bytes] = []
    done = threading.Event()

    def appender() -> None:
        rng = random.Random(1)
        i = 0
        while i < N:
            batch = [_record(j) for j in range(i, min(N, i + rng.randint(1, 40)))]
            assert spool.append(batch) == len(batch)
            appended.extend(batch)
            i += len(batch)
        done.set()

    thread = threading.Thread(target=appender)
    thread.start()
    rng = random.Random(2)
    committed: list[bytes] = []
    in_flight: list[tuple[bytes, Ticket]] = []
    deadline = time.monotonic() + 40.0
    while len(committed) < N and time.monotonic() < deadline:
        in_flight.extend((p, t) for p, t, _ in spool.read(rng.randint(1, 6000)))
        roll = rng.random()
        if roll < 0.05:
            spool.rewind()  # a broken connection: read again from the last commit
            in_flight = []
        elif roll < 0.7:
            k = rng.randint(1, 60)
            done_now, in_flight = in_flight[:k], in_flight[k:]
            spool.commit_many([ticket for _, ticket in done_now])
            committed.extend(payload for payload, _ in done_now)
    thread.join(10.0)
    assert done.is_set()
    assert committed == appended == [_record(i) for i in range(N)]
    assert spool.pending_records() == 0 and not spool.unread()
    spool.close()
    assert [name for name in os.listdir(tmp_path) if name.endswith(".seg")] == []


def test_threads_spilling_while_the_writer_is_stuck_keep_each_threads_order_and_exact_counts(
    tmp_path: Path,
) -> None:
    threads, each = 4, 500
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = BackgroundDelivery(
            transport, queue_size=25, block_timeout=0.2, spool_dir=tmp_path / "spool"
        )
        delivery.deliver(numbered(0))
        assert wait_for(lambda: transport.in_write.is_set())

        def log(first: int) -> None:
            for i in range(first, first + each):
                delivery.deliver(numbered(i))
                if i % 97 == 0:
                    transport.let_through(1)  # the writer moves now and then, and sticks again

        workers = [threading.Thread(target=log, args=(1 + k * each,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30.0)
        transport.unblock()
        assert delivery.flush(20.0)
        delivery.close(5.0)
        total = 1 + threads * each
        stats = delivery.stats.snapshot()
        assert stats["dropped"] == 0 and stats["queued"] == total
        assert stats["spooled"] > 0
        assert wait_for(lambda: sink.count() >= total)
        order, dupes = first_arrivals(sink.numbers())
        assert sorted(order) == list(range(total)) and dupes == 0
        for k in range(threads):  # each thread's records in the order it logged them
            mine = [n for n in order if 1 + k * each <= n < 1 + (k + 1) * each]
            assert mine == sorted(mine)
