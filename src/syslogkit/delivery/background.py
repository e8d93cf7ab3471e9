"""Background delivery: the caller enqueues, one writer thread per handler does all the I/O.

The caller's share of a record is appending its encoded frame to a bounded in-memory queue; it
never touches the network or the disk. One writer thread (started at the first record)
resolves, connects, and writes many frames per `sendall` (datagrams one per `send`). How the
writer learns that a write was delivered (RELP answers, the kernel's `SIOCOUTQ` count, nothing
for datagrams) is a strategy chosen once (`syslogkit.delivery.confirm`); this module is the
queue, the caller's admission rules and the writer's loop.

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
  unreachable, the writer moves what is in memory to disk, in order; it is replayed first.

What happens to a record that could not be delivered at once:

- The write failed: the frames of that write are written again on the next connection, ahead of
  everything queued after them; what the broken connection held is decided by the strategy
  (RELP: every unanswered record, `resent`; TCP: what the kernel had not acknowledged, the rest
  counted as `maybe_lost`).
- With a spool: records on disk are replayed in order, before anything newer, and removed only
  once written (RELP: acknowledged). Records left on disk at exit are replayed by the next
  process that uses the same directory.

Shutdown: `flush()` and `close()` with no timeout (as `logging.shutdown()` calls them) keep
waiting while the writer makes progress, and give up after `shutdown_stall` seconds without
any (3 s) or `shutdown_max` in all (30 s); with a timeout, that is the bound. What is left goes
to the spool, or is dropped, counted, and told in one line on stderr (how many, to where, and
`spool_dir=` to keep them next time).

Reporting: records really lost are never silent. The first drop of an episode is told in one
line (at most one per `notice_interval`, 30 s) through the reporter as a `DeliveryNotice`; a
connection that broke and came back without losing anything is only counted (`reconnects`,
`resent`, `errors`). A collector never reached is reported once (a wrong address shows at once).

Counters (in the shared `Stats`): `queued` (taken from the queue by the writer), `sent` (written
for the first time), `resent`, `spooled`, `replayed`, `acknowledged` (RELP), `maybe_lost`,
`reconnects`, `errors`, and `dropped` split by reason (`overflow`, `shed`, `closed`,
`spool_full`, `spool_error`, `torn`, `refused`, `timeout`, `unreachable`, ...). Once the writer
is idle, records logged == queued + dropped at the door (`overflow`, `shed`, `closed`,
`reentrant`).

Records logged from inside the send path (the writer thread) are queued like any other, but at
most `REENTRANT_MAX` of them after each record from the application (more are `reentrant`
drops), and the writer never waits for room. After `fork()` the child has an empty queue and
starts a writer of its own at its first record.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from typing import Any, Final

from syslogkit.codec.message import Severity
from syslogkit.delivery.base import (
    REENTRANT_MAX,
    DeliveryNotice,
    ErrorReporter,
    Stats,
    reset_after_fork,
)
from syslogkit.delivery.confirm import (
    Batch,
    BatchFailed,
    Books,
    Item,
    confirmation_for,
)
from syslogkit.delivery.spool import FLAG_SENT, Spool
from syslogkit.transports.base import Transport, TransportError
from syslogkit.transports.failover import Switching
from syslogkit.transports.relp import Acknowledging

__all__ = ["OVERFLOW", "REENTRANT_MAX", "Acknowledging", "BackgroundDelivery"]

#: The values of `overflow`.
OVERFLOW: Final = ("drop_newest", "drop_oldest")
DEFAULT_QUEUE_SIZE: Final = 10_000
DEFAULT_TIMEOUT: Final = 5.0
DEFAULT_BLOCK_TIMEOUT: Final = 2.0
DEFAULT_HIGH_WATER: Final = 0.8
DEFAULT_SHUTDOWN_STALL: Final = 3.0
DEFAULT_SHUTDOWN_MAX: Final = 30.0
NOTICE_INTERVAL: Final = 30.0
_BATCH_BYTES: Final = 64 * 1024
_IDLE: Final = 1.0  # seconds the idle writer sleeps between housekeeping rounds
_ACK_POLL: Final = 0.02  # seconds the writer waits for confirmations between queue checks
_ROOM_POLL: Final = 0.05  # a waiting caller re-checks the queue at least this often
_get_ident: Final = threading.get_ident
_COUNTERS: Final = (
    "queued",
    "sent",
    "resent",
    "spooled",
    "replayed",
    "acknowledged",
    "maybe_lost",
)


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


def coerce_shed_below(value: int | str | None) -> int | None:
    """`shed_below`: a Severity, its name (`"warning"`) or number (0..7), or None (no shedding)."""
    return None if value is None else int(Severity.coerce(value))


class BackgroundDelivery:
    """A bounded queue and one writer thread (see the module docstring)."""

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
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if overflow not in OVERFLOW:
            raise ValueError(f"overflow must be one of {OVERFLOW}, not {overflow!r}")
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        if block_timeout < 0 or shutdown_stall <= 0 or shutdown_max <= 0:
            raise ValueError("block_timeout >= 0, shutdown_stall and shutdown_max > 0 seconds")
        if not 0 < high_water <= 1:
            raise ValueError("high_water is a fraction of the queue: 0 < high_water <= 1")
        self.transport = transport
        self.stats = stats if stats is not None else Stats()
        for key in _COUNTERS:
            self.stats.add(key, 0)
        self._report = report
        self.queue_size = queue_size
        self.overflow = overflow
        self._drop_oldest = overflow == "drop_oldest"
        self.block_timeout = block_timeout
        self.shutdown_stall = shutdown_stall
        self.shutdown_max = shutdown_max
        if spool is None and spool_dir is not None:
            spool = Spool(spool_dir, max_bytes=spool_max_bytes, drop=self.stats.drop)
        self._spool = spool
        if spool is not None:
            self.stats.add("adopted", 0)
        high = max(1, min(queue_size, int(queue_size * high_water)))
        #: the least severe severity kept past the high-water mark (None: no shedding)
        self.shed_below = None if spool is not None else coerce_shed_below(shed_below)
        #: past this many queued records the caller looks closer (shedding, or a full queue)
        self._mark = high if self.shed_below is not None else queue_size
        self._spill_at = high  # with a spool: the writer moves memory to disk from here
        self._batch_bytes = max(1, batch_bytes)
        self.timeout = timeout
        self._name = name
        self._books = Books(self.stats, spool)
        self._confirm = confirmation_for(
            transport,
            self._books,
            timeout=timeout,
            report=self._error,
            sleep=lambda wait: self._sleep(wait, 0),
        )
        self._init_runtime()
        self._closed = False
        self._closing = False
        self._deadline = 0.0
        self._stall: float | None = None
        self._next_notice = 0.0
        self._ever_connected = False
        self._lost_at = 0.0  # when the last connection broke
        reset_after_fork(self)
        if spool is not None:
            self._start()  # records left by an earlier run are replayed without waiting for one

    def _init_runtime(self) -> None:
        """Queue, writer state and synchronisation (fresh in a forked child)."""
        self._pid = os.getpid()
        self._queue: deque[bytes] = deque()
        self._retry: deque[Item] = deque()  # written-and-failed frames from memory, oldest first
        self._fresh = False  # connected, and nothing written on this connection yet
        self._wake = threading.Event()
        self._progress = threading.Condition(threading.Lock())
        self._room = threading.Condition(threading.Lock())
        self._room_waiters = 0
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._sleeping = False
        self._wake_at = 0  # a sleeping writer is woken once the queue holds more than this
        self._busy = False
        self._parked = False  # unreachable, and everything is on disk
        self._gone = False  # the writer knows the collector is unreachable
        self._stalled = False  # a caller's wait expired while the writer took nothing
        self._moved = 0  # records the writer took from memory (to write, or to the spool)
        self._seen = -1  # progress last seen by the writer, and when it changed
        self._progress_at = time.monotonic()
        self._waiters = 0
        self._writer_ident: int | None = None  # the writer thread's (records it logs are bounded)
        self._inner_left = REENTRANT_MAX

    # -- the caller's side ---------------------------------------------------------------------

    def deliver(self, data: bytes, record: Any = None) -> None:
        """Enqueue one frame; waits only for room in a full queue (bounded); never raises."""
        if self._closed:
            self.stats.drop("closed")
            return
        if self._writer_ident == _get_ident():  # logged from inside the send path
            if self._inner_left <= 0:
                self.stats.drop("reentrant")
                return
            self._inner_left -= 1
        else:
            self._inner_left = REENTRANT_MAX
        queue = self._queue
        size = len(queue)
        if size >= self._mark and not self._admit(data, size):
            return
        queue.append(data)
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
        if self._drop_oldest:
            try:
                self._queue.popleft()
            except IndexError:
                return True
            self._lose("overflow", 1)
            return True
        self._lose("overflow", 1)
        return False

    def _live(self) -> bool:
        """The writer is known to move records (not stalled, the collector not gone)."""
        return not (self._stalled or (self._gone and self._spool is None))

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
                    if self._stalled or self._closing or (self._gone and self._spool is None):
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

    def _lose(self, reason: str, n: int) -> None:
        """Records dropped: counted, and told once per episode (rate limited)."""
        self.stats.drop(reason, n)
        now = time.monotonic()
        if now < self._next_notice:
            return
        self._next_notice = now + NOTICE_INTERVAL
        counts = self.stats.snapshot()
        detail = ", ".join(
            f"{key[8:]} {value}"
            for key, value in sorted(counts.items())
            if key.startswith("dropped_") and value
        )
        why = {
            "shed": "queue past its high-water mark: less severe records shed first",
            "overflow": "queue full",
        }.get(reason, reason)
        hint = "" if self._spool is not None else "; spool_dir= keeps records through outages"
        self._notice(
            f"syslogkit: records dropped for {self.transport.address} ({why}): "
            f"{counts['dropped']} so far ({detail}); counted in stats, told again at most "
            f"every {NOTICE_INTERVAL:g} s{hint}"
        )

    def _notice(self, text: str) -> None:
        notice = DeliveryNotice(text)
        report = self._report
        if report is None:
            notice.show()
            return
        try:
            report(notice, None)
        except Exception:  # the application's reporter must not stop delivery
            notice.show()

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
                    self._progress.wait(min(deadline - now, 0.05))
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
        if self._room_waiters:
            with self._room:
                self._room.notify_all()
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
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # e.g. at interpreter shutdown: flush/close write inline
                return
            self._thread = thread

    def _run(self) -> None:
        self._writer_ident = threading.get_ident()
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
        if spool is not None and not spool.closed and spool.adopt_due(now):
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
            self._poll(_ACK_POLL)
        elif not closing:
            self._notify()
            self._sleep(_IDLE, 0)
        self._busy = False
        self._notify()
        return False

    def _sleep(self, timeout: float, wake_at: int) -> None:
        if timeout <= 0:
            return
        self._wake_at = wake_at
        self._sleeping = True
        if len(self._queue) <= wake_at:
            self._wake.wait(timeout)
        self._sleeping = False
        self._wake.clear()

    def _notify(self) -> None:
        if self._waiters:
            with self._progress:
                self._progress.notify_all()

    def _room_notify(self) -> None:
        if self._room_waiters:
            with self._room:
                self._room.notify_all()

    def _moved_some(self, n: int) -> None:
        """The writer took `n` records from memory: room for waiting callers."""
        self._moved += n
        self._stalled = False
        self._room_notify()

    def _drained(self) -> bool:
        if self._queue or self._retry or self._busy or self._confirm.unconfirmed():
            return False
        spool = self._spool
        if spool is None or spool.closed:
            return True
        return spool.scanned and not spool.pending()

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
                if isinstance(transport, Switching) and transport.switch_pending():
                    self._switch(transport)
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
            self._error(TransportError("unreachable", f"{type(exc).__name__}: {exc}"), report=True)
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
        if self._fresh:
            # it broke before taking anything: wait before the next attempt, as after a
            # failed connect (no tight reconnect loop against a peer that accepts and resets)
            member = transport.active if isinstance(transport, Switching) else transport
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

    def _error(self, exc: TransportError, *, report: bool = False) -> None:
        """Count an error; report it only when asked (a bug, a collector never reached)."""
        self.stats.error(exc)
        if report and self._report is not None:
            with contextlib.suppress(Exception):  # the application's handler must not stop us
                self._report(exc, None)

    # -- batches -------------------------------------------------------------------------------

    def _take(self) -> Batch | None:
        """The next records to write, oldest first (spooled ones before anything in memory)."""
        limit = self._confirm.room()
        if limit <= 0:
            return None
        spool = self._spool
        if spool is not None and not spool.closed and spool.unread():
            self._busy = True
            self._to_spool()
            try:
                items = spool.read(self._batch_bytes, limit)
            except OSError as exc:
                self._spool_failed(exc)
                return None
            return Batch.of(items) if items else None
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
        if spool.closed or not (self._retry or self._queue):
            return
        frames: list[bytes] = []
        flags: list[int] = []
        while self._retry:
            frame, _, before = self._retry.popleft()
            frames.append(frame)
            flags.append(FLAG_SENT if before else 0)
        queue = self._queue
        taken = 0
        while True:
            try:
                frames.append(queue.popleft())
            except IndexError:
                break
            flags.append(0)
            taken += 1
        if taken:
            self.stats.add("queued", taken)
            self._moved_some(taken)
        try:
            kept = spool.append(frames, flags)
        except OSError as exc:
            self._lose("spool_error", len(frames))
            self._spool_failed(exc)
            return
        if kept:
            self.stats.add("spooled", kept)

    def _spool_failed(self, exc: OSError) -> None:
        self._error(TransportError("spool_error", f"spool: {exc}"), report=True)

    def _send(self, batch: Batch) -> None:
        try:
            self._confirm.send(batch)
        except BatchFailed as failed:
            self._broken(failed.error, failed.failed)
            return
        self._fresh = False

    def _poll(self, timeout: float) -> None:
        try:
            self._confirm.poll(timeout)
        except BatchFailed as failed:
            self._broken(failed.error, failed.failed)

    # -- the end -------------------------------------------------------------------------------

    def _finish(self) -> None:
        """Closing: spool or drop what is left (told in one line), close the connection."""
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
        left = len(self._retry) + len(self._queue)
        reason = "timeout" if connected else transport.last_failure
        if left:
            self._retry.clear()
            self._queue.clear()
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
        if left or unconfirmed:
            self._exit_notice(left, unconfirmed, reason)
        self._busy = False
        self._notify()

    def _exit_notice(self, left: int, unconfirmed: int, reason: str) -> None:
        why = "the collector is slow" if reason == "timeout" else f"collector {reason}"
        parts = [f"{left} records not delivered"] if left else []
        if unconfirmed:
            parts.append(f"{unconfirmed} sent but never confirmed")
        hint = "" if self._spool is not None else "; spool_dir= keeps them for the next run"
        self._notice(
            f"syslogkit: at close, {' and '.join(parts)} to {self.transport.address} "
            f"({why}; dropped {self.stats.snapshot()['dropped']} in all){hint}"
        )
