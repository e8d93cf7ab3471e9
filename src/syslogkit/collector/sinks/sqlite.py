"""Records into the SQLite store (`collector.store`), in the collector's process or in a writer
process of its own.

Decisions:

- A batch goes in through `store.store_batch` either way (one rule: the free-space floor,
  insert, commit, then retention, whose errors are told and never fail a committed batch).
- The free-space floor: `min_free=None` means 1% of the store's filesystem, within 16 MB (a
  batch of 5,000 records grows SQLite's write-ahead log by a few MB, and it must fit) and
  100 MB, and at most 10% of a small filesystem (`default_min_free`); 0 turns it off.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..record import Record
from ..store import Store, StoreProcess, make_row
from ..store.db import Origin
from ..store.writer import store_batch
from .base import tell_stderr

__all__ = [
    "MIN_FREE_CAP",
    "MIN_FREE_LOW",
    "MIN_FREE_MOST",
    "MIN_FREE_SHARE",
    "SQLiteSink",
    "default_min_free",
]

#: the default free-space floor: MIN_FREE_SHARE of the filesystem, at least MIN_FREE_LOW (one
#: batch's growth of the write-ahead log fits with room to spare) and at most MIN_FREE_CAP;
#: never more than MIN_FREE_MOST of a small filesystem
MIN_FREE_SHARE = 0.01
MIN_FREE_LOW = 16 * 1024 * 1024
MIN_FREE_CAP = 100 * 1024 * 1024
MIN_FREE_MOST = 0.10


def default_min_free(path: str | Path) -> int:
    """1% of the filesystem that holds `path`, within 16 MB..100 MB, at most 10% of it."""
    folder = Path(path).resolve().parent
    st = os.statvfs(folder)
    size = st.f_blocks * st.f_frsize
    floor = min(MIN_FREE_CAP, max(MIN_FREE_LOW, int(size * MIN_FREE_SHARE)))
    return min(floor, int(size * MIN_FREE_MOST))


class SQLiteSink:
    """Records into a `Store` (one transaction per batch), with retention applied periodically.

    `process=True` runs SQLite in a child process (`StoreProcess`): the rows are built here and
    the inserting, indexing and committing happen beside the collector's parsing, not in turn
    with it under the GIL; `syslogkit collect` does this. `tell` gets the lines for the
    operator (a restarted writer, room made below the floor, a retention error, and, at most
    once per `tell_interval` seconds, how many messages younger than `max_age` the size cap
    deleted: the cap is too small for the traffic).
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
        min_free: int | None = 0,
        tell: Callable[[str], None] = tell_stderr,
        tell_interval: float = 60.0,
    ) -> None:
        self.writer: StoreProcess | None = None
        self.store: Store | None = None
        self.tell = tell
        self._tell_interval = tell_interval
        self._told_young = 0
        self._told_at = time.monotonic()
        self._rows: list[tuple[Any, ...]] = []
        self._origins: list[Origin] = []  # of the JetStream messages in `_rows`
        self.retention_errors = 0
        if isinstance(path, Store):
            self.store = path
            self.path = path.path
            self.min_free = default_min_free(self.path) if min_free is None else min_free
        else:
            self.path = str(path)
            self.min_free = default_min_free(self.path) if min_free is None else min_free
            if process:
                self.writer = StoreProcess(
                    path,
                    max_age=max_age,
                    max_bytes=max_bytes,
                    synchronous=synchronous,
                    retain_interval=retain_interval,
                    min_free=self.min_free,
                    tell=tell,
                )
            else:
                self.store = Store(
                    path, max_age=max_age, max_bytes=max_bytes, synchronous=synchronous
                )
        self.retain_interval = retain_interval

    @property
    def label(self) -> str:
        return f"store {self.path}"

    def write(self, records: Sequence[Record]) -> None:
        self._rows.extend(make_row(r) for r in records)
        self._origins.extend(o for r in records if (o := r.origin) is not None)

    def flush(self) -> None:
        if self.writer is not None:
            self.flush_start()()
            return
        assert self.store is not None
        rows, self._rows = self._rows, []
        origins, self._origins = self._origins, []
        notes, retention_failed = store_batch(
            self.store,
            rows,
            origins,
            min_free=self.min_free,
            retain_interval=self.retain_interval,
        )
        self.retention_errors += retention_failed
        for note in notes:
            self.tell(note)
        self._tell_young()

    def flush_start(self) -> Callable[[], None]:
        """Send the batch to the writer process; the returned function waits for its commit."""
        if self.writer is None:
            self.flush()
            return _nothing
        rows, self._rows = self._rows, []
        origins, self._origins = self._origins, []
        if not rows:
            return _nothing
        wait = self.writer.start(rows, origins)

        def committed() -> None:
            wait()
            self._tell_young()

        return committed

    def stats(self) -> dict[str, Any]:
        """Messages deleted by retention (of them, by the size cap while younger than
        `max_age`), retention errors, writer restarts, the floor."""
        if self.writer is not None:
            deleted, errors = self.writer.deleted, self.writer.retention_errors
            young, restarts = self.writer.deleted_young, self.writer.restarts
        else:
            assert self.store is not None
            deleted, errors, restarts = self.store.deleted, self.retention_errors, 0
            young = self.store.deleted_young
        return {
            "retention_deleted": deleted,
            "retention_deleted_young": young,
            "retention_errors": errors,
            "writer_restarts": restarts,
            "min_free": self.min_free,
        }

    def _tell_young(self, *, final: bool = False) -> None:
        """One line when the size cap deleted messages younger than `max_age` (at most once
        per interval; the rest at close)."""
        young = int(self.stats()["retention_deleted_young"])
        now = time.monotonic()
        if young <= self._told_young or (not final and now - self._told_at < self._tell_interval):
            return
        self.tell(
            f"store {self.path}: the size cap deleted {young - self._told_young} messages"
            f" younger than the retention age in the last {now - self._told_at:.0f} s"
            f" ({young} in all): the cap is too small for the traffic"
        )
        self._told_young, self._told_at = young, now

    def close(self) -> None:
        if self._rows:
            self.flush()
        if self.writer is not None:
            self.writer.close()
        elif self.store is not None:
            self.store.close()
        self._tell_young(final=True)


def _nothing() -> None:
    pass
