"""Edge collectors -> NATS JetStream (a real 3-node cluster) -> stores, end to end.

The cluster runs on loopback high ports, each node with its own store, started here
(tests/support/peers/nats.py); collectors are `syslogkit collect` processes that the tests
SIGKILL. Each test has a stream of its own (`T<n>`, subjects `t<n>.>`) on the shared cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from support.peers.nats import CollectProcess, NatsCluster, NatsNode, missing_nats_server
from syslogkit import SyslogHandler
from syslogkit.collector import Store, StoreError

pytestmark = pytest.mark.interop
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    why = missing_nats_server()
    if why is not None:
        from support.peers import Need

        Need()(False, why)
    with NatsCluster(tmp_path_factory.mktemp("nats"), 3) as c:
        yield c


@pytest.fixture
def healed(cluster: NatsCluster) -> Iterator[NatsCluster]:
    """The cluster, with every node running again after the test (killed ones restarted)."""
    yield cluster
    for node in cluster.nodes:
        if not node.running:
            cluster.start_node(node)
    cluster.wait_ready()


def make_stream(cluster: NatsCluster, name: str, replicas: int = 3) -> list[str]:
    """The stream `name` (subjects `name.lower().>`), and the CLI options that use it."""
    from syslogkit.collector.nats import NatsOptions, StreamSettings, ensure_stream

    settings = StreamSettings(name=name, subject_prefix=name.lower(), replicas=replicas)
    asyncio.run(ensure_stream(NatsOptions(cluster.urls), settings))
    return ["--nats-stream", name, "--nats-subject-prefix", name.lower()]


def edge(folder: Path, cluster: NatsCluster, stream: list[str], *extra: str) -> CollectProcess:
    return CollectProcess(
        folder, "-l", "relp://127.0.0.1:0", "-l", "tcp://127.0.0.1:0",
        "--nats", cluster.url, *stream, *extra,
    ).start()  # fmt: skip


def store(folder: Path, cluster: NatsCluster, stream: list[str], *extra: str) -> CollectProcess:
    return CollectProcess(
        folder, "-l", cluster.url.replace("nats://", "nats://", 1), "--db",
        str(folder / "store.db"), *stream, *extra,
    ).start()  # fmt: skip


def rows(db: Path) -> list[str]:
    """The MSG of every stored record (duplicates kept)."""
    if not db.exists():
        return []
    try:
        with Store(db, readonly=True) as store:
            return [r.message.msg if r.message else None for r in store.query()]
    except (StoreError, sqlite3.Error):  # not created yet
        return []


def wait_until(check: Callable[[], _T | None], timeout: float, what: str) -> _T:
    """The first true value of `check()`; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
    return value


def relp_logger(
    name: str, port: int, *failover: int, timeout: float = 5.0
) -> tuple[logging.Logger, SyslogHandler]:
    """A RELP handler; `timeout` bounds its wait for an answer (then it sends again)."""
    handler = SyslogHandler(
        f"relp://127.0.0.1:{port}",
        timeout=timeout,
        failover=[f"relp://127.0.0.1:{p}" for p in failover],
        queue_size=100_000,
        app_name=name,
    )
    log = logging.getLogger(f"nats-test-{name}")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, handler


def send(log: logging.Logger, prefix: str, count: int, pace: float = 0.0) -> None:
    for i in range(count):
        log.info("%s %06d", prefix, i)
        if pace and i % 100 == 99:
            time.sleep(pace)


def expected(prefix: str, count: int) -> set[str]:
    return {f"{prefix} {i:06d}" for i in range(count)}


@pytest.mark.timeout(120)
def test_20000_relp_records_through_two_edges_are_stored_exactly_once(
    healed: NatsCluster, tmp_path: Path
) -> None:
    stream = make_stream(healed, "T1")
    a = edge(tmp_path / "a", healed, stream)
    b = edge(tmp_path / "b", healed, stream)
    s = store(tmp_path / "s", healed, stream)
    try:
        senders = []
        for name, collector in (("a", a), ("b", b)):
            log, handler = relp_logger(name, collector.port("relp"))
            thread = threading.Thread(target=send, args=(log, name, 10_000))
            thread.start()
            senders.append((thread, handler))
        for thread, handler in senders:
            thread.join(60)
            handler.flush(60)
            handler.close()
            assert handler.stats["acknowledged"] == 10_000
        db = tmp_path / "s" / "store.db"
        wait_until(lambda: len(rows(db)) >= 20_000, 60, "20,000 stored records")
        time.sleep(0.5)  # nothing more arrives
        stored = rows(db)
        assert len(stored) == 20_000
        assert set(stored) == expected("a", 10_000) | expected("b", 10_000)
    finally:
        for p in (a, b, s):
            p.stop()


