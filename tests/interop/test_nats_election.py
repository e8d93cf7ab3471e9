"""An edge rides out a stream leader's death (issue 18): a default `SyslogHandler` over RELP logs
20,000 records in a tight loop into an edge (`collect --nats`), the node that leads the stream is
SIGKILLed at record 6,667 and started again at 13,334, and a store reads the stream.

With the documented set-up (the edge has `--nats-spool`), every record is stored once. Without a
spool, what was not stored is what the handler and the edge said they lost, exactly.

A real 3-node cluster (tests/support/peers/nats.py); edge and store are `syslogkit collect`
processes. Each test has a stream of its own on the module's cluster.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.peers.nats import CollectProcess, NatsCluster, missing_nats_server
from syslogkit import SyslogHandler
from syslogkit.collector import Store, StoreError

pytestmark = pytest.mark.interop

SENT = 20_000
KILL_AT = 6_667
RESTART_AT = 13_334


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
    """The cluster, with every node running again after the test."""
    yield cluster
    for node in cluster.nodes:
        if not node.running:
            cluster.start_node(node)
    cluster.wait_ready()


def make_stream(cluster: NatsCluster, name: str) -> list[str]:
    from syslogkit.collector.nats import NatsOptions, StreamSettings, ensure_stream

    settings = StreamSettings(name=name, subject_prefix=name.lower(), replicas=3)
    asyncio.run(ensure_stream(NatsOptions(cluster.urls), settings))
    return ["--nats-stream", name, "--nats-subject-prefix", name.lower()]


def sequence_numbers(db: Path) -> Counter[int]:
    """How many times each sequence number is stored."""
    if not db.exists():
        return Counter()
    try:
        with Store(db, readonly=True) as store:
            return Counter(
                int(r.message.msg.rsplit(" ", 1)[1])
                for r in store.query()
                if r.message is not None and r.message.msg
            )
    except (StoreError, sqlite3.Error):  # not made yet
        return Counter()


def wait_for_the_store(db: Path, edge: CollectProcess, target: int, timeout: float = 40.0) -> None:
    """Until `target` records are stored (once or more), or the edge holds nothing more and the
    store has taken nothing new for 25 s (a store's consumer can take 20 s to come back)."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(sequence_numbers(db))
        if count >= target:
            return
        if count != seen:
            seen, since = count, time.monotonic()
        held = (edge.stats().get("forward") or [{}])[0].get("queued_batches", 1)
        if held == 0 and time.monotonic() - since > 25.0:
            return
        time.sleep(0.5)


@dataclass
class Outcome:
    once: int
    twice: int
    lost: int
    handler: dict[str, Any]
    edge: dict[str, Any]
    edge_err: str
    store: dict[str, Any]
    store_err: str

    def explain(self) -> str:
        return (
            f"{self}\nhandler: {self.handler}\nedge: {self.edge}\nedge stderr: {self.edge_err}"
            f"\nstore: {self.store}\nstore stderr: {self.store_err}"
        )

    def __str__(self) -> str:
        return f"stored once {self.once}, twice {self.twice}, lost {self.lost}"


def run_scenario(cluster: NatsCluster, folder: Path, stream: str, *edge_args: str) -> Outcome:
    """The scenario of issue 18; the edge stopped (SIGTERM) before the outcome is read."""
    names = make_stream(cluster, stream)
    edge = CollectProcess(
        folder / "edge", "--no-db", "-l", "relp://127.0.0.1:0", "--nats", cluster.url,
        *names, *edge_args,
    ).start()  # fmt: skip
    store = CollectProcess(
        folder / "store", "-l", cluster.url, "--db", str(folder / "store.db"), *names
    ).start()
    db = folder / "store.db"
    handler = SyslogHandler(f"relp://127.0.0.1:{edge.port('relp')}")  # every default
    log = logging.getLogger(f"election-{stream}")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        deadline = time.monotonic() + 10
        while (leader := cluster.stream_leader(stream)) is None:
            assert time.monotonic() < deadline, "the stream has no leader"
            time.sleep(0.1)
        for i in range(SENT):
            if i == KILL_AT:
                cluster.kill(leader)
            elif i == RESTART_AT:
                cluster.start_node(leader)
            log.info("e %06d", i)
        handler.flush(60)
        handler_stats = dict(handler.stats)
        handler.close(30)
        wait_for_the_store(db, edge, SENT - int(handler_stats.get("dropped", 0)))
        edge.stop(60)
        time.sleep(1.0)
        stored = sequence_numbers(db)
    finally:
        edge.stop(60)
        store.stop()
    edge_stats = (edge.stats().get("forward") or [{}])[0]
    return Outcome(
        once=sum(1 for n in range(SENT) if stored[n] == 1),
        twice=sum(1 for n in range(SENT) if stored[n] > 1),
        lost=sum(1 for n in range(SENT) if stored[n] == 0),
        handler=handler_stats,
        edge=edge_stats,
        edge_err=edge.err.read_text(errors="replace"),
        store=store.stats(),
        store_err=store.err.read_text(errors="replace"),
    )


@pytest.mark.timeout(90)
def test_an_edge_with_a_spool_rides_out_the_stream_leaders_death_every_record_once(
    healed: NatsCluster, tmp_path: Path
) -> None:
    outcome = run_scenario(healed, tmp_path, "E1", "--nats-spool", str(tmp_path / "spool"))
    print(outcome, outcome.edge)
    assert (outcome.once, outcome.twice, outcome.lost) == (SENT, 0, 0), outcome.explain()
    # the election was seen (publishes failed, or the edge lost its server: a batch in flight
    # then goes to the spool without a failed publish of its own) and ridden out: batches kept
    # in the spool for their RELP answer, published later; the sender was answered every time
    # (nothing re-sent, nothing dropped)
    edge = outcome.edge
    assert edge["publish_retries"] > 0 or edge["disconnects"] > 0, edge
    assert edge["kept_for_relp"] > 0, edge
    assert outcome.handler["dropped"] == 0 and outcome.handler["acknowledged"] == SENT, (
        outcome.handler
    )


@pytest.mark.timeout(90)
def test_an_edge_without_a_spool_through_the_leaders_death_stores_or_tells_every_record(
    healed: NatsCluster, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    outcome = run_scenario(healed, tmp_path, "E2")
    handler_said = capfd.readouterr().err
    print(outcome, outcome.handler, outcome.edge)
    told = int(outcome.handler["dropped"]) + int(outcome.edge["lost"])
    assert outcome.once + outcome.twice + told == SENT, outcome.explain()
    assert f"lost={outcome.edge['lost']}" in outcome.edge_err  # the edge's summary says it
    if outcome.handler["dropped"]:  # the handler's closing line says its total
        said = re.findall(r"at close, (\d+) records dropped in all", handler_said)
        assert said == [str(outcome.handler["dropped"])], handler_said
