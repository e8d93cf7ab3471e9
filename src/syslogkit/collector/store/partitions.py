"""The store: a folder of SQLite files, one per period (partitions), read as one (`Store`).

Decisions:

- `Store(path)` names a folder. It holds `p<first id, 12 digits>.db` files: the ids of the
  messages go on from one file to the next (the first row of a new file is given the id after
  the last one of the file before), so a file's name says where its ids start, names sort in
  order of arrival, and a reader walks them as one store, newest first, stopping when the page
  is full. A message's id is its place in the whole store, as before.
- The newest file is **hot**: the only one written to (WAL; a batch is answered after its
  commit). It is sealed (checkpointed, out of WAL mode when no reader holds it, never written
  again) and a new one begun when it reaches the partition bound in bytes (WAL included,
  `partition_bytes`) or its period (`partition_seconds`), whichever comes first; a transaction
  that would take it past the bound begins the next one. A new file is made aside with its
  schema and renamed into place: a reader never meets a file without its tables. It is made
  and opened before the hot one is sealed: when it cannot be (a full disk) it is removed and the
  hot one stays as it was (open, written on), the transaction fails (`StoreError`) and the batch
  waits; the store opens all the same (the roll is tried before the next transaction).
- Retention deletes whole files, oldest first: by age, a file whose newest message is older than
  `max_age`; by size, while the folder's size (`du`: every file in it, WAL and side files
  included) plus what the hot file may still grow before it is sealed, or what the transaction
  about to begin adds at its height, is over `max_bytes`. So the folder stays at the cap (past
  it by a few percent at most: an FTS5 merge in a transaction is not foreseen) at any ingest
  rate: a deletion is one `unlink`, whatever the rate. The hot file is never deleted. The
  bound is a tenth of the cap and of the filesystem (at least 1 MiB, at most 256 MiB), so the
  store keeps about four fifths of the cap filled or more, and the free-space floor
  (`ensure_free`, `make_room`) can free room by deleting whole files on a small disk.
  What retention deleted is counted (`deleted`; `deleted_young`: deleted by the size cap while
  younger than `max_age`).
- The rollups are per file: a deleted file takes its counts with it, so they stay exact.
- One writer per store: the writer holds an exclusive `flock` on `writer.lock` in the folder
  while it is open (released by the kernel when its process dies); a second one fails.
- A store of an earlier version (one SQLite file at `path`) is read as it is; a writer that opens
  it makes it the oldest partition: checkpointed, renamed `<path>.partitioning`, the folder made
  at `path`, the file moved into it (a crash in between is finished on the next open).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from ..record import Record
from .db import Origin, StoreError, StoreFile, create_file
from .query import Filters
from .schema import make_row

__all__ = ["Store", "partition_bound", "partition_files", "partition_period"]

_NAME = re.compile(r"p(\d{12,})\.db")
_SIDE_FILES = ("-wal", "-shm", "-journal")
_ADOPTING = ".partitioning"
_LOCK = "writer.lock"
_NEW = ".new"
_MiB = 1 << 20
#: a partition's bound without a size cap, and its largest with one
_MAX_PARTITION = 256 * _MiB
_MIN_PARTITION = 1 * _MiB
#: a partition's longest period
_MAX_PERIOD = 3600.0
#: where a row made by `make_row` holds the raw bytes
_RAW = 14


def partition_bound(max_bytes: int | None, disk_bytes: int | None = None) -> int:
    """The size at which the hot partition is sealed: a tenth of the cap and of the
    filesystem that holds the store (so that deleting the oldest file frees room on a small
    disk too), within 1 MiB .. 256 MiB."""
    bound = _MAX_PARTITION
    for limit in (max_bytes, disk_bytes):
        if limit is not None:
            bound = min(bound, limit // 10)
    return max(_MIN_PARTITION, bound)


def partition_period(max_age: float | None) -> float:
    """The longest period of a partition: an hour, or a tenth of the age limit (at least 60 s)."""
    if max_age is None:
        return _MAX_PERIOD
    return max(60.0, min(_MAX_PERIOD, max_age / 10))


def _name(first_id: int) -> str:
    return f"p{first_id:012d}.db"


def _first_id(name: str) -> int | None:
    found = _NAME.fullmatch(name)
    return int(found.group(1)) if found else None


def _order(name: str) -> int:
    """Partitions sort by their first id (past 12 digits a name is longer, not later in text)."""
    return _first_id(name) or 0


def partition_files(path: str | Path) -> list[Path]:
    """The SQLite files of the store at `path`, oldest first: the partitions of a folder, or
    the file itself (a store of an earlier version). Missing: empty."""
    folder = Path(path)
    if folder.is_file():
        return [folder]
    try:
        names = [entry.name for entry in os.scandir(folder) if _NAME.fullmatch(entry.name)]
    except OSError:
        return []
    return [folder / name for name in sorted(names, key=_order)]


def _disk_bytes(entry: os.DirEntry[str]) -> int:
    """What a file takes on disk, as `du` counts it."""
    with contextlib.suppress(OSError):
        return entry.stat(follow_symlinks=False).st_blocks * 512
    return 0


class Store:
    """A syslogkit store: a folder of partitions read as one (see the module docstring).

    `Store(path)` opens (and creates) it for writing; `Store(path, readonly=True)` for reading
    only, which fails with `StoreError` when there is no store at `path`. Writes go through
    `insert()` and `commit()` from one thread; `retain()` deletes the oldest partitions beyond
    `max_age` seconds or `max_bytes` on disk, `make_room(n)` deletes the oldest until `n` bytes
    are freed. The read API (`query`, `iter_query`, `count`, `last_id`) covers every partition.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        synchronous: str = "NORMAL",
        max_age: float | None = None,
        max_bytes: int | None = None,
        check_same_thread: bool = False,
        partition_bytes: int | None = None,
        partition_seconds: float | None = None,
    ) -> None:
        self.path = str(path)
        self.readonly = readonly
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.partition_bytes = partition_bytes or partition_bound(max_bytes, _disk_size(path))
        self.partition_seconds = partition_seconds or partition_period(max_age)
        #: messages deleted by retention; of them, deleted by the size cap while younger than
        #: `max_age`; partitions deleted
        self.deleted = 0
        self.deleted_young = 0
        self.deleted_files = 0
        self._synchronous = synchronous
        self._check_same_thread = check_same_thread
        self._readers: dict[str, StoreFile] = {}
        self._info: dict[str, tuple[int, float]] = {}  # name -> (messages, newest arrival)
        self._hot: StoreFile | None = None
        self._lock: int | None = None
        self._hot_name = ""
        self._hot_since = 0.0
        # bytes on disk per raw byte received, measured on each sealed partition (a start
        # above the usual 3-4); the raw bytes in the hot partition; what the transaction about
        # to begin may add to the folder at its height (its pages in the WAL and in the file)
        self._ratio = 5.0
        self._hot_raw = 0
        self._incoming = 0
        self._hot_bytes = 0  # the hot partition's size after the last commit
        self._last_retain = 0.0
        if readonly:
            if not Path(self.path).exists():
                raise StoreError(f"no store at {self.path}")
            if Path(self.path).is_file():
                self._reader(Path(self.path))  # fails now when it is not a store
            elif not partition_files(self.path) and any(
                entry.name != _LOCK for entry in os.scandir(self.path)
            ):
                # an empty folder is a store being made: empty until its writer began
                raise StoreError(f"{self.path}: not a syslogkit store (no partition in it)")
            return
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
        self._open_folder()
        self._lock = _lock_writer(Path(self.path))
        try:
            for stale in Path(self.path).glob(f"*{_NEW}*"):  # a new partition a crash left
                stale.unlink()
            files = partition_files(self.path)
            if files:
                newest = files[-1]
                self._open_hot(newest.name, _first_id(newest.name) or 1)
                # a roll that cannot be made now (a full disk) is tried again before the
                # next transaction: the store opens all the same
                with contextlib.suppress(StoreError, sqlite3.Error, OSError):
                    self._maybe_seal(force=False)
            else:
                self._open_hot(_name(1), 1)
        except BaseException:
            self.close()
            raise

    # -- the folder --------------------------------------------------------------------------------

    def _open_folder(self) -> None:
        """Make the folder, adopting a store of an earlier version (one file) as it goes."""
        folder = Path(self.path)
        aside = Path(self.path + _ADOPTING)
        try:
            if folder.is_file():
                _checkpoint(folder)
                for suffix in ("", *_SIDE_FILES):
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(f"{folder}{suffix}", f"{aside}{suffix}")
            if not folder.is_dir():
                folder.mkdir()
            if aside.is_file():
                target = folder / _name(_lowest_id(aside))
                for suffix in _SIDE_FILES:  # the database last: a crash leaves it to adopt
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(f"{aside}{suffix}", f"{target}{suffix}")
                os.rename(aside, target)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc})") from exc

    def _open_hot(self, name: str, first_id: int) -> None:
        path = Path(self.path) / name
        made = not path.exists() and self._make_partition(path)
        try:
            self._hot = self._open_partition(path, first_id)
        except StoreError:
            if made:  # never a new, empty partition left as the newest
                _unlink_partition(path)
            raise
        self._hot_name = name
        self._hot_since = time.monotonic()

    def _make_partition(self, path: Path) -> bool:
        """A new partition file with its schema, made aside and renamed: a reader never sees
        a file without it. What an attempt on a full disk left is removed."""
        aside = Path(f"{path}{_NEW}")
        try:
            aside.unlink(missing_ok=True)
            create_file(aside)
            os.rename(aside, path)
        except (StoreError, OSError) as exc:
            with contextlib.suppress(OSError):
                aside.unlink(missing_ok=True)
            raise StoreError(f"{path}: cannot make the partition ({exc})") from exc
        return True

    def _open_partition(self, path: Path, first_id: int) -> StoreFile:
        return StoreFile(
            path,
            synchronous=self._synchronous,
            check_same_thread=self._check_same_thread,
            first_id=first_id,
        )

    def _sizes(self) -> tuple[dict[str, int], int]:
        """Bytes on disk per partition (its side files included), and the folder's total."""
        sizes: dict[str, int] = {}
        total = 0
        try:
            entries = list(os.scandir(self.path))
        except OSError:
            return sizes, 0
        for entry in entries:
            size = _disk_bytes(entry)
            total += size
            name = entry.name
            for suffix in _SIDE_FILES:
                name = name.removesuffix(suffix)
            if _NAME.fullmatch(name):
                sizes[name] = sizes.get(name, 0) + size
        return sizes, total

    def size(self) -> int:
        """The store's size on disk, as `du` of its folder says (WAL and side files included)."""
        if Path(self.path).is_file():
            return sum(
                os.stat(self.path + s).st_blocks * 512
                for s in ("", *_SIDE_FILES)
                if os.path.exists(self.path + s)
            )
        return self._sizes()[1]

    # -- writing -----------------------------------------------------------------------------------

    def _writable(self) -> StoreFile:
        if self._hot is None:
            if self.readonly:
                raise StoreError(f"{self.path}: opened read-only")
            self._reopen_hot()  # a seal that could not begin the next file (a full disk)
        assert self._hot is not None
        return self._hot

    def _reopen_hot(self) -> None:
        """Take the newest partition as the hot one again (it grows past its bound until a
        new one can be made)."""
        files = partition_files(self.path)
        if not files:
            self._open_hot(_name(1), 1)
            return
        newest = files[-1]
        self._open_hot(newest.name, _first_id(newest.name) or 1)

    def insert(self, records: Iterable[Record]) -> None:
        """Insert records in the current transaction (opened if needed), with the origins the
        records carry (`Record.origin`)."""
        records = list(records)
        origins = [o for r in records if (o := r.origin) is not None]
        self.insert_rows([make_row(record) for record in records], origins)

    def insert_rows(self, rows: Sequence[tuple[Any, ...]], origins: Sequence[Origin] = ()) -> None:
        """Insert rows made by `make_row` in the current transaction (opened if needed), with
        the JetStream `origins` of these rows (`StoreFile.insert_rows`: in the same
        transaction, in the hot partition); a transaction that would take the hot partition
        past its bound begins a new one."""
        raw = sum(map(len, map(itemgetter(_RAW), rows)))
        if rows and not self._writable().in_transaction:
            self._make_room_for(raw)
        self._writable().insert_rows(rows, origins)
        self._hot_raw += raw

    def has_origin(self, msg_id: str) -> bool:
        """Whether the records of the JetStream message `msg_id` are committed in the store:
        one lookup on the primary key of each partition's `origins`, newest first (a
        redelivery is of a recent message); a partition retention deleted took its origins."""
        return any(part.has_origin(msg_id) for part in reversed(self.files()))

    def _make_room_for(self, raw: int) -> None:
        """Before a transaction of `raw` bytes received: seal the hot partition when they would
        take it past its bound, and delete what the size cap needs so that the folder holds
        them at their height (in the WAL and copied into the file)."""
        incoming = int(self._ratio * raw)
        hot = self._writable()
        held = hot.last_id() >= hot.first_id
        if held and self._hot_bytes + incoming > self.partition_bytes:
            self._seal_now()
        self._incoming = 2 * incoming
        if self.max_bytes is not None:
            self.retain()

    def commit(self) -> None:
        """Commit what was inserted (after this the records survive a crash of the process),
        then seal the hot partition when it is full (and apply retention then)."""
        self._writable().commit()
        # committed: a seal that failed (a full disk) must not fail the batch (it would be sent
        # again, stored twice); the next batch begins the next file, or goes on in this one
        # (`_writable`)
        with contextlib.suppress(StoreError, sqlite3.Error, OSError):
            self._maybe_seal(force=False)

    def rollback(self) -> None:
        self._writable().rollback()

    def seal(self) -> None:
        """Seal the hot partition now (when it holds anything) and begin a new one."""
        self._writable().commit()
        self._maybe_seal(force=True)

    def _maybe_seal(self, *, force: bool) -> None:
        """After a commit: seal the hot partition when it is full or old enough."""
        self._incoming = 0
        sizes, _ = self._sizes()
        self._hot_bytes = sizes.get(self._hot_name, 0)
        full = self._hot_bytes >= self.partition_bytes
        old = time.monotonic() - self._hot_since >= self.partition_seconds
        if force or full or old:
            self._seal_now()

    def _seal_now(self) -> None:
        hot = self._writable()
        last = hot.last_id()
        if last < hot.first_id:  # empty: nothing to seal
            self._hot_since = time.monotonic()
            return
        info = _messages_and_newest(hot.connection)
        # the next partition is made and opened first: when it cannot be (a full disk), the
        # hot one stays as it was (open, written on) and the batch waits (`StoreError`)
        name, path = _name(last + 1), Path(self.path) / _name(last + 1)
        self._make_partition(path)
        try:
            following = self._open_partition(path, last + 1)
        except StoreError:
            _unlink_partition(path)
            raise
        self._info[self._hot_name] = info
        hot.close(seal=True)
        with contextlib.suppress(OSError):
            sealed = os.stat(hot.path).st_blocks * 512
            if self._hot_raw > 0:
                self._ratio = sealed / self._hot_raw
        self._hot_raw = 0
        self._hot, self._hot_name, self._hot_since = following, name, time.monotonic()
        self._hot_bytes = 0
        self.retain()

    def retain(self, now: float | None = None) -> int:
        """Delete the partitions beyond the limits, oldest first (never the hot one); returns
        how many messages went."""
        if self.max_age is None and self.max_bytes is None:
            return 0
        now = time.time() if now is None else now
        self._last_retain = time.monotonic()
        deleted = 0
        sizes, total = self._sizes()
        cutoff = None if self.max_age is None else now - self.max_age
        # what the hot partition may still grow before it is sealed (to its bound), or what the
        # transaction about to begin adds at its height, whichever is more
        hot = sizes.get(self._hot_name, 0)
        room = max(0, self.partition_bytes - hot, self._incoming)
        for name in sorted(sizes, key=_order):
            if name == self._hot_name:
                break
            _, newest = self._partition_info(name)
            by_age = cutoff is not None and newest < cutoff
            by_size = self.max_bytes is not None and total + room > self.max_bytes
            if not (by_age or by_size):
                break
            deleted += self._delete(name, cutoff)
            total -= sizes[name]
        return deleted

    def make_room(self, bytes_needed: int) -> int:
        """Delete the oldest partitions (never the hot one) until at least `bytes_needed` bytes
        of them are gone; returns how many messages went (counted as retention's)."""
        deleted = freed = 0
        sizes, _ = self._sizes()
        cutoff = None if self.max_age is None else time.time() - self.max_age
        for name in sorted(sizes, key=_order):
            if name == self._hot_name or freed >= bytes_needed:
                break
            deleted += self._delete(name, cutoff)
            freed += sizes[name]
        return deleted

    # -- the free-space floor (`syslogkit collect --min-free`, `writer.store_batch`) -------------

    def free_bytes(self) -> int:
        """Bytes free for this process on the store's filesystem."""
        st = os.statvfs(self.path)
        return int(st.f_bavail * st.f_frsize)

    def ensure_free(self, min_free: int) -> tuple[int, str | None]:
        """Keep `min_free` bytes free on the store's filesystem before writing: with a
        retention size set, delete the oldest partitions to make room (`make_room`). Returns
        (messages deleted, a line to tell or None); raises `StoreError` while the free space
        stays below the floor (nothing is written: the batch waits)."""
        free = self.free_bytes()
        if free >= 2 * min_free:
            return 0, None
        self._writable().checkpoint()  # the WAL's space back first
        free = self.free_bytes()
        if free >= min_free:
            return 0, None
        deleted = 0
        if self.max_bytes is not None:
            deleted = self.make_room(min_free - free)
            free = self.free_bytes()
        note = (
            f"store {self.path}: less than {min_free} bytes free: deleted the {deleted} oldest"
            f" messages to make room ({free} bytes free now)"
            if deleted
            else None
        )
        if free < min_free:
            raise StoreError(
                f"{free} bytes free for the store, below --min-free {min_free}:"
                " not writing until there is room"
                + (f" (deleted the {deleted} oldest messages)" if deleted else "")
            )
        return deleted, note

    def maybe_retain(self, interval: float = 5.0) -> int:
        """`retain()` at most once per `interval` seconds (sealing applies it too)."""
        if time.monotonic() - self._last_retain < interval:
            return 0
        return self.retain()

    def _partition_info(self, name: str) -> tuple[int, float]:
        """(messages, newest arrival time) of a sealed partition."""
        info = self._info.get(name)
        if info is None:
            uri = f"file:{(Path(self.path) / name).resolve()}?mode=ro"
            try:
                with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10.0)) as db:
                    info = _messages_and_newest(db)
            except sqlite3.Error:
                # not readable now: never old enough for the age limit (the size cap may
                # still delete it, its messages uncounted); asked again next time
                return 0, math.inf
            self._info[name] = info
        return info

    def _delete(self, name: str, cutoff: float | None) -> int:
        """Unlink a partition and its side files; count its messages."""
        count, newest = self._partition_info(name)
        young = 0
        if cutoff is not None and newest >= cutoff:
            young = _younger_than(Path(self.path) / name, cutoff)
        reader = self._readers.pop(str(Path(self.path) / name), None)
        if reader is not None:  # else its space stays taken while it is open
            reader.close()
        for suffix in ("", *_SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(Path(self.path) / f"{name}{suffix}")
        self._info.pop(name, None)
        self.deleted += count
        self.deleted_young += young
        self.deleted_files += 1
        return count

    # -- reading -----------------------------------------------------------------------------------

    def _reader(self, path: Path) -> StoreFile:
        key = str(path)
        reader = self._readers.get(key)
        if reader is None:
            reader = StoreFile(path, readonly=True, check_same_thread=self._check_same_thread)
            self._readers[key] = reader
        return reader

    def files(self) -> list[StoreFile]:
        """The partitions, oldest first, open for reading (the hot one through the writer's
        connection in a writing store); a partition deleted meanwhile is left out."""
        paths = partition_files(self.path)
        keep = {str(p) for p in paths}
        for key in [k for k in self._readers if k not in keep]:
            self._readers.pop(key).close()
        out: list[StoreFile] = []
        for path in paths:
            if self._hot is not None and path.name == self._hot_name:
                out.append(self._hot)
                continue
            try:
                out.append(self._reader(path))
            except StoreError:
                if path.exists():
                    raise
        return out

    def query(
        self,
        filters: Filters | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Record]:
        """The records that match, oldest first (or the newest first)."""
        return list(self.iter_query(filters, limit=limit, newest_first=newest_first))

    def iter_query(
        self,
        filters: Filters | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[Record]:
        """The records that match, partition after partition, stopping at `limit`."""
        files = self._after(self.files(), filters)
        left = limit
        for part in reversed(files) if newest_first else files:
            if left is not None and left <= 0:
                return
            for record in part.iter_query(filters, limit=left, newest_first=newest_first):
                yield record
                if left is not None:
                    left -= 1

    @staticmethod
    def _after(files: list[StoreFile], filters: Filters | None) -> list[StoreFile]:
        """Without the partitions whose ids all are at or below `filters.after_id`."""
        if filters is None or filters.after_id is None:
            return files
        after = filters.after_id
        keep = list(files)
        while len(keep) > 1:
            following = _first_id(Path(keep[1].path).name)
            if following is None or following - 1 > after:
                break
            keep.pop(0)
        return keep

    def count(self, filters: Filters | None = None) -> int:
        return sum(part.count(filters) for part in self._after(self.files(), filters))

    def last_id(self) -> int:
        """The id of the newest message (0: none)."""
        if self._hot is not None:  # the writer's: its hot partition says
            return max(self._hot.last_id(), self._hot.first_id - 1)
        for part in reversed(self.files()):
            last = part.last_id()
            if last:
                return last
            first = _first_id(Path(part.path).name)
            if first is not None and first > 1:
                return first - 1
        return 0

    def release(self) -> None:
        """Close the read-only connections to the partitions (reopened when next needed): a
        partition that retention deletes keeps its space on disk while a reader holds it."""
        readers, self._readers = self._readers, {}
        for reader in readers.values():
            reader.close()

    def close(self) -> None:
        """Commit and close the hot partition (it stays hot for the next writer) and the
        readers."""
        readers, self._readers = self._readers, {}
        for reader in readers.values():
            reader.close()
        hot, self._hot = self._hot, None
        if hot is not None:
            hot.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _disk_size(path: str | Path) -> int | None:
    """The size of the filesystem that holds (or will hold) the store."""
    for where in (Path(path), Path(path).parent):
        with contextlib.suppress(OSError):
            st = os.statvfs(where)
            return int(st.f_blocks * st.f_frsize)
    return None


def _unlink_partition(path: Path) -> None:
    """Remove a partition that was just made and could not be opened (and its side files)."""
    for suffix in ("", *_SIDE_FILES):
        with contextlib.suppress(OSError):
            os.unlink(f"{path}{suffix}")


def _lock_writer(folder: Path) -> int:
    """An exclusive lock on the store for this writer (a file descriptor), or `StoreError`."""
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(f"{folder}: another collector writes this store") from None
    return fd


def _messages_and_newest(db: sqlite3.Connection) -> tuple[int, float]:
    """A partition's message count and the arrival time of its newest message (ids follow
    arrival)."""
    row = db.execute(
        "SELECT count(*), (SELECT received_at FROM messages ORDER BY id DESC LIMIT 1) FROM messages"
    ).fetchone()
    return int(row[0]), float(row[1] or 0.0)


def _younger_than(path: Path, cutoff: float) -> int:
    uri = f"file:{path.resolve()}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10.0)) as db:
            row = db.execute(
                "SELECT count(*) FROM messages WHERE received_at >= ?", (cutoff,)
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


def _checkpoint(path: Path) -> None:
    """Fold a single-file store's WAL into it before it is moved."""
    with contextlib.closing(sqlite3.connect(str(path), timeout=30.0)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _lowest_id(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(str(path), timeout=30.0)) as db:
        row = db.execute("SELECT min(id) FROM messages").fetchone()
    return int(row[0] or 1)
