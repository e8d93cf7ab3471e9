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
    """Records written on one connection, retired as the peer's kernel acknowledges them.

    `wrote(items, sizes)` after each successful write; `sample(sock)` before the next write and
    when idle (returns the records newly acknowledged); `broken()` when the connection failed
    (returns the records to re-send and the number that may be lost); `confirm()` after a
    graceful close. Memory is bounded by the socket's send buffer: the kernel cannot hold more
    unacknowledged bytes than that.
    """

    def __init__(
        self,
        *,
        probe: Callable[[socket.socket], int | None] = unacked_bytes,
        fallback_window: int = _FALLBACK_WINDOW,
    ) -> None:
        self._probe = probe
        self._fallback = fallback_window
        self._items: deque[tuple[int, T]] = deque()  # (end offset, item), oldest first
        self._written = 0  # bytes written on this connection
        #: records the peer's kernel acknowledged since the last confirmed point
        self.unconfirmed = 0
        #: False once SIOCOUTQ was found unavailable on a socket
        self.exact = True

    def __len__(self) -> int:
        return len(self._items)

    @property
    def written(self) -> int:
        """Bytes written on the current connection."""
        return self._written

    def wrote(self, items: list[T], sizes: list[int]) -> None:
        """Record items written, in order, with their sizes in bytes."""
        end = self._written
        append = self._items.append
        for item, size in zip(items, sizes, strict=True):
            end += size
            append((end, item))
        self._written = end

    def sample(self, sock: socket.socket | None) -> list[T]:
        """Retire the records the peer's kernel has acknowledged; return them, oldest first."""
        items = self._items
        if not items:
            return []
        outq = self._probe(sock) if sock is not None else None
        if outq is None:
            self.exact = False
            window = self._fallback
            if sock is not None:
                with contextlib.suppress(OSError):
                    window = max(window, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
            outq = window
        acked = self._written - outq
        done: list[T] = []
        while items and items[0][0] <= acked:
            done.append(items.popleft()[1])
        self.unconfirmed += len(done)
        return done

    def broken(self) -> tuple[list[T], int]:
        """The connection failed: (records to re-send, number of records maybe lost).

        Resets the ledger for the next connection.
        """
        resend = [item for _, item in self._items]
        lost = self.unconfirmed
        self.reset()
        return resend, lost

    def confirm(self) -> list[T]:
        """A graceful close: everything written counts as handed over; returns what was pending."""
        pending = [item for _, item in self._items]
        self.reset()
        return pending

    def reset(self) -> None:
        """Forget the connection (a new one starts at offset 0)."""
        self._items.clear()
        self._written = 0
        self.unconfirmed = 0
