"""SyslogHandler against a real syslog-ng: what syslog-ng parsed equals what was logged.

UDP (RFC 5424 through syslog-ng's `syslog-parser`), TCP and TLS with mutual authentication
(`syslog()` sources, octet counting), and a TLS refusal when no client certificate is
configured. syslog-ng runs from its unpacked package (peers/syslogng.py); skips without it,
fails under CI. Both deliveries (sync, and background: the default on the network).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

import pytest

from conftest import SyslogNgFactory
from support.handler import (
    assert_tls_refusal_is_counted,
    interop_handler,
    logger_for,
)
from support.peers import PKI, SyslogNgPeer
from syslogkit.sender.handler import SyslogHandler, to_datetime

TEXT = "Grüße ✓ 日本語 — naïve"
SD = {"origin@32473": {"software": "syslogkit", "note": 'quote " bracket ] slash \\'}}
FLUSH = 5.0  # seconds a test waits (at most) for handed-over records to be written

pytestmark = [pytest.mark.interop, pytest.mark.parametrize("delivery", ["sync", "background"])]


def _assert_one_record_arrives_intact(handler: SyslogHandler, peer: SyslogNgPeer) -> None:
    """Log one error record (closing the handler afterwards): syslog-ng received exactly it,
    and its own parse of every field equals what was logged."""
    seen: list[logging.LogRecord] = []
    handler.addFilter(lambda record: bool(seen.append(record)) or True)
    try:
        logger_for(handler, f"syslog-ng-{id(handler)}").error(
            "%s %d", TEXT, 42, extra={"msgid": "ID47", "structured_data": SD}
        )
        handler.flush(FLUSH)
        assert handler.stats["sent"] == 1, handler.stats
        (parsed,) = peer.messages(1)
    finally:
        handler.close()
    record = seen[0]
    assert (parsed["FACILITY_NUM"], parsed["SEVERITY_NUM"]) == ("20", "3")  # local4.err
    stamp = datetime.fromisoformat(parsed["S_ISODATE"])
    sent = to_datetime(record.created)
    assert stamp == sent and stamp.utcoffset() == sent.utcoffset()
    assert parsed["HOST"] == "sender.example"
    assert parsed["PROGRAM"] == "interop-app"
    assert parsed["PID"] == str(os.getpid())
    assert parsed["MSGID"] == "ID47"
    assert parsed["_SDATA"] == SD
    assert parsed["MESSAGE"] == f"{TEXT} 42"  # syslog-ng drops the BOM itself


def test_udp(syslog_ng: SyslogNgFactory, delivery: str) -> None:
    peer = syslog_ng(udp=True)
    handler = interop_handler(f"udp://127.0.0.1:{peer.udp_port}", delivery)
    _assert_one_record_arrives_intact(handler, peer)


def test_tcp_octet_counting(syslog_ng: SyslogNgFactory, delivery: str) -> None:
    peer = syslog_ng(tcp=True)
    handler = interop_handler(f"tcp://127.0.0.1:{peer.tcp_port}", delivery)
    _assert_one_record_arrives_intact(handler, peer)


def test_tls_mutual_authentication(syslog_ng: SyslogNgFactory, pki: PKI, delivery: str) -> None:
    peer = syslog_ng(tls=True)
    handler = interop_handler(
        f"tls://127.0.0.1:{peer.tls_port}",
        delivery,
        ca_file=str(pki.ca.cert),
        cert_file=str(pki.client.cert),
        key_file=str(pki.client.key),
    )
    _assert_one_record_arrives_intact(handler, peer)


def test_tls_refused_without_client_certificate(
    syslog_ng: SyslogNgFactory, pki: PKI, delivery: str
) -> None:
    """syslog-ng requires a client certificate (TLS 1.3: it says so with an alert after the
    client's handshake): the log calls return, nothing counts as sent, the error is counted and
    reported once, nothing arrives."""
    peer = syslog_ng(tls=True)
    handler = interop_handler(
        f"tls://127.0.0.1:{peer.tls_port}", delivery, ca_file=str(pki.ca.cert), error_interval=3600
    )
    assert_tls_refusal_is_counted(handler, delivery, f"syslog-ng-refused-{delivery}")
    assert peer.records() == []
