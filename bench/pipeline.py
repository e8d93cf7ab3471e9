"""Records/s from a sender through edge collector(s) and NATS JetStream into a store, beside
`syslogkit collect` storing directly, in one run, with the CPU per record of each process.

    .venv/bin/python bench/pipeline.py [--count 100000] [--repeat 3] [--replicas 3]

Senders write octet-counted RFC 5424 frames over TCP (one connection per edge, the whole
stream in large writes, so the sender is not the bottleneck). Each case runs in fresh
processes on a fresh 3-node cluster (loopback, high ports); the rate is records stored per
second of wall time from the first byte sent to the last record committed. CPU per record is
each process's user+system time (from /proc) divided by the records it handled. Everything
shares this machine's cores: the figures are a ratio between cases, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.peers.nats import CollectProcess, NatsCluster
from syslogkit.collector import Store, StoreError
from syslogkit.collector.nats import NatsOptions, StreamSettings, ensure_stream

_TICKS = 100.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / _TICKS


def frames(prefix: str, count: int) -> bytes:
    msgs = (
        f"<134>1 2026-01-31T12:00:00.000000Z web-{i % 7} app 42 req"
        f' [req@32473 id="{i}" path="/x"] {prefix} request {i:07d} served'.encode()
        for i in range(count)
    )
    return b"".join(b"%d %b" % (len(m), m) for m in msgs)


def send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)


def count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with Store(db, readonly=True) as store:
            return store.count()
    except (StoreError, sqlite3.Error):
        return 0


def wait_rows(db: Path, count: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while count_rows(db) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count_rows(db)} of {count} stored in {db}")
        time.sleep(0.05)
    return time.monotonic()


def run_case(edges: int, count: int, replicas: int, folder: Path) -> dict[str, float]:
    """0 edges: `syslogkit collect` alone; else edges -> JetStream -> one store."""
    per_edge = count // max(edges, 1)
    total = per_edge * max(edges, 1)
    payloads = [frames(f"e{i}", per_edge) for i in range(max(edges, 1))]
    procs: list[tuple[str, CollectProcess]] = []
    cluster = None
    try:
        if edges == 0:
            direct = CollectProcess(
                folder / "direct", "-l", "tcp://127.0.0.1:0", "--db", str(folder / "direct.db")
            ).start()
            procs.append(("collect", direct))
            ports = [direct.port("tcp")]
            db = folder / "direct.db"
        else:
            cluster = NatsCluster(folder / "nats", 3).start()
            settings = StreamSettings(replicas=replicas)
            asyncio.run(ensure_stream(NatsOptions(cluster.urls), settings))
            db = folder / "store" / "store.db"
            store = CollectProcess(folder / "store", "-l", cluster.url, "--db", str(db)).start()
            procs.append(("store", store))
            ports = []
            for i in range(edges):
                e = CollectProcess(
                    folder / f"edge{i}", "-l", "tcp://127.0.0.1:0", "--nats", cluster.url
                ).start()
                procs.append((f"edge{i}", e))
                ports.append(e.port("tcp"))
        cpu0 = {name: cpu_seconds(p.proc.pid) for name, p in procs if p.proc}
        nats0 = sum(cpu_seconds(n.proc.pid) for n in cluster.nodes if n.proc) if cluster else 0.0
        start = time.monotonic()
        threads = [
            threading.Thread(target=send, args=(port, payloads[i])) for i, port in enumerate(ports)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = wait_rows(db, total)
        out = {"rate": total / (end - start)}
        for name, p in procs:
            assert p.proc is not None
            handled = per_edge if name.startswith("edge") else total
            out[f"cpu_us:{name}"] = (cpu_seconds(p.proc.pid) - cpu0[name]) / handled * 1e6
        if cluster:
            nats_cpu = sum(cpu_seconds(n.proc.pid) for n in cluster.nodes if n.proc) - nats0
            out["cpu_us:nats(3 nodes)"] = nats_cpu / total * 1e6
        return out
    finally:
        for _name, p in procs:
            p.stop()
        if cluster:
            cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=3)
    args = ap.parse_args()
    cases = {"collect alone": 0, "1 edge -> JetStream -> store": 1, "2 edges -> ...": 2}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, edges in cases.items():
            with tempfile.TemporaryDirectory() as tmp:
                results[name].append(run_case(edges, args.count, args.replicas, Path(tmp)))
    base = statistics.median(r["rate"] for r in results["collect alone"])
    print(f"{args.count} records, R{args.replicas} stream, median of {args.repeat} [range]")
    for name, runs in results.items():
        rates = [r["rate"] for r in runs]
        med = statistics.median(rates)
        print(
            f"{name:32s} {med:9.0f} rec/s [{min(rates):.0f}-{max(rates):.0f}]"
            f"  {med / base:4.2f}x collect alone"
        )
        for key in runs[0]:
            if key.startswith("cpu_us:"):
                values = [r[key] for r in runs]
                print(
                    f"    {key[7:]:24s} {statistics.median(values):6.1f} us/record"
                    f" [{min(values):.1f}-{max(values):.1f}]"
                )


if __name__ == "__main__":
    main()
