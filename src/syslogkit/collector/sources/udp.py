"""UDP: one message per datagram, read by a thread of its own with blocking calls into one
reused 64 KiB buffer.

asyncio's datagram transport reads every datagram into a fresh 256 KiB buffer, which costs
several times more CPU per message and loses datagrams well below 30k msgs/s. The socket gets
a receive buffer of several MiB (`SO_RCVBUFFORCE` when allowed, else `SO_RCVBUF`). When the
pipeline lags the thread waits, and the kernel's buffer absorbs what it can; while a sink fails
and the pipeline is full, what does not fit is dropped and counted (`sink_failing`).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

from ..config import Limits, ListenAddress
from ..pipeline import Pipeline
from ..record import Record
from ..systemd import bind_early, set_receive_buffer
from .base import Listener, peer_name

__all__ = ["UdpListener", "stop_all", "udp_drops"]

_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


class UdpListener(Listener):
    """A UDP socket read by a thread of its own (see the module docstring)."""

    def __init__(
        self, address: ListenAddress, pipeline: Pipeline, limits: Limits, zone: tzinfo | None
    ) -> None:
        super().__init__(address, pipeline, limits, zone)
        self.rcvbuf = 0
        self._stop = False
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name=f"syslogkit-{self.url}", daemon=True)
        self._peers: dict[Any, str] = {}
        self._final_drops: int | None = None

    def start(self) -> None:
        if self.given is not None:
            sock = self.given
            set_receive_buffer(sock, self.limits.udp_rcvbuf)
        else:
            sock = bind_early(self.address, self.limits)
        self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sock.setblocking(False)
        self._sock = sock
        self.bound(int(sock.getsockname()[1]))
        self._thread.name = f"syslogkit-{self.url}"
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Read what the kernel holds, hand it to the pipeline, and stop the thread."""
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._sock is not None:
            self._final_drops = self.kernel_drops()
            self._sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def kernel_drops(self) -> int | None:
        """The kernel's drop counter for this socket (/proc/net/udp[6]), None if unknown."""
        if self._sock is None or self._sock.fileno() < 0:
            return self._final_drops
        return udp_drops(os.fstat(self._sock.fileno()).st_ino)

    def stats_dict(self) -> dict[str, Any]:
        out = super().stats_dict()
        out["rcvbuf"] = self.rcvbuf
        out["kernel_drops"] = self.kernel_drops()
        return out

    def _peer(self, addr: Any) -> str:
        name = self._peers.get(addr)
        if name is None:
            if len(self._peers) > 4096:
                self._peers.clear()
            name = self._peers[addr] = peer_name(addr)
        return name

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._wake_r.fileno(), select.POLLIN)
        buf = bytearray(65536)
        view = memoryview(buf)
        recv_into = sock.recvfrom_into
        while True:
            poller.poll()
            batch: list[tuple[bytes, Any]] = []
            while len(batch) < 1024:
                try:
                    n, addr = recv_into(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                batch.append((bytes(view[:n]), addr))
            if batch:
                self._process(batch)
            elif self._stop:
                return

    def _process(self, batch: list[tuple[bytes, Any]]) -> None:
        stats = self.stats
        decoder = self.decoder
        now = time.time()
        reference = decoder.reference()
        records: list[Record] = []
        raws: list[bytes] = []  # clean datagrams waiting for `decoder.records`, in order
        peers: list[str] = []
        peer_of = self._peer
        for data, addr in batch:
            stats.bytes += len(data)
            if not data:
                stats.dropped["empty_datagram"] += 1
                continue
            raw, note = decoder.message(data)
            if note is None:
                raws.append(raw)
                peers.append(peer_of(addr))
                continue
            if raws:
                records += decoder.records(raws, now, peers, reference=reference)
                raws, peers = [], []
            records.append(decoder.record(raw, now, peer_of(addr), note, reference=reference))
        if raws:
            records += decoder.records(raws, now, peers, reference=reference)
        if records:
            while not self.pipeline.wait_for_room(0.5):
                if self._stop:
                    break
                if self.pipeline.failing:  # no room until a sink recovers: UDP cannot wait
                    stats.dropped["sink_failing"] += len(records)
                    return
            self.pipeline.submit(records)


def stop_all(udps: Sequence[UdpListener]) -> None:
    """Stop UDP listeners (each reads what the kernel still holds first)."""
    for udp in udps:
        udp.stop()


def udp_drops(inode: int) -> int | None:
    """The `drops` column of /proc/net/udp or udp6 for a socket inode."""
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) > 12 and cols[9] == str(inode):
                        return int(cols[-1])
        except OSError:
            continue
    return None
