"""Per-minute counts of the stored messages (rollups), for histograms and top hosts and apps.

Decisions:

- Three small tables, one row per minute and value: `rollup_severity` (minute, severity: -1 for
  none), `rollup_host` (minute, hostname), `rollup_app` (minute, app_name); `n` messages. A day
  is ~1,440 rows per severity, host or app whatever the traffic, so a histogram or a facet over
  a time range with no other filter reads those instead of every message. One table keyed by
  (minute, severity, host, app) would hold about a row per message when hosts and apps vary.
- The minute of a message is `floor(time / 60)` with Python's float floor division, which is
  exact: a message of minute `m` is one with `m * 60 <= time < (m + 1) * 60`, the same
  comparison a reader makes with the time bounds. Every count is made here in Python (inserts,
  retention, the rebuild), so all of them agree; SQL's `time / 60` may round across a minute.
- The writer counts each batch in Python (one `Counter` over (minute, severity, host, app)
  tuples) and upserts one row per group, in the insert's transaction. Each file of the store
  keeps its own counts, and retention deletes whole files: their counts go with them. Counts
  are never approximate: a crash loses rows and their counts together.
- Messages without a host or app (NULL) are not counted in those tables (facets skip them).
- Only writers of schema 3 keep rollups; one of an older version (which rewrites the schema
  version in `meta` when it opens the store) may add or delete messages without them, so a
  reader uses them only while `meta` says schema 3, and a writer of schema 3 rebuilds them
  when it opens a store that says anything else (`rebuild`).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

from ..record import NULL as _NULL  # `make_row`'s NULL: one definition, there

__all__ = [
    "ROLLUP_SCHEMA",
    "add_rows",
    "facet",
    "minute_of",
    "rebuild",
    "severity_counts",
]

ROLLUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup_severity (
    minute INTEGER NOT NULL, severity INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (minute, severity)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_host (
    minute INTEGER NOT NULL, hostname TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (minute, hostname)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_app (
    minute INTEGER NOT NULL, app_name TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (minute, app_name)) WITHOUT ROWID;
"""

#: the columns of a row (as `make_row` makes it) that the rollups count
_TIME, _SEVERITY, _HOST, _APP = 1, 4, 6, 7

_UPSERT = {
    table: f"INSERT INTO {table} (minute, {column}, n) VALUES (?, ?, ?)"
    f" ON CONFLICT (minute, {column}) DO UPDATE SET n = n + excluded.n"
    for table, column in (
        ("rollup_severity", "severity"),
        ("rollup_host", "hostname"),
        ("rollup_app", "app_name"),
    )
}


def minute_of(when: float) -> int:
    """The minute a message of time `when` is counted in (exact floor, see the docstring)."""
    return int(when // 60)


_COLUMNS = (("rollup_severity", _SEVERITY), ("rollup_host", _HOST), ("rollup_app", _APP))


def _groups(rows: Sequence[Sequence[Any]]) -> dict[str, list[tuple[int, Any, int]]]:
    """(minute, value, count) per table for `rows` (time, severity, hostname, app_name at
    `make_row`'s positions, NULL as `_NULL` or None).

    Counted with a `Counter` per table (the counting loop is C); Python code runs once per
    group, not per row. A batch of a live collector falls within one minute: then only the
    values are counted (a third of the cost of counting (minute, value) pairs)."""
    times = list(map(itemgetter(_TIME), rows))
    out: dict[str, list[tuple[int, Any, int]]] = {}
    if not times:
        return out
    low = min(times) // 60
    if low == max(times) // 60:
        minute = int(low)
        for table, column in _COLUMNS:
            out[table] = _keep(
                table, ((minute, v, n) for v, n in Counter(map(itemgetter(column), rows)).items())
            )
        return out
    minutes = [t // 60 for t in times]
    for table, column in _COLUMNS:
        pairs = Counter(zip(minutes, map(itemgetter(column), rows), strict=True))
        out[table] = _keep(table, ((int(m), v, n) for (m, v), n in pairs.items()))
    return out


def _keep(table: str, groups: Iterable[tuple[int, Any, int]]) -> list[tuple[int, Any, int]]:
    """The groups as stored: no severity is -1; no host or app is not counted."""
    if table == "rollup_severity":
        return [(m, _NULL if v is None else int(v), n) for m, v, n in groups]
    return [(m, v, n) for m, v, n in groups if v is not None and v != _NULL]


def add_rows(db: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Count `rows` (being inserted in the current transaction) into the rollups."""
    for table, groups in _groups(rows).items():
        if groups:
            db.executemany(_UPSERT[table], groups)


def rebuild(db: sqlite3.Connection, chunk: int = 50_000) -> None:
    """Count every message again (in the current transaction): a store written without them."""
    for table in _UPSERT:
        db.execute(f"DELETE FROM {table}")
    cursor = db.execute(
        "SELECT NULL, time, NULL, NULL, severity, NULL, hostname, app_name FROM messages"
    )
    while rows := cursor.fetchmany(chunk):
        add_rows(db, rows)


# -- reading ---------------------------------------------------------------------------------------


def severity_counts(
    db: sqlite3.Connection, first: int, end: int | None
) -> list[tuple[int, int, int]]:
    """(minute, severity, n) for the minutes `first <= minute < end` (no end: None)."""
    if end is None:
        sql, args = "SELECT minute, severity, n FROM rollup_severity WHERE minute >= ?", [first]
    else:
        sql = "SELECT minute, severity, n FROM rollup_severity WHERE minute >= ? AND minute < ?"
        args = [first, end]
    return db.execute(sql, args).fetchall()


def facet(
    db: sqlite3.Connection, column: str, first: int | None, end: int | None
) -> dict[str, int]:
    """Messages per hostname or app_name (`column`) in the minutes `first <= minute < end`
    (None: unbounded)."""
    table = {"hostname": "rollup_host", "app_name": "rollup_app"}[column]
    clauses: list[str] = []
    args: list[Any] = []
    if first is not None:
        clauses.append("minute >= ?")
        args.append(first)
    if end is not None:
        clauses.append("minute < ?")
        args.append(end)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql = f"SELECT {column}, sum(n) FROM {table}{where} GROUP BY {column}"
    return {value: int(n) for value, n in db.execute(sql, args)}
