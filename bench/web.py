"""Benchmark: the web UI's queries over a large store (target: each under 300 ms at 1M messages).

Fills a store in a temporary folder with `--count` messages (default 1,000,000) through the
store's public insert path (`Store.insert`, batches of 20,000 records, no network), spread evenly
over the last `--span` hours (default 24: "last 24 h" then covers every message, the worst
case), then times what the page asks for when it opens a view, over HTTP against the real
server (`WebServer`, JSON included) and, beside it, the `StoreReader` call alone:

- the first page (100 newest), the histogram, the facets (top hosts and apps)
- for "last 24 h", "last 1 h", full-text searches for a rare word (1 in 1000 messages) and
  a common one (1 in 4), and a host + severity filter

Histogram and facets of a plain time range read the store's per-minute rollups; searches and
other filters count the matching messages (see `syslogkit.web.source`).

Each figure is the median of `--repeat` runs (default 5) with the range (min-max).

    .venv/bin/python bench/web.py                 # 1M messages, about a minute to fill
    .venv/bin/python bench/web.py --count 100000  # quicker
    .venv/bin/python bench/web.py --keep DIR      # keep the store (reused when it exists)
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from syslogkit.codec.message import Facility, SDElement, Severity, SyslogMessage
from syslogkit.collector import Filters, Record, Store
from syslogkit.web.params import parse_view
from syslogkit.web.render import bucket_step
from syslogkit.web.server import WebServer
from syslogkit.web.source import StoreReader

HOSTS = [f"web{n}" for n in range(20)] + [f"db{n}" for n in range(5)]
APPS = ["nginx", "shop", "postgres", "sshd", "kernel", "cron", "redis", "worker"]
WORDS = [
    "request",
    "served",
    "order",
    "paid",
    "cache",
    "miss",
    "query",
    "slow",
    "user",
    "login",
    "timeout",
    "retry",
]
TARGET_MS = 300.0


def fill(path: Path, count: int, span: float) -> None:
    store = Store(path, synchronous="OFF")
    now = time.time()
    start = now - span
    batch: list[Record] = []
    began = time.perf_counter()
    for n in range(count):
        when = start + span * n / count
        word = WORDS[n % len(WORDS)]
        text = f"{word} {n} took {n % 997} ms"
        if n % 4 == 0:
            text += " upstream"
        if n % 1000 == 0:
            text += " kernelpanic"
        host, app = HOSTS[n % len(HOSTS)], APPS[(n // 7) % len(APPS)]
        severity = Severity((n * 31) % 8)
        stamp = datetime.fromtimestamp(when, timezone.utc)
        message = SyslogMessage(
            facility=Facility.LOCAL0,
            severity=severity,
            version=1,
            timestamp=stamp,
            hostname=host,
            app_name=app,
            procid="42",
            msgid=None,
            structured_data=(SDElement("req@32473", (("id", str(n)),)),) if n % 3 == 0 else (),
            msg=text,
        )
        raw = f"<{128 + severity}>1 {stamp.isoformat()} {host} {app} 42 - - {text}".encode()
        batch.append(
            Record(
                raw=raw,
                received_at=when,
                transport="tcp",
                peer="127.0.0.1:40000",
                listener="tcp://127.0.0.1:5514",
                message=message,
            )
        )
        if len(batch) >= 20_000:
            store.insert(batch)
            store.commit()
            batch = []
    store.insert(batch)
    store.commit()
    store.close()
    took = time.perf_counter() - began
    print(f"filled {count:,} messages in {took:.1f} s ({count / took:,.0f}/s)", flush=True)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), min(times), max(times)


def fetch(port: int, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
        json.loads(body)
    finally:
        conn.close()


def direct(reader: StoreReader, what: str, params: dict[str, list[str]]) -> Callable[[], Any]:
    view = parse_view(params)
    filters: Filters = view.filters
    if what == "page":
        return lambda: reader.page(filters, before=None, limit=100)
    if what == "facets":
        return lambda: reader.facets(filters, limit=10)

    def histogram() -> Any:
        until = time.time()
        since = view.since if view.since is not None else until - 86400
        step = bucket_step(since, until)
        start = since // step * step
        return reader.histogram(
            filters, start=start, step=step, buckets=int(-(-(until - start) // step))
        )

    return histogram


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--span", type=float, default=24.0, help="hours the messages cover")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="keep (and reuse) the store there")
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="syslogkit-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"web-{args.count}.db"
    if not db.exists():
        fill(db, args.count, args.span * 3600)
    else:  # a kept store: opened for writing once, as a collector would (rollups built if missing)
        began = time.perf_counter()
        Store(db).close()
        print(f"opened for writing in {time.perf_counter() - began:.1f} s")
    size = sum(f.stat().st_blocks * 512 for f in db.rglob("*") if f.is_file()) if db.is_dir() else 0
    print(f"store: {db} ({size / 2**20:.0f} MiB, {len(list(db.glob('p*.db')))} files)")
    views: list[tuple[str, dict[str, list[str]]]] = [
        ("last 24 h", {"range": ["24h"]}),
        ("last 1 h", {"range": ["1h"]}),
        ("search rare word, 24 h", {"range": ["24h"], "q": ["kernelpanic"]}),
        ("search common word, 24 h", {"range": ["24h"], "q": ["upstream"]}),
        ("host + severity<=err, 24 h", {"range": ["24h"], "host": ["web3"], "severity": ["3"]}),
    ]
    endpoints = [
        ("page", "/api/messages"),
        ("histogram", "/api/histogram"),
        ("facets", "/api/facets"),
    ]
    reader = StoreReader(db)
    missed = []
    with WebServer(db, "127.0.0.1", 0) as server:
        print(f"\n{'view':<28} {'query':<10} {'HTTP ms (median, range)':>26} {'reader ms':>22}")
        for label, params in views:
            query = urlencode(params, doseq=True)
            for what, path in endpoints:
                http_ms = timed(lambda p=path, q=query: fetch(server.port, f"{p}?{q}"), args.repeat)
                reader_ms = timed(direct(reader, what, params), args.repeat)
                flag = (
                    "" if http_ms[0] < TARGET_MS else f"  MISSED by {http_ms[0] - TARGET_MS:.0f} ms"
                )
                if flag:
                    missed.append((label, what, http_ms[0]))
                print(
                    f"{label:<28} {what:<10} {http_ms[0]:>8.0f} ({http_ms[1]:.0f}-{http_ms[2]:.0f})"
                    f"{'':>8} {reader_ms[0]:>8.0f} ({reader_ms[1]:.0f}-{reader_ms[2]:.0f}){flag}",
                    flush=True,
                )
    reader.close()
    print(f"\ntarget: each under {TARGET_MS:.0f} ms; missed: {len(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
