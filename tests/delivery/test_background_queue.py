"""BackgroundDelivery on loopback: order, batching, overflow, a stalled collector, fork, bounds."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from support.delivery import (
    TIMEOUT,
    Sink,
    first_arrivals,
    numbered,
    refused_port,
    tcp_transport,
    wait_for,
    writer_frames,
)
from syslogkit.delivery.background import DEFAULT_TIMEOUT, BackgroundDelivery
from syslogkit.delivery.base import Stats
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import TransportError
from syslogkit.transports.stream import TCPTransport


class WatchedTCP(TCPTransport):
    """A TCP transport that says when its writer is inside `write`, with a small send buffer."""

    def __init__(self, port: int, *, timeout: float, sndbuf: int | None = None) -> None:
        super().__init__(
            Address("tcp", "127.0.0.1", port), timeout=timeout, backoff=Backoff(0.05, 0.5)
        )
        self.sndbuf = sndbuf
        self.in_write = threading.Event()
        self.entered = 0
        self.returned = 0
        self.writes: list[int] = []

    def _connect(self, deadline: float) -> socket.socket:
        sock = super()._connect(deadline)
        if self.sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        return sock

    def write(self, data: bytes) -> None:
        self.entered += 1
        self.in_write.set()
        try:
            super().write(data)
        finally:
            self.writes.append(len(data))
            self.returned += 1
            self.in_write.clear()


def test_records_arrive_in_order_and_many_per_write() -> None:
    with Sink() as sink:
        transport = WatchedTCP(sink.port, timeout=TIMEOUT)
        delivery = BackgroundDelivery(transport, queue_size=50_000)
        n = 5000
        for i in range(n):
            delivery.deliver(numbered(i))
        assert delivery.flush(10.0)
        assert wait_for(lambda: sink.count() == n)
        assert sink.numbers() == list(range(n))
        stats = delivery.stats.snapshot()
        assert stats["sent"] == stats["queued"] == n
        assert stats["dropped"] == 0
        assert transport.returned < n / 10  # many frames per sendall
        delivery.close(2.0)


def test_the_constructor_neither_connects_nor_starts_a_thread() -> None:
    transport = tcp_transport(refused_port())
    before = threading.active_count()
    delivery = BackgroundDelivery(transport)
    assert transport.sock is None
    assert threading.active_count() == before
    delivery.close(0.5)


@pytest.mark.parametrize("overflow", ["drop_newest", "drop_oldest"])
def test_a_full_queue_drops_and_counts(overflow: str) -> None:
    """Nothing reachable: the queue keeps `queue_size` records, the rest is dropped."""
    delivery = BackgroundDelivery(tcp_transport(refused_port()), queue_size=100, overflow=overflow)
    for i in range(1000):
        delivery.deliver(numbered(i))
    stats = delivery.stats.snapshot()
    assert stats["dropped_overflow"] == 1000 - delivery.pending
    assert 100 <= delivery.pending + stats["queued"] <= 101
    delivery.close(0.2)


def test_drop_oldest_keeps_the_newest_records() -> None:
    with Sink() as sink:
        sink.stall()
        port = sink.port
    # a collector that comes up later, on a port where nothing listens now
    transport = tcp_transport(port)
    delivery = BackgroundDelivery(transport, queue_size=50, overflow="drop_oldest")
    for i in range(500):
        delivery.deliver(numbered(i))
    with Sink(port) as sink:
        assert delivery.flush(10.0)
        assert wait_for(lambda: sink.count() >= 50)
        numbers = [n for n in sink.numbers() if n is not None]
        assert numbers[-1] == 499
        assert numbers == sorted(numbers)
        stats = delivery.stats.snapshot()
        assert len(numbers) + stats["dropped"] == 500
        delivery.close(2.0)


def test_stalled_collector_log_calls_return_while_the_writer_is_blocked_in_a_write() -> None:
    """Structural: every log call returns while the writer sits inside one write; once the
    collector reads again, delivered + dropped == logged."""
    with Sink(rcvbuf=4096) as sink:
        sink.stall()
        transport = WatchedTCP(sink.port, timeout=40.0, sndbuf=4096)
        delivery = BackgroundDelivery(transport, queue_size=200)
        logged = 0
        blocked = False
        # fill the kernel buffers until the writer stays inside a write (bounded)
        while logged < 200_000:
            delivery.deliver(numbered(logged, pad=200))
            logged += 1
            if logged % 50 == 0 and transport.in_write.is_set():
                returned = transport.returned
                time.sleep(0.2)
                if transport.in_write.is_set() and transport.returned == returned:
                    blocked = True
                    break
        assert blocked, "the writer never blocked in a write"
        returned = transport.returned
        assert "send_all" in writer_frames(delivery)
        # the structural check: 20x the queue's size of log calls, all of them return while
        # the writer does not come back from the write it is blocked in
        for _ in range(4000):
            delivery.deliver(numbered(logged, pad=200))
            logged += 1
        assert transport.in_write.is_set()
        assert transport.returned == returned
        assert "send_all" in writer_frames(delivery)
        assert delivery.stats.snapshot()["dropped_overflow"] > 0
        assert delivery.pending <= delivery.queue_size + 1
        sink.resume()
        assert delivery.flush(20.0)
        stats = delivery.stats.snapshot()
        assert wait_for(lambda: sink.count() + stats["dropped"] == logged, timeout=10.0)
        order, dupes = first_arrivals(sink.numbers())
        assert dupes == 0
        assert order == sorted(order)
        assert len(order) + stats["dropped"] == logged
        assert stats["dropped"] == stats["dropped_overflow"]
        delivery.close(2.0)


def test_close_and_flush_are_bounded_when_the_collector_is_unreachable() -> None:
    delivery = BackgroundDelivery(tcp_transport(refused_port()), queue_size=1000)
    for i in range(100):
        delivery.deliver(numbered(i))
    start = time.monotonic()
    assert delivery.flush(0.3) is False
    delivery.close(0.3)
    assert time.monotonic() - start < 2 * (3 * 0.3 + 1)
    # close() bounds the caller's wait; a writer starved of CPU may finish counting just after
    assert wait_for(lambda: delivery.stats.snapshot()["dropped"] == 100, timeout=5.0)
    assert delivery.stats.snapshot()["dropped_unreachable"] == 100
    delivery.deliver(numbered(101))
    assert delivery.stats.snapshot()["dropped_closed"] == 1


def test_close_with_no_timeout_uses_a_bounded_default() -> None:
    delivery = BackgroundDelivery(tcp_transport(refused_port()), timeout=0.5)
    delivery.deliver(numbered(1))
    start = time.monotonic()
    delivery.close()  # logging.shutdown() passes no timeout
    assert time.monotonic() - start < 3 * DEFAULT_TIMEOUT + 1


def test_a_collector_that_closes_the_connection_gets_the_failed_records_again() -> None:
    """The collector drops every connection after a while: no record goes missing that was
    not counted as maybe_lost, and the order of first arrival holds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        from syslogkit.codec.framing import FrameDecoder

        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            decoder = FrameDecoder()
            with conn:
                got = 0
                conn.settimeout(1.0)
                while got < 20_000:
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        break
                    if not data:
                        break
                    got += len(data)
                    received.extend(f for f in decoder.feed(data) if isinstance(f, bytes))
                # close with whatever else is buffered unread: the client sees a reset

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    delivery = BackgroundDelivery(tcp_transport(port), queue_size=100_000)
    n = 3000
    for i in range(n):
        delivery.deliver(numbered(i))
        if i % 500 == 0:
            time.sleep(0.02)
    assert delivery.flush(20.0)
    delivery.close(2.0)
    stop.set()
    server.join(3.0)
    listener.close()
    from support.delivery import number_of

    order, _ = first_arrivals(number_of(f) for f in received)
    stats = delivery.stats.snapshot()
    assert order == sorted(order)
    lost = n - len(order) - stats["dropped"]
    assert 0 <= lost <= stats["maybe_lost"]
    assert stats["reconnects"] >= 1


