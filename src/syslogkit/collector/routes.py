"""Routes: which sinks a record goes to. The one place that decides, compiled once at load.

Decisions:

- Routes are an ordered list; each has a `match`, then either `sinks` (names) or `drop = true`,
  and `final`. A record goes to the sinks of every route that matches it, in order, until a
  matching route is `final` or `drop` (what earlier routes gave it stays: rsyslog's `stop`).
- With no routes, every sink gets everything (no `Router` at all: nothing on the hot path).
  With routes, a record that no route sends anywhere is counted (`unrouted`), as is one a route
  drops (`dropped`): both are choices of the config, shown in the stats and `/metrics`.
- A match is a table; its keys are ANDed: `facility` and `severity` (a name or number, a list,
  or a range `"local0..local7"`, `"..err"`: err and everything more severe), `host`, `app`,
  `msgid` (equal, or a glob with `*?[`; a list: any of them), `peer` (an address or CIDR, or a
  list), `listener` (a listener's name, or a list), `msg` (a regular expression searched in
  MSG), and `all` / `any` (lists of matches) and `not` (a match). An empty match takes every
  record. A record without a field (unparsed, or NILVALUE) does not match a test on it.
- Fields are read from the store's row when the decoder's fast path built one, so routing never
  builds a `SyslogMessage` that no sink asked for.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syslogkit.codec.message import Facility, Severity

from .record import Record

__all__ = ["RouteError", "Router", "compile_routes"]

Test = Callable[[Record], bool]
_NULL = -1  # the store row's NULL (store.schema.make_row)


class RouteError(ValueError):
    """A route that cannot be compiled; `path` is its place under `routes` (index, keys...)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class _Route:
    test: Test
    sinks: tuple[int, ...]
    stop: bool  # final or drop
    drop: bool


class Router:
    """Compiled routes over a fixed list of sinks (by position); see the module docstring.

    `split(batch)` gives, for each sink, the records it gets (the batch's order kept).
    `listener_names` maps a record's listener URL (bound port included) to the listener's
    name; the collector fills it once its listeners are bound.
    """

    def __init__(
        self, routes: Sequence[_Route], sink_count: int, listener_names: dict[str, str]
    ) -> None:
        self._routes = tuple(routes)
        self._count = sink_count
        self.listener_names = listener_names
        self.dropped = 0
        self.unrouted = 0

    def targets(self, record: Record) -> tuple[int, ...]:
        """The sinks (positions) `record` goes to."""
        chosen: tuple[int, ...] = ()
        for route in self._routes:
            if route.test(record):
                if route.drop:
                    self.dropped += 1
                    return chosen
                chosen += route.sinks
                if route.stop:
                    break
        if not chosen:
            self.unrouted += 1
        return chosen

    def split(self, batch: Sequence[Record]) -> list[list[Record]]:
        parts: list[list[Record]] = [[] for _ in range(self._count)]
        cache: dict[tuple[int, ...], list[list[Record]]] = {}
        for record in batch:
            chosen = self.targets(record)
            lists = cache.get(chosen)
            if lists is None:
                lists = cache[chosen] = [parts[i] for i in dict.fromkeys(chosen)]
            for part in lists:
                part.append(record)
        return parts

    def stats(self) -> dict[str, int]:
        return {"routes": len(self._routes), "dropped": self.dropped, "unrouted": self.unrouted}


def compile_routes(
    routes: Sequence[Mapping[str, Any]],
    sinks: Sequence[str],
    listeners: Sequence[str] | None = None,
) -> Router | None:
    """The router for `routes` over the sinks named `sinks` (positions kept); None without
    routes. `listeners`: the names a `listener` test may use (None: not checked)."""
    if not routes:
        return None
    index = {name: i for i, name in enumerate(sinks)}
    context = _Context(listeners, {})
    compiled = [_route(n, route, index, context) for n, route in enumerate(routes)]
    return Router(compiled, len(sinks), context.by_url)


@dataclass(frozen=True)
class _Context:
    listeners: Sequence[str] | None  # the names a `listener` test may use (None: any)
    by_url: dict[str, str]  # a listener's bound URL -> its name (filled after binding)


_ROUTE_KEYS = ("match", "sinks", "drop", "final")


def _route(n: int, route: Mapping[str, Any], index: Mapping[str, int], context: _Context) -> _Route:
    for key in route:
        if key not in _ROUTE_KEYS:
            raise RouteError((n, key), f"unknown key (a route has {', '.join(_ROUTE_KEYS)})")
    match = route.get("match", {})
    if not isinstance(match, Mapping):
        raise RouteError((n, "match"), "must be a table")
    test = _match(match, (n, "match"), context)
    drop = route.get("drop", False)
    final = route.get("final", False)
    for key, value in (("drop", drop), ("final", final)):
        if not isinstance(value, bool):
            raise RouteError((n, key), "must be true or false")
    names = route.get("sinks")
    if drop:
        if names is not None:
            raise RouteError((n, "sinks"), "a route either drops or names sinks, not both")
        return _Route(test, (), True, True)
    if names is None:
        raise RouteError((n,), "a route needs sinks = [...] or drop = true")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names:
        raise RouteError((n, "sinks"), "must be a list of sink names")
    positions = []
    for name in names:
        if name not in index:
            known = ", ".join(index) or "none"
            raise RouteError((n, "sinks"), f"no sink named {name!r} (sinks: {known})")
        positions.append(index[name])
    return _Route(test, tuple(positions), final, False)


# -- matches -----------------------------------------------------------------------------------


