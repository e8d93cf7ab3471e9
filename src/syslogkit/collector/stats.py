"""Counters of the collector, per listener and for the sink pipeline.

Each counter object is written by one thread only (a listener's by the thread that serves it,
the pipeline's by its writer thread); readers take a snapshot with `as_dict()`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["ListenerStats", "PipelineStats"]


class ListenerStats:
    """What one listener saw.

    `received` counts frames; each is counted once more as `parsed` (cleanly), `noted` (parsed,
    stored with a note: lenient or assumed fields, a framing note) or `unparsed` (not even a PRI
    could be read: stored raw); `framing` counts the framing faults by kind (truncated, ...);
    `dropped` counts, by reason, what was not stored and the connections the collector cut or
    refused (`refused` counts connections beyond the limit).
    """

    __slots__ = (
        "active",
        "bytes",
        "connections",
        "dropped",
        "framing",
        "noted",
        "parsed",
        "received",
        "refused",
        "unparsed",
        "url",
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.received = 0
        self.parsed = 0
        self.noted = 0
        self.unparsed = 0
        self.bytes = 0
        self.connections = 0
        self.active = 0
        self.refused = 0
        self.dropped: Counter[str] = Counter()
        self.framing: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "received": self.received,
            "parsed": self.parsed,
            "noted": self.noted,
            "unparsed": self.unparsed,
            "bytes": self.bytes,
            "connections": self.connections,
            "active": self.active,
            "refused": self.refused,
            "dropped": dict(self.dropped),
            "framing": dict(self.framing),
        }


class PipelineStats:
    """What the sinks were given and committed; `commit_seconds` sums, over the batches, the time
    from a batch's hand-over to the sinks until every sink committed it (`last_commit_seconds`:
    the latest one)."""

    __slots__ = (
        "batches",
        "commit_seconds",
        "committed",
        "errors",
        "last_commit_seconds",
        "last_error",
        "queued",
    )

    def __init__(self) -> None:
        self.queued = 0
        self.committed = 0
        self.batches = 0
        self.errors = 0
        self.last_error: str | None = None
        self.commit_seconds = 0.0
        self.last_commit_seconds = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "committed": self.committed,
            "batches": self.batches,
            "errors": self.errors,
            "last_error": self.last_error,
            "commit_seconds": self.commit_seconds,
            "last_commit_seconds": self.last_commit_seconds,
        }
