"""Helpers shared by the tests that run syslogkit's collector (in a thread or a subprocess).

`wait_for()` polls until a condition holds and fails the test when it does not in time.
`stored()` and `wait_stored()` read what a collector put into its SQLite store. `Capture` is a
collector sink that keeps the records in memory. `collector_tls()` is the collector's TLS
configuration from the `pki` fixture's server certificate. `EVENT_LOOPS` are the loops the
collector runs on (the `loop_factory` fixture gives each in turn).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop

from peers import PKI
from syslogkit.collector import Filters, Record, Store, TLSConfig

#: asyncio's loop, and uvloop's: `syslogkit collect` takes uvloop when it is installed
EVENT_LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "it", *, interval: float = 0.02
) -> Any:
    """Poll `predicate()` until it returns something true, and return that; fail the test after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def stored(
    path: Path, filters: Filters | None = None, *, opening_may_fail: bool = False
) -> list[Record]:
    """The records in the store at `path` ([] while there is no file). With `opening_may_fail`,
    also [] while the store cannot be opened (a collector starting up, or just killed)."""
    if not path.exists():
        return []
    try:
        store = Store(path, readonly=True)
    except Exception:
        if opening_may_fail:
            return []
        raise
    try:
        return store.query(filters)
    finally:
        store.close()


def wait_stored(
    path: Path, count: int, timeout: float = 10.0, *, opening_may_fail: bool = False
) -> list[Record]:
    """All the stored records once there are at least `count`; fail after `timeout` seconds."""

    def enough() -> list[Record] | None:
        records = stored(path, opening_may_fail=opening_may_fail)
        return records if len(records) >= count else None

    result: list[Record] = wait_for(enough, timeout, f"{count} stored messages")
    return result


def collector_tls(pki: PKI, client_auth: str) -> TLSConfig:
    """The collector's TLS settings: the server certificate and the CA of `pki`."""
    return TLSConfig(
        certfile=str(pki.server.cert),
        keyfile=str(pki.server.key),
        cafile=str(pki.ca.cert),
        client_auth=client_auth,
    )


class Capture:
    """A collector sink that keeps what arrived."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._lock = threading.Lock()

    def write(self, records: Sequence[Record]) -> None:
        with self._lock:
            self.records.extend(records)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def arrived(self, count: int, timeout: float = 10.0) -> list[Record]:
        """What arrived once `count` records did, or when `timeout` seconds passed."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = list(self.records)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.01)

    def wait(self, count: int, timeout: float = 10.0) -> list[Record]:
        """What arrived once `count` records did; fail if they do not within `timeout` seconds."""
        got = self.arrived(count, timeout)
        assert len(got) >= count, f"{len(got)} of {count} records arrived"
        return got
