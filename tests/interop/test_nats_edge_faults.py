"""The edge (`collect --nats`) under faults, against a real nats-server: stopped with a full
outbox, a restart with a fixed edge id, the stream's discard policy, no stream at all.

Issues 18 (item 3) and 23 (items 2, 8, 10, 12).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

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


def run_edge_once(server: NatsCluster, edge_id: str, prefix: str, count: int) -> dict[str, object]:
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
    batches = int(first["published_messages"]) + int(second["published_messages"])  # type: ignore[call-overload]
    assert stream_messages(server) == batches
