"""The store's side of exactly-once from JetStream: a message's identity (`origin`) committed
with its rows, looked up with one indexed read whatever the store holds, forgotten with its
rows by retention; and the one definition of NULL and of a message's time."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from syslogkit.codec.message import SyslogMessage
from syslogkit.collector import Record, SQLiteSink, Store
from syslogkit.collector.nats.source import store_check
from syslogkit.collector.record import NULL, message_time
from syslogkit.collector.store import partition_files
from syslogkit.collector.store.schema import SCHEMA_VERSION, make_row

AT = 1_700_000_000.0


def line(text: str, received_at: float = AT) -> Record:
    return Record(
        raw=f"<14>1 - h app - - - {text}".encode(),
        received_at=received_at,
        transport="tcp",
        peer="127.0.0.1",
        listener="tcp://127.0.0.1:5514",
        message=None,
    )


def message(msg_id: str, count: int, received_at: float = AT) -> list[Record]:
    """The records of one JetStream message, as the source hands them over."""
    records = [line(f"{msg_id} {i}", received_at) for i in range(count)]
    records[-1].origin = (msg_id, count)
    return records


def test_an_origin_is_committed_with_its_rows_and_rolled_back_with_them(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        store.insert(message("edge-1", 3))
        store.rollback()
        assert not store.has_origin("edge-1") and store.count() == 0
        store.insert(message("edge-1", 3))
        store.insert(message("edge-2", 2))
        store.commit()
        assert store.has_origin("edge-1") and store.has_origin("edge-2")
        assert not store.has_origin("edge-3")
        assert store.count() == 5
    with Store(tmp_path / "s.db", readonly=True) as reader:
        assert reader.has_origin("edge-2")


def test_the_redelivery_check_is_one_primary_key_lookup_whatever_the_store_holds(
    tmp_path: Path,
) -> None:
    # 20,000 rows sharing one timestamp (the old content check cost 5.5 s per 2,000-record
    # message against them: one SELECT per record on the time index)
    path = tmp_path / "s.db"
    with Store(path) as store:
        for n in range(10):
            store.insert(message(f"edge-{n}", 2000))
        store.commit()
    plan = sqlite3.connect(partition_files(path)[-1]).execute(
        "EXPLAIN QUERY PLAN SELECT 1 FROM origins WHERE msg_id = ?", ("edge-3",)
    )
    assert "PRIMARY KEY" in " ".join(str(row[-1]) for row in plan)
    holds = store_check(str(path))
    started = time.perf_counter()
    found = [holds(f"edge-{n}") for n in range(20)]
    took = time.perf_counter() - started
    assert found == [True] * 10 + [False] * 10
    assert took < 0.5, took  # measured: about 0.2 ms for the 20 lookups


def test_retention_forgets_an_origin_with_the_partition_of_its_rows(tmp_path: Path) -> None:
    now = time.time()
    with Store(tmp_path / "s.db", max_age=60) as store:
        store.insert(message("old", 2, received_at=now - 3600))
        store.commit()
        assert store.has_origin("old")
        store.seal()  # sealing applies retention: the partition of "old" goes whole
        store.insert(message("new", 2, received_at=now))
        store.commit()
        assert store.deleted == 2
        assert not store.has_origin("old") and store.has_origin("new")


def test_the_writer_process_commits_the_origins_of_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sink = SQLiteSink(path, process=True)
    sink.write([line("no origin"), *message("edge-9", 4)])
    sink.flush()
    sink.close()
    with Store(path, readonly=True) as reader:
        assert reader.count() == 5
        assert reader.has_origin("edge-9") and not reader.has_origin("edge-8")


def test_a_store_of_the_previous_schema_gets_the_origins_table_when_opened_for_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with Store(path) as store:
        store.insert([line("before")])
        store.commit()
    db = sqlite3.connect(partition_files(path)[0])  # as a schema-3 writer leaves it
    db.execute("DROP TABLE origins")
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    db.commit()
    db.close()
    with Store(path, readonly=True) as reader:
        assert not reader.has_origin("edge-1")  # read as it is: no table, nothing held
    with Store(path) as store:
        store.insert(message("edge-1", 1))
        store.commit()
        assert store.has_origin("edge-1")
    db = sqlite3.connect(partition_files(path)[0])
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (SCHEMA_VERSION,)
    db.close()


@pytest.mark.parametrize(
    "text",
    [
        b"<14>1 2026-01-02T03:04:05.5+02:00 h app - - - zoned",
        b"<14>1 - h app - - - no timestamp",
        b"no PRI at all",
    ],
)
def test_the_stored_time_is_the_one_definition_of_a_message_time(text: bytes) -> None:
    from syslogkit.collector import parse_frame

    parsed, error, _ = parse_frame(text)
    record = Record(
        raw=text, received_at=AT, transport="tcp", peer="p", listener="l", message=parsed,
        error=error,
    )  # fmt: skip
    row = make_row(record)
    assert row[1] == message_time(parsed, AT)
    assert NULL in row  # the sentinel every row builder uses


def test_message_time_is_the_timestamp_else_the_time_received() -> None:
    from datetime import datetime, timezone

    stamped = SyslogMessage(timestamp=datetime(2026, 1, 2, tzinfo=timezone.utc))
    assert message_time(stamped, AT) == stamped.timestamp.timestamp()  # type: ignore[union-attr]
    assert message_time(SyslogMessage(), AT) == AT
    assert message_time(None, AT) == AT


def test_retention_deletes_unparsed_rows_also_in_a_store_written_by_the_old_trigger(
    tmp_path: Path,
) -> None:
    # a kept undecodable JetStream message, like any unparsed row, has no MSG and is not in
    # the full-text index: deleting it from there made retention fail ("malformed")
    path = tmp_path / "s.db"
    now = time.time()
    with Store(path) as store:
        store.insert([line("x", received_at=now - 3600)])
        store.commit()
    db = sqlite3.connect(partition_files(path)[0])  # the trigger as stores had it before
    db.executescript(
        "DROP TRIGGER messages_ad;"
        " CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN"
        " INSERT INTO messages_fts(messages_fts, rowid, msg) VALUES ('delete', old.id, old.msg);"
        " END;"
    )
    db.close()
    unparsed = Record(
        raw=b"\x00not syslog", received_at=now - 3600, transport="nats", peer="s.x",
        listener="nats://n/S/d", message=None, error="nats: undecodable message",
    )  # fmt: skip
    with Store(path, max_age=60) as store:
        store.insert([unparsed])
        store.seal()  # retention deletes the partition whole: no DELETE, no trigger
        store.insert([line("kept", received_at=now)])
        store.commit()
        assert store.deleted == 2
        assert store.count() == 1
