"""Counters of the collector, per listener and for the sink pipeline.

Each counter object is written by one thread only (a listener's by the thread that serves it,
the pipeline's by its writer thread); readers take a snapshot with `as_dict()`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["ListenerStats", "PipelineStats", "SinkStats"]


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
    the latest one). `errors` counts failed writes and commits (each is retried);
    `paused_seconds` how long the stream listeners were paused in all (past the pause under
    way); `not_stored` and `unanswered` what was given up at close with a sink still failing
    (records lost; records whose RELP or JetStream senders were never answered); `sinks` each
    sink's own counters."""

    __slots__ = (
        "batches",
        "commit_seconds",
        "committed",
        "errors",
        "last_commit_seconds",
        "last_error",
        "not_stored",
        "paused_seconds",
        "queued",
        "sinks",
        "unanswered",
    )

    def __init__(self) -> None:
        self.queued = 0
        self.committed = 0
        self.batches = 0
        self.errors = 0
        self.last_error: str | None = None
        self.commit_seconds = 0.0
        self.last_commit_seconds = 0.0
        self.paused_seconds = 0.0
        self.not_stored = 0
        self.unanswered = 0
        self.sinks: list[SinkStats] = []

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "committed": self.committed,
            "batches": self.batches,
            "errors": self.errors,
            "last_error": self.last_error,
            "commit_seconds": self.commit_seconds,
            "last_commit_seconds": self.last_commit_seconds,
            "paused_seconds": self.paused_seconds,
            "not_stored": self.not_stored,
            "unanswered": self.unanswered,
            "sinks": [sink.as_dict() for sink in self.sinks],
        }


class SinkStats:
    """One sink's lane in the pipeline: records it committed, records waiting for it, its
    failures (each retried), whether it is failing now and for how long it failed in all."""

    __slots__ = (
        "committed",
        "failing",
        "failing_seconds",
        "failures",
        "last_error",
        "name",
        "waiting",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.committed = 0
        self.waiting = 0
        self.failures = 0
        self.failing = False
        self.failing_seconds = 0.0
        self.last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "committed": self.committed,
            "waiting": self.waiting,
            "failures": self.failures,
            "failing": self.failing,
            "failing_seconds": self.failing_seconds,
            "last_error": self.last_error,
        }
