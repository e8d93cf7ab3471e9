"""One SQLite file of the store (`StoreFile`): WAL mode, full-text search, the query API.

A store is a folder of such files, one per period (`partitions.Store`); a store of an earlier
version is one such file. One writer (the collector's sink thread, or the writer process)
inserts batches of records in one transaction each; any number of readers (`syslogkit tail`,
`syslogkit query`) query at the same time.

Origins (the store's side of exactly-once from JetStream, `collector.nats.source`): the narrow
API is `insert_rows(rows, origins=[(msg_id, count), ...])`, which records each origin in the
transaction of the rows (a message is stored with its identity or not at all), and
`has_origin(msg_id)`, one lookup on the primary key of `origins`. In a store of several files
(`partitions.Store`) the origins live in the file of their rows (the hot one, in the same
transaction) and go with it when retention deletes it; `Store.has_origin` asks each file.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..record import Record
from . import rollup
from .query import Filters
from .schema import (
    INSERT,
    INSERT_FTS,
    INSERT_ORIGIN,
    INSERT_WITH_ID,
    ROLLUP_VERSIONS,
    SCHEMA,
    SCHEMA_VERSION,
    SELECT,
    make_row,
    record_from_row,
    statements,
)

__all__ = ["Origin", "StoreError", "StoreFile", "create_file"]

#: a JetStream message's identity (`Nats-Msg-Id`) and how many records it carried
Origin = tuple[str, int]


class StoreError(Exception):
    """The store cannot be opened or used (missing file, not a syslogkit store, ...)."""


def create_file(path: str | Path) -> None:
    """A new, empty file with the schema (not in WAL mode, not synced: it holds nothing yet),
    to be renamed into place and opened by `StoreFile`."""
    try:
        with contextlib.closing(sqlite3.connect(str(path), isolation_level=None)) as db:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("BEGIN")
            for statement in statements(SCHEMA):
                db.execute(statement)
            db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
            db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot make a store file ({exc})") from exc


def _schema_of(db: sqlite3.Connection) -> str | None:
    """The schema version a file was written with (None: a new file, or not a store)."""
    try:
        found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if found is None else str(found[0])


class StoreFile:
    """One SQLite file of a store: a partition, or a whole store of an earlier version.

    `StoreFile(path)` opens (and creates) it for writing; `StoreFile(path, readonly=True)` for
    reading only, which fails with `StoreError` when the file does not exist. Writes go through
    `insert()` and `commit()` from one thread. `first_id` is the id of the first row inserted
    into an empty file (a partition continues the ids of the one before it).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        synchronous: str = "NORMAL",
        check_same_thread: bool = False,
        first_id: int = 1,
    ) -> None:
        self.path = str(path)
        self.readonly = readonly
        self.first_id = first_id
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
                with contextlib.suppress(AttributeError):
                    self._db.close()
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
            # the WAL is cut back to this size after a checkpoint (else it keeps its largest
            # size on disk, which counts in the store's size)
            db.execute("PRAGMA journal_size_limit=4194304")
            db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            db.execute("PRAGMA temp_store=MEMORY")
            if _schema_of(db) != SCHEMA_VERSION:  # else nothing to write: opens on a full disk
                db.execute("BEGIN IMMEDIATE")
                for statement in statements(SCHEMA):
                    db.execute(statement)
                found = _schema_of(db)
                if found not in ROLLUP_VERSIONS:
                    rollup.rebuild(db)  # written by another version (or new): counted once, here
                db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)",
                    (SCHEMA_VERSION,),
                )
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(AttributeError, sqlite3.Error):
                self._db.close()  # else its files stay open (and taken) until collected
            raise StoreError(f"{self.path}: cannot open the store ({exc})") from exc
        self._in_tx = False
        self._next_id = 1

    @property
    def in_transaction(self) -> bool:
        """Whether rows were inserted and not yet committed."""
        return self._in_tx

    @property
    def connection(self) -> sqlite3.Connection:
        """The file's SQLite connection (for the aggregates of `web.source` and the NATS
        store's identity table: used from the thread that opened it)."""
        return self._db

    # -- writing ---------------------------------------------------------------------------------

    def insert(self, records: Iterable[Record]) -> None:
        """Insert records in the current transaction (opened if needed), with the origins the
        records carry (`Record.origin`)."""
        records = list(records)
        origins = [o for r in records if (o := r.origin) is not None]
        self.insert_rows([make_row(record) for record in records], origins)

    def insert_rows(self, rows: Sequence[tuple[Any, ...]], origins: Sequence[Origin] = ()) -> None:
        """Insert rows made by `make_row` in the current transaction (opened if needed), and
        the `origins` of these rows: (JetStream message id, record count) each, committed
        with them (`has_origin`)."""
        if not rows:
            return
        db = self._db
        if not self._in_tx:
            db.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            last = db.execute("SELECT max(id) FROM messages").fetchone()[0]
            self._next_id = self.first_id if last is None else int(last) + 1
        first = self._next_id
        # ids are max(id) + 1 onwards, as SQLite assigns them (one writer): the rows go in as
        # they are, and the full-text index is filled in bulk from the table with one statement
        # (a trigger per row costs four times as much, an executemany twice as much). The first
        # row of an empty file is given its id, which the next ones continue.
        if first == self.first_id and first != 1:
            db.execute(INSERT_WITH_ID, (first, *rows[0]))
            db.executemany(INSERT, rows[1:])
        else:
            db.executemany(INSERT, rows)
        self._next_id = first + len(rows)
        db.execute(INSERT_FTS, (first,))
        rollup.add_rows(db, rows)
        if origins:
            last = self._next_id - 1
            db.executemany(INSERT_ORIGIN, [(msg_id, count, last) for msg_id, count in origins])

    def has_origin(self, msg_id: str) -> bool:
        """Whether the records of the JetStream message `msg_id` are committed here (one
        lookup on the primary key; False in a store written before version 4)."""
        try:
            row = self._db.execute("SELECT 1 FROM origins WHERE msg_id = ?", (msg_id,)).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return False
            raise
        return row is not None

    def commit(self) -> None:
        """Commit what was inserted; after this the records survive a crash of the process.

        A COMMIT that fails leaves the transaction to `rollback()` (SQLite may have rolled it
        back already, on a full disk for instance, or kept it open)."""
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        """Undo what was inserted since the last commit (nothing when nothing was)."""
        if self._in_tx:
            self._in_tx = False
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database and cut it to nothing (its space goes
        back to the filesystem)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self, *, seal: bool = False) -> None:
        """Commit and close (checkpointing the WAL into the database file). `seal`: the file
        is written no more; it leaves WAL mode when no reader has it open, so that it is one
        file without side files (a reader holding it keeps it in WAL mode: harmless)."""
        try:
            if not self.readonly:
                self.commit()
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    if seal:
                        self._db.execute("PRAGMA journal_mode=DELETE")
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
        sql = SELECT + where + order
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
            yield record_from_row(row)

    def count(self, filters: Filters | None = None) -> int:
        where, args = (filters or Filters()).where()
        return int(self._db.execute("SELECT count(*) FROM messages" + where, args).fetchone()[0])

    def last_id(self) -> int:
        row = self._db.execute("SELECT max(id) FROM messages").fetchone()
        return int(row[0] or 0)

    def __enter__(self) -> StoreFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
