"""Synchronous delivery: the caller writes each frame, bounded by timeouts."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Final

from syslogkit.delivery.base import DeliveryNotice, ErrorReporter, Stats
from syslogkit.delivery.caller import dropped_by_reason
from syslogkit.transports.base import Transport, TransportError
from syslogkit.transports.failover import FailoverTransport

__all__ = ["SyncDelivery"]

#: Write failures that another connection would not cure (`refused`: a RELP 500, refused for
#: good: never sent again, see `delivery.confirm`).
_NO_RETRY: Final = frozenset({"timeout", "too_large", "refused"})


class SyncDelivery:
    """Writes each frame in the calling thread, one caller at a time.

    A connection is opened when needed (subject to the transport's backoff); an idle stream
    whose peer closed is noticed before the write. A write that fails (other than by timeout)
    is followed by at most one reconnect, on which the same frame is written again. A frame that
    cannot be written is dropped and counted. The lock wait is bounded too, so no call can hang.
    Over a failover list, a later address is left for the first one at the next record once a
    helper thread has connected to the first one again (the caller never waits for that connect).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        stats: Stats | None = None,
        report: ErrorReporter | None = None,
    ) -> None:
        self.transport = transport
        self.stats = stats if stats is not None else Stats()
        self._report = report
        self._lock = threading.Lock()
        # a caller waits at most for one other caller's worst case (write, reconnect, write)
        self._lock_timeout = 3.0 * transport.timeout + 1.0
        self._pid = os.getpid()
        self._closed = False
        self._failover = transport if isinstance(transport, FailoverTransport) else None

    def deliver(self, data: bytes, record: Any = None) -> None:
        """Write one frame now; never raises."""
        if not self._lock.acquire(True, self._lock_timeout):  # positional: cheaper per record
            self._fail(
                TransportError("busy", "another thread held the connection too long"), record
            )
            return
        try:
            self._send(data)
        except TransportError as exc:
            self._fail(exc, record)
        except Exception as exc:  # a bug must not reach the application: dropped, reported
            self.stats.drop("error")
            self.stats.error(exc)
            if self._report is not None:
                self._report(exc, record)  # as it is: handleError's business
        else:
            self.stats.counts["sent"] += 1
        finally:
            self._lock.release()

    def _send(self, data: bytes) -> None:
        transport = self.transport
        fresh = False
        if transport.sock is None or (transport.stream and not transport.alive()):
            self._open()
            fresh = True
        elif self._failover is not None and self._failover.switch_pending():
            self._failover.switch()  # the first address answers again (probed in a thread)
        try:
            transport.write(data)
        except TransportError as exc:
            if fresh or exc.reason in _NO_RETRY or self._closed:
                raise
            self.stats.error(exc)
            self._open()
            transport.write(data)

    def _open(self) -> None:
        if self._closed:
            raise TransportError("closed", "the handler is closed", attempted=False)
        transport = self.transport
        transport.open()
        if transport.opened > 1:
            self.stats.add("reconnects")

    def _fail(self, exc: TransportError, record: Any) -> None:
        self.stats.drop(exc.reason)
        if exc.attempted:
            self.stats.error(exc)
            if self._report is not None:
                self._report(exc, record)

    def flush(self, timeout: float | None = None) -> bool:
        """Nothing is buffered: every deliver() call has finished its write."""
        return True

    def close(self, timeout: float | None = None) -> None:
        """Close the connection (TLS close_notify), within `timeout` seconds; tell the final
        count of records dropped in one line when there were any (the lines told per error
        are rate limited and carry no total)."""
        wait = min(self.transport.timeout, 2.0) if timeout is None else timeout
        deadline = time.monotonic() + wait
        if not self._closed:
            self._final_notice()
        self._closed = True
        if not self._lock.acquire(timeout=max(wait, 0.0)):
            return  # a writer is stuck until its own timeout; it finds the handler closed
        try:
            if self._pid != os.getpid():
                self._forget_parent()
            self.transport.close(max(0.0, deadline - time.monotonic()))
        finally:
            self._lock.release()

    def _final_notice(self) -> None:
        counts = self.stats.snapshot()
        total = counts["dropped"]
        if not total:
            return
        notice = DeliveryNotice(
            f"syslogkit: at close, {total} records dropped in all to {self.transport.address} "
            f"({dropped_by_reason(counts)})",
            final=True,
        )
        if self._report is None:
            notice.show()
            return
        try:
            self._report(notice, None)
        except Exception:  # the application's reporter must not stop the close
            notice.show()

    def after_fork_in_child(self) -> None:
        """A fresh lock, and no use of the parent's connection."""
        self._lock = threading.Lock()
        self.stats.reset_lock()
        self._forget_parent()

    def _forget_parent(self) -> None:
        self.transport.forget()
        self.transport.opened = 0
        self._pid = os.getpid()
