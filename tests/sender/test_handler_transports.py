"""The handler over each transport to loopback collectors; thread, fork and re-entrancy safety.

Payloads are compared with the codec's bytes; rsyslog's reading of them is in the interop tests.

Delivery is background by default on the network and sync on unix sockets. Tests parametrized
over `delivery` check what holds in both modes; they flush (bounded) before looking at the
counters, since in the background a record arrives before the writer has counted it. Tests named
`sync` check guarantees about the caller's own waits in synchronous delivery; their `background`
counterparts show that the caller does not wait at all (structurally: the writer thread is the
one waiting).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from support.delivery import number_of, refused_port
from support.delivery import writer_frames as _writer_frames
from support.handler import (
    StreamCollector,
    UDPCollector,
    UnixDatagramCollector,
    logger_for,
    wait_until,
)
from syslogkit.sender.handler import SyslogHandler
from syslogkit.transports import base as transports
from syslogkit.transports.backoff import Backoff

FLUSH = 5.0  # seconds a test waits (at most) for handed-over records to be written
both_modes = pytest.mark.parametrize("delivery", ["sync", "background"])


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback here")


@both_modes
def test_constructor_does_not_connect(delivery: str) -> None:
    handler = SyslogHandler("tcp://127.0.0.1:1", timeout=0.5, delivery=delivery)
    assert handler.delivery.transport.sock is None  # type: ignore[attr-defined]
    assert handler.stats["sent"] == 0 and handler.stats["errors"] == 0
    handler.close()


@both_modes
@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
def test_udp(host: str, delivery: str) -> None:
    collector = UDPCollector(host)
    handler = SyslogHandler(collector.url, app_name="udptest", hostname="h1", delivery=delivery)
    try:
        logger = logger_for(handler, "udp")
        for n in range(20):
            logger.info("datagram %d", n)
        handler.flush(FLUSH)
        received = collector.wait_for(20)
        assert [p.rsplit(b" ", 1)[1] for p in received] == [b"%d" % n for n in range(20)]
        assert all(b" h1 udptest %d - - datagram" % os.getpid() in p for p in received)
        assert handler.stats["sent"] == 20
    finally:
        handler.close()
        collector.close()


@pytest.mark.parametrize(
    ("host", "framing"),
    [
        ("127.0.0.1", "octet"),
        ("127.0.0.1", "lf"),
        ("127.0.0.1", "nul"),
        pytest.param("::1", "octet", marks=needs_ipv6),
    ],
)
@both_modes
def test_tcp(host: str, framing: str, delivery: str) -> None:
    collector = StreamCollector(host)
    handler = SyslogHandler(collector.url, framing=framing, app_name="tcptest", delivery=delivery)
    try:
        logger = logger_for(handler, "tcp")
        for n in range(50):
            logger.warning("frame %d", n)
        handler.flush(FLUSH)
        received = collector.wait_for(50)
        assert [p.rsplit(b" ", 1)[1] for p in received] == [b"%d" % n for n in range(50)]
        assert collector.accepted == 1
        assert handler.stats["sent"] == 50 and handler.stats["reconnects"] == 0
    finally:
        handler.close()
        collector.close()


def resolve_slow_invalid_slowly(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event, hold: float
) -> None:
    """Make resolving `slow.invalid` block until `release` is set (at most `hold` s) and then
    fail with "no such host"; other names resolve as usual."""
    real = socket.getaddrinfo

    def slow(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow.invalid":
            release.wait(hold)
            raise socket.gaierror(socket.EAI_NONAME, "no such host")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)


@both_modes
def test_name_resolved_once_per_connection(monkeypatch: pytest.MonkeyPatch, delivery: str) -> None:
    collector = StreamCollector()
    calls: list[object] = []
    real = socket.getaddrinfo

    def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    handler = SyslogHandler(f"tcp://localhost:{collector.port}", delivery=delivery)
    try:
        logger = logger_for(handler, "resolve")
        logger.warning("first")
        handler.flush(FLUSH)
        assert calls.count("localhost") == 1
        for n in range(30):
            logger.warning("r %d", n)
        handler.flush(FLUSH)
        assert len(collector.wait_for(31)) == 31
        assert calls.count("localhost") == 1
    finally:
        handler.close()
        collector.close()


def test_sync_slow_name_resolution_is_bounded_in_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sync: the caller resolves, and waits at most the timeout; the record is dropped."""
    release = threading.Event()
    resolve_slow_invalid_slowly(monkeypatch, release, hold=10)
    handler = SyslogHandler(
        "tcp://slow.invalid:514", timeout=0.3, error_interval=3600, delivery="sync"
    )
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        logger_for(handler, "slowdns").error("waits at most the timeout")
        assert time.monotonic() - started < 3 * 0.3 + 1
        assert handler.stats["dropped_unreachable"] == 1
        assert "resolving" in str(handler.stats["last_error"])
    finally:
        release.set()
        handler.close()


