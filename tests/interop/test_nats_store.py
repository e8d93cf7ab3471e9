"""The store's side of JetStream (`collect -l nats://...`, `JetStreamSource`) against a real
3-node NATS cluster: a malformed message never stops a store, a redelivered message is stored
once by its identity (not its content), a commit longer than `ack_wait` is never stored twice
by two stores on one durable, and the source counts like every other listener.

Each test has a stream of its own (`S<n>`, subjects `s<n>.>`) on the module's cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from support.peers.nats import NatsCluster, missing_nats_server
from syslogkit.collector import CollectorThread, SQLiteSink, Store, StoreError
from syslogkit.collector.nats import (
    JetStreamSink,
    JetStreamSource,
    NatsOptions,
    StreamSettings,
    ensure_stream,
    store_check,
)
from syslogkit.collector.nats.wire import MAGIC, encode_batch
from syslogkit.collector.pipeline import Pipeline
from syslogkit.collector.record import Record

pytestmark = pytest.mark.interop

_streams = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    why = missing_nats_server()
    if why is not None:
        from support.peers import Need

        Need()(False, why)
    with NatsCluster(tmp_path_factory.mktemp("nats"), 3) as c:
        yield c


class Stream:
    """A stream of the test's own on the cluster, and what publishes to it."""

    def __init__(self, cluster: NatsCluster) -> None:
        n = next(_streams)
        self.name = f"S{n}"
        self.prefix = f"s{n}"
        self.options = NatsOptions(cluster.urls)
        settings = StreamSettings(name=self.name, subject_prefix=self.prefix, replicas=3)
        asyncio.run(ensure_stream(self.options, settings))

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish (msg id, payload) pairs in order, each acknowledged by the stream."""
        import nats

        async def run() -> None:
            nc = await nats.connect(servers=self.options.servers)
            js = nc.jetstream(timeout=10)
            for msg_id, payload in messages:
                await js.publish(
                    f"{self.prefix}.user.info",
                    payload,
                    stream=self.name,
                    headers={"Nats-Msg-Id": msg_id},
                )
            await nc.close()

        asyncio.run(run())

    def source(self, db: Path | None, **options: Any) -> JetStreamSource:
        options.setdefault("ack_wait", 1.0)
        if db is not None:
            options.setdefault("holds", store_check(str(db)))
        return JetStreamSource(
            self.options, stream=self.name, subject_prefix=self.prefix, **options
        )


@pytest.fixture
def stream(cluster: NatsCluster) -> Stream:
    return Stream(cluster)


def record(text: str, received_at: float = 1_700_000_000.0) -> Record:
    """A record as an edge ships it (the store parses `raw` again)."""
    return Record(
        raw=text.encode(),
        received_at=received_at,
        transport="tcp",
        peer="127.0.0.1",
        listener="tcp://127.0.0.1:5514",
        message=None,
    )


def batch(msg_id: str, texts: Sequence[str], received_at: float = 1_700_000_000.0) -> bytes:
    return encode_batch(msg_id, [record(t, received_at) for t in texts])


def rows(db: Path) -> list[tuple[str | None, bytes, str | None]]:
    """(msg, raw, error) of every stored row, duplicates kept."""
    if not db.exists():
        return []
    try:
        with Store(db, readonly=True) as store:
            return [(r.message.msg if r.message else None, r.raw, r.error) for r in store.query()]
    except (StoreError, sqlite3.Error):  # not made yet
        return []


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def run_store(
    stream: Stream,
    db: Path,
    done: Callable[[JetStreamSource], bool],
    *,
    seconds: float = 15.0,
    settle: float = 1.5,
    pipeline: Any = None,
    **options: Any,
) -> JetStreamSource:
    """A store reading `stream` into `db` until `done(source)` (then `settle` seconds more: an
    unacknowledged message would come back within them), through a writer process as
    `syslogkit collect` has it (the origins travel through its protocol)."""
    real = Pipeline([SQLiteSink(db, process=True)])
    source = stream.source(db, **options)
    real.start()
    source.start(pipeline(real) if pipeline is not None else real)
    try:
        wait_until(lambda: done(source), seconds)
        time.sleep(settle)
    finally:
        source.stop_fetching()
        real.drain(10)
        source.close()
        real.close()
    return source


# -- item 1: a malformed message never stops a store -------------------------------------------

#: each raises something other than WireError in the old decoder, or is not a batch at all
MALFORMED = [
    MAGIC + b'{"id":"bad-1","strings":[],"records":[["soon",-1,-1,-1,-1,-1,null,null,3]]}\nabc',
    MAGIC + b'{"id":"bad-2","strings":[],"records":[[1.5,7,-1,-1,-1,-1,null,null,3]]}\nabc',
    MAGIC + b'{"id":"bad-3","strings":[],"records":[[1.5,-1,-1,-1,-1,-1,null,null,"3"]]}\nabc',
    MAGIC + b'{"id":"bad-4","strings":[],"records":7}\n',
    b"not a syslogkit batch at all",
]


@pytest.mark.timeout(60)
def test_malformed_messages_are_counted_kept_acknowledged_and_every_good_one_after_them_stored(
    stream: Stream, tmp_path: Path
) -> None:
    texts = [[f"<14>1 - h app - - - good {i} {j}" for j in range(10)] for i in range(5)]
    good = [(f"good-{i}", batch(f"good-{i}", t)) for i, t in enumerate(texts)]
    stream.publish([(f"bad-{i}", p) for i, p in enumerate(MALFORMED)] + good)
    db = tmp_path / "store.db"
    told: list[str] = []
    source = run_store(
        stream, db, lambda s: len(rows(db)) >= 50 + len(MALFORMED), seconds=8, tell=told.append
    )
    stored = rows(db)
    messages = sorted(m for m, _, _ in stored if m is not None and m.startswith("good"))
    assert messages == sorted(f"good {i} {j}" for i in range(5) for j in range(10))
    kept = sorted(raw for _, raw, error in stored if error and "undecodable message" in error)
    assert kept == sorted(MALFORMED), stored
    stats = source.stats_dict()
    assert stats["bad_messages"] == len(MALFORMED)
    assert stats["acked"] == len(MALFORMED) + len(good), stats
    # told: the first at once, then (rate-limited) the total at close
    assert told[0].endswith(")") and ": 1 undecodable JetStream message(s) so far" in told[0]
    assert f": {len(MALFORMED)} undecodable JetStream message(s)" in told[-1], told
    assert len(told) <= 2, told


class FailsOnce:
    """The pipeline, refusing the first submission (any failure inside the consumer task)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.high_water = pipeline.high_water
        self.failed = False

    @property
    def pending(self) -> int:
        return self.pipeline.pending

    def submit(self, records: Sequence[Record], done: Any = None, *, urgent: bool = False) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("refused once")
        self.pipeline.submit(records, done, urgent=urgent)


