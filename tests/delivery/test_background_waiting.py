"""The full-queue and shutdown rules of issue 11, one test per rule, on loopback.

Each test holds the writer where the rule needs it: a `GatedTCP` (a real TCP connection to a
`Sink` whose writes pass a gate the test opens) keeps the writer inside one write, so that what
is queued, waited for or dropped is exact; a refused port with a long backoff keeps it out of
any connection. Waits are asserted structurally: a call that waits for room while the writer
holds still can only leave at its deadline, so it takes at least `block_timeout`, and a call
that does not wait returns while the writer has not moved.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from support.delivery import (
    TIMEOUT,
    GatedTCP,
    Sink,
    first_arrivals,
    numbered,
    refused_port,
    tcp_transport,
    wait_for,
    writer_frames,
)
from syslogkit.codec.message import Severity
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.delivery.base import DeliveryNotice
from syslogkit.delivery.spool import Spool
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.schemes import make_transport

WARNING = Severity.WARNING


class Reports:
    """The delivery's reporter: what it told the application."""

    def __init__(self) -> None:
        self.told: list[BaseException] = []

    def __call__(self, exc: BaseException, record: object) -> None:
        self.told.append(exc)

    def notices(self) -> list[str]:
        return [str(exc) for exc in self.told if isinstance(exc, DeliveryNotice)]


def _hold_the_writer(delivery: BackgroundDelivery, transport: GatedTCP) -> None:
    """Deliver record 0 and wait until the writer sits inside its write: the queue is empty
    and nothing more leaves it until the test opens the gate."""
    delivery.deliver(numbered(0))
    assert wait_for(lambda: transport.entered == 1 and transport.in_write.is_set())
    assert delivery.pending == 0


def _timed(delivery: BackgroundDelivery, frame: bytes) -> float:
    start = time.monotonic()
    delivery.deliver(frame)
    return time.monotonic() - start


def _door_drops(stats: dict[str, int]) -> int:
    return sum(stats.get(f"dropped_{reason}", 0) for reason in ("overflow", "shed", "closed"))


# -- back-pressure ---------------------------------------------------------------------------


def test_a_full_queue_with_a_live_collector_waits_block_timeout_then_drops_one_counted() -> None:
    block = 0.5
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = BackgroundDelivery(transport, queue_size=10, block_timeout=block)
        _hold_the_writer(delivery, transport)
        for i in range(1, 11):
            assert _timed(delivery, numbered(i)) < block  # room: no wait
        took = _timed(delivery, numbered(11))  # full, and the writer holds still
        assert block <= took < 3 * block + 1.0
        stats = delivery.stats.snapshot()
        assert stats["dropped"] == stats["dropped_overflow"] == 1
        assert delivery.pending == 10
        transport.unblock()
        assert delivery.flush(10.0)
        assert wait_for(lambda: sink.count() == 11)
        assert sink.numbers() == list(range(11))  # the newest record was the one dropped
        delivery.close(2.0)


def test_a_slow_collector_slows_the_caller_to_its_pace_and_nothing_is_lost() -> None:
    """Small buffers and a collector that reads slowly: the queue of 50 is full again and
    again, the calls wait for room (each bounded by a generous block_timeout), none drops."""
    n = 3000
    with Sink(rcvbuf=4096, chunk=1024, read_delay=0.002) as sink:
        transport = GatedTCP(sink.port, timeout=30.0, sndbuf=4096)
        transport.unblock()
        delivery = BackgroundDelivery(transport, queue_size=50, block_timeout=20.0)
        full = 0
        for i in range(n):
            delivery.deliver(numbered(i, pad=100))
            full += delivery.pending >= delivery.queue_size
        assert full > 0, "the collector was never slower than the caller"
        assert delivery.flush(30.0)
        assert wait_for(lambda: sink.count() == n, timeout=10.0)
        assert sink.numbers() == list(range(n))
        assert delivery.stats.snapshot()["dropped"] == 0
        delivery.close(2.0)


# -- no waiting on a collector known to be gone or stalled -----------------------------------