def test_background_slow_name_resolution_never_reaches_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Background: the writer thread resolves; log calls return while it waits for the name
    (structural: the writer is inside the resolver the whole time, nothing is lost)."""
    release = threading.Event()
    resolve_slow_invalid_slowly(monkeypatch, release, hold=30)
    handler = SyslogHandler(
        "tcp://slow.invalid:514", timeout=30.0, error_interval=3600, delivery="background"
    )
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    delivery: Any = handler.delivery
    try:
        logger = logger_for(handler, "slowdns-bg")
        logger.error("first")
        assert wait_until(lambda: "resolve" in _writer_frames(delivery))
        for n in range(100):
            logger.error("meanwhile %d", n)  # every call returns while the writer waits
        assert "resolve" in _writer_frames(delivery)
        stats = handler.stats
        assert stats["sent"] == 0 and stats["dropped"] == 0 and stats["errors"] == 0
        assert delivery.pending == 101
    finally:
        release.set()
        handler.close(timeout=1.0)


def test_unix_datagram(tmp_path: Path) -> None:
    collector = UnixDatagramCollector(tmp_path / "log.sock")
    handler = SyslogHandler(str(collector.path), app_name="local")
    try:
        logger_for(handler, "unixdgram").error("to the local daemon")
        (payload,) = collector.wait_for(1)
        assert payload.startswith(b"<11>")
        assert payload.endswith(b" local[%d]: to the local daemon" % os.getpid())
        assert handler.stats["sent"] == 1
    finally:
        handler.close()
        collector.close()


def test_unix_datagram_daemon_restart(tmp_path: Path) -> None:
    """The daemon re-creates its socket: the handler reconnects and loses nothing."""
    path = tmp_path / "log.sock"
    first = UnixDatagramCollector(path)
    handler = SyslogHandler(f"unix://{path}", backoff_initial=0.0, backoff_max=0.0)
    logger = logger_for(handler, "unixrestart")
    try:
        logger.warning("before")
        assert first.wait_for(1)
        first.close()
        second = UnixDatagramCollector(path)
        try:
            logger.warning("after")
            assert second.wait_for(1)[0].endswith(b"after")
            assert handler.stats["sent"] == 2 and handler.stats["reconnects"] == 1
        finally:
            second.close()
    finally:
        handler.close()


def test_unix_stream(tmp_path: Path) -> None:
    collector = StreamCollector(path=tmp_path / "stream.sock")
    handler = SyslogHandler(collector.url, rfc="5424", app_name="us")
    try:
        logger_for(handler, "unixstream").warning("streamed")
        (payload,) = collector.wait_for(1)
        assert payload.startswith(b"<12>1 ") and payload.endswith(
            b" us %d - - streamed" % os.getpid()
        )
    finally:
        handler.close()
        collector.close()


@pytest.mark.parametrize(
    ("scheme", "served", "hint"),
    [
        ("unix", "stream", "unix+stream://"),
        ("unix+stream", "datagram", "unix://"),
    ],
)
def test_unix_socket_of_the_other_kind_is_an_error_naming_the_scheme_to_use(
    tmp_path: Path, scheme: str, served: str, hint: str
) -> None:
    path = tmp_path / "other.sock"
    kind = socket.SOCK_STREAM if served == "stream" else socket.SOCK_DGRAM
    server = socket.socket(socket.AF_UNIX, kind)
    server.bind(str(path))
    if served == "stream":
        server.listen()
    handler = SyslogHandler(f"{scheme}://{path}", delivery="sync", error_interval=3600)
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    try:
        logger_for(handler, f"wrongkind{served}").warning("lost, but said why")
        assert handler.stats["sent"] == 0
        assert f"is a {served} socket: use {hint}{path}" in str(handler.stats["last_error"])
    finally:
        handler.close()
        server.close()


def test_stdlib_style_address_over_tcp() -> None:
    collector = StreamCollector()
    handler = SyslogHandler(("127.0.0.1", collector.port), socktype=socket.SOCK_STREAM)
    try:
        logger_for(handler, "stdlibform").warning("moved from SysLogHandler")
        assert collector.wait_for(1)[0].endswith(b"moved from SysLogHandler")
    finally:
        handler.close()
        collector.close()


@both_modes
def test_failover_address_takes_the_records_when_the_first_is_unreachable(delivery: str) -> None:
    collector = StreamCollector()
    handler = SyslogHandler(
        f"tcp://127.0.0.1:{refused_port()}",
        failover=[collector.url],
        error_interval=3600,
        delivery=delivery,
    )
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    try:
        logger = logger_for(handler, f"failover-{delivery}")
        for n in range(5):
            logger.warning("n=%d", n)
        handler.flush(FLUSH)
        received = collector.wait_for(5)
        assert [number_of(p) for p in received] == list(range(5))
        assert handler.stats["sent"] == 5 and handler.stats["dropped"] == 0
    finally:
        handler.close()
        collector.close()


@both_modes
def test_many_threads_one_connection(delivery: str) -> None:
    collector = StreamCollector()
    handler = SyslogHandler(collector.url, delivery=delivery)
    logger = logger_for(handler, "threads")

    def work(worker: int) -> None:
        for n in range(100):
            logger.warning("t%d-%d", worker, n)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        handler.flush(FLUSH)
        received = collector.wait_for(800, timeout=10)
        assert len(received) == 800
        assert {p.rsplit(b" ", 1)[1] for p in received} == {
            b"t%d-%d" % (w, n) for w in range(8) for n in range(100)
        }
        assert handler.stats["sent"] == 800 and collector.accepted == 1
    finally:
        handler.close()
        collector.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@both_modes
def test_fork_child_gets_its_own_connection(delivery: str) -> None:
    collector = StreamCollector()
    handler = SyslogHandler(collector.url, delivery=delivery)
    logger = logger_for(handler, "fork")
    try:
        logger.warning("parent before fork")
        handler.flush(FLUSH)
        assert collector.wait_for(1)
        pid = os.fork()
        if pid == 0:  # child: log, close politely, leave without running test teardown
            code = 1
            try:
                logger.warning("from the child")
                handler.close(timeout=1)
                code = 0 if handler.stats["sent"] >= 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        logger.warning("parent after fork")
        handler.flush(FLUSH)
        received = collector.wait_for(3)
        child = [p for p in received if p.endswith(b"from the child")]
        assert len(child) == 1 and b" %d - - " % pid in child[0]  # the child's PROCID
        # two connections: the collector may read the child's after the parent's
        parent = [p.split(b" - - ", 1)[1] for p in received if b" %d - - " % os.getpid() in p]
        assert parent == [b"parent before fork", b"parent after fork"]
        assert collector.accepted == 2  # the child did not write into the parent's stream
        assert handler.stats["reconnects"] == 0
    finally:
        handler.close()
        collector.close()


class _LoggingFormatter(logging.Formatter):
    """A formatter that logs (through the same handler) while formatting."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def format(self, record: logging.LogRecord) -> str:
        if not record.getMessage().startswith("inner"):
            self.logger.warning("inner log from the formatter")
        return super().format(record)