def test_udp_frames_go_one_per_datagram() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(TIMEOUT)
        from syslogkit.transports.schemes import make_transport

        transport = make_transport(
            Address("udp", "127.0.0.1", server.getsockname()[1]), timeout=TIMEOUT
        )
        delivery = BackgroundDelivery(transport)
        for i in range(20):
            delivery.deliver(b"<13>1 - h a - - - n=%d" % i)
        assert delivery.flush(5.0)
        got = [server.recv(4096) for _ in range(20)]
        assert got == [b"<13>1 - h a - - - n=%d" % i for i in range(20)]
        delivery.close(1.0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_starts_its_own_writer_with_an_empty_queue() -> None:
    with Sink() as sink:
        sink.stall()
        transport = WatchedTCP(sink.port, timeout=30.0, sndbuf=4096)
        delivery = BackgroundDelivery(transport, queue_size=100_000)
        for i in range(3000):
            delivery.deliver(numbered(i, tag="parent", pad=200))
        assert wait_for(transport.in_write.is_set)
        assert delivery.pending > 0
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                if delivery.pending == 0 and delivery._thread is None:
                    for i in range(10):
                        delivery.deliver(numbered(100_000 + i, tag="child"))
                    code = 0 if delivery.flush(15.0) else 2
                    delivery.close(2.0)
            finally:
                os._exit(code)
        time.sleep(0.2)
        sink.resume()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert delivery.flush(20.0)
        assert wait_for(lambda: sink.count() >= 3010, timeout=10.0)
        order, dupes = first_arrivals(sink.numbers())
        assert dupes == 0
        assert sorted(order) == list(range(3000)) + list(range(100_000, 100_010))
        delivery.close(2.0)


def test_a_failing_reporter_or_transport_bug_never_stops_the_writer() -> None:
    class Flaky(TCPTransport):
        calls = 0

        def write(self, data: bytes) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise TransportError("closed", "first write fails")
            super().write(data)

    def report(exc: BaseException, record: object) -> None:
        raise RuntimeError("the application's handler is broken")

    with Sink() as sink:
        transport = Flaky(Address("tcp", "127.0.0.1", sink.port), timeout=TIMEOUT)
        delivery = BackgroundDelivery(transport, stats=Stats(), report=report)
        for i in range(10):
            delivery.deliver(numbered(i))
        assert delivery.flush(5.0)
        assert wait_for(lambda: sink.count() == 10)
        assert sink.numbers() == list(range(10))
        delivery.close(1.0)
