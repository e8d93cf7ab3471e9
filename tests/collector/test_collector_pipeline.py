"""The pipeline when a sink fails: its batches are kept and retried, the other sinks go on, the
operator is told (issue 22); a failed COMMIT, a retention error after a commit (issue 23 item 9,
issue 18 item 6)."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from support.collector import wait_for
from syslogkit.collector import JsonLinesSink, Pipeline, Record, SQLiteSink, Store


def record(i: int) -> Record:
    return Record(
        raw=f"<14>1 - web1 app - - - message {i}".encode(),
        received_at=time.time(),
        transport="tcp",
        peer="127.0.0.1:40000",
        listener="tcp://127.0.0.1:5514",
        message=None,
    )


class Switch:
    """A sink that fails (OSError, as a full disk does) while `broken` is set; it keeps every
    record of the batches it took, in order."""

    def __init__(self) -> None:
        self.broken = threading.Event()
        self.records: list[Record] = []
        self._batch: list[Record] = []

    @property
    def label(self) -> str:
        return "switch"

    def write(self, records: Sequence[Record]) -> None:
        self._batch = list(records)

    def flush(self) -> None:
        batch, self._batch = self._batch, []
        if self.broken.is_set():
            raise OSError(28, "No space left on device")
        self.records += batch

    def close(self) -> None:
        pass


def test_a_failing_sink_keeps_its_batches_retries_them_and_tells() -> None:
    sink = Switch()
    sink.broken.set()
    lines: list[str] = []
    answers: list[bool] = []
    pipeline = Pipeline([sink], commit_interval=0.0, tell=lines.append)
    pipeline.start()
    pipeline.submit([record(i) for i in range(10)], answers.append)
    pipeline.submit([record(i) for i in range(10, 20)])
    wait_for(lambda: pipeline.stats.errors >= 3, 5, "three failed attempts")
    assert answers == [] and pipeline.pending == 20  # held, not answered, not dropped
    assert pipeline.failing == ["switch"]
    sink.broken.clear()
    assert pipeline.drain(5)
    pipeline.close()
    assert [r.raw for r in sink.records] == [record(i).raw for i in range(20)]
    assert answers == [True]
    assert pipeline.stats.committed == 20 and pipeline.stats.not_stored == 0
    assert lines[0].startswith("sink switch failed: OSError: [Errno 28] No space left on device")
    assert "records wait" in lines[0]
    assert any(line.startswith("sink switch recovered after") for line in lines)
    stats = pipeline.stats_dict()
    assert stats["sinks"][0]["failures"] >= 3 and stats["sinks"][0]["committed"] == 20


def test_a_failing_sink_does_not_stop_the_other_one(tmp_path: Path) -> None:
    broken = Switch()
    broken.broken.set()
    healthy = JsonLinesSink(tmp_path / "out.jsonl")
    lines: list[str] = []
    pipeline = Pipeline([broken, healthy], commit_interval=0.0, tell=lines.append)
    pipeline.start()
    for i in range(5):
        pipeline.submit([record(10 * i + j) for j in range(10)])
    wait_for(
        lambda: len((tmp_path / "out.jsonl").read_bytes().splitlines()) == 50,
        5,
        "the healthy sink to take every batch",
    )
    assert pipeline.pending == 50  # the broken sink has none of them yet
    broken.broken.clear()
    assert pipeline.drain(5)
    pipeline.close()
    assert len(broken.records) == 50


def test_the_listeners_pause_while_a_sink_fails_and_resume_after() -> None:
    sink = Switch()
    sink.broken.set()
    lines: list[str] = []
    pressure: list[bool] = []
    pipeline = Pipeline(
        [sink], commit_interval=0.0, high_water=30, tell=lines.append, pressure=pressure.append
    )
    pipeline.start()
    pipeline.submit([record(i) for i in range(20)])
    wait_for(lambda: pipeline.failing, 5, "the failure")
    pipeline.submit([record(i) for i in range(20, 40)])
    assert pressure == [True] and pipeline.paused
    assert any(line.startswith("stream listeners paused: 40 records wait") for line in lines)
    time.sleep(0.2)
    sink.broken.clear()
    assert pipeline.drain(5)
    pipeline.close()
    assert pressure == [True, False]
    resumed = [line for line in lines if line.startswith("stream listeners resumed after")]
    assert len(resumed) == 1 and pipeline.stats.paused_seconds >= 0.2


def test_closing_with_a_failing_sink_counts_and_tells_what_is_given_up() -> None:
    sink = Switch()
    sink.broken.set()
    lines: list[str] = []
    answers: list[bool] = []
    pipeline = Pipeline([sink], commit_interval=0.0, tell=lines.append)
    pipeline.start()
    pipeline.submit([record(i) for i in range(7)])  # TCP: no answer
    pipeline.submit([record(i) for i in range(3)], answers.append)  # RELP: answered
    started = time.monotonic()
    pipeline.close(timeout=0.5)
    assert 0.4 < time.monotonic() - started < 3
    assert answers == [False]
    assert (pipeline.stats.not_stored, pipeline.stats.unanswered) == (7, 3)
    assert "7 records received over TCP/TLS/UDP were not stored" in lines[-1]
    assert "3 records were never answered" in lines[-1]


def test_a_jsonl_batch_that_fails_is_written_again_whole(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonLinesSink(path)
    sink.write([record(0)])
    sink.flush()
    size = path.stat().st_size
    sink.write([record(1), record(2)])
    sink.reopen()  # between batches: flushes first
    path.rename(tmp_path / "old.jsonl")
    sink.reopen()
    sink.write([record(3)])
    sink.flush()
    sink.close()
    assert (tmp_path / "old.jsonl").stat().st_size > size
    assert len((tmp_path / "old.jsonl").read_bytes().splitlines()) == 3
    assert len(path.read_bytes().splitlines()) == 1


def test_a_failed_commit_leaves_the_store_usable(tmp_path: Path) -> None:
    # a deferred foreign key makes COMMIT itself fail (as a full disk can): the transaction must
    # be rolled back and the next batch go in (before: every later BEGIN failed)
    store = Store(tmp_path / "s.db")
    db = store.files()[-1].connection  # the hot partition's, which the batch goes into
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("CREATE TABLE parent(id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE child(p REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    store.insert([record(0)])
    db.execute("INSERT INTO child VALUES (42)")
    with pytest.raises(sqlite3.IntegrityError):
        store.commit()
    store.rollback()
    store.insert([record(1)])
    store.commit()
    assert [r.raw for r in store.query()] == [record(1).raw]
    store.close()


class RetentionFails(Store):
    """A store whose retention fails (as a locked or full database can make it)."""

    def retain(self, now: float | None = None, *, limit: int = 20000) -> int:
        raise sqlite3.OperationalError("database is locked")


def test_a_retention_error_after_a_commit_does_not_fail_the_batch(tmp_path: Path) -> None:
    store = RetentionFails(tmp_path / "s.db", max_age=3600)
    lines: list[str] = []
    answers: list[bool] = []
    sink = SQLiteSink(store, retain_interval=0.0, tell=lines.append)
    pipeline = Pipeline([sink], commit_interval=0.0, tell=lines.append)
    pipeline.start()
    pipeline.submit([record(i) for i in range(5)], answers.append)
    assert pipeline.drain(5)
    pipeline.close()
    assert answers == [True] and pipeline.stats.errors == 0
    assert sink.stats()["retention_errors"] == 1
    assert any("retention failed after a commit" in line for line in lines)
    reader = Store(tmp_path / "s.db", readonly=True)
    assert reader.count() == 5  # once: a failed batch would have been sent again
    reader.close()


def test_each_sinks_own_counters_are_in_the_stats_and_its_summary_line(tmp_path: Path) -> None:
    from syslogkit.cli.collect import _sink_summary
    from syslogkit.collector import ForwardSink

    server = socket.create_server(("127.0.0.1", 0))  # the kernel accepts: the bytes are sent
    url = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    forward = ForwardSink(url, timeout=2.0)
    store = SQLiteSink(tmp_path / "s.db", max_age=3600.0, retain_interval=0.0)
    pipeline = Pipeline([store, forward], commit_interval=0.0, tell=lambda line: None)
    pipeline.start()
    pipeline.submit([record(i) for i in range(5)])
    assert pipeline.drain(5)
    stats = pipeline.stats_dict()
    pipeline.close()
    server.close()
    entries = {entry["name"]: entry for entry in stats["sinks"]}
    kept = entries[f"store {tmp_path / 's.db'}"]
    assert kept["committed"] == 5 and "retention_deleted" in kept
    sent = entries[f"forward {url}"]
    assert {"sent", "dropped", "maybe_lost", "queued"} <= set(sent)
    line = _sink_summary(kept | {"retention_deleted": 5})
    assert line == f"store {tmp_path / 's.db'}: committed=5 retention_deleted=5"
    assert "maybe_lost=2" in _sink_summary(sent | {"maybe_lost": 2})


class Outbox:
    """A sink that commits in the background and keeps what it took (as the edge's JetStream
    outbox does): its first commit is not confirmed in time."""

    holds_what_it_took = True

    def __init__(self) -> None:
        self.taken: list[Record] = []
        self._batch: list[Record] = []
        self.waits = 0

    def write(self, records: Sequence[Record]) -> None:
        self._batch += records

    def flush(self) -> None:
        self.flush_start()()

    def flush_start(self) -> Callable[[], None]:
        self.taken += self._batch
        self._batch = []

        def wait() -> None:
            self.waits += 1
            if self.waits == 1:
                raise TimeoutError("JetStream did not acknowledge in time")

        return wait

    def close(self) -> None:
        pass


def test_a_sink_that_holds_an_unconfirmed_batch_is_never_given_it_twice() -> None:
    sink = Outbox()
    answers: list[bool] = []
    pipeline = Pipeline([sink], commit_interval=0.0, tell=lambda line: None)
    pipeline.start()
    pipeline.submit([record(i) for i in range(3)], answers.append)
    assert pipeline.drain(5)
    pipeline.submit([record(i) for i in range(3, 5)], answers.append)
    assert pipeline.drain(5)
    pipeline.close()
    assert [r.raw for r in sink.taken] == [record(i).raw for i in range(5)]  # each once
    assert answers == [False, True]  # the first: its RELP session is closed, sent again


class FailsTheFirst:
    """A sink that commits in the background (as the store's writer process does) and cannot
    commit any batch holding the first record (its disk is full then), while a later batch
    handed over meanwhile commits."""

    def __init__(self) -> None:
        self.committed: list[Record] = []
        self._batch: list[Record] = []

    def write(self, records: Sequence[Record]) -> None:
        self._batch += records

    def flush(self) -> None:
        self.flush_start()()

    def flush_start(self) -> Callable[[], None]:
        batch, self._batch = self._batch, []

        def wait() -> None:
            if any(r.raw == record(0).raw for r in batch):
                raise OSError(28, "No space left on device")
            self.committed += batch

        return wait

    def close(self) -> None:
        pass


def test_closing_counts_as_stored_the_batches_committed_after_an_earlier_one_failed() -> None:
    sink = FailsTheFirst()
    lines: list[str] = []
    answers: list[bool] = []
    pipeline = Pipeline([sink], commit_interval=0.0, max_batch=3, tell=lines.append)
    pipeline.submit([record(i) for i in range(3)])  # TCP: fails, retried until the close
    pipeline.submit([record(i) for i in range(3, 6)], answers.append)  # RELP: committed
    pipeline.submit([record(i) for i in range(6, 9)])  # TCP: committed
    pipeline.start()
    wait_for(lambda: len(sink.committed) == 6, 5, "the later batches committed")
    pipeline.close(timeout=0.3)
    assert [r.raw for r in sink.committed] == [record(i).raw for i in range(3, 9)]
    assert answers == [True]
    stats = pipeline.stats
    assert (stats.committed, stats.not_stored, stats.unanswered) == (6, 3, 0)
    assert "3 records received over TCP/TLS/UDP were not stored" in lines[-1], lines
