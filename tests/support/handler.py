"""Loopback collectors for the handler tests: UDP, TCP/TLS and unix sockets, in threads.

Not a syslog implementation: they split frames (octet counting or a trailer) and keep the
payload bytes, so a test can compare what arrived with what was logged. All waits are bounded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from support.peers.ports import free_port
from syslogkit.sender.handler import SyslogHandler

__all__ = [
    "StreamCollector",
    "UDPCollector",
    "UnixDatagramCollector",
    "logger_for",
    "split_frames",
    "wait_until",
]


def wait_until(check: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll `check` until it is true or `timeout` passes; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def split_frames(buffer: bytearray) -> list[bytes]:
    """Take the complete frames off the front of `buffer` (octet-counted or LF/NUL ended)."""
    out: list[bytes] = []
    while buffer:
        if buffer[:1].isdigit():
            space = buffer.find(b" ")
            if space < 0:
                break
            size = int(buffer[:space])
            if len(buffer) < space + 1 + size:
                break
            out.append(bytes(buffer[space + 1 : space + 1 + size]))
            del buffer[: space + 1 + size]
            continue
        ends = [i for i in (buffer.find(b"\n"), buffer.find(b"\0")) if i >= 0]
        if not ends:
            break
        end = min(ends)
        out.append(bytes(buffer[:end]).rstrip(b"\r"))
        del buffer[: end + 1]
    return out


def logger_for(handler: logging.Handler, name: str) -> logging.Logger:
    """A logger that sends only to `handler`, at every level."""
    logger = logging.getLogger(f"syslogkit.test.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(1)
    logger.propagate = False
    return logger


class _Collector:
    """Common part: received payloads, bounded waits, a stop flag."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _keep(self, payload: bytes) -> None:
        with self._lock:
            self.received.append(payload)

    def messages(self) -> list[bytes]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """The payloads once at least `count` arrived (or what arrived by `timeout`)."""
        wait_until(lambda: len(self.received) >= count, timeout)
        return self.messages()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()


class UDPCollector(_Collector):
    """Datagrams on 127.0.0.1 (or ::1), one payload per datagram."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self._spawn(self._run)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"udp://{host}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._keep(self.sock.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._join()
        self.sock.close()


class UnixDatagramCollector(UDPCollector):
    """Datagrams on a unix socket path."""

    def __init__(self, path: Path) -> None:
        _Collector.__init__(self)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self._spawn(self._run)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def close(self) -> None:
        super().close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class StreamCollector(_Collector):
    """TCP (optionally TLS) or unix stream listener; can stop, restart, or never read.

    `read=False` accepts connections and never reads from them (`read="handshake"`: completes
    the TLS handshake, then never reads). `restart()` closes the listener and every connection,
    then listens again on the same port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: ssl.SSLContext | None = None,
        read: bool | str = True,
        path: Path | None = None,
        start: bool = True,
    ) -> None:
        super().__init__()
        self.host, self.port, self.path = host, port, path
        self.tls = tls
        self.read = read
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self.tls_errors: list[str] = []
        self.clean_closes = 0  # TLS connections that ended with the client's close_notify
        self.listener: socket.socket | None = None
        if port == 0 and path is None:
            self.port = free_port(host)  # below the ephemeral range: stable across restarts
        if start:
            self.start()

    @property
    def url(self) -> str:
        if self.path is not None:
            return f"unix+stream://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls' if self.tls else 'tcp'}://{host}:{self.port}"

    def start(self) -> None:
        """Listen (again)."""
        self._stop.clear()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(self.path))
        else:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self.listener = listener
        self._spawn(self._accept_loop, listener)

    def stop(self) -> None:
        """Close the listener and every connection (a collector that went away)."""
        self._stop.set()
        self._join()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.close()
        self.connections.clear()

    def restart(self) -> None:
        self.stop()
        self.start()

    close = stop

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self.connections.append(conn)
            if self.read:
                self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
            except (OSError, ssl.SSLError) as exc:
                self.tls_errors.append(str(exc))
                conn.close()
                return
            self.connections.append(conn)
        if self.read == "handshake":
            return
        buffer = bytearray()
        ending: list[str] = []
        for chunk in _chunks(conn, self._stop, ending):
            buffer += chunk
            for payload in split_frames(buffer):
                self._keep(payload)
        if ending == ["eof"] and isinstance(conn, ssl.SSLSocket):
            self.clean_closes += 1  # with ragged EOFs not suppressed, b"" means close_notify
        with contextlib.suppress(OSError):
            conn.close()


def interop_handler(address: Any, delivery: str, **options: Any) -> SyslogHandler:
    """The handler the interop tests log through: local4, app `interop-app`, host
    `sender.example`, the given delivery and options."""
    return SyslogHandler(
        address,
        facility="local4",
        app_name="interop-app",
        hostname="sender.example",
        delivery=delivery,
        **options,
    )


def assert_tls_refusal_is_counted(handler: SyslogHandler, delivery: str, name: str) -> None:
    """Log three records through `handler`, whose TLS session the collector refuses (closing
    the handler afterwards): the log calls return, nothing counts as sent, the error is
    counted and told once in one line on stderr (a failure of the network, not handleError's
    traceback), and all three are dropped as `tls` (sync: each in its own call; background:
    when it closes), the final count told at close."""
    reported: list[logging.LogRecord] = []
    handler.handleError = reported.append  # type: ignore[method-assign]
    told = io.StringIO()
    try:
        with contextlib.redirect_stderr(told):
            logger = logger_for(handler, name)
            for n in range(3):
                logger.error("refused %d", n)
            handler.flush(1.0)  # never succeeds here: bounded
            assert wait_until(lambda: handler.stats["errors"] >= 1)
        stats = handler.stats
        assert stats["sent"] == 0
        assert "tls" in str(stats["last_error"]).lower()
        if delivery == "sync":
            assert stats["dropped_tls"] == 3  # each in its own call
    finally:
        with contextlib.redirect_stderr(told):
            handler.close(timeout=1.0)
    assert wait_until(lambda: handler.stats["dropped"] == 3)
    stats = handler.stats
    assert stats["sent"] == 0 and stats["dropped_tls"] == 3 and reported == []
    lines = told.getvalue().splitlines()
    assert all(line.startswith("syslogkit: ") for line in lines), lines
    final = [line for line in lines if line.startswith("syslogkit: at close")]
    assert len(final) == 1 and "tls 3" in final[0], lines
    assert len(lines) == 2, lines  # the refusal, once; the final count


def _chunks(
    conn: socket.socket, stop: threading.Event, ending: list[str] | None = None
) -> Iterator[bytes]:
    """What a connection delivers until EOF, an error, or `stop` (noted in `ending`)."""
    ending = ending if ending is not None else []
    poller = select.poll()
    try:
        poller.register(conn, select.POLLIN)
    except (OSError, ValueError):
        return
    while not stop.is_set():
        try:
            pending = isinstance(conn, ssl.SSLSocket) and conn.pending() > 0
            if not pending and not poller.poll(100):
                continue
            data = conn.recv(65536)
        except (OSError, ValueError):
            ending.append("error")
            return
        if not data:
            ending.append("eof")
            return
        yield data


def server_context(cert: Path, key: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server SSLContext; with `client_ca`, a client certificate is required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca))
    return context
