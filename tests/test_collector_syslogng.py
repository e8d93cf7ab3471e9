"""syslog-ng as a real sender into the collector: its `syslog()` destination over TCP and over
TLS with a client certificate (octet counting, no trailing LF, unlike rsyslog's forwarders).

syslog-ng receives RFC 5424 messages on a TCP source of its own and forwards them; the
collector's stored fields must equal what was sent into syslog-ng (syslog-ng writes the
timestamp with six fraction digits and `+00:00`, the same instant and offset).
"""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from pathlib import Path

from collector_support import collector_tls, wait_stored
from conftest import SyslogNgFactory
from peers import PKI
from syslogkit.collector import CollectorThread, SQLiteSink
from syslogkit.collector.record import Record

BOM = "\ufeff"
TEXTS = ["grüße ✓ 日本語", "second one", "third: with = and ] inside"]
SD = '[exampleSDID@32473 iut="3" eventSource="App \\"x\\" \\]"][meta sequenceId="7"]'
SD_PARSED = [
    ("exampleSDID@32473", (("iut", "3"), ("eventSource", 'App "x" ]'))),
    ("meta", (("sequenceId", "7"),)),
]


def rfc5424(text: str) -> bytes:
    return (
        f"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47 {SD} {BOM}{text}"
    ).encode()


def feed(port: int, texts: list[str]) -> None:
    """The messages, octet-counted, into syslog-ng's TCP source."""
    frames = [rfc5424(text) for text in texts]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"".join(b"%d %b" % (len(frame), frame) for frame in frames))


def assert_sent_fields(record: Record, text: str) -> None:
    m = record.message
    assert m is not None and record.error is None, (record.error, record.raw)
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
    assert record.raw.endswith(text.encode())  # no trailer of syslog-ng's own


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


def test_syslog_ng_forwards_over_tcp(syslog_ng: SyslogNgFactory, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(db)]) as c:
        port = forward(syslog_ng, f'syslog("127.0.0.1" port({c.port("tcp")}) transport("tcp"))')
        feed(port, TEXTS)
        records = wait_stored(db, len(TEXTS), 20.0)
    assert len(records) == len(TEXTS)
    for record, text in zip(records, TEXTS, strict=True):
        assert_sent_fields(record, text)
        assert record.transport == "tcp"


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
        feed(port, TEXTS)
        records = wait_stored(db, len(TEXTS), 20.0)
    assert len(records) == len(TEXTS)
    for record, text in zip(records, TEXTS, strict=True):
        assert_sent_fields(record, text)
        assert record.transport == "tls"
        assert record.tls_subject is not None and "CN=client.syslogkit.test" in record.tls_subject
