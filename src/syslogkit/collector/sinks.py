"""Where received records go: the sink protocol, the sinks, and the pipeline that feeds them.

The pipeline is one writer thread. Listeners `submit()` batches of records (with an optional
callback); the writer takes what has queued, writes it to every sink, commits (`flush()`), then
runs the callbacks: a RELP acknowledgement is sent from such a callback, so it never goes out
before its message is committed. Commits happen when `max_batch` records are waiting, when a
listener asks for one (`urgent`, e.g. a RELP sender's window is full), or `commit_interval`
seconds after the first record of a batch arrived.
"""

from __future__ import annotations

import collections
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .record import Record, record_to_json
from .stats import PipelineStats
from .store import Store, StoreProcess, make_row

__all__ = [
    "ForwardSink",
    "JsonLinesSink",
    "Pipeline",
    "SQLiteSink",
    "Sink",
    "StdoutSink",
    "format_human",
]


@runtime_checkable
class Sink(Protocol):
    """A destination for records. All three methods are called from the pipeline's thread.

    `write` takes a batch; `flush` makes what was written durable (a commit); `close` flushes
    and releases the sink. An exception from `write` or `flush` marks the batch as failed: its
    callbacks get `False` (a RELP sender is answered with an error and sends again).
    """

    def write(self, records: Sequence[Record]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class SQLiteSink:
    """Records into a `Store` (one transaction per batch), with retention applied periodically.

    `process=True` runs SQLite in a child process (`StoreProcess`): the rows are built here and
    the inserting, indexing and committing happen beside the collector's parsing, not in turn
    with it under the GIL; `syslogkit collect` does this.
    """

    def __init__(
        self,
        path: str | Path | Store,
        *,
        max_age: float | None = None,
        max_bytes: int | None = None,
        synchronous: str = "NORMAL",
        retain_interval: float = 5.0,
        process: bool = False,
    ) -> None:
        self.writer: StoreProcess | None = None
        self.store: Store | None = None
        self._rows: list[tuple[Any, ...]] = []
        if isinstance(path, Store):
            self.store = path
        elif process:
            self.writer = StoreProcess(
                path,
                max_age=max_age,
                max_bytes=max_bytes,
                synchronous=synchronous,
                retain_interval=retain_interval,
            )
        else:
            self.store = Store(path, max_age=max_age, max_bytes=max_bytes, synchronous=synchronous)
        self.retain_interval = retain_interval

    def write(self, records: Sequence[Record]) -> None:
        if self.writer is not None:
            self._rows.extend(make_row(r) for r in records)
            return
        assert self.store is not None
        try:
            self.store.insert(records)
        except BaseException:
            self.store.rollback()
            raise

    def flush(self) -> None:
        if self.writer is not None:
            self.flush_start()()
            return
        assert self.store is not None
        self.store.commit()
        self.store.maybe_retain(self.retain_interval)

    def flush_start(self) -> Callable[[], None]:
        """Send the batch to the writer process; the returned function waits for its commit."""
        if self.writer is None:
            self.flush()
            return _nothing
        rows, self._rows = self._rows, []
        if not rows:
            return _nothing
        return self.writer.start(rows)

    def close(self) -> None:
        if self.writer is not None:
            self.flush()
            self.writer.close()
        elif self.store is not None:
            self.store.close()


def _nothing() -> None:
    pass


class JsonLinesSink:
    """One JSON object per line (`record_to_dict`'s object, written by `record_to_json`), raw
    bytes lossless; `fsync` on request."""

    def __init__(self, path: str | Path | IO[bytes], *, fsync: bool = False) -> None:
        if isinstance(path, (str, Path)):
            self._file: IO[bytes] = open(path, "ab")  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._file = path
            self._owned = False
        self.fsync = fsync

    def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        text = "\n".join([record_to_json(r) for r in records])
        self._file.write(text.encode("utf-8") + b"\n")

    def flush(self) -> None:
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._file.close()


# -- human-readable -----------------------------------------------------------------------------

_COLOURS = {
    0: "\x1b[1;97;41m",
    1: "\x1b[1;91m",
    2: "\x1b[1;91m",
    3: "\x1b[91m",
    4: "\x1b[93m",
    5: "\x1b[96m",
    6: "",
    7: "\x1b[2m",
}
_RESET = "\x1b[0m"


def _one_line(text: str) -> str:
    if "\n" in text or "\r" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def format_human(record: Record, *, color: bool = False) -> str:
    """One line for a person: time, host, app[procid], severity, message (and a parse error)."""
    m = record.message
    if m is None:
        when = datetime.fromtimestamp(record.received_at).astimezone()
        text = record.raw.decode("utf-8", "replace")
        line = f"{when.isoformat(timespec='seconds')} {record.peer} !unparsed: {_one_line(text)}"
        return f"\x1b[2m{line}{_RESET}" if color else line
    ts = m.timestamp or datetime.fromtimestamp(record.received_at).astimezone()
    sev = m.severity
    level = sev.name.lower() if sev is not None else "-"
    app = m.app_name or "-"
    if m.procid:
        app += f"[{m.procid}]"
    sd = ""
    if m.structured_data:
        sd = " " + "".join(
            "[" + " ".join([el.id] + [f'{k}="{v}"' for k, v in el.params]) + "]"
            for el in m.structured_data
        )
    line = (
        f"{ts.isoformat(timespec='milliseconds')} {m.hostname or '-'} {app} {level}:"
        f"{sd} {_one_line(m.msg or '')}"
    )
    if record.error:
        line += f"  (! {record.error})"
    if color and sev is not None:
        colour = _COLOURS.get(int(sev), "")
        if colour:
            line = colour + line + _RESET
    return line


class StdoutSink:
    """Human-readable lines on a stream (stdout by default), coloured when it is a terminal.

    Output errors (a closed pipe) are counted, never raised: a reader going away must not stop
    the store from committing.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        color: bool | None = None,
        json_lines: bool = False,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if color is None:
            isatty = getattr(self.stream, "isatty", None)
            color = bool(isatty and isatty()) and os.environ.get("NO_COLOR") is None
        self.color = color
        self.json_lines = json_lines
        self.errors = 0

    def write(self, records: Sequence[Record]) -> None:
        try:
            if self.json_lines:
                text = "".join([record_to_json(r) + "\n" for r in records])
            else:
                text = "".join(format_human(r, color=self.color) + "\n" for r in records)
            self.stream.write(text)
        except (OSError, ValueError):
            self.errors += 1

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self.errors += 1

    def close(self) -> None:
        self.flush()


# -- forwarding ---------------------------------------------------------------------------------


class ForwardSink:
    """Relay every record's raw bytes, unaltered, to another syslog server (RFC 5424 §4.2 relay).

    `udp://host:port` sends each message as one datagram; `tcp://host:port` sends octet-counted
    frames. A thread of its own does the network I/O, so a slow or absent destination never holds
    up the store: its queue is bounded (`max_queue`), and what overflows is dropped and counted.
    Reconnects use exponential backoff (0.1 s doubling up to 5 s).
    """

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 100_000,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("udp", "tcp"):
            raise ValueError(f"forward: unsupported scheme {parts.scheme!r} (udp:// or tcp://)")
        if not parts.hostname or not parts.port:
            raise ValueError(f"forward: {url!r} needs a host and a port")
        self.url = url
        self.scheme = parts.scheme
        self.address = (parts.hostname, parts.port)
        self.timeout = timeout
        self.max_queue = max_queue
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self._queue: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="syslogkit-forward", daemon=True)
        self._thread.start()

    def write(self, records: Sequence[Record]) -> None:
        with self._cond:
            room = self.max_queue - len(self._queue)
            if room < len(records):
                self.dropped += len(records) - max(room, 0)
                records = records[: max(room, 0)]
            self._queue.extend(r.raw for r in records)
            self._cond.notify()

    def flush(self) -> None:
        pass

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        with self._cond:
            self.dropped += len(self._queue)
            self._queue.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def stats(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "sent": self.sent,
            "dropped": self.dropped,
            "errors": self.errors,
            "reconnects": self.reconnects,
            "queued": len(self._queue),
            "last_error": self.last_error,
        }

    def _connect(self) -> socket.socket:
        if self.scheme == "udp":
            infos = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)
            family, socktype, proto, _name, addr = infos[0]
            sock = socket.socket(family, socktype, proto)
            sock.connect(addr)
            return sock
        sock = socket.create_connection(self.address, timeout=self.timeout)
        sock.settimeout(self.timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    def _run(self) -> None:
        backoff = 0.1
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
            while batch:
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                        backoff = 0.1
                    if self.scheme == "udp":
                        for raw in batch:
                            self._sock.send(raw)
                            self.sent += 1
                    else:
                        self._sock.sendall(b"".join(b"%d %b" % (len(r), r) for r in batch))
                        self.sent += len(batch)
                    batch = []
                except OSError as exc:
                    self.errors += 1
                    self.last_error = str(exc)
                    if self._sock is not None:
                        self._sock.close()
                        self._sock = None
                        self.reconnects += 1
                    if self.scheme == "udp":  # a datagram that failed is gone: count it
                        self.dropped += 1
                        batch = batch[1:]
                    with self._cond:
                        if self._closing:
                            self.dropped += len(batch)
                            return
                        self._cond.wait(backoff)
                    backoff = min(backoff * 2, 5.0)


# -- the pipeline -------------------------------------------------------------------------------

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

    def close(self, timeout: float = 30.0) -> None:
        """Drain, stop the thread, close every sink."""
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
        # A sink with `flush_start()` (the SQLite writer process) commits in the background:
        # the next batch is written (rows built) while the previous one commits. Its callbacks
        # still run only once every sink has committed it.
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
                    start = getattr(sink, "flush_start", None)
                    if start is None:
                        sink.flush()
                    else:
                        if inflight is not None:  # one background commit at a time
                            self._finish(inflight)
                            inflight = None
                        current.waits.append((sink, start()))
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
        self.stats.batches += 1
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

    __slots__ = ("batch", "callbacks", "ok", "waits")

    def __init__(self, batch: list[Record], callbacks: list[Done]) -> None:
        self.batch = batch
        self.callbacks = callbacks
        self.ok = True
        self.waits: list[tuple[object, Callable[[], None]]] = []