def test_once_the_collector_is_known_unreachable_calls_return_while_the_writer_is_in_backoff() -> (
    None
):
    """A collector never reached is gone at once: with a 30 s backoff the writer sits out its
    wait while 1,000 calls into a full queue return (a waiting call could only leave at
    its 60 s deadline); the drops are exact and told in one notice."""
    backoff = Backoff(30.0, 30.0, jitter=0.0)
    transport = make_transport(
        Address("tcp", "127.0.0.1", refused_port()), timeout=1.0, backoff=backoff
    )
    reports = Reports()
    delivery = BackgroundDelivery(transport, queue_size=100, block_timeout=60.0, report=reports)
    delivery.deliver(numbered(0))
    assert wait_for(lambda: backoff.failures == 1 and "_sleep" in writer_frames(delivery))
    for i in range(1, 1001):
        delivery.deliver(numbered(i))
    assert backoff.failures == 1 and backoff.remaining() > 0  # still the same backoff
    stats = delivery.stats.snapshot()
    assert stats["queued"] == 0 and delivery.pending == 100
    assert stats["dropped"] == stats["dropped_overflow"] == 901
    assert len(reports.notices()) == 1  # the first drop, told once
    assert "(queue full)" in reports.notices()[0]
    delivery.close(0.2)


def test_after_a_wait_that_ended_without_progress_calls_stop_waiting_until_the_writer_moves() -> (
    None
):
    block = 0.5
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = BackgroundDelivery(transport, queue_size=10, block_timeout=block)
        _hold_the_writer(delivery, transport)
        for i in range(1, 11):
            delivery.deliver(numbered(i))
        assert _timed(delivery, numbered(11)) >= block  # the one wait: nothing moved
        # the writer still holds record 0: a call that waited could only leave at its deadline
        longest = max(_timed(delivery, numbered(i)) for i in range(12, 212))
        assert longest < block
        assert transport.returned == 0
        assert delivery.stats.snapshot()["dropped_overflow"] == 201
        # the writer moves (writes record 0, takes 1..10 and holds them): calls wait again
        transport.let_through(1)
        assert wait_for(lambda: transport.entered == 2 and transport.in_write.is_set())
        assert delivery.pending == 0
        for i in range(212, 222):
            delivery.deliver(numbered(i))
        assert _timed(delivery, numbered(222)) >= block
        assert delivery.stats.snapshot()["dropped_overflow"] == 202
        transport.unblock()
        assert delivery.flush(10.0)
        assert wait_for(lambda: sink.count() == 21)
        assert sink.numbers() == list(range(11)) + list(range(212, 222))
        delivery.close(2.0)


# -- shedding --------------------------------------------------------------------------------


def _shedding(transport: GatedTCP, block_timeout: float) -> BackgroundDelivery:
    return BackgroundDelivery(
        transport,
        queue_size=20,
        high_water=0.5,
        shed_below="warning",
        block_timeout=block_timeout,
    )


def test_past_the_high_water_mark_nothing_is_shed_while_the_caller_may_wait() -> None:
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = _shedding(transport, block_timeout=0.5)
        _hold_the_writer(delivery, transport)
        for i in range(1, 20):  # up to one short of full: 9 INFO records past the mark
            delivery.deliver(numbered(i))
        assert delivery.stats.snapshot()["dropped"] == 0
        assert delivery.pending == 19
        transport.unblock()
        assert delivery.flush(10.0)
        assert wait_for(lambda: sink.numbers() == list(range(20)))
        delivery.close(2.0)


