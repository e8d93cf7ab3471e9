"""The embedded store: SQLite in WAL mode, full-text search, retention, and the query API.

One writer (the collector's sink thread, or the writer process) inserts batches of records in
one transaction each; any number of readers (`syslogkit tail`, `syslogkit query`) query at the
same time.

Origins (the store's side of exactly-once from JetStream, `collector.nats.source`): the narrow
API is `insert_rows(rows, origins=[(msg_id, count), ...])`, which records each origin in the
transaction of the rows (a message is stored with its identity or not at all), and
`has_origin(msg_id)`, one lookup on the primary key of `origins`. Retention forgets an origin
with the last row of the insert that wrote it. A store split into several files must keep
both promises: the origin committed atomically with every row of its message, and one
indexed lookup to find it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
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
    SCHEMA,
    SCHEMA_VERSION,
    SELECT,
    make_row,
    record_from_row,
    statements,
)

__all__ = ["Origin", "Store", "StoreError"]

#: a JetStream message's identity (`Nats-Msg-Id`) and how many records it carried
Origin = tuple[str, int]
#: versions whose rollups are those of this one (4 only added `origins`): kept, not rebuilt
_SAME_ROLLUPS = ("3", SCHEMA_VERSION)


class StoreError(Exception):
    """The store cannot be opened or used (missing file, not a syslogkit store, ...)."""


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
            for statement in statements(SCHEMA):
                db.execute(statement)
            found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is None or found[0] not in _SAME_ROLLUPS:
                rollup.rebuild(db)  # written by another version (or new): counted once, here
            db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc})") from exc
        self._in_tx = False
        self._next_id = 1
        self._last_retain = 0.0

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
            self._next_id = int(db.execute("SELECT max(id) FROM messages").fetchone()[0] or 0) + 1
        first = self._next_id
        # ids are max(id) + 1 onwards, as SQLite assigns them (one writer): the rows go in as
        # they are, and the full-text index is filled in bulk from the table with one statement
        # (a trigger per row costs four times as much, an executemany twice as much)
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

    # -- the free-space floor (`syslogkit collect --min-free`) -----------------------------------

    def free_bytes(self) -> int:
        """Bytes free for this process on the store's filesystem."""
        folder = Path(self.path).resolve().parent if self.path != ":memory:" else Path(".")
        st = os.statvfs(folder)
        return int(st.f_bavail * st.f_frsize)

    def ensure_free(self, min_free: int) -> tuple[int, str | None]:
        """Keep `min_free` bytes free on the store's filesystem before writing: with a
        retention size set, delete the oldest messages to make room (through `make_room`).
        Returns (messages deleted, a line to tell or None); raises `StoreError` while the free
        space stays below the floor (nothing is written: the batch waits)."""
        free = self.free_bytes()
        if free >= 2 * min_free:
            return 0, None
        # near the floor: the write-ahead log's space back to the disk first, so that the
        # batch's growth of the log starts from nothing
        self._checkpoint()
        free = self.free_bytes()
        if free >= min_free:
            return 0, None
        deleted = 0
        if free < min_free and self.max_bytes is not None:
            deleted = self.make_room(min_free - free)
            free = self.free_bytes()
        note = (
            f"store {self.path}: less than {min_free} bytes free: deleted the {deleted} oldest"
            f" messages to make room ({free} bytes free now)"
            if deleted
            else None
        )
        if free < min_free:
            raise StoreError(
                f"{free} bytes free for the store, below --min-free {min_free}:"
                " not writing until there is room"
                + (f" (deleted the {deleted} oldest messages)" if deleted else "")
            )
        return deleted, note

    def make_room(self, nbytes: int, *, chunk: int = 2000) -> int:
        """Delete the oldest messages until about `nbytes` more are free on the filesystem,
        through the retention API, `chunk` messages at a time (each deletion goes through the
        write-ahead log: on a nearly full disk it must stay small); returns how many."""
        if self.max_bytes is None:
            return 0
        goal = self.free_bytes() + nbytes
        deleted = 0
        for _ in range(10_000):
            if self.free_bytes() >= goal:
                break
            db = self._db
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            used = (pages - free) * db.execute("PRAGMA page_size").fetchone()[0]
            limit, self.max_bytes = self.max_bytes, max(0, min(self.max_bytes, used - nbytes))
            try:
                n = self.retain(limit=chunk)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot delete the oldest messages to make room: {exc}") from exc
            finally:
                self.max_bytes = limit
            self._vacuum()
            if not n:
                break
            deleted += n
        return deleted

    def _vacuum(self, pages: int = 256) -> None:
        """Give the free pages back to the filesystem, `pages` at a time with a checkpoint
        after each (moving pages goes through the write-ahead log: on a nearly full disk it
        must stay small). Stops at the first error: what is left free is reused by SQLite."""
        db = self._db
        for _ in range(100_000):
            if not db.execute("PRAGMA freelist_count").fetchone()[0]:
                break
            try:  # a script runs to the end: through `execute` one step frees one page only
                db.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
            except sqlite3.Error:
                break
            self._checkpoint()
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database and cut it to nothing (its space and the
        pages a vacuum freed go back to the filesystem)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
                row = db.execute(
                    "SELECT max(id) FROM (SELECT id FROM messages"
                    " WHERE id < coalesce((SELECT id FROM messages WHERE received_at >= ?"
                    " ORDER BY id LIMIT 1), (SELECT max(id) + 1 FROM messages))"
                    " ORDER BY id LIMIT ?)",
                    (now - self.max_age, limit),
                ).fetchone()
                if row[0] is not None:
                    deleted += self._delete_up_to(int(row[0]))
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
                    row = db.execute(
                        "SELECT max(id) FROM (SELECT id FROM messages ORDER BY id LIMIT ?)", (n,)
                    ).fetchone()
                    if row[0] is not None:
                        deleted += self._delete_up_to(int(row[0]))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a full disk may have rolled it back already
                db.execute("ROLLBACK")
            raise
        if deleted:
            db.execute("PRAGMA incremental_vacuum")
        self.deleted += deleted
        return deleted

    def _delete_up_to(self, last: int) -> int:
        """Delete the messages with `id <= last` and their counts in the rollups (retention
        deletes the oldest first: always such a prefix of the ids)."""
        rollup.subtract_ids(self._db, last)
        self._db.execute("DELETE FROM origins WHERE last_id <= ?", (last,))
        return int(self._db.execute("DELETE FROM messages WHERE id <= ?", (last,)).rowcount)

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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
