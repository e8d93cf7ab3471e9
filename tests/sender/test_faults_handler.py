"""Faults: a collector that is down, restarts, or accepts and never reads. The app never waits
longer than the timeouts allow, and what was lost is counted.

Tests parametrized over `delivery` check what a user relies on in both modes (they flush, bounded,
before looking at arrivals and counters). Tests named `sync` check the synchronous guarantees
about the caller's own waits; the `background` counterpart shows structurally that the caller
does not wait: its log calls return while the writer thread is blocked.
"""

from __future__ import annotations

import errno
import time
from typing import Any

import pytest

from support.delivery import first_arrivals, number_of
from support.delivery import writer_frames as _writer_frames
from support.handler import (
    StreamCollector,
    UDPCollector,
    logger_for,
    server_context,
    wait_until,
)
from support.peers.ports import free_port
from syslogkit.sender.handler import SyslogHandler

FLUSH = 5.0  # seconds a test waits (at most) for handed-over records to be written
both_modes = pytest.mark.parametrize("delivery", ["sync", "background"])


def _stream_collector(kind: str, pki: Any, **options: Any) -> StreamCollector:
    if kind == "tls":
        options["tls"] = server_context(pki.server.cert, pki.server.key, client_ca=pki.ca.cert)
    return StreamCollector(**options)


def _handler(collector: StreamCollector, pki: Any, **options: Any) -> SyslogHandler:
    settings: dict[str, Any] = {"timeout": 1.0, "error_interval": 3600.0}
    if collector.tls is not None:
        settings.update(
            ca_file=str(pki.ca.cert), cert_file=str(pki.client.cert), key_file=str(pki.client.key)
        )
    settings.update(options)
    handler = SyslogHandler(collector.url, **settings)
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    return handler


@both_modes
@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_collector_down_at_start_then_up(kind: str, delivery: str, pki: Any) -> None:
    """Log calls return while the collector is down; once it is up, records arrive. Sync drops
    (and counts) what it cannot write in the call; background keeps it queued and delivers it."""
    collector = _stream_collector(kind, pki, start=False)
    handler = _handler(collector, pki, backoff_initial=0.05, backoff_max=0.2, delivery=delivery)
    logger = logger_for(handler, f"down-{kind}-{delivery}")
    try:
        started = time.monotonic()
        for n in range(5):
            logger.error("while down n=%d", n)
        assert time.monotonic() - started < 3 * handler.timeout + 1  # a bound, not a speed
        assert handler.stats["sent"] == 0
        if delivery == "sync":
            assert handler.stats["dropped_unreachable"] == 5
        collector.start()
        time.sleep(0.3)  # longer than the largest backoff
        for n in range(5, 15):
            logger.warning("after up n=%d", n)
        handler.flush(FLUSH)
        expected = list(range(5, 15)) if delivery == "sync" else list(range(15))
        received = collector.wait_for(len(expected))
        assert [number_of(p) for p in received] == expected
        stats = handler.stats
        assert stats["sent"] == len(expected)
        assert stats["sent"] + stats["dropped"] == 15
    finally:
        handler.close()
        collector.close()


@both_modes
def test_udp_collector_down_then_up(delivery: str) -> None:
    """Over UDP the kernel's port-unreachable errors are counted; once up, records arrive."""
    port = free_port()
    handler = SyslogHandler(
        f"udp://127.0.0.1:{port}",
        error_interval=3600,
        backoff_initial=0,
        backoff_max=0,
        delivery=delivery,
    )
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    logger = logger_for(handler, f"udp-down-{delivery}")
    for n in range(5):
        logger.error("into the void %d", n)
        time.sleep(0.01)
    assert wait_until(lambda: handler.stats["errors"] >= 1)
    collector = UDPCollector(port=port)
    try:
        for n in range(5):
            logger.warning("heard %d", n)
        handler.flush(FLUSH)

        def heard() -> list[bytes]:
            return [p.rsplit(b" ", 1)[1] for p in collector.messages() if b" heard " in p]

        assert wait_until(lambda: len(heard()) >= 5)
        assert heard() == [b"%d" % n for n in range(5)]
    finally:
        handler.close()
        collector.close()


