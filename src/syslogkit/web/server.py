"""Run the web application with uvicorn: in the foreground (`syslogkit web`) or in a thread
(tests, `syslogkit demo --web`), over HTTP or HTTPS.

Decisions:

- The listening rule (`security.check_exposure`) is applied here, before anything listens, and
  the socket is bound to the address it checked.
- Connections are admitted by our own accept loop, not uvicorn's (`Gate`, `Limits`): at most
  `per_peer` connections per client address (an IPv6 /64 counts as one), at most `connections`
  in all (kept below the open-file limit). When a peer or the whole server is at its limit, the
  oldest connection still waiting for a request head gives way to the new one; when none is
  waiting, the new one is closed at once. So idle or half-sent connections, a thousand of them
  from one peer, cost a bounded number of file descriptors and never keep out a client that
  sends its request.
- A request head must arrive within `head_timeout` seconds of the connection (or of the end of
  the previous answer), a TLS handshake within `handshake_timeout`; a head is at most
  `max_head` bytes (h11's limit). Idle keep-alive connections close after `keep_alive` seconds.
- TLS (`tls_cert`/`tls_key`): the handshake runs after admission, on the accepted socket, in a
  task of its own (as the collector's TLS listeners do).
- Shutdown does not wait for open event streams longer than `GRACE` seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import resource
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from .app import create_app
from .security import HEADERS, check_exposure

__all__ = ["GRACE", "Gate", "Limits", "WebServer"]

GRACE = 2


@dataclass(frozen=True)
class Limits:
    """How many connections, and how long a client may take to say what it wants."""

    per_peer: int = 32
    connections: int = 512
    head_timeout: float = 10.0
    handshake_timeout: float = 10.0
    keep_alive: float = 5.0
    max_head: int = 16 * 1024


def peer_key(peer: Any) -> str:
    """What counts as one client: its IPv4 address, or its IPv6 /64."""
    host = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Ticket:
    """One admitted connection: whether it waits for a request head, and how to close it."""

    def __init__(self, gate: Gate, key: str) -> None:
        self.gate = gate
        self.key = key
        self.waiting = True
        self._close: Callable[[], Any] | None = None
        self.released = False

    def attach(self, close: Callable[[], Any]) -> None:
        self._close = close

    def evict(self) -> None:
        close = self._close
        self.release()
        if close is not None:
            close()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.gate.release(self)


class Gate:
    """Admission by peer and in all (see the module's decisions)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total_limit = min(limits.connections, max(16, _open_files() - 64))
        self.by_peer: dict[str, dict[Ticket, None]] = {}
        self.all: dict[Ticket, None] = {}
        self.refused = 0
        self.evicted = 0

    def admit(self, peer: Any) -> Ticket | None:
        """A ticket for a new connection from `peer`, or None: close it."""
        key = peer_key(peer)
        mine = self.by_peer.get(key, {})
        if len(mine) >= self.limits.per_peer and not self._evict_waiting(mine):
            self.refused += 1
            return None
        if len(self.all) >= self.total_limit and not self._evict_waiting(self.all):
            self.refused += 1
            return None
        ticket = Ticket(self, key)
        self.by_peer.setdefault(key, {})[ticket] = None
        self.all[ticket] = None
        return ticket

    def _evict_waiting(self, tickets: dict[Ticket, None]) -> bool:
        oldest = next((t for t in tickets if t.waiting), None)
        if oldest is None:
            return False
        self.evicted += 1
        oldest.evict()
        return True

    def release(self, ticket: Ticket) -> None:
        self.all.pop(ticket, None)
        mine = self.by_peer.get(ticket.key)
        if mine is not None:
            mine.pop(ticket, None)
            if not mine:
                del self.by_peer[ticket.key]


def _open_files() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request head, its gate ticket, and the
    security headers on the 400 it answers itself to a malformed request."""

    def __init__(self, *args: Any, ticket: Ticket, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ticket = ticket
        self.limits = limits
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.ticket.attach(transport.abort)
        self._await_head()

    def _await_head(self) -> None:
        self._stop_head_timer()
        self.ticket.waiting = True
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_late)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self._in_request():
            self._head_arrived()

    def _in_request(self) -> bool:
        """A request head came whole and its answer is not complete yet (the rest of a body
        still trickling in after the answer does not count)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _head_arrived(self) -> None:
        self._stop_head_timer()
        self.ticket.waiting = False

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._await_head()
        super().on_response_complete()
        if self._in_request():  # a pipelined request already came whole
            self._head_arrived()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self.ticket.release()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"connection", b"close"),
            (b"cache-control", b"no-store"),
            *[(k.encode(), v.encode()) for k, v in HEADERS.items()],
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=STATUS_PHRASES[400]),
            h11.Data(data=msg.encode("ascii")),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


