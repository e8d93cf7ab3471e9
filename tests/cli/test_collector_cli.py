"""`syslogkit collect`, `tail` and `query` as a user runs them (subprocesses, real sockets)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.collector import wait_for
from syslogkit.cli.forms import parse_duration, parse_size, parse_time
from syslogkit.collector import Store

PY = sys.executable


def run(
    *args: str, cwd: Path | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "syslogkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Collect:
    """`python -m syslogkit collect ARGS` in a folder; `urls` from its 'listening on' lines."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [PY, "-m", "syslogkit", "collect", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
        )
        self.out: list[str] = []
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.out.append(line.rstrip("\n"))
            if line.startswith("try:"):
                break
        else:
            self.proc.kill()
        if not self.out or not self.out[-1].startswith("try:"):
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"collect did not start: {self.out} {err}")
        self.urls = [line.split()[-1] for line in self.out if line.startswith("listening on ")]

    def port(self, scheme: str) -> int:
        return int(next(u for u in self.urls if u.startswith(scheme)).rsplit(":", 1)[1])

    def terminate(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


def port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def send_tcp(port: int, *messages: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"".join(b"%d %b" % (len(m), m) for m in messages))


def send_udp(port: int, *messages: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for m in messages:
            s.sendto(m, ("127.0.0.1", port))


def test_collect_without_arguments(tmp_path: Path) -> None:
    if not port_free(5514):
        pytest.skip("127.0.0.1:5514 is in use (another collector?)")
    c = Collect(tmp_path)
    assert c.urls == ["udp://127.0.0.1:5514", "tcp://127.0.0.1:5514"]
    assert "storing into syslog.db" in c.out
    assert c.out[-1] == 'try: syslogkit send "hello"'
    send_udp(5514, b"<13>1 - h app - - - over udp")
    send_tcp(5514, b"<13>1 - h app - - - over tcp")
    db = tmp_path / "syslog.db"
    wait_for(lambda: db.exists() and Store(db, readonly=True).count() == 2, what="2 stored")
    code, _out, err = c.terminate(signal.SIGINT)  # Ctrl-C
    assert code == 0, err
    assert "stored=2" in err


def test_collect_sigterm_drains_and_exits_0(tmp_path: Path) -> None:
    c = Collect(
        tmp_path,
        "-l",
        "tcp://127.0.0.1:0",
        "-l",
        "udp://127.0.0.1:0",
        "--db",
        "x.db",
        "--commit-interval",
        "30",  # nothing is committed by the timer: only the shutdown drain commits
        "--stats-file",
        "stats.json",
    )
    msgs = [b"<13>1 - h app - - - m%05d" % i for i in range(3000)]
    sender = threading.Thread(target=send_tcp, args=(c.port("tcp"), *msgs))
    sender.start()
    send_udp(c.port("udp"), *msgs[:50])
    sender.join(10)
    code, _out, err = c.terminate()
    assert code == 0, err
    store = Store(tmp_path / "x.db", readonly=True)
    assert store.count() == 3050
    store.close()
    stats = json.loads((tmp_path / "stats.json").read_text())
    by_scheme = {entry["url"].split(":")[0]: entry for entry in stats["listeners"]}
    assert by_scheme["tcp"]["received"] == 3000 and by_scheme["udp"]["received"] == 50
    assert stats["pipeline"]["committed"] == 3050


OFFSETLESS = b"<38>2026-12-02T02:00:00 localhost prg00000[1234]: no offset"


def test_counts_zones_and_notes_in_summary_stats_file_and_query(tmp_path: Path) -> None:
    """Each record is counted as what happened to it (parsed, noted, unparsed) in the summary
    line, the stats file and `query`; a timestamp without an offset is read in the collector's
    local zone (TZ), or a listener's own (?tz=), and keeps its note."""
    c = Collect(
        tmp_path,
        "-l",
        "tcp://127.0.0.1:0",
        "-l",
        "udp://127.0.0.1:0?tz=UTC",
        "--db",
        "z.db",
        "--stats-file",
        "stats.json",
        env={"TZ": "Asia/Kolkata"},  # +05:30 all year
    )
    send_tcp(
        c.port("tcp"),
        b"<13>1 2026-01-01T10:00:00Z h app - - - clean",
        b"<34>Oct 11 22:14:15 mymachine su: classic BSD, no zone either",
        OFFSETLESS,
        b"\x00\x01 not syslog at all",
    )
    send_udp(c.port("udp"), OFFSETLESS)
    db = tmp_path / "z.db"
    wait_for(lambda: db.exists() and Store(db, readonly=True).count() == 5, what="5 stored")
    code, _out, err = c.terminate()
    assert code == 0, err
    tcp_line = next(line for line in err.splitlines() if line.startswith("tcp://"))
    assert "received=4 parsed=2 noted=1 unparsed=1" in tcp_line
    assert "received=1 parsed=0 noted=1 unparsed=0" in err
    stats = json.loads((tmp_path / "stats.json").read_text())
    by_scheme = {entry["url"].split(":")[0]: entry for entry in stats["listeners"]}
    tcp = by_scheme["tcp"]
    assert (tcp["received"], tcp["parsed"], tcp["noted"], tcp["unparsed"]) == (4, 2, 1, 1)
    assert "failed" not in tcp

    unparsed = run("query", "--db", str(db), "--json", "--errors")
    [junk] = [json.loads(line) for line in unparsed.stdout.splitlines()]
    assert junk["facility"] is None and junk["error"]
    noted = [
        json.loads(line)
        for line in run("query", "--db", str(db), "--json", "--noted").stdout.splitlines()
    ]
    # sorted: the TCP and UDP listeners' records may be stored in either order
    assert sorted((r["transport"], r["timestamp"]) for r in noted) == [
        ("tcp", "2026-12-02T02:00:00+05:30"),  # the collector's zone (TZ)
        ("udp", "2026-12-02T02:00:00+00:00"),  # the listener's ?tz=UTC
    ]
    assert all("without a UTC offset" in r["error"] for r in noted)
    everything = [
        json.loads(line) for line in run("query", "--db", str(db), "--json").stdout.splitlines()
    ]
    classic = next(r for r in everything if r["hostname"] == "mymachine")
    assert classic["error"] is None and classic["timestamp"].endswith("T22:14:15+05:30")
    both = run("query", "--db", str(db), "--errors", "--noted")
    assert both.returncode == 2 and "give one" in both.stderr


def test_collect_timezone_option(tmp_path: Path) -> None:
    c = Collect(
        tmp_path, "-l", "tcp://127.0.0.1:0", "--db", "t.db", "--timezone", "America/New_York"
    )
    send_tcp(c.port("tcp"), OFFSETLESS)
    db = tmp_path / "t.db"
    wait_for(lambda: db.exists() and Store(db, readonly=True).count() == 1, what="1 stored")
    code, _out, err = c.terminate()
    assert code == 0, err
    [record] = Store(db, readonly=True).query()
    assert record.message is not None and record.message.timestamp is not None
    assert record.message.timestamp.isoformat() == "2026-12-02T02:00:00-05:00"  # EST in December
    bad = run("collect", "-l", "tcp://127.0.0.1:0", "--timezone", "Mars/Olympus", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown time zone" in bad.stderr


def test_collect_usage_errors(tmp_path: Path) -> None:
    bad = run("collect", "-l", "smtp://127.0.0.1:25", cwd=tmp_path)
    assert bad.returncode == 2 and "scheme must be one of" in bad.stderr
    assert "Traceback" not in bad.stderr
    tls = run("collect", "-l", "tls://127.0.0.1:0", cwd=tmp_path)
    assert tls.returncode == 2 and "--tls-cert" in tls.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = run("collect", "-l", f"tcp://127.0.0.1:{s.getsockname()[1]}", cwd=tmp_path)
    assert busy.returncode == 2 and "cannot listen" in busy.stderr


@pytest.fixture
def filled_db(tmp_path: Path) -> Iterator[Path]:
    c = Collect(tmp_path, "-l", "tcp://127.0.0.1:0", "--db", "q.db")
    send_tcp(
        c.port("tcp"),
        b"<11>1 2026-01-01T10:00:00Z web1 nginx 1 - - upstream timed out",
        b"<14>1 2026-01-01T11:00:00Z web1 nginx 1 - - GET / 200",
        b"<12>1 2026-01-01T12:00:00Z db1 postgres 2 - - disk almost full",
        b"<15>1 2026-01-01T13:00:00Z db1 postgres 2 - - checkpoint done",
        b"<13>1 2026-01-01T14:00:00Z db1 app - - - latin1 caf\xe9",
        b"\x00\x01 not syslog at all \xff",
    )
    db = tmp_path / "q.db"
    wait_for(lambda: db.exists() and Store(db, readonly=True).count() == 6, what="6 stored")
    code, _out, err = c.terminate()
    assert code == 0, err
    yield db


def test_query_json(filled_db: Path) -> None:
    result = run("query", "--db", str(filled_db), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 6
    first = rows[0]
    for key in ("received_at", "peer", "transport", "hostname", "app_name", "severity", "raw"):
        assert key in first
    assert first["transport"] == "tcp" and first["peer"].startswith("127.0.0.1:")
    assert first["msg"] == "upstream timed out" and first["severity"] == 3
    assert first["timestamp"] == "2026-01-01T10:00:00+00:00"
    latin1 = rows[4]
    assert base64.b64decode(latin1["msg_b64"]) == b"latin1 caf\xe9"
    junk = rows[5]
    assert junk["error"] and base64.b64decode(junk["raw_b64"]) == b"\x00\x01 not syslog at all \xff"


def test_query_over_several_stores_merges_them_in_arrival_order(
    filled_db: Path, tmp_path: Path
) -> None:
    """Stores that each hold a part (e.g. sharing one JetStream durable) read as one."""
    other = tmp_path / "other.db"
    shutil.copytree(filled_db, other)
    both = ("--db", str(filled_db), "--db", str(other))
    result = run("query", *both, "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 12
    assert [r["received_at"] for r in rows] == sorted(r["received_at"] for r in rows)
    alone = run("query", "--db", str(filled_db), "--json").stdout.splitlines()
    single = [json.loads(line) for line in alone]
    assert sorted(map(json.dumps, rows)) == sorted(map(json.dumps, single * 2))
    assert run("query", *both, "--count").stdout.strip() == "12"
    assert run("query", *both, "--count", "-p", "warning").stdout.strip() == "4"
    assert len(run("query", *both, "--json", "--limit", "3").stdout.splitlines()) == 3
    newest = [
        json.loads(line)
        for line in run("query", *both, "--json", "--newest-first").stdout.splitlines()
    ]
    assert [r["received_at"] for r in newest] == sorted(
        (r["received_at"] for r in newest), reverse=True
    )


def msgs_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["msg"] for line in result.stdout.splitlines()]


def test_query_filters(filled_db: Path) -> None:
    db = str(filled_db)
    assert msgs_of(run("query", "--db", db, "--json", "-p", "warning")) == [
        "upstream timed out",
        "disk almost full",
    ]
    assert msgs_of(run("query", "--db", db, "--json", "--host", "db1", "--app", "postgres")) == [
        "disk almost full",
        "checkpoint done",
    ]
    assert msgs_of(run("query", "--db", db, "--json", "--search", "disk")) == ["disk almost full"]
    assert msgs_of(
        run(
            "query",
            "--db",
            db,
            "--json",
            "--since",
            "2026-01-01T10:30:00Z",
            "--until",
            "2026-01-01T12:30:00Z",
        )
    ) == ["GET / 200", "disk almost full"]
    newest = run("query", "--db", db, "--json", "--limit", "1", "--newest-first")
    [row] = [json.loads(line) for line in newest.stdout.splitlines()]
    assert row["error"] and row["id"] == 6
    count = run("query", "--db", db, "--count", "--errors")
    assert count.returncode == 0 and count.stdout.strip() == "1"


def test_query_table_and_colour(filled_db: Path) -> None:
    table = run("query", "--db", str(filled_db), "--host", "web1")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "HOST", "APP", "SEVERITY", "MESSAGE"]
    assert "upstream timed out" in lines[1] and "err" in lines[1]
    assert "\x1b[" not in table.stdout  # not a terminal
    coloured = run("query", "--db", str(filled_db), "--host", "web1", "--color", "always")
    assert "\x1b[91m" in coloured.stdout  # err in red


def test_query_missing_store(tmp_path: Path) -> None:
    result = run("query", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2
    assert "no store at" in result.stderr and "Traceback" not in result.stderr


def test_tail_follows(tmp_path: Path) -> None:
    c = Collect(tmp_path, "-l", "tcp://127.0.0.1:0", "--db", "t.db")
    try:
        send_tcp(c.port("tcp"), *(b"<14>1 - h app - - - early %d" % i for i in range(5)))
        db = tmp_path / "t.db"
        wait_for(lambda: db.exists() and Store(db, readonly=True).count() == 5, what="5")
        once = run("tail", "--db", str(db), "-n", "2", "--no-follow")
        assert once.returncode == 0
        assert [line.split(": ", 1)[1] for line in once.stdout.splitlines()] == [
            "early 3",
            "early 4",
        ]
        tail = subprocess.Popen(
            [PY, "-m", "syslogkit", "tail", "--db", str(db), "-n", "1", "--json", "-p", "err"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert tail.stdout is not None
        time.sleep(0.5)
        send_tcp(
            c.port("tcp"),
            b"<14>1 - h app - - - info, filtered out",
            b"<11>1 - h app - - - an error",
            b"<10>1 - h app - - - critical",
        )
        got = [json.loads(tail.stdout.readline())["msg"] for _ in range(2)]
        assert got == ["an error", "critical"]
        tail.send_signal(signal.SIGTERM)
        assert tail.wait(10) == 0
    finally:
        c.terminate()


def test_time_size_duration_parsing() -> None:
    assert parse_duration("90") == 90 and parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400
    assert parse_size("64M") == 64 << 20 and parse_size("2G") == 2 << 30
    assert parse_size("1048576") == 1 << 20
    now = 1_800_000_000.0
    assert parse_time("10m", now) == now - 600
    assert parse_time("2h ago", now) == now - 7200
    assert parse_time("2026-01-31T12:00:00Z") == 1769860800.0
    assert parse_time("2026-01-31T13:00:00+01:00") == 1769860800.0
    assert parse_time("1769860800") == 1769860800.0


def test_collect_max_connections_per_peer_refuses_tells_and_sums_up(tmp_path: Path) -> None:
    """`--max-connections-per-peer 2` on one listener, `?max_connections_per_peer=4` on the
    other: the rest of one peer's connections refused, told in a line naming the peer,
    counted per peer in the stats file and in the summary at exit."""
    c = Collect(
        tmp_path,
        "-l",
        "tcp://127.0.0.1:0",
        "-l",
        "relp://127.0.0.1:0?max_connections_per_peer=4",
        "--db",
        "x.db",
        "--max-connections-per-peer",
        "2",
        "--stats-file",
        "stats.json",
        "--stats-interval",
        "0.1",
    )
    held: list[socket.socket] = []
    try:
        for scheme in ("tcp", "relp"):
            for _ in range(6):
                held.append(socket.create_connection(("127.0.0.1", c.port(scheme)), timeout=5))

        def refused() -> dict[str, int]:
            with contextlib.suppress(OSError, ValueError):
                stats = json.loads((tmp_path / "stats.json").read_text())
                return {e["url"].split(":")[0]: e["refused"] for e in stats["listeners"]}
            return {}

        wait_for(lambda: refused() == {"tcp": 4, "relp": 2}, what="4 and 2 refused")
        stats = json.loads((tmp_path / "stats.json").read_text())
        assert stats["listeners"][0]["peers"] == [
            {"peer": "127.0.0.1", "active": 2, "connections": 2, "refused": 4, "cut": 0}
        ]
    finally:
        for sock in held:
            sock.close()
    code, _out, err = c.terminate()
    assert code == 0, err
    told = [line for line in err.splitlines() if "refused connections" in line]
    assert told and all("from 127.0.0.1" in line for line in told), err
    assert "2 per peer, 512 in all" in told[0]
    assert any(line.startswith("tcp://") and "refused=4" in line for line in err.splitlines())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-connections-per-peer", "0"], "--max-connections-per-peer must be at least 1"),
        (["-l", "tcp://127.0.0.1:0?max_connections_per_peer=x"], "must be a number >= 1"),
    ],
)
def test_collect_refuses_a_limit_per_peer_below_one(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    bad = run("collect", *args, cwd=tmp_path)
    assert bad.returncode == 2 and expected in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_collect_says_what_the_size_cap_deleted_and_counts_add_up(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    c = Collect(
        tmp_path, "-l", "tcp://127.0.0.1:0", "--db", "capped.db", "--retention-size", "3M",
        "--retention-age", "7d", "--stats-file", str(stats), "--stats-interval", "0.1",
    )  # fmt: skip
    sent = 20_000
    pad = "x" * 300
    send_tcp(c.port("tcp"), *(f"<13>1 - h app - - - {i} {pad}".encode() for i in range(sent)))

    def committed() -> bool:
        try:
            return bool(json.loads(stats.read_text())["pipeline"]["committed"] == sent)
        except (OSError, ValueError, KeyError):
            return False

    wait_for(committed, what=f"{sent} committed")
    code, _out, err = c.terminate()
    assert code == 0, err
    assert f"stored={sent} " in err
    line = next(
        line for line in err.splitlines() if line.startswith("store ") and "committed=" in line
    )
    counts = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
    deleted = int(counts["retention_deleted"])
    assert counts["committed"] == str(sent) and deleted > 0
    assert counts["retention_deleted_young"] == str(deleted)
    assert "the size cap deleted" in err and "too small for the traffic" in err
    [lane] = json.loads(stats.read_text())["pipeline"]["sinks"]
    assert lane["retention_deleted"] == deleted
    db = tmp_path / "capped.db"
    kept = int(run("query", "--db", str(db), "--count").stdout)
    assert kept + deleted == sent
    assert sum(f.stat().st_blocks * 512 for f in db.iterdir()) <= 3 * 1024 * 1024
