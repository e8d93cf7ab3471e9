"""What `Store.query` selects (`Filters`), as SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..record import NOTED, PARSED, UNPARSED

__all__ = ["Filters"]

#: `Filters.status` -> the SQL that selects it: the split of `Record.status`
_STATUS = {
    PARSED: "error IS NULL",
    NOTED: "error IS NOT NULL AND facility IS NOT NULL",
    UNPARSED: "error IS NOT NULL AND facility IS NULL",
}


@dataclass
class Filters:
    """What `Store.query` selects. Every filter that is set must match.

    `severity` keeps messages at or above that importance (rsyslog's `*.warning`: emerg ..
    warning, i.e. numerically <= 4). `since`/`until` bound the message time (its timestamp, or
    the time it was received when it had none), as epoch seconds. `search` is an FTS5 query on
    the message text (a plain word or phrase works as is). `status` keeps one part of the split
    of `Record.status` ("parsed", "noted", "unparsed"); `errors_only` keeps every record with
    a note (noted and unparsed).
    """

    since: float | None = None
    until: float | None = None
    hosts: Sequence[str] = ()
    apps: Sequence[str] = ()
    severity: int | None = None
    facilities: Sequence[int] = ()
    search: str | None = None
    errors_only: bool = False
    status: str | None = None
    transports: Sequence[str] = ()
    after_id: int | None = None
    extra_where: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.after_id is not None:
            clauses.append("id > ?")
            args.append(self.after_id)
        if self.since is not None:
            if not self.search:
                # where the rows of `since` begin, from the time index: a scan in id order
                # (the first page, oldest first) starts there instead of at the oldest row
                # (1M rows, the last hour: 260 -> 40 ms). Not with a search, which reads the
                # full-text matches in id order already.
                clauses.append(
                    "id >= (SELECT min(id) FROM messages INDEXED BY messages_time WHERE time >= ?)"
                )
                args.append(self.since)
            clauses.append("time >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("time < ?")
            args.append(self.until)
        for column, values in (
            ("hostname", self.hosts),
            ("app_name", self.apps),
            ("facility", self.facilities),
            ("transport", self.transports),
        ):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        if self.severity is not None:
            clauses.append("severity <= ?")
            args.append(int(self.severity))
        if self.errors_only:
            clauses.append("error IS NOT NULL")
        if self.status is not None:
            if self.status not in _STATUS:
                raise ValueError(f"status must be one of {', '.join(_STATUS)}, not {self.status!r}")
            clauses.append(_STATUS[self.status])
        if self.search:
            clauses.append("id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)")
            args.append(self.search)
        for clause, clause_args in self.extra_where:
            clauses.append(clause)
            args.extend(clause_args)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args
