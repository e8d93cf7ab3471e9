"""syslogkit.delivery.outq: SIOCOUTQ and the ledger of records written on a connection."""

from __future__ import annotations

import socket
import sys

import pytest

from support.delivery import wait_for
from syslogkit.delivery.outq import Ledger, unacked_bytes

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCOUTQ is Linux's")


@linux
def test_siocoutq_sees_bytes_the_peer_has_not_acknowledged() -> None:
    # unix stream: buffer memory not yet read by the peer (more than the payload: conservative)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert unacked_bytes(a) == 0
        a.sendall(b"x" * 1000)
        assert (unacked_bytes(a) or 0) >= 1000
        b.recv(2000)
        assert unacked_bytes(a) == 0
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        with client, conn:
            client.sendall(b"y" * 5000)
            # loopback: the peer's kernel acknowledges at once, unread or not
            assert wait_for(lambda: unacked_bytes(client) == 0)


def test_unacked_bytes_is_none_for_a_closed_socket() -> None:
    s = socket.socket()
    s.close()
    assert unacked_bytes(s) is None


def test_the_ledger_retires_what_was_acknowledged_and_returns_the_rest_on_a_break() -> None:
    outq = {"value": 0}
    ledger: Ledger[str] = Ledger(probe=lambda sock: outq["value"])
    sock = socket.socket()
    try:
        ledger.wrote("a", 10, 2)
        ledger.wrote("b", 10, 3)
        ledger.wrote("c", 10, 1)
        outq["value"] = 15  # the peer's kernel acknowledged 15 of 30 bytes: "a" only
        assert ledger.sample(sock) == ["a"]
        ledger.wrote("d", 10, 4)
        outq["value"] = 25
        assert ledger.sample(sock) == []  # acknowledged up to 15: "b" ends at 20
        outq["value"] = 17
        assert ledger.sample(sock) == ["b"]  # 23 of 40 acknowledged
        resend, maybe_lost, partial = ledger.broken()
        assert resend == ["c", "d"]
        assert maybe_lost == 5  # the records of "a" and "b": the peer's kernel had them
        assert partial == 3  # 3 bytes of "c" were acknowledged too
        assert len(ledger) == 0 and ledger.written == 0
    finally:
        sock.close()


def test_without_siocoutq_the_last_send_buffer_is_taken_as_unacknowledged() -> None:
    ledger: Ledger[int] = Ledger(probe=lambda sock: None, fallback_window=100)
    for i in range(10):
        ledger.wrote(i, 50)
    assert ledger.sample(None) == list(range(8))  # the last 100 bytes stay
    assert not ledger.exact
    assert ledger.confirm() == [8, 9]
    assert ledger.unconfirmed == 0
