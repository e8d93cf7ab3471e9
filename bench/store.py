"""Store benchmark: bytes on disk per raw byte, and the first page through `syslogkit query`.

Builds N RFC 5424 messages from the Loghub samples (`../shared/corpus/loghub/*.log`: each line
as MSG, its digits re-drawn so that no two messages are alike, the file's name as APP-NAME, one
of 8 hosts per file, a severity from the line's words, message times spread evenly over the
last 24 hours, a rare word in 1 of 10,000), sends them over TCP (octet counting) into
`syslogkit collect`, and reports:

- ingest: messages per second from the first byte sent until the last one is committed;
- size: `du` of the store (its folder, WAL and side files included; after the collector
  stopped) per raw byte sent (the RFC 5424 messages without framing);
- first page (100 newest matches) through the command, start-up included, best of 3: the
  newest messages, a common word, `--since 1h -p err`, a host, the rare word; `--count` of a
  common word.

`--today SRC` runs the same against another checkout's `src/` (e.g. `git archive main`) beside
this one. With pyarrow and duckdb installed (not dependencies of syslogkit: `pip install pyarrow
duckdb`), the Parquet section writes each sealed partition's rows as one Parquet file (zstd,
dictionary-encoded text columns, the raw bytes kept only for messages with a note or not
parsed) and times the same first pages with DuckDB over the folder, in a fresh interpreter
(import included): the measure for issue 19's sealed form, which the store does not write yet.

    .venv/bin/python bench/store.py --messages 200000
    .venv/bin/python bench/store.py --messages 1000000 --today /tmp/main/src --keep /tmp/bs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

PY = sys.executable
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "loghub"
RARE = "zqxjrareword"
COMMON = "error"
DIGITS = re.compile(rb"[0-9]")


def corpus_lines(folder: Path) -> list[tuple[str, bytes]]:
    """(app, line) for every non-empty line of the Loghub samples."""
    out: list[tuple[str, bytes]] = []
    for path in sorted(folder.glob("*.log")):
        app = path.name.split("_")[0].lower()
        for line in path.read_bytes().splitlines():
            line = line.strip()
            if line:
                out.append((app, line))
    if not out:
        raise SystemExit(f"no Loghub samples in {folder}")
    return out


def severity_of(line: bytes) -> int:
    low = line.lower()
    if b"fatal" in low or b"error" in low or b"fail" in low:
        return 3
    if b"warn" in low:
        return 4
    if b"debug" in low:
        return 7
    return 6


def make_messages(n: int, seed: int = 7) -> list[bytes]:
    """N RFC 5424 messages (unframed), oldest first."""
    lines = corpus_lines(CORPUS)
    rng = random.Random(seed)
    end = datetime.now(timezone.utc)
    start = end - timedelta(days=1)
    step = (end - start) / max(n, 1)
    out = []
    for i in range(n):
        app, line = lines[i % len(lines)]
        text = DIGITS.sub(lambda _m: b"%d" % rng.randrange(10), line)
        if i % 10_000 == 5_000:
            text += b" " + RARE.encode()
        when = (start + step * i).isoformat(timespec="microseconds").replace("+00:00", "Z")
        host = f"{app}-{rng.randrange(8)}"
        pri = 16 * 8 + severity_of(line)  # local0
        out.append(
            b"<%d>1 %s %s %s - - - %s" % (pri, when.encode(), host.encode(), app.encode(), text)
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    return env


def du(path: Path) -> int:
    if path.is_file():
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    else:
        files = list(path.rglob("*"))
    return sum(p.stat().st_blocks * 512 for p in files if p.is_file())


def ingest(messages: list[bytes], db: Path, src: Path | None) -> float:
    """Send the messages into a collector storing into `db`; msgs/s until committed."""
    work = db.parent
    stats = work / f"{db.name}.stats.json"
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "syslogkit", "collect", "-l", f"tcp://127.0.0.1:{port}", "--db", str(db),
         "--stats-file", str(stats), "--stats-interval", "0.2", "-q"],
        cwd=work, env=env_for(src), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            break
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"the collector did not start ({src or 'this checkout'})")
        time.sleep(0.1)
    stream = b"".join(b"%d %b" % (len(m), m) for m in messages)
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(stream)

    def committed() -> int:
        try:
            return int(json.loads(stats.read_text())["pipeline"]["committed"])
        except (OSError, ValueError, KeyError):
            return 0

    limit = time.monotonic() + 600
    while committed() < len(messages) and time.monotonic() < limit:
        time.sleep(0.05)
    took = time.monotonic() - began
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    return len(messages) / took


QUERIES: list[tuple[str, list[str]]] = [
    ("newest", []),
    (f"word '{COMMON}'", ["--search", COMMON]),
    ("--since 1h -p err", ["--since", "1h", "-p", "err"]),
    ("host linux-3", ["--host", "linux-3"]),
    ("rare word (1 in 10,000)", ["--search", RARE]),
]


def timed(command: list[str], env: dict[str, str], repeat: int = 3) -> tuple[float, str]:
    best = float("inf")
    out = ""
    for _ in range(repeat):
        began = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - began)
        out = done.stdout
    return best, out


def query_times(db: Path, src: Path | None) -> dict[str, Any]:
    env = env_for(src)
    out: dict[str, Any] = {}
    base = [PY, "-m", "syslogkit", "query", "--db", str(db)]
    for name, extra in QUERIES:
        seconds, text = timed([*base, *extra, "--newest-first", "--limit", "100", "--json"], env)
        out[name] = (seconds, len(text.splitlines()))
    seconds, text = timed([*base, "--search", COMMON, "--count"], env)
    out[f"--count '{COMMON}'"] = (seconds, int(text.strip() or 0))
    return out


# -- the sealed form of issue 19, measured beside the store ------------------------------------


def parquet_section(db: Path, raw_bytes: int, work: Path) -> dict[str, Any] | None:
    try:
        import pyarrow as pa
        import pyarrow.parquet
    except ImportError:
        print("parquet: pyarrow is not installed (pip install pyarrow duckdb): skipped")
        return None
    import sqlite3

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = work / "sealed"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    files = sorted(db.glob("p*.db")) if db.is_dir() else [db]
    began = time.perf_counter()
    for path in files:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        cur = con.execute(
            "SELECT id, received_at, time, timestamp, facility, severity, version, hostname,"
            " app_name, procid, msgid, sd, msg, CASE WHEN error IS NULL THEN NULL ELSE raw END,"
            " error, transport, peer, listener FROM messages ORDER BY id"
        )
        names = [d[0] for d in cur.description]
        names[13] = "raw"
        rows = cur.fetchall()
        con.close()
        if not rows:
            continue
        columns = list(zip(*rows, strict=True))
        table = pa.table({name: list(col) for name, col in zip(names, columns, strict=True)})
        pq.write_table(
            table,
            folder / (path.stem + ".parquet"),
            compression="zstd",
            compression_level=3,
            use_dictionary=["hostname", "app_name", "procid", "msgid", "transport", "peer",
                            "listener", "timestamp"],
            row_group_size=100_000,
        )  # fmt: skip
    write_seconds = time.perf_counter() - began
    size = du(folder)
    result: dict[str, Any] = {
        "bytes": size,
        "per_raw_byte": size / raw_bytes,
        "write_seconds": write_seconds,
    }
    try:
        import duckdb  # noqa: F401
    except ImportError:
        print("parquet: duckdb is not installed: no query times")
        return result
    glob = str(folder / "*.parquet")
    since = time.time() - 3600
    queries = {
        "newest": f"SELECT * FROM '{glob}' ORDER BY id DESC LIMIT 100",
        f"word '{COMMON}'": f"SELECT * FROM '{glob}' WHERE msg ILIKE '%{COMMON}%'"
        " ORDER BY id DESC LIMIT 100",
        "--since 1h -p err": f"SELECT * FROM '{glob}' WHERE time >= {since} AND severity <= 3"
        " ORDER BY id DESC LIMIT 100",
        "host linux-3": f"SELECT * FROM '{glob}' WHERE hostname = 'linux-3'"
        " ORDER BY id DESC LIMIT 100",
        "rare word (1 in 10,000)": f"SELECT * FROM '{glob}' WHERE msg LIKE '%{RARE}%'"
        " ORDER BY id DESC LIMIT 100",
        f"--count '{COMMON}'": f"SELECT count(*) FROM '{glob}' WHERE msg ILIKE '%{COMMON}%'",
    }
    times: dict[str, tuple[float, int]] = {}
    for name, sql in queries.items():
        code = "import duckdb, sys; rows = duckdb.sql(sys.argv[1]).fetchall(); print(len(rows))"
        seconds, text = timed([PY, "-c", code, sql], dict(os.environ))
        times[name] = (seconds, int(text.strip() or 0))
    result["queries"] = times
    imp, _ = timed([PY, "-c", "import duckdb"], dict(os.environ))
    result["import_duckdb_seconds"] = imp
    return result


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--today", type=Path, help="another checkout's src/ to compare with")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = p.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    messages = make_messages(args.messages)
    raw = sum(map(len, messages))
    print(f"{args.messages} messages from {CORPUS}, {raw / 1e6:.1f} MB raw")
    runs = [("this checkout", None, work / "new.db")]
    if args.today:
        runs.insert(0, (f"today ({args.today})", args.today, work / "today.db"))
    report: dict[str, Any] = {"messages": args.messages, "raw_bytes": raw}
    for name, src, db in runs:
        shutil.rmtree(db, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            db.unlink()
        rate = ingest(messages, db, src)
        size = du(db)
        times = query_times(db, src)
        report[name] = {
            "msgs_per_s": rate,
            "bytes": size,
            "per_raw_byte": size / raw,
            "queries": times,
        }
        print(
            f"\n{name}: ingest {rate:,.0f} msgs/s;"
            f" {size / 1e6:.1f} MB on disk = {size / raw:.2f}x raw"
        )
        for q, (seconds, n) in times.items():
            print(f"  {q:28s} {seconds * 1000:7.0f} ms  ({n})")
    sealed = parquet_section(work / "new.db", raw, work)
    if sealed is not None:
        report["parquet"] = sealed
        print(
            f"\nparquet (zstd-3, sealed form of issue 19, not written by the store yet):"
            f" {sealed['bytes'] / 1e6:.1f} MB = {sealed['per_raw_byte']:.2f}x raw,"
            f" written in {sealed['write_seconds']:.1f} s"
        )
        if "queries" in sealed:
            print(
                f"  import duckdb {sealed['import_duckdb_seconds'] * 1000:.0f} ms (in each below)"
            )
            for q, (seconds, n) in sealed["queries"].items():
                print(f"  {q:28s} {seconds * 1000:7.0f} ms  ({n})")
    (work / "report.json").write_text(json.dumps(report, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
