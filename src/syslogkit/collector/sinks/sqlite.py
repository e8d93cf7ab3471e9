"""Records into the SQLite store (`collector.store`), in the collector's process or in a writer
process of its own."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ..record import Record
from ..store import Store, StoreProcess, make_row

__all__ = ["SQLiteSink"]


class SQLiteSink:
    """Records into a `Store` (one transaction per batch), with retention applied periodically.

    `process=True` runs SQLite in a child process (`StoreProcess`): the rows are built here and
    the inserting, indexing and committing happen beside the collector's parsing, not in turn
    with it under the GIL; `syslogkit collect` does this.

    What retention deleted is counted (`retention()`); when the size cap deleted messages
    younger than `max_age`, one line says how many, at most once per `tell_interval` seconds
    (on `tell`, stderr by default): the cap is too small for the traffic.
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
        tell: IO[str] | None = None,
        tell_interval: float = 60.0,
    ) -> None:
        self.writer: StoreProcess | None = None
        self.path = str(path.path if isinstance(path, Store) else path)
        self.max_age = max_age
        self._tell = tell
        self._tell_interval = tell_interval
        self._told_young = 0
        self._told_at = time.monotonic()
        self.store: Store | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._origins: list[tuple[str, int]] = []  # of the JetStream messages in `_rows`
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
            self._origins.extend(o for r in records if (o := r.origin) is not None)
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

    def make_room(self, bytes_needed: int) -> int:
        """Delete the store's oldest partitions until `bytes_needed` bytes are freed (never
        the one being written); returns how many messages went (counted in `retention()`)."""
        if self.writer is not None:
            deleted = self.writer.make_room(bytes_needed)
        else:
            assert self.store is not None
            deleted = self.store.make_room(bytes_needed)
        self._tell_young()
        return deleted

    def retention(self) -> dict[str, int]:
        """What retention deleted: `deleted` messages, of them `deleted_young` by the size
        cap while younger than `max_age`."""
        source: Store | StoreProcess | None = self.writer or self.store
        if source is None:
            return {"deleted": 0, "deleted_young": 0}
        return {"deleted": source.deleted, "deleted_young": source.deleted_young}

    def _tell_young(self, *, final: bool = False) -> None:
        """One line when the size cap deleted messages younger than `max_age` (at most once
        per interval; the rest at close)."""
        young = self.retention()["deleted_young"]
        now = time.monotonic()
        if young <= self._told_young or (not final and now - self._told_at < self._tell_interval):
            return
        seconds = now - self._told_at
        print(
            f"store {self.path}: the size cap deleted {young - self._told_young} messages younger"
            f" than the retention age in the last {seconds:.0f} s ({young} in all): the cap"
            " is too small for the traffic",
            file=self._tell or sys.stderr,
            flush=True,
        )
        self._told_young, self._told_at = young, now

    def close(self) -> None:
        if self.writer is not None:
            self.flush()
            self.writer.close()
        elif self.store is not None:
            self.store.close()
        self._tell_young(final=True)


def _nothing() -> None:
    pass
