"""The edge's outbox: batches waiting for JetStream's acknowledgement, in memory up to a bound,
then on disk (the spool), then the pipeline waits (back-pressure).

One queue in order (oldest first) whatever the place of a batch: an entry holds its payload in
memory or the path of its spool file. Decisions:

- A spool file is written whole, fsynced, renamed into place, and the folder fsynced after the
  rename (and after an unlink), so a crash or a power loss leaves whole files only, neither loses
  a spooled batch nor brings back an acknowledged one (`fsync=False` skips both, for tests).
- A file is named after its entry's place in the queue (`order`, taken when it was added), not
  after the moment it was written: a batch spooled late (at close, or kept for a RELP answer) is
  read back in its place, never after batches that came later.
- A collector started on a spool folder publishes what it holds first (with the same
  `Nats-Msg-Id`: a batch the stream already took before the crash is dropped by its duplicate
  window). A folder is used by one collector at a time (a lock file).
- `keep()` makes entries durable on the edge now (a RELP batch is answered once it is in the
  spool or acknowledged by JetStream, whichever comes first).
- `add()` waits for room (back-pressure) only until `stop_waiting()` (the collector is
  stopping): from then on, and after `close()`, an entry goes to the spool whatever its bound,
  or, without a spool, is counted as lost; it never raises. At close, what is still in memory
  is written to the spool in queue order; without a spool it is counted as lost and the sink
  says so in one line.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["Entry", "Outbox", "OutboxClosed"]

_SUFFIX = ".skb"


class OutboxClosed(RuntimeError):
    """The outbox was closed while a batch waited for room or for its acknowledgement."""


@dataclass(eq=False)
class Entry:
    """One JetStream message to publish."""

    msg_id: str
    subject: str
    count: int
    size: int
    payload: bytes | None = None
    path: Path | None = None
    needs_ack: bool = False  # a RELP record is in it: the pipeline waits for its ack
    acked: bool = False
    lost: bool = False  # nowhere to keep it (stopping, no spool): counted in `Outbox.lost`
    sending: bool = False
    attempts: int = 0
    queued_at: float = field(default_factory=time.monotonic)
    order: int = 0  # its place in the queue, set by `Outbox.add` (spool files are named by it)


class Outbox:
    """See the module docstring. Thread-safe: the pipeline's thread adds and waits, the
    publisher's loop takes and acknowledges."""

    def __init__(
        self,
        *,
        max_memory: int,
        spool_dir: str | Path | None = None,
        max_spool: int = 1 << 30,
        fsync: bool = True,
    ) -> None:
        self.max_memory = max_memory
        self.max_spool = max_spool
        self.fsync = fsync
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._queue: collections.deque[Entry] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._stop_waiting = False
        self._give_up_at = float("inf")
        self._last_order = 0
        self._lock: IO[bytes] | None = None
        self.memory_bytes = 0
        self.memory_records = 0
        self.spool_bytes = 0
        self.spool_records = 0
        self.spooled_total = 0
        self.waits = 0
        self.kept = 0
        self.last_spool_error: str | None = None
        self.waited = 0.0
        self.lost = 0
        self.lost_batches = 0
        self.on_ready: Any = (
            None  # set by the publisher: called (any thread) when an entry is added
        )
        if self.spool_dir is not None:
            self._open_spool(self.spool_dir)

    # -- the spool folder ---------------------------------------------------------------------

    def _open_spool(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / "lock", "ab")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise OSError(f"spool {folder} is in use by another collector") from None
        self._lock = lock
        for path in sorted(folder.glob("*" + _SUFFIX)):
            entry = self._load(path)
            if entry is not None:
                self._queue.append(entry)
                self.spool_bytes += entry.size
                self.spool_records += entry.count
                self._last_order = max(self._last_order, entry.order)
        for tmp in folder.glob("*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    @staticmethod
    def _load(path: Path) -> Entry | None:
        try:
            with open(path, "rb") as f:
                head = f.readline().decode("ascii").split()
            msg_id, subject, count = head[0], head[1], int(head[2])
        except (OSError, ValueError, IndexError, UnicodeDecodeError):
            return None  # not ours or cut short (a rename makes that unlikely): left alone
        order = int(path.name.split("-", 1)[0]) if path.name[:1].isdigit() else 0
        return Entry(msg_id, subject, count, path.stat().st_size, path=path, order=order)

    def _write(self, entry: Entry, payload: bytes) -> Path:
        """The entry's spool file, written whole and renamed into place (the folder not yet
        fsynced: `_sync_folder`)."""
        assert self.spool_dir is not None
        name = f"{entry.order:020d}-{entry.msg_id}"
        path = self.spool_dir / (name + _SUFFIX)
        tmp = self.spool_dir / (name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(f"{entry.msg_id} {entry.subject} {entry.count}\n".encode("ascii"))
            f.write(payload)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def _sync_folder(self) -> None:
        """fsync the spool folder: a rename or an unlink in it survives a power loss."""
        if not self.fsync or self.spool_dir is None:
            return
        fd = os.open(self.spool_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _spool(self, entry: Entry, payload: bytes) -> None:
        """Write a new entry (not yet in memory) to the spool (the caller holds the lock)."""
        entry.path = self._write(entry, payload)
        self._sync_folder()
        entry.payload = None
        self.spool_bytes += entry.size
        self.spool_records += entry.count
        self.spooled_total += entry.count

    @staticmethod
    def read(entry: Entry) -> bytes:
        """The payload of an entry (read from its spool file when it is there)."""
        if entry.payload is not None:
            return entry.payload
        assert entry.path is not None
        with open(entry.path, "rb") as f:
            f.readline()
            return f.read()

    # -- the pipeline's side --------------------------------------------------------------------

    def add(self, entry: Entry, payload: bytes) -> None:
        """Queue an entry: in memory when there is room, else in the spool, else wait (until
        `stop_waiting()`; then the spool whatever its bound, or counted as lost). Never raises."""
        started = 0.0
        with self._cond:
            self._last_order = entry.order = max(self._last_order + 1, time.time_ns())
            while True:
                stopping = self._stop_waiting or self._closed
                if not self._closed and (
                    self.memory_bytes + entry.size <= self.max_memory or not self._queue
                ):
                    entry.payload = payload
                    self.memory_bytes += entry.size
                    self.memory_records += entry.count
                    break
                if self.spool_dir is not None and (
                    stopping or self.spool_bytes + entry.size <= self.max_spool
                ):
                    try:
                        self._spool(entry, payload)
                        break
                    except OSError as exc:
                        if not stopping:
                            raise
                        self.last_spool_error = f"{type(exc).__name__}: {exc}"
                if stopping:  # nowhere to keep it: counted, told at close
                    self._count_lost(entry)
                    return
                if not started:
                    started = time.monotonic()
                    self.waits += 1
                self._cond.wait(0.5)
            if started:
                self.waited += time.monotonic() - started
            self._queue.append(entry)
        if self.on_ready is not None:
            self.on_ready()

    def _count_lost(self, entry: Entry) -> None:
        entry.lost = True
        self.lost += entry.count
        self.lost_batches += 1
        entry.payload = None

    def stop_waiting(self, grace: float = 10.0) -> None:
        """The collector is stopping: `add()` no longer waits for room (see `add`), and
        `wait_acked` waits at most `grace` seconds more."""
        with self._cond:
            if not self._stop_waiting:
                self._stop_waiting = True
                self._give_up_at = time.monotonic() + grace
            self._cond.notify_all()

    def keep(self, entries: list[Entry]) -> list[Entry]:
        """Make `entries` durable on the edge: each one not yet acknowledged nor spooled is
        written to the spool (fsynced, the folder too) and leaves memory. Returns the entries
        that could not be kept (no spool, spool full, a write error)."""
        if self.spool_dir is None:
            return [e for e in entries if not e.acked]
        left: list[Entry] = []
        written: list[tuple[Entry, Path]] = []
        for entry in entries:
            with self._cond:
                payload = entry.payload
                if entry.acked or entry.path is not None or payload is None:
                    continue
                if self.spool_bytes + entry.size > self.max_spool:
                    left.append(entry)
                    continue
                self.spool_bytes += entry.size  # reserved while the file is written
            try:
                written.append((entry, self._write(entry, payload)))
            except OSError as exc:
                with self._cond:
                    self.spool_bytes -= entry.size
                    self.last_spool_error = f"{type(exc).__name__}: {exc}"
                left.append(entry)
        if written:
            self._sync_folder()
        gone = False
        with self._cond:
            for entry, path in written:
                if entry.acked:  # JetStream was faster: the file is not needed
                    self.spool_bytes -= entry.size
                    with contextlib.suppress(OSError):
                        path.unlink()
                    gone = True
                    continue
                entry.path = path
                entry.payload = None
                self.memory_bytes -= entry.size
                self.memory_records -= entry.count
                self.spool_records += entry.count
                self.spooled_total += entry.count
                self.kept += entry.count
        if gone:
            self._sync_folder()
        return left

    def wait_acked(
        self, entries: list[Entry], timeout: float | None, *, spooled: bool = False
    ) -> None:
        """Block until every entry is acknowledged (or, with `spooled`, acknowledged or in the
        spool); `OutboxClosed`/`TimeoutError` otherwise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not all(e.acked or (spooled and e.path is not None) for e in entries):
                if self._closed or any(e.lost for e in entries):
                    raise OutboxClosed("not published to JetStream before the sink closed")
                now = time.monotonic()
                if now >= self._give_up_at:
                    raise OutboxClosed("not published to JetStream before the collector stopped")
                remaining = 1.0 if deadline is None else deadline - now
                if remaining <= 0:
                    raise TimeoutError("JetStream did not acknowledge in time")
                self._cond.wait(min(remaining, 1.0))

    # -- the publisher's side -------------------------------------------------------------------

    def take(self, limit: int) -> list[Entry]:
        """Up to `limit` entries not being sent, oldest first; they are marked as being sent."""
        out: list[Entry] = []
        with self._cond:
            for entry in self._queue:
                if len(out) >= limit:
                    break
                if not entry.sending and not entry.acked:
                    entry.sending = True
                    out.append(entry)
        return out

    def release(self, entry: Entry) -> None:
        """A publish failed: the entry is to be sent again."""
        with self._cond:
            entry.sending = False
            entry.attempts += 1

    def acked(self, entry: Entry) -> None:
        """JetStream acknowledged the entry: drop it (and its spool file)."""
        with self._cond:
            entry.acked = True
            entry.sending = False
            with contextlib.suppress(ValueError):
                self._queue.remove(entry)
            self._forget(entry)
            self._cond.notify_all()

    def _forget(self, entry: Entry) -> None:
        if entry.path is not None:
            with contextlib.suppress(OSError):
                entry.path.unlink()
                self._sync_folder()
            self.spool_bytes -= entry.size
            self.spool_records -= entry.count
            entry.path = None
        elif entry.payload is not None:
            self.memory_bytes -= entry.size
            self.memory_records -= entry.count
            entry.payload = None

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def records(self) -> int:
        return self.memory_records + self.spool_records

    # -- closing --------------------------------------------------------------------------------

    def wait_empty(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
        return True

    def close(self) -> None:
        """Spool what is in memory, in queue order (or count it lost), release waiters, unlock
        the folder. The caller says what was lost (`lost`)."""
        with self._cond:
            self._closed = True
            wrote = False
            for entry in self._queue:
                if entry.payload is None or entry.acked:
                    continue
                payload = entry.payload
                self.memory_bytes -= entry.size
                self.memory_records -= entry.count
                if self.spool_dir is not None:
                    try:
                        entry.path = self._write(entry, payload)
                        entry.payload = None
                        self.spool_bytes += entry.size
                        self.spool_records += entry.count
                        self.spooled_total += entry.count
                        wrote = True
                        continue
                    except OSError as exc:
                        self.last_spool_error = f"{type(exc).__name__}: {exc}"
                self._count_lost(entry)
            if wrote:
                with contextlib.suppress(OSError):
                    self._sync_folder()
            self._cond.notify_all()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def stats(self) -> dict[str, Any]:
        return {
            "queued_batches": len(self._queue),
            "memory_records": self.memory_records,
            "memory_bytes": self.memory_bytes,
            "spool_records": self.spool_records,
            "spool_bytes": self.spool_bytes,
            "spooled_total": self.spooled_total,
            "backpressure_waits": self.waits,
            "backpressure_seconds": round(self.waited, 3),
            "kept_for_relp": self.kept,
            "lost": self.lost,
            "last_spool_error": self.last_spool_error,
        }
