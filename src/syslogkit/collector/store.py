"""The embedded store: SQLite in WAL mode, full-text search, retention, and the query API.

One writer (the collector's sink thread) inserts batches of records in one transaction each;
any number of readers (`syslogkit tail`, `syslogkit query`) query at the same time.

Every record is kept with its raw bytes and its parse error; a MSG that is not valid UTF-8 is
kept as bytes in `msg_bytes` (SQLite text cannot hold it) next to its decoding with replacement
characters in `msg`, which the full-text index covers.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any

from syslogkit.codec.message import Facility, Severity, SyslogMessage

from .record import Record, sd_from_json, sd_to_json

__all__ = ["Filters", "Store", "StoreError", "StoreProcess", "make_row"]

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    time REAL NOT NULL,
    timestamp TEXT,
    facility INTEGER,
    severity INTEGER,
    version INTEGER,
    hostname TEXT,
    app_name TEXT,
    procid TEXT,
    msgid TEXT,
    sd TEXT,
    msg TEXT,
    msg_bytes BLOB,
    bom INTEGER NOT NULL DEFAULT 0,
    raw BLOB NOT NULL,
    error TEXT,
    transport TEXT,
    peer TEXT,
    listener TEXT,
    tls_subject TEXT,
    tls_fingerprint TEXT,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS messages_time ON messages(time);
CREATE INDEX IF NOT EXISTS messages_host ON messages(hostname, time);
CREATE INDEX IF NOT EXISTS messages_app ON messages(app_name, time);
CREATE INDEX IF NOT EXISTS messages_severity ON messages(severity, time);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts
    USING fts5(msg, content='messages', content_rowid='id');
DROP TRIGGER IF EXISTS messages_ai;
CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, msg) VALUES ('delete', old.id, old.msg);
END;
"""

_COLUMNS = (
    "received_at, time, timestamp, facility, severity, version, hostname, app_name, procid,"
    " msgid, sd, msg, msg_bytes, bom, raw, error, transport, peer, listener, tls_subject,"
    " tls_fingerprint, extra"
)
#: stands for NULL in a row made by `make_row`: the sqlite3 module binds None through its
#: adapter lookup (a tuple, a dict miss, two attribute lookups: about 0.4 us a column, a third
#: of a row's insert), an int directly; the INSERT turns it back into NULL with NULLIF. No
#: nullable column holds -1 otherwise (the text columns hold text, the numbers are >= 0).
_NULL = -1
_NOT_NULL = frozenset({"received_at", "time", "bom", "raw"})
_INSERT = "INSERT INTO messages ({}) VALUES ({})".format(
    _COLUMNS,
    ", ".join("?" if name in _NOT_NULL else f"NULLIF(?, {_NULL})" for name in _COLUMNS.split(", ")),
)
_INSERT_FTS = (
    "INSERT INTO messages_fts(rowid, msg) SELECT id, msg FROM messages WHERE id >= ? AND msg <> ''"
)
_SELECT = f"SELECT id, {_COLUMNS} FROM messages"
#: marshal format 2 has no object references: a third cheaper to write than the default (4)
#: for a batch of rows, read as fast, slightly longer
_MARSHAL_VERSION = 2


class StoreError(Exception):
    """The store cannot be opened or used (missing file, not a syslogkit store, ...)."""


