"""One peer cannot starve the others: connection limits per source address, the busiest peer's
oldest half-frame connection cut for a new peer, TLS handshakes in progress held to the same
limits, per-peer counters, over real loopback sockets.

127.0.0.2 stands for another host (Linux routes all of 127/8 to loopback); every flood here
comes from 127.0.0.1. The floods hold up to 4,000 client sockets in this process besides the
collector's: `support.flood.room_for` raises RLIMIT_NOFILE's soft limit towards the hard one,
and the test floods fewer connections (saying so) when the hard limit is lower.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from support.collector import collector_tls, stored, wait_for
from support.flood import FLOODER, HALF_FRAME, OTHER, Flood, room_for
from support.peers import PKI
from syslogkit.codec.relp import Acked, RelpClient, SessionOpened
from syslogkit.collector import CollectorThread, Filters, Limits, SQLiteSink
from syslogkit.collector.metrics import render
from syslogkit.collector.sources.base import PeerTable
from syslogkit.collector.sources.stream import CUTTABLE_IDLE


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


def assert_held_to_its_limit(c: CollectorThread, scheme: str, flood: Flood, limit: int) -> None:
    """The flood holds `limit` connections on the listener, no more; the rest were refused,
    counted for the listener and for the flooding peer."""
    refusals = flood.opened - limit
    wait_for(lambda: listener(c, scheme)["refused"] == refusals, 10, f"{refusals} refused")
    wait_for(
        lambda: len(flood.held_by_the_collector()) == limit,
        10,
        f"the {scheme} flood's refused sockets closed",
    )
    row = peer_row(listener(c, scheme), FLOODER)
    assert row["refused"] == refusals and row["active"] == limit, row


def test_a_flooding_peer_cannot_starve_another_peer_over_tcp_and_relp(
    db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """3,000 half-frame connections from one peer on the TCP listener and 1,000 on the RELP
    listener (default limits: 512 per listener, 64 per peer): another peer's 1,000 TCP records
    and 300 RELP records are all stored while the flood holds its connections; the flood holds
    no more than 64 on each listener and its refusals are counted for it and in /metrics."""
    tcp_flood_size = room_for(4000) * 3 // 4
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
                assert_held_to_its_limit(c, scheme, flood, per_peer)
                assert peer_row(listener(c, scheme), OTHER)["connections"] == 1
            text = render(c.stats())
            tcp_url = c.url("tcp")
            assert (
                f'syslogkit_peer_refused_total{{listener="{tcp_url}",peer="{FLOODER}"}} '
                f"{tcp_flood.opened - per_peer}"
            ) in text
        finally:
            tcp_flood.close()
            relp_flood.close()


def closed_by_the_collector(sock: socket.socket, timeout: float = 5) -> bool:
    """Whether the collector closed (or reset) `sock` within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_a_full_listener_cuts_the_busiest_peers_oldest_half_frame_connection_for_a_new_peer(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every slot held by one peer's half frames: its own next connection is refused (told in
    one line naming it), another peer's gets in in place of the flood's oldest, whose half
    frame is stored with a note, never dropped silently."""
    limits = Limits(max_connections=8, max_connections_per_peer=8, frame_timeout=60.0)
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(db)], limits=limits) as c:
        port = c.port("tcp")
        flood = Flood(port, 8)
        flood.open(1)  # the oldest, alone, then seven more
        wait_for(lambda: listener(c, "tcp")["bytes"] == 2, what="the oldest half frame")
        time.sleep(0.05)
        flood.open(7)
        wait_for(lambda: listener(c, "tcp")["bytes"] == 16, what="eight half frames")
        oldest = flood.sockets[0]
        try:
            refused = socket.create_connection(("127.0.0.1", port), source_address=(FLOODER, 0))
            with refused:
                assert closed_by_the_collector(refused)
            tcp_records(port, [b"<13>1 - newcomer app - - - let in"])
            wait_for(lambda: count_from(db, "newcomer") == 1, what="the newcomer's record")
            assert closed_by_the_collector(oldest)
            assert all(not closed_by_the_collector(s, 0.05) for s in flood.sockets[1:])
            entry = listener(c, "tcp")
            assert entry["dropped"] == {"cut:fairness": 1}
            assert peer_row(entry, FLOODER) | {"peer": None} == {
                "peer": None,
                "active": 7,
                "connections": 8,
                "refused": 1,
                "cut": 1,
            }
            cut = [r for r in stored(db) if r.error and "fairness" in r.error]
            assert [r.raw for r in cut] == [HALF_FRAME]
        finally:
            flood.close()
    lines = [line for line in capsys.readouterr().err.splitlines() if "refused" in line]
    assert len(lines) == 1, lines
    assert f"1 from {FLOODER}" in lines[0] and "8 per peer, 8 in all" in lines[0]


def test_a_peer_never_finishing_tls_handshakes_leaves_room_for_another(
    pki: PKI, db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """300 connections from one peer that start a TLS handshake and never finish it, on a
    listener of 12 slots, 8 per peer: the flood holds 8 handshakes, the other 292 are refused
    and counted; another peer's 6 TLS sessions, held open, all get in (the last two by cutting
    the flood's oldest handshakes: 6 and 6 is as fair as it gets) and their records are
    stored."""
    limits = Limits(
        max_connections=12, max_connections_per_peer=8, handshake_timeout=60.0, frame_timeout=60.0
    )
    tls = collector_tls(pki, "none")
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    with CollectorThread(
        ["tls://127.0.0.1:0"], [SQLiteSink(db)], tls=tls, limits=limits, loop_factory=loop_factory
    ) as c:
        port = c.port("tls")
        flood = Flood(port, 300, payload=b"\x16\x03\x01\x02\x00\x01")  # a ClientHello begun
        flood.start().wait()
        sessions: list[ssl.SSLSocket] = []
        try:
            wait_for(lambda: listener(c, "tls")["refused"] == 292, what="292 refused")
            assert len(flood.held_by_the_collector()) == 8
            for i in range(6):
                raw = socket.create_connection(
                    ("127.0.0.1", port), timeout=10, source_address=(OTHER, 0)
                )
                sessions.append(ctx.wrap_socket(raw, server_hostname="localhost"))
                sessions[-1].sendall(b"<13>1 - tls-other app - - - n=%d\n" % i)
            wait_for(lambda: count_from(db, "tls-other") == 6, what="6 TLS records")
            entry = listener(c, "tls")
            assert peer_row(entry, OTHER)["active"] == 6
            assert peer_row(entry, FLOODER) | {"peer": None} == {
                "peer": None,
                "active": 6,
                "connections": 8,
                "refused": 292,
                "cut": 2,
            }
            held = flood.held_by_the_collector()
            assert len(held) == 6 and held == flood.sockets[2:8]  # the oldest two were cut
        finally:
            for session in sessions:
                session.close()
            flood.close()


def test_a_listener_url_sets_its_own_limit_per_peer(db: Path) -> None:
    """`?max_connections_per_peer=2` on one listener; the other keeps the collector's."""
    with CollectorThread(
        ["tcp://127.0.0.1:0?max_connections_per_peer=2", "relp://127.0.0.1:0"],
        [SQLiteSink(db)],
        limits=Limits(max_connections_per_peer=5),
    ) as c:
        floods = [Flood(c.port(scheme), 6).start() for scheme in ("tcp", "relp")]
        try:
            for flood in floods:
                flood.wait()
            wait_for(lambda: listener(c, "tcp")["refused"] == 4, what="4 refused")
            wait_for(lambda: listener(c, "relp")["refused"] == 1, what="1 refused")
        finally:
            for flood in floods:
                flood.close()


