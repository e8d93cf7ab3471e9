"""What a broken TCP/TLS connection took with it: Linux `SIOCOUTQ` bookkeeping.

Plain TCP syslog has no acknowledgements: `send()` succeeds once the bytes are in the local
socket buffer. The kernel knows a little more: `SIOCOUTQ` (Linux, `ioctl(fd, TIOCOUTQ)`) gives
the bytes written on the socket that the peer's kernel has not acknowledged yet (for a unix
stream socket: the buffer memory not yet read by the peer, which is more than the payload, so
the ledger errs towards re-sending). A `Ledger` keeps the records written on the current
connection with their byte offsets and, each time it is sampled, retires those that lie wholly
before the acknowledged point.

When the connection breaks:

- records that were not known to be acknowledged at the last sample are returned to be re-sent
  on the next connection. The peer may have received some of them after that sample, so a
  re-send can duplicate a record; it never loses one.
- records the peer's kernel had acknowledged since the connection's last confirmed point are
  counted as `maybe_lost`. The peer's kernel holding a record says nothing about the collector
  having read, parsed or stored it: if the collector dies, whatever sat in its receive buffer or
  its memory is gone, and TCP cannot tell which. Plain TCP has no confirmation from the collector
  at all, so the only confirmed points are the start of the connection and a graceful close of
  our own (`confirm()`); the bound is therefore honest but coarse: every record the peer's
  kernel took on a connection that then broke. The true loss is anywhere between 0 and that
  number. RELP (acknowledged per message) is the transport that makes it exact.

The acknowledged point is known only as of the last sample: after the peer resets the
connection the kernel drops its send queue, so `SIOCOUTQ` must be read while the connection is
still healthy (before each write, and when idle). For TLS the queue holds ciphertext, which is
longer than the plaintext; the ledger maps the unacknowledged tail onto plaintext byte for byte,
which over-estimates what is unacknowledged: more re-sends, never a record wrongly counted
as acknowledged. Where `SIOCOUTQ` is unavailable (not Linux), the last `fallback_window` bytes
written (at least the socket's send buffer) are taken as unacknowledged.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

__all__ = ["SIOCOUTQ", "Ledger", "unacked_bytes"]

#: ioctl request: bytes in the send queue not acknowledged by the peer (Linux; = TIOCOUTQ).
SIOCOUTQ: Final = 0x5411
_ZERO: Final = b"\0\0\0\0"
_FALLBACK_WINDOW: Final = 4 * 1024 * 1024  # Linux's default tcp_wmem maximum

T = TypeVar("T")


def unacked_bytes(sock: socket.socket) -> int | None:
    """Bytes written on `sock` that the peer has not acknowledged yet, or None when unknown."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fd = sock.fileno()
        if fd < 0:
            return None
        out = fcntl.ioctl(fd, SIOCOUTQ, _ZERO)
    except (OSError, ValueError):
        return None
    value: int = struct.unpack("i", out)[0]
    return value if value >= 0 else None


class Ledger(Generic[T]):
    """Units (batches of records) written on one connection, retired as the peer's kernel
    acknowledges them.

    `wrote(unit, size, count)` after each successful write; `sample(sock)` before the next
    write and when idle (returns the units now wholly acknowledged); `broken()` when the
    connection failed (returns the units to re-send, how many records may be lost, and how many
    bytes of the first returned unit were already acknowledged, so that the caller can split
    it); `confirm()` after a graceful close. Memory is bounded by the socket's send buffer: the
    kernel cannot hold more unacknowledged bytes than that.
    """

    def __init__(
        self,
        *,
        probe: Callable[[socket.socket], int | None] = unacked_bytes,
        fallback_window: int = _FALLBACK_WINDOW,
    ) -> None:
        self._probe = probe
        self._fallback = fallback_window
        self._units: deque[tuple[int, int, T, int]] = deque()  # (start, end, unit, records)
        self._written = 0  # bytes written on this connection
        self._acked = 0  # bytes the peer's kernel had acknowledged at the last sample
        #: records the peer's kernel acknowledged since the last confirmed point
        self.unconfirmed = 0
        #: False once SIOCOUTQ was found unavailable on a socket
        self.exact = True

    def __len__(self) -> int:
        return len(self._units)

    @property
    def written(self) -> int:
        """Bytes written on the current connection."""
        return self._written

    def wrote(self, unit: T, size: int, count: int = 1) -> None:
        """Record a unit of `count` records, `size` bytes, written after the previous ones."""
        start = self._written
        self._written = end = start + size
        self._units.append((start, end, unit, count))

    def sample(self, sock: socket.socket | None) -> list[T]:
        """Retire the units the peer's kernel has acknowledged; return them, oldest first."""
        units = self._units
        if not units:
            return []
        outq = self._probe(sock) if sock is not None else None
        if outq is None:
            self.exact = False
            window = self._fallback
            if sock is not None:
                with contextlib.suppress(OSError):
                    window = max(window, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
            outq = window
        acked = max(self._written - outq, 0)
        self._acked = max(self._acked, acked)
        done: list[T] = []
        records = 0
        while units and units[0][1] <= acked:
            _, _, unit, count = units.popleft()
            done.append(unit)
            records += count
        self.unconfirmed += records
        return done

    def broken(self) -> tuple[list[T], int, int]:
        """The connection failed: (units to re-send, records maybe lost, acknowledged bytes of
        the first unit). Records of the first unit that lie wholly within those bytes were
        acknowledged too: the caller counts them as maybe lost and re-sends only the rest.

        Resets the ledger for the next connection.
        """
        units = self._units
        resend = [unit for _, _, unit, _ in units]
        partial = max(self._acked - units[0][0], 0) if units else 0
        lost = self.unconfirmed
        self.reset()
        return resend, lost, partial

    def confirm(self) -> list[T]:
        """A graceful close: everything written counts as handed over; returns what was pending."""
        pending = [unit for _, _, unit, _ in self._units]
        self.reset()
        return pending

    def reset(self) -> None:
        """Forget the connection (a new one starts at offset 0)."""
        self._units.clear()
        self._written = 0
        self._acked = 0
        self.unconfirmed = 0
