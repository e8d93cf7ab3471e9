"""SyslogHandler against a real rsyslogd: what rsyslog parsed equals what was logged.

UDP, TCP (octet counting and LF), TLS with mutual authentication (gtls, x509/certvalid), and a
unix datagram socket served by imuxsock (the local format, and RFC 5424 with the special parser
off). Plus a TLS refusal by gtls and a collector restart. Skips without rsyslog, fails under CI.

Every test runs with both deliveries (sync, and background: the default on the network) and
flushes (bounded) before it looks at the counters or at what rsyslog received.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

import pytest

from support.handler import (
    assert_tls_refusal_is_counted,
    interop_handler,
    logger_for,
    wait_until,
)
from support.peers import TLS, RsyslogPeer, UxSock
from syslogkit.codec.message import Facility, Severity
from syslogkit.sender.handler import SyslogHandler, to_datetime

BOM = "\ufeff"
TEXT = "Grüße ✓ 日本語 — naïve"
SD = {"origin@32473": {"software": "syslogkit", "note": 'quote " bracket ] slash \\'}}
SD_WIRE = '[origin@32473 software="syslogkit" note="quote \\" bracket \\] slash \\\\"]'

# imuxsock stamps messages with the time it received them unless told to keep theirs
KEEP_TIMESTAMP = {"ignoreTimestamp": "off", "useSysTimeStamp": "off"}

FLUSH = 5.0  # seconds a test waits (at most) for handed-over records to be written

pytestmark = [pytest.mark.interop, pytest.mark.parametrize("delivery", ["sync", "background"])]


def _log(handler: SyslogHandler, name: str) -> logging.LogRecord:
    """Log one error record with per-record msgid and SD; return the record itself."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(record)
            return True

    handler.addFilter(Keep())
    logger_for(handler, name).error(
        "%s %d", TEXT, 42, extra={"msgid": "ID47", "structured_data": SD}
    )
    handler.flush(FLUSH)
    assert handler.stats["sent"] == 1, handler.stats
    return seen[0]


def _assert_all_fields(parsed: dict[str, Any], record: logging.LogRecord) -> None:
    assert parsed["pri"] == Facility.LOCAL4 * 8 + Severity.ERR
    assert parsed["protocol-version"] == 1
    assert datetime.fromisoformat(parsed["timereported"]) == to_datetime(record.created)
    assert parsed["hostname"] == "sender.example"
    assert parsed["app-name"] == "interop-app"
    assert parsed["procid"] == str(os.getpid())
    assert parsed["msgid"] == "ID47"
    assert parsed["structured-data"] == SD_WIRE
    assert parsed["msg"].removeprefix(BOM) == f"{TEXT} 42"


def _assert_one_record_arrives_intact(
    handler: SyslogHandler, peer: RsyslogPeer, logger_name: str
) -> None:
    """Log the test record through `handler` (closed afterwards): rsyslog received exactly one
    record, and parsed every field as logged."""
    try:
        record = _log(handler, logger_name)
        (parsed,) = peer.messages(1)
        _assert_all_fields(parsed, record)
    finally:
        handler.close()


def test_udp(rsyslog: Any, delivery: str) -> None:
    peer: RsyslogPeer = rsyslog(udp=True)
    handler = interop_handler(f"udp://127.0.0.1:{peer.udp_port}", delivery)
    _assert_one_record_arrives_intact(handler, peer, "interop-udp")


@pytest.mark.parametrize("framing", ["octet", "lf"])
def test_tcp(rsyslog: Any, framing: str, delivery: str) -> None:
    peer: RsyslogPeer = rsyslog(tcp=True)
    handler = interop_handler(f"tcp://127.0.0.1:{peer.tcp_port}", delivery, framing=framing)
    _assert_one_record_arrives_intact(handler, peer, f"interop-tcp-{framing}")


def test_tls_mutual_authentication(rsyslog: Any, pki: Any, delivery: str) -> None:
    peer: RsyslogPeer = rsyslog(tls=TLS(auth_mode="x509/certvalid"))
    handler = interop_handler(
        f"tls://127.0.0.1:{peer.tls_port}",
        delivery,
        ca_file=str(pki.ca.cert),
        cert_file=str(pki.client.cert),
        key_file=str(pki.client.key),
    )
    _assert_one_record_arrives_intact(handler, peer, "interop-tls")


