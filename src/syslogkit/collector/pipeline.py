"""The pipeline: one writer thread between the listeners and the sinks.

Listeners `submit()` batches of records (with an optional callback); the writer takes what has
queued, writes it to every sink, commits (`flush()`), then runs the callbacks: a RELP
acknowledgement is sent from such a callback, so it never goes out before its message is
committed by every sink. Commits happen when `max_batch` records are waiting, when a listener
asks for one (`urgent`, e.g. a RELP sender's window is full), or `commit_interval` seconds after
the first record of a batch arrived.

Decisions (issue 22: a failed commit is not a lost batch):

- Each sink has a lane of its own: the batches it has not committed yet, oldest first. A batch
  a sink could not write or commit stays at the head of that sink's lane and is tried again
  with backoff (`RETRY_FIRST` doubling up to `RETRY_MAX` seconds); later batches queue behind it
  in that lane only, so a failing JSON-lines file does not stop the store, nor the reverse.
- A batch is done (its callbacks run, in batch order) once every sink committed it. Until then
  its records count as `pending`: past `high_water` the stream listeners pause (TCP/TLS stop
  reading, RELP stops answering: senders wait or spool); a UDP listener, which cannot pause,
  drops what does not fit and counts it (`sink_failing`).
- Told at once: one line when a sink fails (which sink, why, how many records wait), lines at
  most every `TELL_EVERY` seconds while it keeps failing, one when it recovers (how long), and
  one each when the listeners pause and resume while a sink fails.
- At `close()` a failing sink is retried until the close's timeout; then what no sink could
  take is given up and told in one line with the exact counts: records received over TCP/UDP
  that were not stored (`not_stored`), and records whose senders were never answered
  (`unanswered`: RELP senders and JetStream keep them and send them again). A batch every sink
  committed after an earlier one failed (handed over before that failure was known) is
  counted stored and answered, never among them.
- `reopen()` (SIGHUP) re-opens the sinks that write files (`Reopens`), between two batches.
- With a `router` (`collector.routes`, issue 20), each sink's lane gets only the records its
  routes name (split once per batch, in the writer thread); a batch is still done once every
  lane committed its part.
- `reconfigure()` (a reload) takes effect at one point of the queue: records submitted before
  it go to the sinks and routes of before, those after to the new ones. A kept sink keeps its
  lane (and what waits in it); a removed sink's lane is worked through (drained, retried if it
  fails), then the sink is closed.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .record import Record
from .routes import Router
from .sinks.base import (
    CommitsInBackground,
    HasStats,
    HoldsWhatItTook,
    Reopens,
    Sink,
    WaitsForRoom,
    sink_name,
    tell_stderr,
)
from .stats import PipelineStats, SinkStats

__all__ = ["RETRY_FIRST", "RETRY_MAX", "TELL_EVERY", "Done", "Pipeline", "tell_stderr"]

Done = Callable[[bool], None]

#: seconds before a failed sink's first retry; doubled after each failure, up to RETRY_MAX
RETRY_FIRST = 0.05
RETRY_MAX = 2.0
#: while a sink keeps failing, one line at most every TELL_EVERY seconds
TELL_EVERY = 10.0
#: batches handed to a sink that commits in the background before the oldest is waited for
_IN_FLIGHT = 2


class Pipeline:
    """The writer thread between listeners and sinks (see the module docstring).

    `submit()` may be called from any thread. `pressure` is called (from whichever thread crossed
    the mark) with True when more than `high_water` records wait, and with False once they are
    back under `low_water`; the server pauses and resumes reading with it. `tell` gets the lines
    for the operator (stderr by default).
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        commit_interval: float = 0.02,
        max_batch: int = 5000,
        high_water: int = 50_000,
        low_water: int | None = None,
        pressure: Callable[[bool], None] | None = None,
        tell: Callable[[str], None] = tell_stderr,
        router: Router | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.router = router
        self._retiring: list[_Lane] = []  # removed by a reconfiguration, draining
        self.commit_interval = commit_interval
        self.max_batch = max_batch
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else low_water
        self.pressure = pressure
        self.tell = tell
        self.stats = PipelineStats()
        self._lanes = [_Lane(sink) for sink in self.sinks]
        self.stats.sinks = [lane.stats for lane in self._lanes]
        self._items: collections.deque[tuple[Sequence[Record] | _Swap, Done | None]] = (
            collections.deque()
        )
        self._batches: collections.deque[_Batch] = collections.deque()
        self._pending = 0
        self._first_at = 0.0
        self._urgent = False
        self._stopping = False
        self._give_up_at = float("inf")
        self._paused = False
        self._paused_at = 0.0
        self._pause_told = False
        self._reopen_asked = threading.Event()
        self._reopened = threading.Event()
        self._reopen_result: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="syslogkit-sinks", daemon=True)
        self._started = False

    @property
    def pending(self) -> int:
        """Records submitted and not yet committed by every sink."""
        return self._pending

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def failing(self) -> list[str]:
        """The sinks whose last write or commit failed (their batches are being retried)."""
        return [lane.stats.name for lane in self._lanes if lane.failing_since is not None]

    def paused_seconds(self) -> float:
        """How long the stream listeners have been paused in all, this pause included."""
        with self._cond:
            now = time.monotonic() - self._paused_at if self._paused else 0.0
            return self.stats.paused_seconds + now

    def stats_dict(self) -> dict[str, Any]:
        """The counters (`PipelineStats`), with what is true now: `pending`, `paused`,
        `paused_seconds` (this pause included), `failing` sinks, and in each sink's entry the
        sink's own counters (`HasStats`: retention deletions, a forward's `maybe_lost`, ...)."""
        out = self.stats.as_dict()
        out["pending"] = self._pending
        out["paused"] = self._paused
        out["paused_seconds"] = self.paused_seconds()
        out["failing"] = self.failing
        for entry, lane in zip(out["sinks"], self._lanes, strict=False):
            if isinstance(lane.sink, HasStats):
                with contextlib.suppress(Exception):
                    entry.update({k: v for k, v in lane.sink.stats().items() if k not in entry})
        return out

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(
        self, records: Sequence[Record], done: Done | None = None, *, urgent: bool = False
    ) -> None:
        """Queue records for the sinks; `done(ok)` runs in the writer thread once every sink
        committed them (`ok` False only when they were given up at close)."""
        if not records and done is None:
            return
        signal = False
        with self._cond:
            if self._stopping and not self._thread.is_alive():
                raise RuntimeError("pipeline is closed")
            if not self._items:
                self._first_at = time.monotonic()
            self._items.append((records, done))
            self._pending += len(records)
            self.stats.queued += len(records)
            if urgent:
                self._urgent = True
            if self._pending > self.high_water and not self._paused:
                self._paused = signal = True
                self._paused_at = time.monotonic()
            self._cond.notify_all()  # the writer, not only a UDP thread waiting for room
        if signal:
            self._tell_pause()
            if self.pressure is not None:
                self.pressure(True)

    def reconfigure(
        self, sinks: Sequence[Sink], router: Router | None, timeout: float = 30.0
    ) -> bool:
        """Records submitted from now on go to `sinks` by `router`; those submitted before go
        where the old ones said. A sink no longer in the list (by identity) is drained, then
        closed. Waits until the writer applied it; False on timeout (or when closing)."""
        swap = _Swap(list(sinks), router)
        with self._cond:
            if self._stopping:
                return False
            if not self._items:
                self._first_at = time.monotonic()
            self._items.append((swap, None))
            self._urgent = True
            self._cond.notify_all()
        return swap.applied.wait(timeout)

    def commit_soon(self) -> None:
        """Commit what is queued without waiting for the timer (a RELP window is full)."""
        with self._cond:
            self._urgent = True
            self._cond.notify_all()

    def wait_for_room(self, timeout: float) -> bool:
        """Block (a UDP thread) until fewer than `high_water` records wait; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > self.high_water:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def drain(self, timeout: float = 30.0) -> bool:
        """Commit everything submitted so far and wait for it; False on timeout (a sink still
        failing: its batches stay queued)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            while self._items or self._batches:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return not self._items and not self._batches
                self._cond.wait(remaining)
        return True

    def reopen(self, timeout: float = 10.0) -> list[str]:
        """Re-open the sinks that write files (SIGHUP), between two batches; returns their
        names (empty on timeout or when there are none)."""
        if not any(isinstance(s, Reopens) for s in self.sinks):
            return []
        self._reopened.clear()
        self._reopen_asked.set()
        with self._cond:
            self._cond.notify_all()
        if not self._started or not self._thread.is_alive():
            self._reopen_sinks()
        elif not self._reopened.wait(timeout):
            return []
        return list(self._reopen_result)

    def stop_waiting(self) -> None:
        """The collector is stopping: sinks that wait for room stop waiting (`WaitsForRoom`)."""
        for sink in self.sinks:
            if isinstance(sink, WaitsForRoom):
                sink.stop_waiting()

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued (a failing sink is retried for up to `timeout` seconds, then
        what it holds is given up, counted and told), stop the thread, close every sink."""
        self.stop_waiting()
        with self._cond:
            self._stopping = True
            self._urgent = True
            self._give_up_at = time.monotonic() + timeout
            self._cond.notify_all()
        if self._started:
            self._thread.join(timeout + 5.0)
        for lane in self._lanes + self._retiring:
            try:
                lane.sink.close()
            except Exception as exc:
                self.stats.errors += 1
                self.stats.last_error = f"close {lane.stats.name}: {exc}"
                lane.stats.last_error = str(exc)

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if self._reopen_asked.is_set():
                self._reopen_sinks()
            taken = self._take(self._wait_limit())
            if isinstance(taken, _Swap):
                self._apply(taken)
                taken = None
            elif taken is not None:
                self._route(taken)
                for lane in self._lanes:
                    lane.backlog.append(taken)
                    lane.stats.waiting += len(taken.records_for(lane))
            now = time.monotonic()
            for lane in self._lanes + self._retiring:
                if lane.backlog and lane.retry_at <= now:
                    self._step(lane, more=taken is not None)
            self._complete()
            if self._retiring:
                self._retire()
            with self._cond:
                if self._stopping and not self._items:
                    if not self._batches:
                        return
                    if time.monotonic() >= self._give_up_at:
                        break
        self._give_up()

    def _wait_limit(self) -> float | None:
        """How long `_take` may wait for records: not at all while a sink has work it can do
        now, until the next retry while one waits to retry, else until records come."""
        now = time.monotonic()
        soonest: float | None = None
        for lane in self._lanes + self._retiring:
            if not lane.backlog:
                continue
            if lane.retry_at <= now:
                return 0.0
            soonest = lane.retry_at if soonest is None else min(soonest, lane.retry_at)
        if self._stopping and self._batches:
            soonest = self._give_up_at if soonest is None else min(soonest, self._give_up_at)
        return None if soonest is None else max(0.0, soonest - now)

    def _route(self, batch: _Batch) -> None:
        """Each lane's part of the batch, by the routes (none: every lane takes it all)."""
        router = self.router
        if router is not None and batch.records:
            parts = router.split(batch.records)
            batch.parts = {id(lane): part for lane, part in zip(self._lanes, parts, strict=True)}

    def _apply(self, swap: _Swap) -> None:
        """A reconfiguration reached the head of the queue: the new lanes from now on."""
        old = {id(lane.sink): lane for lane in self._lanes}
        lanes = [old.pop(id(sink)) if id(sink) in old else _Lane(sink) for sink in swap.sinks]
        self._retiring.extend(old.values())
        self._lanes, self.sinks, self.router = lanes, list(swap.sinks), swap.router
        self.stats.sinks = [lane.stats for lane in lanes]
        swap.applied.set()

    def _retire(self) -> None:
        """Close the removed sinks whose lanes are empty (everything given to them committed)."""
        for lane in [x for x in self._retiring if not x.backlog and not x.waits]:
            self._retiring.remove(lane)
            try:
                lane.sink.close()
            except Exception as exc:
                self.stats.errors += 1
                self.stats.last_error = f"close {lane.stats.name}: {exc}"

    def _take(self, limit: float | None) -> _Batch | _Swap | None:
        """The next batch, queued for the sinks; `limit` None waits for records (0: only what
        is there now, with no lingering for more: the batch is built while the sinks work)."""
        with self._cond:
            if limit is None:
                while not self._items and not self._stopping and not self._reopen_asked.is_set():
                    self._cond.wait()
            elif not self._items and limit > 0:
                self._cond.wait(limit)
            if not self._items:
                return None
            deadline = self._first_at + self.commit_interval
            while (
                limit is None
                and self._pending < self.max_batch
                and not self._urgent
                and not self._stopping
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            head = self._items[0][0]
            if isinstance(head, _Swap):  # alone: what came before it is queued already
                self._items.popleft()
                self._urgent = bool(self._items)
                return head
            batch: list[Record] = []
            callbacks: list[Done] = []
            answered = 0
            while self._items and len(batch) < self.max_batch:
                if isinstance(self._items[0][0], _Swap):
                    break
                records, done = self._items.popleft()
                assert not isinstance(records, _Swap)
                batch.extend(records)
                if done is not None:
                    callbacks.append(done)
                    answered += len(records)
            if self._items:
                self._first_at = time.monotonic()
            else:
                self._urgent = False
            taken = _Batch(batch, callbacks, answered, lanes=len(self._lanes))
            self._batches.append(taken)  # with the lock: `drain` never sees it in neither place
            return taken

    def _step(self, lane: _Lane, *, more: bool) -> None:
        """Let one sink work through its lane: write and commit its oldest batches (several
        at once, up to `max_batch` records, when it is catching up)."""
        if isinstance(lane.sink, CommitsInBackground):
            self._step_background(lane, lane.sink, more=more)
            return
        while lane.backlog:
            group = self._group(lane, 0)
            try:
                for batch in group:
                    records = batch.records_for(lane)
                    if records:
                        lane.sink.write(records)
                lane.sink.flush()
            except Exception as exc:
                self._failed(lane, exc)
                return
            for batch in group:
                lane.backlog.popleft()
                self._committed(lane, batch)

    def _group(self, lane: _Lane, start: int) -> list[_Batch]:
        """The lane's batches from `start` on that go to the sink together: at least one, and
        more while they stay within `max_batch` records."""
        group: list[_Batch] = []
        size = 0
        for batch in itertools.islice(lane.backlog, start, None):
            count = len(batch.records_for(lane))
            if group and size + count > self.max_batch:
                break
            group.append(batch)
            size += count
        return group

    def _step_background(self, lane: _Lane, sink: CommitsInBackground, *, more: bool) -> None:
        """A sink that commits beside the pipeline (the SQLite writer process): the next batch
        is handed over while the previous one commits, and only then is the previous one waited
        for: at most `_IN_FLIGHT` handovers are in the sink's hands."""
        handed = sum(len(group) for group, _ in lane.waits)
        while len(lane.waits) < _IN_FLIGHT and handed < len(lane.backlog):
            group = self._group(lane, handed)
            try:
                for batch in group:
                    records = batch.records_for(lane)
                    if records:
                        lane.sink.write(records)
                wait = sink.flush_start()
            except Exception as exc:
                self._settle(lane)
                self._failed(lane, exc)
                return
            lane.waits.append((group, wait))
            handed += len(group)
        if lane.waits and (len(lane.waits) >= _IN_FLIGHT or not more):
            group, wait = lane.waits.popleft()
            try:
                wait()
            except Exception as exc:
                if isinstance(sink, HoldsWhatItTook):
                    self._held_unconfirmed(lane, group, exc)
                    return
                self._settle(lane)
                self._failed(lane, exc)
                return
            self._committed_group(lane, group)

    def _held_unconfirmed(self, lane: _Lane, group: list[_Batch], exc: Exception) -> None:
        """A `HoldsWhatItTook` sink did not confirm in time: it keeps the batches (never
        written again), and their callbacks get False (see that protocol)."""
        self.stats.errors += 1
        self.stats.last_error = f"{lane.stats.name}: {type(exc).__name__}: {exc}"
        lane.stats.failures += 1
        lane.stats.last_error = f"{type(exc).__name__}: {exc}"
        for batch in group:
            batch.ok = False
        self._committed_group(lane, group)

    def _settle(self, lane: _Lane) -> None:
        """After a failure, learn the fate of every handover still in the sink's hands (a later
        one may have been committed although an earlier one failed); the others are sent
        again."""
        while lane.waits:
            group, wait = lane.waits.popleft()
            try:
                wait()
            except Exception as exc:
                if isinstance(lane.sink, HoldsWhatItTook):
                    self._held_unconfirmed(lane, group, exc)
                continue
            self._committed_group(lane, group)

    def _committed_group(self, lane: _Lane, group: list[_Batch]) -> None:
        for batch in group:
            lane.backlog.remove(batch)
            self._committed(lane, batch)

    def _failed(self, lane: _Lane, exc: Exception) -> None:
        now = time.monotonic()
        error = f"{type(exc).__name__}: {exc}"
        self.stats.errors += 1
        self.stats.last_error = f"{lane.stats.name}: {error}"
        lane.stats.failures += 1
        lane.stats.last_error = error
        lane.delay = RETRY_FIRST if lane.delay == 0 else min(RETRY_MAX, lane.delay * 2)
        lane.retry_at = now + lane.delay
        waiting = lane.stats.waiting
        if lane.failing_since is None:
            lane.failing_since = lane.told_at = now
            lane.stats.failing = True
            self.tell(
                f"sink {lane.stats.name} failed: {error}; {waiting} records wait for it and are"
                f" retried (stream listeners pause past {self.high_water})"
            )
            if self._paused and not self._pause_told:  # paused by the load, before it failed
                self._tell_pause()
        elif now - lane.told_at >= TELL_EVERY:
            lane.told_at = now
            self.tell(
                f"sink {lane.stats.name} still failing after {now - lane.failing_since:.0f} s:"
                f" {error}; {waiting} records wait for it"
            )

    def _committed(self, lane: _Lane, batch: _Batch) -> None:
        count = len(batch.records_for(lane))
        lane.stats.committed += count
        lane.stats.waiting -= count
        batch.remaining -= 1
        if lane.failing_since is not None:
            took = time.monotonic() - lane.failing_since
            lane.failing_since = None
            lane.stats.failing = False
            lane.stats.failing_seconds += took
            self.tell(f"sink {lane.stats.name} recovered after {took:.1f} s failing")
        lane.delay = 0.0

    def _complete(self) -> None:
        """Finish the oldest batches that every sink committed: callbacks in batch order."""
        while self._batches and self._batches[0].remaining == 0:
            batch = self._batches.popleft()
            self._finish(batch, batch.ok)

    def _finish(self, done: _Batch, ok: bool) -> None:
        if ok:
            self.stats.committed += len(done.records)
        latency = time.monotonic() - done.started
        self.stats.batches += 1
        self.stats.commit_seconds += latency
        self.stats.last_commit_seconds = latency
        for callback in done.callbacks:
            try:
                callback(ok)
            except Exception as exc:
                self.stats.errors += 1
                self.stats.last_error = f"callback: {exc}"
        resume = False
        with self._cond:
            self._pending -= len(done.records)
            if self._paused and self._pending <= self.low_water:
                self._paused = False
                self.stats.paused_seconds += time.monotonic() - self._paused_at
                resume = True
            self._cond.notify_all()
        if resume:
            self._tell_resume()
            if self.pressure is not None:
                self.pressure(False)

    def _tell_pause(self) -> None:
        failing = self.failing
        if failing:
            self._pause_told = True
            self.tell(
                f"stream listeners paused: {self._pending} records wait"
                f" (sink {', '.join(failing)} failing); UDP drops what does not fit"
            )

    def _tell_resume(self) -> None:
        if self._pause_told:
            self._pause_told = False
            self.tell(
                f"stream listeners resumed after {time.monotonic() - self._paused_at:.1f} s paused"
            )

    def _give_up(self) -> None:
        """Closing with a sink still failing: count, answer (not stored) and tell what no sink
        could take."""
        with self._cond:
            while self._items:
                records, done = self._items.popleft()
                if isinstance(records, _Swap):
                    records.applied.set()  # closing: the sinks it has are the last ones
                    continue
                answered = len(records) if done else 0
                batch = _Batch(list(records), [done] if done else [], answered, lanes=1)
                self._batches.append(batch)
        failing = ", ".join(f"{n} ({self._lane_error(n)})" for n in self.failing) or "?"
        not_stored = unanswered = 0
        while self._batches:
            given_up = self._batches.popleft()
            if given_up.remaining == 0:  # every sink committed it, after an earlier one failed
                self._finish(given_up, given_up.ok)
                continue
            unanswered += given_up.answered
            not_stored += len(given_up.records) - given_up.answered
            self._finish(given_up, False)
        self.stats.not_stored += not_stored
        self.stats.unanswered += unanswered
        self.tell(
            f"closing with sink {failing} still failing: {not_stored} records received over"
            f" TCP/TLS/UDP were not stored (lost); {unanswered} records were never answered"
            " (RELP senders and JetStream keep them and send them again)"
        )

    def _lane_error(self, name: str) -> str:
        for lane in self._lanes:
            if lane.stats.name == name:
                return lane.stats.last_error or "?"
        return "?"

    def _reopen_sinks(self) -> None:
        """Re-open the file sinks (in the writer thread, between batches)."""
        self._reopen_asked.clear()
        names: list[str] = []
        for lane in self._lanes:
            if isinstance(lane.sink, Reopens):
                try:
                    lane.sink.reopen()
                    names.append(lane.stats.name)
                except Exception as exc:
                    self._failed(lane, exc)
        self._reopen_result = names
        self._reopened.set()


class _Batch:
    """Records taken together, with the callbacks to run once every sink committed them."""

    __slots__ = ("answered", "callbacks", "ok", "parts", "records", "remaining", "started")

    def __init__(
        self, records: list[Record], callbacks: list[Done], answered: int, *, lanes: int
    ) -> None:
        self.records = records
        #: with routes: each lane's part (by `id(lane)`); None: every lane takes all the records
        self.parts: dict[int, list[Record]] | None = None
        self.callbacks = callbacks
        self.answered = answered  # records whose sender waits for an answer (RELP, JetStream)
        self.remaining = lanes
        self.ok = True  # False: a sink holds it unconfirmed (`HoldsWhatItTook`)
        self.started = time.monotonic()

    def records_for(self, lane: _Lane) -> list[Record]:
        """What `lane` writes of this batch."""
        return self.records if self.parts is None else self.parts[id(lane)]


class _Swap:
    """A change of sinks and routes (a reload), in the queue where it was asked for."""

    __slots__ = ("applied", "router", "sinks")

    def __init__(self, sinks: list[Sink], router: Router | None) -> None:
        self.sinks = sinks
        self.router = router
        self.applied = threading.Event()


class _Lane:
    """One sink's queue: the batches it has not committed yet, oldest first, and its retry
    state."""

    __slots__ = (
        "backlog",
        "delay",
        "failing_since",
        "retry_at",
        "sink",
        "stats",
        "told_at",
        "waits",
    )

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.stats = SinkStats(sink_name(sink))
        self.backlog: collections.deque[_Batch] = collections.deque()
        #: handovers to a sink that commits in the background, oldest first, with their waits
        self.waits: collections.deque[tuple[list[_Batch], Callable[[], None]]] = collections.deque()
        self.retry_at = 0.0
        self.delay = 0.0
        self.failing_since: float | None = None
        self.told_at = 0.0