@both_modes
def test_reentrant_log_from_formatter_is_emitted_after(delivery: str) -> None:
    collector = UDPCollector()
    handler = SyslogHandler(collector.url, delivery=delivery)
    logger = logger_for(handler, "reentrant")
    handler.setFormatter(_LoggingFormatter(logger))
    try:
        logger.warning("outer")
        handler.flush(FLUSH)
        received = collector.wait_for(2)
        assert [p.rsplit(b" ", 1)[-1] for p in received] == [b"outer", b"formatter"]
        assert handler.stats["sent"] == 2 and handler.stats["dropped"] == 0
    finally:
        handler.close()
        collector.close()


class _EndlessFormatter(logging.Formatter):
    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def format(self, record: logging.LogRecord) -> str:
        self.logger.warning("again")  # every format logs once more
        return super().format(record)


@both_modes
def test_reentrant_chain_is_bounded(delivery: str) -> None:
    collector = UDPCollector()
    handler = SyslogHandler(collector.url, delivery=delivery)
    logger = logger_for(handler, "endless")
    handler.setFormatter(_EndlessFormatter(logger))
    try:
        logger.warning("start")  # returns: the chain is cut
        handler.flush(FLUSH)
        stats = handler.stats
        assert stats["sent"] == 17 and stats["dropped_reentrant"] == 1
    finally:
        handler.close()
        collector.close()


