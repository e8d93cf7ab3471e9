"""Every loss is told with its final count (issue 18), and no record is left in a queue nobody
reads (issue 23 item 11).

The first drop of an episode is told at once with the total so far; later drops are only
counted for `NOTICE_INTERVAL` (30 s). These tests drop records after that first line and let
the queue empty before close: close must still say the final total and its reasons, in one
line, and nothing when the first line already carried it.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from support.delivery import GatedTCP, Sink, numbered, payload, wait_for
from support.relp import FakeRelp
from support.relp import transport as relp_transport
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.delivery.base import DeliveryNotice
from syslogkit.transports.address import Address
from syslogkit.transports.stream import TCPTransport


def _syslogkit_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("syslogkit:")]


def test_overflow_after_the_first_notice_is_told_with_the_final_count_at_close(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Queue of 5, writer held: 15 records overflow (the first told at once, "1 so far"), then
    everything queued is delivered; close says the 15 with their reason."""
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = BackgroundDelivery(transport, queue_size=5, block_timeout=0.0)
        delivery.deliver(numbered(0))
        assert wait_for(lambda: transport.in_write.is_set() and delivery.pending == 0)
        for i in range(1, 21):
            delivery.deliver(numbered(i))
        first = _syslogkit_lines(capsys.readouterr().err)
        assert len(first) == 1 and "1 so far (overflow 1)" in first[0], first
        transport.unblock()
        assert delivery.flush(10.0)
        assert delivery.pending == 0
        delivery.close(2.0)
        assert wait_for(lambda: sink.count() == 6)
    stats = delivery.stats.snapshot()
    assert stats["dropped"] == stats["dropped_overflow"] == 15
    lines = _syslogkit_lines(capsys.readouterr().err)
    assert lines == [
        f"syslogkit: at close, 15 records dropped in all to tcp://127.0.0.1:{sink.port} "
        "(overflow 15); spool_dir= keeps them for the next run"
    ]


