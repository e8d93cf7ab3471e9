"""Store query benchmark: the first page of `syslogkit query` on a store of 1,000,000 messages.

    .venv/bin/python bench/query.py                 # about a minute (building the store)
    .venv/bin/python bench/query.py --messages 200000 --keep /tmp/q.db

Builds a store (the collector's decoder and writer: RFC 5424 messages with SD from 50 hosts and
20 apps, every severity, timestamps spread over the last `--hours` hours, text from a small
vocabulary with a rare word), then times the first page (`--page` records) of:

- `query --search WORD` (a common word, a rare word, a phrase), oldest first and newest first;
- `query --since 1h -p err`, and with `--host`;
- the same through the command line (`python -m syslogkit query ... --limit PAGE`), whose time
  includes starting Python;

each also while a writer process inserts into the same store (the store stays queryable while
ingesting). Median of `--rounds` rounds, in milliseconds. Target (issue 12): under 200 ms.

Then the query language (issue 21, docs/query.md) through the command line, idle, beside the
same question asked with flags where one exists: a field filter (host, msgid, an SD param:
the first page, newest first) and `_time:1h | stats count() by (host)`. `--language-only`
runs only these.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from syslogkit.collector import Filters, Store
from syslogkit.collector.decode import Decoder
from syslogkit.collector.stats import ListenerStats
from syslogkit.collector.store import StoreProcess, make_row

WORDS = [
    "disk",
    "full",
    "error",
    "warning",
    "connection",
    "reset",
    "timeout",
    "user",
    "login",
    "logout",
    "session",
    "started",
    "stopped",
    "service",
    "request",
    "response",
    "cache",
    "miss",
    "hit",
    "queue",
    "backlog",
    "retry",
    "failed",
    "ok",
    "done",
]
RARE = "zanzibar"


def messages(n: int, hours: float, seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)
    now = time.time()
    span = hours * 3600
    out = []
    for i in range(n):
        at = time.gmtime(now - span + span * i / n)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", at) + f".{i % 1_000_000:06d}Z"
        text = " ".join(rnd.choice(WORDS) for _ in range(8))
        if i % 10_000 == 0:
            text += " " + RARE
        pri = 8 * rnd.randrange(24) + rnd.randrange(8)
        out.append(
            b'<%d>1 %s host%d.example.com app%d %d ID%d [ex@32473 seq="%d"] %s'
            % (pri, stamp.encode(), i % 50, i % 20, 1000 + i % 100, i % 9, i, text.encode())
        )
    return out


def build(path: Path, n: int, hours: float) -> float:
    decoder = Decoder(ListenerStats("b"), transport="tcp", listener="tcp://b", max_frame=8192)
    started = time.perf_counter()
    with Store(path) as store:
        batch = 20_000
        frames = messages(n, hours)
        for i in range(0, n, batch):
            now = time.time()
            rows = [
                make_row(decoder.record(raw, now, "127.0.0.1:9")) for raw in frames[i : i + batch]
            ]
            store.insert_rows(rows)
            store.commit()
    return time.perf_counter() - started


def first_page(path: Path, filters: Filters, page: int, newest_first: bool) -> float:
    started = time.perf_counter()
    with Store(path, readonly=True) as store:
        records = store.query(filters, limit=page, newest_first=newest_first)
    elapsed = time.perf_counter() - started
    if not records:
        raise RuntimeError(f"no match for {filters}")
    return elapsed * 1000


def cli_page(path: Path, args: list[str], page: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "syslogkit",
            "query",
            "--db",
            str(path),
            "--limit",
            str(page),
            *args,
        ],
        check=True,
        capture_output=True,
    )
    return (time.perf_counter() - started) * 1000


class Ingest:
    """A writer process inserting into the store while the queries run."""

    def __init__(self, path: Path) -> None:
        self.writer = StoreProcess(path)
        self.stop = False
        self.written = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        decoder = Decoder(ListenerStats("i"), transport="tcp", listener="tcp://i", max_frame=8192)
        frames = messages(5000, 0.01, seed=11)
        while not self.stop:
            now = time.time()
            self.writer.write([make_row(decoder.record(raw, now, "127.0.0.1:8")) for raw in frames])
            self.written += len(frames)

    def close(self) -> None:
        self.stop = True
        self.thread.join(30)
        self.writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--hours", type=float, default=3.0, help="time span of the messages")
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", metavar="PATH", help="build (or reuse) the store here")
    parser.add_argument("--language-only", action="store_true", help="only the language's cases")
    args = parser.parse_args()
    path = Path(args.keep) if args.keep else Path(tempfile.mkdtemp()) / "q.db"
    if not path.exists():
        took = build(path, args.messages, args.hours)
        print(f"built {args.messages} messages in {took:.1f} s ({args.messages / took:.0f}/s)")
    if not args.language_only:
        flags(path, args)
    language(path, args)
    return 0


def language(path: Path, args: argparse.Namespace) -> None:
    """The query language's cases, each beside its flags (when there are any)."""
    with Store(path, readonly=True) as store:
        newest = store.query(limit=1, newest_first=True)[0]
    assert newest.message is not None
    seq = dict(newest.message.structured_data[0].params)["seq"]
    host = "host7.example.com"
    cases: list[tuple[str, list[str], list[str] | None]] = [
        (f"host:{host}", [f"host:{host}", "--newest-first"], ["--host", host, "--newest-first"]),
        ("msgid:ID3", ["msgid:ID3", "--newest-first"], None),
        (f"ex@32473.seq:{seq}", [f"ex@32473.seq:{seq}", "--newest-first"], None),
        ("_time:1h | stats count() by (host)", ["_time:1h | stats count() by (host)"], None),
    ]
    print(f"\nthe query language, command line, first page of {args.page}, ms, median (range):")
    print(f"{'expression':46s} {'expression':>20s} {'flags':>20s}")
    for name, argv, flag_argv in cases:
        expr = [cli_page(path, argv, args.page) for _ in range(args.rounds)]
        line = f"{name:46s} {statistics.median(expr):7.1f} ({min(expr):.0f}-{max(expr):.0f})"
        if flag_argv is not None:
            flag = [cli_page(path, flag_argv, args.page) for _ in range(args.rounds)]
            line += f"{'':4s} {statistics.median(flag):7.1f} ({min(flag):.0f}-{max(flag):.0f})"
        print(line, flush=True)


