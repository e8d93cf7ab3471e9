"""A query's tree -> what the store runs: parameterised SQL (a `Filters`) and, for what SQL
cannot say, a Python predicate applied to the rows the SQL returns (`Plan`).

Decisions:

- Values are always bound parameters (`?`); the SQL text is made only of this module's
  fragments. A word or phrase is an FTS5 phrase (`"..."`, quotes doubled), never FTS5 syntax.
- Exact in SQL: words and phrases, the columns (`=`, `prefix*`, `exists`), numeric comparisons
  and ranges of `severity`/`facility`, `status`, `_time`. In Python: structured data (a param
  inside the SD text), regexes, CIDR (`peer:10.0.0.0/8`), numeric comparisons of text fields.
- NOT of a column that is NULL holds (`-host:web1` keeps the records without a HOSTNAME), in SQL
  and in Python alike: every NOT reads NULL as false (`NOT coalesce(x, 0)`).
- The top-level AND is split: its SQL parts go to the store (its words as `Filters.search`, one
  FTS5 query of quoted phrases, and its `_time` bounds as `since`/`until`: the store's own fast
  paths for those), the rest is the predicate; a
  positive structured-data part also adds a superset test on the SD text (`LIKE`), so the store
  hands over only the rows that name that SD-ID.
- A predicate examines at most `Plan.max_examined` rows (newest first, as the query reads); the
  caller says so when that bound stops it (`Plan.examined`, `Plan.truncated`).
"""

from __future__ import annotations

import ipaddress
import math
import re
import time as _time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ...codec.message import Facility, Severity
from ..record import Record, message_time
from ..store.query import Filters
from .language import FIELDS, And, Exists, Field, Node, Not, Or, QueryError, Text

__all__ = ["MAX_EXAMINED", "Plan", "compile_query", "parse_when"]

#: the rows a Python predicate may examine by default
MAX_EXAMINED = 200_000
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMERIC = {"severity", "facility"}
_ORDER = {">": "> ?", ">=": ">= ?", "<": "< ?", "<=": "<= ?"}

Predicate = Callable[[Record], bool]


@dataclass
class Plan:
    """What to run: `filters` (SQL) and `predicate` (None: the SQL is exact). `iter_records`
    applies the predicate to a stream of the store's records within `max_examined`."""

    filters: Filters
    predicate: Predicate | None = None
    max_examined: int = MAX_EXAMINED
    examined: int = 0
    truncated: bool = False

    def iter_records(self, records: Iterable[Record]) -> Iterator[Record]:
        if self.predicate is None:
            yield from records
            return
        keep = self.predicate
        for record in records:
            if self.examined >= self.max_examined:
                self.truncated = True
                return
            self.examined += 1
            if keep(record):
                yield record


def compile_query(node: Node | None, *, now: float | None = None, lift_time: bool = True) -> Plan:
    """The plan of a query's tree; `now` (epoch seconds) resolves `_time:1h`. The top-level
    words go to `Filters.search` (as FTS5 phrases: the store's own full-text paths), the
    top-level `_time` bounds to `Filters.since`/`until` unless `lift_time` is false (the web
    keeps those for its time range)."""
    now = _time.time() if now is None else now
    filters = Filters()
    if node is None:
        return Plan(filters)
    items = node.items if isinstance(node, And) else (node,)
    rest: list[Node] = []
    words: list[str] = []
    for item in items:
        if lift_time and _lift_time(item, filters, now):
            continue
        if isinstance(item, Text) and _words(item.text):
            words.append(_fts(item.text, item.prefix)[1][0])
            continue
        sql = _sql(item, now)
        if sql is None:
            rest.append(item)
            prefilter = _sd_prefilter(item)
            if prefilter is not None:
                filters.extra_where.append(prefilter)
        else:
            filters.extra_where.append(sql)
    if words:
        filters.search = " AND ".join(words)
    if not rest:
        return Plan(filters)
    tests = [_predicate(item, now) for item in rest]
    if len(tests) == 1:
        return Plan(filters, tests[0])
    return Plan(filters, lambda r: all(t(r) for t in tests))


