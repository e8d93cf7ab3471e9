"""What every delivery shares: the `Delivery` protocol, `Stats`, error reporting, the bound on
records logged from inside the send path, the one registry of objects reset in a forked child,
the one of deliveries closed when a child process ends without `atexit`, and where no thread of
ours may run (a process that forks in C without the GIL: `threads_may_hang_a_fork`).

The handler formats and frames a record, then hands the bytes to a `Delivery`: synchronous
(`delivery.sync`, the caller writes, bounded by timeouts) or a background queue
(`delivery.background`). Both count into one `Stats`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Final, Protocol, runtime_checkable

__all__ = [
    "REENTRANT_MAX",
    "AfterFork",
    "Delivery",
    "DeliveryNotice",
    "ErrorReporter",
    "Stats",
    "close_at_exit",
    "leave_sigterm_to_main_thread",
    "reset_after_fork",
    "threads_may_hang_a_fork",
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
_uwsgi_chained = False


def reset_after_fork(obj: AfterFork) -> None:
    """Call `obj.after_fork_in_child()` in every forked child while `obj` lives (one registry
    for handlers and deliveries; a hook may run twice, so each is idempotent)."""
    _AFTER_FORK.add(obj)
    _chain_uwsgi_post_fork()


def _chain_uwsgi_post_fork() -> None:
    """uWSGI forks its workers in C without Python's fork hooks (unless `py-call-osafterfork`),
    but calls `uwsgi.post_fork_hook` in each: chain ours there, once, when running in it."""
    global _uwsgi_chained
    uwsgi: Any = sys.modules.get("uwsgi")
    if uwsgi is None or _uwsgi_chained:
        return
    _uwsgi_chained = True
    previous = getattr(uwsgi, "post_fork_hook", None)

    def post_fork() -> None:
        _after_fork_in_child()
        if previous is not None:
            previous()

    uwsgi.post_fork_hook = post_fork


def threads_may_hang_a_fork() -> bool:
    """True in a uWSGI master (the application loaded there: no `lazy-apps`), which forks its
    workers in C without taking the GIL first, unless `py-call-uwsgi-fork-hooks`: a thread of
    ours that holds the GIL at that instant leaves the new worker waiting for it for ever, before
    it runs a line of Python. No thread may run there; a delivery works inline instead."""
    uwsgi: Any = sys.modules.get("uwsgi")
    if uwsgi is None:
        return False
    try:
        in_master = bool(os.getpid() == uwsgi.masterpid())
        hooked = bool(uwsgi.opt.get("py-call-uwsgi-fork-hooks"))
    except Exception:  # not the real uWSGI module: no C fork to fear
        return False
    return in_master and not hooked


def _after_fork_in_child() -> None:
    global _forked
    _forked = True
    for obj in list(_AFTER_FORK):
        obj.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- the end of a child process ----------------------------------------------------------------
#
# A forked child often ends with os._exit(): atexit, hence logging.shutdown(), never runs there,
# and a background queue would die with the process (issue 25). What does run, each found
# without importing anything (only when the application already uses it):
#
# - multiprocessing's finalizers: a Process (fork or forkserver) ends with os._exit() right
#   after them, on return from its target or sys.exit(), Pool workers included. A `Finalize`
#   must be registered after fork (the child's bootstrap clears the registry), so it is
#   registered when a delivery starts its writer in the child, i.e. at its first record.
# - SIGTERM (Process.terminate(), Pool.terminate()) in a multiprocessing child whose SIGTERM is
#   the default and which runs no threads but syslogkit's: close, then die of SIGTERM as before
#   (the exit status is unchanged). Python runs a handler in the main thread only, at its next
#   bytecode: a main thread that was about to block (a Pool worker on the queue lock, which
#   terminate() never gives back) would never run it, and terminate() would wait forever. So a
#   thread of ours is woken by the signal itself (`signal.set_wakeup_fd`, written in C), closes,
#   and sends SIGTERM again until the main thread's handler lets it kill (bounded; as a last
#   resort os._exit(128 + 15)). syslogkit's threads block SIGTERM, so the kernel hands it to
#   the main thread; with threads of the application (which may take it) nothing is set.
# - Celery's `worker_process_shutdown` signal: billiard's pool workers call os._exit() without
#   multiprocessing's finalizers, but Celery sends it in the child just before.
#
# Closing is `close()` with no timeout: bounded by the delivery's shutdown_stall/shutdown_max
# (the exit deadline); what is left goes to the spool, or is counted and told in one line.


class ClosesAtExit(Protocol):
    """A delivery that holds records in memory: closed (bounded) when its process ends."""

    shutdown_max: float

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is held within the delivery's own bound, then close."""


