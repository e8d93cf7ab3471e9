"""The edge's sink: records published to a JetStream stream, in batches.

`write()` keeps the records; the pipeline's commit (`flush_start()`) cuts them into messages
(grouped by subject `syslog.<facility>.<severity>`, at most `max_message` bytes and
`max_records` records each, so in time at most one commit interval), queues them in the
`Outbox` and returns the function the pipeline waits on before it runs the batch's callbacks:

- a batch with a RELP record in it is answered once it is safe: with a spool (`spool_dir`),
  once every message of it is acknowledged by JetStream or written and fsynced in the spool,
  whichever comes first (as an rsyslog relay with a disk-assisted queue): while JetStream
  answers, the pipeline gives it `spool_grace` seconds before it writes the batch to the spool;
  while publishes fail (a leader election, no connection) it writes at once, so RELP senders
  keep being answered through an election and never time out and re-send. Without a spool (or
  with a full one), only JetStream's acknowledgement counts (stored on a majority of the
  stream's replicas): while the stream has no leader the pipeline waits (RELP senders see their
  window fill: back-pressure); after `relp_timeout` seconds it fails the batch (the RELP session
  closes unanswered and the sender sends again, to this collector or another);
- a batch of TCP, TLS or UDP records waits only for room in the outbox: memory up to
  `max_memory` bytes, then the spool (`spool_dir`, up to `max_spool` bytes), then back-pressure
  (the pipeline stops, its queue fills, the listeners stop reading).

The publisher runs on a loop of its own: up to `max_inflight` publishes at a time, each with
`Nats-Msg-Id` (`<edge id>-<run>-<n>`) and a timeout (nats-py's futures never resolve when the
node dies), re-published after a failure with a backoff (0.05 s doubling to 2 s). The edge id
names the edge (its host name by default, or `edge_id`); the run is 8 random hex digits drawn
at every start, so a restarted edge never reuses the ids of its last run (JetStream would drop
its new batches as duplicates within the stream's duplicate window), while a batch re-published
from the spool keeps the id it was first published with.

What needs an operator is said, not only counted: a stream that does not exist (checked at
start, after a reconnect and after a "no responders") or is full (it refuses new messages:
`stream.py`) is one line on stderr at once with the command that fixes it, again every
`notice_interval` seconds while it lasts, and `unhealthy` in the stats (`/healthz` 503); records
are held meanwhile. A full stream stays told as full until every batch it refused is stored: a
smaller, later batch that still fits (several publishes are in flight) does not end that state.
At close, what could be kept nowhere (no spool) is one line with its count.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ..record import Record
from ._loop import LoopThread
from .connect import ErrorLog, NatsOptions, connect, require_nats
from .outbox import Entry, Outbox
from .stream import DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX
from .wire import encode_batch, subject_for

__all__ = ["JetStreamSink", "default_edge_id", "new_run_id"]

_RELP = ("relp", "relp+tls")
_RECHECK = 2.0  # seconds between two checks of the stream while it is missing


def _clean_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:64] or "edge"


def default_edge_id() -> str:
    """The host name (made safe for a message id)."""
    return _clean_id(socket.gethostname()[:40])


def new_run_id() -> str:
    """8 random hex digits, new at every start (message ids are `<edge id>-<run>-<n>`)."""
    return os.urandom(4).hex()


def _nothing() -> None:
    pass


class JetStreamSink:
    """Records to a JetStream stream (see the module docstring)."""

    #: a batch whose acknowledgement timed out stays in the outbox and is published later: the
    #: pipeline never hands it over again (`sinks.base.HoldsWhatItTook`)
    holds_what_it_took = True

    def __init__(
        self,
        options: NatsOptions,
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        max_message: int = 256 * 1024,
        max_records: int = 2000,
        max_inflight: int = 8,
        publish_timeout: float = 5.0,
        relp_timeout: float | None = 60.0,
        spool_grace: float = 0.2,
        max_memory: int = 64 << 20,
        spool_dir: str | Path | None = None,
        max_spool: int = 1 << 30,
        spool_fsync: bool = True,
        close_timeout: float = 10.0,
        edge_id: str | None = None,
        notice_interval: float = 30.0,
        notices: IO[str] | None = None,
    ) -> None:
        require_nats()
        self.options = options
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.max_message = max_message
        self.max_records = max_records
        self.max_inflight = max_inflight
        self.publish_timeout = publish_timeout
        self.relp_timeout = relp_timeout
        self.spool_grace = spool_grace
        self.close_timeout = close_timeout
        self.edge_id = _clean_id(edge_id) if edge_id else default_edge_id()
        self.run_id = new_run_id()
        self.outbox = Outbox(
            max_memory=max_memory, spool_dir=spool_dir, max_spool=max_spool, fsync=spool_fsync
        )
        self.errors = ErrorLog()
        self.published = 0
        self.published_records = 0
        self.duplicates = 0
        self.retries = 0
        self._publish_failing = False
        #: what keeps the edge from publishing and needs an operator (no stream, stream
        #: full), said on `notices` (stderr) at once and every `notice_interval` s; None: fine
        self.problem: str | None = None
        self.notice_interval = notice_interval
        self._notices = notices
        self._problem_told_at: float | None = None
        #: ids of the batches the full stream refused and that are not stored yet: the stream
        #: is full until every one is (a smaller, later batch that fits ends nothing)
        self._refused: set[str] = set()
        self._checked_at = 0.0
        self._checked_reconnects = 0
        self._seq = 0
        self._records: list[Record] = []
        self._closed = False
        self._loop = LoopThread("syslogkit-nats-publish")
        self._wake: asyncio.Event | None = None
        self._retry_at = 0.0
        self._backoff = 0.05
        self._nc: Any = None
        self._main = self._loop.start(self._run())
        self.outbox.on_ready = self._poke

    # -- the pipeline's side --------------------------------------------------------------------

    def write(self, records: Sequence[Record]) -> None:
        self._records.extend(records)

    def flush(self) -> None:
        self.flush_start()()

    def flush_start(self) -> Callable[[], None]:
        records, self._records = self._records, []
        if not records:
            return _nothing
        entries = [self._queue(subject, group) for subject, group in self._groups(records)]
        waiting = [e for e in entries if e.needs_ack]
        if not waiting:
            return _nothing
        return lambda: self._until_safe(waiting)

    def _until_safe(self, entries: list[Entry]) -> None:
        """Return once a RELP batch may be answered (see the module docstring); raise when it
        may not (`TimeoutError`, `OutboxClosed`): the RELP session then closes unanswered
        and the sender sends again."""
        outbox = self.outbox
        if outbox.spool_dir is None:
            outbox.wait_acked(entries, self.relp_timeout)
            return
        if not self.failing:
            with contextlib.suppress(TimeoutError):
                outbox.wait_acked(entries, self.spool_grace, spooled=True)
                return
        left = outbox.keep(entries)
        if left:  # the spool is full (or cannot be written): JetStream's answer, then
            outbox.wait_acked(left, self.relp_timeout, spooled=True)

    @property
    def failing(self) -> bool:
        """Publishing does not work now: not connected, or the last publish failed."""
        return self._publish_failing or not self.connected

    def _groups(self, records: list[Record]) -> list[tuple[str, list[Record]]]:
        by_subject: dict[str, list[Record]] = {}
        prefix = self.subject_prefix
        for record in records:
            subject = subject_for(prefix, record)
            group = by_subject.get(subject)
            if group is None:
                group = by_subject[subject] = []
            group.append(record)
        out: list[tuple[str, list[Record]]] = []
        for subject, group in by_subject.items():
            start = size = 0
            for i, record in enumerate(group):
                size += len(record.raw) + 64
                if i - start >= self.max_records or (size > self.max_message and i > start):
                    out.append((subject, group[start:i]))
                    start, size = i, len(record.raw) + 64
            out.append((subject, group[start:]))
        return out

    def _queue(self, subject: str, records: list[Record]) -> Entry:
        self._seq += 1
        msg_id = f"{self.edge_id}-{self.run_id}-{self._seq}"
        payload = encode_batch(msg_id, records)
        needs_ack = any(r.transport in _RELP for r in records)
        entry = Entry(msg_id, subject, len(records), len(payload), needs_ack=needs_ack)
        self.outbox.add(entry, payload)
        return entry

    def stop_waiting(self) -> None:
        """The collector is stopping: the outbox no longer waits for room (a batch goes to the
        spool whatever its bound, or is counted lost without one), and a RELP batch waits for
        JetStream at most `close_timeout` seconds more."""
        self.outbox.stop_waiting(self.close_timeout)

    def close(self) -> None:
        """Publish what is queued (at most `close_timeout` seconds), spool the rest (in queue
        order), stop; what could be kept nowhere is said in one line with its count."""
        if self._closed:
            return
        self._closed = True
        self.stop_waiting()
        self.flush_start()  # what was written and not flushed: queued like the rest
        if self.connected and self.problem is None:
            self.outbox.wait_empty(self.close_timeout)
        with contextlib.suppress(Exception):
            self._loop.run(self._shutdown(), 5.0)
        self.outbox.close()
        self._loop.stop()
        self._tell_the_end(sys.stderr)

    def _tell_the_end(self, out: IO[str]) -> None:
        outbox = self.outbox
        if outbox.lost:
            why = (
                f"the spool could not be written: {outbox.last_spool_error}"
                if outbox.spool_dir is not None
                else "no spool folder: --nats-spool DIR keeps them"
            )
            print(
                f"syslogkit: NATS edge: {outbox.lost} records lost at close, not in JetStream"
                f" stream {self.stream} ({why})",
                file=out,
                flush=True,
            )
        if outbox.spool_records:
            print(
                f"syslogkit: NATS edge: {outbox.spool_records} records not yet in JetStream are"
                f" kept in {outbox.spool_dir}: published at the next start on that folder",
                file=out,
                flush=True,
            )

    @property
    def connected(self) -> bool:
        return self._nc is not None and bool(self._nc.is_connected)

    def stats(self) -> dict[str, Any]:
        return {
            "nats": self.options.describe(),
            "stream": self.stream,
            "edge_id": self.edge_id,
            "run_id": self.run_id,
            "connected": self.connected,
            "unhealthy": self.problem,
            "published_messages": self.published,
            "published_records": self.published_records,
            "duplicates": self.duplicates,
            "publish_retries": self.retries,
            **self.outbox.stats(),
            **self.errors.as_dict(),
        }

    # -- the publisher's loop -------------------------------------------------------------------

    def _poke(self) -> None:
        self._loop.call_soon(self._set_wake)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        self._nc = await connect(self.options, self.errors)
        js = self._nc.jetstream(timeout=self.publish_timeout)
        await self._check_stream(js)
        sending: set[asyncio.Task[None]] = set()
        while True:
            await self._watch(js)
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wake.clear()
            for entry in self.outbox.take(self.max_inflight - len(sending)):
                task = asyncio.get_running_loop().create_task(self._publish(js, entry))
                sending.add(task)
                task.add_done_callback(self._sent(sending))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)

    async def _watch(self, js: Any) -> None:
        """The stream is checked again after a reconnect, and every few seconds while a
        problem lasts (it may be fixed with nothing to publish); the problem is told again."""
        now = time.monotonic()
        if self.errors.reconnects != self._checked_reconnects or (
            self.problem is not None and now - self._checked_at >= _RECHECK
        ):
            await self._check_stream(js)
        self._tell_problem()

    async def _check_stream(self, js: Any) -> None:
        """Does the stream exist? (No answer at all says nothing: an election, say.)"""
        nats = require_nats()
        self._checked_at = time.monotonic()
        self._checked_reconnects = self.errors.reconnects
        try:
            await asyncio.wait_for(js.stream_info(self.stream), self.publish_timeout)
        except nats.js.errors.NotFoundError:
            self._set_problem(
                f"JetStream stream {self.stream} does not exist on {self.options.describe()}:"
                f" nothing is published, records are held here ({self._holding()}) until it is"
                f" created: syslogkit nats init -s {self.options.describe()} --stream"
                f" {self.stream} --subject-prefix {self.subject_prefix}"
            )
        except Exception:
            return
        else:
            if self.problem is not None and self.problem.startswith(
                f"JetStream stream {self.stream} does not exist"
            ):
                self._clear_problem()

    def _holding(self) -> str:
        return "memory, then the spool" if self.outbox.spool_dir else "memory only: no spool"

    def _set_problem(self, text: str) -> None:
        if text != self.problem:
            self.problem = text
            self._problem_told_at = None
        self._tell_problem()

    def _tell_problem(self) -> None:
        now = time.monotonic()
        told = self._problem_told_at
        if self.problem is None or (told is not None and now - told < self.notice_interval):
            return
        self._problem_told_at = now
        still = "" if told is None else " (still)"
        self._say(f"{self.problem}{still}; told again every {self.notice_interval:g} s")

    def _clear_problem(self) -> None:
        if self.problem is None:
            return
        self.problem = None
        self._problem_told_at = None
        self._say(f"publishing to JetStream stream {self.stream} works again")

    def _say(self, text: str) -> None:
        print(f"syslogkit: NATS edge: {text}", file=self._notices or sys.stderr, flush=True)

    def _sent(self, sending: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            sending.discard(task)
            self._set_wake()

        return done

    async def _publish(self, js: Any, entry: Entry) -> None:
        nats = require_nats()
        try:
            payload = self.outbox.read(entry)
            ack = await asyncio.wait_for(
                js.publish(
                    entry.subject,
                    payload,
                    timeout=self.publish_timeout,
                    stream=self.stream,
                    headers={"Nats-Msg-Id": entry.msg_id},
                ),
                self.publish_timeout + 1.0,
            )
        except asyncio.CancelledError:
            self.outbox.release(entry)
            raise
        except Exception as exc:
            self.retries += 1
            self._publish_failing = True
            self.errors.note(_describe(exc, nats, self.stream))
            self.outbox.release(entry)
            if _stream_full(exc, nats):
                self._refused.add(entry.msg_id)
                self._set_problem(
                    f"JetStream stream {self.stream} is full ({_description(exc)}; it refuses"
                    f" new messages, never deletes unread ones): records are held here"
                    f" ({self._holding()}) until it has room (its age limit frees some) or is"
                    " made larger: syslogkit nats init --max-size SIZE"
                )
            elif isinstance(exc, nats.js.errors.NoStreamResponseError) and (
                time.monotonic() - self._checked_at >= _RECHECK
            ):
                await self._check_stream(js)
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, 2.0)
            return
        self._backoff = 0.05
        self._publish_failing = False
        self._refused.discard(entry.msg_id)
        if self.problem is not None and not self._refused:
            self._clear_problem()
        if ack.duplicate:
            self.duplicates += 1
        self.published += 1
        self.published_records += entry.count
        self.outbox.acked(entry)

    async def _shutdown(self) -> None:
        self._main.cancel()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 2.0)


def _description(exc: Exception) -> str:
    return str(getattr(exc, "description", None) or exc or type(exc).__name__)


def _stream_full(exc: Exception, nats: Any) -> bool:
    """JetStream refused a publish because the stream is at its size or count limit (it
    discards new messages: `nats init`)."""
    return isinstance(exc, nats.js.errors.APIError) and "maximum" in _description(exc)


def _describe(exc: Exception, nats: Any, stream: str) -> str:
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return (
            f"no JetStream answer for stream {stream} (no leader now, or no such stream:"
            " run 'syslogkit nats init')"
        )
    if isinstance(exc, (asyncio.TimeoutError, nats.errors.TimeoutError)):
        return "publish timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
