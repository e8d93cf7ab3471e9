"""One peer cannot starve the others: connection limits per source address, the busiest peer's
oldest half-frame connection cut for a new peer, TLS handshakes in progress held to the same
limits, per-peer counters, over real loopback sockets.

127.0.0.2 stands for another host (Linux routes all of 127/8 to loopback); every flood here
comes from 127.0.0.1. The floods hold up to 3,000 client sockets in this process besides the
collector's: `_room_for` raises RLIMIT_NOFILE's soft limit towards the hard one, and floods
fewer connections (saying so) when the hard limit is lower.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from support.collector import collector_tls, stored, wait_for
from support.peers import PKI
from syslogkit.codec.relp import Acked, RelpClient, SessionOpened
from syslogkit.collector import CollectorThread, Filters, Limits, SQLiteSink
from syslogkit.collector.metrics import render

FLOODER = "127.0.0.1"
OTHER = "127.0.0.2"
HALF_FRAME = b"12"  # the start of an octet count: a frame that never completes


def _room_for(count: int) -> int:
    """How many flood sockets this process may open: RLIMIT_NOFILE's soft limit raised towards
    its hard limit when `count` (plus a margin for the collector and pytest) needs it."""
    margin = 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + margin
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return count
    fewer = max(soft - margin, 0)
    warnings.warn(
        f"RLIMIT_NOFILE allows {soft} files: flooding with {fewer} connections, not {count}",
        stacklevel=2,
    )
    return fewer


class Flood:
    """`count` connections from FLOODER, each sending half a frame, held open until `close()`.
    Opened in a thread; `opened` counts the connects that went through (the collector may
    refuse them right after)."""

    def __init__(self, port: int, count: int, payload: bytes = HALF_FRAME) -> None:
        self.port = port
        self.count = count
        self.payload = payload
        self.sockets: list[socket.socket] = []
        self.opened = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()

    def start(self) -> Flood:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 20
        for _ in range(self.count):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            try:
                sock = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=5, source_address=(FLOODER, 0)
                )
            except OSError:
                self.failed += 1
                continue
            self.sockets.append(sock)
            self.opened += 1
            if self.payload:
                with contextlib.suppress(OSError):  # refused already: reset
                    sock.sendall(self.payload)

    def wait(self, timeout: float = 25) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the flood did not finish opening in time"

    def held_by_the_collector(self) -> list[socket.socket]:
        """The flood's sockets the collector has not closed (nothing to read, no EOF, no RST)."""
        held = []
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    continue  # closed by the collector
            except BlockingIOError:
                held.append(sock)
            except OSError:
                continue  # reset by the collector
        return held

    def close(self) -> None:
        self._stop.set()
        self._thread.join(25)
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "fair.db"


def listener(c: CollectorThread, scheme: str) -> dict[str, Any]:
    for entry in c.stats()["listeners"]:
        if entry["url"].startswith(scheme + "://"):
            return dict(entry)
    raise KeyError(scheme)


def peer_row(entry: dict[str, Any], host: str) -> dict[str, Any]:
    for row in entry.get("peers") or ():
        if row["peer"] == host:
            return dict(row)
    return {}


def tcp_records(port: int, messages: Sequence[bytes], source: str = OTHER) -> None:
    """LF-framed messages over one connection from `source`, then a clean close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        s.sendall(b"".join(m + b"\n" for m in messages))
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        with contextlib.suppress(OSError):
            s.recv(1)


def relp_records(
    port: int,
    messages: Sequence[bytes],
    source: str = OTHER,
    ctx: ssl.SSLContext | None = None,
) -> list[int]:
    """A RELP session from `source`: every message sent and acknowledged; the acked TXNRs."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx is not None else raw
    relp = RelpClient(window=128)
    acked: list[int] = []

    def read() -> list[Any]:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the collector closed the RELP session")
        events = relp.receive_data(data)
        acked.extend(e.txnr for e in events if isinstance(e, Acked))
        return events

    with sock:
        sock.sendall(relp.open())
        assert any(isinstance(e, SessionOpened) for e in read())
        for message in messages:
            while not relp.can_send:
                read()
            relp.send(message)
            sock.sendall(relp.data_to_send())
        while relp.in_flight:
            read()
        sock.sendall(relp.close())
    return acked


def messages(tag: str, n: int) -> list[bytes]:
    return [b"<13>1 - %s app - - - n=%05d" % (tag.encode(), i) for i in range(n)]


def count_from(db: Path, host: str) -> int:
    return len(stored(db, Filters(hosts=[host])))


def test_a_flooding_peer_cannot_starve_another_peer_over_tcp_and_relp(
    db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """3,000 half-frame connections from one peer on the TCP listener and 1,000 on the RELP
    listener (default limits: 512 per listener, 64 per peer): another peer's 1,000 TCP records
    and 300 RELP records are all stored while the flood holds its connections; the flood holds
    no more than 64 on each listener and its refusals are counted for it and in /metrics."""
    tcp_flood_size = _room_for(4000) * 3 // 4
    relp_flood_size = tcp_flood_size // 3
    limits = Limits(frame_timeout=60.0)  # the flood's half frames outlast the test
    with CollectorThread(
        ["tcp://127.0.0.1:0", "relp://127.0.0.1:0"],
        [SQLiteSink(db)],
        limits=limits,
        loop_factory=loop_factory,
    ) as c:
        per_peer = limits.max_connections_per_peer
        tcp_flood = Flood(c.port("tcp"), tcp_flood_size).start()
        relp_flood = Flood(c.port("relp"), relp_flood_size).start()
        try:
            # the other peer starts once the flood has taken every slot it could take
            wait_for(lambda: tcp_flood.opened > limits.max_connections, 20, "the TCP flood")
            wait_for(lambda: relp_flood.opened > per_peer, 20, "the RELP flood")
            tcp_records(c.port("tcp"), messages("other-tcp", 1000))
            acked = relp_records(c.port("relp"), messages("other-relp", 300))
            assert len(acked) == 300
            tcp_flood.wait()
            relp_flood.wait()
            wait_for(lambda: count_from(db, "other-tcp") == 1000, 10, "1,000 TCP records")
            assert count_from(db, "other-relp") == 300  # acknowledged: committed
            for scheme, flood in (("tcp", tcp_flood), ("relp", relp_flood)):
                held = flood.held_by_the_collector()
                assert len(held) == per_peer, scheme  # the flood held all it may, no more
                expected = flood.opened - len(held)
                wait_for(lambda: listener(c, scheme)["refused"] == expected, 10, "refusals")
                entry = listener(c, scheme)
                row = peer_row(entry, FLOODER)
                assert row["refused"] == expected and row["active"] == len(held), row
                assert peer_row(entry, OTHER)["connections"] == 1
            text = render(c.stats())
            tcp_url = c.url("tcp")
            assert (
                f'syslogkit_peer_refused_total{{listener="{tcp_url}",peer="{FLOODER}"}} '
                f"{tcp_flood.opened - per_peer}"
            ) in text
        finally:
            tcp_flood.close()
            relp_flood.close()