def test_tls_refused_without_client_certificate(rsyslog: Any, pki: Any, delivery: str) -> None:
    """gtls requires a client certificate: the session is refused after the handshake. Log
    calls return normally, nothing counts as sent, the error is counted and reported once;
    sync drops each record in its call, background when it closes."""
    peer: RsyslogPeer = rsyslog(tls=TLS(auth_mode="x509/certvalid"))
    handler = interop_handler(
        f"tls://127.0.0.1:{peer.tls_port}",
        delivery,
        ca_file=str(pki.ca.cert),
        error_interval=3600,
    )
    assert_tls_refusal_is_counted(handler, delivery, f"interop-tls-refused-{delivery}")
    assert peer.records() == []


def test_tls_pinned_fingerprint_in_rsyslog_form(rsyslog: Any, pki: Any, delivery: str) -> None:
    peer: RsyslogPeer = rsyslog(tls=TLS(auth_mode="x509/certvalid"))
    handler = interop_handler(
        f"tls://127.0.0.1:{peer.tls_port}",
        delivery,
        fingerprint=pki.server.sha256,  # "SHA256:AB:..." as rsyslog writes it
        cert_file=str(pki.client.cert),
        key_file=str(pki.client.key),
    )
    try:
        record = _log(handler, "interop-tls-pin")
        _assert_all_fields(peer.messages(1)[0], record)
    finally:
        handler.close()


def test_unix_socket_local_format(rsyslog: Any, delivery: str) -> None:
    spec = UxSock(params=KEEP_TIMESTAMP)
    peer: RsyslogPeer = rsyslog(uxsock=spec)
    handler = interop_handler(f"unix://{peer.uxsock_path}", delivery)
    try:
        record = _log(handler, "interop-unix-local")
        (parsed,) = peer.messages(1)
        assert parsed["pri"] == Facility.LOCAL4 * 8 + Severity.ERR
        stamp = to_datetime(record.created).replace(microsecond=0)
        assert datetime.fromisoformat(parsed["timereported"]) == stamp
        assert parsed["app-name"] == "interop-app"
        assert parsed["procid"] == str(os.getpid())
        assert parsed["msg"].strip() == f"{TEXT} 42"
    finally:
        handler.close()


def test_unix_socket_rfc5424(rsyslog: Any, delivery: str) -> None:
    spec = UxSock(use_special_parser=False, parse_hostname=True, params=KEEP_TIMESTAMP)
    peer: RsyslogPeer = rsyslog(uxsock=spec)
    handler = interop_handler(f"unix://{peer.uxsock_path}", delivery, rfc="5424")
    _assert_one_record_arrives_intact(handler, peer, "interop-unix-5424")


@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_rsyslog_restart_first_record_arrives(
    rsyslog: Any, pki: Any, kind: str, delivery: str
) -> None:
    options: dict[str, Any] = {"tcp": True} if kind == "tcp" else {"tls": True}
    peer: RsyslogPeer = rsyslog(**options)
    settings: dict[str, Any] = {"error_interval": 3600}
    if kind == "tls":
        settings.update(
            ca_file=str(pki.ca.cert), cert_file=str(pki.client.cert), key_file=str(pki.client.key)
        )
    port = peer.tcp_port if kind == "tcp" else peer.tls_port
    handler = interop_handler(f"{kind}://127.0.0.1:{port}", delivery, **settings)
    try:
        logger = logger_for(handler, f"interop-restart-{kind}-{delivery}")
        logger.warning("before restart")
        handler.flush(FLUSH)
        peer.messages(1)
        peer.restart()
        logger.warning("first after restart")
        handler.flush(FLUSH)
        found = wait_until(
            lambda: any(r["msg"] == "first after restart" for r in peer.records()), 10
        )
        assert found, peer.records()
        assert handler.stats["dropped"] == 0 and handler.stats["reconnects"] == 1
    finally:
        handler.close()
