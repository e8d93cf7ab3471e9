"""SIGHUP to an edge with `--nats-spool` on a real nats-server: it keeps running and loses
nothing (issue 23 item 14; before, it died at once with its records in memory)."""

from __future__ import annotations

import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.collector import wait_for
from support.peers import Need
from support.peers.nats import CollectProcess, NatsCluster, missing_nats_server
from syslogkit.collector import Store, StoreError

pytestmark = pytest.mark.interop


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsCluster]:
    why = missing_nats_server()
    if why is not None:
        Need()(False, why)
    with NatsCluster(tmp_path / "nats", 1) as c:
        yield c


def send_tcp(port: int, count: int) -> None:
    """`count` messages over one connection, 500 per write, 10 ms apart (about 2 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        for start in range(0, count, 500):
            s.sendall(
                b"".join(
                    b"%d %b" % (len(m), m)
                    for m in (
                        f"<14>1 - h app - - - hup {i:06d}".encode()
                        for i in range(start, min(count, start + 500))
                    )
                )
            )
            time.sleep(0.01)


def messages(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with Store(db, readonly=True) as store:
            return [r.message.msg for r in store.query() if r.message and r.message.msg]
    except (StoreError, sqlite3.Error):  # not made yet
        return []


@pytest.mark.timeout(60)
def test_sighup_to_an_edge_with_a_spool_keeps_it_running_and_loses_nothing(
    server: NatsCluster, tmp_path: Path
) -> None:
    import asyncio

    from syslogkit.collector.nats import NatsOptions, StreamSettings, ensure_stream

    asyncio.run(ensure_stream(NatsOptions(server.urls), StreamSettings(replicas=1)))
    count = 20_000
    edge = CollectProcess(
        tmp_path / "edge", "-l", "tcp://127.0.0.1:0", "--nats", server.url,
        "--nats-spool", str(tmp_path / "spool"),
    ).start()  # fmt: skip
    db = tmp_path / "store" / "store.db"
    store = CollectProcess(tmp_path / "store", "-l", server.url, "--db", str(db)).start()
    try:
        assert edge.proc is not None
        sender = threading.Thread(target=send_tcp, args=(edge.port("tcp"), count))
        sender.start()
        wait_for(lambda: len(messages(db)) > 2000, 20, "the first records stored")
        edge.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: " in edge.err.read_text(), 10, "the edge's SIGHUP line")
        sender.join(30)
        wait_for(lambda: len(messages(db)) >= count, 30, "every record stored")
        assert edge.proc.poll() is None  # still running (before: killed by the HUP)
    finally:
        assert edge.stop() == 0, edge.logs()
        store.stop()
    stored = messages(db)
    assert len(stored) == len(set(stored)) == count
