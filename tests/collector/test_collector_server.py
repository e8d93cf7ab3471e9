"""The collector's listeners over real loopback sockets: UDP, TCP, TLS, limits, hostile input."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from support.collector import collector_tls, stored, wait_for, wait_stored
from syslogkit.codec.framing import FrameDecoder
from syslogkit.codec.message import Severity
from syslogkit.collector import (
    CollectorThread,
    Filters,
    ForwardSink,
    JsonLinesSink,
    Limits,
    Record,
    SQLiteSink,
    parse_listen_url,
)

MSG_SD = (
    b'<165>1 2026-01-02T03:04:05.123456+01:00 host1 app1 77 ID47 [ex@32473 iut="3" x="a\\"b"]'
    b" caf\xc3\xa9 message"
)


def listener_stats(c: CollectorThread, scheme: str) -> dict[str, Any]:
    for entry in c.stats()["listeners"]:
        if entry["url"].startswith(scheme + "://"):
            return entry
    raise KeyError(scheme)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "c.db"


@pytest.fixture
def collector(
    db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> Iterator[CollectorThread]:
    c = CollectorThread(
        ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
        [SQLiteSink(db)],
        limits=Limits(frame_timeout=1.0, max_connections=8),
        loop_factory=loop_factory,
    )
    with c:
        yield c


def tcp_send(port: int, data: bytes, host: str = "127.0.0.1") -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(data)


def udp_send(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))


def test_listen_urls() -> None:
    assert str(parse_listen_url("tcp://[::1]:514")) == "tcp://[::1]:514"
    assert parse_listen_url("relp+tls://0.0.0.0").port == 2514
    assert parse_listen_url("tls://h").port == 6514
    for bad in ("foo://x:1", "127.0.0.1:514", "tcp://:514", "tcp://x:99999", "tcp://x:1/path"):
        with pytest.raises(ValueError):
            parse_listen_url(bad)


def test_udp_and_tcp_store_every_field(collector: CollectorThread, db: Path) -> None:
    udp_send(collector.port("udp"), MSG_SD, MSG_SD + b"\n")
    tcp_send(collector.port("tcp"), b"%d %b" % (len(MSG_SD) + 1, MSG_SD + b"\n") + MSG_SD + b"\n")
    records = wait_stored(db, 4)
    for r in records:
        m = r.message
        assert m is not None and r.error is None, r.error
        assert (m.facility, m.severity, m.version) == (20, Severity.NOTICE, 1)
        assert m.timestamp is not None and m.timestamp.isoformat() == (
            "2026-01-02T03:04:05.123456+01:00"
        )
        assert (m.hostname, m.app_name, m.procid, m.msgid) == ("host1", "app1", "77", "ID47")
        assert [(e.id, e.params) for e in m.structured_data] == [
            ("ex@32473", (("iut", "3"), ("x", 'a"b')))
        ]
        assert m.msg == "café message"
        assert r.peer.startswith("127.0.0.1:")
    udp_records = [r for r in records if r.transport == "udp"]  # the listeners run side by side
    tcp_records = [r for r in records if r.transport == "tcp"]
    # one trailing LF ends a message in every transport and is not part of it
    assert [r.raw for r in udp_records] == [MSG_SD, MSG_SD]
    assert [r.raw for r in tcp_records] == [MSG_SD, MSG_SD]
    udp = listener_stats(collector, "udp")
    tcp = listener_stats(collector, "tcp")
    assert (udp["received"], udp["parsed"], udp["noted"], udp["unparsed"]) == (2, 2, 0, 0)
    assert (tcp["received"], tcp["parsed"], tcp["noted"], tcp["unparsed"]) == (2, 2, 0, 0)
    assert udp["rcvbuf"] >= 4 << 20  # several MiB


def test_rfc3164_and_garbage_are_stored_not_dropped(collector: CollectorThread, db: Path) -> None:
    bsd = b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick"
    garbage = bytes(random.Random(1).randrange(256) for _ in range(300)).replace(b"\n", b"")
    udp_send(collector.port("udp"), bsd, garbage, b"")
    records = wait_stored(db, 2)
    by_raw = {r.raw: r for r in records}
    m = by_raw[bsd].message
    assert m is not None and m.version is None
    assert (m.hostname, m.app_name, m.procid) == ("mymachine", "su", "230")
    assert (m.facility, m.severity) == (4, 2)
    assert m.msg is not None and m.msg.endswith("'su root' failed for lonvick")
    assert by_raw[garbage].error  # stored raw with the strict parse error
    stats = listener_stats(collector, "udp")
    assert (stats["received"], stats["parsed"], stats["unparsed"]) == (2, 1, 1)
    assert stats["dropped"] == {"empty_datagram": 1}


def test_non_utf8_msg_over_tcp(collector: CollectorThread, db: Path) -> None:
    msg = b"<13>1 2026-01-01T00:00:00Z h a - - - latin1 caf\xe9"
    tcp_send(collector.port("tcp"), msg + b"\n")
    [record] = wait_stored(db, 1)
    assert record.msg_bytes == b"latin1 caf\xe9" and record.raw == msg


def test_forward_and_jsonl_sinks(tmp_path: Path) -> None:
    relay_tcp = socket.create_server(("127.0.0.1", 0))
    relay_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay_udp.bind(("127.0.0.1", 0))
    relay_udp.settimeout(5)
    jsonl = tmp_path / "out.jsonl"
    sinks = [
        JsonLinesSink(jsonl),
        ForwardSink(f"tcp://127.0.0.1:{relay_tcp.getsockname()[1]}"),
        ForwardSink(f"udp://127.0.0.1:{relay_udp.getsockname()[1]}"),
    ]
    with CollectorThread(["tcp://127.0.0.1:0"], sinks) as c:
        tcp_send(c.port("tcp"), MSG_SD + b"\n" + b"<13>bsd \xff\n")
        conn, _ = relay_tcp.accept()
        conn.settimeout(5)
        got = b""
        decoder = FrameDecoder()
        frames: list[bytes] = []
        while len(frames) < 2:
            chunk = conn.recv(65536)
            assert chunk
            got += chunk
            frames += [f for f in decoder.feed(chunk) if isinstance(f, bytes)]
        assert frames == [MSG_SD, b"<13>bsd \xff"]  # unaltered
        assert got.startswith(b"%d " % len(MSG_SD))
        assert relay_udp.recv(65536) == MSG_SD
        assert relay_udp.recv(65536) == b"<13>bsd \xff"
        conn.close()
    relay_tcp.close()
    relay_udp.close()
    assert len(jsonl.read_text("utf-8").splitlines()) == 2


def test_forward_over_relp_and_tls_to_another_collector(pki: Any, tmp_path: Path) -> None:
    """Forwarding is syslogkit's own sending path: RELP (acknowledged) and TLS (verified
    against the CA) to a second collector, every record relayed with its raw bytes unaltered,
    everything delivered by the time the first collector has stopped."""
    central_db = tmp_path / "central.db"
    msgs = [b"<13>1 - edge app - - - relayed %03d" % i for i in range(100)]
    with CollectorThread(
        ["relp://127.0.0.1:0", "tls://127.0.0.1:0"],
        [SQLiteSink(central_db)],
        tls=collector_tls(pki, "none"),
    ) as central:
        sinks = [
            ForwardSink(central.url("relp")),
            ForwardSink(central.url("tls"), ca_file=str(pki.ca.cert)),
        ]
        with CollectorThread(["tcp://127.0.0.1:0"], sinks) as edge:
            tcp_send(edge.port("tcp"), b"".join(b"%d %b" % (len(m), m) for m in msgs))
            wait_for(lambda: listener_stats(edge, "tcp")["received"] == 100, what="received")
        forwarded = [sink.stats() for sink in sinks]
        records = wait_stored(central_db, 200)
    assert [f["sent"] for f in forwarded] == [100, 100] and all(not f["dropped"] for f in forwarded)
    by_transport = {t: sorted(r.raw for r in records if r.transport == t) for t in ("relp", "tls")}
    assert by_transport == {"relp": msgs, "tls": msgs}


# -- TLS ----------------------------------------------------------------------------------------


def tls_send(
    port: int, ctx: ssl.SSLContext, data: bytes, *, confirm: bool = True
) -> bytes | Exception:
    """Send over TLS, then read: a refused client sees EOF or an alert (TLS 1.3 rejects late)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
        ):
            s.sendall(data)
            if not confirm:
                return b""
            s.settimeout(1.0)
            try:
                return s.recv(100)
            except TimeoutError:
                return b"(still open)"
    except (ssl.SSLError, OSError) as exc:
        return exc


