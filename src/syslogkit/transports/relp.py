"""RELP client transport (`relp://host:2514`, `relp+tls://host:2514`).

Drives the sans-I/O `syslogkit.codec.relp.RelpClient` over a TCP (or TLS) socket: each connection
opens a RELP session (offering `relp_version=0`, which is what rsyslog's imrelp/librelp speaks),
each message is a `syslog` command the server answers with an `rsp`, and up to `window`
messages (128 by default, librelp's) may be unanswered at once.

The background writer uses `send_messages()` and `acknowledged()`: it keeps every message
until its answer arrives and, when a session breaks, sends the unanswered ones again on the
next one (at-least-once). `write()` sends one message and waits for its answer, which makes
synchronous delivery over RELP mean "acknowledged".

Messages are whole syslog messages, not octet-counted frames: RELP frames them itself.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from syslogkit.codec.relp import (
    DEFAULT_MAX_DATA,
    DEFAULT_WINDOW,
    Acked,
    Closed,
    OpenFailed,
    ProtocolViolation,
    Refused,
    RelpClient,
    ServerClose,
    SessionOpened,
)
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import TransportError, send_all
from syslogkit.transports.stream import TCPTransport, TLSTransport

if TYPE_CHECKING:
    from syslogkit.transports.address import Address
    from syslogkit.transports.tls import TLSConfig

__all__ = ["DEFAULT_PORT", "RelpTLSTransport", "RelpTransport", "make_relp_transport"]

#: rsyslog's documented RELP port (RELP has no registered one).
DEFAULT_PORT: Final = 2514
_POLL_IN: Final = select.POLLIN | select.POLLPRI
_READ_SIZE: Final = 65536


class _Slot:
    """A message handed over: its TXNR (None when it never went out) and its answer."""

    __slots__ = ("answer", "txnr")

    def __init__(self, txnr: int | None, answer: bool | None = None) -> None:
        self.txnr = txnr
        self.answer = answer


class _RelpSession(TCPTransport):
    """RELP over the socket of the stream transport after it in the MRO (TCP, or TLS)."""

    acknowledges: ClassVar[bool] = True
    stream: ClassVar[bool] = True

    def __init__(
        self,
        address: Address,
        *,
        timeout: float,
        backoff: Backoff | None = None,
        window: int = DEFAULT_WINDOW,
        software: str | None = None,
        max_data: int = DEFAULT_MAX_DATA,
        **stream_options: Any,
    ) -> None:
        if window < 1:
            raise ValueError("RELP window must be at least 1")
        super().__init__(address, timeout=timeout, backoff=backoff, **stream_options)
        self.window = window
        self.software = software
        self.max_data = max_data
        self._client: RelpClient | None = None
        self._slots: deque[_Slot] = deque()
        self._by_txnr: dict[int, _Slot] = {}
        self._failure: TransportError | None = None  # the session died; raised once answered
        self._relp_poller: select.poll | None = None
        #: rsp codes other than 200, with their text (the last few), for diagnostics
        self.refusals: deque[tuple[int, str]] = deque(maxlen=16)

    # -- session setup -------------------------------------------------------------------------

    def _open_session(self, sock: socket.socket, deadline: float) -> None:
        """Send `open` and wait for the server's answer (raises OSError/TransportError)."""
        client = RelpClient(self.window, self.software, max_data=self.max_data)
        self._reset_session()
        self._client = client
        self._relp_poller = select.poll()
        self._relp_poller.register(sock, _POLL_IN)
        self._send_bytes(sock, client.open(), deadline)
        while client.state == "opening":
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer to the RELP open command")
            for event in self._receive(sock, left):
                if isinstance(event, OpenFailed):
                    raise TransportError(
                        "refused", f"{self.address}: RELP open refused: {event.code} {event.text}"
                    )
                if isinstance(event, ProtocolViolation):
                    raise TransportError(
                        "closed", f"{self.address}: RELP open failed: {event.reason}"
                    )
                if isinstance(event, SessionOpened):
                    return
            if self._failure is not None:
                raise self._failure

    def _reset_session(self) -> None:
        self._client = None
        self._slots.clear()
        self._by_txnr.clear()
        self._failure = None
        self._relp_poller = None

    # -- I/O -----------------------------------------------------------------------------------

    def _send_bytes(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(data)
        else:
            send_all(sock, data, max(deadline - time.monotonic(), 0.001))

    def _receive(self, sock: socket.socket, timeout: float) -> list[object]:
        """Read what the server sent (waiting up to `timeout`) and feed it to the client.

        A closed connection or a protocol violation is kept in `_failure`, raised once the
        answers that came before it were taken.
        """
        client = self._client
        if client is None or self._failure is not None:
            return []
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not pending:
            poller = self._relp_poller
            assert poller is not None
            if not poller.poll(max(timeout, 0.0) * 1000.0):
                return []
        events: list[object] = []
        sock.settimeout(0.0)
        try:
            for _ in range(16):
                data = sock.recv(_READ_SIZE)
                if not data:
                    self._fail("closed", "the server closed the connection")
                    break
                events.extend(client.receive_data(data))
                if not (isinstance(sock, ssl.SSLSocket) and sock.pending()) and len(data) < (
                    _READ_SIZE
                ):
                    break
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError as exc:
            self._fail("closed", f"reading: {exc}")
        for event in events:
            if isinstance(event, Acked):
                self._answer(event.txnr, True)
            elif isinstance(event, Refused):
                self.refusals.append((event.code, event.text))
                self._answer(event.txnr, False)
            elif isinstance(event, ServerClose):
                self._fail("closed", "the server closed the session (serverclose)")
            elif isinstance(event, ProtocolViolation):
                self._fail("closed", f"RELP protocol violation: {event.reason}")
        return events

    def _answer(self, txnr: int, ok: bool) -> None:
        slot = self._by_txnr.pop(txnr, None)
        if slot is not None:
            slot.answer = ok

    def _fail(self, reason: str, text: str) -> None:
        if self._failure is None:
            self.last_failure = reason
            self._failure = TransportError(reason, f"{self.address}: {text}")

    def _ready(self) -> list[bool]:
        """Answers at the front of the slots, in the order the messages were handed over."""
        slots = self._slots
        out: list[bool] = []
        while slots and slots[0].answer is not None:
            answer = slots.popleft().answer
            assert answer is not None
            out.append(answer)
        return out

    # -- the acknowledging interface (background writer) ---------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages handed over and not yet answered."""
        return len(self._slots)

    def send_messages(self, messages: Sequence[bytes]) -> None:
        """Send messages (at most the free window) in one write."""
        sock, client = self.sock, self._client
        if sock is None or client is None:
            raise TransportError("closed", f"{self.address}: not connected")
        if self._failure is not None:
            raise self._failure
        for message in messages:
            if len(message) > client.max_data:
                self._slots.append(_Slot(None, False))  # refused here: never sent
                continue
            txnr = client.send(message)
            slot = _Slot(txnr)
            self._slots.append(slot)
            self._by_txnr[txnr] = slot
        data = client.data_to_send()
        if not data:
            return
        try:
            self._send_bytes(sock, data, time.monotonic() + self.timeout)
        except OSError as exc:
            self._write_failed(exc)

    def acknowledged(self, timeout: float) -> list[bool]:
        """Answers now available (waiting up to `timeout` for some), in sending order."""
        out = self._ready()
        if out:
            return out
        if self._failure is not None:
            raise self._failure
        sock = self.sock
        if sock is None:
            raise TransportError("closed", f"{self.address}: not connected")
        self._receive(sock, timeout)
        out = self._ready()
        if not out and self._failure is not None:
            raise self._failure
        return out

    # -- Transport overrides -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send one message and wait (bounded) for its answer: a synchronous RELP send."""
        if self._slots:
            self._discard_answers()
        self.send_messages([data])
        deadline = time.monotonic() + self.timeout
        while True:
            answers = self.acknowledged(max(deadline - time.monotonic(), 0.0))
            if answers:
                if not answers[-1]:
                    raise TransportError("refused", f"{self.address}: the server refused it")
                return
            if time.monotonic() >= deadline:
                self.discard()
                raise TransportError("timeout", f"{self.address}: no RELP answer in time")

    def _discard_answers(self) -> None:
        self._slots.clear()
        self._by_txnr.clear()

    def alive(self) -> bool:
        """False (and closed) once the session died and every answer before that was taken."""
        sock = self.sock
        if sock is None:
            return False
        if self._failure is None:
            self._receive(sock, 0.0)
        if self._failure is not None and not (self._slots and self._slots[0].answer is not None):
            self.discard()
            return False
        return True

    def _connect(self, deadline: float) -> socket.socket:
        sock = super()._connect(deadline)
        try:
            self._open_session(sock, deadline)
        except BaseException:
            self._reset_session()
            sock.close()
            raise
        return sock

    def discard(self) -> None:
        super().discard()
        self._reset_session()

    def _shutdown(self, sock: socket.socket, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._goodbye(sock, timeout)
        self._reset_session()
        super()._shutdown(sock, max(deadline - time.monotonic(), 0.0))

    def _goodbye(self, sock: socket.socket, timeout: float) -> None:
        """Send `close` and wait (bounded) for its answer or the server's hint."""
        client = self._client
        if client is None or self._failure is not None:
            return
        deadline = time.monotonic() + max(timeout, 0.001)
        self._send_bytes(sock, client.close(), deadline)
        while client.state == "closing":
            left = deadline - time.monotonic()
            if left <= 0 or self._failure is not None:
                return
            events = self._receive(sock, left)
            if any(isinstance(event, (Closed, ServerClose)) for event in events):
                return


class RelpTransport(_RelpSession):
    """RELP over plain TCP."""


class RelpTLSTransport(_RelpSession, TLSTransport):
    """RELP inside TLS (`relp+tls://`), verified like `tls://` (CA, name, pins, client cert)."""

    def __init__(
        self,
        address: Address,
        *,
        timeout: float,
        tls: TLSConfig,
        backoff: Backoff | None = None,
        window: int = DEFAULT_WINDOW,
        software: str | None = None,
        max_data: int = DEFAULT_MAX_DATA,
    ) -> None:
        super().__init__(
            address,
            timeout=timeout,
            backoff=backoff,
            window=window,
            software=software,
            max_data=max_data,
            tls=tls,
        )


def make_relp_transport(
    address: Address,
    *,
    timeout: float,
    backoff: Backoff | None = None,
    tls: TLSConfig | None = None,
    window: int = DEFAULT_WINDOW,
) -> RelpTransport | RelpTLSTransport:
    """The RELP transport for a `relp://` or `relp+tls://` address."""
    if address.scheme == "relp+tls":
        if tls is None:
            raise ValueError("a relp+tls:// address needs TLS settings")
        return RelpTLSTransport(address, timeout=timeout, backoff=backoff, tls=tls, window=window)
    if address.scheme != "relp":
        raise ValueError(f"not a RELP address: {address}")
    return RelpTransport(address, timeout=timeout, backoff=backoff, window=window)