def flags(path: Path, args: argparse.Namespace) -> None:
    """The first page with today's flags, in-process and through the command line."""
    since = time.time() - 3600
    cases: list[tuple[str, Filters, bool, list[str]]] = [
        ("--search error", Filters(search="error"), False, ["--search", "error"]),
        ("--search error --newest-first", Filters(search="error"), True,
         ["--search", "error", "--newest-first"]),
        (f"--search {RARE}", Filters(search=RARE), False, ["--search", RARE]),
        ('--search "disk full"', Filters(search='"disk full"'), False, ["--search", '"disk full"']),
        ("--since 1h -p err", Filters(since=since, severity=3), False,
         ["--since", "1h", "-p", "err"]),
        ("--since 1h -p err --newest-first", Filters(since=since, severity=3), True,
         ["--since", "1h", "-p", "err", "--newest-first"]),
        ("--since 1h -p err --host host7.example.com",
         Filters(since=since, severity=3, hosts=["host7.example.com"]), False,
         ["--since", "1h", "-p", "err", "--host", "host7.example.com"]),
    ]  # fmt: skip
    results: dict[str, Any] = {}
    for ingesting in (False, True):
        ingest = Ingest(path) if ingesting else None
        label = "while ingesting" if ingesting else "idle"
        print(f"\nfirst page of {args.page}, ms, median (range) of {args.rounds}, {label}:")
        print(f"{'query':46s} {'in-process':>20s} {'command line':>20s}")
        try:
            for name, filters, newest, argv in cases:
                api = [first_page(path, filters, args.page, newest) for _ in range(args.rounds)]
                cli = [cli_page(path, argv, args.page) for _ in range(args.rounds)]
                results[f"{label}: {name}"] = {"api": api, "cli": cli}
                print(
                    f"{name:46s} {statistics.median(api):7.1f} ({min(api):.0f}-{max(api):.0f})"
                    f"{'':4s} {statistics.median(cli):7.1f} ({min(cli):.0f}-{max(cli):.0f})",
                    flush=True,
                )
        finally:
            if ingest is not None:
                ingest.close()
                print(f"(the writer inserted {ingest.written} messages meanwhile)")


if __name__ == "__main__":
    sys.exit(main())
