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
- Compiled to one Python function for the whole list (`Router.targets`): the fields the routes
  use are read once per record into locals, each route is one `if` on an expression of them
  (sets, compiled regular expressions, a per-peer cache for CIDRs). Values from the config are
  never written into the source: they are bound by name (`_c0`, `_c1`, ...). Measured with
  `bench/collector.py` (`sqlite-routes`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from syslogkit.codec.message import Facility, Severity

from .record import Record

__all__ = ["RouteError", "Router", "compile_routes"]

_NULL = -1  # the store row's NULL (store.schema.make_row)


class RouteError(ValueError):
    """A route that cannot be compiled; `path` is its place under `routes` (index, keys...)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Router:
    """Compiled routes over a fixed list of sinks (by position); see the module docstring.

    `targets(record)` gives the positions of the sinks a record goes to; `split(batch)` gives,
    for each sink, the records it gets (the batch's order kept). `listener_names` maps a
    record's listener URL (bound port included) to the listener's name; the collector fills it
    once its listeners are bound.
    """

    def __init__(
        self,
        targets: Callable[[Record], tuple[int, ...]],
        route_count: int,
        sink_count: int,
        listener_names: dict[str, str],
        counts: list[int],
    ) -> None:
        self.targets = targets
        self._routes = route_count
        self._count = sink_count
        self.listener_names = listener_names
        self._counts = counts  # [dropped, unrouted], kept by the compiled function
        self.limits: list[RateLimit] = []

    @property
    def dropped(self) -> int:
        return self._counts[0]

    @property
    def unrouted(self) -> int:
        return self._counts[1]

    def split(self, batch: Sequence[Record]) -> list[list[Record]]:
        parts: list[list[Record]] = [[] for _ in range(self._count)]
        cache: dict[tuple[int, ...], list[Callable[[Record], None]]] = {}
        targets = self.targets
        for record in batch:
            chosen = targets(record)
            appends = cache.get(chosen)
            if appends is None:
                appends = cache[chosen] = [parts[i].append for i in dict.fromkeys(chosen)]
            for append in appends:
                append(record)
        return parts

    def stats(self) -> dict[str, int]:
        return {
            "routes": self._routes,
            "dropped": self.dropped,
            "unrouted": self.unrouted,
            "rate_limited": sum(limit.total for limit in self.limits),
        }

    def tell_untold(self) -> None:
        """At the end: the rate limits' drops not told yet, in one line each."""
        for limit in self.limits:
            limit.tell_now(final=True)


def compile_routes(
    routes: Sequence[Mapping[str, Any]],
    sinks: Sequence[str],
    listeners: Sequence[str] | None = None,
    tell: Callable[[str], None] | None = None,
) -> Router | None:
    """The router for `routes` over the sinks named `sinks` (positions kept); None without
    routes. `listeners`: the names a `listener` test may use (None: not checked); `tell`: where
    the rate limits' lines go (stderr)."""
    if not routes:
        return None
    index = {name: i for i, name in enumerate(sinks)}
    code = _Code(listeners, tell)
    lines = [_route(n, route, index, code) for n, route in enumerate(routes)]
    counts = [0, 0]
    code.constants["_counts"] = counts
    source = ["def targets(record):", *code.loads(), "    chosen = ()"]
    if code.limits:
        source.append("    limited = False")
    source += [line for route in lines for line in route]
    unrouted = "not chosen and not limited" if code.limits else "not chosen"
    source += [f"    if {unrouted}:", "        _counts[1] += 1", "    return chosen"]
    namespace: dict[str, Any] = dict(code.constants)
    exec(compile("\n".join(source), "<syslogkit routes>", "exec"), namespace)
    router = Router(namespace["targets"], len(routes), len(sinks), code.by_url, counts)
    router.limits = code.limits
    return router


#: field -> (its position in a store row, its attribute on a SyslogMessage)
_FIELDS = {
    "facility": (3, "facility"),
    "severity": (4, "severity"),
    "host": (6, "hostname"),
    "app": (7, "app_name"),
    "msgid": (9, "msgid"),
    "msg": (11, "msg"),
}


#: a rate limit's line at most every TELL_EVERY seconds while it drops
TELL_EVERY = 10.0
#: sources a rate limit keeps a bucket for; past it the buckets start again
MAX_SOURCES = 4096


def _tell_stderr(line: str) -> None:
    print(f"syslogkit collect: {line}", file=sys.stderr, flush=True)


class RateLimit:
    """A route's limit: `rate` records a second per source address (host, without the port),
    bursts up to one second's worth; what is over it does not go to that route's sinks, and is
    counted and told: at once, then at most every `TELL_EVERY` seconds, and what is left at the
    end."""

    def __init__(self, route: int, rate: float, tell: Callable[[str], None]) -> None:
        self.route = route
        self.rate = rate
        self.tell = tell
        self.total = 0
        self._buckets: dict[str, list[float]] = {}
        self._window: dict[str, int] = {}
        self._told_at = -TELL_EVERY
        self._hosts: dict[str, str] = {}

    def __call__(self, peer: str) -> bool:
        host = self._hosts.get(peer)
        if host is None:
            if len(self._hosts) > MAX_SOURCES:
                self._hosts.clear()
            host = self._hosts[peer] = _host(peer)
        now = time.monotonic()
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) > MAX_SOURCES:
                self._buckets.clear()
            bucket = self._buckets[host] = [self.rate, now]
        tokens = min(self.rate, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        self.total += 1
        self._window[host] = self._window.get(host, 0) + 1
        if now - self._told_at >= TELL_EVERY:
            self.tell_now(now=now)
        return False

    def tell_now(self, *, now: float | None = None, final: bool = False) -> None:
        if not self._window:
            return
        now = time.monotonic() if now is None else now
        worst = sorted(self._window.items(), key=lambda item: -item[1])[:3]
        names = ", ".join(f"{count} from {host}" for host, count in worst)
        window = sum(self._window.values())
        if final:
            when = "since the last line"
        elif self._told_at < 0:
            when = "(the first; told again at most every 10 s)"
        else:
            when = f"in the last {now - self._told_at:.0f} s"
        self.tell(
            f"route {self.route + 1}: over its rate limit of {self.rate:g} records/s per source,"
            f" dropped {window} {when}: {names}; {self.total} in all"
        )
        self._window.clear()
        self._told_at = now


def _host(peer: str) -> str:
    if peer.startswith("["):
        return peer[1:].partition("]")[0]
    host, sep, _ = peer.rpartition(":")
    return host if sep else peer


class _Code:
    """What the generated function needs: constants by name, the fields it reads."""

    def __init__(self, listeners: Sequence[str] | None, tell: Callable[[str], None] | None) -> None:
        self.listeners = listeners
        self.tell = tell or _tell_stderr
        self.limits: list[RateLimit] = []
        self.by_url: dict[str, str] = {}
        self.constants: dict[str, Any] = {"_NULL": _NULL}
        self.fields: set[str] = set()

    def const(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def field(self, name: str) -> str:
        self.fields.add(name)
        return f"f_{name}"

    def loads(self) -> list[str]:
        """Read each field used once: from the row (NULL as None) or from the message."""
        if not self.fields:
            return []
        out = ["    row = record.row", "    if row is not None:"]
        for name in sorted(self.fields):
            out.append(f"        f_{name} = row[{_FIELDS[name][0]}]")
        out += ["    else:", "        m = record.message", "        if m is None:"]
        out.append("            " + " = ".join(f"f_{n}" for n in sorted(self.fields)) + " = None")
        out.append("        else:")
        for name in sorted(self.fields):
            out.append(f"            f_{name} = m.{_FIELDS[name][1]}")
        return out


_ROUTE_KEYS = ("match", "sinks", "drop", "final", "rate_limit")


def _route(n: int, route: Mapping[str, Any], index: Mapping[str, int], code: _Code) -> list[str]:
    for key in route:
        if key not in _ROUTE_KEYS:
            raise RouteError((n, key), f"unknown key (a route has {', '.join(_ROUTE_KEYS)})")
    match = route.get("match", {})
    if not isinstance(match, Mapping):
        raise RouteError((n, "match"), "must be a table")
    test = _match(match, (n, "match"), code)
    drop = route.get("drop", False)
    final = route.get("final", False)
    for key, value in (("drop", drop), ("final", final)):
        if not isinstance(value, bool):
            raise RouteError((n, key), "must be true or false")
    names = route.get("sinks")
    if drop:
        if names is not None:
            raise RouteError((n, "sinks"), "a route either drops or names sinks, not both")
        return [f"    if {test}:", "        _counts[0] += 1", "        return chosen"]
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
    lines = [f"    if {test}:", f"        chosen += {tuple(positions)!r}"]
    rate = route.get("rate_limit")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
            raise RouteError((n, "rate_limit"), "must be a number of records a second > 0")
        limit = RateLimit(n, float(rate), code.tell)
        code.limits.append(limit)
        lines[1:] = [
            f"        if {code.const(limit)}(record.peer):",
            f"            chosen += {tuple(positions)!r}",
            "        else:",
            "            limited = True",
        ]
    if final:
        lines.append("        return chosen")
    return lines


# -- matches: each becomes a Python expression over the fields ----------------------------------


def _match(match: Mapping[str, Any], path: tuple[str | int, ...], code: _Code) -> str:
    tests = [_test(key, value, (*path, key), code) for key, value in match.items()]
    if not tests:
        return "True"
    return tests[0] if len(tests) == 1 else "(" + " and ".join(tests) + ")"


def _test(key: str, value: Any, path: tuple[str | int, ...], code: _Code) -> str:
    if key in ("all", "any"):
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise RouteError(path, "must be a list of matches")
        tests = [_match(v, (*path, i), code) for i, v in enumerate(value)]
        if not tests:
            return "True" if key == "all" else "False"
        return "(" + f" {'and' if key == 'all' else 'or'} ".join(tests) + ")"
    if key == "not":
        if not isinstance(value, Mapping):
            raise RouteError(path, "must be a match (a table)")
        return f"(not {_match(value, path, code)})"
    if key == "facility":
        return f"{code.field(key)} in {code.const(_numbers(value, Facility, path))}"
    if key == "severity":
        return f"{code.field(key)} in {code.const(_numbers(value, Severity, path))}"
    if key in ("host", "app", "msgid"):
        return _text_test(code.field(key), _patterns(value, path), code)
    if key == "peer":
        return f"{code.const(_peer_test(_networks(value, path)))}(record.peer)"
    if key == "listener":
        names = frozenset(_strings(value, path))
        known = code.listeners
        unknown = sorted(names - set(known)) if known is not None else []
        if known is not None and unknown:
            raise RouteError(
                path, f"no listener named {unknown[0]!r} (listeners: {', '.join(known) or 'none'})"
            )
        by_url = code.const(code.by_url)
        return f"{by_url}.get(record.listener) in {code.const(names)}"
    if key == "msg":
        if not isinstance(value, str):
            raise RouteError(path, "must be a regular expression (a string)")
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise RouteError(path, f"bad regular expression: {exc}") from None
        msg = code.field("msg")
        return f"(type({msg}) is str and {code.const(pattern.search)}({msg}) is not None)"
    raise RouteError(
        path,
        "unknown test (facility, severity, host, app, msgid, peer, listener, msg, all, any, not)",
    )


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
    field: str, patterns: tuple[frozenset[str], re.Pattern[str] | None], code: _Code
) -> str:
    exact, pattern = patterns
    test = f"{field} in {code.const(exact)}" if exact else ""
    if pattern is None:
        return test
    glob = f"(type({field}) is str and {code.const(pattern.fullmatch)}({field}) is not None)"
    return f"({test} or {glob})" if test else glob


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


def _peer_test(networks: tuple[Network, ...]) -> Callable[[str], bool]:
    """Is a peer (`host:port`) in one of `networks`: decided once per peer (bounded cache)."""
    seen: dict[str, bool] = {}

    def test(peer: str) -> bool:
        known = seen.get(peer)
        if known is None:
            address = _peer_address(peer)
            known = address is not None and any(address in net for net in networks)
            if len(seen) > 4096:
                seen.clear()
            seen[peer] = known
        return known

    return test
