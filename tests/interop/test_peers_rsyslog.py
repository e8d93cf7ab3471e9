"""The rsyslog test peer works: real rsyslogd, real traffic from plain sockets and logger(1).

No syslogkit code here: these tests prove the harness that the interop, fault and collector tests
stand on, and pin down how rsyslog 8.2302 renders what it parsed.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from datetime import datetime
from typing import Any

import pytest

from support.peers import (
    PKI,
    TLS,
    Need,
    PeerError,
    RsyslogFactory,
    RsyslogPeer,
    UxSock,
    client_context,
    ports,
)

BOM = "\ufeff"
TIMEOUT = 5.0  # every socket operation and every wait in this file

SD = '[exampleSDID@32473 iut="3" eventSource="App \\"x\\" \\]"][meta sequenceId="7"]'
TEXT = "grüße ✓ 日本語"


def rfc5424(msg: str, sd: str = SD, bom: bool = True) -> bytes:
    body = (BOM if bom else "") + msg
    header = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 42 ID47"
    return f"{header} {sd} {body}".encode()


def octet(payload: bytes) -> bytes:
    return b"%d %s" % (len(payload), payload)


def one(records: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """The single record whose msg ends with `text`."""
    found = [r for r in records if str(r.get("msg", "")).endswith(text)]
    assert len(found) == 1, (text, records)
    return found[0]


def assert_rfc5424_fields(record: dict[str, Any], text: str, timestamp: bool = True) -> None:
    assert record["pri"] == 165
    assert record["syslogfacility"] == 20
    assert record["syslogseverity"] == 5
    assert record["protocol-version"] == 1
    if timestamp:  # imuxsock takes the time of reception instead (useSysTimeStamp="on")
        assert record["timereported"] == "2003-10-11T22:14:15.003Z"
    assert record["hostname"] == "mymachine.example.com"
    assert record["app-name"] == "evntslog"
    assert record["procid"] == "42"
    assert record["msgid"] == "ID47"
    assert record["structured-data"] == SD  # kept as written, escapes included
    assert record["msg"] == BOM + text  # rsyslog keeps the BOM in msg


def tls_connect(peer: RsyslogPeer, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(peer.address("tls"), timeout=TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def refused(peer: RsyslogPeer, ctx: ssl.SSLContext, data: bytes) -> str:
    """Connect, write `data`, read: how the server ended the session ("eof" or the error).

    Under TLS 1.3 the client's handshake completes before the server has checked the client
    certificate, so the refusal shows on the write (if the server was quick) or the read after.
    A read timeout means the server kept the session: that fails the test.
    """
    with tls_connect(peer, ctx) as s:
        assert s.version() == "TLSv1.3"
        try:
            s.sendall(data)
            got = s.recv(1)
        except (ssl.SSLError, ConnectionError) as exc:
            return type(exc).__name__
        except TimeoutError:
            pytest.fail("the server kept the session open: it did not refuse the client")
    assert got == b"", got
    return "eof"


# ---------------------------------------------------------------------------------------------
# UDP, TCP


def test_udp_rfc5424_with_sd_and_non_ascii_is_parsed_field_by_field(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(rfc5424(TEXT), peer.address("udp"))
    [record] = peer.messages(1, timeout=TIMEOUT)
    assert_rfc5424_fields(record, TEXT)
    assert record["inputname"] == "imudp"
    assert record["rawmsg"] == rfc5424(TEXT).decode()


def test_tcp_octet_counted_and_lf_frames_on_one_connection_are_separate_messages(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(tcp=True)
    counted = rfc5424(TEXT + " line one\nline two")  # the LF stays inside the counted frame
    lf = rfc5424(TEXT + " lf framed") + b"\n"
    with socket.create_connection(peer.address("tcp"), timeout=TIMEOUT) as s:
        s.sendall(octet(counted) + lf)
    records = peer.messages(2, timeout=TIMEOUT)
    assert len(records) == 2
    assert_rfc5424_fields(one(records, "line two"), TEXT + " line one#012line two")  # LF escaped
    assert_rfc5424_fields(one(records, "lf framed"), TEXT + " lf framed")
    assert {r["inputname"] for r in records} == {"imtcp"}


def test_nil_fields_render_as_dash_and_missing_msg_as_empty(rsyslog: RsyslogFactory) -> None:
    peer = rsyslog(udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"<13>1 - - - - - -", peer.address("udp"))
    [record] = peer.messages(1, timeout=TIMEOUT)
    for name in ("hostname", "app-name", "procid", "msgid", "structured-data"):
        assert record[name] == "-", name
    assert record["msg"] == ""
    assert record["pri"] == 13
    assert datetime.fromisoformat(record["timereported"]).tzinfo is not None  # time received


# ---------------------------------------------------------------------------------------------
# TLS


def tls_send(peer: RsyslogPeer, ctx: ssl.SSLContext, text: str) -> None:
    with tls_connect(peer, ctx) as s:
        s.sendall(octet(rfc5424(text)))


def assert_only(peer: RsyslogPeer, pki: PKI, sentinel: str = "sentinel") -> None:
    """After refusals: a good client's message arrives, and it is the only one."""
    tls_send(peer, client_context(pki.ca.cert, pki.client), sentinel)
    assert [r["msg"] for r in peer.messages(1, timeout=TIMEOUT)] == [BOM + sentinel]


