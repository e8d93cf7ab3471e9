"""A scripted RELP server in a thread (syslogkit's own sans-I/O `RelpServer`), and the RELP
client transport the tests point at it. The server can refuse messages, drop the connection
with messages unanswered, or send the `serverclose` hint, which a real imrelp does not do on
request."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable

from syslogkit.codec.relp import CloseRequested, MessageReceived, ProtocolViolation, RelpServer
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.relp import RelpTransport

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


def transport(port: int, window: int = 128) -> RelpTransport:
    return RelpTransport(
        Address("relp", "127.0.0.1", port),
        timeout=TIMEOUT,
        backoff=Backoff(0.05, 0.5),
        window=window,
    )
