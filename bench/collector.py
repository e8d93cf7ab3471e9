"""Collector ingest benchmark: syslogkit's collector vs rsyslog and syslog-ng, same stream and run.

    .venv/bin/python bench/collector.py            # about 6 minutes
    .venv/bin/python bench/collector.py --quick    # smaller, for a smoke test
    .venv/bin/python bench/collector.py --sections tcp --receivers sqlite,syslog-ng

TCP: N octet-counted RFC 5424 messages with structured data, written as fast as one socket takes
them, into (a) `syslogkit collect` storing into SQLite, over one connection and (`sqlite-2conn`)
over two at once (the stream cut in two) and (`sqlite-routes`) behind five routes (the figure
is its ratio to `sqlite`), (b) `syslogkit collect --no-db --jsonl`, (c) rsyslogd
(imtcp -> omfile, RSYSLOG_FileFormat) and, where it is unpacked (.ci/run) or installed, (d)
syslog-ng (`syslog()` source -> JSON lines of its parse, the JSON-lines sink's work). Each
receiver is a fresh process per run; a run is timed from the connect until the receiver has
committed (SQLite), written (JSON lines, counted by the collector once flushed) or written to
its file (rsyslog, syslog-ng) every message. Median of 3 interleaved runs, msgs/s and ratios to
rsyslog and to syslog-ng; CPU per message of each process (the collector and its writer
process; the peers) from /proc, and their peak RSS (VmHWM) under this overload.

UDP: the collector into SQLite at fixed rates for `--udp-seconds` (>= 10 s) each; loss per rate
from what was stored and from the kernel's drop counter of the collector's socket
(/proc/net/udp `drops`, which the collector reports in its stats file).

loggen (syslog-ng's load generator, where syslog-ng is unpacked): its BSD message (RFC 3164 with
an RFC 3339 timestamp without an offset) and RFC 5424 (`-P`), over TCP at full speed into SQLite
(msgs/s, median and range, and the BSD / RFC 5424 ratio; the parsed/noted/unparsed split) and
over UDP at `--loggen-udp-rates` (loss). `--sections` picks among tcp, udp and loggen;
`--only-loggen` runs just that section.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_stream(n: int) -> bytes:
    out = []
    for i in range(n):
        msg = (
            b"<165>1 2026-01-02T03:04:05.%06dZ host%d.example.com app%d %d ID47"
            b' [exampleSDID@32473 iut="3" eventSource="Application" eventID="%d"]'
            b" message number %d with some text to make it typical"
            % (i % 1_000_000, i % 7, i % 5, 1000 + i % 100, i, i)
        )
        out.append(b"%d %b" % (len(msg), msg))
    return b"".join(out)


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {port}")


def send_all(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.02)
    return False


#: `sqlite-routes`: the store behind five routes (collector/routes.py) that every record walks
#: to the end: four that do not match this stream (facility, host glob, peer CIDR, a regex on
#: MSG, as an operator writes them), then the catch-all into the store
FIVE_ROUTES = """
[sinks.store]
kind = "store"
path = "{db}"
[sinks.auth]
kind = "jsonl"
path = "auth.jsonl"
[[routes]]
match = {{ facility = ["auth", "authpriv"] }}
sinks = ["auth"]
final = true
[[routes]]
match = {{ host = "db-*", severity = "..err" }}
sinks = ["auth"]
[[routes]]
match = {{ peer = "10.0.0.0/8" }}
drop = true
[[routes]]
match = {{ app = ["sshd", "sudo"], msg = "(?i)failed password" }}
sinks = ["auth"]
[[routes]]
sinks = ["store"]
"""


# -- receivers ---------------------------------------------------------------------------------


class Collector:
    def __init__(self, work: Path, listen: str, *sink_args: str) -> None:
        self.stats_path = work / "stats.json"
        self.proc = subprocess.Popen(
            [
                PY,
                "-m",
                "syslogkit",
                "collect",
                "-l",
                listen,
                "--stats-file",
                str(self.stats_path),
                "--stats-interval",
                "0.1",
                *sink_args,
            ],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = ""
        for line in self.proc.stdout:
            if line.startswith("listening on "):
                self.url = line.split()[-1]
            if line.startswith("try:"):
                break
        if not self.url:
            raise RuntimeError("the collector did not start")
        self.port = int(self.url.rsplit(":", 1)[1])

    def stats(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.stats_path.read_text()))
        except (OSError, ValueError):
            return {}

    def committed(self) -> int:
        return int(self.stats().get("pipeline", {}).get("committed", 0))

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self.stats()


class FileReceiver:
    """A daemon writing one line per message into `self.out`; `lines()` counts them so far."""

    port: int
    out: Path
    proc: subprocess.Popen[bytes]
    _offset = 0
    _lines = 0

    def lines(self) -> int:
        try:
            with open(self.out, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        end = chunk.rfind(b"\n") + 1
        self._lines += chunk.count(b"\n", 0, end)
        self._offset += end
        return self._lines

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Rsyslog(FileReceiver):
    def __init__(self, work: Path) -> None:
        exe = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        self.port = free_port()
        self.out = work / "rsyslog-out.log"
        conf = work / "rsyslog.conf"
        (work / "rs-work").mkdir(exist_ok=True)
        conf.write_text(
            f'global(workDirectory="{work}/rs-work" maxMessageSize="8192"'
            ' net.enableDNS="off" processInternalMessages="on")\n'
            'module(load="imtcp")\n'
            f'ruleset(name="bench") {{ action(type="omfile" file="{self.out}"'
            ' template="RSYSLOG_FileFormat") }\n'
            f'input(type="imtcp" port="{self.port}" address="127.0.0.1" ruleset="bench")\n'
            f'*.* action(type="omfile" file="{work}/rsyslog-internal.log")\n'
        )
        self.proc = subprocess.Popen(
            [exe, "-n", "-f", str(conf), "-i", str(work / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)


def syslog_ng_root() -> Path | None:
    """syslog-ng unpacked by .ci/run (SYSLOG_NG_ROOT, /opt/syslog-ng), or installed."""
    for root in (Path(os.environ.get("SYSLOG_NG_ROOT", "/opt/syslog-ng")), Path("/")):
        if (root / "usr/sbin/syslog-ng").is_file():
            return root
    return None


class SyslogNg(FileReceiver):
    """syslog-ng: `syslog()` TCP source (octet counting, RFC 5424) into a JSON-lines file of
    its parse, the work of syslogkit's JSON-lines sink."""

    def __init__(self, work: Path, root: Path) -> None:
        self.port = free_port()
        self.out = work / "syslog-ng-out.jsonl"
        conf = work / "syslog-ng.conf"
        conf.write_text(
            "@version: 3.38\n"
            "options { use-dns(no); dns-cache(no); stats-freq(0); log-msg-size(8192); };\n"
            f'source s {{ syslog(ip("127.0.0.1") port({self.port}) transport("tcp")); }};\n'
            f'destination d {{ file("{self.out}"'
            ' template("$(format-json --scope rfc5424 --scope sdata)\\n")); };\n'
            "log { source(s); destination(d); };\n"
        )
        env = dict(os.environ)
        command = [str(root / "usr/sbin/syslog-ng"), "-F", "--no-caps", "-f", str(conf)]
        command += [f"--pidfile={work}/sng.pid", f"--persist-file={work}/sng.persist"]
        command += [f"--control={work}/sng.ctl"]
        if root != Path("/"):
            libs = root / "usr/lib/syslog-ng"
            env["LD_LIBRARY_PATH"] = str(libs)
            command.append(f"--module-path={sorted(libs.glob('3.*'))[-1]}")
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)


