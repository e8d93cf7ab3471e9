"""Transports: open a socket, write bytes, close, report errors. No formatting, framing or queue.

Every transport opens lazily (never in a constructor), bounds each step by a timeout, and asks
the shared `Backoff` before each connection attempt. A failed write closes the connection.
"""

from __future__ import annotations

import abc
import errno
import ipaddress
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from syslogkit.transports.backoff import Backoff

if TYPE_CHECKING:
    from syslogkit.transports.address import Address

__all__ = [
    "HostTransport",
    "Resolver",
    "Transport",
    "TransportError",
    "connect_unix",
    "send_all",
]

#: One getaddrinfo() result: family, kind, proto, canonname, sockaddr.
AddrInfo = tuple[Any, ...]

_POLL_OUT: Final = select.POLLOUT
_REFUSED: Final = frozenset({errno.ECONNREFUSED, errno.ENOENT, errno.ENOTCONN, errno.EDESTADDRREQ})


class TransportError(Exception):
    """A transport could not do what was asked.

    `reason` names the cause for the drop counters: `unreachable` (resolve/connect failed or
    waiting out the backoff), `timeout` (a write did not finish in time), `tls` (handshake,
    verification or pin refused), `closed` (the peer closed or reset the connection).
    `too_large` (a datagram over the path's limit; the connection stays). `attempted` is False
    when no I/O was tried (the backoff said wait).
    """

    def __init__(self, reason: str, message: str, *, attempted: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.attempted = attempted


def remaining(deadline: float) -> float:
    """Seconds left until `deadline` (monotonic), raising a timeout when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def send_all(sock: socket.socket, data: bytes, timeout: float) -> None:
    """Write all of `data` on a non-blocking socket within `timeout` seconds.

    One `send` in the common case; when the socket buffer is full, wait for room with poll.
    Raises TimeoutError when the time runs out (part of the data may have been written).
    """
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(sock, _POLL_OUT)
    while view:
        if not poller.poll(remaining(deadline) * 1000.0):
            continue
        try:
            sent = sock.send(view)
        except BlockingIOError:
            continue
        view = view[sent:]


def _is_numeric(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (no lookup needed)."""
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


class Resolver:
    """Name resolution bounded by a timeout (getaddrinfo itself has none).

    Numeric addresses are converted in place. Names are looked up in a helper thread; at most
    one lookup runs at a time, and a lookup that outlives its caller's timeout is picked up by
    the next call instead of starting another.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, int, int] | None = None
        self._done = threading.Event()
        self._result: Sequence[AddrInfo] | BaseException | None = None

    def resolve(self, host: str, port: int, socktype: int, timeout: float) -> Sequence[AddrInfo]:
        """The address infos for host and port, or OSError (TimeoutError when too slow)."""
        if _is_numeric(host):
            flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
            return socket.getaddrinfo(host, port, 0, socktype, 0, flags)
        key = (host, port, socktype)
        with self._lock:
            if self._key != key:
                self._start(key)
            done = self._done
        if not done.wait(timeout):
            raise TimeoutError(f"resolving {host!r} took longer than {timeout:g} s")
        with self._lock:
            result, self._key = self._result, None
        if isinstance(result, BaseException):
            raise result
        assert result is not None
        return result

    def _start(self, key: tuple[str, int, int]) -> None:
        self._key = key
        self._done = done = threading.Event()
        self._result = None

        def lookup() -> None:
            try:
                found: Sequence[AddrInfo] | BaseException = socket.getaddrinfo(
                    key[0], key[1], 0, key[2]
                )
            except BaseException as exc:
                found = exc
            with self._lock:
                if self._done is done:
                    self._result = found
            done.set()

        threading.Thread(target=lookup, name="syslogkit-resolve", daemon=True).start()

    def forget(self) -> None:
        """Drop any lookup in flight (its thread does not exist in a forked child)."""
        self._lock = threading.Lock()
        self._key = None
        self._done = threading.Event()
        self._result = None


class Transport(abc.ABC):
    """Base of every transport: lazy open with backoff, write, close, fork hand-off.

    Subclasses implement `_connect(deadline)` (return a connected socket) and may override
    `write`, `alive` and `_shutdown`. Not thread-safe by itself: the delivery serialises calls.
    """

    #: True for stream transports (frames need framing; the peer can close).
    stream: ClassVar[bool] = False

    def __init__(self, address: Address, *, timeout: float, backoff: Backoff | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.backoff = backoff if backoff is not None else Backoff()
        self.sock: socket.socket | None = None
        self.last_failure = "unreachable"
        self.opened = 0

    @property
    def is_open(self) -> bool:
        """True while a connection is open."""
        return self.sock is not None

    def open(self) -> None:
        """Connect (resolve, connect, handshake) within `timeout`, unless the backoff says wait.

        Raises TransportError; a failure feeds the backoff, a success resets it.
        """
        if self.sock is not None:
            return
        if not self.backoff.ready():
            wait = self.backoff.remaining()
            raise TransportError(
                self.last_failure,
                f"{self.address}: not connected; next attempt in {wait:.2f} s",
                attempted=False,
            )
        try:
            self.sock = self._connect(time.monotonic() + self.timeout)
        except TransportError as exc:
            self._failed(exc.reason)
            raise
        except OSError as exc:
            self._failed("unreachable")
            raise TransportError("unreachable", f"{self.address}: {_describe(exc)}") from exc
        self.backoff.success()
        self.opened += 1

    def _failed(self, reason: str) -> None:
        self.last_failure = reason
        self.backoff.failure()

    def alive(self) -> bool:
        """For streams: False (and closed) when the peer has closed. Datagrams: always True."""
        return True

    def write(self, data: bytes) -> None:
        """Write `data` whole within `timeout`; on failure close and raise TransportError."""
        sock = self.sock
        if sock is None:
            raise TransportError("closed", f"{self.address}: not connected")
        try:
            sent = sock.send(data)  # non-blocking: the common case is one call
            if sent != len(data):
                send_all(sock, data[sent:], self.timeout)
        except BlockingIOError:
            try:
                send_all(sock, data, self.timeout)
            except OSError as exc:
                self._write_failed(exc)
        except OSError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        """Close after a failed write and raise the matching TransportError."""
        if exc.errno == errno.EMSGSIZE:  # this datagram only: the socket is fine
            raise TransportError("too_large", f"{self.address}: {_describe(exc)}") from exc
        self.discard()
        if isinstance(exc, TimeoutError):
            self._failed("timeout")
            message = f"write did not complete within {self.timeout:g} s"
            raise TransportError("timeout", f"{self.address}: {message}") from exc
        reason = "unreachable" if exc.errno in _REFUSED else "closed"
        self.last_failure = reason
        raise TransportError(reason, f"{self.address}: {_describe(exc)}") from exc

    def close(self, timeout: float | None = None) -> None:
        """Close the connection politely (TLS close_notify), within `timeout` seconds."""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            self._shutdown(sock, self.timeout if timeout is None else timeout)
        except (OSError, ValueError):
            pass
        finally:
            sock.close()

    def _shutdown(self, sock: socket.socket, timeout: float) -> None:  # noqa: B027
        """Say goodbye on `sock` before it is closed (nothing for plain sockets)."""

    def discard(self) -> None:
        """Close the connection at once, without any goodbye."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's connection without a goodbye.

        Closing our copy of the descriptor leaves the parent's connection untouched (no
        shutdown, no TLS close_notify: freeing an SSL object sends nothing).
        """
        self.discard()
        self.backoff.reset()

    @abc.abstractmethod
    def _connect(self, deadline: float) -> socket.socket:
        """A connected socket, or OSError/TransportError, within the deadline."""


def _describe(exc: BaseException) -> str:
    """A short text for an OS or TLS error."""
    if isinstance(exc, TimeoutError) and not exc.args:
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


class HostTransport(Transport):
    """A transport to a host and port, resolved (bounded) on each connect."""

    def __init__(self, address: Address, *, timeout: float, backoff: Backoff | None = None) -> None:
        super().__init__(address, timeout=timeout, backoff=backoff)
        self._resolver = Resolver()

    def _connect_host(
        self, socktype: int, deadline: float, prepare: Callable[[socket.socket], None]
    ) -> socket.socket:
        """A socket connected to the first resolved address that takes it (`prepare` runs
        before the connect); the last address's error when none does."""
        host, port = self.address.host, self.address.port
        assert host is not None and port is not None
        infos = self._resolver.resolve(host, port, socktype, remaining(deadline))
        last: OSError = OSError(f"no address found for {host!r}")
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                prepare(sock)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return sock
        raise last

    def forget(self) -> None:
        """In a forked child: drop the parent's socket and any lookup in flight."""
        super().forget()
        self._resolver.forget()


#: the kind of socket a connect of this type failed on (EPROTOTYPE), and its URL scheme
_OTHER_UNIX_KIND: Final[dict[int, tuple[str, str]]] = {
    socket.SOCK_DGRAM: ("stream", "unix+stream"),
    socket.SOCK_STREAM: ("datagram", "unix"),
}


def connect_unix(path: str, socktype: int, deadline: float) -> socket.socket:
    """A non-blocking unix socket of `socktype` connected to `path`; a socket of the other
    kind there is a `TransportError` that names the URL scheme to use instead."""
    sock = socket.socket(socket.AF_UNIX, socktype)
    try:
        sock.settimeout(remaining(deadline))
        sock.connect(path)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EPROTOTYPE:
            kind, scheme = _OTHER_UNIX_KIND[socktype]
            raise TransportError(
                "unreachable", f"{path} is a {kind} socket: use {scheme}://{path}"
            ) from exc
        raise
    return sock