@both_modes
def test_transport_logging_into_its_own_handler_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch, delivery: str
) -> None:
    """A logger used inside the send path (here: the transport's write) feeding the handler:
    no deadlock, and no endless chain (every write logs once more; 16 such records follow each
    record from the application, in the caller's thread or in the writer's, then one is
    dropped)."""
    collector = StreamCollector()
    handler = SyslogHandler(collector.url, delivery=delivery)
    logger = logger_for(handler, "insidewrite")
    real_write = transports.Transport.write

    def chatty_write(self: transports.Transport, data: bytes) -> None:
        logger.debug("writing %d bytes", len(data))
        real_write(self, data)

    monkeypatch.setattr(transports.Transport, "write", chatty_write)
    done = threading.Event()

    def run() -> None:
        logger.warning("payload")
        done.set()

    try:
        threading.Thread(target=run, daemon=True).start()
        assert done.wait(5), "deadlocked"
        handler.flush(FLUSH)
        received = collector.wait_for(17)
        assert received[0].endswith(b"payload") and b"writing" in received[1]
        assert len(received) == 17 and all(b"writing" in p for p in received[1:])
        stats = handler.stats
        assert stats["sent"] == 17 and stats["dropped_reentrant"] == 1
    finally:
        handler.close()
        collector.close()


def test_format_errors_are_reported_not_raised() -> None:
    handler = SyslogHandler("udp://127.0.0.1:9", error_interval=0)
    seen: list[BaseException | None] = []
    handler.handleError = lambda rec: seen.append(sys.exc_info()[1])  # type: ignore[method-assign]
    logger = logger_for(handler, "badformat")
    logger.warning("%d needs a number", "not one")
    assert len(seen) == 1 and isinstance(seen[0], TypeError)
    assert handler.stats["dropped_format"] == 1
    handler.close()


