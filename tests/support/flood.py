"""Floods for the fairness tests: many connections from one source address, each holding half a
frame, and the room for them in this process's open-files limit.

127.0.0.2 (`OTHER`) stands for another host: Linux routes all of 127/8 to loopback. `room_for`
raises RLIMIT_NOFILE's soft limit towards the hard one, and says how many sockets fit when the
hard limit is lower (the test then floods fewer, with a warning saying so).
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
import warnings

__all__ = ["FLOODER", "HALF_FRAME", "OTHER", "Flood", "room_for"]

FLOODER = "127.0.0.1"
OTHER = "127.0.0.2"
HALF_FRAME = b"12"  # the start of an octet count: a frame that never completes


def room_for(count: int) -> int:
    """How many flood sockets this process may open: RLIMIT_NOFILE's soft limit raised towards
    its hard limit when `count` (plus a margin for the collector and pytest) needs it."""
    margin = 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + margin
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return count
    fewer = max(soft - margin, 0)
    warnings.warn(
        f"RLIMIT_NOFILE allows {soft} files: flooding with {fewer} connections, not {count}",
        stacklevel=2,
    )
    return fewer


class Flood:
    """`count` connections from `source` (FLOODER), each sending half a frame, held open until
    `close()`. Opened in a thread (`start`) or here (`open`); `opened` counts the connects that
    went through (the collector may refuse them right after)."""

    def __init__(
        self, port: int, count: int, payload: bytes = HALF_FRAME, source: str = FLOODER
    ) -> None:
        self.port = port
        self.source = source
        self.count = count
        self.payload = payload
        self.sockets: list[socket.socket] = []
        self.opened = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()

    def start(self) -> Flood:
        self._thread.start()
        return self

    def _run(self) -> None:
        self.open(self.count)

    def open(self, count: int) -> None:
        """Open `count` more connections, here and now."""
        deadline = time.monotonic() + 20
        for _ in range(count):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            try:
                sock = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=5, source_address=(self.source, 0)
                )
            except OSError:
                self.failed += 1
                continue
            self.sockets.append(sock)
            self.opened += 1
            if self.payload:
                with contextlib.suppress(OSError):  # refused already: reset
                    sock.sendall(self.payload)

    def wait(self, timeout: float = 25) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the flood did not finish opening in time"

    def held_by_the_collector(self) -> list[socket.socket]:
        """The flood's sockets the collector has not closed (nothing to read, no EOF, no RST)."""
        held = []
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    continue  # closed by the collector
            except BlockingIOError:
                held.append(sock)
            except OSError:
                continue  # reset by the collector
        return held

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(25)
        for sock in self.sockets:
            sock.close()
