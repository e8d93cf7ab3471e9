"""Background delivery: the caller enqueues, one writer thread per handler does all the I/O.

The caller's share of a record is appending its encoded frame to a bounded in-memory queue; it
never touches the network or the disk. One writer thread (started at the first record)
resolves, connects, and writes many frames per `sendall` (datagrams one per `send`). How the
writer learns that a write was delivered (RELP answers, the kernel's `SIOCOUTQ` count, nothing
for datagrams) is a strategy chosen once (`syslogkit.delivery.confirm`). What the application's
threads do (`deliver` with back-pressure, shedding and dropping when the queue is full; `flush`
and `close`; the notices of records lost) is `syslogkit.delivery.caller`, the base class; this
module is the writer thread's loop.

The writer, each round: note its progress (what `close` measures a stall by), adopt spool
segments left by dead processes, then either connect (when it cannot: the collector is `gone`
for callers, what is in memory moves to the spool, and it sleeps out the backoff) or write the
next batch (spooled records before anything in memory; with a spool, past the high-water mark
the queue moves to disk first), or wait for confirmations, or sleep until woken.

What happens to a record that could not be delivered at once:

- The write failed: the frames of that write are written again on the next connection, ahead of
  everything queued after them; what the broken connection held is decided by the strategy
  (RELP: every unanswered record, `resent`; TCP: what the kernel had not acknowledged, the rest
  counted as `maybe_lost`).
- With a spool: records on disk are replayed in order, before anything newer, and removed only
  once written (RELP: acknowledged). Records left on disk at exit are replayed by the next
  process that uses the same directory. Callers move a full queue to disk themselves when
  they cannot wait (`caller`), so the writer looks at the spool and takes from the queue under
  `spool.lock`. The one reorder: what a broken connection held from memory is spooled after
  whatever reached the disk meanwhile (`resent` when it had gone out before).
- At close: the writer keeps going while it makes progress (`shutdown_stall`, `shutdown_max`,
  or the caller's timeout); what is left goes to the spool, or is dropped, counted, and told in
  one line on stderr.

A connection that broke and came back without losing anything is only counted (`reconnects`,
`resent`, `errors`). A collector never reached is told in one line (a wrong address shows at
once). A write that raises something other than `TransportError` (a bug) loses its batch:
counted as dropped (`error`) and told, the bug itself reported as it is.

Counters (in the shared `Stats`): `queued` (taken from the queue by the writer, or moved to the
spool with its record by a call that found the queue full), `sent` (written
for the first time), `resent`, `spooled`, `replayed`, `acknowledged` (RELP), `maybe_lost`,
`reconnects`, `errors`, and `dropped` split by reason (`overflow`, `shed`, `closed`,
`spool_full`, `spool_error`, `torn`, `refused`, `timeout`, `unreachable`, ...). Once the writer
is idle, records logged == queued + dropped at the door (`overflow`, `shed`, `closed`,
`reentrant`).

After `fork()` the child has an empty queue and starts a writer of its own at its first record;
a child that ends without `atexit` (a `multiprocessing` worker, a Celery prefork child) closes
the delivery on its way out (`delivery.base.close_at_exit`). Where no thread may run (a uWSGI
master, `delivery.base.threads_may_hang_a_fork`), the caller runs this loop inline at each
record, bounded by `timeout`, adopting nothing; what it cannot write goes to the spool or is
dropped and counted, never left in memory (that process ends without `atexit`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from typing import Final

from syslogkit.delivery.base import (
    REENTRANT_MAX,
    ErrorReporter,
    Stats,
    close_at_exit,
    leave_sigterm_to_main_thread,
    reset_after_fork,
    threads_may_hang_a_fork,
)
from syslogkit.delivery.caller import OVERFLOW, CallerSide, drain_queue, empty_queue
from syslogkit.delivery.confirm import ACK_POLL, Batch, BatchFailed, Books, Item, confirmation_for
from syslogkit.delivery.spool import FLAG_SENT, Spool
from syslogkit.transports.base import Transport, TransportError
from syslogkit.transports.failover import Switching
from syslogkit.transports.relp import Acknowledging

__all__ = ["OVERFLOW", "REENTRANT_MAX", "Acknowledging", "BackgroundDelivery"]

DEFAULT_QUEUE_SIZE: Final = 10_000
DEFAULT_TIMEOUT: Final = 5.0
DEFAULT_BLOCK_TIMEOUT: Final = 2.0
DEFAULT_HIGH_WATER: Final = 0.8
DEFAULT_SHUTDOWN_STALL: Final = 3.0
DEFAULT_SHUTDOWN_MAX: Final = 30.0
_BATCH_BYTES: Final = 64 * 1024
_IDLE: Final = 1.0  # seconds the idle writer sleeps between housekeeping rounds
_COUNTERS: Final = (
    "queued",
    "sent",
    "resent",
    "spooled",
    "replayed",
    "acknowledged",
    "maybe_lost",
)


class BackgroundDelivery(CallerSide):
    """A bounded queue and one writer thread (see the module docstrings of this and `caller`)."""

    def __init__(
        self,
        transport: Transport,
        *,
        stats: Stats | None = None,
        report: ErrorReporter | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        overflow: str = "drop_newest",
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        shed_below: int | str | None = None,
        high_water: float = DEFAULT_HIGH_WATER,
        spool: Spool | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 64 * 1024 * 1024,
        batch_bytes: int = _BATCH_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        shutdown_stall: float = DEFAULT_SHUTDOWN_STALL,
        shutdown_max: float = DEFAULT_SHUTDOWN_MAX,
        name: str = "syslogkit-writer",
    ) -> None:
        self._configure_caller(
            queue_size=queue_size,
            overflow=overflow,
            block_timeout=block_timeout,
            shed_below=shed_below,
            high_water=high_water,
            shutdown_stall=shutdown_stall,
            shutdown_max=shutdown_max,
            spooling=spool is not None or spool_dir is not None,
        )
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self.transport = transport
        self.stats = stats if stats is not None else Stats()
        for key in _COUNTERS:
            self.stats.add(key, 0)
        self._report = report
        if spool is None and spool_dir is not None:
            spool = Spool(spool_dir, max_bytes=spool_max_bytes, drop=self.stats.drop)
        self._spool = spool
        if spool is not None:
            self.stats.add("adopted", 0)
        self._batch_bytes = max(1, batch_bytes)
        self.timeout = timeout
        self._name = name
        self._books = Books(self.stats, spool, self._lose)
        #: a failover transport, asked between batches whether to move back (decided once)
        self._switching: Switching | None = transport if isinstance(transport, Switching) else None
        self._confirm = confirmation_for(
            transport,
            self._books,
            timeout=timeout,
            report=self._error,
            sleep=lambda wait: self._sleep(wait, 0),
        )
        self._init_runtime()
        self._ever_connected = False
        self._lost_at = 0.0  # when the last connection broke
        reset_after_fork(self)
        if spool is not None:
            self._start()  # records left by an earlier run are replayed without waiting for one

    def _init_runtime(self) -> None:
        """Queue, writer state and synchronisation (fresh in a forked child)."""
        self._pid = os.getpid()
        self._init_shared()
        self._retry: deque[Item] = deque()  # written-and-failed frames from memory, oldest first
        self._fresh = False  # connected, and nothing written on this connection yet
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._inline = threading.Lock()  # one caller at a time writes inline (no thread)
        self._writing_inline = False
        self._busy = False
        self._seen = -1  # progress last seen by the writer, and when it changed
        self._progress_at = time.monotonic()

    def _progress_count(self) -> int:
        return self._moved + self._books.progress

    def after_fork_in_child(self) -> None:
        """An empty queue, no writer (one starts at the first record), no inherited connection."""
        if self._pid == os.getpid():
            return
        self._init_runtime()
        self.stats.reset_lock()
        self.transport.forget()
        self.transport.opened = 0
        self._confirm.reset()
        if self._spool is not None:
            self._spool.after_fork_in_child()

    # -- writer thread -------------------------------------------------------------------------

    def _writer_running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _start(self) -> None:
        """Start the writer thread; where a thread could hang a forked child (a uWSGI master),
        write inline instead."""
        if self._thread is None and threads_may_hang_a_fork():
            self._write_inline()
            return
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # e.g. at interpreter shutdown: flush/close write inline
                return
            self._thread = thread
        close_at_exit(self)  # a child that ends without atexit still delivers what it holds

    def _write_inline(self) -> None:
        """No writer thread may run here (`threads_may_hang_a_fork`): the calling thread writes
        what is queued (and what the spool holds), bounded by `timeout`. Such a process may end
        without `atexit` (a uWSGI master does), so nothing waits in memory for `close`: while
        the collector cannot be reached, records go to the spool, or are dropped and counted."""
        me = threading.get_ident()
        if self._writer_ident == me or not self._inline.acquire(timeout=self.timeout):
            return  # a record from the send path: the loop below takes it
        self._writer_ident = me
        self._writing_inline = True
        try:
            deadline = time.monotonic() + self.timeout
            while not self._closed and not self._written() and time.monotonic() < deadline:
                try:
                    self._step()
                except Exception as exc:  # a bug: reported, never raised into the caller
                    self._error(TransportError("error", f"writer: {type(exc).__name__}: {exc}"))
                    return
                if self.transport.sock is None:  # unreachable, or the connection broke
                    self._leave_unwritten()
                    return
        finally:
            self._writing_inline = False
            self._writer_ident = None
            self._inline.release()

    def _leave_unwritten(self) -> None:
        """Inline, with no connection: what is in memory goes to the spool, or is dropped."""
        if self._spool is not None:
            self._to_spool()
            return
        left = empty_queue(self._retry) + empty_queue(self._queue)  # as at close (`_finish`)
        if left:
            self._lose(self.transport.last_failure, left)

    def _run(self) -> None:
        self._writer_ident = threading.get_ident()
        leave_sigterm_to_main_thread()
        while True:
            try:
                if self._step():
                    return
            except Exception as exc:  # a bug must never stop delivery for good
                self._error(TransportError("error", f"writer: {type(exc).__name__}: {exc}"))
                time.sleep(0.05)

    def _drive(self, deadline: float) -> None:
        """Run the writer's loop in the calling thread (no writer thread could be started)."""
        while time.monotonic() < deadline or self._closing:
            if self._step():
                return
            if not self._closing and self._drained():
                return

    def _give_up(self, now: float) -> bool:
        """Closing: the deadline passed, or the writer made no progress for the stall time."""
        if now >= self._deadline:
            return True
        return self._stall is not None and now - self._progress_at >= self._stall

    def _give_up_in(self, now: float) -> float:
        left = self._deadline - now
        if self._stall is not None:
            left = min(left, self._progress_at + self._stall - now)
        return max(left, 0.0)

    def _step(self) -> bool:
        """One round of the writer; True when it is finished (closed)."""
        spool = self._spool
        closing = self._closing
        now = time.monotonic()
        count = self._progress_count()
        if count != self._seen:
            self._seen, self._progress_at = count, now
        if closing and (self._drained() or self._give_up(now)):
            self._finish()
            return True
        if spool is not None and not spool.closed and self._adopts() and spool.adopt_due(now):
            adopted = spool.adopt()
            if adopted:
                self.stats.add("adopted", adopted)
        if not self._connected():
            # a collector never reached is gone at once; one that was, after block_timeout
            # without a connection (a restart within that costs callers a bounded wait only)
            self._gone = not self._ever_connected or now - self._lost_at >= self.block_timeout
            self._room_notify()
            if spool is not None:
                self._to_spool()
                self._parked = not self._queue and not self._retry
            if closing and (spool is not None or self._give_up(time.monotonic())):
                self._finish()
                return True
            self._notify()
            wait = min(max(self.transport.backoff.remaining(), 0.01), _IDLE)
            if closing:
                wait = min(wait, self._give_up_in(time.monotonic()))
            # with a spool, move records to disk long before the queue overflows
            wake_at = max(1, self.queue_size // 4) if spool is not None else self.queue_size
            self._sleep(wait, wake_at)
            return False
        self._gone = False
        self._parked = False
        if spool is not None and len(self._queue) >= self._spill_at:
            self._to_spool()  # overflow goes to disk, in order (it is replayed first)
        batch = self._take()
        if batch is not None:
            self._send(batch)
        elif self._confirm.waiting():
            self._poll(ACK_POLL)
        elif not closing:
            self._notify()
            self._sleep(_IDLE, 0)
        self._busy = False
        self._notify()
        return False

    def _sleep(self, timeout: float, wake_at: int) -> None:
        if timeout <= 0 or self._writing_inline:  # nobody else would wake a caller
            return
        self._wake_at = wake_at
        self._sleeping = True
        if len(self._queue) <= wake_at:
            self._wake.wait(timeout)
        self._sleeping = False
        self._wake.clear()

    def _drained(self) -> bool:
        spool = self._spool
        scanned = spool is None or spool.closed or spool.scanned
        return scanned and self._written()

    def _written(self) -> bool:
        """Nothing in memory, in flight, or in this process's spool waits to be delivered."""
        if self._queue or self._retry or self._busy or self._confirm.unconfirmed():
            return False
        spool = self._spool
        return spool is None or spool.closed or not spool.pending()

    def _adopts(self) -> bool:
        """Whether this writer takes over what dead processes left in the spool: not inline (a
        uWSGI master would keep their records until it logs again; its workers adopt them)."""
        return not self._writing_inline

    # -- connection ----------------------------------------------------------------------------

    def _connected(self) -> bool:
        """True with a usable connection (opening one when needed and the backoff allows)."""
        transport = self.transport
        if transport.sock is not None:
            try:
                self._confirm.check()
            except BatchFailed as failed:
                self._broken(failed.error, failed.failed)
                return self._connected()
            if not transport.stream or transport.alive():
                if self._switching is not None and self._switching.switch_pending():
                    self._switch(self._switching)
                return transport.sock is not None or self._connected()
            self._broken(
                TransportError(transport.last_failure, f"{transport.address}: connection closed"),
                [],
            )
        try:
            transport.open()
        except TransportError as exc:
            self._error(exc, report=exc.attempted and not self._ever_connected)
            return False
        except Exception as exc:  # a transport bug: treat like an unreachable collector
            self._error(TransportError("unreachable", f"{type(exc).__name__}: {exc}"))
            self._bug(exc)
            return False
        if transport.opened > 1:
            self.stats.add("reconnects")
        self._ever_connected = True
        self._fresh = True
        return True

    def _switch(self, transport: Switching) -> None:
        """Failover: settle the current connection, then move back to the first address."""
        try:
            self._confirm.settle()
        except BatchFailed as failed:
            self._broken(failed.error, failed.failed)
        transport.switch(self.timeout)

    def _broken(self, exc: TransportError, failed: list[Item]) -> None:
        """The connection failed: count it, and line up what must be written again."""
        self._error(exc)
        self._lost_at = time.monotonic()
        transport = self.transport
        transport.discard()
        if self._fresh or not self._confirm.answered():
            # it broke before taking anything (or, over RELP, before answering anything: a
            # collector that closes the session when it cannot store): wait before the next
            # attempt, as after a failed connect (no tight reconnect loop)
            member = self._switching.active if self._switching is not None else transport
            member.backoff.failure()
            self._fresh = False
        # what was written before counts as a re-send when written again
        resend = [(frame, ticket, True) for frame, ticket, _ in self._confirm.broken()]
        resend.extend(failed)
        if self._spool is not None:
            self._spool.rewind()  # spooled records are read again from their last commit
        memory = [item for item in resend if item[1] is None]
        if memory:
            self._retry.extendleft(reversed(memory))

    def _bug(self, exc: Exception) -> None:
        """A bug (not a failure of the network): reported as it is, for `handleError`."""
        if self._report is not None:
            with contextlib.suppress(Exception):  # the application's handler must not stop us
                self._report(exc, None)

    def _error(self, exc: TransportError, *, report: bool = False) -> None:
        """Count an error; report it only when asked (a collector never reached: one line)."""
        self.stats.error(exc)
        if report and self._report is not None:
            with contextlib.suppress(Exception):  # the application's handler must not stop us
                self._report(exc, None)

    # -- batches -------------------------------------------------------------------------------

    def _take(self) -> Batch | None:
        """The next records to write, oldest first (spooled ones before anything in memory).

        With a spool, under `spool.lock`: a caller moving the queue to disk meanwhile would
        otherwise put records logged before the ones taken here after them.
        """
        limit = self._confirm.room()
        if limit <= 0:
            return None
        spool = self._spool
        if spool is None:
            return self._take_memory(limit)
        with spool.lock:
            if spool.closed or not spool.unread():
                return self._take_memory(limit)
            self._busy = True
            self._to_spool()
            try:
                items = spool.read(self._batch_bytes, limit)
            except OSError as exc:
                failed: OSError | None = exc
            else:
                failed = None
        if failed is not None:  # reported outside the lock: the reporter is the application's
            self._spool_failed(failed)
            return None
        return Batch.of(items) if items else None

    def _take_memory(self, limit: int) -> Batch | None:
        """Up to `limit` records from memory: those to write again, then the queue."""
        frames: list[bytes] = []
        before: list[bool] | None = None
        size = 0
        budget = self._batch_bytes
        self._busy = True
        retry = self._retry
        if retry:
            before = []
            while retry and len(frames) < limit and size < budget:
                frame, _, again = retry.popleft()
                frames.append(frame)
                before.append(again)
                size += len(frame)
        queue = self._queue
        popleft = queue.popleft
        append = frames.append
        room = limit - len(frames)
        taken = 0
        while taken < room and size < budget:
            try:
                frame = popleft()
            except IndexError:
                break
            append(frame)
            size += len(frame)
            taken += 1
        if taken:
            self.stats.add("queued", taken)
            self._moved_some(taken)
            if before is not None:
                before.extend([False] * taken)
        if not frames:
            self._busy = False
            return None
        return Batch(frames, None, before if before is not None and any(before) else None)

    def _to_spool(self) -> None:
        """Move what is in memory (to be written again first, then the queue) to the spool."""
        spool = self._spool
        assert spool is not None
        with spool.lock:  # callers spill the queue under it too: one order on disk
            if spool.closed or not (self._retry or self._queue):
                return
            frames: list[bytes] = []
            flags: list[int] = []
            while self._retry:
                frame, _, before = self._retry.popleft()
                frames.append(frame)
                flags.append(FLAG_SENT if before else 0)
            taken = drain_queue(self._queue, frames)
            flags.extend([0] * taken)
            if taken:
                self.stats.add("queued", taken)
                self._moved_some(taken)
            try:
                kept = spool.append(frames, flags)
            except OSError as exc:
                failed: OSError | None = exc
            else:
                failed = None
        if failed is not None:  # told outside the lock: the reporter is the application's
            self._lose("spool_error", len(frames))
            self._spool_failed(failed)
        elif kept:
            self.stats.add("spooled", kept)

    def _spool_failed(self, exc: OSError) -> None:
        self._error(TransportError("spool_error", f"spool: {exc}"), report=True)

    def _send(self, batch: Batch) -> None:
        try:
            self._confirm.send(batch)
        except BatchFailed as failed:
            self._broken(failed.error, failed.failed)
            return
        except Exception as exc:  # a bug in a transport or strategy: the batch is lost
            self._lost_to_bug(batch, exc)
            return
        self._fresh = False

    def _lost_to_bug(self, batch: Batch, exc: Exception) -> None:
        """A write raised something other than `TransportError`: its records are dropped
        (`error`), counted and told, their spooled copies committed (a bug that repeats must
        not replay them for ever), the connection dropped, and the bug reported as it is."""
        self._books.commit(batch.spooled())
        self._lose("error", len(batch))
        # the connection's state is unknown: drop it (what it held is written again)
        self._broken(TransportError("error", f"writer: {type(exc).__name__}: {exc}"), [])
        self._bug(exc)

    def _poll(self, timeout: float) -> None:
        try:
            self._confirm.poll(timeout)
        except BatchFailed as failed:
            self._broken(failed.error, failed.failed)

    # -- the end -------------------------------------------------------------------------------

    def _finish(self) -> None:
        """Closing: spool or drop what is left, close the connection, and tell the final count
        of records lost in one line (when no line carried it yet)."""
        self._finished = True  # before the queue is emptied: a late append is taken back
        spool = self._spool
        transport = self.transport
        connected = transport.sock is not None
        spool_usable = spool is not None and not spool.closed
        unconfirmed_before = self._books.unconfirmed_at_exit
        keep = self._confirm.finish(spool_usable)
        if keep:
            self._retry.extendleft(reversed(keep))
        if spool is not None and spool_usable:
            spool.rewind()
            self._to_spool()
        left = empty_queue(self._retry) + empty_queue(self._queue)  # taken is what is counted
        reason = "timeout" if connected else transport.last_failure
        if left:
            self.stats.drop(reason, left)
        unconfirmed = self._books.unconfirmed_at_exit - unconfirmed_before
        try:
            transport.close(max(0.05, min(self._deadline - time.monotonic(), self.timeout)))
        except Exception as exc:  # closing must never raise into logging.shutdown()
            self._error(TransportError("error", f"close: {type(exc).__name__}: {exc}"))
        if spool is not None:
            try:
                spool.close()
            except OSError as exc:
                self._spool_failed(exc)
        self._final_notice(left, unconfirmed, reason)
        self._busy = False
        self._notify()