@pytest.mark.parametrize("driver", ["gtls", "ossl"])
def test_tls_certvalid_accepts_a_client_certificate_from_the_ca(
    rsyslog: RsyslogFactory, pki: PKI, driver: str
) -> None:
    peer = rsyslog(tls=TLS(driver=driver))
    with tls_connect(peer, client_context(pki.ca.cert, pki.client)) as s:
        assert s.version() == "TLSv1.3"
        s.sendall(octet(rfc5424(TEXT + " over tls")))
    [record] = peer.messages(1, timeout=TIMEOUT)
    assert_rfc5424_fields(record, TEXT + " over tls")


@pytest.mark.parametrize("driver", ["gtls", "ossl"])
def test_tls_certvalid_refuses_a_client_without_certificate_after_the_handshake(
    rsyslog: RsyslogFactory, pki: PKI, driver: str
) -> None:
    peer = rsyslog(tls=TLS(driver=driver))
    refused(peer, client_context(pki.ca.cert), octet(rfc5424("must not arrive")))
    assert_only(peer, pki)
    peer.wait_internal("did not", timeout=TIMEOUT)  # "... did not provide/return a certificate"


@pytest.mark.parametrize("driver", ["gtls", "ossl"])
def test_tls_certvalid_refuses_a_client_certificate_from_another_ca(
    rsyslog: RsyslogFactory, pki: PKI, driver: str
) -> None:
    peer = rsyslog(tls=TLS(driver=driver))
    refused(peer, client_context(pki.ca.cert, pki.other_client), octet(rfc5424("must not arrive")))
    assert_only(peer, pki)


@pytest.mark.parametrize(
    ("auth_mode", "permitted"),
    [
        ("x509/name", lambda pki: pki.client.name),
        ("x509/fingerprint", lambda pki: pki.client.sha256),
        ("x509/fingerprint", lambda pki: pki.client.sha1),
    ],
    ids=["name", "sha256", "sha1"],
)
def test_tls_permitted_peer_admits_only_the_named_client(
    rsyslog: RsyslogFactory, pki: PKI, auth_mode: str, permitted: Any
) -> None:
    # gtls only: 8.2302's ossl driver skips the permittedPeer check when its handshake needs a
    # retry (rsyslog issue #6350, fixed upstream in 2026), so an ossl refusal is a coin toss.
    peer = rsyslog(tls=TLS(auth_mode=auth_mode, permitted_peers=[permitted(pki)]))
    # client2: same CA, another name and fingerprint.
    refused(peer, client_context(pki.ca.cert, pki.client2), octet(rfc5424("must not arrive")))
    assert_only(peer, pki, "permitted")


def test_tls_anon_accepts_a_client_without_certificate(rsyslog: RsyslogFactory, pki: PKI) -> None:
    peer = rsyslog(tls=TLS(auth_mode="anon"))
    tls_send(peer, client_context(pki.ca.cert), "anonymous")
    assert [r["msg"] for r in peer.messages(1, timeout=TIMEOUT)] == [BOM + "anonymous"]


# ---------------------------------------------------------------------------------------------
# RELP


def read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:  # each recv returns at least one byte or fails on the timeout
        chunk = sock.recv(n - len(buf))
        assert chunk, f"connection closed after {buf!r}"
        buf += chunk
    return buf


