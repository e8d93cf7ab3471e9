"""`syslogkit tail` and `syslogkit query`: read a collector's store (opened read-only).

Each `*_main(argv)` takes the arguments after the subcommand and returns the exit status; a
user's mistake raises `CliError`.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from syslogkit.cli.forms import DEFAULT_DB, parse_time
from syslogkit.cli.main import CliError
from syslogkit.codec.message import Facility, Severity
from syslogkit.collector.record import NOTED, UNPARSED

__all__ = ["query_main", "tail_main"]


def _severity(text: str) -> int:
    value = text.strip().lower()
    value = value.removeprefix("*.")
    try:
        return int(Severity.coerce(int(value) if value.isdigit() else value))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _facility(text: str) -> int:
    value = text.strip().lower()
    try:
        return int(Facility.coerce(int(value) if value.isdigit() else value))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _filter_arguments(p: argparse.ArgumentParser, *, several_stores: bool = False) -> None:
    if several_stores:
        p.add_argument(
            "--db",
            action="append",
            metavar="PATH",
            help=f"a store (default ./{DEFAULT_DB}); repeat for stores that each hold a part",
        )
    else:
        p.add_argument("--db", default=DEFAULT_DB, metavar="PATH", help=f"default ./{DEFAULT_DB}")
    f = p.add_argument_group("filters (all must match; repeat --host/--app for any of several)")
    f.add_argument("--host", action="append", metavar="NAME", help="HOSTNAME equals")
    f.add_argument("--app", action="append", metavar="NAME", help="APP-NAME (tag) equals")
    f.add_argument(
        "-p",
        "--severity",
        metavar="LEVEL",
        help="at or above this importance, as rsyslog's *.LEVEL (warning: emerg..warning)",
    )
    f.add_argument("--facility", action="append", metavar="NAME", help="facility (local0, ...)")
    f.add_argument(
        "--transport", action="append", choices=("udp", "tcp", "tls", "relp", "relp+tls")
    )
    f.add_argument("-s", "--search", metavar="TEXT", help="full-text search in MSG (FTS5 query)")
    f.add_argument(
        "--errors", action="store_true", help="only messages that did not parse (stored raw)"
    )
    f.add_argument(
        "--noted",
        action="store_true",
        help="only messages parsed with a note (lenient or assumed fields, truncated, ...)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour by severity (auto: on a terminal, unless NO_COLOR is set)",
    )


def _status(args: argparse.Namespace) -> str | None:
    if args.errors and args.noted:
        raise CliError("--errors and --noted select different messages: give one")
    if args.errors:
        return UNPARSED
    return NOTED if args.noted else None


def _colour(args: argparse.Namespace, stream: IO[str]) -> bool:
    if args.color == "always":
        return True
    if args.color == "never":
        return False
    return stream.isatty() and os.environ.get("NO_COLOR") is None


def _open_store(path: str) -> Any:
    from syslogkit.collector import Store, StoreError

    try:
        return Store(path, readonly=True)
    except StoreError as exc:
        raise CliError(str(exc)) from None


def _emit(records: Sequence[Any], args: argparse.Namespace, out: IO[str], colour: bool) -> None:
    from syslogkit.collector import format_human, record_to_dict

    if args.json:
        text = "".join(
            json.dumps(record_to_dict(r), ensure_ascii=False, default=str) + "\n" for r in records
        )
    else:
        text = "".join(format_human(r, color=colour) + "\n" for r in records)
    out.write(text)
    out.flush()


TAIL_EPILOG = """examples:
  syslogkit tail                          # the last 10 messages of ./syslog.db, then follow
  syslogkit tail 'app:shop severity:<=err order@32473.id:*'   # the language (docs/query.md)
  syslogkit tail -p warning --app sshd    # warning and more important, from sshd
  syslogkit tail -n 0 --json | jq .msg
  syslogkit tail --no-follow -n 100 --host web1"""


def tail_main(argv: Sequence[str]) -> int:
    """`syslogkit tail`: the last messages of a store, then new ones as they are committed."""
    p = argparse.ArgumentParser(
        prog="syslogkit tail",
        description="Show the last messages of a syslogkit store and follow new ones.",
        epilog=TAIL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "expression",
        nargs="?",
        default="",
        help="what to show (docs/query.md, without pipes); the flags are added with AND",
    )
    _filter_arguments(p)
    p.add_argument("-n", "--lines", type=int, default=10, metavar="N", help="start with the last N")
    p.add_argument("--no-follow", action="store_true", help="print and exit")
    p.add_argument("--interval", type=float, default=0.25, metavar="SECONDS", help="poll period")
    args = p.parse_args(list(argv))
    args.since = args.until = args.max_scan = None
    out = sys.stdout
    colour = _colour(args, out)
    plan = _plan(args)
    filters = plan.filters
    keep = plan.predicate or (lambda _record: True)
    stop = False

    def on_term(_signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        if not args.no_follow:
            while not Path(args.db).exists() and not stop:
                time.sleep(args.interval)
        if stop:
            return 0
        store = _open_store(args.db)
        try:
            last = store.last_id()
            if args.lines > 0:
                recent = list(_found(store, plan, args.lines, newest_first=True))
                recent.reverse()
                _emit(recent, args, out, colour)
                _say_truncated([plan])
            if args.no_follow:
                return 0
            while not stop:
                filters.after_id = last
                new = store.query(filters, limit=1000)
                if new:
                    _emit([r for r in new if keep(r)], args, out, colour)
                    last = new[-1].id or last
                    continue
                last = max(last, store.last_id())
                time.sleep(args.interval)
        finally:
            store.close()
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


QUERY_EPILOG = """examples:
  syslogkit query '_time:1h app:shop severity:<=err'  # errors of one app in the last hour
  syslogkit query 'order@32473.id:42'                 # one order's records (structured data)
  syslogkit query 'host:web1 AND (timeout OR "connection reset")' --json
  syslogkit query --since 1h -p err                   # the same filters as flags
  syslogkit query --search 'disk AND full' --host db1
  syslogkit query --since 2026-01-31T00:00:00Z --until 2026-02-01 --json
  syslogkit query --errors --json                     # what did not parse, with the raw bytes
  syslogkit query --noted --count                     # parsed with a note (assumed zone, ...)
  syslogkit query --count --app nginx

