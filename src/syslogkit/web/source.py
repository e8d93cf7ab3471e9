"""Every read the web makes of the store, in one place.

Decisions:

- The page reads through `StoreReader` only, and `StoreReader` through the store's public
  surface (`Store(path, readonly=True)`, `Store.query`, `Store.last_id`, `Store.files()`,
  `Filters.where()`), so that when the store changes shape the web follows by changing this
  module alone.
- The store is a folder of SQLite files, one per period (`collector.store.partitions`).
  Records are read through `Store.query`, which walks them as one store. The aggregates the
  store has no method for yet (histogram buckets, facet counts, the time span, the full-text
  syntax check) are SQL written here, run on each file's read-only connection
  (`Store.files()`) and added up, always with the store's own WHERE clause (`Filters.where()`)
  and `?` parameters: nothing a request carries is ever spliced into SQL text. They are meant
  to move into the store in one step.
- Each thread gets its own `Store` (the server answers from a thread pool): SQLite
  connections are not shared between threads here. Its connections to the files are closed
  at the end of each call (`Store.release`): a thread left idle would otherwise hold files
  that retention deleted since, and their space on disk with them.
- A full-text query that is not valid FTS5 syntax raises `SearchError` with SQLite's reason.
  `Store.query` would silently search the text as a phrase instead; a page should say so.
- Histogram and facets over a time range with no other filter read the store's per-minute
  rollups (`syslogkit.collector.store.rollup`: ~1,440 rows a day per severity, host or app
  instead of every message), plus the messages of the partial minutes at either end of the
  range, counted exactly, in one read transaction per file: the counts equal those of the
  exact query (each file holds its own rollups: a file deleted by retention takes its counts
  with it). A store whose rollups are not kept (schema other than 3: written by another version,
  or not yet opened by a writer of this one) is counted the exact way.
- The exact way, with a search, lets the full-text match drive the join (`messages_fts CROSS
  JOIN messages`) instead of `id IN (...)`, and the facets count (host, app) pairs in one pass.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from syslogkit.collector import Filters, Record, Store, StoreError
from syslogkit.collector.store import rollup
from syslogkit.collector.store.schema import ROLLUP_VERSIONS

__all__ = ["Histogram", "SearchError", "StoreError", "StoreReader"]

#: the series of a histogram: severities 0..7, and messages that have none (unparsed)
NO_SEVERITY = 8
#: what a histogram or a time span may be taken of (column names, never from a request)
_TIME_COLUMNS = ("time", "received_at")


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
    depth = 0  # calls of this reader under way in this thread


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_call(
    method: Callable[Concatenate[StoreReader, _P], _R],
) -> Callable[Concatenate[StoreReader, _P], _R]:
    """A public read: the thread's connections to the files are let go when it ends."""

    def call(self: StoreReader, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._reading():
            return method(self, *args, **kwargs)

    call.__name__, call.__doc__ = method.__name__, method.__doc__
    return call


class StoreReader:
    """Read-only access to a store at `path` for the web (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = _Connections()
        self._opened: list[Store] = []
        self._lock = threading.Lock()
        with self._reading():  # fail now (StoreError) when there is no store at `path`
            pass

    # -- connections ------------------------------------------------------------------------------

    def _store(self) -> Store:
        store = self._local.store
        if store is None:
            store = Store(self.path, readonly=True)
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Store]:
        """This thread's store for one call; its files are let go when the outermost call ends."""
        local = self._local
        local.depth += 1
        try:
            yield self._store()
        finally:
            local.depth -= 1
            if local.depth == 0 and local.store is not None:
                local.store.release()

    def _files(self) -> list[sqlite3.Connection]:
        """A read-only connection to each file of the store, oldest first."""
        try:
            return [part.connection for part in self._store().files()]
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    @staticmethod
    def _rows(db: sqlite3.Connection, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    # -- checks -----------------------------------------------------------------------------------

    @_one_call
    def check_search(self, search: str | None) -> None:
        """Raise `SearchError` when `search` is not a valid FTS5 query."""
        if not search:
            return
        files = self._files()
        if not files:
            return
        try:
            files[-1].execute(
                "SELECT count(*) FROM (SELECT rowid FROM messages_fts"
                " WHERE messages_fts MATCH ? LIMIT 1)",
                (search,),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise SearchError(str(exc)) from None

    # -- records ----------------------------------------------------------------------------------

    @_one_call
    def page(self, filters: Filters, *, before: int | None, limit: int) -> list[Record]:
        """Up to `limit` matching records, newest first, with ids below `before` when given."""
        self.check_search(filters.search)
        if before is not None:
            filters = replace(filters, extra_where=[*filters.extra_where, ("id < ?", (before,))])
        return self._store().query(filters, limit=limit, newest_first=True)

    @_one_call
    def after(self, filters: Filters, after_id: int, *, up_to: int, limit: int) -> list[Record]:
        """Matching records with `after_id < id <= up_to`, oldest first (the live tail)."""
        self.check_search(filters.search)
        filters = replace(
            filters, after_id=after_id, extra_where=[*filters.extra_where, ("id <= ?", (up_to,))]
        )
        return self._store().query(filters, limit=limit)

    @_one_call
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

    @_one_call
    def last_id(self) -> int:
        return self._store().last_id()

    # -- aggregates -------------------------------------------------------------------------------

    @_one_call
    def histogram(
        self, filters: Filters, *, start: float, step: float, buckets: int, column: str = "time"
    ) -> Histogram:
        """Counts of the matching messages per `step` seconds from `start`, by severity, of
        their `column` (`time`, or `received_at`: rollups are kept by `time` only)."""
        self.check_search(filters.search)
        if column not in _TIME_COLUMNS:
            raise ValueError(f"not a time column: {column!r}")
        counts: dict[int, list[int]] = {}

        def add(bucket: int, severity: int | None, n: int) -> None:
            if 0 <= bucket < buckets:
                key = NO_SEVERITY if severity is None or severity < 0 else int(severity)
                counts.setdefault(key, [0] * buckets)[bucket] += n

        for db in self._files():
            for bucket, severity, n in self._histogram_of(
                db, filters, start, step, buckets, column
            ):
                add(bucket, severity, n)
        return Histogram(start=start, step=step, buckets=buckets, counts=counts)

    def _histogram_of(
        self,
        db: sqlite3.Connection,
        filters: Filters,
        start: float,
        step: float,
        buckets: int,
        column: str,
    ) -> list[tuple[int, int | None, int]]:
        """(bucket, severity, n) of one file's matching messages."""
        out: list[tuple[int, int | None, int]] = []
        with self._snapshot(db):
            bounds = self._rollup_bounds(db, filters) if column == "time" else None
            if bounds is not None and step % 60 == 0 and start % 60 == 0:
                low = start if bounds[0] is None else max(bounds[0], start)
                end = start + buckets * step
                high = end if bounds[1] is None else min(bounds[1], end)
                first, last = self._minutes(low, high)
                if first is not None and last is not None and first < last:
                    per = int(step) // 60
                    base = int(start) // 60
                    for minute, severity, n in rollup.severity_counts(db, first, last):
                        out.append(((minute - base) // per, severity, int(n)))
                    for when, severity in self._edges(db, "time, severity", low, high, first, last):
                        out.append((int((when - start) // step), severity, 1))
                    return out
            source, where, args = self._matching(filters)
            # one integer key per (bucket, severity): SQLite's sorter compares it faster
            rows = self._rows(
                db,
                f"SELECT CAST(({column} - ?) / ? AS INTEGER) * 16 + coalesce(severity, 8),"
                f" count(*) FROM {source}{where} GROUP BY 1",
                [start, step, *args],
            )
        for key, n in rows:
            bucket, severity = divmod(key, 16)
            out.append((bucket, severity, n))
        return out

    @_one_call
    def facets(self, filters: Filters, *, limit: int = 10) -> dict[str, list[tuple[str, int]]]:
        """The most frequent hosts and apps among the matching messages, with their counts."""
        self.check_search(filters.search)
        hosts: Counter[str] = Counter()
        apps: Counter[str] = Counter()
        for db in self._files():
            for host, app, n in self._facets_of(db, filters, hosts, apps):
                if host is not None:
                    hosts[host] += n
                if app is not None:
                    apps[app] += n
        return {"hosts": _top(hosts, limit), "apps": _top(apps, limit)}

    def _facets_of(
        self, db: sqlite3.Connection, filters: Filters, hosts: Counter[str], apps: Counter[str]
    ) -> list[tuple[Any, Any, int]]:
        """One file's (host, app, n) of the matching messages; what its rollups answer is
        added to `hosts` and `apps` directly."""
        with self._snapshot(db):
            bounds = self._rollup_bounds(db, filters)
            first, last = (None, None) if bounds is None else self._minutes(*bounds)
            if bounds is not None and (first is None or last is None or first < last):
                low, high = bounds
                hosts.update(rollup.facet(db, "hostname", first, last))
                apps.update(rollup.facet(db, "app_name", first, last))
                pairs = Counter(self._edges(db, "hostname, app_name", low, high, first, last))
                return [(host, app, n) for (host, app), n in pairs.items()]
            source, where, args = self._matching(filters)
            return self._rows(
                db, f"SELECT hostname, app_name, count(*) FROM {source}{where} GROUP BY 1, 2", args
            )

    # -- how the aggregates read ------------------------------------------------------------------

    @staticmethod
    @contextlib.contextmanager
    def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
        """One read transaction: the rollups and the messages read in it agree."""
        if db.in_transaction:  # already in one (not expected: nothing else opens them)
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")

    def _rollup_bounds(
        self, db: sqlite3.Connection, filters: Filters
    ) -> tuple[float | None, float | None] | None:
        """(since, until) when the store's rollups can answer for `filters`: kept up to date
        (schema 3 or 4) and nothing but a time range asked for; else None."""
        others = replace(filters, since=None, until=None)
        if others != Filters():
            return None
        found = self._rows(db, "SELECT value FROM meta WHERE key = 'schema'", [])
        if not found or found[0][0] not in ROLLUP_VERSIONS:
            return None
        return filters.since, filters.until

    @staticmethod
    def _minutes(low: float | None, high: float | None) -> tuple[int | None, int | None]:
        """The whole minutes within [low, high): first (None: unbounded) and last, exclusive."""
        first = None
        if low is not None:
            first = math.ceil(low / 60)
            if first * 60 < low:  # low / 60 rounded down past a minute
                first += 1
        last = None if high is None else rollup.minute_of(high)
        return first, last

    def _edges(
        self,
        db: sqlite3.Connection,
        columns: str,
        low: float | None,
        high: float | None,
        first: int | None,
        last: int | None,
    ) -> list[tuple[Any, ...]]:
        """`columns` of the messages in [low, high) outside the whole minutes [first, last)."""
        out: list[tuple[Any, ...]] = []
        if low is not None and first is not None and low < first * 60:
            out += self._rows(
                db,
                f"SELECT {columns} FROM messages WHERE time >= ? AND time < ?",
                [low, first * 60],
            )
        if high is not None and last is not None and last * 60 < high:
            out += self._rows(
                db,
                f"SELECT {columns} FROM messages WHERE time >= ? AND time < ?",
                [last * 60, high],
            )
        return out

    @staticmethod
    def _matching(filters: Filters) -> tuple[str, str, list[Any]]:
        """FROM, WHERE and its arguments for the messages that match: with a search, the
        full-text matches drive the join (each looked up by id), not `id IN (...)`."""
        if not filters.search:
            where, args = filters.where()
            return "messages", where, args
        # without `since` as such: its start-of-scan bound (the lowest id of the period, from
        # the time index) costs 60 ms over a day of 1M messages, and the matches are read by id
        rest = replace(filters, search=None, since=None)
        if filters.since is not None:
            rest.extra_where = [("time >= ?", (filters.since,)), *rest.extra_where]
        where, args = rest.where()
        match = "messages_fts MATCH ?"
        where = f" WHERE {match} AND {where[len(' WHERE ') :]}" if where else f" WHERE {match}"
        source = "messages_fts CROSS JOIN messages ON messages.id = messages_fts.rowid"
        return source, where, [filters.search, *args]

    @_one_call
    def time_span(self, filters: Filters, column: str = "time") -> tuple[float, float] | None:
        """The oldest and newest `column` (`time` or `received_at`) among the matching messages
        (None: no match)."""
        self.check_search(filters.search)
        if column not in _TIME_COLUMNS:
            raise ValueError(f"not a time column: {column!r}")
        where, args = filters.where()
        spans = [
            self._rows(db, f"SELECT min({column}), max({column}) FROM messages" + where, args)[0]
            for db in self._files()
        ]
        found = [(low, high) for low, high in spans if low is not None]
        if not found:
            return None
        return float(min(low for low, _ in found)), float(max(high for _, high in found))


def _top(counts: Counter[str], limit: int) -> list[tuple[str, int]]:
    """The `limit` largest counts, ties by name (as `ORDER BY count DESC, name`)."""
    ranked = sorted(((-n, name) for name, n in counts.items() if n > 0))
    return [(name, -n) for n, name in ranked[:limit]]
