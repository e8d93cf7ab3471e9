"""TLS settings and refusals: contexts, fingerprint pins, verification, session confirmation.

The refusals run against a loopback TLS collector in a thread (Python's ssl), so they show the
handler's side exactly: nothing counted as sent, the error counted and reported, log calls
returning normally. The same refusal by rsyslog's gtls driver is in the interop tests.

The tests against the collector run with both deliveries (sync, and background: the default on
the network) and flush (bounded) before they look at the counters; a test named `sync` checks
the caller's own wait in synchronous delivery.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import ssl
import time
from typing import Any

import pytest

from support.handler import StreamCollector, logger_for, server_context, wait_until
from syslogkit.sender.handler import SyslogHandler
from syslogkit.transports.tls import (
    FingerprintMismatch,
    Pin,
    TLSConfig,
    build_context,
    build_server_context,
    check_fingerprint,
    fingerprint,
    parse_fingerprint,
)

DER = b"not really a certificate, but bytes to hash"
FLUSH = 5.0  # seconds a test waits (at most) for handed-over records to be written
both_modes = pytest.mark.parametrize("delivery", ["sync", "background"])
SHA256 = hashlib.sha256(DER).digest()
SHA1 = hashlib.sha1(DER).digest()


def _colons(digest: bytes, upper: bool = True) -> str:
    text = ":".join(f"{b:02x}" for b in digest)
    return text.upper() if upper else text


@pytest.mark.parametrize(
    "text",
    [
        "sha-256:" + _colons(SHA256),
        "SHA-256:" + _colons(SHA256, upper=False),
        "SHA256:" + _colons(SHA256),
        "sha256:" + SHA256.hex(),
        "  Sha256:" + _colons(SHA256) + "  ",
    ],
)
def test_sha256_pin_forms(text: str) -> None:
    pin = parse_fingerprint(text)
    assert pin == Pin("sha256", SHA256)
    check_fingerprint(DER, [pin])


@pytest.mark.parametrize("text", ["sha-1:" + _colons(SHA1), "SHA1:" + _colons(SHA1, upper=False)])
def test_sha1_pin_forms(text: str) -> None:
    assert parse_fingerprint(text) == Pin("sha1", SHA1)


@pytest.mark.parametrize(
    "text",
    [
        "md5:" + _colons(hashlib.md5(DER).digest()),
        _colons(SHA256),
        "sha-256:" + _colons(SHA1),
        "sha-256:" + "ZZ" * 32,
        "sha-256:",
    ],
)
def test_bad_pins(text: str) -> None:
    with pytest.raises(ValueError):
        parse_fingerprint(text)


def test_pin_text_round_trip() -> None:
    text = fingerprint(DER)
    assert text == "sha-256:" + _colons(SHA256)
    assert str(parse_fingerprint(text)) == text


def test_mismatch_names_the_certificate() -> None:
    other = Pin("sha256", bytes(32))
    with pytest.raises(FingerprintMismatch, match="sha-256:"):
        check_fingerprint(DER, [other])
    with pytest.raises(FingerprintMismatch):
        check_fingerprint(None, [other])
    check_fingerprint(DER, [other, Pin("sha1", SHA1)])


def test_context_defaults(pki: Any) -> None:
    context = build_context(ca_file=str(pki.ca.cert))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    no_name = build_context(ca_file=str(pki.ca.cert), verify_hostname=False)
    assert not no_name.check_hostname and no_name.verify_mode == ssl.CERT_REQUIRED
    system = build_context()
    assert system.verify_mode == ssl.CERT_REQUIRED
    pinned = build_context(pinned=True)
    assert not pinned.check_hostname and pinned.verify_mode == ssl.CERT_NONE
    with pytest.raises(ValueError):
        build_context(key_file=str(pki.client.key))


def test_context_with_ca_dir(pki: Any) -> None:
    context = build_context(ca_dir=str(pki.ca.cert.parent))
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_server_context_modes(pki: Any) -> None:
    files = {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key)}
    for mode, verify in (("optional", ssl.CERT_OPTIONAL), ("required", ssl.CERT_REQUIRED)):
        context = build_server_context(**files, ca_file=str(pki.ca.cert), client_auth=mode)
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == verify
    assert build_server_context(**files, client_auth="none").verify_mode == ssl.CERT_NONE
    with pytest.raises(ValueError, match="needs a CA"):
        build_server_context(**files, client_auth="required")
    with pytest.raises(ValueError, match="none, optional or required"):
        build_server_context(**files, client_auth="sometimes")


def test_server_context_file_errors_name_the_files(pki: Any, tmp_path: Any) -> None:
    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(ValueError, match=r"nowhere\.pem"):
        build_server_context(cert_file=missing, client_auth="none")
    with pytest.raises(ValueError, match=r"key_file="):
        # a key that is not the certificate's
        build_server_context(
            cert_file=str(pki.server.cert), key_file=str(pki.client.key), client_auth="none"
        )
    with pytest.raises(ValueError, match=r"nowhere\.pem"):
        build_server_context(
            cert_file=str(pki.server.cert),
            key_file=str(pki.server.key),
            ca_file=missing,
            client_auth="required",
        )


def test_config_server_hostname_and_ready_context(pki: Any) -> None:
    config = TLSConfig.create("127.0.0.1", ca_file=str(pki.ca.cert))
    assert config.server_hostname == "127.0.0.1" and config.pins == ()
    named = TLSConfig.create("127.0.0.1", ca_file=str(pki.ca.cert), server_hostname="localhost")
    assert named.server_hostname == "localhost"
    ready = ssl.create_default_context()
    assert TLSConfig.create("h", ssl_context=ready).context is ready
    pinned = TLSConfig.create("h", fingerprint=[pki.server.sha256, pki.server.sha1])
    assert len(pinned.pins) == 2
    assert pinned.context.verify_mode == ssl.CERT_NONE


def test_encrypted_client_key(pki: Any, tmp_path: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.client.key.read_bytes(), password=None)
    locked = tmp_path / "client-locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    context = build_context(
        ca_file=str(pki.ca.cert),
        cert_file=str(pki.client.cert),
        key_file=str(locked),
        key_password="s3cret",
    )
    assert context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError, match=r"cannot load cert_file=.*key_file="):
        build_context(cert_file=str(pki.client.cert), key_file=str(locked), key_password="wrong")


# -- against a loopback TLS collector --------------------------------------------------------


def _mutual(pki: Any, **server: Any) -> StreamCollector:
    context = server_context(pki.server.cert, pki.server.key, client_ca=pki.ca.cert)
    for key, value in server.items():
        setattr(context, key, value)
    return StreamCollector(tls=context)


def _handler(url: str, pki: Any, **options: Any) -> SyslogHandler:
    settings: dict[str, Any] = {
        "ca_file": str(pki.ca.cert),
        "cert_file": str(pki.client.cert),
        "key_file": str(pki.client.key),
        "timeout": 2.0,
        "confirm_timeout": 0.5,
        "error_interval": 0.0,
    }
    settings.update(options)
    return SyslogHandler(url, app_name="tlstest", **settings)


class Reports:
    """What went through handleError."""

    def __init__(self, handler: SyslogHandler) -> None:
        self.errors: list[BaseException] = []
        handler.handleError = self._record  # type: ignore[method-assign]

    def _record(self, record: logging.LogRecord) -> None:
        import sys

        error = sys.exc_info()[1]
        assert error is not None
        self.errors.append(error)


@both_modes
def test_mutual_tls_delivers(pki: Any, delivery: str) -> None:
    collector = _mutual(pki)
    handler = _handler(collector.url, pki, delivery=delivery)
    try:
        logger_for(handler, "tls-ok").warning("over TLS ✓")
        handler.flush(FLUSH)
        (payload,) = collector.wait_for(1)
        assert payload.endswith("over TLS ✓".encode())
        assert handler.stats["sent"] == 1 and handler.stats["errors"] == 0
    finally:
        handler.close()
        collector.close()


@both_modes
def test_close_sends_close_notify(pki: Any, delivery: str) -> None:
    collector = _mutual(pki)
    handler = _handler(collector.url, pki, delivery=delivery)
    logger_for(handler, "tls-close").warning("then goodbye")
    assert collector.wait_for(1)
    started = time.monotonic()
    handler.close()
    assert time.monotonic() - started < 3 * min(handler.timeout, 2.0) + 1
    try:
        assert wait_until(lambda: collector.clean_closes == 1)
    finally:
        collector.close()


@both_modes
def test_pinned_certificate_replaces_ca(pki: Any, delivery: str) -> None:
    collector = _mutual(pki)
    handler = _handler(
        collector.url, pki, ca_file=None, fingerprint=pki.server.sha256, delivery=delivery
    )
    try:
        logger_for(handler, "tls-pin").warning("pinned")
        handler.flush(FLUSH)
        assert collector.wait_for(1)[0].endswith(b"pinned")
        assert handler.stats["sent"] == 1
    finally:
        handler.close()
        collector.close()


def _assert_refused(
    handler: SyslogHandler, collector: StreamCollector, match: str, delivery: str
) -> None:
    """Log calls return normally, nothing counts as sent, the refusal is counted and told in
    one line on stderr (a failure of the network: not handleError's traceback).

    Sync drops each record in its own call; background keeps them queued while the writer is
    refused again and again, and drops them (counted) when the handler closes.
    """
    reports = Reports(handler)
    told = io.StringIO()
    with contextlib.redirect_stderr(told):
        logger = logger_for(handler, "tls-refused")
        started = time.monotonic()
        for n in range(3):
            logger.error("must not count %d", n)  # returns normally
        assert time.monotonic() - started < 3 * handler.timeout + 1
        handler.flush(1.0)  # bounded: nothing can be delivered here
        assert wait_until(lambda: bool(told.getvalue())), "the refusal was not told"
    stats = handler.stats
    assert stats["sent"] == 0
    assert stats["errors"] >= 1
    if delivery == "sync":
        assert stats["dropped"] == 3 and stats["dropped_tls"] == 3
    line = told.getvalue().splitlines()[0]
    assert line.startswith("syslogkit: ") and "Traceback" not in told.getvalue()
    assert match in line.lower() or match in str(stats["last_error"]).lower()
    assert reports.errors == []  # handleError is for bugs
    with contextlib.redirect_stderr(told):
        handler.close(timeout=1.0)
    assert wait_until(lambda: handler.stats["dropped"] == 3)
    stats = handler.stats
    assert stats["sent"] == 0 and stats["dropped_tls"] == 3
    assert collector.messages() == []


@both_modes
def test_refused_other_ca(pki: Any, delivery: str) -> None:
    context = server_context(pki.other_server.cert, pki.other_server.key)
    collector = StreamCollector(tls=context)
    handler = _handler(collector.url, pki, delivery=delivery)
    try:
        _assert_refused(handler, collector, "certificate verif", delivery)
    finally:
        handler.close()
        collector.close()


@both_modes
def test_refused_wrong_hostname(pki: Any, delivery: str) -> None:
    collector = _mutual(pki)
    handler = _handler(
        collector.url, pki, server_hostname="collector.elsewhere.test", delivery=delivery
    )
    try:
        _assert_refused(handler, collector, "hostname", delivery)
    finally:
        handler.close()
        collector.close()


def test_hostname_check_can_be_turned_off(pki: Any) -> None:
    collector = _mutual(pki)
    handler = _handler(
        collector.url, pki, server_hostname="collector.elsewhere.test", verify_hostname=False
    )
    try:
        logger_for(handler, "tls-noname").warning("no name check")
        assert collector.wait_for(1)
    finally:
        handler.close()
        collector.close()


@both_modes
def test_refused_fingerprint_mismatch(pki: Any, delivery: str) -> None:
    collector = _mutual(pki)
    handler = _handler(collector.url, pki, fingerprint=pki.other_server.sha256, delivery=delivery)
    try:
        _assert_refused(handler, collector, "fingerprint", delivery)
        assert collector.accepted >= 1  # it got as far as the handshake, and no further
    finally:
        handler.close()
        collector.close()


@pytest.mark.parametrize(
    ("version", "match"),
    [(ssl.TLSVersion.TLSv1_3, "certificate required"), (ssl.TLSVersion.TLSv1_2, "alert")],
)
@both_modes
def test_refused_missing_client_certificate(
    pki: Any, version: ssl.TLSVersion, match: str, delivery: str
) -> None:
    """TLS 1.3 refuses after the client's handshake: the confirmation read catches it."""
    collector = _mutual(pki, maximum_version=version)
    handler = _handler(collector.url, pki, cert_file=None, key_file=None, delivery=delivery)
    try:
        _assert_refused(handler, collector, match, delivery)
        assert wait_until(lambda: bool(collector.tls_errors))
    finally:
        handler.close()
        collector.close()


def test_sync_tls13_ticket_confirms_without_waiting(pki: Any) -> None:
    """Sync: the caller connects, and the session ticket ends the confirmation read at once."""
    collector = _mutual(pki)
    handler = _handler(collector.url, pki, confirm_timeout=5.0, timeout=5.0, delivery="sync")
    try:
        started = time.monotonic()
        logger_for(handler, "tls-ticket").warning("quick")
        # returned before the confirmation read's deadline: the session ticket ended it
        assert time.monotonic() - started < 5.0
        assert collector.wait_for(1)
    finally:
        handler.close()
        collector.close()
