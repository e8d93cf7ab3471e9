"""Background delivery: the caller enqueues, one writer thread per handler does all the I/O.

The caller's whole share of a record is appending its encoded frame to a bounded in-memory
queue: it never waits on a lock held across I/O, never touches the network or the disk, and a
full queue drops a record (the newest, or the oldest when `overflow="drop_oldest"`), counted as
`dropped_overflow`. One writer thread (started at the first record) resolves, connects, and
writes many frames per `sendall` (datagrams one per `send`).

What happens to a record that could not be delivered at once:

- The write failed: the frames of that write are written again on the next connection, ahead of
  everything queued after them.
- Plain TCP/TLS/unix stream: records written on a connection that then broke and that the
  peer's kernel had not acknowledged (Linux `SIOCOUTQ`, see `syslogkit.delivery.outq`) are written
  again; those it had acknowledged since the connection's last confirmed point are counted as
  `maybe_lost` (the honest bound: TCP cannot say whether the collector kept them).
- RELP: every message not acknowledged when a session broke is sent again on the next one
  (at-least-once; counted as `resent`). Nothing is lost silently.
- A datagram over the path's size limit (`EMSGSIZE`) is dropped and counted (`too_large`), never
  written again: another connection would not make it fit.
- With a spool (`spool_dir`): while the collector is unreachable the writer moves queued
  records to disk; once it is reachable they are replayed in order, before anything newer, and a
  replayed record is removed from the disk only once written (RELP: acknowledged). Records left
  on disk at exit are replayed by the next process that uses the same directory.

Counters (in the shared `Stats`): `queued` (taken from the queue by the writer), `sent` (written
for the first time), `resent` (written again after a broken connection), `spooled` (written to
the spool), `replayed` (sent from the spool), `acknowledged` (RELP), `maybe_lost`, `reconnects`,
`errors`, and `dropped` split by reason (`overflow`, `closed`, `spool_full`, `spool_error`,
`torn`, `refused`, `timeout`, `unreachable`, ...). Once the writer is idle,
records logged == queued + dropped at the door (`overflow`, `closed`).

Records logged from inside the send path (the writer thread: a transport or the error reporter
logging into the same handler) are queued like any other, but at most `REENTRANT_MAX` of them
after each record from the application; more are dropped as `reentrant`, so a write that logs
cannot feed the queue for ever.

`flush(timeout)` and `close(timeout)` wait at most `timeout` seconds (5 s when None, since
`logging.shutdown()` passes nothing). After `fork()` the child has an empty queue and starts a
writer of its own at its first record; the parent's queue and connection stay the parent's.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, Protocol, runtime_checkable

from syslogkit.delivery.base import REENTRANT_MAX, ErrorReporter, Stats, reset_after_fork
from syslogkit.delivery.outq import Ledger
from syslogkit.delivery.spool import FLAG_SENT, Spool, Ticket
from syslogkit.transports.base import Transport, TransportError

__all__ = ["OVERFLOW", "REENTRANT_MAX", "Acknowledging", "BackgroundDelivery"]

#: The values of `overflow`.
OVERFLOW: Final = ("drop_newest", "drop_oldest")
DEFAULT_QUEUE_SIZE: Final = 10_000
DEFAULT_TIMEOUT: Final = 5.0
_BATCH_BYTES: Final = 64 * 1024
_BATCH_RECORDS: Final = 2048
_IDLE: Final = 1.0  # seconds the idle writer sleeps between housekeeping rounds
_ACK_POLL: Final = 0.02  # seconds the writer waits for RELP answers between queue checks
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

#: A record in the writer's hands: frame, spool ticket (None when it came from memory), and
#: whether it had been written to a connection before.
Item = tuple[bytes, "Ticket | None", bool]


class _Batch:
    """Records written together. `tickets` and `before` (per record: spool ticket, written
    before) are None in the common case: all fresh from the in-memory queue."""

    __slots__ = ("before", "frames", "tickets")

    def __init__(
        self,
        frames: list[bytes],
        tickets: list[Ticket | None] | None = None,
        before: list[bool] | None = None,
    ) -> None:
        self.frames = frames
        self.tickets = tickets
        self.before = before

    @classmethod
    def of(cls, items: Sequence[Item]) -> _Batch:
        tickets = [item[1] for item in items]
        before = [item[2] for item in items]
        return cls(
            [item[0] for item in items],
            tickets if any(t is not None for t in tickets) else None,
            before if any(before) else None,
        )

    def __len__(self) -> int:
        return len(self.frames)

    def items(self, start: int = 0) -> list[Item]:
        frames = self.frames[start:]
        n = len(frames)
        tickets = self.tickets[start:] if self.tickets is not None else [None] * n
        before = self.before[start:] if self.before is not None else [False] * n
        return list(zip(frames, tickets, before, strict=True))

    def spooled(self, stop: int | None = None) -> list[Ticket]:
        if self.tickets is None:
            return []
        return [ticket for ticket in self.tickets[:stop] if ticket is not None]


@runtime_checkable
class Acknowledging(Protocol):
    """A transport whose collector acknowledges each message (RELP)."""

    window: int

    def send_messages(self, messages: Sequence[bytes]) -> None:
        """Write messages (at most the free window); TransportError when the session broke."""

    def acknowledged(self, timeout: float) -> list[bool]:
        """Answers that arrived (waiting up to `timeout` for the first), in sending order:
        True for taken, False for refused. TransportError when the session broke."""


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
        spool: Spool | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 64 * 1024 * 1024,
        batch_bytes: int = _BATCH_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        name: str = "syslogkit-writer",
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if overflow not in OVERFLOW:
            raise ValueError(f"overflow must be one of {OVERFLOW}, not {overflow!r}")
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self.transport = transport
        self.stats = stats if stats is not None else Stats()
        for key in _COUNTERS:
            self.stats.add(key, 0)
        self._report = report
        self.queue_size = queue_size
        self.overflow = overflow
        self._drop_oldest = overflow == "drop_oldest"
        if spool is None and spool_dir is not None:
            spool = Spool(spool_dir, max_bytes=spool_max_bytes, drop=self.stats.drop)
        self._spool = spool
        if spool is not None:
            self.stats.add("adopted", 0)
        self._batch_bytes = max(1, batch_bytes)
        self.timeout = timeout
        self._name = name
        self._acks = bool(getattr(transport, "acknowledges", False))
        self._ledger: Ledger[_Batch] | None = (
            Ledger() if transport.stream and not self._acks else None
        )
        self._init_runtime()
        self._closed = False
        self._closing = False
        self._deadline = 0.0
        reset_after_fork(self)
        if spool is not None:
            self._start()  # records left by an earlier run are replayed without waiting for one

    def _init_runtime(self) -> None:
        """Queue, writer state and synchronisation (fresh in a forked child)."""
        self._pid = os.getpid()
        self._queue: deque[bytes] = deque()
        self._retry: deque[Item] = deque()  # written-and-failed frames from memory, oldest first
        self._inflight: deque[Item] = deque()  # RELP: sent, not yet answered
        self._ack_since = 0.0
        self._fresh = False  # connected, and nothing written on this connection yet
        self._wake = threading.Event()
        self._progress = threading.Condition(threading.Lock())
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._sleeping = False
        self._wake_at = 0  # a sleeping writer is woken once the queue holds more than this
        self._busy = False
        self._parked = False  # unreachable, and everything is on disk
        self._waiters = 0
        self._writer_ident: int | None = None  # the writer thread's (records it logs are bounded)
        self._inner_left = REENTRANT_MAX

    # -- the caller's side ---------------------------------------------------------------------

    def deliver(self, data: bytes, record: Any = None) -> None:
        """Enqueue one frame; never blocks, never raises."""
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
        if size >= self.queue_size:
            if not self._drop_oldest:
                self.stats.drop("overflow")
                return
            try:
                queue.popleft()
            except IndexError:
                pass
            else:
                self.stats.drop("overflow")
        queue.append(data)
        if self._sleeping and size >= self._wake_at:
            self._wake.set()
        if self._thread is None:
            self._start()

    @property
    def pending(self) -> int:
        """Records in memory not yet written (queued, or to be written again)."""
        return len(self._queue) + len(self._retry)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (at most `timeout` s, 5 when None) until everything handed over is delivered.

        Delivered means written (RELP: acknowledged) and, with a spool, replayed from it. When
        the collector is unreachable and everything is safely in the spool, returns False at
        once. True when everything was delivered.
        """
        wait = DEFAULT_TIMEOUT if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + wait
        if self._drained():
            return True
        if not self._writer_running():
            self._start()
            if not self._writer_running():
                self._drive(deadline)
                return self._drained()
        with self._progress:
            self._waiters += 1
            try:
                self._wake.set()
                while not self._drained():
                    if self._parked:
                        return False
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._progress.wait(min(left, 0.05))
            finally:
                self._waiters -= 1
        return True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued within `timeout` s (5 when None), then close the connection.

        What cannot be delivered in time goes to the spool, or is dropped and counted. Records
        handed over afterwards are dropped (`dropped_closed`).
        """
        wait = DEFAULT_TIMEOUT if timeout is None else max(0.0, timeout)
        with self._start_lock:
            if self._closed:
                thread = self._thread
                if thread is not None and thread is not threading.current_thread():
                    thread.join(wait)
                return
            self._deadline = time.monotonic() + wait
            self._closing = True
            self._closed = True
            thread = self._thread
        if thread is None or not thread.is_alive():
            self._drive(self._deadline)
            return
        self._wake.set()
        if thread is not threading.current_thread():
            thread.join(wait)

    def after_fork_in_child(self) -> None:
        """An empty queue, no writer (one starts at the first record), no inherited connection."""
        if self._pid == os.getpid():
            return
        self._init_runtime()
        self.stats.reset_lock()
        self.transport.forget()
        self.transport.opened = 0
        if self._ledger is not None:
            self._ledger.reset()
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

    def _step(self) -> bool:
        """One round of the writer; True when it is finished (closed)."""
        spool = self._spool
        closing = self._closing
        now = time.monotonic()
        if closing and (now >= self._deadline or self._drained()):
            self._finish()
            return True
        if spool is not None and not spool.closed and spool.adopt_due(now):
            adopted = spool.adopt()
            if adopted:
                self.stats.add("adopted", adopted)
        if not self._connected():
            if spool is not None:
                self._to_spool()
                self._parked = not self._queue and not self._retry
            if closing and (spool is not None or time.monotonic() >= self._deadline):
                self._finish()
                return True
            self._notify()
            wait = min(max(self.transport.backoff.remaining(), 0.01), _IDLE)
            if closing:
                wait = min(wait, max(self._deadline - time.monotonic(), 0.0))
            # with a spool, move records to disk long before the queue overflows
            wake_at = max(1, self.queue_size // 4) if spool is not None else self.queue_size
            self._sleep(wait, wake_at)
            return False
        self._parked = False
        if self._acks and self._inflight:
            self._collect(0.0)
        batch = self._take()
        if batch is not None:
            self._send(batch)
            self._busy = False
        elif self._acks and self._inflight:
            self._collect(_ACK_POLL)
        elif self._ledger is not None and len(self._ledger):
            self._sleep(0.05, 0)
            self._sample()
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

    def _drained(self) -> bool:
        if self._queue or self._retry or self._busy or self._inflight:
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
            if self._ledger is not None:
                self._sample()
            if not transport.stream or transport.alive():
                pending = getattr(transport, "switch_pending", None)
                if pending is not None and pending():
                    self._switch()
                return transport.sock is not None or self._connected()
            self._broken(
                TransportError(transport.last_failure, f"{transport.address}: connection closed"),
                [],
            )
        try:
            transport.open()
        except TransportError as exc:
            if exc.attempted:
                self._error(exc)
            return False
        except Exception as exc:  # a transport bug: treat like an unreachable collector
            self._error(TransportError("unreachable", f"{type(exc).__name__}: {exc}"))
            return False
        if transport.opened > 1:
            self.stats.add("reconnects")
        self._fresh = True
        return True

    def _switch(self) -> None:
        """Failover: settle the current connection, then move back to the first address."""
        transport: Any = self.transport
        if self._acks:
            deadline = time.monotonic() + self.timeout
            while self._inflight and transport.sock is not None and time.monotonic() < deadline:
                self._collect(_ACK_POLL)
            if self._inflight and transport.sock is not None:
                self._broken(TransportError("timeout", "no answers before failing back"), [])
        elif self._ledger is not None:
            self._commit(self._ledger.confirm())
        transport.switch(self.timeout)

    def _sample(self) -> None:
        ledger = self._ledger
        assert ledger is not None
        done = ledger.sample(self.transport.sock)
        if done:
            self._commit(done)

    def _commit(self, batches: list[_Batch]) -> None:
        """Spooled records of these batches are delivered: remove them from the spool."""
        if self._spool is None or not batches:
            return
        tickets = [ticket for batch in batches for ticket in batch.spooled()]
        if tickets:
            self._spool.commit_many(tickets)

    def _broken(self, exc: TransportError, failed: list[Item]) -> None:
        """The connection failed: count it, and line up what must be written again."""
        self._error(exc)
        self.transport.discard()
        if self._fresh:
            # it broke before taking anything: wait before the next attempt, as after a
            # failed connect (no tight reconnect loop against a peer that accepts and resets)
            member: Any = getattr(self.transport, "active", self.transport)
            member.backoff.failure()
            self._fresh = False
        resend: list[Item]
        if self._acks:
            resend = list(self._inflight)
            self._inflight.clear()
        elif self._ledger is not None:
            batches, lost, partial = self._ledger.broken()
            resend = []
            if batches:
                # records of the first batch within the acknowledged bytes: as lost as any
                first = batches[0]
                acked = 0
                for frame in first.frames:
                    partial -= len(frame)
                    if partial < 0:
                        break
                    acked += 1
                lost += acked
                if acked and self._spool is not None:
                    tickets = first.spooled(acked)
                    if tickets:
                        self._spool.commit_many(tickets)
                resend = first.items(acked)
                for batch in batches[1:]:
                    resend.extend(batch.items())
            if lost:
                self.stats.add("maybe_lost", lost)
        else:
            resend = []
        # what was written before counts as a re-send when written again
        resend = [(frame, ticket, True) for frame, ticket, _ in resend]
        resend.extend(failed)
        if self._spool is not None:
            self._spool.rewind()  # spooled records are read again from their last commit
        memory = [item for item in resend if item[1] is None]
        if memory:
            self._retry.extendleft(reversed(memory))

    def _error(self, exc: TransportError) -> None:
        self.stats.error(exc)
        if self._report is not None and exc.attempted:
            with contextlib.suppress(Exception):  # the application's handler must not stop us
                self._report(exc, None)

    # -- batches -------------------------------------------------------------------------------

    def _take(self) -> _Batch | None:
        """The next records to write, oldest first (spooled ones before anything in memory)."""
        limit = _BATCH_RECORDS
        if self._acks:
            window: int = self.transport.window  # type: ignore[attr-defined]
            limit = min(limit, window - len(self._inflight))
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
            return _Batch.of(items) if items else None
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
            if before is not None:
                before.extend([False] * taken)
        if not frames:
            self._busy = False
            return None
        return _Batch(frames, None, before if before is not None and any(before) else None)

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
        try:
            kept = spool.append(frames, flags)
        except OSError as exc:
            self.stats.drop("spool_error", len(frames))
            self._spool_failed(exc)
            return
        if kept:
            self.stats.add("spooled", kept)

    def _spool_failed(self, exc: OSError) -> None:
        self._error(TransportError("spool_error", f"spool: {exc}"))

    def _send(self, batch: _Batch) -> None:
        transport = self.transport
        frames = batch.frames
        try:
            if self._acks:
                transport.send_messages(frames)  # type: ignore[attr-defined]
                if not self._inflight:
                    self._ack_since = time.monotonic()
                self._inflight.extend(batch.items())
            elif transport.stream:
                data = frames[0] if len(frames) == 1 else b"".join(frames)
                transport.write(data)
                if self._ledger is not None:
                    self._ledger.wrote(batch, len(data), len(frames))
            else:
                too_large: set[int] = set()
                for index, frame in enumerate(frames):
                    try:
                        transport.write(frame)
                    except TransportError as exc:
                        if exc.reason == "too_large":  # this datagram only: drop it, go on
                            self.stats.drop("too_large")
                            self._error(exc)
                            too_large.add(index)
                            continue
                        items = batch.items()
                        self._written(_Batch.of(items[:index]), commit=True, skip=too_large)
                        self._broken(exc, items[index:])
                        return
                self._written(batch, commit=True, skip=too_large)
                return
        except TransportError as exc:
            self._broken(exc, batch.items())
            return
        self._written(batch, commit=not transport.stream)

    def _written(
        self, batch: _Batch, *, commit: bool, skip: set[int] | frozenset[int] = frozenset()
    ) -> None:
        """Count records just written; commit spooled ones when writing is delivering.

        `skip`: positions in the batch of records dropped instead (not counted as written,
        their spooled copies committed all the same: they are never to be written again).
        """
        self._fresh = False
        stats = self.stats
        if batch.tickets is None and batch.before is None:
            if len(batch.frames) > len(skip):
                stats.add("sent", len(batch.frames) - len(skip))
            return
        fresh = again = replayed = 0
        tickets: list[Ticket] = []
        for index, (_, ticket, before) in enumerate(batch.items()):
            if ticket is not None:
                tickets.append(ticket)
            if index in skip:
                continue
            if before:
                again += 1
            else:
                fresh += 1
            if ticket is not None and not before:
                replayed += 1
        if fresh:
            stats.add("sent", fresh)
        if again:
            stats.add("resent", again)
        if tickets:
            if replayed:
                stats.add("replayed", replayed)
            spool = self._spool
            assert spool is not None
            for ticket in tickets:
                segment = ticket.segment
                if ticket.end > segment.hwm:
                    segment.hwm = ticket.end
            if commit:
                spool.commit_many(tickets)

    # -- acknowledgements (RELP) ---------------------------------------------------------------

    def _collect(self, timeout: float) -> None:
        """Take the collector's answers (waiting up to `timeout` for one)."""
        try:
            answers: list[bool] = self.transport.acknowledged(timeout)  # type: ignore[attr-defined]
        except TransportError as exc:
            self._broken(exc, [])
            return
        if not answers:
            if self._inflight and time.monotonic() - self._ack_since > self.timeout:
                self._broken(
                    TransportError(
                        "timeout",
                        f"{self.transport.address}: no answer within {self.timeout:g} s",
                    ),
                    [],
                )
            return
        self._ack_since = time.monotonic()
        inflight = self._inflight
        tickets: list[Ticket] = []
        taken = refused = 0
        for ok in answers:
            if not inflight:
                break
            _, ticket, _ = inflight.popleft()
            if ticket is not None:
                tickets.append(ticket)
            if ok:
                taken += 1
            else:
                refused += 1
        if taken:
            self.stats.add("acknowledged", taken)
        if refused:
            self.stats.drop("refused", refused)
        if tickets and self._spool is not None:
            self._spool.commit_many(tickets)

    # -- the end -------------------------------------------------------------------------------

    def _finish(self) -> None:
        """Closing: spool or drop what is left, close the connection and the spool."""
        spool = self._spool
        transport = self.transport
        connected = transport.sock is not None
        if self._inflight:
            unanswered = [item for item in self._inflight if item[1] is None]
            self._inflight.clear()
            if spool is not None and not spool.closed:
                self._retry.extendleft(reversed(unanswered))
            elif unanswered:
                self.stats.add("maybe_lost", len(unanswered))
        if spool is not None and not spool.closed:
            spool.rewind()
            self._to_spool()
        left = len(self._retry) + len(self._queue)
        if left:
            self._retry.clear()
            self._queue.clear()
            self.stats.drop("timeout" if connected else transport.last_failure, left)
        if self._ledger is not None:
            pending = self._ledger.confirm()
            if spool is not None and not spool.closed:
                self._commit(pending)
        try:
            transport.close(max(0.05, min(self._deadline - time.monotonic(), self.timeout)))
        except Exception as exc:  # closing must never raise into logging.shutdown()
            self._error(TransportError("error", f"close: {type(exc).__name__}: {exc}"))
        if spool is not None:
            try:
                spool.close()
            except OSError as exc:
                self._spool_failed(exc)
        self._busy = False
        self._notify()