@pytest.mark.parametrize("why", ["block_timeout=0", "a wait expired"])
def test_when_the_caller_cannot_wait_info_past_the_mark_is_shed_and_warnings_are_kept(
    why: str,
) -> None:
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = _shedding(transport, block_timeout=0.0 if why == "block_timeout=0" else 0.3)
        _hold_the_writer(delivery, transport)
        expected = [0]
        if why == "a wait expired":
            # fill the queue while the caller may wait (nothing is shed), then one wait expires
            for i in range(1, 21):
                delivery.deliver(numbered(i))
            expected += range(1, 21)
            assert _timed(delivery, numbered(21)) >= 0.3
            assert delivery.stats.snapshot()["dropped_overflow"] == 1
            for i in range(22, 27):
                delivery.deliver(numbered(i))  # INFO: shed
            assert delivery.stats.snapshot()["dropped_shed"] == 5
            delivery.deliver(numbered(27, severity=WARNING))  # kept, but the queue is full
            assert delivery.stats.snapshot()["dropped_overflow"] == 2
        else:
            for i in range(1, 11):  # below the mark: kept, whatever their severity
                delivery.deliver(numbered(i))
            for i in range(11, 16):  # INFO past the mark: shed
                delivery.deliver(numbered(i))
            for i in range(16, 26):  # WARNING past the mark: kept while there is room
                delivery.deliver(numbered(i, severity=WARNING))
            delivery.deliver(numbered(26, severity=Severity.ERR))  # full: overflow
            expected += list(range(1, 11)) + list(range(16, 26))
            stats = delivery.stats.snapshot()
            assert stats["dropped_shed"] == 5 and stats["dropped_overflow"] == 1
        transport.unblock()
        assert delivery.flush(10.0)
        assert wait_for(lambda: sink.count() == len(expected))
        assert sink.numbers() == expected
        delivery.close(2.0)


# -- the spool -------------------------------------------------------------------------------


def test_a_spool_takes_the_overflow_of_an_outage_in_order_and_drops_nothing(
    tmp_path: Path,
) -> None:
    port = refused_port()
    delivery = BackgroundDelivery(
        tcp_transport(port), queue_size=100, spool_dir=tmp_path / "spool", block_timeout=2.0
    )
    n = 3000
    for i in range(n):
        delivery.deliver(numbered(i))
    assert wait_for(lambda: delivery.stats.snapshot()["spooled"] == n)
    assert delivery.stats.snapshot()["dropped"] == 0
    with Sink(port) as sink:  # the collector comes up: the writer replays the spool
        assert wait_for(lambda: sink.count() >= n, timeout=20.0)
        assert delivery.flush(10.0)
        order, dupes = first_arrivals(sink.numbers())
        assert order == list(range(n)) and dupes == 0
        stats = delivery.stats.snapshot()
        assert stats["dropped"] == 0 and stats["replayed"] == n
        delivery.close(2.0)


def test_a_spool_takes_the_overflow_while_the_writer_is_stuck_in_a_write(tmp_path: Path) -> None:
    """The writer sits inside one write (a collector that stopped reading): a full queue goes
    to disk from the caller's thread, after one bounded wait, then without waiting; nothing
    is dropped, and once the write passes everything arrives in the order logged."""
    block = 0.3
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = BackgroundDelivery(
            transport, queue_size=20, block_timeout=block, spool_dir=tmp_path / "spool"
        )
        _hold_the_writer(delivery, transport)
        took = [_timed(delivery, numbered(i)) for i in range(1, 100)]
        dropped = delivery.stats.snapshot()["dropped"]
        # the writer never moved: what left the queue, callers moved to disk
        assert transport.returned == 0 and delivery.pending < delivery.queue_size
        assert delivery.stats.snapshot()["spooled"] > 0
        assert sum(t >= block for t in took) == 1 and max(took) < 3 * block + 1.0
        transport.unblock()
        delivery.close(5.0)
        assert dropped == 0
        stats = delivery.stats.snapshot()
        assert stats["dropped"] == 0 and stats["queued"] == 100
        assert wait_for(lambda: sink.count() == 100)
        assert sink.numbers() == list(range(100))


# -- shutdown --------------------------------------------------------------------------------


def _pace(transport: GatedTCP, writes: int, every: float) -> threading.Thread:
    """Let one write through every `every` seconds: a collector that keeps up, slowly."""

    def run() -> None:
        for _ in range(writes):
            time.sleep(every)
            transport.let_through(1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _close_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("syslogkit:")]


