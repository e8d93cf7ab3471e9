"""The page's URL parameters -> what to read: `parse_view(params) -> View`, or `BadRequest`.

Decisions:

- The page keeps its whole state in the URL (`?q=disk&host=web1&severity=warning&range=1h`),
  and the API takes the same parameters, so a bookmarked view and an API call read alike.
- Every parameter is checked here and turned into values (`Filters`, numbers); a bad one is a
  `BadRequest` naming the parameter and the reason (the server answers 400 with it). Unknown
  parameters are refused too: a typo should not silently widen a search.
- Time range: `range=15m|1h|24h|7d|all` (24h by default: the last day up to now, open-ended so
  the live tail keeps matching), or `since`/`until` (epoch seconds or ISO 8601; a zone-less
  time is UTC here: the page sends epoch seconds).
- The range bounds the message's own time (its timestamp, which its sender chose) by default,
  or, with `by=received`, when the collector received it (a sender's wrong clock cannot hide a
  message from that view). `View.during()` gives the same filters over another range; the live
  tail uses `View.untimed`: what arrives, whatever its timestamp.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TypeVar

from syslogkit.codec.message import Facility, Severity
from syslogkit.collector import Filters

__all__ = ["PRESETS", "TRANSPORTS", "BadRequest", "View", "parse_view"]

PRESETS: dict[str, float | None] = {
    "15m": 15 * 60,
    "1h": 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "all": None,
}
DEFAULT_RANGE = "24h"
TRANSPORTS = ("udp", "tcp", "tls", "relp", "relp+tls")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_VALUES = 50
MAX_TEXT = 1000

_KNOWN = frozenset(
    {
        "q",
        "host",
        "app",
        "severity",
        "facility",
        "transport",
        "errors",
        "range",
        "since",
        "until",
        "before",
        "after",
        "limit",
        "by",
    }
)

T = TypeVar("T")


class BadRequest(ValueError):
    """A parameter the server cannot use; the text names it and says why (`column`: where in
    the query `q` the fault is, 1-based)."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


def _query(text: str | None, now: float) -> Filters:
    """`q`, the query language (docs/query.md) without pipes, as the filters the store runs.
    What needs a Python test of each row (structured data, `~regex`, networks) or a pipe is
    not taken here yet: 400, saying to use `syslogkit query`."""
    from syslogkit.collector.query import QueryError, compile_query, parse_query

    if not text:
        return Filters()
    try:
        plan = compile_query(parse_query(text), now=now, lift_time=False)
    except QueryError as exc:
        raise BadRequest(f"q: {exc}", exc.column) from None
    if plan.predicate is not None:
        raise BadRequest(
            "q: structured data, ~regex and network filters are not taken by the page yet:"
            " `syslogkit query` runs them"
        )
    return plan.filters


@dataclass(frozen=True)
class View:
    """What a request asks for: the filters (time range included), and paging."""

    filters: Filters
    range: str | None  # a preset's name, or None for since/until
    since: float | None
    until: float | None
    before: int | None
    after: int | None
    limit: int
    by_received: bool = False

    @property
    def column(self) -> str:
        """The column the range bounds: `time` or `received_at`."""
        return "received_at" if self.by_received else "time"

    @property
    def untimed(self) -> Filters:
        """The filters without any time bound."""
        return self.during(None, None)

    def during(self, since: float | None, until: float | None) -> Filters:
        """The same filters over [since, until) (None: unbounded) of this view's time."""
        return timed(untimed(self.filters), since, until, by_received=self.by_received)


def untimed(filters: Filters) -> Filters:
    """`filters` without its time bounds (of either column)."""
    kept = [c for c in filters.extra_where if not c[0].startswith("received_at ")]
    return replace(filters, since=None, until=None, extra_where=kept)


def timed(
    filters: Filters, since: float | None, until: float | None, *, by_received: bool
) -> Filters:
    """`filters` (without time bounds) bounded to [since, until) of the message's time, or of
    when it was received."""
    if not by_received:
        return replace(filters, since=since, until=until)
    bounds = [("received_at >= ?", (since,))] if since is not None else []
    bounds += [("received_at < ?", (until,))] if until is not None else []
    return replace(filters, extra_where=[*filters.extra_where, *bounds])


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise BadRequest(f"{name}: give it once")
    if not values:
        return None
    value = values[0]
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{name}: longer than {MAX_TEXT} characters")
    return value