def _match(match: Mapping[str, Any], path: tuple[str | int, ...], context: _Context) -> Test:
    tests = [_test(key, value, (*path, key), context) for key, value in match.items()]
    if not tests:
        return _always
    if len(tests) == 1:
        return tests[0]
    return lambda record: all(test(record) for test in tests)


def _always(record: Record) -> bool:
    return True


def _test(key: str, value: Any, path: tuple[str | int, ...], context: _Context) -> Test:
    if key in ("all", "any"):
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise RouteError(path, "must be a list of matches")
        tests = [_match(v, (*path, i), context) for i, v in enumerate(value)]
        combine = all if key == "all" else any
        return lambda record: combine(test(record) for test in tests)
    if key == "not":
        if not isinstance(value, Mapping):
            raise RouteError(path, "must be a match (a table)")
        inner = _match(value, path, context)
        return lambda record: not inner(record)
    if key == "facility":
        return _number_test(_FACILITY, _numbers(value, Facility, path))
    if key == "severity":
        return _number_test(_SEVERITY, _numbers(value, Severity, path))
    if key in ("host", "app", "msgid"):
        return _text_test(_TEXT_FIELDS[key], _patterns(value, path))
    if key == "peer":
        return _peer_test(_networks(value, path))
    if key == "listener":
        names = set(_strings(value, path))
        known = context.listeners
        unknown = sorted(names - set(known)) if known is not None else []
        if known is not None and unknown:
            raise RouteError(
                path, f"no listener named {unknown[0]!r} (listeners: {', '.join(known) or 'none'})"
            )
        return _listener_test(names, context.by_url)
    if key == "msg":
        if not isinstance(value, str):
            raise RouteError(path, "must be a regular expression (a string)")
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise RouteError(path, f"bad regular expression: {exc}") from None
        search = pattern.search
        return lambda record: (m := _msg(record)) is not None and search(m) is not None
    raise RouteError(
        path,
        "unknown test (facility, severity, host, app, msgid, peer, listener, msg, all, any, not)",
    )


# field readers: the row when the fast path made one, else the message


def _row_or_message(row_index: int, attribute: str) -> Callable[[Record], Any]:
    def read(record: Record) -> Any:
        row = record.row
        if row is not None:
            value = row[row_index]
            return None if type(value) is int and value == _NULL else value
        message = record.message
        return None if message is None else getattr(message, attribute)

    return read


_FACILITY = _row_or_message(3, "facility")
_SEVERITY = _row_or_message(4, "severity")
_TEXT_FIELDS = {
    "host": _row_or_message(6, "hostname"),
    "app": _row_or_message(7, "app_name"),
    "msgid": _row_or_message(9, "msgid"),
}
_msg = _row_or_message(11, "msg")


def _strings(value: Any, path: tuple[str | int, ...]) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise RouteError(path, "must be a string or a list of strings")
    return values


def _numbers(
    value: Any, enum: type[Facility] | type[Severity], path: tuple[str | int, ...]
) -> frozenset[int]:
    values = value if isinstance(value, list) else [value]
    found: set[int] = set()
    for item in values:
        try:
            if isinstance(item, str) and ".." in item:
                low_text, _, high_text = item.partition("..")
                low = int(enum.coerce(low_text)) if low_text else 0
                high = int(enum.coerce(high_text)) if high_text else max(enum)
                if low > high:
                    raise ValueError(f"{item!r}: the range is empty")
                found.update(range(low, high + 1))
            elif isinstance(item, (str, int)) and not isinstance(item, bool):
                found.add(int(enum.coerce(item)))
            else:
                raise ValueError(f"{item!r} is not a {enum.__name__.lower()}")
        except ValueError as exc:
            raise RouteError(path, str(exc)) from None
    return frozenset(found)


def _number_test(read: Callable[[Record], Any], numbers: frozenset[int]) -> Test:
    return lambda record: read(record) in numbers


def _patterns(
    value: Any, path: tuple[str | int, ...]
) -> tuple[frozenset[str], re.Pattern[str] | None]:
    exact: set[str] = set()
    globs: list[str] = []
    for item in _strings(value, path):
        if any(c in item for c in "*?["):
            globs.append(fnmatch.translate(item))
        else:
            exact.add(item)
    pattern = re.compile("|".join(globs)) if globs else None
    return frozenset(exact), pattern


def _text_test(
    read: Callable[[Record], Any], patterns: tuple[frozenset[str], re.Pattern[str] | None]
) -> Test:
    exact, pattern = patterns
    if pattern is None:
        return lambda record: read(record) in exact
    fullmatch = pattern.fullmatch

    def test(record: Record) -> bool:
        value = read(record)
        return value is not None and (value in exact or fullmatch(value) is not None)

    return test


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(value: Any, path: tuple[str | int, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(text, strict=False) for text in _strings(value, path))
    except ValueError as exc:
        raise RouteError(path, str(exc)) from None


def _peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = peer[1:].partition("]")[0] if peer.startswith("[") else peer.rpartition(":")[0] or peer
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _peer_test(networks: tuple[Network, ...]) -> Test:
    seen: dict[str, bool] = {}

    def test(record: Record) -> bool:
        peer = record.peer
        known = seen.get(peer)
        if known is None:
            address = _peer_address(peer)
            known = address is not None and any(address in net for net in networks)
            if len(seen) > 4096:
                seen.clear()
            seen[peer] = known
        return known

    return test


def _listener_test(names: set[str], by_url: Mapping[str, str]) -> Test:
    # `by_url` is the router's `listener_names`, filled once the listeners are bound
    return lambda record: by_url.get(record.listener) in names
