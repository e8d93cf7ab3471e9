"""The store's source: a durable pull consumer on the stream, feeding the collector's pipeline.

Each fetch (up to `fetch_batch` messages) becomes one `submit()` to the pipeline, so its
records are committed in one transaction; the messages are acknowledged to JetStream from the
pipeline's callback, after the commit, never before. A store killed before its commit has its
messages redelivered (after `ack_wait`) to itself or to another store on the same durable.

Exactly once in the store: a redelivered message (JetStream counts deliveries) is checked
against the store before it is submitted (`holds`); a batch is committed whole, so when every
record of it is already there the message is acknowledged and skipped. (Re-publishes by an edge
are dropped by the stream's duplicate window, `Nats-Msg-Id`.) A message that is redelivered
while its first delivery is still being committed here is left for that commit.

Several stores on one durable share the work (each message goes to one of them); each store on
its own durable gets everything. The pipeline's back-pressure is respected: no fetch while more
than `high_water` records wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..decode import parse_frame
from ..record import Record
from ..stats import ListenerStats
from ._loop import LoopThread
from .connect import ErrorLog, NatsOptions, connect, require_nats
from .stream import DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX
from .wire import Shipped, WireError, decode_batch

__all__ = ["DEFAULT_DURABLE", "JetStreamSource", "StoreCheck", "store_check"]

DEFAULT_DURABLE = "syslogkit-store"

#: records -> for each, whether the store already holds it
StoreCheck = Callable[[Sequence[Record]], list[bool]]


class _Pipeline(Protocol):
    high_water: int

    @property
    def pending(self) -> int: ...

    def submit(
        self,
        records: Sequence[Record],
        done: Callable[[bool], None] | None = None,
        *,
        urgent: bool = False,
    ) -> None: ...


class JetStreamSource:
    """A listener of the collector that reads a stream (see the module docstring)."""

    scheme = "nats"

    def __init__(
        self,
        options: NatsOptions,
        *,
        stream: str = DEFAULT_STREAM,
        durable: str = DEFAULT_DURABLE,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        fetch_batch: int = 256,
        ack_wait: float = 30.0,
        max_ack_pending: int = 20_000,
        holds: StoreCheck | None = None,
    ) -> None:
        require_nats()
        self.options = options
        self.stream = stream
        self.durable = durable
        self.filter_subject = f"{subject_prefix}.>"
        self.fetch_batch = fetch_batch
        self.ack_wait = ack_wait
        self.max_ack_pending = max_ack_pending
        self.holds = holds
        self.url = f"nats://{options.describe().split('://', 1)[-1]}/{stream}/{durable}"
        self.stats = ListenerStats(self.url)
        self.errors = ErrorLog()
        self.messages = 0
        self.redelivered = 0
        self.skipped = 0
        self.bad = 0
        self.acked = 0
        self.failed_commits = 0
        self._inflight: set[int] = set()
        self._pipeline: _Pipeline | None = None
        self._loop: LoopThread | None = None
        self._task: Any = None
        self._main_task: asyncio.Task[Any] | None = None
        self._stopping = False
        self._nc: Any = None

    # -- the collector's side -------------------------------------------------------------------

    def start(self, pipeline: _Pipeline) -> None:
        self._pipeline = pipeline
        self._loop = LoopThread("syslogkit-nats-consume")
        self._task = self._loop.start(self._run())

    def stop_fetching(self) -> None:
        """No more fetches (messages already fetched are still committed and acknowledged)."""
        self._stopping = True

    def close(self) -> None:
        """After the pipeline drained: let the acknowledgements go out, disconnect."""
        self._stopping = True
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            self._loop.run(self._shutdown(), 5.0)
        self._loop.stop()
        self._loop = None

    def stats_dict(self) -> dict[str, Any]:
        out = self.stats.as_dict()
        out.update(
            messages=self.messages,
            redelivered=self.redelivered,
            skipped_held=self.skipped,
            acked=self.acked,
            bad_messages=self.bad,
            failed_commits=self.failed_commits,
            **self.errors.as_dict(),
        )
        return out

    # -- the consumer's loop --------------------------------------------------------------------

    async def _run(self) -> None:
        nats = require_nats()
        api = nats.js.api
        self._main_task = asyncio.current_task()
        self._nc = await connect(self.options, self.errors)
        js = self._nc.jetstream(timeout=10.0)
        config = api.ConsumerConfig(
            durable_name=self.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_ack_pending=self.max_ack_pending,
            filter_subject=self.filter_subject,
        )
        sub = None
        while sub is None and not self._stopping:
            try:
                sub = await js.pull_subscribe(
                    self.filter_subject, durable=self.durable, stream=self.stream, config=config
                )
            except Exception as exc:  # no stream yet, no leader: say so and try again
                self.errors.note(f"cannot bind durable {self.durable} on {self.stream}: {exc}")
                await asyncio.sleep(1.0)
        assert self._pipeline is not None
        pipeline = self._pipeline
        while sub is not None and not self._stopping:
            if pipeline.pending > pipeline.high_water:
                await asyncio.sleep(0.05)
                continue
            try:
                msgs = await sub.fetch(self.fetch_batch, timeout=1.0)
            except (asyncio.TimeoutError, nats.errors.TimeoutError):
                continue  # nothing to read (a bare asyncio.TimeoutError happens too)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                self.errors.note(f"fetch: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            if msgs:
                await self._take(msgs)

    async def _take(self, msgs: list[Any]) -> None:
        records: list[Record] = []
        taken: list[Any] = []
        for msg in msgs:
            self.messages += 1
            seq = msg.metadata.sequence.stream
            redelivered = msg.metadata.num_delivered > 1
            if redelivered:
                self.redelivered += 1
                if seq in self._inflight:
                    continue  # its first delivery is being committed here
            try:
                batch = decode_batch(msg.data)
            except WireError as exc:
                self.bad += 1
                self.errors.note(f"message {seq}: {exc}")
                await msg.ack()
                continue
            built = [self._record(s) for s in batch.records]
            if redelivered and built and self._held(built):
                self.skipped += 1
                await msg.ack()
                self.acked += 1
                continue
            self._inflight.add(seq)
            records.extend(built)
            taken.append(msg)
        if not taken:
            return
        assert self._pipeline is not None and self._loop is not None
        loop = self._loop

        def done(ok: bool) -> None:  # in the pipeline's thread, after the commit
            loop.call_soon(self._settle_soon, taken, ok)

        self._pipeline.submit(records, done)

    def _settle_soon(self, msgs: list[Any], ok: bool) -> None:
        asyncio.get_running_loop().create_task(self._settle(msgs, ok))

    async def _settle(self, msgs: list[Any], ok: bool) -> None:
        for msg in msgs:
            self._inflight.discard(msg.metadata.sequence.stream)
            try:
                if ok:
                    await msg.ack()
                    self.acked += 1
                else:
                    await msg.nak(delay=1.0)
            except Exception as exc:  # the ack is lost: the message comes back, and is skipped
                self.errors.note(f"ack: {type(exc).__name__}: {exc}")
        if not ok:
            self.failed_commits += 1

    def _record(self, shipped: Shipped) -> Record:
        reference = shipped.reference()
        if reference is None:
            message, error, msg_bytes = parse_frame(shipped.raw)
        else:
            message, error, msg_bytes = parse_frame(shipped.raw, reference=reference)
        stats = self.stats
        stats.received += 1
        if shipped.error is None and error is None:
            stats.parsed += 1
        return Record(
            raw=shipped.raw,
            received_at=shipped.received_at,
            transport=shipped.transport,
            peer=shipped.peer,
            listener=shipped.listener,
            message=message,
            error=shipped.error,
            msg_bytes=msg_bytes,
            tls_subject=shipped.tls_subject,
            tls_fingerprint=shipped.tls_fingerprint,
        )

    def _held(self, records: list[Record]) -> bool:
        if self.holds is None:
            return False
        try:
            return all(self.holds(records))
        except Exception as exc:
            self.errors.note(f"store check: {type(exc).__name__}: {exc}")
            return False

    async def _shutdown(self) -> None:
        await asyncio.sleep(0.1)  # the last acknowledgements queued by the pipeline's callbacks
        task = self._main_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        nc = self._nc
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.flush(2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2.0)


def store_check(path: str) -> StoreCheck:
    """`holds` for an SQLite store: a record is held when a row has its time, received time,
    peer, listener and raw bytes (with the count of each such record in the batch)."""

    def holds(records: Sequence[Record]) -> list[bool]:
        import sqlite3

        from ..store.partitions import partition_files
        from ..store.schema import RAW

        wanted: dict[tuple[Any, ...], int] = {}
        for r in records:
            key = (_time_of(r), r.received_at, r.peer, r.listener, r.raw)
            wanted[key] = wanted.get(key, 0) + 1
        held = dict.fromkeys(wanted, 0)
        # the store's files, newest first (a redelivery is of a recent message); those that
        # retention deleted meanwhile hold nothing any more
        for part in reversed(partition_files(path)):
            try:
                db = sqlite3.connect(f"file:{part.resolve()}?mode=ro", uri=True, timeout=10.0)
            except sqlite3.Error:
                continue
            try:
                for key, count in wanted.items():
                    if held[key] >= count:
                        continue
                    when, at, peer, listener, raw = key
                    row = db.execute(
                        "SELECT count(*) FROM messages WHERE time >= ? AND time <= ?"
                        f" AND received_at = ? AND peer = ? AND listener = ? AND {RAW} = ?",
                        (math.nextafter(when, -math.inf), math.nextafter(when, math.inf), at,
                         peer, listener, raw),
                    ).fetchone()  # fmt: skip
                    held[key] += int(row[0])
            finally:
                db.close()
        found = {key: held[key] >= count for key, count in wanted.items()}
        return [found[(_time_of(r), r.received_at, r.peer, r.listener, r.raw)] for r in records]

    return holds


def _time_of(record: Record) -> float:
    """The store's `time` column for a record: its timestamp, else the time it was received."""
    m = record.message
    if m is not None and m.timestamp is not None:
        with contextlib.suppress(OverflowError, OSError, ValueError):
            return m.timestamp.timestamp()
    return record.received_at
