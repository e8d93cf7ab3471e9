"""The pipes of a query (`| stats ...`, `| logfmt`, ...) run over the records the filter found.

Decisions:

- A record enters the pipes as a `Row`: its fields (`host`, `app`, ..., `SD-ID.param`, `_time`,
  `_id`) plus those a `logfmt`/`json`/`extract` pipe adds, which win over a record's field of
  the same name (`| logfmt | status:>=500` reads the message's `status`, not the parse's).
- Every pipe is bounded: the rows that enter the pipes at all (`Pipeline.max_rows`, the same
  bound as a filter's predicate), the groups of `stats`/`top` (`MAX_GROUPS`), the MSG a parsing
  pipe reads (`MAX_PARSE` characters) and the fields it adds (`MAX_FIELDS`); `sort` holds at most
  the rows that entered. A bound that stopped the work is said (`Pipeline.notes`).
- `min`, `max`, `avg`, `sum` and `quantile` take the values that read as numbers and skip the
  others; `count_distinct` counts values as text. Groups come out sorted by their key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ...codec.message import Facility, Severity
from ..record import Record, message_time
from .compile import _as_number, _predicate, _value_test
from .language import (
    FIELDS,
    Aggregate,
    And,
    Exists,
    Extract,
    Field,
    Fields,
    Json,
    Limit,
    Logfmt,
    Node,
    Not,
    Or,
    Pipe,
    QueryError,
    Sort,
    Stats,
    Top,
    Where,
    extract_regex,
)

__all__ = ["MAX_GROUPS", "Pipeline", "Row"]

#: the most groups `stats` and `top` keep
MAX_GROUPS = 100_000
#: the characters of MSG a parsing pipe reads
MAX_PARSE = 65_536
#: the fields one parsing pipe adds to a row
MAX_FIELDS = 256

_MISSING = object()


class Row:
    """A record and the fields pipes added (or, after `stats`/`top`/`fields`, only fields)."""

    __slots__ = ("fields", "record")

    def __init__(self, record: Record | None, fields: dict[str, Any] | None = None) -> None:
        self.record = record
        self.fields: dict[str, Any] = fields if fields is not None else {}

    def get(self, name: str) -> Any:
        value = self.fields.get(name, _MISSING)
        if value is not _MISSING:
            return value
        if self.record is None:
            return None
        return record_field(self.record, name)


def record_field(r: Record, name: str) -> Any:
    """A record's field by its name in the language (None: absent)."""
    m = r.message
    if name == "_time":
        return message_time(m, r.received_at)
    if name == "_id":
        return r.id
    if name == "status":
        return r.status
    if name in ("transport", "peer", "listener", "tls_subject", "tls_fingerprint"):
        return getattr(r, name)
    if m is None:
        return None
    column = FIELDS.get(name)
    if column is not None:
        return getattr(m, "msg" if name == "msg" else column)
    sd_id, dot, param = name.rpartition(".")
    if not dot:
        return None
    for el in m.structured_data:
        if el.id == sd_id:
            for key, value in el.params:
                if key == param:
                    return value
    return None


def display(value: Any) -> Any:
    """A value as output shows it: names for severity and facility, RFC 3339 for `_time`."""
    if isinstance(value, Severity | Facility):
        return value.name.lower()
    return value