def split_stream(stream: bytes, parts: int) -> list[bytes]:
    """An octet-counted stream cut into `parts` streams of whole frames."""
    cuts = [0]
    target = len(stream) // parts
    pos = 0
    while len(cuts) < parts:
        while pos < len(stream) and pos - cuts[-1] < target:
            space = stream.index(b" ", pos)
            pos = space + 1 + int(stream[pos:space])
        cuts.append(pos)
    cuts.append(len(stream))
    return [stream[a:b] for a, b in itertools.pairwise(cuts)]


def process_cpu(pid: int) -> float:
    """CPU seconds of a process (user + system) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        out += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return out


def peak_rss_kib(pid: int) -> int:
    """The peak resident memory of a process (VmHWM), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


#: per TCP run of the collector: CPU per message of its processes, and their peak RSS
TCP_DETAILS: dict[str, list[dict[str, Any]]] = {}


def tcp_run(kind: str, stream: bytes, n: int, work: Path) -> float:
    """One run; returns msgs/s. `sqlite-2conn`: the same stream over two connections at once."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    daemon: FileReceiver | None = None
    collector: Collector | None = None
    if kind in ("rsyslog", "syslog-ng"):
        if kind == "rsyslog":
            daemon = Rsyslog(work)
        else:
            root = syslog_ng_root()
            assert root is not None
            daemon = SyslogNg(work, root)
        port = daemon.port
        count: Callable[[], int] = daemon.lines
    else:
        sinks = (
            ["--no-db", "--jsonl", "c.jsonl"] if kind == "jsonl" else ["--db", str(work / "c.db")]
        )
        if kind == "sqlite-routes":
            (work / "routes.toml").write_text(FIVE_ROUTES.format(db=work / "c.db"))
            sinks = ["--config", str(work / "routes.toml")]
        collector = Collector(work, "tcp://127.0.0.1:0", *sinks)
        port = collector.port
        count = collector.committed
    streams = split_stream(stream, 2) if kind == "sqlite-2conn" else [stream]
    pids = [collector.proc.pid, *child_pids(collector.proc.pid)] if collector else []
    if daemon is not None:
        pids = [daemon.proc.pid]
    cpu_before = [process_cpu(pid) for pid in pids]
    try:
        started = time.perf_counter()
        senders = [threading.Thread(target=send_all, args=(port, part)) for part in streams]
        for sender in senders:
            sender.start()
        ok = wait_until(lambda: count() >= n, timeout=120)
        elapsed = time.perf_counter() - started
        for sender in senders:
            sender.join(30)
        if not ok:
            raise RuntimeError(f"{kind}: only {count()} of {n} messages arrived")
        if pids:
            cpu = [
                (process_cpu(pid) - cpu0) / n * 1e6
                for pid, cpu0 in zip(pids, cpu_before, strict=False)
            ]
            TCP_DETAILS.setdefault(kind, []).append(
                {"cpu_us": cpu, "peak_rss_kib": [peak_rss_kib(pid) for pid in pids]}
            )
        return n / elapsed
    finally:
        if daemon is not None:
            daemon.stop()
        if collector is not None:
            collector.stop()


UDP_SENDER = r"""
import socket, sys, time
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
msgs = [b'<165>1 2026-01-02T03:04:05.000001Z host%d app 1 ID47 [ex@32473 seq="%d"] udp message %d'
        % (i % 7, i, i) for i in range(1000)]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))
