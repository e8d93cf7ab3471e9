"""The SQLite store: `schema` (table, indexes, full-text index; a record as a row and back),
`query` (`Filters`), `db` (`Store`: writing, retention, reading), `rollup` (per-minute counts by
severity, host and app, kept with the inserts), `writer` (`StoreProcess`: the writing side in a
child process)."""

from .db import Store, StoreError
from .query import Filters
from .schema import make_row
from .writer import StoreProcess

__all__ = ["Filters", "Store", "StoreError", "StoreProcess", "make_row"]