def client_ctx(pki: Any, cert: Any = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def test_tls_client_certificate_required(
    pki: Any, db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    tls = collector_tls(pki, "required")
    with CollectorThread(
        ["tls://127.0.0.1:0"], [SQLiteSink(db)], tls=tls, loop_factory=loop_factory
    ) as c:
        port = c.port("tls")
        good = tls_send(port, client_ctx(pki, pki.client), MSG_SD + b"\n")
        assert good == b"(still open)"
        [record] = wait_stored(db, 1)
        assert record.transport == "tls"
        assert record.tls_subject is not None and "CN=client.syslogkit.test" in record.tls_subject
        assert record.tls_fingerprint == "sha-256:" + pki.client.sha256.split(":", 1)[1]
        assert record.message is not None and record.message.msg == "café message"

        no_cert = tls_send(port, client_ctx(pki), b"<13>1 - - - - - - no cert\n")
        other = tls_send(port, client_ctx(pki, pki.other_client), b"<13>1 - - - - - - other\n")
        for outcome in (no_cert, other):
            assert outcome == b"" or isinstance(outcome, Exception), outcome
        wait_for(
            lambda: (
                sum(
                    v
                    for k, v in listener_stats(c, "tls")["dropped"].items()
                    if "tls_handshake" in k
                )
                == 2
            ),
            what="two refused handshakes",
        )
        time.sleep(0.2)
    assert len(stored(db)) == 1  # nothing from the refused clients


def test_tls_handshakes_do_not_stall_when_the_client_hello_comes_at_once(
    pki: Any, db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """Every client sends its ClientHello right after connecting; none may be read as plain
    bytes before the TLS layer takes the connection (it was, under uvloop)."""
    tls = collector_tls(pki, "required")
    with CollectorThread(
        ["tls://127.0.0.1:0"], [SQLiteSink(db)], tls=tls, loop_factory=loop_factory
    ) as c:
        port = c.port("tls")
        ctx = client_ctx(pki, pki.client)
        sent = [
            tls_send(port, ctx, b"<13>1 - - - - - - n=%d\n" % i, confirm=False) for i in range(20)
        ]
        assert sent == [b""] * 20  # a stalled handshake fails the client's connect (timeout)
        records = wait_stored(db, 20)
    assert sorted(r.message.msg for r in records if r.message) == sorted(
        f"n={i}" for i in range(20)
    )


def test_tls_client_that_closes_without_reading_loses_nothing(
    pki: Any, db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """A sender that writes a burst and closes without reading or a TLS goodbye (as loggen and
    many devices do): a session ticket left unread in its buffer would make its kernel reset
    the connection, and ours drop what the collector had not read yet."""
    tls = collector_tls(pki, "optional")
    count = 20_000
    burst = b"".join(
        b"%d %s" % (len(p), p)
        for p in (b"<13>1 - h app - - - abrupt n=%d" % i for i in range(count))
    )
    with CollectorThread(
        ["tls://127.0.0.1:0"], [SQLiteSink(db)], tls=tls, loop_factory=loop_factory
    ) as c:
        raw = socket.create_connection(("127.0.0.1", c.port("tls")), timeout=10)
        s = client_ctx(pki).wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(burst)
        s.close()  # no unwrap(), nothing read
        wait_for(lambda: listener_stats(c, "tls")["received"] >= count, 30, f"{count} received")
        records = wait_stored(db, count, timeout=30)
    assert len(records) == count
    assert {r.message.msg for r in records if r.message} == {f"abrupt n={i}" for i in range(count)}


def test_tls_listener_is_closed_after_stop(
    pki: Any, db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    c = CollectorThread(
        ["tls://127.0.0.1:0"],
        [SQLiteSink(db)],
        tls=collector_tls(pki, "optional"),
        loop_factory=loop_factory,
    ).start()
    port = c.port("tls")
    assert tls_send(port, client_ctx(pki), b"<13>1 - - - - - - before stop\n", confirm=False) == b""
    c.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert [r.message.msg for r in stored(db) if r.message] == ["before stop"]


def test_tls_client_certificate_optional(pki: Any, db: Path) -> None:
    tls = collector_tls(pki, "optional")
    with CollectorThread(["tls://127.0.0.1:0"], [SQLiteSink(db)], tls=tls) as c:
        assert tls_send(c.port("tls"), client_ctx(pki), b"<13>1 - - - - - - anonymous\n") == (
            b"(still open)"
        )
        [record] = wait_stored(db, 1)
        assert record.tls_fingerprint is None and record.tls_subject is None
        # a certificate from another CA is refused even when optional
        other = tls_send(c.port("tls"), client_ctx(pki, pki.other_client), b"x\n")
        assert other == b"" or isinstance(other, Exception), other
    assert len(stored(db)) == 1


# -- limits and hostile input -------------------------------------------------------------------


class Steady:
    """A well-behaved client sending one message every 50 ms on its own connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sent = 0
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = b"<14>1 - steady app - - - tick %d" % self.sent
            try:
                self.sock.sendall(b"%d %b" % (len(msg), msg))
            except OSError as exc:
                self.errors.append(exc)
                return
            self.sent += 1
            self._stop.wait(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return self.sent


def steady_count(db: Path) -> int:
    return len(stored(db, Filters(hosts=["steady"])))


@pytest.mark.parametrize("case", ["random_bytes", "huge_frame", "big_octet_frame", "huge_lf_frame"])
def test_hostile_input_while_serving_another_client(case: str, db: Path) -> None:
    limits = Limits(max_frame=8192, frame_timeout=5.0)
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(db)], limits=limits) as c:
        port = c.port("tcp")
        steady = Steady(port)
        wait_for(lambda: steady_count(db) >= 3, what="steady client served")
        rng = random.Random(7)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            if case == "random_bytes":
                for _ in range(200):
                    s.sendall(bytes(rng.randrange(256) for _ in range(1000)))
            elif case in ("huge_frame", "big_octet_frame"):
                # 10 MB: a count above rsyslog's maxFrameSize is text (as rsyslog takes it),
                # so an LF ends it; 150 kB: octet-counted, truncated, the rest skipped
                size = 10_000_000 if case == "huge_frame" else 150_000
                s.sendall(b"%d " % size)
                block = b"A" * 65536
                left = size
                while left:
                    n = min(left, len(block))
                    s.sendall(block[:n])
                    left -= n
                if case == "huge_frame":
                    s.sendall(b"\n")
                s.sendall(b"<13>1 - after big - - - next frame\n")
            else:
                block = b"B" * 65536
                for _ in range(160):  # 10 MB without a delimiter
                    s.sendall(block)
                s.sendall(b"\n<13>1 - after big - - - next frame\n")
            s.shutdown(socket.SHUT_WR)
        before = steady_count(db)
        wait_for(lambda: steady_count(db) >= before + 3, what="steady client still served")
        stats = listener_stats(c, "tcp")
        sent = steady.stop()
        assert not steady.errors
        wait_for(lambda: steady_count(db) == sent, what="all steady messages")
        assert stats["max_buffered"] <= limits.max_frame + 1  # + the LF of a full LF frame
        if case == "random_bytes":
            assert stats["unparsed"] + stats["noted"] > 0
        else:
            assert stats["framing"], stats  # the truncation is counted
            records = stored(db, Filters(hosts=["after"]))
            assert [r.message.msg for r in records if r.message] == ["next frame"]
            big = [r for r in stored(db) if r.error and "framing" in r.error]
            assert big and all(len(r.raw) <= limits.max_frame for r in big)


def test_random_datagrams_while_serving_another_client(db: Path) -> None:
    limits = Limits(max_frame=2048)
    with CollectorThread(
        ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"], [SQLiteSink(db)], limits=limits
    ) as c:
        steady = Steady(c.port("tcp"))
        rng = random.Random(5)
        sizes = [rng.choice((0, 1, 17, 500, 2048, 2049, 9000)) for _ in range(400)]
        udp_send(c.port("udp"), *(rng.randbytes(n) for n in sizes))
        sent = steady.stop()
        wait_for(lambda: steady_count(db) == sent, what="steady client served")
        expected = sum(1 for n in sizes if n)

        def settled() -> dict[str, Any] | None:
            stats = listener_stats(c, "udp")
            done = stats["received"] + (stats["kernel_drops"] or 0) == expected
            return stats if done else None

        stats = wait_for(settled, what="every datagram counted")
        assert stats["dropped"]["empty_datagram"] == sizes.count(0)
        if not stats["kernel_drops"]:
            assert stats["framing"]["truncated"] == sum(1 for n in sizes if n > 2048)
        assert stats["received"] == stats["parsed"] + stats["noted"] + stats["unparsed"]
        wait_for(lambda: c.stats()["pipeline"]["pending"] == 0, what="everything committed")
        truncated = [r for r in stored(db) if r.error and "truncated" in r.error]
        assert all(len(r.raw) == 2048 and r.transport == "udp" for r in truncated)
        if not stats["kernel_drops"]:
            assert len(truncated) == sum(1 for n in sizes if n > 2048)


def test_slow_client_is_cut_off(
    db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    limits = Limits(frame_timeout=1.0)
    with CollectorThread(
        ["tcp://127.0.0.1:0"], [SQLiteSink(db)], limits=limits, loop_factory=loop_factory
    ) as c:
        port = c.port("tcp")
        steady = Steady(port)
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        cut_after = None
        start = time.monotonic()
        for byte in b"<13>1 - slow loris - - - one byte a second, forever":
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                cut_after = time.monotonic() - start
                break
            time.sleep(0.25)
            if listener_stats(c, "tcp")["dropped"].get("cut:read_deadline"):
                cut_after = time.monotonic() - start
                break
        slow.close()
        assert cut_after is not None and cut_after < 4
        assert listener_stats(c, "tcp")["dropped"]["cut:read_deadline"] == 1
        n = steady.stop()
        assert not steady.errors
        wait_for(lambda: steady_count(db) == n, what="steady client served throughout")
    # the partial frame is stored, flagged, never dropped silently
    partial = [r for r in stored(db) if r.error and "read_deadline" in r.error]
    assert len(partial) == 1 and b"<13>1 - slow loris".startswith(partial[0].raw)


def test_connections_beyond_the_limit_are_refused(db: Path) -> None:
    limits = Limits(max_connections=5)
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(db)], limits=limits) as c:
        port = c.port("tcp")
        steady = Steady(port)
        wait_for(lambda: steady_count(db) >= 2, what="steady")
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(12)]
        wait_for(lambda: listener_stats(c, "tcp")["refused"] == 8, what="8 refused")
        refused = 0
        for s in idle:
            s.settimeout(0.5)
            try:
                if s.recv(1) == b"":
                    refused += 1
            except ConnectionResetError:
                refused += 1
            except TimeoutError:
                pass
        assert refused == 8
        stats = listener_stats(c, "tcp")
        assert stats["active"] == 5
        n = steady.stop()
        wait_for(lambda: steady_count(db) == n, what="steady served throughout")
        for s in idle:
            s.close()
        wait_for(lambda: listener_stats(c, "tcp")["active"] == 0, what="all closed")
        # slots are free again
        tcp_send(port, b"<13>1 - later a - - - after the flood\n")
        wait_for(lambda: stored(db, Filters(hosts=["later"])), what="later client")


class SlowSink:
    """A sink that takes 50 ms per batch and records the pending high-water mark."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, records: Sequence[Record]) -> None:
        time.sleep(0.05)
        self.count += len(records)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_back_pressure_pauses_reading(
    db: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    sink = SlowSink()
    c = CollectorThread(
        ["tcp://127.0.0.1:0"], [sink], high_water=2000, max_batch=500, loop_factory=loop_factory
    )
    with c:
        port = c.port("tcp")
        msg = b"<13>1 - h a - - - " + b"x" * 100
        frame = b"%d %b" % (len(msg), msg)
        total = 20_000
        sender = threading.Thread(target=tcp_send, args=(port, frame * total))
        sender.start()
        peak = 0
        deadline = time.monotonic() + 30
        while sink.count < total and time.monotonic() < deadline:
            peak = max(peak, c.collector.pipeline.pending)
            time.sleep(0.005)
        sender.join(10)
        assert sink.count == total
        # bounded by the high-water mark plus what one read (256 KiB in asyncio) can hold
        assert peak < 2000 + 262144 // len(frame) + 600


def test_sigterm_like_stop_drains_everything(db: Path) -> None:
    c = CollectorThread(
        ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], [SQLiteSink(db)], commit_interval=5.0
    )
    c.start()
    msgs = [b"<13>1 - h a - - - m%d" % i for i in range(500)]
    tcp_send(c.port("tcp"), b"".join(b"%d %b" % (len(m), m) for m in msgs))
    udp_send(c.port("udp"), *msgs[:100])
    wait_for(
        lambda: (
            listener_stats(c, "tcp")["received"] == 500
            and listener_stats(c, "udp")["received"] == 100
        ),
        what="received",
    )
    assert stored(db) == []  # the 5 s commit timer has not fired
    c.stop()
    assert len(stored(db)) == 600


@pytest.mark.skipif(not hasattr(socket, "AF_INET6") or not socket.has_ipv6, reason="no IPv6")
def test_ipv6_listeners(db: Path) -> None:
    try:
        c = CollectorThread(["tcp://[::1]:0", "udp://[::1]:0"], [SQLiteSink(db)]).start()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        with socket.create_connection(("::1", c.port("tcp")), timeout=5) as s:
            s.sendall(b"<13>1 - six t - - - over v6\n")
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.sendto(b"<13>1 - six u - - - over v6", ("::1", c.port("udp")))
        records = wait_stored(db, 2)
        assert all(r.peer.startswith("[::1]:") for r in records)
    finally:
        c.stop()


def test_env_has_no_stray_threads() -> None:
    # every CollectorThread above was stopped: no listener or sink thread lingers
    time.sleep(0.1)
    names = [t.name for t in threading.enumerate() if t.name.startswith("syslogkit-")]
    assert names == [] or os.environ.get("PYTEST_XDIST_WORKER")