def _many(
    params: Mapping[str, Sequence[str]], name: str, convert: Callable[[str], T]
) -> tuple[T, ...]:
    values = [v for v in params.get(name) or [] if v != ""]
    if len(values) > MAX_VALUES:
        raise BadRequest(f"{name}: more than {MAX_VALUES} values")
    out = []
    for value in values:
        if len(value) > MAX_TEXT:
            raise BadRequest(f"{name}: longer than {MAX_TEXT} characters")
        try:
            out.append(convert(value))
        except ValueError as exc:
            raise BadRequest(f"{name}: {exc}") from None
    return tuple(out)


def _digits(text: str) -> bool:
    """ASCII digits only: `str.isdigit()` also says yes to `²` and `٣`, which `int()` refuses."""
    return text.isascii() and text.isdigit()


def _severity(text: str) -> int:
    value = text.strip().lower()
    return int(Severity.coerce(int(value) if _digits(value) else value))


def _facility(text: str) -> int:
    value = text.strip().lower()
    return int(Facility.coerce(int(value) if _digits(value) else value))


def _transport(text: str) -> str:
    if text not in TRANSPORTS:
        raise ValueError(f"{text!r} is not one of {', '.join(TRANSPORTS)}")
    return text


def _instant(name: str, text: str) -> float:
    value = text.strip()
    if not value.isascii():
        raise BadRequest(f"{name}: {text!r} is neither epoch seconds nor an ISO 8601 time")
    try:
        number = float(value)
    except ValueError:
        iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            parsed = datetime.fromisoformat(iso)
        except ValueError:
            raise BadRequest(
                f"{name}: {text!r} is neither epoch seconds nor an ISO 8601 time"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    if not math.isfinite(number) or not 0 <= number < 1e11:
        raise BadRequest(f"{name}: {text!r} is out of range")
    return number


def _count(name: str, text: str | None, low: int, high: int) -> int | None:
    if text is None or text == "":
        return None
    if not _digits(text):
        raise BadRequest(f"{name}: {text!r} is not a whole number")
    value = int(text)
    if not low <= value <= high:
        raise BadRequest(f"{name}: {value} is not between {low} and {high}")
    return value


def _time_range(
    params: Mapping[str, Sequence[str]], now: float
) -> tuple[str | None, float | None, float | None]:
    preset = _one(params, "range")
    since_text, until_text = _one(params, "since"), _one(params, "until")
    if since_text or until_text:
        if preset:
            raise BadRequest("range: give either range or since/until, not both")
        since = _instant("since", since_text) if since_text else None
        until = _instant("until", until_text) if until_text else None
        if since is not None and until is not None and since >= until:
            raise BadRequest("until: must be later than since")
        return None, since, until
    preset = preset or DEFAULT_RANGE
    if preset not in PRESETS:
        raise BadRequest(f"range: {preset!r} is not one of {', '.join(PRESETS)}")
    span = PRESETS[preset]
    return preset, (None if span is None else now - span), None


def parse_view(params: Mapping[str, Sequence[str]], now: float | None = None) -> View:
    """Check the parameters of a request (name -> values, as `parse_qs` gives them)."""
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown parameter")
    now = time.time() if now is None else now
    preset, since, until = _time_range(params, now)
    errors = _one(params, "errors")
    if errors not in (None, "", "0", "1"):
        raise BadRequest(f"errors: {errors!r} is not 0 or 1")
    severity = _one(params, "severity")
    try:
        level = _severity(severity) if severity else None
    except ValueError as exc:
        raise BadRequest(f"severity: {exc}") from None
    query = _query((_one(params, "q") or "").strip() or None, now)
    by = _one(params, "by") or "time"
    if by not in ("time", "received"):
        raise BadRequest(f"by: {by!r} is not time or received")
    filters = Filters(
        hosts=_many(params, "host", str),
        apps=_many(params, "app", str),
        severity=level,
        facilities=_many(params, "facility", _facility),
        transports=_many(params, "transport", _transport),
        search=query.search,
        errors_only=errors == "1",
        extra_where=query.extra_where,
    )
    filters = timed(filters, since, until, by_received=by == "received")
    limit = _count("limit", _one(params, "limit"), 1, MAX_LIMIT)
    return View(
        filters=filters,
        range=preset,
        since=since,
        until=until,
        before=_count("before", _one(params, "before"), 1, 2**63 - 1),
        after=_count("after", _one(params, "after"), 0, 2**63 - 1),
        limit=DEFAULT_LIMIT if limit is None else limit,
        by_received=by == "received",
    )