def test_relp_refusals_after_the_first_notice_are_told_with_the_final_count_at_close(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A collector that answers 500 to every record: 40 refused, the first told at once, all
    answered (nothing left at close): close says 40."""
    server = FakeRelp(lambda n, message: "refuse")
    try:
        delivery = BackgroundDelivery(relp_transport(server.port))
        delivery.deliver(payload(0))
        assert delivery.flush(10.0)  # the first refusal: told at once
        for i in range(1, 40):
            delivery.deliver(payload(i))
        assert delivery.flush(10.0)
        delivery.close(2.0)
    finally:
        server.close()
    assert delivery.stats.snapshot()["dropped_refused"] == 40
    lines = _syslogkit_lines(capsys.readouterr().err)
    assert len(lines) == 2, lines
    assert "1 so far (refused 1)" in lines[0]
    assert lines[1].startswith(
        f"syslogkit: at close, 40 records dropped in all to relp://127.0.0.1:{server.port} "
        "(refused 40)"
    )


def test_close_says_nothing_more_when_the_first_notice_carried_the_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=30.0)
        delivery = BackgroundDelivery(transport, queue_size=1, block_timeout=0.0)
        delivery.deliver(numbered(0))
        assert wait_for(lambda: transport.in_write.is_set() and delivery.pending == 0)
        delivery.deliver(numbered(1))
        delivery.deliver(numbered(2))  # the one drop, told at once: "1 so far"
        transport.unblock()
        assert delivery.flush(10.0)
        delivery.close(2.0)
    lines = _syslogkit_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "1 so far" in lines[0], lines


class _HeldRoom:
    """The delivery's room condition, with each wait held until the test releases it: a
    caller waiting for room wakes exactly when the test says (here: after close)."""

    def __init__(self, inner: threading.Condition) -> None:
        self.inner = inner
        self.waiting = threading.Event()
        self.release = threading.Event()

    def __enter__(self) -> Any:
        return self.inner.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)

    def notify_all(self) -> None:
        self.inner.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        self.inner.release()
        try:
            self.release.wait(10.0)
        finally:
            self.inner.acquire()
        return True


def test_a_caller_woken_after_close_emptied_the_queue_counts_its_record_as_dropped() -> None:
    """Queue of 1, writer held in a write that times out: record 1 fills the queue, record 2's
    call waits for room. close() gives up and empties the queue; only then does the waiting
    call wake, to a queue with room. Its record must be counted (`closed`), not appended to
    a queue nobody will ever read."""
    with Sink() as sink:
        transport = GatedTCP(sink.port, timeout=0.5)
        delivery = BackgroundDelivery(
            transport, queue_size=1, block_timeout=30.0, shutdown_stall=0.2
        )
        room = _HeldRoom(delivery._room)
        delivery._room = room  # type: ignore[assignment]
        delivery.deliver(numbered(0))
        assert wait_for(lambda: transport.in_write.is_set() and delivery.pending == 0)
        delivery.deliver(numbered(1))
        caller = threading.Thread(target=delivery.deliver, args=(numbered(2),), daemon=True)
        caller.start()
        assert room.waiting.wait(5.0)
        delivery.close(1.0)  # the writer finishes: records 0 and 1 dropped, counted
        assert delivery.stats.snapshot()["dropped"] == 2 and delivery.pending == 0
        room.release.set()
        caller.join(5.0)
        assert not caller.is_alive()
    stats = delivery.stats.snapshot()
    assert delivery.pending == 0
    assert stats["sent"] + stats["dropped"] == 3, stats
    assert stats["dropped_closed"] == 1


class _BuggyTCP(TCPTransport):
    """A real TCP transport whose second write raises something other than TransportError
    (a bug), once."""

    def __init__(self, port: int) -> None:
        super().__init__(Address("tcp", "127.0.0.1", port), timeout=5.0)
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.writes == 2:
            raise RuntimeError("a bug in the transport")
        super().write(data)


def test_a_batch_lost_to_an_exception_other_than_transport_error_is_counted_as_dropped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Three batches (the writer held between them): the second write raises RuntimeError.
    Its records are counted as dropped (`error`) and told; the bug itself goes to the reporter
    as it is (handleError's business); every record is sent or dropped, none vanishes."""
    told: list[BaseException] = []
    with Sink() as sink:
        transport = _BuggyTCP(sink.port)
        delivery = BackgroundDelivery(
            transport, report=lambda exc, record: told.append(exc), batch_bytes=1 << 20
        )
        sizes = (3, 5, 7)
        n = 0
        for size in sizes:
            for _ in range(size):
                delivery.deliver(numbered(n))
                n += 1
            delivery.flush(5.0)
        delivery.close(2.0)
        stats = delivery.stats.snapshot()
        assert wait_for(lambda: sink.count() == stats["sent"])
    assert stats["sent"] + stats["dropped"] == n, stats
    assert stats["dropped"] == stats["dropped_error"] > 0
    assert any(isinstance(exc, RuntimeError) for exc in told)
    notices = [str(exc) for exc in told if isinstance(exc, DeliveryNotice)]
    assert any(f"{stats['dropped']} so far (error {stats['dropped']})" in t for t in notices)


def test_a_relp_collector_that_closes_sessions_unanswered_is_retried_with_backoff() -> None:
    """A collector that cannot store closes the session without answering (never a 500): the
    record is sent again, after a backoff wait (at least the first one, 0.05 s here: each
    session opens, so the backoff starts again), not in a tight reconnect loop. In 1.5 s: at
    most about 30 sessions (before: about 3,800)."""
    import time

    server = FakeRelp(lambda n, message: "drop")
    try:
        delivery = BackgroundDelivery(relp_transport(server.port))
        delivery.deliver(payload(0))
        time.sleep(1.5)
        sessions = server.connections
        delivery.close(0.5)
    finally:
        server.close()
    assert 2 <= sessions <= 45, sessions
    stats = delivery.stats.snapshot()
    assert stats["resent"] >= 1 and stats["dropped"] == 1  # left at close, told
