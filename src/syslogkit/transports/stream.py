"""Stream transports: TCP, TLS over TCP, unix stream sockets.

A syslog collector never talks back on these streams, so anything readable on an idle
connection is either the peer closing it or (TLS 1.3) a session ticket. `alive()` checks that
without blocking before each write, so the first record after a collector restart is not
written into a dead connection and lost.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from typing import TYPE_CHECKING, Final

from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import (
    HostTransport,
    Transport,
    TransportError,
    connect_unix,
    remaining,
)
from syslogkit.transports.tls import check_fingerprint

if TYPE_CHECKING:
    from syslogkit.transports.address import Address
    from syslogkit.transports.tls import TLSConfig

__all__ = ["TCPTransport", "TLSTransport", "UnixStreamTransport"]

_POLL_IN: Final = select.POLLIN | select.POLLPRI
_KEEPALIVE_IDLE: Final = 30  # seconds before the first keepalive probe
_KEEPALIVE_INTERVAL: Final = 10
_KEEPALIVE_COUNT: Final = 3
_USER_TIMEOUT_MS: Final = 30_000  # unacknowledged data older than this kills the connection
_DRAIN_READS: Final = 16
#: A stream idle this long (seconds) is checked for a closed peer before the next write. Busier
#: streams skip the check (a poll per record costs as much as the write); there a closed peer
#: shows as a failed write, after which the record is re-sent on a new connection.
IDLE_CHECK: Final = 0.001


def tune_tcp(sock: socket.socket) -> None:
    """SO_KEEPALIVE and TCP_USER_TIMEOUT, so a half-open connection is noticed."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", _KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", _KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", _USER_TIMEOUT_MS),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


class _PlainStream(Transport):
    """A non-blocking stream socket whose peer is checked for EOF before each write."""

    stream = True

    def __init__(self, address: Address, *, timeout: float, backoff: Backoff | None = None) -> None:
        super().__init__(address, timeout=timeout, backoff=backoff)
        self._poller = select.poll()
        self._polled: socket.socket | None = None
        self._last_use = 0.0

    def _watch(self, sock: socket.socket) -> None:
        """Poll this socket for readability from now on."""
        if self._polled is not None:
            try:
                self._poller.unregister(self._polled)
            except (KeyError, ValueError, OSError):
                self._poller = select.poll()
        self._poller.register(sock, _POLL_IN)
        self._polled = sock

    def alive(self) -> bool:
        """False (and the connection closed) when the peer has closed or reset it."""
        sock = self.sock
        if sock is None:
            return False
        now = time.monotonic()
        idle, self._last_use = now - self._last_use, now
        if idle < IDLE_CHECK:
            return True
        if sock is not self._polled:
            self._watch(sock)
        if not self._poller.poll(0) and not self._pending(sock):
            return True
        if self._drain(sock):
            return True
        self.last_failure = "closed"
        self.discard()
        return False

    def _pending(self, sock: socket.socket) -> bool:
        """Bytes already read from the kernel but not yet consumed (TLS only)."""
        return False

    def _shutdown(self, sock: socket.socket, timeout: float) -> None:
        """Read what is unread (closing over it would reset), then half-close."""
        self._drain(sock)
        sock.shutdown(socket.SHUT_WR)

    def _drain(self, sock: socket.socket) -> bool:
        """Read and discard what the peer sent; False on EOF or error."""
        try:
            for _ in range(_DRAIN_READS):
                if not sock.recv(4096):
                    return False
        except BlockingIOError:
            return True
        except OSError:
            return False
        return True


class TCPTransport(_PlainStream, HostTransport):
    """TCP to a host and port, resolved once per connect, with keepalive and user timeout."""

    def _tcp_connect(self, deadline: float) -> socket.socket:
        def prepare(sock: socket.socket) -> None:
            tune_tcp(sock)
            sock.settimeout(remaining(deadline))

        return self._connect_host(socket.SOCK_STREAM, deadline, prepare)

    def _connect(self, deadline: float) -> socket.socket:
        sock = self._tcp_connect(deadline)
        sock.setblocking(False)
        return sock


class UnixStreamTransport(_PlainStream):
    """A unix stream socket (`unix+stream:///path`)."""

    def _connect(self, deadline: float) -> socket.socket:
        path = self.address.path
        assert path is not None
        return connect_unix(path, socket.SOCK_STREAM, deadline)


