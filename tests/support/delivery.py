"""Helpers for the delivery tests (background queue, spool, RELP, failover), and their own checks.

`Sink` is a plain TCP collector in a thread that splits octet-counted or LF frames with
syslogkit's FrameDecoder, and can stall (accept and not read) and resume. `numbered()` makes
RFC 5424 frames with syslogkit's formatter, carrying `n=<number>` so that tests count records
by number. `first_arrivals()` turns what arrived into (unique numbers in order of first arrival,
duplicates). `deliver_killing_the_peer_midway()` delivers a numbered stream and SIGKILLs and
restarts a real rsyslog in the middle of it.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from support.peers import RsyslogPeer
from syslogkit.codec.framing import FrameDecoder, frame
from syslogkit.codec.message import Facility, Severity, SyslogMessage
from syslogkit.codec.rfc5424 import format_5424
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import Transport
from syslogkit.transports.schemes import make_transport
from syslogkit.transports.stream import TCPTransport

TIMEOUT = 5.0
_NUMBER = re.compile(rb"n=(\d+)")
_WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


def payload(n: int, tag: str = "t", pad: int = 0, severity: Severity = Severity.INFO) -> bytes:
    """An RFC 5424 message (syslogkit's formatter) whose MSG carries `n=<n>`."""
    msg = SyslogMessage(
        facility=Facility.LOCAL3,
        severity=severity,
        version=1,
        timestamp=_WHEN,
        hostname="host",
        app_name="bgtest",
        procid="1",
        msgid=tag,
        msg=f"record n={n}" + (" " + "x" * pad if pad else ""),
    )
    return format_5424(msg)


def numbered(n: int, tag: str = "t", pad: int = 0, severity: Severity = Severity.INFO) -> bytes:
    """`payload(n)` framed with octet counting, as the handler sends it on streams."""
    return frame(payload(n, tag, pad, severity))


def number_of(data: bytes | str) -> int | None:
    """The record number in a frame or message text, or None."""
    raw = data.encode() if isinstance(data, str) else data
    m = _NUMBER.search(raw)
    return int(m[1]) if m else None


def first_arrivals(numbers: Iterable[int | None]) -> tuple[list[int], int]:
    """(unique numbers in order of first arrival, count of repeated arrivals)."""
    seen: set[int] = set()
    order: list[int] = []
    dupes = 0
    for n in numbers:
        if n is None:
            continue
        if n in seen:
            dupes += 1
        else:
            seen.add(n)
            order.append(n)
    return order, dupes


def tcp_transport(port: int, *, timeout: float = TIMEOUT, host: str = "127.0.0.1") -> Transport:
    """A syslogkit TCP transport with a short backoff (0.05 s .. 0.5 s)."""
    return make_transport(Address("tcp", host, port), timeout=timeout, backoff=Backoff(0.05, 0.5))


def wait_for(predicate: Any, timeout: float = TIMEOUT, step: float = 0.01) -> bool:
    """Poll `predicate()` until true or `timeout` s passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(step)


class GatedTCP(TCPTransport):
    """A real TCP transport whose writes pass a gate the test holds: a scripted writer.

    Closed (the default), a write waits at the gate, and fails as a real write does when its
    time runs out (`timeout`: the connection is dropped, a `timeout` TransportError).
    `let_through(n)` lets `n` more writes pass; `unblock()` lets every write pass from now on.
    `entered`/`returned` count writes; `in_write` is set while the writer is inside one.
    `sndbuf` sets a small send buffer (a slow collector then holds the writer back).
    """

    def __init__(
        self,
        port: int,
        *,
        timeout: float = TIMEOUT,
        backoff: Backoff | None = None,
        sndbuf: int | None = None,
    ) -> None:
        super().__init__(
            Address("tcp", "127.0.0.1", port),
            timeout=timeout,
            backoff=backoff if backoff is not None else Backoff(0.05, 0.5),
        )
        self._gate = threading.Condition()
        self._permits: int | None = 0  # None: open for good
        self.sndbuf = sndbuf
        self.in_write = threading.Event()
        self.entered = 0
        self.returned = 0

    def _connect(self, deadline: float) -> socket.socket:
        sock = super()._connect(deadline)
        if self.sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        return sock

    def let_through(self, n: int = 1) -> None:
        with self._gate:
            if self._permits is not None:
                self._permits += n
            self._gate.notify_all()

    def unblock(self) -> None:
        with self._gate:
            self._permits = None
            self._gate.notify_all()

    def _pass(self) -> bool:
        with self._gate:
            if not self._gate.wait_for(lambda: self._permits != 0, self.timeout):
                return False
            if self._permits is not None:
                self._permits -= 1
            return True

    def write(self, data: bytes) -> None:
        self.entered += 1
        self.in_write.set()
        try:
            if not self._pass():
                self._write_failed(TimeoutError("the gate stayed closed"))
            super().write(data)
        finally:
            self.returned += 1
            self.in_write.clear()


class Sink:
    """A TCP collector on loopback: accepts any number of connections, collects frames.

    `stall()` stops reading (connections stay open, the kernel buffers fill up); `resume()`
    reads again. `rcvbuf` sets a small receive buffer on the listening socket (inherited by
    accepted ones). `port` may name a port to listen on (for a collector coming back). A slow
    collector: `chunk` bytes per read, `read_delay` seconds between reads.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        rcvbuf: int | None = None,
        chunk: int = 65536,
        read_delay: float = 0.0,
    ) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.frames: list[bytes] = []
        self.connections = 0
        self._chunk = chunk
        self._read_delay = read_delay
        self._reading = threading.Event()
        self._reading.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._socks.append(conn)
            thread = threading.Thread(target=self._read, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, conn: socket.socket) -> None:
        decoder = FrameDecoder(max_frame=1 << 20)
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                if not self._reading.wait(0.1):
                    continue
                try:
                    data = conn.recv(self._chunk)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                found = [f for f in decoder.feed(data) if isinstance(f, bytes)]
                with self._lock:
                    self.frames.extend(found)
                if self._read_delay:
                    time.sleep(self._read_delay)

    def stall(self) -> None:
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def numbers(self) -> list[int | None]:
        with self._lock:
            return [number_of(f) for f in self.frames]

    def count(self) -> int:
        with self._lock:
            return len(self.frames)

    def close(self) -> None:
        self._stop.set()
        self._reading.set()
        self.listener.close()
        self._accept.join(2.0)
        for thread in self._threads:
            thread.join(2.0)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refused_port() -> int:
    """A loopback port where nothing listens (a connection is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def deliver_killing_the_peer_midway(
    delivery: BackgroundDelivery,
    peer: RsyslogPeer,
    make: Callable[[int], bytes],
    n: int,
    *,
    progress: str,
    stalled: str,
) -> None:
    """Deliver `make(0)` .. `make(n - 1)`. After the middle one, wait (at most 10 s, else fail
    with `stalled`) until the writer's `progress` counter reached n/4, so that records are in
    flight; then SIGKILL the peer and start it again."""
    for i in range(n):
        delivery.deliver(make(i))
        if i == n // 2:
            deadline = time.monotonic() + 10.0
            while delivery.stats.snapshot()[progress] < n // 4:
                assert time.monotonic() < deadline, stalled
                time.sleep(0.005)
            peer.kill(signal.SIGKILL)
            peer.start()


# -- checks of the helpers themselves ------------------------------------------------------------


def writer_frames(delivery: BackgroundDelivery) -> list[str]:
    thread = delivery._thread
    assert thread is not None and thread.ident is not None
    frame = sys._current_frames().get(thread.ident)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names
