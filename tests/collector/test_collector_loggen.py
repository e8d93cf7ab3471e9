"""loggen, syslog-ng's load generator, as a real sender into the collector: TCP, UDP and TLS, its
BSD message (an RFC 3339 timestamp without a UTC offset) and RFC 5424 (`-P`), exact counts.

loggen writes its burst and exits without reading or a TLS goodbye: over TLS every record must
still be stored (a session ticket left unread would make its kernel reset the connection).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.collector import collector_tls, loggen, loggen_path, stored, wait_for
from support.peers import PKI, Need
from syslogkit.collector import CollectorThread, Limits, Record, SQLiteSink

#: records per run: a full-speed burst on streams; UDP at a rate the kernel buffer holds
COUNTS = {"tcp": 20_000, "tls": 20_000, "udp": 3_000}
RATES = {"tcp": 1_000_000, "tls": 1_000_000, "udp": 10_000}


@pytest.fixture
def collector(tmp_path: Path, pki: PKI, need: Need) -> Iterator[tuple[CollectorThread, Path]]:
    need(loggen_path() is not None, "loggen (syslog-ng's load generator) is not unpacked")
    db = tmp_path / "loggen.db"
    with CollectorThread(
        ["tcp://127.0.0.1:0", "udp://127.0.0.1:0", "tls://127.0.0.1:0"],
        [SQLiteSink(db, process=True)],
        tls=collector_tls(pki, "optional"),
        limits=Limits(udp_rcvbuf=32 << 20),
    ) as c:
        yield c, db


def listener(c: CollectorThread, scheme: str) -> dict[str, Any]:
    return next(x for x in c.stats()["listeners"] if x["url"].startswith(scheme + "://"))


def sequence(record: Record) -> int:
    """loggen's message number: `seq: 0000000042, thread: ...`."""
    assert record.message is not None and record.message.msg is not None, record
    return int(record.message.msg.split(",", 1)[0].removeprefix("seq: "))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rfc5424", [False, True], ids=["bsd", "rfc5424"])
@pytest.mark.parametrize("kind", ["tcp", "udp", "tls"])
def test_loggen_every_record_stored_and_counted(
    collector: tuple[CollectorThread, Path], kind: str, rfc5424: bool
) -> None:
    c, db = collector
    count = COUNTS[kind]
    loggen(kind, c.port(kind), count, rfc5424=rfc5424, rate=RATES[kind])
    wait_for(lambda: listener(c, kind)["received"] >= count, 30, f"{count} received")
    wait_for(lambda: c.stats()["pipeline"]["pending"] == 0, 30, "everything committed")
    stats = listener(c, kind)
    records = stored(db)

    assert len(records) == count
    assert sorted(sequence(r) for r in records) == list(range(count))
    assert stats["received"] == count
    if kind == "udp":
        assert stats["kernel_drops"] == 0
    # what happened to each, told apart: BSD with an assumed zone is parsed with a note
    split = (stats["parsed"], stats["noted"], stats["unparsed"])
    assert split == ((count, 0, 0) if rfc5424 else (0, count, 0))
    first = records[0]
    m = first.message
    assert m is not None and first.transport == kind
    assert (m.facility, m.severity) == (4, 6)
    assert (m.hostname, m.app_name, m.procid) == ("localhost", "prg00000", "1234")
    assert m.timestamp is not None
    if rfc5424:
        assert first.error is None and m.version == 1
    else:
        assert first.error is not None and "without a UTC offset" in first.error
        # no offset: the collector's local zone is assumed
        assert m.timestamp.utcoffset() is not None
        assert m.timestamp.utcoffset().total_seconds() == time.localtime().tm_gmtoff