def _lift_time(node: Node, filters: Filters, now: float) -> bool:
    """A top-level `_time` bound as `Filters.since`/`until` (whose SQL starts the scan where the
    time index says), when it is one; whether it was."""
    if not (isinstance(node, Field) and node.name == "_time") or node.closed:
        return False
    if node.op in ("<=", ">"):
        return False
    low, high, _closed = _time_bounds(node, now)
    if node.op == "<":
        low, high = -math.inf, low
    if low != -math.inf:
        filters.since = low if filters.since is None else max(filters.since, low)
    if high is not None:
        filters.until = high if filters.until is None else min(filters.until, high)
    return True


# -- SQL -----------------------------------------------------------------------------------------

Sql = tuple[str, tuple[Any, ...]]


def _fts(text: str, prefix: bool) -> Sql:
    phrase = '"' + text.replace('"', '""') + '"' + ("*" if prefix else "")
    return ("id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)", (phrase,))


def _sql(node: Node, now: float) -> Sql | None:
    """The exact SQL of `node`, or None when SQL cannot say it."""
    if isinstance(node, Text):
        if not _words(node.text):
            return ("0", ())  # nothing the index holds: no match, as FTS5 would say
        return _fts(node.text, node.prefix)
    if isinstance(node, Not):
        inner = _sql(node.item, now)
        return None if inner is None else (f"NOT coalesce(({inner[0]}), 0)", inner[1])
    if isinstance(node, And | Or):
        parts = [_sql(i, now) for i in node.items]
        if any(p is None for p in parts):
            return None
        joiner = " AND " if isinstance(node, And) else " OR "
        return (
            joiner.join(f"({p[0]})" for p in parts if p is not None),
            tuple(a for p in parts if p is not None for a in p[1]),
        )
    if isinstance(node, Exists):
        return _column_sql(Field(node.name, "exists"), now)
    return _column_sql(node, now)


def _column_sql(f: Field, now: float) -> Sql | None:
    column = FIELDS.get(f.name)
    if column is None:
        return None  # structured data
    if f.name == "_time":
        low, high, closed = _time_bounds(f, now)
        if f.op in _ORDER:
            return (f"time {_ORDER[f.op]}", (low,))
        if high is None:
            return ("time >= ?", (low,))
        return (f"time >= ? AND time {'<=' if closed else '<'} ?", (low, high))
    if f.name == "status":
        if f.op != "=":
            raise QueryError("status takes one of parsed, noted, unparsed", 1)
        try:
            where, args = Filters(status=f.value).where()
        except ValueError as exc:
            raise QueryError(str(exc), 1) from None
        return (where.removeprefix(" WHERE "), tuple(args))
    if f.op == "exists":
        return (f"{column} IS NOT NULL", ())
    if f.name in _NUMERIC:
        return _numeric_sql(f, column)
    if f.name == "peer" and f.op == "=" and _network(f.value) is not None:
        return None  # an address or a network: the peer's host, in Python
    if f.op == "=":
        return (f"{column} = ?", (f.value,))
    if f.op == "prefix":
        return (f"substr({column}, 1, ?) = ?", (len(f.value), f.value))
    return None  # regex, numeric comparison of text


def _numeric_sql(f: Field, column: str) -> Sql:
    if f.op == "=":
        return (f"{column} = ?", (_number(f.name, f.value),))
    if f.op in _ORDER:
        return (f"{column} {_ORDER[f.op]}", (_number(f.name, f.value),))
    if f.op == "range":
        a, b = sorted((_number(f.name, f.value), _number(f.name, f.high)))
        return (f"{column} BETWEEN ? AND ?", (a, b))
    raise QueryError(f"{f.name} takes a name or number, a comparison or a range", 1)


def _number(name: str, value: str) -> int:
    kind: type[Severity] | type[Facility] = Severity if name == "severity" else Facility
    try:
        return int(kind.coerce(int(value) if value.isdigit() else value.lower()))
    except ValueError as exc:
        raise QueryError(f"{name}:{value}: {exc}", 1) from None


