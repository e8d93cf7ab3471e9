"""The edge's outbox: batches waiting for JetStream's acknowledgement, in memory up to a bound,
then on disk (the spool), then the pipeline waits (back-pressure).

One queue in order (oldest first) whatever the place of a batch: an entry holds its payload in
memory or the path of its spool file. A spool file is written whole and renamed into place
(fsync on request), so a crash leaves whole files only; a collector started on a spool folder
publishes what it holds first (with the same `Nats-Msg-Id`: a batch the stream already took
before the crash is dropped by its duplicate window). A folder is used by one collector at a
time (a lock file). At close, what is still in memory is written to the spool; without a spool
it is counted as lost and said on stderr.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import sys
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
    sending: bool = False
    attempts: int = 0
    queued_at: float = field(default_factory=time.monotonic)


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
        self._lock: IO[bytes] | None = None
        self.memory_bytes = 0
        self.memory_records = 0
        self.spool_bytes = 0
        self.spool_records = 0
        self.spooled_total = 0
        self.waits = 0
        self.waited = 0.0
        self.lost = 0
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
        return Entry(msg_id, subject, count, path.stat().st_size, path=path)

    def _spool(self, entry: Entry, payload: bytes) -> None:
        assert self.spool_dir is not None
        name = f"{time.time_ns():020d}-{entry.msg_id}"
        path = self.spool_dir / (name + _SUFFIX)
        tmp = self.spool_dir / (name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(f"{entry.msg_id} {entry.subject} {entry.count}\n".encode("ascii"))
            f.write(payload)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        entry.path = path
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
        """Queue an entry: in memory when there is room, else in the spool, else wait."""
        started = 0.0
        with self._cond:
            while True:
                if self._closed:
                    raise OutboxClosed("the NATS sink is closed")
                if self.memory_bytes + entry.size <= self.max_memory or not self._queue:
                    entry.payload = payload
                    self.memory_bytes += entry.size
                    self.memory_records += entry.count
                    break
                if self.spool_dir is not None and self.spool_bytes + entry.size <= self.max_spool:
                    self._spool(entry, payload)
                    break
                if not started:
                    started = time.monotonic()
                    self.waits += 1
                self._cond.wait(0.5)
            if started:
                self.waited += time.monotonic() - started
            self._queue.append(entry)
        if self.on_ready is not None:
            self.on_ready()

    def wait_acked(self, entries: list[Entry], timeout: float | None) -> None:
        """Block until every entry is acknowledged; `OutboxClosed`/`TimeoutError` otherwise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not all(e.acked for e in entries):
                if self._closed:
                    raise OutboxClosed("not published to JetStream before the sink closed")
                remaining = 1.0 if deadline is None else deadline - time.monotonic()
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
        """Spool what is in memory (or count it lost), release waiters, unlock the folder."""
        with self._cond:
            self._closed = True
            for entry in self._queue:
                if entry.payload is None:
                    continue
                payload = entry.payload
                self.memory_bytes -= entry.size
                self.memory_records -= entry.count
                if self.spool_dir is not None:
                    try:
                        self._spool(entry, payload)
                        continue
                    except OSError:
                        pass
                self.lost += entry.count
                entry.payload = None
            self._cond.notify_all()
        if self.lost:
            print(
                f"syslogkit: {self.lost} records not yet in JetStream were lost at close"
                " (no spool folder: --nats-spool)",
                file=sys.stderr,
            )
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
            "lost": self.lost,
        }
