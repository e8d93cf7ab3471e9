"""Every read the web makes of the store, in one place.

Decisions:

- The page reads through `StoreReader` only, and `StoreReader` through the store's public
  surface (`Store(path, readonly=True)`, `Store.query`, `Store.last_id`, `Filters.where()`), so
  that when the store changes shape (a package, then one SQLite file per period) the web
  follows by changing this module alone.
- The aggregates the store has no method for yet (histogram buckets, facet counts, the time
  span, the full-text syntax check) are SQL written here, on a read-only connection of this
  module's own, always with the store's own WHERE clause (`Filters.where()`) and `?`
  parameters: nothing a request carries is ever spliced into SQL text. They are meant to move
  into the store in one step.
- Each thread gets its own pair of connections (the server answers from a thread pool): SQLite
  connections are not shared between threads here.
- A full-text query that is not valid FTS5 syntax raises `SearchError` with SQLite's reason.
  `Store.query` would silently search the text as a phrase instead; a page should say so.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from syslogkit.collector import Filters, Record, Store, StoreError

__all__ = ["Histogram", "SearchError", "StoreError", "StoreReader"]

#: the series of a histogram: severities 0..7, and messages that have none (unparsed)
NO_SEVERITY = 8


class SearchError(ValueError):
    """The full-text query is not valid FTS5 syntax; the text says why."""


@dataclass(frozen=True)
class Histogram:
    """Message counts per time bucket and severity: `counts[severity][i]` for the bucket that
    starts at `start + i * step` (severity `NO_SEVERITY` for messages without one)."""

    start: float
    step: float
    buckets: int
    counts: dict[int, list[int]]

    @property
    def total(self) -> int:
        return sum(sum(series) for series in self.counts.values())


class _Connections(threading.local):
    store: Store | None = None
    sql: sqlite3.Connection | None = None


class StoreReader:
    """Read-only access to a store at `path` for the web (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = _Connections()
        self._opened: list[Store | sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._store()  # fail now (StoreError) when there is no store at `path`

    # -- connections ------------------------------------------------------------------------------

    def _store(self) -> Store:
        store = self._local.store
        if store is None:
            store = Store(self.path, readonly=True)
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    def _sql(self) -> sqlite3.Connection:
        db = self._local.sql
        if db is None:
            uri = "file:" + quote(str(Path(self.path).resolve())) + "?mode=ro"
            try:
                db = sqlite3.connect(uri, uri=True, timeout=10.0, check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot open the store ({exc})") from exc
            self._local.sql = db
            with self._lock:
                self._opened.append(db)
        return db

    def _rows(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._sql().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    # -- checks -----------------------------------------------------------------------------------

    def check_search(self, search: str | None) -> None:
        """Raise `SearchError` when `search` is not a valid FTS5 query."""
        if not search:
            return
        try:
            self._sql().execute(
                "SELECT count(*) FROM (SELECT rowid FROM messages_fts"
                " WHERE messages_fts MATCH ? LIMIT 1)",
                (search,),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise SearchError(str(exc)) from None

    # -- records ----------------------------------------------------------------------------------

    def page(self, filters: Filters, *, before: int | None, limit: int) -> list[Record]:
        """Up to `limit` matching records, newest first, with ids below `before` when given."""
        self.check_search(filters.search)
        if before is not None:
            filters = replace(filters, extra_where=[*filters.extra_where, ("id < ?", (before,))])
        return self._store().query(filters, limit=limit, newest_first=True)

    def after(self, filters: Filters, after_id: int, *, up_to: int, limit: int) -> list[Record]:
        """Matching records with `after_id < id <= up_to`, oldest first (the live tail)."""
        self.check_search(filters.search)
        filters = replace(
            filters, after_id=after_id, extra_where=[*filters.extra_where, ("id <= ?", (up_to,))]
        )
        return self._store().query(filters, limit=limit)

    def detail(self, record_id: int) -> Record | None:
        found = self._store().query(Filters(extra_where=[("id = ?", (record_id,))]), limit=1)
        return found[0] if found else None

    def export(self, filters: Filters) -> Iterator[Record]:
        """Every matching record, newest first, read as it is written out.

        On a connection of its own, closed at the end: the caller may step through it from
        different threads (a streamed answer does).
        """
        self.check_search(filters.search)
        store = Store(self.path, readonly=True)
        try:
            yield from store.iter_query(filters, newest_first=True)
        finally:
            store.close()

    def last_id(self) -> int:
        return self._store().last_id()

    # -- aggregates -------------------------------------------------------------------------------

    def histogram(self, filters: Filters, *, start: float, step: float, buckets: int) -> Histogram:
        """Counts of the matching messages per `step` seconds from `start`, by severity."""
        self.check_search(filters.search)
        where, args = filters.where()
        rows = self._rows(
            "SELECT CAST((time - ?) / ? AS INTEGER) AS bucket, severity, count(*) FROM messages"
            + where
            + " GROUP BY bucket, severity",
            [start, step, *args],
        )
        counts: dict[int, list[int]] = {}
        for bucket, severity, n in rows:
            if 0 <= bucket < buckets:
                key = NO_SEVERITY if severity is None else int(severity)
                counts.setdefault(key, [0] * buckets)[bucket] += n
        return Histogram(start=start, step=step, buckets=buckets, counts=counts)

    def facets(self, filters: Filters, *, limit: int = 10) -> dict[str, list[tuple[str, int]]]:
        """The most frequent hosts and apps among the matching messages, with their counts."""
        self.check_search(filters.search)
        where, args = filters.where()
        out: dict[str, list[tuple[str, int]]] = {}
        for name, column in (("hosts", "hostname"), ("apps", "app_name")):
            rows = self._rows(
                f"SELECT {column}, count(*) FROM messages{where}"
                f" GROUP BY {column} ORDER BY 2 DESC, 1 LIMIT ?",
                [*args, limit],
            )
            out[name] = [(value, int(n)) for value, n in rows if value is not None]
        return out

    def time_span(self, filters: Filters) -> tuple[float, float] | None:
        """The oldest and newest message time among the matching messages (None: no match)."""
        self.check_search(filters.search)
        where, args = filters.where()
        rows = self._rows("SELECT min(time), max(time) FROM messages" + where, args)
        low, high = rows[0]
        return None if low is None else (float(low), float(high))
