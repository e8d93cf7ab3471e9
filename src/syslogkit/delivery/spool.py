"""Disk spool: records kept on disk while the collector is unreachable, replayed in order later.

Threads: one lock, `Spool.lock` (reentrant). Every public method takes it, so each call is
atomic: the background writer reads, commits and rewinds while an application thread appends
(a caller moving a full queue to disk while the writer is stuck in a write). A sequence of
calls that must be atomic with respect to the in-memory queue (look whether records are
unread, then take from the queue; or empty the queue into the spool) holds `lock` around it:
the delivery does (`syslogkit.delivery.background`). The lock is never held across network
I/O, only across disk I/O (a `write()` per append, a `pread()` per read; scanning another
process's segments for adoption happens outside it).

Layout of `spool_dir`, shared by any number of processes (gunicorn workers, the next run of the
same application):

- `<owner>.lock`: held with `fcntl.flock(LOCK_EX)` by the live process (one handler) that
  writes segments under the name `<owner>`; created under a temporary name and renamed into
  place while already locked, so a visible lock file that can be locked belongs to nobody.
- `<owner>.<seq>.seg`: segments, written by their owner only, in sequence order.

`<owner>` starts with the creation time in hex, so sorting names sorts owners by age.

The segment file format (records with a length and a crc, so that a torn tail after a crash is
found and skipped, counted as `dropped_torn`; two commit slots holding the offset up to which
records were delivered) is `syslogkit.delivery.segment`; this module is the directory of
segments: who owns which, reading them in order, committing, bounding and adopting them.

A process adopts the segments of an owner whose lock it can take (the owner died or exited
with records left) and keeps that lock until it has replayed them: two processes never replay
the same segment, and an adopter that dies hands the rest (from the last commit) to the next.

Records reach the disk with one `write()` per batch (safe against the process crashing); the
file is fsync'ed when a segment is full and on close, or on every append with `fsync=True`
(safe against the machine crashing too).

`max_bytes` bounds the segment files this spool keeps (its own and those it adopted). When an
append would pass it, the oldest whole segments are dropped and their undelivered records
counted (`dropped_spool_full`); a batch that still does not fit is dropped itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

from syslogkit.delivery.segment import FLAG_SENT, HEADER, RECORD_HEAD, Segment, record_head

__all__ = ["FLAG_SENT", "HEADER", "Spool", "Ticket"]


@dataclass(frozen=True, slots=True)
class Ticket:
    """Where a record read from the spool ends: commit it once it is delivered."""

    segment: Segment
    end: int


#: One record read back: payload, its ticket, and whether it had been written before.
Item = tuple[bytes, Ticket, bool]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(method: Callable[Concatenate[Spool, _P], _R]) -> Callable[Concatenate[Spool, _P], _R]:
    """Run a `Spool` method holding `spool.lock` (see the module docstring)."""

    @functools.wraps(method)
    def run(self: Spool, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.lock:
            return method(self, *args, **kwargs)

    return run


class Spool:
    """A disk spool in `directory` for one handler (see the module docstring)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 64 * 1024 * 1024,
        segment_bytes: int | None = None,
        fsync: bool = False,
        drop: Callable[[str, int], None] | None = None,
        adopt_interval: float = 30.0,
    ) -> None:
        if max_bytes < 4096:
            raise ValueError("spool_max_bytes must be at least 4096")
        self.directory = os.fspath(directory)
        self.max_bytes = int(max_bytes)
        self.segment_bytes = segment_bytes or max(4096, min(4 * 1024 * 1024, max_bytes // 8))
        self.fsync = fsync
        self._drop = drop if drop is not None else (lambda reason, n: None)
        self.adopt_interval = adopt_interval
        self._pid = os.getpid()
        self._owner: str | None = None
        self._lock_fd: int | None = None
        self._next_seq = 1
        self._active: Segment | None = None
        self._segments: list[Segment] = []  # read order: adopted first, then our own
        self._adopted_locks: dict[str, int] = {}  # owner -> lock fd
        self._bytes = 0  # file bytes of the segments in _segments
        self._next_adopt = 0.0
        self.closed = False
        #: held by every method; hold it around calls that must be atomic together
        self.lock = threading.RLock()

    # -- state ---------------------------------------------------------------------------------

    @_locked
    def unread(self) -> bool:
        """True when records wait to be read (sent)."""
        return any(s.read < s.size for s in self._segments)

    @_locked
    def pending(self) -> bool:
        """True when records wait to be delivered (read or not)."""
        return any(s.committed < s.size for s in self._segments)

    @_locked
    def pending_records(self) -> int:
        """Records not yet delivered."""
        return sum(s.records - s.committed_records for s in self._segments)

    @property
    def size(self) -> int:
        """Bytes of segment files kept."""
        return self._bytes

    @property
    def owner(self) -> str | None:
        """This spool's owner name (None until it first wrote)."""
        return self._owner

    # -- writing -------------------------------------------------------------------------------

    @_locked
    def append(self, payloads: Sequence[bytes], flags: Sequence[int] | int = 0) -> int:
        """Append records (after the ones already spooled); returns how many were kept.

        Raises OSError when the directory cannot be written (the caller counts the records).
        """
        if not payloads:
            return 0
        if self.closed:
            raise OSError("the spool is closed")
        parts: list[bytes] = []
        for index, payload in enumerate(payloads):
            flag = flags if isinstance(flags, int) else flags[index]
            parts.append(record_head(payload, flag))
            parts.append(payload)
        # write in pieces that fit a segment each, rotating between them
        kept = 0
        start = 0
        count = len(payloads)
        while start < count:
            segment = self._writable()
            room = max(self.segment_bytes - segment.size, 0)
            end = start
            size = 0
            while end < count:
                n = len(parts[2 * end]) + len(parts[2 * end + 1])
                if end > start and size + n > room:
                    break
                size += n
                end += 1
            if not self._make_room(size, segment):
                self._drop("spool_full", count - start)
                return kept
            data = b"".join(parts[2 * start : 2 * end])
            self._write_at(segment, data)
            segment.records += end - start
            kept += end - start
            start = end
            if segment.size >= self.segment_bytes:
                self._rotate()
        return kept

    def _write_at(self, segment: Segment, data: bytes) -> None:
        segment.append(data, fsync=self.fsync)
        self._bytes += len(data)

    def _writable(self) -> Segment:
        if self._active is None:
            self._ensure_owner()
            assert self._owner is not None
            seq = self._next_seq
            self._next_seq += 1
            path = os.path.join(self.directory, f"{self._owner}.{seq:08d}.seg")
            segment = Segment.create(path, self._owner, seq)
            self._segments.append(segment)
            self._bytes += HEADER
            self._active = segment
        return self._active

    def _rotate(self) -> None:
        segment = self._active
        self._active = None
        if segment is not None:
            with contextlib.suppress(OSError):
                os.fsync(segment.fd)

    def _make_room(self, size: int, keep: Segment) -> bool:
        """Drop the oldest segments until `size` more bytes fit; False when they cannot."""
        while self._bytes + size > self.max_bytes:
            victim = next((s for s in self._segments if s is not keep), None)
            if victim is None:
                return False
            lost = victim.records - victim.committed_records
            if lost:
                self._drop("spool_full", lost)
            self._remove(victim)
        return True

    def _ensure_owner(self) -> None:
        if self._owner is not None:
            return
        os.makedirs(self.directory, exist_ok=True)
        owner = f"{time.time_ns():016x}-{os.getpid()}-{secrets.token_hex(4)}"
        temp = os.path.join(self.directory, f".{owner}.lock.tmp")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temp, os.path.join(self.directory, f"{owner}.lock"))
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._owner = owner
        self._lock_fd = fd

    # -- reading and committing ----------------------------------------------------------------

    @_locked
    def read(self, max_bytes: int, max_records: int | None = None) -> list[Item]:
        """Records not yet handed out, oldest first, up to about `max_bytes` (at least one)."""
        out: list[Item] = []
        budget = max_bytes
        for segment in self._segments:
            while segment.read < segment.size and budget > 0:
                if max_records is not None and len(out) >= max_records:
                    return out
                records = segment.next_records(budget)
                if not records:  # cannot happen for a scanned segment; stop safely
                    self._drop("torn", 1)
                    segment.size = segment.read
                    break
                if max_records is not None:
                    records = records[: max_records - len(out)]
                for payload, rec_end, flags in records:
                    out.append(
                        (
                            payload,
                            Ticket(segment, rec_end),
                            bool(flags & FLAG_SENT) or rec_end <= segment.hwm,
                        )
                    )
                    budget -= len(payload) + RECORD_HEAD
                    segment.read = rec_end
                    if budget <= 0:
                        break
            if budget <= 0:
                break
        return out

    @_locked
    def commit(self, ticket: Ticket, records: int = 1) -> None:
        """The records up to `ticket` (`records` of them since the last commit) are delivered."""
        segment = ticket.segment
        if segment.dead or ticket.end <= segment.committed:
            return
        segment.commit(ticket.end, records)
        if segment.committed >= segment.size and segment is not self._active:
            self._remove(segment)
        elif segment is self._active and segment.committed >= segment.size:
            # fully delivered and nothing after it: start afresh next time
            self._active = None
            self._remove(segment)

    @_locked
    def commit_many(self, tickets: Sequence[Ticket]) -> None:
        """Commit delivered records given in delivery order (one commit per segment)."""
        if not tickets:
            return
        last = tickets[0]
        count = 0
        for ticket in tickets:
            if ticket.segment is not last.segment:
                self.commit(last, count)
                count = 0
            last = ticket
            count += 1
        self.commit(last, count)

    @_locked
    def written(self, tickets: Sequence[Ticket]) -> None:
        """These records went out on a connection: read again after a rewind, they are
        flagged as written before (counted as `resent`, not `replayed`)."""
        for ticket in tickets:
            segment = ticket.segment
            if ticket.end > segment.hwm:
                segment.hwm = ticket.end

    @_locked
    def rewind(self) -> None:
        """Hand out again every record not committed (after a broken connection)."""
        for segment in self._segments:
            segment.read = segment.committed

    def _remove(self, segment: Segment) -> None:
        segment.dead = True
        if segment in self._segments:
            self._segments.remove(segment)
            self._bytes -= segment.size
        if segment is self._active:
            self._active = None
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        with contextlib.suppress(OSError):
            os.unlink(segment.path)
        owner = segment.owner
        if owner in self._adopted_locks and not any(s.owner == owner for s in self._segments):
            self._release_adopted(owner, unlink=True)

    # -- adopting what dead processes left -----------------------------------------------------

    @property
    def scanned(self) -> bool:
        """True once `adopt()` looked at the directory (in this process)."""
        return self._next_adopt > 0.0

    def adopt_due(self, now: float | None = None) -> bool:
        """True when it is time to look for segments left by dead processes."""
        return (time.monotonic() if now is None else now) >= self._next_adopt

    def adopt(self) -> int:
        """Take over segments whose owner is gone; returns the records adopted.

        Called by the writer only. Files are scanned outside `lock` (a long scan never holds
        up a caller that appends); the segments found join the read order under it.
        """
        self._next_adopt = time.monotonic() + self.adopt_interval
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        owners: dict[str, list[tuple[int, str]]] = {}
        for name in names:
            if name.startswith("."):
                continue
            if name.endswith(".seg"):
                owner, _, seq_text = name[:-4].rpartition(".")
                if owner and seq_text.isdigit():
                    owners.setdefault(owner, []).append((int(seq_text), name))
            elif name.endswith(".lock"):
                owners.setdefault(name[:-5], [])
        adopted = 0
        for owner in sorted(owners):
            with self.lock:
                known = owner == self._owner or owner in self._adopted_locks
            if not known:
                adopted += self._adopt_owner(owner, sorted(owners[owner]))
        return adopted

    def _adopt_owner(self, owner: str, segments: list[tuple[int, str]]) -> int:
        lock_path = os.path.join(self.directory, f"{owner}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return 0  # its owner (or another adopter) is alive
        # list again under the file lock: a previous adopter may have finished meanwhile
        scanned: list[Segment] = []
        for seq, name in segments:
            path = os.path.join(self.directory, name)
            if not os.path.exists(path):
                continue
            segment = Segment.scan(path, owner, seq, lambda: self._drop("torn", 1))
            if segment is None:
                continue
            if segment.committed >= segment.size:
                segment.dead = True
                with contextlib.suppress(OSError):
                    os.close(segment.fd)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            scanned.append(segment)
        with self.lock:
            self._adopted_locks[owner] = fd
            if self.closed:  # closed meanwhile: leave the files to the next process
                for segment in scanned:
                    segment.dead = True
                    with contextlib.suppress(OSError):
                        os.close(segment.fd)
                self._release_adopted(owner, unlink=False)
                return 0
            adopted = 0
            insert_at = sum(1 for s in self._segments if s.owner in self._adopted_locks)
            for segment in scanned:
                self._segments.insert(insert_at, segment)
                insert_at += 1
                self._bytes += segment.size
                adopted += segment.records - segment.committed_records
            if not scanned:
                self._release_adopted(owner, unlink=True)
        return adopted

    def _release_adopted(self, owner: str, *, unlink: bool) -> None:
        fd = self._adopted_locks.pop(owner, None)
        if fd is None:
            return
        if unlink:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, f"{owner}.lock"))
        with contextlib.suppress(OSError):
            os.close(fd)

    # -- life cycle ----------------------------------------------------------------------------

    @_locked
    def close(self) -> None:
        """Sync and close; undelivered segments stay for the next run (or another process)."""
        if self.closed:
            return
        self.closed = True
        for segment in list(self._segments):
            if segment.committed >= segment.size:
                self._remove(segment)
                continue
            with contextlib.suppress(OSError):
                os.fsync(segment.fd)
            with contextlib.suppress(OSError):
                os.close(segment.fd)
        self._segments.clear()
        self._active = None
        for owner in list(self._adopted_locks):
            self._release_adopted(owner, unlink=False)
        if self._lock_fd is not None and self._owner is not None:
            left = any(
                name.startswith(self._owner + ".") and name.endswith(".seg")
                for name in _listdir(self.directory)
            )
            if not left:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, f"{self._owner}.lock"))
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
        self._lock_fd = None

    def after_fork_in_child(self) -> None:
        """In a forked child: let go of the parent's files (its locks stay the parent's)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.lock = threading.RLock()  # a parent's thread may have held it at fork()
        for segment in self._segments:
            segment.dead = True
            with contextlib.suppress(OSError):
                os.close(segment.fd)
        self._segments = []
        self._active = None
        for fd in self._adopted_locks.values():
            with contextlib.suppress(OSError):
                os.close(fd)  # the lock lives on in the parent's descriptor
        self._adopted_locks = {}
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
        self._lock_fd = None
        self._owner = None
        self._next_seq = 1
        self._bytes = 0
        self._next_adopt = 0.0
        self.closed = False


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []
