"""The RELP client transport against a scripted RELP server (syslogkit.relp.RelpServer).

The server can refuse messages, drop the connection with messages unanswered, or send the
`serverclose` hint, which a real imrelp does not do on request. Against rsyslog itself see
test_interop_relp.py.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from peers import PKI
from syslogkit.address import Address
from syslogkit.background import BackgroundDelivery
from syslogkit.backoff import Backoff
from syslogkit.relp import CloseRequested, MessageReceived, ProtocolViolation, RelpServer
from syslogkit.tls import TLSConfig
from syslogkit.transports import TransportError
from syslogkit.transports.relp import (
    DEFAULT_PORT,
    RelpTLSTransport,
    RelpTransport,
    make_relp_transport,
)
from test_background_support import first_arrivals, number_of, payload, wait_for

TIMEOUT = 5.0


class FakeRelp:
    """A RELP server in a thread. `decide(n, message)` -> "ok" | "refuse" | "drop", where n
    counts messages over all connections; "drop" closes the connection without answering."""

    def __init__(
        self,
        decide: Callable[[int, bytes], str] | None = None,
        *,
        context: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.decide = decide or (lambda n, message: "ok")
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.messages: list[bytes] = []
        self.connections = 0
        self.closes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, raw: socket.socket) -> None:
        conn = raw
        try:
            if self.context is not None:
                raw.settimeout(TIMEOUT)
                conn = self.context.wrap_socket(raw, server_side=True)
            conn.settimeout(0.2)
            server = RelpServer()
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                for event in server.receive_data(data):
                    if isinstance(event, MessageReceived):
                        verdict = self.decide(len(self.messages), event.message)
                        self.messages.append(event.message)
                        if verdict == "drop":
                            return
                        server.ack(event.txnr, verdict == "ok", "OK" if verdict == "ok" else "no")
                    elif isinstance(event, CloseRequested):
                        self.closes += 1
                    elif isinstance(event, ProtocolViolation):
                        return
                out = server.data_to_send()
                if out:
                    conn.sendall(out)
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(2.0)


@pytest.fixture
def fake() -> Iterator[FakeRelp]:
    server = FakeRelp()
    yield server
    server.close()


def transport(port: int, window: int = 128) -> RelpTransport:
    return RelpTransport(
        Address("relp", "127.0.0.1", port),
        timeout=TIMEOUT,
        backoff=Backoff(0.05, 0.5),
        window=window,
    )


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