@both_modes
@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_collector_restart_mid_stream_loses_nothing(kind: str, delivery: str, pki: Any) -> None:
    """The first record after the collector's restart arrives, in order, nothing dropped.

    In the background, records the collector had already read may be written again after the
    break (when the writer had not yet confirmed them): then they are counted as `resent`.
    """
    collector = _stream_collector(kind, pki)
    handler = _handler(collector, pki, delivery=delivery)
    logger = logger_for(handler, f"restart-{kind}-{delivery}")
    try:
        for n in range(5):
            logger.warning("before n=%d", n)
        handler.flush(FLUSH)
        assert len(collector.wait_for(5)) == 5
        time.sleep(0.05)  # idle connection (TLS: the session tickets are on the wire by now)
        collector.restart()
        logger.warning("first after restart n=5")
        for n in range(6, 9):
            logger.warning("later n=%d", n)
        handler.flush(FLUSH)

        def arrivals() -> tuple[list[int], int]:
            return first_arrivals(number_of(p) for p in collector.messages())

        assert wait_until(lambda: len(arrivals()[0]) >= 9)
        order, dupes = arrivals()
        assert order == list(range(9))
        stats = handler.stats
        assert dupes == stats.get("resent", 0)
        assert stats["sent"] == 9 and stats["dropped"] == 0 and stats["reconnects"] == 1
        tails = [p.split(b" - - ", 1)[1] for p in collector.messages()]
        assert tails[-4:] == [b"first after restart n=5", b"later n=6", b"later n=7", b"later n=8"]
    finally:
        handler.close()
        collector.close()


@both_modes
def test_record_whose_write_failed_is_resent(delivery: str) -> None:
    """A write that fails (here: the connection broke under it) is retried on a new one."""
    collector = StreamCollector()
    handler = _handler(collector, None, delivery=delivery)
    logger = logger_for(handler, f"resend-{delivery}")
    try:
        logger.warning("one n=1")
        handler.flush(FLUSH)
        assert collector.wait_for(1)
        transport = handler.delivery.transport  # type: ignore[attr-defined]
        real_write = transport.write

        def broken_once(data: bytes) -> None:  # as if the peer's reset came in mid-write
            transport.write = real_write
            transport._write_failed(BrokenPipeError(errno.EPIPE, "Broken pipe"))

        transport.write = broken_once
        logger.warning("two n=2")
        handler.flush(FLUSH)

        def arrivals() -> tuple[list[int], int]:
            return first_arrivals(number_of(p) for p in collector.messages())

        assert wait_until(lambda: len(arrivals()[0]) >= 2)
        order, dupes = arrivals()
        stats = handler.stats
        assert order == [1, 2] and dupes == stats.get("resent", 0)
        assert stats["sent"] == 2 and stats["reconnects"] == 1 and stats["errors"] == 1
        assert stats["dropped"] == 0 and "Broken pipe" in stats["last_error"]
        assert collector.accepted == 2
    finally:
        handler.close()
        collector.close()


def test_sync_at_most_one_reconnect_per_record() -> None:
    """Sync: a record whose write fails is written again on one new connection, no more; when
    that fails too it is dropped and counted in the call."""
    collector = StreamCollector()
    handler = _handler(collector, None, delivery="sync", backoff_initial=0, backoff_max=0)
    logger = logger_for(handler, "one-reconnect")
    try:
        logger.warning("gets through")
        assert collector.wait_for(1)
        transport = handler.delivery.transport  # type: ignore[attr-defined]

        def always_broken(data: bytes) -> None:  # every connection resets under the write
            transport._write_failed(BrokenPipeError(errno.EPIPE, "Broken pipe"))

        transport.write = always_broken
        for n in range(4):
            logger.warning("lost %d", n)
            stats = handler.stats
            assert stats["dropped_closed"] == n + 1  # counted in the call itself
            assert stats["reconnects"] == n + 1  # one new connection per record
        assert transport.opened == 5 and handler.stats["sent"] == 1
    finally:
        handler.close()
        collector.close()


