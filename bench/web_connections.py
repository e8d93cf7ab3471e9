"""Benchmark: a valid request while one peer holds many idle or half-sent connections
(issue 24.3; target: 1,000 such connections do not stop a valid request).

Starts `syslogkit web` over an empty store in a child process with the open-file limit of the
issue's report (`--nofile`, default 256), opens `--count` connections (default 1,000) from
127.0.0.2, every other one sending half a request head, then times `GET /healthz` from
127.0.0.1 `--repeat` times (default 20) while they are held, and reads how many file
descriptors the server process holds (`/proc/PID/fd`).

    .venv/bin/python bench/web_connections.py
    .venv/bin/python bench/web_connections.py --count 5000 --nofile 1024

Figures (this machine, 2 cores shared with other work, December 2026):

    before (d9c17a7): 1,000 connections, limit 256: the server holds 256 descriptors (all of
                      them), GET /healthz 0/3 answered (reset or no answer within 10 s)
    after:            1,000 connections, limit 256: 52 descriptors, 20/20 answered, median
                      0.9 ms, max 42 ms; 5,000 connections, limit 1024: 51 descriptors, 20/20,
                      median 1.2 ms, max 33 ms
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVE = """
import resource, sys
from syslogkit.web.server import WebServer
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), hard))
server = WebServer(sys.argv[1], "127.0.0.1", 0)
print(server.port, flush=True)
server.run()
"""


def attack(port: int, count: int) -> list[socket.socket]:
    """`count` connections from 127.0.0.2, opened at once; every other one half a head."""
    pending: dict[int, socket.socket] = {}
    held: list[socket.socket] = []
    with selectors.DefaultSelector() as selector:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.bind(("127.0.0.2", 0))
            sock.connect_ex(("127.0.0.1", port))
            pending[sock.fileno()] = sock
            selector.register(sock, selectors.EVENT_WRITE)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(0.2):
                sock = pending.pop(key.fd)
                selector.unregister(sock)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    held.append(sock)
                else:
                    sock.close()
    for sock in pending.values():
        sock.close()
    for n, sock in enumerate(held):
        if n % 2:
            with contextlib.suppress(OSError):
                sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return held


def open_files(pid: int) -> int:
    """How many file descriptors process `pid` holds."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def healthz(port: int) -> float | None:
    """Seconds for one `GET /healthz`, or None when it failed."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        ok = False
    finally:
        conn.close()
    return time.monotonic() - started if ok else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--nofile", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    from syslogkit.collector import Store

    with tempfile.TemporaryDirectory() as directory:
        db = Path(directory) / "s.db"
        Store(db).close()
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(db), str(args.nofile)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            started = time.monotonic()
            held = attack(port, args.count)
            opened = time.monotonic() - started
            before = open_files(proc.pid)
            times = [healthz(port) for _ in range(args.repeat)]
            kept = max(before, open_files(proc.pid))
            for sock in held:
                sock.close()
        finally:
            proc.terminate()
            proc.wait(10)
    done = [t for t in times if t is not None]
    print(f"{len(held)} of {args.count} connections opened from 127.0.0.2 in {opened:.2f} s")
    print(f"the server process holds {kept} file descriptors (limit {args.nofile})")
    if done:
        print(
            f"GET /healthz from 127.0.0.1: {len(done)}/{len(times)} answered, "
            f"median {statistics.median(done) * 1000:.1f} ms, max {max(done) * 1000:.1f} ms"
        )
    else:
        print(f"GET /healthz from 127.0.0.1: 0/{len(times)} answered")
    return 0 if len(done) == len(times) else 1


if __name__ == "__main__":
    sys.exit(main())