def _sd_prefilter(node: Node) -> Sql | None:
    """A test on the SD text that every row matching `node` passes (None: none known)."""
    if (isinstance(node, Field) and node.op != "exists") or isinstance(node, Exists):
        name = node.name
        if name in FIELDS:
            return None
        sd_id = name.rpartition(".")[0] if isinstance(node, Field) else name.partition(".")[0]
        sd_id = sd_id or name
        if not _literal_in_sd(sd_id):
            return None
        clause = "sd LIKE ? ESCAPE '\\'"
        args: tuple[Any, ...] = ("%" + _like(sd_id) + "%",)
        if isinstance(node, Field) and node.op in ("=", "prefix") and _literal_in_sd(node.value):
            # the value too: as written in both forms of the SD text (RFC 5424 and JSON)
            clause += " AND sd LIKE ? ESCAPE '\\'"
            args += ("%" + _like(node.value) + "%",)
        return (clause, args)
    return None


def _literal_in_sd(text: str) -> bool:
    """Whether `text` is stored as itself in both forms of the SD text (nothing escaped)."""
    return (
        bool(text) and text.isascii() and text.isprintable() and not any(c in text for c in '"\\]')
    )


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- time ----------------------------------------------------------------------------------------


def parse_when(text: str) -> float:
    """A time of `_time:[...]`: RFC 3339 / ISO 8601 (a date, or a time without a zone, is local
    time), or epoch seconds."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(f"not a time: {text!r} (RFC 3339, a date, or epoch seconds)", 1) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.astimezone(timezone.utc).timestamp()


def _time_bounds(f: Field, now: float) -> tuple[float, float | None, bool]:
    """(low, high, high included) of a `_time` filter; for a comparison, `low` is its time."""
    if f.op == "time":
        number, unit = float(f.value[:-1]), f.value[-1]
        return now - number * _SECONDS[unit], None, False
    if f.op in _ORDER:
        return parse_when(f.value), None, False
    return parse_when(f.value), parse_when(f.high), f.closed


# -- Python --------------------------------------------------------------------------------------

#: unicode61 tokens: letters and digits (an underscore separates, as punctuation does)
_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def _predicate(node: Node, now: float) -> Predicate:
    """`node` as a test of one record (the same answers as its SQL, where it has one)."""
    if isinstance(node, Not):
        inner = _predicate(node.item, now)
        return lambda r: not inner(r)
    if isinstance(node, And):
        tests = [_predicate(i, now) for i in node.items]
        return lambda r: all(t(r) for t in tests)
    if isinstance(node, Or):
        tests = [_predicate(i, now) for i in node.items]
        return lambda r: any(t(r) for t in tests)
    if isinstance(node, Text):
        return _text_test(node)
    if isinstance(node, Exists):
        return _field_test(Field(node.name, "exists"), now)
    return _field_test(node, now)


def _text_test(node: Text) -> Predicate:
    """FTS5's unicode61 tokens, approximately: runs of word characters, case folded."""
    want = _words(node.text)
    n = len(want)

    def test(r: Record) -> bool:
        m = r.message
        if not want or m is None or not m.msg:
            return False
        have = _words(m.msg)
        for i in range(len(have) - n + 1):
            if have[i : i + n - 1] == want[:-1]:
                last = have[i + n - 1]
                if last == want[-1] or (node.prefix and last.startswith(want[-1])):
                    return True
        return False

    return test


def _field_test(f: Field, now: float) -> Predicate:
    if f.name == "_time" or f.name == "status" or (f.name in _NUMERIC and f.op != "regex"):
        return _sql_field_test(f, now)
    if f.name not in FIELDS:
        return _sd_test(f)
    getter = _GETTERS[f.name]
    if f.name == "peer" and f.op == "=":
        network = _network(f.value)
        if network is not None:
            return lambda r: _in_network(r.peer, network)
    match = _value_test(f)
    return lambda r: match(getter(r))


