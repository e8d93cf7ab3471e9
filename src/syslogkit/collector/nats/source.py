"""The store's source: a durable pull consumer on the stream, feeding the collector's pipeline.

Fetched messages become `submit()`s to the pipeline, each committed in one transaction; the
messages are acknowledged to JetStream from the pipeline's callback, after the commit, never
before. A store killed before its commit has its messages redelivered (after `ack_wait`) to
itself or to another store on the same durable.

Exactly once in the store, by identity, never by content: the records of a message go into
one submission (never split), and its last record carries the message's identity
(`Record.origin`: its `Nats-Msg-Id`, else `<stream>:<sequence>`, and its record count), which
the store records in the transaction of the rows (`Store.insert_rows(origins=...)`). A
redelivered message (JetStream counts deliveries) is looked up by that identity (`holds`, one
lookup on the primary key: `Store.has_origin`) before it is parsed; when the store has it, it
is acknowledged and skipped (and not counted again). A message redelivered while its first
delivery is still being committed here is left for that commit. (Re-publishes by an edge
are dropped by the stream's duplicate window, `Nats-Msg-Id`.)

Bounded work per commit: a fetch asks for as many messages as fit `max_records` records and
`max_bytes` bytes (from the sizes seen so far), and a submission is cut once it reaches either
bound (between messages). While a message is held here (parsed, queued, being committed), it
is kept alive with `in_progress()` every `ack_wait / 3`: a slow commit is never redelivered to
another store on the durable and stored twice.

Never stopped by a message: one that cannot be decoded (not a syslogkit batch, a field of the
wrong type) is counted (`bad_messages`), kept as one unparsed row with its bytes and a note
(`nats: undecodable message ...`, so `syslogkit query --errors` finds it), acknowledged
once that row is committed, and told on stderr in one line (the first at once, then at most
every 30 s with the count so far; the total at close). Never stopped for good by anything: a
consumer task that fails is told in one line and restarted (1 s, doubling to 30 s); until it
fetches again the source is `unhealthy` in its stats (and `/healthz` answers 503).

Counted as every listener counts (`decode.Decoder`): received, parsed, noted, unparsed. A
message skipped because the store holds it is counted `skipped_held`, not received again.

Several stores on one durable share the work (each message goes to one of them); each store on
its own durable gets everything. The pipeline's back-pressure is respected: no fetch while more
than `high_water` records wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..decode import Decoder
from ..record import Record
from ..stats import ListenerStats
from ._loop import LoopThread
from .connect import ErrorLog, NatsOptions, connect, redact, require_nats
from .stream import DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX
from .wire import Shipped, decode_batch

__all__ = ["DEFAULT_DURABLE", "JetStreamSource", "StoreCheck", "store_check"]

DEFAULT_DURABLE = "syslogkit-store"

#: a message's identity (`Nats-Msg-Id`) -> whether the store already holds its records
StoreCheck = Callable[[str], bool]

_TELL_EVERY = 30.0  # seconds between two lines about undecodable messages
_RESTART_MAX = 30.0
#: what a message is guessed to carry before any was seen (an edge's largest)
_FIRST_GUESS = (2000.0, 256.0 * 1024)


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


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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
        max_records: int = 5000,
        max_bytes: int = 8 << 20,
        ack_wait: float = 30.0,
        max_ack_pending: int = 20_000,
        holds: StoreCheck | None = None,
        restart_wait: float = 1.0,
        tell: Callable[[str], None] = _stderr_line,
    ) -> None:
        require_nats()
        self.options = options
        self.stream = stream
        self.durable = durable
        self.filter_subject = f"{subject_prefix}.>"
        self.fetch_batch = fetch_batch
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.ack_wait = ack_wait
        self.max_ack_pending = max_ack_pending
        self.holds = holds
        self.restart_wait = restart_wait
        self.tell = tell
        self.url = f"nats://{options.describe().split('://', 1)[-1]}/{stream}/{durable}"
        self.stats = ListenerStats(self.url)
        self.errors = ErrorLog()
        self.messages = 0
        self.redelivered = 0
        self.skipped = 0
        self.bad = 0
        self.acked = 0
        self.failed_commits = 0
        self.restarts = 0
        self.in_progress = 0
        #: why the consumer is not fetching (None: it is); `/healthz` is not ok meanwhile
        self.down: str | None = "starting"
        self._told_stop = False
        #: stream sequence -> the message, from its fetch until it is acknowledged
        self._inflight: dict[int, Any] = {}
        self._decoders: dict[tuple[str, str], Decoder] = {}
        self._per_message = _FIRST_GUESS  # (records, bytes), a moving average
        self._bad_told = 0
        self._bad_told_at = 0.0
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
        self._task = self._loop.start(self._supervise())

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
        if self.bad > self._bad_told:
            self._tell_bad(force=True)

    def stats_dict(self) -> dict[str, Any]:
        out = self.stats.as_dict()
        out.update(
            messages=self.messages,
            redelivered=self.redelivered,
            skipped_held=self.skipped,
            acked=self.acked,
            bad_messages=self.bad,
            failed_commits=self.failed_commits,
            restarts=self.restarts,
            in_progress=self.in_progress,
            unhealthy=None if self._stopping else self.down,
            **self.errors.as_dict(),
        )
        return out

    # -- the consumer's loop --------------------------------------------------------------------

    async def _supervise(self) -> None:
        """`_consume` until stopped; restarted (and told) whatever ends it."""
        self._main_task = asyncio.current_task()
        alive = asyncio.get_running_loop().create_task(self._keep_alive())
        wait = self.restart_wait
        try:
            while not self._stopping:
                try:
                    await self._consume()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._stopping:
                        return
                    if self.down is None:  # it was running: a new failure, the first wait
                        wait = self.restart_wait
                    self.restarts += 1
                    reason = redact(f"{type(exc).__name__}: {exc}")
                    self.down = f"consumer stopped: {reason}"
                    self.errors.note(self.down)
                    self.tell(
                        f"{self.url}: the JetStream consumer stopped ({reason});"
                        f" restarting it in {wait:g} s"
                    )
                    self._told_stop = True
                    await self._disconnect()
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, _RESTART_MAX)
        finally:
            alive.cancel()

    async def _consume(self) -> None:
        nats = require_nats()
        api = nats.js.api
        if self._nc is None:
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
                self.down = self.errors.last_error
                await asyncio.sleep(1.0)
        assert self._pipeline is not None
        pipeline = self._pipeline
        while sub is not None and not self._stopping:
            if pipeline.pending > pipeline.high_water:
                await asyncio.sleep(0.05)
                continue
            try:
                msgs = await sub.fetch(self._fetch_size(), timeout=1.0)
            except (asyncio.TimeoutError, nats.errors.TimeoutError):
                self._running()
                continue  # nothing to read (a bare asyncio.TimeoutError happens too)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                self.errors.note(f"fetch: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            self._running()
            if msgs:
                await self._take(msgs)

    def _running(self) -> None:
        if self._told_stop:
            self._told_stop = False
            self.tell(f"{self.url}: the JetStream consumer is running again")
        self.down = None

    def _fetch_size(self) -> int:
        """As many messages as fit `max_records` and `max_bytes` (at least one)."""
        records, size = self._per_message
        fit = min(self.max_records / max(records, 1.0), self.max_bytes / max(size, 1.0))
        return max(1, min(self.fetch_batch, int(fit)))

    async def _take(self, msgs: list[Any]) -> None:
        here = {
            m.metadata.sequence.stream for m in msgs if m.metadata.sequence.stream in self._inflight
        }
        for msg in msgs:  # a redelivery of one held here replaces it: acked and kept alive
            self._inflight[msg.metadata.sequence.stream] = msg  # as its newest delivery
        records: list[Record] = []
        taken: list[Any] = []
        size = total_records = total_bytes = 0
        submitted: set[int] = set()
        try:
            for msg in msgs:
                built = await self._message(msg, msg.metadata.sequence.stream in here)
                if built is None:
                    continue
                records.extend(built)
                taken.append(msg)
                size += len(msg.data)
                total_records += len(built)
                total_bytes += len(msg.data)
                if len(records) >= self.max_records or size >= self.max_bytes:
                    self._submit(records, taken)
                    submitted.update(m.metadata.sequence.stream for m in taken)
                    records, taken, size = [], [], 0
                await asyncio.sleep(0)  # acknowledgements and keep-alives go out meanwhile
            if taken:
                self._submit(records, taken)
                submitted.update(m.metadata.sequence.stream for m in taken)
        finally:
            for msg in msgs:  # not handed to the pipeline (an error): redelivered, not held
                seq = msg.metadata.sequence.stream
                if seq not in submitted and seq not in here and self._inflight.get(seq) is msg:
                    del self._inflight[seq]
        if submitted:  # what a message carries, on average: the next fetch's size
            n = len(submitted)
            old_records, old_bytes = self._per_message
            self._per_message = (
                0.5 * old_records + 0.5 * total_records / n,
                0.5 * old_bytes + 0.5 * total_bytes / n,
            )

    async def _message(self, msg: Any, held_here: bool) -> list[Record] | None:
        """The records of one message to submit; None when it is settled already (held by the
        store, left to its first delivery that is `held_here`, or empty)."""
        meta = msg.metadata
        seq = meta.sequence.stream
        msg_id = (msg.headers or {}).get("Nats-Msg-Id") or f"{self.stream}:{seq}"
        self.messages += 1
        if meta.num_delivered > 1:
            self.redelivered += 1
            if held_here:
                return None  # its first delivery is being committed here
            if self._held(msg_id):
                del self._inflight[seq]
                self.skipped += 1
                await msg.ack()
                self.acked += 1
                return None
        built = self._records(msg, seq)
        if not built:
            del self._inflight[seq]
            await msg.ack()
            self.acked += 1
            return None
        built[-1].origin = (msg_id, len(built))
        return built

    def _records(self, msg: Any, seq: int) -> list[Record]:
        """The records of a message, or one unparsed record of its bytes when it cannot be
        decoded (counted and told)."""
        try:
            return [self._relayed(s) for s in decode_batch(msg.data).records]
        except Exception as exc:  # WireError, or anything else: never stop the store
            reason = f"{type(exc).__name__}: {exc}"
        self.bad += 1
        note = f"nats: undecodable message (stream sequence {seq}): {reason}"
        self.errors.note(note)
        self._tell_bad()
        subject = str(getattr(msg, "subject", "") or "-")
        decoder = self._decoder("nats", self.url)
        return [decoder.unparsed(bytes(msg.data), time.time(), subject, note)]

    def _tell_bad(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._bad_told and now - self._bad_told_at < _TELL_EVERY:
            return
        self._bad_told, self._bad_told_at = self.bad, now
        self.tell(
            f"{self.url}: {self.bad} undecodable JetStream message(s) so far, each kept as an"
            f" unparsed row and acknowledged (last: {self.errors.last_error})"
        )

    def _decoder(self, transport: str, listener: str) -> Decoder:
        decoder = self._decoders.get((transport, listener))
        if decoder is None:
            decoder = self._decoders[transport, listener] = Decoder(
                self.stats, transport=transport, listener=listener, max_frame=1 << 30
            )
        return decoder

    def _relayed(self, shipped: Shipped) -> Record:
        return self._decoder(shipped.transport, shipped.listener).relayed(
            shipped.raw,
            shipped.received_at,
            shipped.peer,
            shipped.error,
            reference=shipped.reference(),
            tls_subject=shipped.tls_subject,
            tls_fingerprint=shipped.tls_fingerprint,
        )

    def _submit(self, records: list[Record], msgs: list[Any]) -> None:
        assert self._pipeline is not None and self._loop is not None
        loop = self._loop

        def done(ok: bool) -> None:  # in the pipeline's thread, after the commit
            loop.call_soon(self._settle_soon, msgs, ok)

        self._pipeline.submit(records, done)

    def _settle_soon(self, msgs: list[Any], ok: bool) -> None:
        asyncio.get_running_loop().create_task(self._settle(msgs, ok))

    async def _settle(self, msgs: list[Any], ok: bool) -> None:
        for first in msgs:
            msg = self._inflight.pop(first.metadata.sequence.stream, None) or first  # newest
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

    async def _keep_alive(self) -> None:
        """`in_progress()` for every message held here, every `ack_wait / 3`."""
        interval = max(self.ack_wait / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            for msg in list(self._inflight.values()):
                try:
                    await msg.in_progress()
                    self.in_progress += 1
                except Exception as exc:
                    self.errors.note(f"in_progress: {type(exc).__name__}: {exc}")

    def _held(self, msg_id: str) -> bool:
        if self.holds is None:
            return False
        try:
            return self.holds(msg_id)
        except Exception as exc:  # not known to be held: stored again rather than lost
            self.errors.note(f"store check: {type(exc).__name__}: {exc}")
            return False

    async def _disconnect(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.flush(2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2.0)

    async def _shutdown(self) -> None:
        await asyncio.sleep(0.1)  # the last acknowledgements queued by the pipeline's callbacks
        task = self._main_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self._disconnect()


def store_check(path: str) -> StoreCheck:
    """`holds` for an SQLite store: whether it holds the records of a message, by the message's
    identity (`Store.has_origin`: one lookup on a primary key, on a read-only connection that
    stays open)."""
    from ..store import Store, StoreError

    opened: list[Store] = []

    def holds(msg_id: str) -> bool:
        if not opened:
            try:
                opened.append(Store(path, readonly=True))
            except StoreError:
                return False  # no store yet: it holds nothing
        try:
            return opened[0].has_origin(msg_id)
        except Exception:
            opened.pop().close()  # opened again on the next check
            raise

    return holds