def relp_frame(sock: socket.socket) -> bytes:
    """Read one RELP frame: TXNR SP COMMAND SP DATALEN [SP DATA] LF."""
    head = b""
    while head.count(b" ") < 2:
        head += read_exactly(sock, 1)
        assert len(head) < 64, head
    digits = read_exactly(sock, 1)
    while digits[-1:].isdigit():
        digits += read_exactly(sock, 1)
        assert len(digits) < 12, digits
    length = int(digits[:-1])
    if length == 0:
        assert digits.endswith(b"\n"), digits
        return head + digits
    assert digits.endswith(b" "), digits
    data = read_exactly(sock, length + 1)
    assert data.endswith(b"\n"), data
    return head + digits + data


def relp_send(sock: socket.socket, txnr: int, command: str, data: bytes) -> bytes:
    sp = b" " if data else b""
    sock.sendall(b"%d %s %d%s%s\n" % (txnr, command.encode(), len(data), sp, data))
    return relp_frame(sock)


def test_relp_no_loss_peer_has_written_a_message_when_it_acknowledges_it(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    offers = b"relp_version=0\nrelp_software=test,0\ncommands=syslog"
    with socket.create_connection(peer.address("relp"), timeout=TIMEOUT) as s:
        assert relp_send(s, 1, "open", offers).startswith(b"1 rsp ")
        for txnr in range(2, 7):
            ack = relp_send(s, txnr, "syslog", rfc5424(f"relp {txnr}"))
            assert ack == b"%d rsp 6 200 OK\n" % txnr
            # queue.type="Direct": written before the ack, so no waiting here.
            assert one(peer.records(), f"relp {txnr}")["inputname"] == "imrelp"
        assert relp_send(s, 7, "close", b"") == b"7 rsp 0\n"
    assert len(peer.records()) == 5


# ---------------------------------------------------------------------------------------------
# Unix socket


def test_uxsock_special_parser_takes_local_format_without_hostname(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(uxsock=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"<14>Oct 11 22:14:15 uxtag[4242]: " + TEXT.encode(), peer.uxsock_path)
    [record] = peer.messages(1, timeout=TIMEOUT)
    assert record["inputname"] == "imuxsock"
    assert record["pri"] == 14
    assert record["app-name"] == "uxtag"
    assert record["procid"] == "4242"
    assert record["hostname"] == socket.gethostname().split(".")[0]
    assert record["msg"] == " " + TEXT  # RFC 3164 msg keeps the space after "tag:"


def test_uxsock_with_parse_hostname_takes_hostname_from_the_message(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(uxsock=UxSock(use_special_parser=False, parse_hostname=True))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"<14>Oct 11 22:14:15 uxhost uxtag[7]: with host", peer.uxsock_path)
        s.sendto(rfc5424(TEXT), peer.uxsock_path)
    records = peer.messages(2, timeout=TIMEOUT)
    bsd = one(records, "with host")
    assert (bsd["hostname"], bsd["app-name"], bsd["procid"]) == ("uxhost", "uxtag", "7")
    assert_rfc5424_fields(one(records, TEXT), TEXT, timestamp=False)


# ---------------------------------------------------------------------------------------------
# logger(1)


@pytest.mark.parametrize("transport", ["--tcp", "--udp"])
def test_logger_rfc5424_reaches_the_peer_with_its_sd_and_msgid(
    rsyslog: RsyslogFactory, need: Need, transport: str
) -> None:
    logger = need.logger()
    peer = rsyslog(udp=True, tcp=True)
    port = peer.tcp_port if transport == "--tcp" else peer.udp_port
    cmd = [logger, "--rfc5424", transport, "-n", "127.0.0.1", "-P", str(port)]
    cmd += ["-t", "loggertag", "--sd-id", "id@32473", "--sd-param", 'k="v"']
    cmd += ["--msgid", "LID", "-p", "local3.err"]
    if transport == "--tcp":
        cmd.append("--octet-count")
    subprocess.run([*cmd, "from logger " + TEXT], check=True, timeout=TIMEOUT)
    [record] = peer.messages(1, timeout=TIMEOUT)
    assert record["pri"] == 19 * 8 + 3
    assert record["protocol-version"] == 1
    assert record["app-name"] == "loggertag"
    assert record["msgid"] == "LID"
    assert '[timeQuality tzKnown="1" isSynced="0"' in record["structured-data"]
    assert '[id@32473 k="v"]' in record["structured-data"]
    assert record["msg"] == "from logger " + TEXT  # logger sends no BOM
    assert record["inputname"] == ("imtcp" if transport == "--tcp" else "imudp")


# ---------------------------------------------------------------------------------------------
# Life cycle


def test_sigkill_then_restart_serves_again_on_the_same_ports_and_socket(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(udp=True, tcp=True, uxsock=True)
    ports, path, first_pid = (peer.udp_port, peer.tcp_port), peer.uxsock_path, peer.pid
    with socket.create_connection(peer.address("tcp"), timeout=TIMEOUT) as s:
        s.sendall(rfc5424("before kill") + b"\n")
    peer.messages(1, timeout=TIMEOUT)

    peer.kill(signal.SIGKILL)
    assert not peer.running
    assert peer.pid_path.exists()  # stale pid file left behind; restart() must cope
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(peer.address("tcp"), timeout=TIMEOUT).close()

    peer.restart()
    assert peer.running and peer.pid != first_pid
    assert (peer.udp_port, peer.tcp_port, peer.uxsock_path) == (*ports, path)
    with socket.create_connection(peer.address("tcp"), timeout=TIMEOUT) as s:
        s.sendall(rfc5424("after restart tcp") + b"\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(rfc5424("after restart udp"), peer.address("udp"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"<14>Oct 11 22:14:15 uxtag: after restart ux", peer.uxsock_path)
    records = peer.messages(4, timeout=TIMEOUT)
    for text in ("before kill", "after restart tcp", "after restart udp", "after restart ux"):
        one(records, text)


def _wait_until_stopped(pid: int | None, timeout: float = 5.0) -> None:
    """Wait (bounded) until the kernel shows the process as stopped (state T)."""
    assert pid is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop within {timeout} s")


def test_sigstop_pauses_delivery_and_sigcont_resumes_it(rsyslog: RsyslogFactory) -> None:
    peer = rsyslog(udp=True)
    peer.kill(signal.SIGSTOP)
    _wait_until_stopped(peer.pid)  # the signal is asynchronous: a datagram sent at once may land
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(rfc5424("while stopped"), peer.address("udp"))
    with pytest.raises(PeerError):
        peer.messages(1, timeout=0.3)
    peer.kill(signal.SIGCONT)
    one(peer.messages(1, timeout=TIMEOUT), "while stopped")


def test_stop_ends_the_daemon_and_frees_the_port(rsyslog: RsyslogFactory) -> None:
    peer = rsyslog(tcp=True)
    pid = peer.pid
    assert pid is not None
    peer.stop()
    assert not peer.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(peer.address("tcp"), timeout=TIMEOUT).close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_port_taken_by_another_process_is_replaced_by_a_free_one(
    rsyslog: RsyslogFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = [taken]
        real = ports.free_port
        monkeypatch.setattr(
            ports, "free_port", lambda host="127.0.0.1": offered.pop() if offered else real(host)
        )
        peer = rsyslog(tcp=True)
        assert peer.tcp_port != taken
        with socket.create_connection(peer.address("tcp"), timeout=TIMEOUT) as s:
            s.sendall(rfc5424("on the second port") + b"\n")
        one(peer.messages(1, timeout=TIMEOUT), "on the second port")


def test_messages_timeout_raises_with_what_arrived_and_the_internal_log(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(rfc5424("only one"), peer.address("udp"))
    with pytest.raises(PeerError, match="for 2 records, got 1") as info:
        peer.messages(2, timeout=0.5)
    assert "only one" in str(info.value)
    assert 'swVersion="' in str(info.value)  # rsyslogd's start message, from the internal log


def test_a_config_rsyslogd_rejects_fails_start_with_its_validation_output(
    rsyslog: RsyslogFactory,
) -> None:
    with pytest.raises(PeerError) as info:
        rsyslog(udp=True, extra_config="this is not( rsyslog config")
    assert "rsyslogd -N1" in str(info.value)
    assert "this is not( rsyslog config" in str(info.value)


# ---------------------------------------------------------------------------------------------
# The skip/fail policy


def test_missing_peer_skips_locally_but_fails_under_ci(
    need: Need, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no such peer"):
        need(False, "no such peer")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no such peer"):
        need(False, "no such peer")
    need(True, "present")  # no-op either way
