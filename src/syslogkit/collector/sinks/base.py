"""What a sink is (`Sink`), and the optional capabilities the pipeline and the CLI look for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..record import Record

__all__ = ["CommitsInBackground", "HasStats", "Sink", "WaitsForRoom"]


@runtime_checkable
class Sink(Protocol):
    """A destination for records. All three methods are called from the pipeline's thread.

    `write` takes a batch; `flush` makes what was written durable (a commit); `close` flushes
    and releases the sink. An exception from `write` or `flush` marks the batch as failed: its
    callbacks get `False` (a RELP sender is answered with an error and sends again).
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
class HasStats(Protocol):
    """A sink with counters of its own (forwarding), shown in the collector's stats."""

    def stats(self) -> dict[str, Any]: ...


@runtime_checkable
class WaitsForRoom(Protocol):
    """A sink whose `write`/`flush` may wait for room (back-pressure, the NATS edge's outbox):
    `stop_waiting()` (the collector is stopping) makes it keep or count what comes instead, so
    that stopping is bounded."""

    def stop_waiting(self) -> None: ...