def _sql_field_test(f: Field, now: float) -> Predicate:
    """The Python side of a field that SQL decides exactly: the same decision, on the record."""
    if f.name == "_time":
        low, high, closed = _time_bounds(f, now)
        compare = _OPS.get(f.op)

        def in_time(r: Record) -> bool:
            t = message_time(r.message, r.received_at)
            if compare is not None:
                return compare(t, low)
            if high is None:
                return t >= low
            return low <= t and (t <= high if closed else t < high)

        return in_time
    if f.name == "status":
        _column_sql(f, now)  # the same errors
        return lambda r: r.status == f.value
    getter = _GETTERS[f.name]
    if f.op == "exists":
        return lambda r: getter(r) is not None
    if f.op == "range":
        a, b = sorted((_number(f.name, f.value), _number(f.name, f.high)))
        return lambda r: (v := getter(r)) is not None and a <= int(v) <= b
    if f.op not in _ORDER and f.op != "=":
        _numeric_sql(f, "x")  # raises the error
    n = _number(f.name, f.value)
    op = _OPS[f.op]
    return lambda r: (v := getter(r)) is not None and op(int(v), n)


_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _value_test(f: Field) -> Callable[[Any], bool]:
    """The test of one field's value (None: absent) for `f.op`."""
    if f.op == "exists":
        return lambda v: v is not None
    if f.op == "=":
        return lambda v: v is not None and str(v) == f.value
    if f.op == "prefix":
        return lambda v: v is not None and str(v).startswith(f.value)
    if f.op == "regex":
        rx = re.compile(f.value)
        return lambda v: v is not None and rx.search(str(v)) is not None
    if f.op in _OPS:
        bound = _float(f)
        op = _OPS[f.op]
        return lambda v: (n := _as_number(v)) is not None and op(n, bound)
    low, high = sorted((_float(f, f.value), _float(f, f.high)))
    return lambda v: (n := _as_number(v)) is not None and low <= n <= high


def _float(f: Field, value: str | None = None) -> float:
    text = f.value if value is None else value
    n = _as_number(text)
    if n is None:
        raise QueryError(f"{f.name}:{f.op}{text}: a comparison takes a number", 1)
    return n


def _as_number(v: Any) -> float | None:
    if v is None:
        return None
    try:
        n = float(v)
    except (TypeError, ValueError):
        return None
    return None if n != n else n  # NaN compares with nothing


def _sd_test(f: Field) -> Predicate:
    """A structured-data field: `SD-ID.param` (any param of that name in any element with that
    SD-ID matches), or `exists(SD-ID)`."""
    sd_id, dot, param = f.name.rpartition(".")
    match = _value_test(f)
    whole = f.op == "exists"

    def test(r: Record) -> bool:
        m = r.message
        if m is None:
            return False
        for el in m.structured_data:
            if whole and el.id == f.name:
                return True
            if dot and el.id == sd_id:
                for name, value in el.params:
                    if name == param and match(value):
                        return True
        return False

    return test


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not text or not (text[0].isdigit() or ":" in text):
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _in_network(peer: str | None, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether `peer` (`host:port`, `[v6]:port`) is an address inside `network`."""
    if not peer:
        return False
    host = peer[1:].partition("]")[0] if peer.startswith("[") else peer.rpartition(":")[0] or peer
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False


def _message_field(name: str) -> Callable[[Record], Any]:
    def get(r: Record) -> Any:
        m = r.message
        return None if m is None else getattr(m, name)

    return get


_GETTERS: dict[str, Callable[[Record], Any]] = {
    "host": _message_field("hostname"),
    "app": _message_field("app_name"),
    "procid": _message_field("procid"),
    "msgid": _message_field("msgid"),
    "msg": _message_field("msg"),
    "facility": _message_field("facility"),
    "severity": _message_field("severity"),
    "transport": lambda r: r.transport,
    "peer": lambda r: r.peer,
    "listener": lambda r: r.listener,
    "tls_subject": lambda r: r.tls_subject,
    "tls_fingerprint": lambda r: r.tls_fingerprint,
}