sent = 0
start = time.perf_counter()
while True:
    now = time.perf_counter() - start
    if now >= seconds:
        break
    target = int(now * rate)
    while sent < target:
        s.send(msgs[sent % 1000])
        sent += 1
    time.sleep(0.0005)
print(sent)
"""


def udp_run(rate: int, seconds: float, work: Path) -> dict[str, Any]:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    collector = Collector(work, "udp://127.0.0.1:0", "--db", str(work / "u.db"))
    try:
        done = subprocess.run(
            [PY, "-c", UDP_SENDER, str(collector.port), str(rate), str(seconds)],
            capture_output=True,
            text=True,
            check=True,
        )
        sent = int(done.stdout.strip())
        last = -1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # until the store stops growing
            time.sleep(0.3)
            now = collector.committed()
            if now == last:
                break
            last = now
    finally:
        stats = collector.stop()
    listener = stats["listeners"][0]
    stored = int(stats["pipeline"]["committed"])
    return {
        "rate": rate,
        "seconds": seconds,
        "sent": sent,
        "received": listener["received"],
        "stored": stored,
        "lost": sent - stored,
        "loss_pct": 100.0 * (sent - stored) / sent if sent else 0.0,
        "kernel_drops": listener.get("kernel_drops"),
        "rcvbuf": listener.get("rcvbuf"),
    }


# -- loggen (syslog-ng's load generator) as the sender: BSD and RFC 5424 ------------------------

LOGGEN_FORMATS = {"bsd": [], "rfc5424": ["-P"]}


def loggen_command(root: Path, kind: str, fmt: str, port: int, *extra: str) -> list[str]:
    args = ["-S"] if kind == "tcp" else ["-D"]
    args += LOGGEN_FORMATS[fmt]
    if kind == "udp" and fmt == "rfc5424":
        args.append("-F")  # one message per datagram, no octet count
    return [str(root / "usr/bin/loggen"), *args, "-Q", *extra, "127.0.0.1", str(port)]


def loggen_env(root: Path) -> dict[str, str]:
    return dict(
        os.environ,
        LD_LIBRARY_PATH=f"{root}/usr/lib/syslog-ng:{root}/usr/lib",
        SYSLOGNG_PREFIX=f"{root}/usr",
    )


def loggen_tcp_run(root: Path, fmt: str, n: int, work: Path) -> dict[str, Any]:
    """loggen at full speed over one TCP connection into `syslogkit collect` (SQLite): msgs/s
    from loggen's start until the last record is committed."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    collector = Collector(work, "tcp://127.0.0.1:0", "--db", str(work / "l.db"))
    try:
        command = loggen_command(root, "tcp", fmt, collector.port, "-r", "10000000", "-n", str(n))
        started = time.perf_counter()
        subprocess.run(command, env=loggen_env(root), capture_output=True, check=True)
        ok = wait_until(lambda: collector.committed() >= n, timeout=120)
        elapsed = time.perf_counter() - started
        if not ok:
            raise RuntimeError(f"loggen {fmt}: only {collector.committed()} of {n} stored")
    finally:
        stats = collector.stop()
    listener = stats["listeners"][0]
    return {
        "rate": n / elapsed,
        "parsed": listener["parsed"],
        "noted": listener["noted"],
        "unparsed": listener["unparsed"],
    }


