"""Helpers shared by the tests that run syslogkit's collector (in a thread or a subprocess).

`wait_for()` polls until a condition holds and fails the test when it does not in time.
`stored()` and `wait_stored()` read what a collector put into its SQLite store. `Capture` is a
collector sink that keeps the records in memory. `collector_tls()` is the collector's TLS
configuration from the `pki` fixture's server certificate. `EVENT_LOOPS` are the loops the
collector runs on (the `loop_factory` fixture gives each in turn). `rfc5424()`, `feed()` and
`assert_sent_fields()` are the message real senders (rsyslog, syslog-ng) get to forward into the
collector, and the check that it was stored as sent. `loggen()` runs syslog-ng's load generator
against a collector (`loggen_path()` None: not installed).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import uvloop

from support.peers import PKI
from support.peers.syslogng import syslog_ng_root
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
        cert_file=str(pki.server.cert),
        key_file=str(pki.server.key),
        ca_file=str(pki.ca.cert),
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


# -- what real senders forward into the collector ------------------------------------------------

BOM = "\ufeff"
SD = '[exampleSDID@32473 iut="3" eventSource="App \\"x\\" \\]"][meta sequenceId="7"]'
SD_PARSED = [
    ("exampleSDID@32473", (("iut", "3"), ("eventSource", 'App "x" ]'))),
    ("meta", (("sequenceId", "7"),)),
]
TIMESTAMP = "2003-10-11T22:14:15.003Z"


def rfc5424(text: str, *, pri: int = 165, host: str = "mymachine.example.com") -> bytes:
    """An RFC 5424 message with SD (escapes included) and a BOM before `text`."""
    return f"<{pri}>1 {TIMESTAMP} {host} evntslog 42 ID47 {SD} {BOM}{text}".encode()


def octet(payload: bytes) -> bytes:
    return b"%d %b" % (len(payload), payload)


def feed(port: int, payloads: list[bytes]) -> None:
    """The payloads, octet-counted, over one TCP connection to `port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"".join(octet(p) for p in payloads))


def assert_sent_fields(record: Record, text: str) -> None:
    """The stored record holds every field of `rfc5424(text)`, parsed cleanly, and its raw
    bytes end with the text (a forwarder's trailing LF is framing, dropped once)."""
    m = record.message
    assert m is not None, record
    assert record.error is None, (record.error, record.raw)
    assert (m.facility, m.severity, m.version) == (20, 5, 1)
    assert m.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=timezone.utc)
    assert m.timestamp is not None and m.timestamp.utcoffset() is not None
    assert (m.hostname, m.app_name, m.procid, m.msgid) == (
        "mymachine.example.com",
        "evntslog",
        "42",
        "ID47",
    )
    assert [(e.id, e.params) for e in m.structured_data] == SD_PARSED
    assert m.bom is True
    assert m.msg == text
    assert record.raw.endswith(text.encode())


# -- loggen, syslog-ng's load generator: a real sender nobody here wrote -----------------------


def loggen_path() -> Path | None:
    """loggen from the unpacked (or installed) syslog-ng, None when there is none."""
    root = syslog_ng_root()
    if root is None:
        return None
    path = root / "usr/bin/loggen"
    return path if path.is_file() else None


def loggen(
    kind: str,
    port: int,
    count: int,
    *,
    rfc5424: bool,
    rate: int = 1_000_000,
    timeout: float = 60,
    seconds: int | None = None,
    size: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run loggen to 127.0.0.1:`port` over `kind` ("tcp", "udp" or "tls": loggen does not check
    the server's certificate) and wait for it to exit. `rfc5424`: `-P` (octet-counted on
    streams; `-F`, one message per datagram, on UDP); else its default BSD message, which has an
    RFC 3339 timestamp without a UTC offset. `seconds`: send for that long instead of `count`
    messages; `size`: messages of that many bytes."""
    path = loggen_path()
    assert path is not None, "loggen is not installed"
    root = path.parents[2]
    env = dict(
        os.environ,
        LD_LIBRARY_PATH=f"{root}/usr/lib/syslog-ng:{root}/usr/lib",
        SYSLOGNG_PREFIX=f"{root}/usr",
    )
    args = {"tcp": ["-S"], "udp": ["-D"], "tls": ["-U"]}[kind]
    if rfc5424:
        args += ["-P", "-F"] if kind == "udp" else ["-P"]
    if size is not None:
        args += ["-s", str(size)]
    args += ["-I", str(seconds)] if seconds is not None else ["-n", str(count)]
    command = [str(path), *args, "-Q", "-r", str(rate), "127.0.0.1", str(port)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    sent = f"count={count}," if seconds is None else "count="
    assert done.returncode == 0 and sent in done.stderr, (command, done.stderr)
    return done