@pytest.mark.timeout(150)
def test_killing_a_follower_then_the_stream_leader_loses_nothing_and_stores_nothing_twice(
    healed: NatsCluster, tmp_path: Path
) -> None:
    stream = make_stream(healed, "T2")
    a = edge(tmp_path / "a", healed, stream)
    s = store(tmp_path / "s", healed, stream)
    db = tmp_path / "s" / "store.db"
    count = 8000
    try:
        # a sender that waits out an election (rsyslog's omrelp waits 90 s by default)
        log, handler = relp_logger("k", a.port("relp"), timeout=45.0)
        # paced (about 16 s in all) so that the outage comes while records are still in flight
        thread = threading.Thread(target=send, args=(log, "k", count, 0.2))
        thread.start()
        wait_until(lambda: len(rows(db)) >= 1000, 30, "the first records stored")
        leader = healed.stream_leader("T2")
        assert leader is not None
        follower = next(n for n in healed.nodes if n is not leader)
        healed.kill(follower)
        wait_until(lambda: len(rows(db)) >= 3000, 30, "records stored without the follower")

        def live_leader() -> NatsNode | None:
            # a node may still name the old leader for a moment: only a running one counts
            found = healed.stream_leader("T2")
            return found if found is not None and found is not follower and found.running else None

        leader = wait_until(live_leader, 30, "a running stream leader")
        unanswered = count - handler.stats.get("acknowledged", 0)
        assert unanswered > 0, "everything was acknowledged before the outage: nothing tested"
        healed.kill(leader)  # two of three down: no majority until one is back
        time.sleep(1.0)
        healed.start_node(follower)
        thread.join(90)
        handler.flush(90)
        stats = dict(handler.stats)
        handler.close()
        wait_until(lambda: len(rows(db)) >= count, 60, f"{count} stored records")
        time.sleep(0.5)
        stored = rows(db)
        assert len(stored) == count, "stored twice" if len(stored) > count else "lost"
        assert set(stored) == expected("k", count)
        # back-pressure, not errors: every record acknowledged, none dropped or re-sent
        assert stats["acknowledged"] == count and stats["dropped"] == 0, stats
        assert stats["resent"] == 0 and stats["errors"] == 0, stats
        edge_stats = a.stats()["forward"][0]
        assert edge_stats["publish_retries"] > 0, edge_stats  # the outage was seen and waited out
    finally:
        for p in (a, s):
            p.stop()


@pytest.mark.timeout(90)
def test_a_sigkilled_edge_loses_nothing_the_relp_sender_fails_over(
    healed: NatsCluster, tmp_path: Path
) -> None:
    stream = make_stream(healed, "T3")
    a = edge(tmp_path / "a", healed, stream)
    b = edge(tmp_path / "b", healed, stream)
    s = store(tmp_path / "s", healed, stream)
    db = tmp_path / "s" / "store.db"
    count = 6000
    try:
        log, handler = relp_logger("f", a.port("relp"), b.port("relp"))
        thread = threading.Thread(target=send, args=(log, "f", count, 0.02))
        thread.start()
        wait_until(lambda: len(rows(db)) >= 1000, 30, "the first records stored")
        a.kill()
        thread.join(60)
        handler.flush(60)
        handler.close()
        wait_until(lambda: set(rows(db)) >= expected("f", count), 60, "every record stored")
        stored = rows(db)
        # at least once: what edge a published and had not yet acknowledged is sent again
        assert len(stored) - count <= 2 * 128, len(stored) - count
        assert b.stats()["forward"][0]["published_records"] > 0
    finally:
        for p in (a, b, s):
            p.stop()


@pytest.mark.timeout(90)
def test_a_sigkilled_store_gets_its_batches_again_and_stores_them_once(
    healed: NatsCluster, tmp_path: Path
) -> None:
    stream = make_stream(healed, "T4")
    a = edge(tmp_path / "a", healed, stream)
    folder = tmp_path / "s"
    db = folder / "store.db"
    first = store(folder, healed, stream, "--nats-ack-wait", "2s")
    count = 20_000
    try:
        log, handler = relp_logger("r", a.port("relp"))
        thread = threading.Thread(target=send, args=(log, "r", count, 0.02))
        thread.start()
        wait_until(lambda: len(rows(db)) >= 3000, 30, "the first commits")
        first.kill()  # mid-stream: fetched, maybe committed, not all acknowledged
        assert len(rows(db)) < count, "the store finished before it was killed"
        second = store(folder, healed, stream, "--nats-ack-wait", "2s")
        try:
            thread.join(60)
            handler.flush(60)
            handler.close()
            wait_until(lambda: len(rows(db)) >= count, 60, f"{count} stored records")
            time.sleep(3.0)  # an ack_wait more: a redelivery would have arrived
            stored = rows(db)
            assert len(stored) == count, "stored twice" if len(stored) > count else "lost"
            assert set(stored) == expected("r", count)
        finally:
            second.stop()
    finally:
        first.stop()
        a.stop()


@pytest.mark.timeout(90)
def test_two_stores_on_one_durable_each_store_a_part_and_together_all(
    healed: NatsCluster, tmp_path: Path
) -> None:
    stream = make_stream(healed, "T5")
    a = edge(tmp_path / "a", healed, stream)
    one = store(tmp_path / "one", healed, stream)
    two = store(tmp_path / "two", healed, stream)
    count = 10_000
    try:
        log, handler = relp_logger("w", a.port("relp"))
        send(log, "w", count, 0.01)
        handler.flush(60)
        handler.close()
        dbs = [tmp_path / "one" / "store.db", tmp_path / "two" / "store.db"]
        wait_until(lambda: sum(len(rows(d)) for d in dbs) >= count, 60, "every record stored")
        time.sleep(0.5)
        first, second = (rows(d) for d in dbs)
        assert first and second, "one store did all the work"
        assert not set(first) & set(second)
        assert len(first) + len(second) == count
        assert set(first) | set(second) == expected("w", count)
        both = subprocess.run(
            [sys.executable, "-m", "syslogkit", "query", "--json"]
            + [arg for db in dbs for arg in ("--db", str(db))],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert both.returncode == 0, both.stderr
        shown = [json.loads(line) for line in both.stdout.splitlines()]
        assert sorted(r["msg"] for r in shown) == sorted(first + second)
        arrivals = [r["received_at"] for r in shown]
        assert arrivals == sorted(arrivals)  # one stream, in time order
    finally:
        for p in (a, one, two):
            p.stop()