@pytest.mark.parametrize(
    ("kind", "read", "reason"),
    [
        ("tcp", False, "dropped_timeout"),
        ("tls", "handshake", "dropped_timeout"),  # TLS up, then no reading
        ("tls", False, "dropped_tls"),  # not even the handshake
    ],
)
def test_sync_collector_that_never_reads_every_emit_is_bounded(
    kind: str, read: object, reason: str, pki: Any
) -> None:
    """Sync: every emit returns within 3x the write timeout + 1 s; unwritten records are
    dropped and counted in the call that could not write them."""
    timeout = 0.5
    collector = _stream_collector(kind, pki, read=read)
    handler = _handler(
        collector, pki, timeout=timeout, backoff_initial=0.2, backoff_max=0.5, delivery="sync"
    )
    logger = logger_for(handler, f"noread-{kind}")
    text = "x" * 7000
    slowest = 0.0
    emitted = 0
    deadline = time.monotonic() + 20
    try:
        while handler.stats["dropped"] < 3 and time.monotonic() < deadline and emitted < 5000:
            started = time.monotonic()
            logger.warning("%d %s", emitted, text)
            slowest = max(slowest, time.monotonic() - started)
            emitted += 1
        stats = handler.stats
        assert slowest < 3 * timeout + 1
        assert stats["dropped"] >= 3
        assert stats["sent"] + stats["dropped"] == emitted
        assert stats[reason] >= 1
    finally:
        closing = time.monotonic()
        handler.close()
        assert time.monotonic() - closing < 3
        collector.close()


@pytest.mark.parametrize(
    ("kind", "read", "blocked_in"),
    [
        ("tcp", False, "send_all"),  # the kernel's buffers are full
        ("tls", "handshake", "_finish_tls_write"),  # TLS up, then no reading
        ("tls", False, "_secure"),  # not even the handshake
    ],
)
def test_background_collector_that_never_reads_log_calls_return_while_the_writer_is_blocked(
    kind: str, read: object, blocked_in: str, pki: Any
) -> None:
    """Background, structurally: the writer thread sits in one write (or the handshake) that
    cannot finish, and meanwhile every log call returns; what the queue cannot hold is dropped
    and counted as overflow (the queue's own behaviour is in test_background_queue.py)."""
    collector = _stream_collector(kind, pki, read=read)
    handler = _handler(
        collector,
        pki,
        timeout=30.0,  # the writer stays blocked for the whole test
        delivery="background",
        delivery_options={"queue_size": 200},
    )
    delivery: Any = handler.delivery
    logger = logger_for(handler, f"noread-bg-{kind}")
    text = "x" * 7000
    logged = 0
    blocked = False
    try:
        deadline = time.monotonic() + 30
        while not blocked and time.monotonic() < deadline:  # until the writer stays blocked
            logger.warning("%d %s", logged, text)
            logged += 1
            if logged % 50 == 0 and blocked_in in _writer_frames(delivery):
                sent = handler.stats["sent"]
                time.sleep(0.2)
                blocked = blocked_in in _writer_frames(delivery) and handler.stats["sent"] == sent
        assert blocked, f"the writer never stayed in {blocked_in}"
        for _ in range(2000):  # ten times the queue's size: every call returns
            logger.warning("%d %s", logged, text)
            logged += 1
        assert blocked_in in _writer_frames(delivery)
        stats = handler.stats
        assert stats["sent"] == sent
        assert stats["dropped_overflow"] > 0 and delivery.pending <= 200
        # every record is accounted for: taken by the writer, waiting in the queue, or dropped
        assert stats["queued"] + delivery.pending + stats["dropped_overflow"] == logged
    finally:
        closing = time.monotonic()
        handler.close(timeout=1.0)
        assert time.monotonic() - closing < 3 * 1.0 + 1
        collector.close()