def test_close_keeps_waiting_past_shutdown_stall_while_the_writer_makes_progress(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """50 records written one per 0.05 s take 2.5 s, longer than the 1.5 s stall: close()
    without a timeout (as logging.shutdown()) delivers them all, and prints nothing."""
    n, every, stall = 50, 0.05, 1.5
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = BackgroundDelivery(
            transport, batch_bytes=1, shutdown_stall=stall, shutdown_max=30.0
        )
        for i in range(n):
            delivery.deliver(numbered(i))
        start = time.monotonic()
        pacer = _pace(transport, n, every)
        delivery.close()
        assert time.monotonic() - start >= n * every > stall
        pacer.join(10.0)
        assert wait_for(lambda: sink.count() == n)
        assert sink.numbers() == list(range(n))
        assert delivery.stats.snapshot()["dropped"] == 0
    assert _close_lines(capsys.readouterr().err) == []


def test_close_gives_up_after_shutdown_stall_without_progress_and_says_the_exact_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing ever passes the gate (each write times out after 0.3 s and is tried again):
    close() gives up after the 1 s stall, long before shutdown_max, in one line."""
    n, stall = 50, 1.0
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=0.3)
        delivery = BackgroundDelivery(transport, shutdown_stall=stall, shutdown_max=30.0)
        for i in range(n):
            delivery.deliver(numbered(i))
        start = time.monotonic()
        delivery.close()
        took = time.monotonic() - start
        assert stall <= took < 3 * (stall + transport.timeout) + 1.0
        assert sink.count() == 0
        stats = delivery.stats.snapshot()
        assert stats["dropped"] == n
    lines = _close_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert f"at close, {n} records not delivered to tcp://127.0.0.1:{sink.port}" in lines[0]
    assert "spool_dir=" in lines[0]


def test_close_gives_up_at_shutdown_max_while_progress_goes_on_and_says_the_exact_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One write per 0.02 s would need 4 s for 200 records: close() stops at shutdown_max
    (1 s), before the 5 s stall could apply, and tells exactly how many were left."""
    n, most = 200, 1.0
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = BackgroundDelivery(
            transport, batch_bytes=1, shutdown_stall=5.0, shutdown_max=most
        )
        for i in range(n):
            delivery.deliver(numbered(i))
        pacer = _pace(transport, n, 0.02)
        start = time.monotonic()
        delivery.close()
        took = time.monotonic() - start
        assert most <= took < 5.0
        pacer.join(10.0)
        stats = delivery.stats.snapshot()
        written = stats["sent"]
        assert 0 < written < n
        assert stats["dropped"] == stats["dropped_timeout"] == n - written
        assert wait_for(lambda: sink.count() == written)
        assert sink.numbers() == list(range(written))
    lines = _close_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert f"at close, {n - written} records not delivered" in lines[0]


# -- the counts add up -----------------------------------------------------------------------


def test_logged_equals_delivered_plus_dropped_by_reason_plus_queued_at_every_stage() -> None:
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = _shedding(transport, block_timeout=0.0)
        _hold_the_writer(delivery, transport)
        logged = 1
        for i in range(1, 200):
            delivery.deliver(numbered(i, severity=WARNING if i % 3 == 0 else Severity.INFO))
            logged += 1
        stats = delivery.stats.snapshot()
        # while the writer holds record 0: taken by the writer + still queued + dropped at the door
        assert logged == stats["queued"] + delivery.pending + _door_drops(stats)
        assert stats["dropped_shed"] > 0 and stats["dropped_overflow"] > 0
        transport.unblock()
        assert delivery.flush(10.0)
        delivery.close(2.0)
        delivery.deliver(numbered(logged))  # after close: dropped as `closed`
        logged += 1
        stats = delivery.stats.snapshot()
        assert wait_for(lambda: sink.count() == stats["sent"])
        by_reason = sum(v for k, v in stats.items() if k.startswith("dropped_"))
        assert stats["dropped"] == by_reason == _door_drops(stats)
        assert logged == sink.count() + stats["dropped"]


def test_logged_equals_delivered_plus_dropped_plus_spooled_when_the_collector_stays_gone(
    tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "spool"
    delivery = BackgroundDelivery(
        tcp_transport(refused_port()), queue_size=50, spool_dir=spool_dir, timeout=TIMEOUT
    )
    n = 500
    for i in range(n):
        delivery.deliver(numbered(i))
    delivery.close(1.0)
    stats = delivery.stats.snapshot()
    assert stats["sent"] == 0 and stats["dropped"] == 0
    kept = Spool(spool_dir).adopt()  # what the next run of the application replays
    assert n == stats["sent"] + stats["dropped"] + kept