def test_the_peer_table_stays_bounded_and_never_forgets_a_peer_holding_connections() -> None:
    """A sender walking through addresses cannot grow a listener's table without end: beyond
    its bound, peers holding nothing are forgotten, the least busy first; `top` is bounded."""
    table: PeerTable[object] = PeerTable(max_peers=8)
    holder = table.peer("10.0.0.1")
    holder.held.add(object())
    busy = table.peer("10.0.0.2")
    busy.refused = 1000
    for i in range(100):
        table.peer(f"10.1.0.{i}").connections = 1
    assert len(table) <= 8
    hosts = {row["peer"] for row in table.top(100)}
    assert {"10.0.0.1", "10.0.0.2", "10.1.0.99"} <= hosts
    assert [row["peer"] for row in table.top(1)] == ["10.0.0.2"]


def test_a_connection_is_cut_for_a_new_peer_only_once_idle_for_a_second(db: Path) -> None:
    """A full listener whose connections have just sent whole frames refuses a new peer; once
    they have been idle for `CUTTABLE_IDLE` (1 s), the oldest one is cut for it."""
    limits = Limits(max_connections=2, max_connections_per_peer=2, frame_timeout=60.0)
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(db)], limits=limits) as c:
        port = c.port("tcp")
        busy = Flood(port, 2, payload=b"<13>1 - busy app - - - whole\n")
        try:
            busy.open(2)
            wait_for(lambda: count_from(db, "busy") == 2, what="two whole frames")
            early = socket.create_connection(("127.0.0.1", port), source_address=(OTHER, 0))
            with early:
                assert closed_by_the_collector(early)  # nothing idle long enough yet
            time.sleep(CUTTABLE_IDLE + 0.1)
            tcp_records(port, [b"<13>1 - later app - - - let in once they idle"])
            wait_for(lambda: count_from(db, "later") == 1, what="the later peer's record")
            assert [closed_by_the_collector(s, 0.5) for s in busy.sockets] == [True, False]
            assert listener(c, "tcp")["dropped"] == {"cut:fairness": 1}
        finally:
            busy.close()
