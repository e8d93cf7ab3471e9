"""How the background writer learns that what it wrote was delivered: one strategy per kind of
transport, chosen once when the delivery is built (`confirmation_for`).

- `AckConfirm` (RELP, `Acknowledging` transports): the collector answers each message. The
  strategy sends at most the free window, keeps each record (its frame, spool ticket, and
  whether it was written before) by TXNR until its answer comes, and on a broken session hands
  back every unanswered record, to be written again (at-least-once, counted as `resent`). This
  is the one place the sending side keeps the records it resends. A record answered `500` is
  refused for good (librelp's reading: never sent again), counted as dropped `refused` and
  told; a collector that only failed to store it now closes the session unanswered instead
  (syslogkit's does), and the record is resent. The sans-I/O `RelpClient`
  keeps its protocol state (window, answer checks, and the unanswered messages its `unacked()`
  offers other users of the codec), and the transport session keeps nothing.
- `LedgerConfirm` (plain TCP, TLS, unix streams): the kernel's count of unacknowledged bytes
  (`SIOCOUTQ`, `syslogkit.delivery.outq`) retires written batches; on a break, records the
  peer's kernel had not taken are written again and the ones it had taken since the last
  confirmed point are counted as `maybe_lost` (TCP cannot say more).
- `DatagramConfirm` (UDP, unix datagrams): a datagram written is delivered as far as the
  sender can know; one too large for the path is dropped alone (`too_large`).

Each strategy writes a `Batch` with `send(batch)`, raising `BatchFailed` (what failed, and the
records to write again) when the connection broke; `broken()` returns what the connection
held that must be written again. The shared counting and spool commits live in `Books`.
"""

from __future__ import annotations

import abc
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from syslogkit.delivery.base import Stats
from syslogkit.delivery.outq import Ledger
from syslogkit.delivery.spool import Spool, Ticket
from syslogkit.transports.base import Transport, TransportError
from syslogkit.transports.relp import Acknowledging

__all__ = [
    "BATCH_RECORDS",
    "AckConfirm",
    "Batch",
    "BatchFailed",
    "Books",
    "Confirm",
    "DatagramConfirm",
    "Item",
    "LedgerConfirm",
    "confirmation_for",
]

#: Records written together at most.
BATCH_RECORDS: Final = 2048
#: seconds the writer waits for confirmations (RELP answers) between queue checks
ACK_POLL: Final = 0.02
_LEDGER_POLL: Final = 0.05  # seconds between SIOCOUTQ samples while batches are unconfirmed

#: A record in the writer's hands: frame, spool ticket (None when it came from memory), and
#: whether it had been written to a connection before.
Item = tuple[bytes, "Ticket | None", bool]


class Batch:
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
    def of(cls, items: Sequence[Item]) -> Batch:
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


class BatchFailed(Exception):
    """A write failed: `error` says why, `failed` are the records to write again."""

    def __init__(self, error: TransportError, failed: list[Item]) -> None:
        super().__init__(str(error))
        self.error = error
        self.failed = failed


class Books:
    """The counters and spool commits every strategy and the writer share."""

    def __init__(
        self, stats: Stats, spool: Spool | None, lose: Callable[[str, int], None] | None = None
    ) -> None:
        self.stats = stats
        self.spool = spool
        #: records dropped: counted and told (the delivery's one rate-limited notice)
        self.lose: Callable[[str, int], None] = lose if lose is not None else stats.drop
        #: records written or answered so far (how the writer's progress is seen)
        self.progress = 0
        #: records sent but never confirmed when the delivery closed (part of `maybe_lost`)
        self.unconfirmed_at_exit = 0

    def commit(self, tickets: Sequence[Ticket]) -> None:
        """These spooled records are delivered: remove them from the spool."""
        if tickets and self.spool is not None:
            self.spool.commit_many(tickets)

    def commit_batches(self, batches: Sequence[Batch]) -> None:
        self.commit([ticket for batch in batches for ticket in batch.spooled()])

    def written(
        self, batch: Batch, *, commit: bool, skip: set[int] | frozenset[int] = frozenset()
    ) -> None:
        """Count records just written; commit spooled ones when writing is delivering.

        `skip`: positions in the batch of records dropped instead (not counted as written,
        their spooled copies committed all the same: they are never to be written again).
        """
        stats = self.stats
        self.progress += len(batch.frames)
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
            spool = self.spool
            assert spool is not None
            spool.written(tickets)
            if commit:
                spool.commit_many(tickets)