class TLSTransport(TCPTransport):
    """TLS over TCP (RFC 5425): verified or pinned, session confirmed before data counts.

    Under TLS 1.3 a server that refuses the client certificate does so after the client's
    handshake has completed, so after the handshake the transport reads for up to
    `confirm_timeout` seconds: a session ticket confirms the session at once, a close or an
    alert refuses it, silence until the deadline is taken as acceptance.
    """

    def __init__(
        self,
        address: Address,
        *,
        timeout: float,
        tls: TLSConfig,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(address, timeout=timeout, backoff=backoff)
        self.tls = tls

    def _connect(self, deadline: float) -> socket.socket:
        raw = self._tcp_connect(deadline)
        try:
            sock = self.tls.context.wrap_socket(
                raw, server_hostname=self.tls.server_hostname, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as exc:
            raw.close()
            raise TransportError("tls", f"{self.address}: {exc}") from exc
        try:
            self._secure(sock, deadline)
        except (OSError, ValueError) as exc:
            sock.close()
            raise TransportError("tls", f"{self.address}: TLS refused: {_tls_text(exc)}") from exc
        return sock

    def _secure(self, sock: ssl.SSLSocket, deadline: float) -> None:
        """Handshake, pin check and session confirmation, all before the deadline."""
        sock.settimeout(remaining(deadline))
        sock.do_handshake()
        if self.tls.pins:
            check_fingerprint(sock.getpeercert(binary_form=True), self.tls.pins)
        if sock.version() == "TLSv1.3":
            self._confirm(sock, min(deadline, time.monotonic() + self.tls.confirm_timeout))
        sock.settimeout(0.0)  # writes wait with poll themselves (no poll before each write)

    def _confirm(self, sock: ssl.SSLSocket, until: float) -> None:
        """Read until a session ticket, a refusal, or `until`; raise on refusal."""
        poller = select.poll()
        poller.register(sock, _POLL_IN)
        sock.settimeout(0.0)
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            if not sock.pending() and not poller.poll(left * 1000.0):
                return
            try:
                data = sock.recv(4096)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                session = sock.session
                if session is not None and session.has_ticket:
                    return
                continue
            if not data:
                raise ConnectionResetError(
                    "the server closed the connection right after the handshake "
                    "(client certificate missing or refused?)"
                )

    def _pending(self, sock: socket.socket) -> bool:
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def _drain(self, sock: socket.socket) -> bool:
        """Process what arrived (session tickets carry no data); False on close/alert."""
        try:
            for _ in range(_DRAIN_READS):
                if not sock.recv(16384):
                    return False
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        except OSError:
            return False
        return True

    def write(self, data: bytes) -> None:
        """Encrypt and write all of `data` within `timeout` (one SSL_write when there is room)."""
        sock = self.sock
        if not isinstance(sock, ssl.SSLSocket):
            raise TransportError("closed", f"{self.address}: not connected")
        try:
            if sock.write(data) == len(data):
                return
            raise ssl.SSLError("partial TLS write")  # not with OpenSSL's default write mode
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError) as want:
            try:
                _finish_tls_write(sock, data, want, self.timeout)
            except OSError as exc:
                self._write_failed(exc)
        except OSError as exc:
            self._write_failed(exc)

    def _shutdown(self, sock: socket.socket, timeout: float) -> None:
        """Send close_notify, then wait (bounded) for the peer's close_notify or EOF.

        Unread session tickets are read first: closing with unread data would send a reset,
        which can make the peer discard records it has not read yet.
        """
        if not isinstance(sock, ssl.SSLSocket):
            return
        deadline = time.monotonic() + timeout
        self._drain(sock)
        sock.settimeout(0.0)
        poller = select.poll()
        poller.register(sock, _POLL_IN)
        while True:
            try:
                sock.unwrap()
                return
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                left = deadline - time.monotonic()
                if left <= 0 or not poller.poll(left * 1000.0):
                    return


def _finish_tls_write(sock: ssl.SSLSocket, data: bytes, want: ssl.SSLError, timeout: float) -> None:
    """Retry an SSL_write that wanted the socket (the same buffer, as OpenSSL requires)."""
    deadline = time.monotonic() + timeout
    poller = select.poll()
    while True:
        event = select.POLLIN if isinstance(want, ssl.SSLWantReadError) else select.POLLOUT
        poller.register(sock, event)
        if not poller.poll(remaining(deadline) * 1000.0):
            continue
        try:
            sock.write(data)
            return
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError) as again:
            want = again


def _tls_text(exc: BaseException) -> str:
    """A readable reason for a TLS failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message}"
    return str(exc) or type(exc).__name__
