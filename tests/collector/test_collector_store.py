"""The SQLite store, the record form and the sinks, without the network."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syslogkit.codec.message import Facility, SDElement, Severity, SyslogMessage
from syslogkit.collector import (
    Filters,
    JsonLinesSink,
    Pipeline,
    Record,
    SQLiteSink,
    StdoutSink,
    Store,
    StoreError,
    format_human,
    parse_frame,
    record_to_dict,
)
from syslogkit.collector.store import make_row, partition_files

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))


def make_record(
    msg: str = "hello",
    *,
    host: str = "web1",
    app: str = "nginx",
    severity: Severity = Severity.INFO,
    timestamp: datetime | None = T0,
    received_at: float | None = None,
    raw: bytes | None = None,
) -> Record:
    message = SyslogMessage(
        facility=Facility.LOCAL3,
        severity=severity,
        version=1,
        timestamp=timestamp,
        hostname=host,
        app_name=app,
        procid="42",
        msgid="ID7",
        structured_data=(
            SDElement("a@32473", (("k", 'quote " and ] \\'), ("k", "again"))),
            SDElement("a@32473", ()),
        ),
        msg=msg,
    )
    return Record(
        raw=raw if raw is not None else f"<155>1 - {host} {app} 42 ID7 - {msg}".encode(),
        received_at=time.time() if received_at is None else received_at,
        transport="tls",
        peer="127.0.0.1:40000",
        listener="tls://127.0.0.1:6514",
        message=message,
        tls_subject="CN=client.syslogkit.test",
        tls_fingerprint="sha-256:AA:BB",
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s.db")
    yield s
    s.close()


def test_round_trip_keeps_every_field(store: Store, tmp_path: Path) -> None:
    record = make_record("héllo wörld")
    store.insert([record])
    store.commit()
    reader = Store(tmp_path / "s.db", readonly=True)
    [back] = reader.query()
    reader.close()
    assert back.message == record.message
    assert back.message is not None and record.message is not None
    assert back.message.timestamp == T0
    assert back.message.timestamp.utcoffset() == timedelta(hours=2)
    assert back.raw == record.raw
    assert back.transport == "tls" and back.peer == "127.0.0.1:40000"
    assert back.tls_subject == "CN=client.syslogkit.test"
    assert back.tls_fingerprint == "sha-256:AA:BB"
    assert back.error is None and back.id == 1


def test_nil_fields_are_sql_null_and_text_minus_one_stays_text(
    store: Store, tmp_path: Path
) -> None:
    raw = b"<13>1 - - -1 - - - -1"
    message, error, msg_bytes = parse_frame(raw)
    assert message is not None and error is None
    record = Record(raw, time.time(), "udp", "p", "udp://x:1", message, error, msg_bytes)
    store.insert([record])
    store.commit()
    [back] = store.query()
    assert back.message == message
    assert back.message is not None and back.message.app_name == "-1"
    assert back.message.msg == "-1" and back.message.hostname is None
    assert back.tls_subject is None and back.error is None and back.msg_bytes is None
    db = sqlite3.connect(partition_files(tmp_path / "s.db")[0])
    row = db.execute(
        "SELECT typeof(hostname), typeof(app_name), typeof(timestamp), typeof(sd),"
        " typeof(tls_subject), typeof(extra) FROM messages"
    ).fetchone()
    db.close()
    assert row == ("null", "text", "null", "null", "null", "null")


def test_schema_is_wal_with_indexes_and_fts(store: Store, tmp_path: Path) -> None:
    db = sqlite3.connect(partition_files(tmp_path / "s.db")[0])
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "messages_time" in names
    # dropped in schema 2 (a third of an insert; bench/query.py answers without them)
    assert not {"messages_host", "messages_app", "messages_severity"} & names
    assert "messages_fts" in names
    db.close()


def test_non_utf8_msg_is_kept_as_bytes(store: Store) -> None:
    raw = b"<13>1 2026-01-01T00:00:00Z h a - - - caf\xe9 \xff end"
    message, error, msg_bytes = parse_frame(raw)
    assert message is not None
    assert msg_bytes == b"caf\xe9 \xff end"
    record = Record(raw, time.time(), "udp", "p", "udp://x:1", message, error, msg_bytes)
    store.insert([record])
    store.commit()
    [back] = store.query()
    assert back.msg_bytes == b"caf\xe9 \xff end"
    assert back.raw == raw
    as_json = record_to_dict(back)
    assert base64.b64decode(as_json["msg_b64"]) == b"caf\xe9 \xff end"
    assert base64.b64decode(as_json["raw_b64"]) == raw
    assert "raw" not in as_json
    json.dumps(as_json)  # serialisable


def test_unparseable_frame_is_stored_with_its_error(store: Store) -> None:
    raw = bytes(range(256))
    message, error, msg_bytes = parse_frame(raw)
    assert error  # the strict parse error is recorded
    record = Record(raw, time.time(), "tcp", "p", "tcp://x:1", message, error, msg_bytes)
    store.insert([record])
    store.commit()
    [back] = store.query(Filters(errors_only=True))
    assert back.raw == raw and back.error == error


def test_filters(store: Store) -> None:
    now = time.time()
    store.insert(
        [
            make_record("disk full on sda", host="db1", app="kernel", severity=Severity.CRIT),
            make_record("user logged in", host="web1", app="sshd", severity=Severity.INFO),
            make_record("config reloaded", host="web2", app="nginx", severity=Severity.WARNING),
            make_record("no time", host="web2", app="nginx", timestamp=None, received_at=now),
        ]
    )
    store.commit()

    def msgs(**kw: object) -> list[str]:
        return [r.message.msg for r in store.query(Filters(**kw)) if r.message and r.message.msg]

    assert msgs(hosts=["web1", "db1"]) == ["disk full on sda", "user logged in"]
    assert msgs(apps=["nginx"]) == ["config reloaded", "no time"]
    # at or above warning, as rsyslog's *.warning: emerg..warning
    assert msgs(severity=Severity.WARNING) == ["disk full on sda", "config reloaded"]
    assert msgs(search="disk") == ["disk full on sda"]
    assert msgs(search="logged AND user") == ["user logged in"]
    assert msgs(search='"unbalanced') == []  # not FTS5 syntax: searched as a phrase
    assert msgs(facilities=[int(Facility.LOCAL3)], hosts=["web2"]) == [
        "config reloaded",
        "no time",
    ]
    t0 = T0.timestamp()
    assert msgs(since=t0 - 1, until=t0 + 1) == [
        "disk full on sda",
        "user logged in",
        "config reloaded",
    ]
    assert msgs(since=now - 5) == ["no time"]  # no timestamp: the time it was received
    assert msgs(after_id=3) == ["no time"]
    assert [r.id for r in store.query(limit=2, newest_first=True)] == [4, 3]
    assert store.count(Filters(apps=["nginx"])) == 2


def test_retention_by_age_deletes_whole_partitions(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db", max_age=3600)
    now = time.time()
    store.insert([make_record(f"old {i}", received_at=now - 7200 + i) for i in range(50)])
    store.commit()
    assert store.retain(now) == 0  # the hot partition is never deleted
    store.seal()  # sealing applies retention: the old partition goes, whole
    assert store.deleted == 50 and store.deleted_files == 1
    store.insert([make_record(f"new {i}", received_at=now - 10 + i) for i in range(5)])
    store.commit()
    assert len(partition_files(tmp_path / "r.db")) == 1
    assert [r.message.msg for r in store.query() if r.message] == [f"new {i}" for i in range(5)]
    assert [r.id for r in store.query()] == [51, 52, 53, 54, 55]  # ids go on across partitions
    assert store.query(Filters(search="old")) == []
    assert store.deleted == 50 and store.deleted_young == 0
    store.close()


def du(path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.iterdir())


def test_retention_by_size_keeps_the_folder_under_the_cap_wal_included(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = Store(path, max_bytes=400_000, partition_bytes=40_000, max_age=3600)
    largest = 0
    for chunk in range(40):
        store.insert([make_record(f"{chunk}-{i} " + "x" * 500) for i in range(20)])
        store.commit()
        largest = max(largest, du(path))
    assert largest <= 400_000 + 40_000  # within one partition of the cap, side files counted
    assert store.size() == du(path)
    remaining = store.query()
    assert remaining and remaining[-1].message and remaining[-1].message.msg.startswith("39-19 ")
    assert store.deleted > 0 and store.deleted + len(remaining) == 40 * 20
    assert store.deleted_young == store.deleted  # all of them younger than the age limit
    assert remaining[0].id == store.deleted + 1  # oldest went first, nothing in between
    store.close()


def test_make_room_deletes_the_oldest_partitions_until_enough_is_freed(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = Store(path)
    for chunk in range(4):
        store.insert([make_record(f"{chunk}-{i} " + "x" * 500) for i in range(20)])
        store.seal()
    sizes = [f.stat().st_blocks * 512 for f in partition_files(path)]
    assert store.make_room(sizes[0] + 1) == 40  # the two oldest
    assert store.query(limit=1)[0].id == 41
    assert store.make_room(10**12) == 40  # never the hot one
    assert store.deleted == 80 and len(partition_files(path)) == 1
    store.close()


def test_readonly_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store(tmp_path / "nothing.db", readonly=True)
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        Store(tmp_path / "junk.db", readonly=True)


def test_json_lines_sink_is_lossless(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonLinesSink(path)
    raw = b"<13>1 - h a - - - bin\x00\xff"
    message, error, msg_bytes = parse_frame(raw)
    sink.write([make_record("text"), Record(raw, 1.0, "udp", "p", "u", message, error, msg_bytes)])
    sink.close()
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert lines[0]["msg"] == "text" and lines[0]["hostname"] == "web1"
    assert lines[0]["structured_data"][0] == {
        "id": "a@32473",
        "params": [["k", 'quote " and ] \\'], ["k", "again"]],
    }
    assert lines[0]["timestamp"] == T0.isoformat()
    assert base64.b64decode(lines[1]["raw_b64"]) == raw
    assert base64.b64decode(lines[1]["msg_b64"]) == b"bin\x00\xff"
    assert lines[1]["received_at"] == "1970-01-01T00:00:01.000000+00:00"


def test_stdout_sink_and_colour() -> None:
    out = io.StringIO()
    sink = StdoutSink(out, color=False)
    sink.write([make_record("two\nlines", severity=Severity.ERR)])
    sink.flush()
    line = out.getvalue()
    assert line.count("\n") == 1 and "two\\nlines" in line and " err:" in line
    assert "web1 nginx[42]" in line and "\x1b[" not in line
    assert format_human(make_record(severity=Severity.ERR), color=True).startswith("\x1b[91m")


def test_pipeline_commits_then_calls_back(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "p.db")
    seen: list[tuple[bool, int]] = []
    reader_path = tmp_path / "p.db"
    reader = Store(reader_path, readonly=True)
    pipeline = Pipeline([sink], commit_interval=0.01)
    pipeline.start()

    def done(ok: bool) -> None:
        # committed before the callback runs: another connection sees the rows
        seen.append((ok, reader.count()))

    pipeline.submit([make_record(str(i)) for i in range(10)], done)
    assert pipeline.drain(10)
    pipeline.close()
    assert seen == [(True, 10)]
    assert pipeline.stats.committed == 10
    reader.close()


def test_writer_process(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    sink = SQLiteSink(path, process=True)
    assert sink.writer is not None
    sink.write([make_record(f"in a child {i}") for i in range(100)])
    sink.flush()  # returns once committed by the child
    reader = Store(path, readonly=True)
    assert reader.count() == 100
    back = reader.query(Filters(search="child"), limit=1)[0]
    assert back.message == make_record("in a child 0").message
    # a child that dies is noticed and replaced: the batch goes to the new one
    proc = sink.writer._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    sink.write([make_record("sent to a dead child")])
    sink.flush()
    sink.write([make_record("after the restart")])
    sink.flush()
    assert sink.stats()["writer_restarts"] == 1
    sink.close()
    assert [r.message.msg for r in reader.query(Filters(after_id=100)) if r.message] == [
        "sent to a dead child",
        "after the restart",
    ]
    reader.close()


def test_writer_process_reports_a_bad_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteSink(tmp_path / "no" / "such" / "dir.db", process=True)


def test_parse_frame_puts_the_transport_notes_before_the_parse_error() -> None:
    clean = b"<13>1 2026-01-01T00:00:00Z h a - - - cut short"
    message, error, _ = parse_frame(clean, None, "framing: truncated")
    assert message is not None and message.msg == "cut short"
    assert error == "framing: truncated"
    message, error, _ = parse_frame(b"<999>garbage", "cut off", "framing: truncated")
    assert error is not None and error.startswith("cut off; framing: truncated; ")
    assert "column" in error  # the strict parse error follows the notes
    assert parse_frame(clean, None) == parse_frame(clean)


#: the schema of a 0.1 store (schema 1): structured data as JSON, four indexes
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY, received_at REAL NOT NULL, time REAL NOT NULL, timestamp TEXT,
    facility INTEGER, severity INTEGER, version INTEGER, hostname TEXT, app_name TEXT,
    procid TEXT, msgid TEXT, sd TEXT, msg TEXT, msg_bytes BLOB, bom INTEGER NOT NULL DEFAULT 0,
    raw BLOB NOT NULL, error TEXT, transport TEXT, peer TEXT, listener TEXT, tls_subject TEXT,
    tls_fingerprint TEXT, extra TEXT
);
CREATE INDEX messages_time ON messages(time);
CREATE INDEX messages_host ON messages(hostname, time);
CREATE INDEX messages_app ON messages(app_name, time);
CREATE INDEX messages_severity ON messages(severity, time);
CREATE VIRTUAL TABLE messages_fts USING fts5(msg, content='messages', content_rowid='id');
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, msg) VALUES ('delete', old.id, old.msg);
END;
INSERT INTO meta VALUES ('schema', '1');
INSERT INTO messages (received_at, time, timestamp, facility, severity, version, hostname,
    app_name, procid, msgid, sd, msg, bom, raw, transport, peer, listener)
    VALUES (1.5, 1767323045.0, '2026-01-02T03:04:05+00:00', 1, 5, 1, 'old', 'app', '-1', NULL,
    '[["ex@1",[["a","q\\"uote"]]]]', 'written by 0.1', 0,
    X'3c31333e3120', 'tcp', 'p', 'tcp://l');
INSERT INTO messages_fts(rowid, msg) VALUES (1, 'written by 0.1');
"""


