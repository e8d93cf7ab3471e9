"""The application's side of background delivery: what logging threads do with the queue.

`BackgroundDelivery` (`delivery.background`) is one object seen from two kinds of thread. This
module is everything the application's threads run: `deliver()` (admission to the bounded
queue: waiting for room, shedding, dropping), `flush()` and `close()` (waits bounded by the
writer's progress), and the one-line notices of records lost. `background` is the writer
thread's loop. The two share the queue and a few flags, each written by one side only (listed
in `CallerSide`); the writer's side signals room and progress through `_moved_some()` and
`_notify()`.

When the queue fills (decisions of issue 11, after rsyslog, logback and log4j2):

- Back-pressure: a full queue with a live collector makes the caller wait for room, at most
  `block_timeout` seconds (2 s, rsyslog's `queue.timeoutEnqueue`), then drops the record
  (`dropped_overflow`; with `overflow="drop_oldest"` the oldest queued one instead). A slow
  collector slows the application to its pace and loses nothing.
- No waiting on a dead collector: once the writer knows it is unreachable (connect or handshake
  failing, backoff running; for a collector that was reached before, for `block_timeout`
  since the connection broke, so that a quick restart loses nothing), or a wait expired
  without the writer taking a single record (stuck in a write, or waiting for answers that
  do not come), calls do not wait until the writer moves again. An outage costs the
  application at most one bounded wait.
- Shedding: when the caller cannot be made to wait (collector gone or stalled as above, or
  `block_timeout=0`), records less severe than `shed_below` (the handler's default: WARNING;
  None here) are dropped past the high-water mark (`high_water`, 80% of the queue,
  `dropped_shed`), so that the rest of the queue keeps room for the ones that matter. While
  the collector keeps up nothing is shed: back-pressure slows the application instead. The
  severity is read from the frame's PRI, only past the mark (nothing on the common path).
- With a spool (`spool_dir`) nothing is shed: past the mark, and while the collector is
  unreachable, the writer moves what is in memory to disk, in order. A call that finds the
  queue full and cannot wait (or whose wait expired: the writer may be stuck in a write to a
  collector that stopped reading) moves the queue and its record to disk itself (`_spill`,
  under the spool's lock): nothing is dropped while the spool has room. Disk only: a caller
  never touches the network.

Shutdown: `flush()` and `close()` with no timeout (as `logging.shutdown()` calls them) keep
waiting while the writer makes progress, and give up after `shutdown_stall` seconds without
any (3 s) or `shutdown_max` in all (30 s); with a timeout, that is the bound.

Reporting: records really lost are never silent. The first drop of an episode is told in one
line (at most one per `NOTICE_INTERVAL`, 30 s) through the reporter as a `DeliveryNotice`,
carrying the total so far. At close one more line tells the final total and its reasons
whenever a notice did not already carry it (records dropped after the rate-limited notice, or
left undelivered at close: how many, to where, and `spool_dir=` to keep them next time), even
when the queue is empty by then. A record handed over while the writer was finishing (a call
that waited for room and was woken after close emptied the queue) is taken back and counted
as `closed`, never left in a queue nobody reads.

Records logged from inside the send path (the writer thread) are queued like any other, but at
most `REENTRANT_MAX` of them after each record from the application (more are `reentrant`
drops), and the writer never waits for room.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Final

from syslogkit.codec.message import Severity
from syslogkit.delivery.base import REENTRANT_MAX, DeliveryNotice, ErrorReporter, Stats
from syslogkit.delivery.confirm import Item
from syslogkit.delivery.spool import Spool
from syslogkit.transports.base import Transport

__all__ = [
    "NOTICE_INTERVAL",
    "OVERFLOW",
    "CallerSide",
    "coerce_shed_below",
    "drain_queue",
    "dropped_by_reason",
    "empty_queue",
    "severity_of",
]

#: The values of `overflow`.
OVERFLOW: Final = ("drop_newest", "drop_oldest")
#: Seconds between two notices of dropped records (the first of an episode is told at once).
NOTICE_INTERVAL: Final = 30.0
_ROOM_POLL: Final = 0.05  # a waiting caller re-checks the queue at least this often
_PROGRESS_POLL: Final = 0.05  # a flushing caller re-checks the writer's progress this often
_get_ident: Final = threading.get_ident


def severity_of(frame: bytes) -> int | None:
    """The severity in a frame's PRI (`<13>...`, after an octet count on streams), or None."""
    start = frame.find(b"<", 0, 12)
    if start < 0:
        return None
    end = frame.find(b">", start + 1, start + 5)
    digits = frame[start + 1 : end]
    if end < 0 or not digits.isdigit():
        return None
    return int(digits) & 7


