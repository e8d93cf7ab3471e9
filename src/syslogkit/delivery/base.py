"""What every delivery shares: the `Delivery` protocol, `Stats`, error reporting, the bound on
records logged from inside the send path, and the one registry of objects reset in a forked
child.

The handler formats and frames a record, then hands the bytes to a `Delivery`: synchronous
(`delivery.sync`, the caller writes, bounded by timeouts) or a background queue
(`delivery.background`). Both count into one `Stats`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final, Protocol, runtime_checkable

__all__ = [
    "REENTRANT_MAX",
    "AfterFork",
    "Delivery",
    "DeliveryNotice",
    "ErrorReporter",
    "Stats",
    "reset_after_fork",
]

#: Called with the error and the record it concerns (None when there is none).
ErrorReporter = Callable[[BaseException, Any], None]

#: Records the send path (a transport, the error reporter, the writer thread) may log into its
#: own handler after each record from the application; more are dropped as `reentrant`.
REENTRANT_MAX: Final = 16

_COUNTERS: Final = (
    "sent",
    "dropped",
    "errors",
    "reconnects",
    "truncated",
    "sd_dropped",
)


class DeliveryNotice(Exception):
    """Records were lost (dropped, or left undelivered at close): told as one line, never as a
    traceback. A delivery hands it to its reporter (the handler's error path, which calls
    `show()`), rate limited by the delivery itself. `final`: the line a delivery tells at
    close, with the final total (a program that prints its own summary may leave it out)."""

    def __init__(self, text: str, *, final: bool = False) -> None:
        super().__init__(text)
        self.final = final

    def show(self) -> None:
        """Write the notice as one line on stderr (as `handleError` would, when allowed)."""
        if not logging.raiseExceptions:
            return
        stream = sys.stderr
        if stream is None:
            return
        try:
            stream.write(f"{self}\n")
            stream.flush()
        except Exception:  # stderr closed or broken: nothing more can be done
            pass


class Stats:
    """Counters shared by a handler and its delivery, read as a dict snapshot.

    `dropped` is the total; `dropped_<reason>` splits it (unreachable, timeout, tls, closed,
    busy, reentrant, format, ...). `last_error` is the text of the most recent error.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self.last_error: str | None = None

    def add(self, key: str, n: int = 1) -> None:
        """Add to a counter (thread-safe)."""
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def drop(self, reason: str, n: int = 1) -> None:
        """Count records dropped for `reason`."""
        with self._lock:
            counts = self.counts
            counts["dropped"] += n
            key = "dropped_" + reason
            counts[key] = counts.get(key, 0) + n

    def error(self, exc: BaseException) -> None:
        """Count an error and keep its text."""
        with self._lock:
            self.counts["errors"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"

    def snapshot(self) -> dict[str, Any]:
        """A copy of all counters plus `last_error`."""
        with self._lock:
            out: dict[str, Any] = dict(self.counts)
            out["last_error"] = self.last_error
        return out

    def reset_lock(self) -> None:
        """A fresh lock (in a forked child, where the parent's may be held)."""
        self._lock = threading.Lock()


class Delivery(Protocol):
    """What the handler calls with each encoded frame. Implementations never raise."""

    stats: Stats

    def deliver(self, data: bytes, record: Any = None) -> None:
        """Send or enqueue one frame; `record` is passed to the error reporter."""

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until what was handed over is written; True when it all was."""

    def close(self, timeout: float | None = None) -> None:
        """Flush (bounded), then close the transport."""

    def after_fork_in_child(self) -> None:
        """Drop inherited connections, threads and locks in a forked child."""


@runtime_checkable
class AfterFork(Protocol):
    """An object that must drop inherited threads, locks and connections in a forked child."""

    def after_fork_in_child(self) -> None:
        """Called in the child, right after fork()."""


_AFTER_FORK: weakref.WeakSet[AfterFork] = weakref.WeakSet()


def reset_after_fork(obj: AfterFork) -> None:
    """Call `obj.after_fork_in_child()` in every forked child while `obj` lives (one registry
    for handlers and deliveries; a hook may run twice, so each is idempotent)."""
    _AFTER_FORK.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_AFTER_FORK):
        obj.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