def test_a_store_of_0_1_is_read_and_becomes_the_oldest_partition_when_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()
    with Store(path, readonly=True) as old:
        (record,) = old.query(Filters(search="written"))
    assert record.message is not None and record.message.hostname == "old"
    assert record.message.structured_data == (SDElement("ex@1", (("a", 'q"uote'),)),)
    with Store(path) as store:  # opened for writing: schema 5, the old rows as they were
        store.insert([make_record("written by 0.2")])
        store.commit()
        assert [r.message.msg for r in store.query(Filters(search="written")) if r.message] == [
            "written by 0.1",
            "written by 0.2",
        ]
    assert path.is_dir() and [p.name for p in partition_files(path)] == ["p000000000001.db"]
    with Store(path, readonly=True) as reader:
        assert [r.id for r in reader.query()] == [1, 2]
    db = sqlite3.connect(partition_files(path)[0])
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("5",)
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "messages_time" in names and "messages_host" not in names
    db.close()


# -- rollups (per-minute counts by severity, host and app) ----------------------------------------


def rollup_counts(path: Path) -> dict[str, dict[tuple[int, object], int]]:
    db = sqlite3.connect(path)
    out = {
        table: {(m, v): n for m, v, n in db.execute(f"SELECT * FROM {table}")}
        for table in ("rollup_severity", "rollup_host", "rollup_app")
    }
    db.close()
    return out


