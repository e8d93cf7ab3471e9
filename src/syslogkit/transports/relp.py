"""RELP client transport (`relp://host:2514`, `relp+tls://host:2514`).

Drives the sans-I/O `syslogkit.codec.relp.RelpClient` over a TCP (or TLS) socket: each connection
opens a RELP session (offering `relp_version=0`, which is what rsyslog's imrelp/librelp speaks),
each message is a `syslog` command the server answers with an `rsp`, and up to `window`
messages (128 by default, librelp's) may be unanswered at once.

The background writer uses `send_messages()` (returns TXNRs) and `acknowledged()` (returns
(TXNR, taken) answers): its confirmation strategy (`syslogkit.delivery.confirm.AckConfirm`)
keeps each record until its answer arrives and, when a session breaks, sends the unanswered
ones again on the next one (at-least-once). The session itself keeps no list of messages: the
sans-I/O client keeps the protocol's state (window, answer checks), the writer what it resends.
`write()` sends one message and waits for its answer, which makes
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
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, runtime_checkable

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

__all__ = [
    "DEFAULT_PORT",
    "Acknowledging",
    "RelpTLSTransport",
    "RelpTransport",
    "make_relp_transport",
]

#: rsyslog's documented RELP port (RELP has no registered one).
DEFAULT_PORT: Final = 2514
_POLL_IN: Final = select.POLLIN | select.POLLPRI
_READ_SIZE: Final = 65536


@runtime_checkable
class Acknowledging(Protocol):
    """A transport whose collector answers each message (RELP): the background writer sends
    up to `window` messages ahead and learns, per TXNR, which were taken."""

    @property
    def window(self) -> int:
        """Messages that may be unanswered at once."""

    @property
    def max_data(self) -> int:
        """The largest message the session carries."""

    def send_messages(self, messages: Sequence[bytes]) -> list[int]:
        """Send messages (at most the free window, each at most `max_data`); their TXNRs."""

    def acknowledged(self, timeout: float) -> list[tuple[int, bool]]:
        """Answers that arrived (waiting up to `timeout` for the first): (TXNR, taken)."""


class _RelpSession(TCPTransport):
    """RELP over the socket of the stream transport after it in the MRO (TCP, or TLS).

    The protocol's state is the sans-I/O `RelpClient`'s (TXNRs, window); the session only
    passes answers on, as (TXNR, taken), in the order they arrive. Whoever sends
    keeps what it needs per TXNR (the background writer: the record and its spool ticket).
    """

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
        self._window = window
        self.software = software
        self._max_data = max_data
        self._client: RelpClient | None = None
        self._answers: list[tuple[int, bool]] = []  # received, not yet handed out
        self._failure: TransportError | None = None  # the session died; raised once answered
        self._relp_poller: select.poll | None = None
        #: rsp codes other than 200, with their text (the last few), for diagnostics
        self.refusals: deque[tuple[int, str]] = deque(maxlen=16)

    @property
    def window(self) -> int:
        """Messages that may be unanswered at once (librelp's 128 by default)."""
        return self._window

    @property
    def max_data(self) -> int:
        """The largest message a session carries (librelp's 128 KiB by default)."""
        return self._max_data

    @property
    def server_offers(self) -> tuple[tuple[str, str], ...]:
        """What the server answered `open` with (empty when no session is open)."""
        client = self._client
        return client.server_offers if client is not None else ()

    # -- session setup -------------------------------------------------------------------------

    def _open_session(self, sock: socket.socket, deadline: float) -> None:
        """Send `open` and wait for the server's answer (raises OSError/TransportError)."""
        client = RelpClient(self._window, self.software, max_data=self._max_data)
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
        self._answers.clear()
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
        answers = self._answers
        for event in events:
            if isinstance(event, Acked):
                answers.append((event.txnr, True))
            elif isinstance(event, Refused):
                self.refusals.append((event.code, event.text))
                answers.append((event.txnr, False))
            elif isinstance(event, ServerClose):
                self._fail("closed", "the server closed the session (serverclose)")
            elif isinstance(event, ProtocolViolation):
                self._fail("closed", f"RELP protocol violation: {event.reason}")
        return events

    def _fail(self, reason: str, text: str) -> None:
        if self._failure is None:
            self.last_failure = reason
            self._failure = TransportError(reason, f"{self.address}: {text}")

    def _take_answers(self) -> list[tuple[int, bool]]:
        answers = self._answers
        if not answers:
            return []
        self._answers = []
        return answers

    # -- the acknowledging interface (background writer) ---------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages sent on this session and not yet answered (the client's count)."""
        client = self._client
        return client.in_flight if client is not None else 0

    def send_messages(self, messages: Sequence[bytes]) -> list[int]:
        """Send messages (at most the free window, each at most `max_data`) in one write;
        returns their TXNRs."""
        sock, client = self.sock, self._client
        if sock is None or client is None:
            raise TransportError("closed", f"{self.address}: not connected")
        if self._failure is not None:
            raise self._failure
        txnrs = [client.send(message) for message in messages]
        data = client.data_to_send()
        if data:
            try:
                self._send_bytes(sock, data, time.monotonic() + self.timeout)
            except OSError as exc:
                self._write_failed(exc)
        return txnrs

    def acknowledged(self, timeout: float) -> list[tuple[int, bool]]:
        """Answers now available (waiting up to `timeout` for some): (TXNR, taken), in the
        order they arrived. TransportError once the session broke and every answer before
        that was taken."""
        out = self._take_answers()
        if out:
            return out
        if self._failure is not None:
            raise self._failure
        sock = self.sock
        if sock is None:
            raise TransportError("closed", f"{self.address}: not connected")
        self._receive(sock, timeout)
        out = self._take_answers()
        if not out and self._failure is not None:
            raise self._failure
        return out

    # -- Transport overrides -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send one message and wait (bounded) for its answer: a synchronous RELP send."""
        if len(data) > self._max_data:
            raise TransportError("too_large", f"{self.address}: {len(data)} octets over max_data")
        self._answers.clear()  # answers to earlier sends nobody waits for any more
        (txnr,) = self.send_messages([data])
        deadline = time.monotonic() + self.timeout
        while True:
            for answered, ok in self.acknowledged(max(deadline - time.monotonic(), 0.0)):
                if answered == txnr:
                    if not ok:
                        raise TransportError("refused", f"{self.address}: the server refused it")
                    return
            if time.monotonic() >= deadline:
                self.discard()
                raise TransportError("timeout", f"{self.address}: no RELP answer in time")

    def alive(self) -> bool:
        """False (and closed) once the session died and every answer before that was taken."""
        sock = self.sock
        if sock is None:
            return False
        if self._failure is None:
            self._receive(sock, 0.0)
        if self._failure is not None and not self._answers:
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