def loggen_udp_run(root: Path, fmt: str, rate: int, seconds: float, work: Path) -> dict[str, Any]:
    """loggen at `rate` msgs/s over UDP for `seconds`: what was stored of what it sent."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    collector = Collector(work, "udp://127.0.0.1:0", "--db", str(work / "u.db"))
    try:
        command = loggen_command(
            root, "udp", fmt, collector.port, "-r", str(rate), "-I", str(int(seconds))
        )
        done = subprocess.run(command, env=loggen_env(root), capture_output=True, text=True)
        sent = int(done.stderr.rsplit("count=", 1)[1].split(",", 1)[0])
        last = -1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # until the store stops growing
            time.sleep(0.3)
            now = collector.committed()
            if now == last:
                break
            last = now
    finally:
        stats = collector.stop()
    stored = int(stats["pipeline"]["committed"])
    return {
        "format": fmt,
        "rate": rate,
        "sent": sent,
        "stored": stored,
        "loss_pct": 100.0 * (sent - stored) / sent if sent else 0.0,
        "kernel_drops": stats["listeners"][0].get("kernel_drops"),
    }


def loggen_section(args: argparse.Namespace, base: Path, results: dict[str, Any]) -> None:
    root = syslog_ng_root()
    if root is None or not (root / "usr/bin/loggen").is_file():
        print("loggen: not unpacked (syslog-ng-core), skipped")
        return
    n = args.loggen_messages
    print(f"loggen over TCP at full speed into SQLite, {n} messages, median of {args.runs}:")
    runs: dict[str, list[dict[str, Any]]] = {fmt: [] for fmt in LOGGEN_FORMATS}
    for i in range(args.runs):
        for fmt in LOGGEN_FORMATS:
            r = loggen_tcp_run(root, fmt, n, base / f"loggen-{fmt}-{i}")
            runs[fmt].append(r)
            print(
                f"  run {i + 1} {fmt:8s} {r['rate']:10.0f} msgs/s"
                f"  parsed={r['parsed']} noted={r['noted']} unparsed={r['unparsed']}",
                flush=True,
            )
    medians = {fmt: statistics.median(r["rate"] for r in v) for fmt, v in runs.items()}
    ranges = {
        fmt: (min(r["rate"] for r in v), max(r["rate"] for r in v)) for fmt, v in runs.items()
    }
    for fmt in LOGGEN_FORMATS:
        low, high = ranges[fmt]
        print(f"  {fmt:8s} median {medians[fmt]:8.0f} msgs/s (range {low:.0f}-{high:.0f})")
    ratio = medians["bsd"] / medians["rfc5424"]
    print(f"  BSD / RFC 5424: {ratio:.2f}x")
    results["loggen_tcp"] = {"runs": runs, "median": medians, "bsd_vs_5424": ratio}
    print(f"loggen over UDP into SQLite, {args.udp_seconds:.0f} s per rate:")
    print(f"{'format':>8s} {'rate':>8s} {'sent':>9s} {'stored':>9s} {'loss':>7s} {'drops':>7s}")
    results["loggen_udp"] = []
    for rate in (int(r) for r in args.loggen_udp_rates.split(",")):
        for fmt in LOGGEN_FORMATS:
            r = loggen_udp_run(root, fmt, rate, args.udp_seconds, base / f"lu-{fmt}-{rate}")
            results["loggen_udp"].append(r)
            print(
                f"{fmt:>8s} {rate:8d} {r['sent']:9d} {r['stored']:9d} {r['loss_pct']:6.2f}%"
                f" {r['kernel_drops']!s:>7s}",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="TCP messages per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--udp-rates", default="20000,50000")
    parser.add_argument("--udp-seconds", type=float, default=10.0)
    parser.add_argument("--loggen-messages", type=int, default=200_000, help="loggen TCP run")
    parser.add_argument("--loggen-udp-rates", default="22000,50000")
    parser.add_argument("--only-loggen", action="store_true", help="only the loggen section")
    parser.add_argument(
        "--receivers",
        default="rsyslog,sqlite,sqlite-routes,sqlite-2conn,jsonl,syslog-ng",
        help="TCP receivers to compare (comma-separated; those not installed are left out)",
    )
    parser.add_argument(
        "--sections", default="tcp,udp,loggen", help="which sections to run (comma-separated)"
    )
    parser.add_argument("--quick", action="store_true", help="20k messages, 1 run, 2 s UDP")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs, args.udp_seconds = 20_000, 1, 2.0
        args.udp_rates = args.loggen_udp_rates = "20000"
        args.loggen_messages = 20_000
    have_rsyslog = bool(shutil.which("rsyslogd") or os.path.exists("/usr/sbin/rsyslogd"))
    n = args.messages
    stream = make_stream(n)
    base = Path(tempfile.mkdtemp(prefix="syslogkit-bench-"))
    print(
        f"TCP ingest: {n} octet-counted RFC 5424 messages with SD ({len(stream) / n:.0f} B"
        f" per frame), median of {args.runs}; {os.cpu_count()} CPUs"
    )
    results: dict[str, Any] = {"tcp": {}, "udp": []}
    if args.only_loggen:
        loggen_section(args, base, results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        shutil.rmtree(base, ignore_errors=True)
        return 0
    sections = set(args.sections.split(","))
    wanted = args.receivers.split(",")
    known = ("rsyslog", "sqlite", "sqlite-routes", "sqlite-2conn", "jsonl", "syslog-ng")
    unknown = [k for k in wanted if k not in known]
    if unknown:
        names = ", ".join(unknown)
        raise SystemExit(f"unknown receiver(s) {names}: choose from {', '.join(known)}")
    kinds = [
        k
        for k in wanted
        if (k != "rsyslog" or have_rsyslog) and (k != "syslog-ng" or syslog_ng_root() is not None)
    ]
    if "tcp" not in sections:
        kinds = []
    runs: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(args.runs):  # interleaved, so a busy moment hits every receiver alike
        for kind in kinds:
            rate = tcp_run(kind, stream, n, base / f"tcp-{kind}-{i}")
            runs[kind].append(rate)
            print(f"  run {i + 1} {kind:9s} {rate:10.0f} msgs/s", flush=True)
    medians = {k: statistics.median(v) for k, v in runs.items()}
    if not kinds:
        udp_and_loggen(args, sections, base, results)
        return 0
    print()
    print(f"{'receiver':34s} {'msgs/s':>10s} {'vs rsyslog':>11s}")
    labels = {
        "rsyslog": "rsyslogd imtcp -> omfile",
        "sqlite": "syslogkit collect -> SQLite",
        "sqlite-routes": "syslogkit -> SQLite, five routes",
        "sqlite-2conn": "syslogkit -> SQLite, 2 connections",
        "jsonl": "syslogkit collect -> JSON lines",
        "syslog-ng": "syslog-ng syslog() -> JSON lines",
    }
    for kind in kinds:
        ratio = medians[kind] / medians["rsyslog"] if "rsyslog" in medians else float("nan")
        print(f"{labels[kind]:34s} {medians[kind]:10.0f} {ratio:10.2f}x")
        results["tcp"][kind] = {"runs": runs[kind], "median": medians[kind], "ratio": ratio}
    if "syslog-ng" in medians:
        for kind in [k for k in ("sqlite", "sqlite-2conn", "jsonl") if k in medians]:
            ratio = medians[kind] / medians["syslog-ng"]
            print(f"{labels[kind]:34s} {'':10s} {ratio:10.2f}x syslog-ng")
            results["tcp"][kind]["ratio_syslog_ng"] = ratio
    if "sqlite-routes" in medians and "sqlite" in medians:
        ratio = medians["sqlite-routes"] / medians["sqlite"]
        print(f"{labels['sqlite-routes']:34s} {'':10s} {ratio:10.2f}x no routes")
        results["tcp"]["sqlite-routes"]["ratio_no_routes"] = ratio
    for kind, details in TCP_DETAILS.items():
        count = len(details[0]["cpu_us"])
        cpu = [statistics.median(d["cpu_us"][i] for d in details) for i in range(count)]
        rss = [max(d["peak_rss_kib"][i] for d in details) // 1024 for i in range(count)]
        print(
            f"{labels[kind]:34s} CPU per message {' + '.join(f'{c:.1f}' for c in cpu)} us"
            f" (process{'es' if count > 1 else ''}); peak RSS"
            f" {' + '.join(str(r) for r in rss)} MiB"
        )
        results["tcp"][kind]["cpu_us"] = cpu
        results["tcp"][kind]["peak_rss_mib"] = rss
    udp_and_loggen(args, sections, base, results)
    return 0


def udp_and_loggen(
    args: argparse.Namespace, sections: set[str], base: Path, results: dict[str, Any]
) -> None:
    if "udp" in sections:
        udp_section(args, base, results)
    if "loggen" in sections:
        print()
        loggen_section(args, base, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    shutil.rmtree(base, ignore_errors=True)


def udp_section(args: argparse.Namespace, base: Path, results: dict[str, Any]) -> None:
    print()
    print(f"UDP into SQLite, {args.udp_seconds:.0f} s per rate:")
    print(
        f"{'rate':>8s} {'sent':>9s} {'stored':>9s} {'lost':>7s} {'loss':>7s} {'kernel drops':>13s}"
    )
    for rate in (int(r) for r in args.udp_rates.split(",")):
        r = udp_run(rate, args.udp_seconds, base / f"udp-{rate}")
        results["udp"].append(r)
        print(
            f"{rate:8d} {r['sent']:9d} {r['stored']:9d} {r['lost']:7d} {r['loss_pct']:6.2f}%"
            f" {r['kernel_drops']!s:>13s}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