class Confirm(abc.ABC):
    """A way of confirming delivery (see the module docstring)."""

    def __init__(self, transport: Transport, books: Books, *, timeout: float) -> None:
        self.transport = transport
        self.books = books
        self.timeout = timeout

    def room(self) -> int:
        """How many records the next batch may hold."""
        return BATCH_RECORDS

    @abc.abstractmethod
    def send(self, batch: Batch) -> None:
        """Write a batch; `BatchFailed` when the connection broke."""

    def unconfirmed(self) -> bool:
        """True while records written wait for a confirmation that `flush()` must await."""
        return False

    def waiting(self) -> bool:
        """True while the writer should `poll()` instead of sleeping idle."""
        return False

    def poll(self, timeout: float) -> None:  # noqa: B027
        """Take confirmations (waiting up to `timeout`); `BatchFailed` on a broken connection."""

    def check(self) -> None:  # noqa: B027
        """Once per round while connected: take confirmations that need no waiting."""

    def settle(self) -> None:  # noqa: B027
        """Before a graceful switch of connection: wait (bounded) for the confirmations due;
        `BatchFailed` when they do not come."""

    def answered(self) -> bool:
        """Whether the peer confirmed anything on this connection (only acknowledging peers
        can say no: the others are taken to have)."""
        return True

    def broken(self) -> list[Item]:
        """The connection broke: the records it held that must be written again."""
        return []

    def finish(self, spool_usable: bool) -> list[Item]:
        """Closing: records from memory still unconfirmed that should go to the spool."""
        return []

    def reset(self) -> None:  # noqa: B027
        """Forget every connection (in a forked child)."""


class DatagramConfirm(Confirm):
    """One datagram per record; written is delivered as far as the sender can know."""

    def __init__(
        self,
        transport: Transport,
        books: Books,
        *,
        timeout: float,
        report: Callable[[TransportError], None],
    ) -> None:
        super().__init__(transport, books, timeout=timeout)
        self._report = report

    def send(self, batch: Batch) -> None:
        write = self.transport.write
        too_large: set[int] = set()
        for index, frame in enumerate(batch.frames):
            try:
                write(frame)
            except TransportError as exc:
                if exc.reason == "too_large":  # this datagram only: drop it, go on
                    self.books.lose("too_large", 1)
                    self._report(exc)
                    too_large.add(index)
                    continue
                items = batch.items()
                self.books.written(Batch.of(items[:index]), commit=True, skip=too_large)
                raise BatchFailed(exc, items[index:]) from exc
        self.books.written(batch, commit=True, skip=too_large)


