"""Handler throughput: records that arrive per second through `logger.warning(...)`.

syslogkit's SyslogHandler (synchronous delivery; background too, for reference) beside the
stdlib `SysLogHandler`, a minimal hand-written RFC 5424 handler, `rfc5424-logging-handler`
and `tlssysloghandler`, over UDP, TCP and TLS, all to the same receiver: a separate process on
loopback that drains its sockets as fast as it can and counts the records that arrive. One run,
about a minute; ratios at the end.

    .venv/bin/python bench/handler.py [--seconds 1.5] [--json]

Targets (DESIGN.md, issue 10): UDP sync >= 1.0x stdlib and >= 0.9x the minimal handler; TCP and
TLS sync >= 1.3x rfc5424-logging-handler, background (the default) >= 2.5x. Counting only what
arrives: UDP datagrams that the receiver lost do not count for anyone.

First, an A/B of thread CPU per record over UDP with sync delivery (syslogkit, stdlib, minimal,
and `NullHandler` as the floor of the logging call itself), steadier than arrival rates on a
busy machine; `--cpu-only` runs just that.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import multiprocessing
import os
import random
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path

MARKER = b"bench-msg"
TRANSPORTS = ("udp", "tcp", "tls")


# -- the receiver (its own process) ------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(TRANSPORTS, 0)

    def add(self, kind: str, n: int) -> None:
        if n:
            with self.lock:
                self.counts[kind] += n


def _count_stream(conn: socket.socket, kind: str, counter: _Counter) -> None:
    """Count markers in a byte stream (a marker may straddle two reads)."""
    keep = len(MARKER) - 1
    tail = b""
    try:
        while True:
            data = conn.recv(1 << 18)
            if not data:
                return
            chunk = tail + data
            counter.add(kind, chunk.count(MARKER))
            tail = chunk[-keep:]
    except OSError:
        return
    finally:
        conn.close()


def _serve_stream(
    listener: socket.socket, kind: str, counter: _Counter, context: ssl.SSLContext | None
) -> None:
    while True:
        conn, _ = listener.accept()
        if context is not None:
            try:
                conn = context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                continue
        threading.Thread(target=_count_stream, args=(conn, kind, counter), daemon=True).start()


def _serve_udp(sock: socket.socket, counter: _Counter) -> None:
    while True:
        data = sock.recv(65536)
        counter.add("udp", data.count(MARKER))


def receiver(pipe: Connection, cert: str, key: str) -> None:
    """Listen on UDP, TCP and TLS loopback ports; answer "count" requests on the pipe."""
    counter = _Counter()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.create_server(("127.0.0.1", 0), backlog=64)
    tls = socket.create_server(("127.0.0.1", 0), backlog=64)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    threading.Thread(target=_serve_udp, args=(udp, counter), daemon=True).start()
    for listener, kind, ctx in ((tcp, "tcp", None), (tls, "tls", context)):
        threading.Thread(
            target=_serve_stream, args=(listener, kind, counter, ctx), daemon=True
        ).start()
    pipe.send({k: s.getsockname()[1] for k, s in (("udp", udp), ("tcp", tcp), ("tls", tls))})
    while True:
        request = pipe.recv()
        if request == "stop":
            return
        with counter.lock:
            pipe.send(dict(counter.counts))


# -- the handlers compared ---------------------------------------------------------------------

_SEVERITY = {50: 2, 40: 3, 30: 4, 20: 6, 10: 7}


class MinimalRFC5424Handler(logging.Handler):
    """What one writes by hand: an f-string RFC 5424 line on a connected socket."""

    def __init__(self, port: int, socktype: int, context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.hostname = socket.gethostname()
        self.app = os.path.basename(sys.argv[0]) or "python"
        self.pid = os.getpid()
        sock = (
            socket.create_connection(("127.0.0.1", port))
            if socktype == socket.SOCK_STREAM
            else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        )
        if socktype == socket.SOCK_DGRAM:
            sock.connect(("127.0.0.1", port))
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.stream = socktype == socket.SOCK_STREAM

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            stamp = datetime.fromtimestamp(record.created, timezone.utc).isoformat()
            pri = 8 + _SEVERITY.get(record.levelno, 7)
            data = f"<{pri}>1 {stamp} {self.hostname} {self.app} {self.pid} - - {msg}".encode()
            if self.stream:
                self.sock.sendall(b"%d %b" % (len(data), data))
            else:
                self.sock.send(data)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


Factory = Callable[[int], logging.Handler]


def _factories(ca: str) -> dict[str, dict[str, Factory]]:
    """transport -> implementation name -> handler factory (given the receiver's port)."""
    from rfc5424logging import Rfc5424SysLogHandler
    from tlssysloghandler import TLSSysLogHandler

    from syslogkit.sender import handler as syslogkit_handler

    def kit(scheme: str, delivery: str = "sync") -> Factory:
        extra = {"ca_file": ca} if scheme == "tls" else {}
        return lambda port: syslogkit_handler.SyslogHandler(
            f"{scheme}://127.0.0.1:{port}", delivery=delivery, **extra
        )

    def client_context() -> ssl.SSLContext:
        return ssl.create_default_context(cafile=ca)

    stream = socket.SOCK_STREAM
    dgram = socket.SOCK_DGRAM
    return {
        "udp": {
            "syslogkit": kit("udp"),
            "syslogkit-background": kit("udp", "background"),
            "stdlib": lambda p: logging.handlers.SysLogHandler(("127.0.0.1", p)),
            "minimal": lambda p: MinimalRFC5424Handler(p, dgram),
            "rfc5424-logging-handler": lambda p: Rfc5424SysLogHandler(("127.0.0.1", p)),
            "tlssysloghandler": lambda p: TLSSysLogHandler(("127.0.0.1", p)),
        },
        "tcp": {
            "syslogkit": kit("tcp"),
            "syslogkit-background": kit("tcp", "background"),
            "stdlib": lambda p: logging.handlers.SysLogHandler(("127.0.0.1", p), socktype=stream),
            "minimal": lambda p: MinimalRFC5424Handler(p, stream),
            "rfc5424-logging-handler": lambda p: Rfc5424SysLogHandler(
                ("127.0.0.1", p), socktype=stream
            ),
            "tlssysloghandler": lambda p: TLSSysLogHandler(("127.0.0.1", p), socktype=stream),
        },
        "tls": {
            "syslogkit": kit("tls"),
            "syslogkit-background": kit("tls", "background"),
            "minimal": lambda p: MinimalRFC5424Handler(p, stream, client_context()),
            "rfc5424-logging-handler": lambda p: Rfc5424SysLogHandler(
                ("localhost", p), socktype=stream, tls_enable=True, tls_ca_bundle=ca
            ),
            "tlssysloghandler": lambda p: TLSSysLogHandler(
                ("localhost", p), socktype=stream, secure={"cafile": ca}
            ),
        },
    }


# -- running -----------------------------------------------------------------------------------


def _counts(pipe: Connection) -> dict[str, int]:
    pipe.send("count")
    counts: dict[str, int] = pipe.recv()
    return counts


def _settled(pipe: Connection, kind: str, limit: float = 3.0) -> int:
    """The receiver's count once it stops growing (bounded wait)."""
    last = _counts(pipe)[kind]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _counts(pipe)[kind]
        if now == last:
            return now
        last = now
    return last


def run_one(
    pipe: Connection, kind: str, handler: logging.Handler, seconds: float
) -> tuple[float, float]:
    """(records per second that arrived, records that arrived per CPU second of the sender),
    logging as fast as possible for `seconds`. The second figure is steadier on a busy machine.
    """
    logger = logging.getLogger(f"bench.{kind}.{id(handler)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for n in range(200):  # connect and warm up, not measured
        logger.warning("warm-up %d", n)
    before = _settled(pipe, kind)
    sent = 0
    cpu_before = os.times()
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(500):
            logger.warning("bench-msg %d from the benchmark, a typical short log line", sent)
            sent += 1
    handler.flush()  # queued records count only once written: the time includes the drain
    elapsed = time.perf_counter() - started
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    arrived = _settled(pipe, kind) - before
    handler.close()
    logger.handlers.clear()
    return arrived / elapsed, arrived / max(cpu, 1e-9)


CPU_IMPLS: tuple[str, ...] = ("syslogkit", "stdlib", "minimal", "null")


def cpu_per_record(handler: logging.Handler, records: int) -> float:
    """Thread CPU microseconds per `logger.warning(...)` through `handler` (the logging call,
    formatting and the send; the receiver's work is in its own process)."""
    logger = logging.getLogger(f"bench.cpu.{id(handler)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for n in range(200):
        logger.warning("warm-up %d", n)
    started = time.thread_time_ns()
    for n in range(records):
        logger.warning("bench-msg %d from the benchmark, a typical short log line", n)
    used = time.thread_time_ns() - started
    handler.close()
    logger.handlers.clear()
    return used / records / 1000.0


def run_cpu(
    factories: dict[str, Factory], port: int, rounds: int, records: int
) -> dict[str, float]:
    """Median thread CPU per record over UDP, sync delivery: syslogkit, stdlib, minimal and
    NullHandler (the floor: what logging costs before any handler work), interleaved."""
    impls = {name: factories[name] for name in CPU_IMPLS if name in factories}
    impls["null"] = lambda _port: logging.NullHandler()
    samples: dict[str, list[float]] = {name: [] for name in impls}
    shuffle = random.Random(3164).shuffle
    for _ in range(rounds):
        order = list(impls.items())
        shuffle(order)
        for name, factory in order:
            samples[name].append(cpu_per_record(factory(port), records))
    return {name: statistics.median(values) for name, values in samples.items()}


def _report_cpu(cpu_us: dict[str, float], rounds: int, records: int) -> None:
    print()
    print(f"UDP sync, thread CPU per record (median of {rounds} x {records:,} records):")
    floor = cpu_us.get("null", 0.0)
    for name, micros in cpu_us.items():
        print(f"  {name:<24} {micros:6.1f} us   ({micros - floor:5.1f} us over NullHandler)")
    mine = cpu_us.get("syslogkit")
    for other, target in (("stdlib", ">= 1.0x"), ("minimal", ">= 0.9x")):
        theirs = cpu_us.get(other)
        if mine and theirs:
            note = f"   (target {target})"
            print(f"  records per CPU second, syslogkit / {other:<10} {theirs / mine:5.2f}x{note}")


def _make_pki(directory: Path) -> tuple[str, str, str]:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.cert_pem.bytes())
    paths[1].write_bytes(leaf.cert_chain_pems[0].bytes())
    paths[2].write_bytes(leaf.private_key_pem.bytes())
    return str(paths[0]), str(paths[1]), str(paths[2])


def _ratio(results: dict[str, dict[str, float]], kind: str, a: str, b: str) -> str:
    mine, theirs = results[kind].get(a), results[kind].get(b)
    if not mine or not theirs:
        return "n/a"
    return f"{mine / theirs:.2f}x"


def _report(results: dict[str, dict[str, float]], cpu: dict[str, dict[str, float]]) -> None:
    print()
    print("ratios (syslogkit sync / other): arrived per second, and per sender CPU second")
    rows = [
        ("UDP vs stdlib SysLogHandler", "udp", "stdlib", ">= 1.0x"),
        ("UDP vs minimal RFC 5424", "udp", "minimal", ">= 0.9x"),
        ("UDP vs rfc5424-logging-handler", "udp", "rfc5424-logging-handler", ""),
    ]
    for kind in ("tcp", "tls"):
        rows += [
            (
                f"{kind.upper()} vs rfc5424-logging-handler",
                kind,
                "rfc5424-logging-handler",
                ">= 1.3x",
            ),
            (f"{kind.upper()} vs tlssysloghandler", kind, "tlssysloghandler", ""),
            (f"{kind.upper()} vs minimal RFC 5424", kind, "minimal", ""),
        ]
    rows.insert(3, ("TCP vs stdlib SysLogHandler", "tcp", "stdlib", ""))
    for label, kind, other, target in rows:
        note = f"   (target {target})" if target else ""
        wall = _ratio(results, kind, "syslogkit", other)
        per_cpu = _ratio(cpu, kind, "syslogkit", other)
        print(f"  {label:<34} {wall:>7}  {per_cpu:>7}{note}")
    print()
    print("background delivery (the default on the network), arrived per second:")
    for kind in ("udp", "tcp", "tls"):
        print(
            f"  {kind.upper() + ' background / sync':<34} "
            f"{_ratio(results, kind, 'syslogkit-background', 'syslogkit'):>7}"
        )
    for kind in ("tcp", "tls"):
        ratio = _ratio(results, kind, "syslogkit-background", "rfc5424-logging-handler")
        label = f"{kind.upper()} background vs rfc5424-logging-handler"
        print(f"  {label:<34} {ratio:>7}   (target >= 2.5x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="logging time per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs per handler (median kept)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--cpu-records", type=int, default=20_000, help="records per CPU A/B run (0: skip it)"
    )
    parser.add_argument(
        "--cpu-only", action="store_true", help="only the UDP thread-CPU A/B (quick)"
    )
    args = parser.parse_args(argv)
    logging.raiseExceptions = False  # a peer handler's error must not flood the output
    with tempfile.TemporaryDirectory() as tmp:
        ca, cert, key = _make_pki(Path(tmp))
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.Process(target=receiver, args=(child, cert, key), daemon=True)
        process.start()
        ports: dict[str, int] = parent.recv()
        factories = _factories(ca)
        runs: dict[str, dict[str, list[tuple[float, float]]]] = {k: {} for k in factories}
        cpu_us: dict[str, float] = {}
        try:
            if args.cpu_records > 0:
                cpu_us = run_cpu(factories["udp"], ports["udp"], args.rounds, args.cpu_records)
            if args.cpu_only:
                factories = {}
            # rounds interleave the handlers in a shuffled order, so a burst of load elsewhere
            # (or whatever the previous run left behind) hits them all alike
            shuffle = random.Random(5424).shuffle
            for _ in range(args.rounds):
                for kind, impls in factories.items():
                    order = list(impls.items())
                    shuffle(order)
                    for name, factory in order:
                        rate = run_one(parent, kind, factory(ports[kind]), args.seconds)
                        runs[kind].setdefault(name, []).append(rate)
        finally:
            parent.send("stop")
            process.join(2)
    results = {
        kind: {name: statistics.median(r[0] for r in rates) for name, rates in impls.items()}
        for kind, impls in runs.items()
    }
    cpu = {
        kind: {name: statistics.median(r[1] for r in rates) for name, rates in impls.items()}
        for kind, impls in runs.items()
    }
    if cpu_us:
        _report_cpu(cpu_us, args.rounds, args.cpu_records)
    if args.cpu_only:
        return 0
    print()
    print(f"medians of {args.rounds} runs: arrived msgs/s, and arrived per sender CPU second")
    for kind, impls in results.items():
        for name, rate in impls.items():
            print(f"{kind:>4}  {name:<24} {rate:>9,.0f}/s {cpu[kind][name]:>9,.0f}/cpu-s")
    _report(results, cpu)
    if args.json:
        figures = {"arrived_per_s": results, "arrived_per_cpu_s": cpu, "udp_cpu_us": cpu_us}
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
