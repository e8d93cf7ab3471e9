"""Faults: a collector that is down, restarts, or accepts and never reads. The app never waits
longer than the timeouts allow, and what was lost is counted."""

from __future__ import annotations

import errno
import time
from typing import Any

import pytest

from peers.ports import free_port
from syslogkit.handler import SyslogHandler
from test_handler_support import StreamCollector, UDPCollector, logger_for, server_context


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


@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_collector_down_at_start_then_up(kind: str, pki: Any) -> None:
    collector = _stream_collector(kind, pki, start=False)
    handler = _handler(collector, pki, backoff_initial=0.05, backoff_max=0.2)
    logger = logger_for(handler, f"down-{kind}")
    try:
        started = time.monotonic()
        for n in range(5):
            logger.error("while down %d", n)
        assert time.monotonic() - started < 2.0
        assert handler.stats["dropped_unreachable"] == 5 and handler.stats["sent"] == 0
        collector.start()
        time.sleep(0.3)  # longer than the largest backoff
        for n in range(10):
            logger.warning("after up %d", n)
        received = collector.wait_for(10)
        assert [p.rsplit(b" ", 1)[1] for p in received] == [b"%d" % n for n in range(10)]
        assert handler.stats["sent"] == 10
    finally:
        handler.close()
        collector.close()


def test_udp_collector_down_then_up() -> None:
    """Over UDP the kernel's port-unreachable errors are counted; once up, records arrive."""
    port = free_port()
    handler = SyslogHandler(
        f"udp://127.0.0.1:{port}", error_interval=3600, backoff_initial=0, backoff_max=0
    )
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    logger = logger_for(handler, "udp-down")
    for n in range(5):
        logger.error("into the void %d", n)
        time.sleep(0.01)
    assert handler.stats["errors"] >= 1
    collector = UDPCollector(port=port)
    try:
        for n in range(5):
            logger.warning("heard %d", n)
        assert len(collector.wait_for(5)) == 5
    finally:
        handler.close()
        collector.close()


@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_collector_restart_mid_stream_loses_nothing(kind: str, pki: Any) -> None:
    collector = _stream_collector(kind, pki)
    handler = _handler(collector, pki)
    logger = logger_for(handler, f"restart-{kind}")
    try:
        for n in range(5):
            logger.warning("before %d", n)
        assert len(collector.wait_for(5)) == 5
        time.sleep(0.05)  # idle connection (TLS: the session tickets are on the wire by now)
        collector.restart()
        logger.warning("first after restart")
        for n in range(3):
            logger.warning("later %d", n)
        received = collector.wait_for(9)
        tails = [p.split(b" - - ", 1)[1] for p in received]
        assert tails[5:] == [b"first after restart", b"later 0", b"later 1", b"later 2"]
        stats = handler.stats
        assert stats["sent"] == 9 and stats["dropped"] == 0 and stats["reconnects"] == 1
    finally:
        handler.close()
        collector.close()


def test_record_whose_write_failed_is_resent() -> None:
    """A write that fails (here: the connection broke under it) is retried on a new one."""
    collector = StreamCollector()
    handler = _handler(collector, None)
    logger = logger_for(handler, "resend")
    try:
        logger.warning("one")
        assert collector.wait_for(1)
        transport = handler._delivery.transport  # type: ignore[attr-defined]
        real_write = transport.write

        def broken_once(data: bytes) -> None:  # as if the peer's reset came in mid-write
            transport.write = real_write
            transport._write_failed(BrokenPipeError(errno.EPIPE, "Broken pipe"))

        transport.write = broken_once
        logger.warning("two")
        received = collector.wait_for(2)
        assert [p.rsplit(b" ", 1)[1] for p in received] == [b"one", b"two"]
        stats = handler.stats
        assert stats["sent"] == 2 and stats["reconnects"] == 1 and stats["errors"] == 1
        assert stats["dropped"] == 0 and "Broken pipe" in stats["last_error"]
        assert collector.accepted == 2
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
def test_collector_that_never_reads(kind: str, read: object, reason: str, pki: Any) -> None:
    """Every emit returns within 3x the write timeout + 1 s; unwritten records are dropped."""
    timeout = 0.5
    collector = _stream_collector(kind, pki, read=read)
    handler = _handler(collector, pki, timeout=timeout, backoff_initial=0.2, backoff_max=0.5)
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