the expression (docs/query.md): words, "phrases", AND OR NOT ( ), -word, field:value,
SD-ID.param:value, exists(SD-ID), _time:1h; the flags are shorthands ANDed to it.
times: RFC 3339 / ISO 8601 (local time without a zone), 10m, 2h ago, today, epoch seconds."""


def query_main(argv: Sequence[str]) -> int:
    """`syslogkit query`: messages of a store by time range, filters and full-text search."""
    p = argparse.ArgumentParser(
        prog="syslogkit query",
        description="Search the messages of a syslogkit store.",
        epilog=QUERY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "expression",
        nargs="?",
        default="",
        help="what to find (docs/query.md); the flags below are added to it with AND",
    )
    _filter_arguments(p, several_stores=True)
    p.add_argument("--since", metavar="TIME", help="message time at or after")
    p.add_argument("--until", metavar="TIME", help="message time before")
    p.add_argument("--limit", type=int, metavar="N", help="at most N messages")
    p.add_argument("--newest-first", action="store_true", help="newest first (default oldest)")
    p.add_argument("--count", action="store_true", help="print only how many match")
    p.add_argument(
        "--max-scan",
        type=int,
        metavar="N",
        help="rows a filter SQL cannot decide (structured data, ~regex, CIDR) may examine"
        " per store (default 200000)",
    )
    args = p.parse_args(list(argv))
    pipes = _pipes(args)
    plans = [_plan(args) for _ in args.db or [DEFAULT_DB]]
    filters = plans[0].filters
    stores = [_open_store(path) for path in args.db or [DEFAULT_DB]]
    out = sys.stdout
    from syslogkit.collector.query import QueryError

    try:
        if pipes is not None:
            newest_first = args.newest_first or pipes.aggregates
            try:
                rows = _piped(pipes, stores, plans, newest_first)
            except QueryError as exc:
                raise CliError(str(exc)) from None
            if args.limit is not None:
                rows = itertools.islice(rows, args.limit)
            _emit_rows(rows, pipes.columns, args, out)
            return 0
        if args.count:
            if plans[0].predicate is None:
                print(sum(store.count(filters) for store in stores), file=out)
            else:
                found = _merged(stores, plans, None, newest_first=True)
                print(sum(1 for _ in found), file=out)
            return 0
        records = _merged(stores, plans, args.limit, args.newest_first)
        if args.json:
            batch: list[Any] = []
            for record in records:
                batch.append(record)
                if len(batch) >= 1000:
                    _emit(batch, args, out, False)
                    batch = []
            _emit(batch, args, out, False)
        else:
            _table(list(records), out, _colour(args, out))
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
    except Exception as exc:
        from syslogkit.collector import StoreError
        from syslogkit.collector.query import QueryError

        if isinstance(exc, StoreError | QueryError):
            raise CliError(str(exc)) from None
        raise
    finally:
        for store in stores:
            store.close()
        _say_truncated(plans)
        if pipes is not None:
            for note in pipes.notes:
                print(f"syslogkit query: {note}", file=sys.stderr)
    return 0


def _pipes(args: argparse.Namespace) -> Any:
    """The pipes of the expression (None: it has none); the filter part is left in
    `args.expression`."""
    from syslogkit.collector.query import QueryError
    from syslogkit.collector.query.language import parse, to_text
    from syslogkit.collector.query.pipes import Pipeline

    text = args.expression
    if "|" not in text:
        return None
    try:
        query = parse(text)
    except QueryError as exc:
        raise CliError(_pointed("the expression", text, exc)) from None
    if not query.pipes:
        return None
    args.expression = to_text(query.filter)
    pipeline = Pipeline(query.pipes, time.time())
    if args.max_scan is not None:
        pipeline.max_rows = args.max_scan
    return pipeline


def _piped(pipes: Any, stores: Sequence[Any], plans: Sequence[Any], newest_first: bool) -> Any:
    """The rows out of the pipes: a first count SQL can do is one GROUP BY per file."""
    from syslogkit.collector.query.pipes import counts_in_sql, run_counts

    if counts_in_sql(pipes, plans[0].predicate is None):
        where, where_args = plans[0].filters.where()
        files = [part for store in stores for part in store.files()]
        return run_counts(pipes, files, where, where_args)
    return pipes.run(_merged(stores, plans, None, newest_first))


def _emit_rows(rows: Iterator[Any], columns: Sequence[str] | None, args: Any, out: IO[str]) -> None:
    """The rows out of the pipes: records as `query` prints them (with the fields pipes added,
    under "fields" in JSON), or a table of `columns` (JSON lines with --json)."""
    from syslogkit.collector import record_to_dict
    from syslogkit.collector.query.pipes import display, when_text

    def cells(row: Any) -> dict[str, Any]:
        assert columns is not None
        return {
            c: when_text(v) if c == "_time" and isinstance(v, float) else display(v)
            for c in columns
            for v in (row.get(c),)
        }

    if args.count:
        print(sum(1 for _ in rows), file=out)
        return
    if columns is None:
        if not args.json:
            _table([row.record for row in rows], out, _colour(args, out))
            return
        for row in rows:
            obj = record_to_dict(row.record)
            if row.fields:
                obj["fields"] = row.fields
            out.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        return
    if args.json:
        for row in rows:
            out.write(json.dumps(cells(row), ensure_ascii=False, default=str) + "\n")
        return
    table = [["-" if v is None else str(v) for v in cells(row).values()] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(columns)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    out.write("\n")
    for r in table:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _plan(args: argparse.Namespace) -> Any:
    """The expression and the flags (each flag a filter of the language, ANDed), compiled."""
    from syslogkit.collector.query import QueryError, compile_query, parse_query
    from syslogkit.collector.query.language import And, Field, Node, Or

    def any_of(name: str, values: Sequence[Any]) -> Node:
        fields: list[Node] = [Field(name, "=", str(v)) for v in values]
        return fields[0] if len(fields) == 1 else Or(tuple(fields))

    try:
        parts: list[Node] = []
        for flag, name in (("host", "host"), ("app", "app"), ("transport", "transport")):
            if getattr(args, flag):
                parts.append(any_of(name, getattr(args, flag)))
        if args.facility:
            parts.append(any_of("facility", [_facility(f) for f in args.facility]))
        if args.severity:
            parts.append(Field("severity", "<=", str(_severity(args.severity))))
        status = _status(args)
        if status is not None:
            parts.append(Field("status", "=", status))
        if args.since:
            parts.append(Field("_time", ">=", repr(parse_time(args.since))))
        if args.until:
            parts.append(Field("_time", "<", repr(parse_time(args.until))))
        for text, what in ((args.search, "--search"), (args.expression, "the expression")):
            try:
                node = parse_query(text) if text else None
            except QueryError as exc:
                raise CliError(_pointed(what, text, exc)) from None
            if node is not None:
                parts.append(node)
        tree = None if not parts else parts[0] if len(parts) == 1 else And(tuple(parts))
        plan = compile_query(tree)
    except QueryError as exc:
        raise CliError(str(exc)) from None
    if args.max_scan is not None:
        plan.max_examined = args.max_scan
    return plan


def _pointed(what: str, text: str, exc: Any) -> str:
    """A `QueryError` with the text and a caret under its column."""
    return f"{what}: {exc}\n  {text}\n  {' ' * (exc.column - 1)}^"


def _say_truncated(plans: Sequence[Any]) -> None:
    for plan in plans:
        if plan.truncated:
            print(
                f"syslogkit query: stopped after examining {plan.examined} rows (the newest"
                " ones read); --max-scan N to look further",
                file=sys.stderr,
            )
            return


def _merged(
    stores: Sequence[Any], plans: Sequence[Any], limit: int | None, newest_first: bool
) -> Iterator[Any]:
    """The matching records of several stores (each holding a part, e.g. stores sharing one
    JetStream durable) as one stream in order of arrival, at most `limit` in all."""
    streams: list[Iterator[Any]] = [
        _found(s, p, limit, newest_first) for s, p in zip(stores, plans, strict=True)
    ]
    if len(streams) == 1:
        return streams[0]
    merged = heapq.merge(*streams, key=lambda r: r.received_at, reverse=newest_first)
    return itertools.islice(merged, limit) if limit is not None else merged


def _found(store: Any, plan: Any, limit: int | None, newest_first: bool) -> Iterator[Any]:
    """One store's records that match `plan`: the SQL's, through the predicate if it has one
    (then the limit applies after it)."""
    if plan.predicate is None:
        return store.iter_query(plan.filters, limit=limit, newest_first=newest_first)  # type: ignore[no-any-return]
    found = plan.iter_records(store.iter_query(plan.filters, newest_first=newest_first))
    return itertools.islice(found, limit) if limit is not None else found


def _table(records: Sequence[Any], out: IO[str], colour: bool) -> None:
    from syslogkit.collector.render import colour as coloured

    headers = ("ID", "TIME", "HOST", "APP", "SEVERITY", "MESSAGE")
    rows: list[tuple[str, ...]] = []
    severities: list[int | None] = []
    for r in records:
        m = r.message
        if m is None:
            when = datetime.fromtimestamp(r.received_at, timezone.utc).astimezone()
            rows.append(
                (
                    str(r.id),
                    when.isoformat(timespec="seconds"),
                    "-",
                    "-",
                    "-",
                    "!unparsed " + r.raw.decode("utf-8", "replace"),
                )
            )
            severities.append(None)
            continue
        ts = m.timestamp or datetime.fromtimestamp(r.received_at).astimezone()
        text = (m.msg or "").replace("\r", "\\r").replace("\n", "\\n")
        if r.error:
            text += f"  (! {r.error})"
        rows.append(
            (
                str(r.id),
                ts.isoformat(timespec="seconds"),
                m.hostname or "-",
                (m.app_name or "-") + (f"[{m.procid}]" if m.procid else ""),
                m.severity.name.lower() if m.severity is not None else "-",
                text,
            )
        )
        severities.append(None if m.severity is None else int(m.severity))
    widths = [len(h) for h in headers[:-1]]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = min(max(widths[i], len(cell)), 40)

    def line(cells: Sequence[str]) -> str:
        return (
            "  ".join(c[:w].ljust(w) for c, w in zip(cells[:-1], widths, strict=True))
            + "  "
            + cells[-1]
        )

    out.write(line(headers) + "\n")
    for row, sev in zip(rows, severities, strict=True):
        text = line(row)
        out.write((coloured(text, sev) if colour else text) + "\n")
    out.flush()