@dataclass
class Filters:
    """What `Store.query` selects. Every filter that is set must match.

    `severity` keeps messages at or above that importance (rsyslog's `*.warning`: emerg ..
    warning, i.e. numerically <= 4). `since`/`until` bound the message time (its timestamp, or
    the time it was received when it had none), as epoch seconds. `search` is an FTS5 query on
    the message text (a plain word or phrase works as is).
    """

    since: float | None = None
    until: float | None = None
    hosts: Sequence[str] = ()
    apps: Sequence[str] = ()
    severity: int | None = None
    facilities: Sequence[int] = ()
    search: str | None = None
    errors_only: bool = False
    transports: Sequence[str] = ()
    after_id: int | None = None
    extra_where: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.after_id is not None:
            clauses.append("id > ?")
            args.append(self.after_id)
        if self.since is not None:
            clauses.append("time >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("time < ?")
            args.append(self.until)
        for column, values in (
            ("hostname", self.hosts),
            ("app_name", self.apps),
            ("facility", self.facilities),
            ("transport", self.transports),
        ):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        if self.severity is not None:
            clauses.append("severity <= ?")
            args.append(int(self.severity))
        if self.errors_only:
            clauses.append("error IS NOT NULL")
        if self.search:
            clauses.append("id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)")
            args.append(self.search)
        for clause, clause_args in self.extra_where:
            clauses.append(clause)
            args.extend(clause_args)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


_iso_seconds: dict[tuple[int, tzinfo], tuple[str, str]] = {}


def _isoformat(ts: datetime, when: float) -> str:
    """`ts.isoformat()`, with the text up to the second remembered per second and offset: the
    messages of a batch mostly share both, and `isoformat` costs several times more."""
    tz = ts.tzinfo
    if type(tz) is not timezone:  # a zone with DST: the same instant may read two ways
        return ts.isoformat()
    us = ts.microsecond
    key = (round(when - us / 1e6), tz)  # whole seconds: exact, whatever the float's precision
    parts = _iso_seconds.get(key)
    if parts is None:
        text = ts.replace(microsecond=0).isoformat()
        parts = (text[:19], text[19:])  # YYYY-MM-DDTHH:MM:SS, then the offset
        if len(_iso_seconds) >= 4096:
            _iso_seconds.clear()
        _iso_seconds[key] = parts
    if us:
        return f"{parts[0]}.{us:06d}{parts[1]}"
    return parts[0] + parts[1]


def _row(record: Record) -> tuple[Any, ...]:
    n = _NULL
    m = record.message
    tls_subject: Any = record.tls_subject
    tls_fingerprint: Any = record.tls_fingerprint
    if tls_subject is None:
        tls_subject = n
    if tls_fingerprint is None:
        tls_fingerprint = n
    msg_bytes: Any = record.msg_bytes
    if msg_bytes is None:
        msg_bytes = n
    error: Any = record.error
    if error is None:
        error = n
    if m is None:
        at = record.received_at
        return (at, at, n, n, n, n, n, n, n, n, n, n, msg_bytes, 0, record.raw, error,
                record.transport, record.peer, record.listener, tls_subject, tls_fingerprint,
                n)  # fmt: skip
    ts = m.timestamp
    timestamp: Any
    if ts is not None:
        try:
            when = ts.timestamp()
        except (OverflowError, OSError, ValueError):
            when = record.received_at
            timestamp = ts.isoformat()
        else:
            timestamp = _isoformat(ts, when)
    else:
        timestamp = n
        when = record.received_at
    facility = m.facility
    severity = m.severity
    version = m.version
    hostname = m.hostname
    app_name = m.app_name
    procid = m.procid
    msgid = m.msgid
    msg = m.msg
    return (
        record.received_at,
        when,
        timestamp,
        n if facility is None else int(facility),  # a plain int binds twice as fast
        n if severity is None else int(severity),
        n if version is None else version,
        n if hostname is None else hostname,
        n if app_name is None else app_name,
        n if procid is None else procid,
        n if msgid is None else msgid,
        sd_to_json(m.structured_data) if m.structured_data else n,
        n if msg is None else msg,
        msg_bytes,
        1 if m.bom else 0,
        record.raw,
        error,
        record.transport,
        record.peer,
        record.listener,
        tls_subject,
        tls_fingerprint,
        json.dumps(m.extra, ensure_ascii=False, default=str) if m.extra else n,
    )


#: a record as the row `Store.insert_rows` takes: plain values, `_NULL` for NULL
make_row = _row


def _record(row: sqlite3.Row | tuple[Any, ...]) -> Record:
    (
        rowid,
        received_at,
        _time,
        timestamp,
        facility,
        severity,
        version,
        hostname,
        app_name,
        procid,
        msgid,
        sd,
        msg,
        msg_bytes,
        bom,
        raw,
        error,
        transport,
        peer,
        listener,
        tls_subject,
        tls_fingerprint,
        extra,
    ) = row
    message: SyslogMessage | None = None
    parsed = not (
        timestamp is None
        and facility is None
        and severity is None
        and version is None
        and hostname is None
        and app_name is None
        and msg is None
        and error is not None
    )
    if parsed:
        message = SyslogMessage(
            facility=None if facility is None else Facility(facility),
            severity=None if severity is None else Severity(severity),
            version=version,
            timestamp=None if timestamp is None else datetime.fromisoformat(timestamp),
            hostname=hostname,
            app_name=app_name,
            procid=procid,
            msgid=msgid,
            structured_data=sd_from_json(sd),
            msg=msg,
            bom=bool(bom),
            raw=bytes(raw),
            extra=json.loads(extra) if extra else None,
        )
    return Record(
        raw=bytes(raw),
        received_at=received_at,
        transport=transport,
        peer=peer,
        listener=listener,
        message=message,
        error=error,
        msg_bytes=None if msg_bytes is None else bytes(msg_bytes),
        tls_subject=tls_subject,
        tls_fingerprint=tls_fingerprint,
        id=rowid,
    )


class Store:
    """A syslogkit SQLite store.

    `Store(path)` opens (and creates) it for writing; `Store(path, readonly=True)` for reading
    only, which fails with `StoreError` when the file does not exist. Writes go through
    `insert()` and `commit()` from one thread; `retain()` deletes what is older than `max_age`
    seconds or beyond `max_bytes` of content, oldest first.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        synchronous: str = "NORMAL",
        max_age: float | None = None,
        max_bytes: int | None = None,
        check_same_thread: bool = False,
    ) -> None:
        self.path = str(path)
        self.readonly = readonly
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.deleted = 0
        if readonly:
            if self.path != ":memory:" and not Path(self.path).exists():
                raise StoreError(f"no store at {self.path}")
            uri = f"file:{Path(self.path).resolve()}?mode=ro"
            try:
                self._db = sqlite3.connect(
                    uri, uri=True, timeout=10.0, check_same_thread=check_same_thread
                )
                self._db.execute("SELECT 1 FROM messages LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: not a syslogkit store ({exc})") from exc
            return
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=check_same_thread
            )
            db = self._db
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only effective on a new file
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if self.path != ":memory:" and str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            db.execute("PRAGMA temp_store=MEMORY")
            db.execute("BEGIN IMMEDIATE")
            for statement in _split(_SCHEMA):
                db.execute(statement)
            db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc})") from exc
        self._in_tx = False
        self._next_id = 1
        self._last_retain = 0.0

    # -- writing ---------------------------------------------------------------------------------

    def insert(self, records: Iterable[Record]) -> None:
        """Insert records in the current transaction (opened if needed)."""
        self.insert_rows([_row(record) for record in records])

    def insert_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows made by `make_row` in the current transaction (opened if needed)."""
        if not rows:
            return
        db = self._db
        if not self._in_tx:
            db.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            self._next_id = int(db.execute("SELECT max(id) FROM messages").fetchone()[0] or 0) + 1
        first = self._next_id
        # ids are max(id) + 1 onwards, as SQLite assigns them (one writer): the rows go in as
        # they are, and the full-text index is filled in bulk from the table with one statement
        # (a trigger per row costs four times as much, an executemany twice as much)
        db.executemany(_INSERT, rows)
        self._next_id = first + len(rows)
        db.execute(_INSERT_FTS, (first,))

    def commit(self) -> None:
        """Commit what was inserted; after this the records survive a crash of the process."""
        if self._in_tx:
            self._in_tx = False
            self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._in_tx:
            self._in_tx = False
            self._db.execute("ROLLBACK")

    def retain(self, now: float | None = None, *, limit: int = 20000) -> int:
        """Apply the retention limits; returns how many messages were deleted (at most `limit`)."""
        if self.max_age is None and self.max_bytes is None:
            return 0
        now = time.time() if now is None else now
        db = self._db
        deleted = 0
        self.commit()
        db.execute("BEGIN IMMEDIATE")
        try:
            if self.max_age is not None:
                cur = db.execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                    " WHERE id < coalesce((SELECT id FROM messages WHERE received_at >= ?"
                    " ORDER BY id LIMIT 1), (SELECT max(id) + 1 FROM messages))"
                    " ORDER BY id LIMIT ?)",
                    (now - self.max_age, limit),
                )
                deleted += cur.rowcount
            if self.max_bytes is not None and deleted < limit:
                pages, free, size = (
                    db.execute("PRAGMA page_count").fetchone()[0],
                    db.execute("PRAGMA freelist_count").fetchone()[0],
                    db.execute("PRAGMA page_size").fetchone()[0],
                )
                used = (pages - free) * size
                if used > self.max_bytes:
                    count = db.execute("SELECT count(*) FROM messages").fetchone()[0]
                    # delete down to 90% of the limit, estimated from the mean row size
                    excess = used - int(self.max_bytes * 0.9)
                    n = min(limit - deleted, max(1, -(-count * excess // max(used, 1))))
                    cur = db.execute(
                        "DELETE FROM messages WHERE id IN"
                        " (SELECT id FROM messages ORDER BY id LIMIT ?)",
                        (n,),
                    )
                    deleted += cur.rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if deleted:
            db.execute("PRAGMA incremental_vacuum")
        self.deleted += deleted
        return deleted

    def maybe_retain(self, interval: float = 5.0) -> int:
        """`retain()` at most once per `interval` seconds."""
        now = time.monotonic()
        if now - self._last_retain < interval:
            return 0
        self._last_retain = now
        return self.retain()

    def close(self) -> None:
        """Commit and close (checkpointing the WAL into the database file)."""
        try:
            if not self.readonly:
                self.commit()
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()

    # -- reading ---------------------------------------------------------------------------------

    def query(
        self,
        filters: Filters | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Record]:
        """The records that match, oldest first (or the newest first)."""
        return list(self.iter_query(filters, limit=limit, newest_first=newest_first))

    def iter_query(
        self,
        filters: Filters | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
        _quoted: bool = False,
    ) -> Iterator[Record]:
        filters = filters or Filters()
        where, args = filters.where()
        order = " ORDER BY id DESC" if newest_first else " ORDER BY id"
        sql = _SELECT + where + order
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        try:
            cursor = self._db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            if filters.search and not _quoted:
                # not valid FTS5 syntax: search for the text as one phrase
                quoted = '"' + filters.search.replace('"', '""') + '"'
                phrase = Filters(**{**filters.__dict__, "search": quoted})
                yield from self.iter_query(
                    phrase, limit=limit, newest_first=newest_first, _quoted=True
                )
                return
            raise StoreError(str(exc)) from exc
        for row in cursor:
            yield _record(row)

    def count(self, filters: Filters | None = None) -> int:
        where, args = (filters or Filters()).where()
        return int(self._db.execute("SELECT count(*) FROM messages" + where, args).fetchone()[0])

    def last_id(self) -> int:
        row = self._db.execute("SELECT max(id) FROM messages").fetchone()
        return int(row[0] or 0)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the writer in a process of its own ------------------------------------------------------


class StoreProcess:
    """The writing side of a `Store` in a child process (`python -m syslogkit.collector.store`).

    Building rows is done here; SQLite's work (B-trees, indexes, full-text tokenizing) runs in
    the child, in parallel with the collector's parsing instead of competing with it for the
    GIL: about twice the ingest rate on two cores. `write(rows)` sends one batch, the child
    inserts and commits it and answers; an answer means committed. Rows travel with `marshal`
    (tuples of str, bytes, int, float and None) over the child's stdin/stdout.

    The child ignores SIGINT and SIGTERM (the collector decides when it stops: it closes the
    pipe) and exits when the pipe closes, also when the collector was killed: a batch that was
    not answered is not committed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_age: float | None = None,
        max_bytes: int | None = None,
        synchronous: str = "NORMAL",
        retain_interval: float = 5.0,
        timeout: float = 60.0,
    ) -> None:
        self.path = str(path)
        self.config = {
            "path": self.path,
            "max_age": max_age,
            "max_bytes": max_bytes,
            "synchronous": synchronous,
            "retain_interval": retain_interval,
        }
        self.timeout = timeout
        self.deleted = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._start()

    def _start(self) -> None:
        self._stderr.seek(0)
        self._stderr.truncate()
        root = str(Path(__file__).resolve().parents[2])  # the folder that holds syslogkit/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore::RuntimeWarning:runpy",  # "found in sys.modules": harmless here
                "-m",
                "syslogkit.collector.store",
                json.dumps(self.config),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,  # a file: a pipe nobody reads could fill up and block it
            env=env,
            close_fds=True,
        )
        reply = self._receive()
        if reply[0] != "ready":
            self._reap()
            raise StoreError(str(reply[1]))

    def _send(self, message: Any) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise StoreError("the store's writer process is not running")
        data = marshal.dumps(message, _MARSHAL_VERSION)
        try:
            proc.stdin.write(struct.pack("<I", len(data)) + data)
            proc.stdin.flush()
        except (OSError, ValueError) as exc:
            self._reap()
            raise StoreError(f"the store's writer process died ({exc})") from None

    def _receive(self) -> Any:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        head = proc.stdout.read(4)
        if len(head) < 4:
            self._reap()
            self._stderr.seek(0)
            err = self._stderr.read()[-4000:]
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise StoreError(f"the store's writer process died: {lines[-1] if lines else '?'}")
        (size,) = struct.unpack("<I", head)
        return marshal.loads(proc.stdout.read(size))

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert and commit one batch; returns once it is committed. Restarts a dead child."""
        self.start(rows)()

    def start(self, rows: Sequence[tuple[Any, ...]]) -> Callable[[], None]:
        """Send one batch; the returned function waits until it is committed (or raises).

        One batch at a time: call the function before the next `start`.
        """
        if self._proc is None:
            self._start()
        self._send(list(rows))
        return self._finish

    def _finish(self) -> None:
        reply = self._receive()
        if reply[0] != "ok":
            raise StoreError(str(reply[1]))
        self.deleted = int(reply[2])

    def close(self) -> None:
        """Let the child checkpoint and close the database, and wait for it."""
        if self._proc is None:
            return
        with contextlib.suppress(StoreError):
            self._send(None)
            self._receive()
        self._reap()
        self._stderr.close()


def _writer_main(config_json: str) -> int:
    """The child of `StoreProcess`: batches in on stdin, answers out on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = json.loads(config_json)
    source = sys.stdin.buffer
    sink = sys.stdout.buffer

    def answer(message: Any) -> None:
        data = marshal.dumps(message)
        sink.write(struct.pack("<I", len(data)) + data)
        sink.flush()

    try:
        store = Store(
            config["path"],
            max_age=config["max_age"],
            max_bytes=config["max_bytes"],
            synchronous=config["synchronous"],
        )
    except (StoreError, sqlite3.Error, OSError, ValueError) as exc:
        answer(("error", str(exc)))
        return 1
    answer(("ready",))
    interval = float(config["retain_interval"])
    while True:
        head = source.read(4)
        if len(head) < 4:
            store.rollback()
            store.close()
            return 0
        (size,) = struct.unpack("<I", head)
        rows = marshal.loads(source.read(size))
        if rows is None:
            store.close()
            answer(("closed",))
            return 0
        try:
            store.insert_rows(rows)
            store.commit()
            store.maybe_retain(interval)
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                store.rollback()
            answer(("error", f"{type(exc).__name__}: {exc}"))
            continue
        answer(("ok", len(rows), store.deleted))


def _split(script: str) -> list[str]:
    """The statements of the schema (triggers hold semicolons, so split on `END;` too)."""
    out: list[str] = []
    buf = ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        stripped = line.strip()
        if stripped == "END;" or (stripped.endswith(";") and "BEGIN" not in buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


if __name__ == "__main__":
    sys.exit(_writer_main(sys.argv[1]))
