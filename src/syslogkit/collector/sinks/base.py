"""What a sink is (`Sink`), and the optional capabilities the pipeline and the CLI look for."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..record import Record

__all__ = [
    "CommitsInBackground",
    "HasStats",
    "HoldsWhatItTook",
    "Named",
    "Reopens",
    "Sink",
    "WaitsForRoom",
    "sink_name",
    "tell_stderr",
]


@runtime_checkable
class Sink(Protocol):
    """A destination for records. All three methods are called from the pipeline's thread.

    `write` takes a batch; `flush` makes what was written durable (a commit); `close` flushes
    and releases the sink. An exception from `write` or `flush` fails the batch for this sink:
    the pipeline writes the same batch again later (so a sink undoes a failed batch's partial
    writes before it raises), and queues the later batches behind it.
    """

    def write(self, records: Sequence[Record]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class CommitsInBackground(Protocol):
    """A sink that commits beside the pipeline: `flush_start()` starts the commit of what was
    written and returns the function that waits for it (the pipeline writes the next batch
    meanwhile)."""

    def flush_start(self) -> Callable[[], None]: ...


@runtime_checkable
class HoldsWhatItTook(Protocol):
    """A sink that commits in the background and keeps a batch it took even when waiting for
    its commit failed (the edge's outbox publishes it later): the pipeline never writes such a
    batch again (it would be published twice); its callbacks get False instead (a RELP session
    is closed unanswered and its sender sends again: at least once)."""

    holds_what_it_took: bool


@runtime_checkable
class HasStats(Protocol):
    """A sink with counters of its own (forwarding), shown in the collector's stats."""

    def stats(self) -> dict[str, Any]: ...


@runtime_checkable
class Reopens(Protocol):
    """A sink that writes a file and opens it again on request (SIGHUP, after logrotate renamed
    it): called from the pipeline's thread between two batches."""

    def reopen(self) -> None: ...


@runtime_checkable
class Named(Protocol):
    """A sink that names itself for the operator's lines (`store s.db`, `jsonl out.jsonl`)."""

    @property
    def label(self) -> str: ...


def sink_name(sink: object) -> str:
    """How the operator's lines and the stats name a sink."""
    return sink.label if isinstance(sink, Named) else type(sink).__name__


def tell_stderr(line: str) -> None:
    """The default way the pipeline and the sinks tell the operator: one line on stderr."""
    print(line, file=sys.stderr, flush=True)


@runtime_checkable
class WaitsForRoom(Protocol):
    """A sink whose `write`/`flush` may wait for room (back-pressure, the NATS edge's outbox):
    `stop_waiting()` (the collector is stopping) makes it keep or count what comes instead, so
    that stopping is bounded."""

    def stop_waiting(self) -> None: ...