def drain_queue(queue: deque[bytes], into: list[bytes]) -> int:
    """Move the records queued now to `into`, oldest first; returns how many."""
    moved = 0
    popleft, append = queue.popleft, into.append
    for _ in range(len(queue)):
        try:
            append(popleft())
        except IndexError:  # emptied meanwhile (the writer giving up at close)
            break
        moved += 1
    return moved


def empty_queue(items: deque[Any]) -> int:
    """Take everything out of a deque other threads may append to; how many were taken (each
    record is counted by the one thread whose `popleft` took it)."""
    taken = 0
    try:
        while True:
            items.popleft()
            taken += 1
    except IndexError:
        return taken


def dropped_by_reason(counts: dict[str, Any]) -> str:
    """`overflow 3, refused 5`: the `dropped_<reason>` counters that are not zero."""
    return ", ".join(
        f"{key[8:]} {value}"
        for key, value in sorted(counts.items())
        if key.startswith("dropped_") and value
    )


def coerce_shed_below(value: int | str | None) -> int | None:
    """`shed_below`: a Severity, its name (`"warning"`) or number (0..7), or None (no shedding)."""
    return None if value is None else int(Severity.coerce(value))


class CallerSide:
    """The queue as the application's threads see it (see the module docstring).

    Shared with the writer's side (`BackgroundDelivery`), each written by one side only:
    `_queue` (callers append, the writer takes), `_moved` and `_stalled` (the writer counts
    what it took and clears `_stalled`; a caller whose wait expired sets it), `_gone` and
    `_parked` (the writer), `_writer_ident` (the writer), `_sleeping`/`_wake_at` (the writer;
    callers set `_wake` to rouse it), `_closing`/`_closed` and `_deadline`/`_stall` (`close`);
    `_retry` (the writer's frames to write again) and `_progress_at` (when the writer last moved;
    `close` restarts that clock) are the writer's, read or reset here.
    """

    transport: Transport
    stats: Stats
    _report: ErrorReporter | None
    _spool: Spool | None
    _thread: threading.Thread | None
    _start_lock: threading.Lock
    _retry: deque[Item]
    _progress_at: float

    # -- set up --------------------------------------------------------------------------------

    def _configure_caller(
        self,
        *,
        queue_size: int,
        overflow: str,
        block_timeout: float,
        shed_below: int | str | None,
        high_water: float,
        shutdown_stall: float,
        shutdown_max: float,
        spooling: bool,
    ) -> None:
        """Check and keep the caller's options (`spooling`: a spool takes the overflow)."""
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if overflow not in OVERFLOW:
            raise ValueError(f"overflow must be one of {OVERFLOW}, not {overflow!r}")
        if block_timeout < 0 or shutdown_stall <= 0 or shutdown_max <= 0:
            raise ValueError("block_timeout >= 0, shutdown_stall and shutdown_max > 0 seconds")
        if not 0 < high_water <= 1:
            raise ValueError("high_water is a fraction of the queue: 0 < high_water <= 1")
        self.queue_size = queue_size
        self.overflow = overflow
        self._drop_oldest = overflow == "drop_oldest"
        self.block_timeout = block_timeout
        self.shutdown_stall = shutdown_stall
        self.shutdown_max = shutdown_max
        high = max(1, min(queue_size, int(queue_size * high_water)))
        #: the least severe severity kept past the high-water mark (None: no shedding)
        self.shed_below = None if spooling else coerce_shed_below(shed_below)
        #: past this many queued records the caller looks closer (shedding, or a full queue)
        self._mark = high if self.shed_below is not None else queue_size
        self._spill_at = high  # with a spool: the writer moves memory to disk from here
        self._closed = False
        self._closing = False
        self._deadline = 0.0  # set by close(): the writer gives up at this time ...
        self._stall: float | None = None  # ... or after this long without progress
        self._next_notice = 0.0
        self._told_dropped = 0  # the total of dropped records the last line told
        self._finished = False  # the writer gave up the queue for good (set first in _finish)

    def _init_shared(self) -> None:
        """The queue and the state both sides read (fresh in a forked child)."""
        self._queue: deque[bytes] = deque()
        self._wake = threading.Event()
        self._sleeping = False
        self._wake_at = 0  # a sleeping writer is woken once the queue holds more than this
        self._room = threading.Condition(threading.Lock())
        self._room_waiters = 0
        self._progress = threading.Condition(threading.Lock())
        self._waiters = 0
        self._parked = False  # unreachable, and everything is on disk
        self._gone = False  # the writer knows the collector is unreachable
        self._stalled = False  # a caller's wait expired while the writer took nothing
        self._moved = 0  # records the writer took from memory (to write, or to the spool)
        self._writer_ident: int | None = None  # the writer thread's (records it logs are bounded)
        self._inner_left = REENTRANT_MAX

    # -- deliver: admission to the queue -------------------------------------------------------

    def deliver(self, data: bytes, record: Any = None) -> None:
        """Enqueue one frame; waits only for room in a full queue (bounded); never raises."""
        if self._closed:
            self._lose("closed", 1)
            return
        if self._writer_ident == _get_ident():  # logged from inside the send path
            if self._inner_left <= 0:
                self._lose("reentrant", 1)
                return
            self._inner_left -= 1
        else:
            self._inner_left = REENTRANT_MAX
        queue = self._queue
        size = len(queue)
        if size >= self._mark and not self._admit(data, size):
            return
        queue.append(data)
        if self._finished:  # closed while this call waited: nobody will ever take it
            self._take_back()
            return
        if self._sleeping and size >= self._wake_at:
            self._wake.set()
        if self._thread is None:
            self._start()

    def _admit(self, data: bytes, size: int) -> bool:
        """Past the mark: shed a record of low severity, wait for room, or drop one."""
        shed_below = self.shed_below
        if shed_below is not None and not (self.block_timeout > 0 and self._live()):
            severity = severity_of(data)
            if severity is not None and severity > shed_below:
                self._lose("shed", 1)
                return False
        if size < self.queue_size or self._wait_for_room():
            return True
        if self._spool is not None and self._spill(data):
            return False
        if self._drop_oldest:
            try:
                self._queue.popleft()
            except IndexError:
                return True
            self._lose("overflow", 1)
            return True
        self._lose("overflow", 1)
        return False

    def _take_back(self) -> None:
        """The writer finished after this call was admitted: what is still queued is dropped
        as `closed` (the writer sets `_finished` before it empties the queue, so a record
        appended after that is taken by one of the two, and counted once)."""
        taken = empty_queue(self._queue)
        if taken:
            self._lose("closed", taken)

    def _live(self) -> bool:
        """The writer is known to move records (not stalled, the collector not gone)."""
        return not (self._stalled or self._gone)

    def _spill(self, data: bytes) -> bool:
        """The queue is full and there is a spool: move the queue, then this record, to disk.

        Under `spool.lock`, which the writer holds while it looks at the spool and takes from
        the queue, so the records go to disk in the order they were logged, after everything
        spooled before. The writer may be stuck in a write meanwhile: this is how nothing is
        dropped while the spool has room. False when the spool is closed (the record is then
        dropped as without one).
        """
        spool = self._spool
        assert spool is not None
        frames: list[bytes] = []
        failed: OSError | None = None
        kept = 0
        with spool.lock:
            if spool.closed:
                return False
            drain_queue(self._queue, frames)
            frames.append(data)
            self.stats.add("queued", len(frames))  # admitted: to disk instead of the writer
            try:
                kept = spool.append(frames)
            except OSError as exc:
                failed = exc
        self._room_notify()
        if failed is not None:  # told outside the lock: the reporter is the application's
            self._lose("spool_error", len(frames))
            self._spool_failed(failed)
        elif kept:
            self.stats.add("spooled", kept)
        return True

    def _may_wait(self) -> bool:
        if not self._live() or self._closing or self._writer_ident == _get_ident():
            return False
        return self._writer_running() or self._start_writer()

    def _start_writer(self) -> bool:
        self._start()
        return self._writer_running()

    def _wait_for_room(self) -> bool:
        """Wait (at most `block_timeout`) until the queue has room; True when it has."""
        queue, limit = self._queue, self.queue_size
        if self.block_timeout <= 0 or not self._may_wait():
            return len(queue) < limit
        moved = self._moved
        deadline = time.monotonic() + self.block_timeout
        self._wake.set()
        with self._room:
            self._room_waiters += 1
            try:
                while len(queue) >= limit:
                    if self._stalled or self._closing or self._gone:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        if self._moved == moved:  # the writer took nothing: do not wait again
                            self._stalled = True
                        break
                    self._room.wait(min(left, _ROOM_POLL))
            finally:
                self._room_waiters -= 1
        return len(queue) < limit

    # -- signals from the writer ---------------------------------------------------------------

    def _moved_some(self, n: int) -> None:
        """The writer took `n` records from memory: room for waiting callers."""
        self._moved += n
        self._stalled = False
        self._room_notify()

    def _room_notify(self) -> None:
        if self._room_waiters:
            with self._room:
                self._room.notify_all()

    def _notify(self) -> None:
        """The writer moved: wake the callers waiting in `flush()`."""
        if self._waiters:
            with self._progress:
                self._progress.notify_all()

    # -- flush and close: waits bounded by the writer's progress -------------------------------

    @property
    def pending(self) -> int:
        """Records in memory not yet written (queued, or to be written again)."""
        return len(self._queue) + len(self._retry)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything handed over is delivered; True when it all was.

        Delivered means written (RELP: acknowledged) and, with a spool, replayed from it. With
        a timeout, waits at most that; with None, while the writer makes progress (see the
        module docstring). When the collector is unreachable and everything is safely in the
        spool, returns False at once.
        """
        if self._drained():
            return True
        deadline, stall = self._limits(timeout)
        if not self._writer_running():
            self._start()
            if not self._writer_running():
                self._drive(deadline)
                return self._drained()
        seen, seen_at = self._progress_count(), time.monotonic()
        with self._progress:
            self._waiters += 1
            try:
                self._wake.set()
                while not self._drained():
                    if self._parked:
                        return False
                    now = time.monotonic()
                    count = self._progress_count()
                    if count != seen:
                        seen, seen_at = count, now
                    if now >= deadline or (stall is not None and now - seen_at >= stall):
                        return False
                    self._progress.wait(min(deadline - now, _PROGRESS_POLL))
            finally:
                self._waiters -= 1
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (bounded as `flush`), then close the connection.

        What cannot be delivered in time goes to the spool, or is dropped, counted and told in
        one line on stderr. Records handed over afterwards are dropped (`dropped_closed`).
        """
        deadline, stall = self._limits(timeout)
        with self._start_lock:
            if self._closed:
                thread = self._thread
                if thread is not None and thread is not threading.current_thread():
                    thread.join(max(deadline - time.monotonic(), 0.0))
                return
            self._deadline, self._stall = deadline, stall
            self._progress_at = time.monotonic()
            self._closing = True
            self._closed = True
            thread = self._thread
        self._room_notify()
        if thread is None or not thread.is_alive():
            self._drive(self._deadline)
            return
        self._wake.set()
        if thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0) + 1.0)

    def _limits(self, timeout: float | None) -> tuple[float, float | None]:
        """(hard deadline, no-progress stretch or None) for a wait of `timeout`."""
        now = time.monotonic()
        if timeout is None:
            return now + self.shutdown_max, self.shutdown_stall
        return now + max(0.0, timeout), None

    # -- telling losses ------------------------------------------------------------------------

    def _lose(self, reason: str, n: int) -> None:
        """Records dropped: counted, and told once per episode (rate limited)."""
        self.stats.drop(reason, n)
        now = time.monotonic()
        if now < self._next_notice:
            return
        self._next_notice = now + NOTICE_INTERVAL
        counts = self.stats.snapshot()
        self._told_dropped = counts["dropped"]
        why = {
            "shed": "queue past its high-water mark: less severe records shed first",
            "overflow": "queue full",
        }.get(reason, reason)
        hint = "" if self._spool is not None else "; spool_dir= keeps records through outages"
        self._notice(
            f"syslogkit: records dropped for {self.transport.address} ({why}): "
            f"{counts['dropped']} so far ({dropped_by_reason(counts)}); counted in stats, told "
            f"again at most every {NOTICE_INTERVAL:g} s and at close{hint}"
        )

    def _final_notice(self, left: int, unconfirmed: int, reason: str) -> None:
        """Closing: one line with the final total of records lost and its reasons, whenever
        a line did not already carry it (`left`: dropped now, `reason`: why they were left;
        `unconfirmed`: sent but never answered). Silent when nothing was lost since."""
        counts = self.stats.snapshot()
        total = counts["dropped"]
        self._next_notice = 0.0  # a drop after close (a late call) is told at once
        if not (left or unconfirmed or total > self._told_dropped):
            return
        self._told_dropped = total
        parts = [f"{left} records not delivered"] if left else []
        if unconfirmed:
            parts.append(f"{unconfirmed} sent but never confirmed")
        lost = " and ".join(parts) if parts else f"{total} records dropped in all"
        why = "the collector is slow" if reason == "timeout" else f"collector {reason}"
        detail = dropped_by_reason(counts)
        if left:
            detail = f"{why}; dropped {total} in all: {detail}"
        elif parts:
            detail = f"dropped {total} in all: {detail}" if total else "none dropped"
        hint = "" if self._spool is not None else "; spool_dir= keeps them for the next run"
        text = f"syslogkit: at close, {lost} to {self.transport.address} ({detail}){hint}"
        self._notice(text, final=True)

    def _notice(self, text: str, *, final: bool = False) -> None:
        notice = DeliveryNotice(text, final=final)
        report = self._report
        if report is None:
            notice.show()
            return
        try:
            report(notice, None)
        except Exception:  # the application's reporter must not stop delivery
            notice.show()

    # -- the writer's side (defined by `BackgroundDelivery`) -----------------------------------

    def _start(self) -> None:
        """Start the writer thread, unless it runs or the delivery is closed."""
        raise NotImplementedError

    def _writer_running(self) -> bool:
        raise NotImplementedError

    def _drive(self, deadline: float) -> None:
        """Run the writer's loop in the calling thread (no writer thread could be started)."""
        raise NotImplementedError

    def _drained(self) -> bool:
        """Nothing is left to deliver (in memory, in flight, or in the spool)."""
        raise NotImplementedError

    def _progress_count(self) -> int:
        """Grows whenever the writer moves a record (taken, written, or answered)."""
        raise NotImplementedError

    def _spool_failed(self, exc: OSError) -> None:
        """The spool could not be written: counted and reported."""
        raise NotImplementedError