def counted_from_messages(path: Path) -> dict[str, dict[tuple[int, object], int]]:
    """What the rollups must hold, counted from the messages (minute = floor(time / 60))."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT time, severity, hostname, app_name FROM messages").fetchall()
    db.close()
    out: dict[str, dict[tuple[int, object], int]] = {
        "rollup_severity": {},
        "rollup_host": {},
        "rollup_app": {},
    }
    for when, severity, host, app in rows:
        minute = int(when // 60)
        for table, value in (
            ("rollup_severity", -1 if severity is None else severity),
            ("rollup_host", host),
            ("rollup_app", app),
        ):
            if value is not None:
                out[table][minute, value] = out[table].get((minute, value), 0) + 1
    return out


def varied_records(now: float, count: int) -> list[Record]:
    """Records over the last two hours, several hosts, apps and severities, some unparsed, some
    on a minute's exact boundary."""
    records = []
    for i in range(count):
        when = now - 7200 + i * 7200 / count
        if i % 10 == 0:
            when = (when // 60) * 60  # on the boundary
        stamp = datetime.fromtimestamp(when, timezone.utc)
        records.append(
            make_record(
                f"m {i}",
                host=f"h{i % 3}",
                app=f"a{i % 4}",
                severity=Severity(i % 8),
                timestamp=stamp,
                received_at=when,
            )
        )
        if i % 17 == 0:  # unparsed: no host, app or severity; its time is when it was received
            records.append(Record(b"\x00junk", when + 1, "udp", "p", "udp://x:1", None, "bad"))
    return records


def rollups_exact(path: Path) -> bool:
    """Every partition's rollups equal the counts of its messages."""
    return all(rollup_counts(p) == counted_from_messages(p) for p in partition_files(path))


def test_rollups_equal_the_counts_of_the_messages_after_inserts_and_retention(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.db"
    now = time.time()
    store = Store(path)
    records = varied_records(now, 1000)
    for start in range(0, len(records), 97):  # batches across minutes
        store.insert(records[start : start + 97])
        store.commit()
        if start % 3 == 0:
            store.seal()
    assert rollups_exact(path)
    assert sum(
        sum(rollup_counts(p)["rollup_severity"].values()) for p in partition_files(path)
    ) == len(records)
    store.max_age = 3600
    deleted = store.retain(now)
    assert 0 < deleted < len(records)
    assert store.count() == len(records) - deleted
    assert rollups_exact(path)
    assert all(
        n > 0 for p in partition_files(path) for t in rollup_counts(p).values() for n in t.values()
    )
    store.close()


def test_a_store_without_rollups_gets_them_built_when_opened_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    records = varied_records(time.time(), 300)
    with Store(path) as store:
        store.insert(records)
        store.commit()
    db = sqlite3.connect(partition_files(path)[0])  # as a schema-2 writer leaves it
    for table in ("rollup_severity", "rollup_host", "rollup_app"):
        db.execute(f"DROP TABLE {table}")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    db.commit()
    db.close()
    with Store(path) as store:
        store.insert([make_record("after the upgrade")])
        store.commit()
    [part] = partition_files(path)
    assert rollup_counts(part) == counted_from_messages(part)
    assert sum(rollup_counts(part)["rollup_severity"].values()) == len(records) + 1


# -- partitions: a folder of files read as one -----------------------------------------------------


def partitioned(tmp_path: Path, sizes: list[int]) -> Store:
    """A store whose partitions hold `sizes` messages, oldest first (the last one hot)."""
    store = Store(tmp_path / "parts.db")
    n = 0
    for i, size in enumerate(sizes):
        store.insert(
            [make_record(f"m{n + j} {'even' if (n + j) % 2 == 0 else 'odd'}") for j in range(size)]
        )
        n += size
        store.commit()
        if i < len(sizes) - 1:
            store.seal()
    return store


def test_partitions_read_as_one_store_in_id_order_both_ways(tmp_path: Path) -> None:
    store = partitioned(tmp_path, [3, 4, 0, 5])  # sealing an empty hot one begins none
    assert len(partition_files(tmp_path / "parts.db")) == 3
    reader = Store(tmp_path / "parts.db", readonly=True)
    for s in (store, reader):
        assert [r.id for r in s.query()] == list(range(1, 13))
        assert [r.id for r in s.query(newest_first=True, limit=7)] == list(range(12, 5, -1))
        assert [r.id for r in s.query(Filters(search="even"), newest_first=True, limit=4)] == [
            11,
            9,
            7,
            5,
        ]
        assert [r.id for r in s.query(Filters(after_id=8), limit=3)] == [9, 10, 11]
        assert s.count() == 12 and s.count(Filters(search="odd")) == 6
        assert s.count(Filters(after_id=5)) == 7
        assert s.last_id() == 12
    reader.close()
    store.close()


def test_last_id_of_a_store_whose_hot_partition_is_empty(tmp_path: Path) -> None:
    store = partitioned(tmp_path, [3, 4])
    store.seal()  # a new, empty hot partition: p000000000008.db
    assert partition_files(tmp_path / "parts.db")[-1].name == "p000000000008.db"
    with Store(tmp_path / "parts.db", readonly=True) as reader:
        assert reader.last_id() == 7
    store.insert([make_record("next")])
    store.commit()
    assert [r.id for r in store.query(newest_first=True, limit=1)] == [8]
    store.close()


def test_a_reader_keeps_reading_while_partitions_come_and_go(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    store = Store(path, max_bytes=400_000, partition_bytes=40_000)
    reader = Store(path, readonly=True)
    seen: list[int] = []
    last = 0
    for chunk in range(30):
        store.insert([make_record(f"{chunk}-{i} " + "x" * 500) for i in range(20)])
        store.commit()
        new = reader.query(Filters(after_id=last), limit=1000)  # as `tail` follows
        seen += [r.id for r in new if r.id is not None]
        last = seen[-1]
    assert seen == list(range(1, 30 * 20 + 1))  # every id once, in order
    assert store.deleted > 0 and reader.count() == 600 - store.deleted
    reader.close()
    store.close()


def test_an_interrupted_upgrade_of_a_single_file_store_is_finished_on_open(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    db.executescript(V1_SCHEMA)
    db.close()
    old.rename(tmp_path / "old.db.partitioning")  # a crash after the rename
    with Store(old) as store:
        assert [r.message.msg for r in store.query() if r.message] == ["written by 0.1"]
    assert not (tmp_path / "old.db.partitioning").exists()
    assert [p.name for p in partition_files(old)] == ["p000000000001.db"]


def test_sink_tells_when_the_size_cap_deletes_messages_younger_than_the_age(
    tmp_path: Path,
) -> None:
    told: list[str] = []
    store = Store(tmp_path / "t.db", max_bytes=200_000, partition_bytes=20_000, max_age=86400)
    sink = SQLiteSink(store, tell=told.append, tell_interval=0.0)
    for chunk in range(20):
        sink.write([make_record(f"{chunk}-{i} " + "x" * 500) for i in range(20)])
        sink.flush()
    sink.close()
    counts = sink.stats()
    deleted, young = counts["retention_deleted"], counts["retention_deleted_young"]
    assert deleted > 0 and young == deleted
    assert told and all("younger than the retention age" in line for line in told)
    assert f"({young} in all)" in told[-1]


def test_writer_process_counts_what_retention_deleted(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    old = time.time() - 7200
    with Store(path) as store:  # two sealed partitions of 10 old messages, then the hot one
        for chunk in range(2):
            store.insert([make_record(f"{chunk}-{i}", received_at=old) for i in range(10)])
            store.seal()
    sink = SQLiteSink(path, process=True, max_age=3600, retain_interval=0.0)
    sink.write([make_record(f"hot {i}") for i in range(5)])
    sink.flush()
    stats = sink.stats()
    assert stats["retention_deleted"] == 20 and stats["retention_deleted_young"] == 0
    sink.close()
    with Store(path, readonly=True) as reader:
        assert reader.count() == 5


def test_a_second_writer_of_the_same_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.db"
    with Store(path):
        with pytest.raises(StoreError, match="another collector"):
            Store(path)
        with Store(path, readonly=True) as reader:  # readers are welcome
            assert reader.count() == 0
    Store(path).close()  # released with the first one


def test_partitions_sort_by_their_first_id_past_twelve_digits(tmp_path: Path) -> None:
    folder = tmp_path / "big.db"
    folder.mkdir()
    for first in (999_999_999_999, 1_000_000_000_000, 5):
        name = f"p{first:012d}.db"
        with sqlite3.connect(folder / name) as db:
            db.executescript(V1_SCHEMA)
    assert [p.name for p in partition_files(folder)] == [
        "p000000000005.db",
        "p999999999999.db",
        "p1000000000000.db",
    ]


def test_readers_never_fail_while_the_writer_seals_and_deletes_partitions(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "busy.db"
    writer = Store(path, max_bytes=2_000_000, partition_bytes=200_000)
    rows = [make_row(make_record(f"word{i} " + "x" * 300)) for i in range(200)]
    writer.insert_rows(rows)
    writer.commit()
    errors: list[str] = []
    rounds = [0, 0]
    stop = time.monotonic() + 3.0

    def read(which: int) -> None:
        reader = Store(path, readonly=True)
        while time.monotonic() < stop:
            try:
                page = reader.query(Filters(search="word5"), limit=50, newest_first=True)
                ids = [r.id for r in page]
                assert ids == sorted(ids, reverse=True), ids
                last = reader.last_id()
                follow = [r.id for r in reader.query(Filters(after_id=max(0, last - 300)))]
                assert follow == sorted(follow), follow
                reader.count()
            except Exception as exc:
                errors.append(repr(exc))
            rounds[which] += 1
        reader.close()

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    while time.monotonic() < stop:
        writer.insert_rows(rows)
        writer.commit()
    for t in threads:
        t.join()
    assert writer.deleted > 0 and writer.deleted_files > 5
    assert errors == [] and min(rounds) > 0
    writer.close()


# -- no second copy of the message (schema 5) -----------------------------------------------------

_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@pytest.fixture(scope="module")
def round_trip_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with Store(tmp_path_factory.mktemp("rt") / "s.db") as store:
        yield store


@settings(max_examples=150, deadline=None)
@given(
    head=st.binary(max_size=30),
    msg=_texts,
    tail=st.binary(max_size=3),
    bad=st.booleans(),
)
def test_raw_is_given_back_byte_for_byte_whether_or_not_it_ends_with_the_message(
    round_trip_store: Store, head: bytes, msg: str, tail: bytes, bad: bool
) -> None:
    """Any frame (bytes before MSG, MSG, maybe bytes after it; a MSG not valid UTF-8 kept in
    msg_bytes) reads back as received, with msg and msg_bytes as they were."""
    raw = head + msg.encode() + tail
    msg_bytes = (b"\xff\xfe" + msg.encode()) if bad else None
    message = SyslogMessage(
        facility=Facility.USER, severity=Severity.INFO, version=1, timestamp=None,
        hostname="h", app_name=None, procid=None, msgid=None, structured_data=(), msg=msg,
    )  # fmt: skip
    record = Record(raw or b"x", 1.0, "tcp", "p", "tcp://l", message, None, msg_bytes)
    store = round_trip_store
    store.insert([record])
    store.commit()
    [back] = store.query(newest_first=True, limit=1)
    assert back.raw == record.raw
    assert back.msg_bytes == msg_bytes
    assert back.message is not None and back.message.msg == msg


def test_a_frame_that_ends_with_its_message_is_stored_without_a_second_copy(
    tmp_path: Path,
) -> None:
    text = "the message text " * 20
    record = make_record(text)
    with Store(tmp_path / "s.db") as store:
        store.insert([record])
        store.commit()
        [back] = store.query()
    assert back.raw == record.raw and back.msg_bytes is None
    db = sqlite3.connect(partition_files(tmp_path / "s.db")[0])
    stored, marker = db.execute("SELECT raw, msg_bytes FROM messages").fetchone()
    db.close()
    assert record.raw.endswith(text.encode())
    assert bytes(stored) == record.raw[: -len(text.encode())] and bytes(marker) == b""