class _Acceptor:
    """Accepts on one listening socket, admits through the gate, serves each connection."""

    def __init__(self, server: _GuardedServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[None]] = set()
        sock.setblocking(False)
        self.task = self.loop.create_task(self._accept())

    async def _accept(self) -> None:
        while True:
            try:
                client, peer = await self.loop.sock_accept(self.sock)
            except OSError:  # EMFILE and the like: breathe, go on
                await asyncio.sleep(0.05)
                continue
            ticket = self.server.gate.admit(peer)
            if ticket is None:
                client.close()
                continue
            client.setblocking(False)
            task = self.loop.create_task(self._connect(client, ticket))
            ticket.attach(task.cancel)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _connect(self, client: socket.socket, ticket: Ticket) -> None:
        server = self.server
        protocol = GuardedH11Protocol(
            config=server.config,
            server_state=server.server_state,
            app_state=server.lifespan.state,
            _loop=self.loop,
            ticket=ticket,
            limits=server.limits,
        )
        extra: dict[str, Any] = {}
        if server.ssl_context is not None:
            extra = {
                "ssl": server.ssl_context,
                "ssl_handshake_timeout": server.limits.handshake_timeout,
            }
        try:
            await self.loop.connect_accepted_socket(lambda: protocol, client, **extra)
        except asyncio.CancelledError:
            client.close()
            ticket.release()
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError, EOFError):
            client.close()
            ticket.release()

    def close(self) -> None:
        self.task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(self.task, return_exceptions=True)


class _GuardedServer(uvicorn.Server):
    """uvicorn's server with our accept loop in the place of `loop.create_server`."""

    def __init__(
        self, config: uvicorn.Config, limits: Limits, ssl_context: ssl.SSLContext | None
    ) -> None:
        super().__init__(config)
        self.limits = limits
        self.ssl_context = ssl_context
        self.gate = Gate(limits)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            raise SystemExit(3)
        self.servers = [_Acceptor(self, sock) for sock in sockets or []]  # type: ignore[misc]
        self.started = True


class WebServer:
    """`syslogkit web` on `host:port` over the store at `db` (port 0: any free port), HTTPS
    with `tls_cert` (and `tls_key`).

    The listening socket is bound here, so a taken port is an `OSError` from the constructor,
    and `port` is known before serving starts.
    """

    def __init__(
        self,
        db: str | Path,
        host: str = "127.0.0.1",
        port: int = 8514,
        token: str | None = None,
        *,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.addresses = check_exposure(host, token)
        self.host = host.strip("[]")
        self.limits = limits or Limits()
        self.ssl_context = _server_context(tls_cert, tls_key)
        self.app = create_app(db, token=token)
        self.socket = _listen(self.addresses[0], port)
        config = uvicorn.Config(
            self.app,
            host=self.addresses[0],
            port=self.port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=GRACE,
            timeout_keep_alive=int(max(1, self.limits.keep_alive)),
            h11_max_incomplete_event_size=self.limits.max_head,
            http="h11",
            ws="none",
            lifespan="on",
        )
        self.server = _GuardedServer(config, self.limits, self.ssl_context)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, timeout: float = 10.0) -> WebServer:
        """Serve from a thread; returns once listening (`RuntimeError` if it could not)."""
        self._thread = threading.Thread(target=self.run, name="syslogkit-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not start on {self.host}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(GRACE + 5)
        else:  # never served: release what the constructor took
            self.socket.close()
            self.app.state.reader.close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _server_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None:
        if key is not None:
            raise ValueError("--tls-key given without --tls-cert")
        return None
    from syslogkit.transports.tls import ServerTLSConfig

    return ServerTLSConfig(cert_file=cert, key_file=key, client_auth="none").context()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
