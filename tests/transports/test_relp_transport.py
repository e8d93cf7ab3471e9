"""The RELP client transport against a scripted RELP server (syslogkit.codec.relp.RelpServer).

The server can refuse messages, drop the connection with messages unanswered, or send the
`serverclose` hint, which a real imrelp does not do on request. Against rsyslog itself see
test_interop_relp.py.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.delivery import first_arrivals, number_of, payload, wait_for
from support.peers import PKI
from support.relp import TIMEOUT, FakeRelp, transport
from syslogkit.codec.relp import MessageReceived, RelpServer
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import TransportError
from syslogkit.transports.relp import (
    DEFAULT_PORT,
    RelpTLSTransport,
    make_relp_transport,
)
from syslogkit.transports.tls import TLSConfig


@pytest.fixture
def fake() -> Iterator[FakeRelp]:
    server = FakeRelp()
    yield server
    server.close()


def test_default_port_is_rsyslogs() -> None:
    assert DEFAULT_PORT == 2514


def test_sync_write_waits_for_the_answer_and_close_says_goodbye(fake: FakeRelp) -> None:
    relp = transport(fake.port)
    relp.open()
    relp.write(payload(1))
    assert [number_of(m) for m in fake.messages] == [1]
    relp.close(TIMEOUT)
    assert wait_for(lambda: fake.closes == 1)


def test_a_refused_message_is_dropped_and_counted_not_retried() -> None:
    server = FakeRelp(lambda n, message: "refuse" if number_of(message) == 3 else "ok")
    try:
        delivery = BackgroundDelivery(transport(server.port))
        for i in range(10):
            delivery.deliver(payload(i))
        assert delivery.flush(10.0)
        delivery.close(2.0)
        stats = delivery.stats.snapshot()
        assert stats["acknowledged"] == 9
        assert stats["dropped_refused"] == 1
        assert [number_of(m) for m in server.messages] == list(range(10))
    finally:
        server.close()


def test_unanswered_messages_are_sent_again_on_the_next_session() -> None:
    """The server hangs up without answering, twice: every record arrives, in order of first
    arrival, and each repeated arrival is a counted re-send."""
    drops = {500, 1500}
    server = FakeRelp(lambda n, message: "drop" if n in drops else "ok")
    try:
        delivery = BackgroundDelivery(transport(server.port, window=64), queue_size=10_000)
        for i in range(3000):
            delivery.deliver(payload(i))
        assert delivery.flush(20.0)
        delivery.close(2.0)
        stats = delivery.stats.snapshot()
        order, dupes = first_arrivals(number_of(m) for m in server.messages)
        assert order == list(range(3000))
        assert stats["acknowledged"] == 3000
        assert stats["reconnects"] == 2
        assert 1 <= stats["resent"] <= 2 * 64
        assert dupes <= stats["resent"]
        assert stats["dropped"] == 0
    finally:
        server.close()


def test_serverclose_hint_moves_unanswered_messages_to_a_new_session() -> None:
    class Hinting(FakeRelp):
        def _session(self, raw: socket.socket) -> None:
            if self.connections == 1:
                server = RelpServer()
                raw.settimeout(TIMEOUT)
                got = 0
                while got < 5:
                    for event in server.receive_data(raw.recv(65536)):
                        if isinstance(event, MessageReceived):
                            self.messages.append(event.message)
                            got += 1
                            if got <= 2:
                                server.ack(event.txnr)
                    raw.sendall(server.data_to_send())  # the open answer, the first acks
                raw.sendall(server.data_to_send() + server.close())
                raw.close()
                return
            super()._session(raw)

    server = Hinting()
    try:
        delivery = BackgroundDelivery(transport(server.port))
        for i in range(5):
            delivery.deliver(payload(i))
        assert wait_for(lambda: len(server.messages) >= 5)
        for i in range(5, 8):
            delivery.deliver(payload(i))
        assert delivery.flush(10.0)
        delivery.close(2.0)
        order, _ = first_arrivals(number_of(m) for m in server.messages)
        assert order == list(range(8))
        assert [number_of(m) for m in server.messages[:2]] == [0, 1]
        assert delivery.stats.snapshot()["acknowledged"] == 8
    finally:
        server.close()


def test_a_server_that_refuses_the_session_is_an_error_with_backoff() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def refuse() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"1 rsp 17 500 not this time\n")

    threading.Thread(target=refuse, daemon=True).start()
    relp = transport(port)
    with pytest.raises(TransportError) as info:
        relp.open()
    assert info.value.reason == "refused"
    assert not relp.backoff.ready()
    listener.close()


def test_relp_over_tls(pki: PKI, tmp_path: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    server = FakeRelp(context=context)
    try:
        address = Address("relp+tls", "127.0.0.1", server.port)
        tls = TLSConfig.create("127.0.0.1", ca_file=str(pki.ca.cert))
        relp = make_relp_transport(address, timeout=TIMEOUT, tls=tls, backoff=Backoff(0.05, 0.5))
        assert isinstance(relp, RelpTLSTransport)
        delivery = BackgroundDelivery(relp)
        for i in range(50):
            delivery.deliver(payload(i))
        assert delivery.flush(10.0)
        delivery.close(2.0)
        assert [number_of(m) for m in server.messages] == list(range(50))
        assert delivery.stats.snapshot()["acknowledged"] == 50
    finally:
        server.close()


def test_make_relp_transport_checks_the_scheme() -> None:
    with pytest.raises(ValueError):
        make_relp_transport(Address("tcp", "127.0.0.1", 1), timeout=1.0)
    with pytest.raises(ValueError):
        make_relp_transport(Address("relp+tls", "127.0.0.1", 1), timeout=1.0)