@dataclass
class Pipeline:
    """The pipes of one query. `run(records)` gives the rows out; `columns` is None while the
    rows are still records (no `stats`, `top` or `fields`), else the names of their fields."""

    pipes: tuple[Pipe, ...]
    now: float
    max_rows: int = 200_000
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> tuple[str, ...] | None:
        out: tuple[str, ...] | None = None
        for pipe in self.pipes:
            if isinstance(pipe, Stats):
                out = pipe.by + tuple(a.label for a in pipe.aggregates)
            elif isinstance(pipe, Top):
                out = (*pipe.by, "count")
            elif isinstance(pipe, Fields):
                out = pipe.names
        return out

    @property
    def aggregates(self) -> bool:
        return any(isinstance(p, Stats | Top) for p in self.pipes)

    def run(self, records: Iterable[Record]) -> Iterator[Row]:
        rows: Iterator[Row] = (Row(r) for r in self._bounded(records))
        for pipe in self.pipes:
            rows = self._stage(pipe, rows)
        return rows

    def _bounded(self, records: Iterable[Record]) -> Iterator[Record]:
        for n, record in enumerate(records):
            if n >= self.max_rows:
                self.notes.append(
                    f"the pipes stopped after {self.max_rows} rows (--max-scan N to take more)"
                )
                return
            yield record

    def _stage(self, pipe: Pipe, rows: Iterator[Row]) -> Iterator[Row]:
        if isinstance(pipe, Where):
            test = row_predicate(pipe.node, self.now)
            return (row for row in rows if test(row))
        if isinstance(pipe, Limit):
            return _limit(rows, pipe.n)
        if isinstance(pipe, Sort):
            return _sorted(rows, pipe)
        if isinstance(pipe, Fields):
            return (Row(None, {n: row.get(n) for n in pipe.names}) for row in rows)
        if isinstance(pipe, Stats):
            return self._stats(pipe, rows)
        if isinstance(pipe, Top):
            return self._top(pipe, rows)
        parse = _parser(pipe)
        return (_with(row, parse) for row in rows)

    def _groups(
        self, by: tuple[str, ...], rows: Iterator[Row]
    ) -> Iterator[tuple[tuple[Any, ...], Row]]:
        seen: set[tuple[Any, ...]] = set()
        full = False
        for row in rows:
            key = tuple(_hashable(display(row.get(n))) for n in by)
            if key not in seen:
                if len(seen) >= MAX_GROUPS:
                    if not full:
                        self.notes.append(
                            f"more than {MAX_GROUPS} groups: rows of the others were left out"
                        )
                        full = True
                    continue
                seen.add(key)
            yield key, row

    def _stats(self, pipe: Stats, rows: Iterator[Row]) -> Iterator[Row]:
        groups: dict[tuple[Any, ...], list[_Accumulator]] = {}
        for key, row in self._groups(pipe.by, rows):
            accs = groups.get(key)
            if accs is None:
                accs = groups[key] = [_Accumulator(a) for a in pipe.aggregates]
            for acc in accs:
                acc.add(row)
        if not groups and not pipe.by:
            groups[()] = [_Accumulator(a) for a in pipe.aggregates]
        for key in sorted(groups, key=_key_order):
            values = dict(zip(pipe.by, key, strict=True))
            for acc in groups[key]:
                values[acc.aggregate.label] = acc.result()
            yield Row(None, values)

    def _top(self, pipe: Top, rows: Iterator[Row]) -> Iterator[Row]:
        counts: dict[tuple[Any, ...], int] = {}
        for key, _row in self._groups(pipe.by, rows):
            counts[key] = counts.get(key, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], _key_order(kv[0])))
        for key, count in ranked[: pipe.n]:
            yield Row(None, {**dict(zip(pipe.by, key, strict=True)), "count": count})


def _sorted(rows: Iterator[Row], pipe: Sort) -> Iterator[Row]:
    """Rows by `pipe.by`; those without the first field last, either way."""
    have: list[Row] = []
    lack: list[Row] = []
    first = pipe.by[0]
    for row in rows:
        (lack if row.get(first) is None else have).append(row)
    key = _sort_key(pipe.by)
    have.sort(key=key, reverse=pipe.desc)
    lack.sort(key=key, reverse=pipe.desc)
    return iter(have + lack)


def _limit(rows: Iterator[Row], n: int) -> Iterator[Row]:
    for i, row in enumerate(rows):
        if i >= n:
            return
        yield row


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | type(None)) else str(value)


def _order(value: Any) -> tuple[int, float, str]:
    """Numbers first (by value), then text, then nothing."""
    if value is None:
        return (2, 0.0, "")
    n = _as_number(value)
    if n is not None:
        return (0, n, "")
    return (1, 0.0, str(value))


def _key_order(key: tuple[Any, ...]) -> tuple[tuple[int, float, str], ...]:
    return tuple(_order(v) for v in key)