def healthz(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.replace("/metrics", "/healthz"), timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.timeout(60)
def test_a_consumer_task_that_fails_is_told_restarted_and_unhealthy_until_it_fetches_again(
    stream: Stream, tmp_path: Path
) -> None:
    from syslogkit.collector.metrics import MetricsServer

    stream.publish([(f"m-{i}", batch(f"m-{i}", [f"<14>1 - h app - - - m {i}"])) for i in range(3)])
    db = tmp_path / "store.db"
    real = Pipeline([SQLiteSink(db)])
    told: list[str] = []
    source = stream.source(db, restart_wait=2.0, tell=told.append)
    snapshot = lambda: {"listeners": [source.stats_dict()], "pipeline": {}}  # noqa: E731
    real.start()
    source.start(FailsOnce(real))  # type: ignore[arg-type]
    try:
        with MetricsServer("127.0.0.1", 0, snapshot) as metrics:
            assert wait_until(lambda: source.restarts == 1, 10), source.stats_dict()
            assert healthz(metrics.url) == 503
            assert wait_until(lambda: len(rows(db)) == 3 and source.acked >= 3, 15), (
                source.stats_dict(),
                rows(db),
            )
            assert healthz(metrics.url) == 200
    finally:
        source.stop_fetching()
        real.drain(10)
        source.close()
        real.close()
    assert "the JetStream consumer stopped (RuntimeError: refused once)" in told[0], told
    assert told[1].endswith("the JetStream consumer is running again"), told
    assert sorted(m for m, _, _ in rows(db)) == [f"m {i}" for i in range(3)]


# -- item 3: a redelivered message is stored once by its identity, never skipped by content ------


class CommitsFirstOnly:
    """A store that commits the first submission it gets and dies before acknowledging
    anything: every message it fetched comes back (after `ack_wait`)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.high_water = pipeline.high_water
        self.submissions = 0

    @property
    def pending(self) -> int:
        return self.pipeline.pending

    def submit(self, records: Sequence[Record], done: Any = None, *, urgent: bool = False) -> None:
        self.submissions += 1
        if self.submissions == 1:
            self.pipeline.submit(records, None, urgent=urgent)


@pytest.mark.timeout(60)
def test_identical_lines_split_across_messages_and_redelivered_are_each_stored_once(
    stream: Stream, tmp_path: Path
) -> None:
    # five identical lines in one TCP read (one received_at), split by a real edge into
    # messages of 2 + 2 + 1 records
    sink = JetStreamSink(
        stream.options, stream=stream.name, subject_prefix=stream.prefix, max_records=2
    )
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as edge:
        frame = b"<14>1 - h app - - - the same line"
        with socket.create_connection(("127.0.0.1", edge.port("tcp"))) as sock:
            sock.sendall(b"%d %b" % (len(frame), frame) * 5)
        assert wait_until(lambda: sink.published_records == 5, 10)
    assert sink.published == 3
    db = tmp_path / "store.db"
    first: list[CommitsFirstOnly] = []

    def forgetful(pipeline: Pipeline) -> CommitsFirstOnly:
        first.append(CommitsFirstOnly(pipeline))
        return first[0]

    run_store(stream, db, lambda s: s.messages >= 3, pipeline=forgetful, fetch_batch=1, settle=0.3)
    assert len(rows(db)) == 2 and first[0].submissions == 3  # message 1 only, nothing acked
    source = run_store(stream, db, lambda s: s.acked >= 3, seconds=10)
    stats = source.stats_dict()
    assert len(rows(db)) == 5, stats
    assert stats["redelivered"] == 3 and stats["skipped_held"] == 1, stats
    assert stats["received"] == 3  # the skipped message is not counted (nor parsed) again


# -- item 7: fetches bounded, long commits kept alive ------------------------------------------


class Sizes:
    """The pipeline, with the size of every submission the source makes noted."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.high_water = pipeline.high_water
        self.sizes: list[int] = []

    @property
    def pending(self) -> int:
        return self.pipeline.pending

    def submit(self, records: Sequence[Record], done: Any = None, *, urgent: bool = False) -> None:
        self.sizes.append(len(records))
        self.pipeline.submit(records, done, urgent=urgent)


@pytest.mark.timeout(60)
def test_a_fetch_of_large_messages_is_committed_in_parts_of_bounded_size(
    stream: Stream, tmp_path: Path
) -> None:
    texts = [f"<14>1 - h app - - - n {j}" for j in range(2000)]
    stream.publish([(f"big-{i}", batch(f"big-{i}", texts)) for i in range(10)])
    db = tmp_path / "store.db"
    seen: list[Sizes] = []

    def sizes(pipeline: Pipeline) -> Sizes:
        seen.append(Sizes(pipeline))
        return seen[0]

    source = run_store(stream, db, lambda s: s.acked >= 10, pipeline=sizes, settle=0.2)
    assert len(rows(db)) == 20_000, source.stats_dict()
    assert sum(seen[0].sizes) == 20_000
    assert max(seen[0].sizes) <= 5000, seen[0].sizes


class SlowSink(SQLiteSink):
    """A store whose disk is slow: each commit takes `delay` seconds (longer than ack_wait)."""

    delay = 2.5

    def flush(self) -> None:
        time.sleep(self.delay)
        super().flush()


@pytest.mark.timeout(60)
def test_two_stores_on_one_durable_with_commits_longer_than_ack_wait_never_store_a_record_twice(
    stream: Stream, tmp_path: Path
) -> None:
    count = 12
    texts = [[f"<14>1 - h app - - - m {i} {j}" for j in range(20)] for i in range(count)]
    stream.publish([(f"m-{i}", batch(f"m-{i}", t)) for i, t in enumerate(texts)])
    dbs = [tmp_path / "a.db", tmp_path / "b.db"]
    pipelines = [Pipeline([SlowSink(db)]) for db in dbs]
    sources = [stream.source(db, ack_wait=1.0, fetch_batch=4) for db in dbs]
    for pipeline, source in zip(pipelines, sources, strict=True):
        pipeline.start()
        source.start(pipeline)
    try:
        wait_until(lambda: sum(s.acked for s in sources) >= count, 30)
        time.sleep(2.5)  # more than an ack_wait: what would come back, came back
    finally:
        for source, pipeline in zip(sources, pipelines, strict=True):
            source.stop_fetching()
            pipeline.drain(15)
            source.close()
            pipeline.close()
    stored = [m for db in dbs for m, _, _ in rows(db)]
    assert len(set(stored)) == count * 20
    assert len(stored) == count * 20, [s.stats_dict() for s in sources]


# -- item 13: the source counts as every listener does -----------------------------------------


@pytest.mark.timeout(60)
def test_the_source_counts_parsed_noted_and_unparsed_records_as_every_listener_does(
    stream: Stream, tmp_path: Path
) -> None:
    texts = [
        "<14>1 2026-01-02T03:04:05Z h app - - - clean one",
        "<14>1 2026-01-02T03:04:05Z h app - - - clean two",
        "<14>1 2026-01-02T03:04:05 h app - - - no offset: noted",
        "no PRI at all: unparsed",
    ]
    stream.publish([("counts-1", batch("counts-1", texts))])
    db = tmp_path / "store.db"
    source = run_store(stream, db, lambda s: s.acked >= 1, settle=0.2)
    stats = source.stats_dict()
    assert len(rows(db)) == 4
    counts = {k: stats[k] for k in ("received", "parsed", "noted", "unparsed")}
    assert counts == {"received": 4, "parsed": 2, "noted": 1, "unparsed": 1}, stats


@pytest.mark.timeout(60)
def test_the_collect_summary_line_of_a_store_says_skipped_held_and_bad_messages(
    cluster: NatsCluster, stream: Stream, tmp_path: Path
) -> None:
    from support.peers.nats import CollectProcess

    stream.publish([("bad", MALFORMED[-1]), ("good", batch("good", ["<14>1 - h app - - - x"]))])
    store = CollectProcess(
        tmp_path / "store", "-l", cluster.url, "--db", str(tmp_path / "store.db"),
        "--nats-stream", stream.name, "--nats-subject-prefix", stream.prefix,
    ).start()  # fmt: skip
    try:
        listeners = lambda: store.stats().get("listeners", [])  # noqa: E731
        wait_until(lambda: any(x.get("acked", 0) >= 2 for x in listeners()), 15)
    finally:
        assert store.stop() == 0, store.logs()
    lines = store.err.read_text().splitlines()
    told = [line for line in lines if "undecodable JetStream message" in line]
    assert len(told) == 1 and "1 undecodable" in told[0], store.logs()
    summary = [line for line in lines if line.startswith("nats://") and "received=" in line]
    assert len(summary) == 1, store.logs()
    assert "received=2 parsed=1 noted=0 unparsed=1" in summary[0]
    assert "skipped_held=0 bad_messages=1" in summary[0], summary