def test_sync_errors_are_rate_limited_and_each_record_is_one_attempt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sync: each record is one connect attempt, dropped and counted in the call; a refused
    connection is one line on stderr (not handleError's traceback), once per
    `error_interval`."""
    handler = SyslogHandler(
        "tcp://127.0.0.1:1",
        timeout=0.5,
        error_interval=3600,
        backoff_initial=0,
        backoff_max=0,
        delivery="sync",
    )
    seen: list[BaseException | None] = []
    handler.handleError = lambda rec: seen.append(sys.exc_info()[1])  # type: ignore[method-assign]
    logger = logger_for(handler, "ratelimit")
    for n in range(5):
        logger.error("lost %d", n)
    stats = handler.stats
    assert seen == []
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "refused" in lines[0].lower(), lines
    assert stats["errors"] == 5 and stats["dropped_unreachable"] == 5 and stats["sent"] == 0
    assert "ConnectionRefusedError" in stats["last_error"]
    handler.close()


def test_background_errors_are_rate_limited_and_records_wait_for_the_collector(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Background: the writer keeps trying (every failure counted; the refused first
    connection told in one line, not handleError's traceback, once per `error_interval`);
    the records wait in the queue and are dropped, counted and told at close."""
    handler = SyslogHandler(
        "tcp://127.0.0.1:1",
        timeout=0.5,
        error_interval=3600,
        backoff_initial=0.01,
        backoff_max=0.05,
        delivery="background",
    )
    seen: list[BaseException | None] = []
    handler.handleError = lambda rec: seen.append(sys.exc_info()[1])  # type: ignore[method-assign]
    logger = logger_for(handler, "ratelimit-bg")
    for n in range(5):
        logger.error("lost %d", n)
    assert wait_until(lambda: handler.stats["errors"] >= 3)
    stats = handler.stats
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "refused" in lines[0].lower(), lines
    assert lines[0].startswith("syslogkit: tcp://127.0.0.1:1: ")
    assert "ConnectionRefusedError" in stats["last_error"]
    assert stats["sent"] == 0 and stats["dropped"] == 0  # not lost while the writer retries
    handler.close(timeout=0.5)
    assert wait_until(lambda: handler.stats.get("dropped_unreachable") == 5)
    assert handler.stats["sent"] == 0 and seen == []
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "at close, 5 records not delivered" in lines[0], lines


@both_modes
def test_closed_handler_drops_quietly(delivery: str) -> None:
    collector = UDPCollector()
    handler = SyslogHandler(collector.url, delivery=delivery)
    handler.close()
    handler.emit(logging.LogRecord("x", logging.ERROR, "", 0, "late", None, None))
    assert handler.stats["dropped_closed"] == 1 and handler.stats["errors"] == 0
    collector.close()


def test_backoff_grows_and_resets() -> None:
    now = [0.0]
    backoff = Backoff(0.1, 1.0, jitter=0.0, clock=lambda: now[0])
    assert backoff.ready()
    assert backoff.failure() == pytest.approx(0.1)
    assert not backoff.ready() and backoff.remaining() == pytest.approx(0.1)
    now[0] = 0.1
    assert backoff.ready()
    delays = [backoff.failure() for _ in range(6)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    backoff.success()
    assert backoff.ready() and backoff.failure() == pytest.approx(0.1)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_backoff_jitter_stays_in_bounds() -> None:
    backoff = Backoff(1.0, 1.0, jitter=0.1)
    for _ in range(50):
        assert 0.9 <= backoff.failure() <= 1.0


@both_modes
def test_close_and_flush_are_bounded(delivery: str) -> None:
    collector = StreamCollector()
    handler = SyslogHandler(collector.url, delivery=delivery)
    logger_for(handler, "close").warning("x")
    assert collector.wait_for(1)
    started = time.monotonic()
    handler.flush()
    handler.close()
    wait = min(handler.timeout, 2.0)  # what flush() and close() wait at most by default
    assert time.monotonic() - started < 2 * (3 * wait + 1)
    assert wait_until(lambda: not any(True for _ in collector.messages()[1:]))
    collector.close()


@both_modes
def test_tcp_keepalive_and_user_timeout(delivery: str) -> None:
    collector = StreamCollector()
    handler = SyslogHandler(collector.url, delivery=delivery)
    try:
        logger_for(handler, "keepalive").warning("x")
        handler.flush(FLUSH)
        assert collector.wait_for(1)
        sock = handler.delivery.transport.sock  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) > 0
    finally:
        handler.close()
        collector.close()


def test_delivery_options_configure_the_background_queue() -> None:
    collector = StreamCollector()
    handler = SyslogHandler(collector.url, delivery_options={"queue_size": 100})
    try:
        assert handler.delivery.queue_size == 100  # type: ignore[attr-defined]
        logger = logger_for(handler, "background")
        for n in range(10):
            logger.warning("queued %d", n)
        handler.flush(timeout=5)
        assert len(collector.wait_for(10)) == 10
    finally:
        handler.close()
        collector.close()
    with pytest.raises(ValueError):  # sync delivery has no queue to configure
        SyslogHandler("udp://h", delivery="sync", delivery_options={"queue_size": 1})


def test_queue_and_spool_are_plain_handler_keywords_for_dictconfig(tmp_path: Path) -> None:
    handler = SyslogHandler(
        "tcp://127.0.0.1:9",
        queue_size=50,
        overflow="drop_oldest",
        spool_dir=str(tmp_path / "spool"),
        spool_max_bytes=1 << 20,
        delivery_options={"queue_size": 7, "batch_bytes": 4096},
    )
    try:
        delivery = handler.delivery
        assert delivery.queue_size == 50  # type: ignore[attr-defined]  # the keyword wins
        assert delivery.overflow == "drop_oldest"  # type: ignore[attr-defined]
        assert delivery._spool.directory == str(tmp_path / "spool")  # type: ignore[attr-defined]
    finally:
        handler.close(timeout=1)
    with pytest.raises(ValueError, match="spool_dir: only with delivery='background'"):
        SyslogHandler("udp://h", delivery="sync", spool_dir=str(tmp_path / "other"))


@both_modes
def test_oversized_datagram_is_dropped_not_retried(delivery: str) -> None:
    collector = UDPCollector()
    handler = SyslogHandler(collector.url, max_size=None, error_interval=3600, delivery=delivery)
    handler.handleError = lambda record: None  # type: ignore[method-assign]
    try:
        logger = logger_for(handler, "toolarge")
        logger.warning("x" * 70000)  # over UDP's 65507-byte limit
        logger.warning("fits")
        handler.flush(FLUSH)
        assert collector.wait_for(1)[0].endswith(b"fits")
        stats = handler.stats
        assert stats["dropped_too_large"] == 1 and stats["sent"] == 1
        assert stats["reconnects"] == 0 and stats["errors"] == 1
    finally:
        handler.close()
        collector.close()