class LedgerConfirm(Confirm):
    """Plain streams: many frames per write, retired by the kernel's `SIOCOUTQ` count."""

    def __init__(
        self,
        transport: Transport,
        books: Books,
        *,
        timeout: float,
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(transport, books, timeout=timeout)
        self.ledger: Ledger[Batch] = Ledger()
        self._sleep = sleep

    def send(self, batch: Batch) -> None:
        frames = batch.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        try:
            self.transport.write(data)
        except TransportError as exc:
            raise BatchFailed(exc, batch.items()) from exc
        self.ledger.wrote(batch, len(data), len(frames))
        self.books.written(batch, commit=False)

    def waiting(self) -> bool:
        return len(self.ledger) > 0

    def poll(self, timeout: float) -> None:
        self._sleep(min(timeout, _LEDGER_POLL))
        self.check()

    def check(self) -> None:
        done = self.ledger.sample(self.transport.sock)
        if done:
            self.books.commit_batches(done)

    def settle(self) -> None:
        self.books.commit_batches(self.ledger.confirm())

    def broken(self) -> list[Item]:
        batches, lost, partial = self.ledger.broken()
        resend: list[Item] = []
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
            if acked:
                self.books.commit(first.spooled(acked))
            resend = first.items(acked)
            for batch in batches[1:]:
                resend.extend(batch.items())
        if lost:
            self.books.stats.add("maybe_lost", lost)
        return resend

    def finish(self, spool_usable: bool) -> list[Item]:
        pending = self.ledger.confirm()
        if spool_usable:
            self.books.commit_batches(pending)
        return []

    def reset(self) -> None:
        self.ledger.reset()


class _Flight:
    """One record sent over RELP: what it is, and its answer once it came."""

    __slots__ = ("answer", "item")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.answer: bool | None = None


class AckConfirm(Confirm):
    """RELP: every record waits, by TXNR, for the collector's answer (see module docstring).

    Records leave in sending order once answered (answers may come out of order; librelp's
    come in order), so spool commits stay in order.
    """

    def __init__(self, transport: Transport, books: Books, *, timeout: float) -> None:
        super().__init__(transport, books, timeout=timeout)
        assert isinstance(transport, Acknowledging)
        self.session: Acknowledging = transport
        self._flights: deque[_Flight] = deque()  # sending order
        self._by_txnr: dict[int, _Flight] = {}  # the same records, to find an answer's one
        self._since = 0.0  # when the oldest unanswered record was sent or last answer came
        self._answers = 0  # answers on the current session

    @property
    def in_flight(self) -> int:
        """Records sent and not yet released (answered in order)."""
        return len(self._flights)

    def room(self) -> int:
        return min(BATCH_RECORDS, self.session.window - len(self._flights))

    def send(self, batch: Batch) -> None:
        items = batch.items()
        limit = self.session.max_data
        oversize = {index for index, item in enumerate(items) if len(item[0]) > limit}
        sendable = [item for index, item in enumerate(items) if index not in oversize]
        try:
            txnrs = self.session.send_messages([item[0] for item in sendable])
        except TransportError as exc:
            raise BatchFailed(exc, items) from exc
        if not self._flights:
            self._since = time.monotonic()
        flights, by_txnr = self._flights, self._by_txnr
        for txnr, item in zip(txnrs, sendable, strict=True):
            flight = _Flight(item)
            flights.append(flight)
            by_txnr[txnr] = flight
        if oversize:  # the collector could not take them: refused here, never sent
            self.books.lose("refused", len(oversize))
            self.books.commit([t for i, (_, t, _) in enumerate(items) if i in oversize and t])
        self.books.written(batch, commit=False, skip=oversize)

    def unconfirmed(self) -> bool:
        return bool(self._flights)

    def waiting(self) -> bool:
        return bool(self._flights)

    def check(self) -> None:
        if self._flights:
            self.poll(0.0)

    def poll(self, timeout: float) -> None:
        try:
            answers = self.session.acknowledged(timeout)
        except TransportError as exc:
            raise BatchFailed(exc, []) from exc
        now = time.monotonic()
        if not answers:
            if self._flights and now - self._since > self.timeout:
                text = f"{self.transport.address}: no answer within {self.timeout:g} s"
                raise BatchFailed(TransportError("timeout", text), [])
            return
        self._since = now
        self._answers += len(answers)
        by_txnr = self._by_txnr
        for txnr, ok in answers:
            flight = by_txnr.pop(txnr, None)
            if flight is not None:
                flight.answer = ok
        self._release()

    def _release(self) -> None:
        """Count and commit the answered records at the front, in sending order."""
        flights = self._flights
        tickets: list[Ticket] = []
        taken = refused = 0
        while flights and flights[0].answer is not None:
            flight = flights.popleft()
            ticket = flight.item[1]
            if ticket is not None:
                tickets.append(ticket)
            if flight.answer:
                taken += 1
            else:
                refused += 1
        books = self.books
        if taken:
            books.stats.add("acknowledged", taken)
        if refused:
            books.lose("refused", refused)
        books.progress += taken + refused
        books.commit(tickets)

    def settle(self) -> None:
        deadline = time.monotonic() + self.timeout
        while self._flights and self.transport.sock is not None:
            if time.monotonic() >= deadline:
                raise BatchFailed(TransportError("timeout", "no answers before failing back"), [])
            self.poll(ACK_POLL)

    def answered(self) -> bool:
        return self._answers > 0

    def broken(self) -> list[Item]:
        self._answers = 0
        answered = [flight for flight in self._flights if flight.answer is not None]
        resend = [flight.item for flight in self._flights if flight.answer is None]
        self._flights = deque(answered)
        self._release()  # answered after a gap: delivered, not to be sent again
        self._flights.clear()
        self._by_txnr.clear()
        return resend

    def finish(self, spool_usable: bool) -> list[Item]:
        unanswered = [item for item in self.broken() if item[1] is None]
        if spool_usable:
            return unanswered
        if unanswered:
            self.books.stats.add("maybe_lost", len(unanswered))
            self.books.unconfirmed_at_exit += len(unanswered)
        return []

    def reset(self) -> None:
        self._answers = 0
        self._flights.clear()
        self._by_txnr.clear()


def confirmation_for(
    transport: Transport,
    books: Books,
    *,
    timeout: float,
    report: Callable[[TransportError], None],
    sleep: Callable[[float], None],
) -> Confirm:
    """The strategy for a transport: acknowledgements, the kernel's ledger, or datagrams."""
    if isinstance(transport, Acknowledging):
        return AckConfirm(transport, books, timeout=timeout)
    if transport.stream:
        return LedgerConfirm(transport, books, timeout=timeout, sleep=sleep)
    return DatagramConfirm(transport, books, timeout=timeout, report=report)
