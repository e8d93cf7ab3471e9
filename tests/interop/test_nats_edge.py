"""The edge on its own against a real nats-server: `nats init`, an outage spooled and caught up,
credentials kept secret, a redelivered batch that the store holds skipped."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.peers.nats import NatsCluster, missing_nats_server
from syslogkit.collector import CollectorThread, SQLiteSink, Store
from syslogkit.collector.nats import (
    JetStreamSink,
    JetStreamSource,
    NatsOptions,
    StreamSettings,
    ensure_stream,
    store_check,
)
from syslogkit.collector.pipeline import Pipeline

pytestmark = pytest.mark.interop

SECRET = "s3cret-pw"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsCluster]:
    """One JetStream server with a user and password."""
    why = missing_nats_server()
    if why is not None:
        from support.peers import Need

        Need()(False, why)
    extra = f'authorization {{ user: edge, password: "{SECRET}" }}'
    with NatsCluster(tmp_path / "nats", 1, extra_config=extra) as c:
        yield c


def authed(server: NatsCluster, password: str = SECRET) -> str:
    return f"nats://edge:{password}@127.0.0.1:{server.nodes[0].port}"


def syslogkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syslogkit", *args], capture_output=True, text=True, timeout=60
    )


def test_nats_init_creates_then_updates_the_stream_and_prints_no_password(
    server: NatsCluster,
) -> None:
    first = syslogkit("nats", "init", "-s", authed(server), "--max-age", "1h")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created stream SYSLOG") and "3600s" in first.stdout
    second = syslogkit("nats", "init", "-s", authed(server), "--max-age", "2h")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("updated stream SYSLOG") and "7200s" in second.stdout
    for run in (first, second):
        assert SECRET not in run.stdout + run.stderr


def test_a_wrong_password_is_reported_without_the_password(server: NatsCluster) -> None:
    run = syslogkit("nats", "init", "-s", authed(server, "wrong-pw-xyz"))
    assert run.returncode != 0
    assert "wrong-pw-xyz" not in run.stdout + run.stderr
    assert "authorization" in run.stderr.lower(), run.stderr


def send_tcp(port: int, prefix: str, count: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        frames = b"".join(
            b"%d %b" % (len(m), m)
            for m in (f"<14>1 - h app - - - {prefix} {i:05d}".encode() for i in range(count))
        )
        sock.sendall(frames)


def stored(db: Path) -> list[str]:
    with Store(db, readonly=True) as store:
        return [r.message.msg if r.message else None for r in store.query()]


def consume(options: NatsOptions, db: Path, count: int) -> JetStreamSource:
    """Read the stream into `db` until `count` records are stored and acknowledged."""
    pipeline = Pipeline([SQLiteSink(db)])
    source = JetStreamSource(options, ack_wait=1.0, holds=store_check(str(db)))
    pipeline.start()
    source.start(pipeline)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if len(stored(db)) >= count and source.acked >= source.messages - source.skipped:
            break
    time.sleep(1.5)  # more than an ack_wait: an unacknowledged message would come back
    source.stop_fetching()
    pipeline.drain(10)
    source.close()
    pipeline.close()
    return source


def commit_without_acknowledging(options: NatsOptions, db: Path, records: int) -> None:
    """A store that commits and dies before it acknowledges: nothing is acknowledged."""
    pipeline = Pipeline([SQLiteSink(db)])

    class Forgetful:
        high_water = pipeline.high_water

        @property
        def pending(self) -> int:
            return pipeline.pending

        def submit(self, batch, done=None, *, urgent=False):  # type: ignore[no-untyped-def]
            pipeline.submit(batch, None, urgent=urgent)

    source = JetStreamSource(options, ack_wait=1.0)
    pipeline.start()
    source.start(Forgetful())  # type: ignore[arg-type]
    deadline = time.monotonic() + 20
    while len(stored(db)) < records and time.monotonic() < deadline:
        time.sleep(0.05)
    source.stop_fetching()
    pipeline.drain(10)
    source.close()
    pipeline.close()


@pytest.mark.timeout(90)
def test_an_outage_is_spooled_counted_and_caught_up_stored_once(
    server: NatsCluster, tmp_path: Path
) -> None:
    options = NatsOptions([authed(server)])
    asyncio.run(ensure_stream(options, StreamSettings()))
    spool = tmp_path / "spool"
    sink = JetStreamSink(options, max_memory=32 * 1024, spool_dir=spool, max_records=200)
    count = 5000
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as edge:
        send_tcp(edge.port("tcp"), "before", 500)
        deadline = time.monotonic() + 20
        while sink.published_records < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        node = server.nodes[0]
        server.kill(node)  # the engine is gone: the edge keeps accepting
        send_tcp(edge.port("tcp"), "during", count)
        deadline = time.monotonic() + 20
        while sink.outbox.records < count and time.monotonic() < deadline:
            time.sleep(0.05)
        during = sink.stats()
        assert during["memory_bytes"] <= 32 * 1024 + 64 * 1024  # bounded: the rest on disk
        assert during["spool_records"] > 0 and during["spooled_total"] > 0
        assert list(spool.glob("*.skb"))
        server.start_node(node)
        server.wait_ready()
        deadline = time.monotonic() + 40
        while sink.outbox.records and time.monotonic() < deadline:
            time.sleep(0.1)
        after = sink.stats()
    assert after["spool_records"] == 0 and after["disconnects"] > 0
    assert not list(spool.glob("*.skb"))
    assert SECRET not in repr(after)
    db = tmp_path / "store.db"
    consume(options, db, count + 500)
    rows = stored(db)
    assert len(rows) == count + 500
    assert set(rows) == {f"before {i:05d}" for i in range(500)} | {
        f"during {i:05d}" for i in range(count)
    }


@pytest.mark.timeout(60)
def test_a_batch_committed_but_not_acknowledged_comes_back_and_is_skipped(
    server: NatsCluster, tmp_path: Path
) -> None:
    options = NatsOptions([authed(server)])
    asyncio.run(ensure_stream(options, StreamSettings()))
    sink = JetStreamSink(options, max_records=100)
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as edge:
        send_tcp(edge.port("tcp"), "once", 1000)
        deadline = time.monotonic() + 20
        while sink.published_records < 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
    db = tmp_path / "store.db"
    commit_without_acknowledging(options, db, 300)
    assert 300 <= len(stored(db)) <= 1000
    source = consume(options, db, 1000)
    assert source.redelivered > 0 and source.skipped > 0, source.stats_dict()
    rows = stored(db)
    assert len(rows) == 1000 and len(set(rows)) == 1000