_CLOSE_AT_EXIT: weakref.WeakSet[ClosesAtExit] = weakref.WeakSet()
_forked = False  # this process is a forked child
_armed_in = 0  # the pid whose exit hooks are in place
_FINALIZER_PRIORITY: Final = -100  # after multiprocessing's own finalizers (>= 0)
_CELERY_UID: Final = "syslogkit-close-at-exit"
_closing_threads: set[int] = set()  # the threads running close_all_at_exit() now
_signalled: list[int] = []  # a SIGTERM that came meanwhile, re-raised once it is done
_closed_on_sigterm = threading.Event()  # set by the SIGTERM watcher once it closed all
_SIGTERM_RESENDS: Final = 20  # the watcher's tries to let the main thread's handler kill
_SIGTERM_RESEND_EVERY: Final = 0.25  # seconds


def close_at_exit(obj: ClosesAtExit) -> None:
    """Close `obj` when this process, a forked or `multiprocessing` child, ends through a way
    that skips `atexit` but runs something (see above). Called by a delivery when its writer
    starts; cheap when called again (two threads arming at once register twice: harmless,
    closing is idempotent)."""
    global _armed_in
    _CLOSE_AT_EXIT.add(obj)
    pid = os.getpid()
    if _armed_in == pid:
        return
    _armed_in = pid
    in_child = _in_multiprocessing_child()
    if not (_forked or in_child):
        return  # the main process: logging.shutdown() at exit closes the handlers
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(None, close_all_at_exit, exitpriority=_FINALIZER_PRIORITY)
    if in_child:
        _close_on_sigterm()
    celery_signals = sys.modules.get("celery.signals")
    if celery_signals is not None:
        celery_signals.worker_process_shutdown.connect(
            _celery_process_shutdown, weak=False, dispatch_uid=_CELERY_UID
        )


def close_all_at_exit() -> None:
    """Close every delivery of this process registered by `close_at_exit` (each bounded)."""
    me = threading.get_ident()
    _closing_threads.add(me)
    try:
        for obj in list(_CLOSE_AT_EXIT):
            with contextlib.suppress(Exception):  # never raises into the application's exit
                obj.close()
    finally:
        _closing_threads.discard(me)
        if _signalled:  # a SIGTERM came during the close: die of it now, as it would have
            os.kill(os.getpid(), _signalled.pop())


def _in_multiprocessing_child() -> bool:
    process = sys.modules.get("multiprocessing.process")
    return process is not None and process.parent_process() is not None


def _celery_process_shutdown(**_: Any) -> None:
    if _armed_in == os.getpid():
        close_all_at_exit()


def leave_sigterm_to_main_thread() -> None:
    """Block SIGTERM in the calling thread (one of syslogkit's): the kernel then hands it to a
    thread that can act on it (see above)."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _only_syslogkit_threads() -> bool:
    main = threading.main_thread()
    return all(t is main or t.name.startswith("syslogkit") for t in threading.enumerate())


def _close_on_sigterm() -> None:
    """Catch SIGTERM while it is the default, in the main thread, with no application threads
    that could take the signal, and when the wakeup fd is free (see above)."""
    if threading.current_thread() is not threading.main_thread() or not _only_syslogkit_threads():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    global _closed_on_sigterm
    _closed_on_sigterm = threading.Event()  # this process's (not one a parent had)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        previous = signal.set_wakeup_fd(write_end)
        if previous != -1:  # the application's: leave it
            signal.set_wakeup_fd(previous)
            raise ValueError("wakeup fd in use")
        signal.signal(signal.SIGTERM, _close_then_die)
        watcher = threading.Thread(
            target=_watch_sigterm, args=(read_end,), name="syslogkit-sigterm", daemon=True
        )
        watcher.start()
    except (ValueError, OSError, RuntimeError):
        os.close(read_end)
        os.close(write_end)


def _watch_sigterm(read_end: int) -> None:
    """The SIGTERM watcher: close all, then make the process die of the signal."""
    leave_sigterm_to_main_thread()
    with contextlib.suppress(OSError):
        while signal.SIGTERM not in os.read(read_end, 64):
            pass
    close_all_at_exit()
    _closed_on_sigterm.set()
    for _ in range(_SIGTERM_RESENDS):  # the main thread's handler resets it, then it kills
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(_SIGTERM_RESEND_EVERY)
    os._exit(128 + signal.SIGTERM)


def _close_then_die(signum: int, frame: FrameType | None) -> None:
    """SIGTERM, in the main thread: once the watcher closed all (bounded), die of the signal as
    without a handler. When it interrupted the main thread's own close (a finalizer), that
    close goes on and ends with the signal (waiting here could leave a `join()` it interrupted
    holding the writer's end-of-thread lock)."""
    signal.signal(signum, signal.SIG_DFL)
    if threading.get_ident() in _closing_threads:
        _signalled.append(signum)
        return
    _closed_on_sigterm.wait(sum(obj.shutdown_max for obj in list(_CLOSE_AT_EXIT)) + 1.0)
    os.kill(os.getpid(), signum)
