"""The store: `partitions` (`Store`: a folder of SQLite files, one per period, written, retained
and read as one), `db` (`StoreFile`: one such file), `schema` (table, indexes, full-text index;
a record as a row and back), `query` (`Filters`), `rollup` (per-minute counts by severity, host
and app, kept with the inserts, per file), `writer` (`StoreProcess`: the writing side in a
child process)."""

from .db import Origin, StoreError, StoreFile
from .partitions import Store, partition_files
from .query import Filters
from .schema import make_row
from .writer import StoreProcess

__all__ = [
    "Filters",
    "Origin",
    "Store",
    "StoreError",
    "StoreFile",
    "StoreProcess",
    "make_row",
    "partition_files",
]