def _sort_key(by: tuple[str, ...]) -> Callable[[Row], tuple[tuple[int, float, str], ...]]:
    return lambda row: tuple(_order(row.get(n)) for n in by)


class _Accumulator:
    def __init__(self, aggregate: Aggregate) -> None:
        self.aggregate = aggregate
        self.count = 0
        self.values: list[float] = []
        self.distinct: set[str] = set()
        self.total = 0.0
        self.low: float | None = None
        self.high: float | None = None

    def add(self, row: Row) -> None:
        a = self.aggregate
        if a.func == "count":
            self.count += 1
            return
        value = row.get(a.field)
        if value is None:
            return
        if a.func == "count_distinct":
            self.distinct.add(str(display(value)))
            return
        n = _as_number(value)
        if n is None:
            return
        self.count += 1
        self.total += n
        self.low = n if self.low is None else min(self.low, n)
        self.high = n if self.high is None else max(self.high, n)
        if a.func == "quantile":
            self.values.append(n)

    def result(self) -> Any:
        func = self.aggregate.func
        if func == "count":
            return self.count
        if func == "count_distinct":
            return len(self.distinct)
        if func == "sum":
            return _plain(self.total)
        if func == "min":
            return None if self.low is None else _plain(self.low)
        if func == "max":
            return None if self.high is None else _plain(self.high)
        if func == "avg":
            return None if not self.count else self.total / self.count
        if not self.values:
            return None
        ordered = sorted(self.values)  # nearest rank
        rank = max(1, math.ceil(float(self.aggregate.q) * len(ordered)))
        return _plain(ordered[rank - 1])


def _plain(n: float) -> float | int:
    return int(n) if n.is_integer() and abs(n) < 2**53 else n


# -- parsing pipes -------------------------------------------------------------------------------


def _with(row: Row, parse: Callable[[str], dict[str, Any]]) -> Row:
    text = row.get("msg")
    if not isinstance(text, str) or not text:
        return row
    found = parse(text[:MAX_PARSE])
    if found:
        row.fields = {**row.fields, **found}
    return row


def _parser(pipe: Pipe) -> Callable[[str], dict[str, Any]]:
    if isinstance(pipe, Logfmt):
        return logfmt
    if isinstance(pipe, Json):
        return json_fields
    if isinstance(pipe, Extract):
        rx = extract_regex(pipe.pattern)

        def extract(text: str) -> dict[str, Any]:
            m = rx.search(text)
            return {} if m is None else m.groupdict()

        return extract
    raise TypeError(pipe)  # pragma: no cover - every pipe is one of the above


_LOGFMT = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(text: str) -> dict[str, Any]:
    """`key=value key2="a b"` pairs (values unquoted; a key without `=` is skipped)."""
    out: dict[str, Any] = {}
    for m in _LOGFMT.finditer(text):
        if len(out) >= MAX_FIELDS:
            break
        value = m.group(2)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[m.group(1)] = value
    return out


def json_fields(text: str) -> dict[str, Any]:
    """A JSON object in MSG (from its first `{`) as fields; nested objects as `a.b`."""
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value, _end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return {}
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        _flatten(value, "", out, 0)
    return out


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, Any], depth: int) -> None:
    for key, value in obj.items():
        if len(out) >= MAX_FIELDS:
            return
        name = prefix + str(key)
        if isinstance(value, dict) and depth < 8:
            _flatten(value, name + ".", out, depth + 1)
        elif isinstance(value, list | dict):
            out[name] = json.dumps(value, ensure_ascii=False)
        else:
            out[name] = value


# -- filters over rows ---------------------------------------------------------------------------


def row_predicate(node: Node, now: float) -> Callable[[Row], bool]:
    """A filter pipe's test: a field a pipe added is read from the row, any other as the
    record's (the filter's own test)."""
    if isinstance(node, Not):
        inner = row_predicate(node.item, now)
        return lambda row: not inner(row)
    if isinstance(node, And | Or):
        tests = [row_predicate(i, now) for i in node.items]
        if isinstance(node, And):
            return lambda row: all(t(row) for t in tests)
        return lambda row: any(t(row) for t in tests)
    name = node.name if isinstance(node, Field | Exists) else None
    on_record = _record_test(node, now)
    if name is None:
        return lambda row: row.record is not None and on_record(row.record)
    leaf = node if isinstance(node, Field) else Field(name, "exists")
    on_value = _value_test(leaf)

    def test(row: Row) -> bool:
        if name in row.fields or row.record is None:
            return on_value(row.fields.get(name))
        return on_record(row.record)

    return test


