"""The pipeline: one writer thread between the listeners and the sinks.

Listeners `submit()` batches of records (with an optional callback); the writer takes what has
queued, writes it to every sink, commits (`flush()`), then runs the callbacks: a RELP
acknowledgement is sent from such a callback, so it never goes out before its message is
committed. Commits happen when `max_batch` records are waiting, when a listener asks for one
(`urgent`, e.g. a RELP sender's window is full), or `commit_interval` seconds after the first
record of a batch arrived.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence

from .record import Record
from .sinks.base import CommitsInBackground, Sink, WaitsForRoom
from .stats import PipelineStats

__all__ = ["Done", "Pipeline"]

Done = Callable[[bool], None]


class Pipeline:
    """The writer thread between listeners and sinks (see the module docstring).

    `submit()` may be called from any thread. `pressure` is called (from whichever thread crossed
    the mark) with True when more than `high_water` records wait, and with False once they are
    back under `low_water`; the server pauses and resumes reading with it.
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
    ) -> None:
        self.sinks = list(sinks)
        self.commit_interval = commit_interval
        self.max_batch = max_batch
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else low_water
        self.pressure = pressure
        self.stats = PipelineStats()
        self._items: collections.deque[tuple[Sequence[Record], Done | None]] = collections.deque()
        self._pending = 0
        self._first_at = 0.0
        self._urgent = False
        self._stopping = False
        self._busy = 0
        self._paused = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="syslogkit-sinks", daemon=True)
        self._started = False

    @property
    def pending(self) -> int:
        """Records submitted and not yet committed."""
        return self._pending

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(
        self, records: Sequence[Record], done: Done | None = None, *, urgent: bool = False
    ) -> None:
        """Queue records for the sinks; `done(ok)` runs in the writer thread after the commit."""
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
            self._cond.notify_all()  # the writer, not only a UDP thread waiting for room
        if signal and self.pressure is not None:
            self.pressure(True)

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
        """Commit everything submitted so far and wait for it; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            while self._items or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return not self._items and not self._busy
                self._cond.wait(remaining)
        return True

    def stop_waiting(self) -> None:
        """The collector is stopping: sinks that wait for room stop waiting (`WaitsForRoom`)."""
        for sink in self.sinks:
            if isinstance(sink, WaitsForRoom):
                sink.stop_waiting()

    def close(self, timeout: float = 30.0) -> None:
        """Drain, stop the thread, close every sink."""
        self.stop_waiting()
        with self._cond:
            self._stopping = True
            self._urgent = True
            self._cond.notify_all()
        if self._started:
            self._thread.join(timeout)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self.stats.errors += 1
                self.stats.last_error = f"close {type(sink).__name__}: {exc}"

    def _take(self, block: bool = True) -> tuple[list[Record], list[Done]] | None:
        """The next batch; with `block=False` (a commit is in flight) None when nothing waits,
        and no lingering for more: the batch is built while the previous one commits."""
        with self._cond:
            while block and not self._items and not self._stopping:
                self._cond.wait()
            if not self._items:
                return None
            deadline = self._first_at + self.commit_interval
            while (
                block and self._pending < self.max_batch and not self._urgent and not self._stopping
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[Record] = []
            callbacks: list[Done] = []
            while self._items and len(batch) < self.max_batch:
                records, done = self._items.popleft()
                batch.extend(records)
                if done is not None:
                    callbacks.append(done)
            if self._items:
                self._first_at = time.monotonic()
            else:
                self._urgent = False
            self._busy += 1
            return batch, callbacks

    def _fail(self, sink: object, exc: Exception) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"{type(sink).__name__}: {exc}"

    def _run(self) -> None:
        # A sink that `CommitsInBackground` (the SQLite writer process) commits in the background:
        # the next batch is written and handed to it (rows built, sent) while the previous one
        # commits, and only then is the previous one waited for: at most two batches are in
        # the sink's hands. Callbacks run in batch order, once every sink has committed.
        inflight: _Inflight | None = None
        while True:
            taken = self._take(block=inflight is None)
            if taken is None:
                if inflight is not None:
                    self._finish(inflight)
                    inflight = None
                    continue
                return
            batch, callbacks = taken
            current = _Inflight(batch, callbacks)
            for sink in self.sinks:
                try:
                    if batch:
                        sink.write(batch)
                    if not isinstance(sink, CommitsInBackground):
                        sink.flush()
                    else:  # queued behind the batch in flight: the sink never waits for us
                        current.waits.append((sink, sink.flush_start()))
                except Exception as exc:
                    current.ok = False
                    self._fail(sink, exc)
            if inflight is not None:
                self._finish(inflight)
                inflight = None
            if current.waits:
                inflight = current
            else:
                self._finish(current)

    def _finish(self, done: _Inflight) -> None:
        for sink, wait in done.waits:
            try:
                wait()
            except Exception as exc:
                done.ok = False
                self._fail(sink, exc)
        ok = done.ok
        if ok:
            self.stats.committed += len(done.batch)
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
            self._pending -= len(done.batch)
            self._busy -= 1
            if self._paused and self._pending <= self.low_water:
                self._paused = False
                resume = True
            self._cond.notify_all()
        if resume and self.pressure is not None:
            self.pressure(False)


class _Inflight:
    """A batch written to the sinks and waiting for its commits."""

    __slots__ = ("batch", "callbacks", "ok", "started", "waits")

    def __init__(self, batch: list[Record], callbacks: list[Done]) -> None:
        self.batch = batch
        self.callbacks = callbacks
        self.ok = True
        self.started = time.monotonic()
        self.waits: list[tuple[object, Callable[[], None]]] = []
