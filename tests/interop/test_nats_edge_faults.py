"""The edge (`collect --nats`) under faults, against a real nats-server: stopped with a full
outbox, a restart with a fixed edge id, the stream's discard policy, no stream at all.

Issues 18 (item 3) and 23 (items 2, 8, 10, 12).
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.peers.nats import CollectProcess, NatsCluster, missing_nats_server
from support.peers.ports import free_port

pytestmark = pytest.mark.interop


def need_nats() -> None:
    why = missing_nats_server()
    if why is not None:
        from support.peers import Need

        Need()(False, why)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsCluster]:
    """One JetStream server."""
    need_nats()
    with NatsCluster(tmp_path / "nats", 1) as c:
        yield c


def send_tcp(port: int, prefix: str, count: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"".join(
                b"%d %b" % (len(m), m)
                for m in (f"<14>1 - h app - - - {prefix} {i:06d}".encode() for i in range(count))
            )
        )


def spooled_records(folder: Path) -> int:
    """Records held in a spool folder (each file's header line: id, subject, count)."""
    total = 0
    for path in folder.glob("*.skb"):
        with open(path, "rb") as f:
            total += int(f.readline().split()[2])
    return total


def told_lost(stderr: str) -> int:
    """The records the edge said it lost at close (0 when it said nothing)."""
    found = re.findall(r"NATS edge: (\d+) records lost", stderr)
    return sum(int(n) for n in found)


def wait_received(edge: CollectProcess, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listeners = edge.stats().get("listeners") or []
        if sum(int(x.get("received", 0)) for x in listeners) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"the edge did not receive {count} records: {edge.logs()}")


def stop_timed(edge: CollectProcess) -> float:
    started = time.monotonic()
    assert edge.stop(80) == 0, edge.logs()
    return time.monotonic() - started


# -- issue 23 item 2: SIGTERM with a full outbox -----------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spool", [True, False], ids=["spool", "no-spool"])
def test_sigterm_with_a_full_outbox_keeps_or_tells_every_record(
    tmp_path: Path, spool: bool
) -> None:
    """NATS unreachable, a small outbox, 20,000 TCP records received, SIGTERM: every record is
    in the spool (in order) or told as lost, and the stop takes well under 90 s."""
    need_nats()
    sent = 20_000
    folder = tmp_path / "spool"
    extra = ["--nats-spool", str(folder), "--nats-spool-size", "256K"] if spool else []
    edge = CollectProcess(
        tmp_path / "edge", "--no-db", "-l", "tcp://127.0.0.1:0",
        "--nats", f"nats://127.0.0.1:{free_port()}", "--nats-memory", "64K", *extra,
    ).start()  # fmt: skip
    try:
        send_tcp(edge.port("tcp"), "t", sent)
        wait_received(edge, sent)
        took = stop_timed(edge)
    finally:
        edge.stop()
    err = edge.err.read_text(errors="replace")
    kept = spooled_records(folder) if spool else 0
    lost = told_lost(err)
    print(f"kept {kept}, told lost {lost}, stop took {took:.1f} s")
    assert kept + lost == sent, (kept, lost, err)
    assert (lost == 0) if spool else (kept == 0), (kept, lost, err)
    assert took < 30, took
    assert "OutboxClosed" not in err and "Traceback" not in err, err
    if spool:
        assert f"{sent} records not yet in JetStream are kept in" in err, err
    summary = err.splitlines()
    assert any(f"spooled={kept} lost={lost}" in line for line in summary), err


# -- issue 23 item 12: a restarted edge with a fixed edge id -----------------------------------


def stream_messages(server: NatsCluster, stream: str = "SYSLOG") -> int:
    from syslogkit.collector.nats import NatsOptions
    from syslogkit.collector.nats.connect import ErrorLog, connect

    async def count() -> int:
        nc = await connect(NatsOptions(server.urls), ErrorLog())
        try:
            info = await nc.jetstream().stream_info(stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def run_edge_once(server: NatsCluster, edge_id: str, prefix: str, count: int) -> dict[str, Any]:
    from syslogkit.collector import CollectorThread
    from syslogkit.collector.nats import JetStreamSink, NatsOptions

    sink = JetStreamSink(NatsOptions(server.urls), edge_id=edge_id, max_records=100)
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as edge:
        send_tcp(edge.port("tcp"), prefix, count)
        deadline = time.monotonic() + 20
        while sink.published_records < count and time.monotonic() < deadline:
            time.sleep(0.05)
    return sink.stats()


@pytest.mark.timeout(60)
def test_an_edge_restarted_with_a_fixed_edge_id_has_its_new_batches_stored(
    server: NatsCluster,
) -> None:
    from syslogkit.collector.nats import NatsOptions, StreamSettings, ensure_stream

    asyncio.run(ensure_stream(NatsOptions(server.urls), StreamSettings()))
    first = run_edge_once(server, "edge-a", "first", 1000)
    second = run_edge_once(server, "edge-a", "second", 1000)  # within the duplicate window
    assert first["published_records"] == second["published_records"] == 1000
    assert second["duplicates"] == 0, second
    assert first["run_id"] != second["run_id"]
    batches = int(first["published_messages"]) + int(second["published_messages"])
    assert stream_messages(server) == batches


# -- issue 18 item 3 and issue 23 item 8: nowhere to publish -----------------------------------


def syslogkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syslogkit", *args], capture_output=True, text=True, timeout=60
    )


def metrics_url(edge: CollectProcess) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(r"metrics on (\S+)/metrics", edge.out.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no metrics line: {edge.logs()}")


def healthz(base: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def edge_stats(edge: CollectProcess) -> dict[str, Any]:
    forward: list[dict[str, Any]] = edge.stats().get("forward") or [{}]
    return forward[0]


def stream_state(server: NatsCluster, stream: str = "SYSLOG") -> tuple[int, int]:
    """(messages, first sequence) of the stream."""
    from syslogkit.collector.nats import NatsOptions
    from syslogkit.collector.nats.connect import ErrorLog, connect

    async def state() -> tuple[int, int]:
        nc = await connect(NatsOptions(server.urls), ErrorLog())
        try:
            info = await nc.jetstream().stream_info(stream)
            return int(info.state.messages), int(info.state.first_seq)
        finally:
            await nc.close()

    return asyncio.run(state())


@pytest.mark.timeout(60)
def test_an_edge_without_a_stream_says_so_at_once_and_publishes_after_nats_init(
    server: NatsCluster, tmp_path: Path
) -> None:
    edge = CollectProcess(
        tmp_path / "edge", "--no-db", "-l", "tcp://127.0.0.1:0", "--nats", server.url,
        "--metrics", "127.0.0.1:0",
    ).start()  # fmt: skip
    try:
        wait_for(lambda: "does not exist" in edge.err.read_text(), 2, "the no-stream line")
        base = metrics_url(edge)
        said = [line for line in edge.err.read_text().splitlines() if "does not exist" in line]
        assert len(said) == 1 and "syslogkit nats init" in said[0], said
        status, body = healthz(base)
        assert status == 503 and "does not exist" in body, (status, body)
        send_tcp(edge.port("tcp"), "held", 1000)
        wait_for(lambda: edge_stats(edge).get("memory_records") == 1000, 10, "records held")
        init = syslogkit("nats", "init", "-s", server.url)
        assert init.returncode == 0, init.stderr
        wait_for(lambda: edge_stats(edge).get("published_records") == 1000, 10, "published")
        wait_for(lambda: healthz(base)[0] == 200, 10, "/healthz ok")
        assert "works again" in edge.err.read_text()
    finally:
        assert edge.stop() == 0
    stats = edge_stats(edge)
    assert stats["lost"] == 0 and stats["spool_records"] == 0 and stats["memory_records"] == 0
    messages, _ = stream_state(server)
    assert messages == stats["published_messages"]
    summary = edge.err.read_text()
    assert "published=1000 spooled=0 lost=0" in summary and "accepted=1000" in summary, summary


@pytest.mark.timeout(60)
def test_a_full_stream_refuses_new_batches_and_the_edge_holds_them_nothing_deleted(
    server: NatsCluster, tmp_path: Path
) -> None:
    init = syslogkit("nats", "init", "-s", server.url, "--max-size", "256K")
    assert init.returncode == 0 and "refuse new messages" in init.stdout, init
    edge = CollectProcess(
        tmp_path / "edge", "--no-db", "-l", "tcp://127.0.0.1:0", "--nats", server.url,
        "--nats-spool", str(tmp_path / "spool"), "--metrics", "127.0.0.1:0",
    ).start()  # fmt: skip
    sent = 10_000
    try:
        base = metrics_url(edge)
        send_tcp(edge.port("tcp"), "f", sent)
        wait_for(lambda: "is full" in edge.err.read_text(), 15, "the stream-full line")
        assert healthz(base)[0] == 503
        _, first = stream_state(server)
        assert first == 1  # the oldest batches are still there: nothing was deleted
        wait_for(lambda: edge_stats(edge).get("published_records", 0) > 0, 5, "a first publish")
        assert edge_stats(edge)["published_records"] < sent
        grown = syslogkit("nats", "init", "-s", server.url, "--max-size", "64M")
        assert grown.returncode == 0, grown.stderr
        wait_for(lambda: edge_stats(edge).get("published_records") == sent, 20, "all published")
        wait_for(lambda: healthz(base)[0] == 200, 10, "/healthz ok")
    finally:
        assert edge.stop() == 0
    stats = edge_stats(edge)
    messages, first = stream_state(server)
    assert first == 1 and messages == stats["published_messages"], (messages, first, stats)
    assert stats["lost"] == 0


@pytest.mark.timeout(30)
def test_a_smaller_later_batch_stored_while_an_older_one_is_refused_keeps_the_stream_full(
    server: NatsCluster,
) -> None:
    """A batch larger than the room left is refused; a later small one still fits and is
    stored: the stream stays told as full (/healthz 503) until the refused batch is stored."""
    import io

    from syslogkit.collector.nats import JetStreamSink, NatsOptions, StreamSettings, ensure_stream
    from syslogkit.collector.record import Record

    options = NatsOptions(server.urls)
    asyncio.run(ensure_stream(options, StreamSettings(max_bytes=64 * 1024)))

    def record(raw: bytes) -> Record:
        return Record(raw, time.time(), "tcp", "127.0.0.1:1", "tcp://127.0.0.1:1", message=None)

    notices = io.StringIO()
    sink = JetStreamSink(options, notices=notices)
    try:
        sink.write([record(b"big %04d " % i + b"x" * 1000) for i in range(100)])  # ~100 KiB
        sink.flush_start()
        wait_for(lambda: sink.problem is not None and "is full" in sink.problem, 10, "refused")
        sink.write([record(b"small")])
        sink.flush_start()
        wait_for(lambda: sink.published_records == 1, 10, "the small batch stored")
        assert sink.problem is not None and "is full" in sink.problem, notices.getvalue()
        assert sink.stats()["unhealthy"] is not None
        assert "works again" not in notices.getvalue()
        asyncio.run(ensure_stream(options, StreamSettings(max_bytes=1 << 20)))
        wait_for(lambda: sink.published_records == 101, 10, "the refused batch stored")
        assert sink.problem is None and "works again" in notices.getvalue()
    finally:
        sink.close()


@pytest.mark.timeout(30)
def test_a_missing_stream_is_told_again_at_the_notice_interval_while_it_lasts(
    server: NatsCluster,
) -> None:
    import io

    from syslogkit.collector.nats import JetStreamSink, NatsOptions

    notices = io.StringIO()
    sink = JetStreamSink(NatsOptions(server.urls), notice_interval=1.0, notices=notices)
    try:
        wait_for(lambda: notices.getvalue().count("does not exist") >= 3, 10, "three notices")
        lines = notices.getvalue().splitlines()
        assert "(still)" not in lines[0] and "(still)" in lines[1], lines
        assert sink.stats()["unhealthy"] is not None
    finally:
        sink.close()
