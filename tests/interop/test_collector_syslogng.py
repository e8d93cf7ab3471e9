"""syslog-ng as a real sender into the collector: its `syslog()` destination over TCP and over
TLS with a client certificate (octet counting, no trailing LF, unlike rsyslog's forwarders).

syslog-ng receives RFC 5424 messages on a TCP source of its own and forwards them; the
collector's stored fields must equal what was sent into syslog-ng (syslog-ng writes the
timestamp with six fraction digits and `+00:00`, the same instant and offset).
"""

from __future__ import annotations

from pathlib import Path

from conftest import SyslogNgFactory
from support.collector import assert_sent_fields, collector_tls, feed, rfc5424, wait_stored
from support.peers import PKI
from syslogkit.collector import CollectorThread, SQLiteSink
from syslogkit.collector.record import Record

TEXTS = ["grüße ✓ 日本語", "second one", "third: with = and ] inside"]


def forward(syslog_ng: SyslogNgFactory, destination: str) -> int:
    """A syslog-ng forwarding what its TCP source gets to `destination`; that source's port."""
    peer = syslog_ng(
        tcp=True,
        extra_config=(
            f"destination d_collector {{ {destination}; }};\n"
            "log { source(s_tcp); destination(d_collector); };"
        ),
    )
    return peer.tcp_port


def feed_and_wait(port: int, db: Path) -> list[Record]:
    """TEXTS into syslog-ng's TCP source; what the collector stored once all are there."""
    feed(port, [rfc5424(text) for text in TEXTS])
    return wait_stored(db, len(TEXTS), 20.0)


def assert_stored_as_sent(records: list[Record], transport: str) -> None:
    assert len(records) == len(TEXTS)
    for record, text in zip(records, TEXTS, strict=True):
        assert_sent_fields(record, text)
        assert record.transport == transport


def test_syslog_ng_forwards_over_tcp(syslog_ng: SyslogNgFactory, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(db)]) as c:
        port = forward(syslog_ng, f'syslog("127.0.0.1" port({c.port("tcp")}) transport("tcp"))')
        records = feed_and_wait(port, db)
    assert_stored_as_sent(records, "tcp")


def test_syslog_ng_forwards_over_tls_with_a_client_certificate(
    syslog_ng: SyslogNgFactory, pki: PKI, tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    tls = collector_tls(pki, "required")
    with CollectorThread(["tls://127.0.0.1:0"], [SQLiteSink(db)], tls=tls) as c:
        port = forward(
            syslog_ng,
            f'syslog("127.0.0.1" port({c.port("tls")}) transport("tls")'
            f' tls(ca-file("{pki.ca.cert}") cert-file("{pki.client.cert}")'
            f' key-file("{pki.client.key}") peer-verify(required-trusted)))',
        )
        records = feed_and_wait(port, db)
    assert_stored_as_sent(records, "tls")
    for record in records:
        assert record.tls_subject is not None and "CN=client.syslogkit.test" in record.tls_subject
