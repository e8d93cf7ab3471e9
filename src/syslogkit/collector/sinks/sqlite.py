"""Records into the SQLite store (`collector.store`), in the collector's process or in a writer
process of its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..record import Record
from ..store import Store, StoreProcess, make_row

__all__ = ["SQLiteSink"]


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

    def flush_start(self) -> Callable[[], None]:
        """Send the batch to the writer process; the returned function waits for its commit."""
        if self.writer is None:
            self.flush()
            return _nothing
        rows, self._rows = self._rows, []
        origins, self._origins = self._origins, []
        if not rows:
            return _nothing
        return self.writer.start(rows, origins)

    def close(self) -> None:
        if self.writer is not None:
            self.flush()
            self.writer.close()
        elif self.store is not None:
            self.store.close()


def _nothing() -> None:
    pass