def _record_test(node: Node, now: float) -> Callable[[Record], bool]:
    known = not isinstance(node, Field | Exists) or (
        node.name in FIELDS or "." in node.name or "@" in node.name
    )
    if not known:
        return lambda _r: False  # a name no record has and no pipe added here
    try:
        return _predicate(node, now)
    except QueryError:
        if isinstance(node, Field | Exists):
            # a filter for a field a pipe adds (`| logfmt | status:>=500`) that the record's
            # own field of that name cannot take: it matches where a pipe added the field
            return lambda _r: False
        raise


def when_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


# -- counts in SQL -------------------------------------------------------------------------------

#: the columns `count() by (...)` may group on in SQL (the rest: in Python)
_GROUPABLE = frozenset(FIELDS) - {"_time", "status", "msg"}


def counts_in_sql(pipeline: Pipeline, exact: bool) -> bool:
    """Whether the first pipe is a count that SQL can do (`stats count() by (columns)`,
    `top N by (columns)`) over a filter SQL says exactly (`exact`)."""
    if not exact or not pipeline.pipes:
        return False
    first = pipeline.pipes[0]
    if isinstance(first, Stats):
        if any(a.func != "count" for a in first.aggregates):
            return False
    elif not isinstance(first, Top):
        return False
    return all(name in _GROUPABLE for name in first.by)


def run_counts(
    pipeline: Pipeline, files: Iterable[Any], where: str, args: list[Any]
) -> Iterator[Row]:
    """`counts_in_sql`'s pipe as one GROUP BY per store file (parameterised: the WHERE of the
    filter, columns from `FIELDS`), added up, then the other pipes over its rows. The same rows
    as the Python path (tests/collector/test_query_pipes.py), without reading the records."""
    first = pipeline.pipes[0]
    assert isinstance(first, Stats | Top)
    columns = [FIELDS[name] for name in first.by]
    select = ", ".join([*columns, "count(*)"])
    group = f" GROUP BY {', '.join(columns)}" if columns else ""
    totals: dict[tuple[Any, ...], int] = {}
    for part in files:
        for row in part.connection.execute(f"SELECT {select} FROM messages{where}{group}", args):
            key = tuple(_as_shown(name, v) for name, v in zip(first.by, row[:-1], strict=True))
            totals[key] = totals.get(key, 0) + int(row[-1])
    if len(totals) > MAX_GROUPS:
        pipeline.notes.append(f"more than {MAX_GROUPS} groups: the others were left out")
        totals = dict(list(totals.items())[:MAX_GROUPS])
    out = _topped(first, totals) if isinstance(first, Top) else _counted(first, totals)
    for pipe in pipeline.pipes[1:]:
        out = pipeline._stage(pipe, out)
    return out


def _as_shown(name: str, value: Any) -> Any:
    """A column's value as the Python path groups it (`display` of the record's field)."""
    if value is None:
        return None
    if name == "severity":
        return display(Severity(value))
    if name == "facility":
        return display(Facility(value))
    return _hashable(value)


def _counted(pipe: Stats, totals: dict[tuple[Any, ...], int]) -> Iterator[Row]:
    if not totals and not pipe.by:
        totals = {(): 0}
    for key in sorted(totals, key=_key_order):
        values = dict(zip(pipe.by, key, strict=True))
        for a in pipe.aggregates:
            values[a.label] = totals[key]
        yield Row(None, values)


def _topped(pipe: Top, totals: dict[tuple[Any, ...], int]) -> Iterator[Row]:
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], _key_order(kv[0])))
    for key, count in ranked[: pipe.n]:
        yield Row(None, {**dict(zip(pipe.by, key, strict=True)), "count": count})
